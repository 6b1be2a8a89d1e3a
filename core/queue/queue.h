/* queue.h - durable job queue: one interface, SQLite (embedded default) or PostgreSQL */
#ifndef PRUNERD_QUEUE_H
#define PRUNERD_QUEUE_H

#include <stddef.h>
#include <stdint.h>

/*
 * Job state machine (the function behind each transition):
 *
 *   queue_submit -> queued --queue_claim--> running --queue_finish--> succeeded | failed
 *                   ^  |                      |  |
 *                   |  |                      |  '--queue_requeue (SIGTERM)--> queued
 *                   |  |                      '--queue_recover, queue_rescue--> queued | failed
 *                   |  '--queue_cancel--> cancelled <--queue_finish(cancelled)--'
 *
 * queue_recover (start-up) re-queues jobs left running by a dead process
 * with attempts + 1, and fails them once attempts reaches the maximum;
 * queue_rescue does the same, any time, for PostgreSQL leases that expired.
 * Each thread opens its own struct queue (its own sqlite3 * or PGconn *).
 *
 * Two backends (core/queue/queue_sqlite.c, core/queue/queue_pg.c) keep this contract.
 * With PostgreSQL several daemons share the queue: a claim takes a lease
 * (lease_until, renewed by queue_heartbeat) and a new fencing token
 * (job_row.fence); every stage, progress, finish and requeue carries the
 * token and is refused with ERR_CONFLICT once the job was rescued
 * (queue_rescue re-queues running jobs whose lease expired) and claimed
 * again.  SQLite has one daemon per data dir (serve's flock): no leases,
 * fence is 0 and the token is not checked; queue_rescue and queue_heartbeat
 * do nothing there.  The lease and fencing protocol: core/queue/queue_pg.c.
 *
 * attempts counts interrupted runs: a claim is not an attempt; recovery adds
 * one, queue_requeue adds one only when asked.  A claim starts a new run:
 * stage "", progress 0, stages [].  Every id-taking function answers
 * ERR_NOTFOUND for an id that is not job_id_valid, without touching SQL.
 * Database failures (SQLite busy past the timeout, disk full, I/O error;
 * PostgreSQL unreachable or restarting) are ERR_DB with the database's
 * message; the transaction is rolled back, nothing changes.  A PostgreSQL
 * queue reconnects by itself at the next call once the server is back.
 */

enum job_status { JOB_QUEUED, JOB_RUNNING, JOB_SUCCEEDED, JOB_FAILED, JOB_CANCELLED };
#define JOB_STATUS_COUNT 5
#define JOB_ID_LEN 36 /* a UUID v4 in text form */

const char *job_status_name(enum job_status s); /* "queued", ...; "unknown" when out of range */
int job_status_parse(const char *name, enum job_status *out); /* 0 or ERR_INVALID */
/* Non-zero when id is exactly a lowercase UUID v4 in text form (what
 * queue_submit makes).  Every function taking an id checks it before any
 * SQL and answers ERR_NOTFOUND for a malformed one (no such job can exist). */
int job_id_valid(const char *id);

struct job_row {
    char id[JOB_ID_LEN + 1];
    char *name; /* the request's name, or "" */
    enum job_status status;
    char *stage;     /* loading, evaluating_before, pruning, evaluating_after, saving; or "" */
    double progress; /* 0..1 */
    char *owner;     /* token name that submitted it, or "" */
    int attempts;
    int cancel_requested;
    double created_at, started_at, finished_at; /* unix seconds; 0 when not yet */
    char *request;                              /* JSON text, every default filled in */
    char *stages;         /* JSON text: [{"stage","started_at","finished_at"}] */
    char *result;         /* JSON text of result.json, or NULL */
    char *error;          /* or NULL */
    int files_deleted;    /* retention removed its output files (the row stays) */
    int64_t fence;        /* fencing token of the last claim (PostgreSQL); 0 with SQLite */
    char claimed_by[128]; /* queue_daemon_id of the last claimer (PostgreSQL), or "" */
};
void job_row_free(struct job_row *r); /* frees the strings, not r */

struct queue;

/*
 * Opens a queue.  where is a PostgreSQL connection string when it starts
 * with "postgresql://" or "postgres://" (a URI), or with "pg:" followed by
 * a keyword/value string ("pg:host=db1 dbname=prunerd"); anything else is
 * the path of a SQLite database, created if missing (WAL, synchronous=FULL,
 * busy timeout 5000 ms).  Pending migrations (migrations/ for SQLite,
 * migrations/postgres/ for PostgreSQL) are applied in order and recorded;
 * with PostgreSQL under an advisory lock, so two daemons starting at once
 * migrate once.  NULL with a message on failure.  queue_close(NULL) is a
 * no-op.
 */
