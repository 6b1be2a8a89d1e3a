/* test_job_request.c - job requests: field checks, defaults, path resolution */
#include <string.h>

#include <jansson.h>

#include "ct.h"
#include "err.h"
#include "job.h"

static const char seed_job[] =
    "{\"model\": \"models/bert.pt\", \"targets\": [\"bert.encoder.layer.*.attention.self.query\"],"
    " \"method\": \"l1_unstructured\", \"amount\": 0.3, \"scope\": \"global\","
    " \"eval\": {\"data\": \"dev.txt\", \"vocab\": \"vocab.txt\", \"classes\": \"class.txt\"}}";

/* Normalizes text; returns the rc and fills fe, *out. */
static int norm(const char *text, json_t **out, struct job_field_error *fe)
{
    json_error_t je;
    json_t *in = json_loads(text, 0, &je);
    if (!in) {
        fprintf(stderr, "bad test JSON: %s: %s\n", text, je.text);
        return -100;
    }
    int rc = job_request_normalize(in, out, fe);
    json_decref(in);
    return rc;
}

/* Applies a patch to the seed job and expects a failure naming field. */
static void expect_bad(const char *patch, const char *field, const char *words)
{
    json_error_t je;
    json_t *job = json_loads(seed_job, 0, &je), *p = json_loads(patch, 0, &je), *out = NULL;
    struct job_field_error fe;
    json_object_update(job, p);
    int rc = job_request_normalize(job, &out, &fe);
    CHECK(rc == ERR_INVALID && out == NULL, "%s: rc %d", patch, rc);
    CHECK(!strcmp(fe.field, field), "%s: field '%s', expected '%s'", patch, fe.field, field);
    CHECK(strstr(fe.message, words) != NULL, "%s: message '%s' lacks '%s'", patch, fe.message, words);
    json_decref(job);
    json_decref(p);
    json_decref(out);
}

static void test_defaults(void)
{
    json_t *out = NULL;
    struct job_field_error fe;
    CHECK_INT(norm(seed_job, &out, &fe), 0);
    if (!out) return;
    json_t *ev = json_object_get(out, "eval"), *o = json_object_get(out, "options");
    CHECK_INT(json_integer_value(json_object_get(ev, "max_length")), 32);
    CHECK_INT(json_integer_value(json_object_get(ev, "batch_size")), 256);
    CHECK(json_is_true(json_object_get(ev, "lowercase")), "lowercase default");
    CHECK(!strcmp(json_string_value(json_object_get(ev, "padding")), "exact"), "padding default");
    CHECK(!strcmp(json_string_value(json_object_get(ev, "tokenizer")), "bert"),
          "tokenizer default '%s'", json_string_value(json_object_get(ev, "tokenizer")));
    CHECK(json_is_null(json_object_get(ev, "limit")), "limit default");
    CHECK(!strcmp(json_string_value(json_object_get(out, "amount_kind")), "fraction"), "amount kind");
    CHECK(json_is_real(json_object_get(out, "amount")), "amount real");
    CHECK_INT(json_integer_value(json_object_get(o, "dim")), -1);
    CHECK(json_is_false(json_object_get(o, "iterative")), "iterative default");
    CHECK(json_is_null(json_object_get(o, "seed")), "seed default");
    CHECK_INT(json_array_size(json_object_get(out, "outputs")), 2);
    CHECK(!strcmp(json_string_value(json_object_get(out, "device")), "auto"), "device default");
    /* Normalizing a normalized request changes nothing. */
    json_t *again = NULL;
    CHECK_INT(job_request_normalize(out, &again, &fe), 0);
    CHECK(json_equal(out, again), "normalize is not idempotent");
    json_decref(again);
    json_decref(out);
}

static void test_tokenizer(void)
{
    static const char legacy[] = "{\"model\": \"m\", \"targets\": \"x\", \"amount\": 0.1, "
                                 "\"eval\": {\"data\": \"d\", \"vocab\": \"v\","
                                 " \"classes\": \"c\", \"tokenizer\": \"bert_legacy\"}}";
    json_t *out = NULL;
    struct job_field_error fe;
    CHECK(norm(legacy, &out, &fe) == 0, "%s: %s", fe.field, fe.message);
    const char *tk = json_string_value(json_object_get(json_object_get(out, "eval"), "tokenizer"));
    CHECK(tk && !strcmp(tk, "bert_legacy"), "tokenizer '%s'", tk ? tk : "(none)");
    json_decref(out);
}

