/* queue.c - durable job queue: argument checks, then the backend (SQLite or PostgreSQL) */
#include "queue.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include <jansson.h>

#include "err.h"
#include "queue_backend.h"

/*
 * DESIGN
 *
 * queue.h is the one interface; this file checks every argument (so a
 * malformed id never reaches SQL and both backends answer the same errors)
 * and hands the call to the backend behind q->ops: core/queue/queue_sqlite.c
 * (embedded, one daemon per data dir) or core/queue/queue_pg.c (several daemons
 * on one PostgreSQL).  What both backends share lives here too: status
 * names, ids, the stages JSON, list cursors.
 */

static const char *const status_names[JOB_STATUS_COUNT] = {
    "queued", "running", "succeeded", "failed", "cancelled",
};

const char *job_status_name(enum job_status s)
{
    return (unsigned)s < JOB_STATUS_COUNT ? status_names[s] : "unknown";
}

int job_status_parse(const char *name, enum job_status *out)
{
    for (int i = 0; name && i < JOB_STATUS_COUNT; i++)
        if (!strcmp(name, status_names[i])) {
            *out = (enum job_status)i;
            return 0;
        }
    return ERR_INVALID;
}

static int is_lower_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

int job_id_valid(const char *id)
{
    if (!id || strlen(id) != JOB_ID_LEN) return 0;
    for (int i = 0; i < JOB_ID_LEN; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (id[i] != '-') return 0;
        } else if (!is_lower_hex(id[i])) {
            return 0;
        }
    }
    return id[14] == '4' && strchr("89ab", id[19]) != NULL;
}

int queue_uuid_v4(char out[JOB_ID_LEN + 1], char *err, size_t errlen)
{
    unsigned char b[16];
    size_t got = 0;
    while (got < sizeof b) {
        ssize_t r = getrandom(b + got, sizeof b - got, 0);
        if (r < 0) return err_set(err, errlen, ERR_IO, "getrandom failed");
        got += (size_t)r;
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* variant 10 */
    static const char hex[] = "0123456789abcdef";
    char *p = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) *p++ = '-';
        *p++ = hex[b[i] >> 4];
        *p++ = hex[b[i] & 15];
    }
    *p = '\0';
    return 0;
}

static int check_id(const char *id, char *err, size_t errlen)
{
    if (!job_id_valid(id))
        return err_set(err, errlen, ERR_NOTFOUND, "no job '%.40s' (not a job id)", id ? id : "");
    return 0;
}

void job_row_free(struct job_row *r)
{
    if (!r) return;
    free(r->name);
    free(r->stage);
    free(r->owner);
    free(r->request);
    free(r->stages);
    free(r->result);
    free(r->error);
    r->name = r->stage = r->owner = r->request = r->stages = r->result = r->error = NULL;
}

int queue_is_finished(enum job_status s)
{
    return s == JOB_SUCCEEDED || s == JOB_FAILED || s == JOB_CANCELLED;
}

int queue_stages_edit(const char *text, const char *next, double now, char **out, char *err,
                      size_t errlen)
{
    json_error_t je;
    int rc = 0;
    *out = NULL;
    json_t *a = json_loads(text && *text ? text : "[]", 0, &je);
    if (!a || !json_is_array(a)) {
        rc = err_set(err, errlen, ERR_FORMAT, "stages is not a JSON array");
        goto out;
    }
    size_t n = json_array_size(a);
    json_t *last = n ? json_array_get(a, n - 1) : NULL;
    if (json_is_object(last)) {
        json_t *fin = json_object_get(last, "finished_at");
        if ((!fin || json_is_null(fin)) && json_object_set_new(last, "finished_at", json_real(now)))
            goto nomem;
    }
    if (next) {
        json_t *e = json_pack("{s:s, s:f, s:n}", "stage", next, "started_at", now, "finished_at");
        if (!e || json_array_append_new(a, e)) goto nomem;
    }
    if (!(*out = json_dumps(a, JSON_COMPACT))) goto nomem;
    goto out;
nomem:
    rc = err_set(err, errlen, ERR_NOMEM, "out of memory");
out:
    json_decref(a);
    return rc;
}

void queue_gave_up_message(int attempts, char *out, size_t n)
{
    snprintf(out, n, "interrupted %d times (daemon died while it ran); giving up", attempts);
}

