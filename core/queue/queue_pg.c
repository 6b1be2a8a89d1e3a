/* queue_pg.c - the job queue on PostgreSQL: several daemons, leases, fencing */
#include "queue_backend.h"

#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "db.h"
#include "err.h"
#include "fsutil.h"

/*
 * DESIGN
 *
 * The same jobs table and state machine as SQLite
 * (migrations/postgres/0001_init.sql), shared by several daemons, each
 * with one PGconn per thread.  Every one-job transition runs in pg_txn:
 * BEGIN, SELECT ... FOR UPDATE of the job's row (so two connections never
 * act on the same stale state), the step's checks and writes, COMMIT; any
 * failure rolls back.  Commits are durable (synchronous_commit on, the
 * server's default) before a call returns.
 *
 * THE LEASE AND FENCING PROTOCOL.
 *
 *   claim   UPDATE ... WHERE id = (SELECT id ... status = 'queued' ORDER BY
 *           created_at, seq LIMIT 1 FOR UPDATE SKIP LOCKED): claimers never
 *           wait on one another and never get the same row.  The claim
 *           records claimed_by (queue_daemon_id: host:pid:start), a lease
 *           (lease_until = the database's clock + lease_seconds) and a new
 *           fencing token (fence = nextval('jobs_fence'): never handed out
 *           twice).
 *   renew   queue_heartbeat (the daemon's lease thread, every
 *           lease_seconds / 3) moves lease_until on, only while status is
 *           running and fence is still the claim's.
 *   rescue  queue_rescue (every daemon, periodically) takes the running
 *           rows whose lease_until has passed (FOR UPDATE SKIP LOCKED) and
 *           re-queues them with attempts + 1, or fails them at
 *           max_attempts, exactly as SQLite's start-up recovery does; it
 *           also draws a new fence, so the old holder's token is dead at
 *           once, before anyone claims the job again.
 *   fence   every set_stage, set_progress, finish, requeue and heartbeat
 *           names the claim's fence; a row whose fence differs answers
 *           ERR_CONFLICT and nothing is written.  A daemon that was frozen
 *           (SIGSTOP, a stalled VM) past its lease wakes, finds its writes
 *           refused, and abandons the job: its late result never lands.
 *
 * Leases use the database's clock only (clock_timestamp()), so the boxes'
 * clocks need not agree; the row's other times are the daemon's fs_now(),
 * as with SQLite.  A dead box's job waits at most lease_seconds (plus one
 * rescue period, lease_seconds / 3) before another daemon re-queues it.
 *
 * Lost server.  A call first checks the connection (PQconsumeInput notices
 * a server that closed it) and resets it when it is bad; while the server
 * is down every call answers ERR_DB and changes nothing, and the first call
 * after it is back reconnects.  A COMMIT whose answer was lost may or may
 * not have landed: callers retry with what makes a retry harmless
 * (idempotency keys for submissions, the fence for a finish).
 *
 * Wake-ups.  A submission's transaction sends NOTIFY prunerd_submit and
 * the cancellation of a running job NOTIFY prunerd_cancel with its id
 * (delivered at COMMIT, folded when repeated); a daemon's listener thread
 * (queue_listen, queue_wait) wakes its idle workers, or tells the worker
 * running that job to look at cancel_requested now.  Workers still poll
 * (1 s idle, 0.2 s for cancel): a notification lost while the connection
 * was down costs at most a poll period.
 *
 * Migrations.  migrations/postgres/NNNN_name.sql (the rule in core/queue/db.c),
 * embedded as pg_migrations, are applied like SQLite's, each with its
 * record in one transaction, while holding a session advisory lock, so two
 * daemons starting at once apply them once.
 */

extern const struct db_migration pg_migrations[];
extern const size_t pg_migration_count;

#define MIGRATION_LOCK "7308895045011751012" /* pg_advisory_lock key: "prunerd" */

struct pg_queue {
    struct queue base;
    PGconn *conn;
    char daemon_id[128];
    int listening; /* queue_listen was called: LISTEN again after a reconnect */
};

#define PQ(q) ((struct pg_queue *)(q))

#define JOB_COLUMNS                                                                                \
    "id, name, status, stage, progress, owner, attempts, cancel_requested, created_at, "           \
    "started_at, finished_at, request, stages, result, error, files_deleted, fence, "              \
    "coalesce(claimed_by, ''), seq"
#define COL_SEQ 18

#define DB_NOW "extract(epoch from clock_timestamp())::float8"

/* ---- parameters and statements ---- */

#define PG_MAX_PARAMS 10

/* Text parameters for PQexecParams: strings by reference, numbers printed here. */
struct pg_params {
    const char *v[PG_MAX_PARAMS];
    char num[PG_MAX_PARAMS][32];
    int n;
};

static void p_text(struct pg_params *p, const char *s)
{
    p->v[p->n++] = s; /* NULL: SQL NULL */
}

static void p_real(struct pg_params *p, double d)
{
    snprintf(p->num[p->n], sizeof p->num[0], "%.17g", d);
    p->v[p->n] = p->num[p->n];
    p->n++;
}

static void p_int(struct pg_params *p, int64_t i)
{
    snprintf(p->num[p->n], sizeof p->num[0], "%" PRId64, i);
    p->v[p->n] = p->num[p->n];
    p->n++;
}

/* Writes "what: PostgreSQL's message" and returns ERR_DB. */
static int pg_fail(struct pg_queue *pq, const PGresult *res, const char *what, char *err,
                   size_t errlen)
{
    const char *m = res ? PQresultErrorMessage(res) : "";
    if (!m || !*m) m = PQerrorMessage(pq->conn);
    char msg[256];
    snprintf(msg, sizeof msg, "%s", m && *m ? m : "no answer");
    msg[strcspn(msg, "\n")] = '\0';
    return err_set(err, errlen, ERR_DB, "%s: PostgreSQL: %s", what, msg);
}

