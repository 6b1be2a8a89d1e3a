/* workers.c - job worker threads: claim, run, record; stop at a batch boundary */
#include "workers.h"

#include <dirent.h>
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
#include <unistd.h>

#include <jansson.h>

#include "api.h"
#include "err.h"
#include "fsutil.h"
#include "job.h"
#include "json_text.h"
#include "log.h"
#include "queue.h"
#include "roots.h"
#include "stats.h"
#include "store.h"
#include "upload.h"

/*
 * DESIGN: N threads, each with its own struct queue.  A worker claims the
 * oldest queued job (queue_claim is atomic in both backends, so workers
 * never get the same job), runs job_execute with hooks that write stage and
 * progress to its queue (with the claim's fence) and poll cancel_requested,
 * then records the end with queue_finish.  Idle workers sleep on a condition variable signalled by
 * workers_notify (a submit) with a 1 s timeout as a fallback (jobs submitted
 * by another process, lost wake-ups).  The "generation" counter, read under
 * the mutex before claiming, makes a notify that lands between a failed
 * claim and the wait wake the worker anyway.
 *
 * Shutdown: workers_stop sets stopping; a running job's cancelled() hook
 * then answers 1 at its next batch boundary, job_execute returns
 * ERR_CANCELLED, and the worker re-queues the job without counting an
 * attempt (queue_requeue(..., 0)).  With [server] gpus each worker owns
 * one CUDA device: a job's "auto" or "cuda" runs there (job_hooks'
 * gpu_device), so N GPUs run N jobs at once, one each.  Worker 0 also sweeps finished jobs past
 * the retention period, at start and hourly.
 *
 * Leases (PostgreSQL, cfg.leases): one more thread, the lease keeper, with
 * its own queue.  Every lease_seconds / 3 it renews the lease of each
 * running job (queue_heartbeat with the claim's fence) and rescues the
 * expired leases of every daemon (queue_rescue).  A heartbeat or a fenced
 * write that is refused (ERR_CONFLICT: another daemon rescued the job)
 * marks the worker's job lost: its cancelled() hook answers 1, and the
 * worker abandons the job without recording anything and removes its run
 * folder (jobs/<id>/run-<fence>/, its own: the rescuer writes under its own
 * fence).  A database error (the server restarting) is not a refusal: the
 * job keeps going, a stage write is retried for a while and the final
 * write until it lands (a lost COMMIT answer is recognised by the fence).
 * A listener thread (PostgreSQL) waits on LISTEN/NOTIFY: a submission on
 * any daemon wakes the idle workers here, a cancellation makes the worker
 * running that job poll cancel_requested at once; both keep their polls as
 * the fallback.
 */

#define IDLE_WAIT_S 1
#define CANCEL_POLL_S 0.2
#define PROGRESS_EVERY_S 0.25
#define SWEEP_EVERY_S 3600
#define STAGE_RETRY_S 30.0   /* a stage write is retried this long while the database is down */
#define FINISH_RETRY_S 600.0 /* the final write this long (the lease keeper renews meanwhile) */

struct worker {
    struct workers *pool;
    int index;
    pthread_t thread;
    int started;
    atomic_int alive;
    char current[JOB_ID_LEN + 1]; /* the running job, under pool->lock; "" when idle */
    char gpu_device[16];          /* "cuda:N" with [server] gpus; "" otherwise */
    int64_t current_fence;        /* its claim's fence, under pool->lock */
    atomic_int lost;              /* the current job was rescued by another daemon: abandon it */
    atomic_int cancel_hint;       /* a NOTIFY said its job was cancelled: poll now */
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
    pthread_t keeper; /* the lease keeper (cfg.leases) */
    int keeper_started;
    pthread_t listener; /* LISTEN/NOTIFY wake-ups (cfg.leases) */
    int listener_started;
};

/* Sleeps before the next try of a write the database refused for now;
 * 0 while the deadline (monotonic) allows another try. */
static int retry_wait(double deadline, double *delay)
{
    if (fs_monotonic() + *delay > deadline) return -1;
    struct timespec ts = {(time_t)*delay, (long)((*delay - (double)(time_t)*delay) * 1e9)};
    nanosleep(&ts, NULL);
    *delay = *delay < 2.0 ? *delay * 2 : 2.0;
    return 0;
}

