/* err.h - the one error convention: 0 on success, a negative ERR_* on failure */
#ifndef PRUNERD_ERR_H
#define PRUNERD_ERR_H

#include <stdarg.h>
#include <stddef.h>

/*
 * Functions return int: 0 on success, one of these on failure, with the
 * human-readable reason written into a caller-supplied (char *err, size_t
 * errlen) buffer where the caller needs text.  Constructors return NULL and
 * change nothing on failure.
 */
enum {
    ERR_OK = 0,
    ERR_INVALID = -1,     /* bad input: argument, field, amount, shape */
    ERR_NOTFOUND = -2,    /* file, parameter, target, job */
    ERR_IO = -3,          /* read, write, fsync, rename */
    ERR_NOMEM = -4,       /* allocation failed */
    ERR_FORMAT = -5,      /* a file that is not what it should be */
    ERR_TORCH = -6,       /* libtorch raised */
    ERR_UNSUPPORTED = -7, /* valid, but not done here (e.g. no CUDA) */
    ERR_CANCELLED = -8,   /* stopped on request */
    ERR_DENIED = -9,      /* path outside the configured roots */
    ERR_INTERNAL = -10,   /* a bug or an impossible state */
    ERR_DB = -11,         /* SQLite */
    ERR_NOSPACE = -12,    /* disk full or quota reached */
    ERR_CONFLICT = -13,   /* clashes with what is already there */
};

/* Writes a printf-style message into err (if err and errlen are set) and
 * returns code, so callers can `return err_set(err, errlen, ERR_INVALID, ...)`. */
int err_set(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* A short name for a code ("invalid", "not_found", ...). Static storage. */
const char *err_name(int code);

#endif
