/* jobs.c - /v1/jobs: submit, list, view, result, cancel, delete, checkpoint download */
#include "api.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "committer.h"
#include "err.h"
#include "job.h"
#include "json_text.h"
#include "queue.h"
#include "range.h"
#include "roots.h"
#include "store.h"
#include "upload.h"

static json_t *parse_text(const char *text)
{
    return text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
}

/* result.metrics[when][metric], or null before it is known. */
static json_t *result_number(const json_t *res, const char *when, const char *metric)
{
    const json_t *v =
        json_object_get(json_object_get(json_object_get(res, "metrics"), when), metric);
    return json_is_number(v) ? json_real(json_number_value(v)) : json_null();
}

static void add_summary(json_t *o, const json_t *res)
{
    json_object_set_new(o, "accuracy_before", result_number(res, "before", "accuracy"));
    json_object_set_new(o, "accuracy_after", result_number(res, "after", "accuracy"));
    json_object_set_new(o, "macro_f1_before", result_number(res, "before", "macro_f1"));
    json_object_set_new(o, "macro_f1_after", result_number(res, "after", "macro_f1"));
}

/* ---- server paths ---- */

/* The folders whose names a non-admin caller does not see: the roots and the
 * artifact dir, longest first (a root inside another is taken off whole). */
struct hidden {
    const char *dir[64];
    size_t n;
};

static void hidden_dirs(const struct api_request *rq, struct hidden *h)
{
    h->n = 0;
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < roots_count(rq->env->roots, (enum roots_kind)k); i++)
            if (h->n < sizeof h->dir / sizeof h->dir[0] - 1)
                h->dir[h->n++] = roots_get(rq->env->roots, (enum roots_kind)k, i);
    if (rq->env->store) h->dir[h->n++] = store_dir(rq->env->store);
    for (size_t i = 1; i < h->n; i++) /* insertion sort by length, longest first */
        for (size_t j = i; j > 0 && strlen(h->dir[j]) > strlen(h->dir[j - 1]); j--) {
            const char *t = h->dir[j];
            h->dir[j] = h->dir[j - 1];
            h->dir[j - 1] = t;
        }
}

/* s with every "<hidden dir>/" taken off (a path becomes relative to its
 * root, which is how a request may name it again) and a hidden dir named
 * alone shown as "."; malloc'd, NULL when out of memory. */
static char *strip_dirs(const char *s, const struct hidden *h)
{
    char *out = malloc(strlen(s) + 2), *w = out;
    if (!out) return NULL;
    for (const char *p = s; *p;) {
        size_t skip = 0;
        for (size_t i = 0; i < h->n && !skip; i++) {
            size_t n = strlen(h->dir[i]);
            if (n > 1 && !strncmp(p, h->dir[i], n) &&
                (p[n] == '/' || p[n] == '\0' || p[n] == '\'' || p[n] == '"' || p[n] == ' ' ||
                 p[n] == ':'))
                skip = n + (p[n] == '/');
        }
        if (skip) {
            if (p[skip - 1] != '/') *w++ = '.';
            p += skip;
        } else {
            *w++ = *p++;
        }
    }
    *w = '\0';
    return out;
}

/* Rewrites every string in v (in place) with strip_dirs. */
static void hide_paths(json_t *v, const struct hidden *h)
{
    const char *key;
    json_t *x;
    size_t i;
    if (json_is_string(v)) {
        char *t = strip_dirs(json_string_value(v), h);
        if (t && strcmp(t, json_string_value(v))) json_string_set(v, t);
        free(t);
    } else if (json_is_object(v)) {
        json_object_foreach(v, key, x) hide_paths(x, h);
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, x) hide_paths(x, h);
    }
}

/* What rq's caller may see of a view: an admin (or anyone, with auth off)
 * sees server paths whole; every other role sees them relative to their
 * root.  Steals v; returns it. */
