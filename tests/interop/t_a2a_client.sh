#!/bin/sh
# weft's A2A client (w.remote, docs/a2a.md) against agents built with the
# official SDK's server classes (@a2a-js/sdk, tests/interop/a2a_agent.mjs):
# v1.0 and v0.3, streaming and not, data, input-required, failure, a slow
# agent cancelled at the node's timeout, redirects, credentials by name,
# the grant's host, offline replay, and kill -9 then resume.
. "$WEFT_SRCDIR/tests/integration/lib.sh"
. "$WEFT_SRCDIR/tests/interop/lib_a2a.sh"
start_agent v1
start_agent plain --no-stream
start_agent old --v03
start_agent oldplain --v03 --no-stream
start_agent sec --token s3cr3t-A2A-value
start_agent cards

# wf NAME AGENT_URL INPUT [EXTRA FIELDS]: a one-node workflow.
wf() {
	cat > "$T/$1.lua" <<LUA
local w = require "weft"
return w.sequential{ name = "main",
  w.remote{ name = "peer", agent = "$2", input = "$3", output_key = "answer"${4:-} },
}
LUA
}

# v1.0, not streamed: SendMessage; the answer's text is the output.
wf plain "http://127.0.0.1:$P_plain" "echo {topic}"
run_weft "$T/out" "$T/err" run "$T/plain.lua" --input '{"topic":"cats"}'
expect_rc 0 "v1.0 SendMessage"
expect_grep "$T/out" '^echo: echo cats$' "the artifact's text is the output"
expect_grep "$T/plain.log" '"version":"1.0"' "the request says A2A-Version: 1.0"
RUN=$(last_run)
# Two exchanges, each recorded with its protocol version: the card's
# read (an a2a.send task named "card") and the message.
[ "$(sql "SELECT count(*) FROM events WHERE run_id = '$RUN' AND kind = 'tool.result' AND json_extract(payload, '$.result.protocol') = '1.0' AND json_extract(payload, '$.result.messageId') IS NOT NULL")" = 1 ] ||
	fail "the exchange is recorded with its protocol version"
[ "$(sql "SELECT count(*) FROM events WHERE run_id = '$RUN' AND kind = 'tool.result' AND json_extract(payload, '$.result.protocol') = '1.0' AND json_extract(payload, '$.result.url') IS NOT NULL")" = 1 ] ||
	fail "the card's read is recorded with its protocol version"
ok "v1.0 SendMessage: output and record (protocol 1.0)"
"$WEFT" show "$RUN" >"$T/show" 2>&1
expect_grep "$T/show" 'remote .*succeeded' "weft show lists the remote node"
expect_grep "$T/show" 'tool a2a peer.card .*A2A v1.0 card: test agent at http' "weft show: the card's read and its version"
expect_grep "$T/show" 'tool a2a peer.send .*A2A v1.0 task [-0-9a-f]+ completed: echo' "weft show: the message, its version and task"

# v1.0 streamed: SendStreamingMessage; updates are progress events.
wf stream "http://127.0.0.1:$P_v1" "stream {topic}"
run_weft "$T/out" "$T/err" run "$T/stream.lua" --input '{"topic":"dogs"}'
expect_rc 0 "v1.0 SendStreamingMessage"
expect_grep "$T/out" '^part one$' "appended chunks are joined (1)"
expect_grep "$T/out" '^part two$' "appended chunks are joined (2)"
RUN=$(last_run)
[ "$(sql "SELECT count(*) FROM events WHERE run_id = '$RUN' AND kind = 'tool.progress' AND payload LIKE '%working: on it%'")" -ge 1 ] ||
	fail "status updates are recorded as progress"
ok "v1.0 streaming: chunks joined, status updates as tool.progress"

# v0.3: the card offers only 0.3; message/stream with kind-tagged parts.
wf old "http://127.0.0.1:$P_old" "echo {topic}"
run_weft "$T/out" "$T/err" run "$T/old.lua" --input '{"topic":"owls"}'
expect_rc 0 "v0.3 agent"
expect_grep "$T/out" '^echo: echo owls$' "v0.3 answer"
RUN=$(last_run)
[ "$(sql "SELECT json_extract(payload, '$.result.protocol') FROM events WHERE run_id = '$RUN' AND kind = 'tool.result' AND json_extract(payload, '$.result.messageId') IS NOT NULL")" = 0.3 ] ||
	fail "v0.3 recorded"
