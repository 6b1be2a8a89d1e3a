/* queue_sqlite.c - the job queue on SQLite (the embedded default) */
#include "queue_backend.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <jansson.h>

#include "db.h"
#include "err.h"
#include "fsutil.h"

/*
 * DESIGN
 *
 * One row per job in `jobs` (migrations/0001_init.sql); the state machine is
 * drawn in queue.h.  Every transition that reads before it writes runs in a
 * BEGIN IMMEDIATE transaction, so it holds the write lock from its first
 * read and two connections (threads or processes) never act on the same
 * stale state; statements are finalized before COMMIT and any failure rolls
 * the transaction back, so a failed call leaves nothing half-written.
 * sq_txn is that transaction for every one-job transition.  No leases and
 * no fencing here: serve's flock keeps one daemon per data dir.
 *
 * Attempts count the runs that were cut short: queue_recover (a daemon
 * died while the job ran) adds one, queue_requeue adds one only when asked
 * (SIGTERM does not).  A claim is not an attempt.  With max_attempts M, the
 * job that has been interrupted M times is failed: it ran at most M times.
 *
 * `stages` describes the current run: queue_claim resets it to [], each
 * queue_set_stage closes the open entry and appends the new one,
 * queue_finish / queue_requeue / queue_recover close the open entry.
 *
 * Times are unix seconds (REAL); NULL in the table, 0 in struct job_row,
 * for "not yet".  Lists page by (created_at, rowid), which new jobs never
 * fall behind, so a cursor pages stably while jobs arrive.
 */

struct sqlite_queue {
    struct queue base;
    struct db *db;
};

#define DB(q) (((struct sqlite_queue *)(q))->db)

#define JOB_COLUMNS                                                                                \
    "id, name, status, stage, progress, owner, attempts, cancel_requested, created_at, "           \
    "started_at, finished_at, request, stages, result, error, files_deleted, rowid"
#define COL_ROWID 16

/* A text column copied with malloc; "" for NULL unless nullable. */
static int col_dup(sqlite3_stmt *st, int i, int nullable, char **out)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    *out = NULL;
    if (!t && nullable) return 0;
    *out = strdup(t ? (const char *)t : "");
    return *out ? 0 : ERR_NOMEM;
}

/* Fills out from a row of SELECT JOB_COLUMNS; on failure frees what it set. */
static int row_read(sqlite3_stmt *st, struct job_row *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    const unsigned char *id = sqlite3_column_text(st, 0);
    snprintf(out->id, sizeof out->id, "%s", id ? (const char *)id : "");
    const char *status = (const char *)sqlite3_column_text(st, 2);
    if (job_status_parse(status, &out->status))
        return err_set(err, errlen, ERR_INTERNAL, "job %s has status '%s'", out->id,
                       status ? status : "");
    out->progress = sqlite3_column_double(st, 4);
    out->attempts = sqlite3_column_int(st, 6);
    out->cancel_requested = sqlite3_column_int(st, 7);
    out->created_at = sqlite3_column_double(st, 8);
    out->started_at = sqlite3_column_double(st, 9); /* NULL reads as 0 */
    out->finished_at = sqlite3_column_double(st, 10);
    out->files_deleted = sqlite3_column_int(st, 15);
    if (col_dup(st, 1, 0, &out->name) || col_dup(st, 3, 0, &out->stage) ||
        col_dup(st, 5, 0, &out->owner) || col_dup(st, 11, 0, &out->request) ||
        col_dup(st, 12, 0, &out->stages) || col_dup(st, 13, 1, &out->result) ||
        col_dup(st, 14, 1, &out->error)) {
        job_row_free(out);
        return err_set(err, errlen, ERR_NOMEM, "out of memory");
    }
    return 0;
}

/* ---- open / close ---- */

static const struct queue_ops sqlite_ops;

struct queue *queue_sqlite_open(const char *path, const struct db_options *opt, char *err,
                                size_t errlen)
{
    struct sqlite_queue *sq = calloc(1, sizeof *sq);
    if (!sq) {
        err_set(err, errlen, ERR_NOMEM, "out of memory");
        return NULL;
    }
    sq->base.ops = &sqlite_ops;
    if (!(sq->db = db_open(path, opt, err, errlen))) {
        free(sq);
        return NULL;
    }
    return &sq->base;
}

static void sq_close(struct queue *q)
{
    db_close(DB(q));
    free(q);
}

