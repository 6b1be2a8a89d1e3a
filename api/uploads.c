/* uploads.c - /v1/uploads: models and data sent with the job, streamed to the store */
#include "api.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "json_text.h"
#include "upload.h"

/* Whose uploads a request means: the caller's own, or, for an admin,
 * ?owner=NAME's ("" is auth-off's).  NULL after replying 403. */
static const char *owner_or_reply(struct api_request *rq, struct api_response *rs)
{
    const char *owner = rq->query(rq->conn, "owner");
    if (!owner || !strcmp(owner, rq->token_name)) return rq->token_name;
    if (rq->role >= AUTH_ADMIN) return owner;
    api_reply_error(rs, 403, "forbidden", "owner", "token '%s' may see only its own uploads",
                    rq->token_name);
    return NULL;
}

static json_t *upload_view(const struct api_request *rq, const struct upload_info *u)
{
    /* Server folders are for admins; other roles see the path relative to
     * the uploads root, which a job resolves to the same file. */
    json_t *v = json_pack(
        "{s:o, s:o, s:s, s:I, s:o, s:o, s:o, s:I}", "name", json_text_string(u->name), "owner",
        json_text_string(u->owner), "kind", u->kind == UPLOAD_FOLDER ? "folder" : "file", "bytes",
        (json_int_t)u->bytes, "sha256", u->sha256[0] ? json_string(u->sha256) : json_null(), "path",
        json_text_string(rq->role >= AUTH_ADMIN ? u->path : u->relpath), "created",
        api_time(u->created), "files", (json_int_t)u->files);
    if (v && u->kind == UPLOAD_FOLDER)
        json_object_set_new(v, "archive_bytes", json_integer((json_int_t)u->archive_bytes));
    return v;
}

/* An upload refused: the status and code for its fault. */
static void reply_upload_error(struct api_response *rs, int rc, const struct upload_error *e)
{
    const char *field = "body", *code = NULL;
    int status = 400;
    switch (e->fault) {
    case UPLOAD_FAULT_NAME:
        field = "name";
        code = "invalid_field";
        break;
    case UPLOAD_FAULT_OWNER:
        field = NULL;
        status = 403;
        code = "forbidden";
        break;
    case UPLOAD_FAULT_TOO_LARGE:
        status = 413;
        code = "payload_too_large";
        break;
    case UPLOAD_FAULT_QUOTA:
        field = NULL;
        status = 507;
        code = "insufficient_storage";
        break;
    case UPLOAD_FAULT_CHECKSUM:
        field = "Content-SHA256";
        status = rc == ERR_CONFLICT ? 422 : 400;
        code = rc == ERR_CONFLICT ? "checksum_mismatch" : "invalid_field";
        break;
    case UPLOAD_FAULT_EXISTS:
        field = "name";
        status = 409;
        code = "conflict";
        break;
    case UPLOAD_FAULT_UNSAFE:
        code = "unsafe_archive";
        break;
    case UPLOAD_FAULT_ARCHIVE:
        code = "invalid_archive";
        break;
    default:
        api_reply_err_code(rs, rc, NULL, e->message);
        return;
    }
    if (e->fault != UPLOAD_FAULT_UNSAFE) {
        api_reply_error(rs, status, code, field, "%s", e->message);
        return;
    }
    json_t *err = json_pack("{s:s, s:s, s:o, s:o}", "code", code, "field", field, "entry",
                            json_text_string(e->entry), "message", json_text_string(e->message));
    api_reply_json(rs, status, err ? json_pack("{s:o}", "error", err) : NULL);
}

/* ---- PUT /v1/uploads/{name}: streamed ---- */

