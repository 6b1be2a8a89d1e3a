/* queue_claims.c - claims per second on a queue: claim + finish back to back, as a worker does */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "queue.h"

/*
 * usage: queue_claims WHERE THREADS [SUBMIT]
 * WHERE is what queue_open takes (a SQLite path, "pg:" + a dsn).  With
 * SUBMIT > 0, first submits that many jobs in group commits of 64 and
 * prints submits/s.  Then THREADS threads, each with its own connection,
 * claim (30 s leases) and finish (succeeded, with the claim's fence) until
 * the queue is empty; prints claims/s.  Several processes on one queue
 * stand for several daemons: each prints its own count.
 */

struct claimer {
    const char *where;
    long claims;
    int failed;
    char err[256];
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *claim_loop(void *arg)
{
    struct claimer *c = arg;
    struct queue *q = queue_open(c->where, c->err, sizeof c->err);
    struct job_row r;
    int rc;
    if (!q) {
        c->failed = 1;
        return NULL;
    }
    while ((rc = queue_claim(q, 30, &r, c->err, sizeof c->err)) == 0) {
        if (queue_finish(q, r.id, r.fence, JOB_SUCCEEDED, "{}", NULL, c->err, sizeof c->err))
            c->failed = 1;
        job_row_free(&r);
        c->claims++;
    }
    if (rc != ERR_NOTFOUND) c->failed = 1;
    queue_close(q);
    return NULL;
}

int main(int argc, char **argv)
{
    char err[256];
    if (argc < 3) {
        fprintf(stderr, "usage: queue_claims WHERE THREADS [SUBMIT]\n");
        return 2;
    }
    int threads = atoi(argv[2]), submit = argc > 3 ? atoi(argv[3]) : 0;
    if (threads < 1 || threads > 64) return 2;
    if (submit > 0) {
        struct queue *q = queue_open(argv[1], err, sizeof err);
        struct queue_submission subs[64];
        if (!q) {
            fprintf(stderr, "queue_claims: %s\n", err);
            return 1;
        }
        double t0 = now();
        for (int done = 0; done < submit;) {
            size_t n = submit - done < 64 ? (size_t)(submit - done) : 64;
            for (size_t i = 0; i < n; i++)
                subs[i] = (struct queue_submission){
                    .request_json = "{\"model\":\"m.pt\"}", .name = "bench", .owner = "bench"};
            if (queue_submit_many(q, subs, n, err, sizeof err)) {
                fprintf(stderr, "queue_claims: submit: %s\n", err);
                return 1;
            }
            done += (int)n;
        }
        double took = now() - t0;
        printf("submitted %d jobs in %.2f s: %.0f/s (group commits of 64)\n", submit, took,
               submit / took);
        queue_close(q);
    }
    struct claimer *c = calloc((size_t)threads, sizeof *c);
    pthread_t *t = calloc((size_t)threads, sizeof *t);
    if (!c || !t) return 1;
    double t0 = now();
    for (int i = 0; i < threads; i++) {
        c[i].where = argv[1];
        pthread_create(&t[i], NULL, claim_loop, &c[i]);
    }
    long total = 0;
    int failed = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(t[i], NULL);
        total += c[i].claims;
        if (c[i].failed) {
            fprintf(stderr, "queue_claims: thread %d: %s\n", i, c[i].err);
            failed = 1;
        }
    }
    double took = now() - t0;
    printf("claimed %ld jobs with %d threads in %.2f s: %.0f claims/s\n", total, threads, took,
           total / took);
    free(c);
    free(t);
    return failed;
}
