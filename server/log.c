/* log.c - one line per event on stderr, as text or JSON */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

/* Set once by log_setup before threads start, read-only afterwards. */
static enum log_level log_level_ = LOG_INFO;
static enum log_format log_format_ = LOG_TEXT;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void log_setup(enum log_level level, enum log_format format)
{
    log_level_ = level;
    log_format_ = format;
}

int log_enabled(enum log_level level)
{
    return level <= log_level_;
}

static const char *base_name(const char *file)
{
    const char *s = strrchr(file, '/');
    return s ? s + 1 : file;
}

void log_write(enum log_level level, const char *file, int line, const char *job, int errnum,
               const char *fmt, ...)
{
    char msg[2048], when[40], out[4096];
    struct timeval tv;
    struct tm tm;
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0) msg[0] = '\0';
    if (errnum) {
        size_t len = strlen(msg);
        char ebuf[128];
        const char *es = strerror_r(errnum, ebuf, sizeof ebuf);
        snprintf(msg + len, sizeof msg - len, ": %s", es);
    }
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    n = (int)strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + n, sizeof when - (size_t)n, ".%03dZ", (int)(tv.tv_usec / 1000));

    if (log_format_ == LOG_JSON) {
        char where[256];
        snprintf(where, sizeof where, "%s:%d", base_name(file), line);
        json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "time", when, "level", level_names[level],
                              "where", where, "message", msg);
        if (o && job) json_object_set_new(o, "job", json_string(job));
        char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        n = snprintf(out, sizeof out, "%s\n", s ? s : msg);
        free(s);
        json_decref(o);
    } else {
        n = snprintf(out, sizeof out, "%s %-5s %s %s:%d %s\n", when, level_names[level],
                     job ? job : "-", base_name(file), line, msg);
    }
    if (n < 0) return;
    if ((size_t)n >= sizeof out) {
        n = sizeof out - 1;
        out[n - 1] = '\n';
    }
    /* One write per line so lines from threads do not interleave. */
    ssize_t w = write(STDERR_FILENO, out, (size_t)n);
    (void)w;
}
