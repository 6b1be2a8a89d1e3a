/* range.h - the HTTP Range header for single byte ranges, and If-None-Match */
#ifndef PRUNERD_RANGE_H
#define PRUNERD_RANGE_H

#include <stdint.h>

enum range_result {
    RANGE_NONE,          /* absent, malformed, or several ranges: send the whole file (200) */
    RANGE_OK,            /* one satisfiable range: 206 with *start, *len */
    RANGE_UNSATISFIABLE, /* 416 with Content-Range: bytes * / size */
};

/* Parses "bytes=a-b", "bytes=a-" or "bytes=-n" against a file of size bytes. */
enum range_result range_parse(const char *header, uint64_t size, uint64_t *start, uint64_t *len);

/* Does an If-None-Match list ("a", W/"b", or *) name etag (a quoted
 * strong tag)?  Weak comparison, as RFC 9110 asks for GET; NULL: no. */
int range_if_none_match(const char *list, const char *etag);

#endif
