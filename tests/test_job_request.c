/* test_job_request.c - job requests: field checks, defaults, path resolution */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ct.h"
#include "err.h"
#include "job.h"

static const char seed_job[] =
    "{\"model\": \"models/bert.pt\", \"targets\": [\"bert.encoder.layer.*.attention.self.query\"],"
    " \"method\": \"l1_unstructured\", \"amount\": 0.3, \"scope\": \"global\","
    " \"eval\": {\"data\": \"dev.txt\", \"vocab\": \"vocab.txt\", \"classes\": \"class.txt\"}}";

/* Normalizes text; returns the rc and fills fe, *out and (unless NULL) *spec. */
static int norm_spec(const char *text, json_t **out, struct job_spec *spec,
                     struct job_field_error *fe)
{
    json_error_t je;
    json_t *in = json_loads(text, 0, &je);
    if (!in) {
        fprintf(stderr, "bad test JSON: %s: %s\n", text, je.text);
        return -100;
    }
    int rc = job_request_normalize(in, out, spec, fe);
    json_decref(in);
    return rc;
}

static int norm(const char *text, json_t **out, struct job_field_error *fe)
{
    return norm_spec(text, out, NULL, fe);
}

static int str_is(const char *got, const char *want)
{
    return got && !strcmp(got, want);
}

/* Applies a patch to the job base and expects a failure naming field. */
static void expect_bad_in(const char *base, const char *patch, const char *field, const char *words)
{
    json_error_t je;
    json_t *job = json_loads(base, 0, &je), *p = json_loads(patch, 0, &je), *out = NULL;
    struct job_field_error fe;
    json_object_update(job, p);
    struct job_spec spec;
    int rc = job_request_normalize(job, &out, &spec, &fe);
    CHECK(rc == ERR_INVALID && out == NULL, "%s: rc %d", patch, rc);
    CHECK(spec.model == NULL && spec.targets == NULL, "%s: spec filled on failure", patch);
    job_spec_free(&spec);
    CHECK(!strcmp(fe.field, field), "%s: field '%s', expected '%s'", patch, fe.field, field);
    CHECK(strstr(fe.message, words) != NULL, "%s: message '%s' lacks '%s'", patch, fe.message,
          words);
    json_decref(job);
    json_decref(p);
    json_decref(out);
}

static void expect_bad(const char *patch, const char *field, const char *words)
{
    expect_bad_in(seed_job, patch, field, words);
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
    CHECK(json_is_null(json_object_get(ev, "lowercase")), "lowercase default: null (unset)");
    CHECK(!strcmp(json_string_value(json_object_get(ev, "padding")), "exact"), "padding default");
    CHECK(!strcmp(json_string_value(json_object_get(ev, "tokenizer")), "bert"),
          "tokenizer default '%s'", json_string_value(json_object_get(ev, "tokenizer")));
    CHECK(json_is_null(json_object_get(ev, "limit")), "limit default");
    CHECK(!strcmp(json_string_value(json_object_get(out, "amount_kind")), "fraction"),
          "amount kind");
    CHECK(json_is_real(json_object_get(out, "amount")), "amount real");
    CHECK_INT(json_integer_value(json_object_get(o, "dim")), -1);
    CHECK(json_is_false(json_object_get(o, "iterative")), "iterative default");
    CHECK(json_is_null(json_object_get(o, "seed")), "seed default");
    CHECK(json_is_null(json_object_get(out, "outputs")),
          "outputs default: null (the input's family)");
    CHECK(!strcmp(json_string_value(json_object_get(out, "device")), "auto"), "device default");
    /* Normalizing a normalized request changes nothing. */
    json_t *again = NULL;
    CHECK_INT(job_request_normalize(out, &again, NULL, &fe), 0);
    CHECK(json_equal(out, again), "normalize is not idempotent");
    json_decref(again);
    json_decref(out);
}

/* The typed request of the seed job: every default in the struct. */
static void test_spec_defaults(void)
{
    struct job_spec s;
    struct job_field_error fe;
    CHECK(norm_spec(seed_job, NULL, &s, &fe) == 0, "%s: %s", fe.field, fe.message);
    CHECK(str_is(s.model, "models/bert.pt"), "model %s", s.model ? s.model : "(null)");
    CHECK(s.model_config == NULL, "model_config %s", s.model_config);
    CHECK(s.ntargets == 1 && str_is(s.targets[0], "bert.encoder.layer.*.attention.self.query"),
          "targets (%zu)", s.ntargets);
    CHECK(s.method && s.method->id == PRUNE_L1_UNSTRUCTURED, "method %s",
          s.method ? s.method->name : "(null)");
    CHECK(s.has_amount && !s.amount.is_count && s.amount.fraction == 0.3, "amount %g",
          s.amount.fraction);
    CHECK_INT(s.scope, PRUNE_GLOBAL);
    CHECK(s.n == PRUNE_NORM_FRO, "n %g", s.n);
    CHECK_INT(s.dim, -1);
    CHECK(!s.has_seed && !s.has_threshold && !s.iterative, "seed, threshold, iterative unset");
    CHECK(!s.mask && !s.plugin && !s.plugin_params, "mask, plugin, plugin_params NULL");
    CHECK(s.has_eval, "eval");
    CHECK(str_is(s.eval.data, "dev.txt") && str_is(s.eval.vocab, "vocab.txt") &&
              str_is(s.eval.classes, "class.txt"),
          "eval files");
    CHECK_INT(s.eval.max_length, 32);
    CHECK_INT(s.eval.batch_size, 256);
    CHECK_INT(s.eval.lowercase, -1);
    CHECK_INT(s.eval.padding, EVAL_PAD_EXACT);
    CHECK_INT(s.eval.tokenizer, TOK_BERT);
    CHECK_INT(s.eval.limit, 0);
    CHECK_INT(s.outputs, 0);
    CHECK(str_is(s.device, "auto"), "device %s", s.device);
    CHECK(str_is(s.name, ""), "name %s", s.name);
    job_spec_free(&s);
    CHECK(s.model == NULL && s.ntargets == 0, "job_spec_free zeroes");
    job_spec_free(&s); /* twice, and on NULL: no-ops */
    job_spec_free(NULL);

    /* No eval, no amount: the method that takes none. */
    CHECK(norm_spec("{\"model\": \"m\", \"targets\": \"x\", \"method\": \"identity\"}", NULL, &s,
                    &fe) == 0,
          "%s: %s", fe.field, fe.message);
    CHECK(!s.has_eval && !s.eval.data && !s.has_amount, "identity: no eval, no amount");
    CHECK(s.ntargets == 1 && str_is(s.targets[0], "x"), "a target string is a list of one");
    job_spec_free(&s);
}