/* ---- helpers for one-job transitions ---- */

/* Reads a job's status and stages inside the caller's transaction.
 * stages may be NULL; *stages is malloc'd. */
static int job_state(struct queue *q, const char *id, enum job_status *status, int *cancel,
                     char **stages, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = db_prepare(DB(q), "SELECT status, cancel_requested, stages FROM jobs WHERE id = ?",
                        &st, err, errlen);
    if (rc) return rc;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int s = db_step(DB(q), st);
    if (s == SQLITE_DONE) {
        rc = err_set(err, errlen, ERR_NOTFOUND, "no job %s", id);
    } else if (s != SQLITE_ROW) {
        rc = db_fail(DB(q), s, "read job", err, errlen);
    } else if (job_status_parse((const char *)sqlite3_column_text(st, 0), status)) {
        rc = err_set(err, errlen, ERR_INTERNAL, "job %s has an unknown status", id);
    } else {
        if (cancel) *cancel = sqlite3_column_int(st, 1);
        if (stages && col_dup(st, 2, 0, stages))
            rc = err_set(err, errlen, ERR_NOMEM, "out of memory");
    }
    sqlite3_finalize(st);
    return rc;
}

/* Steps a write statement to its end: 0 or ERR_DB. */
static int step_done(struct queue *q, sqlite3_stmt *st, const char *what, char *err, size_t errlen)
{
    int s = db_step(DB(q), st);
    return s == SQLITE_DONE ? 0 : db_fail(DB(q), s, what, err, errlen);
}

/* A value bound to a statement parameter by exec_write (?1, ?2... in order). */
struct bind {
    enum { BIND_END_, BIND_TEXT_, BIND_REAL_, BIND_INT_ } kind;
    const char *text; /* NULL binds SQL NULL */
    double real;
    int64_t i;
};
#define BIND_TEXT(v)                                                                               \
    {                                                                                              \
        .kind = BIND_TEXT_, .text = (v)                                                            \
    }
#define BIND_REAL(v)                                                                               \
    {                                                                                              \
        .kind = BIND_REAL_, .real = (v)                                                            \
    }
#define BIND_INT(v)                                                                                \
    {                                                                                              \
        .kind = BIND_INT_, .i = (v)                                                                \
    }
#define BIND_END                                                                                   \
    {                                                                                              \
        .kind = BIND_END_                                                                          \
    }

/* Prepares sql, binds the list (ending in BIND_END), steps it to its end
 * and finalizes it: 0 or ERR_DB naming what. */
static int exec_write(struct queue *q, const char *sql, const char *what, const struct bind *b,
                      char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = db_prepare(DB(q), sql, &st, err, errlen);
    if (rc) return rc;
    for (int i = 0; b[i].kind != BIND_END_; i++) {
        if (b[i].kind == BIND_TEXT_ && b[i].text)
            sqlite3_bind_text(st, i + 1, b[i].text, -1, SQLITE_STATIC);
        else if (b[i].kind == BIND_REAL_)
            sqlite3_bind_double(st, i + 1, b[i].real);
        else if (b[i].kind == BIND_INT_)
            sqlite3_bind_int64(st, i + 1, b[i].i);
    }
    rc = step_done(q, st, what, err, errlen);
    sqlite3_finalize(st);
    return rc;
}

/* What a one-job transition reads of its job, inside its transaction. */
struct job_state {
    enum job_status status;
    int cancel_requested;
    char *stages; /* the stages JSON text */
};

/* One transition, given the job's state: checks it and writes (ERR_INVALID
 * when the state forbids it).  Runs inside queue_txn's transaction. */
typedef int (*txn_step_fn)(struct queue *q, const char *id, const struct job_state *js, void *arg,
                           char *err, size_t errlen);

/*
 * The one transaction of every one-job transition: BEGIN IMMEDIATE (the
 * write lock from the first read), load the job's state (ERR_NOTFOUND when
 * there is none), step, COMMIT.  Any failure rolls back: nothing changes.
 */
static int sq_txn(struct queue *q, const char *id, txn_step_fn step, void *arg, char *err,
                  size_t errlen)
{
    struct job_state js = {JOB_QUEUED, 0, NULL};
    int rc = db_begin(DB(q), err, errlen);
    if (rc) return rc;
    if (!(rc = job_state(q, id, &js.status, &js.cancel_requested, &js.stages, err, errlen)) &&
        !(rc = step(q, id, &js, arg, err, errlen)))
        rc = db_commit(DB(q), err, errlen);
    if (rc) db_rollback(DB(q));
    free(js.stages);
    return rc;
}

