/* stats.c - in-process counters behind GET /metrics: requests, jobs, stages, leases */
#include "stats.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "queue.h"

#define STATS_ROUTES 96
#define STATS_STAGES 16

static const double http_buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1};
#define HTTP_NB (sizeof http_buckets / sizeof http_buckets[0])
static const double job_buckets[] = {1, 5, 15, 30, 60, 120, 300, 900, 3600};
#define JOB_NB (sizeof job_buckets / sizeof job_buckets[0])

struct hist {
    unsigned long long bucket[16]; /* cumulative at write time */
    unsigned long long count;
    double sum;
};

struct stats {
    pthread_mutex_t lock;
    struct {
        const char *route;
        char method[8];
        int status;
        unsigned long long count;
    } http[STATS_ROUTES];
    size_t nhttp;
    struct hist latency;
    struct {
        char status[16];
        struct hist h;
    } jobs[JOB_STATUS_COUNT];
    size_t njobs;
    struct {
        char stage[32];
        struct hist h;
    } stages[STATS_STAGES];
    size_t nstages;
    char daemon[128];                   /* queue_daemon_id */
    unsigned long long claims;          /* jobs this daemon claimed */
    unsigned long long rescued_requeue; /* expired leases it re-queued */
    unsigned long long rescued_fail;    /* expired leases it failed at max_attempts */
    unsigned long long leases_lost;     /* its jobs another daemon rescued */
};

struct stats *stats_create(void)
{
    struct stats *s = calloc(1, sizeof *s);
    if (s && pthread_mutex_init(&s->lock, NULL)) {
        free(s);
        return NULL;
    }
    return s;
}

