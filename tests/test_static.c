/* test_static.c - the embedded dashboard: lookup, content types, ETag and 304, 404, routing */
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "ct.h"
#include "routes.h"
#include "static.h"

struct hdrs {
    const char *if_none_match;
};

static const char *get_header(void *conn, const char *name)
{
    const struct hdrs *h = conn;
    return !strcmp(name, "If-None-Match") ? h->if_none_match : NULL;
}

static const char *header_of(const struct api_response *rs, const char *name)
{
    for (size_t i = 0; i < rs->nheaders; i++)
        if (!strcmp(rs->headers[i].name, name)) return rs->headers[i].value;
    return NULL;
}

/* GET path with an If-None-Match value (or NULL); fills rs (caller clears it). */
static void get(const char *path, const char *inm, struct api_response *rs)
{
    struct hdrs h = {inm};
    struct api_request rq = {.method = "GET", .path = path, .header = get_header, .conn = &h};
    api_response_init(rs);
    api_static_get(&rq, rs);
}

int main(void)
{
    struct api_response rs;
    static const struct {
        const char *path, *type;
    } files[] = {
        {"/", "text/html; charset=utf-8"},
        {"/index.html", "text/html; charset=utf-8"},
        {"/app.js", "text/javascript; charset=utf-8"},
        {"/style.css", "text/css; charset=utf-8"},
    };

    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        const struct static_asset *a = static_find(files[i].path);
        CHECK(a != NULL, "%s is embedded", files[i].path);
        if (!a) continue;
        CHECK(a->len > 500 && a->data[a->len] == '\0', "%s: %zu bytes, NUL after", files[i].path,
              a->len);
        get(files[i].path, NULL, &rs);
        CHECK_INT(rs.status, 200);
        CHECK(rs.content_type && !strcmp(rs.content_type, files[i].type), "%s: type %s, got %s",
              files[i].path, files[i].type, rs.content_type ? rs.content_type : "(none)");
        CHECK(rs.body_len == a->len && rs.body && !memcmp(rs.body, a->data, a->len),
              "%s: the body is the embedded file", files[i].path);
        const char *etag = header_of(&rs, "ETag");
        CHECK(etag && etag[0] == '"' && strlen(etag) == 34, "%s: strong ETag, got %s",
              files[i].path, etag ? etag : "(none)");
        const char *cc = header_of(&rs, "Cache-Control");
        CHECK(cc && !strcmp(cc, "no-cache"), "%s: Cache-Control no-cache, got %s", files[i].path,
              cc ? cc : "(none)");
        char tag[64], list[160];
        snprintf(tag, sizeof tag, "%s", etag ? etag : "");
        api_response_clear(&rs);

        get(files[i].path, tag, &rs);
        CHECK(rs.status == 304 && rs.body == NULL, "%s: If-None-Match ETag -> 304, got %d",
              files[i].path, rs.status);
        api_response_clear(&rs);
        snprintf(list, sizeof list, "\"aaa\", W/%s", tag);
        get(files[i].path, list, &rs);
        CHECK(rs.status == 304, "%s: a list with W/ETag -> 304, got %d", files[i].path, rs.status);
        api_response_clear(&rs);
        get(files[i].path, "*", &rs);
        CHECK_INT(rs.status, 304);
        api_response_clear(&rs);
        /* A prefix of the ETag, or the ETag with more after it, is another ETag. */
        snprintf(list, sizeof list, "%.*s\"", (int)strlen(tag) - 2, tag);
        get(files[i].path, list, &rs);
        CHECK(rs.status == 200, "%s: a shorter ETag -> 200, got %d", files[i].path, rs.status);
        api_response_clear(&rs);
        snprintf(list, sizeof list, "%sx", tag);
        get(files[i].path, list, &rs);
        CHECK(rs.status == 200, "%s: a longer ETag -> 200, got %d", files[i].path, rs.status);
        api_response_clear(&rs);
    }
    CHECK(static_find("/") == static_find("/index.html"), "/ is /index.html");
    CHECK(static_find("/nothing.js") == NULL, "no /nothing.js");
    CHECK(static_find("app.js") == NULL, "paths start with /");
    get("/nothing.js", NULL, &rs);
    CHECK_INT(rs.status, 404);
    api_response_clear(&rs);

    /* HTML answers carry a CSP that allows our own script only. */
    get("/", NULL, &rs);
    const char *csp = header_of(&rs, "Content-Security-Policy");
    CHECK(csp && strstr(csp, "script-src 'self'") && !strstr(csp, "unsafe-inline"), "CSP on /: %s",
          csp ? csp : "(none)");
    api_response_clear(&rs);
    get("/app.js", NULL, &rs);
    CHECK(header_of(&rs, "Content-Security-Policy") == NULL, "no CSP on a script");
    api_response_clear(&rs);

    /* The routes: open (no token), GET only. */
    static const char *const paths[] = {"/", "/index.html", "/app.js", "/style.css"};
    for (size_t i = 0; i < 4; i++) {
        char params[API_MAX_PARAMS][API_PARAM_MAX], allow[128];
        const struct route *r =
            routes_find(api_routes, "GET", paths[i], params, allow, sizeof allow);
        CHECK(r && r->handler == api_static_get && r->role == AUTH_NONE,
              "GET %s routes to api_static_get without auth", paths[i]);
        r = routes_find(api_routes, "POST", paths[i], params, allow, sizeof allow);
        CHECK(r == NULL && !strcmp(allow, "GET, HEAD"), "POST %s: 405 with Allow GET, HEAD (%s)",
              paths[i], allow);
    }
    return ct_done("test_static");
}