/*
 * Runs sql with the parameters (p may be NULL).  0 with *res set (when res
 * is not NULL; PQclear it) for a command or a query that succeeded, else
 * ERR_DB naming what.
 */
static int pg_exec(struct pg_queue *pq, const char *sql, const struct pg_params *p,
                   const char *what, PGresult **res, char *err, size_t errlen)
{
    PGresult *r = PQexecParams(pq->conn, sql, p ? p->n : 0, NULL, p ? p->v : NULL, NULL, NULL, 0);
    ExecStatusType s = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (res) *res = NULL;
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
        int rc = pg_fail(pq, r, what, err, errlen);
        PQclear(r);
        return rc;
    }
    if (res)
        *res = r;
    else
        PQclear(r);
    return 0;
}

/* Reconnects when the server closed the connection (a restart) or it broke. */
static int pg_ready(struct pg_queue *pq, char *err, size_t errlen)
{
    if (PQstatus(pq->conn) == CONNECTION_OK && PQtransactionStatus(pq->conn) == PQTRANS_IDLE) {
        /* Notices a server that said goodbye since the last call. */
        PQconsumeInput(pq->conn);
        if (PQstatus(pq->conn) == CONNECTION_OK) return 0;
    }
    if (PQstatus(pq->conn) == CONNECTION_OK) {
        /* A transaction left open by a failure: roll it back. */
        PQclear(PQexec(pq->conn, "ROLLBACK"));
        if (PQstatus(pq->conn) == CONNECTION_OK) return 0;
    }
    PQreset(pq->conn);
    if (PQstatus(pq->conn) != CONNECTION_OK) return pg_fail(pq, NULL, "connect", err, errlen);
    if (pq->listening) {
        PGresult *r = PQexec(pq->conn, "LISTEN prunerd_submit; LISTEN prunerd_cancel");
        int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        PQclear(r);
        if (!ok) return pg_fail(pq, NULL, "listen again", err, errlen);
    }
    return 0;
}

static int pg_begin(struct pg_queue *pq, char *err, size_t errlen)
{
    int rc = pg_ready(pq, err, errlen);
    return rc ? rc : pg_exec(pq, "BEGIN", NULL, "begin", NULL, err, errlen);
}

static int pg_commit(struct pg_queue *pq, char *err, size_t errlen)
{
    return pg_exec(pq, "COMMIT", NULL, "commit", NULL, err, errlen);
}

static void pg_rollback(struct pg_queue *pq)
{
    if (PQstatus(pq->conn) == CONNECTION_OK && PQtransactionStatus(pq->conn) != PQTRANS_IDLE)
        PQclear(PQexec(pq->conn, "ROLLBACK"));
}

/* ---- rows ---- */

static double col_real(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtod(PQgetvalue(r, row, col), NULL);
}

static int64_t col_int(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static int col_dup(const PGresult *r, int row, int col, int nullable, char **out)
{
    *out = NULL;
    if (PQgetisnull(r, row, col) && nullable) return 0;
    *out = strdup(PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col));
    return *out ? 0 : ERR_NOMEM;
}

/* Fills out from a row of SELECT JOB_COLUMNS; on failure frees what it set. */
static int row_read(const PGresult *r, int row, struct job_row *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    snprintf(out->id, sizeof out->id, "%s", PQgetvalue(r, row, 0));
    const char *status = PQgetvalue(r, row, 2);
    if (job_status_parse(status, &out->status))
        return err_set(err, errlen, ERR_INTERNAL, "job %s has status '%s'", out->id, status);
    out->progress = col_real(r, row, 4);
    out->attempts = (int)col_int(r, row, 6);
    out->cancel_requested = (int)col_int(r, row, 7);
    out->created_at = col_real(r, row, 8);
    out->started_at = col_real(r, row, 9);
    out->finished_at = col_real(r, row, 10);
    out->files_deleted = (int)col_int(r, row, 15);
    out->fence = col_int(r, row, 16);
    snprintf(out->claimed_by, sizeof out->claimed_by, "%s", PQgetvalue(r, row, 17));
    if (col_dup(r, row, 1, 0, &out->name) || col_dup(r, row, 3, 0, &out->stage) ||
        col_dup(r, row, 5, 0, &out->owner) || col_dup(r, row, 11, 0, &out->request) ||
        col_dup(r, row, 12, 0, &out->stages) || col_dup(r, row, 13, 1, &out->result) ||
        col_dup(r, row, 14, 1, &out->error)) {
        job_row_free(out);
        return err_set(err, errlen, ERR_NOMEM, "out of memory");
    }
    return 0;
}

/* ---- the one transaction of a one-job transition ---- */

struct job_state {
    enum job_status status;
    int cancel_requested;
    int64_t fence;
    char *stages;
};

/* Reads the job's state, locking its row until the transaction ends. */
static int job_state_lock(struct pg_queue *pq, const char *id, int lock, struct job_state *js,
                          char *err, size_t errlen)
{
    PGresult *r = NULL;
    struct pg_params p = {0};
    p_text(&p, id);
    int rc =
        pg_exec(pq,
                lock ? "SELECT status, cancel_requested, fence, stages FROM jobs "
                       "WHERE id = $1 FOR UPDATE"
                     : "SELECT status, cancel_requested, fence, stages FROM jobs WHERE id = $1",
                &p, "read job", &r, err, errlen);
    if (rc) return rc;
    if (PQntuples(r) == 0)
        rc = err_set(err, errlen, ERR_NOTFOUND, "no job %s", id);
    else if (job_status_parse(PQgetvalue(r, 0, 0), &js->status))
        rc = err_set(err, errlen, ERR_INTERNAL, "job %s has an unknown status", id);
    else {
        js->cancel_requested = (int)col_int(r, 0, 1);
        js->fence = col_int(r, 0, 2);
        if (col_dup(r, 0, 3, 0, &js->stages)) rc = err_set(err, errlen, ERR_NOMEM, "out of memory");
    }
    PQclear(r);
    return rc;
}

