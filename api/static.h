/* static.h - the dashboard's files (web/), compiled in, served without auth */
#ifndef PRUNERD_STATIC_H
#define PRUNERD_STATIC_H

#include <stddef.h>

#include "api.h"

/* One file of web/, embedded by tools/embed.py web (web_assets.c). */
struct static_asset {
    const char *path;          /* "/index.html": "/" + the file's name */
    const char *content_type;  /* from the extension */
    const unsigned char *data; /* len bytes, then a NUL */
    size_t len;
    const char *etag; /* quoted strong ETag: a prefix of the sha256 */
};

/* The table ends with an entry whose path is NULL. */
extern const struct static_asset static_assets[];

/* The asset served at path ("/" is "/index.html"), or NULL. */
const struct static_asset *static_find(const char *path);

/*
 * GET / , /index.html, /app.js, /style.css: the dashboard.  Answers 200
 * with ETag and Cache-Control: no-cache (the browser revalidates; an
 * unchanged file costs a 304), 304 when If-None-Match holds the ETag,
 * 404 for a path with no asset.  The page asks for a token itself, so
 * these routes need none.
 */
void api_static_get(struct api_request *rq, struct api_response *rs);

#endif
