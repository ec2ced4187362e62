#!/bin/sh
# The sandbox of MCP servers: a hostile server (tests/helpers/hostile_server.c)
# tries to read and write outside its dirs, reach the network and unix
# sockets, ptrace and signal the worker, make privileged calls, exhaust
# memory, CPU and processes.  Every attempt must fail, and the same
# attempts without a sandbox must succeed (so a pass means something).
# The restricted server also runs as an unprivileged uid: CI runs as root.
# A layer this kernel lacks skips its assertions, loudly.
. "$(dirname "$0")/lib.sh"

: "${WEFT_HOSTILE:?run through make check}"
[ -x "$WEFT_HOSTILE" ] || { echo "SKIP: $WEFT_HOSTILE not built" >&2; exit 77; }
command -v python3 >/dev/null 2>&1 || { echo "SKIP: needs python3" >&2; exit 77; }

# What this kernel provides, per weft doctor.
run_weft "$T/doctor" "$T/err" doctor
expect_rc 0 "weft doctor"
expect_grep "$T/doctor" '^  landlock +(yes|NO) ' "doctor reports landlock"
expect_grep "$T/doctor" '^  seccomp +(yes|NO) ' "doctor reports seccomp"
expect_grep "$T/doctor" '^  userns +(yes|NO) ' "doctor reports user namespaces"
run_weft "$T/doctor.json" "$T/err" doctor --json
expect_rc 0 "weft doctor --json"
python3 - "$T/doctor.json" > "$T/layers" <<'PY' || fail "doctor --json"
import json, sys
d = json.load(open(sys.argv[1]))
print(" ".join(k for k, v in d["layers"].items() if v["available"]))
PY
run_weft "$T/out" "$T/err" doctor --help
expect_rc 0 "weft doctor --help"
expect_grep "$T/out" '^usage: weft doctor \[--json\]' "doctor usage"
ok "weft doctor: $(cat "$T/layers")"
for l in landlock seccomp userns; do
	grep -qw "$l" "$T/layers" ||
	    echo "WARNING: this kernel lacks $l: its assertions below are SKIPPED" >&2
done
if ! grep -qw landlock "$T/layers" && ! grep -qw seccomp "$T/layers" &&
    ! grep -qw userns "$T/layers"; then
	echo "SKIP: no sandbox layer (Landlock, seccomp, user namespaces) is available" >&2
	exit 77
fi

# Bad profiles are refused with file:line.
bad() {	# bad NAME SANDBOX REGEX
	printf 'local w = require "weft"\nw.mcp_server{ name = "h", command = { "%s" },\n  sandbox = %s }\nreturn w.tool{ name = "t", server = "h", tool = "env" }\n' \
	    "$WEFT_HOSTILE" "$2" > "$T/$1.lua"
	run_weft "$T/out" "$T/err" validate "$T/$1.lua"
	expect_rc 2 "profile $1"
	expect_grep "$T/err" "^weft: $T/$1.lua:2: $3" "profile $1 message"
}
bad field '{ memroy = "1G" }' "unknown field 'memroy' in mcp_server 'h': sandbox \(did you mean 'memory'\?\)$"
bad size '{ memory = "lots" }' "mcp_server 'h': sandbox.memory must be a positive integer of bytes, a size such as \"512M\" or \"4G\", or false, got 'lots'$"
bad cpu '{ cpu = -1 }' "mcp_server 'h': sandbox.cpu must be a positive integer or false, got -1$"
bad layer '{ require = { "landlok" } }' "mcp_server 'h': sandbox.require\[1\]: 'landlok' is not a layer that can be required \(did you mean 'landlock'\?\)$"
bad both '{ require = { "seccomp" }, disable = { "seccomp" } }' "mcp_server 'h': sandbox: layer 'seccomp' is both required and disabled$"
bad net '{ network = true, require = { "netns" } }' "mcp_server 'h': sandbox: 'netns' cannot be required with network = true$"
bad type '"strict"' "mcp_server 'h': sandbox must be a table or false$"
bad disable '{ disable = { "rlimits" } }' "mcp_server 'h': sandbox.disable\[1\]: 'rlimits' is not a layer that can be disabled"
ok "bad sandbox profiles are refused with file:line"