typedef int (*txn_step_fn)(struct pg_queue *pq, const char *id, const struct job_state *js,
                           void *arg, char *err, size_t errlen);

/*
 * BEGIN, SELECT the job FOR UPDATE (ERR_NOTFOUND when there is none), step,
 * COMMIT; any failure rolls back, nothing changes.
 */
static int pg_txn(struct pg_queue *pq, const char *id, txn_step_fn step, void *arg, char *err,
                  size_t errlen)
{
    struct job_state js = {JOB_QUEUED, 0, 0, NULL};
    int rc = pg_begin(pq, err, errlen);
    if (rc) return rc;
    if (!(rc = job_state_lock(pq, id, 1, &js, err, errlen)) &&
        !(rc = step(pq, id, &js, arg, err, errlen)))
        rc = pg_commit(pq, err, errlen);
    if (rc) pg_rollback(pq);
    free(js.stages);
    return rc;
}

/* The fenced checks: the caller's claim still holds the job, and it runs. */
static int must_hold(const char *id, const struct job_state *js, int64_t fence, char *err,
                     size_t errlen)
{
    if (js->fence != fence)
        return err_set(err, errlen, ERR_CONFLICT,
                       "job %s was taken over (fence %" PRId64 ", now %" PRId64
                       "): its lease expired and it was rescued",
                       id, fence, js->fence);
    if (js->status != JOB_RUNNING)
        return err_set(err, errlen, ERR_INVALID, "job %s is %s, not running", id,
                       job_status_name(js->status));
    return 0;
}

/* After a fenced UPDATE changed nothing: why. */
static int why_unchanged(struct pg_queue *pq, const char *id, int64_t fence, int fenced,
                         const char *want, char *err, size_t errlen)
{
    struct job_state js = {JOB_QUEUED, 0, 0, NULL};
    int rc = job_state_lock(pq, id, 0, &js, err, errlen);
    free(js.stages);
    if (rc) return rc;
    if (fenced && js.fence != fence) return must_hold(id, &js, fence, err, errlen);
    return err_set(err, errlen, ERR_INVALID, "job %s is %s, not %s", id, job_status_name(js.status),
                   want);
}

/* ---- open / close, migrations ---- */

static int migrations_check(struct pg_queue *pq, char *err, size_t errlen)
{
    PGresult *r = NULL;
    int rc = pg_exec(pq, "SELECT version, name FROM schema_migrations ORDER BY version", NULL,
                     "read schema_migrations", &r, err, errlen);
    if (rc) return rc;
    for (int i = 0; i < PQntuples(r) && !rc; i++) {
        int version = atoi(PQgetvalue(r, i, 0));
        const char *name = PQgetvalue(r, i, 1);
        size_t k;
        for (k = 0; k < pg_migration_count && pg_migrations[k].version != version; k++)
            ;
        if (k == pg_migration_count)
            rc = err_set(err, errlen, ERR_DB,
                         "the database records migration %04d_%s, which this prunerd does not "
                         "have: it was written by a newer prunerd",
                         version, name);
        else if (strcmp(name, pg_migrations[k].name))
            rc = err_set(err, errlen, ERR_DB,
                         "the database records migration %04d as '%s' but this prunerd has "
                         "'%s' (an applied migration was renamed)",
                         version, name, pg_migrations[k].name);
    }
    PQclear(r);
    return rc;
}

static int migration_apply(struct pg_queue *pq, const struct db_migration *m, char *err,
                           size_t errlen)
{
    PGresult *r = NULL;
    struct pg_params p = {0};
    p_int(&p, m->version);
    int rc = pg_exec(pq, "BEGIN", NULL, "begin", NULL, err, errlen);
    if (rc) return rc;
    if ((rc = pg_exec(pq, "SELECT 1 FROM schema_migrations WHERE version = $1", &p,
                      "read schema_migrations", &r, err, errlen)))
        goto out;
    int done = PQntuples(r) > 0;
    PQclear(r);
    if (!done) {
        /* PQexec: the file may hold several statements. */
        PGresult *x = PQexec(pq->conn, m->sql);
        if (PQresultStatus(x) != PGRES_COMMAND_OK && PQresultStatus(x) != PGRES_TUPLES_OK) {
            char what[96];
            snprintf(what, sizeof what, "migration %04d_%s", m->version, m->name);
            rc = pg_fail(pq, x, what, err, errlen);
            PQclear(x);
            goto out;
        }
        PQclear(x);
        p_text(&p, m->name);
        p_real(&p, fs_now());
        if ((rc = pg_exec(pq,
                          "INSERT INTO schema_migrations (version, name, applied_at) "
                          "VALUES ($1, $2, $3)",
                          &p, "record migration", NULL, err, errlen)))
            goto out;
    }
    rc = pg_commit(pq, err, errlen);
out:
    if (rc) pg_rollback(pq);
    return rc;
}

static int pg_migrate(struct pg_queue *pq, char *err, size_t errlen)
{
    int rc = pg_exec(pq, "SELECT pg_advisory_lock(" MIGRATION_LOCK ")", NULL,
                     "take the migration lock", NULL, err, errlen);
    if (rc) return rc;
    if (!(rc = pg_exec(pq,
                       "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY "
                       "KEY, name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)",
                       NULL, "create schema_migrations", NULL, err, errlen)) &&
        !(rc = migrations_check(pq, err, errlen)))
        for (size_t i = 0; i < pg_migration_count && !rc; i++)
            rc = migration_apply(pq, &pg_migrations[i], err, errlen);
    char ignored[64];
    pg_exec(pq, "SELECT pg_advisory_unlock(" MIGRATION_LOCK ")", NULL, "unlock", NULL, ignored,
            sizeof ignored);
    return rc;
}

static const struct queue_ops pg_ops;

static void notice_quiet(void *arg, const char *message)
{
    (void)arg, (void)message; /* "relation already exists, skipping" and the like */
}

