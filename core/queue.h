/* queue.h - durable job queue on SQLite */
#ifndef PRUNERD_QUEUE_H
#define PRUNERD_QUEUE_H

#include <stddef.h>
#include <stdint.h>

/*
 * Job state machine (the function behind each transition):
 *
 *   queue_submit -> queued --queue_claim--> running --queue_finish--> succeeded | failed
 *                     |                       |  \--queue_requeue (SIGTERM, crash recovery)--> queued
 *                     '--queue_cancel--> cancelled <--queue_finish(cancelled)--'
 *
 * queue_recover (start-up) re-queues jobs left running by a dead process
 * with attempts + 1, and fails them once attempts reaches the maximum.
 * Each thread opens its own struct queue (its own sqlite3 *).
 */

enum job_status { JOB_QUEUED, JOB_RUNNING, JOB_SUCCEEDED, JOB_FAILED, JOB_CANCELLED };
#define JOB_STATUS_COUNT 5
#define JOB_ID_LEN 36             /* a UUID v4 in text form */

const char *job_status_name(enum job_status s);   /* "queued", ... */
int job_status_parse(const char *name, enum job_status *out);

struct job_row {
    char id[JOB_ID_LEN + 1];
    char *name;                   /* the request's name, or "" */
    enum job_status status;
    char *stage;                  /* loading, evaluating_before, pruning, evaluating_after, saving; or "" */
    double progress;              /* 0..1 */
    char *owner;                  /* token name that submitted it, or "" */
    int attempts;
    int cancel_requested;
    double created_at, started_at, finished_at;  /* unix seconds; 0 when not yet */
    char *request;                /* JSON text, every default filled in */
    char *stages;                 /* JSON text: [{"stage","started_at","finished_at"}] */
    char *result;                 /* JSON text of result.json, or NULL */
    char *error;                  /* or NULL */
};
void job_row_free(struct job_row *r);   /* frees the strings, not r */

struct queue;

/* Opens (creating) the database at path, WAL mode, busy timeout, migrations
 * applied in order and recorded.  NULL with a message on failure. */
struct queue *queue_open(const char *path, char *err, size_t errlen);
void queue_close(struct queue *q);

/*
 * Commits a queued job before returning.  With a non-NULL idem_key already
 * used by owner, returns that job's id and sets *existed (nothing added).
 */
int queue_submit(struct queue *q, const char *request_json, const char *name, const char *owner,
                 const char *idem_key, char id[JOB_ID_LEN + 1], int *existed, char *err,
                 size_t errlen);
int queue_get(struct queue *q, const char *id, struct job_row *out, char *err, size_t errlen);
/* Newest first; status < 0 for all; cursor "" or the next_cursor of the last
 * page.  *rows is malloc'd (free each with job_row_free, then free()). */
int queue_list(struct queue *q, int status, int limit, const char *cursor, struct job_row **rows,
               size_t *n, char next_cursor[64], char *err, size_t errlen);
/* Claims the oldest queued job atomically: ERR_NOTFOUND when none. */
int queue_claim(struct queue *q, struct job_row *out, char *err, size_t errlen);
int queue_set_stage(struct queue *q, const char *id, const char *stage, char *err, size_t errlen);
int queue_set_progress(struct queue *q, const char *id, double progress, char *err, size_t errlen);
int queue_finish(struct queue *q, const char *id, enum job_status status, const char *result_json,
                 const char *error, char *err, size_t errlen);
/* queued: cancelled at once; running: cancel_requested set; else ERR_INVALID. */
int queue_cancel(struct queue *q, const char *id, char *err, size_t errlen);
int queue_cancel_requested(struct queue *q, const char *id, int *requested, char *err,
                           size_t errlen);
/* Back to queued (SIGTERM): attempts unchanged when count_attempt is 0. */
int queue_requeue(struct queue *q, const char *id, int count_attempt, char *err, size_t errlen);
int queue_recover(struct queue *q, int max_attempts, int *requeued, int *failed, char *err,
                  size_t errlen);
int queue_delete(struct queue *q, const char *id, char *err, size_t errlen);
int queue_counts(struct queue *q, int64_t counts[JOB_STATUS_COUNT], char *err, size_t errlen);

#endif
