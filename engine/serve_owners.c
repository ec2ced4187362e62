/*
 * serve_owners.c: who started each run served over MCP (docs/security.md,
 * "Who sees which runs").
 *
 * The server keeps a table of its own in the store's file:
 * mcp_run_owners (run_id, owner, started), where owner is the fingerprint
 * of the bearer token whose session called the tool (never the token).
 * The row is written before the run's process starts, so a run a session
 * started is never without its owner; runs started any other way (weft
 * run, weft mcp) have none and only an operator sees them.  The store's
 * schema does not know this table: weft gc leaves the rows of the runs it
 * deletes, and they are removed here when a server starts.  The A2A
 * server keeps beside it a2a_tasks (run_id, workflow, context_id, message,
 * started): what a task is besides its run, so that a restarted server
 * still answers GetTask and ListTasks for the tasks of before.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <sqlite3.h>

#include <event2/event.h>

#include "engine/serve_int.h"
#include "engine/store.h"
#include "runtime/util.h"

#define OWN_DEPTH	16	/* child runs followed up to their root */
#define OWN_PRUNE_S	86400	/* rows of missing runs older than this */

static const char own_schema[] =
    "CREATE TABLE IF NOT EXISTS mcp_run_owners ("
    "  run_id TEXT PRIMARY KEY NOT NULL,"
    "  owner TEXT NOT NULL,"
    "  started REAL NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS mcp_run_owners_by_owner"
    "  ON mcp_run_owners (owner, started);"
    "CREATE TABLE IF NOT EXISTS a2a_tasks ("
    "  run_id TEXT PRIMARY KEY NOT NULL,"
    "  workflow TEXT NOT NULL,"
    "  context_id TEXT NOT NULL,"
    "  message TEXT,"
    "  started REAL NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS a2a_tasks_by_workflow"
    "  ON a2a_tasks (workflow, started);";