struct queue *queue_pg_open(const char *conninfo, char *err, size_t errlen)
{
    struct pg_queue *pq = calloc(1, sizeof *pq);
    if (!pq) {
        err_set(err, errlen, ERR_NOMEM, "out of memory");
        return NULL;
    }
    pq->base.ops = &pg_ops;
    queue_daemon_id(pq->daemon_id, sizeof pq->daemon_id);
    /* Defaults first: what conninfo (expanded from dbname, last) says wins. */
    const char *const keys[] = {"connect_timeout",
                                "application_name",
                                "keepalives_idle",
                                "keepalives_interval",
                                "keepalives_count",
                                "dbname",
                                NULL};
    const char *const vals[] = {"5", "prunerd", "10", "5", "3", conninfo, NULL};
    pq->conn = PQconnectdbParams(keys, vals, 1);
    if (!pq->conn || PQstatus(pq->conn) != CONNECTION_OK) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s", pq->conn ? PQerrorMessage(pq->conn) : "out of memory");
        msg[strcspn(msg, "\n")] = '\0';
        err_set(err, errlen, ERR_DB, "connect to PostgreSQL: %s", msg);
        goto fail;
    }
    PQsetNoticeProcessor(pq->conn, notice_quiet, NULL);
    if (pg_migrate(pq, err, errlen)) goto fail;
    return &pq->base;
fail:
    PQfinish(pq->conn);
    free(pq);
    return NULL;
}

static void pg_close(struct queue *q)
{
    PQfinish(PQ(q)->conn);
    free(q);
}

/* ---- submit, get, list ---- */

/* Inside the transaction: the job under sub's idempotency key, if any. */
static int idem_lookup(struct pg_queue *pq, struct queue_submission *sub, const char *owner,
                       const char *idem, int *found, char *err, size_t errlen)
{
    PGresult *r = NULL;
    struct pg_params p = {0};
    p_text(&p, owner);
    p_text(&p, idem);
    *found = 0;
    int rc = pg_exec(pq, "SELECT id, request FROM jobs WHERE owner = $1 AND idem_key = $2", &p,
                     "look up idempotency key", &r, err, errlen);
    if (rc) return rc;
    if (PQntuples(r) > 0) {
        *found = 1;
        /* A retry sends the same request; another one under the same key is
         * the caller's mistake, not a replay. */
        if (strcmp(PQgetvalue(r, 0, 1), sub->request_json))
            sub->rc = err_set(sub->err, sizeof sub->err, ERR_CONFLICT,
                              "idempotency key '%s' was used for a different request (job %s)",
                              idem, PQgetvalue(r, 0, 0));
        else {
            snprintf(sub->id, sizeof sub->id, "%s", PQgetvalue(r, 0, 0));
            sub->existed = 1;
        }
    }
    PQclear(r);
    return 0;
}

static int submission_insert(struct pg_queue *pq, struct queue_submission *sub, char *err,
                             size_t errlen)
{
    const char *name = sub->name ? sub->name : "", *owner = sub->owner ? sub->owner : "";
    const char *idem = sub->idem_key && *sub->idem_key ? sub->idem_key : NULL;
    char nid[JOB_ID_LEN + 1];
    PGresult *r = NULL;
    int found = 0, rc;
    if (idem && ((rc = idem_lookup(pq, sub, owner, idem, &found, err, errlen)) || found)) return rc;
    if ((rc = queue_uuid_v4(nid, err, errlen))) return rc;
    struct pg_params p = {0};
    double now = fs_now();
    p_text(&p, nid);
    p_text(&p, name);
    p_text(&p, owner);
    p_real(&p, now);
    p_text(&p, sub->request_json);
    p_text(&p, idem);
    /* Another daemon may insert the same key meanwhile: then take its job. */
    if ((rc = pg_exec(pq,
                      "INSERT INTO jobs (id, name, status, owner, created_at, updated_at, "
                      "request, idem_key) VALUES ($1, $2, 'queued', $3, $4, $4, $5, $6) "
                      "ON CONFLICT (owner, idem_key) DO NOTHING RETURNING id",
                      &p, "insert job", &r, err, errlen)))
        return rc;
    int inserted = PQntuples(r) > 0;
    PQclear(r);
    if (inserted) {
        memcpy(sub->id, nid, sizeof nid);
        sub->created_at = now;
        return 0;
    }
    if ((rc = idem_lookup(pq, sub, owner, idem, &found, err, errlen))) return rc;
    return found ? 0 : err_set(err, errlen, ERR_INTERNAL, "insert job: a conflict, then no job");
}

/*
 * A batch without idempotency keys in one statement, so one round trip and
 * one commit: the rows go in as a JSON array (jansson does the quoting),
 * and the statement also sends the wake-up.  Ids are set only once it
 * committed.
 */
