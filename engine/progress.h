/*
 * progress.h: weft run's view of a run as it goes, on stderr
 * (engine/progress.c), fed by cmd_run.c's watcher with the events that
 * have committed: a status line redrawn in place on a terminal, one line
 * per event (plain), or a start and an end line (brief).
 */
#ifndef WEFT_PROGRESS_H
#define WEFT_PROGRESS_H

#include <stdio.h>

struct store_run;
struct store_event;

#define PROGRESS_NONE	0	/* nothing */
#define PROGRESS_AUTO	1	/* LIVE on a terminal, else BRIEF */
#define PROGRESS_LIVE	2	/* a status line redrawn in place */
#define PROGRESS_PLAIN	3	/* one line per event */
#define PROGRESS_BRIEF	4	/* a start line and an end line */

/* The mode named (auto, live, plain, brief, none), or -1. */
int		 progress_mode(const char *name);

struct progress;
/* A display on f in mode (AUTO is resolved here, by isatty). */
struct progress	*progress_new(int mode, FILE *f);
void		 progress_free(struct progress *);
/* The run has started: its id, at once. */
void		 progress_start(struct progress *, const struct store_run *);
/* One more event that committed, in seq order. */
void		 progress_event(struct progress *, const struct store_event *);
/* Redraw the status line (LIVE), e.g. for the elapsed time. */
void		 progress_tick(struct progress *);
/* Take the status line off the terminal before printing another line. */
void		 progress_clear(struct progress *);
/* The run has ended (its row as it now is): the end line. */
void		 progress_end(struct progress *, const struct store_run *);

#endif
