/*
 * schema.h: the JSON Schema subset weft checks agent answers against.
 *
 * Used for an agent's output_schema (and a workflow's input_schema).  The
 * supported keywords, with JSON Schema 2020-12 meaning:
 *
 *   type                  a name or an array of names: object, array,
 *                         string, number, integer, boolean, null
 *   properties, required, additionalProperties (a boolean or a schema)
 *   items                 one schema for every element (no tuple form)
 *   enum, const           any JSON values
 *   minItems, maxItems, minLength, maxLength, minimum, maximum
 *
 * title, description, $schema, $comment, default, examples, deprecated,
 * readOnly and writeOnly are annotations and are ignored.  Every other
 * keyword (pattern, format, $ref, anyOf, ...) is refused by schema_check, so
 * a schema never seems to promise more than weft checks.  A schema may be
 * true (anything) or false (nothing), wherever a schema is allowed.
 *
 * Numbers follow 2020-12: a number with a zero fractional part is an
 * integer, so 3.0 matches "integer", and numbers compare by value, so 1.0
 * matches "enum": [1].  String lengths are counted in Unicode code points.
 *
 * Neither function keeps a reference to its arguments.
 */
#ifndef WEFT_SCHEMA_H
#define WEFT_SCHEMA_H

#include <stddef.h>

#include <jansson.h>

/*
 * The deepest nesting of schemas (and of enum and const values) that
 * schema_check accepts, and of values that schema_validate walks, so neither
 * a hostile schema nor a hostile answer can exhaust the stack.
 */
#define SCHEMA_MAX_DEPTH 64
/* Deepest values schema_equal compares (jansson parses at most 2048). */
#define SCHEMA_EQUAL_MAX_DEPTH 2048

/*
 * Check that schema uses only the supported subset and is well formed.
 * Return 0, or -1 with a message in err naming the place in the schema,
 * rooted at where (e.g. "output_schema"):
 * "output_schema/properties/age/type: unknown type 'int' (expected one of
 * object, array, string, number, integer, boolean, null)" or
 * "output_schema/properties/x: keyword 'pattern' is not supported".
 * Property names in the path are escaped as in a JSON pointer.
 */
int schema_check(const json_t *schema, const char *where, char *err,
    size_t errlen);

/*
 * Validate value against a schema that passed schema_check.  Return 0 if
 * it matches, or -1 with a message in err, meant to be shown to the model
 * that wrote value, naming the JSON pointer of the first failing place and
 * what was expected: "/items/2/name: expected string, got number",
 * "/: missing required property 'title'" or
 * "/status: 'dne' is not one of \"open\", \"closed\"".  The order is
 * fixed: at each place type, const and enum first, then required
 * properties, properties in schema order, other properties in the value's
 * order, and array elements in order.  A schema that did not pass
 * schema_check gives unspecified results, but never unsafe ones.
 */
int schema_validate(const json_t *schema, const json_t *value, char *err,
    size_t errlen);

/*
 * The one JSON equality of weft (eval, diff, enum and const checks):
 * numbers by value, exactly (1 equals 1.0; 2^53 + 1 does not equal the
 * real 2^53), strings byte by byte, objects whatever their key order.  NULL
 * equals only NULL.
 */
int schema_equal(const json_t *a, const json_t *b);

#endif
