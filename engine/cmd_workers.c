/*
 * cmd_workers.c: the options of remote workers, shared by `weft run` and
 * `weft serve` (cmd.h): a network listener, its certificate, the remote
 * slots and where their enrolments are written.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cmd.h"
#include "engine/coord.h"
#include "runtime/supervise.h"

const char cmd_remote_help[] =
"  --workers-listen URL  let workers on other machines join at\n"
"                      tls+tcp://ADDR:PORT (port 0: any free one, said on\n"
"                      stderr); plain tcp:// only on a loopback address\n"
"  --tls-cert FILE     the coordinator's certificate (PEM) for tls+tcp\n"
"  --tls-key FILE      its private key (PEM)\n"
"  --remote-workers N  remote worker slots, ids after the local workers'\n"
"  --enroll-dir DIR    where their enrolments go: DIR/worker-ID.enroll\n"
"                      (0600; copy one to the worker's machine), and\n"
"                      DIR/enrolled, the hashes that keep them valid\n"
"                      across restarts (docs/PROTOCOL.md)\n";

int
cmd_remote_opt(int ch, const char *arg, struct coord_opts *co)
{
	char *end;
	long n;

	switch (ch) {
	case CMD_OPT_LISTEN:
		co->listen = arg;
		return 1;
	case CMD_OPT_TLS_CERT:
		co->tls_cert = arg;
		return 1;
	case CMD_OPT_TLS_KEY:
		co->tls_key = arg;
		return 1;
	case CMD_OPT_ENROLL_DIR:
		co->enroll_dir = arg;
		return 1;
	case CMD_OPT_REMOTE:
		n = strtol(arg, &end, 10);
		if (*arg == '\0' || *end != '\0' || n < 1 || n > 256) {
			fprintf(stderr, "weft: --remote-workers must be "
			    "1..256\n");
			return -1;
		}
		co->remote = (int)n;
		return 1;
	}
	return 0;
}

int
cmd_remote_check(const struct coord_opts *co)
{
	char host[256], err[512];
	int tls;

	if (co->listen == NULL) {
		if (co->remote > 0 || co->enroll_dir != NULL ||
		    co->tls_cert != NULL || co->tls_key != NULL) {
			fprintf(stderr, "weft: --remote-workers, --enroll-dir, "
			    "--tls-cert and --tls-key go with --workers-listen "
			    "URL\n");
			return -1;
		}
		return 0;
	}
	if (sup_url_check(co->listen, &tls, host, sizeof host, err,
	    sizeof err) != 0) {
		fprintf(stderr, "weft: --workers-listen %s\n", err);
		return -1;
	}
	if (tls && (co->tls_cert == NULL || co->tls_key == NULL)) {
		fprintf(stderr, "weft: --workers-listen %s needs --tls-cert "
		    "FILE and --tls-key FILE\n", co->listen);
		return -1;
	}
	if (co->remote < 1 || co->enroll_dir == NULL) {
		fprintf(stderr, "weft: --workers-listen needs --remote-workers "
		    "N and --enroll-dir DIR (where the N enrolment files are "
		    "written)\n");
		return -1;
	}
	return 0;
}
