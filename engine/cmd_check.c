/* cmd_check.c: `weft validate` and `weft graph`: load a workflow, no run. */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "engine/cmd.h"
#include "runtime/util.h"
#include "lua/luaeng.h"

#define CHECK_LUA_MEM	(256u * 1024 * 1024)

/* Parse "CMD FILE [--dot]"; returns the file or NULL after printing usage. */
static const char *
check_args(int argc, char **argv, const char *usage, int *dot, int *rc)
{
	static const struct option longopts[] = {
		{ "dot", no_argument, NULL, 'D' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	int ch;

	optind = 1;
	*rc = WEFT_EXIT_USAGE;
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'D':
			if (dot == NULL)
				goto bad;
			*dot = 1;
			break;
		case 'h':
			fputs(usage, stdout);
			*rc = WEFT_EXIT_OK;
			return NULL;
		default:
			goto bad;
		}
	}
	if (optind == argc - 1)
		return argv[optind];
bad:
	fputs(usage, stderr);
	return NULL;
}

int
cmd_validate(int argc, char **argv)
{
	static const char usage[] =
"usage: weft validate WORKFLOW.lua\n"
"\n"
"Load and check a workflow without running it: Lua syntax, node fields,\n"
"names, loop settings, tool servers referenced.  Errors name FILE:LINE.\n"
"Exit status 0 if valid, 2 if not.\n";
	struct luaeng *le;
	const char *path;
	char err[1024];
	int rc;

	if ((path = check_args(argc, argv, usage, NULL, &rc)) == NULL)
		return rc;
	le = luaeng_new(CHECK_LUA_MEM);
	if (luaeng_load(le, path, err, sizeof err) != 0) {
		fprintf(stderr, "weft: %s\n", err);
		luaeng_free(le);
		return WEFT_EXIT_USAGE;
	}
	printf("%s: ok\n", path);
	luaeng_free(le);
	return WEFT_EXIT_OK;
}

int
cmd_graph(int argc, char **argv)
{
	static const char usage[] =
"usage: weft graph WORKFLOW.lua [--dot]\n"
"\n"
"Print the workflow's graph as an indented tree: each node's name, kind,\n"
"model, tools and output key.  With --dot, print Graphviz DOT instead\n"
"(weft graph flow.lua --dot | dot -Tsvg > flow.svg).\n";
	struct luaeng *le;
	const char *path;
	char err[1024], *g;
	int rc, dot = 0;

	if ((path = check_args(argc, argv, usage, &dot, &rc)) == NULL)
		return rc;
	le = luaeng_new(CHECK_LUA_MEM);
	if (luaeng_load(le, path, err, sizeof err) != 0) {
		fprintf(stderr, "weft: %s\n", err);
		luaeng_free(le);
		return WEFT_EXIT_USAGE;
	}
	g = luaeng_graph(le, dot);
	fputs(g, stdout);
	free(g);
	luaeng_free(le);
	return WEFT_EXIT_OK;
}

/* Memory for the Lua state that reads a served workflow's metadata. */
#define CMD_META_LUA_MEM	(64u * 1024 * 1024)

json_t *
cmd_workflow_meta(const char *path, char *err, size_t errlen)
{
	struct luaeng *le = luaeng_new(CMD_META_LUA_MEM);
	json_t *meta = NULL;

	if (luaeng_load(le, path, err, errlen) == 0 &&
	    (meta = luaeng_meta(le, err, errlen)) != NULL &&
	    luaeng_servers_unconfined(le))
		/* Its servers need workers without seccomp (weft serve). */
		json_object_set_new(meta, "unconfined", json_true());
	luaeng_free(le);
	return meta;
}