static void test_amounts(void)
{
    static const struct {
        const char *json;
        const char *kind;
        int is_int;
    } cases[] = {
        {"{\"model\":\"m\",\"targets\":\"x\",\"amount\":1}", "count", 1},
        {"{\"model\":\"m\",\"targets\":\"x\",\"amount\":1.0}", "fraction", 0},
        {"{\"model\":\"m\",\"targets\":\"x\",\"amount\":1,\"amount_kind\":\"fraction\"}", "fraction", 0},
        {"{\"model\":\"m\",\"targets\":\"x\",\"amount\":7.0,\"amount_kind\":\"count\"}", "count", 1},
        {"{\"model\":\"m\",\"targets\":\"x\",\"amount\":0}", "count", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *out = NULL;
        struct job_field_error fe;
        CHECK(norm(cases[i].json, &out, &fe) == 0, "%s: %s: %s", cases[i].json, fe.field, fe.message);
        if (!out) continue;
        CHECK(!strcmp(json_string_value(json_object_get(out, "amount_kind")), cases[i].kind),
              "%s: kind %s", cases[i].json, json_string_value(json_object_get(out, "amount_kind")));
        CHECK(json_is_integer(json_object_get(out, "amount")) == cases[i].is_int, "%s: amount type",
              cases[i].json);
        json_decref(out);
    }
}

static void test_bad_fields(void)
{
    expect_bad("{\"amount\": -1}", "amount", "non-negative integer");
    expect_bad("{\"amount\": 1.5}", "amount", "range [0, 1]");
    expect_bad("{\"amount\": -0.1}", "amount", "range [0, 1]");
    expect_bad("{\"amount\": \"lots\"}", "amount", "number");
    expect_bad("{\"amount\": 0.5, \"amount_kind\": \"count\"}", "amount", "whole number");
    expect_bad("{\"amount\": 2, \"amount_kind\": \"fraction\"}", "amount", "range [0, 1]");
    expect_bad("{\"amount_kind\": \"percent\"}", "amount_kind", "one of");
    expect_bad("{\"model\": 3}", "model", "string");
    expect_bad("{\"model\": \"\"}", "model", "empty");
    expect_bad("{\"targets\": []}", "targets", "non-empty");
    expect_bad("{\"targets\": [\"a\", 1]}", "targets", "targets[1]");
    expect_bad("{\"method\": \"l3\"}", "method", "l1_unstructured");
    expect_bad("{\"method\": \"ln_structured\", \"options\": {\"n\": 2}}", "scope", "global");
    expect_bad("{\"method\": \"ln_structured\", \"scope\": \"local\"}", "options.n", "required");
    expect_bad("{\"method\": \"ln_structured\", \"scope\": \"local\", \"options\": {\"n\": 0}}", "options.n", "> 0");
    expect_bad("{\"method\": \"ln_structured\", \"scope\": \"local\", \"options\": {\"n\": \"nuc\"}}", "options.n", "fro");
    expect_bad("{\"method\": \"threshold\", \"scope\": \"local\"}", "options.threshold", "required");
    expect_bad("{\"method\": \"custom_from_mask\", \"scope\": \"local\"}", "options.mask", "required");
    expect_bad("{\"method\": \"plugin\", \"scope\": \"local\", \"options\": {\"plugin\": \"../evil\"}}",
               "options.plugin", "plugin name");
    expect_bad("{\"options\": {\"dim\": 1.5}}", "options.dim", "integer");
    expect_bad("{\"options\": {\"seed\": -3}}", "options.seed", "integer");
    expect_bad("{\"options\": {\"iterative\": 1}}", "options.iterative", "true or false");
    expect_bad("{\"options\": {\"typo\": 1}}", "options.typo", "unknown");
    expect_bad("{\"options\": []}", "options", "object");
    expect_bad("{\"eval\": {\"data\": \"d\", \"vocab\": \"v\", \"classes\": \"c\", \"max_length\": 1000}}",
               "eval.max_length", "must be an integer from 2 to 512");
    expect_bad("{\"eval\": {\"data\": \"d\", \"vocab\": \"v\"}}", "eval.classes", "required");
    expect_bad("{\"eval\": {\"data\": \"d\", \"vocab\": \"v\", \"classes\": \"c\", \"padding\": \"some\"}}",
               "eval.padding", "exact");
    expect_bad("{\"eval\": {\"data\": \"d\", \"vocab\": \"v\", \"classes\": \"c\", \"limit\": 0}}",
               "eval.limit", "integer");
    expect_bad("{\"eval\": {\"data\": \"d\", \"vocab\": \"v\", \"classes\": \"c\", \"tokenizer\": "
               "\"wordpiece\"}}",
               "eval.tokenizer", "must be one of \"bert\", \"bert_legacy\"");
    expect_bad(
        "{\"eval\": {\"data\": \"d\", \"vocab\": \"v\", \"classes\": \"c\", \"tokenizer\": 1}}",
        "eval.tokenizer", "one of");
    expect_bad("{\"eval\": 5}", "eval", "object");
    expect_bad("{\"outputs\": [\"onnx\"]}", "outputs", "torchscript");
    expect_bad("{\"outputs\": [\"torchscript\", \"torchscript\"]}", "outputs", "once");
    expect_bad("{\"device\": \"tpu\"}", "device", "cuda");
    expect_bad("{\"colour\": \"red\"}", "colour", "unknown");

    json_t *out = NULL;
    struct job_field_error fe;
    CHECK(norm("[1, 2]", &out, &fe) == ERR_INVALID && out == NULL, "array job accepted");
}

static int deny_data(void *ud, const char *field, const char *path, char *out, size_t outlen,
                     char *err, size_t errlen)
{
    int *calls = ud;
    (*calls)++;
    if (!strcmp(field, "eval.data")) return err_set(err, errlen, ERR_DENIED, "%s is outside the data roots", path);
    snprintf(out, outlen, "/roots/%s", path);
    return 0;
}

static void test_resolve(void)
{
    json_t *out = NULL;
    struct job_field_error fe;
    int calls = 0;
    CHECK_INT(norm(seed_job, &out, &fe), 0);
    if (!out) return;
    CHECK_INT(job_request_resolve_paths(out, deny_data, &calls, &fe), ERR_DENIED);
    CHECK(!strcmp(fe.field, "eval.data"), "field %s", fe.field);
    CHECK(strstr(fe.message, "outside") != NULL, "message %s", fe.message);
    CHECK(!strcmp(json_string_value(json_object_get(out, "model")), "/roots/models/bert.pt"), "model %s",
          json_string_value(json_object_get(out, "model")));
    CHECK_INT(calls, 2);
    json_decref(out);
}

int main(void)
{
    test_defaults();
    test_tokenizer();
    test_amounts();
    test_bad_fields();
    test_resolve();
    return ct_done("test_job_request");
}