static json_t *for_caller(const struct api_request *rq, json_t *v)
{
    struct hidden h;
    if (!v || rq->role >= AUTH_ADMIN || !rq->env->roots) return v;
    hidden_dirs(rq, &h);
    hide_paths(v, &h);
    return v;
}

/* ---- views ---- */

/* The JSON view of a job row; full adds stages, attempts, error, links and,
 * once the job is done, result.json's metrics, sparsity, timings, artifacts
 * and provenance. */
static json_t *job_view(const struct job_row *r, int full)
{
    json_t *res = parse_text(r->result);
    json_t *req = parse_text(r->request);
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:s, s:f, s:s}", "id", r->id, "name", r->name ? r->name : "",
                  "status", job_status_name(r->status), "stage", r->stage ? r->stage : "",
                  "progress", r->progress, "owner", r->owner ? r->owner : "");
    if (!o) goto out;
    json_object_set_new(o, "created_at", api_time(r->created_at));
    json_object_set_new(o, "started_at", api_time(r->started_at));
    json_object_set_new(o, "finished_at", api_time(r->finished_at));
    json_object_set(o, "request", req ? req : json_null());
    add_summary(o, res);
    if (full) {
        json_t *stages = parse_text(r->stages);
        json_object_set_new(o, "stages", stages ? stages : json_array());
        json_object_set_new(o, "attempts", json_integer(r->attempts));
        json_object_set_new(o, "cancel_requested", json_boolean(r->cancel_requested));
        json_object_set_new(o, "error", r->error ? json_string(r->error) : json_null());
        json_object_set_new(o, "files_deleted", json_boolean(r->files_deleted));
        /* Who ran it last (PostgreSQL: host:pid:start) and under which fence. */
        json_object_set_new(o, "claimed_by", json_string(r->claimed_by));
        json_object_set_new(o, "fence", json_integer((json_int_t)r->fence));
        char link[128];
        snprintf(link, sizeof link, "/v1/jobs/%s/result", r->id);
        json_t *links = json_pack("{s:s}", "result", link);
        snprintf(link, sizeof link, "/v1/jobs/%s/checkpoint", r->id);
        json_object_set_new(links, "checkpoint", json_string(link));
        json_object_set_new(o, "links", links);
        static const char *const parts[] = {"metrics", "sparsity", "timings", "artifacts",
                                            "provenance"};
        for (size_t i = 0; res && i < sizeof parts / sizeof parts[0]; i++) {
            json_t *v = json_object_get(res, parts[i]);
            if (v) json_object_set(o, parts[i], v);
        }
    }
out:
    json_decref(res);
    json_decref(req);
    return o;
}

/* The key of a JSON_REJECT_DUPLICATES error, decoded ("a\\u006dount" is
 * "amount"), into key; 0 for any other error.  jansson stops just past the
 * key's closing quote, so the key is the string token ending there. */
static int duplicate_key_of(const json_error_t *e, const char *body, size_t len, char *key,
                            size_t n)
{
    size_t end = (size_t)e->position, start;
    if (json_error_code(e) != json_error_duplicate_key || end < 2 || end > len ||
        body[end - 1] != '"')
        return 0;
    /* Back to the opening quote: the first one not escaped by a backslash. */
    for (start = end - 1; start-- > 0;) {
        size_t bs = 0;
        if (body[start] != '"') continue;
        while (bs < start && body[start - 1 - bs] == '\\')
            bs++;
        if (bs % 2 == 0) break;
    }
    if (start >= end) return 0;
    json_t *k = json_loadb(body + start, end - start, JSON_DECODE_ANY, NULL);
    int ok = json_is_string(k);
    if (ok) snprintf(key, n, "%s", json_string_value(k));
    json_decref(k);
    return ok;
}

/* Loads the job named by the {id} capture and returns 0, or replies 404 (an
 * id that is no UUID names no job either) or 5xx and returns the code. */
