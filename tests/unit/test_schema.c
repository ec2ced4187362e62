/* test_schema.c: checking schemas and validating answers against them. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "engine/schema.h"

/* Parse JSON text that a test wrote, scalars included. */
static json_t *
parse(const char *text)
{
	json_error_t je;
	json_t *j = json_loads(text, JSON_DECODE_ANY, &je);

	if (j == NULL)
		fail_msg("bad test JSON %s: %s", text, je.text);
	return j;
}

static void
assert_check_ok(const char *schema)
{
	json_t *s = parse(schema);
	char err[512] = "";

	if (schema_check(s, "output_schema", err, sizeof err) != 0)
		fail_msg("check of %s failed: %s", schema, err);
	json_decref(s);
}

static void
assert_check_fails(const char *schema, const char *want)
{
	json_t *s = parse(schema);
	char err[512] = "";

	assert_int_equal(schema_check(s, "output_schema", err, sizeof err),
	    -1);
	assert_string_equal(err, want);
	json_decref(s);
}

static void
assert_valid(const char *schema, const char *value)
{
	json_t *s = parse(schema), *v = parse(value);
	char err[512] = "untouched";

	if (schema_check(s, "output_schema", err, sizeof err) != 0)
		fail_msg("check of %s failed: %s", schema, err);
	if (schema_validate(s, v, err, sizeof err) != 0)
		fail_msg("%s rejected by %s: %s", value, schema, err);
	assert_string_equal(err, "untouched");
	json_decref(s);
	json_decref(v);
}

static void
assert_invalid(const char *schema, const char *value, const char *want)
{
	json_t *s = parse(schema), *v = parse(value);
	char err[512] = "";

	if (schema_check(s, "output_schema", err, sizeof err) != 0)
		fail_msg("check of %s failed: %s", schema, err);
	assert_int_equal(schema_validate(s, v, err, sizeof err), -1);
	assert_string_equal(err, want);
	json_decref(s);
	json_decref(v);
}

/* Schemas nested n levels deep through "items", with an integer leaf. */
static json_t *
nested_items(int n)
{
	json_t *s = json_pack("{s:s}", "type", "integer");

	while (n-- > 0)
		s = json_pack("{s:s,s:o}", "type", "array", "items", s);
	return s;
}

/* A value of n nested arrays around 1. */
static json_t *
nested_arrays(int n)
{
	json_t *v = json_integer(1);

	while (n-- > 0)
		v = json_pack("[o]", v);
	return v;
}

static void
test_schema_check_accepts_whole_subset(void **unused)
{
	assert_check_ok("{\"$schema\":\"https://json-schema.org/draft/"
	    "2020-12/schema\",\"title\":\"Report\",\"description\":\"d\","
	    "\"$comment\":\"c\",\"type\":\"object\","
	    "\"required\":[\"title\",\"tags\"],"
	    "\"additionalProperties\":false,"
	    "\"properties\":{"
	    "\"title\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":80,"
	    "\"default\":\"x\",\"examples\":[\"a\"]},"
	    "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},"
	    "\"minItems\":0,\"maxItems\":5.0},"
	    "\"score\":{\"type\":[\"number\",\"null\"],\"minimum\":0,"
	    "\"maximum\":1.5,\"deprecated\":false,\"readOnly\":true},"
	    "\"kind\":{\"const\":{\"a\":[1,null]}},"
	    "\"status\":{\"enum\":[\"open\",\"closed\",null,3]},"
	    "\"meta\":{\"type\":\"object\",\"additionalProperties\":"
	    "{\"type\":\"integer\"}}}}");
	assert_check_ok("{}");
	assert_check_ok("true");
	assert_check_ok("false");
	assert_check_ok("{\"properties\":{\"a\":true,\"b\":false},"
	    "\"items\":false}");
}

