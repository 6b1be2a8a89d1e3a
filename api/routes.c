/* routes.c - the route table, matching, authentication and dispatch */
#include "routes.h"
#include "static.h"

#include "err.h"

#include <stdio.h>
#include <string.h>

const struct route api_routes[] = {
    {"POST", "/v1/jobs", api_jobs_create, AUTH_SUBMIT, NULL},
    {"GET", "/v1/jobs", api_jobs_list, AUTH_READ, NULL},
    {"GET", "/v1/jobs/{id}", api_jobs_get, AUTH_READ, NULL},
    {"DELETE", "/v1/jobs/{id}", api_jobs_delete, AUTH_SUBMIT, NULL},
    {"GET", "/v1/jobs/{id}/result", api_jobs_result, AUTH_READ, NULL},
    {"POST", "/v1/jobs/{id}/cancel", api_jobs_cancel, AUTH_SUBMIT, NULL},
    {"GET", "/v1/jobs/{id}/checkpoint", api_jobs_checkpoint, AUTH_READ, NULL},
    {"GET", "/v1/models/inspect", api_models_inspect, AUTH_READ, NULL},
    {"PUT", "/v1/uploads/{name}", NULL, AUTH_SUBMIT, &api_uploads_put},
    {"GET", "/v1/uploads", api_uploads_list, AUTH_READ, NULL},
    {"GET", "/v1/uploads/{name}", api_uploads_get, AUTH_READ, NULL},
    {"DELETE", "/v1/uploads/{name}", api_uploads_delete, AUTH_SUBMIT, NULL},
    {"GET", "/v1/openapi.json", api_openapi_get, AUTH_NONE, NULL},
    {"GET", "/healthz", api_health_live, AUTH_NONE, NULL},
    {"GET", "/readyz", api_health_ready, AUTH_NONE, NULL},
    {"GET", "/metrics", api_health_metrics, AUTH_NONE, NULL},
    {"GET", "/", api_static_get, AUTH_NONE, NULL}, /* the dashboard: it asks for the token */
    {"GET", "/index.html", api_static_get, AUTH_NONE, NULL},
    {"GET", "/app.js", api_static_get, AUTH_NONE, NULL},
    {"GET", "/style.css", api_static_get, AUTH_NONE, NULL},
    {NULL, NULL, NULL, AUTH_NONE, NULL}, /* 404 */
};

static int match_exact(const char *pattern, const char *path,
                       char params[API_MAX_PARAMS][API_PARAM_MAX])
{
    int np = 0;
    const char *p = pattern, *s = path;

    while (*p && *s) {
        if (*p == '{') {
            const char *close = strchr(p, '}');
            const char *end = strchr(s, '/');
            size_t len = end ? (size_t)(end - s) : strlen(s);
            if (!close || len == 0 || len >= API_PARAM_MAX || np == API_MAX_PARAMS) return 0;
            memcpy(params[np], s, len);
            params[np][len] = '\0';
            np++;
            p = close + 1;
            s += len;
        } else if (*p++ != *s++) {
            return 0;
        }
    }
    return *p == '\0' && *s == '\0';
}

int routes_pattern_match(const char *pattern, const char *path,
                         char params[API_MAX_PARAMS][API_PARAM_MAX])
{
    if (match_exact(pattern, path, params)) return 1;
    /* Unversioned alias: "/v1/jobs" also answers "/jobs". */
    return !strncmp(pattern, "/v1/", 4) && match_exact(pattern + 3, path, params);
}

const struct route *routes_find(const struct route *table, const char *method, const char *path,
                                char params[API_MAX_PARAMS][API_PARAM_MAX], char *allow,
                                size_t allowlen)
{
    const struct route *r;
    const char *m = !strcmp(method, "HEAD") ? "GET" : method;
    size_t used = 0;

    if (allowlen) allow[0] = '\0';
    for (r = table; r->method; r++) {
        char scratch[API_MAX_PARAMS][API_PARAM_MAX];
        if (!routes_pattern_match(r->pattern, path, scratch)) continue;
        if (!strcmp(r->method, m)) {
            memcpy(params, scratch, sizeof scratch);
            return r;
        }
        if (strstr(allow, r->method)) /* listed already */
            continue;
        int n = snprintf(allow + used, allowlen - used, "%s%s", used ? ", " : "", r->method);
        if (n > 0 && (size_t)n < allowlen - used) used += (size_t)n;
        if (!strcmp(r->method, "GET")) {
            n = snprintf(allow + used, allowlen - used, ", HEAD");
            if (n > 0 && (size_t)n < allowlen - used) used += (size_t)n;
        }
    }
    return used ? NULL : r;
}

/* Authenticates rq for route r (auth is off when env->auth has no
 * tokens) and checks the role: 0, or -1 with rs answered. */
static int authorize(struct api_request *rq, struct api_response *rs, const struct route *r)
{
    rq->route = r->pattern;
    rq->token_name = "";
    rq->role = AUTH_ADMIN;
    if (r->role == AUTH_NONE || !auth_count(rq->env->auth)) return 0;
    const char *name = NULL;
    enum auth_role role = AUTH_NONE;
    int rc = auth_check(rq->env->auth, rq->header(rq->conn, "Authorization"), &name, &role);
    if (rc) {
        api_header(rs, "WWW-Authenticate", "Bearer realm=\"prunerd\"");
        api_reply_error(rs, 401, "unauthorized", NULL, "%s",
                        rc == ERR_NOTFOUND
                            ? "a bearer token is required (Authorization: Bearer ...)"
                            : "the bearer token is not valid");
        return -1;
    }
    rq->token_name = name;
    rq->role = role;
    if (role < r->role) {
        api_reply_error(rs, 403, "forbidden", NULL, "token '%s' has role %s; %s %s needs %s", name,
                        auth_role_name(role), r->method, r->pattern, auth_role_name(r->role));
        return -1;
    }
    return 0;
}

void api_dispatch(struct api_request *rq, struct api_response *rs)
{
    char allow[128];
    const struct route *r =
        routes_find(api_routes, rq->method, rq->path, rq->params, allow, sizeof allow);

    if (!r) {
        rq->route = "(405)";
        api_header(rs, "Allow", "%s", allow);
        api_reply_error(rs, 405, "method_not_allowed", NULL,
                        "%s is not allowed on %s (allowed: %s)", rq->method, rq->path, allow);
        return;
    }
    if (!r->method) {
        rq->route = "(404)";
        api_reply_error(rs, 404, "not_found", NULL, "no route %s %s", rq->method, rq->path);
        return;
    }
    if (authorize(rq, rs, r)) return;
    if (rq->body_not_json) {
        api_reply_error(rs, 415, "unsupported_media_type", NULL,
                        "send the body as Content-Type: application/json");
        return;
    }
    if (!r->handler) { /* a streamed route: api_stream_begin takes it */
        api_reply_error(rs, 500, "internal", NULL, "%s %s was not streamed", r->method, r->pattern);
        return;
    }
    r->handler(rq, rs);
}

int api_stream_begin(struct api_request *rq, struct api_response *rs,
                     const struct api_stream_ops **ops, void **ctx)
{
    char allow[128];
    const struct route *r =
        routes_find(api_routes, rq->method, rq->path, rq->params, allow, sizeof allow);
    *ops = NULL;
    *ctx = NULL;
    if (!r || !r->method || !r->stream) return 0;
    if (authorize(rq, rs, r) || r->stream->begin(rq, rs, ctx)) return -1;
    *ops = r->stream;
    return 1;
}
