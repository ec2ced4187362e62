/*
 * worker.h: the `weft worker` process (workers/worker.c).
 */
#ifndef WEFT_WORKER_H
#define WEFT_WORKER_H

/* Run a worker with the arguments after "worker"; returns the exit code. */
int worker_main(int argc, char **argv);

#endif
