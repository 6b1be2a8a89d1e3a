/* fuzz_job_request.c - libFuzzer target: job_request_normalize and job_spec_from_stored on JSON
 * text */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "err.h"
#include "job.h"

/* A request normalizes to itself: what job_request_normalize returned must
 * pass again, unchanged (the queue stores it and reads it back). */
static void check_fixed_point(const json_t *norm)
{
    struct job_field_error fe;
    struct job_spec spec;
    json_t *again = NULL;
    int rc = job_request_normalize(norm, &again, &spec, &fe);
    if (rc != 0) {
        fprintf(stderr, "normalized request refused: %d %s: %s\n", rc, fe.field, fe.message);
        abort();
    }
    if (!json_equal(again, (json_t *)norm)) {
        char *a = json_dumps(norm, JSON_SORT_KEYS), *b = json_dumps(again, JSON_SORT_KEYS);
        fprintf(stderr, "normalizing twice differs:\n%s\n%s\n", a, b);
        abort();
    }
    job_spec_free(&spec);
    json_decref(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct job_field_error fe;
    struct job_spec spec;
    json_t *out = NULL;
    json_error_t je;

    /* as POST /v1/jobs reads a body (api/jobs.c) */
    json_t *in = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &je);
    if (in) {
        int rc = job_request_normalize(in, &out, &spec, &fe);
        if (rc == 0) {
            check_fixed_point(out);
            job_spec_free(&spec);
            json_decref(out);
        } else if (out || spec.model || spec.targets) {
            fprintf(stderr, "rc %d left *out or spec filled\n", rc);
            abort();
        }
        /* only spec, no JSON out */
        if (job_request_normalize(in, NULL, &spec, &fe) == 0) job_spec_free(&spec);
        json_decref(in);
    }

    /* as the queue reads its stored text (NUL-terminated) */
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    out = NULL;
    if (job_spec_from_stored(text, &out, &spec, &fe) == 0) {
        job_spec_free(&spec);
        json_decref(out);
    }
    free(text);
    return 0;
}
