/* routes.c - the route table, matching, authentication and dispatch */
#include "routes.h"
#include "static.h"

#include "err.h"

#include <stdio.h>
#include <string.h>

const struct route api_routes[] = {
    {"POST", "/v1/jobs", api_jobs_create, AUTH_SUBMIT},
    {"GET", "/v1/jobs", api_jobs_list, AUTH_READ},
    {"GET", "/v1/jobs/{id}", api_jobs_get, AUTH_READ},
    {"DELETE", "/v1/jobs/{id}", api_jobs_delete, AUTH_SUBMIT},
    {"GET", "/v1/jobs/{id}/result", api_jobs_result, AUTH_READ},
    {"POST", "/v1/jobs/{id}/cancel", api_jobs_cancel, AUTH_SUBMIT},
    {"GET", "/v1/jobs/{id}/checkpoint", api_jobs_checkpoint, AUTH_READ},
    {"GET", "/v1/models/inspect", api_models_inspect, AUTH_READ},
    {"GET", "/v1/openapi.json", api_openapi_get, AUTH_NONE},
    {"GET", "/healthz", api_health_live, AUTH_NONE},
    {"GET", "/readyz", api_health_ready, AUTH_NONE},
    {"GET", "/metrics", api_health_metrics, AUTH_NONE},
    {"GET", "/", api_static_get, AUTH_NONE}, /* the dashboard: it asks for the token */
    {"GET", "/index.html", api_static_get, AUTH_NONE},
    {"GET", "/app.js", api_static_get, AUTH_NONE},
    {"GET", "/style.css", api_static_get, AUTH_NONE},
    {NULL, NULL, NULL, AUTH_NONE}, /* 404 */
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
    rq->route = r->pattern;
    rq->token_name = "";
    rq->role = AUTH_ADMIN;
    if (r->role != AUTH_NONE && auth_count(rq->env->auth)) {
        const char *name = NULL;
        enum auth_role role = AUTH_NONE;
        int rc = auth_check(rq->env->auth, rq->header(rq->conn, "Authorization"), &name, &role);
        if (rc) {
            api_header(rs, "WWW-Authenticate", "Bearer realm=\"prunerd\"");
            api_reply_error(rs, 401, "unauthorized", NULL, "%s",
                            rc == ERR_NOTFOUND
                                ? "a bearer token is required (Authorization: Bearer ...)"
                                : "the bearer token is not valid");
            return;
        }
        rq->token_name = name;
        rq->role = role;
        if (role < r->role) {
            api_reply_error(rs, 403, "forbidden", NULL, "token '%s' has role %s; %s %s needs %s",
                            name, auth_role_name(role), r->method, r->pattern,
                            auth_role_name(r->role));
            return;
        }
    }
    if (rq->body_not_json) {
        api_reply_error(rs, 415, "unsupported_media_type", NULL,
                        "send the body as Content-Type: application/json");
        return;
    }
    r->handler(rq, rs);
}