static void
test_schema_check_rejects_unsupported_keyword(void **unused)
{
	assert_check_fails("{\"type\":\"object\",\"properties\":{\"x\":"
	    "{\"type\":\"string\",\"pattern\":\"^a\"}}}",
	    "output_schema/properties/x: keyword 'pattern' is not supported");
	assert_check_fails("{\"$ref\":\"#/$defs/a\"}",
	    "output_schema: keyword '$ref' is not supported");
	assert_check_fails("{\"items\":{\"format\":\"email\"}}",
	    "output_schema/items: keyword 'format' is not supported");
	assert_check_fails("{\"anyOf\":[{}]}",
	    "output_schema: keyword 'anyOf' is not supported");
	assert_check_fails("{\"x-vendor\":1}",
	    "output_schema: keyword 'x-vendor' is not supported");
}

static void
test_schema_check_suggests_keyword_for_typo(void **unused)
{
	assert_check_fails("{\"requried\":[\"a\"]}",
	    "output_schema: keyword 'requried' is not supported "
	    "(did you mean 'required'?)");
	assert_check_fails("{\"minlength\":1}",
	    "output_schema: keyword 'minlength' is not supported "
	    "(did you mean 'minLength'?)");
	assert_check_fails("{\"properties\":{\"a\":{\"item\":{}}}}",
	    "output_schema/properties/a: keyword 'item' is not supported "
	    "(did you mean 'items'?)");
}

static void
test_schema_check_rejects_unknown_type(void **unused)
{
	assert_check_fails("{\"properties\":{\"age\":{\"type\":\"int\"}}}",
	    "output_schema/properties/age/type: unknown type 'int' "
	    "(expected one of object, array, string, number, integer, "
	    "boolean, null)");
	assert_check_fails("{\"type\":[\"string\",\"float\"]}",
	    "output_schema/type/1: unknown type 'float' "
	    "(expected one of object, array, string, number, integer, "
	    "boolean, null)");
	assert_check_fails("{\"type\":[]}",
	    "output_schema/type: must name at least one type");
	assert_check_fails("{\"type\":[\"null\",\"null\"]}",
	    "output_schema/type/1: type 'null' is listed twice");
	assert_check_fails("{\"type\":[\"null\",3]}",
	    "output_schema/type/1: must be a type name (a string), "
	    "got number");
	assert_check_fails("{\"type\":{}}",
	    "output_schema/type: must be a type name or an array of type "
	    "names, got object");
}

static void
test_schema_check_rejects_malformed_keywords(void **unused)
{
	assert_check_fails("\"object\"", "output_schema: a schema must be an "
	    "object or a boolean, got string");
	assert_check_fails("{\"properties\":[]}", "output_schema/properties: "
	    "must be an object of schemas, got array");
	assert_check_fails("{\"properties\":{\"a\":3}}",
	    "output_schema/properties/a: a schema must be an object or a "
	    "boolean, got number");
	assert_check_fails("{\"required\":\"a\"}", "output_schema/required: "
	    "must be an array of property names, got string");
	assert_check_fails("{\"required\":[\"a\",1]}",
	    "output_schema/required/1: must be a property name (a string), "
	    "got number");
	assert_check_fails("{\"required\":[\"a\",\"b\",\"a\"]}",
	    "output_schema/required/2: property 'a' is listed twice");
	assert_check_fails("{\"additionalProperties\":\"no\"}",
	    "output_schema/additionalProperties: a schema must be an object "
	    "or a boolean, got string");
	assert_check_fails("{\"items\":[{},{}]}", "output_schema/items: must "
	    "be one schema for every element; the array (tuple) form is not "
	    "supported");
	assert_check_fails("{\"enum\":[]}",
	    "output_schema/enum: must be a non-empty array of values");
	assert_check_fails("{\"enum\":\"a\"}",
	    "output_schema/enum: must be a non-empty array of values");
	assert_check_fails("{\"minItems\":-1}",
	    "output_schema/minItems: must be a non-negative integer");
	assert_check_fails("{\"maxLength\":1.5}",
	    "output_schema/maxLength: must be a non-negative integer");
	assert_check_fails("{\"minLength\":\"3\"}",
	    "output_schema/minLength: must be a non-negative integer");
	assert_check_fails("{\"minimum\":\"3\"}",
	    "output_schema/minimum: must be a number, got string");
	assert_check_fails("{\"title\":3}",
	    "output_schema/title: must be a string, got number");
	assert_check_fails("{\"examples\":\"a\"}",
	    "output_schema/examples: must be an array, got string");
	assert_check_fails("{\"readOnly\":1}",
	    "output_schema/readOnly: must be a boolean, got number");
}

