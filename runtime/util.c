/* util.c: allocation, error, time and hashing helpers. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "runtime/util.h"

static void
oom(void)
{
	fputs("weft: out of memory\n", stderr);
	abort();
}

void *
xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL)
		oom();
	return p;
}

void
xjson_init(void)
{
	json_set_alloc_funcs(xmalloc, free);
}

void *
xcalloc(size_t n, size_t sz)
{
	void *p = calloc(n ? n : 1, sz ? sz : 1);

	if (p == NULL)
		oom();
	return p;
}

void *
xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (q == NULL)
		oom();
	return q;
}

char *
xstrdup(const char *s)
{
	char *p = strdup(s);

	if (p == NULL)
		oom();
	return p;
}

char *
xstrndup(const char *s, size_t n)
{
	char *p = strndup(s, n);

	if (p == NULL)
		oom();
	return p;
}

char *
xvasprintf(const char *fmt, va_list ap)
{
	char *s;

	if (vasprintf(&s, fmt, ap) < 0)
		oom();
	return s;
}

char *
xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	s = xvasprintf(fmt, ap);
	va_end(ap);
	return s;
}

void
fatalx(int code, const char *fmt, ...)
{
	va_list ap;

	fputs("weft: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

void
fatal(const char *fmt, ...)
{
	va_list ap;
	int e = errno;

	fputs("weft: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, ": %s\n", strerror(e));
	exit(1);
}

void
errf(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (buf == NULL || len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

double
now_wall(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

double
now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

void
sha256_hex(const void *buf, size_t len, char out[65])
{
	static const char hex[] = "0123456789abcdef";
	static EVP_MD *sha256;		/* fetched once, not per call */
	unsigned char md[32];
	unsigned int mdlen = sizeof md;
	size_t i;

	if (sha256 == NULL && (sha256 = EVP_MD_fetch(NULL, "SHA256",
	    NULL)) == NULL)
		fatalx(1, "sha256: no implementation");
	if (!EVP_Digest(buf, len, md, &mdlen, sha256, NULL))
		fatalx(1, "sha256 failed");
	for (i = 0; i < 32; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[64] = '\0';
}

void
random_hex(char *out, size_t n)
{
	unsigned char b[64];
	size_t i;

	assert(n <= sizeof b);
	if (getrandom(b, n, 0) != (ssize_t)n)
		fatal("getrandom");
	for (i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", b[i]);
}

char *
read_file(const char *path, size_t *lenp)
{
	struct stat st;
	char *buf;
	size_t off = 0, cap;
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return NULL;
	cap = (fstat(fd, &st) == 0 && st.st_size > 0) ? (size_t)st.st_size + 1 : 4096;
	buf = xmalloc(cap);
	for (;;) {
		if (off + 1 >= cap)
			buf = xrealloc(buf, cap *= 2);
		n = read(fd, buf + off, cap - off - 1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			free(buf);
			close(fd);
			return NULL;
		}
		if (n == 0)
			break;
		off += n;
	}
	close(fd);
	buf[off] = '\0';
	if (lenp)
		*lenp = off;
	return buf;
}

void
strv_free(char **v)
{
	size_t i;

	if (v == NULL)
		return;
	for (i = 0; v[i] != NULL; i++)
		free(v[i]);
	free(v);
}

/*
 * Remove name (beneath dfd) and everything under it, to depth levels.
 * Symbolic links are never followed, and a directory made unreadable (by a
 * tool server in its scratch dir) is opened up through its O_PATH
 * descriptor, so a link swapped in cannot redirect the chmod.
 */
static void
rmtree_depth(int dfd, const char *name, int depth)
{
	struct dirent *de;
	struct stat st;
	char proc[64];
	DIR *d;
	int pfd, fd;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == -1)
		return;
	if (!S_ISDIR(st.st_mode) || depth > 64) {
		unlinkat(dfd, name, 0);
		return;
	}
	pfd = openat(dfd, name, O_PATH | O_NOFOLLOW | O_DIRECTORY | O_CLOEXEC);
	if (pfd == -1)
		return;
	snprintf(proc, sizeof proc, "/proc/self/fd/%d", pfd);
	chmod(proc, 0700);
	fd = openat(pfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	close(pfd);
	if (fd != -1 && (d = fdopendir(fd)) != NULL) {
		while ((de = readdir(d)) != NULL)
			if (strcmp(de->d_name, ".") != 0 &&
			    strcmp(de->d_name, "..") != 0)
				rmtree_depth(dirfd(d), de->d_name, depth + 1);
		closedir(d);
	} else if (fd != -1)
		close(fd);
	unlinkat(dfd, name, AT_REMOVEDIR);
}

void
rmtree_at(int dfd, const char *name)
{
	rmtree_depth(dfd, name, 0);
}

void
rmtree(const char *path)
{
	rmtree_depth(AT_FDCWD, path, 0);
}

ssize_t
read_small_at(int dfd, const char *path, char *buf, size_t len)
{
	ssize_t n;
	int fd;

	if (len == 0 || (fd = openat(dfd, path, O_RDONLY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return n;
}
