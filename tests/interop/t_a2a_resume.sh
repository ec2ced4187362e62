#!/bin/sh
# A2A durability (docs/a2a.md, "Resume"): a w.remote exchange in flight
# when the coordinator is killed (kill -9), whose remote task id was
# recorded (a tool.progress event with "remote"), is not sent again by
# `weft resume`: the new attempt asks GetTask for that task until it
# ends.  Against agents built with @a2a-js/sdk (tests/interop/a2a_agent.mjs)
# that answer with a working task and complete it once a file exists:
# v1.0 SendMessage, and a v0.3 stream.  (Without a recorded id the message
# is sent again with the same messageId: t_a2a_client.sh.)
. "$WEFT_SRCDIR/tests/integration/lib.sh"
. "$WEFT_SRCDIR/tests/interop/lib_a2a.sh"

# The remote task id recorded for run $RUN's exchange, in TASK.
recorded_task() {
	TASK=$(sql "SELECT json_extract(payload, '\$.remote.task') FROM events
	    WHERE run_id = '$RUN' AND kind = 'tool.progress'
	    AND json_extract(payload, '\$.remote.task') IS NOT NULL LIMIT 1" 2>/dev/null)
	[ -n "$TASK" ]
}

# A GetTask (tasks/get) for $TASK from another attempt than the first
# ($TP1: the traceparent of the first attempt's requests).
resumed_get() {
	grep -E '"rpc":"(GetTask|tasks/get)"' "$LOG" | grep -F "\"id\":\"$TASK\"" |
	    grep -qvF "$TP1"
}

newest_run() {
	RUN=$(last_run 2>/dev/null)
	[ -n "$RUN" ] && [ "$RUN" != "$PREV" ]
}

# case NAME PORT PROTOCOL SEND-METHOD: kill -9 once the task id is
# recorded, resume, release the task.
resume_case() {
	_n=$1 _port=$2 _pv=$3 _send=$4
	LOG="$T/$_n.log"
	cat > "$T/$_n.lua" <<LUA
local w = require "weft"
return w.sequential{ name = "main",
  w.remote{ name = "peer", agent = "http://127.0.0.1:$_port", input = "later $T/$_n.release", output_key = "answer" },
}
LUA
	PREV=$(last_run 2>/dev/null)
	"$WEFT" run "$T/$_n.lua" --input '{}' >"$T/$_n.run" 2>&1 &
	HPID=$!
	wait_until "the run of $_n started" newest_run
	# Recorded in the store while the exchange goes on.
	wait_until "the remote task id of $_n is recorded" recorded_task
	[ "$(sql "SELECT json_extract(payload, '\$.remote.protocol') FROM events WHERE run_id = '$RUN' AND kind = 'tool.progress' AND json_extract(payload, '\$.remote.task') = '$TASK'" | head -1)" = "$_pv" ] ||
		fail "$_n: the recorded task names its protocol $_pv"
	kill -9 "$HPID"
	wait "$HPID" 2>/dev/null
	grep -q "\"rpc\":\"$_send\"" "$LOG" || fail "$_n: the message was sent with $_send"
	TP1=$(grep "\"rpc\":\"$_send\"" "$LOG" | sed 's/.*"traceparent":"\([^"]*\)".*/\1/')
	[ -n "$TP1" ] || fail "$_n: the send carries a traceparent"
	"$WEFT" resume "$RUN" >"$T/$_n.out" 2>"$T/$_n.err" &
	RPID=$!
	wait_until "$_n: the resume asks GetTask for task $TASK" resumed_get
	touch "$T/$_n.release"
	RC=0
	wait "$RPID" || RC=$?
	[ "$RC" -eq 0 ] || { cat "$T/$_n.out" "$T/$_n.err" >&2; fail "$_n: resume: exit status $RC"; }
	expect_grep "$T/$_n.out" 'later: done' "$_n: the resumed run's output is the task's artifact"
	[ "$(grep -c '"text":"later ' "$LOG")" = 1 ] ||
		fail "$_n: the agent received the message once ($(grep -c '"text":"later ' "$LOG") times)"
	[ "$(grep -c "\"rpc\":\"$_send\"" "$LOG")" = 1 ] ||
		fail "$_n: one $_send in all"
	[ "$(sql "SELECT json_extract(payload, '\$.result.task.id') FROM events WHERE run_id = '$RUN' AND kind = 'tool.result' AND json_extract(payload, '\$.result.messageId') IS NOT NULL")" = "$TASK" ] ||
		fail "$_n: the recorded answer is that task's"
}

start_agent plain --no-stream
resume_case plain "$P_plain" 1.0 SendMessage
ok "v1.0 SendMessage answered working: kill -9, resume asks GetTask for the recorded task; the message is sent once"

start_agent old --v03
resume_case old "$P_old" 0.3 message/stream
ok "v0.3 stream: kill -9, resume asks tasks/get for the recorded task; the message is sent once"

# An offline replay of the resumed run answers from the record.
run_weft "$T/out" "$T/err" replay "$RUN"
expect_rc 0 "replay of the resumed run"
expect_grep "$T/out" 'identical' "the resumed run replays identically"
ok "the resumed run replays offline from its record"

for p in $PIDS; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
PIDS=
expect_no_orphans