static void
test_schema_check_rejects_min_above_max(void **unused)
{
	assert_check_fails("{\"minItems\":3,\"maxItems\":2}",
	    "output_schema: minItems 3 is greater than maxItems 2");
	assert_check_fails("{\"properties\":{\"s\":{\"minLength\":4,"
	    "\"maxLength\":3.0}}}", "output_schema/properties/s: minLength 4 "
	    "is greater than maxLength 3");
	assert_check_fails("{\"minimum\":1.5,\"maximum\":1}",
	    "output_schema: minimum 1.5 is greater than maximum 1");
	assert_check_ok("{\"minimum\":1,\"maximum\":1.0,\"minLength\":2,"
	    "\"maxLength\":2}");
}

static void
test_schema_check_rejects_unreachable_required(void **unused)
{
	assert_check_fails("{\"properties\":{\"a\":{}},\"required\":[\"a\","
	    "\"b\"],\"additionalProperties\":false}",
	    "output_schema/required/1: property 'b' can never be present: "
	    "it is not in properties and additionalProperties is false");
	assert_check_ok("{\"properties\":{\"a\":{}},\"required\":[\"a\","
	    "\"b\"]}");
}

static void
test_schema_check_escapes_pointer(void **unused)
{
	assert_check_fails("{\"properties\":{\"a/b~c\":{\"type\":\"str\"}}}",
	    "output_schema/properties/a~1b~0c/type: unknown type 'str' "
	    "(expected one of object, array, string, number, integer, "
	    "boolean, null)");
}

static void
test_schema_check_depth_limit(void **unused)
{
	json_t *s;
	char err[2048] = "";

	s = nested_items(SCHEMA_MAX_DEPTH);
	assert_int_equal(schema_check(s, "output_schema", err, sizeof err),
	    0);
	json_decref(s);
	s = nested_items(SCHEMA_MAX_DEPTH + 1);
	assert_int_equal(schema_check(s, "output_schema", err, sizeof err),
	    -1);
	assert_non_null(strstr(err, "/items/items: schema nested deeper than "
	    "64 levels"));
	assert_true(strncmp(err, "output_schema/items/items", 25) == 0);
	json_decref(s);

	/* Deep properties: two path steps a level. */
	s = json_object();
	for (int i = 0; i < 1000; i++)
		s = json_pack("{s:{s:o}}", "properties", "p", s);
	assert_int_equal(schema_check(s, "s", err, sizeof err), -1);
	assert_non_null(strstr(err, "/properties/p: schema nested deeper "
	    "than 64 levels"));
	json_decref(s);

	/* enum and const values are bounded too. */
	s = json_pack("{s:[o]}", "enum", nested_arrays(SCHEMA_MAX_DEPTH));
	assert_int_equal(schema_check(s, "o", err, sizeof err), 0);
	json_decref(s);
	s = json_pack("{s:[i,o]}", "enum", 1,
	    nested_arrays(SCHEMA_MAX_DEPTH + 1));
	assert_int_equal(schema_check(s, "o", err, sizeof err), -1);
	assert_string_equal(err, "o/enum/1: value nested deeper than 64 "
	    "levels");
	json_decref(s);
	s = json_pack("{s:o}", "const", nested_arrays(SCHEMA_MAX_DEPTH + 1));
	assert_int_equal(schema_check(s, "o", err, sizeof err), -1);
	assert_string_equal(err, "o/const: value nested deeper than 64 "
	    "levels");
	json_decref(s);
}