/* A fenced write was refused: another daemon took the job over. */
static int is_refusal(int rc)
{
    return rc == ERR_CONFLICT || rc == ERR_INVALID;
}

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
        stats_stage(c->wk->pool->cfg.stats, c->stage, fs_monotonic() - c->stage_started);
    c->stage[0] = '\0';
}

static void hook_stage(void *ud, const char *stage)
{
    struct run_ctx *c = ud;
    char err[256];
    end_stage(c);
    snprintf(c->stage, sizeof c->stage, "%s", stage);
    c->stage_started = fs_monotonic();
    double deadline = fs_monotonic() + STAGE_RETRY_S, delay = 0.25;
    int rc;
    while ((rc = queue_set_stage(c->q, c->id, c->fence, stage, err, sizeof err)) == ERR_DB &&
           !atomic_load(&c->wk->lost) && !retry_wait(deadline, &delay))
        ;
    if (rc == ERR_CONFLICT) atomic_store(&c->wk->lost, 1);
    if (rc) log_warn(c->id, "recording stage %s: %s", stage, err);
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
    /* Not retried: the next batch writes a newer value. */
    int rc = queue_set_progress(c->q, c->id, c->fence, progress, err, sizeof err);
    if (rc == ERR_CONFLICT) atomic_store(&c->wk->lost, 1);
    if (rc) log_warn(c->id, "recording progress: %s", err);
}

static int hook_cancelled(void *ud)
{
    struct run_ctx *c = ud;
    char err[256];
    int requested = 0;
    if (atomic_load(&c->wk->lost)) return 1;
    if (atomic_load(&c->wk->pool->stopping)) {
        c->shutdown = 1;
        return 1;
    }
    double t = fs_monotonic();
    int hinted = atomic_exchange(&c->wk->cancel_hint, 0);
    if (!hinted && t - c->last_cancel_poll < CANCEL_POLL_S) return c->user_cancelled;
    c->last_cancel_poll = t;
    if (queue_cancel_requested(c->q, c->id, &requested, err, sizeof err))
        log_warn(c->id, "polling cancel: %s", err);
    if (requested) c->user_cancelled = 1;
    return c->user_cancelled;
}

/* Enough free space for the outputs: factor x the model's size? */
static int check_space(const struct workers_config *cfg, const char *model, char *err,
                       size_t errlen)
{
    struct stat st;
    struct statvfs vfs;
    if (!model || stat(model, &st))
        return err_set(err, errlen, ERR_NOTFOUND, "model '%s' is not there",
                       model ? model : "(none)");
    if (S_ISDIR(st.st_mode)) { /* a model folder: the files in it */
        DIR *d = opendir(model);
        struct dirent *e;
        st.st_size = 0;
        while (d && (e = readdir(d)) != NULL) {
            struct stat fst;
            if (fstatat(dirfd(d), e->d_name, &fst, 0) == 0 && S_ISREG(fst.st_mode))
                st.st_size += fst.st_size;
        }
        if (d) closedir(d);
    }
    if (statvfs(store_dir(cfg->store), &vfs))
        return err_set(err, errlen, ERR_IO, "statvfs %s: %s", store_dir(cfg->store),
                       strerror(errno));
    double need = cfg->free_space_factor * (double)st.st_size;
    double have = (double)vfs.f_bavail * (double)vfs.f_frsize;
    if (have < need)
        return err_set(err, errlen, ERR_NOSPACE,
                       "not enough free space in %s: %.0f bytes free, %.0f needed (%.1fx the "
                       "model's %lld bytes)",
                       store_dir(cfg->store), have, need, cfg->free_space_factor,
                       (long long)st.st_size);
    return 0;
}

/* Another daemon rescued the job: record nothing, remove this run's files. */
static void abandon(struct worker *wk, const struct job_row *row, const char *run_dir)
{
    char err[256];
    if (run_dir && row->fence > 0 && fs_tree_remove(run_dir, err, sizeof err))
        log_warn(row->id, "abandoning: %s", err);
    stats_lease_lost(wk->pool->cfg.stats);
    log_warn(row->id,
             "abandoned: its lease expired and another daemon took it over (fence %lld); "
             "removed this run's files",
             (long long)row->fence);
}

/*
 * queue_finish, retried while the database is unreachable.  When a retry
 * finds the job no longer running, the earlier COMMIT did land if the row
 * still has this claim's fence and the status written.
 */
