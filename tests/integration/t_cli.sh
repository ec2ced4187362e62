#!/bin/sh
# The command line: help, version, validate, graph, runs, show errors.
. "$(dirname "$0")/lib.sh"

run_weft "$T/out" "$T/err" --version
expect_rc 0 "--version"
expect_grep "$T/out" '^weft [0-9]+\.[0-9]+\.[0-9]+$' "--version prints the version"

run_weft "$T/out" "$T/err" --help
expect_rc 0 "--help"
for c in run show runs validate graph worker; do
	expect_grep "$T/out" "^  $c " "--help lists $c"
	run_weft "$T/out2" "$T/err2" "$c" --help
	[ "$RC" -eq 0 ] || fail "weft $c --help exits $RC"
	grep -q "^usage: weft $c" "$T/out2" || fail "weft $c --help prints usage"
done
ok "help for every command"

run_weft "$T/out" "$T/err" frobnicate
expect_rc 2 "unknown command"
expect_grep "$T/err" "unknown command 'frobnicate'" "unknown command message"

run_weft "$T/out" "$T/err"
expect_rc 2 "no command"

run_weft "$T/out" "$T/err" validate "$WEFT_SRCDIR/examples/quickstart.lua"
expect_rc 0 "validate quickstart"
expect_grep "$T/out" "quickstart.lua: ok" "validate says ok"

run_weft "$T/out" "$T/err" graph "$WEFT_SRCDIR/examples/quickstart.lua"
expect_rc 0 "graph"
expect_grep "$T/out" '^essay \[sequential\]' "graph root"
expect_grep "$T/out" '^  research \[parallel\]' "graph parallel"
expect_grep "$T/out" '^    facts \[agent\]  model=scripted tools=everything\{echo\}' "graph agent line"
expect_grep "$T/out" '^  refine \[loop\]  max_iterations=3' "graph loop"
expect_grep "$T/out" '^    critic \[agent\]  model=scripted tools=exit_loop' "graph exit_loop tool"
ok "graph text tree"

run_weft "$T/out" "$T/err" graph "$WEFT_SRCDIR/examples/quickstart.lua" --dot
expect_rc 0 "graph --dot"
expect_grep "$T/out" '^digraph weft \{' "dot header"
expect_grep "$T/out" 'label="critic \(agent\)' "dot node"
[ "$(grep -c -- '->' "$T/out")" -ge 9 ] || fail "dot has the edges"
tail -n 1 "$T/out" | grep -q '^}$' || fail "dot closes"
ok "graph --dot"

run_weft "$T/out" "$T/err" runs
expect_rc 0 "runs on an empty store"
expect_grep "$T/out" '^RUN +STATUS' "runs header"

run_weft "$T/out" "$T/err" show deadbeef
expect_rc 1 "show unknown run"
expect_grep "$T/err" "no run 'deadbeef'" "show names the missing run"

run_weft "$T/out" "$T/err" run
expect_rc 2 "run without a file"
expect_grep "$T/err" "which workflow" "run without a file says so"

run_weft "$T/out" "$T/err" run "$T/nope.lua"
expect_rc 2 "run a missing file"
expect_grep "$T/err" "cannot read workflow '.*nope.lua'" "missing workflow named"
ok "cli errors"