static void
test_schema_type_each_accepts_and_rejects(void **unused)
{
	assert_valid("{\"type\":\"object\"}", "{}");
	assert_invalid("{\"type\":\"object\"}", "[]",
	    "/: expected object, got array");
	assert_valid("{\"type\":\"array\"}", "[1]");
	assert_invalid("{\"type\":\"array\"}", "{}",
	    "/: expected array, got object");
	assert_valid("{\"type\":\"string\"}", "\"\"");
	assert_invalid("{\"type\":\"string\"}", "12",
	    "/: expected string, got number");
	assert_valid("{\"type\":\"number\"}", "2.5");
	assert_valid("{\"type\":\"number\"}", "-7");
	assert_invalid("{\"type\":\"number\"}", "\"7\"",
	    "/: expected number, got string");
	assert_valid("{\"type\":\"boolean\"}", "false");
	assert_invalid("{\"type\":\"boolean\"}", "null",
	    "/: expected boolean, got null");
	assert_valid("{\"type\":\"null\"}", "null");
	assert_invalid("{\"type\":\"null\"}", "true",
	    "/: expected null, got boolean");
	assert_valid("{\"type\":[\"string\",\"null\"]}", "null");
	assert_invalid("{\"type\":[\"string\",\"null\"]}", "1",
	    "/: expected string or null, got number");
	assert_invalid("{\"type\":[\"object\",\"array\",\"null\"]}", "\"x\"",
	    "/: expected object, array or null, got string");
}

static void
test_schema_integer_accepts_zero_fraction(void **unused)
{
	assert_valid("{\"type\":\"integer\"}", "3");
	assert_valid("{\"type\":\"integer\"}", "3.0");
	assert_valid("{\"type\":\"integer\"}", "-0.0");
	assert_valid("{\"type\":\"integer\"}", "1e2");
	assert_valid("{\"type\":\"integer\"}", "1e300");
	assert_invalid("{\"type\":\"integer\"}", "2.5",
	    "/: expected integer, got number 2.5");
	assert_invalid("{\"type\":[\"integer\",\"null\"]}", "1e-3",
	    "/: expected integer or null, got number 0.001");
	assert_invalid("{\"type\":\"integer\"}", "\"3\"",
	    "/: expected integer, got string");
	assert_valid("{\"type\":\"number\"}", "3");
}

static void
test_schema_nested_pointer(void **unused)
{
	const char *s = "{\"type\":\"object\",\"properties\":{\"items\":"
	    "{\"type\":\"array\",\"items\":{\"type\":\"object\","
	    "\"properties\":{\"name\":{\"type\":\"string\"}}}}}}";

	assert_valid(s, "{\"items\":[{\"name\":\"a\"},{}]}");
	assert_invalid(s, "{\"items\":[{\"name\":\"a\"},{\"name\":\"b\"},"
	    "{\"name\":5}]}", "/items/2/name: expected string, got number");
}

static void
test_schema_required(void **unused)
{
	const char *s = "{\"type\":\"object\",\"required\":[\"title\","
	    "\"author\"],\"properties\":{\"author\":{\"type\":\"object\","
	    "\"required\":[\"name\"]}}}";

	assert_valid(s, "{\"title\":1,\"author\":{\"name\":null}}");
	assert_invalid(s, "{\"author\":{}}",
	    "/: missing required property 'title'");
	assert_invalid(s, "{\"title\":\"t\",\"author\":{\"nam\":1}}",
	    "/author: missing required property 'name'");
	/* required does not apply to non-objects. */
	assert_valid("{\"required\":[\"a\"]}", "[]");
}

static void
test_schema_additional_properties(void **unused)
{
	const char *closed = "{\"properties\":{\"title\":{},\"status\":{}},"
	    "\"additionalProperties\":false}";
	const char *typed = "{\"properties\":{\"title\":{}},"
	    "\"additionalProperties\":{\"type\":\"string\"}}";

	assert_valid(closed, "{\"title\":1}");
	assert_invalid(closed, "{\"title\":1,\"extra\":2}",
	    "/: property 'extra' is not allowed (allowed: title, status)");
	assert_invalid("{\"additionalProperties\":false}", "{\"a\":1}",
	    "/: property 'a' is not allowed (no properties are allowed)");
	assert_valid("{\"additionalProperties\":false}", "{}");
	assert_valid(typed, "{\"title\":1,\"x\":\"y\"}");
	assert_invalid(typed, "{\"title\":1,\"x\":\"y\",\"z\":true}",
	    "/z: expected string, got boolean");
	assert_valid("{\"additionalProperties\":true}", "{\"a\":1}");
	assert_valid("{\"properties\":{\"a\":{\"type\":\"null\"}}}",
	    "{\"b\":1}");
}

