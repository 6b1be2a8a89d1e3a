/* openapi.c - GET /v1/openapi.json (api/openapi.json, embedded at build time) and the index page */
#include "api.h"

#include <stdlib.h>
#include <string.h>

extern const char api_openapi_json[];
extern const size_t api_openapi_json_len;

static void reply_static(struct api_response *rs, const char *text, size_t len, const char *type)
{
    rs->body = malloc(len + 1);
    if (!rs->body) {
        api_reply_error(rs, 500, "internal", NULL, "out of memory");
        return;
    }
    memcpy(rs->body, text, len + 1);
    rs->body_len = len;
    rs->status = 200;
    rs->content_type = type;
}

void api_openapi_get(struct api_request *rq, struct api_response *rs)
{
    (void)rq;
    reply_static(rs, api_openapi_json, api_openapi_json_len, "application/json");
}

void api_index_get(struct api_request *rq, struct api_response *rs)
{
    static const char page[] =
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>prunerd</title></head>\n"
        "<body><h1>prunerd</h1>\n<p>Pruning service for BERT text classifiers.</p>\n"
        "<ul><li><a href=\"/v1/openapi.json\">OpenAPI document</a></li>\n"
        "<li><a href=\"/v1/jobs\">jobs</a></li>\n<li><a href=\"/healthz\">healthz</a></li>\n"
        "<li><a href=\"/metrics\">metrics</a></li></ul></body></html>\n";
    (void)rq;
    reply_static(rs, page, sizeof page - 1, "text/html; charset=utf-8");
}
