/*
 * util.h: small helpers shared by every module of weft.
 *
 * Allocation failure in the coordinator or a worker is fatal (tmux xmalloc
 * rule): x*() functions never return NULL, nor do jansson's once
 * xjson_init() has run.  Lua allocations go through the
 * budgeted allocator in lua/luaeng.c instead.
 */
#ifndef WEFT_UTIL_H
#define WEFT_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <assert.h>
#include <sys/queue.h>

/* glibc's sys/queue.h lacks the _SAFE iterators. */
#ifndef TAILQ_FOREACH_SAFE
#define TAILQ_FOREACH_SAFE(var, head, field, tvar)			\
	for ((var) = TAILQ_FIRST(head);					\
	    (var) != NULL && ((tvar) = TAILQ_NEXT(var, field), 1);	\
	    (var) = (tvar))
#endif

/* Branches that cannot happen: assert in debug builds, evaluate otherwise. */
#ifdef NDEBUG
#define ALWAYS(x) (x)
#define NEVER(x) (x)
#else
#define ALWAYS(x) ((x) ? 1 : (assert(0), 0))
#define NEVER(x) ((x) ? (assert(0), 1) : 0)
#endif

#define nitems(a) (sizeof(a) / sizeof((a)[0]))

/* Allocate or abort with a message. */
void *xmalloc(size_t);
void *xcalloc(size_t, size_t);
void *xrealloc(void *, size_t);
char *xstrdup(const char *);
char *xstrndup(const char *, size_t);
/* printf into a new heap string; never NULL. */
char *xasprintf(const char *, ...) __attribute__((format(printf, 1, 2)));
char *xvasprintf(const char *, va_list);
/*
 * Make jansson allocate through xmalloc, so that no jansson call returns
 * NULL for lack of memory (a NULL then means bad input: a format, a
 * string that is not UTF-8).  main() calls it before any JSON is made.
 */
void xjson_init(void);

/* Print "weft: message" to stderr and exit(code). */
void fatalx(int code, const char *, ...)
    __attribute__((format(printf, 2, 3), noreturn));
/* Print "weft: message: strerror(errno)" and exit(1). */
void fatal(const char *, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Write a formatted message into a caller's error buffer (may be NULL). */
void errf(char *buf, size_t len, const char *, ...)
    __attribute__((format(printf, 3, 4)));

/* Wall clock in seconds since the epoch, and a monotonic clock. */
double now_wall(void);
double now_mono(void);

/* Lowercase hex SHA-256 of a buffer into out[65]. */
void sha256_hex(const void *, size_t, char out[65]);

/* Random hex string of 2*n characters into out (n bytes from the kernel). */
void random_hex(char *out, size_t n);

/* Read a whole file; NULL with errno set on failure. *lenp gets the size. */
char *read_file(const char *path, size_t *lenp);

/*
 * Read up to len - 1 bytes of the file path (beneath the directory dfd,
 * or AT_FDCWD; symbolic links not followed) into buf, NUL-terminated: for
 * small files such as /proc/PID/stat.  Returns the length, or -1.
 */
ssize_t read_small_at(int dfd, const char *path, char *buf, size_t len);

/*
 * Remove a file or a directory tree: path, or name beneath the directory
 * descriptor dfd.  Symbolic links are removed, never followed; what cannot
 * be removed is left.
 */
void rmtree(const char *path);
void rmtree_at(int dfd, const char *name);

/* Free a NULL-terminated vector of heap strings and the vector; NULL ok. */
void strv_free(char **);

#endif