static void
test_schema_items(void **unused)
{
	const char *s = "{\"properties\":{\"tags\":{\"items\":"
	    "{\"type\":\"string\",\"maxLength\":3}}}}";

	assert_valid(s, "{\"tags\":[]}");
	assert_valid(s, "{\"tags\":[\"a\",\"bcd\"]}");
	assert_invalid(s, "{\"tags\":[\"a\",7]}",
	    "/tags/1: expected string, got number");
	assert_invalid(s, "{\"tags\":[\"a\",\"b\",\"long\"]}",
	    "/tags/2: expected at most 3 characters, got 4");
	assert_invalid("{\"items\":false}", "[1]",
	    "/0: no value is allowed here");
	assert_valid("{\"items\":false}", "[]");
	assert_invalid("false", "1", "/: no value is allowed here");
}

static void
test_schema_enum(void **unused)
{
	const char *s = "{\"properties\":{\"status\":{\"enum\":[\"open\","
	    "\"closed\"]}}}";

	assert_valid(s, "{\"status\":\"open\"}");
	assert_invalid(s, "{\"status\":\"dne\"}",
	    "/status: 'dne' is not one of \"open\", \"closed\"");
	assert_invalid(s, "{\"status\":3}",
	    "/status: 3 is not one of \"open\", \"closed\"");
	assert_valid("{\"enum\":[null,[1,{\"a\":true}]]}",
	    "[1,{\"a\":true}]");
	assert_invalid("{\"enum\":[null,[1,{\"a\":true}]]}",
	    "[1,{\"a\":false}]",
	    "/: [1,{\"a\":false}] is not one of null, [1,{\"a\":true}]");
	/* Numbers compare by value, as in JSON Schema. */
	assert_valid("{\"enum\":[1,2]}", "1.0");
	assert_valid("{\"enum\":[2.0]}", "2");
	assert_valid("{\"enum\":[[1]]}", "[1.0]");
	assert_invalid("{\"enum\":[1]}", "true",
	    "/: true is not one of 1");
	assert_invalid("{\"enum\":[\"1\"]}", "1",
	    "/: 1 is not one of \"1\"");
}

static void
test_schema_const(void **unused)
{
	assert_valid("{\"const\":\"report\"}", "\"report\"");
	assert_invalid("{\"properties\":{\"kind\":{\"const\":\"report\"}}}",
	    "{\"kind\":\"memo\"}",
	    "/kind: expected \"report\", got 'memo'");
	assert_valid("{\"const\":{\"a\":1,\"b\":[null]}}",
	    "{\"b\":[null],\"a\":1.0}");
	assert_invalid("{\"const\":{\"a\":1}}", "{\"a\":1,\"b\":2}",
	    "/: expected {\"a\":1}, got {\"a\":1,\"b\":2}");
	assert_invalid("{\"const\":null}", "false",
	    "/: expected null, got false");
}

static void
test_schema_min_max_items(void **unused)
{
	const char *s = "{\"minItems\":1,\"maxItems\":2}";

	assert_valid(s, "[1]");
	assert_valid(s, "[1,2]");
	assert_invalid(s, "[]", "/: expected at least 1 item, got 0");
	assert_invalid(s, "[1,2,3]", "/: expected at most 2 items, got 3");
	assert_invalid("{\"minItems\":2.0}", "[1]",
	    "/: expected at least 2 items, got 1");
	assert_valid(s, "\"not an array\"");
}

static void
test_schema_length_counts_code_points(void **unused)
{
	/* "héllo" is 5 code points in 6 bytes; the emoji is 4 bytes. */
	assert_valid("{\"maxLength\":5}", "\"h\\u00e9llo\"");
	assert_valid("{\"minLength\":5,\"maxLength\":5}", "\"héllo\"");
	assert_valid("{\"maxLength\":1}", "\"\\ud83d\\ude00\"");
	assert_invalid("{\"minLength\":4}", "\"日本語\"",
	    "/: expected at least 4 characters, got 3");
	assert_invalid("{\"maxLength\":2}", "\"日本語\"",
	    "/: expected at most 2 characters, got 3");
	assert_invalid("{\"minLength\":1}", "\"\"",
	    "/: expected at least 1 character, got 0");
	assert_valid("{\"maxLength\":2}", "123");
}