"$WEFT" show "$RUN" >"$T/show" 2>&1
expect_grep "$T/show" 'tool a2a peer.send .*A2A v0.3 task' "weft show: a v0.3 exchange says so"
ok "v0.3 agent: message/stream, recorded as protocol 0.3"

# v0.3, not streamed: message/send (blocking).
wf oldplain "http://127.0.0.1:$P_oldplain" "echo {topic}"
run_weft "$T/out" "$T/err" run "$T/oldplain.lua" --input '{"topic":"larks"}'
expect_rc 0 "v0.3 agent, not streaming"
expect_grep "$T/out" '^echo: echo larks$' "v0.3 message/send answer"
expect_grep "$T/oldplain.log" '"text":"echo larks"' "the agent got the message"
expect_no_grep "$T/oldplain.log" '"version":"1.0".*rpc|POST /rpc.*"version":"1.0"' "v0.3 requests carry no A2A-Version: 1.0"
ok "v0.3 agent, not streaming: message/send"

# A data artifact is the output as JSON.
wf data "http://127.0.0.1:$P_plain" "data please"
run_weft "$T/out" "$T/err" run "$T/data.lua" --input '{}'
expect_rc 0 "data artifact"
expect_grep "$T/out" '"n": ?42' "data part as JSON"
ok "a data part becomes JSON output"

# File parts: bytes become a blob of the store, the output references it
# ({text, files}); a file's url stays a reference.  v1.0 and v0.3.
SHA=$(printf 'file body\n' | sha256sum | cut -d' ' -f1)
for a in plain oldplain; do
	eval "port=\$P_$a"
	wf "file$a" "http://127.0.0.1:$port" "file please"
	run_weft "$T/out" "$T/err" run "$T/file$a.lua" --input '{}'
	expect_rc 0 "file parts ($a)"
	RUN=$(last_run)
	out=$(sql "SELECT output FROM runs WHERE id = '$RUN'")
	[ "$(python3 -c 'import json,sys; o=json.loads(sys.argv[1]); o=o.get("answer", o); f=o["files"]; print(o["text"], f[0]["name"], f[0]["mediaType"], f[0]["size"], f[0]["blob"], f[1]["name"], f[1]["uri"], "blob" in f[1])' "$out")" = \
	    "two files notes.txt text/plain 10 $SHA r.pdf https://example.com/r.pdf False" ] ||
		fail "the output references the files ($a): $out"
	[ "$(sql "SELECT size || ' ' || CAST(data AS TEXT) FROM blobs WHERE hash = '$SHA'")" = "10 file body" ] ||
		fail "the file's bytes are a blob of the store ($a)"
	run_weft "$T/out" "$T/err" replay "$RUN"
	expect_grep "$T/out" 'identical' "the run with files replays identically ($a)"
done
ok "file parts: bytes as a blob of the store, referenced by the output; a url kept (v1.0 and v0.3)"

# input-required fails the node with the agent's question.
wf ask "http://127.0.0.1:$P_v1" "ask me"
run_weft "$T/out" "$T/err" run "$T/ask.lua" --input '{}'
[ "$RC" -ne 0 ] || fail "input-required must fail the node"
expect_grep "$T/err" 'needs input: Which city\?' "the agent's question in the error"
ok "input-required: the node fails with the agent's question"

# A failed task fails the node with the agent's status message.
wf failing "http://127.0.0.1:$P_plain" "fail now"
run_weft "$T/out" "$T/err" run "$T/failing.lua" --input '{}'
[ "$RC" -ne 0 ] || fail "a failed task must fail the node"
expect_grep "$T/err" 'failed: the agent broke' "the agent's failure message"
ok "a failed remote task fails the node, quoting the agent"

# Slow: the node's timeout cancels the remote task (CancelTask).
wf slow "http://127.0.0.1:$P_v1" "slow down" ", timeout = 1"
run_weft "$T/out" "$T/err" run "$T/slow.lua" --input '{}'
[ "$RC" -ne 0 ] || fail "a timed-out remote call must fail"
expect_grep "$T/err" 'CancelTask' "the timeout names the cancel"
expect_grep "$T/v1.log" '"cancel":' "the agent received CancelTask"
ok "a slow agent is cancelled at the node's timeout (CancelTask reached it)"

