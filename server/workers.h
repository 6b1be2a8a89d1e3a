/* workers.h - job worker threads: claim, run, record; stop at a batch boundary */
#ifndef PRUNERD_WORKERS_H
#define PRUNERD_WORKERS_H

#include <stddef.h>

struct roots;
struct stats;
struct store;

struct workers_config {
    int count;                 /* worker threads (>= 1) */
    const int *gpus;           /* NULL, or count CUDA device indices: worker i runs on gpus[i] */
    const char *db_path;       /* the queue's location (queue_open) */
    struct store *store;       /* jobs write into their folders there (core/store.h) */
    const struct roots *roots; /* paths are resolved again before a run */
    const char *plugin_dir;    /* NULL: plugins refused */
    int job_threads;           /* libtorch threads per job; <= 0: default */
    double free_space_factor;  /* needs factor x model size free before a job */
    int retention_days;        /* 0: keep finished jobs */
    struct stats *stats;       /* may be NULL */
    int lease_seconds;         /* claims' lease (PostgreSQL); >= 1 */
    int leases;                /* run the lease keeper (PostgreSQL): renew, rescue */
    int max_attempts;          /* rescue fails a job interrupted this many times */
};

struct workers;

/* Starts the threads (each opens its own struct queue), and the lease
 * keeper with cfg.leases.  NULL with a message. */
struct workers *workers_start(const struct workers_config *wc, char *err, size_t errlen);

/* A job was submitted: wake one idle worker (they also poll every second). */
void workers_notify(struct workers *w);

/* 1 when every worker thread is running its loop. */
int workers_alive(struct workers *w);

/*
 * Asks running jobs to stop at their next batch boundary (their cancelled()
 * hook answers 1), re-queues them without counting an attempt, and joins
 * the threads, waiting at most timeout_s.  A job still running then is
 * re-queued from here and its thread is left behind (the process is about
 * to exit).  Returns 0, or ERR_CANCELLED when it had to give up waiting.
 * Frees w.
 */
int workers_stop(struct workers *w, double timeout_s);

#endif