static int get_job_or_reply(struct api_request *rq, struct api_response *rs, struct job_row *row)
{
    char err[256];
    const char *id = rq->params[0];
    memset(row, 0, sizeof *row);
    if (!api_valid_job_id(id)) {
        api_reply_error(rs, 404, "not_found", NULL, "no job '%s' (job ids are UUIDs)", id);
        return ERR_NOTFOUND;
    }
    int rc = queue_get(rq->q, id, row, err, sizeof err);
    if (rc == ERR_NOTFOUND) {
        api_reply_error(rs, 404, "not_found", NULL, "no job %s", id);
        return rc;
    }
    if (rc) {
        api_reply_err_code(rs, rc, NULL, err);
        return rc;
    }
    return 0;
}

/* A submit token may act on its own jobs only; admin on any.  Returns 0, or
 * replies 403 and returns ERR_DENIED. */
static int may_modify_or_reply(struct api_request *rq, struct api_response *rs,
                               const struct job_row *row)
{
    if (rq->role >= AUTH_ADMIN || (row->owner && !strcmp(row->owner, rq->token_name))) return 0;
    api_reply_error(rs, 403, "forbidden", NULL,
                    "job %s belongs to '%s'; token '%s' may not change it", row->id,
                    row->owner ? row->owner : "", rq->token_name);
    return ERR_DENIED;
}

/* ---- handlers ---- */

void api_jobs_create(struct api_request *rq, struct api_response *rs)
{
    json_t *in = NULL, *req = NULL;
    struct job_spec spec = {0};
    struct job_field_error fe = {{0}, {0}};
    json_error_t jerr;
    char err[512], id[JOB_ID_LEN + 1], *text = NULL;
    int existed = 0, rc;
    const char *idem = rq->header(rq->conn, "Idempotency-Key");

    if (rq->env->quota_bytes && store_used(rq->env->store) >= rq->env->quota_bytes) {
        api_reply_error(rs, 507, "insufficient_storage", NULL,
                        "the artifact store is over its quota of %llu bytes",
                        (unsigned long long)rq->env->quota_bytes);
        goto out;
    }
    if (idem && (!*idem || strlen(idem) > QUEUE_IDEM_KEY_MAX)) {
        api_reply_error(rs, 400, "invalid_field", "Idempotency-Key", "must have 1 to %d characters",
                        QUEUE_IDEM_KEY_MAX);
        goto out;
    }
    if (!rq->body || !rq->body_len) {
        api_reply_error(rs, 400, "invalid_field", "body", "a JSON job request is required");
        goto out;
    }
    if (!(in = json_loadb(rq->body, rq->body_len, JSON_REJECT_DUPLICATES, &jerr))) {
        char key[256];
        if (duplicate_key_of(&jerr, rq->body, rq->body_len, key, sizeof key))
            api_reply_error(rs, 400, "duplicate_key", key,
                            "the key '%s' appears twice (line %d column %d): send each key once; "
                            "parsers disagree on which value wins",
                            key, jerr.line, jerr.column);
        else
            api_reply_error(rs, 400, "invalid_json", "body", "line %d column %d: %s", jerr.line,
                            jerr.column, jerr.text);
        goto out;
    }
    /* The fields, the paths (inside the roots, and there), then the model's
     * format, files and config, before it is queued. */
    /* ... another caller's uploads included: they are refused. */
    struct upload_scope scope = {rq->env->roots, rq->env->store, rq->token_name,
                                 rq->role >= AUTH_ADMIN};
    if ((rc = job_request_normalize(in, &req, &spec, &fe)) ||
        (rc = job_request_resolve_paths(&spec, req, upload_job_resolve, &scope, &fe)) ||
        (rc = job_check_model(&spec, upload_model_resolve, &scope, &fe))) {
        api_reply_field_error(rs, rc, fe.field[0] ? fe.field : NULL, fe.message);
        goto out;
    }
    if (!(text = json_text_dumps(req, JSON_COMPACT | JSON_PRESERVE_ORDER))) {
        api_reply_error(rs, 500, "internal", NULL, "cannot serialise the request");
        goto out;
    }
    struct queue_submission sub = {
        .request_json = text, .name = spec.name, .owner = rq->token_name, .idem_key = idem};
    if ((rc = committer_submit(rq->env->committer, &sub))) {
        api_reply_err_code(rs, rc, rc == ERR_CONFLICT ? "Idempotency-Key" : NULL, sub.err);
        goto out;
    }
    existed = sub.existed;
    snprintf(id, sizeof id, "%s", sub.id);
    if (!existed && rq->env->job_submitted) rq->env->job_submitted(rq->env->ud);
    /* A new job's row is known without another round trip to the database;
     * a replay reads the earlier job. */
    struct job_row row;
    if ((rc = existed ? queue_get(rq->q, id, &row, err, sizeof err)
                      : queue_submission_row(&sub, &row, err, sizeof err))) {
        api_reply_err_code(rs, rc, NULL, err);
        goto out;
    }
    api_header(rs, "Location", "/v1/jobs/%s", id);
    if (existed) api_header(rs, "Idempotent-Replayed", "true");
    api_reply_json(rs, existed ? 200 : 201, for_caller(rq, job_view(&row, 1)));
    job_row_free(&row);
out:
    free(text);
    json_decref(in);
    json_decref(req);
    job_spec_free(&spec);
}