/* The cursor: 16 hex digits of created_at's bits, then 16 of the rowid. */
void queue_cursor_make(double created_at, int64_t seq, char out[64])
{
    uint64_t bits;
    memcpy(&bits, &created_at, sizeof bits);
    snprintf(out, 64, "%016llx%016llx", (unsigned long long)bits, (unsigned long long)seq);
}

int queue_cursor_parse(const char *c, double *created_at, int64_t *seq)
{
    if (strlen(c) != 32) return ERR_INVALID;
    uint64_t v[2] = {0, 0};
    for (int i = 0; i < 32; i++) {
        char ch = c[i];
        if (!is_lower_hex(ch)) return ERR_INVALID;
        v[i / 16] = v[i / 16] << 4 | (uint64_t)(ch <= '9' ? ch - '0' : ch - 'a' + 10);
    }
    memcpy(created_at, &v[0], sizeof *created_at);
    if (!isfinite(*created_at) || *created_at < 0 || v[1] == 0 || v[1] > INT64_MAX)
        return ERR_INVALID;
    *seq = (int64_t)v[1];
    return 0;
}

void queue_daemon_id(char *out, size_t n)
{
    char host[64] = "localhost", stat[1024];
    unsigned long long start = 0;
    FILE *f = fopen("/proc/self/stat", "r");
    if (gethostname(host, sizeof host)) snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = '\0';
    if (f) {
        /* Field 22, starttime; field 2 (comm) may hold spaces: start after its ')'. */
        size_t len = fread(stat, 1, sizeof stat - 1, f);
        stat[len] = '\0';
        const char *p = strrchr(stat, ')');
        for (int field = 2; p && field < 22; field++)
            p = strchr(p + 1, ' ');
        if (p) start = strtoull(p + 1, NULL, 10);
        fclose(f);
    }
    snprintf(out, n, "%s:%ld:%llu", host, (long)getpid(), start);
}

/* ---- open / close ---- */

static int is_pg(const char *where, const char **conninfo)
{
    if (!strncmp(where, "postgresql://", 13) || !strncmp(where, "postgres://", 11)) {
        *conninfo = where;
        return 1;
    }
    if (!strncmp(where, "pg:", 3)) {
        *conninfo = where + 3;
        return 1;
    }
    return 0;
}

struct queue *queue_open_with(const char *where, const struct db_options *opt, char *err,
                              size_t errlen)
{
    const char *conninfo;
    if (!where || !*where) {
        err_set(err, errlen, ERR_INVALID, "no database path or connection string");
        return NULL;
    }
    if (is_pg(where, &conninfo)) return queue_pg_open(conninfo, err, errlen);
    return queue_sqlite_open(where, opt, err, errlen);
}

struct queue *queue_open(const char *where, char *err, size_t errlen)
{
    return queue_open_with(where, NULL, err, errlen);
}

void queue_close(struct queue *q)
{
    if (q) q->ops->close(q);
}

const char *queue_backend(const struct queue *q)
{
    return q->ops->name;
}

/* ---- submit, get, list ---- */

/* Checks one submission's own input; 0 or ERR_INVALID in sub->rc/err. */
static int submission_check(struct queue_submission *sub)
{
    json_error_t je;
    json_t *req = sub->request_json ? json_loads(sub->request_json, 0, &je) : NULL;
    int is_object = json_is_object(req);
    json_decref(req);
    if (!is_object)
        return sub->rc = err_set(sub->err, sizeof sub->err, ERR_INVALID,
                                 "the request is not a JSON object");
    if (sub->idem_key && strlen(sub->idem_key) > QUEUE_IDEM_KEY_MAX)
        return sub->rc = err_set(sub->err, sizeof sub->err, ERR_INVALID,
                                 "idempotency key longer than %d bytes", QUEUE_IDEM_KEY_MAX);
    return 0;
}

int queue_submit_many(struct queue *q, struct queue_submission *subs, size_t n, char *err,
                      size_t errlen)
{
    size_t valid = 0;
    for (size_t i = 0; i < n; i++) {
        subs[i].id[0] = '\0';
        subs[i].existed = 0;
        subs[i].created_at = 0;
        subs[i].err[0] = '\0';
        subs[i].rc = 0;
        if (submission_check(&subs[i]) == 0) valid++;
    }
    if (!valid) return 0;
    int rc = q->ops->submit_many(q, subs, n, err, errlen);
    if (rc) {
        for (size_t i = 0; i < n; i++) {
            if (subs[i].rc) continue;
            subs[i].rc = rc;
            subs[i].id[0] = '\0';
            subs[i].existed = 0;
            subs[i].created_at = 0;
            snprintf(subs[i].err, sizeof subs[i].err, "%s", err ? err : "");
        }
    }
    return rc;
}