static int must_be_running(const char *id, const struct job_state *js, char *err, size_t errlen)
{
    if (js->status != JOB_RUNNING)
        return err_set(err, errlen, ERR_INVALID, "job %s is %s, not running", id,
                       job_status_name(js->status));
    return 0;
}

/* ---- submit, get, list ---- */

/* Inside a transaction: finds sub's idempotency key or inserts the job. */
static int submission_insert(struct queue *q, struct queue_submission *sub, char *err,
                             size_t errlen)
{
    sqlite3_stmt *st = NULL;
    const char *name = sub->name ? sub->name : "", *owner = sub->owner ? sub->owner : "";
    const char *idem = sub->idem_key && *sub->idem_key ? sub->idem_key : NULL;
    int rc = 0;
    if (idem) {
        if ((rc = db_prepare(DB(q), "SELECT id, request FROM jobs WHERE owner = ? AND idem_key = ?",
                             &st, err, errlen)))
            goto out;
        sqlite3_bind_text(st, 1, owner, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, idem, -1, SQLITE_STATIC);
        int s = db_step(DB(q), st);
        if (s == SQLITE_ROW) {
            const char *earlier = (const char *)sqlite3_column_text(st, 1);
            /* A retry sends the same request; another one under the same key
             * is the caller's mistake, not a replay. */
            if (!earlier || strcmp(earlier, sub->request_json)) {
                sub->rc = err_set(sub->err, sizeof sub->err, ERR_CONFLICT,
                                  "idempotency key '%s' was used for a different request (job %s)",
                                  idem, (const char *)sqlite3_column_text(st, 0));
                goto out;
            }
            snprintf(sub->id, sizeof sub->id, "%s", (const char *)sqlite3_column_text(st, 0));
            sub->existed = 1;
            goto out;
        }
        if (s != SQLITE_DONE) {
            rc = db_fail(DB(q), s, "look up idempotency key", err, errlen);
            goto out;
        }
        sqlite3_finalize(st);
        st = NULL;
    }
    char nid[JOB_ID_LEN + 1];
    if ((rc = queue_uuid_v4(nid, err, errlen))) goto out;
    if ((rc = db_prepare(DB(q),
                         "INSERT INTO jobs (id, name, status, owner, created_at, updated_at, "
                         "request, idem_key) VALUES (?, ?, 'queued', ?, ?, ?, ?, ?)",
                         &st, err, errlen)))
        goto out;
    double now = fs_now();
    sqlite3_bind_text(st, 1, nid, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, owner, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 4, now);
    sqlite3_bind_double(st, 5, now);
    sqlite3_bind_text(st, 6, sub->request_json, -1, SQLITE_STATIC);
    if (idem) sqlite3_bind_text(st, 7, idem, -1, SQLITE_STATIC);
    if ((rc = step_done(q, st, "insert job", err, errlen))) goto out;
    memcpy(sub->id, nid, sizeof nid);
    sub->created_at = now;
out:
    sqlite3_finalize(st);
    return rc;
}

static int sq_submit_many(struct queue *q, struct queue_submission *subs, size_t n, char *err,
                          size_t errlen)
{
    int rc = db_begin(DB(q), err, errlen);
    if (rc) return rc;
    for (size_t i = 0; i < n && !rc; i++)
        if (!subs[i].rc) rc = submission_insert(q, &subs[i], err, errlen);
    if (!rc) rc = db_commit(DB(q), err, errlen);
    if (rc) db_rollback(DB(q));
    return rc;
}

static int sq_get(struct queue *q, const char *id, struct job_row *out, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc;
    if ((rc = db_prepare(DB(q), "SELECT " JOB_COLUMNS " FROM jobs WHERE id = ?", &st, err, errlen)))
        return rc;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int s = db_step(DB(q), st);
    if (s == SQLITE_ROW)
        rc = row_read(st, out, err, errlen);
    else if (s == SQLITE_DONE)
        rc = err_set(err, errlen, ERR_NOTFOUND, "no job %s", id);
    else
        rc = db_fail(DB(q), s, "read job", err, errlen);
    sqlite3_finalize(st);
    return rc;
}

