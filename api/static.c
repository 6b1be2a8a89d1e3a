/* static.c - serves the embedded dashboard (web/) with ETags */
#include "static.h"

#include <stdlib.h>
#include <string.h>

#include "range.h"

const struct static_asset *static_find(const char *path)
{
    if (!path) return NULL;
    if (!strcmp(path, "/")) path = "/index.html";
    for (const struct static_asset *a = static_assets; a->path; a++)
        if (!strcmp(a->path, path)) return a;
    return NULL;
}

void api_static_get(struct api_request *rq, struct api_response *rs)
{
    const struct static_asset *a = static_find(rq->path);

    if (!a) {
        api_reply_error(rs, 404, "not_found", NULL, "no file %s", rq->path);
        return;
    }
    api_header(rs, "ETag", "%s", a->etag);
    api_header(rs, "Cache-Control", "no-cache");
    api_header(rs, "X-Content-Type-Options", "nosniff");
    if (!strncmp(a->content_type, "text/html", 9)) {
        /* Only our own script and style run; no inline script, nothing framed. */
        api_header(rs, "Content-Security-Policy",
                   "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: "
                   "data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
                   "frame-ancestors 'none'; form-action 'none'");
        api_header(rs, "Referrer-Policy", "no-referrer");
    }
    if (range_if_none_match(rq->header(rq->conn, "If-None-Match"), a->etag)) {
        rs->status = 304;
        return;
    }
    rs->body = malloc(a->len + 1);
    if (!rs->body) {
        api_reply_error(rs, 500, "internal", NULL, "out of memory");
        return;
    }
    memcpy(rs->body, a->data, a->len + 1);
    rs->body_len = a->len;
    rs->status = 200;
    rs->content_type = a->content_type;
}
