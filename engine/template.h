/*
 * template.h: "{key}" templating of instructions from the run state.
 *
 * "{name}" and "{a.b}" (dotted path into objects) are replaced by the value
 * from the state: strings verbatim, other values as compact JSON.  "{name?}"
 * renders as the empty string when the key is missing.  "{{" and "}}" are
 * literal braces.  A brace not followed by an identifier ([A-Za-z_][A-Za-z0-9_.]*)
 * and "}" is literal text, so JSON examples in an instruction survive.
 */
#ifndef WEFT_TEMPLATE_H
#define WEFT_TEMPLATE_H

#include <stddef.h>
#include "engine/state.h"

/*
 * Render tmpl against st.  On success *out is a new heap string and 0 is
 * returned.  A missing key returns -1 with "missing state key 'topic'" in
 * err, and sets *missing (if not NULL) to a heap copy of the key name.
 */
int template_render(const char *tmpl, const struct state *st, char **out,
    char **missing, char *err, size_t errlen);

#endif
