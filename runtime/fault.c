/* fault.c: fault-injection points named by $WEFT_FAULT (fault.h). */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/fault.h"
#include "runtime/util.h"

#define FAULT_MAX	16

static struct fault {
	char	*name;
	long	 nth;		/* 0: every pass */
	long	 passes;
} faults[FAULT_MAX];
static int nfaults = -1;	/* -1: $WEFT_FAULT not read yet */

static void
fault_load(void)
{
	const char *env = getenv("WEFT_FAULT");
	char *s, *tok, *save, *colon;

	nfaults = 0;
	if (env == NULL || *env == '\0')
		return;
	s = xstrdup(env);
	for (tok = strtok_r(s, ",", &save); tok != NULL && nfaults < FAULT_MAX;
	    tok = strtok_r(NULL, ",", &save)) {
		if ((colon = strchr(tok, ':')) != NULL)
			*colon++ = '\0';
		faults[nfaults].name = xstrdup(tok);
		faults[nfaults].nth = colon != NULL ? strtol(colon, NULL, 10) : 0;
		nfaults++;
	}
	free(s);
}

int
fault_hit(const char *point)
{
	int i;

	if (nfaults < 0)
		fault_load();
	for (i = 0; i < nfaults; i++) {
		if (strcmp(faults[i].name, point) != 0)
			continue;
		faults[i].passes++;
		return faults[i].nth == 0 || faults[i].passes == faults[i].nth;
	}
	return 0;
}

void
fault_crash(const char *point)
{
	char line[160];
	int n;

	if (!fault_hit(point))
		return;
	n = snprintf(line, sizeof line, "weft: WEFT_FAULT: crash at %s\n",
	    point);
	if (n > 0)
		(void)!write(STDERR_FILENO, line, (size_t)n < sizeof line ?
		    (size_t)n : sizeof line - 1);
	kill(getpid(), SIGKILL);
	_exit(137);
}
