/* test_config.c - defaults, the INI file, flags over the file, and refusals */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "ct.h"
#include "err.h"

static const char good[] =
    "# prunerd\n"
    "[server]\n"
    "listen = 0.0.0.0:9090\n"
    "workers = 2\n"
    "job_threads = 1\n"
    "\n"
    "log_format = json\n"
    "[paths]\n"
    "data_dir = /srv/prunerd\n"
    "model_root = /models/a\n"
    "model_root = /models/b\n"
    "data_root=/data\n"
    "[limits]\n"
    "body_limit = 2M\n"
    "max_attempts = 5\n"
    "stop_timeout = 7\n"
    "retention_days = 0\n"
    "quota = 10G\n"
    "upload_limit = 512M\n"
    "free_space_factor = 1.5\n"
    "[tokens]\n"
    "alice = admin:0000000000000000000000000000000000000000000000000000000000000000\n"
    "ci-bot = submit:1111111111111111111111111111111111111111111111111111111111111111\n";

int main(void)
{
    struct config c;
    char err[512];
    int help;
    uint64_t sz;

    /* Defaults. */
    CHECK_INT(config_init(&c, err, sizeof err), 0);
    CHECK(!strcmp(c.host, "127.0.0.1") && c.port == 8080, "listen %s:%u", c.host, c.port);
    CHECK(!strcmp(c.data_dir, "./var"), "data dir %s", c.data_dir);
    CHECK(c.n_model_roots == 1 && !strcmp(c.model_roots[0], "."), "model roots");
    CHECK(c.n_data_roots == 1 && !strcmp(c.data_roots[0], "."), "data roots");
    CHECK_INT(c.workers, 1);
    CHECK_INT(c.body_limit, 1 << 20);
    CHECK_INT(c.max_attempts, 3);
    CHECK_INT(c.stop_timeout_s, 20);
    CHECK_INT(c.retention_days, 30);
    CHECK(c.free_space_factor == 2.0, "factor %g", c.free_space_factor);
    CHECK_INT(c.quota_bytes, 0);
    CHECK(c.upload_limit == 4ull << 30, "upload_limit defaults to 4G: %llu",
          (unsigned long long)c.upload_limit);
    CHECK_INT(c.n_tokens, 0);
    CHECK_INT(config_validate(&c, err, sizeof err), 0);

    /* The file. */
    CHECK_INT(config_parse_text(&c, good, "good.conf", err, sizeof err), 0);
    CHECK(!strcmp(c.host, "0.0.0.0") && c.port == 9090, "listen %s:%u", c.host, c.port);
    CHECK_INT(c.workers, 2);
    CHECK_INT(c.job_threads, 1);
    CHECK_INT(c.log_json, 1);
    CHECK(!strcmp(c.data_dir, "/srv/prunerd"), "data dir %s", c.data_dir);
    CHECK(c.n_model_roots == 2 && !strcmp(c.model_roots[1], "/models/b"), "model roots %zu",
          c.n_model_roots);
    CHECK(c.n_data_roots == 1 && !strcmp(c.data_roots[0], "/data"), "data roots %zu",
          c.n_data_roots);
    CHECK_INT(c.body_limit, 2 << 20);
    CHECK_INT(c.max_attempts, 5);
    CHECK_INT(c.stop_timeout_s, 7);
    CHECK_INT(c.retention_days, 0);
    CHECK(c.quota_bytes == 10ull << 30, "quota %llu", (unsigned long long)c.quota_bytes);
    CHECK(c.upload_limit == 512ull << 20, "upload_limit %llu", (unsigned long long)c.upload_limit);
    CHECK(c.free_space_factor == 1.5, "factor %g", c.free_space_factor);
    CHECK_INT(c.n_tokens, 2);
    CHECK(c.n_tokens == 2 && !strcmp(c.tokens[1].name, "ci-bot") &&
              !strncmp(c.tokens[1].spec, "submit:1111", 11),
          "tokens");
    CHECK_INT(config_validate(&c, err, sizeof err), 0); /* 0.0.0.0 with tokens: fine */

    /* Flags override the file; roots on the command line replace the file's. */
    char *argv[] = {"--listen",    "127.0.0.1:0",  "--model-root", "/m1",        "--model-root=/m2",
                    "--workers=3", "--log-format", "text",         "--data-dir", "/tmp/x"};
    CHECK_INT(config_parse_args(&c, 10, argv, &help, err, sizeof err), 0);
    CHECK_INT(help, 0);
    CHECK(c.port == 0 && !strcmp(c.host, "127.0.0.1"), "listen %s:%u", c.host, c.port);
    CHECK(c.n_model_roots == 2 && !strcmp(c.model_roots[0], "/m1") &&
              !strcmp(c.model_roots[1], "/m2"),
          "roots %zu", c.n_model_roots);
    CHECK(c.n_data_roots == 1, "data roots kept %zu", c.n_data_roots);
    CHECK_INT(c.workers, 3);
    CHECK_INT(c.log_json, 0);
    config_free(&c);

    /* --config FILE read before the flags, wherever it is. */
    char path[] = "/tmp/test_config.XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    FILE *f = fdopen(fd, "w");
    fputs("[server]\nworkers = 4\n[paths]\ndata_dir = /from/file\n", f);
    fclose(f);
    char *argv2[] = {"--data-dir", "/from/flag", "--config", path};
    config_init(&c, err, sizeof err);
    CHECK_INT(config_parse_args(&c, 4, argv2, &help, err, sizeof err), 0);
    CHECK_INT(c.workers, 4);
    CHECK(!strcmp(c.data_dir, "/from/flag"), "flag wins: %s", c.data_dir);
    config_free(&c);
    unlink(path);

    /* [server] gpus: none (default), all, or a list of device indices. */
    config_init(&c, err, sizeof err);
    CHECK(c.n_gpus == 0 && !c.gpus_all, "default gpus: %d %d", c.n_gpus, c.gpus_all);
    CHECK_INT(config_parse_text(&c, "[server]\ngpus = 0,2,1\n", "g.conf", err, sizeof err), 0);
    CHECK(c.n_gpus == 3 && c.gpus[0] == 0 && c.gpus[1] == 2 && c.gpus[2] == 1 && !c.gpus_all,
          "gpus list: %d", c.n_gpus);
    CHECK_INT(config_parse_text(&c, "[server]\ngpus = all\n", "g.conf", err, sizeof err), 0);
    CHECK(c.n_gpus == 0 && c.gpus_all, "gpus all: %d %d", c.n_gpus, c.gpus_all);
    CHECK_INT(config_parse_text(&c, "[server]\ngpus = none\n", "g.conf", err, sizeof err), 0);
    CHECK(c.n_gpus == 0 && !c.gpus_all, "gpus none: %d %d", c.n_gpus, c.gpus_all);
    const char *bad_gpus[] = {"0,0", "-1", "64", "1,", ",1", "a", "1 2", "0,,1"};
    for (size_t i = 0; i < sizeof bad_gpus / sizeof *bad_gpus; i++) {
        char text[64];
        snprintf(text, sizeof text, "[server]\ngpus = %s\n", bad_gpus[i]);
        CHECK_INT(config_parse_text(&c, text, "g.conf", err, sizeof err), ERR_INVALID);
        CHECK(strstr(err, "g.conf:2") && strstr(err, "gpus must be"), "gpus %s: %s", bad_gpus[i],
              err);
    }
    config_free(&c);

    /* Refusals, with the place. */
    config_init(&c, err, sizeof err);
    CHECK_INT(config_parse_text(&c, "[server]\nworkers = 0\n", "a.conf", err, sizeof err),
              ERR_INVALID);
    CHECK(strstr(err, "a.conf:2") != NULL, "message: %s", err);
    CHECK_INT(config_parse_text(&c, "[server]\nwrokers = 2\n", "a.conf", err, sizeof err),
              ERR_INVALID);
    CHECK(strstr(err, "wrokers") != NULL, "message: %s", err);
    CHECK_INT(config_parse_text(&c, "[sever]\n", "a.conf", err, sizeof err), ERR_INVALID);
    CHECK_INT(config_parse_text(&c, "workers = 2\n", "a.conf", err, sizeof err), ERR_INVALID);
    CHECK_INT(config_parse_text(&c, "[server]\nworkers\n", "a.conf", err, sizeof err), ERR_INVALID);
    CHECK_INT(config_parse_text(&c, "[server]\nlisten = 1.2.3.4\n", "a.conf", err, sizeof err),
              ERR_INVALID);
    CHECK_INT(config_parse_text(&c, "[server]\nlisten = 1.2.3.4:70000\n", "a", err, sizeof err),
              ERR_INVALID);
    CHECK_INT(config_parse_text(&c, "[limits]\nbody_limit = 1Q\n", "a", err, sizeof err),
              ERR_INVALID);
    CHECK_INT(config_parse_text(&c, "[limits]\nupload_limit = 0\n", "a", err, sizeof err),
              ERR_INVALID);
    CHECK(strstr(err, "upload_limit") != NULL, "message: %s", err);
    CHECK_INT(config_parse_text(&c, "[server]\nlog_format = xml\n", "a", err, sizeof err),
              ERR_INVALID);
    char *argv3[] = {"--bogus"};
    CHECK_INT(config_parse_args(&c, 1, argv3, &help, err, sizeof err), ERR_INVALID);
    char *argv4[] = {"--workers"};
    CHECK_INT(config_parse_args(&c, 1, argv4, &help, err, sizeof err), ERR_INVALID);
    char *argv5[] = {"--config", "/nonexistent/prunerd.conf"};
    CHECK_INT(config_parse_args(&c, 2, argv5, &help, err, sizeof err), ERR_NOTFOUND);
    char *argv6[] = {"--help"};
    CHECK_INT(config_parse_args(&c, 1, argv6, &help, err, sizeof err), 0);
    CHECK_INT(help, 1);

    /* A non-loopback address needs tokens. */
    CHECK_INT(config_parse_listen(&c, "0.0.0.0:8080", err, sizeof err), 0);
    CHECK_INT(config_validate(&c, err, sizeof err), ERR_INVALID);
    CHECK(strstr(err, "without tokens") != NULL, "message: %s", err);
    CHECK_INT(config_parse_listen(&c, "[::1]:8080", err, sizeof err), 0);
    CHECK(!strcmp(c.host, "::1"), "host %s", c.host);
    CHECK_INT(config_validate(&c, err, sizeof err), 0);
    CHECK_INT(config_parse_listen(&c, "localhost:1", err, sizeof err), 0);
    CHECK_INT(config_validate(&c, err, sizeof err), 0);
    CHECK_INT(config_parse_listen(&c, "[::]:8080", err, sizeof err), 0);
    CHECK_INT(config_validate(&c, err, sizeof err), ERR_INVALID);
    config_free(&c);

    /* The queue: SQLite by default; PostgreSQL from the file, the dsn from the flag. */
    config_init(&c, err, sizeof err);
    CHECK(!c.queue_postgres && !c.queue_dsn && c.lease_seconds == 30 && !c.artifact_dir,
          "queue defaults: postgres %d lease %d", c.queue_postgres, c.lease_seconds);
    CHECK_INT(config_parse_text(&c,
                                "[queue]\nbackend = postgres\ndsn = host=db1 dbname=prunerd\n"
                                "lease_seconds = 12\n[paths]\nartifact_dir = /mnt/store\n",
                                "q.conf", err, sizeof err),
              0);
    CHECK(c.queue_postgres && !strcmp(c.queue_dsn, "host=db1 dbname=prunerd") &&
              c.lease_seconds == 12 && !strcmp(c.artifact_dir, "/mnt/store"),
          "queue from the file: %d '%s' %d '%s'", c.queue_postgres, c.queue_dsn, c.lease_seconds,
          c.artifact_dir);
    char *argv7[] = {"--queue-dsn", "postgresql://db2/prunerd", "--lease-seconds=5",
                     "--artifact-dir", "/mnt/other"};
    CHECK_INT(config_parse_args(&c, 5, argv7, &help, err, sizeof err), 0);
    CHECK(!strcmp(c.queue_dsn, "postgresql://db2/prunerd") && c.lease_seconds == 5 &&
              !strcmp(c.artifact_dir, "/mnt/other"),
          "flags win: '%s' %d '%s'", c.queue_dsn, c.lease_seconds, c.artifact_dir);
    CHECK_INT(config_validate(&c, err, sizeof err), 0);
    CHECK_INT(config_parse_text(&c, "[queue]\nlease_seconds = 1\n", "q", err, sizeof err),
              ERR_INVALID);
    CHECK_INT(config_parse_text(&c, "[queue]\nbackend = mysql\n", "q", err, sizeof err),
              ERR_INVALID);
    CHECK_INT(config_parse_text(&c, "[queue]\nbackend = sqlite\n", "q", err, sizeof err), 0);
    CHECK_INT(config_validate(&c, err, sizeof err), ERR_INVALID); /* a dsn without postgres */
    CHECK(strstr(err, "backend = postgres") != NULL, "message: %s", err);
    config_free(&c);
    config_init(&c, err, sizeof err);
    CHECK_INT(config_parse_text(&c, "[queue]\nbackend = postgres\n", "q", err, sizeof err), 0);
    CHECK_INT(config_validate(&c, err, sizeof err), ERR_INVALID); /* postgres without a dsn */
    CHECK(strstr(err, "needs a dsn") != NULL, "message: %s", err);
    config_free(&c);

    /* Sizes. */
    CHECK(!config_parse_size("1M", &sz) && sz == 1048576, "1M");
    CHECK(!config_parse_size("512", &sz) && sz == 512, "512");
    CHECK(!config_parse_size("2KiB", &sz) && sz == 2048, "2KiB");
    CHECK(!config_parse_size("3gb", &sz) && sz == 3ull << 30, "3gb");
    CHECK_INT(config_parse_size("-1", &sz), ERR_INVALID);
    CHECK_INT(config_parse_size("", &sz), ERR_INVALID);
    CHECK_INT(config_parse_size("99999999999999T", &sz), ERR_INVALID);
    return ct_done("test_config");
}
