/*
 * mcp_npm.c: npm packages as MCP servers without npx at run time.  A
 * package is installed once into weft's cache (CACHE/NAME@VERSION, NAME
 * with '/' as '+'), with `npm install --ignore-scripts`, outside the
 * sandbox; a spec without an exact version is pinned to the version
 * installed, recorded in CACHE/NAME@SPEC.pin.  The stdio transport
 * (mcp_stdio.c) runs the install as a child and then the package's bin,
 * sandboxed, from the cache.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "runtime/util.h"
#include "protocols/mcp_client_int.h"

/* Split spec into name and version ("" when none); -1 if malformed. */
static int
mcpn_split(const char *spec, char *name, size_t nlen, char *ver,
    size_t vlen)
{
	const char *at = strchr(spec + (spec[0] == '@'), '@');
	size_t n = at != NULL ? (size_t)(at - spec) : strlen(spec);

	if (n == 0 || n >= nlen || strstr(spec, "..") != NULL)
		return -1;
	memcpy(name, spec, n);
	name[n] = '\0';
	snprintf(ver, vlen, "%s", at != NULL ? at + 1 : "");
	return 0;
}

/* name as a file name: '/' becomes '+'. */
static void
mcpn_enc(const char *name, char *out, size_t len)
{
	size_t i;

	for (i = 0; name[i] != '\0' && i + 1 < len; i++)
		out[i] = name[i] == '/' ? '+' : name[i];
	out[i] = '\0';
}

/* Whether ver is an exact version: digits.digits.digits, a suffix. */
static int
mcpn_exact(const char *ver)
{
	int dots = 0;

	if (*ver < '0' || *ver > '9')
		return 0;
	for (; *ver != '\0' && *ver != '-' && *ver != '+'; ver++) {
		if (*ver == '.')
			dots++;
		else if (*ver < '0' || *ver > '9')
			return 0;
	}
	return dots == 2;
}

/* The version a spec's pin file records, into out; -1 if none. */
static int
mcpn_pinned(const char *cache, const char *enc, const char *ver, char *out,
    size_t len)
{
	char path[PATH_MAX];
	ssize_t n;
	int fd;

	snprintf(path, sizeof path, "%s/%s@%s.pin", cache, enc,
	    *ver ? ver : "latest");
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	n = read(fd, out, len - 1);
	close(fd);
	if (n <= 0)
		return -1;
	out[n] = '\0';
	out[strcspn(out, "\r\n")] = '\0';
	return mcpn_exact(out) ? 0 : -1;
}

/*
 * The program to run of the package installed in dir: its package.json
 * "bin", the one named bin, or the one named after the package, or the
 * only one.
 */
static int
mcpn_bin(const char *dir, const char *name, const char *bin, char *out,
    size_t len, char *err, size_t errlen)
{
	char path[PATH_MAX * 2];
	const char *base = strrchr(name, '/'), *k, *pick = NULL;
	json_t *pj, *b, *v;
	json_error_t je;
	char names[256];
	size_t off = 0;

	base = base != NULL ? base + 1 : name;
	snprintf(path, sizeof path, "%s/node_modules/%s/package.json", dir,
	    name);
	if ((pj = json_load_file(path, 0, &je)) == NULL) {
		errf(err, errlen, "%s: %s", path, je.text);
		return -1;
	}
	b = json_object_get(pj, "bin");
	if (json_is_string(b) && (bin == NULL || strcmp(bin, base) == 0))
		pick = base;
	else if (json_is_object(b)) {
		if (bin != NULL && json_object_get(b, bin) != NULL)
			pick = bin;
		else if (bin == NULL && json_object_get(b, base) != NULL)
			pick = base;
		else if (bin == NULL && json_object_size(b) == 1)
			json_object_foreach(b, k, v)
				pick = k;
	}
	if (pick == NULL) {
		names[0] = '\0';
		if (json_is_string(b))
			snprintf(names, sizeof names, "%s", base);
		else if (json_is_object(b))
			json_object_foreach(b, k, v)
				if (off < sizeof names)
					off += snprintf(names + off,
					    sizeof names - off, "%s%s",
					    off ? ", " : "", k);
		if (names[0] == '\0')
			errf(err, errlen, "npm package %s has no program (no "
			    "\"bin\" in its package.json)", name);
		else if (bin != NULL)
			errf(err, errlen, "npm package %s has no program "
			    "'%s' (it has %s)", name, bin, names);
		else
			errf(err, errlen, "npm package %s has several "
			    "programs (%s): say which with bin = \"...\"",
			    name, names);
		json_decref(pj);
		return -1;
	}
	snprintf(out, len, "%s/node_modules/.bin/%s", dir, pick);
	json_decref(pj);
	if (access(out, X_OK) != 0) {
		errf(err, errlen, "%s: %s", out, strerror(errno));
		return -1;
	}
	return 0;
}

