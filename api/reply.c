/* reply.c - JSON replies, error bodies and small helpers shared by the handlers */
#include "api.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "json_text.h"
#include "queue.h"

void api_response_init(struct api_response *rs)
{
    memset(rs, 0, sizeof *rs);
    rs->status = 500;
    rs->fd = -1;
}

void api_response_clear(struct api_response *rs)
{
    free(rs->body);
    rs->body = NULL;
    if (rs->fd >= 0) close(rs->fd);
    rs->fd = -1;
}

void api_header(struct api_response *rs, const char *name, const char *fmt, ...)
{
    va_list ap;
    if (rs->nheaders == API_MAX_HEADERS) return;
    snprintf(rs->headers[rs->nheaders].name, sizeof rs->headers[0].name, "%s", name);
    va_start(ap, fmt);
    vsnprintf(rs->headers[rs->nheaders].value, sizeof rs->headers[0].value, fmt, ap);
    va_end(ap);
    rs->nheaders++;
}

void api_reply_json(struct api_response *rs, int status, json_t *body)
{
    char *s = body ? json_text_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(body);
    free(rs->body);
    rs->body = NULL;
    rs->body_len = 0;
    if (!s) {
        static const char oom[] =
            "{\"error\":{\"code\":\"internal\",\"message\":\"cannot build the reply\"}}";
        rs->status = 500;
        rs->body = strdup(oom);
        rs->body_len = rs->body ? strlen(oom) : 0;
        rs->content_type = "application/json";
        return;
    }
    rs->status = status;
    rs->body_len = strlen(s);
    rs->body = s;
    rs->content_type = "application/json";
}

void api_reply_error(struct api_response *rs, int status, const char *code, const char *field,
                     const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* The field and message may hold a URL's bytes or be cut mid-character:
     * json_text_string keeps them whatever they hold. */
    json_t *e = json_pack("{s:s}", "code", code);
    if (e && field && json_object_set_new(e, "field", json_text_string(field))) {
        json_decref(e);
        e = NULL;
    }
    if (e && json_object_set_new(e, "message", json_text_string(msg))) {
        json_decref(e);
        e = NULL;
    }
    api_reply_json(rs, status, e ? json_pack("{s:o}", "error", e) : NULL);
}

int api_status_for(int err_code)
{
    switch (err_code) {
    case ERR_INVALID:
        return 400;
    case ERR_NOTFOUND:
        return 404;
    case ERR_DENIED:
        return 403;
    case ERR_FORMAT:
        return 400;
    case ERR_UNSUPPORTED:
        return 400;
    case ERR_NOSPACE:
        return 507;
    case ERR_CANCELLED:
        return 409;
    case ERR_CONFLICT:
        return 422;
    case ERR_DB:
        return 503; /* the database is unreachable, busy or full: retry later */
    default:
        return 500;
    }
}

void api_reply_err_code(struct api_response *rs, int err_code, const char *field,
                        const char *message)
{
    api_reply_error(rs, api_status_for(err_code), err_name(err_code), field, "%s", message);
}

void api_reply_field_error(struct api_response *rs, int err_code, const char *field,
                           const char *message)
{
    switch (err_code) {
    case ERR_NOTFOUND:
        api_reply_error(rs, 400, "not_found", field, "%s", message);
        return;
    case ERR_INVALID:
    case ERR_FORMAT:
    case ERR_UNSUPPORTED:
    case ERR_IO:
        api_reply_error(rs, 400, "invalid_field", field, "%s", message);
        return;
    default:
        api_reply_err_code(rs, err_code, field, message);
    }
}

int api_valid_job_id(const char *s)
{
    return s && job_id_valid(s);
}

json_t *api_time(double t)
{
    char buf[40];
    struct tm tm;
    if (t <= 0) return json_null();
    time_t sec = (time_t)t;
    int ms = (int)((t - (double)sec) * 1000.0);
    gmtime_r(&sec, &tm);
    size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, sizeof buf - n, ".%03dZ", ms < 0 ? 0 : ms > 999 ? 999 : ms);
    return json_string(buf);
}
