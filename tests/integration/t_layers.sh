#!/bin/sh
# The layering rule (DESIGN.md section 12, docs/architecture.md): layers
# point down only.  runtime/ and protocols/ include nothing from engine/,
# lua/ or workers/; workers/ includes from engine/ only token verification
# (captoken.h); only the CLI commands (engine/cmd_*.c, and engine/exec.[ch],
# the run lifecycle they share) and main.c include lua/.  Fails naming each
# include that points up.
: "${WEFT_SRCDIR:?run through make check}"
cd "$WEFT_SRCDIR" || exit 1
up() {	# up FILE LINE: report one upward include
	echo "FAIL: $1 includes $2 (an upward include; docs/architecture.md)"
}
for f in runtime/*.[ch] protocols/*.[ch]; do
	grep -n '^#include "\(engine\|lua\|workers\)/' "$f" | while IFS= read -r l; do
		up "$f" "$l"; done
done | tee "${TMPDIR:-/tmp}/weft-layers.$$"
for f in workers/*.[ch]; do
	grep -n '^#include "\(engine\|lua\)/' "$f" |
	    grep -v '"engine/captoken.h"' | while IFS= read -r l; do
		up "$f" "$l"; done
done | tee -a "${TMPDIR:-/tmp}/weft-layers.$$"
for f in engine/*.[ch]; do
	case "$f" in engine/cmd_*.c|engine/exec.[ch]|engine/main.c) continue ;; esac
	grep -n '^#include "lua/' "$f" | while IFS= read -r l; do
		up "$f" "$l"; done
done | tee -a "${TMPDIR:-/tmp}/weft-layers.$$"
n=$(grep -c . "${TMPDIR:-/tmp}/weft-layers.$$")
rm -f "${TMPDIR:-/tmp}/weft-layers.$$"
[ "$n" -eq 0 ] || { echo "$n upward includes"; exit 1; }
echo "ok - every include points down"