# Redirects: to the same host followed, to another host refused.
wf same "http://127.0.0.1:$P_plain/same" "echo same"
run_weft "$T/out" "$T/err" run "$T/same.lua" --input '{}'
expect_rc 0 "a same-host redirect is followed"
wf redir "http://127.0.0.1:$P_plain/redirect" "echo away"
run_weft "$T/out" "$T/err" run "$T/redir.lua" --input '{}'
[ "$RC" -ne 0 ] || fail "a redirect to another host must be refused"
expect_grep "$T/err" "redirect to http://localhost:$P_plain/.* was refused: it leaves the agent's host '127.0.0.1'" "why"
ok "redirects: same host followed, another host refused"

# Credentials by environment name: sent, never recorded.
wf sec "http://127.0.0.1:$P_sec" "echo secret" ", auth = { bearer_env = \"A2A_TEST_TOKEN\" }"
RC=0
A2A_TEST_TOKEN=s3cr3t-A2A-value "$WEFT" run "$T/sec.lua" --input '{}' >"$T/out" 2>"$T/err" || RC=$?
expect_rc 0 "bearer_env"
expect_grep "$T/sec.log" '"auth":"yes"' "the agent saw the header"
if grep -aq 's3cr3t-A2A-value' "$WEFT_DB" "$WEFT_DB-wal" 2>/dev/null; then
	fail "the credential is in the store"
fi
ok "auth.bearer_env: the agent gets the token; the store never holds it"
run_weft "$T/out" "$T/err" run "$T/sec.lua" --input '{}'
[ "$RC" -ne 0 ] || fail "a missing variable must fail"
expect_grep "$T/err" 'A2A_TEST_TOKEN is not set' "names the variable"
ok "auth.bearer_env unset: the node fails naming the variable"

# The grant: a node grant for another host is refused before any call.
cat > "$T/grant.lua" <<LUA
local w = require "weft"
return w.sequential{ name = "main",
  w.remote{ name = "peer", agent = "http://127.0.0.1:$P_plain", input = "echo x",
            grant = { tools = { "peer.send" }, args = { ["peer.send"] = { agent = { hosts = { "example.com" } } } } } },
}
LUA
run_weft "$T/out" "$T/err" run "$T/grant.lua" --input '{}'
[ "$RC" -ne 0 ] || fail "a grant for another host must be refused"
expect_grep "$T/err" 'grant refused' "the grant's host is checked"
ok "the capability grant names the agent's host"