/* Every field set: each lands in its member. */
static void test_spec_fields(void)
{
    static const char full[] =
        "{\"model\": \"/m/bert.pt\", \"model_config\": \"/m/config.json\","
        " \"targets\": [\"a.*\", \"b\"], \"method\": \"ln_structured\","
        " \"amount\": 3, \"scope\": \"local\","
        " \"options\": {\"n\": \"-inf\", \"dim\": 0, \"seed\": 9007199254740993,"
        " \"threshold\": 0.25, \"mask\": \"mask.pt\", \"plugin\": \"foo_bar-1\","
        " \"plugin_params\": {\"k\": [1, 2.5]}, \"iterative\": true},"
        " \"eval\": {\"data\": \"d\", \"vocab\": \"v\", \"classes\": \"c\", \"max_length\": 128,"
        " \"batch_size\": 7, \"lowercase\": false, \"padding\": \"dynamic\", \"limit\": 100,"
        " \"tokenizer\": \"bert_legacy\"},"
        " \"outputs\": [\"state_dict\"], \"device\": \"cuda:1\", \"name\": \"full job\"}";
    struct job_spec s;
    struct job_field_error fe;
    CHECK(norm_spec(full, NULL, &s, &fe) == 0, "%s: %s", fe.field, fe.message);
    CHECK(str_is(s.model_config, "/m/config.json"), "model_config");
    CHECK(s.ntargets == 2 && str_is(s.targets[1], "b"), "targets");
    CHECK(s.method && s.method->id == PRUNE_LN_STRUCTURED, "method");
    CHECK(s.has_amount && s.amount.is_count && s.amount.count == 3, "amount count");
    CHECK_INT(s.scope, PRUNE_LOCAL);
    CHECK(s.n == -INFINITY, "n %g", s.n);
    CHECK_INT(s.dim, 0);
    CHECK(s.has_seed && s.seed == 9007199254740993ull, "seed %llu", (unsigned long long)s.seed);
    CHECK(s.has_threshold && s.threshold == 0.25, "threshold %g", s.threshold);
    CHECK(str_is(s.mask, "mask.pt") && str_is(s.plugin, "foo_bar-1"), "mask, plugin");
    CHECK(str_is(s.plugin_params, "{\"k\":[1,2.5]}"), "plugin_params %s",
          s.plugin_params ? s.plugin_params : "(null)");
    CHECK(s.iterative, "iterative");
    CHECK(s.eval.max_length == 128 && s.eval.batch_size == 7 && s.eval.limit == 100, "eval ints");
    CHECK_INT(s.eval.lowercase, 0);
    CHECK_INT(s.eval.padding, EVAL_PAD_DYNAMIC);
    CHECK_INT(s.eval.tokenizer, TOK_BERT_LEGACY);
    CHECK_INT(s.outputs, JOB_OUT_STATE_DICT);
    CHECK(str_is(s.device, "cuda:1") && str_is(s.name, "full job"), "device, name");
    job_spec_free(&s);

    static const struct {
        const char *n;
        double want;
    } norms[] = {{"\"inf\"", INFINITY}, {"\"fro\"", PRUNE_NORM_FRO}, {"1", 1}, {"0.5", 0.5}};
    for (size_t i = 0; i < sizeof norms / sizeof norms[0]; i++) {
        char text[256];
        snprintf(text, sizeof text,
                 "{\"model\": \"m\", \"targets\": \"x\", \"method\": \"ln_structured\","
                 " \"amount\": 0.5, \"options\": {\"n\": %s}}",
                 norms[i].n);
        CHECK(norm_spec(text, NULL, &s, &fe) == 0, "n %s: %s", norms[i].n, fe.message);
        CHECK(s.n == norms[i].want, "n %s: got %g", norms[i].n, s.n);
        job_spec_free(&s);
    }
}