# A TCP and a unix socket listener the server must not reach.
python3 - "$T/port" "$T/sock" <<'PY' &
import os, select, socket, sys
t = socket.socket(); t.bind(("127.0.0.1", 0)); t.listen(64)
u = socket.socket(socket.AF_UNIX); u.bind(sys.argv[2]); u.listen(64)
os.chmod(sys.argv[2], 0o777)
open(sys.argv[1] + ".tmp", "w").write(str(t.getsockname()[1]))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
while True:
    for s in select.select([t, u], [], [], 60)[0]:
        s.accept()[0].close()
PY
LPID=$!
trap 'rc=$?; kill $LPID 2>/dev/null; (exit $rc); cleanup' EXIT
i=0
while [ ! -s "$T/port" ]; do
	i=$((i + 1)); [ $i -lt 100 ] || fail "listener did not start"; sleep 0.05
done
PORT=$(cat "$T/port")

# hostile_wf FILE DIR SANDBOX CALLS: a workflow making each call in turn
# (name, tool, args) and returning every outcome as one JSON object.
hostile_wf() {
	cat > "$1" <<EOF2
local w = require "weft"
local calls = {
$4
}
w.mcp_server{ name = "h", command = { "$WEFT_HOSTILE" }, sandbox = $3 }
local seq = { name = "s" }
for _, c in ipairs(calls) do
  seq[#seq + 1] = w.tool{ name = c[1], server = "h", tool = c[2], args = c[3] or {}, output_key = c[1] }
end
seq[#seq + 1] = w.fn{ name = "out", function(ctx)
  local r = {}
  for _, c in ipairs(calls) do r[c[1]] = ctx.state[c[1]] end
  return r
end }
return w.sequential(seq)
EOF2
}

# The attempts, made from directory D (secret.txt and sock are there).
attempts() {	# attempts D
	cat <<EOF2
  { "read_secret", "read", { path = "$1/secret.txt" } },
  { "read_shadow", "read", { path = "/etc/shadow" } },
  { "read_worker_environ", "read", { path = "/proc/parent/environ" } },
  { "write_outside", "write", { path = "$1/outside.txt" } },
  { "write_scratch", "write", { path = "inside.txt", text = "mine" } },
  { "exec_scratch", "exec_copy" },
  { "tcp", "connect", { host = "127.0.0.1", port = $PORT } },
  { "unix", "unix_connect", { path = "$T/sock" } },
  { "traceme", "ptrace", { mode = "traceme" } },
  { "attach_worker", "ptrace", { mode = "attach" } },
  { "signal_worker", "kill_parent" },
  { "sys_mount", "syscall", { name = "mount" } },
  { "sys_unshare", "syscall", { name = "unshare" } },
  { "sys_clone_newuser", "syscall", { name = "clone_newuser" } },
  { "sys_keyctl", "syscall", { name = "keyctl" } },
  { "sys_bpf", "syscall", { name = "bpf" } },
  { "sys_perf_event_open", "syscall", { name = "perf_event_open" } },
  { "sys_userfaultfd", "syscall", { name = "userfaultfd" } },
  { "sys_io_uring_setup", "syscall", { name = "io_uring_setup" } },
  { "sys_init_module", "syscall", { name = "init_module" } },
  { "fds", "fds" },
  { "env", "env" },
EOF2
}

# check OUT LAYERS EXPECT...: each EXPECT is key=ok, key=ok? (should
# succeed; if the environment refuses it anyway, say so), key=ERRNO@layer
# (skipped loudly when the layer is missing), or key=!ERRNO (anything but).
check() {
	python3 - "$@" <<'PY'
import json, sys
out, layers = json.load(open(sys.argv[1])), sys.argv[2].split()
bad = 0
for e in sys.argv[3:]:
    key, want = e.split("=", 1)
    r = out.get(key)
    if r is None:
        print("FAIL: no outcome for %s" % key); bad += 1; continue
    if want == "ok":
        if not r["ok"]:
            print("FAIL: %s should succeed, got %s" % (key, r)); bad += 1
        continue
    if want == "ok?":
        if not r["ok"]:
            print("NOTE: %s fails here even without a sandbox (%s): its refusal "
                  "under the sandbox proves less" % (key, r["errno"]))
        continue
    if want.startswith("!"):
        if r["errno"] == want[1:]:
            print("FAIL: %s: got %s" % (key, r)); bad += 1
        continue
    errno, layer = want.split("@")
    if layer not in layers:
        print("SKIP: %s: this kernel lacks %s (got %s)" % (key, layer, r["errno"]))
        continue
    if r["ok"] or r["errno"] != errno:
        print("FAIL: %s should fail with %s (%s), got %s" % (key, errno, layer, r)); bad += 1
    else:
        print("  %-22s %-7s by %s" % (key, errno, layer))
sys.exit(1 if bad else 0)
PY
}

# Which layer stops TCP first: Landlock, else the empty network namespace,
# else seccomp.
if grep -qw landlock_net "$T/layers"; then TCP=EACCES@landlock_net
elif grep -qw netns "$T/layers"; then TCP=ENETUNREACH@netns
else TCP=EPERM@seccomp; fi
mkdir -p "$T/tmp"
echo "the worker's secret" > "$T/secret.txt"
hostile_wf "$T/hostile.lua" "$T" '{ memory = "256M", cpu = 20, processes = 64 }' \
    "$(attempts "$T")
  { \"alloc\", \"alloc\", { mb = 1024 } },"
(cd "$T" && USER=tester TMPDIR="$T/tmp" "$WEFT" run hostile.lua --workers 1 -q \
    > "$T/out" 2> "$T/err") || { cat "$T/err" >&2; fail "hostile run"; }
LAYERS=$(cat "$T/layers")
check "$T/out" "$LAYERS" \
    read_secret=EACCES@landlock read_shadow=EACCES@landlock \
    read_worker_environ=EACCES@landlock write_outside=EACCES@landlock \
    write_scratch=ok exec_scratch=EACCES@landlock "tcp=$TCP" \
    unix=EPERM@seccomp traceme=EPERM@seccomp attach_worker=EPERM@seccomp \
    signal_worker=EPERM@landlock_scope sys_mount=EPERM@seccomp \
    sys_unshare=EPERM@seccomp sys_clone_newuser=EPERM@seccomp \
    sys_keyctl=EPERM@seccomp sys_bpf=EPERM@seccomp \
    sys_perf_event_open=EPERM@seccomp sys_userfaultfd=EPERM@seccomp \
    sys_io_uring_setup=EPERM@seccomp sys_init_module=EPERM@seccomp \
    fds=ok alloc=ENOMEM@rlimits || fail "hostile attempts (as root)"
[ ! -e "$T/outside.txt" ] || fail "the server wrote outside its scratch dir"
python3 - "$T/out" <<'PY' || fail "environment and scratch dir"
import json, os, sys
r = json.load(open(sys.argv[1]))
env, cwd = r["env"]["env"], r["env"]["cwd"]
assert set(env) <= {"PATH", "HOME", "LANG", "TERM", "WEFT_SCRATCH", "TMPDIR"}, sorted(env)
assert "USER" not in env and "PATH" in env, sorted(env)
assert env["WEFT_SCRATCH"] == cwd == env["TMPDIR"], (env, cwd)
assert r["alloc"]["allocated_mb"] < 256, r["alloc"]
PY
ok "every hostile attempt failed; writing the scratch dir worked"

id=$(last_run)
sql "SELECT payload FROM events WHERE run_id='$id' AND kind='tool.list.result'" > "$T/list"
python3 - "$T/list" "$LAYERS" <<'PY' || fail "the enforced layers are recorded"
import json, sys
p = json.loads(open(sys.argv[1]).read())
sb = p["result"]["_meta"]["weft/sandbox"]
want = set(sys.argv[2].split())
assert set(sb["enforced"]) == want, (sb["enforced"], want)
assert sb["missing"] == {}, sb["missing"]
assert sb["limits"]["memory"] == 256 << 20 and sb["limits"]["cpu"] == 20, sb
assert sb["network"] is False
PY
[ "$(sql "SELECT count(*) FROM events WHERE run_id='$id' AND kind='tool.result' AND json_extract(payload,'\$.result.structuredContent.errno')='EACCES'")" -ge 5 ] ||
    fail "the refused attempts are recorded"
[ "$(sql "SELECT count(*) FROM events WHERE run_id='$id' AND kind='worker.exit'")" = 0 ] ||
    fail "the worker survived"
[ -z "$(ls -A "$T/tmp")" ] || { ls -lR "$T/tmp" >&2; fail "scratch dirs removed at exit"; }
ok "the run records the layers in force and every refusal; scratch removed"

# The same attempts without a sandbox succeed: the refusals above are the
# sandbox's doing, not the environment's.
hostile_wf "$T/open.lua" "$T" false "$(attempts "$T" | grep -v -e shadow -e attach -e init_module)"
(cd "$T" && TMPDIR="$T/tmp" "$WEFT" run open.lua --workers 1 -q > "$T/out" 2> "$T/err") ||
    { cat "$T/err" >&2; fail "unsandboxed run"; }
if [ "$(id -u)" = 0 ]; then MOUNT=!EPERM; else MOUNT=!NONE; fi
check "$T/out" "$LAYERS" read_secret=ok read_worker_environ=ok write_outside=ok \
    exec_scratch=ok tcp=ok unix=ok traceme=ok? signal_worker=ok \
    sys_mount=$MOUNT sys_keyctl=ok? sys_unshare=ok? sys_userfaultfd=ok? fds=ok ||
    fail "control run without a sandbox"
rm -f "$T/outside.txt" "$T/copied"
id=$(last_run)
[ "$(sql "SELECT json_extract(payload,'\$.result._meta.weft/sandbox.disabled') FROM events WHERE run_id='$id' AND kind='tool.list.result'")" = 1 ] ||
    fail "sandbox = false is recorded"
[ "$(sql "SELECT count(*) FROM events WHERE run_id='$id' AND kind='worker.sandbox'")" = 1 ] &&
[ "$(sql "SELECT count(*) FROM events WHERE run_id='$id' AND kind='worker.sandbox' AND payload LIKE '%seccomp%'")" = 0 ] ||
    fail "with a server unconfined, the worker leaves seccomp out of its own layers"
ok "without a sandbox the same attempts succeed"

# The worker confines itself too: no_new_privs, no core dumps, a seccomp
# deny list that its servers inherit.  A server whose own seccomp layer is
# disabled still cannot make the calls the worker's filter denies.
hostile_wf "$T/self.lua" "$T" '{ disable = { "seccomp" } }' '  { "sys_keyctl", "syscall", { name = "keyctl" } },
  { "sys_bpf", "syscall", { name = "bpf" } },
  { "sys_perf_event_open", "syscall", { name = "perf_event_open" } },'
(cd "$T" && TMPDIR="$T/tmp" "$WEFT" run self.lua --workers 1 -q > "$T/out" 2> "$T/err") ||
    { cat "$T/err" >&2; fail "run with the server's seccomp disabled"; }
id=$(last_run)
[ "$(sql "SELECT json_extract(payload,'\$.sandbox.enforced') FROM events WHERE run_id='$id' AND kind='worker.sandbox'")" = '["rlimits","no_new_privs","seccomp"]' ] ||
    fail "worker.sandbox records the worker's layers: $(sql "SELECT payload FROM events WHERE run_id='$id' AND kind='worker.sandbox'")"
sql "SELECT json_extract(payload,'\$.result._meta.weft/sandbox.enforced') FROM events WHERE run_id='$id' AND kind='tool.list.result'" > "$T/srv"
expect_no_grep "$T/srv" seccomp "the server's own seccomp layer is off"
check "$T/out" "seccomp" sys_keyctl=EPERM@seccomp sys_bpf=EPERM@seccomp sys_perf_event_open=EPERM@seccomp ||
    fail "the worker's filter, inherited, denies them"
ok "the worker confines itself (no_new_privs, core 0, seccomp): its filter holds for a server without its own"

# read and write grant what they name, and nothing beside it.
mkdir -p "$T/pub" "$T/wdir"
echo public > "$T/pub/notes.txt"
hostile_wf "$T/grant.lua" "$T" "{ read = { \"$T/pub\" }, write = { \"$T/wdir\" } }" "
  { \"read_granted\", \"read\", { path = \"$T/pub/notes.txt\" } },
  { \"write_granted\", \"write\", { path = \"$T/wdir/result.txt\" } },
  { \"write_read_only\", \"write\", { path = \"$T/pub/notes.txt\" } },
  { \"read_beside\", \"read\", { path = \"$T/secret.txt\" } },"
(cd "$T" && TMPDIR="$T/tmp" "$WEFT" run grant.lua --workers 1 -q > "$T/out.json" 2> "$T/err") ||
    { cat "$T/err" >&2; fail "run with read and write grants"; }
check "$T/out.json" "$LAYERS" read_granted=ok write_granted=ok \
    write_read_only=EACCES@landlock read_beside=EACCES@landlock || fail "read and write grants"
[ "$(cat "$T/wdir/result.txt")" = pwned ] || fail "the granted write landed"
[ "$(cat "$T/pub/notes.txt")" = public ] || fail "the read-only file is intact"
hostile_wf "$T/nopath.lua" "$T" '{ read = { "/nonexistent-weft-dir" } }' '  { "env", "env" },'
run_weft "$T/out" "$T/err" run "$T/nopath.lua" --workers 1 -q
expect_rc 1 "a read path that does not exist"
expect_grep "$T/err" "MCP server 'h': sandbox: path '/nonexistent-weft-dir': No such file or directory$" "missing path named"
ok "read and write grant exactly what they name; a missing path is an error"

# Each network layer on its own: Landlock (EACCES), the empty network
# namespace (ENETUNREACH), seccomp when neither is there (EPERM).
net() {	# net SANDBOX EXPECT
	hostile_wf "$T/net.lua" "$T" "$1" "  { \"tcp\", \"connect\", { host = \"127.0.0.1\", port = $PORT } },"
	(cd "$T" && TMPDIR="$T/tmp" "$WEFT" run net.lua --workers 1 -q > "$T/out" 2> "$T/err") ||
	    { cat "$T/err" >&2; fail "network run $1"; }
	check "$T/out" "$LAYERS" "tcp=$2" || fail "network: $1"
}
net '{ disable = { "landlock_net", "seccomp" } }' ENETUNREACH@netns
net '{ disable = { "landlock_net", "userns", "netns" } }' EPERM@seccomp
net '{ network = true }' ok
ok "network denied by each layer alone; granted with network = true"

# CPU: the server dies of SIGXCPU; the worker says why, survives, and the
# next call to the server starts a fresh one (branch b, after a sleep).
cat > "$T/cpu.lua" <<EOF2
local w = require "weft"
w.mcp_server{ name = "victim", command = { "$WEFT_HOSTILE" }, sandbox = { cpu = 1 } }
w.mcp_server{ name = "t", command = { "$WEFT_TESTSERVER" } }
return w.parallel{ name = "p",
  w.tool{ name = "spin", server = "victim", tool = "spin", args = { seconds = 30 } },
  w.sequential{ name = "b",
    w.tool{ name = "wait", server = "t", tool = "sleep", args = { ms = 2500 } },
    w.tool{ name = "again", server = "victim", tool = "env", output_key = "again" } } }
EOF2
(cd "$T" && TMPDIR="$T/tmp" "$WEFT" run cpu.lua --workers 1 -q > "$T/out" 2> "$T/err") && fail "cpu run should fail"
expect_grep "$T/err" "tool 'spin': MCP server 'victim' killed by signal 24 \(CPU time limit exceeded\) during the call \(the sandbox's CPU limit is 1 s; the next call starts a fresh server\)" "CPU limit message"
id=$(last_run)
[ "$(sql "SELECT count(*) FROM events WHERE run_id='$id' AND kind='worker.exit'")" = 0 ] ||
    fail "the worker survived the server's death"
sql "SELECT payload FROM events WHERE run_id='$id' AND kind='tool.result' AND node_path='p/b/again'" > "$T/again"
python3 - "$T/again" <<'PY' || fail "a fresh server answered the next call"
import json, sys
p = json.loads(open(sys.argv[1]).read())
assert p["result"]["structuredContent"]["ok"] is True, p
assert "weft/sandbox" in p["result"]["_meta"], p   # a new start is reported
PY
ok "CPU limit: server killed, clear error, worker survived, server restarted"

# File size: writing past file_size kills the server with SIGXFSZ.
hostile_wf "$T/fsize.lua" "$T" '{ file_size = 65536 }' '  { "big", "write", { path = "big.txt", text = string.rep("x", 100000) } },'
run_weft "$T/out" "$T/err" run "$T/fsize.lua" --workers 1 -q
expect_rc 1 "writing past the file size limit"
expect_grep "$T/err" "MCP server 'h' killed by signal 25 \(File size limit exceeded\) during the call \(the sandbox's file size limit is 65536 bytes\)" "file size limit message"
ok "file size limit: server killed with a clear error"

# Debug mode: a denied call is named on stderr and in the trajectory.
hostile_wf "$T/debug.lua" "$T" '{ debug = true }' '
  { "traceme", "ptrace", { mode = "traceme" } },
  { "unix", "unix_connect", { path = "'"$T"'/sock" } },
  { "sys_mount", "syscall", { name = "mount" } },'
(cd "$T" && TMPDIR="$T/tmp" "$WEFT" run debug.lua --workers 1 -q > "$T/out" 2> "$T/err") ||
    { cat "$T/err" >&2; fail "debug run"; }
if grep -qw seccomp "$T/layers"; then
	check "$T/out" "$LAYERS" traceme=EPERM@seccomp unix=EPERM@seccomp sys_mount=EPERM@seccomp ||
	    fail "debug mode still denies"
	expect_grep "$T/err" "^weft: sandbox debug: MCP server 'h' \(pid [0-9]+\) called ptrace: denied with EPERM$" "debug names ptrace"
	expect_grep "$T/err" "called socket\(AF_UNIX\): denied with EPERM$" "debug names socket(AF_UNIX)"
	expect_grep "$T/err" "called mount: denied with EPERM$" "debug names mount"
	id=$(last_run)
	[ "$(sql "SELECT json_extract(payload,'\$.result._meta.weft/sandbox.denied') FROM events WHERE run_id='$id' AND kind='tool.result' AND node_path='s/sys_mount'")" = '["ptrace","socket(AF_UNIX)","mount"]' ] ||
	    fail "denied calls recorded"
	ok "debug mode names each denied call on stderr and in the trajectory"
else
	echo "SKIP: no seccomp: debug mode untested" >&2
fi

# As an unprivileged user: the fork bomb is bounded by RLIMIT_NPROC (which
# root ignores), and the attempts fail although DAC would allow them.
if ! command -v setpriv >/dev/null 2>&1; then
	echo "SKIP: setpriv (util-linux) missing: nothing tested as a non-root uid" >&2
elif [ "$(id -u)" != 0 ]; then
	U="$T"
	echo "note: already running as uid $(id -u)"
	NOBODY=""
else
	U="$T/nobody"
	mkdir -p "$U/tmp"
	echo "nobody's secret" > "$U/secret.txt"
	chown -R nobody "$U"
	chmod 755 "$T"
	NOBODY="setpriv --reuid=nobody --regid=nogroup --clear-groups"
	if ! $NOBODY test -x "$WEFT" || ! $NOBODY test -x "$WEFT_HOSTILE"; then
		echo "SKIP: nobody cannot execute $WEFT: nothing tested as a non-root uid" >&2
		U=""
	fi
fi
if [ -n "${U:-}" ]; then
	$NOBODY env HOME="$U" "$WEFT" doctor --json > "$T/doctor2.json" 2>&1 ||
	    fail "doctor as nobody"
	python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(' '.join(k for k,v in d['layers'].items() if v['available']))" \
	    "$T/doctor2.json" > "$T/layers2"
	hostile_wf "$U/hostile.lua" "$U" '{ memory = "256M", processes = 32 }' \
	    "$(attempts "$U" | grep -v -e shadow -e unix)
  { \"fork_bomb\", \"fork_bomb\", { max = 2000 } },"
	(cd "$U" && $NOBODY env HOME="$U" TMPDIR="$U/tmp" WEFT_DB="$U/weft.db" \
	    WEFT_STATE_DIR="$U/state" \
	    "$WEFT" run hostile.lua --workers 1 -q > "$T/out" 2> "$T/err") ||
	    { cat "$T/err" >&2; fail "hostile run as nobody"; }
	check "$T/out" "$(cat "$T/layers2")" \
	    read_secret=EACCES@landlock read_worker_environ=EACCES@landlock \
	    write_outside=EACCES@landlock write_scratch=ok \
	    exec_scratch=EACCES@landlock "tcp=$TCP" \
	    traceme=EPERM@seccomp attach_worker=EPERM@seccomp \
	    signal_worker=EPERM@landlock_scope sys_mount=EPERM@seccomp \
	    sys_unshare=EPERM@seccomp sys_keyctl=EPERM@seccomp \
	    sys_userfaultfd=EPERM@seccomp fds=ok fork_bomb=EAGAIN@rlimits ||
	    fail "hostile attempts as nobody"
	python3 -c "import json,sys; r=json.load(open(sys.argv[1]))['fork_bomb']; assert r['forked'] < 32, r" "$T/out" ||
	    fail "fork bomb bounded by processes = 32"
	[ ! -e "$U/outside.txt" ] || fail "nobody's server wrote outside its scratch dir"
	[ -z "$(ls -A "$U/tmp")" ] || fail "scratch dirs removed at exit (nobody)"
	ok "as nobody: every attempt failed, the fork bomb stopped at $(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['fork_bomb']['forked'])" "$T/out") processes"
fi
if [ "$(id -u)" = 0 ]; then
	echo "note: as root the fork bomb is not tested (RLIMIT_NPROC does not bind root)"
fi

# A layer the kernel refuses: user namespaces exhausted (inside a user
# namespace of our own, where we may set the limit to 0).  The server runs
# without it and says so loudly; require = { "userns" } makes it an error.
if grep -qw userns "$T/layers" && command -v unshare >/dev/null 2>&1 &&
    unshare --user --map-root-user true 2>/dev/null; then
	hostile_wf "$T/nouserns.lua" "$T" '{}' '  { "env", "env" },'
	hostile_wf "$T/requserns.lua" "$T" '{ require = { "userns" } }' '  { "env", "env" },'
	cat > "$T/nons.sh" <<EOF2
echo 0 > /proc/sys/user/max_user_namespaces || exit 3
cd "$T" && TMPDIR="$T/tmp" "$WEFT" run "\$1" --workers 1 -q
EOF2
	RC=0
	unshare --user --map-root-user sh "$T/nons.sh" nouserns.lua > "$T/out" 2> "$T/err" || RC=$?
	expect_rc 0 "run without user namespaces"
	expect_grep "$T/err" "^weft: warning: MCP server 'h' runs without these sandbox layers: userns \(unshare\(CLONE_NEWUSER\): No space left on device\)" "missing layer warning"
	RC=0
	unshare --user --map-root-user sh "$T/nons.sh" requserns.lua > "$T/out" 2> "$T/err" || RC=$?
	expect_rc 1 "required layer missing"
	expect_grep "$T/err" "MCP server 'h': sandbox: userns: unshare\(CLONE_NEWUSER\): No space left on device$" "required layer error"
	ok "a missing layer is a loud warning; a required one an error"
else
	echo "SKIP: cannot take user namespaces away here: missing-layer handling untested" >&2
fi

kill $LPID 2>/dev/null
wait $LPID 2>/dev/null
expect_no_orphans
