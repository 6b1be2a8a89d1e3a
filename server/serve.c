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
#include "store.h"
#include "upload.h"
#include "torch_shim.h"
#include "workers.h"

static int make_dir(const char *path, char *err, size_t errlen)
{
    if (mkdir(path, 0750) && errno != EEXIST)
        return err_set(err, errlen, ERR_IO, "mkdir %s: %s", path, strerror(errno));
    return 0;
}

/* Everything a running daemon holds, released by release() in reverse. */
struct daemon {
    struct config cfg;
    struct auth *auth;
    struct roots *roots;
    struct stats *stats;
    struct store *store;
    struct queue *q; /* start-up's own connection: migrations and recovery */
    struct workers *workers;
    struct committer *committer;
    struct http_server *http;
    struct api_env env;
    char data_dir[PATH_MAX], daemon_id[128];
    char *queue_at; /* a SQLite path, or "pg:" + the dsn (core/queue/queue.h) */
    int lock_fd;
    sigset_t sigs;
};

/* 1. Options, config file, tokens and roots.  Returns -1 to go on, else the
 * exit code (0 for --help, 2 for a bad option or config). */
static int read_config(struct daemon *d, int argc, char **argv)
{
    char err[1024];
    int help = 0;

    if (config_init(&d->cfg, err, sizeof err)) {
        fprintf(stderr, "prunerd serve: %s\n", err);
        return 1;
    }
    if (config_parse_args(&d->cfg, argc - 1, argv + 1, &help, err, sizeof err) ||
        (!help && config_validate(&d->cfg, err, sizeof err))) {
        fprintf(stderr, "prunerd serve: %s\n", err);
        config_usage(stderr);
        return 2;
    }
    if (help) {
        config_usage(stdout);
        return 0;
    }
    log_setup(LOG_INFO, d->cfg.log_json ? LOG_JSON : LOG_TEXT);
    if (!(d->auth = auth_create()) || !(d->roots = roots_create()) ||
        !(d->stats = stats_create())) {
        log_err(NULL, "out of memory");
        return 1;
    }
    for (size_t i = 0; i < d->cfg.n_tokens; i++)
        if (auth_add(d->auth, d->cfg.tokens[i].name, d->cfg.tokens[i].spec, err, sizeof err)) {
            log_err(NULL, "config: %s", err);
            return 1;
        }
    for (size_t i = 0; i < d->cfg.n_model_roots; i++)
        if (roots_add(d->roots, ROOTS_MODEL, d->cfg.model_roots[i], err, sizeof err)) {
            log_err(NULL, "model root: %s", err);
            return 1;
        }
    for (size_t i = 0; i < d->cfg.n_data_roots; i++)
        if (roots_add(d->roots, ROOTS_DATA, d->cfg.data_roots[i], err, sizeof err)) {
            log_err(NULL, "data root: %s", err);
            return 1;
        }
    return -1;
}

/* 2. The data dir (locked: one daemon each), the artifact store, and the
 * queue (migrations run in queue_open). */
