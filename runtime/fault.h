/*
 * fault.h: named fault-injection points for tests (docs/security.md,
 * "Testing the token checks"; the durability tests use the same switch).
 *
 * WEFT_FAULT holds a comma-separated list of points, each "name" (fires
 * every time the code passes it) or "name:N" (fires only the Nth time).
 * Unset, every check is one load and a compare.
 */
#ifndef WEFT_FAULT_H
#define WEFT_FAULT_H

/* Whether the fault named point fires now; counts the pass. */
int fault_hit(const char *point);

/*
 * A crash point: when point fires (fault_hit), the process kills itself
 * with SIGKILL at once (after a line on stderr naming the point), as a
 * power cut or an OOM kill would: no atexit, no flush, no cleanup.
 */
void fault_crash(const char *point);

#endif
