/* test_committer.c - group commit: every concurrent submission lands, each once */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "committer.h"
#include "ct.h"
#include "err.h"
#include "queue.h"

#define THREADS 8
#define PER_THREAD 40

struct arg {
    struct committer *c;
    int t, failures, replays;
    char ids[PER_THREAD][JOB_ID_LEN + 1];
};

static void *submitter(void *p)
{
    struct arg *a = p;
    for (int i = 0; i < PER_THREAD; i++) {
        char key[32];
        snprintf(key, sizeof key, "k-%d", i % 5); /* the same 5 keys in every thread */
        struct queue_submission sub = {.request_json = "{\"model\": \"m\"}",
                                       .name = "x",
                                       .owner = a->t % 2 ? "odd" : "even",
                                       .idem_key = i < 10 ? key : NULL};
        if (committer_submit(a->c, &sub) != 0) a->failures++;
        if (sub.existed) a->replays++;
        memcpy(a->ids[i], sub.id, sizeof sub.id);
    }
    return NULL;
}

int main(void)
{
    char dir[] = "/tmp/prunerd-committer-XXXXXX", path[256], err[256];
    if (!mkdtemp(dir)) return 1;
    snprintf(path, sizeof path, "%s/q.db", dir);
    struct committer *c = committer_create(path, err, sizeof err);
    CHECK(c != NULL, "committer_create: %s", err);
    if (!c) return ct_done("test_committer");

    struct arg args[THREADS];
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++) {
        args[t] = (struct arg){.c = c, .t = t};
        pthread_create(&th[t], NULL, submitter, &args[t]);
    }
    int failures = 0, replays = 0;
    for (int t = 0; t < THREADS; t++) {
        pthread_join(th[t], NULL);
        failures += args[t].failures;
        replays += args[t].replays;
    }
    CHECK_INT(failures, 0);
    /* Keyed submissions: 5 keys x 2 owners make 10 jobs; the other 70 of the 80 keyed ones replay.
     */
    CHECK_INT(replays, THREADS * 10 - 10);

    /* A bad submission fails alone. */
    struct queue_submission bad = {.request_json = "[1]", .owner = "even"};
    CHECK_INT(committer_submit(c, &bad), ERR_INVALID);
    CHECK(strstr(bad.err, "JSON object") != NULL, "message '%s'", bad.err);
    committer_destroy(c);

    struct queue *q = queue_open(path, err, sizeof err);
    CHECK(q != NULL, "reopen: %s", err);
    int64_t counts[JOB_STATUS_COUNT] = {0};
    CHECK_INT(queue_counts(q, counts, err, sizeof err), 0);
    CHECK_INT(counts[JOB_QUEUED], THREADS * (PER_THREAD - 10) + 10);
    for (int t = 0; t < THREADS; t++)
        for (int i = 0; i < PER_THREAD; i++) {
            struct job_row r;
            int rc = queue_get(q, args[t].ids[i], &r, err, sizeof err);
            CHECK(rc == 0, "thread %d job %d (%s): %s", t, i, args[t].ids[i], err);
            if (!rc) job_row_free(&r);
        }
    queue_close(q);
    committer_destroy(NULL);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return ct_done("test_committer");
}
