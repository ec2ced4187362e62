#!/bin/sh
# w.approval (docs/workflows.md): a run waits for a person's answer.
# Without a terminal `weft run` stops as waiting (exit status 6) and says
# how to answer; weft approve / weft reject answer it (checked against the
# approval's schema, a JSON pointer naming a bad place); weft resume goes
# on with the answer; weft replay answers it the same way.  On a terminal
# weft run asks inline.  kill -9 while it waits, then answer, then resume:
# no tool call is repeated and the answer is not lost.  on_timeout applies
# once the deadline has passed.
. "$(dirname "$0")/lib.sh"

{
	echo 'local w = require "weft"'
	printf 'w.mcp_server{ name = "test", command = { "%s", "--log", "%s/calls.log" }, sandbox = { write = { "%s" } } }\n' \
	    "$WEFT_TESTSERVER" "$T" "$T"
	cat <<'LUA'
return w.sequential{ name = "release",
  w.tool{ name = "plan", server = "test", tool = "echo", args = { message = "plan-{service}" },
          output_key = "plan" },
  w.approval{ name = "go", prompt = "Deploy {plan}?",
    schema = { type = "object", required = { "env" },
               properties = { env = { type = "string", enum = { "staging", "prod" } } } },
    timeout = "24h", output_key = "decision" },
  w.fn{ name = "check", function(ctx)
    local d = ctx.state.decision
    ctx.state.target = d.approved and d.answer.env or ("none: " .. tostring(d.reason))
  end },
  w.tool{ name = "deploy", server = "test", tool = "echo", args = { message = "deploy-{target}" } },
}
LUA
} > "$T/wf.lua"
echos() { grep -c "^echo " "$T/calls.log" 2>/dev/null || echo 0; }

# 1. No terminal: the run stops as waiting, exit status 6.
run_weft "$T/out" "$T/err" run "$T/wf.lua" --input '{"service":"billing"}' --workers 1 </dev/null
expect_rc 6 "a run waiting for approval without a terminal"
R=$(last_run)
expect_grep "$T/err" "weft approve $R \\[--answer JSON\\]" "says how to answer"
expect_grep "$T/err" "weft resume $R" "and how to go on"
expect_grep "$T/err" "'release/go': Deploy Echo: plan-billing\\?" "names the approval and its prompt"
[ "$(sql "SELECT status FROM runs WHERE id = '$R'")" = waiting ] || fail "the run row is waiting"
[ "$(sql "SELECT count(*) FROM events WHERE run_id = '$R' AND kind = 'approval.wait'")" = 1 ] ||
	fail "approval.wait recorded"
[ "$(echos)" = 1 ] || fail "one tool call so far"
ok "weft run without a terminal stops as waiting (6), the run row says waiting"

# A resume before the answer waits again; nothing is repeated.
run_weft "$T/out" "$T/err" resume "$R" --workers 1 </dev/null
expect_rc 6 "a resume with no answer yet"
[ "$(echos)" = 1 ] || fail "the resume repeated the tool call"
[ "$(sql "SELECT count(*) FROM events WHERE run_id = '$R' AND kind = 'approval.wait'")" = 1 ] ||
	fail "the wait is recorded once"
ok "a resume before the answer waits again, repeating nothing"

# 2. Answers are checked against the schema.
run_weft "$T/out" "$T/err" approve "$R" --answer '{"env":"dev"}'
expect_rc 2 "an answer outside the enum"
expect_grep "$T/err" "/env: 'dev' is not one of \"staging\", \"prod\"" "a JSON pointer to the bad place"
run_weft "$T/out" "$T/err" approve "$R" --answer '{"env":'
expect_rc 2 "an answer that is not JSON"
expect_grep "$T/err" "--answer is not JSON" "says so"
run_weft "$T/out" "$T/err" approve "$R"
expect_rc 2 "no answer where the schema asks for one"
expect_grep "$T/err" "give it with --answer JSON" "says how"
run_weft "$T/out" "$T/err" reject "$R"
expect_rc 2 "weft reject without --reason"
run_weft "$T/out" "$T/err" approve 0000000000000000 --answer '{}'
expect_rc 1 "an unknown run"
ok "bad answers are refused, naming what is wrong and where"