static int finish(struct worker *wk, struct queue *q, const struct job_row *row, enum job_status st,
                  const char *result, const char *error, char *err, size_t errlen)
{
    double deadline = fs_monotonic() + FINISH_RETRY_S, delay = 0.25;
    int rc, tries = 0;
    while ((rc = queue_finish(q, row->id, row->fence, st, result, error, err, errlen)) == ERR_DB &&
           !atomic_load(&wk->lost) && !retry_wait(deadline, &delay)) {
        if (!tries++) log_warn(row->id, "recording the end: %s; retrying", err);
    }
    if (rc == ERR_INVALID && tries) {
        struct job_row now;
        char e[256];
        if (!queue_get(q, row->id, &now, e, sizeof e)) {
            if (now.fence == row->fence && now.status == st) rc = 0;
            job_row_free(&now);
        }
    }
    return rc;
}

/* After a fenced run finished: the folders of earlier runs of the job
 * (daemons that died or were rescued) go. */
static void remove_other_runs(const char *job_dir, const char *mine)
{
    DIR *d = opendir(job_dir);
    struct dirent *e;
    char path[PATH_MAX], err[256];
    const char *base = strrchr(mine, '/');
    base = base ? base + 1 : mine;
    if (!d) return;
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, "run-", 4) && strcmp(e->d_name, base)) {
            if ((size_t)snprintf(path, sizeof path, "%s/%s", job_dir, e->d_name) >= sizeof path)
                continue;
            if (fs_tree_remove(path, err, sizeof err)) log_warn(NULL, "%s", err);
        }
    closedir(d);
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
        .gpu_device = wk->gpu_device[0] ? wk->gpu_device : NULL,
        .verbose = 0,
        .resolve = roots_model_resolve,
        .resolve_ud = (void *)pool->cfg.roots,
    };
    json_t *req = NULL, *result = NULL;
    struct job_spec spec = {0};
    char err[1024] = "", dir[PATH_MAX] = "", job_dir[PATH_MAX], qerr[256], rec_dir[PATH_MAX];
    char *result_text = NULL;
    double t0 = fs_monotonic();
    uint64_t used_before = 0; /* the job folder's bytes before this run */
    int rc, measured = 0;

    log_info(row->id, "running (attempt %d)", row->attempts + 1);
    /* Checked at submit; read again the way it ran when stored (a request
     * from an older version keeps its meaning). */
    if ((rc = job_spec_from_stored(row->request, &req, &spec, &fe))) {
        snprintf(err, sizeof err, "%s%s%s", fe.field, fe.field[0] ? ": " : "", fe.message);
        goto finish;
    }
    /* Paths were checked at submit; check again (a link may have changed since). */
    if ((rc = job_request_resolve_paths(&spec, req, roots_job_resolve, (void *)pool->cfg.roots,
                                        &fe))) {
        snprintf(err, sizeof err, "%s: %s", fe.field, fe.message);
        goto finish;
    }
    if ((rc = check_space(&pool->cfg, spec.model, err, sizeof err))) goto finish;
    /* This run's own folder: jobs/<id>/, or jobs/<id>/run-<fence>/ when fenced. */
    store_job_dir(pool->cfg.store, row->id, job_dir, sizeof job_dir);
    store_run_dir(pool->cfg.store, row->id, row->fence, dir, sizeof dir);
    used_before = store_job_usage(pool->cfg.store, row->id);
    measured = 1;
    if ((mkdir(job_dir, 0750) && errno != EEXIST) || (mkdir(dir, 0750) && errno != EEXIST)) {
        rc = err_set(err, sizeof err, ERR_IO, "mkdir %s: %s", dir, strerror(errno));
        goto finish;
    }
    /* recover's checkpoint is the job's, not the run's: a rescuing daemon
     * (another fence, another run folder) resumes from it too */
    if ((size_t)snprintf(rec_dir, sizeof rec_dir, "%s/recover", job_dir) < sizeof rec_dir)
        hooks.recover_dir = rec_dir;
    rc = job_execute(&spec, req, dir, &hooks, &result, err, sizeof err);
    end_stage(&c);