static int sq_list(struct queue *q, int status, int limit, const char *cursor,
                   struct job_row **rows, size_t *n, char next_cursor[64], char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    struct job_row *out = NULL;
    size_t got = 0;
    int rc = 0;
    double c_at = 0;
    int64_t c_rowid = 0, last_rowid = 0;
    int has_cursor = cursor && *cursor;
    if (has_cursor) queue_cursor_parse(cursor, &c_at, &c_rowid); /* checked by queue_list */

    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT " JOB_COLUMNS " FROM jobs WHERE %s AND %s "
             "ORDER BY created_at DESC, rowid DESC LIMIT ?3",
             status >= 0 ? "status = ?1" : "?1 IS NULL",
             has_cursor ? "(created_at < ?2 OR (created_at = ?2 AND rowid < ?4))" : "?2 IS NULL");
    if ((rc = db_prepare(DB(q), sql, &st, err, errlen))) return rc;
    if (status >= 0)
        sqlite3_bind_text(st, 1, job_status_name((enum job_status)status), -1, SQLITE_STATIC);
    if (has_cursor) {
        sqlite3_bind_double(st, 2, c_at);
        sqlite3_bind_int64(st, 4, c_rowid);
    }
    sqlite3_bind_int(st, 3, limit + 1); /* one more: is there a next page? */
    if (!(out = calloc((size_t)limit, sizeof *out))) {
        rc = err_set(err, errlen, ERR_NOMEM, "out of memory");
        goto out;
    }
    int s;
    while ((s = db_step(DB(q), st)) == SQLITE_ROW) {
        if (got == (size_t)limit) {
            queue_cursor_make(out[got - 1].created_at, last_rowid, next_cursor);
            break;
        }
        if ((rc = row_read(st, &out[got], err, errlen))) goto out;
        last_rowid = sqlite3_column_int64(st, COL_ROWID); /* for the next cursor */
        got++;
    }
    if (s != SQLITE_ROW && s != SQLITE_DONE) {
        rc = db_fail(DB(q), s, "list jobs", err, errlen);
        goto out;
    }
out:
    sqlite3_finalize(st);
    if (rc) {
        for (size_t i = 0; i < got; i++)
            job_row_free(&out[i]);
        free(out);
        next_cursor[0] = '\0';
        return rc;
    }
    if (!got) {
        free(out);
        out = NULL;
    }
    *rows = out;
    *n = got;
    return 0;
}

/* ---- the worker's transitions ---- */

