/* http.c - the HTTP front: libmicrohttpd in, api_dispatch, responses out */
#include "http.h"

#include <netdb.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <microhttpd.h>

#include "api.h"
#include "fsutil.h"
#include "log.h"
#include "queue.h"
#include "routes.h"
#include "stats.h"

/*
 * DESIGN: one libmicrohttpd daemon with an internal poll() thread pool
 * (MHD_OPTION_THREAD_POOL_SIZE).  A request is handled entirely on the pool
 * thread that reads it: its body is gathered into struct http_req (*req_cls),
 * then api_dispatch runs with that thread's own struct queue (one sqlite3 *
 * or PGconn * per thread, created lazily under a pthread key and closed by
 * the key's destructor when the thread ends; a thread that cannot open it
 * answers 503, except the probes, and tries again at its next request).
 * struct http_req is freed in the
 * MHD_OPTION_NOTIFY_COMPLETED callback, which also counts the request for
 * /metrics.
 *
 * A route that streams its body (PUT /v1/uploads/{name}; api_stream_begin)
 * is begun on the first call instead: each piece of the body goes to its
 * write as it arrives (libmicrohttpd's buffer, a few KiB, is all it holds),
 * the last call answers, and a connection that ends first aborts it.
 * poll(), not epoll: libmicrohttpd 0.9.75's edge-triggered epoll missed a
 * client's close that came with the last of its data, so a cut upload
 * stayed open (and its partial file on disk) until the 30 s timeout.
 *
 * A body over the limit is answered 413 with the JSON error, and the client
 * hears it: with "Expect: 100-continue" the answer goes before the body is
 * sent (no 100 Continue); otherwise up to DISCARD_MAX bytes are read and
 * dropped first, so a client that writes its whole body before it reads
 * (Python's http.client, curl without Expect) gets the 413 instead of a
 * broken pipe.  Past DISCARD_MAX the answer goes at once and the connection
 * closes.
 */

#define DISCARD_MAX (64ull << 20)

struct http_server {
    struct MHD_Daemon *daemon;
    struct http_config cfg;
    pthread_key_t queue_key; /* this thread's struct queue * */
    unsigned port;
};

struct http_req {
    double start; /* monotonic seconds, for the latency */
    char *body;
    size_t len, cap;
    int too_large;                /* the body is over the limit: discarded, 413 once read */
    unsigned long long discarded; /* bytes of it dropped */
    int bad_type;                 /* a body that is not JSON: discarded; 415 after auth */
    int status;                   /* what was answered (0: nothing yet) */
    const char *route;            /* static pattern, for /metrics */
    char method[8];
    /* A streamed body (PUT /v1/uploads/{name}): handed over as it comes. */
    struct api_request rq;               /* kept from the first call to the last */
    const struct api_stream_ops *stream; /* NULL: the body is gathered */
    void *stream_ctx;                    /* until end or abort */
    int stream_refused;                  /* the rest of the body is dropped, then end answers */
    struct api_response *early;          /* answered before the body: sent once it is dropped */
};

static void queue_key_destroy(void *q)
{
    queue_close(q);
}

/* This thread's queue, opened on first use; NULL when it cannot open. */
static struct queue *thread_queue(struct http_server *s)
{
    struct queue *q = pthread_getspecific(s->queue_key);
    char err[256];
    if (q) return q;
    if (!(q = queue_open(s->cfg.env->db_path, err, sizeof err))) {
        log_err(NULL, "opening the queue for an HTTP thread: %s", err);
        return NULL;
    }
    pthread_setspecific(s->queue_key, q);
    return q;
}

static const char *get_header(void *conn, const char *name)
{
    return MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
}

static const char *get_query(void *conn, const char *name)
{
    return MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, name);
}

/* Turns an api_response into a queued libmicrohttpd response. */
static enum MHD_Result send_response(struct MHD_Connection *conn, struct http_req *r,
                                     struct api_response *rs)
{
    struct MHD_Response *resp;

    if (rs->fd >= 0) {
        resp = MHD_create_response_from_fd_at_offset64(rs->fd_len, rs->fd, rs->fd_offset);
        if (resp) rs->fd = -1; /* closed by libmicrohttpd */
    } else if (rs->body) {
        resp = MHD_create_response_from_buffer(rs->body_len, rs->body, MHD_RESPMEM_MUST_FREE);
        if (resp) rs->body = NULL; /* freed by libmicrohttpd */
    } else {
        resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    }
    if (!resp) {
        api_response_clear(rs);
        return MHD_NO;
    }
    for (size_t i = 0; i < rs->nheaders; i++)
        MHD_add_response_header(resp, rs->headers[i].name, rs->headers[i].value);
    if (rs->content_type)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, rs->content_type);
    r->status = rs->status;
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)rs->status, resp);
    MHD_destroy_response(resp);
    api_response_clear(rs);
    return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *conn, struct http_req *r, int status,
                                  const char *code, const char *msg)
{
    struct api_response rs;
    api_response_init(&rs);
    api_reply_error(&rs, status, code, NULL, "%s", msg);
    return send_response(conn, r, &rs);
}