int
mcpn_lookup(const char *cache, const char *spec, const char *bin, char *out,
    size_t len, char *err, size_t errlen)
{
	char name[256], ver[128], enc[256], pin[128], dir[PATH_MAX];
	struct stat st;

	if (mcpn_split(spec, name, sizeof name, ver, sizeof ver) != 0) {
		errf(err, errlen, "/server/npm: '%s' is not an npm package",
		    spec);
		return -1;
	}
	mcpn_enc(name, enc, sizeof enc);
	if (mcpn_exact(ver))
		snprintf(pin, sizeof pin, "%s", ver);
	else if (mcpn_pinned(cache, enc, ver, pin, sizeof pin) != 0)
		return 1;
	snprintf(dir, sizeof dir, "%s/%s@%s", cache, enc, pin);
	if (stat(dir, &st) != 0)
		return 1;
	return mcpn_bin(dir, name, bin, out, len, err, errlen) == 0 ? 0 : -1;
}

/*
 * Remove what installs cut short left in cache (a worker killed during
 * one): .install-* directories a day old.
 */
static void
mcpn_sweep(const char *cache)
{
	char path[PATH_MAX];
	struct dirent *de;
	struct stat st;
	DIR *d;

	if ((d = opendir(cache)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, ".install-", 9) != 0)
			continue;
		snprintf(path, sizeof path, "%s/%s", cache, de->d_name);
		if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode) &&
		    st.st_mtime < time(NULL) - 86400)
			rmtree(path);
	}
	closedir(d);
}

char **
mcpn_install_argv(const char *cache, const char *spec, char **tmp,
    char *err, size_t errlen)
{
	char **argv;
	char *dir;

	if (mkdir(cache, 0700) == -1 && errno != EEXIST) {
		errf(err, errlen, "cannot create the npm cache %s: %s", cache,
		    strerror(errno));
		return NULL;
	}
	mcpn_sweep(cache);
	dir = xasprintf("%s/.install-XXXXXX", cache);
	if (mkdtemp(dir) == NULL) {
		errf(err, errlen, "cannot create a directory in %s: %s",
		    cache, strerror(errno));
		free(dir);
		return NULL;
	}
	argv = xcalloc(16, sizeof *argv);
	argv[0] = xstrdup("npm");
	argv[1] = xstrdup("install");
	argv[2] = xstrdup("--prefix");
	argv[3] = xstrdup(dir);
	argv[4] = xstrdup("--ignore-scripts");
	argv[5] = xstrdup("--no-audit");
	argv[6] = xstrdup("--no-fund");
	argv[7] = xstrdup("--no-save");
	argv[8] = xstrdup("--no-update-notifier");
	argv[9] = xstrdup("--fetch-retries=0");
	argv[10] = xstrdup("--fetch-timeout=30000");
	argv[11] = xstrdup("--loglevel=error");
	argv[12] = xstrdup(spec);
	*tmp = dir;
	return argv;
}

int
mcpn_install_done(const char *cache, const char *spec, const char *tmp,
    char *err, size_t errlen)
{
	char name[256], ver[128], enc[256], path[PATH_MAX * 2];
	char dir[PATH_MAX], pin[PATH_MAX + 8], ptmp[PATH_MAX + 32];
	const char *v;
	json_t *pj;
	int fd, ok, rv = -1;

	if (mcpn_split(spec, name, sizeof name, ver, sizeof ver) != 0)
		goto out;
	mcpn_enc(name, enc, sizeof enc);
	snprintf(path, sizeof path, "%s/node_modules/%s/package.json", tmp,
	    name);
	if ((pj = json_load_file(path, 0, NULL)) == NULL ||
	    (v = json_string_value(json_object_get(pj, "version"))) == NULL ||
	    !mcpn_exact(v) || strlen(v) > 60) {
		errf(err, errlen, "npm install failed");
		json_decref(pj);
		goto out;
	}
	snprintf(dir, sizeof dir, "%s/%s@%s", cache, enc, v);
	if (rename(tmp, dir) != 0 && errno != EEXIST && errno != ENOTEMPTY) {
		errf(err, errlen, "cannot move %s to %s: %s", tmp, dir,
		    strerror(errno));
		json_decref(pj);
		goto out;
	}
	if (!mcpn_exact(ver)) {
		/* Pin the spec to what it resolved to, atomically. */
		snprintf(pin, sizeof pin, "%s/%s@%s.pin", cache, enc,
		    *ver ? ver : "latest");
		snprintf(ptmp, sizeof ptmp, "%s.%ld", pin, (long)getpid());
		if ((fd = open(ptmp, O_WRONLY | O_CREAT | O_TRUNC |
		    O_CLOEXEC, 0600)) != -1) {
			ok = write(fd, v, strlen(v)) == (ssize_t)strlen(v) &&
			    write(fd, "\n", 1) == 1;
			if (close(fd) == 0 && ok)
				(void)rename(ptmp, pin);
			unlink(ptmp);
		}
	}
	json_decref(pj);
	rv = 0;
out:
	rmtree(tmp);	/* what is left of it: nothing after the rename */
	return rv;
}