void api_jobs_list(struct api_request *rq, struct api_response *rs)
{
    const char *st = rq->query(rq->conn, "status");
    const char *lim = rq->query(rq->conn, "limit");
    const char *cursor = rq->query(rq->conn, "cursor");
    enum job_status status = JOB_QUEUED;
    struct job_row *rows = NULL;
    size_t n = 0;
    char next[64] = "", err[256];
    long limit = QUEUE_PAGE_DEFAULT;

    if (st && *st && job_status_parse(st, &status)) {
        api_reply_error(rs, 400, "invalid_field", "status",
                        "'%s' is not queued, running, succeeded, failed or cancelled", st);
        return;
    }
    if (lim) {
        char *end;
        limit = strtol(lim, &end, 10);
        if (end == lim || *end || limit < 1 || limit > QUEUE_PAGE_MAX) {
            api_reply_error(rs, 400, "invalid_field", "limit", "must be an integer from 1 to %d",
                            QUEUE_PAGE_MAX);
            return;
        }
    }
    int rc = queue_list(rq->q, st && *st ? (int)status : -1, (int)limit, cursor ? cursor : "",
                        &rows, &n, next, err, sizeof err);
    if (rc) {
        if (rc == ERR_INVALID)
            api_reply_error(rs, 400, "invalid_field", "cursor", "%s", err);
        else
            api_reply_err_code(rs, rc, NULL, err);
        return;
    }
    json_t *jobs = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(jobs, for_caller(rq, job_view(&rows[i], 0)));
        job_row_free(&rows[i]);
    }
    free(rows);
    api_reply_json(rs, 200,
                   json_pack("{s:o, s:o}", "jobs", jobs, "next_cursor",
                             next[0] ? json_string(next) : json_null()));
}

void api_jobs_get(struct api_request *rq, struct api_response *rs)
{
    struct job_row row;
    if (get_job_or_reply(rq, rs, &row)) return;
    api_reply_json(rs, 200, for_caller(rq, job_view(&row, 1)));
    job_row_free(&row);
}

void api_jobs_result(struct api_request *rq, struct api_response *rs)
{
    struct job_row row;
    if (get_job_or_reply(rq, rs, &row)) return;
    json_t *res = parse_text(row.result);
    if (row.status != JOB_SUCCEEDED || !res)
        api_reply_error(rs, 409, "not_ready", NULL, "job %s is %s: no result yet", row.id,
                        job_status_name(row.status));
    else
        api_reply_json(rs, 200, for_caller(rq, json_deep_copy(res)));
    json_decref(res);
    job_row_free(&row);
}