static int is_json_type(const char *ct)
{
    if (!ct) return 0;
    size_t n = strcspn(ct, ";");
    while (n && ct[n - 1] == ' ')
        n--;
    if (n == 16 && !strncasecmp(ct, "application/json", 16)) return 1;
    /* application/something+json */
    return n > 17 && !strncasecmp(ct, "application/", 12) && !strncasecmp(ct + n - 5, "+json", 5);
}

/* The first call for a request: headers only.  Returns MHD_YES to go on, or
 * the result of queueing an early answer (413 on a Content-Length). */
static enum MHD_Result on_first_call(struct http_server *s, struct MHD_Connection *conn,
                                     struct http_req *r)
{
    const char *cl =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *te =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    unsigned long long len = cl ? strtoull(cl, NULL, 10) : 0;
    int has_body = len > 0 || (te && strcasestr(te, "chunked"));

    if (len > s->cfg.body_limit) {
        const char *expect =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
        if ((expect && !strcasecmp(expect, "100-continue")) || len > DISCARD_MAX) {
            char msg[128];
            snprintf(msg, sizeof msg, "the body of %llu bytes is over the limit of %zu bytes", len,
                     s->cfg.body_limit);
            return send_error(conn, r, 413, "payload_too_large", msg);
        }
        r->too_large = 1; /* read and dropped, then answered */
        return MHD_YES;
    }
    if (has_body && !is_json_type(MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                              MHD_HTTP_HEADER_CONTENT_TYPE)))
        r->bad_type = 1; /* answered once the body is read: keeps the connection */
    return MHD_YES;
}

/* Gathers the body; 0 once it has dropped more than DISCARD_MAX bytes of
 * one that is over the limit (the connection is closed then). */
static int take_body(struct http_server *s, struct http_req *r, const char *data, size_t size)
{
    if (r->too_large || r->bad_type) { /* discarding */
        r->discarded += size;
        return r->discarded <= DISCARD_MAX;
    }
    if (r->len + size > s->cfg.body_limit) {
        r->too_large = 1;
        r->discarded = r->len + size;
        free(r->body);
        r->body = NULL;
        r->len = r->cap = 0;
        return 1;
    }
    if (r->len + size + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;
        while (cap < r->len + size + 1)
            cap *= 2;
        char *nb = realloc(r->body, cap);
        if (!nb) {
            r->too_large = 1; /* treat as over the limit rather than drop */
            return 1;
        }
        r->body = nb;
        r->cap = cap;
    }
    memcpy(r->body + r->len, data, size);
    r->len += size;
    r->body[r->len] = '\0';
    return 1;
}

static struct api_request make_request(struct http_server *s, struct MHD_Connection *conn,
                                       const char *url, const char *method, struct queue *q)
{
    struct api_request rq = {
        .method = method,
        .path = url,
        .header = get_header,
        .query = get_query,
        .conn = conn,
        .q = q,
        .env = s->cfg.env,
        .token_name = "",
        .role = AUTH_NONE,
        .route = "(none)",
    };
    return rq;
}

/* The first call of a route that streams its body (api_stream_begin): 1
 * with *res set when it took the request (begun, or answered), 0 when the
 * body is to be gathered as usual. */