run_weft "$T/out" "$T/err" approve "$R" --answer '{"env":"staging"}'
expect_rc 0 "weft approve"
expect_grep "$T/out" "continue the run with: weft resume $R" "says to resume"
run_weft "$T/out2" "$T/err" approve "$R" --answer '{"env":"prod"}'
expect_rc 1 "a second answer"
expect_grep "$T/err" "waits for no approval" "nothing waits any more"
run_weft "$T/out" "$T/err" resume "$R" --workers 1 </dev/null
expect_rc 0 "the resume after the answer"
[ "$(sql "SELECT status FROM runs WHERE id = '$R'")" = succeeded ] || fail "succeeded"
[ "$(grep -c '^echo .*plan-billing' "$T/calls.log")" = 1 ] || fail "the first tool call was repeated"
[ "$(grep -c '^echo .*deploy-staging' "$T/calls.log")" = 1 ] || fail "the deploy call ran once with the answer"
[ "$(sql "SELECT json_extract(payload, '$.value.answer.env') FROM events WHERE run_id = '$R' AND kind = 'approval.answer'")" = staging ] ||
	fail "the answer is recorded as approval.answer"
ok "approve then resume: the answer reaches the workflow, nothing repeated"

run_weft "$T/out" "$T/err" replay "$R"
expect_rc 0 "weft replay of the approved run"
expect_grep "$T/out" "^identical" "replays identically"
ok "weft replay answers the approval from the record"

# 3. Rejected: the node's output says so, the workflow goes on.
run_weft "$T/out" "$T/err" run "$T/wf.lua" --input '{"service":"ledger"}' --workers 1 </dev/null
expect_rc 6 "second run waits"
R2=$(last_run)
run_weft "$T/out" "$T/err" reject "$R2" --reason "not on a Friday"
expect_rc 0 "weft reject"
run_weft "$T/out" "$T/err" resume "$R2" --workers 1 </dev/null
expect_rc 0 "resume after reject"
grep -q "deploy-none: not on a Friday" "$T/calls.log" || fail "the reason reached the workflow"
ok "a rejection reaches the workflow with its reason"

# 4. On a terminal weft run asks inline; kill -9 while it asks; answer
# with weft approve; resume: nothing repeated, the answer kept.
rm -f "$T/calls.log"
mkfifo "$T/tty.in"
script -qfec "$WEFT run $T/wf.lua --input '{\"service\":\"tty\"}' --workers 1" /dev/null \
    <"$T/tty.in" >"$T/tty.out" 2>&1 &
SPID=$!
exec 3>"$T/tty.in"
wait_for_grep "$T/tty.out" "answer with JSON matching" "the terminal prompt"
R3=$(last_run)
CPID=$(sql "SELECT json_extract(payload, '$.pid') FROM events WHERE run_id = '$R3' AND kind = 'run.start'")
[ "$(sql "SELECT status FROM approvals WHERE run_id = '$R3'")" = waiting ] || fail "the approval waits in the store"
[ "$(sql "SELECT count(*) FROM events WHERE run_id = '$R3' AND kind = 'approval.wait'")" = 1 ] ||
	fail "the wait is committed before the terminal asks"
kill -9 "$CPID"
exec 3>&-
wait "$SPID" 2>/dev/null
run_weft "$T/out" "$T/err" approve "$R3" --answer '{"env":"prod"}'
expect_rc 0 "weft approve after the kill"
run_weft "$T/out" "$T/err" resume "$R3" --workers 1 </dev/null
expect_rc 0 "resume after the kill and the answer"
[ "$(grep -c '^echo .*plan-tty' "$T/calls.log")" = 1 ] || fail "the tool call before the approval was repeated"
[ "$(grep -c '^echo .*deploy-prod' "$T/calls.log")" = 1 ] || fail "the answer was lost"
run_weft "$T/out" "$T/err" replay "$R3"
expect_rc 0 "replay after kill, answer, resume"
ok "kill -9 while asking, weft approve, weft resume: nothing repeated, the answer kept, replay identical"

