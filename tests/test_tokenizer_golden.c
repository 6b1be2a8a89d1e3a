/* test_tokenizer_golden.c - the legacy tokenizer against every line of the golden files */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ct.h"
#include "err.h"
#include "tokenizer.h"

/*
 * The golden files follow transformers' BertTokenizerLegacy: with
 * transformers 5.24.0 it gives every one of their 24,770 lines exactly, so
 * this checks TOK_BERT_LEGACY with no exceptions.  TOK_BERT, the default,
 * is checked against transformers itself by test_tokenizer_oracle.py.
 */

#define SHOW_MAX 5 /* mismatches printed per file */

static void print_expected(json_t *arr)
{
    char *s = json_dumps(arr, JSON_COMPACT | JSON_ENSURE_ASCII);
    fprintf(stderr, "    expected %s\n", s ? s : "?");
    free(s);
}

static void print_got(const struct tokenizer *t, const struct tok_ids *ids, int as_tokens)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < ids->n; i++) {
        const char *tok = tok_id_to_token(t, ids->ids[i]);
        json_array_append_new(arr,
                              as_tokens ? json_string(tok ? tok : "?") : json_integer(ids->ids[i]));
    }
    char *s = json_dumps(arr, JSON_COMPACT | JSON_ENSURE_ASCII);
    fprintf(stderr, "    got      %s\n", s ? s : "?");
    free(s);
    json_decref(arr);
}

/* Whether ids equal the expected array: of ids (as_tokens 0) or tokens. */
static int same(const struct tokenizer *t, const struct tok_ids *ids, json_t *want, int as_tokens)
{
    if (!json_is_array(want) || json_array_size(want) != ids->n) return 0;
    for (size_t i = 0; i < ids->n; i++) {
        json_t *w = json_array_get(want, i);
        if (as_tokens) {
            const char *tok = tok_id_to_token(t, ids->ids[i]);
            if (!json_is_string(w) || !tok || strcmp(json_string_value(w), tok) != 0) return 0;
        } else if (!json_is_integer(w) || json_integer_value(w) != ids->ids[i]) {
            return 0;
        }
    }
    return 1;
}

/*
 * Checks every line of path; field is "ids" (dev file) or "tokens"
 * (code point file).  Returns the number of lines read, -1 when the file is
 * unreadable; *bad gets the mismatches (up to two a line).
 */
static long check_file(struct tokenizer *tk[2], const char *path, const char *field, long *bad)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "FAIL: cannot open golden file %s\n", path);
        return -1;
    }
    int as_tokens = strcmp(field, "tokens") == 0;
    char *line = NULL, *buf = NULL, err[256];
    size_t cap = 0, bufcap = 0;
    long n = 0, shown = 0;
    struct tok_ids ids = {0};
    *bad = 0;
    while (getline(&line, &cap, f) > 0) {
        json_error_t jerr;
        n++;
        json_t *o = json_loads(line, JSON_ALLOW_NUL, &jerr);
        json_t *lower = json_object_get(o, "lower");
        json_t *text = json_object_get(o, "text");
        json_t *want = json_object_get(o, field);
        if (!o || !json_is_boolean(lower) || !json_is_string(text) || !json_is_array(want)) {
            fprintf(stderr, "%s:%ld: not a golden line (%s)\n", path, n, o ? "fields" : jerr.text);
            (*bad)++;
            json_decref(o);
            continue;
        }
        struct tokenizer *t = tk[json_is_true(lower) ? 1 : 0];
        /* Each text twice: as is, then behind U+F0000 (private use: dropped
         * by the first step, and outside the fast path's table, so the text
         * takes the slow path). */
        size_t tlen = json_string_length(text);
        if (tlen + 5 > bufcap) {
            bufcap = tlen + 64;
            buf = realloc(buf, bufcap);
            if (!buf) {
                fprintf(stderr, "out of memory\n");
                exit(EXIT_FAILURE);
            }
        }
        memcpy(buf, "\xF3\xB0\x80\x80", 4);
        memcpy(buf + 4, json_string_value(text), tlen);
        for (int slow = 0; slow < 2; slow++) {
            int rc =
                tok_tokenize(t, buf + (slow ? 0 : 4), tlen + (slow ? 4 : 0), &ids, err, sizeof err);
            if (rc == 0 && same(t, &ids, want, as_tokens)) continue;
            (*bad)++;
            if (shown++ < SHOW_MAX) {
                char *s = json_dumps(text, JSON_ENCODE_ANY | JSON_ENSURE_ASCII);
                fprintf(stderr, "%s:%ld: mismatch%s, lower=%d text=%s\n", path, n,
                        slow ? " (with U+F0000 in front)" : "", json_is_true(lower), s ? s : "?");
                free(s);
                print_expected(want);
                if (rc)
                    fprintf(stderr, "    got      error %d: %s\n", rc, err);
                else
                    print_got(t, &ids, as_tokens);
            }
        }
        json_decref(o);
    }
    free(line);
    free(buf);
    tok_ids_free(&ids);
    fclose(f);
    printf("%s: %ld lines, each as is and behind U+F0000: %ld mismatches\n", path, n, *bad);
    return n;
}

int main(void)
{
    const char *shared = getenv("PRUNERD_SHARED");
    char vocab[4096], dev[4096], cps[4096], err[256];
    struct tokenizer *tk[2] = {NULL, NULL};
    long bad = 0, n;
    if (!shared || !*shared) {
        fprintf(stderr, "FAIL: PRUNERD_SHARED is not set (the shared data folder)\n");
        return EXIT_FAILURE;
    }
    snprintf(vocab, sizeof vocab, "%s/data/vocab/bert-base-chinese-vocab.txt", shared);
    snprintf(dev, sizeof dev, "%s/data/golden/tokenize-dev.jsonl", shared);
    snprintf(cps, sizeof cps, "%s/data/golden/tokenize-codepoints.jsonl", shared);
    for (int lower = 0; lower < 2; lower++) {
        int rc = tok_open(vocab, TOK_BERT_LEGACY, lower, &tk[lower], err, sizeof err);
        CHECK(rc == 0 && tk[lower] != NULL, "tok_open(%s): %s", vocab, err);
    }
    if (!tk[0] || !tk[1]) goto out;

    n = check_file(tk, dev, "ids", &bad);
    CHECK(n == 20052, "%s: expected 20052 lines, read %ld", dev, n);
    CHECK(bad == 0, "%s: %ld lines differ", dev, bad);

    n = check_file(tk, cps, "tokens", &bad);
    CHECK(n == 4718, "%s: expected 4718 lines, read %ld", cps, n);
    CHECK(bad == 0, "%s: %ld lines differ", cps, bad);
out:
    tok_destroy(tk[0]);
    tok_destroy(tk[1]);
    return ct_done("test_tokenizer_golden");
}
