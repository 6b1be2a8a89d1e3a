/* serve.c - prunerd serve: start-up, the serve loop and shutdown, in order */
#include "serve.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/file.h>
#include <unistd.h>

#include "api.h"
#include "auth.h"
#include "config.h"
#include "err.h"
#include "http.h"
#include "log.h"
#include "committer.h"
#include "queue.h"
#include "roots.h"
#include "stats.h"
#include "torch_shim.h"
#include "workers.h"

static void notify_workers(void *ud)
{
    workers_notify(ud);
}

static int alive_workers(void *ud)
{
    return workers_alive(ud);
}

static int make_dir(const char *path, char *err, size_t errlen)
{
    if (mkdir(path, 0750) && errno != EEXIST)
        return err_set(err, errlen, ERR_IO, "mkdir %s: %s", path, strerror(errno));
    return 0;
}

int serve_main(int argc, char **argv)
{
    struct config cfg;
    struct auth *auth = NULL;
    struct roots *roots = NULL;
    struct queue *q = NULL;
    struct committer *committer = NULL;
    struct api_stats *stats = NULL;
    struct workers *workers = NULL;
    struct http_server *http = NULL;
    char err[1024], data_dir[PATH_MAX], db_path[PATH_MAX + 16], jobs_dir[PATH_MAX + 16];
    char artifact_dir[PATH_MAX], daemon_id[128], *queue_at = NULL;
    char lock_path[PATH_MAX + 16];
    int help = 0, rc = 1, requeued = 0, failed = 0, lock_fd = -1;
    sigset_t sigs;

    /* 1. Options and config. */
    if (config_init(&cfg, err, sizeof err)) {
        fprintf(stderr, "prunerd serve: %s\n", err);
        return 1;
    }
    if (config_parse_args(&cfg, argc - 1, argv + 1, &help, err, sizeof err) ||
        (!help && config_validate(&cfg, err, sizeof err))) {
        fprintf(stderr, "prunerd serve: %s\n", err);
        config_usage(stderr);
        rc = 2;
        goto out;
    }
    if (help) {
        config_usage(stdout);
        rc = 0;
        goto out;
    }
    log_setup(LOG_INFO, cfg.log_json ? LOG_JSON : LOG_TEXT);

    if (!(auth = auth_create()) || !(roots = roots_create()) || !(stats = api_stats_create())) {
        log_err(NULL, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < cfg.n_tokens; i++)
        if (auth_add(auth, cfg.tokens[i].name, cfg.tokens[i].spec, err, sizeof err)) {
            log_err(NULL, "config: %s", err);
            goto out;
        }
    for (size_t i = 0; i < cfg.n_model_roots; i++)
        if (roots_add(roots, ROOTS_MODEL, cfg.model_roots[i], err, sizeof err)) {
            log_err(NULL, "model root: %s", err);
            goto out;
        }
    for (size_t i = 0; i < cfg.n_data_roots; i++)
        if (roots_add(roots, ROOTS_DATA, cfg.data_roots[i], err, sizeof err)) {
            log_err(NULL, "data root: %s", err);
            goto out;
        }

    /* 2. The data directory and the database (migrations run in queue_open). */
    if (make_dir(cfg.data_dir, err, sizeof err) || !realpath(cfg.data_dir, data_dir)) {
        log_err(NULL, "data dir %s: %s", cfg.data_dir, err[0] ? err : strerror(errno));
        goto out;
    }
    /* Checkpoints and result.json: the shared store of a group of boxes, or the data dir. */
    const char *store = cfg.artifact_dir ? cfg.artifact_dir : data_dir;
    if (make_dir(store, err, sizeof err) || !realpath(store, artifact_dir)) {
        log_err(NULL, "artifact dir %s: %s", store, err[0] ? err : strerror(errno));
        goto out;
    }
    snprintf(jobs_dir, sizeof jobs_dir, "%s/jobs", artifact_dir);
    snprintf(db_path, sizeof db_path, "%s/prunerd.db", data_dir);
    /* The queue: SQLite in the data dir, or PostgreSQL ("pg:" + the dsn, core/queue.h). */
    if (cfg.queue_postgres) {
        size_t n = strlen(cfg.queue_dsn) + 4;
        if (!(queue_at = malloc(n))) {
            log_err(NULL, "out of memory");
            goto out;
        }
        snprintf(queue_at, n, "pg:%s", cfg.queue_dsn);
    } else if (!(queue_at = strdup(db_path))) {
        log_err(NULL, "out of memory");
        goto out;
    }
    queue_daemon_id(daemon_id, sizeof daemon_id);
    api_stats_set_daemon(stats, daemon_id);
    /* One daemon per data dir: recovery re-queues every running job, which
     * would take a live daemon's jobs.  The lock goes with the process. */
    snprintf(lock_path, sizeof lock_path, "%s/prunerd.lock", data_dir);
    lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (lock_fd < 0 || flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
        log_err(NULL, "data dir %s: %s", data_dir,
                lock_fd >= 0 && errno == EWOULDBLOCK ? "another prunerd serve is using it"
                                                     : strerror(errno));
        goto out;
    }
    if (make_dir(jobs_dir, err, sizeof err)) {
        log_err(NULL, "%s", err);
        goto out;
    }
    if (!(q = queue_open(queue_at, err, sizeof err))) {
        log_err(NULL, "database %s: %s", cfg.queue_postgres ? "(postgres)" : db_path, err);
        goto out;
    }

    /* 3. Recovery: jobs a dead process left running go back to the queue
     * (with PostgreSQL only those whose lease expired: other daemons run the
     * rest; the lease keeper rescues the others later). */
    if (queue_recover(q, cfg.max_attempts, &requeued, &failed, err, sizeof err)) {
        log_err(NULL, "recovery: %s", err);
        goto out;
    }
    if (requeued || failed)
        log_info(NULL, "recovery: %d interrupted jobs re-queued, %d failed after %d attempts",
                 requeued, failed, cfg.max_attempts);

    /* 4. Signals: blocked here so every thread started below inherits the mask
     * and only this thread takes them, in sigwait. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* 5. Workers.  Unless told otherwise a job leaves one core to the API. */
    if (cfg.job_threads == 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        cfg.job_threads = cores > 1 ? (int)cores - 1 : 1;
    }
    /* [server] gpus: one worker per GPU, each checked against the driver now
     * rather than failing every job later. */
    int ndev = cfg.gpus_all || cfg.n_gpus ? ts_cuda_device_count() : 0; /* asks the driver */
    if (cfg.gpus_all) {
        if (ndev == 0) {
            log_err(NULL, "gpus = all, but %s",
                    ts_cuda_compiled(NULL, 0) ? "the driver shows no CUDA device"
                                              : "this build has no CUDA");
            goto out;
        }
        cfg.n_gpus = ndev < CONFIG_MAX_GPUS ? ndev : CONFIG_MAX_GPUS;
        for (int i = 0; i < cfg.n_gpus; i++)
            cfg.gpus[i] = i;
    }
    for (int i = 0; i < cfg.n_gpus; i++) {
        if (cfg.gpus[i] >= ndev) {
            log_err(NULL, "gpus: CUDA device %d is not there (%d device%s)", cfg.gpus[i], ndev,
                    ndev == 1 ? "" : "s");
            goto out;
        }
    }
    if (cfg.n_gpus) cfg.workers = cfg.n_gpus;
    struct workers_config wc = {
        .count = cfg.workers,
        .gpus = cfg.n_gpus ? cfg.gpus : NULL,
        .db_path = queue_at,
        .artifact_dir = artifact_dir,
        .roots = roots,
        .plugin_dir = cfg.plugin_dir,
        .job_threads = cfg.job_threads,
        .free_space_factor = cfg.free_space_factor,
        .retention_days = cfg.retention_days,
        .stats = stats,
        .lease_seconds = cfg.lease_seconds,
        .leases = cfg.queue_postgres,
        .max_attempts = cfg.max_attempts,
    };
    if (!(workers = workers_start(&wc, err, sizeof err))) {
        log_err(NULL, "workers: %s", err);
        goto out;
    }

    /* 6. HTTP. */
    /* Submissions arriving together share one transaction (group commit). */
    if (!(committer = committer_create(queue_at, err, sizeof err))) {
        log_err(NULL, "database: %s", err);
        goto out;
    }
    struct api_env env = {
        .committer = committer,
        .artifact_dir = artifact_dir,
        .db_path = queue_at,
        .quota_bytes = cfg.quota_bytes,
        .auth = auth,
        .roots = roots,
        .stats = stats,
        .job_submitted = notify_workers,
        .workers_alive = alive_workers,
        .ud = workers,
    };
    struct http_config hc = {
        .host = cfg.host,
        .port = cfg.port,
        .threads = cfg.http_threads,
        .body_limit = cfg.body_limit,
        .env = &env,
    };
    if (!(http = http_start(&hc, err, sizeof err))) {
        log_err(NULL, "%s", err);
        goto out;
    }
    log_info(NULL,
             "listening on http://%s%s%s:%u (data %s, artifacts %s, queue %s, daemon %s, %d "
             "workers, %d HTTP threads, %s)",
             strchr(cfg.host, ':') ? "[" : "", cfg.host, strchr(cfg.host, ':') ? "]" : "",
             http_port(http), data_dir, artifact_dir, cfg.queue_postgres ? "postgres" : "sqlite",
             daemon_id, cfg.workers, cfg.http_threads,
             auth_count(auth) ? "tokens required" : "no tokens");
    if (cfg.queue_postgres)
        log_info(NULL, "leases of %d s: a dead daemon's job is re-queued within %.0f s",
                 cfg.lease_seconds, cfg.lease_seconds * 4.0 / 3.0);

    /* 7. Serve until SIGTERM or SIGINT. */
    for (;;) {
        int sig = 0;
        if (sigwait(&sigs, &sig)) continue;
        if (sig == SIGHUP) {
            log_info(NULL, "SIGHUP ignored (restart to reload the config)");
            continue;
        }
        log_info(NULL, "%s: stopping (at most %d s)", sig == SIGTERM ? "SIGTERM" : "SIGINT",
                 cfg.stop_timeout_s);
        break;
    }

    /* 8. Shutdown: stop accepting, then stop the jobs at a batch boundary. */
    http_stop(http);
    http = NULL;
    committer_destroy(committer);
    committer = NULL;
    int wrc = workers_stop(workers, cfg.stop_timeout_s > 1 ? cfg.stop_timeout_s - 1 : 1);
    workers = NULL;
    if (wrc) {
        /* A worker is still inside a batch: exit without tearing down under it. */
        log_warn(NULL, "stopped with a job mid-batch (re-queued)");
        fflush(NULL);
        _exit(0);
    }
    log_info(NULL, "stopped");
    rc = 0;
out:
    http_stop(http);
    committer_destroy(committer);
    if (workers) workers_stop(workers, cfg.stop_timeout_s);
    if (q) queue_close(q);
    api_stats_destroy(stats);
    roots_destroy(roots);
    auth_destroy(auth);
    config_free(&cfg);
    free(queue_at);
    if (lock_fd >= 0) close(lock_fd);
    return rc;
}