# The inline answer itself.
mkfifo "$T/tty2.in"
script -qfec "$WEFT run $T/wf.lua --input '{\"service\":\"inline\"}' --workers 1" /dev/null \
    <"$T/tty2.in" >"$T/tty2.out" 2>&1 &
SPID=$!
exec 3>"$T/tty2.in"
wait_for_grep "$T/tty2.out" "answer with JSON matching" "the terminal prompt"
printf '{"env":"nope"}\n' >&3
wait_for_grep "$T/tty2.out" "is not one of" "a bad answer on the terminal"
printf '{"env":"staging"}\n' >&3
wait "$SPID" || fail "weft run on a terminal did not succeed"
exec 3>&-
grep -q "deploy-staging" "$T/calls.log" || fail "the inline answer reached the workflow"
ok "on a terminal weft run asks inline, checks the answer, goes on"

# 5. on_timeout once the deadline has passed (a deadline 1 ms away has
# passed by the time the resume looks).
for on in reject approve fail; do
	cat > "$T/to_$on.lua" <<LUA
local w = require "weft"
return w.sequential{ name = "t",
  w.approval{ name = "ok", prompt = "Go?", timeout = 0.001, on_timeout = "$on", output_key = "d" },
  w.fn{ name = "out", function(ctx) return ctx.state.d end } }
LUA
	run_weft "$T/out" "$T/err" run "$T/to_$on.lua" --workers 1 </dev/null
	RT=$(last_run)
	if [ "$RC" -eq 6 ]; then
		run_weft "$T/out" "$T/err" approve "$RT"
		expect_rc 1 "weft approve past the deadline ($on)"
		expect_grep "$T/err" "past its deadline: on_timeout = \"$on\" applies" "says on_timeout applies"
		run_weft "$T/out" "$T/err" resume "$RT" --workers 1 </dev/null
	fi
	case $on in
	reject) expect_rc 0 "on_timeout reject"
		expect_grep "$T/out" '"approved": false' "rejected by the deadline"
		expect_grep "$T/out" '"timed_out": true' "says it timed out" ;;
	approve) expect_rc 0 "on_timeout approve"
		expect_grep "$T/out" '"approved": true' "approved by the deadline"
		expect_grep "$T/out" '"timed_out": true' "says it timed out" ;;
	fail) expect_rc 1 "on_timeout fail"
		expect_grep "$T/err" "no answer before the deadline" "fails with why" ;;
	esac
done
ok "on_timeout reject, approve and fail apply once the deadline has passed"

# 6. Workflow mistakes are caught at load.
printf 'local w = require "weft"\nreturn w.approval{ name = "a", prompt = "x", on_timeout = "maybe" }\n' > "$T/bad.lua"
run_weft "$T/out" "$T/err" validate "$T/bad.lua"
expect_rc 2 "a bad on_timeout"
expect_grep "$T/err" "bad.lua:2: approval 'a': on_timeout must be" "names file, line and field"
printf 'local w = require "weft"\nreturn w.approval{ name = "a", prompt = "x", timeout = "soon" }\n' > "$T/bad.lua"
run_weft "$T/out" "$T/err" validate "$T/bad.lua"
expect_rc 2 "a bad timeout"
expect_grep "$T/err" "timeout must be seconds or a duration" "says the form"
ok "w.approval's fields are checked at load"

# weft gc keeps a waiting run; once finished and collected, its approvals
# go with it.
run_weft "$T/out" "$T/err" run "$T/wf.lua" --input '{"service":"kept"}' --workers 1 </dev/null
expect_rc 6 "a run left waiting"
RW=$(last_run)
run_weft "$T/out" "$T/err" gc --keep 0
expect_rc 0 "weft gc"
[ "$(sql "SELECT count(*) FROM approvals WHERE run_id = '$RW'")" = 1 ] || fail "gc kept the waiting run's approval"
[ "$(sql "SELECT count(*) FROM approvals WHERE run_id = '$R'")" = 0 ] || fail "gc removed a collected run's approvals"
ok "weft gc keeps waiting runs and removes collected runs' approvals"

expect_no_orphans
