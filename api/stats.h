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

/* Appends the Prometheus text for these counters. */
void api_stats_write(struct api_stats *s, FILE *out);

#endif
