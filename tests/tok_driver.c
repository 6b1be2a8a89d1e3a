/* tok_driver.c - core/tokenizer over JSON lines, for test_tokenizer_oracle.py */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "err.h"
#include "tokenizer.h"

/*
 *   tok_driver VOCAB bert|bert_legacy lower|cased < TEXTS > IDS
 *
 * TEXTS holds one JSON string a line (NUL allowed); IDS gets, for each, a
 * JSON array of its ids (no [CLS]/[SEP]), or {"error": "..."} when
 * tok_tokenize refuses it.
 *
 *   tok_driver --assigned FIRST LAST
 *
 * prints, one decimal a line, the code points in [FIRST, LAST] that utf8proc
 * assigns (category not Cn; surrogates left out), so the oracle can test
 * those Python's older unicodedata does not know.
 */

static int assigned(const char *first, const char *last)
{
    long lo = strtol(first, NULL, 0), hi = strtol(last, NULL, 0);
    if (lo < 0 || hi > 0x10FFFF || lo > hi) {
        fprintf(stderr, "tok_driver: bad range %s..%s\n", first, last);
        return EXIT_FAILURE;
    }
    for (long cp = lo; cp <= hi; cp++)
        if ((cp < 0xD800 || cp > 0xDFFF) &&
            utf8proc_category((utf8proc_int32_t)cp) != UTF8PROC_CATEGORY_CN)
            printf("%ld\n", cp);
    return EXIT_SUCCESS;
}

int main(int argc, char **argv)
{
    static char outbuf[1 << 16];
    char err[256];
    enum tok_mode mode;
    if (argc == 4 && !strcmp(argv[1], "--assigned")) return assigned(argv[2], argv[3]);
    if (argc != 4 || tok_mode_parse(argv[2], &mode) ||
        (strcmp(argv[3], "lower") && strcmp(argv[3], "cased"))) {
        fprintf(stderr, "usage: tok_driver VOCAB bert|bert_legacy lower|cased < TEXTS\n"
                        "       tok_driver --assigned FIRST LAST\n");
        return 2;
    }
    struct tokenizer *t;
    if (tok_open(argv[1], mode, !strcmp(argv[3], "lower"), &t, err, sizeof err)) {
        fprintf(stderr, "tok_driver: %s\n", err);
        return EXIT_FAILURE;
    }
    setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf);
    struct tok_ids ids = {0};
    char *line = NULL;
    size_t cap = 0;
    long n = 0;
    int rc = EXIT_SUCCESS;
    while (getline(&line, &cap, stdin) > 0) {
        json_error_t jerr;
        n++;
        json_t *s = json_loads(line, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
        if (!json_is_string(s)) {
            fprintf(stderr, "tok_driver: line %ld is not a JSON string (%s)\n", n, jerr.text);
            json_decref(s);
            rc = EXIT_FAILURE;
            break;
        }
        if (tok_tokenize(t, json_string_value(s), json_string_length(s), &ids, err, sizeof err)) {
            json_t *e = json_pack("{s:s}", "error", err);
            char *d = json_dumps(e, JSON_COMPACT);
            puts(d ? d : "{\"error\": \"?\"}");
            free(d);
            json_decref(e);
        } else {
            putchar('[');
            for (size_t i = 0; i < ids.n; i++)
                printf(i ? ",%d" : "%d", ids.ids[i]);
            fputs("]\n", stdout);
        }
        json_decref(s);
    }
    free(line);
    tok_ids_free(&ids);
    tok_destroy(t);
    if (fflush(stdout) != 0) rc = EXIT_FAILURE;
    return rc;
}
