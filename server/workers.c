/* workers.c - job worker threads: claim, run, record; stop at a batch boundary */
#include "workers.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>

#include <jansson.h>

#include "api.h"
#include "err.h"
#include "fsutil.h"
#include "job.h"
#include "log.h"
#include "queue.h"
#include "roots.h"
#include "stats.h"

/*
 * DESIGN: N threads, each with its own struct queue.  A worker claims the
 * oldest queued job (queue_claim is atomic in SQLite, so workers never get
 * the same job), runs job_execute with hooks that write stage and progress
 * to its queue and poll cancel_requested, then records the end with
 * queue_finish.  Idle workers sleep on a condition variable signalled by
 * workers_notify (a submit) with a 1 s timeout as a fallback (jobs submitted
 * by another process, lost wake-ups).  The "generation" counter, read under
 * the mutex before claiming, makes a notify that lands between a failed
 * claim and the wait wake the worker anyway.
 *
 * Shutdown: workers_stop sets stopping; a running job's cancelled() hook
 * then answers 1 at its next batch boundary, job_execute returns
 * ERR_CANCELLED, and the worker re-queues the job without counting an
 * attempt (queue_requeue(..., 0)).  Worker 0 also sweeps finished jobs past
 * the retention period, at start and hourly.
 */

#define IDLE_WAIT_S 1
#define CANCEL_POLL_S 0.2
#define PROGRESS_EVERY_S 0.25
#define SWEEP_EVERY_S 3600

struct worker {
    struct workers *pool;
    int index;
    pthread_t thread;
    int started;
    atomic_int alive;
    char current[JOB_ID_LEN + 1]; /* the running job, under pool->lock; "" when idle */
    int64_t current_fence;        /* its claim's fence, under pool->lock */
};

struct workers {
    struct workers_config cfg;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_cond_t done;      /* a worker thread ended */
    unsigned long generation; /* bumped by workers_notify */
    atomic_int stopping;
    int running; /* worker threads not yet ended */
    struct worker *w;
};

/* What the job hooks need. */
struct run_ctx {
    struct worker *wk;
    struct queue *q;
    const char *id;
    int64_t fence; /* the claim's fencing token */
    char stage[32];
    double stage_started; /* monotonic */
    double last_progress_at, last_cancel_poll;
    double last_progress;
    int user_cancelled; /* cancel_requested was set */
    int shutdown;       /* stopped because the daemon stops */
};

static void end_stage(struct run_ctx *c)
{
    if (c->stage[0])
        api_stats_stage(c->wk->pool->cfg.stats, c->stage, fs_monotonic() - c->stage_started);
    c->stage[0] = '\0';
}

static void hook_stage(void *ud, const char *stage)
{
    struct run_ctx *c = ud;
    char err[256];
    end_stage(c);
    snprintf(c->stage, sizeof c->stage, "%s", stage);
    c->stage_started = fs_monotonic();
    if (queue_set_stage(c->q, c->id, c->fence, stage, err, sizeof err))
        log_warn(c->id, "recording stage %s: %s", stage, err);
    log_info(c->id, "stage %s", stage);
}

static void hook_progress(void *ud, double progress)
{
    struct run_ctx *c = ud;
    char err[256];
    double t = fs_monotonic();
    /* Batches are frequent: write at most 4 times a second, and always the end. */
    if (progress < 1.0 && t - c->last_progress_at < PROGRESS_EVERY_S) return;
    c->last_progress_at = t;
    c->last_progress = progress;
    if (queue_set_progress(c->q, c->id, c->fence, progress, err, sizeof err))
        log_warn(c->id, "recording progress: %s", err);
}

static int hook_cancelled(void *ud)
{
    struct run_ctx *c = ud;
    char err[256];
    int requested = 0;
    if (atomic_load(&c->wk->pool->stopping)) {
        c->shutdown = 1;
        return 1;
    }
    double t = fs_monotonic();
    if (t - c->last_cancel_poll < CANCEL_POLL_S) return c->user_cancelled;
    c->last_cancel_poll = t;
    if (queue_cancel_requested(c->q, c->id, &requested, err, sizeof err))
        log_warn(c->id, "polling cancel: %s", err);
    if (requested) c->user_cancelled = 1;
    return c->user_cancelled;
}

/* Enough free space for the outputs: factor x the model's size? */
static int check_space(const struct workers_config *cfg, const json_t *req, char *err,
                       size_t errlen)
{
    const char *model = json_string_value(json_object_get(req, "model"));
    struct stat st;
    struct statvfs vfs;
    if (!model || stat(model, &st))
        return err_set(err, errlen, ERR_NOTFOUND, "model '%s' is not there",
                       model ? model : "(none)");
    if (statvfs(cfg->data_dir, &vfs))
        return err_set(err, errlen, ERR_IO, "statvfs %s: %s", cfg->data_dir, strerror(errno));
    double need = cfg->free_space_factor * (double)st.st_size;
    double have = (double)vfs.f_bavail * (double)vfs.f_frsize;
    if (have < need)
        return err_set(err, errlen, ERR_NOSPACE,
                       "not enough free space in %s: %.0f bytes free, %.0f needed (%.1fx the "
                       "model's %lld bytes)",
                       cfg->data_dir, have, need, cfg->free_space_factor, (long long)st.st_size);
    return 0;
}

