/* stats.h - in-process counters behind GET /metrics */
#ifndef PRUNERD_STATS_H
#define PRUNERD_STATS_H

#include <stdio.h>

/*
 * HTTP requests by route, method and status; request latency; job and
 * stage durations (since this process started).  Every call is
 * thread-safe (one mutex; the work under it is a few additions).
 */
struct api_stats;

struct api_stats *api_stats_create(void); /* NULL when out of memory */
void api_stats_destroy(struct api_stats *s);

/* route is a static string (the route pattern). */
void api_stats_http(struct api_stats *s, const char *route, const char *method, int status,
                    double seconds);
/* A job ended with status ("succeeded", ...) after seconds of running. */
void api_stats_job(struct api_stats *s, const char *status, double seconds);
void api_stats_stage(struct api_stats *s, const char *stage, double seconds);
/* The daemon these counters belong to (queue_daemon_id), the label of the
 * per-daemon ones below; copied. */
void api_stats_set_daemon(struct api_stats *s, const char *daemon_id);
/* This daemon claimed a job; rescued expired leases (re-queued, failed);
 * lost a lease (a job it ran was rescued by another daemon). */
void api_stats_claim(struct api_stats *s);
void api_stats_rescue(struct api_stats *s, int requeued, int failed);
void api_stats_lease_lost(struct api_stats *s);

/* Appends the Prometheus text for these counters. */
void api_stats_write(struct api_stats *s, FILE *out);

#endif