finish:
    if (atomic_load(&wk->lost)) {
        abandon(wk, row, dir[0] ? dir : NULL);
        goto out;
    }
    if (rc == ERR_CANCELLED && c.shutdown) {
        if (queue_requeue(q, row->id, row->fence, 0, qerr, sizeof qerr))
            log_err(row->id, "re-queueing at shutdown: %s", qerr);
        else
            log_info(row->id, "stopped at a batch boundary for shutdown; re-queued");
        goto out;
    }
    enum job_status st = !rc ? JOB_SUCCEEDED : rc == ERR_CANCELLED ? JOB_CANCELLED : JOB_FAILED;
    if (!rc) result_text = json_text_dumps(result, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (rc == ERR_CANCELLED) {
        snprintf(err, sizeof err, "cancelled on request");
        if (hooks.recover_dir &&
            fs_tree_remove(rec_dir, qerr, sizeof qerr)) /* nothing resumes it */
            log_warn(row->id, "%s", qerr);
    }
    int frc = finish(wk, q, row, st, result_text, rc ? err : NULL, qerr, sizeof qerr);
    /* Not recorded, and refused (or the lease keeper saw the job taken
     * over while the database was away): the rescuer's run counts. */
    if (frc && (is_refusal(frc) || atomic_load(&wk->lost))) {
        log_warn(row->id, "recording the end (%s) was refused: %s", job_status_name(st), qerr);
        abandon(wk, row, dir[0] ? dir : NULL);
        goto out;
    }
    if (frc) log_err(row->id, "recording the end (%s): %s", job_status_name(st), qerr);
    if (!frc && row->fence > 0) remove_other_runs(job_dir, dir);
    stats_job(pool->cfg.stats, job_status_name(st), fs_monotonic() - t0);
    if (rc && rc != ERR_CANCELLED)
        log_warn(row->id, "failed (%s): %s", err_name(rc), err);
    else
        log_info(row->id, "%s in %.1f s", job_status_name(st), fs_monotonic() - t0);
out:
    /* What this run added to (or, replacing an earlier attempt's files,
     * took from) the store, for the quota's running total. */
    if (measured)
        store_account(pool->cfg.store,
                      (int64_t)store_job_usage(pool->cfg.store, row->id) - (int64_t)used_before);
    free(result_text);
    json_decref(result);
    json_decref(req);
    job_spec_free(&spec);
}

/* Deletes the files of jobs finished over retention_days ago; the rows stay
 * (files_deleted), so GET /v1/jobs/{id} still tells what happened. */
