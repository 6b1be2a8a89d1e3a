/* test_routes.c - the route table: matching, aliases, 404/405, auth, and the OpenAPI document */
#include <ctype.h>
#include <string.h>

#include "api.h"
#include "auth.h"
#include "ct.h"
#include "routes.h"

extern const char api_openapi_json[];
extern const size_t api_openapi_json_len;

static const struct route *find(const char *method, const char *path,
                                char params[API_MAX_PARAMS][API_PARAM_MAX], char *allow)
{
    return routes_find(api_routes, method, path, params, allow, 128);
}

static const char *no_header(void *conn, const char *name)
{
    const char *auth = conn;
    return !strcmp(name, "Authorization") ? auth : NULL;
}

/* Dispatches method path with an Authorization value; returns the status. */
static int dispatch(const struct api_env *env, const char *method, const char *path,
                    const char *authorization)
{
    struct api_request rq = {.method = method,
                             .path = path,
                             .header = no_header,
                             .query = no_header,
                             .conn = (void *)authorization,
                             .env = env};
    struct api_response rs;
    api_response_init(&rs);
    api_dispatch(&rq, &rs);
    int status = rs.status;
    api_response_clear(&rs);
    return status;
}

int main(void)
{
    char p[API_MAX_PARAMS][API_PARAM_MAX], allow[128];
    const struct route *r;
    const char *id = "0b6a3f5e-1c2d-4e5f-8a9b-0c1d2e3f4a5b";
    char path[256];

    /* Patterns. */
    CHECK(routes_pattern_match("/v1/jobs/{id}", "/v1/jobs/abc", p) && !strcmp(p[0], "abc"),
          "capture %s", p[0]);
    CHECK(routes_pattern_match("/v1/jobs/{id}", "/jobs/abc", p), "alias");
    CHECK(!routes_pattern_match("/v1/jobs/{id}", "/v1/jobs/", p), "empty capture");
    CHECK(!routes_pattern_match("/v1/jobs/{id}", "/v1/jobs/a/b", p), "two segments");
    CHECK(!routes_pattern_match("/v1/jobs", "/v1/jobs/", p), "trailing slash");
    CHECK(!routes_pattern_match("/healthz", "/v1/healthz", p), "no alias the other way");
    CHECK(routes_pattern_match("/v1/jobs/{id}/cancel", "/jobs/x/cancel", p) && !strcmp(p[0], "x"),
          "alias with capture");

    /* The table. */
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    r = find("GET", path, p, allow);
    CHECK(r && r->handler == api_jobs_get && !strcmp(p[0], id), "GET job");
    r = find("HEAD", path, p, allow);
    CHECK(r && r->handler == api_jobs_get, "HEAD is GET");
    r = find("DELETE", path + 3, p, allow);
    CHECK(r && r->handler == api_jobs_delete, "DELETE via alias");
    r = find("PUT", path, p, allow);
    CHECK(r == NULL, "PUT job: 405");
    CHECK(!strcmp(allow, "GET, HEAD, DELETE"), "Allow: %s", allow);
    r = find("GET", "/v1/jobs", p, allow);
    CHECK(r && r->handler == api_jobs_list, "list");
    r = find("POST", "/jobs", p, allow);
    CHECK(r && r->handler == api_jobs_create && r->role == AUTH_SUBMIT, "create");
    r = find("DELETE", "/v1/jobs", p, allow);
    CHECK(r == NULL && !strcmp(allow, "POST, GET, HEAD"), "Allow: %s", allow);
    snprintf(path, sizeof path, "/v1/jobs/%s/cancel", id);
    r = find("GET", path, p, allow);
    CHECK(r == NULL && !strcmp(allow, "POST"), "Allow: %s", allow);
    snprintf(path, sizeof path, "/v1/jobs/%s/checkpoint", id);
    r = find("GET", path, p, allow);
    CHECK(r && r->handler == api_jobs_checkpoint && r->role == AUTH_READ, "checkpoint");
    r = find("GET", "/nope", p, allow);
    CHECK(r && r->method == NULL, "404 entry");
    r = find("GET", "/v1/jobs/a/b/c", p, allow);
    CHECK(r && r->method == NULL, "404 entry, deep");
    r = find("GET", "/healthz", p, allow);
    CHECK(r && r->role == AUTH_NONE, "healthz open");

    /* Dispatch: auth and roles (health answers without the database). */
    struct auth *a = auth_create();
    char hex[AUTH_HASH_HEX + 1], spec[80], err[128];
    auth_hash_token("rtok", hex, err, sizeof err);
    snprintf(spec, sizeof spec, "read:%s", hex);
    auth_add(a, "r", spec, err, sizeof err);
    struct api_env env = {.auth = a, .db_path = "/nonexistent"};
    CHECK_INT(dispatch(&env, "GET", "/healthz", NULL), 200);
    CHECK_INT(dispatch(&env, "GET", "/v1/jobs", NULL), 401);
    CHECK_INT(dispatch(&env, "GET", "/v1/jobs", "Bearer wrong"), 401);
    CHECK_INT(dispatch(&env, "POST", "/v1/jobs", "Bearer rtok"), 403);
    CHECK_INT(dispatch(&env, "PATCH", "/v1/jobs", "Bearer rtok"), 405);
    CHECK_INT(dispatch(&env, "GET", "/nowhere", NULL), 404);
    CHECK_INT(dispatch(&env, "GET", "/v1/openapi.json", NULL), 200);
    auth_destroy(a);

    /* The OpenAPI document lists exactly the routes in the table. */
    json_error_t jerr;
    json_t *doc = json_loadb(api_openapi_json, api_openapi_json_len, 0, &jerr);
    CHECK(doc != NULL, "openapi.json parses: %s", jerr.text);
    json_t *paths = json_object_get(doc, "paths");
    size_t nroutes = 0, ndoc = 0;
    for (r = api_routes; r->method; r++) {
        char m[16];
        size_t i;
        for (i = 0; r->method[i] && i < sizeof m - 1; i++)
            m[i] = (char)tolower((unsigned char)r->method[i]);
        m[i] = '\0';
        CHECK(json_object_get(json_object_get(paths, r->pattern), m) != NULL,
              "%s %s is not in openapi.json", r->method, r->pattern);
        nroutes++;
    }
    const char *key;
    json_t *item;
    json_object_foreach(paths, key, item)
    {
        const char *method;
        json_t *op;
        json_object_foreach(item, method, op)
        {
            char M[16];
            size_t i;
            for (i = 0; method[i] && i < sizeof M - 1; i++)
                M[i] = (char)toupper((unsigned char)method[i]);
            M[i] = '\0';
            int found = 0;
            for (r = api_routes; r->method; r++)
                found |= !strcmp(r->method, M) && !strcmp(r->pattern, key);
            CHECK(found, "openapi.json documents %s %s, which is not routed", M, key);
            ndoc++;
        }
    }
    CHECK_INT(ndoc, nroutes);
    json_decref(doc);
    return ct_done("test_routes");
}
