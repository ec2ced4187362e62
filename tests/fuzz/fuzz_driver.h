/*
 * fuzz_driver.h: the driver shared by the text fuzz targets (included by
 * one file each).  Built with -DWEFT_LIBFUZZER and -fsanitize=fuzzer a
 * target is a libFuzzer target and this adds nothing.  Otherwise main()
 * runs the files named on the command line, or the target's built-in
 * corpus and seeded random mutations of it ($WEFT_FUZZ_ITERS of them,
 * else the target's default; $WEFT_FUZZ_SEED, a number, for other ones
 * than make check's): that is what make check runs.
 *
 * An input's first byte is the target's mode and is never mutated; an
 * entry of a corpus is that byte, then NUL-terminated text.  A target
 * with a driver of its own defines FZ_OWN_DRIVER first and gets only the
 * random numbers.
 */
#ifndef WEFT_FUZZ_DRIVER_H
#define WEFT_FUZZ_DRIVER_H

#include <stdio.h>
#include <stdlib.h>

/* Abort with a message when an invariant of a target does not hold. */
#define FZ_CHECK(c, ...) do {						\
	if (!(c)) {							\
		fprintf(stderr, __VA_ARGS__);				\
		fputc('\n', stderr);					\
		abort();						\
	}								\
} while (0)

#ifndef WEFT_LIBFUZZER
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);


static uint64_t fz_rng = 0x9e3779b97f4a7c15ULL;

static uint64_t
fz_rand(void)
{
	fz_rng ^= fz_rng << 13;
	fz_rng ^= fz_rng >> 7;
	fz_rng ^= fz_rng << 17;
	return fz_rng;
}

/* Seed fz_rand from $WEFT_FUZZ_SEED, a non-zero number, if set. */
static void
fz_seed_rng(void)
{
	const char *seed = getenv("WEFT_FUZZ_SEED");

	if (seed != NULL && strtoull(seed, NULL, 0) != 0)
		fz_rng = strtoull(seed, NULL, 0);
}

#ifndef FZ_OWN_DRIVER
/*
 * Copy the n bytes of in to buf (room for n + 4) and flip, replace, drop
 * or insert characters of alphabet at one to four places after the first
 * byte.  Returns the new length.
 */
static size_t
fz_mutate(const char *in, size_t n, uint8_t *buf, const char *alphabet)
{
	size_t k, i, na = strlen(alphabet);

	memcpy(buf, in, n);
	for (k = 1 + fz_rand() % 4; k > 0 && n > 1; k--) {
		i = 1 + fz_rand() % (n - 1);
		switch (fz_rand() % 4) {
		case 0:
			buf[i] ^= (uint8_t)(1u << (fz_rand() % 8));
			break;
		case 1:
			buf[i] = (uint8_t)alphabet[fz_rand() % na];
			break;
		case 2:
			memmove(buf + i, buf + i + 1, n - i - 1);
			n--;
			break;
		default:
			memmove(buf + i + 1, buf + i, n - i);
			buf[i] = (uint8_t)alphabet[fz_rand() % na];
			n++;
			break;
		}
	}
	return n;
}

/* The length of corpus entry e: its mode byte and its text. */
static size_t
fz_entry_len(const char *e)
{
	return strlen(e + 1) + 1;
}

/* main() of a target: see the top of this file. */
static int
fz_main(int argc, char **argv, const char *name, const char *const *corpus,
    size_t n, long iters, const char *alphabet)
{
	const char *e = getenv("WEFT_FUZZ_ITERS");
	uint8_t *buf;
	size_t c, len, max = 0;
	char *text;
	long i;
	int a;

	if (e != NULL)
		iters = atol(e);
	fz_seed_rng();
	for (a = 1; a < argc; a++) {
		if ((text = read_file(argv[a], &len)) == NULL) {
			perror(argv[a]);
			return 1;
		}
		LLVMFuzzerTestOneInput((const uint8_t *)text, len);
		free(text);
	}
	if (argc > 1)
		return 0;
	for (c = 0; c < n; c++) {
		LLVMFuzzerTestOneInput((const uint8_t *)corpus[c],
		    fz_entry_len(corpus[c]));
		if (fz_entry_len(corpus[c]) > max)
			max = fz_entry_len(corpus[c]);
	}
	buf = xmalloc(max + 8);
	for (i = 0; i < iters; i++) {
		c = fz_rand() % n;
		len = fz_mutate(corpus[c], fz_entry_len(corpus[c]), buf,
		    alphabet);
		LLVMFuzzerTestOneInput(buf, len);
	}
	free(buf);
	printf("%s: %zu seeds and %ld mutations, no crash\n", name, n, iters);
	return 0;
}
#endif /* !FZ_OWN_DRIVER */
#endif

#endif
