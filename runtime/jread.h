/*
 * jread.h: typed reads of the JSON a peer sent (a worker's request, a
 * client's message), as OpenSMTPD's m_get_* read its imsgs: each names the
 * JSON pointer of a field that is missing or of the wrong type, so that
 * the request is refused with that message instead of a wrong field
 * silently reading as 0.
 *
 * Every reader takes the object, the member's name, the pointer of the
 * object (at, e.g. "/params/results/3") and whether the member must be
 * there; it returns 0 (out set, or left as it was for an absent optional
 * member) or -1 with err "AT/KEY: must be ..." / "AT/KEY: is missing".
 */
#ifndef WEFT_JREAD_H
#define WEFT_JREAD_H

#include <stddef.h>
#include <jansson.h>

/* An integer in [lo, hi]. */
int jr_int(json_t *o, const char *key, const char *at, int required,
    json_int_t lo, json_int_t hi, json_int_t *out, char *err, size_t errlen);
/* A string (borrowed). */
int jr_str(json_t *o, const char *key, const char *at, int required,
    const char **out, char *err, size_t errlen);
/* An array of at most max elements (borrowed). */
int jr_array(json_t *o, const char *key, const char *at, int required,
    size_t max, json_t **out, char *err, size_t errlen);
/* An object (borrowed). */
int jr_object(json_t *o, const char *key, const char *at, int required,
    json_t **out, char *err, size_t errlen);
/* Any value but null (borrowed). */
int jr_any(json_t *o, const char *key, const char *at, int required,
    json_t **out, char *err, size_t errlen);

#endif
