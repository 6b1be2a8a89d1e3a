/* fuzz_server_config.c - libFuzzer target: config_parse_text and config_validate on INI text */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    struct config c;
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0'; /* a NUL inside ends the text, as it would in the file */

    if (config_init(&c, err, sizeof err) != 0) abort();
    if (config_parse_text(&c, text, "fuzz.conf", err, sizeof err) == 0) {
        config_validate(&c, err, sizeof err);
        /* a second file over the first: lists grow, strings are replaced */
        if (config_parse_text(&c, text, "fuzz.conf", err, sizeof err) == 0)
            config_validate(&c, err, sizeof err);
    }
    config_free(&c);
    free(text);
    return 0;
}
