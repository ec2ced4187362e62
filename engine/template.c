/* template.c: render "{key}" references in instructions from the state. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "engine/state.h"
#include "engine/template.h"
#include "runtime/util.h"

/* The output buffer: grows by doubling, always room for a final NUL. */
struct tbuf {
	char	*p;
	size_t	 len;
	size_t	 cap;
};

/* Append n bytes to the buffer. */
static void
tbuf_add(struct tbuf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		while (b->len + n + 1 > b->cap)
			b->cap *= 2;
		b->p = xrealloc(b->p, b->cap);
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

static int
tbuf_dump_cb(const char *s, size_t n, void *arg)
{
	tbuf_add(arg, s, n);
	return 0;
}

static int
ident_start(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static int
ident_char(char c)
{
	return ident_start(c) || (c >= '0' && c <= '9');
}

/*
 * Parse a reference after a '{': identifiers joined by single dots, an
 * optional '?', then '}'.  Return the length of the name (0 if this is not a
 * reference), with *optp and *endp (just past the '}') set.
 */
static size_t
template_ref(const char *s, int *optp, const char **endp)
{
	const char *q = s;
	size_t n;

	for (;;) {
		if (!ident_start(*q))
			return 0;
		while (ident_char(*q))
			q++;
		if (*q != '.')
			break;
		q++;
	}
	n = (size_t)(q - s);
	*optp = (*q == '?');
	if (*optp)
		q++;
	if (*q != '}')
		return 0;
	*endp = q + 1;
	return n;
}

/* The value at the dotted name of len bytes, or NULL. */
static json_t *
template_lookup(const struct state *st, const char *name, size_t len)
{
	const char *end = name + len, *dot;
	json_t *v = NULL;

	for (;;) {
		dot = memchr(name, '.', (size_t)(end - name));
		if (dot == NULL)
			dot = end;
		if (v == NULL)
			v = state_getn(st, name, (size_t)(dot - name));
		else if (json_is_object(v))
			v = json_object_getn(v, name, (size_t)(dot - name));
		else
			return NULL;
		if (v == NULL || dot == end)
			return v;
		name = dot + 1;
	}
}

/* Render tmpl against st in one pass. */
int
template_render(const char *tmpl, const struct state *st, char **out,
    char **missing, char *err, size_t errlen)
{
	struct tbuf b;
	const char *p = tmpl, *end;
	size_t span, nlen;
	json_t *v;
	int opt;

	b.len = 0;
	b.cap = strlen(tmpl) + 64;
	b.p = xmalloc(b.cap);
	for (;;) {
		span = strcspn(p, "{}");
		tbuf_add(&b, p, span);
		p += span;
		if (*p == '\0')
			break;
		if (p[1] == p[0]) {		/* "{{" or "}}" */
			tbuf_add(&b, p, 1);
			p += 2;
			continue;
		}
		if (*p == '}' ||
		    (nlen = template_ref(p + 1, &opt, &end)) == 0) {
			tbuf_add(&b, p, 1);	/* a literal brace */
			p++;
			continue;
		}
		v = template_lookup(st, p + 1, nlen);
		if (v == NULL && !opt) {
			errf(err, errlen, "missing state key '%.*s'",
			    (int)nlen, p + 1);
			if (missing != NULL)
				*missing = xstrndup(p + 1, nlen);
			free(b.p);
			return -1;
		}
		if (json_is_string(v))
			tbuf_add(&b, json_string_value(v),
			    json_string_length(v));
		else if (v != NULL && json_dump_callback(v, tbuf_dump_cb, &b,
		    JSON_ENCODE_ANY | JSON_COMPACT | JSON_SORT_KEYS) != 0) {
			errf(err, errlen, "cannot render state key '%.*s' "
			    "as JSON", (int)nlen, p + 1);
			free(b.p);
			return -1;
		}
		p = end;
	}
	b.p[b.len] = '\0';
	*out = b.p;
	return 0;
}