static void run_job(struct worker *wk, struct queue *q, struct job_row *row)
{
    struct workers *pool = wk->pool;
    struct run_ctx c = {
        .wk = wk, .q = q, .id = row->id, .fence = row->fence, .last_cancel_poll = -1};
    struct job_field_error fe = {{0}, {0}};
    struct job_hooks hooks = {
        .ud = &c,
        .stage = hook_stage,
        .progress = hook_progress,
        .cancelled = hook_cancelled,
        .plugin_dir = pool->cfg.plugin_dir,
        .threads = pool->cfg.job_threads,
        .verbose = 0,
    };
    json_t *req = NULL, *result = NULL;
    char err[1024] = "", dir[PATH_MAX], qerr[256];
    char *result_text = NULL;
    double t0 = fs_monotonic();
    int rc;

    log_info(row->id, "running (attempt %d)", row->attempts + 1);
    if (!(req = json_loads(row->request, 0, NULL))) {
        rc = err_set(err, sizeof err, ERR_FORMAT, "the stored request is not JSON");
        goto finish;
    }
    /* Paths were checked at submit; check again (a link may have changed since). */
    if ((rc = job_request_resolve_paths(req, roots_job_resolve, (void *)pool->cfg.roots, &fe))) {
        snprintf(err, sizeof err, "%s: %s", fe.field, fe.message);
        goto finish;
    }
    if ((rc = check_space(&pool->cfg, req, err, sizeof err))) goto finish;
    snprintf(dir, sizeof dir, "%s/jobs/%s", pool->cfg.data_dir, row->id);
    if (mkdir(dir, 0750) && errno != EEXIST) {
        rc = err_set(err, sizeof err, ERR_IO, "mkdir %s: %s", dir, strerror(errno));
        goto finish;
    }
    rc = job_execute(req, dir, &hooks, &result, err, sizeof err);
    end_stage(&c);
finish:
    if (rc == ERR_CANCELLED && c.shutdown) {
        if (queue_requeue(q, row->id, row->fence, 0, qerr, sizeof qerr))
            log_err(row->id, "re-queueing at shutdown: %s", qerr);
        else
            log_info(row->id, "stopped at a batch boundary for shutdown; re-queued");
        goto out;
    }
    enum job_status st = !rc ? JOB_SUCCEEDED : rc == ERR_CANCELLED ? JOB_CANCELLED : JOB_FAILED;
    if (!rc) result_text = json_dumps(result, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (rc == ERR_CANCELLED) snprintf(err, sizeof err, "cancelled on request");
    if (queue_finish(q, row->id, row->fence, st, result_text, rc ? err : NULL, qerr, sizeof qerr))
        log_err(row->id, "recording the end (%s): %s", job_status_name(st), qerr);
    api_stats_job(pool->cfg.stats, job_status_name(st), fs_monotonic() - t0);
    if (rc && rc != ERR_CANCELLED)
        log_warn(row->id, "failed (%s): %s", err_name(rc), err);
    else
        log_info(row->id, "%s in %.1f s", job_status_name(st), fs_monotonic() - t0);
out:
    free(result_text);
    json_decref(result);
    json_decref(req);
}

/* Deletes the files of jobs finished over retention_days ago; the rows stay
 * (files_deleted), so GET /v1/jobs/{id} still tells what happened. */
static void sweep(struct workers *pool, struct queue *q)
{
    char **ids = NULL, err[256];
    size_t n = 0;
    int removed = 0;

    if (pool->cfg.retention_days <= 0) return;
    double cutoff = fs_now() - (double)pool->cfg.retention_days * 86400.0;
    if (queue_expired(q, cutoff, &ids, &n, err, sizeof err)) {
        log_warn(NULL, "retention sweep: %s", err);
        return;
    }
    for (size_t i = 0; i < n && !atomic_load(&pool->stopping); i++) {
        if (api_job_dir_remove(pool->cfg.data_dir, ids[i], err, sizeof err) ||
            queue_mark_files_deleted(q, ids[i], err, sizeof err))
            log_warn(ids[i], "retention: %s", err);
        else
            removed++;
    }
    queue_ids_free(ids, n);
    if (removed)
        log_info(NULL, "retention: deleted the files of %d jobs finished over %d days ago", removed,
                 pool->cfg.retention_days);
}

static void *worker_main(void *arg)
{
    struct worker *wk = arg;
    struct workers *pool = wk->pool;
    char err[256];
    struct queue *q = queue_open(pool->cfg.db_path, err, sizeof err);
    double last_sweep = -SWEEP_EVERY_S;

    if (!q) {
        log_err(NULL, "worker %d: opening the queue: %s", wk->index, err);
        goto out;
    }
    atomic_store(&wk->alive, 1);
    while (!atomic_load(&pool->stopping)) {
        struct job_row row;
        pthread_mutex_lock(&pool->lock);
        unsigned long seen = pool->generation;
        pthread_mutex_unlock(&pool->lock);

        int rc = queue_claim(q, pool->cfg.lease_seconds, &row, err, sizeof err);
        if (!rc) {
            pthread_mutex_lock(&pool->lock);
            memcpy(wk->current, row.id, sizeof wk->current);
            wk->current_fence = row.fence;
            pthread_mutex_unlock(&pool->lock);
            run_job(wk, q, &row);
            pthread_mutex_lock(&pool->lock);
            wk->current[0] = '\0';
            pthread_mutex_unlock(&pool->lock);
            job_row_free(&row);
            continue;
        }
        if (rc != ERR_NOTFOUND) log_warn(NULL, "worker %d: claiming: %s", wk->index, err);
        if (wk->index == 0 && fs_monotonic() - last_sweep >= SWEEP_EVERY_S) {
            sweep(pool, q);
            last_sweep = fs_monotonic();
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += IDLE_WAIT_S;
        pthread_mutex_lock(&pool->lock);
        while (!atomic_load(&pool->stopping) && pool->generation == seen) {
            if (pthread_cond_timedwait(&pool->wake, &pool->lock, &until) == ETIMEDOUT) break;
        }
        pthread_mutex_unlock(&pool->lock);
    }
out:
    atomic_store(&wk->alive, 0);
    if (q) queue_close(q);
    pthread_mutex_lock(&pool->lock);
    pool->running--;
    pthread_cond_broadcast(&pool->done);
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}

struct workers *workers_start(const struct workers_config *wc, char *err, size_t errlen)
{
    struct workers *pool = calloc(1, sizeof *pool);
    if (!pool || !(pool->w = calloc((size_t)wc->count, sizeof *pool->w))) {
        free(pool);
        err_set(err, errlen, ERR_NOMEM, "out of memory");
        return NULL;
    }
    pool->cfg = *wc;
    pthread_mutex_init(&pool->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_cond_init(&pool->wake, &ca);
    pthread_cond_init(&pool->done, &ca);
    pthread_condattr_destroy(&ca);
    for (int i = 0; i < wc->count; i++) {
        struct worker *wk = &pool->w[i];
        wk->pool = pool;
        wk->index = i;
        pthread_mutex_lock(&pool->lock);
        pool->running++;
        pthread_mutex_unlock(&pool->lock);
        if (pthread_create(&wk->thread, NULL, worker_main, wk)) {
            pthread_mutex_lock(&pool->lock);
            pool->running--;
            pthread_mutex_unlock(&pool->lock);
            err_set(err, errlen, ERR_INTERNAL, "cannot start worker %d", i);
            workers_stop(pool, 5);
            return NULL;
        }
        wk->started = 1;
    }
    return pool;
}

void workers_notify(struct workers *w)
{
    pthread_mutex_lock(&w->lock);
    w->generation++;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
}

int workers_alive(struct workers *w)
{
    for (int i = 0; i < w->cfg.count; i++)
        if (!atomic_load(&w->w[i].alive)) return 0;
    return 1;
}

int workers_stop(struct workers *w, double timeout_s)
{
    struct timespec until;
    int rc = 0;
    char err[256];

    if (!w) return 0;
    atomic_store(&w->stopping, 1);
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)timeout_s;
    until.tv_nsec += (long)((timeout_s - (double)(time_t)timeout_s) * 1e9);
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&w->lock);
    pthread_cond_broadcast(&w->wake);
    while (w->running > 0) {
        if (pthread_cond_timedwait(&w->done, &w->lock, &until) == ETIMEDOUT) break;
    }
    int left = w->running;
    pthread_mutex_unlock(&w->lock);
    if (left) {
        /* Some job did not reach a batch boundary in time: re-queue it from here. */
        struct queue *q = queue_open(w->cfg.db_path, err, sizeof err);
        for (int i = 0; i < w->cfg.count; i++) {
            char id[JOB_ID_LEN + 1];
            pthread_mutex_lock(&w->lock);
            memcpy(id, w->w[i].current, sizeof id);
            int64_t fence = w->w[i].current_fence;
            pthread_mutex_unlock(&w->lock);
            if (!id[0]) continue;
            if (!q || queue_requeue(q, id, fence, 0, err, sizeof err))
                log_err(id, "re-queueing after the stop timeout: %s", err);
            else
                log_warn(id, "still running after %.0f s: re-queued; exiting anyway", timeout_s);
        }
        if (q) queue_close(q);
        /* The threads still run: leave w allocated for them. */
        return ERR_CANCELLED;
    }
    for (int i = 0; i < w->cfg.count; i++)
        if (w->w[i].started) pthread_join(w->w[i].thread, NULL);
    pthread_cond_destroy(&w->wake);
    pthread_cond_destroy(&w->done);
    pthread_mutex_destroy(&w->lock);
    free(w->w);
    free(w);
    return rc;
}
