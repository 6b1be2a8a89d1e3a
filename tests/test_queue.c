/* test_queue.c - the job queue: transitions, paging, claims, recovery, faults, crashes; leases and
 * fencing on PostgreSQL
 *
 * Runs against SQLite; with PRUNERD_TEST_PG set (a keyword/value connection
 * string without dbname, as tests/pg_server.py --run gives) against
 * PostgreSQL instead: the backend-neutral tests, then the lease, fencing
 * and migration-lock tests.  SQLite's own (migrations, fault hooks, crashes)
 * run only on SQLite. */
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <libpq-fe.h>
#include <sqlite3.h>

#include "ct.h"
#include "db.h"
#include "err.h"
#include "queue.h"

static char tmpdir[64];
static char err[512];
static const char *pg_base; /* PRUNERD_TEST_PG: the PostgreSQL run; NULL: SQLite */

#define REQ "{\"model\":\"m.pt\",\"amount\":0.3}"
#define LEASE_S 30

/* The fence of a job's last claim, as its claimer holds it (0 with SQLite). */
static int64_t F(struct queue *q, const char *id)
{
    struct job_row r;
    char e[256];
    int64_t fence = 0;
    if (!queue_get(q, id, &r, e, sizeof e)) fence = r.fence;
    job_row_free(&r);
    return fence;
}

