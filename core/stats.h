/* stats.h - in-process counters behind GET /metrics */
#ifndef PRUNERD_STATS_H
#define PRUNERD_STATS_H

#include <stdio.h>

/*
 * HTTP requests by route, method and status; request latency; job and
 * stage durations (since this process started).  Every call is
 * thread-safe (one mutex; the work under it is a few additions).
 */
struct stats;

struct stats *stats_create(void); /* NULL when out of memory */
void stats_destroy(struct stats *s);

/* route is a static string (the route pattern). */
void stats_http(struct stats *s, const char *route, const char *method, int status, double seconds);
/* A job ended with status ("succeeded", ...) after seconds of running. */
void stats_job(struct stats *s, const char *status, double seconds);
void stats_stage(struct stats *s, const char *stage, double seconds);
/* The daemon these counters belong to (queue_daemon_id), the label of the
 * per-daemon ones below; copied. */
void stats_set_daemon(struct stats *s, const char *daemon_id);
/* This daemon claimed a job; rescued expired leases (re-queued, failed);
 * lost a lease (a job it ran was rescued by another daemon). */
void stats_claim(struct stats *s);
void stats_rescue(struct stats *s, int requeued, int failed);
void stats_lease_lost(struct stats *s);

/* Appends the Prometheus text for these counters. */
void stats_write(struct stats *s, FILE *out);

#endif