static int submit_batch(struct pg_queue *pq, struct queue_submission *subs, size_t n, char *err,
                        size_t errlen)
{
    char(*ids)[JOB_ID_LEN + 1] = calloc(n, sizeof *ids);
    json_t *rows = json_array();
    char *text = NULL;
    PGresult *r = NULL;
    long want = 0;
    int rc = 0;
    if (!ids || !rows) {
        rc = err_set(err, errlen, ERR_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n && !rc; i++) {
        if (subs[i].rc) continue;
        if ((rc = queue_uuid_v4(ids[i], err, errlen))) break;
        json_t *row = json_pack(
            "{s:s, s:s, s:s, s:s}", "id", ids[i], "name", subs[i].name ? subs[i].name : "", "owner",
            subs[i].owner ? subs[i].owner : "", "request", subs[i].request_json);
        if (!row) { /* name or owner not UTF-8: this submission fails alone */
            subs[i].rc = err_set(subs[i].err, sizeof subs[i].err, ERR_INVALID,
                                 "the name or owner is not UTF-8 text");
            continue;
        }
        if (json_array_append_new(rows, row)) rc = err_set(err, errlen, ERR_NOMEM, "out of memory");
        want++;
    }
    if (rc) goto out;
    if (!(text = json_dumps(rows, JSON_COMPACT))) {
        rc = err_set(err, errlen, ERR_NOMEM, "out of memory");
        goto out;
    }
    struct pg_params p = {0};
    double now = fs_now();
    p_text(&p, text);
    p_real(&p, now);
    if ((rc = pg_ready(pq, err, errlen)) ||
        (rc = pg_exec(pq,
                      "WITH ins AS (INSERT INTO jobs (id, name, status, owner, created_at, "
                      "updated_at, request) SELECT x->>'id', x->>'name', 'queued', x->>'owner', "
                      "$2, $2, x->>'request' FROM json_array_elements($1::json) AS x RETURNING 1) "
                      "SELECT count(*), pg_notify('prunerd_submit', '') FROM ins",
                      &p, "insert jobs", &r, err, errlen)))
        goto out;
    if (col_int(r, 0, 0) != want) {
        rc = err_set(err, errlen, ERR_INTERNAL, "inserted %lld jobs of %ld",
                     (long long)col_int(r, 0, 0), want);
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        if (!subs[i].rc) {
            memcpy(subs[i].id, ids[i], sizeof ids[i]);
            subs[i].created_at = now;
        }
out:
    PQclear(r);
    free(text);
    json_decref(rows);
    free(ids);
    return rc;
}

static int pg_submit_many(struct queue *q, struct queue_submission *subs, size_t n, char *err,
                          size_t errlen)
{
    struct pg_queue *pq = PQ(q);
    int keys = 0;
    for (size_t i = 0; i < n; i++)
        keys |= !subs[i].rc && subs[i].idem_key && *subs[i].idem_key;
    if (!keys) return submit_batch(pq, subs, n, err, errlen);
    /* Idempotency keys: one statement each, in one transaction. */
    int rc = pg_begin(pq, err, errlen);
    if (rc) return rc;
    for (size_t i = 0; i < n && !rc; i++)
        if (!subs[i].rc) rc = submission_insert(pq, &subs[i], err, errlen);
    /* Wakes the listening daemons' idle workers, at COMMIT. */
    if (!rc)
        rc = pg_exec(pq, "SELECT pg_notify('prunerd_submit', '')", NULL, "notify", NULL, err,
                     errlen);
    if (!rc) rc = pg_commit(pq, err, errlen);
    if (rc) pg_rollback(pq);
    return rc;
}

static int pg_get(struct queue *q, const char *id, struct job_row *out, char *err, size_t errlen)
{
    struct pg_queue *pq = PQ(q);
    PGresult *r = NULL;
    struct pg_params p = {0};
    p_text(&p, id);
    int rc = pg_ready(pq, err, errlen);
    if (rc || (rc = pg_exec(pq, "SELECT " JOB_COLUMNS " FROM jobs WHERE id = $1", &p, "read job",
                            &r, err, errlen)))
        return rc;
    rc = PQntuples(r) ? row_read(r, 0, out, err, errlen)
                      : err_set(err, errlen, ERR_NOTFOUND, "no job %s", id);
    PQclear(r);
    return rc;
}

static int pg_list(struct queue *q, int status, int limit, const char *cursor,
                   struct job_row **rows, size_t *n, char next_cursor[64], char *err, size_t errlen)
{
    struct pg_queue *pq = PQ(q);
    PGresult *r = NULL;
    struct pg_params p = {0};
    double c_at = 0;
    int64_t c_seq = 0;
    int has_cursor = cursor && *cursor;
    if (has_cursor) queue_cursor_parse(cursor, &c_at, &c_seq); /* checked by queue_list */
    p_text(&p, status >= 0 ? job_status_name((enum job_status)status) : NULL);
    if (has_cursor) {
        p_real(&p, c_at);
        p_int(&p, c_seq);
    } else {
        p_text(&p, NULL);
        p_text(&p, NULL);
    }
    p_int(&p, limit + 1); /* one more: is there a next page? */
    int rc = pg_ready(pq, err, errlen);
    if (rc ||
        (rc = pg_exec(pq,
                      "SELECT " JOB_COLUMNS " FROM jobs WHERE ($1::text IS NULL OR status = $1) "
                      "AND ($2::float8 IS NULL OR created_at < $2 OR "
                      "(created_at = $2 AND seq < $3::bigint)) "
                      "ORDER BY created_at DESC, seq DESC LIMIT $4",
                      &p, "list jobs", &r, err, errlen)))
        return rc;
    int got = PQntuples(r);
    if (got > limit) {
        queue_cursor_make(col_real(r, limit - 1, 8), col_int(r, limit - 1, COL_SEQ), next_cursor);
        got = limit;
    }
    struct job_row *out = got ? calloc((size_t)got, sizeof *out) : NULL;
    if (got && !out) rc = err_set(err, errlen, ERR_NOMEM, "out of memory");
    int i;
    for (i = 0; !rc && i < got; i++)
        rc = row_read(r, i, &out[i], err, errlen);
    PQclear(r);
    if (rc) {
        for (int k = 0; k < i - 1; k++)
            job_row_free(&out[k]);
        free(out);
        next_cursor[0] = '\0';
        return rc;
    }
    *rows = out;
    *n = (size_t)got;
    return 0;
}

/* ---- the worker's transitions ---- */

static int pg_claim(struct queue *q, int lease_seconds, struct job_row *out, char *err,
                    size_t errlen)
{
    struct pg_queue *pq = PQ(q);
    PGresult *r = NULL;
    struct pg_params p = {0};
    p_real(&p, fs_now());
    p_text(&p, pq->daemon_id);
    p_int(&p, lease_seconds);
    int rc = pg_ready(pq, err, errlen);
    if (rc || (rc = pg_exec(pq,
                            "UPDATE jobs SET status = 'running', started_at = $1, updated_at = $1, "
                            "finished_at = NULL, stage = '', progress = 0, stages = '[]', "
                            "claimed_by = $2, lease_until = " DB_NOW " + $3::int, "
                            "fence = nextval('jobs_fence') "
                            "WHERE id = (SELECT id FROM jobs WHERE status = 'queued' "
                            "ORDER BY created_at, seq LIMIT 1 FOR UPDATE SKIP LOCKED) "
                            "AND status = 'queued' RETURNING " JOB_COLUMNS,
                            &p, "claim a job", &r, err, errlen)))
        return rc;
    rc = PQntuples(r) ? row_read(r, 0, out, err, errlen)
                      : err_set(err, errlen, ERR_NOTFOUND, "no queued job");
    PQclear(r);
    return rc;
}

struct stage_arg {
    int64_t fence;
    const char *stage;
};

static int set_stage_step(struct pg_queue *pq, const char *id, const struct job_state *js,
                          void *arg, char *err, size_t errlen)
{
    const struct stage_arg *a = arg;
    char *edited = NULL;
    double now = fs_now();
    int rc = must_hold(id, js, a->fence, err, errlen);
    if (!rc) rc = queue_stages_edit(js->stages, a->stage, now, &edited, err, errlen);
    if (!rc) {
        struct pg_params p = {0};
        p_text(&p, a->stage);
        p_text(&p, edited);
        p_real(&p, now);
        p_text(&p, id);
        rc = pg_exec(pq, "UPDATE jobs SET stage = $1, stages = $2, updated_at = $3 WHERE id = $4",
                     &p, "set stage", NULL, err, errlen);
    }
    free(edited);
    return rc;
}

static int pg_set_stage(struct queue *q, const char *id, int64_t fence, const char *stage,
                        char *err, size_t errlen)
{
    struct stage_arg a = {fence, stage};
    return pg_txn(PQ(q), id, set_stage_step, &a, err, errlen);
}

static int pg_set_progress(struct queue *q, const char *id, int64_t fence, double progress,
                           char *err, size_t errlen)
{
    struct pg_queue *pq = PQ(q);
    PGresult *r = NULL;
    struct pg_params p = {0};
    p_real(&p, progress);
    p_real(&p, fs_now());
    p_text(&p, id);
    p_int(&p, fence);
    int rc = pg_ready(pq, err, errlen);
    if (rc || (rc = pg_exec(pq,
                            "UPDATE jobs SET progress = $1, updated_at = $2 "
                            "WHERE id = $3 AND status = 'running' AND fence = $4",
                            &p, "set progress", &r, err, errlen)))
        return rc;
    int changed = atoi(PQcmdTuples(r));
    PQclear(r);
    return changed ? 0 : why_unchanged(pq, id, fence, 1, "running", err, errlen);
}

static int pg_heartbeat(struct queue *q, const char *id, int64_t fence, int lease_seconds,
                        char *err, size_t errlen)
{
    struct pg_queue *pq = PQ(q);
    PGresult *r = NULL;
    struct pg_params p = {0};
    p_int(&p, lease_seconds);
    p_text(&p, id);
    p_int(&p, fence);
    int rc = pg_ready(pq, err, errlen);
    if (rc || (rc = pg_exec(pq,
                            "UPDATE jobs SET lease_until = " DB_NOW " + $1::int "
                            "WHERE id = $2 AND status = 'running' AND fence = $3",
                            &p, "renew the lease", &r, err, errlen)))
        return rc;
    int changed = atoi(PQcmdTuples(r));
    PQclear(r);
    return changed ? 0 : why_unchanged(pq, id, fence, 1, "running", err, errlen);
}

struct finish_arg {
    int64_t fence;
    enum job_status status;
    const char *result_json, *error;
};

static int finish_step(struct pg_queue *pq, const char *id, const struct job_state *js, void *arg,
                       char *err, size_t errlen)
{
    const struct finish_arg *a = arg;
    char *edited = NULL;
    double now = fs_now();
    int rc = must_hold(id, js, a->fence, err, errlen);
    if (!rc) rc = queue_stages_edit(js->stages, NULL, now, &edited, err, errlen);
    if (!rc) {
        struct pg_params p = {0};
        p_text(&p, job_status_name(a->status));
        p_real(&p, now);
        p_text(&p, a->result_json);
        p_text(&p, a->error);
        p_text(&p, edited);
        p_text(&p, id);
        rc = pg_exec(pq,
                     "UPDATE jobs SET status = $1, finished_at = $2, updated_at = $2, "
                     "result = $3, error = $4, stages = $5, lease_until = NULL, "
                     "progress = CASE WHEN $1 = 'succeeded' THEN 1 ELSE progress END "
                     "WHERE id = $6",
                     &p, "finish job", NULL, err, errlen);
    }
    free(edited);
    return rc;
}

static int pg_finish(struct queue *q, const char *id, int64_t fence, enum job_status status,
                     const char *result_json, const char *error, char *err, size_t errlen)
{
    struct finish_arg a = {fence, status, result_json, error};
    return pg_txn(PQ(q), id, finish_step, &a, err, errlen);
}

static int cancel_step(struct pg_queue *pq, const char *id, const struct job_state *js, void *arg,
                       char *err, size_t errlen)
{
    (void)arg;
    const char *sql;
    if (js->status == JOB_QUEUED)
        sql = "UPDATE jobs SET status = 'cancelled', cancel_requested = 1, finished_at = $1, "
              "updated_at = $1 WHERE id = $2";
    else if (js->status == JOB_RUNNING)
        sql = "UPDATE jobs SET cancel_requested = 1, updated_at = $1 WHERE id = $2";
    else
        return err_set(err, errlen, ERR_INVALID, "job %s is already %s", id,
                       job_status_name(js->status));
    struct pg_params p = {0}, n = {0};
    p_real(&p, fs_now());
    p_text(&p, id);
    p_text(&n, id);
    int rc = pg_exec(pq, sql, &p, "cancel job", NULL, err, errlen);
    /* Reaches the daemon running it, at COMMIT. */
    if (!rc && js->status == JOB_RUNNING)
        rc = pg_exec(pq, "SELECT pg_notify('prunerd_cancel', $1)", &n, "notify", NULL, err, errlen);
    return rc;
}

static int pg_cancel(struct queue *q, const char *id, char *err, size_t errlen)
{
    return pg_txn(PQ(q), id, cancel_step, NULL, err, errlen);
}

static int pg_cancel_requested(struct queue *q, const char *id, int *requested, char *err,
                               size_t errlen)
{
    struct job_state js = {JOB_QUEUED, 0, 0, NULL};
    int rc = pg_ready(PQ(q), err, errlen);
    if (!rc) rc = job_state_lock(PQ(q), id, 0, &js, err, errlen);
    free(js.stages);
    if (!rc) *requested = js.cancel_requested;
    return rc;
}

struct requeue_arg {
    int64_t fence;
    int count_attempt;
};

static int requeue_step(struct pg_queue *pq, const char *id, const struct job_state *js, void *arg,
                        char *err, size_t errlen)
{
    const struct requeue_arg *a = arg;
    char *edited = NULL;
    double now = fs_now();
    int rc = must_hold(id, js, a->fence, err, errlen);
    if (!rc) rc = queue_stages_edit(js->stages, NULL, now, &edited, err, errlen);
    if (!rc) {
        struct pg_params p = {0};
        p_real(&p, now);
        p_text(&p, edited);
        p_int(&p, a->count_attempt ? 1 : 0);
        p_text(&p, id);
        rc = pg_exec(pq,
                     "UPDATE jobs SET status = 'queued', stage = '', progress = 0, "
                     "started_at = NULL, updated_at = $1, stages = $2, lease_until = NULL, "
                     "attempts = attempts + $3::int WHERE id = $4",
                     &p, "requeue job", NULL, err, errlen);
    }
    free(edited);
    return rc;
}

static int pg_requeue(struct queue *q, const char *id, int64_t fence, int count_attempt, char *err,
                      size_t errlen)
{
    struct requeue_arg a = {fence, count_attempt};
    return pg_txn(PQ(q), id, requeue_step, &a, err, errlen);
}

/*
 * One transaction: every running job whose lease has expired (skipping rows
 * another connection holds) goes back to the queue with attempts + 1 and a
 * new fence, or fails at max_attempts.
 */
static int pg_rescue(struct queue *q, int max_attempts, int *requeued, int *failed, char *err,
                     size_t errlen)
{
    struct pg_queue *pq = PQ(q);
    PGresult *r = NULL;
    char *edited = NULL;
    int n_requeued = 0, n_failed = 0;
    int rc = pg_begin(pq, err, errlen);
    if (rc) return rc;
    if ((rc = pg_exec(pq,
                      "SELECT id, attempts, stages FROM jobs WHERE status = 'running' "
                      "AND lease_until < " DB_NOW " FOR UPDATE SKIP LOCKED",
                      NULL, "find expired leases", &r, err, errlen)))
        goto out;
    double now = fs_now();
    for (int i = 0; i < PQntuples(r) && !rc; i++) {
        const char *id = PQgetvalue(r, i, 0);
        int attempts = atoi(PQgetvalue(r, i, 1)) + 1;
        int give_up = attempts >= max_attempts;
        char msg[128];
        struct pg_params p = {0};
        queue_gave_up_message(attempts, msg, sizeof msg);
        free(edited);
        edited = NULL;
        if ((rc = queue_stages_edit(PQgetvalue(r, i, 2), NULL, now, &edited, err, errlen))) break;
        p_int(&p, attempts);
        p_real(&p, now);
        p_text(&p, edited);
        p_text(&p, id);
        if (give_up) p_text(&p, msg);
        rc = pg_exec(pq,
                     give_up ? "UPDATE jobs SET status = 'failed', attempts = $1, "
                               "finished_at = $2, updated_at = $2, stages = $3, error = $5, "
                               "lease_until = NULL, fence = nextval('jobs_fence') WHERE id = $4"
                             : "UPDATE jobs SET status = 'queued', attempts = $1, stage = '', "
                               "progress = 0, started_at = NULL, updated_at = $2, stages = $3, "
                               "lease_until = NULL, fence = nextval('jobs_fence') WHERE id = $4",
                     &p, "rescue job", NULL, err, errlen);
        if (give_up)
            n_failed++;
        else
            n_requeued++;
    }
    if (!rc) rc = pg_commit(pq, err, errlen);
out:
    PQclear(r);
    free(edited);
    if (rc) {
        pg_rollback(pq);
        return rc;
    }
    if (requeued) *requeued = n_requeued;
    if (failed) *failed = n_failed;
    return 0;
}

/* Other daemons may be running their jobs: only expired leases come back. */
static int pg_recover(struct queue *q, int max_attempts, int *requeued, int *failed, char *err,
                      size_t errlen)
{
    return pg_rescue(q, max_attempts, requeued, failed, err, errlen);
}

/* ---- removal, counts, retention ---- */

static int delete_step(struct pg_queue *pq, const char *id, const struct job_state *js, void *arg,
                       char *err, size_t errlen)
{
    (void)arg;
    if (!queue_is_finished(js->status))
        return err_set(err, errlen, ERR_INVALID, "job %s is %s: only a finished job can be deleted",
                       id, job_status_name(js->status));
    struct pg_params p = {0};
    p_text(&p, id);
    return pg_exec(pq, "DELETE FROM jobs WHERE id = $1", &p, "delete job", NULL, err, errlen);
}

static int pg_remove(struct queue *q, const char *id, char *err, size_t errlen)
{
    return pg_txn(PQ(q), id, delete_step, NULL, err, errlen);
}

static int pg_counts(struct queue *q, int64_t counts[JOB_STATUS_COUNT], char *err, size_t errlen)
{
    struct pg_queue *pq = PQ(q);
    PGresult *r = NULL;
    int64_t c[JOB_STATUS_COUNT] = {0};
    int rc = pg_ready(pq, err, errlen);
    if (rc || (rc = pg_exec(pq, "SELECT status, count(*) FROM jobs GROUP BY status", NULL,
                            "count jobs", &r, err, errlen)))
        return rc;
    for (int i = 0; i < PQntuples(r) && !rc; i++) {
        enum job_status s;
        if (job_status_parse(PQgetvalue(r, i, 0), &s))
            rc = err_set(err, errlen, ERR_INTERNAL, "a job has an unknown status");
        else
            c[s] = col_int(r, i, 1);
    }
    PQclear(r);
    if (!rc) memcpy(counts, c, sizeof c);
    return rc;
}

static int pg_expired(struct queue *q, double older_than, char ***ids, size_t *n, char *err,
                      size_t errlen)
{
    struct pg_queue *pq = PQ(q);
    PGresult *r = NULL;
    struct pg_params p = {0};
    p_real(&p, older_than);
    int rc = pg_ready(pq, err, errlen);
    if (rc || (rc = pg_exec(pq,
                            "SELECT id FROM jobs WHERE finished_at IS NOT NULL AND "
                            "finished_at < $1 AND status IN " QUEUE_FINISHED_SQL
                            " AND files_deleted = 0 ORDER BY finished_at, seq",
                            &p, "list expired jobs", &r, err, errlen)))
        return rc;
    size_t got = (size_t)PQntuples(r), i;
    char **out = got ? calloc(got, sizeof *out) : NULL;
    for (i = 0; out && i < got; i++)
        if (!(out[i] = strdup(PQgetvalue(r, (int)i, 0)))) break;
    PQclear(r);
    if (got && (!out || i < got)) {
        queue_ids_free(out, i);
        return err_set(err, errlen, ERR_NOMEM, "out of memory");
    }
    *ids = out;
    *n = got;
    return 0;
}

static int pg_mark_files_deleted(struct queue *q, const char *id, char *err, size_t errlen)
{
    struct pg_queue *pq = PQ(q);
    PGresult *r = NULL;
    struct pg_params p = {0};
    p_real(&p, fs_now());
    p_text(&p, id);
    int rc = pg_ready(pq, err, errlen);
    if (rc || (rc = pg_exec(pq,
                            "UPDATE jobs SET files_deleted = 1, updated_at = $1 "
                            "WHERE id = $2 AND status IN " QUEUE_FINISHED_SQL,
                            &p, "mark files deleted", &r, err, errlen)))
        return rc;
    int changed = atoi(PQcmdTuples(r));
    PQclear(r);
    return changed ? 0 : why_unchanged(pq, id, 0, 0, "finished", err, errlen);
}

static int pg_integrity_check(struct queue *q, char *err, size_t errlen)
{
    int rc = pg_ready(PQ(q), err, errlen);
    return rc ? rc : pg_exec(PQ(q), "SELECT 1", NULL, "check the database", NULL, err, errlen);
}

static int pg_listen(struct queue *q, char *err, size_t errlen)
{
    struct pg_queue *pq = PQ(q);
    int rc = pg_ready(pq, err, errlen);
    if (!rc) rc = pg_exec(pq, "LISTEN prunerd_submit", NULL, "listen", NULL, err, errlen);
    if (!rc) rc = pg_exec(pq, "LISTEN prunerd_cancel", NULL, "listen", NULL, err, errlen);
    if (!rc) pq->listening = 1;
    return rc;
}

/* The next notification already read, if any. */
static int take_notify(struct pg_queue *pq, enum queue_event *event, char id[JOB_ID_LEN + 1])
{
    PGnotify *n = PQnotifies(pq->conn);
    if (!n) return 0;
    if (!strcmp(n->relname, "prunerd_cancel") && job_id_valid(n->extra)) {
        *event = QUEUE_EVENT_CANCEL;
        snprintf(id, JOB_ID_LEN + 1, "%s", n->extra);
    } else {
        *event = QUEUE_EVENT_SUBMIT;
    }
    PQfreemem(n);
    return 1;
}

static int pg_wait(struct queue *q, double timeout_s, enum queue_event *event,
                   char id[JOB_ID_LEN + 1], char *err, size_t errlen)
{
    struct pg_queue *pq = PQ(q);
    if (!pq->listening) return err_set(err, errlen, ERR_INVALID, "queue_wait before queue_listen");
    int rc = pg_ready(pq, err, errlen);
    if (rc) return rc;
    if (take_notify(pq, event, id)) return 0;
    struct pollfd pfd = {.fd = PQsocket(pq->conn), .events = POLLIN};
    if (pfd.fd < 0) return pg_fail(pq, NULL, "wait", err, errlen);
    if (poll(&pfd, 1, (int)(timeout_s * 1000)) > 0 && !PQconsumeInput(pq->conn))
        return pg_fail(pq, NULL, "wait", err, errlen);
    take_notify(pq, event, id);
    return 0;
}

static const struct queue_ops pg_ops = {
    .name = "postgres",
    .close = pg_close,
    .submit_many = pg_submit_many,
    .get = pg_get,
    .list = pg_list,
    .claim = pg_claim,
    .set_stage = pg_set_stage,
    .set_progress = pg_set_progress,
    .finish = pg_finish,
    .heartbeat = pg_heartbeat,
    .cancel = pg_cancel,
    .cancel_requested = pg_cancel_requested,
    .requeue = pg_requeue,
    .recover = pg_recover,
    .rescue = pg_rescue,
    .remove = pg_remove,
    .counts = pg_counts,
    .expired = pg_expired,
    .mark_files_deleted = pg_mark_files_deleted,
    .integrity_check = pg_integrity_check,
    .listen = pg_listen,
    .wait = pg_wait,
};
