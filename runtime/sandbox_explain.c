/*
 * sandbox_explain.c: why a sandboxed tool server failed, in words.  The
 * server's stderr names the path it was refused (EACCES or EPERM, in the
 * forms node, python, shells and C programs print); when the server's
 * Landlock rules do not allow that path, the sandbox refused it, and the
 * sentence names the line of the profile that would allow it.
 */
#include "config.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "runtime/sandbox_int.h"
#include "runtime/util.h"

/* Markers of a refusal in a line of stderr. */
static const char *const sbx_denied[] = {
	"EACCES", "EPERM", "ermission denied", "Operation not permitted",
	"[Errno 13]", "[Errno 1]", NULL
};

/*
 * Where line (len bytes) reports a refusal: the offset of its marker, or
 * -1 when it reports none.
 */
static ssize_t
sbx_denial_at(const char *line, size_t len)
{
	const char *m;
	int i;

	for (i = 0; sbx_denied[i] != NULL; i++)
		if ((m = memmem(line, len, sbx_denied[i],
		    strlen(sbx_denied[i]))) != NULL)
			return m - line;
	return -1;
}

/*
 * The path a refusal at offset at of line names, into out: the first
 * after the marker (node's "EACCES: permission denied, open '/p'",
 * python's "[Errno 13] Permission denied: '/p'"), else the last before
 * it (a shell's "/p: Permission denied").  A path starts with '/' (or
 * "~/", expanded with $HOME) after a quote, a blank, '(' or the line's
 * start, and ends at a quote, a blank, ", " or ": ".
 */
static int
sbx_path(const char *line, size_t len, size_t at, char *out, size_t outlen)
{
	const char *home = getenv("HOME"), *p, *e, *end = line + len;
	const char *best = NULL;
	size_t n, bestn = 0;

	for (p = line; p < end; p++) {
		if (p > line && strchr("'\"` (=", p[-1]) == NULL)
			continue;
		if (*p == '~' && p + 1 < end && p[1] == '/' && home != NULL)
			;
		else if (*p != '/' || (p + 1 < end && p[1] == '/'))
			continue;
		for (e = p; e < end && strchr("'\"` \t)", *e) == NULL; e++)
			if ((*e == ':' || *e == ',') && (e + 1 == end ||
			    e[1] == ' '))
				break;
		n = (size_t)(e - p);
		if (n < 2)
			continue;
		best = p;
		bestn = n;
		if (p >= line + at)
			break;
		p = e;
	}
	if (best == NULL)
		return -1;
	if (*best == '~')
		snprintf(out, outlen, "%s%.*s", home, (int)bestn - 1,
		    best + 1);
	else
		snprintf(out, outlen, "%.*s", (int)bestn, best);
	return 0;
}

/* path resolved: itself, or its parent's realpath and its last name. */
static void
sbx_resolve(const char *path, char *out, size_t len)
{
	char dir[PATH_MAX], real[PATH_MAX], *slash;

	if (realpath(path, real) != NULL) {
		snprintf(out, len, "%s", real);
		return;
	}
	snprintf(dir, sizeof dir, "%s", path);
	if ((slash = strrchr(dir, '/')) != NULL && slash != dir) {
		*slash = '\0';
		if (realpath(dir, real) != NULL) {
			snprintf(out, len, "%s/%s", real, slash + 1);
			return;
		}
	}
	snprintf(out, len, "%s", path);
}

/* Whether a rule of list (resolved paths) covers path. */
static int
sbx_covered(json_t *list, const char *path)
{
	const char *r;
	size_t i, n;

	for (i = 0; i < json_array_size(list); i++) {
		r = json_string_value(json_array_get(list, i));
		n = strlen(r);
		if (strncmp(path, r, n) == 0 && (path[n] == '\0' ||
		    path[n] == '/' || (n == 1 && r[0] == '/')))
			return 1;
	}
	return 0;
}

int
sandbox_explain(json_t *paths, const char *text, size_t textlen,
    char *buf, size_t len)
{
	const char *line, *end = text + textlen, *nl;
	char path[PATH_MAX], real[PATH_MAX * 2 + 2], dir[PATH_MAX * 2 + 2];
	char *slash;
	struct stat st;
	size_t n;
	ssize_t at;
	int eperm_only = 0;

	if (paths == NULL)
		return 0;
	/* From the last line up: the error a server printed last is the
	   one it died of. */
	for (nl = end; nl > text; nl = line) {
		line = nl;
		if (line > text && line[-1] == '\n')
			line--;
		while (line > text && line[-1] != '\n')
			line--;
		n = (size_t)(nl - line);
		if (n == 0 || (at = sbx_denial_at(line, n)) < 0)
			continue;
		if (sbx_path(line, n, (size_t)at, path, sizeof path) != 0) {
			eperm_only = 1;
			continue;
		}
		sbx_resolve(path, real, sizeof real);
		if (sbx_covered(json_object_get(paths, "write"), real))
			continue;	/* not the sandbox: the file's mode */
		if (stat(real, &st) == 0 && !sbx_covered(json_object_get(
		    paths, "read"), real)) {
			if (access(real, R_OK) != 0)
				continue;	/* unreadable anyway */
			sb_package_root(real, dir, sizeof dir);
			snprintf(buf, len, "the sandbox does not let it read "
			    "%s: add sandbox = { read = { \"%s\" } }", path,
			    dir);
			return 1;
		}
		/* Readable, or absent (created): a write was refused. */
		snprintf(dir, sizeof dir, "%s", real);
		if (stat(real, &st) != 0 || !S_ISDIR(st.st_mode)) {
			if ((slash = strrchr(dir, '/')) != NULL &&
			    slash != dir)
				*slash = '\0';
		}
		snprintf(buf, len, "the sandbox does not let it write %s: "
		    "add sandbox = { write = { \"%s\" } }, or state = true "
		    "for a directory of its own kept between runs "
		    "($WEFT_STATE)", path, dir);
		return 1;
	}
	if (eperm_only) {
		snprintf(buf, len, "it was refused an operation; if the "
		    "sandbox refused it, sandbox = { debug = true } names "
		    "the system calls its seccomp filter denies");
		return 1;
	}
	return 0;
}
