/* range.c - the HTTP Range header for single byte ranges (RFC 9110 14.2) and If-None-Match (13.1.2)
 */
#include "range.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

/* Reads decimal digits; returns the end or NULL on no digits / overflow. */
static const char *read_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (!isdigit((unsigned char)*s)) return NULL;
    for (; isdigit((unsigned char)*s); s++) {
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10) return NULL;
        v = v * 10 + d;
    }
    *out = v;
    return s;
}

enum range_result range_parse(const char *h, uint64_t size, uint64_t *start, uint64_t *len)
{
    uint64_t a = 0, b = 0;
    int has_a, has_b;

    if (!h) return RANGE_NONE;
    while (*h == ' ')
        h++;
    if (strncasecmp(h, "bytes", 5)) return RANGE_NONE;
    h += 5;
    while (*h == ' ')
        h++;
    if (*h++ != '=') return RANGE_NONE;
    while (*h == ' ')
        h++;
    if (strchr(h, ',')) /* several ranges: whole file */
        return RANGE_NONE;
    has_a = isdigit((unsigned char)*h);
    if (has_a && !(h = read_u64(h, &a))) return RANGE_NONE;
    if (*h++ != '-') return RANGE_NONE;
    has_b = isdigit((unsigned char)*h);
    if (has_b && !(h = read_u64(h, &b))) return RANGE_NONE;
    while (*h == ' ')
        h++;
    if (*h || (!has_a && !has_b) || (has_a && has_b && b < a))
        return RANGE_NONE; /* invalid: ignored, as RFC 9110 allows */
    if (!has_a) {          /* suffix: the last b bytes */
        if (b == 0 || size == 0) return RANGE_UNSATISFIABLE;
        *len = b < size ? b : size;
        *start = size - *len;
        return RANGE_OK;
    }
    if (a >= size) return RANGE_UNSATISFIABLE;
    if (!has_b || b >= size) b = size - 1;
    *start = a;
    *len = b - a + 1;
    return RANGE_OK;
}

int range_if_none_match(const char *list, const char *etag)
{
    size_t n = strlen(etag);
    if (!list) return 0;
    for (const char *p = list; *p;) {
        p += strspn(p, " \t,");
        if (*p == '*') return 1;
        if (!strncmp(p, "W/", 2)) p += 2; /* weak comparison, as RFC 9110 asks for GET */
        if (!strncmp(p, etag, n) && (p[n] == '\0' || p[n] == ',' || p[n] == ' ' || p[n] == '\t'))
            return 1;
        p += strcspn(p, ",");
    }
    return 0;
}