static int put_begin(struct api_request *rq, struct api_response *rs, void **ctx)
{
    const char *replace = rq->query(rq->conn, "replace");
    const char *unpack = rq->query(rq->conn, "unpack");
    const char *length = rq->header(rq->conn, "Content-Length");
    struct upload_params p = {
        .owner = rq->token_name,
        .name = rq->params[0],
        .sha256 = rq->header(rq->conn, "Content-SHA256"),
        .limit = rq->env->upload_limit,
        .quota = rq->env->quota_bytes,
    };
    struct upload_error e;
    struct upload *u = NULL;

    if (replace && strcmp(replace, "0") && strcmp(replace, "false") && strcmp(replace, "1") &&
        strcmp(replace, "true")) {
        api_reply_error(rs, 400, "invalid_field", "replace", "replace is 1, true, 0 or false");
        return -1;
    }
    p.replace = replace && (!strcmp(replace, "1") || !strcmp(replace, "true"));
    if (unpack && !strcmp(unpack, "tar")) {
        p.unpack = UPLOAD_TAR;
    } else if (unpack && !strcmp(unpack, "zip")) {
        p.unpack = UPLOAD_ZIP;
    } else if (unpack) {
        api_reply_error(rs, 400, "invalid_field", "unpack",
                        "unpack is tar (plain or compressed) or zip");
        return -1;
    }
    if (length) {
        char *end;
        p.length = strtoull(length, &end, 10);
        p.length_known = *length && !*end;
    }
    int rc = upload_begin(rq->env->store, &p, &u, &e);
    if (rc) {
        reply_upload_error(rs, rc, &e);
        return -1;
    }
    *ctx = u;
    return 0;
}

static int put_write(void *ctx, const char *data, size_t n)
{
    struct upload_error e;
    return upload_write(ctx, data, n, &e) ? -1 : 0;
}

static void put_end(void *ctx, struct api_request *rq, struct api_response *rs)
{
    struct upload_info info;
    struct upload_error e;
    int replayed = 0;
    int rc = upload_finish(ctx, &info, &replayed, &e);
    if (rc) {
        reply_upload_error(rs, rc, &e);
        return;
    }
    api_header(rs, "Location", "/v1/uploads/%s", info.name);
    if (replayed) api_header(rs, "Idempotent-Replayed", "true");
    api_reply_json(rs, replayed ? 200 : 201, upload_view(rq, &info));
}

static void put_abort(void *ctx)
{
    upload_abort(ctx);
}

const struct api_stream_ops api_uploads_put = {put_begin, put_write, put_end, put_abort};

/* ---- GET and DELETE ---- */

void api_uploads_list(struct api_request *rq, struct api_response *rs)
{
    struct upload_info *v = NULL;
    size_t n = 0;
    char err[512];
    const char *owner = owner_or_reply(rq, rs);
    if (!owner) return;
    int rc = upload_list(rq->env->store, owner, &v, &n, err, sizeof err);
    if (rc) {
        api_reply_err_code(rs, rc, rc == ERR_DENIED ? "owner" : NULL, err);
        return;
    }
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        if (json_array_append_new(a, upload_view(rq, &v[i]))) {
            json_decref(a);
            a = NULL;
        }
    free(v);
    api_reply_json(rs, 200, a ? json_pack("{s:o}", "uploads", a) : NULL);
}

static int name_or_reply(struct api_request *rq, struct api_response *rs)
{
    if (upload_name_valid(rq->params[0])) return 0;
    api_reply_error(rs, 404, "not_found", NULL,
                    "no upload '%s' (names are 1 to %d of A-Z a-z 0-9 . _ -)", rq->params[0],
                    UPLOAD_NAME_MAX);
    return -1;
}

void api_uploads_get(struct api_request *rq, struct api_response *rs)
{
    struct upload_info info;
    char err[512];
    const char *owner = owner_or_reply(rq, rs);
    if (!owner || name_or_reply(rq, rs)) return;
    int rc = upload_get(rq->env->store, owner, rq->params[0], &info, err, sizeof err);
    if (rc) {
        api_reply_err_code(rs, rc, NULL, err);
        return;
    }
    api_reply_json(rs, 200, upload_view(rq, &info));
}

void api_uploads_delete(struct api_request *rq, struct api_response *rs)
{
    char err[512];
    const char *owner = owner_or_reply(rq, rs);
    if (!owner || name_or_reply(rq, rs)) return;
    int rc = upload_remove(rq->env->store, owner, rq->params[0], err, sizeof err);
    if (rc) {
        api_reply_err_code(rs, rc, NULL, err);
        return;
    }
    rs->status = 204;
}