/* Requests as the queue stored them, typed the way they ran. */
static void test_stored(void)
{
    /* Written by the version before eval.tokenizer: no "tokenizer" key, the
     * defaults of then filled in.  It ran with the legacy tokenizer. */
    static const char before_tokenizer[] =
        "{\"model\":\"/srv/models/bert.pt\","
        "\"targets\":[\"bert.encoder.layer.*.attention.self.query\"],"
        "\"method\":\"l1_unstructured\",\"amount\":0.3,\"amount_kind\":\"fraction\","
        "\"scope\":\"global\","
        "\"options\":{\"n\":null,\"dim\":-1,\"seed\":null,\"threshold\":null,\"mask\":null,"
        "\"plugin\":null,\"plugin_params\":null,\"iterative\":false},"
        "\"eval\":{\"data\":\"/srv/data/dev.txt\",\"vocab\":\"/srv/data/vocab.txt\","
        "\"classes\":\"/srv/data/class.txt\",\"max_length\":32,\"batch_size\":256,"
        "\"lowercase\":true,\"padding\":\"exact\",\"limit\":64},"
        "\"outputs\":[\"torchscript\"],\"device\":\"auto\",\"name\":\"old\"}";
    struct job_spec s;
    struct job_field_error fe;
    json_t *out = NULL;
    CHECK(job_spec_from_stored(before_tokenizer, &out, &s, &fe) == 0, "%s: %s", fe.field,
          fe.message);
    CHECK_INT(s.eval.tokenizer, TOK_BERT_LEGACY);
    CHECK_INT(s.eval.lowercase, 1);
    CHECK_INT(s.eval.limit, 64);
    CHECK_INT(s.outputs, JOB_OUT_TORCHSCRIPT);
    CHECK(str_is(s.model, "/srv/models/bert.pt") && str_is(s.eval.vocab, "/srv/data/vocab.txt"),
          "paths as stored");
    CHECK(str_is(json_string_value(json_object_get(json_object_get(out, "eval"), "tokenizer")),
                 "bert_legacy"),
          "the JSON says which tokenizer it ran with");
    /* What it is stored as now reads the same. */
    char *text = json_dumps(out, JSON_COMPACT);
    struct job_spec again;
    CHECK(text && job_spec_from_stored(text, NULL, &again, &fe) == 0, "%s", fe.message);
    CHECK_INT(again.eval.tokenizer, TOK_BERT_LEGACY);
    free(text);
    job_spec_free(&again);
    json_decref(out);
    job_spec_free(&s);

    /* Stored by this version: the tokenizer is always there, as normalized. */
    out = NULL;
    CHECK_INT(norm(seed_job, &out, &fe), 0);
    text = json_dumps(out, JSON_COMPACT);
    CHECK(text && job_spec_from_stored(text, NULL, &s, &fe) == 0, "%s", fe.message);
    CHECK_INT(s.eval.tokenizer, TOK_BERT);
    free(text);
    json_decref(out);
    job_spec_free(&s);

    /* Without eval there is no tokenizer to fill in. */
    CHECK(job_spec_from_stored("{\"model\":\"m\",\"targets\":[\"x\"],\"amount\":0.1}", &out, &s,
                               &fe) == 0,
          "%s", fe.message);
    CHECK(!s.has_eval && json_is_null(json_object_get(out, "eval")), "no eval");
    json_decref(out);
    job_spec_free(&s);

    CHECK_INT(job_spec_from_stored("{\"model\":", &out, &s, &fe), ERR_FORMAT);
    CHECK(out == NULL && s.model == NULL && strstr(fe.message, "not JSON"), "not JSON: %s",
          fe.message);
    CHECK_INT(job_spec_from_stored("{\"model\":\"m\",\"targets\":[]}", NULL, &s, &fe), ERR_INVALID);
    CHECK(str_is(fe.field, "targets"), "stored bad field %s", fe.field);
    job_spec_free(&s);
}

/* outputs: a set of three names, or null for the input's own family. */
static void test_outputs(void)
{
    static const struct {
        const char *outputs;
        unsigned want;
    } cases[] = {
        {"null", 0},
        {"[\"safetensors\"]", JOB_OUT_SAFETENSORS},
        {"[\"state_dict\", \"torchscript\"]", JOB_OUT_TORCHSCRIPT | JOB_OUT_STATE_DICT},
        {"[\"safetensors\", \"torchscript\", \"state_dict\"]",
         JOB_OUT_TORCHSCRIPT | JOB_OUT_STATE_DICT | JOB_OUT_SAFETENSORS},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[256];
        json_t *out = NULL;
        struct job_spec s;
        struct job_field_error fe;
        snprintf(text, sizeof text,
                 "{\"model\": \"m\", \"targets\": \"x\", \"amount\": 0.1, \"outputs\": %s}",
                 cases[i].outputs);
        CHECK(norm_spec(text, &out, &s, &fe) == 0, "%s: %s: %s", text, fe.field, fe.message);
        CHECK(s.outputs == cases[i].want, "outputs %s: 0x%x, expected 0x%x", cases[i].outputs,
              s.outputs, cases[i].want);
        json_t *o = json_object_get(out, "outputs");
        CHECK(cases[i].want ? json_array_size(o) > 0 : json_is_null(o),
              "outputs %s: the JSON keeps what was said", cases[i].outputs);
        json_decref(out);
        job_spec_free(&s);
    }
}

static int allow_all(void *ud, const char *field, const char *path, char *out, size_t outlen,
                     char *err, size_t errlen)
{
    int *calls = ud;
    (void)field, (void)err, (void)errlen;
    (*calls)++;
    snprintf(out, outlen, "/abs/%s", path);
    return 0;
}

/* eval.lowercase: unset, false and true are three answers; eval.vocab may
 * be left to the model folder. */