int queue_submit(struct queue *q, const char *request_json, const char *name, const char *owner,
                 const char *idem_key, char id[JOB_ID_LEN + 1], int *existed, char *err,
                 size_t errlen)
{
    struct queue_submission sub = {
        .request_json = request_json, .name = name, .owner = owner, .idem_key = idem_key};
    queue_submit_many(q, &sub, 1, err, errlen);
    if (sub.rc && err && errlen) snprintf(err, errlen, "%s", sub.err);
    snprintf(id, JOB_ID_LEN + 1, "%s", sub.id);
    if (existed) *existed = sub.existed;
    return sub.rc;
}

int queue_submission_row(const struct queue_submission *sub, struct job_row *out, char *err,
                         size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (sub->rc || sub->existed || !sub->id[0])
        return err_set(err, errlen, ERR_INVALID, "the submission created no job");
    snprintf(out->id, sizeof out->id, "%s", sub->id);
    out->status = JOB_QUEUED;
    out->created_at = sub->created_at;
    if (!(out->name = strdup(sub->name ? sub->name : "")) || !(out->stage = strdup("")) ||
        !(out->owner = strdup(sub->owner ? sub->owner : "")) ||
        !(out->request = strdup(sub->request_json)) || !(out->stages = strdup("[]"))) {
        job_row_free(out);
        return err_set(err, errlen, ERR_NOMEM, "out of memory");
    }
    return 0;
}

int queue_get(struct queue *q, const char *id, struct job_row *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    int rc = check_id(id, err, errlen);
    return rc ? rc : q->ops->get(q, id, out, err, errlen);
}

int queue_list(struct queue *q, int status, int limit, const char *cursor, struct job_row **rows,
               size_t *n, char next_cursor[64], char *err, size_t errlen)
{
    double c_at;
    int64_t c_seq;
    *rows = NULL;
    *n = 0;
    next_cursor[0] = '\0';
    if (status >= JOB_STATUS_COUNT)
        return err_set(err, errlen, ERR_INVALID, "unknown status %d", status);
    if (cursor && *cursor && queue_cursor_parse(cursor, &c_at, &c_seq))
        return err_set(err, errlen, ERR_INVALID, "invalid cursor '%.64s'", cursor);
    limit = limit < 1 ? 1 : limit > QUEUE_PAGE_MAX ? QUEUE_PAGE_MAX : limit;
    return q->ops->list(q, status, limit, cursor, rows, n, next_cursor, err, errlen);
}

/* ---- the worker's transitions ---- */

int queue_claim(struct queue *q, int lease_seconds, struct job_row *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (lease_seconds < 1)
        return err_set(err, errlen, ERR_INVALID, "a lease lasts at least 1 second, not %d",
                       lease_seconds);
    return q->ops->claim(q, lease_seconds, out, err, errlen);
}

int queue_set_stage(struct queue *q, const char *id, int64_t fence, const char *stage, char *err,
                    size_t errlen)
{
    int rc = check_id(id, err, errlen);
    if (rc) return rc;
    if (!stage || !*stage || strlen(stage) > 64)
        return err_set(err, errlen, ERR_INVALID, "a stage is a name of 1 to 64 bytes");
    return q->ops->set_stage(q, id, fence, stage, err, errlen);
}

int queue_set_progress(struct queue *q, const char *id, int64_t fence, double progress, char *err,
                       size_t errlen)
{
    int rc = check_id(id, err, errlen);
    if (rc) return rc;
    if (isnan(progress)) return err_set(err, errlen, ERR_INVALID, "progress is NaN");
    progress = progress < 0 ? 0 : progress > 1 ? 1 : progress;
    return q->ops->set_progress(q, id, fence, progress, err, errlen);
}

