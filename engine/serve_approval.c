/*
 * serve_approval.c: a served run that waits for approval asks its MCP
 * client's user, when the client declared elicitation: the approval's
 * prompt and schema become an elicitation/create on the tools/call's
 * stream, and an accepted answer (checked against the schema) or a
 * decline goes to the store's approvals table as weft approve's would.
 * The run's poll (serve_runs.c, exec_poll) then takes it.  A client that
 * cannot elicit, or dismisses the question, leaves the approval to weft
 * approve and weft reject.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "engine/approval.h"
#include "engine/serve_int.h"
#include "engine/store.h"
#include "runtime/util.h"

struct ask {
	struct store	*st;
	char		*run_id, *path, *schema;
	int		 call;
};

static void
ask_free(struct ask *q)
{
	free(q->run_id);
	free(q->path);
	free(q->schema);
	free(q);
}

/* The client's user answered (m), or the session ended (NULL). */
static void
ask_answer_cb(void *arg, const struct jrpc_msg *m)
{
	struct ask *q = arg;
	const char *action;
	char err[512], *content, *text;
	json_t *v = NULL;

	action = m != NULL && m->kind != JRPC_ERROR_RESPONSE ?
	    json_string_value(json_object_get(m->result, "action")) : NULL;
	if (action != NULL && strcmp(action, "accept") == 0) {
		content = json_dumps(json_object_get(m->result, "content"),
		    JSON_COMPACT);
		v = approval_make_answer(q->schema, 1, q->schema ? content :
		    NULL, NULL, "mcp elicitation", err, sizeof err);
		free(content);
	} else if (action != NULL && strcmp(action, "decline") == 0)
		v = approval_make_answer(NULL, 0, NULL, "declined by the MCP "
		    "client's user", "mcp elicitation", err, sizeof err);
	if (v != NULL) {
		text = json_dumps(v, JSON_COMPACT);
		store_approval_answer(q->st, q->run_id, q->path, q->call,
		    strcmp(action, "accept") == 0 ? "approved" : "rejected",
		    text, now_wall());
		free(text);
		json_decref(v);
	}
	ask_free(q);
}

void
serve_approval_ask(struct store *st, const char *run_id,
    struct mcps_call *call, const struct store_event *e)
{
	struct mcps_conn *cn = call != NULL ? mcps_call_conn(call) : NULL;
	json_t *p, *sc, *rs, *req;
	struct ask *q;

	if (cn == NULL || !mcps_conn_client_can(cn, "elicitation") ||
	    e->payload == NULL || (p = json_loads(e->payload, 0, NULL)) ==
	    NULL)
		return;
	sc = json_object_get(p, "schema");
	/* Elicitation asks for a flat object: other schemas stay with weft
	   approve. */
	if (sc != NULL && !json_is_object(json_object_get(sc, "properties"))) {
		json_decref(p);
		return;
	}
	q = xcalloc(1, sizeof *q);
	q->st = st;
	q->run_id = xstrdup(run_id);
	q->path = xstrdup(e->node_path ? e->node_path : "");
	q->call = (int)json_integer_value(json_object_get(p, "call"));
	q->schema = sc != NULL ? json_dumps(sc, JSON_COMPACT) : NULL;
	rs = sc != NULL ? json_incref(sc) : json_pack("{s:s, s:{}}", "type",
	    "object", "properties");
	req = json_pack("{s:s?, s:o}", "message", json_string_value(
	    json_object_get(p, "prompt")), "requestedSchema", rs);
	json_decref(p);
	if (mcps_call_request(call, "elicitation/create", req, ask_answer_cb,
	    q) != 0)
		ask_free(q);
}