static void test_eval_optional(void)
{
    static const struct {
        const char *lowercase;
        int want;
    } cases[] = {{NULL, -1}, {"null", -1}, {"false", 0}, {"true", 1}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[256], lower[64] = "";
        json_t *out = NULL;
        struct job_spec s;
        struct job_field_error fe;
        if (cases[i].lowercase)
            snprintf(lower, sizeof lower, ", \"lowercase\": %s", cases[i].lowercase);
        snprintf(text, sizeof text,
                 "{\"model\": \"m\", \"targets\": \"x\", \"amount\": 0.1,"
                 " \"eval\": {\"data\": \"d\", \"classes\": \"c\"%s}}",
                 lower);
        CHECK(norm_spec(text, &out, &s, &fe) == 0, "%s: %s: %s", text, fe.field, fe.message);
        CHECK(s.eval.lowercase == cases[i].want, "lowercase %s: %d", text, s.eval.lowercase);
        json_t *ev = json_object_get(out, "eval"), *l = json_object_get(ev, "lowercase");
        CHECK(cases[i].want < 0 ? json_is_null(l)
                                : json_is_boolean(l) && json_is_true(l) == cases[i].want,
              "%s: the JSON keeps what was said", text);
        CHECK(s.has_eval && s.eval.vocab == NULL && json_is_null(json_object_get(ev, "vocab")),
              "%s: vocab unset", text);
        /* Unset stays unset through the queue. */
        char *stored = json_dumps(out, JSON_COMPACT);
        struct job_spec again;
        CHECK(stored && job_spec_from_stored(stored, NULL, &again, &fe) == 0, "%s", fe.message);
        CHECK(again.eval.lowercase == cases[i].want && again.eval.vocab == NULL,
              "%s: stored and read back: lowercase %d", text, again.eval.lowercase);
        free(stored);
        job_spec_free(&again);
        /* No vocab: nothing to resolve for it. */
        int calls = 0;
        CHECK_INT(job_request_resolve_paths(&s, out, allow_all, &calls, &fe), 0);
        CHECK(calls == 3 && s.eval.vocab == NULL, "resolved %d paths", calls);
        json_decref(out);
        job_spec_free(&s);
    }
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
        {"{\"model\":\"m\",\"targets\":\"x\",\"amount\":1,\"amount_kind\":\"fraction\"}",
         "fraction", 0},
        {"{\"model\":\"m\",\"targets\":\"x\",\"amount\":7.0,\"amount_kind\":\"count\"}", "count",
         1},
        {"{\"model\":\"m\",\"targets\":\"x\",\"amount\":0}", "count", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *out = NULL;
        struct job_field_error fe;
        CHECK(norm(cases[i].json, &out, &fe) == 0, "%s: %s: %s", cases[i].json, fe.field,
              fe.message);
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
    expect_bad("{\"model_config\": 3}", "model_config", "string");
    expect_bad("{\"model_config\": \"\"}", "model_config", "empty");
    expect_bad("{\"targets\": []}", "targets", "non-empty");
    expect_bad("{\"targets\": [\"a\", 1]}", "targets", "targets[1]");
    expect_bad("{\"method\": \"l3\"}", "method", "l1_unstructured");
    expect_bad("{\"method\": \"ln_structured\", \"options\": {\"n\": 2}}", "scope", "global");
    expect_bad("{\"method\": \"ln_structured\", \"scope\": \"local\"}", "options.n", "required");
    expect_bad("{\"method\": \"ln_structured\", \"scope\": \"local\", \"options\": {\"n\": 0}}",
               "options.n", "> 0");
    expect_bad(
        "{\"method\": \"ln_structured\", \"scope\": \"local\", \"options\": {\"n\": \"nuc\"}}",
        "options.n", "fro");
    expect_bad("{\"method\": \"threshold\", \"scope\": \"local\"}", "options.threshold",
               "required");
    expect_bad("{\"method\": \"custom_from_mask\", \"scope\": \"local\"}", "options.mask",
               "required");
    expect_bad(
        "{\"method\": \"plugin\", \"scope\": \"local\", \"options\": {\"plugin\": \"../evil\"}}",
        "options.plugin", "plugin name");
    expect_bad("{\"options\": {\"dim\": 1.5}}", "options.dim", "integer");
    expect_bad("{\"options\": {\"seed\": -3}}", "options.seed", "integer");
    expect_bad("{\"options\": {\"iterative\": 1}}", "options.iterative", "true or false");
    expect_bad("{\"options\": {\"typo\": 1}}", "options.typo", "unknown");
    expect_bad("{\"options\": []}", "options", "object");
    expect_bad(
        "{\"eval\": {\"data\": \"d\", \"vocab\": \"v\", \"classes\": \"c\", \"max_length\": 1000}}",
        "eval.max_length", "must be an integer from 2 to 512");
    expect_bad("{\"eval\": {\"data\": \"d\", \"vocab\": \"v\"}}", "eval.classes", "required");
    expect_bad("{\"eval\": {\"data\": \"d\", \"vocab\": \"v\", \"classes\": \"c\", \"padding\": "
               "\"some\"}}",
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
    expect_bad("{\"eval\": {\"data\": \"d\", \"classes\": \"c\", \"lowercase\": \"yes\"}}",
               "eval.lowercase", "true, false or null");
    expect_bad("{\"eval\": {\"data\": \"d\", \"vocab\": 1, \"classes\": \"c\"}}", "eval.vocab",
               "string");
    expect_bad("{\"eval\": {\"data\": \"d\", \"vocab\": \"\", \"classes\": \"c\"}}", "eval.vocab",
               "empty");
    expect_bad("{\"eval\": {\"vocab\": \"v\", \"classes\": \"c\"}}", "eval.data", "required");
    expect_bad("{\"outputs\": [\"onnx\"]}", "outputs", "torchscript");
    expect_bad("{\"outputs\": [\"onnx\"]}", "outputs", "safetensors");
    expect_bad("{\"outputs\": [\"torchscript\", \"torchscript\"]}", "outputs", "once");
    expect_bad("{\"outputs\": []}", "outputs", "non-empty");
    expect_bad("{\"outputs\": \"torchscript\"}", "outputs", "list");
    expect_bad("{\"outputs\": [\"safetensors\", \"state_dict\", \"torchscript\", \"safetensors\"]}",
               "outputs", "list");
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
    if (!strcmp(field, "eval.data"))
        return err_set(err, errlen, ERR_DENIED, "%s is outside the data roots", path);
    snprintf(out, outlen, "/roots/%s", path);
    return 0;
}

static int deny_config(void *ud, const char *field, const char *path, char *out, size_t outlen,
                       char *err, size_t errlen)
{
    (void)ud;
    if (!strcmp(field, "model_config")) return err_set(err, errlen, ERR_DENIED, "no");
    snprintf(out, outlen, "%s", path);
    return 0;
}

static void test_resolve(void)
{
    json_t *out = NULL;
    struct job_spec spec;
    struct job_field_error fe;
    int calls = 0;
    CHECK_INT(norm_spec(seed_job, &out, &spec, &fe), 0);
    if (!out) return;
    CHECK_INT(job_request_resolve_paths(&spec, out, deny_data, &calls, &fe), ERR_DENIED);
    CHECK(!strcmp(fe.field, "eval.data"), "field %s", fe.field);
    CHECK(strstr(fe.message, "outside") != NULL, "message %s", fe.message);
    CHECK(!strcmp(json_string_value(json_object_get(out, "model")), "/roots/models/bert.pt"),
          "model %s", json_string_value(json_object_get(out, "model")));
    CHECK(str_is(spec.model, "/roots/models/bert.pt"), "spec model %s", spec.model);
    CHECK(str_is(spec.eval.data, "dev.txt"), "eval.data left as it was: %s", spec.eval.data);
    CHECK_INT(calls, 2);
    json_decref(out);
    job_spec_free(&spec);

    /* Everything resolves: the spec and the JSON say the same; without the
     * JSON only the spec changes. */
    static const char with_mask[] =
        "{\"model\": \"m.pt\", \"model_config\": \"config.json\", \"targets\": \"x\","
        " \"method\": \"custom_from_mask\","
        " \"options\": {\"mask\": \"mask.pt\"},"
        " \"eval\": {\"data\": \"d\", \"vocab\": \"v\", \"classes\": \"c\"}}";
    CHECK_INT(norm_spec(with_mask, &out, &spec, &fe), 0);
    calls = 0;
    CHECK_INT(job_request_resolve_paths(&spec, out, allow_all, &calls, &fe), 0);
    CHECK_INT(calls, 6);
    CHECK(str_is(spec.model_config, "/abs/config.json") &&
              str_is(json_string_value(json_object_get(out, "model_config")), "/abs/config.json"),
          "model_config %s", spec.model_config);
    json_t *ev = json_object_get(out, "eval");
    CHECK(str_is(spec.mask, "/abs/mask.pt") &&
              str_is(json_string_value(json_object_get(json_object_get(out, "options"), "mask")),
                     "/abs/mask.pt"),
          "mask %s", spec.mask);
    CHECK(str_is(spec.eval.vocab, "/abs/v") &&
              str_is(json_string_value(json_object_get(ev, "vocab")), "/abs/v") &&
              str_is(spec.eval.classes, "/abs/c"),
          "eval paths %s", spec.eval.vocab);
    json_decref(out);
    job_spec_free(&spec);
    CHECK_INT(norm_spec(with_mask, NULL, &spec, &fe), 0);
    CHECK_INT(job_request_resolve_paths(&spec, NULL, allow_all, &calls, &fe), 0);
    CHECK(str_is(spec.model, "/abs/m.pt"), "model %s", spec.model);
    job_spec_free(&spec);
    /* model_config goes to the resolver under its own name (roots: a model root). */
    CHECK_INT(norm_spec(with_mask, NULL, &spec, &fe), 0);
    CHECK_INT(job_request_resolve_paths(&spec, NULL, deny_config, NULL, &fe), ERR_DENIED);
    CHECK(str_is(fe.field, "model_config"), "field %s", fe.field);
    job_spec_free(&spec);
}

static const char sweep_job[] =
    "{\"kind\": \"sweep\", \"model\": \"m.pt\", \"targets\": \"bert.encoder.layer.*\","
    " \"eval\": {\"data\": \"dev.txt\", \"vocab\": \"vocab.txt\", \"classes\": \"class.txt\"}}";

static void expect_bad_sweep(const char *patch, const char *field, const char *words)
{
    expect_bad_in(sweep_job, patch, field, words);
}

/* kind sweep: defaults, the typed fields, idempotence, and what it refuses. */
static void test_sweep(void)
{
    json_t *out = NULL, *again = NULL;
    struct job_spec s;
    struct job_field_error fe;
    CHECK(norm_spec(sweep_job, &out, &s, &fe) == 0, "%s: %s", fe.field, fe.message);
    if (!out) return;
    CHECK(str_is(json_string_value(json_object_get(out, "kind")), "sweep"), "kind");
    CHECK(str_is(json_string_value(json_object_get(out, "group")), "layer"), "group default");
    CHECK(json_array_size(json_object_get(out, "amounts")) == 9, "9 amounts by default");
    CHECK(json_is_null(json_object_get(out, "recommend")), "recommend default null");
    CHECK(json_is_null(json_object_get(out, "amount")) &&
              str_is(json_string_value(json_object_get(out, "scope")), "local"),
          "amount null, scope local");
    CHECK(s.kind == JOB_KIND_SWEEP && !s.sweep.by_parameter && s.sweep.namounts == 9 &&
              fabs(s.sweep.amounts[0] - 0.1) < 1e-15 && fabs(s.sweep.amounts[8] - 0.9) < 1e-15 &&
              !s.sweep.has_recommend && s.method->id == PRUNE_L1_UNSTRUCTURED,
          "typed sweep %d %d", s.kind, s.sweep.namounts);
    job_spec_free(&s);
    CHECK_INT(job_request_normalize(out, &again, &s, &fe), 0);
    CHECK(json_equal(out, again), "a normalized sweep normalizes to itself");
    job_spec_free(&s);
    json_decref(again);
    json_decref(out);
    /* a stored sweep reads back (job_spec_from_stored, as the worker reads it) */
    CHECK_INT(norm(sweep_job, &out, &fe), 0);
    char *text = json_dumps(out, 0);
    CHECK(text && job_spec_from_stored(text, NULL, &s, &fe) == 0, "stored: %s: %s", fe.field,
          fe.message);
    CHECK_INT(s.kind, JOB_KIND_SWEEP);
    job_spec_free(&s);
    free(text);
    json_decref(out);

    const char *full = "{\"kind\": \"sweep\", \"model\": \"m\", \"targets\": [\"a\"], \"method\": "
                       "\"l1_unstructured\", \"group\": \"parameter\", \"amounts\": [0.25, 1], "
                       "\"recommend\": {\"sparsity\": 1}, \"eval\": {\"data\": \"d\", \"classes\": "
                       "\"c\"}}";
    CHECK(norm_spec(full, NULL, &s, &fe) == 0, "%s: %s", fe.field, fe.message);
    CHECK(s.sweep.by_parameter && s.sweep.namounts == 2 && s.sweep.amounts[1] == 1.0 &&
              s.sweep.has_recommend && s.sweep.sparsity == 1.0,
          "full sweep fields");
    job_spec_free(&s);
    const char *st = "{\"kind\": \"sweep\", \"method\": \"structured\", \"model\": \"m\", "
                     "\"targets\": [\"a\"], \"eval\": {\"data\": \"d\", \"classes\": \"c\"}}";
    CHECK(norm_spec(st, NULL, &s, &fe) == 0, "structured sweep: %s: %s", fe.field, fe.message);
    CHECK(s.method->id == PRUNE_STRUCTURED && !s.has_structured, "structured sweep typed");
    job_spec_free(&s);

    expect_bad_sweep("{\"amount\": 0.3}", "amount", "not used by a sweep");
    expect_bad_sweep("{\"amount_kind\": \"count\"}", "amount_kind", "not used by a sweep");
    expect_bad_sweep("{\"scope\": \"global\"}", "scope", "not used by a sweep");
    expect_bad_sweep("{\"outputs\": [\"state_dict\"]}", "outputs", "not used by a sweep");
    expect_bad_sweep("{\"structured\": {\"heads\": 0.5}}", "structured", "not used by a sweep");
    expect_bad_sweep("{\"amounts\": [0.5, 0.5]}", "amounts", "increasing");
    expect_bad_sweep("{\"amounts\": [0, 0.5]}", "amounts", "(0, 1]");
    expect_bad_sweep("{\"amounts\": [0.5, 1.5]}", "amounts", "(0, 1]");
    expect_bad_sweep("{\"amounts\": []}", "amounts", "1 to 32");
    expect_bad_sweep("{\"amounts\": \"0.5\"}", "amounts", "list");
    expect_bad_sweep("{\"group\": \"head\"}", "group", "\"layer\", \"parameter\"");
    expect_bad_sweep("{\"method\": \"random_unstructured\"}", "method", "l1_unstructured or");
    expect_bad_sweep("{\"method\": \"structured\", \"group\": \"parameter\"}", "group", "layer");
    expect_bad_sweep("{\"method\": \"structured\", \"recommend\": {\"sparsity\": 0.2}}",
                     "recommend", "l1_unstructured");
    expect_bad_sweep("{\"recommend\": {\"sparsity\": 0.95}}", "recommend.sparsity", "(0, 0.9]");
    expect_bad_sweep("{\"recommend\": {\"sparsity\": 0}}", "recommend.sparsity", "(0, 0.9]");
    expect_bad_sweep("{\"recommend\": {\"share\": 0.5}}", "recommend.share", "unknown field");
    expect_bad_sweep("{\"recommend\": 0.5}", "recommend", "object");
    expect_bad_sweep("{\"targets\": [{\"glob\": \"a\", \"amount\": 0.5}]}", "targets",
                     "chooses the amounts");
    expect_bad_sweep("{\"eval\": null}", "eval", "required for a sweep");
    expect_bad_sweep("{\"kind\": \"sweeps\"}", "kind", "\"prune\" or \"sweep\"");
    expect_bad("{\"group\": \"layer\"}", "group", "only for a sweep");
    expect_bad("{\"amounts\": [0.5]}", "amounts", "only for a sweep");
    expect_bad("{\"recommend\": {\"sparsity\": 0.5}}", "recommend", "only for a sweep");
    /* kind "prune" is the default and leaves no trace */
    CHECK_INT(norm("{\"kind\": \"prune\", \"model\": \"m\", \"targets\": \"a\", \"amount\": 0.1}",
                   &out, &fe),
              0);
    CHECK(out && !json_object_get(out, "kind"), "a prune job's request has no kind");
    json_decref(out);
}

/* targets entries {"glob", "amount"}: typed, kept, and checked. */
static void test_target_amounts(void)
{
    struct job_spec s;
    json_t *out = NULL, *again = NULL;
    struct job_field_error fe;
    const char *job = "{\"model\": \"m\", \"amount\": 0.3, \"targets\": [\"a\", {\"glob\": \"b\", "
                      "\"amount\": 0.75}, {\"glob\": \"c\", \"amount\": 12}]}";
    CHECK(norm_spec(job, &out, &s, &fe) == 0, "%s: %s", fe.field, fe.message);
    CHECK(s.ntargets == 3 && str_is(s.targets[0], "a") && str_is(s.targets[1], "b") &&
              str_is(s.targets[2], "c"),
          "the globs");
    CHECK(s.tamounts && !s.tamounts[0].has && s.tamounts[1].has && !s.tamounts[1].a.is_count &&
              s.tamounts[1].a.fraction == 0.75 && s.tamounts[2].has && s.tamounts[2].a.is_count &&
              s.tamounts[2].a.count == 12,
          "the entries' amounts");
    job_spec_free(&s);
    CHECK(out && job_request_normalize(out, &again, NULL, &fe) == 0 && json_equal(out, again),
          "per-target amounts normalize to themselves");
    json_decref(out);
    json_decref(again);
    expect_bad("{\"targets\": [{\"glob\": \"a\", \"amount\": 0.5}]}", "targets[0].amount",
               "scope local");
    expect_bad("{\"scope\": \"local\", \"targets\": [{\"glob\": \"a\", \"amount\": 1.5}]}",
               "targets[0].amount", "amount");
    expect_bad("{\"scope\": \"local\", \"targets\": [{\"glob\": \"a\"}]}", "targets[0].amount",
               "fraction in [0, 1] or a count");
    expect_bad("{\"scope\": \"local\", \"targets\": [{\"amount\": 0.5}]}", "targets[0].glob",
               "non-empty string");
    expect_bad("{\"scope\": \"local\", \"targets\": [\"x\", {\"glob\": \"a\", \"amount\": 0.5, "
               "\"n\": 1}]}",
               "targets[1].n", "unknown field");
    expect_bad("{\"scope\": \"local\", \"method\": \"random_unstructured\", \"targets\": "
               "[{\"glob\": \"a\", \"amount\": 0.5}]}",
               "targets[0].amount", "l1_unstructured and ln_structured");
    expect_bad("{\"scope\": \"local\", \"targets\": [7]}", "targets", "or an object");
}

static const char recover_job[] =
    "{\"model\": \"m.pt\", \"targets\": [\"bert.encoder.layer.*.dense\"],"
    " \"method\": \"l1_unstructured\", \"amount\": 0.7, \"scope\": \"global\","
    " \"eval\": {\"data\": \"dev.txt\", \"vocab\": \"vocab.txt\", \"classes\": \"class.txt\","
    " \"max_length\": 48}, \"recover\": {\"data\": \"train.txt\"}}";

static void expect_bad_recover(const char *patch, const char *field, const char *words)
{
    expect_bad_in(recover_job, patch, field, words);
}

static double real_at(const json_t *o, const char *key)
{
    return json_real_value(json_object_get(o, key));
}

/* recover: its defaults, typed, idempotent; distill and schedule; what it refuses. */
static void test_recover(void)
{
    json_t *out = NULL, *again = NULL;
    struct job_spec s;
    struct job_field_error fe;
    CHECK(norm_spec(recover_job, &out, &s, &fe) == 0, "%s: %s", fe.field, fe.message);
    if (!out) return;
    json_t *r = json_object_get(out, "recover");
    CHECK(json_integer_value(json_object_get(r, "epochs")) == 1 &&
              json_is_null(json_object_get(r, "steps")) &&
              json_integer_value(json_object_get(r, "batch_size")) == 32 &&
              real_at(r, "lr") == 2e-5 && real_at(r, "warmup") == 0.06 &&
              real_at(r, "weight_decay") == 0.01 && real_at(r, "max_grad_norm") == 1.0 &&
              json_integer_value(json_object_get(r, "max_length")) == 48 &&
              json_integer_value(json_object_get(r, "eval_every")) == 0 &&
              json_integer_value(json_object_get(r, "checkpoint_every")) == 500 &&
              json_is_true(json_object_get(r, "shuffle")) &&
              json_is_null(json_object_get(r, "distill")) &&
              json_is_null(json_object_get(r, "schedule")),
          "recover defaults");
    CHECK(s.has_recover && str_is(s.recover.data, "train.txt") && s.recover.epochs == 1 &&
              s.recover.steps == 0 && s.recover.batch_size == 32 && s.recover.lr == 2e-5 &&
              s.recover.max_length == 48 && s.recover.shuffle && !s.recover.has_distill &&
              !s.recover.has_schedule && s.recover.checkpoint_every == 500,
          "recover typed");
    CHECK(job_request_normalize(out, &again, NULL, &fe) == 0 && json_equal(out, again),
          "a normalized recover request normalizes to itself");
    json_decref(again);
    json_decref(out);
    job_spec_free(&s);

    json_error_t je;
    json_t *in = json_loads(recover_job, 0, &je);
    json_object_set_new(in, "recover",
                        json_pack("{s:s, s:i, s:b, s:{s:i, s:i}}", "data", "train.txt", "steps", 40,
                                  "distill", 1, "schedule", "steps", 30, "every", 5));
    CHECK(job_request_normalize(in, &out, &s, &fe) == 0, "%s: %s", fe.field, fe.message);
    CHECK(s.recover.steps == 40 && s.recover.epochs == 0 && s.recover.has_distill &&
              s.recover.temperature == 2 && s.recover.alpha == 0.5 && s.recover.has_schedule &&
              s.recover.initial == 0 && s.recover.final == 0.7 && s.recover.schedule_steps == 30 &&
              s.recover.schedule_every == 5,
          "steps, distill true and a schedule ending on the amount");
    json_t *sc = json_object_get(json_object_get(out, "recover"), "schedule");
    CHECK(str_is(json_string_value(json_object_get(sc, "kind")), "cubic") &&
              real_at(sc, "final") == 0.7,
          "schedule kind and final filled in");
    json_decref(out);
    job_spec_free(&s);
    json_decref(in);

    CHECK(norm_spec(seed_job, &out, &s, &fe) == 0 && !s.has_recover &&
              json_is_null(json_object_get(out, "recover")),
          "no recover: null, not trained");
    json_decref(out);
    job_spec_free(&s);

    expect_bad_recover("{\"recover\": 1}", "recover", "object");
    expect_bad_recover("{\"recover\": {}}", "recover.data", "required");
    expect_bad_recover("{\"recover\": {\"data\": \"t\", \"bogus\": 1}}", "recover.bogus",
                       "unknown");
    expect_bad_recover("{\"recover\": {\"data\": \"t\", \"epochs\": 1, \"steps\": 5}}",
                       "recover.steps", "not both");
    expect_bad_recover("{\"recover\": {\"data\": \"t\", \"epochs\": 0}}", "recover.epochs",
                       "integer");
    expect_bad_recover("{\"recover\": {\"data\": \"t\", \"batch_size\": 0}}", "recover.batch_size",
                       "integer");
    expect_bad_recover("{\"recover\": {\"data\": \"t\", \"lr\": 0}}", "recover.lr", "(0, 1]");
    expect_bad_recover("{\"recover\": {\"data\": \"t\", \"lr\": \"fast\"}}", "recover.lr",
                       "number");
    expect_bad_recover("{\"recover\": {\"data\": \"t\", \"warmup\": 1}}", "recover.warmup",
                       "below 1");
    expect_bad_recover("{\"recover\": {\"data\": \"t\", \"weight_decay\": -1}}",
                       "recover.weight_decay", "[0, 1]");
    expect_bad_recover("{\"recover\": {\"data\": \"t\", \"max_length\": 513}}",
                       "recover.max_length", "integer");
    expect_bad_recover("{\"recover\": {\"data\": \"t\", \"shuffle\": 1}}", "recover.shuffle",
                       "true or false");
    expect_bad_recover("{\"recover\": {\"data\": \"t\", \"distill\": {\"alpha\": 1.5}}}",
                       "recover.distill.alpha", "[0, 1]");
    expect_bad_recover("{\"recover\": {\"data\": \"t\", \"distill\": {\"temperature\": 0}}}",
                       "recover.distill.temperature", "(0, 100]");
    expect_bad_recover("{\"recover\": {\"data\": \"t\", \"distill\": {\"t\": 2}}}",
                       "recover.distill.t", "unknown");
    expect_bad_recover("{\"recover\": {\"data\": \"t\", \"schedule\": {\"kind\": \"linear\"}}}",
                       "recover.schedule.kind", "cubic");
    expect_bad_recover("{\"recover\": {\"data\": \"t\", \"schedule\": {\"final\": 0.5}}}",
                       "recover.schedule.final", "the job's amount");
    expect_bad_recover("{\"recover\": {\"data\": \"t\", \"schedule\": {\"initial\": 0.7}}}",
                       "recover.schedule.initial", "below final");
    expect_bad_recover("{\"method\": \"random_unstructured\", \"recover\": {\"data\": \"t\","
                       " \"schedule\": {}}}",
                       "recover.schedule", "l1_unstructured");
    expect_bad_recover("{\"amount\": 100, \"recover\": {\"data\": \"t\", \"schedule\": {}}}",
                       "amount", "fraction");
    expect_bad_recover("{\"eval\": null}", "recover", "eval block");
    expect_bad_in(sweep_job, "{\"recover\": {\"data\": \"t\"}}", "recover", "not a sweep");

    /* recover.data resolves as a data file, and never to the eval data */
    int calls = 0;
    CHECK_INT(norm_spec(recover_job, &out, &s, &fe), 0);
    CHECK_INT(job_request_resolve_paths(&s, out, allow_all, &calls, &fe), 0);
    CHECK(str_is(s.recover.data, "/abs/train.txt") &&
              str_is(json_string_value(json_object_get(json_object_get(out, "recover"), "data")),
                     "/abs/train.txt"),
          "recover.data resolved: %s", s.recover.data);
    json_decref(out);
    job_spec_free(&s);
    in = json_loads(recover_job, 0, &je);
    json_object_set_new(json_object_get(in, "recover"), "data", json_string("dev.txt"));
    CHECK_INT(job_request_normalize(in, NULL, &s, &fe), 0);
    CHECK_INT(job_request_resolve_paths(&s, NULL, allow_all, &calls, &fe), ERR_INVALID);
    CHECK(str_is(fe.field, "recover.data") && strstr(fe.message, "eval data"),
          "training on the eval data: %s: %s", fe.field, fe.message);
    job_spec_free(&s);
    json_decref(in);
}

int main(void)
{
    test_defaults();
    test_spec_defaults();
    test_spec_fields();
    test_stored();
    test_outputs();
    test_eval_optional();
    test_tokenizer();
    test_amounts();
    test_bad_fields();
    test_resolve();
    test_sweep();
    test_target_amounts();
    test_recover();
    return ct_done("test_job_request");
}