static int begin_stream(struct http_server *s, struct MHD_Connection *conn, const char *url,
                        const char *method, struct http_req *r, enum MHD_Result *res)
{
    struct api_response rs;
    api_response_init(&rs);
    r->rq = make_request(s, conn, url, method, NULL); /* uploads need no database */
    int rc = api_stream_begin(&r->rq, &rs, &r->stream, &r->stream_ctx);
    r->route = r->rq.route;
    if (rc == 0) return 0;
    if (rc > 0) {
        *res = MHD_YES;
        return 1;
    }
    /* Refused on its headers: answered at once when no body follows, the
     * client waits for 100 Continue, or the body is too long to drop;
     * otherwise after dropping the body, so the client reads the answer. */
    const char *cl = get_header(conn, MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *te = get_header(conn, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    const char *expect = get_header(conn, MHD_HTTP_HEADER_EXPECT);
    unsigned long long len = cl ? strtoull(cl, NULL, 10) : 0;
    int has_body = len > 0 || (te && strcasestr(te, "chunked"));
    if (!has_body || (expect && !strcasecmp(expect, "100-continue")) || len > DISCARD_MAX ||
        !(r->early = malloc(sizeof *r->early))) {
        *res = send_response(conn, r, &rs);
        return 1;
    }
    *r->early = rs;
    *res = MHD_YES;
    return 1;
}

/* Body bytes of a streamed request, or of one answered early: 0 once
 * more than DISCARD_MAX have been dropped (the connection closes). */
static int take_stream(struct http_req *r, const char *data, size_t size)
{
    if (r->stream && !r->stream_refused) {
        if (r->stream->write(r->stream_ctx, data, size)) r->stream_refused = 1;
        return 1;
    }
    r->discarded += size;
    return r->discarded <= DISCARD_MAX;
}

/* The body is complete: a streamed request's answer, or the early one. */
static enum MHD_Result end_stream(struct MHD_Connection *conn, struct http_req *r)
{
    struct api_response rs;
    enum MHD_Result ret;
    if (r->early) {
        ret = send_response(conn, r, r->early);
        free(r->early);
        r->early = NULL;
        return ret;
    }
    api_response_init(&rs);
    void *ctx = r->stream_ctx;
    r->stream_ctx = NULL;
    r->stream->end(ctx, &r->rq, &rs);
    r->stream = NULL;
    return send_response(conn, r, &rs);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
    struct http_server *s = cls;
    struct http_req *r = *req_cls;
    (void)version;

    if (!r) {
        if (!(r = calloc(1, sizeof *r))) return MHD_NO;
        r->start = fs_monotonic();
        r->route = "(none)";
        snprintf(r->method, sizeof r->method, "%s", method);
        *req_cls = r;
        enum MHD_Result res;
        if (begin_stream(s, conn, url, method, r, &res)) return res;
        return on_first_call(s, conn, r);
    }
    if (r->stream || r->early) {
        if (!*upload_data_size) return end_stream(conn, r);
        int more = take_stream(r, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return more ? MHD_YES : MHD_NO;
    }
    if (*upload_data_size) {
        int more = take_body(s, r, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return more ? MHD_YES : MHD_NO;
    }
    if (r->too_large) {
        char msg[128];
        snprintf(msg, sizeof msg, "the body is over the limit of %zu bytes", s->cfg.body_limit);
        return send_error(conn, r, 413, "payload_too_large", msg);
    }

    struct queue *q = thread_queue(s);
    /* The probes answer without a database (/readyz then says why it is
     * not ready); everything else needs one. */
    int probe = !strcmp(url, "/healthz") || !strcmp(url, "/readyz") || !strcmp(url, "/metrics");
    if (!q && !probe)
        return send_error(conn, r, 503, "unavailable", "the database cannot be opened");
    struct api_request rq = make_request(s, conn, url, method, q);
    rq.body = r->body;
    rq.body_len = r->len;
    rq.body_not_json = r->bad_type;
    struct api_response rs;
    api_response_init(&rs);
    api_dispatch(&rq, &rs);
    r->route = rq.route;
    return send_response(conn, r, &rs);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct http_server *s = cls;
    struct http_req *r = *req_cls;
    (void)conn;
    (void)toe;
    if (!r) return;
    if (r->status)
        stats_http(s->cfg.env->stats, r->route, r->method, r->status, fs_monotonic() - r->start);
    if (r->stream_ctx) r->stream->abort(r->stream_ctx); /* cut off: nothing is kept */
    if (r->early) {
        api_response_clear(r->early);
        free(r->early);
    }
    free(r->body);
    free(r);
    *req_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    (void)cls;
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    log_warn(NULL, "libmicrohttpd: %s", msg);
}

static int hex_digit(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Percent-decodes the path and query values in place, as libmicrohttpd's
 * own unescaper does, except that %00 stays "%00": prunerd reads them as C
 * strings, and a NUL would cut "<id>%00junk" back to a job's real id. */
static size_t unescape(void *cls, struct MHD_Connection *conn, char *s)
{
    char *w = s;
    (void)cls;
    (void)conn;
    for (const char *r = s; *r; r++) {
        int hi, lo;
        if (*r == '%' && (hi = hex_digit(r[1])) >= 0 && (lo = hex_digit(r[2])) >= 0 && (hi || lo)) {
            *w++ = (char)(hi * 16 + lo);
            r += 2;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
    return (size_t)(w - s);
}

struct http_server *http_start(const struct http_config *hc, char *err, size_t errlen)
{
    struct http_server *s = calloc(1, sizeof *s);
    struct addrinfo hints = {0}, *ai = NULL;
    char port[16];
    int rc;

    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->cfg = *hc;
    if (pthread_key_create(&s->queue_key, queue_key_destroy)) {
        snprintf(err, errlen, "pthread_key_create failed");
        free(s);
        return NULL;
    }
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    snprintf(port, sizeof port, "%u", hc->port);
    if ((rc = getaddrinfo(hc->host, port, &hints, &ai))) {
        snprintf(err, errlen, "listen address '%s': %s", hc->host, gai_strerror(rc));
        goto fail;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    s->daemon = MHD_start_daemon(
        flags, (uint16_t)hc->port, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_log,
        NULL, MHD_OPTION_SOCK_ADDR, ai->ai_addr, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)(hc->threads > 0 ? hc->threads : 1), MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_CONNECTION_LIMIT, (unsigned)1000,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024, MHD_OPTION_UNESCAPE_CALLBACK, unescape,
        NULL, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!s->daemon) {
        snprintf(err, errlen, "cannot listen on %s:%u (in use, or not an address here)", hc->host,
                 hc->port);
        goto fail;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : hc->port;
    return s;
fail:
    pthread_key_delete(s->queue_key);
    free(s);
    return NULL;
}

unsigned http_port(const struct http_server *s)
{
    return s->port;
}

void http_stop(struct http_server *s)
{
    if (!s) return;
    if (s->daemon) MHD_stop_daemon(s->daemon); /* joins the pool threads: their queues close */
    pthread_key_delete(s->queue_key);
    free(s);
}