void stats_destroy(struct stats *s)
{
    if (!s) return;
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static void hist_add(struct hist *h, const double *bounds, size_t nb, double v)
{
    for (size_t i = 0; i < nb; i++)
        if (v <= bounds[i]) {
            h->bucket[i]++;
            break;
        }
    h->count++;
    h->sum += v;
}

void stats_http(struct stats *s, const char *route, const char *method, int status, double seconds)
{
    if (!s) return;
    pthread_mutex_lock(&s->lock);
    size_t i;
    for (i = 0; i < s->nhttp; i++)
        if (s->http[i].status == status && !strcmp(s->http[i].route, route) &&
            !strcmp(s->http[i].method, method))
            break;
    if (i == s->nhttp && s->nhttp < STATS_ROUTES) {
        s->http[i].route = route;
        snprintf(s->http[i].method, sizeof s->http[i].method, "%s", method);
        s->http[i].status = status;
        s->nhttp++;
    }
    if (i < s->nhttp) s->http[i].count++;
    hist_add(&s->latency, http_buckets, HTTP_NB, seconds);
    pthread_mutex_unlock(&s->lock);
}

void stats_job(struct stats *s, const char *status, double seconds)
{
    if (!s) return;
    pthread_mutex_lock(&s->lock);
    size_t i;
    for (i = 0; i < s->njobs; i++)
        if (!strcmp(s->jobs[i].status, status)) break;
    if (i == s->njobs && s->njobs < JOB_STATUS_COUNT)
        snprintf(s->jobs[s->njobs++].status, sizeof s->jobs[0].status, "%s", status);
    if (i < s->njobs) hist_add(&s->jobs[i].h, job_buckets, JOB_NB, seconds);
    pthread_mutex_unlock(&s->lock);
}

void stats_stage(struct stats *s, const char *stage, double seconds)
{
    if (!s) return;
    pthread_mutex_lock(&s->lock);
    size_t i;
    for (i = 0; i < s->nstages; i++)
        if (!strcmp(s->stages[i].stage, stage)) break;
    if (i == s->nstages && s->nstages < STATS_STAGES)
        snprintf(s->stages[s->nstages++].stage, sizeof s->stages[0].stage, "%s", stage);
    if (i < s->nstages) hist_add(&s->stages[i].h, job_buckets, JOB_NB, seconds);
    pthread_mutex_unlock(&s->lock);
}

void stats_set_daemon(struct stats *s, const char *daemon_id)
{
    if (!s) return;
    pthread_mutex_lock(&s->lock);
    snprintf(s->daemon, sizeof s->daemon, "%s", daemon_id);
    pthread_mutex_unlock(&s->lock);
}

void stats_claim(struct stats *s)
{
    if (!s) return;
    pthread_mutex_lock(&s->lock);
    s->claims++;
    pthread_mutex_unlock(&s->lock);
}

void stats_rescue(struct stats *s, int requeued, int failed)
{
    if (!s) return;
    pthread_mutex_lock(&s->lock);
    s->rescued_requeue += (unsigned long long)(requeued > 0 ? requeued : 0);
    s->rescued_fail += (unsigned long long)(failed > 0 ? failed : 0);
    pthread_mutex_unlock(&s->lock);
}

void stats_lease_lost(struct stats *s)
{
    if (!s) return;
    pthread_mutex_lock(&s->lock);
    s->leases_lost++;
    pthread_mutex_unlock(&s->lock);
}

static void hist_write(FILE *out, const char *name, const char *label, const char *value,
                       const struct hist *h, const double *bounds, size_t nb)
{
    unsigned long long cum = 0;
    char lab[96] = "";
    if (label) snprintf(lab, sizeof lab, "%s=\"%s\",", label, value);
    for (size_t i = 0; i < nb; i++) {
        cum += h->bucket[i];
        fprintf(out, "%s_bucket{%sle=\"%g\"} %llu\n", name, lab, bounds[i], cum);
    }
    fprintf(out, "%s_bucket{%sle=\"+Inf\"} %llu\n", name, lab, h->count);
    if (label) {
        fprintf(out, "%s_sum{%s=\"%s\"} %.6f\n", name, label, value, h->sum);
        fprintf(out, "%s_count{%s=\"%s\"} %llu\n", name, label, value, h->count);
    } else {
        fprintf(out, "%s_sum %.6f\n%s_count %llu\n", name, h->sum, name, h->count);
    }
}

void stats_write(struct stats *s, FILE *out)
{
    pthread_mutex_lock(&s->lock);
    fprintf(out, "# HELP prunerd_http_requests_total HTTP requests by route, method and status.\n"
                 "# TYPE prunerd_http_requests_total counter\n");
    for (size_t i = 0; i < s->nhttp; i++)
        fprintf(out, "prunerd_http_requests_total{route=\"%s\",method=\"%s\",code=\"%d\"} %llu\n",
                s->http[i].route, s->http[i].method, s->http[i].status, s->http[i].count);
    fprintf(out, "# HELP prunerd_http_request_duration_seconds Time to answer a request.\n"
                 "# TYPE prunerd_http_request_duration_seconds histogram\n");
    hist_write(out, "prunerd_http_request_duration_seconds", NULL, NULL, &s->latency, http_buckets,
               HTTP_NB);
    fprintf(out, "# HELP prunerd_job_duration_seconds Running time of jobs that ended.\n"
                 "# TYPE prunerd_job_duration_seconds histogram\n");
    for (size_t i = 0; i < s->njobs; i++)
        hist_write(out, "prunerd_job_duration_seconds", "status", s->jobs[i].status, &s->jobs[i].h,
                   job_buckets, JOB_NB);
    fprintf(out, "# HELP prunerd_stage_duration_seconds Time spent in each job stage.\n"
                 "# TYPE prunerd_stage_duration_seconds histogram\n");
    for (size_t i = 0; i < s->nstages; i++)
        hist_write(out, "prunerd_stage_duration_seconds", "stage", s->stages[i].stage,
                   &s->stages[i].h, job_buckets, JOB_NB);
    fprintf(out,
            "# HELP prunerd_claims_total Jobs this daemon claimed.\n"
            "# TYPE prunerd_claims_total counter\n"
            "prunerd_claims_total{daemon=\"%s\"} %llu\n"
            "# HELP prunerd_rescues_total Expired leases this daemon took back, by outcome.\n"
            "# TYPE prunerd_rescues_total counter\n"
            "prunerd_rescues_total{daemon=\"%s\",outcome=\"requeued\"} %llu\n"
            "prunerd_rescues_total{daemon=\"%s\",outcome=\"failed\"} %llu\n"
            "# HELP prunerd_leases_lost_total Jobs of this daemon that another one rescued.\n"
            "# TYPE prunerd_leases_lost_total counter\n"
            "prunerd_leases_lost_total{daemon=\"%s\"} %llu\n",
            s->daemon, s->claims, s->daemon, s->rescued_requeue, s->daemon, s->rescued_fail,
            s->daemon, s->leases_lost);
    pthread_mutex_unlock(&s->lock);
}