/* A one-row, one-column answer from a fresh PostgreSQL connection; -1 on failure. */
static long long pg_int(const char *conninfo, const char *sql)
{
    PGconn *c = PQconnectdb(conninfo);
    long long v = -1;
    PGresult *r = PQstatus(c) == CONNECTION_OK ? PQexec(c, sql) : NULL;
    if (r && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
        v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    else if (r && PQresultStatus(r) == PGRES_COMMAND_OK)
        v = 0;
    else
        fprintf(stderr, "pg_int %s: %s\n", sql, r ? PQresultErrorMessage(r) : PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    return v;
}

/* Where the queue of one test lives: a file in tmpdir, or a fresh PostgreSQL database. */
static void db_path(char *out, size_t n, const char *name)
{
    if (!pg_base) {
        snprintf(out, n, "%s/%s.db", tmpdir, name);
        return;
    }
    char admin[512], sql[128];
    snprintf(admin, sizeof admin, "%s dbname=postgres", pg_base);
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS q_%s", name);
    pg_int(admin, sql);
    snprintf(sql, sizeof sql, "CREATE DATABASE q_%s", name);
    CHECK(pg_int(admin, sql) == 0, "create database q_%s", name);
    snprintf(out, n, "pg:%s dbname=q_%s", pg_base, name);
}

static void cleanup_tmpdir(void)
{
    DIR *d = opendir(tmpdir);
    if (!d) return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
            unlink(p);
        }
    closedir(d);
    rmdir(tmpdir);
}

static struct queue *open_q(const char *path)
{
    struct queue *q = queue_open(path, err, sizeof err);
    CHECK(q != NULL, "queue_open %s: %s", path, err);
    if (!q) {
        cleanup_tmpdir();
        exit(EXIT_FAILURE);
    }
    return q;
}

static int submit(struct queue *q, const char *name, char id[JOB_ID_LEN + 1])
{
    int existed = -1;
    int rc = queue_submit(q, REQ, name, "alice", NULL, id, &existed, err, sizeof err);
    CHECK(rc == 0 && existed == 0, "submit %s: rc %d existed %d: %s", name, rc, existed, err);
    return rc;
}

static int64_t count_of(struct queue *q, enum job_status s)
{
    int64_t c[JOB_STATUS_COUNT];
    int rc = queue_counts(q, c, err, sizeof err);
    CHECK_INT(rc, 0);
    return rc ? -1 : c[s];
}

static int64_t total(struct queue *q)
{
    int64_t c[JOB_STATUS_COUNT], t = 0;
    if (queue_counts(q, c, err, sizeof err)) return -1;
    for (int i = 0; i < JOB_STATUS_COUNT; i++)
        t += c[i];
    return t;
}

/* One integer from raw SQL on a separate connection (what another process sees). */
static long long sql_int(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    long long v = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* Every invariant the state machine promises, over the whole table. */
static void check_consistent(struct queue *q, const char *path, const char *when)
{
    int rc = queue_integrity_check(q, err, sizeof err);
    CHECK(rc == 0, "%s: integrity_check: %s", when, err);
    if (pg_base) {
        long long bad = pg_int(path + 3, "SELECT count(*) FROM jobs WHERE "
                                         "(status IN ('succeeded','failed','cancelled')) != "
                                         "(finished_at IS NOT NULL) "
                                         "OR (status = 'running' AND (started_at IS NULL OR "
                                         "lease_until IS NULL OR fence = 0)) "
                                         "OR jsonb_typeof(stages::jsonb) != 'array' "
                                         "OR jsonb_typeof(request::jsonb) != 'object'");
        CHECK(bad == 0, "%s: %lld rows break an invariant", when, bad);
        return;
    }
    long long bad = sql_int(path, "SELECT count(*) FROM jobs WHERE "
                                  "(status IN ('succeeded','failed','cancelled')) != "
                                  "(finished_at IS NOT NULL) "
                                  "OR (status = 'running' AND started_at IS NULL) "
                                  "OR json_valid(stages) = 0 OR json_type(stages) != 'array' "
                                  "OR json_valid(request) = 0");
    CHECK(bad == 0, "%s: %lld rows break an invariant", when, bad);
}

/* ---- basics ---- */

static void test_names_and_ids(void)
{
    if (!pg_base) { /* SQLite has no notifications: the workers poll */
        char path[256], id[JOB_ID_LEN + 1];
        enum queue_event ev;
        db_path(path, sizeof path, "nonotify");
        struct queue *q = open_q(path);
        CHECK_INT(queue_listen(q, err, sizeof err), ERR_UNSUPPORTED);
        CHECK_INT(queue_wait(q, 0, &ev, id, err, sizeof err), ERR_UNSUPPORTED);
        CHECK(!strcmp(queue_backend(q), "sqlite"), "backend %s", queue_backend(q));
        queue_close(q);
    }
    enum job_status s;
    for (int i = 0; i < JOB_STATUS_COUNT; i++) {
        CHECK_INT(job_status_parse(job_status_name((enum job_status)i), &s), 0);
        CHECK_INT(s, i);
    }
    CHECK(!strcmp(job_status_name(JOB_CANCELLED), "cancelled"), "name");
    CHECK(!strcmp(job_status_name((enum job_status)99), "unknown"), "out of range");
    CHECK_INT(job_status_parse("Queued", &s), ERR_INVALID);
    CHECK_INT(job_status_parse(NULL, &s), ERR_INVALID);

    CHECK(job_id_valid("123e4567-e89b-42d3-a456-426614174000"), "valid v4");
    CHECK(!job_id_valid("123E4567-e89b-42d3-a456-426614174000"), "uppercase");
    CHECK(!job_id_valid("123e4567-e89b-12d3-a456-426614174000"), "version 1");
    CHECK(!job_id_valid("123e4567-e89b-42d3-c456-426614174000"), "variant c");
    CHECK(!job_id_valid("123e4567-e89b-42d3-a456-42661417400"), "35 chars");
    CHECK(!job_id_valid("123e4567-e89b-42d3-a456-4266141740000"), "37 chars");
    CHECK(!job_id_valid("123e4567xe89b-42d3-a456-426614174000"), "no dash");
    CHECK(!job_id_valid("' OR 1=1 --"), "injection");
    CHECK(!job_id_valid(NULL), "NULL");
}

static void test_submit_get_durable(void)
{
    char path[256], id[JOB_ID_LEN + 1], id2[JOB_ID_LEN + 1];
    db_path(path, sizeof path, "basic");
    struct queue *q = open_q(path);
    int existed = -1;
    CHECK_INT(queue_submit(q, REQ, "first", "alice", NULL, id, &existed, err, sizeof err), 0);
    CHECK_INT(existed, 0);
    CHECK(job_id_valid(id), "generated id '%s' is a v4 uuid", id);
    CHECK_INT(queue_submit(q, REQ, NULL, NULL, NULL, id2, NULL, err, sizeof err), 0);
    CHECK(strcmp(id, id2) != 0, "two ids differ");
    char bad[JOB_ID_LEN + 1];
    CHECK_INT(queue_submit(q, "[1,2]", "x", "alice", NULL, bad, NULL, err, sizeof err),
              ERR_INVALID);
    CHECK_INT(queue_submit(q, "{nope", "x", "alice", NULL, bad, NULL, err, sizeof err),
              ERR_INVALID);
    CHECK_INT(queue_submit(q, NULL, "x", "alice", NULL, bad, NULL, err, sizeof err), ERR_INVALID);
    CHECK(bad[0] == '\0', "no id on failure");
    queue_close(q);

    /* Durability across close/reopen: every field as written. */
    q = open_q(path);
    struct job_row r;
    CHECK_INT(queue_get(q, id, &r, err, sizeof err), 0);
    CHECK(!strcmp(r.id, id), "id %s", r.id);
    CHECK(!strcmp(r.name, "first"), "name '%s'", r.name);
    CHECK(!strcmp(r.owner, "alice"), "owner '%s'", r.owner);
    CHECK(!strcmp(r.request, REQ), "request '%s'", r.request);
    CHECK(!strcmp(r.stages, "[]"), "stages '%s'", r.stages);
    CHECK(!strcmp(r.stage, ""), "stage '%s'", r.stage);
    CHECK_INT(r.status, JOB_QUEUED);
    CHECK_INT(r.attempts, 0);
    CHECK_INT(r.cancel_requested, 0);
    CHECK_INT(r.files_deleted, 0);
    CHECK(r.result == NULL && r.error == NULL, "no result, no error");
    CHECK(r.started_at == 0 && r.finished_at == 0, "not started %f %f", r.started_at,
          r.finished_at);
    double now = (double)time(NULL);
    CHECK(r.created_at > now - 60 && r.created_at < now + 60, "created_at %f", r.created_at);
    job_row_free(&r);
    if (queue_get(q, id2, &r, err, sizeof err) == 0) {
        CHECK(!strcmp(r.name, "") && !strcmp(r.owner, ""), "NULL name/owner stored as ''");
        job_row_free(&r);
    } else {
        CHECK(0, "get %s: %s", id2, err);
    }

    CHECK_INT(queue_get(q, "123e4567-e89b-42d3-a456-426614174000", &r, err, sizeof err),
              ERR_NOTFOUND);
    CHECK_INT(queue_get(q, "not-an-id", &r, err, sizeof err), ERR_NOTFOUND);
    CHECK(strstr(err, "not a job id") != NULL, "message '%s'", err);
    CHECK_INT(count_of(q, JOB_QUEUED), 2);
    check_consistent(q, path, "basic");
    queue_close(q);
}

/* queue_submission_row is what queue_get reads right after the commit, field
 * for field, for batches with and without idempotency keys; a replay has no
 * row of its own. */
static void test_submission_row(void)
{
    char path[256];
    db_path(path, sizeof path, "subrow");
    struct queue *q = open_q(path);
    struct queue_submission subs[4] = {
        {.request_json = REQ, .name = "a", .owner = "alice"},
        {.request_json = REQ, .name = NULL, .owner = NULL},
        {.request_json = "{\"model\":\"x\"}", .name = "k", .owner = "bob", .idem_key = "k1"},
        {.request_json = "[1]", .name = "bad", .owner = "bob"},
    };
    for (int pass = 0; pass < 2; pass++) {
        /* pass 0: a batch with a key (one statement each on PostgreSQL); 1: no key */
        size_t n = pass ? 2 : 4;
        CHECK_INT(queue_submit_many(q, subs, n, err, sizeof err), 0);
        CHECK_INT(subs[3 * !pass].rc, pass ? 0 : ERR_INVALID);
        for (size_t i = 0; i < n; i++) {
            struct job_row a, b;
            if (subs[i].rc) {
                CHECK_INT(queue_submission_row(&subs[i], &a, err, sizeof err), ERR_INVALID);
                continue;
            }
            CHECK_INT(subs[i].existed, 0);
            CHECK_INT(queue_submission_row(&subs[i], &a, err, sizeof err), 0);
            CHECK_INT(queue_get(q, subs[i].id, &b, err, sizeof err), 0);
            CHECK(!strcmp(a.id, b.id) && !strcmp(a.name, b.name) && !strcmp(a.owner, b.owner) &&
                      !strcmp(a.stage, b.stage) && !strcmp(a.request, b.request) &&
                      !strcmp(a.stages, b.stages) && !strcmp(a.claimed_by, b.claimed_by),
                  "pass %d sub %zu: strings differ (%s/%s, %s/%s)", pass, i, a.name, b.name,
                  a.request, b.request);
            CHECK(a.status == b.status && a.progress == b.progress && a.attempts == b.attempts &&
                      a.cancel_requested == b.cancel_requested && a.created_at == b.created_at &&
                      a.started_at == b.started_at && a.finished_at == b.finished_at &&
                      a.files_deleted == b.files_deleted && a.fence == b.fence && !a.result &&
                      !b.result && !a.error && !b.error,
                  "pass %d sub %zu: created_at %.17g vs %.17g, status %d vs %d", pass, i,
                  a.created_at, b.created_at, (int)a.status, (int)b.status);
            CHECK(a.created_at > 0, "created_at set");
            job_row_free(&a);
            job_row_free(&b);
        }
    }
    /* the same key again: a replay, which has no new row */
    CHECK_INT(queue_submit_many(q, &subs[2], 1, err, sizeof err), 0);
    struct job_row r;
    CHECK_INT(subs[2].existed, 1);
    CHECK_INT(queue_submission_row(&subs[2], &r, err, sizeof err), ERR_INVALID);
    queue_close(q);
}

static void test_idempotency(void)
{
    char path[256], a[JOB_ID_LEN + 1], b[JOB_ID_LEN + 1], c[JOB_ID_LEN + 1];
    db_path(path, sizeof path, "idem");
    struct queue *q = open_q(path);
    int existed = -1;
    CHECK_INT(queue_submit(q, REQ, "j", "alice", "key-1", a, &existed, err, sizeof err), 0);
    CHECK_INT(existed, 0);
    CHECK_INT(queue_submit(q, REQ, "j", "alice", "key-1", b, &existed, err, sizeof err), 0);
    CHECK_INT(existed, 1);
    CHECK(!strcmp(a, b), "same key, same owner: same job (%s vs %s)", a, b);
    CHECK_INT(queue_submit(q, REQ, "j", "bob", "key-1", c, &existed, err, sizeof err), 0);
    CHECK_INT(existed, 0);
    CHECK(strcmp(a, c) != 0, "another owner's key is another job");
    CHECK_INT(queue_submit(q, REQ, "j", "alice", NULL, b, &existed, err, sizeof err), 0);
    CHECK_INT(queue_submit(q, REQ, "j", "alice", NULL, c, &existed, err, sizeof err), 0);
    CHECK(strcmp(b, c) != 0 && existed == 0, "no key: always a new job");
    CHECK_INT(queue_submit(q, REQ, "j", "alice", "", c, &existed, err, sizeof err), 0);
    CHECK_INT(existed, 0);
    CHECK_INT(total(q), 5);
    queue_close(q);
}

/* ---- list and cursors ---- */

static void test_list_pages(void)
{
    char path[256], ids[40][JOB_ID_LEN + 1], extra[JOB_ID_LEN + 1];
    db_path(path, sizeof path, "list");
    struct queue *q = open_q(path);
    for (int i = 0; i < 25; i++) {
        char name[16];
        snprintf(name, sizeof name, "job%02d", i);
        submit(q, name, ids[i]);
    }
    struct job_row *rows = NULL;
    size_t n = 0;
    char cursor[64], next[64];
    int seen[25] = {0}, order_ok = 1, expect = 24, pages = 0;
    cursor[0] = '\0';
    do {
        CHECK_INT(queue_list(q, -1, 10, cursor, &rows, &n, next, err, sizeof err), 0);
        pages++;
        for (size_t i = 0; i < n; i++) {
            int k = atoi(rows[i].name + 3);
            if (k != expect--) order_ok = 0;
            if (k >= 0 && k < 25) seen[k]++;
            job_row_free(&rows[i]);
        }
        free(rows);
        if (pages == 1) {
            CHECK_INT(n, 10);
            /* New jobs arrive while the client pages: they are newer than
             * the cursor, so the later pages are unchanged. */
            for (int i = 0; i < 5; i++)
                submit(q, "late", extra);
        }
        snprintf(cursor, sizeof cursor, "%s", next);
    } while (cursor[0] && pages < 10);
    CHECK_INT(pages, 3);
    CHECK(order_ok, "newest first, stable across inserts");
    int once = 1;
    for (int i = 0; i < 25; i++)
        once &= seen[i] == 1;
    CHECK(once, "each of the 25 first jobs listed exactly once");

    /* The first page now starts with the late jobs. */
    CHECK_INT(queue_list(q, -1, 5, "", &rows, &n, next, err, sizeof err), 0);
    CHECK_INT(n, 5);
    CHECK(n == 5 && !strcmp(rows[0].name, "late") && !strcmp(rows[4].name, "late"), "late first");
    for (size_t i = 0; i < n; i++)
        job_row_free(&rows[i]);
    free(rows);

    /* An exact last page has no next cursor. */
    CHECK_INT(queue_list(q, -1, 30, NULL, &rows, &n, next, err, sizeof err), 0);
    CHECK_INT(n, 30);
    CHECK(next[0] == '\0', "no next page after all 30: '%s'", next);
    for (size_t i = 0; i < n; i++)
        job_row_free(&rows[i]);
    free(rows);

    /* Limits clamp to 1..QUEUE_PAGE_MAX. */
    CHECK_INT(queue_list(q, -1, 0, NULL, &rows, &n, next, err, sizeof err), 0);
    CHECK_INT(n, 1);
    CHECK(next[0] != '\0', "a next cursor after 1 of 30");
    for (size_t i = 0; i < n; i++)
        job_row_free(&rows[i]);
    free(rows);
    CHECK_INT(queue_list(q, -1, 100000, NULL, &rows, &n, next, err, sizeof err), 0);
    CHECK_INT(n, 30);
    for (size_t i = 0; i < n; i++)
        job_row_free(&rows[i]);
    free(rows);

    /* Status filter. */
    struct job_row r;
    CHECK_INT(queue_claim(q, LEASE_S, &r, err, sizeof err), 0);
    CHECK(!strcmp(r.id, ids[0]), "claimed the oldest");
    job_row_free(&r);
    CHECK_INT(queue_list(q, JOB_RUNNING, 50, NULL, &rows, &n, next, err, sizeof err), 0);
    CHECK(n == 1 && !strcmp(rows[0].id, ids[0]), "one running: %zu", n);
    for (size_t i = 0; i < n; i++)
        job_row_free(&rows[i]);
    free(rows);
    CHECK_INT(queue_list(q, JOB_QUEUED, 50, NULL, &rows, &n, next, err, sizeof err), 0);
    CHECK_INT(n, 29);
    for (size_t i = 0; i < n; i++)
        job_row_free(&rows[i]);
    free(rows);
    CHECK_INT(queue_list(q, JOB_FAILED, 50, NULL, &rows, &n, next, err, sizeof err), 0);
    CHECK(n == 0 && rows == NULL && next[0] == '\0', "no failed jobs");

    /* Bad input. */
    CHECK_INT(queue_list(q, JOB_STATUS_COUNT, 5, NULL, &rows, &n, next, err, sizeof err),
              ERR_INVALID);
    const char *bad[] = {"zz",
                         "0123456789abcdef0123456789abcdeg",
                         "0123456789ABCDEF0123456789abcdef",
                         "7ff0000000000000"
                         "0000000000000001", /* inf */
                         "41d9000000000000"
                         "0000000000000000", /* rowid 0 */
                         "41d90000000000000000000000000001x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = queue_list(q, -1, 5, bad[i], &rows, &n, next, err, sizeof err);
        CHECK(rc == ERR_INVALID && rows == NULL && n == 0, "cursor '%s': rc %d", bad[i], rc);
    }
    check_consistent(q, path, "list");
    queue_close(q);
}

/* ---- the worker's transitions ---- */

static void test_claim_stages_finish(void)
{
    char path[256], a[JOB_ID_LEN + 1], b[JOB_ID_LEN + 1], c[JOB_ID_LEN + 1];
    db_path(path, sizeof path, "claim");
    struct queue *q = open_q(path);
    struct job_row r;
    CHECK_INT(queue_claim(q, LEASE_S, &r, err, sizeof err), ERR_NOTFOUND);
    submit(q, "a", a);
    submit(q, "b", b);
    submit(q, "c", c);
    CHECK_INT(queue_set_stage(q, a, F(q, a), "loading", err, sizeof err), ERR_INVALID); /* queued */
    CHECK_INT(queue_set_progress(q, a, F(q, a), 0.5, err, sizeof err), ERR_INVALID);
    CHECK_INT(queue_finish(q, a, F(q, a), JOB_SUCCEEDED, NULL, NULL, err, sizeof err), ERR_INVALID);

    CHECK_INT(queue_claim(q, LEASE_S, &r, err, sizeof err), 0);
    CHECK(!strcmp(r.id, a), "oldest first: %s", r.id);
    CHECK_INT(r.status, JOB_RUNNING);
    CHECK(r.started_at > 0, "started_at set");
    CHECK_INT(r.attempts, 0);
    CHECK(!strcmp(r.stage, "") && !strcmp(r.stages, "[]"), "no stage yet");
    job_row_free(&r);

    CHECK_INT(queue_set_stage(q, a, F(q, a), "loading", err, sizeof err), 0);
    CHECK_INT(queue_set_progress(q, a, F(q, a), 0.25, err, sizeof err), 0);
    CHECK_INT(queue_set_stage(q, a, F(q, a), "pruning", err, sizeof err), 0);
    CHECK_INT(queue_set_progress(q, a, F(q, a), 7.0, err, sizeof err), 0); /* clamped */
    CHECK_INT(queue_set_progress(q, a, F(q, a), 0.0 / 0.0, err, sizeof err), ERR_INVALID);
    CHECK_INT(queue_set_stage(q, a, F(q, a), "", err, sizeof err), ERR_INVALID);
    CHECK_INT(queue_get(q, a, &r, err, sizeof err), 0);
    CHECK(!strcmp(r.stage, "pruning"), "stage '%s'", r.stage);
    CHECK(r.progress == 1.0, "progress clamped to 1: %f", r.progress);
    json_error_t je;
    json_t *s = json_loads(r.stages, 0, &je);
    CHECK(json_is_array(s) && json_array_size(s) == 2, "two stages: %s", r.stages);
    if (json_array_size(s) == 2) {
        json_t *s0 = json_array_get(s, 0), *s1 = json_array_get(s, 1);
        CHECK(!strcmp(json_string_value(json_object_get(s0, "stage")), "loading"), "stage 0");
        CHECK(json_is_real(json_object_get(s0, "finished_at")), "loading closed");
        CHECK(json_real_value(json_object_get(s0, "started_at")) <=
                  json_real_value(json_object_get(s0, "finished_at")),
              "loading started before it finished");
        CHECK(json_is_null(json_object_get(s1, "finished_at")), "pruning open: %s", r.stages);
    }
    json_decref(s);
    job_row_free(&r);

    CHECK_INT(queue_finish(q, a, F(q, a), JOB_QUEUED, NULL, NULL, err, sizeof err), ERR_INVALID);
    CHECK_INT(queue_finish(q, a, F(q, a), JOB_SUCCEEDED, "not json", NULL, err, sizeof err),
              ERR_INVALID);
    CHECK_INT(queue_finish(q, a, F(q, a), JOB_SUCCEEDED, "{\"ok\":true}", NULL, err, sizeof err),
              0);
    CHECK_INT(queue_get(q, a, &r, err, sizeof err), 0);
    CHECK_INT(r.status, JOB_SUCCEEDED);
    CHECK(r.finished_at >= r.started_at && r.finished_at > 0, "finished_at");
    CHECK(r.result && !strcmp(r.result, "{\"ok\":true}"), "result %s", r.result);
    CHECK(r.progress == 1.0, "progress 1 on success");
    s = json_loads(r.stages, 0, &je);
    json_t *last = json_array_get(s, json_array_size(s) - 1);
    CHECK(json_is_real(json_object_get(last, "finished_at")), "finish closes the last stage: %s",
          r.stages);
    json_decref(s);
    job_row_free(&r);
    CHECK_INT(queue_finish(q, a, F(q, a), JOB_FAILED, NULL, "x", err, sizeof err), ERR_INVALID);
    CHECK_INT(queue_set_stage(q, a, F(q, a), "saving", err, sizeof err), ERR_INVALID);

    CHECK_INT(queue_claim(q, LEASE_S, &r, err, sizeof err), 0);
    CHECK(!strcmp(r.id, b), "then b: %s", r.id);
    job_row_free(&r);
    CHECK_INT(queue_finish(q, b, F(q, b), JOB_FAILED, NULL, "model not found", err, sizeof err), 0);
    CHECK_INT(queue_get(q, b, &r, err, sizeof err), 0);
    CHECK(r.status == JOB_FAILED && r.error && !strcmp(r.error, "model not found"), "failed");
    CHECK(r.result == NULL, "no result");
    job_row_free(&r);
    CHECK_INT(queue_claim(q, LEASE_S, &r, err, sizeof err), 0);
    CHECK(!strcmp(r.id, c), "then c: %s", r.id);
    job_row_free(&r);
    CHECK_INT(queue_claim(q, LEASE_S, &r, err, sizeof err), ERR_NOTFOUND);
    CHECK_INT(count_of(q, JOB_RUNNING), 1);
    CHECK_INT(count_of(q, JOB_SUCCEEDED), 1);
    CHECK_INT(count_of(q, JOB_FAILED), 1);
    CHECK_INT(count_of(q, JOB_QUEUED), 0);
    check_consistent(q, path, "claim");
    queue_close(q);
}

static void test_cancel_requeue_delete(void)
{
    char path[256], a[JOB_ID_LEN + 1], b[JOB_ID_LEN + 1];
    const char *missing = "123e4567-e89b-42d3-a456-426614174000";
    db_path(path, sizeof path, "cancel");
    struct queue *q = open_q(path);
    struct job_row r;
    int req = -1;
    submit(q, "a", a);
    submit(q, "b", b);

    /* Queued: cancelled at once. */
    CHECK_INT(queue_cancel(q, a, err, sizeof err), 0);
    CHECK_INT(queue_get(q, a, &r, err, sizeof err), 0);
    CHECK(r.status == JOB_CANCELLED && r.finished_at > 0, "cancelled at once");
    job_row_free(&r);
    CHECK_INT(queue_cancel(q, a, err, sizeof err), ERR_INVALID);
    CHECK_INT(queue_cancel(q, missing, err, sizeof err), ERR_NOTFOUND);
    CHECK_INT(queue_cancel(q, "bogus", err, sizeof err), ERR_NOTFOUND);

    /* Running: only requested; the worker finishes it as cancelled. */
    CHECK_INT(queue_claim(q, LEASE_S, &r, err, sizeof err), 0);
    CHECK(!strcmp(r.id, b), "claimed b (a is cancelled)");
    job_row_free(&r);
    CHECK_INT(queue_cancel_requested(q, b, &req, err, sizeof err), 0);
    CHECK_INT(req, 0);
    CHECK_INT(queue_cancel(q, b, err, sizeof err), 0);
    CHECK_INT(queue_cancel_requested(q, b, &req, err, sizeof err), 0);
    CHECK_INT(req, 1);
    CHECK_INT(count_of(q, JOB_RUNNING), 1);
    CHECK_INT(queue_cancel_requested(q, missing, &req, err, sizeof err), ERR_NOTFOUND);

    /* Delete: only finished jobs. */
    CHECK_INT(queue_delete(q, b, err, sizeof err), ERR_INVALID); /* running */
    CHECK_INT(queue_finish(q, b, F(q, b), JOB_CANCELLED, NULL, "cancelled", err, sizeof err), 0);
    CHECK_INT(queue_delete(q, b, err, sizeof err), 0);
    CHECK_INT(queue_get(q, b, &r, err, sizeof err), ERR_NOTFOUND);
    CHECK_INT(queue_delete(q, b, err, sizeof err), ERR_NOTFOUND);
    CHECK_INT(queue_delete(q, "bogus", err, sizeof err), ERR_NOTFOUND);
    char c[JOB_ID_LEN + 1];
    submit(q, "c", c);
    CHECK_INT(queue_delete(q, c, err, sizeof err), ERR_INVALID); /* queued */

    /* Requeue: running only; attempts counted when asked. */
    CHECK_INT(queue_requeue(q, c, F(q, c), 0, err, sizeof err), ERR_INVALID);
    CHECK_INT(queue_claim(q, LEASE_S, &r, err, sizeof err), 0);
    job_row_free(&r);
    CHECK_INT(queue_set_stage(q, c, F(q, c), "loading", err, sizeof err), 0);
    CHECK_INT(queue_set_progress(q, c, F(q, c), 0.4, err, sizeof err), 0);
    CHECK_INT(queue_requeue(q, c, F(q, c), 0, err, sizeof err), 0);
    CHECK_INT(queue_get(q, c, &r, err, sizeof err), 0);
    CHECK(r.status == JOB_QUEUED && r.attempts == 0 && r.progress == 0 && r.started_at == 0 &&
              !strcmp(r.stage, ""),
          "SIGTERM requeue: status %d attempts %d progress %f", r.status, r.attempts, r.progress);
    job_row_free(&r);
    CHECK_INT(queue_claim(q, LEASE_S, &r, err, sizeof err), 0);
    CHECK(!strcmp(r.stages, "[]"), "a new run starts with no stages: %s", r.stages);
    job_row_free(&r);
    CHECK_INT(queue_requeue(q, c, F(q, c), 1, err, sizeof err), 0);
    CHECK_INT(queue_get(q, c, &r, err, sizeof err), 0);
    CHECK(r.status == JOB_QUEUED && r.attempts == 1, "counted requeue: attempts %d", r.attempts);
    job_row_free(&r);
    CHECK_INT(count_of(q, JOB_CANCELLED), 1);
    CHECK_INT(count_of(q, JOB_QUEUED), 1);
    CHECK_INT(total(q), 2);
    check_consistent(q, path, "cancel");
    queue_close(q);
}

static void test_recover(void)
{
    char path[256], ids[4][JOB_ID_LEN + 1];
    db_path(path, sizeof path, "recover");
    struct queue *q = open_q(path);
    struct job_row r;
    int requeued = -1, failed = -1;
    for (int i = 0; i < 4; i++)
        submit(q, "r", ids[i]);
    /* ids[i] gets i counted attempts, then ids[0..2] run; ids[3] stays queued.
     * Claims take the oldest queued job, so they come back in id order. */
    const int rounds[][3] = {{0, 1, 2}, {1, 2, -1}, {2, -1, -1}};
    /* PostgreSQL recovers only jobs whose lease expired (other daemons may
     * run the rest): one-second leases, left to expire. */
    int lease = pg_base ? 1 : LEASE_S;
    for (int k = 0; k < 3; k++) {
        for (int j = 0; j < 3 && rounds[k][j] >= 0; j++) {
            CHECK_INT(queue_claim(q, lease, &r, err, sizeof err), 0);
            CHECK(!strcmp(r.id, ids[rounds[k][j]]), "round %d claims job %d", k, rounds[k][j]);
            job_row_free(&r);
        }
        for (int i = k + 1; k < 2 && i < 3; i++) /* interrupted again: counted */
            CHECK_INT(queue_requeue(q, ids[i], F(q, ids[i]), 1, err, sizeof err), 0);
    }
    for (int i = 0; i < 3; i++)
        CHECK_INT(queue_set_stage(q, ids[i], F(q, ids[i]), "pruning", err, sizeof err), 0);
    CHECK_INT(count_of(q, JOB_RUNNING), 3);
    if (pg_base) usleep(1500 * 1000);
    CHECK_INT(queue_recover(q, 0, &requeued, &failed, err, sizeof err), ERR_INVALID);
    CHECK_INT(queue_recover(q, 3, &requeued, &failed, err, sizeof err), 0);
    CHECK_INT(requeued, 2);
    CHECK_INT(failed, 1);
    for (int i = 0; i < 3; i++) {
        CHECK_INT(queue_get(q, ids[i], &r, err, sizeof err), 0);
        CHECK_INT(r.attempts, i + 1);
        if (i < 2) {
            CHECK(r.status == JOB_QUEUED && r.started_at == 0 && !strcmp(r.stage, ""),
                  "job %d re-queued: status %s", i, job_status_name(r.status));
        } else {
            CHECK_INT(r.status, JOB_FAILED);
            CHECK(r.error && !strcmp(r.error, "interrupted 3 times (daemon died while it ran); "
                                              "giving up"),
                  "error '%s'", r.error ? r.error : "(null)");
            CHECK(r.finished_at > 0, "finished_at");
            CHECK(strstr(r.stages, "null") == NULL, "stages closed: %s", r.stages);
        }
        job_row_free(&r);
    }
    CHECK_INT(queue_get(q, ids[3], &r, err, sizeof err), 0);
    CHECK(r.status == JOB_QUEUED && r.attempts == 0, "untouched queued job");
    job_row_free(&r);
    CHECK_INT(queue_recover(q, 3, &requeued, &failed, err, sizeof err), 0);
    CHECK(requeued == 0 && failed == 0, "nothing left running: %d %d", requeued, failed);
    check_consistent(q, path, "recover");
    queue_close(q);
}

static void test_retention(void)
{
    char path[256], a[JOB_ID_LEN + 1], b[JOB_ID_LEN + 1], c[JOB_ID_LEN + 1];
    db_path(path, sizeof path, "retention");
    struct queue *q = open_q(path);
    struct job_row r;
    char **ids = NULL;
    size_t n = 0;
    submit(q, "a", a);
    submit(q, "b", b);
    submit(q, "c", c);
    for (int i = 0; i < 2; i++) {
        CHECK_INT(queue_claim(q, LEASE_S, &r, err, sizeof err), 0);
        CHECK_INT(queue_finish(q, r.id, F(q, r.id), i ? JOB_FAILED : JOB_SUCCEEDED, NULL, NULL, err,
                               sizeof err),
                  0);
        job_row_free(&r);
    }
    double later = (double)time(NULL) + 60;
    CHECK_INT(queue_expired(q, later, &ids, &n, err, sizeof err), 0);
    CHECK(n == 2 && !strcmp(ids[0], a) && !strcmp(ids[1], b), "a, b expired (%zu)", n);
    queue_ids_free(ids, n);
    CHECK_INT(queue_expired(q, 1.0, &ids, &n, err, sizeof err), 0);
    CHECK(n == 0 && ids == NULL, "nothing finished before 1970: %zu", n);
    CHECK_INT(queue_mark_files_deleted(q, a, err, sizeof err), 0);
    CHECK_INT(queue_mark_files_deleted(q, c, err, sizeof err), ERR_INVALID); /* queued */
    CHECK_INT(queue_mark_files_deleted(q, "nope", err, sizeof err), ERR_NOTFOUND);
    CHECK_INT(queue_expired(q, later, &ids, &n, err, sizeof err), 0);
    CHECK(n == 1 && !strcmp(ids[0], b), "only b left: %zu", n);
    queue_ids_free(ids, n);
    CHECK_INT(queue_get(q, a, &r, err, sizeof err), 0);
    CHECK(r.files_deleted == 1 && r.status == JOB_SUCCEEDED, "row stays, files_deleted");
    job_row_free(&r);
    queue_close(q);
}

/* ---- migrations ---- */

static void test_migrations_recorded(void)
{
    char path[256];
    db_path(path, sizeof path, "migr");
    struct queue *q = open_q(path);
    queue_close(q);
    CHECK_INT(sql_int(path, "SELECT count(*) FROM schema_migrations"), db_migration_count);
    CHECK_INT(sql_int(path, "SELECT max(version) FROM schema_migrations"),
              db_migrations[db_migration_count - 1].version);
    long long applied = sql_int(path, "SELECT sum(CAST(applied_at * 1000 AS INTEGER)) "
                                      "FROM schema_migrations");
    CHECK_INT(sql_int(path, "SELECT count(*) FROM pragma_table_info('jobs') "
                            "WHERE name = 'files_deleted'"),
              1);
    CHECK_INT(sql_int(path, "SELECT journal_mode = 'wal' FROM pragma_journal_mode"), 1);
    usleep(20000);
    q = open_q(path); /* nothing re-applied (0002's ALTER TABLE would fail twice) */
    queue_close(q);
    CHECK_INT(sql_int(path, "SELECT count(*) FROM schema_migrations"), db_migration_count);
    CHECK_INT(sql_int(path, "SELECT sum(CAST(applied_at * 1000 AS INTEGER)) "
                            "FROM schema_migrations"),
              applied);

    /* A database from a newer prunerd is refused, and so is a renamed migration. */
    sqlite3 *raw = NULL;
    CHECK_INT(sqlite3_open(path, &raw), SQLITE_OK);
    CHECK_INT(sqlite3_exec(raw, "INSERT INTO schema_migrations VALUES (9999, 'future', 0)", NULL,
                           NULL, NULL),
              SQLITE_OK);
    q = queue_open(path, err, sizeof err);
    CHECK(q == NULL && strstr(err, "newer prunerd"), "newer schema refused: %s", err);
    queue_close(q);
    CHECK_INT(sqlite3_exec(raw,
                           "DELETE FROM schema_migrations WHERE version = 9999; "
                           "UPDATE schema_migrations SET name = 'renamed' WHERE version = 1",
                           NULL, NULL, NULL),
              SQLITE_OK);
    q = queue_open(path, err, sizeof err);
    CHECK(q == NULL && strstr(err, "renamed"), "renamed migration refused: %s", err);
    queue_close(q);
    sqlite3_close(raw);
}

static void test_migration_atomic(void)
{
    char path[256];
    db_path(path, sizeof path, "migr_atomic");
    static const struct db_migration good[] = {
        {1, "one", "CREATE TABLE t1 (x INTEGER);"},
    };
    static const struct db_migration bad[] = {
        {1, "one", "CREATE TABLE t1 (x INTEGER);"},
        {2, "two", "CREATE TABLE t2 (x INTEGER); INSERT INTO t1 VALUES (1); SELECT nope FROM t9;"},
    };
    static const struct db_migration fixed[] = {
        {1, "one", "CREATE TABLE t1 (x INTEGER);"},
        {2, "two", "CREATE TABLE t2 (x INTEGER); INSERT INTO t1 VALUES (1);"},
    };
    struct db_options o = {.migrations = good, .migration_count = 1};
    struct db *db = db_open(path, &o, err, sizeof err);
    CHECK(db != NULL, "db_open: %s", err);
    if (!db) return;
    CHECK_INT(sql_int(path, "SELECT count(*) FROM schema_migrations"), 1);
    int rc = db_migrate(db, bad, 2, err, sizeof err);
    CHECK(rc == ERR_DB && strstr(err, "migration 0002_two"), "failing migration: %d %s", rc, err);
    db_close(db);
    CHECK_INT(sql_int(path, "SELECT count(*) FROM sqlite_master WHERE name = 't2'"), 0);
    CHECK_INT(sql_int(path, "SELECT count(*) FROM t1"), 0);
    CHECK_INT(sql_int(path, "SELECT count(*) FROM schema_migrations WHERE version = 2"), 0);
    db = db_open(path, &o, err, sizeof err);
    CHECK(db != NULL, "reopen: %s", err);
    if (!db) return;
    CHECK_INT(db_migrate(db, fixed, 2, err, sizeof err), 0);
    CHECK_INT(db_migrate(db, fixed, 2, err, sizeof err), 0); /* again: nothing to do */
    static const struct db_migration unordered[] = {
        {2, "two", ""},
        {1, "one", ""},
    };
    CHECK_INT(db_migrate(db, unordered, 2, err, sizeof err), ERR_INTERNAL);
    db_close(db);
    CHECK_INT(sql_int(path, "SELECT count(*) FROM t1"), 1);
    CHECK_INT(sql_int(path, "SELECT count(*) FROM sqlite_master WHERE name = 't2'"), 1);
}

/* ---- concurrency ---- */

#define CLAIM_JOBS 200

struct claimer {
    const char *path;
    pthread_barrier_t *start; /* both connections open before either claims */
    char (*ids)[JOB_ID_LEN + 1];
    int n, errors;
    char err[256];
};

static void *claim_all(void *arg)
{
    struct claimer *c = arg;
    struct queue *q = queue_open(c->path, c->err, sizeof c->err);
    pthread_barrier_wait(c->start);
    if (!q) {
        c->errors++;
        return NULL;
    }
    struct job_row r;
    int rc;
    while ((rc = queue_claim(q, LEASE_S, &r, c->err, sizeof c->err)) == 0) {
        if (c->n < CLAIM_JOBS) memcpy(c->ids[c->n], r.id, sizeof r.id);
        c->n++;
        job_row_free(&r);
        /* A worker runs the job before it claims again.  Without a pause
         * the lock holder re-takes the write lock before the waiter's
         * busy handler wakes, and one thread claims everything. */
        usleep(300);
    }
    if (rc != ERR_NOTFOUND) c->errors++;
    queue_close(q);
    return NULL;
}

static int cmp_id(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void test_claim_concurrent(void)
{
    char path[256];
    db_path(path, sizeof path, "concurrent");
    struct queue *q = open_q(path);
    static char want[CLAIM_JOBS][JOB_ID_LEN + 1], got[2 * CLAIM_JOBS][JOB_ID_LEN + 1];
    for (int i = 0; i < CLAIM_JOBS; i++)
        submit(q, "c", want[i]);
    struct claimer c[2];
    pthread_t t[2];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, 2);
    for (int i = 0; i < 2; i++) {
        memset(&c[i], 0, sizeof c[i]);
        c[i].path = path;
        c[i].start = &start;
        c[i].ids = got + i * CLAIM_JOBS;
        CHECK_INT(pthread_create(&t[i], NULL, claim_all, &c[i]), 0);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&start);
    /* Both really raced for the queue (else this tests nothing). */
    CHECK(c[0].n > 0 && c[1].n > 0, "both threads claimed: %d, %d", c[0].n, c[1].n);
    CHECK(c[0].errors == 0 && c[1].errors == 0, "claim errors: %s / %s", c[0].err, c[1].err);
    CHECK_INT(c[0].n + c[1].n, CLAIM_JOBS);
    printf("concurrent claims: thread 0 took %d, thread 1 took %d\n", c[0].n, c[1].n);
    if (c[0].n + c[1].n == CLAIM_JOBS) {
        memmove(got[c[0].n], got[CLAIM_JOBS], (size_t)c[1].n * sizeof got[0]);
        qsort(got, CLAIM_JOBS, sizeof got[0], cmp_id);
        qsort(want, CLAIM_JOBS, sizeof want[0], cmp_id);
        int dup = 0, same = 1;
        for (int i = 0; i < CLAIM_JOBS; i++) {
            if (i && !strcmp(got[i], got[i - 1])) dup++;
            same &= !strcmp(got[i], want[i]);
        }
        CHECK_INT(dup, 0);
        CHECK(same, "the claimed ids are exactly the submitted ones");
    }
    CHECK_INT(count_of(q, JOB_RUNNING), CLAIM_JOBS);
    CHECK_INT(count_of(q, JOB_QUEUED), 0);
    check_consistent(q, path, "concurrent");
    queue_close(q);
}

/* ---- fault injection ---- */

struct fault {
    const char *match; /* only statements containing this (NULL: all) */
    int nth;           /* fail the nth matching call (1-based); 0: never */
    int code;
    int sticky; /* keep failing after the nth (a disk that stays full) */
    int calls, fired;
    enum db_io_op op; /* for the io hook */
};

static int fault_fire(struct fault *f)
{
    if (!f->nth) return 0;
    f->calls++;
    if (f->calls == f->nth || (f->sticky && f->calls > f->nth)) {
        f->fired++;
        return f->code;
    }
    return 0;
}

static int hook_step(void *ud, const char *sql)
{
    struct fault *f = ud;
    if (f->match && !strstr(sql, f->match)) return 0;
    return fault_fire(f);
}

static int hook_io(void *ud, enum db_io_op op)
{
    struct fault *f = ud;
    if (op != f->op) return 0;
    return fault_fire(f);
}

static struct queue *open_faulty(const char *path, struct fault *f, int io, int busy_ms)
{
    struct db_hooks h = {.ud = f};
    if (io)
        h.io = hook_io;
    else
        h.step = hook_step;
    struct db_options o = {.busy_timeout_ms = busy_ms, .hooks = &h};
    struct queue *q = queue_open_with(path, &o, err, sizeof err);
    CHECK(q != NULL, "open with hooks: %s", err);
    return q;
}

static void arm(struct fault *f, const char *match, int nth, int code, int sticky)
{
    f->match = match;
    f->nth = nth;
    f->code = code;
    f->sticky = sticky;
    f->calls = f->fired = 0;
}

static void test_fault_busy(void)
{
    char path[256], id[JOB_ID_LEN + 1];
    db_path(path, sizeof path, "busy");
    struct queue *q = open_q(path);
    submit(q, "before", id);
    queue_close(q);

    /* A real SQLITE_BUSY: another connection holds the write lock. */
    struct fault f = {0};
    q = open_faulty(path, &f, 0, 100);
    if (!q) return;
    sqlite3 *raw = NULL;
    CHECK_INT(sqlite3_open(path, &raw), SQLITE_OK);
    CHECK_INT(sqlite3_exec(raw,
                           "BEGIN IMMEDIATE; INSERT INTO jobs (id, status, created_at, "
                           "updated_at, request) VALUES ('00000000-0000-4000-8000-"
                           "000000000000', 'queued', 0, 0, '{}')",
                           NULL, NULL, NULL),
              SQLITE_OK);
    int rc = queue_submit(q, REQ, "blocked", "alice", NULL, id, NULL, err, sizeof err);
    CHECK(rc == ERR_DB && strstr(err, "locked"), "busy submit: rc %d: %s", rc, err);
    struct job_row r;
    CHECK_INT(queue_claim(q, LEASE_S, &r, err, sizeof err), ERR_DB);
    CHECK_INT(sqlite3_exec(raw, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(raw);
    CHECK_INT(total(q), 1);

    /* Injected SQLITE_BUSY at COMMIT: the insert is rolled back. */
    arm(&f, "COMMIT", 1, SQLITE_BUSY, 0);
    rc = queue_submit(q, REQ, "lost", "alice", "k1", id, NULL, err, sizeof err);
    CHECK(rc == ERR_DB && f.fired == 1 && strstr(err, "locked"), "busy commit: %d %s", rc, err);
    CHECK(id[0] == '\0', "no id handed out for a job not committed");
    CHECK_INT(total(q), 1);
    int existed = -1;
    CHECK_INT(queue_submit(q, REQ, "again", "alice", "k1", id, &existed, err, sizeof err), 0);
    CHECK_INT(existed, 0); /* the key was not taken by the rolled-back insert */
    CHECK_INT(total(q), 2);

    /* Injected SQLITE_BUSY at BEGIN of a claim: nothing claimed. */
    arm(&f, "BEGIN", 1, SQLITE_BUSY, 0);
    CHECK_INT(queue_claim(q, LEASE_S, &r, err, sizeof err), ERR_DB);
    CHECK_INT(count_of(q, JOB_RUNNING), 0);
    check_consistent(q, path, "busy");
    queue_close(q);
}

static void test_fault_steps(void)
{
    char path[256], ids[3][JOB_ID_LEN + 1];
    db_path(path, sizeof path, "steps");
    struct fault f = {0};
    struct queue *q = open_faulty(path, &f, 0, 0);
    if (!q) return;
    struct job_row r;
    for (int i = 0; i < 3; i++)
        submit(q, "s", ids[i]);
    for (int i = 0; i < 3; i++) {
        CHECK_INT(queue_claim(q, LEASE_S, &r, err, sizeof err), 0);
        job_row_free(&r);
    }
    CHECK_INT(queue_set_stage(q, ids[0], F(q, ids[0]), "loading", err, sizeof err), 0);

    /* SQLITE_FULL on the UPDATE inside set_stage: stage and stages unchanged. */
    arm(&f, "UPDATE jobs SET stage", 1, SQLITE_FULL, 0);
    int rc = queue_set_stage(q, ids[0], F(q, ids[0]), "pruning", err, sizeof err);
    CHECK(rc == ERR_DB && strstr(err, "full"), "full: %d %s", rc, err);
    CHECK_INT(queue_get(q, ids[0], &r, err, sizeof err), 0);
    CHECK(!strcmp(r.stage, "loading") && strstr(r.stages, "null"), "unchanged: %s %s", r.stage,
          r.stages);
    job_row_free(&r);

    /* SQLITE_IOERR on the second job recover updates: the first is rolled back. */
    arm(&f, "UPDATE jobs SET status = 'queued', attempts", 2, SQLITE_IOERR, 0);
    int requeued = -1, failed = -1;
    rc = queue_recover(q, 3, &requeued, &failed, err, sizeof err);
    CHECK(rc == ERR_DB && f.fired == 1, "recover ioerr: %d %s", rc, err);
    CHECK(requeued == 0 && failed == 0, "no counts on failure");
    CHECK_INT(count_of(q, JOB_RUNNING), 3);
    CHECK_INT(sql_int(path, "SELECT sum(attempts) FROM jobs"), 0);
    arm(&f, NULL, 0, 0, 0);
    CHECK_INT(queue_recover(q, 3, &requeued, &failed, err, sizeof err), 0);
    CHECK_INT(requeued, 3);
    CHECK_INT(sql_int(path, "SELECT sum(attempts) FROM jobs"), 3);

    /* A failing finish, delete and cancel change nothing. */
    CHECK_INT(queue_claim(q, LEASE_S, &r, err, sizeof err), 0);
    arm(&f, "UPDATE jobs SET status = ?1", 1, SQLITE_IOERR, 0);
    CHECK_INT(queue_finish(q, r.id, F(q, r.id), JOB_SUCCEEDED, "{}", NULL, err, sizeof err),
              ERR_DB);
    CHECK_INT(count_of(q, JOB_RUNNING), 1);
    arm(&f, "COMMIT", 1, SQLITE_FULL, 0);
    CHECK_INT(queue_finish(q, r.id, F(q, r.id), JOB_SUCCEEDED, "{}", NULL, err, sizeof err),
              ERR_DB);
    CHECK_INT(count_of(q, JOB_SUCCEEDED), 0);
    CHECK_INT(queue_finish(q, r.id, F(q, r.id), JOB_SUCCEEDED, "{}", NULL, err, sizeof err), 0);
    arm(&f, "DELETE", 1, SQLITE_BUSY, 0);
    CHECK_INT(queue_delete(q, r.id, err, sizeof err), ERR_DB);
    CHECK_INT(count_of(q, JOB_SUCCEEDED), 1);
    job_row_free(&r);
    arm(&f, "UPDATE jobs SET status = 'cancelled'", 1, SQLITE_IOERR, 0);
    CHECK_INT(queue_cancel(q, ids[1], err, sizeof err), ERR_DB);
    CHECK_INT(count_of(q, JOB_CANCELLED), 0);
    arm(&f, "SELECT", 1, SQLITE_IOERR, 1); /* reads fail too */
    CHECK_INT(queue_get(q, ids[1], &r, err, sizeof err), ERR_DB);
    int64_t counts[JOB_STATUS_COUNT];
    CHECK_INT(queue_counts(q, counts, err, sizeof err), ERR_DB);
    struct job_row *rows = NULL;
    size_t n = 99;
    char next[64];
    CHECK_INT(queue_list(q, -1, 10, NULL, &rows, &n, next, err, sizeof err), ERR_DB);
    CHECK(rows == NULL && n == 0, "nothing listed on failure");
    arm(&f, NULL, 0, 0, 0);
    check_consistent(q, path, "steps");
    queue_close(q);

    /* A migration whose record fails: neither half stays; the next open applies it once. */
    char mpath[256];
    db_path(mpath, sizeof mpath, "steps_migr");
    arm(&f, "INSERT INTO schema_migrations", 2, SQLITE_FULL, 0);
    struct db_hooks h = {.ud = &f, .step = hook_step};
    struct db_options o = {.hooks = &h};
    q = queue_open_with(mpath, &o, err, sizeof err);
    CHECK(q == NULL && strstr(err, "record migration"), "open fails: %s", err);
    queue_close(q);
    CHECK_INT(sql_int(mpath, "SELECT count(*) FROM schema_migrations"), 1);
    CHECK_INT(sql_int(mpath, "SELECT count(*) FROM pragma_table_info('jobs') "
                             "WHERE name = 'files_deleted'"),
              0);
    q = open_q(mpath);
    check_consistent(q, mpath, "migration retry");
    queue_close(q);
    CHECK_INT(sql_int(mpath, "SELECT count(*) FROM schema_migrations"), db_migration_count);
}

/* Faults inside SQLite's own I/O (the VFS hook): writes and fsyncs fail. */
static void test_fault_io(void)
{
    char path[256], id[JOB_ID_LEN + 1];
    db_path(path, sizeof path, "io");
    struct fault f = {0};
    struct queue *q = open_faulty(path, &f, 1, 0);
    if (!q) return;
    submit(q, "kept", id);

    struct {
        enum db_io_op op;
        int code, sticky;
        const char *word;
    } cases[] = {
        {DB_IO_WRITE, SQLITE_FULL, 1, "full"},
        {DB_IO_WRITE, SQLITE_IOERR_WRITE, 0, "I/O"},
        {DB_IO_SYNC, SQLITE_IOERR_FSYNC, 0, "I/O"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t before = total(q);
        f.op = cases[i].op;
        arm(&f, NULL, 1, cases[i].code, cases[i].sticky);
        int rc = queue_submit(q, REQ, "lost", "alice", NULL, id, NULL, err, sizeof err);
        CHECK(rc == ERR_DB && f.fired >= 1 && strstr(err, cases[i].word),
              "io case %zu: rc %d fired %d: %s", i, rc, f.fired, err);
        arm(&f, NULL, 0, 0, 0);
        CHECK_INT(total(q), before);
        check_consistent(q, path, "io fault");
        submit(q, "after", id); /* the connection recovers */
        CHECK_INT(total(q), before + 1);
    }

    /* A claim whose WAL write fails leaves the job queued. */
    struct job_row r;
    f.op = DB_IO_WRITE;
    arm(&f, NULL, 1, SQLITE_IOERR_WRITE, 0);
    CHECK_INT(queue_claim(q, LEASE_S, &r, err, sizeof err), ERR_DB);
    arm(&f, NULL, 0, 0, 0);
    CHECK_INT(count_of(q, JOB_RUNNING), 0);
    CHECK_INT(queue_claim(q, LEASE_S, &r, err, sizeof err), 0);
    job_row_free(&r);
    int64_t n = total(q);
    queue_close(q);

    /* Nothing from the failed commits reappears after a reopen. */
    q = open_q(path);
    CHECK_INT(total(q), n);
    CHECK_INT(count_of(q, JOB_RUNNING), 1);
    CHECK_INT(sql_int(path, "SELECT count(*) FROM jobs WHERE name = 'lost'"), 0);
    check_consistent(q, path, "io reopen");
    queue_close(q);
}

/* ---- a crash: SIGKILL while the worker updates progress ---- */

static void test_crash(void)
{
    char path[256], id[JOB_ID_LEN + 1] = "";
    db_path(path, sizeof path, "crash");
    int fds[2];
    CHECK_INT(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        char e[256], jid[JOB_ID_LEN + 1];
        struct queue *q = queue_open(path, e, sizeof e);
        if (!q) _exit(2);
        for (int i = 0; i < 3; i++)
            if (queue_submit(q, REQ, "crash", "alice", NULL, jid, NULL, e, sizeof e)) _exit(3);
        struct job_row r;
        if (queue_claim(q, LEASE_S, &r, e, sizeof e) ||
            queue_set_stage(q, r.id, F(q, r.id), "pruning", e, sizeof e))
            _exit(4);
        if (write(fds[1], r.id, JOB_ID_LEN) != JOB_ID_LEN) _exit(5);
        for (unsigned long i = 0;; i++) /* until killed */
            queue_set_progress(q, r.id, F(q, r.id), (double)(i % 1000) / 1000.0, e, sizeof e);
    }
    close(fds[1]);
    CHECK(pid > 0, "fork");
    ssize_t got = read(fds[0], id, JOB_ID_LEN);
    close(fds[0]);
    CHECK_INT(got, JOB_ID_LEN);
    usleep(150000); /* mid-loop: progress commits in flight */
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "child killed (status %d)", status);
    if (got != JOB_ID_LEN) return;
    id[JOB_ID_LEN] = '\0';

    struct queue *q = open_q(path);
    check_consistent(q, path, "after SIGKILL");
    struct job_row r;
    CHECK_INT(queue_get(q, id, &r, err, sizeof err), 0);
    CHECK(r.status == JOB_RUNNING && !strcmp(r.stage, "pruning"), "left running: %s",
          job_status_name(r.status));
    printf("crash: progress %.3f when killed\n", r.progress);
    job_row_free(&r);
    CHECK_INT(count_of(q, JOB_QUEUED), 2);
    int requeued = -1, failed = -1;
    CHECK_INT(queue_recover(q, 3, &requeued, &failed, err, sizeof err), 0);
    CHECK(requeued == 1 && failed == 0, "requeued %d failed %d", requeued, failed);
    CHECK_INT(queue_get(q, id, &r, err, sizeof err), 0);
    CHECK(r.status == JOB_QUEUED && r.attempts == 1, "re-queued with attempts %d", r.attempts);
    job_row_free(&r);
    CHECK_INT(queue_claim(q, LEASE_S, &r, err, sizeof err), 0);
    CHECK(!strcmp(r.id, id), "the interrupted (oldest) job runs first again");
    job_row_free(&r);
    check_consistent(q, path, "after recovery");
    queue_close(q);
}

/* ---- PostgreSQL: leases, fencing, the migration lock ---- */

static void test_pg_backend(void)
{
    char path[256], id[JOB_ID_LEN + 1], me[128];
    db_path(path, sizeof path, "backend");
    struct queue *q = open_q(path);
    struct job_row r;
    CHECK(!strcmp(queue_backend(q), "postgres"), "backend %s", queue_backend(q));
    submit(q, "a", id);
    CHECK_INT(queue_claim(q, 0, &r, err, sizeof err), ERR_INVALID);
    CHECK_INT(queue_claim(q, LEASE_S, &r, err, sizeof err), 0);
    queue_daemon_id(me, sizeof me);
    CHECK(!strcmp(r.claimed_by, me), "claimed_by '%s', want '%s'", r.claimed_by, me);
    CHECK(r.fence > 0, "a claim draws a fence: %lld", (long long)r.fence);
    long long lease_left = pg_int(path + 3, "SELECT (lease_until - extract(epoch from "
                                            "clock_timestamp()))::bigint FROM jobs");
    CHECK(lease_left >= LEASE_S - 2 && lease_left <= LEASE_S, "lease of %d s: %lld left", LEASE_S,
          lease_left);
    job_row_free(&r);
    CHECK_INT(pg_int(path + 3, "SELECT count(*) FROM schema_migrations"), 1);
    queue_close(q);
    /* The daemon's id is host:pid:start. */
    CHECK(strchr(me, ':') && strchr(strchr(me, ':') + 1, ':'), "daemon id '%s'", me);
}

static void test_pg_lease_fencing(void)
{
    char path[256], a[JOB_ID_LEN + 1];
    db_path(path, sizeof path, "fencing");
    struct queue *q = open_q(path), *other = open_q(path);
    struct job_row r1, r2;
    int requeued = -1, failed = -1;
    submit(q, "a", a);
    CHECK_INT(queue_claim(q, 1, &r1, err, sizeof err), 0);
    int64_t f1 = r1.fence;
    job_row_free(&r1);
    CHECK_INT(queue_set_stage(q, a, f1, "loading", err, sizeof err), 0);
    CHECK_INT(queue_set_stage(q, a, f1 + 1000, "pruning", err, sizeof err), ERR_CONFLICT);
    CHECK(strstr(err, "taken over") != NULL, "message '%s'", err);
    /* A live lease is not rescued. */
    CHECK_INT(queue_rescue(other, 3, &requeued, &failed, err, sizeof err), 0);
    CHECK(requeued == 0 && failed == 0, "nothing expired yet: %d %d", requeued, failed);

    usleep(1500 * 1000); /* the holder froze past its lease */
    CHECK_INT(queue_rescue(other, 3, &requeued, &failed, err, sizeof err), 0);
    CHECK(requeued == 1 && failed == 0, "rescued: %d requeued, %d failed", requeued, failed);
    struct job_row r;
    CHECK_INT(queue_get(q, a, &r, err, sizeof err), 0);
    CHECK(r.status == JOB_QUEUED && r.attempts == 1 && r.fence != f1 && !strcmp(r.stage, ""),
          "rescued: status %s attempts %d fence %lld (was %lld)", job_status_name(r.status),
          r.attempts, (long long)r.fence, (long long)f1);
    CHECK(strstr(r.stages, "null") == NULL, "stages closed: %s", r.stages);
    job_row_free(&r);

    /* The frozen holder wakes: every write is refused, before and after the re-claim. */
    CHECK_INT(queue_set_stage(q, a, f1, "pruning", err, sizeof err), ERR_CONFLICT);
    CHECK_INT(queue_set_progress(q, a, f1, 0.5, err, sizeof err), ERR_CONFLICT);
    CHECK_INT(queue_heartbeat(q, a, f1, 5, err, sizeof err), ERR_CONFLICT);
    CHECK_INT(queue_finish(q, a, f1, JOB_SUCCEEDED, "{\"by\":1}", NULL, err, sizeof err),
              ERR_CONFLICT);
    CHECK_INT(queue_claim(other, LEASE_S, &r2, err, sizeof err), 0);
    int64_t f2 = r2.fence;
    CHECK(!strcmp(r2.id, a) && f2 > f1, "the rescuer claims it with a newer fence: %lld > %lld",
          (long long)f2, (long long)f1);
    job_row_free(&r2);
    CHECK_INT(queue_set_stage(other, a, f2, "pruning", err, sizeof err), 0);
    CHECK_INT(queue_finish(q, a, f1, JOB_SUCCEEDED, "{\"by\":1}", NULL, err, sizeof err),
              ERR_CONFLICT);
    CHECK_INT(queue_requeue(q, a, f1, 0, err, sizeof err), ERR_CONFLICT);
    CHECK_INT(queue_get(q, a, &r, err, sizeof err), 0);
    CHECK(r.status == JOB_RUNNING && !strcmp(r.stage, "pruning") && r.result == NULL,
          "the late writes changed nothing: %s %s", job_status_name(r.status), r.stage);
    job_row_free(&r);
    CHECK_INT(queue_finish(other, a, f2, JOB_SUCCEEDED, "{\"by\":2}", NULL, err, sizeof err), 0);
    CHECK_INT(queue_finish(q, a, f1, JOB_SUCCEEDED, "{\"by\":1}", NULL, err, sizeof err),
              ERR_CONFLICT);
    CHECK_INT(queue_get(q, a, &r, err, sizeof err), 0);
    CHECK(r.status == JOB_SUCCEEDED && r.result && !strcmp(r.result, "{\"by\":2}"),
          "the one result is the rescuer's: %s", r.result ? r.result : "(null)");
    job_row_free(&r);

    /* Rescue fails a job at max_attempts, as recovery does. */
    char b[JOB_ID_LEN + 1];
    submit(q, "b", b);
    CHECK_INT(queue_claim(q, 1, &r1, err, sizeof err), 0);
    job_row_free(&r1);
    usleep(1500 * 1000);
    CHECK_INT(queue_rescue(other, 1, &requeued, &failed, err, sizeof err), 0);
    CHECK(requeued == 0 && failed == 1, "failed at max_attempts: %d %d", requeued, failed);
    CHECK_INT(queue_get(q, b, &r, err, sizeof err), 0);
    CHECK(r.status == JOB_FAILED && r.error && strstr(r.error, "interrupted 1 times"),
          "status %s error %s", job_status_name(r.status), r.error ? r.error : "(null)");
    job_row_free(&r);
    check_consistent(q, path, "fencing");
    queue_close(other);
    queue_close(q);
}

static void test_pg_heartbeat(void)
{
    char path[256], a[JOB_ID_LEN + 1];
    db_path(path, sizeof path, "heartbeat");
    struct queue *q = open_q(path);
    struct job_row r;
    int requeued = -1, failed = -1;
    submit(q, "a", a);
    CHECK_INT(queue_claim(q, 1, &r, err, sizeof err), 0);
    /* Renewed every 0.3 s for 2 s: the one-second lease never runs out. */
    for (int i = 0; i < 7; i++) {
        usleep(300 * 1000);
        CHECK_INT(queue_heartbeat(q, a, r.fence, 1, err, sizeof err), 0);
        CHECK_INT(queue_rescue(q, 3, &requeued, &failed, err, sizeof err), 0);
        CHECK_INT(requeued + failed, 0);
    }
    CHECK_INT(count_of(q, JOB_RUNNING), 1);
    CHECK_INT(queue_heartbeat(q, a, r.fence + 1, 1, err, sizeof err), ERR_CONFLICT);
    CHECK_INT(queue_finish(q, a, r.fence, JOB_SUCCEEDED, "{}", NULL, err, sizeof err), 0);
    CHECK_INT(queue_heartbeat(q, a, r.fence, 1, err, sizeof err), ERR_INVALID);
    job_row_free(&r);
    queue_close(q);
}

static double mono(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec / 1e9;
}

/* LISTEN/NOTIFY: a submission and a cancellation reach another connection at once. */
static void test_pg_notify(void)
{
    char path[256], a[JOB_ID_LEN + 1], id[JOB_ID_LEN + 1];
    db_path(path, sizeof path, "notify");
    struct queue *listener = open_q(path), *q = open_q(path);
    enum queue_event ev = QUEUE_EVENT_SUBMIT;
    struct job_row r;
    CHECK_INT(queue_wait(listener, 0.1, &ev, id, err, sizeof err), ERR_INVALID); /* not listening */
    CHECK_INT(queue_listen(listener, err, sizeof err), 0);
    CHECK_INT(queue_wait(listener, 0.2, &ev, id, err, sizeof err), 0);
    CHECK_INT(ev, QUEUE_EVENT_NONE);
    submit(q, "a", a);
    double t0 = mono();
    CHECK_INT(queue_wait(listener, 5, &ev, id, err, sizeof err), 0);
    double waited = mono() - t0;
    CHECK(ev == QUEUE_EVENT_SUBMIT && waited < 1.0,
          "a submission wakes the listener: %d after %.3f s", ev, waited);
    CHECK_INT(queue_claim(q, LEASE_S, &r, err, sizeof err), 0);
    job_row_free(&r);
    CHECK_INT(queue_cancel(q, a, err, sizeof err), 0);
    t0 = mono();
    CHECK_INT(queue_wait(listener, 5, &ev, id, err, sizeof err), 0);
    waited = mono() - t0;
    CHECK(ev == QUEUE_EVENT_CANCEL && !strcmp(id, a) && waited < 1.0,
          "a cancellation names the job: %d '%s' after %.3f s", ev, id, waited);
    CHECK_INT(queue_wait(listener, 0.2, &ev, id, err, sizeof err), 0);
    CHECK_INT(ev, QUEUE_EVENT_NONE);
    queue_close(q);
    queue_close(listener);
}

struct opener {
    const char *path;
    pthread_barrier_t *start;
    int ok;
    char err[256];
};

static void *open_at_once(void *arg)
{
    struct opener *o = arg;
    pthread_barrier_wait(o->start);
    struct queue *q = queue_open(o->path, o->err, sizeof o->err);
    o->ok = q != NULL;
    queue_close(q);
    return NULL;
}

/* Four daemons start at once on an empty database: one migrates, under the advisory lock. */
static void test_pg_migrate_at_once(void)
{
    char path[256];
    enum { N = 4 };
    struct opener o[N];
    pthread_t t[N];
    pthread_barrier_t start;
    db_path(path, sizeof path, "migrate");
    pthread_barrier_init(&start, NULL, N);
    for (int i = 0; i < N; i++) {
        o[i] = (struct opener){.path = path, .start = &start};
        CHECK_INT(pthread_create(&t[i], NULL, open_at_once, &o[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        CHECK(o[i].ok, "opener %d: %s", i, o[i].err);
    }
    pthread_barrier_destroy(&start);
    CHECK_INT(pg_int(path + 3, "SELECT count(*) FROM schema_migrations"), 1);
    CHECK_INT(pg_int(path + 3, "SELECT count(*) FROM jobs"), 0);
}

#define RUN(t)                                                                                     \
    do {                                                                                           \
        struct timespec t0, t1;                                                                    \
        clock_gettime(CLOCK_MONOTONIC, &t0);                                                       \
        t();                                                                                       \
        clock_gettime(CLOCK_MONOTONIC, &t1);                                                       \
        printf("%-28s %.2f s\n", #t,                                                               \
               (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);                 \
        fflush(stdout);                                                                            \
    } while (0)

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_queue.XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return EXIT_FAILURE;
    }
    pg_base = getenv("PRUNERD_TEST_PG");
    if (pg_base && !*pg_base) pg_base = NULL;
    printf("backend: %s\n", pg_base ? "postgres" : "sqlite");
    RUN(test_names_and_ids);
    RUN(test_submit_get_durable);
    RUN(test_submission_row);
    RUN(test_idempotency);
    RUN(test_list_pages);
    RUN(test_claim_stages_finish);
    RUN(test_cancel_requeue_delete);
    RUN(test_recover);
    RUN(test_retention);
    RUN(test_claim_concurrent);
    if (pg_base) {
        RUN(test_pg_backend);
        RUN(test_pg_lease_fencing);
        RUN(test_pg_heartbeat);
        RUN(test_pg_migrate_at_once);
        RUN(test_pg_notify);
        cleanup_tmpdir();
        return ct_done("test_queue (postgres)");
    }
    RUN(test_migrations_recorded);
    RUN(test_migration_atomic);
    RUN(test_fault_busy);
    RUN(test_fault_steps);
    RUN(test_fault_io);
    RUN(test_crash);
    cleanup_tmpdir();
    return ct_done("test_queue");
}
