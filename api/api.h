/* api.h - HTTP meets the domain: the request and response every handler sees */
#ifndef PRUNERD_API_H
#define PRUNERD_API_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "auth.h"

/*
 * server/http.c turns each HTTP request into a struct api_request, calls
 * api_dispatch (api/routes.c) and turns the struct api_response back into
 * a libmicrohttpd response.  Handlers know HTTP status codes and headers
 * but not libmicrohttpd; they reach the domain through core/ only.
 */

struct queue;
struct committer;
struct roots;
struct stats;
struct store;

/* What every request shares; read-only once the server runs. */
struct api_env {
    struct committer *committer; /* group commit of submissions */
    struct store *store;         /* jobs' files and their bytes (core/store.h; shared by a group) */
    const char *db_path;         /* the queue's location: a SQLite path or "pg:" + dsn */
    uint64_t quota_bytes;        /* 0: none */
    uint64_t upload_limit;       /* bytes: an upload's body, and once unpacked */
    const struct auth *auth;     /* no tokens: auth is off */
    const struct roots *roots;
    struct stats *stats;             /* thread-safe counters for /metrics */
    void (*job_submitted)(void *ud); /* wakes the workers */
    int (*workers_alive)(void *ud);  /* 1 when every worker thread runs */
    void *ud;
};

#define API_MAX_PARAMS 2
#define API_PARAM_MAX 256 /* an upload name is up to 128 */

struct api_request {
    const char *method;                                  /* "GET", ...; HEAD is routed as GET */
    const char *path;                                    /* without the query string */
    const char *(*header)(void *conn, const char *name); /* NULL when absent */
    const char *(*query)(void *conn, const char *name);  /* decoded; NULL when absent */
    void *conn;
    const char *body; /* NUL-terminated, body_len bytes; NULL when none */
    size_t body_len;
    int body_not_json; /* a body came with another Content-Type (and was dropped) */
    struct queue *q;   /* this thread's queue */
    const struct api_env *env;
    char params[API_MAX_PARAMS][API_PARAM_MAX]; /* {id} captures, in order */
    const char *token_name;                     /* who asked: a token name, or "" with auth off */
    enum auth_role role;                        /* AUTH_ADMIN with auth off */
    const char *route;                          /* the matched pattern (static), for metrics */
};

#define API_MAX_HEADERS 8

struct api_response {
    int status;
    char *body; /* malloc'd, freed by the server; NULL: empty */
    size_t body_len;
    const char *content_type; /* static; NULL: none */
    int fd;                   /* >= 0: send fd_len bytes from fd_offset; the server closes it */
    uint64_t fd_offset, fd_len;
    size_t nheaders;
    struct {
        char name[40];
        char value[300];
    } headers[API_MAX_HEADERS];
};

typedef void (*api_handler)(struct api_request *rq, struct api_response *rs);

/*
 * A route that takes its request body as it arrives, instead of whole
 * (PUT /v1/uploads/{name}): begin sees the headers (after authentication
 * and the role check), write each piece of the body, end the complete
 * body; abort is called instead of end when the connection ends first.
 * rq stays valid from begin to end or abort.
 */
struct api_stream_ops {
    /* 0 with *ctx set to take the body; else rs holds the answer. */
    int (*begin)(struct api_request *rq, struct api_response *rs, void **ctx);
    /* 0 to go on; else the body is refused: the rest is dropped, end answers. */
    int (*write)(void *ctx, const char *data, size_t n);
    void (*end)(void *ctx, struct api_request *rq, struct api_response *rs); /* frees ctx */
    void (*abort)(void *ctx);                                                /* frees ctx */
};

/* An empty response: status 500 until a handler sets one, fd -1. */
void api_response_init(struct api_response *rs);
/* Frees the body and closes the fd, if the server did not take them. */
void api_response_clear(struct api_response *rs);

/* Adds a header (printf-style value); silently drops it when full. */
void api_header(struct api_response *rs, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Replies with a JSON body; steals the reference to body. */
void api_reply_json(struct api_response *rs, int status, json_t *body);
/* Replies {"error": {"code", "field" (when field is not NULL), "message"}}. */
void api_reply_error(struct api_response *rs, int status, const char *code, const char *field,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* The HTTP status for a core ERR_* code (ERR_NOTFOUND 404, ERR_DENIED 403...). */
int api_status_for(int err_code);
/* An ERR_* code with its message as an error reply. */
void api_reply_err_code(struct api_response *rs, int err_code, const char *field,
                        const char *message);
/* A request refused for one of its fields (field may be NULL): a file the
 * field names is missing (ERR_NOTFOUND) is 400 "not_found", as the request
 * is at fault, not the URL; another input error (ERR_INVALID, ERR_FORMAT,
 * ERR_UNSUPPORTED, ERR_IO reading a named file) 400 "invalid_field";
 * ERR_DENIED (outside the roots) 403 "denied"; the rest as
 * api_reply_err_code. */
void api_reply_field_error(struct api_response *rs, int err_code, const char *field,
                           const char *message);

/* Is s a job id (a lowercase UUID v4, as queue_submit makes; core/queue/queue.h)? */
int api_valid_job_id(const char *s);
/* ISO 8601 UTC with milliseconds, or JSON null for 0. New reference. */
json_t *api_time(double unix_seconds);

/* Handlers, one file per resource. */
void api_jobs_create(struct api_request *rq, struct api_response *rs);
void api_jobs_list(struct api_request *rq, struct api_response *rs);
void api_jobs_get(struct api_request *rq, struct api_response *rs);
void api_jobs_result(struct api_request *rq, struct api_response *rs);
void api_jobs_cancel(struct api_request *rq, struct api_response *rs);
void api_jobs_delete(struct api_request *rq, struct api_response *rs);
void api_jobs_checkpoint(struct api_request *rq, struct api_response *rs);
void api_models_inspect(struct api_request *rq, struct api_response *rs);
void api_health_live(struct api_request *rq, struct api_response *rs);
void api_health_ready(struct api_request *rq, struct api_response *rs);
void api_health_metrics(struct api_request *rq, struct api_response *rs);
void api_openapi_get(struct api_request *rq, struct api_response *rs);
extern const struct api_stream_ops api_uploads_put;
void api_uploads_list(struct api_request *rq, struct api_response *rs);
void api_uploads_get(struct api_request *rq, struct api_response *rs);
void api_uploads_delete(struct api_request *rq, struct api_response *rs);

#endif
