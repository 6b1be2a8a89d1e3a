/* config.h - prunerd serve settings: defaults, INI config file, command-line flags */
#ifndef PRUNERD_CONFIG_H
#define PRUNERD_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/*
 * Precedence: defaults < config file (--config FILE) < command-line flags.
 * A list given on the command line (--model-root, --data-root) replaces the
 * file's list.  The file format is documented in deploy/prunerd.conf.example:
 *
 *   [server]  listen = 127.0.0.1:8080   workers = 1   http_threads = 4
 *             gpus = none|all|0,1,... (one worker per GPU, replacing workers)
 *             job_threads = 0 (libtorch default)
 *             log_format = text|json    plugin_dir = DIR
 *   [paths]   data_dir = ./var          model_root = DIR (repeatable)
 *             data_root = DIR (repeatable)
 *             artifact_dir = DIR (default: data_dir; shared by a group of boxes)
 *   [queue]   backend = sqlite|postgres   dsn = libpq connection string
 *             lease_seconds = 30 (>= 2)
 *   [limits]  body_limit = 1M   upload_limit = 4G   max_attempts = 3   stop_timeout = 20
 *             retention_days = 30 (0 keeps)   free_space_factor = 2
 *             quota = 0 (bytes, K/M/G/T suffixes; 0 = none)
 *   [tokens]  NAME = ROLE:SHA256HEX   (role read, submit or admin)
 */

struct config_token {
    char *name;
    char *spec; /* "role:sha256hex", checked by auth_add */
};

#define CONFIG_MAX_GPUS 64

struct config {
    char host[128]; /* listen address, without brackets */
    unsigned port;
    char *data_dir;
    char *artifact_dir; /* NULL: data_dir (checkpoints, result.json: artifact_dir/jobs/<id>/) */
    int queue_postgres; /* [queue] backend = postgres */
    char *queue_dsn;    /* libpq connection string (URI or keyword/value) */
    int lease_seconds;  /* PostgreSQL claims: a dead box's job waits this long */
    char **model_roots;
    size_t n_model_roots;
    char **data_roots;
    size_t n_data_roots;
    int workers;               /* job worker threads */
    int gpus[CONFIG_MAX_GPUS]; /* [server] gpus: one worker per listed CUDA device */
    int n_gpus;                /* 0: no GPU list (workers as configured) */
    int gpus_all;              /* gpus = all: every device the driver shows at start */
    int http_threads;          /* libmicrohttpd thread pool size */
    int job_threads;           /* libtorch threads per job; 0: libtorch's default */
    size_t body_limit;         /* request bodies, bytes */
    uint64_t upload_limit;     /* an upload's body (and once unpacked), bytes */
    int max_attempts;          /* a job fails after this many interrupted runs */
    int stop_timeout_s;        /* bound on shutdown */
    int retention_days;        /* finished jobs older than this are deleted; 0 keeps */
    double free_space_factor;  /* free space needed before a job: factor x model size */
    uint64_t quota_bytes;      /* size cap of the data dir; 0 = none */
    int log_json;              /* --log-format json */
    char *plugin_dir;          /* NULL: plugins refused */
    struct config_token *tokens;
    size_t n_tokens;
};

/* Fills the defaults: 127.0.0.1:8080, ./var, roots ".", 1 worker, 4 HTTP
 * threads, 1 MiB bodies, 4 GiB uploads, 3 attempts, 20 s, 30 days, 2x, no quota, SQLite,
 * 30 s leases. */
int config_init(struct config *c, char *err, size_t errlen);
void config_free(struct config *c); /* frees what c holds, not c */

/* Parses INI text (source names it in messages).  ERR_INVALID naming
 * source:line on an unknown section or key, or a bad value. */
int config_parse_text(struct config *c, const char *text, const char *source, char *err,
                      size_t errlen);
int config_parse_file(struct config *c, const char *path, char *err, size_t errlen);

/* Applies `serve` flags (argv[0] is the first flag); --config is read first
 * wherever it is.  *help is set when --help was given. */
int config_parse_args(struct config *c, int argc, char **argv, int *help, char *err, size_t errlen);

/* Cross-field checks: a non-loopback listen address needs tokens; the
 * postgres backend needs a dsn, a dsn needs the postgres backend. */
int config_validate(const struct config *c, char *err, size_t errlen);

/* "1M" -> 1048576; ERR_INVALID on junk. */
int config_parse_size(const char *s, uint64_t *out);
/* "127.0.0.1:8080", "[::1]:80", ":8080" (host kept). */
int config_parse_listen(struct config *c, const char *s, char *err, size_t errlen);
int config_host_is_loopback(const char *host);

void config_usage(FILE *out);

#endif
