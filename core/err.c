/* err.c - error messages and names for core/err.h codes */
#include "err.h"

#include <stdio.h>

int err_set(char *err, size_t errlen, int code, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

const char *err_name(int code)
{
    switch (code) {
    case ERR_OK:
        return "ok";
    case ERR_INVALID:
        return "invalid";
    case ERR_NOTFOUND:
        return "not_found";
    case ERR_IO:
        return "io";
    case ERR_NOMEM:
        return "no_memory";
    case ERR_FORMAT:
        return "format";
    case ERR_TORCH:
        return "torch";
    case ERR_UNSUPPORTED:
        return "unsupported";
    case ERR_CANCELLED:
        return "cancelled";
    case ERR_DENIED:
        return "denied";
    case ERR_INTERNAL:
        return "internal";
    case ERR_DB:
        return "database";
    case ERR_NOSPACE:
        return "no_space";
    case ERR_CONFLICT:
        return "conflict";
    }
    return "unknown";
}