static void sweep(struct workers *pool, struct queue *q)
{
    char **ids = NULL, err[256];
    size_t n = 0;
    int removed = 0;

    /* Hourly, the quota's running total meets the disk again: the
     * database's own growth, and other daemons' writes to a shared store. */
    int partial = upload_clean_partial(pool->cfg.store);
    if (partial > 0) log_info(NULL, "removed %d partial upload(s) no process held", partial);
    store_recount(pool->cfg.store);
    if (pool->cfg.retention_days <= 0) return;
    double cutoff = fs_now() - (double)pool->cfg.retention_days * 86400.0;
    if (queue_expired(q, cutoff, &ids, &n, err, sizeof err)) {
        log_warn(NULL, "retention sweep: %s", err);
        return;
    }
    for (size_t i = 0; i < n && !atomic_load(&pool->stopping); i++) {
        if (store_remove_job(pool->cfg.store, ids[i], err, sizeof err) ||
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
            stats_claim(pool->cfg.stats);
            pthread_mutex_lock(&pool->lock);
            memcpy(wk->current, row.id, sizeof wk->current);
            wk->current_fence = row.fence;
            atomic_store(&wk->lost, 0);
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

/* The listener: submissions wake idle workers, cancellations reach the running job. */
static void *listener_main(void *arg)
{
    struct workers *pool = arg;
    char err[256], id[JOB_ID_LEN + 1];
    struct queue *q = NULL;
    int listening = 0;

    while (!atomic_load(&pool->stopping)) {
        enum queue_event ev = QUEUE_EVENT_NONE;
        if (!q && !(q = queue_open(pool->cfg.db_path, err, sizeof err))) {
            sleep(1);
            continue;
        }
        if (!listening && queue_listen(q, err, sizeof err)) {
            log_warn(NULL, "listener: %s", err);
            sleep(1);
            continue;
        }
        listening = 1;
        if (queue_wait(q, 0.5, &ev, id, err, sizeof err)) {
            sleep(1); /* the server is away: queue_wait reconnects and listens again */
            continue;
        }
        if (ev == QUEUE_EVENT_SUBMIT) {
            workers_notify(pool);
        } else if (ev == QUEUE_EVENT_CANCEL) {
            pthread_mutex_lock(&pool->lock);
            for (int i = 0; i < pool->cfg.count; i++)
                if (!strcmp(pool->w[i].current, id)) atomic_store(&pool->w[i].cancel_hint, 1);
            pthread_mutex_unlock(&pool->lock);
        }
    }
    queue_close(q);
    return NULL;
}

/* The lease keeper: renews this daemon's leases, rescues everyone's expired ones. */
static void *keeper_main(void *arg)
{
    struct workers *pool = arg;
    char err[256];
    struct queue *q = NULL;
    double period = pool->cfg.lease_seconds / 3.0;
    struct timespec until;

    /* Until the workers are gone: a job stopping for shutdown still holds its lease. */
    for (;;) {
        pthread_mutex_lock(&pool->lock);
        int done = atomic_load(&pool->stopping) && pool->running == 0;
        pthread_mutex_unlock(&pool->lock);
        if (done) break;
        if (!q && !(q = queue_open(pool->cfg.db_path, err, sizeof err)))
            log_warn(NULL, "lease keeper: opening the queue: %s", err);
        for (int i = 0; q && i < pool->cfg.count; i++) {
            struct worker *wk = &pool->w[i];
            char id[JOB_ID_LEN + 1];
            pthread_mutex_lock(&pool->lock);
            memcpy(id, wk->current, sizeof id);
            int64_t fence = wk->current_fence;
            pthread_mutex_unlock(&pool->lock);
            if (!id[0] || atomic_load(&wk->lost)) continue;
            int rc = queue_heartbeat(q, id, fence, pool->cfg.lease_seconds, err, sizeof err);
            if (is_refusal(rc)) {
                pthread_mutex_lock(&pool->lock);
                if (!strcmp(wk->current, id) && wk->current_fence == fence)
                    atomic_store(&wk->lost, 1);
                pthread_mutex_unlock(&pool->lock);
                log_warn(id, "lease renewal refused: %s", err);
            } else if (rc) {
                log_warn(id, "renewing the lease: %s", err);
            }
        }
        int requeued = 0, failed = 0;
        if (q && queue_rescue(q, pool->cfg.max_attempts, &requeued, &failed, err, sizeof err))
            log_warn(NULL, "rescuing expired leases: %s", err);
        else if (requeued || failed) {
            stats_rescue(pool->cfg.stats, requeued, failed);
            log_info(NULL,
                     "rescue: %d jobs with an expired lease re-queued, %d failed after %d "
                     "attempts",
                     requeued, failed, pool->cfg.max_attempts);
            if (requeued) workers_notify(pool);
        }
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += (time_t)period;
        until.tv_nsec += (long)((period - (double)(time_t)period) * 1e9);
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&pool->lock);
        while (!(atomic_load(&pool->stopping) && pool->running == 0))
            if (pthread_cond_timedwait(&pool->done, &pool->lock, &until) == ETIMEDOUT) break;
        pthread_mutex_unlock(&pool->lock);
    }
    queue_close(q);
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
    pool->cfg.gpus = NULL; /* copied into each worker below */
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
        if (wc->gpus) snprintf(wk->gpu_device, sizeof wk->gpu_device, "cuda:%d", wc->gpus[i]);
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
    if (wc->leases) {
        if (pthread_create(&pool->keeper, NULL, keeper_main, pool)) {
            err_set(err, errlen, ERR_INTERNAL, "cannot start the lease keeper");
            workers_stop(pool, 5);
            return NULL;
        }
        pool->keeper_started = 1;
        if (pthread_create(&pool->listener, NULL, listener_main, pool)) {
            err_set(err, errlen, ERR_INTERNAL, "cannot start the listener");
            workers_stop(pool, 5);
            return NULL;
        }
        pool->listener_started = 1;
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
    if (w->keeper_started) pthread_join(w->keeper, NULL);
    if (w->listener_started) pthread_join(w->listener, NULL);
    pthread_cond_destroy(&w->wake);
    pthread_cond_destroy(&w->done);
    pthread_mutex_destroy(&w->lock);
    free(w->w);
    free(w);
    return rc;
}
