/* fuzz_http_headers.c - libFuzzer target: range_parse and range_if_none_match on header text */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "range.h"

/*
 * Input: 8 bytes of file size (little-endian), then "RANGE\nIF-NONE-MATCH\nETAG"
 * (the parts after the first newline optional; a missing etag is one shaped
 * like api/jobs.c's, a quoted sha256).  A NUL ends the text, as it would
 * end a header value.
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t fsize = 0;
    for (size_t i = 0; i < 8 && i < size; i++)
        fsize |= (uint64_t)data[i] << (8 * i);
    size_t off = size < 8 ? size : 8;
    char *text = malloc(size - off + 1);
    if (!text) return 0;
    memcpy(text, data + off, size - off);
    text[size - off] = '\0';

    char *list = strchr(text, '\n'), *etag = NULL;
    if (list) *list++ = '\0';
    if (list && (etag = strchr(list, '\n'))) *etag++ = '\0';

    uint64_t start = 0, len = 0;
    enum range_result r = range_parse(text, fsize, &start, &len);
    if (r == RANGE_OK && (len == 0 || start >= fsize || len > fsize - start)) {
        fprintf(stderr, "range_parse(\"%s\", %llu): start %llu len %llu outside the file\n", text,
                (unsigned long long)fsize, (unsigned long long)start, (unsigned long long)len);
        abort();
    }
    if (r != RANGE_NONE && r != RANGE_OK && r != RANGE_UNSATISFIABLE) abort();

    static const char sha_tag[] =
        "\"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"";
    (void)range_if_none_match(list, etag ? etag : sha_tag);
    (void)range_if_none_match(text, sha_tag);
    (void)range_if_none_match(NULL, sha_tag);
    free(text);
    return 0;
}