/* Delete table's rows of runs the store no longer has, once old. */
static int
own_prune(sqlite3 *db, const char *table)
{
	sqlite3_stmt *st;
	char sql[160];
	int rc;

	snprintf(sql, sizeof sql, "DELETE FROM %s WHERE started < ?1 AND "
	    "run_id NOT IN (SELECT id FROM runs)", table);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_double(st, 1, now_wall() - OWN_PRUNE_S);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

int
serve_owners_open(struct serve *s, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;

	if (sqlite3_open_v2(s->db, &s->odb, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_busy_timeout(s->odb, 5000);
	if (sqlite3_exec(s->odb, own_schema, NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	if (own_prune(s->odb, "mcp_run_owners") != 0 ||
	    own_prune(s->odb, "a2a_tasks") != 0)
		goto fail;
	if (sqlite3_prepare_v3(s->odb, "INSERT INTO mcp_run_owners (run_id, "
	    "owner, started) VALUES (?1, ?2, ?3)", -1,
	    SQLITE_PREPARE_PERSISTENT, &s->o_put, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v3(s->odb, "SELECT owner FROM mcp_run_owners "
	    "WHERE run_id = ?1", -1, SQLITE_PREPARE_PERSISTENT, &s->o_get,
	    NULL) != SQLITE_OK ||
	    sqlite3_prepare_v3(s->odb, "SELECT run_id FROM mcp_run_owners "
	    "WHERE owner = ?1 ORDER BY started DESC LIMIT ?2", -1,
	    SQLITE_PREPARE_PERSISTENT, &s->o_mine, NULL) != SQLITE_OK)
		goto fail;
	return 0;
fail:
	errf(err, errlen, "cannot open database '%s' for the owners of runs: "
	    "%s", s->db, s->odb != NULL ? sqlite3_errmsg(s->odb) :
	    "out of memory");
	sqlite3_finalize(st);
	serve_owners_close(s);
	return -1;
}

void
serve_owners_close(struct serve *s)
{
	sqlite3_finalize(s->o_put);
	sqlite3_finalize(s->o_get);
	sqlite3_finalize(s->o_mine);
	s->o_put = s->o_get = s->o_mine = NULL;
	sqlite3_close_v2(s->odb);
	s->odb = NULL;
}

int
serve_owner_put(struct serve *s, const char *run, const char *owner,
    char *err, size_t errlen)
{
	int rc;

	sqlite3_bind_text(s->o_put, 1, run, -1, SQLITE_STATIC);
	sqlite3_bind_text(s->o_put, 2, owner, -1, SQLITE_STATIC);
	sqlite3_bind_double(s->o_put, 3, now_wall());
	rc = sqlite3_step(s->o_put);
	sqlite3_reset(s->o_put);
	sqlite3_clear_bindings(s->o_put);
	if (rc == SQLITE_DONE)
		return 0;
	errf(err, errlen, "cannot record who started run %s in '%s': %s", run,
	    s->db, sqlite3_errmsg(s->odb));
	return -1;
}

/* The owner of run id into buf (empty if none); -1 on a database error. */
static int
own_get(struct serve *s, const char *id, char *buf, size_t len)
{
	const unsigned char *o;
	int rc;

	buf[0] = '\0';
	sqlite3_bind_text(s->o_get, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(s->o_get);
	if (rc == SQLITE_ROW && (o = sqlite3_column_text(s->o_get, 0)) != NULL)
		snprintf(buf, len, "%s", (const char *)o);
	sqlite3_reset(s->o_get);
	sqlite3_clear_bindings(s->o_get);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

/* The parent run's id into arg (empty for a top-level run). */
static int
own_parent_cb(void *arg, const struct store_run *r)
{
	snprintf(arg, 17, "%s", r->parent_run != NULL ? r->parent_run : "");
	return 0;
}

int
serve_run_visible(struct serve *s, struct mcps_conn *cn, const char *id)
{
	if (mcps_conn_operator(cn))
		return 1;
	return serve_owner_sees(s, mcps_conn_owner(cn), id);
}

int
serve_owner_sees(struct serve *s, const char *mine, const char *id)
{
	char cur[17], parent[17], owner[80];
	int depth;

	if (mine == NULL || s->odb == NULL || strlen(id) != 16 ||
	    strspn(id, "0123456789abcdef") != 16)
		return 0;
	snprintf(cur, sizeof cur, "%s", id);
	/* A child run (map, agent_tool) belongs to whoever owns its root. */
	for (depth = 0; depth < OWN_DEPTH && cur[0] != '\0'; depth++) {
		if (own_get(s, cur, owner, sizeof owner) != 0)
			return 0;
		if (owner[0] != '\0')
			return strcmp(owner, mine) == 0;
		parent[0] = '\0';
		if (store_run_find(s->st, cur, own_parent_cb, parent) != 0)
			return 0;
		memcpy(cur, parent, sizeof cur);
	}
	return 0;
}

int
serve_owner_runs(struct serve *s, const char *owner, int limit,
    int (*cb)(void *, const struct store_run *), void *arg)
{
	char (*ids)[17] = xcalloc(limit > 0 ? limit : 1, sizeof *ids);
	const unsigned char *v;
	int n = 0, i;

	if (s->odb == NULL) {
		free(ids);
		return -1;
	}
	sqlite3_bind_text(s->o_mine, 1, owner, -1, SQLITE_STATIC);
	sqlite3_bind_int(s->o_mine, 2, limit);
	while (n < limit && sqlite3_step(s->o_mine) == SQLITE_ROW)
		if ((v = sqlite3_column_text(s->o_mine, 0)) != NULL)
			snprintf(ids[n++], sizeof ids[0], "%s",
			    (const char *)v);
	sqlite3_reset(s->o_mine);
	sqlite3_clear_bindings(s->o_mine);
	/* A run whose process has not made its row yet is not listed. */
	for (i = 0; i < n; i++)
		if (strlen(ids[i]) == 16)
			store_run_find(s->st, ids[i], cb, arg);
	free(ids);
	return 0;
}

int
serve_a2a_task_put(struct serve *s, const char *run, const char *workflow,
    const char *ctx, const char *message, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	int rc = SQLITE_ERROR;

	if (s->odb != NULL && sqlite3_prepare_v2(s->odb, "INSERT INTO "
	    "a2a_tasks (run_id, workflow, context_id, message, started) "
	    "VALUES (?1, ?2, ?3, ?4, ?5)", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, run, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, workflow, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, ctx, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, message, -1, SQLITE_STATIC);
		sqlite3_bind_double(st, 5, now_wall());
		rc = sqlite3_step(st);
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		return 0;
	errf(err, errlen, "cannot record A2A task %s in '%s': %s", run, s->db,
	    s->odb != NULL ? sqlite3_errmsg(s->odb) : "no database");
	return -1;
}

int
serve_a2a_task_get(struct serve *s, const char *run, const char *workflow,
    char *ctx, size_t ctxlen, char **message)
{
	sqlite3_stmt *st = NULL;
	const unsigned char *v;
	int found = -1;

	*message = NULL;
	if (s->odb == NULL || sqlite3_prepare_v2(s->odb, "SELECT context_id, "
	    "message FROM a2a_tasks WHERE run_id = ?1 AND workflow = ?2", -1,
	    &st, NULL) != SQLITE_OK) {
		sqlite3_finalize(st);
		return -1;
	}
	sqlite3_bind_text(st, 1, run, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, workflow, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		v = sqlite3_column_text(st, 0);
		snprintf(ctx, ctxlen, "%s", v != NULL ? (const char *)v : "");
		if ((v = sqlite3_column_text(st, 1)) != NULL)
			*message = xstrdup((const char *)v);
		found = 0;
	}
	sqlite3_finalize(st);
	return found;
}

int
serve_a2a_tasks(struct serve *s, const char *workflow, const char *owner,
    const char *ctx, int limit, int (*cb)(void *, const char *), void *arg)
{
	sqlite3_stmt *st = NULL;
	const unsigned char *v;
	char (*ids)[17];
	int n = 0, i;

	if (s->odb == NULL || sqlite3_prepare_v2(s->odb, "SELECT t.run_id "
	    "FROM a2a_tasks t LEFT JOIN mcp_run_owners o USING (run_id) "
	    "WHERE t.workflow = ?1 AND (?2 IS NULL OR o.owner = ?2) AND "
	    "(?3 IS NULL OR t.context_id = ?3) ORDER BY t.started DESC, "
	    "t.run_id LIMIT ?4", -1, &st, NULL) != SQLITE_OK) {
		sqlite3_finalize(st);
		return -1;
	}
	ids = xcalloc(limit > 0 ? (size_t)limit : 1, sizeof *ids);
	sqlite3_bind_text(st, 1, workflow, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, owner, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, ctx, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 4, limit);
	while (n < limit && sqlite3_step(st) == SQLITE_ROW)
		if ((v = sqlite3_column_text(st, 0)) != NULL)
			snprintf(ids[n++], sizeof ids[0], "%s",
			    (const char *)v);
	sqlite3_finalize(st);
	/* Called after the statement ended: cb may read the store. */
	for (i = 0; i < n; i++)
		if (cb(arg, ids[i]) != 0)
			break;
	free(ids);
	return 0;
}
