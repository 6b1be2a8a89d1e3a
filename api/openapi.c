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
