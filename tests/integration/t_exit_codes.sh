#!/bin/sh
# t_exit_codes.sh: the exit statuses are defined once (enum weft_exit in
# engine/cmd.h), and README.md, `weft --help` and `weft run --help` list
# each of them; no other file defines an exit status of its own.
. "$WEFT_SRCDIR/tests/integration/lib.sh"

H="$WEFT_SRCDIR/engine/cmd.h"
sed -n 's/^[[:space:]]*WEFT_EXIT_[A-Z]* = \([0-9]*\),\{0,1\}.*/\1/p' "$H" \
    >"$T/codes"
[ "$(wc -l <"$T/codes")" -ge 7 ] || fail "enum weft_exit not found in $H"

# The README's "Exit status:" paragraph, up to its blank line.
sed -n '/^Exit status: 0 success/,/^$/p' "$WEFT_SRCDIR/README.md" \
    | tr '\n' ' ' >"$T/readme"
[ -s "$T/readme" ] || fail "README.md has no 'Exit status:' paragraph"
run_weft "$T/help" "$T/err" --help
expect_rc 0 "weft --help"
run_weft "$T/runhelp" "$T/err" run --help
expect_rc 0 "weft run --help"
tr '\n' ' ' <"$T/help" | sed -n 's/.*exit status: //p' >"$T/top"
tr '\n' ' ' <"$T/runhelp" | sed -n 's/.*exit status: //p' >"$T/run"
for f in readme top run; do
	[ -s "$T/$f" ] || fail "$f: no exit status list"
	while read -r n; do
		grep -Eq "(^| |\()$n( |,|\))" "$T/$f" ||
		    fail "$f: exit status $n (engine/cmd.h) is not listed"
	done <"$T/codes"
	# ... and nothing that the enum does not define.
	for n in $(grep -Eo '(^|, |\( ?)[0-9]+ [a-z]' "$T/$f" |
	    grep -Eo '[0-9]+'); do
		grep -qx "$n" "$T/codes" ||
		    fail "$f: lists exit status $n, not in engine/cmd.h"
	done
done
ok "README, weft --help and weft run --help list the statuses of cmd.h"

# Defined once: no other exit-status constant in the sources.
if grep -rnE '#define [A-Z_]*EXIT[A-Z_]*[[:space:]]+[0-9]' \
    "$WEFT_SRCDIR/engine" "$WEFT_SRCDIR/runtime" "$WEFT_SRCDIR/workers" \
    >"$T/defs"; then
	cat "$T/defs" >&2
	fail "an exit status defined outside enum weft_exit"
fi
ok "no exit status defined outside engine/cmd.h"

run_weft "$T/out" "$T/err" no-such-command
expect_rc 2 "an unknown command (WEFT_EXIT_USAGE)"
ok "an unknown command exits 2"
