/* health.c - GET /healthz, /readyz and /metrics (the counters are core/stats.c) */
#include "api.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "queue.h"
#include "stats.h"
#include "store.h"

void api_health_live(struct api_request *rq, struct api_response *rs)
{
    (void)rq;
    api_reply_json(rs, 200, json_pack("{s:s}", "status", "ok"));
}

void api_health_ready(struct api_request *rq, struct api_response *rs)
{
    int64_t counts[JOB_STATUS_COUNT];
    char err[256] = "";
    /* rq->q is NULL when this thread could not open the database. */
    const char *backend = rq->q ? queue_backend(rq->q) : "unknown";
    int db = rq->q && !queue_counts(rq->q, counts, err, sizeof err);
    if (!rq->q) snprintf(err, sizeof err, "the database cannot be opened");
    /* SQLite's file lives in the data dir; PostgreSQL is checked by the query. */
    int storage = !access(store_dir(rq->env->store), W_OK) &&
                  (strcmp(backend, "sqlite") || !access(rq->env->db_path, W_OK));
    int workers = !rq->env->workers_alive || rq->env->workers_alive(rq->env->ud);
    int ready = db && storage && workers;

    json_t *body =
        json_pack("{s:s, s:b, s:b, s:b, s:s}", "status", ready ? "ready" : "unavailable",
                  "database", db, "storage", storage, "workers", workers, "backend", backend);
    if (!db && body) json_object_set_new(body, "message", json_string(err));
    api_reply_json(rs, ready ? 200 : 503, body);
}

void api_health_metrics(struct api_request *rq, struct api_response *rs)
{
    int64_t counts[JOB_STATUS_COUNT];
    char err[256], *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);

    if (!out) {
        api_reply_error(rs, 500, "internal", NULL, "out of memory");
        return;
    }
    int rc = rq->q ? queue_counts(rq->q, counts, err, sizeof err) : ERR_DB;
    fprintf(out, "# HELP prunerd_jobs Jobs in the queue by status.\n# TYPE prunerd_jobs gauge\n");
    for (int i = 0; !rc && i < JOB_STATUS_COUNT; i++)
        fprintf(out, "prunerd_jobs{status=\"%s\"} %lld\n", job_status_name((enum job_status)i),
                (long long)counts[i]);
    fprintf(out,
            "# HELP prunerd_queue_depth Jobs waiting to run.\n# TYPE prunerd_queue_depth gauge\n");
    if (!rc) fprintf(out, "prunerd_queue_depth %lld\n", (long long)counts[JOB_QUEUED]);
    fprintf(out,
            "# HELP prunerd_up 1 while the database answers.\n# TYPE prunerd_up gauge\n"
            "prunerd_up %d\n",
            rc ? 0 : 1);
    if (rq->env->stats) stats_write(rq->env->stats, out);
    if (fclose(out) || !buf) {
        free(buf);
        api_reply_error(rs, 500, "internal", NULL, "out of memory");
        return;
    }
    rs->status = 200;
    rs->body = buf;
    rs->body_len = len;
    rs->content_type = "text/plain; version=0.0.4";
}
