/* routes.h - the route table: method, pattern, handler, role needed */
#ifndef PRUNERD_ROUTES_H
#define PRUNERD_ROUTES_H

#include <stddef.h>

#include "api.h"

/*
 * Patterns are literal segments and "{name}" captures of one segment.
 * A "/v1/..." pattern also answers without the prefix ("/jobs/{id}").
 * The table ends with an entry whose method is NULL: the 404 handler.
 */
struct route {
    const char *method;
    const char *pattern;
    api_handler handler;
    enum auth_role role;                 /* AUTH_NONE: open even when tokens are set */
    const struct api_stream_ops *stream; /* set: the body is streamed (handler NULL) */
};

extern const struct route api_routes[];

/* Does path match pattern (exactly, or without pattern's "/v1" prefix)?
 * Writes the captures into params. */
int routes_pattern_match(const char *pattern, const char *path,
                         char params[API_MAX_PARAMS][API_PARAM_MAX]);

/*
 * Finds the route for method and path in table.  Returns the matching entry;
 * when the path matches only under other methods, returns NULL and writes
 * those methods into allow ("GET, DELETE"); when nothing matches, returns the
 * table's final (404) entry.  HEAD matches GET routes.
 */
const struct route *routes_find(const struct route *table, const char *method, const char *path,
                                char params[API_MAX_PARAMS][API_PARAM_MAX], char *allow,
                                size_t allowlen);

/* Routes, authenticates (auth is off when env->auth has no tokens),
 * checks the role and calls the handler.  Always fills rs. */
void api_dispatch(struct api_request *rq, struct api_response *rs);

/* Called with the headers only, before any of the body: 0 when the route
 * takes its body whole (gather it, then api_dispatch); 1 when it streams
 * it: authenticated, role checked and begun, with *ops and *ctx to use
 * (struct api_stream_ops); -1 when rs holds the answer already. */
int api_stream_begin(struct api_request *rq, struct api_response *rs,
                     const struct api_stream_ops **ops, void **ctx);

#endif