void api_jobs_cancel(struct api_request *rq, struct api_response *rs)
{
    struct job_row row;
    char err[256];
    if (get_job_or_reply(rq, rs, &row)) return;
    if (may_modify_or_reply(rq, rs, &row)) goto out;
    int rc = queue_cancel(rq->q, row.id, err, sizeof err);
    if (rc == ERR_INVALID) {
        api_reply_error(rs, 409, "conflict", NULL, "job %s is %s and cannot be cancelled", row.id,
                        job_status_name(row.status));
        goto out;
    }
    if (rc) {
        api_reply_err_code(rs, rc, NULL, err);
        goto out;
    }
    job_row_free(&row);
    if (get_job_or_reply(rq, rs, &row)) return;
    api_reply_json(rs, 202, for_caller(rq, job_view(&row, 1)));
out:
    job_row_free(&row);
}

void api_jobs_delete(struct api_request *rq, struct api_response *rs)
{
    struct job_row row;
    char err[256];
    if (get_job_or_reply(rq, rs, &row)) return;
    if (may_modify_or_reply(rq, rs, &row)) goto out;
    if (row.status == JOB_QUEUED || row.status == JOB_RUNNING) {
        api_reply_error(rs, 409, "conflict", NULL, "job %s is %s: cancel it first", row.id,
                        job_status_name(row.status));
        goto out;
    }
    int rc = queue_delete(rq->q, row.id, err, sizeof err);
    if (rc == ERR_INVALID) { /* it was re-queued or claimed meanwhile */
        api_reply_error(rs, 409, "conflict", NULL, "%s", err);
        goto out;
    }
    if (!rc) rc = store_remove_job(rq->env->store, row.id, err, sizeof err);
    if (rc) {
        api_reply_err_code(rs, rc, NULL, err);
        goto out;
    }
    rs->status = 204;
out:
    job_row_free(&row);
}

/* The artifact of a format in the result: {"artifacts": [{"format", "path"|"file", "sha256"}]}
 * or {"artifacts": {"torchscript": {...}}}.  Borrowed references. */
static const json_t *find_artifact(const json_t *res, const char *format)
{
    const json_t *arts = json_object_get(res, "artifacts"), *a;
    size_t i;
    if (json_is_object(arts)) return json_object_get(arts, format);
    json_array_foreach(arts, i, a)
    {
        const char *f = json_string_value(json_object_get(a, "format"));
        if (!f) f = json_string_value(json_object_get(a, "kind"));
        if (f && !strcmp(f, format)) return a;
    }
    return NULL;
}

static const char *artifact_file(const json_t *a)
{
    const char *p = json_string_value(json_object_get(a, "path"));
    if (!p) p = json_string_value(json_object_get(a, "file"));
    if (!p) return NULL;
    const char *slash = strrchr(p, '/');
    return slash ? slash + 1 : p;
}

