/* log.h - one line per event on stderr: time, level, job id, place, message */
#ifndef PRUNERD_LOG_H
#define PRUNERD_LOG_H

#include <errno.h>

enum log_level { LOG_ERR, LOG_WARN, LOG_INFO, LOG_DEBUG };
enum log_format { LOG_TEXT, LOG_JSON };

/* Sets the level and format for the process; call once at start-up, before
 * any thread starts (the only process-wide setting). Default: info, text. */
void log_setup(enum log_level level, enum log_format format);
int log_enabled(enum log_level level);

/* Writes one line.  job is a job id or NULL; errnum is an errno to append as
 * ": strerror(errnum)", or 0.  Thread-safe (one write(2) per line). */
void log_write(enum log_level level, const char *file, int line, const char *job, int errnum,
               const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/*
 * log_info(job, fmt, ...): job is the job id the event is about, or NULL.
 * The level is checked before the arguments are evaluated.  The _errno
 * variants add strerror(errno), captured before anything else runs.
 */
#define log_at_(lvl, job, errnum, ...)                                                             \
    do {                                                                                           \
        if (log_enabled(lvl)) log_write(lvl, __FILE__, __LINE__, job, errnum, __VA_ARGS__);        \
    } while (0)
#define log_errno_at_(lvl, job, ...)                                                               \
    do {                                                                                           \
        int log_saved_errno_ = errno;                                                              \
        if (log_enabled(lvl))                                                                      \
            log_write(lvl, __FILE__, __LINE__, job, log_saved_errno_, __VA_ARGS__);                \
        errno = log_saved_errno_;                                                                  \
    } while (0)

#define log_debug(job, ...) log_at_(LOG_DEBUG, job, 0, __VA_ARGS__)
#define log_info(job, ...) log_at_(LOG_INFO, job, 0, __VA_ARGS__)
#define log_warn(job, ...) log_at_(LOG_WARN, job, 0, __VA_ARGS__)
#define log_err(job, ...) log_at_(LOG_ERR, job, 0, __VA_ARGS__)
#define log_warn_errno(job, ...) log_errno_at_(LOG_WARN, job, __VA_ARGS__)
#define log_err_errno(job, ...) log_errno_at_(LOG_ERR, job, __VA_ARGS__)

#endif