static void
test_schema_minimum_maximum(void **unused)
{
	const char *s = "{\"properties\":{\"age\":{\"minimum\":0,"
	    "\"maximum\":150}}}";

	assert_valid(s, "{\"age\":0}");
	assert_valid(s, "{\"age\":150.0}");
	assert_invalid(s, "{\"age\":-3}", "/age: expected at least 0, got -3");
	assert_invalid(s, "{\"age\":150.5}",
	    "/age: expected at most 150, got 150.5");
	assert_invalid("{\"minimum\":0.1}", "0",
	    "/: expected at least 0.1, got 0");
	assert_valid("{\"minimum\":-0.5}", "0");
	/* Large integers compare exactly, not through doubles. */
	assert_invalid("{\"maximum\":9007199254740992.0}",
	    "9007199254740993",
	    "/: expected at most 9007199254740992, got 9007199254740993");
	assert_valid("{\"maximum\":1e300}", "9223372036854775807");
	assert_valid("{\"minimum\":-1e300}", "-9223372036854775807");
	assert_valid("{\"minimum\":3}", "\"2\"");
}

static void
test_schema_validate_escapes_pointer(void **unused)
{
	const char *s = "{\"properties\":{\"a/b\":{\"properties\":{\"m~n\":"
	    "{\"type\":\"string\"}}}}}";

	assert_invalid(s, "{\"a/b\":{\"m~n\":1}}",
	    "/a~1b/m~0n: expected string, got number");
	assert_invalid("{\"additionalProperties\":false}",
	    "{\"x/y\":1}",
	    "/: property 'x/y' is not allowed (no properties are allowed)");
	assert_invalid("{\"required\":[\"a\\nb\"]}", "{}",
	    "/: missing required property 'a\\u000ab'");
}

static void
test_schema_order_is_deterministic(void **unused)
{
	const char *s = "{\"required\":[\"z\",\"y\"],\"properties\":{"
	    "\"b\":{\"type\":\"string\"},\"a\":{\"type\":\"string\"}},"
	    "\"additionalProperties\":{\"type\":\"null\"}}";

	assert_invalid(s, "{\"a\":1,\"b\":1}",
	    "/: missing required property 'z'");
	assert_invalid(s, "{\"z\":null,\"a\":1,\"b\":1}",
	    "/: missing required property 'y'");
	assert_invalid(s, "{\"z\":null,\"y\":null,\"a\":1,\"b\":1}",
	    "/b: expected string, got number");
	assert_invalid(s, "{\"q\":1,\"p\":1,\"z\":null,\"y\":null,\"a\":1}",
	    "/a: expected string, got number");
	assert_invalid(s, "{\"q\":1,\"p\":1,\"z\":null,\"y\":null}",
	    "/q: expected null, got number");
	/* type before enum before the type's own keywords. */
	assert_invalid("{\"type\":\"string\",\"enum\":[\"aaaa\"],"
	    "\"maxLength\":2}", "\"bbbb\"",
	    "/: 'bbbb' is not one of \"aaaa\"");
	assert_invalid("{\"type\":\"string\",\"enum\":[\"aaaa\"],"
	    "\"maxLength\":2}", "4", "/: expected string, got number");
}

static void
test_schema_annotations_ignored(void **unused)
{
	const char *s = "{\"title\":\"t\",\"description\":\"d\","
	    "\"default\":5,\"examples\":[1,2],\"$schema\":\"x\","
	    "\"type\":\"string\"}";

	assert_valid(s, "\"anything\"");
	assert_invalid(s, "5", "/: expected string, got number");
}

