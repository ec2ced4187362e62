/*
 * view.h: the trajectory viewer (docs/viewer.md): its pages, embedded in
 * the binary (the files of viewer/, generated into viewer/assets.c), and
 * its read-only JSON API under /api/ on a store, as routes of one HTTP
 * listener (runtime/httpd_routes.h).  `weft view` serves it alone;
 * `weft serve` adds it at / behind its bearer token.
 *
 * All on the loop thread of the listener's event base.
 */
#ifndef WEFT_VIEW_H
#define WEFT_VIEW_H

#include <stddef.h>

struct event_base;
struct httpd_routes;
struct view;

/* One embedded file of viewer/ (viewer/assets.c, generated). */
struct view_asset {
	const char	*path;		/* "/app.js" */
	const char	*type;		/* Content-Type */
	const unsigned char *data;
	size_t		 len;
};
extern const struct view_asset view_assets[];

/*
 * Open the store at db for reading and add the viewer's routes (/, the
 * assets, /api/...) to routes.  operator_only: a bearer token of role
 * client is refused (weft serve: a client token sees only its own runs,
 * the viewer shows all).  Returns the viewer (free it before the
 * listener), or NULL with err.
 */
struct view *view_new(struct event_base *, struct httpd_routes *,
    const char *db, int operator_only, char *err, size_t errlen);
/*
 * weft view --golden FILE: /api/eval scores runs against it (weft eval).
 * Returns 0, or -1 with err when it cannot be read.
 */
int view_set_golden(struct view *, const char *path, char *err,
    size_t errlen);
/* End the live streams and close the store. */
void view_free(struct view *);

#endif