struct queue *queue_open(const char *where, char *err, size_t errlen);
void queue_close(struct queue *q);
/* queue_open with options (core/queue/db.h): busy timeout, test fault hooks
 * (SQLite only; ignored for PostgreSQL). */
struct db_options;
struct queue *queue_open_with(const char *where, const struct db_options *opt, char *err,
                              size_t errlen);
/* "sqlite" or "postgres". */
const char *queue_backend(const struct queue *q);
/* This process as claims record it: "host:pid:start" (start: the process's
 * start time in clock ticks since boot, so a reused pid differs). */
void queue_daemon_id(char *out, size_t n);

/*
 * Commits a queued job before returning.  With a non-NULL idem_key already
 * used by owner, returns that job's id and sets *existed (nothing added).
 */
int queue_submit(struct queue *q, const char *request_json, const char *name, const char *owner,
                 const char *idem_key, char id[JOB_ID_LEN + 1], int *existed, char *err,
                 size_t errlen);
/* One job of a group commit. */
struct queue_submission {
    const char *request_json, *name, *owner, *idem_key; /* in, as queue_submit's */
    char id[JOB_ID_LEN + 1]; /* out: the new (or, by idem_key, existing) job */
    int existed;             /* out: idem_key matched an earlier job */
    double created_at;       /* out: the new job's created_at (0 when existed) */
    int rc;                  /* out: 0 or this submission's ERR_* */
    char err[256];           /* out: the message when rc != 0 */
};
/*
 * queue_submit for n jobs in one transaction: one commit, one fsync of the
 * log for all (group commit).  A submission with bad input fails alone (its
 * rc); a failed transaction fails every one still standing and returns that
 * code.  Returns 0 when the transaction (if any) committed.
 */
int queue_submit_many(struct queue *q, struct queue_submission *subs, size_t n, char *err,
                      size_t errlen);
/*
 * The row of a job a submission has just created (rc 0, existed 0), as
 * queue_get reads it right after the commit, without asking the database:
 * queued, attempt 0, stages [], the request text as submitted.  ERR_INVALID
 * for a submission that created nothing, ERR_NOMEM.
 */
int queue_submission_row(const struct queue_submission *sub, struct job_row *out, char *err,
                         size_t errlen);
int queue_get(struct queue *q, const char *id, struct job_row *out, char *err, size_t errlen);
/* The queue's limits, which the API checks before asking (api/jobs.c): an
 * idempotency key's length in bytes, and a page of queue_list. */
#define QUEUE_IDEM_KEY_MAX 200
#define QUEUE_PAGE_DEFAULT 50
#define QUEUE_PAGE_MAX 200

/* Newest first; status < 0 for all; limit clamped to 1..QUEUE_PAGE_MAX; cursor "" (or
 * NULL) or the next_cursor of the last page, which is "" after the last
 * page; pages stay stable while jobs are added.  ERR_INVALID for a bad
 * status or cursor.  *rows is malloc'd, NULL when *n is 0 (free each with
 * job_row_free, then free()). */
int queue_list(struct queue *q, int status, int limit, const char *cursor, struct job_row **rows,
               size_t *n, char next_cursor[64], char *err, size_t errlen);
/* Claims the oldest queued job atomically (created_at, then insertion
 * order): ERR_NOTFOUND when none.  out is filled (job_row_free it).  With
 * PostgreSQL (FOR UPDATE SKIP LOCKED: claimers never wait on each other)
 * the claim records queue_daemon_id, a lease of lease_seconds (>= 1) and a
 * new fence in out->fence; SQLite ignores lease_seconds. */
int queue_claim(struct queue *q, int lease_seconds, struct job_row *out, char *err, size_t errlen);
/* Running jobs only (else ERR_INVALID); fence: the claim's (ERR_CONFLICT
 * when the job was claimed again since): closes the open entry of stages
 * and appends {stage, started_at: now, finished_at: null}. */
int queue_set_stage(struct queue *q, const char *id, int64_t fence, const char *stage, char *err,
                    size_t errlen);
/* Running jobs only, fenced; progress clamped to 0..1, NaN is ERR_INVALID.
 * Each call is a durable commit: callers throttle. */