/* No leases with SQLite (one daemon per data dir): lease_seconds is unused. */
static int sq_claim(struct queue *q, int lease_seconds, struct job_row *out, char *err,
                    size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int in_txn = 0;
    char id[JOB_ID_LEN + 1] = "";
    (void)lease_seconds;
    /* Idle workers poll: answer "none" from a read, without the write lock. */
    int rc =
        db_prepare(DB(q), "SELECT 1 FROM jobs WHERE status = 'queued' LIMIT 1", &st, err, errlen);
    if (rc) goto out;
    int s = db_step(DB(q), st);
    if (s == SQLITE_DONE) {
        rc = err_set(err, errlen, ERR_NOTFOUND, "no queued job");
        goto out;
    } else if (s != SQLITE_ROW) {
        rc = db_fail(DB(q), s, "look for a queued job", err, errlen);
        goto out;
    }
    sqlite3_finalize(st);
    st = NULL;
    if ((rc = db_begin(DB(q), err, errlen))) goto out;
    in_txn = 1;
    if ((rc = db_prepare(DB(q),
                         "UPDATE jobs SET status = 'running', started_at = ?1, updated_at = ?1, "
                         "finished_at = NULL, stage = '', progress = 0, stages = '[]' "
                         "WHERE id = (SELECT id FROM jobs WHERE status = 'queued' "
                         "ORDER BY created_at, rowid LIMIT 1) AND status = 'queued' "
                         "RETURNING id",
                         &st, err, errlen)))
        goto out;
    sqlite3_bind_double(st, 1, fs_now());
    s = db_step(DB(q), st);
    if (s == SQLITE_ROW) {
        snprintf(id, sizeof id, "%s", (const char *)sqlite3_column_text(st, 0));
        s = db_step(DB(q), st);
    }
    if (s != SQLITE_DONE) {
        rc = db_fail(DB(q), s, "claim a job", err, errlen);
        goto out;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (!id[0]) {
        rc = err_set(err, errlen, ERR_NOTFOUND, "no queued job"); /* another took it */
        goto out; /* rolls back the empty transaction */
    }
    if ((rc = db_prepare(DB(q), "SELECT " JOB_COLUMNS " FROM jobs WHERE id = ?", &st, err, errlen)))
        goto out;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    if ((s = db_step(DB(q), st)) != SQLITE_ROW) {
        rc = s == SQLITE_DONE ? err_set(err, errlen, ERR_INTERNAL, "claimed job %s vanished", id)
                              : db_fail(DB(q), s, "read the claimed job", err, errlen);
        goto out;
    }
    if ((rc = row_read(st, out, err, errlen))) goto out;
    sqlite3_finalize(st);
    st = NULL;
    if ((rc = db_commit(DB(q), err, errlen))) goto out;
    in_txn = 0;
out:
    sqlite3_finalize(st);
    if (in_txn) db_rollback(DB(q));
    if (rc) job_row_free(out);
    return rc;
}

/* queue_set_stage's step: appends the new stage to the running job's stages. */
static int set_stage_step(struct queue *q, const char *id, const struct job_state *js, void *arg,
                          char *err, size_t errlen)
{
    const char *stage = arg;
    char *edited = NULL;
    double now = fs_now();
    int rc = must_be_running(id, js, err, errlen);
    if (!rc) rc = queue_stages_edit(js->stages, stage, now, &edited, err, errlen);
    if (!rc)
        rc = exec_write(q, "UPDATE jobs SET stage = ?1, stages = ?2, updated_at = ?3 WHERE id = ?4",
                        "set stage",
                        (const struct bind[]){BIND_TEXT(stage), BIND_TEXT(edited), BIND_REAL(now),
                                              BIND_TEXT(id), BIND_END},
                        err, errlen);
    free(edited);
    return rc;
}

/* Fences are not checked: one daemon per SQLite data dir. */
static int sq_set_stage(struct queue *q, const char *id, int64_t fence, const char *stage,
                        char *err, size_t errlen)
{
    (void)fence;
    return sq_txn(q, id, set_stage_step, (void *)stage, err, errlen);
}

/* After an UPDATE ... WHERE id = ? AND status = ... changed nothing: why. */
static int why_unchanged(struct queue *q, const char *id, const char *want, char *err,
                         size_t errlen)
{
    enum job_status status;
    int rc = job_state(q, id, &status, NULL, NULL, err, errlen);
    if (rc) return rc;
    return err_set(err, errlen, ERR_INVALID, "job %s is %s, not %s", id, job_status_name(status),
                   want);
}

static int sq_set_progress(struct queue *q, const char *id, int64_t fence, double progress,
                           char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc;
    (void)fence;
    if ((rc = db_prepare(DB(q),
                         "UPDATE jobs SET progress = ?, updated_at = ? "
                         "WHERE id = ? AND status = 'running'",
                         &st, err, errlen)))
        return rc;
    sqlite3_bind_double(st, 1, progress);
    sqlite3_bind_double(st, 2, fs_now());
    sqlite3_bind_text(st, 3, id, -1, SQLITE_STATIC);
    if (!(rc = step_done(q, st, "set progress", err, errlen)) && !sqlite3_changes(db_handle(DB(q))))
        rc = why_unchanged(q, id, "running", err, errlen);
    sqlite3_finalize(st);
    return rc;
}

struct finish_arg {
    enum job_status status;
    const char *result_json, *error;
};

/* queue_finish's step: running -> status, closing the last stage. */
static int finish_step(struct queue *q, const char *id, const struct job_state *js, void *arg,
                       char *err, size_t errlen)
{
    const struct finish_arg *a = arg;
    char *edited = NULL;
    double now = fs_now();
    int rc = must_be_running(id, js, err, errlen);
    if (!rc) rc = queue_stages_edit(js->stages, NULL, now, &edited, err, errlen);
    if (!rc)
        rc = exec_write(q,
                        "UPDATE jobs SET status = ?1, finished_at = ?2, updated_at = ?2, "
                        "result = ?3, error = ?4, stages = ?5, "
                        "progress = CASE WHEN ?1 = 'succeeded' THEN 1 ELSE progress END "
                        "WHERE id = ?6",
                        "finish job",
                        (const struct bind[]){BIND_TEXT(job_status_name(a->status)), BIND_REAL(now),
                                              BIND_TEXT(a->result_json), BIND_TEXT(a->error),
                                              BIND_TEXT(edited), BIND_TEXT(id), BIND_END},
                        err, errlen);
    free(edited);
    return rc;
}

static int sq_finish(struct queue *q, const char *id, int64_t fence, enum job_status status,
                     const char *result_json, const char *error, char *err, size_t errlen)
{
    struct finish_arg a = {status, result_json, error};
    (void)fence;
    return sq_txn(q, id, finish_step, &a, err, errlen);
}

/* No leases with SQLite. */
static int sq_heartbeat(struct queue *q, const char *id, int64_t fence, int lease_seconds,
                        char *err, size_t errlen)
{
    (void)q, (void)id, (void)fence, (void)lease_seconds, (void)err, (void)errlen;
    return 0;
}

/* queue_cancel's step: queued -> cancelled at once; running: cancel_requested. */
static int cancel_step(struct queue *q, const char *id, const struct job_state *js, void *arg,
                       char *err, size_t errlen)
{
    (void)arg;
    const char *sql;
    if (js->status == JOB_QUEUED)
        sql = "UPDATE jobs SET status = 'cancelled', cancel_requested = 1, finished_at = ?1, "
              "updated_at = ?1 WHERE id = ?2";
    else if (js->status == JOB_RUNNING)
        sql = "UPDATE jobs SET cancel_requested = 1, updated_at = ?1 WHERE id = ?2";
    else
        return err_set(err, errlen, ERR_INVALID, "job %s is already %s", id,
                       job_status_name(js->status));
    return exec_write(q, sql, "cancel job",
                      (const struct bind[]){BIND_REAL(fs_now()), BIND_TEXT(id), BIND_END}, err,
                      errlen);
}

static int sq_cancel(struct queue *q, const char *id, char *err, size_t errlen)
{
    return sq_txn(q, id, cancel_step, NULL, err, errlen);
}

static int sq_cancel_requested(struct queue *q, const char *id, int *requested, char *err,
                               size_t errlen)
{
    enum job_status status;
    return job_state(q, id, &status, requested, NULL, err, errlen);
}

/* queue_requeue's step: running -> queued, closing the last stage. */
static int requeue_step(struct queue *q, const char *id, const struct job_state *js, void *arg,
                        char *err, size_t errlen)
{
    int count_attempt = *(const int *)arg;
    char *edited = NULL;
    double now = fs_now();
    int rc = must_be_running(id, js, err, errlen);
    if (!rc) rc = queue_stages_edit(js->stages, NULL, now, &edited, err, errlen);
    if (!rc)
        rc = exec_write(q,
                        "UPDATE jobs SET status = 'queued', stage = '', progress = 0, "
                        "started_at = NULL, updated_at = ?1, stages = ?2, "
                        "attempts = attempts + ?3 WHERE id = ?4",
                        "requeue job",
                        (const struct bind[]){BIND_REAL(now), BIND_TEXT(edited),
                                              BIND_INT(count_attempt ? 1 : 0), BIND_TEXT(id),
                                              BIND_END},
                        err, errlen);
    free(edited);
    return rc;
}

static int sq_requeue(struct queue *q, const char *id, int64_t fence, int count_attempt, char *err,
                      size_t errlen)
{
    (void)fence;
    return sq_txn(q, id, requeue_step, &count_attempt, err, errlen);
}

struct running_job {
    char id[JOB_ID_LEN + 1];
    int attempts;
    char *stages;
};

static int sq_recover(struct queue *q, int max_attempts, int *requeued, int *failed, char *err,
                      size_t errlen)
{
    sqlite3_stmt *st = NULL;
    struct running_job *jobs = NULL;
    size_t n = 0, cap = 0;
    int in_txn = 0, n_requeued = 0, n_failed = 0;
    char *edited = NULL;
    int rc = 0;
    if ((rc = db_begin(DB(q), err, errlen))) goto out;
    in_txn = 1;
    /* Read them all first: no UPDATE while a scan of the same table is open. */
    if ((rc = db_prepare(DB(q), "SELECT id, attempts, stages FROM jobs WHERE status = 'running'",
                         &st, err, errlen)))
        goto out;
    int s;
    while ((s = db_step(DB(q), st)) == SQLITE_ROW) {
        if (n == cap) {
            size_t ncap = cap ? 2 * cap : 8;
            struct running_job *nj = realloc(jobs, ncap * sizeof *nj);
            if (!nj) {
                rc = err_set(err, errlen, ERR_NOMEM, "out of memory");
                goto out;
            }
            jobs = nj;
            cap = ncap;
        }
        struct running_job *j = &jobs[n];
        snprintf(j->id, sizeof j->id, "%s", (const char *)sqlite3_column_text(st, 0));
        j->attempts = sqlite3_column_int(st, 1);
        if (col_dup(st, 2, 0, &j->stages)) {
            rc = err_set(err, errlen, ERR_NOMEM, "out of memory");
            goto out;
        }
        n++;
    }
    if (s != SQLITE_DONE) {
        rc = db_fail(DB(q), s, "find running jobs", err, errlen);
        goto out;
    }
    sqlite3_finalize(st);
    st = NULL;

    double now = fs_now();
    for (size_t i = 0; i < n; i++) {
        int attempts = jobs[i].attempts + 1;
        int give_up = attempts >= max_attempts;
        char msg[128];
        queue_gave_up_message(attempts, msg, sizeof msg);
        free(edited);
        edited = NULL;
        if ((rc = queue_stages_edit(jobs[i].stages, NULL, now, &edited, err, errlen))) goto out;
        if ((rc = db_prepare(DB(q),
                             give_up ? "UPDATE jobs SET status = 'failed', attempts = ?1, "
                                       "finished_at = ?2, updated_at = ?2, stages = ?3, "
                                       "error = ?4 WHERE id = ?5"
                                     : "UPDATE jobs SET status = 'queued', attempts = ?1, "
                                       "stage = '', progress = 0, started_at = NULL, "
                                       "updated_at = ?2, stages = ?3 WHERE id = ?5",
                             &st, err, errlen)))
            goto out;
        sqlite3_bind_int(st, 1, attempts);
        sqlite3_bind_double(st, 2, now);
        sqlite3_bind_text(st, 3, edited, -1, SQLITE_STATIC);
        if (give_up) sqlite3_bind_text(st, 4, msg, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, jobs[i].id, -1, SQLITE_STATIC);
        if ((rc = step_done(q, st, "recover job", err, errlen))) goto out;
        sqlite3_finalize(st);
        st = NULL;
        if (give_up)
            n_failed++;
        else
            n_requeued++;
    }
    if ((rc = db_commit(DB(q), err, errlen))) goto out;
    in_txn = 0;
    if (requeued) *requeued = n_requeued;
    if (failed) *failed = n_failed;
out:
    sqlite3_finalize(st);
    if (in_txn) db_rollback(DB(q));
    for (size_t i = 0; i < n; i++)
        free(jobs[i].stages);
    free(jobs);
    free(edited);
    return rc;
}

/* ---- removal, counts, retention ---- */

/* queue_delete's step: removes a finished job's row. */
static int delete_step(struct queue *q, const char *id, const struct job_state *js, void *arg,
                       char *err, size_t errlen)
{
    (void)arg;
    if (!queue_is_finished(js->status))
        return err_set(err, errlen, ERR_INVALID, "job %s is %s: only a finished job can be deleted",
                       id, job_status_name(js->status));
    return exec_write(q, "DELETE FROM jobs WHERE id = ?1", "delete job",
                      (const struct bind[]){BIND_TEXT(id), BIND_END}, err, errlen);
}

static int sq_remove(struct queue *q, const char *id, char *err, size_t errlen)
{
    return sq_txn(q, id, delete_step, NULL, err, errlen);
}

static int sq_counts(struct queue *q, int64_t counts[JOB_STATUS_COUNT], char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int64_t c[JOB_STATUS_COUNT] = {0};
    int rc =
        db_prepare(DB(q), "SELECT status, count(*) FROM jobs GROUP BY status", &st, err, errlen);
    if (rc) return rc;
    int s;
    while ((s = db_step(DB(q), st)) == SQLITE_ROW) {
        enum job_status status;
        if (job_status_parse((const char *)sqlite3_column_text(st, 0), &status)) {
            rc = err_set(err, errlen, ERR_INTERNAL, "a job has an unknown status");
            goto out;
        }
        c[status] = sqlite3_column_int64(st, 1);
    }
    if (s != SQLITE_DONE) {
        rc = db_fail(DB(q), s, "count jobs", err, errlen);
        goto out;
    }
    memcpy(counts, c, sizeof c);
out:
    sqlite3_finalize(st);
    return rc;
}

static int sq_expired(struct queue *q, double older_than, char ***ids, size_t *n, char *err,
                      size_t errlen)
{
    sqlite3_stmt *st = NULL;
    char **out = NULL;
    size_t got = 0, cap = 0;
    *ids = NULL;
    *n = 0;
    int rc = db_prepare(DB(q),
                        "SELECT id FROM jobs WHERE finished_at IS NOT NULL AND finished_at < ? "
                        "AND status IN " QUEUE_FINISHED_SQL " AND files_deleted = 0 "
                        "ORDER BY finished_at, rowid",
                        &st, err, errlen);
    if (rc) return rc;
    sqlite3_bind_double(st, 1, older_than);
    int s;
    while ((s = db_step(DB(q), st)) == SQLITE_ROW) {
        if (got == cap) {
            size_t ncap = cap ? 2 * cap : 16;
            char **no = realloc(out, ncap * sizeof *no);
            if (!no) goto nomem;
            out = no;
            cap = ncap;
        }
        if (col_dup(st, 0, 0, &out[got])) goto nomem;
        got++;
    }
    if (s != SQLITE_DONE) {
        rc = db_fail(DB(q), s, "list expired jobs", err, errlen);
        goto out;
    }
    goto out;
nomem:
    rc = err_set(err, errlen, ERR_NOMEM, "out of memory");
out:
    sqlite3_finalize(st);
    if (rc) {
        queue_ids_free(out, got);
        return rc;
    }
    *ids = out;
    *n = got;
    return 0;
}

static int sq_mark_files_deleted(struct queue *q, const char *id, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc;
    if ((rc = db_prepare(DB(q),
                         "UPDATE jobs SET files_deleted = 1, updated_at = ? "
                         "WHERE id = ? AND status IN " QUEUE_FINISHED_SQL,
                         &st, err, errlen)))
        return rc;
    sqlite3_bind_double(st, 1, fs_now());
    sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
    if (!(rc = step_done(q, st, "mark files deleted", err, errlen)) &&
        !sqlite3_changes(db_handle(DB(q))))
        rc = why_unchanged(q, id, "finished", err, errlen);
    sqlite3_finalize(st);
    return rc;
}

static int sq_integrity_check(struct queue *q, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = db_prepare(DB(q), "PRAGMA integrity_check", &st, err, errlen);
    if (rc) return rc;
    int s = db_step(DB(q), st);
    if (s != SQLITE_ROW) {
        rc = db_fail(DB(q), s, "integrity_check", err, errlen);
    } else {
        const char *r = (const char *)sqlite3_column_text(st, 0);
        if (!r || strcmp(r, "ok"))
            rc = err_set(err, errlen, ERR_DB, "integrity_check: %s", r ? r : "(null)");
    }
    sqlite3_finalize(st);
    return rc;
}

/* No leases with SQLite: queue_recover at start-up covers a dead daemon. */
static int sq_rescue(struct queue *q, int max_attempts, int *requeued, int *failed, char *err,
                     size_t errlen)
{
    (void)q, (void)max_attempts, (void)requeued, (void)failed, (void)err, (void)errlen;
    return 0;
}

/* No notifications in SQLite: the workers poll. */
static int sq_listen(struct queue *q, char *err, size_t errlen)
{
    (void)q;
    return err_set(err, errlen, ERR_UNSUPPORTED, "SQLite has no notifications");
}

static int sq_wait(struct queue *q, double timeout_s, enum queue_event *event,
                   char id[JOB_ID_LEN + 1], char *err, size_t errlen)
{
    (void)q, (void)timeout_s, (void)event, (void)id;
    return err_set(err, errlen, ERR_UNSUPPORTED, "SQLite has no notifications");
}

static const struct queue_ops sqlite_ops = {
    .name = "sqlite",
    .close = sq_close,
    .submit_many = sq_submit_many,
    .get = sq_get,
    .list = sq_list,
    .claim = sq_claim,
    .set_stage = sq_set_stage,
    .set_progress = sq_set_progress,
    .finish = sq_finish,
    .heartbeat = sq_heartbeat,
    .cancel = sq_cancel,
    .cancel_requested = sq_cancel_requested,
    .requeue = sq_requeue,
    .recover = sq_recover,
    .rescue = sq_rescue,
    .remove = sq_remove,
    .counts = sq_counts,
    .expired = sq_expired,
    .mark_files_deleted = sq_mark_files_deleted,
    .integrity_check = sq_integrity_check,
    .listen = sq_listen,
    .wait = sq_wait,
};
