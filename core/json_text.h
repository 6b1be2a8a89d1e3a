/* json_text.h - JSON text with every real in its shortest round-trip form */
#ifndef PRUNERD_JSON_TEXT_H
#define PRUNERD_JSON_TEXT_H

#include <stddef.h>

#include <jansson.h>

/*
 * jansson prints reals with a fixed digit count (%.17g: 0.3 becomes
 * 0.29999999999999999).  json_text_dumps is json_dumps (same flags) with
 * each real rewritten in the fewest significant digits (%.1g to %.17g)
 * that read back to the same double, as Python's repr and JavaScript
 * choose them ("0.3", "1e-12", "0.30000000000000004", "5e-324"),
 * positional from 1e-4 to below 1e16 ("100.0", not "1e2") and otherwise
 * with the exponent as jansson writes it ("1e20", "2.5e-5"); a real that prints as
 * an integer keeps a ".0" (jansson's rule, so it reads back as a real).
 * Strings and integers are untouched.  NULL when out of memory; free() the
 * text.
 *
 * json_text_real writes one double the same way into buf (for messages
 * that quote a value); returns buf.
 */
char *json_text_dumps(const json_t *j, size_t flags);
const char *json_text_real(double v, char *buf, size_t n);

/* A JSON string of the bytes of s, which need not be UTF-8 (a URL's %ff, a
 * message cut mid-character): each invalid or cut sequence becomes U+FFFD,
 * as a browser shows it, and NUL ends s.  json_string() would return NULL
 * instead.  A new reference; NULL when out of memory. */
json_t *json_text_string(const char *s);

#endif