# w.a2a: the remote agent as an LLM agent's tool taking a message.
cat > "$T/tool.lua" <<LUA
local w = require "weft"
local peer = w.remote{ name = "peer", agent = "http://127.0.0.1:$P_v1", description = "Echoes what it is sent." }
return w.sequential{ name = "main",
  w.agent{ name = "caller", model = "scripted", tools = { w.a2a("peer") },
    script = function(req, turn)
      if turn == 1 then
        return { tool_calls = { { name = req.tools[1], args = { message = "echo from a tool" } } } }
      end
      return { text = "caller got: " .. req.messages[#req.messages].content }
    end } }
LUA
run_weft "$T/out" "$T/err" run "$T/tool.lua" --input '{}'
expect_rc 0 "w.a2a tool"
expect_grep "$T/out" '^echo: echo from a tool$' "the tool's answer reached the model"
ok "w.a2a: a remote agent as an agent's tool (message in, answer back)"

# w.a2a with no description: the model is offered the agent card's
# description and skills (the card read by an a2a.send task named "card",
# recorded before the model call).
cat > "$T/desc.lua" <<LUA
local w = require "weft"
w.remote{ name = "peer", agent = "http://127.0.0.1:$P_v1" }
return w.sequential{ name = "main",
  w.agent{ name = "caller", model = "openai:gpt-desc", tools = { w.a2a("peer") } } }
LUA
start_fake '{"gpt-desc": [{"tool_calls":[{"name":"peer","args":{"message":"echo described"}}]},{"text":"done"}]}'
OPENAI_API_KEY=k run_weft "$T/out" "$T/err" run "$T/desc.lua" --input '{}'
stop_fake
expect_rc 0 "w.a2a described by its card"
python3 - "$T/fake.log" <<'PY' || fail "the tool's description is the card's"
import json, sys
req = json.loads(open(sys.argv[1]).readline())
body = req.get("body", req)
tools = body["tools"]
d = tools[0]["function"]["description"]
assert "An SDK agent for weft's tests" in d and "- echo: Echoes" in d, d
PY
RUN=$(last_run)
[ "$(sql "SELECT count(*) FROM events WHERE run_id = '$RUN' AND kind = 'tool.result' AND json_extract(payload, '$.result.skills[0].name') = 'echo'")" = 1 ] ||
	fail "the card is recorded once, with its skills"
ok "w.a2a without a description: the card's description and skills"

# The card is read once per run: two messages to the same agent (two
# nodes), a kill -9 while the second is in flight, and the resume use
# the card recorded by the first.
cat > "$T/cards.lua" <<LUA
local w = require "weft"
return w.sequential{ name = "main",
  w.remote{ name = "first", agent = "http://127.0.0.1:$P_cards", input = "echo one", output_key = "a" },
  w.remote{ name = "second", agent = "http://127.0.0.1:$P_cards", input = "hold $T/release2", output_key = "b" },
}
LUA
"$WEFT" run "$T/cards.lua" --input '{}' >"$T/cards.out" 2>&1 &
HPID=$!
wait_for_grep "$T/cards.log" '"text":"hold ' "the second message reached the agent"
kill -9 "$HPID"
wait "$HPID" 2>/dev/null
RUN=$(last_run)
[ "$(grep -c 'GET /.well-known/agent-card.json' "$T/cards.log")" = 1 ] ||
	fail "two messages in one run: the card is read once ($(grep -c 'GET /.well-known' "$T/cards.log") reads)"
touch "$T/release2"
run_weft "$T/out" "$T/err" resume "$RUN"
expect_rc 0 "resume of the two-message run"
expect_grep "$T/out" 'held: done' "the resumed run has the second answer"
[ "$(grep -c 'GET /.well-known/agent-card.json' "$T/cards.log")" = 1 ] ||
	fail "the resume uses the recorded card ($(grep -c 'GET /.well-known' "$T/cards.log") reads)"
[ "$(grep -c '"text":"echo one"' "$T/cards.log")" = 1 ] ||
	fail "the completed exchange is not sent again on resume"
ids=$(grep '"text":"hold ' "$T/cards.log" | sed 's/.*"messageId":"\([^"]*\)".*/\1/' | sort -u | wc -l)
[ "$ids" = 1 ] || fail "the resent message has the same messageId ($ids ids)"
ok "the agent card is read once per run (two messages, kill -9, resume)"

# Offline replay answers from the record: no message reaches the agent.
RUN=$(sql "SELECT id FROM runs WHERE workflow LIKE '%plain.lua' LIMIT 1")
before=$(grep -c messageId "$T/plain.log")
run_weft "$T/out" "$T/err" replay "$RUN"
expect_rc 0 "replay"
expect_grep "$T/out" 'identical' "replay is identical"
[ "$(grep -c messageId "$T/plain.log")" = "$before" ] || fail "replay must not call the agent"
ok "offline replay answers from the record"

# kill -9 while the remote call is in flight, before the agent told its
# task's id (it answers nothing until released), then resume: no remote
# task was recorded, so the agent receives the message again with the
# same messageId, and the run ends.  (With a recorded task id the resume
# asks GetTask instead: t_a2a_resume.sh.)
wf hold "http://127.0.0.1:$P_v1" "quiet $T/release"
"$WEFT" run "$T/hold.lua" --input '{}' >"$T/hold.out" 2>&1 &
HPID=$!
wait_for_grep "$T/v1.log" '"text":"quiet ' "the held message reached the agent"
kill -9 "$HPID"
wait "$HPID" 2>/dev/null
RUN=$(last_run)
[ "$(sql "SELECT count(*) FROM events WHERE run_id = '$RUN' AND json_extract(payload, '$.remote') IS NOT NULL")" = 0 ] ||
	fail "no remote task id is recorded before the agent answers"
touch "$T/release"
run_weft "$T/out" "$T/err" resume "$RUN"
expect_rc 0 "resume after kill -9"
expect_grep "$T/out" 'held: done' "the resumed run has the answer"
[ "$(grep -c '"text":"quiet ' "$T/v1.log")" = 2 ] || fail "the message is sent again on resume"
ids=$(grep '"text":"quiet ' "$T/v1.log" | sed 's/.*"messageId":"\([^"]*\)".*/\1/' | sort -u | wc -l)
[ "$ids" = 1 ] || fail "the resent message has the same messageId ($ids ids)"
ok "kill -9 then resume: the message is resent with the same messageId"
for p in $PIDS; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
PIDS=
expect_no_orphans