static int open_data_dir(struct daemon *d)
{
    char err[1024] = "", artifact_dir[PATH_MAX], db_path[PATH_MAX + 16], lock_path[PATH_MAX + 16];
    const struct config *cfg = &d->cfg;

    if (make_dir(cfg->data_dir, err, sizeof err) || !realpath(cfg->data_dir, d->data_dir)) {
        log_err(NULL, "data dir %s: %s", cfg->data_dir, err[0] ? err : strerror(errno));
        return 1;
    }
    /* Checkpoints and result.json: the shared store of a group of boxes, or the data dir. */
    const char *store = cfg->artifact_dir ? cfg->artifact_dir : d->data_dir;
    if (make_dir(store, err, sizeof err) || !realpath(store, artifact_dir)) {
        log_err(NULL, "artifact dir %s: %s", store, err[0] ? err : strerror(errno));
        return 1;
    }
    snprintf(db_path, sizeof db_path, "%s/prunerd.db", d->data_dir);
    if (cfg->queue_postgres) {
        size_t n = strlen(cfg->queue_dsn) + 4;
        if ((d->queue_at = malloc(n))) snprintf(d->queue_at, n, "pg:%s", cfg->queue_dsn);
    } else {
        d->queue_at = strdup(db_path);
    }
    if (!d->queue_at) {
        log_err(NULL, "out of memory");
        return 1;
    }
    queue_daemon_id(d->daemon_id, sizeof d->daemon_id);
    stats_set_daemon(d->stats, d->daemon_id);
    /* One daemon per data dir: recovery re-queues every running job, which
     * would take a live daemon's jobs.  The lock goes with the process. */
    snprintf(lock_path, sizeof lock_path, "%s/prunerd.lock", d->data_dir);
    d->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (d->lock_fd < 0 || flock(d->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        log_err(NULL, "data dir %s: %s", d->data_dir,
                d->lock_fd >= 0 && errno == EWOULDBLOCK ? "another prunerd serve is using it"
                                                        : strerror(errno));
        return 1;
    }
    if (store_open(artifact_dir, &d->store, err, sizeof err)) {
        log_err(NULL, "artifact dir: %s", err);
        return 1;
    }
    /* Uploads: a model and a data root (searched last; a caller's own
     * "<owner>/..." paths go straight there: upload_job_resolve). */
    char uploads[PATH_MAX];
    if (upload_prepare(d->store, uploads, sizeof uploads, err, sizeof err) ||
        roots_add(d->roots, ROOTS_MODEL, uploads, err, sizeof err) ||
        roots_add(d->roots, ROOTS_DATA, uploads, err, sizeof err)) {
        log_err(NULL, "uploads: %s", err);
        return 1;
    }
    if (!(d->q = queue_open(d->queue_at, err, sizeof err))) {
        log_err(NULL, "database %s: %s", cfg->queue_postgres ? "(postgres)" : db_path, err);
        return 1;
    }
    return 0;
}

/* 3. Recovery: jobs a dead process left running go back to the queue (with
 * PostgreSQL only those whose lease expired: other daemons run the rest;
 * the lease keeper rescues the others later). */
static int recover(struct daemon *d)
{
    char err[1024];
    int requeued = 0, failed = 0;

    if (queue_recover(d->q, d->cfg.max_attempts, &requeued, &failed, err, sizeof err)) {
        log_err(NULL, "recovery: %s", err);
        return 1;
    }
    if (requeued || failed)
        log_info(NULL, "recovery: %d interrupted jobs re-queued, %d failed after %d attempts",
                 requeued, failed, d->cfg.max_attempts);
    return 0;
}

/* 4. Signals, blocked here so every thread started after inherits the mask
 * and only the main thread takes them, in wait_for_signal. */
static void block_signals(struct daemon *d)
{
    sigemptyset(&d->sigs);
    sigaddset(&d->sigs, SIGTERM);
    sigaddset(&d->sigs, SIGINT);
    sigaddset(&d->sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &d->sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* [server] gpus: one worker per GPU, each checked against the driver now
 * rather than failing every job later. */
static int check_gpus(struct config *cfg)
{
    int ndev = cfg->gpus_all || cfg->n_gpus ? ts_cuda_device_count() : 0; /* asks the driver */
    if (cfg->gpus_all) {
        if (ndev == 0) {
            log_err(NULL, "gpus = all, but %s",
                    ts_cuda_compiled(NULL, 0) ? "the driver shows no CUDA device"
                                              : "this build has no CUDA");
            return 1;
        }
        cfg->n_gpus = ndev < CONFIG_MAX_GPUS ? ndev : CONFIG_MAX_GPUS;
        for (int i = 0; i < cfg->n_gpus; i++)
            cfg->gpus[i] = i;
    }
    for (int i = 0; i < cfg->n_gpus; i++) {
        if (cfg->gpus[i] >= ndev) {
            log_err(NULL, "gpus: CUDA device %d is not there (%d device%s)", cfg->gpus[i], ndev,
                    ndev == 1 ? "" : "s");
            return 1;
        }
    }
    if (cfg->n_gpus) cfg->workers = cfg->n_gpus;
    return 0;
}

/* 5. The workers.  Unless told otherwise a job leaves one core to the API. */
static int start_workers(struct daemon *d)
{
    struct config *cfg = &d->cfg;
    char err[1024];

    if (cfg->job_threads == 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        cfg->job_threads = cores > 1 ? (int)cores - 1 : 1;
    }
    if (check_gpus(cfg)) return 1;
    struct workers_config wc = {
        .count = cfg->workers,
        .gpus = cfg->n_gpus ? cfg->gpus : NULL,
        .db_path = d->queue_at,
        .store = d->store,
        .roots = d->roots,
        .plugin_dir = cfg->plugin_dir,
        .job_threads = cfg->job_threads,
        .free_space_factor = cfg->free_space_factor,
        .retention_days = cfg->retention_days,
        .stats = d->stats,
        .lease_seconds = cfg->lease_seconds,
        .leases = cfg->queue_postgres,
        .max_attempts = cfg->max_attempts,
    };
    if (!(d->workers = workers_start(&wc, err, sizeof err))) {
        log_err(NULL, "workers: %s", err);
        return 1;
    }
    return 0;
}

static void notify_workers(void *ud)
{
    workers_notify(ud);
}

static int alive_workers(void *ud)
{
    return workers_alive(ud);
}

/* 6. HTTP, with submissions arriving together sharing one transaction
 * (group commit). */
static int start_http(struct daemon *d)
{
    const struct config *cfg = &d->cfg;
    char err[1024];

    if (!(d->committer = committer_create(d->queue_at, err, sizeof err))) {
        log_err(NULL, "database: %s", err);
        return 1;
    }
    d->env = (struct api_env){
        .committer = d->committer,
        .store = d->store,
        .db_path = d->queue_at,
        .quota_bytes = cfg->quota_bytes,
        .upload_limit = cfg->upload_limit,
        .auth = d->auth,
        .roots = d->roots,
        .stats = d->stats,
        .job_submitted = notify_workers,
        .workers_alive = alive_workers,
        .ud = d->workers,
    };
    struct http_config hc = {
        .host = cfg->host,
        .port = cfg->port,
        .threads = cfg->http_threads,
        .body_limit = cfg->body_limit,
        .env = &d->env,
    };
    if (!(d->http = http_start(&hc, err, sizeof err))) {
        log_err(NULL, "%s", err);
        return 1;
    }
    log_info(NULL,
             "listening on http://%s%s%s:%u (data %s, artifacts %s, queue %s, daemon %s, %d "
             "workers, %d HTTP threads, %s)",
             strchr(cfg->host, ':') ? "[" : "", cfg->host, strchr(cfg->host, ':') ? "]" : "",
             http_port(d->http), d->data_dir, store_dir(d->store),
             cfg->queue_postgres ? "postgres" : "sqlite", d->daemon_id, cfg->workers,
             cfg->http_threads, auth_count(d->auth) ? "tokens required" : "no tokens");
    if (cfg->queue_postgres)
        log_info(NULL, "leases of %d s: a dead daemon's job is re-queued within %.0f s",
                 cfg->lease_seconds, cfg->lease_seconds * 4.0 / 3.0);
    return 0;
}

/* 7. Serve until SIGTERM or SIGINT. */
static void wait_for_signal(struct daemon *d)
{
    for (;;) {
        int sig = 0;
        if (sigwait(&d->sigs, &sig)) continue;
        if (sig == SIGHUP) {
            log_info(NULL, "SIGHUP ignored (restart to reload the config)");
            continue;
        }
        log_info(NULL, "%s: stopping (at most %d s)", sig == SIGTERM ? "SIGTERM" : "SIGINT",
                 d->cfg.stop_timeout_s);
        return;
    }
}

/* 8. Shutdown: stop accepting, then stop the jobs at a batch boundary. */
static void shut_down(struct daemon *d)
{
    http_stop(d->http);
    d->http = NULL;
    committer_destroy(d->committer);
    d->committer = NULL;
    int wrc = workers_stop(d->workers, d->cfg.stop_timeout_s > 1 ? d->cfg.stop_timeout_s - 1 : 1);
    d->workers = NULL;
    if (wrc) {
        /* A worker is still inside a batch: exit without tearing down under it. */
        log_warn(NULL, "stopped with a job mid-batch (re-queued)");
        fflush(NULL);
        _exit(0);
    }
    log_info(NULL, "stopped");
}

/* Releases what start-up got, in reverse; also after a failed step. */
static void release(struct daemon *d)
{
    http_stop(d->http);
    committer_destroy(d->committer);
    if (d->workers) workers_stop(d->workers, d->cfg.stop_timeout_s);
    if (d->q) queue_close(d->q);
    store_destroy(d->store);
    stats_destroy(d->stats);
    roots_destroy(d->roots);
    auth_destroy(d->auth);
    config_free(&d->cfg);
    free(d->queue_at);
    if (d->lock_fd >= 0) close(d->lock_fd);
}

int serve_main(int argc, char **argv)
{
    struct daemon d = {.lock_fd = -1};
    int rc = read_config(&d, argc, argv);

    if (rc < 0) {
        rc = 1;
        if (!open_data_dir(&d) && !recover(&d)) {
            block_signals(&d);
            if (!start_workers(&d) && !start_http(&d)) {
                wait_for_signal(&d);
                shut_down(&d);
                rc = 0;
            }
        }
    }
    release(&d);
    return rc;
}