static void
test_schema_validate_depth_limit(void **unused)
{
	json_t *s, *v, *e;
	char err[2048] = "";

	/* The deepest checked schema validates the deepest value. */
	s = nested_items(SCHEMA_MAX_DEPTH);
	v = nested_arrays(SCHEMA_MAX_DEPTH);
	assert_int_equal(schema_validate(s, v, err, sizeof err), 0);
	json_decref(s);
	json_decref(v);

	/* An unchecked deeper schema is still cut off. */
	s = nested_items(SCHEMA_MAX_DEPTH + 10);
	v = nested_arrays(SCHEMA_MAX_DEPTH + 10);
	assert_int_equal(schema_validate(s, v, err, sizeof err), -1);
	assert_non_null(strstr(err, ": value nested deeper than 64 levels"));
	json_decref(s);
	json_decref(v);

	/* A hostile deep answer costs only as much as the schema. */
	v = nested_arrays(5000);
	s = parse("{\"type\":\"array\",\"items\":{\"type\":\"array\","
	    "\"items\":{\"type\":\"array\"}}}");
	assert_int_equal(schema_validate(s, v, err, sizeof err), 0);
	json_decref(s);
	e = json_pack("{s:[O]}", "enum", json_array_get(v, 0));
	assert_int_equal(schema_validate(e, v, err, sizeof err), -1);
	assert_int_equal(schema_validate(e, json_array_get(v, 0), err,
	    sizeof err), -1);	/* deeper than the limit: not equal */
	json_decref(e);
	json_decref(v);

	/* A const of the limit's depth compares equal. */
	v = nested_arrays(SCHEMA_MAX_DEPTH);
	s = json_pack("{s:O}", "const", v);
	assert_int_equal(schema_check(s, "o", err, sizeof err), 0);
	assert_int_equal(schema_validate(s, v, err, sizeof err), 0);
	json_decref(s);
	json_decref(v);
}

static void
test_schema_long_values_are_cut(void **unused)
{
	char big[300], text[400], want[200];
	json_t *s, *v;
	char err[512] = "";

	memset(big, 'x', 200);
	big[200] = '\0';
	snprintf(text, sizeof text, "\"%s\"", big);
	s = parse("{\"enum\":[\"a\"]}");
	v = parse(text);
	assert_int_equal(schema_validate(s, v, err, sizeof err), -1);
	snprintf(want, sizeof want, "/: '%.64s...' is not one of \"a\"", big);
	assert_string_equal(err, want);
	json_decref(s);
	json_decref(v);
}

static void
test_schema_small_error_buffer(void **unused)
{
	json_t *s = parse("{\"properties\":{\"a\":{\"type\":\"string\"}}}");
	json_t *v = parse("{\"a\":1}");
	json_t *u = parse("{\"enum\":[\"日本語\"]}");
	json_t *w = parse("\"日本語日本語\"");
	char err[8];

	memset(err, 'Z', sizeof err);
	assert_int_equal(schema_validate(s, v, err, sizeof err), -1);
	assert_string_equal(err, "/a: exp");
	assert_int_equal(schema_validate(s, v, NULL, 0), -1);
	assert_int_equal(schema_validate(s, v, err, 0), -1);
	/* A cut never splits a character. */
	assert_int_equal(schema_validate(u, w, err, 7), -1);
	assert_string_equal(err, "/: '");
	assert_int_equal(schema_validate(u, w, err, 8), -1);
	assert_string_equal(err, "/: '日");
	json_decref(s);
	s = parse("{\"x\":1}");
	assert_int_equal(schema_check(s, "output_schema", NULL, 0), -1);
	json_decref(s);
	json_decref(v);
	json_decref(u);
	json_decref(w);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test(f)
		T(test_schema_check_accepts_whole_subset),
		T(test_schema_check_rejects_unsupported_keyword),
		T(test_schema_check_suggests_keyword_for_typo),
		T(test_schema_check_rejects_unknown_type),
		T(test_schema_check_rejects_malformed_keywords),
		T(test_schema_check_rejects_min_above_max),
		T(test_schema_check_rejects_unreachable_required),
		T(test_schema_check_escapes_pointer),
		T(test_schema_check_depth_limit),
		T(test_schema_type_each_accepts_and_rejects),
		T(test_schema_integer_accepts_zero_fraction),
		T(test_schema_nested_pointer),
		T(test_schema_required),
		T(test_schema_additional_properties),
		T(test_schema_items),
		T(test_schema_enum),
		T(test_schema_const),
		T(test_schema_min_max_items),
		T(test_schema_length_counts_code_points),
		T(test_schema_minimum_maximum),
		T(test_schema_validate_escapes_pointer),
		T(test_schema_order_is_deterministic),
		T(test_schema_annotations_ignored),
		T(test_schema_validate_depth_limit),
		T(test_schema_long_values_are_cut),
		T(test_schema_small_error_buffer),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