int queue_finish(struct queue *q, const char *id, int64_t fence, enum job_status status,
                 const char *result_json, const char *error, char *err, size_t errlen)
{
    int rc = check_id(id, err, errlen);
    if (rc) return rc;
    if (!queue_is_finished(status))
        return err_set(err, errlen, ERR_INVALID,
                       "a job finishes as succeeded, failed or cancelled, not %s",
                       job_status_name(status));
    if (result_json) {
        json_error_t je;
        json_t *r = json_loads(result_json, JSON_DECODE_ANY, &je);
        json_decref(r);
        if (!r) return err_set(err, errlen, ERR_INVALID, "the result is not JSON: %s", je.text);
    }
    return q->ops->finish(q, id, fence, status, result_json, error, err, errlen);
}

int queue_heartbeat(struct queue *q, const char *id, int64_t fence, int lease_seconds, char *err,
                    size_t errlen)
{
    int rc = check_id(id, err, errlen);
    if (rc) return rc;
    if (lease_seconds < 1)
        return err_set(err, errlen, ERR_INVALID, "a lease lasts at least 1 second, not %d",
                       lease_seconds);
    return q->ops->heartbeat(q, id, fence, lease_seconds, err, errlen);
}

int queue_cancel(struct queue *q, const char *id, char *err, size_t errlen)
{
    int rc = check_id(id, err, errlen);
    return rc ? rc : q->ops->cancel(q, id, err, errlen);
}

int queue_cancel_requested(struct queue *q, const char *id, int *requested, char *err,
                           size_t errlen)
{
    *requested = 0;
    int rc = check_id(id, err, errlen);
    return rc ? rc : q->ops->cancel_requested(q, id, requested, err, errlen);
}

int queue_requeue(struct queue *q, const char *id, int64_t fence, int count_attempt, char *err,
                  size_t errlen)
{
    int rc = check_id(id, err, errlen);
    return rc ? rc : q->ops->requeue(q, id, fence, count_attempt, err, errlen);
}

static int recovery_args(int max_attempts, int *requeued, int *failed, char *err, size_t errlen)
{
    if (requeued) *requeued = 0;
    if (failed) *failed = 0;
    if (max_attempts < 1)
        return err_set(err, errlen, ERR_INVALID, "max_attempts must be at least 1, not %d",
                       max_attempts);
    return 0;
}

int queue_recover(struct queue *q, int max_attempts, int *requeued, int *failed, char *err,
                  size_t errlen)
{
    int rc = recovery_args(max_attempts, requeued, failed, err, errlen);
    return rc ? rc : q->ops->recover(q, max_attempts, requeued, failed, err, errlen);
}

int queue_rescue(struct queue *q, int max_attempts, int *requeued, int *failed, char *err,
                 size_t errlen)
{
    int rc = recovery_args(max_attempts, requeued, failed, err, errlen);
    return rc ? rc : q->ops->rescue(q, max_attempts, requeued, failed, err, errlen);
}

/* ---- removal, counts, retention ---- */

int queue_delete(struct queue *q, const char *id, char *err, size_t errlen)
{
    int rc = check_id(id, err, errlen);
    return rc ? rc : q->ops->remove(q, id, err, errlen);
}

int queue_counts(struct queue *q, int64_t counts[JOB_STATUS_COUNT], char *err, size_t errlen)
{
    return q->ops->counts(q, counts, err, errlen);
}

void queue_ids_free(char **ids, size_t n)
{
    if (!ids) return;
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
}

int queue_expired(struct queue *q, double older_than, char ***ids, size_t *n, char *err,
                  size_t errlen)
{
    *ids = NULL;
    *n = 0;
    return q->ops->expired(q, older_than, ids, n, err, errlen);
}

int queue_mark_files_deleted(struct queue *q, const char *id, char *err, size_t errlen)
{
    int rc = check_id(id, err, errlen);
    return rc ? rc : q->ops->mark_files_deleted(q, id, err, errlen);
}

int queue_listen(struct queue *q, char *err, size_t errlen)
{
    return q->ops->listen(q, err, errlen);
}

int queue_wait(struct queue *q, double timeout_s, enum queue_event *event, char id[JOB_ID_LEN + 1],
               char *err, size_t errlen)
{
    *event = QUEUE_EVENT_NONE;
    id[0] = '\0';
    return q->ops->wait(q, timeout_s < 0 ? 0 : timeout_s, event, id, err, errlen);
}

int queue_integrity_check(struct queue *q, char *err, size_t errlen)
{
    return q->ops->integrity_check(q, err, errlen);
}