void api_jobs_checkpoint(struct api_request *rq, struct api_response *rs)
{
    struct job_row row;
    json_t *res = NULL;
    const char *format = rq->query(rq->conn, "format");
    char path[PATH_MAX], dir[PATH_MAX], etag[80];
    struct stat st;
    int fd = -1;

    const char *want_file = rq->query(rq->conn, "file");
    if (!format || !*format) format = "torchscript";
    if (strcmp(format, "torchscript") && strcmp(format, "state_dict") &&
        strcmp(format, "safetensors")) {
        api_reply_error(rs, 400, "invalid_field", "format",
                        "'%s' is not torchscript, state_dict or safetensors", format);
        return;
    }
    if (want_file && strcmp(format, "safetensors")) {
        api_reply_error(rs, 400, "invalid_field", "file",
                        "only the safetensors folder has several files");
        return;
    }
    if (get_job_or_reply(rq, rs, &row)) return;
    res = parse_text(row.result);
    if (row.status != JOB_SUCCEEDED || !res) {
        api_reply_error(rs, 409, "not_ready", NULL, "job %s is %s: no checkpoint yet", row.id,
                        job_status_name(row.status));
        goto out;
    }
    if (row.files_deleted) {
        api_reply_error(rs, 410, "gone", NULL,
                        "the files of job %s were deleted by the retention policy", row.id);
        goto out;
    }
    const json_t *art = find_artifact(res, format);
    const char *file = artifact_file(art);
    const char *sha = json_string_value(json_object_get(art, "sha256"));
    const char *member = NULL; /* a file of a folder artifact (safetensors) */
    if (!file || !*file || !strcmp(file, "..") || !strcmp(file, ".")) {
        api_reply_error(rs, 404, "not_found", "format", "job %s has no %s checkpoint", row.id,
                        format);
        goto out;
    }
    if (json_is_array(json_object_get(art, "files"))) {
        const json_t *f;
        size_t i;
        const char *name = want_file && *want_file ? want_file : "model.safetensors";
        char names[256] = "";
        json_array_foreach(json_object_get(art, "files"), i, f)
        {
            const char *n = json_string_value(json_object_get(f, "name"));
            if (!n) continue;
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "", n);
            if (!strcmp(n, name) && !strchr(n, '/') && strcmp(n, "..") && strcmp(n, ".")) {
                member = n;
                sha = json_string_value(json_object_get(f, "sha256"));
            }
        }
        if (!member) {
            api_reply_error(rs, 404, "not_found", "file",
                            "the %s checkpoint of job %s has no file '%s' (it has %s)", format,
                            row.id, name, names);
            goto out;
        }
    }
    store_run_dir(rq->env->store, row.id, row.fence, dir, sizeof dir);
    if ((size_t)snprintf(path, sizeof path, "%s/%s%s%s", dir, file, member ? "/" : "",
                         member ? member : "") >= sizeof path)
        path[0] = '\0';
    fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        api_reply_error(rs, 404, "not_found", "format", "the %s checkpoint of job %s is gone",
                        format, row.id);
        goto out;
    }
    uint64_t size = (uint64_t)st.st_size, start = 0, len = size;
    snprintf(etag, sizeof etag, "\"%s\"", sha ? sha : "");
    if (sha) api_header(rs, "ETag", "%s", etag);
    api_header(rs, "Accept-Ranges", "bytes");
    if (sha && range_if_none_match(rq->header(rq->conn, "If-None-Match"), etag)) {
        rs->status = 304;
        goto out;
    }
    const char *range = rq->header(rq->conn, "Range");
    const char *if_range = rq->header(rq->conn, "If-Range");
    if (if_range && (!sha || strcmp(if_range, etag)))
        range = NULL; /* changed since: the whole file */
    switch (range_parse(range, size, &start, &len)) {
    case RANGE_UNSATISFIABLE:
        api_header(rs, "Content-Range", "bytes */%llu", (unsigned long long)size);
        api_reply_error(rs, 416, "range_not_satisfiable", NULL,
                        "the range '%s' is outside the %llu bytes", range,
                        (unsigned long long)size);
        goto out;
    case RANGE_OK:
        api_header(rs, "Content-Range", "bytes %llu-%llu/%llu", (unsigned long long)start,
                   (unsigned long long)(start + len - 1), (unsigned long long)size);
        rs->status = 206;
        break;
    case RANGE_NONE:
        rs->status = 200;
        break;
    }
    api_header(rs, "Content-Disposition", "attachment; filename=\"%s-%s\"", row.id,
               member ? member : file);
    rs->content_type = "application/octet-stream";
    rs->fd = fd;
    rs->fd_offset = start;
    rs->fd_len = len;
    fd = -1;
out:
    if (fd >= 0) close(fd);
    json_decref(res);
    job_row_free(&row);
}