int queue_set_progress(struct queue *q, const char *id, int64_t fence, double progress, char *err,
                       size_t errlen);
/* Running -> succeeded (progress 1), failed or cancelled, closing the last
 * stage; result_json must be JSON when given.  Else ERR_INVALID; fenced. */
int queue_finish(struct queue *q, const char *id, int64_t fence, enum job_status status,
                 const char *result_json, const char *error, char *err, size_t errlen);
/* Extends the lease of a running job this claim holds to now +
 * lease_seconds.  ERR_CONFLICT (or ERR_INVALID: no longer running) when it
 * was rescued: the caller must abandon the job.  SQLite: 0. */
int queue_heartbeat(struct queue *q, const char *id, int64_t fence, int lease_seconds, char *err,
                    size_t errlen);
/* Re-queues running jobs whose lease expired (their daemon died or froze),
 * attempts + 1, failing them at max_attempts as queue_recover does; every
 * daemon calls it periodically.  SQLite: 0, nothing rescued.  The counts may
 * be NULL. */
int queue_rescue(struct queue *q, int max_attempts, int *requeued, int *failed, char *err,
                 size_t errlen);
/* queued: cancelled at once; running: cancel_requested set; else ERR_INVALID. */
int queue_cancel(struct queue *q, const char *id, char *err, size_t errlen);
int queue_cancel_requested(struct queue *q, const char *id, int *requested, char *err,
                           size_t errlen);
/* Running -> queued (SIGTERM): attempts unchanged when count_attempt is 0;
 * cancel_requested is kept.  Else ERR_INVALID; fenced. */
int queue_requeue(struct queue *q, const char *id, int64_t fence, int count_attempt, char *err,
                  size_t errlen);
/* SQLite: every running job (run by a process now dead: call before
 * starting workers): attempts + 1; re-queued while attempts < max_attempts,
 * else failed with "interrupted N times (daemon died while it ran); giving
 * up".  One transaction; the counts may be NULL.  max_attempts < 1:
 * ERR_INVALID.  PostgreSQL: other daemons may be running their jobs, so
 * only the jobs whose lease expired (queue_rescue). */
int queue_recover(struct queue *q, int max_attempts, int *requeued, int *failed, char *err,
                  size_t errlen);
/*
 * Wake-ups (PostgreSQL: LISTEN/NOTIFY).  queue_listen subscribes this
 * connection to submissions (sent by queue_submit_many's commit) and to
 * cancellations of running jobs (queue_cancel); queue_wait waits up to
 * timeout_s for the next: *event is QUEUE_EVENT_SUBMIT, QUEUE_EVENT_CANCEL
 * (id set), or QUEUE_EVENT_NONE when the time ran out.  Notifications are
 * hints, never the only path (callers still poll): a reconnect listens
 * again, but what was sent while the connection was down is lost.  SQLite:
 * ERR_UNSUPPORTED.
 */
enum queue_event { QUEUE_EVENT_NONE, QUEUE_EVENT_SUBMIT, QUEUE_EVENT_CANCEL };
int queue_listen(struct queue *q, char *err, size_t errlen);
int queue_wait(struct queue *q, double timeout_s, enum queue_event *event, char id[JOB_ID_LEN + 1],
               char *err, size_t errlen);
/* Finished jobs only (else ERR_INVALID); ERR_NOTFOUND when missing. */
int queue_delete(struct queue *q, const char *id, char *err, size_t errlen);
int queue_counts(struct queue *q, int64_t counts[JOB_STATUS_COUNT], char *err, size_t errlen);

/*
 * Retention: the ids of finished jobs (succeeded, failed, cancelled) whose
 * finished_at is before older_than (unix seconds) and whose files are not
 * yet deleted, oldest first.  *ids is malloc'd (free with queue_ids_free).
 */
int queue_expired(struct queue *q, double older_than, char ***ids, size_t *n, char *err,
                  size_t errlen);
void queue_ids_free(char **ids, size_t n);
/* Records that a finished job's files are gone (the row stays, files_deleted
 * = 1); ERR_INVALID for a job not finished. */
int queue_mark_files_deleted(struct queue *q, const char *id, char *err, size_t errlen);
/* SQLite's PRAGMA integrity_check, PostgreSQL's SELECT 1: 0, or ERR_DB
 * with the first complaint. */
int queue_integrity_check(struct queue *q, char *err, size_t errlen);

#endif
