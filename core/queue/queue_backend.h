/* queue_backend.h - what core/queue/queue.c asks of a queue backend (SQLite, PostgreSQL) */
#ifndef PRUNERD_QUEUE_BACKEND_H
#define PRUNERD_QUEUE_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "queue.h"

/*
 * core/queue/queue.c checks every argument (ids, stage names, NaN, JSON, status
 * values, max_attempts) and then calls the backend, so a backend function
 * only meets valid input.  Each backend keeps the contract of queue.h and
 * runs every one-job transition through its one transaction helper
 * (queue_sqlite.c's sq_txn, queue_pg.c's pg_txn).  SQL stays in the
 * backend files.
 */
struct queue_ops {
    const char *name; /* "sqlite", "postgres" */
    void (*close)(struct queue *q);
    /* Inserts the submissions whose rc is 0 in one transaction. */
    int (*submit_many)(struct queue *q, struct queue_submission *subs, size_t n, char *err,
                       size_t errlen);
    int (*get)(struct queue *q, const char *id, struct job_row *out, char *err, size_t errlen);
    int (*list)(struct queue *q, int status, int limit, const char *cursor, struct job_row **rows,
                size_t *n, char next_cursor[64], char *err, size_t errlen);
    int (*claim)(struct queue *q, int lease_seconds, struct job_row *out, char *err, size_t errlen);
    int (*set_stage)(struct queue *q, const char *id, int64_t fence, const char *stage, char *err,
                     size_t errlen);
    int (*set_progress)(struct queue *q, const char *id, int64_t fence, double progress, char *err,
                        size_t errlen);
    int (*finish)(struct queue *q, const char *id, int64_t fence, enum job_status status,
                  const char *result_json, const char *error, char *err, size_t errlen);
    int (*heartbeat)(struct queue *q, const char *id, int64_t fence, int lease_seconds, char *err,
                     size_t errlen);
    int (*cancel)(struct queue *q, const char *id, char *err, size_t errlen);
    int (*cancel_requested)(struct queue *q, const char *id, int *requested, char *err,
                            size_t errlen);
    int (*requeue)(struct queue *q, const char *id, int64_t fence, int count_attempt, char *err,
                   size_t errlen);
    int (*recover)(struct queue *q, int max_attempts, int *requeued, int *failed, char *err,
                   size_t errlen);
    int (*rescue)(struct queue *q, int max_attempts, int *requeued, int *failed, char *err,
                  size_t errlen);
    int (*remove)(struct queue *q, const char *id, char *err, size_t errlen);
    int (*counts)(struct queue *q, int64_t counts[JOB_STATUS_COUNT], char *err, size_t errlen);
    int (*expired)(struct queue *q, double older_than, char ***ids, size_t *n, char *err,
                   size_t errlen);
    int (*mark_files_deleted)(struct queue *q, const char *id, char *err, size_t errlen);
    int (*integrity_check)(struct queue *q, char *err, size_t errlen);
    int (*listen)(struct queue *q, char *err, size_t errlen);
    int (*wait)(struct queue *q, double timeout_s, enum queue_event *event, char id[JOB_ID_LEN + 1],
                char *err, size_t errlen);
};

/* The first member of each backend's own struct. */
struct queue {
    const struct queue_ops *ops;
};

/* Constructors: NULL with a message on failure. */
struct queue *queue_sqlite_open(const char *path, const struct db_options *opt, char *err,
                                size_t errlen);
struct queue *queue_pg_open(const char *conninfo, char *err, size_t errlen);

/* ---- shared by the backends (core/queue/queue.c) ---- */

#define QUEUE_FINISHED_SQL "('succeeded', 'failed', 'cancelled')"

int queue_is_finished(enum job_status s);
/* A fresh UUID v4 from getrandom(2). */
int queue_uuid_v4(char out[JOB_ID_LEN + 1], char *err, size_t errlen);
/*
 * Edits a stages JSON array: closes the open last entry at now, then appends
 * {"stage": next, "started_at": now, "finished_at": null} when next is set.
 * *out is malloc'd.
 */
int queue_stages_edit(const char *text, const char *next, double now, char **out, char *err,
                      size_t errlen);
/* The error of a job failed by recovery or rescue after attempts interrupted runs. */
void queue_gave_up_message(int attempts, char *out, size_t n);
/* The cursor of queue_list: created_at's bits and an insertion sequence. */
void queue_cursor_make(double created_at, int64_t seq, char out[64]);
int queue_cursor_parse(const char *c, double *created_at, int64_t *seq);

#endif
