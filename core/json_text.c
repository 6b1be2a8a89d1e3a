/* json_text.c - JSON text with every real in its shortest round-trip form */
#include "json_text.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

/* "1e+20" -> "1e20", "2.5e-05" -> "2.5e-5": the exponent as jansson writes it. */
static void tidy_exponent(char *s)
{
    char *e = strpbrk(s, "eE");
    if (!e) return;
    char *d = e + 1, *r = d;
    if (*r == '+')
        r++;
    else if (*r == '-')
        *d++ = *r++;
    while (*r == '0' && r[1])
        r++;
    memmove(d, r, strlen(r) + 1);
}

const char *json_text_real(double v, char *buf, size_t n)
{
    int digits = 1;
    for (; digits < 17; digits++) {
        snprintf(buf, n, "%.*g", digits, v);
        if (strtod(buf, NULL) == v) break;
    }
    /* Positional notation from 1e-4 to below 1e16, as Python's repr: "100.0"
     * rather than "1e2" (%g goes to an exponent when it exceeds the digits). */
    char t[40];
    snprintf(t, sizeof t, "%.*e", digits - 1, v);
    const char *e = strchr(t, 'e');
    int exp = e ? atoi(e + 1) : 0;
    if (exp >= -4 && exp < 16 && exp + 1 > digits) digits = exp + 1;
    snprintf(buf, n, "%.*g", digits, v);
    tidy_exponent(buf);
    return buf;
}

/* The real token t (len bytes) rewritten shortest into out; its length. */
static size_t shorten(const char *t, size_t len, char *out, size_t n)
{
    char tok[64];
    if (len >= sizeof tok) return (size_t)snprintf(out, n, "%.*s", (int)len, t);
    memcpy(tok, t, len);
    tok[len] = '\0';
    json_text_real(strtod(tok, NULL), out, n);
    if (!strpbrk(out, ".eEn")) strncat(out, ".0", n - strlen(out) - 1); /* stays a real */
    return strlen(out);
}

char *json_text_dumps(const json_t *j, size_t flags)
{
    char *text = json_dumps(j, flags);
    if (!text) return NULL;
    /* Outside strings, a number token with '.', 'e' or 'E' is a real (jansson
     * writes integers as plain digits).  Shortening never lengthens a token
     * (jansson's own is 17 significant digits), so the rewrite is in place. */
    char *w = text;
    int in_string = 0;
    for (const char *r = text; *r;) {
        if (in_string) {
            if (*r == '\\' && r[1]) {
                *w++ = *r++;
            } else if (*r == '"') {
                in_string = 0;
            }
            *w++ = *r++;
            continue;
        }
        if (*r == '"') {
            in_string = 1;
            *w++ = *r++;
            continue;
        }
        if (*r == '-' || isdigit((unsigned char)*r)) {
            size_t len = strspn(r, "+-0123456789.eE");
            if (memchr(r, '.', len) || memchr(r, 'e', len) || memchr(r, 'E', len)) {
                char out[64];
                size_t m = shorten(r, len, out, sizeof out);
                if (m <= len) {
                    memcpy(w, out, m);
                    w += m;
                    r += len;
                    continue;
                }
            }
            memmove(w, r, len);
            w += len;
            r += len;
            continue;
        }
        *w++ = *r++;
    }
    *w = '\0';
    return text;
}

json_t *json_text_string(const char *s)
{
    size_t n = strlen(s), w = 0;
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
    /* U+FFFD is 3 bytes, and takes the place of at least 1. */
    char *buf = malloc(3 * n + 1);
    json_t *j;
    if (!buf) return NULL;
    for (size_t i = 0; i < n;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(p + i, (utf8proc_ssize_t)(n - i), &cp);
        if (k > 0) {
            memcpy(buf + w, s + i, (size_t)k);
            w += (size_t)k;
            i += (size_t)k;
        } else {
            memcpy(buf + w, "\xef\xbf\xbd", 3);
            w += 3;
            i++;
        }
    }
    j = json_stringn(buf, w);
    free(buf);
    return j;
}
