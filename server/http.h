/* http.h - the HTTP front: libmicrohttpd in, api_dispatch, responses out */
#ifndef PRUNERD_HTTP_H
#define PRUNERD_HTTP_H

#include <stddef.h>

struct api_env;

struct http_config {
    const char *host;          /* numeric address or a name ("localhost") */
    unsigned port;             /* 0: any free port (see http_port) */
    int threads;               /* epoll thread pool size */
    size_t body_limit;         /* request bodies over this get 413 */
    const struct api_env *env; /* borrowed; outlives the server */
};

struct http_server;

/*
 * Starts listening, with its own threads.  Each HTTP thread opens its own
 * struct queue on env->db_path the first time it needs one, closed when
 * the thread ends.  NULL with a message on failure.
 */
struct http_server *http_start(const struct http_config *hc, char *err, size_t errlen);
unsigned http_port(const struct http_server *s); /* the bound port */
/* Stops accepting, finishes the threads, frees s.  NULL is a no-op. */
void http_stop(struct http_server *s);

#endif
