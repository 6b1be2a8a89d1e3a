/* cli.c - the one-shot commands: inspect, prune, eval, run, token-hash */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "auth.h"
#include "dataset.h"
#include "err.h"
#include "eval.h"
#include "checkpoint.h"
#include "fsutil.h"
#include "inspect.h"
#include "job.h"
#include "json_text.h"
#include "tokenizer.h"
#include "torch_shim.h"

#define EXIT_RUN 1
#define EXIT_USAGE 2

static int fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(int code, const char *fmt, ...)
{
    va_list ap;
    fputs("prunerd: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return code;
}

static int parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

/* A number as its JSON literal would be: "1" an integer, "1.0" a real. */
static json_t *number_literal(const char *s)
{
    json_error_t je;
    json_t *v = json_loads(s, JSON_DECODE_ANY, &je);
    if (v && json_is_number(v)) return v;
    json_decref(v);
    return NULL;
}

/* Resolves a path for the command line: relative to base (or the current
 * folder), must exist; no roots apply to the user's own files. */
static int resolve_local(void *ud, const char *field, const char *path, char *out, size_t outlen,
                         char *err, size_t errlen)
{
    const char *base = ud;
    char joined[PATH_MAX], real[PATH_MAX];
    (void)field;
    if (path[0] == '/' || !base)
        snprintf(joined, sizeof joined, "%s", path);
    else
        snprintf(joined, sizeof joined, "%s/%s", base, path);
    if (!realpath(joined, real))
        return err_set(err, errlen, ERR_NOTFOUND, "%s: %s", joined, strerror(errno));
    if (strlen(real) >= outlen) return err_set(err, errlen, ERR_INVALID, "%s: path too long", real);
    snprintf(out, outlen, "%s", real);
    return 0;
}

static int write_json(const char *path, json_t *j)
{
    char err[512];
    char *text = json_text_dumps(j, JSON_INDENT(2));
    int rc = text ? fs_write_atomic(path, text, strlen(text), err, sizeof err) : ERR_NOMEM;
    free(text);
    if (rc) return fail(EXIT_RUN, "%s", rc == ERR_NOMEM ? "out of memory" : err);
    return 0;
}

int cli_inspect(int argc, char **argv)
{
    static const char usage[] =
        "usage: prunerd inspect MODEL [--model-config CONFIG.json] [--json]";
    static const struct option opts[] = {
        {"json", no_argument, 0, 'j'}, {"model-config", required_argument, 0, 'c'}, {0, 0, 0, 0}};
    int as_json = 0, c, rc = 0;
    const char *config = NULL;
    char err[1024], model[PATH_MAX], conf[PATH_MAX];
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'j')
            as_json = 1;
        else if (c == 'c')
            config = optarg;
        else
            return fail(EXIT_USAGE, "%s", usage);
    }
    if (optind != argc - 1) return fail(EXIT_USAGE, "%s", usage);
    if (ckpt_resolve_local(NULL, argv[optind], model, sizeof model, err, sizeof err) ||
        (config && ckpt_resolve_local(NULL, config, conf, sizeof conf, err, sizeof err)))
        return fail(EXIT_USAGE, "%s", err);
    json_t *j =
        inspect_model(model, config ? conf : NULL, ckpt_resolve_local, NULL, &rc, err, sizeof err);
    if (!j) return fail(EXIT_USAGE, "%s", err);
    if (as_json) {
        char *text = json_text_dumps(j, JSON_INDENT(2));
        if (text) puts(text);
        free(text);
    } else {
        size_t i;
        json_t *t;
        printf("%-60s %-9s %-16s %-8s %10s\n", "name", "kind", "shape", "dtype", "sparsity");
        json_array_foreach(json_object_get(j, "tensors"), i, t)
        {
            char shape[64] = "[";
            size_t d;
            json_t *v;
            json_array_foreach(json_object_get(t, "shape"), d, v)
                snprintf(shape + strlen(shape), sizeof shape - strlen(shape), "%s%lld",
                         d ? ", " : "", (long long)json_integer_value(v));
            strncat(shape, "]", sizeof shape - strlen(shape) - 1);
            json_t *sp = json_object_get(t, "sparsity");
            printf("%-60s %-9s %-16s %-8s ", json_string_value(json_object_get(t, "name")),
                   json_string_value(json_object_get(t, "kind")), shape,
                   json_string_value(json_object_get(t, "dtype")));
            if (sp)
                printf("%10.4f\n", json_real_value(sp));
            else
                printf("%10s\n", "-");
        }
        printf("%lld parameters in %lld tensors, sparsity %.4f\n",
               (long long)json_integer_value(json_object_get(j, "numel")),
               (long long)json_integer_value(json_object_get(j, "parameters")),
               json_real_value(json_object_get(j, "sparsity")));
        printf("format %s, dtype %s\n", json_string_value(json_object_get(j, "format")),
               json_string_value(json_object_get(j, "dtype")));
        json_t *arch = json_object_get(j, "architecture");
        if (arch) {
            printf("BERT, hidden %lld, %s, head %s with %lld labels; layers (heads/ffn):",
                   (long long)json_integer_value(json_object_get(arch, "hidden_size")),
                   json_string_value(json_object_get(arch, "hidden_act")),
                   json_string_value(json_object_get(arch, "head")),
                   (long long)json_integer_value(json_object_get(arch, "labels")));
            json_array_foreach(json_object_get(arch, "layers"), i, t)
                printf(" %lld/%lld", (long long)json_integer_value(json_object_get(t, "heads")),
                       (long long)json_integer_value(json_object_get(t, "ffn")));
            putchar('\n');
        }
    }
    json_decref(j);
    return 0;
}

static const char prune_usage[] =
    "usage: prunerd prune MODEL.pt [--model-config CONFIG.json] --out OUT.pt "
    "[--state-dict OUT.pth] --method M --amount A "
    "--target GLOB [--target GLOB ...] [--scope local|global] [--amount-kind fraction|count] "
    "[--n P] [--dim D] [--seed S] [--threshold T] [--mask FILE] [--plugin NAME "
    "--plugin-params JSON] [--plugin-dir DIR] [--iterative] [--report REPORT.json] [--threads N] "
    "[--device D]";

/* Maps a request field back to the flag that set it, for messages. */
static const char *flag_of(const char *field)
{
    static const char *const map[][2] = {
        {"model", "MODEL"},
        {"model_config", "--model-config"},
        {"targets", "--target"},
        {"method", "--method"},
        {"amount", "--amount"},
        {"amount_kind", "--amount-kind"},
        {"scope", "--scope"},
        {"options.n", "--n"},
        {"options.dim", "--dim"},
        {"options.seed", "--seed"},
        {"options.threshold", "--threshold"},
        {"options.mask", "--mask"},
        {"options.plugin", "--plugin"},
        {"options.plugin_params", "--plugin-params"},
        {"device", "--device"},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(map[i][0], field)) return map[i][1];
    return field;
}

/* Normalizes and resolves a request (relative paths against base) into *req
 * and *spec (caller decrefs and frees, also on failure), printing the field
 * error under the name label gives it (a flag for prunerd prune). */
static int prepare(json_t *raw, const char *base, const char *(*label)(const char *field),
                   json_t **req, struct job_spec *spec)
{
    struct job_field_error fe;
    if (job_request_normalize(raw, req, spec, &fe) != 0)
        return fail(EXIT_USAGE, "%s%s%s", label(fe.field), fe.field[0] ? ": " : "", fe.message);
    if (job_request_resolve_paths(spec, *req, resolve_local, (void *)base, &fe) != 0)
        return fail(EXIT_USAGE, "%s: %s", label(fe.field), fe.message);
    return 0;
}

/* A request field under its own name, for job files. */
static const char *field_name(const char *field)
{
    return field;
}

int cli_prune(int argc, char **argv)
{
    enum {
        O_OUT = 256,
        O_SD,
        O_METHOD,
        O_AMOUNT,
        O_TARGET,
        O_SCOPE,
        O_KIND,
        O_N,
        O_DIM,
        O_SEED,
        O_THRESH,
        O_MASK,
        O_PLUGIN,
        O_PPARAMS,
        O_PDIR,
        O_ITER,
        O_REPORT,
        O_THREADS,
        O_DEVICE,
        O_MCONFIG
    };
    static const struct option opts[] = {{"out", required_argument, 0, O_OUT},
                                         {"state-dict", required_argument, 0, O_SD},
                                         {"method", required_argument, 0, O_METHOD},
                                         {"amount", required_argument, 0, O_AMOUNT},
                                         {"target", required_argument, 0, O_TARGET},
                                         {"scope", required_argument, 0, O_SCOPE},
                                         {"amount-kind", required_argument, 0, O_KIND},
                                         {"n", required_argument, 0, O_N},
                                         {"dim", required_argument, 0, O_DIM},
                                         {"seed", required_argument, 0, O_SEED},
                                         {"threshold", required_argument, 0, O_THRESH},
                                         {"mask", required_argument, 0, O_MASK},
                                         {"plugin", required_argument, 0, O_PLUGIN},
                                         {"plugin-params", required_argument, 0, O_PPARAMS},
                                         {"plugin-dir", required_argument, 0, O_PDIR},
                                         {"iterative", no_argument, 0, O_ITER},
                                         {"report", required_argument, 0, O_REPORT},
                                         {"threads", required_argument, 0, O_THREADS},
                                         {"device", required_argument, 0, O_DEVICE},
                                         {"model-config", required_argument, 0, O_MCONFIG},
                                         {0, 0, 0, 0}};
    json_t *raw = json_object(), *options = json_object(), *targets = json_array();
    json_t *req = NULL, *result = NULL;
    struct job_spec spec = {0};
    const char *out = NULL, *state_dict = NULL, *report = NULL, *plugin_dir = NULL;
    long threads = 0, v;
    int c, rc = 0;
    char err[1024];

    json_object_set_new(raw, "options", options);
    json_object_set_new(raw, "targets", targets);
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        json_t *num;
        switch (c) {
        case O_OUT:
            out = optarg;
            break;
        case O_SD:
            state_dict = optarg;
            break;
        case O_REPORT:
            report = optarg;
            break;
        case O_PDIR:
            plugin_dir = optarg;
            break;
        case O_METHOD:
            json_object_set_new(raw, "method", json_string(optarg));
            break;
        case O_TARGET:
            json_array_append_new(targets, json_string(optarg));
            break;
        case O_SCOPE:
            json_object_set_new(raw, "scope", json_string(optarg));
            break;
        case O_KIND:
            json_object_set_new(raw, "amount_kind", json_string(optarg));
            break;
        case O_DEVICE:
            json_object_set_new(raw, "device", json_string(optarg));
            break;
        case O_MCONFIG:
            json_object_set_new(raw, "model_config", json_string(optarg));
            break;
        case O_MASK:
            json_object_set_new(options, "mask", json_string(optarg));
            break;
        case O_PLUGIN:
            json_object_set_new(options, "plugin", json_string(optarg));
            break;
        case O_ITER:
            json_object_set_new(options, "iterative", json_true());
            break;
        case O_AMOUNT:
            if (!(num = number_literal(optarg))) {
                rc = fail(EXIT_USAGE, "--amount: '%s' is not a number", optarg);
                goto out;
            }
            json_object_set_new(raw, "amount", num);
            break;
        case O_N:
            num = number_literal(optarg);
            json_object_set_new(options, "n", num ? num : json_string(optarg));
            break;
        case O_THRESH:
            if (!(num = number_literal(optarg))) {
                rc = fail(EXIT_USAGE, "--threshold: '%s' is not a number", optarg);
                goto out;
            }
            json_object_set_new(options, "threshold", num);
            break;
        case O_DIM:
        case O_SEED:
            if (parse_int(optarg, c == O_DIM ? -8 : 0, c == O_DIM ? 7 : LONG_MAX, &v)) {
                rc = fail(EXIT_USAGE, "%s: '%s' is not a valid integer",
                          c == O_DIM ? "--dim" : "--seed", optarg);
                goto out;
            }
            json_object_set_new(options, c == O_DIM ? "dim" : "seed", json_integer(v));
            break;
        case O_PPARAMS: {
            json_error_t je;
            json_t *pp = json_loads(optarg, JSON_DECODE_ANY, &je);
            if (!pp) {
                rc = fail(EXIT_USAGE, "--plugin-params: not JSON: %s", je.text);
                goto out;
            }
            json_object_set_new(options, "plugin_params", pp);
            break;
        }
        case O_THREADS:
            if (parse_int(optarg, 1, 1024, &threads)) {
                rc = fail(EXIT_USAGE, "--threads: '%s' is not a number from 1 to 1024", optarg);
                goto out;
            }
            break;
        default:
            rc = fail(EXIT_USAGE, "%s", prune_usage);
            goto out;
        }
    }
    if (optind != argc - 1 || !out) {
        rc = fail(EXIT_USAGE, "%s", prune_usage);
        goto out;
    }
    json_object_set_new(raw, "model", json_string(argv[optind]));
    json_object_set_new(raw, "outputs",
                        state_dict ? json_pack("[s, s]", "torchscript", "state_dict")
                                   : json_pack("[s]", "torchscript"));
    if ((rc = prepare(raw, NULL, flag_of, &req, &spec))) goto out;
    struct job_hooks hooks = {.plugin_dir = plugin_dir, .threads = (int)threads};
    int jrc = job_execute_to(&spec, req, out, state_dict, NULL, &hooks, &result, err, sizeof err);
    if (jrc) {
        rc = fail(jrc == ERR_INVALID || jrc == ERR_FORMAT || jrc == ERR_UNSUPPORTED ? EXIT_USAGE
                                                                                    : EXIT_RUN,
                  "%s", err);
        goto out;
    }
    json_t *sp = json_object_get(result, "sparsity");
    printf("pruned %lld of %lld target weights (sparsity %.4f; model %.4f) in %.3f s\n",
           (long long)json_integer_value(json_object_get(sp, "target_zeros")),
           (long long)json_integer_value(json_object_get(sp, "target_numel")),
           json_real_value(json_object_get(sp, "targets")),
           json_real_value(json_object_get(sp, "global")),
           json_real_value(json_object_get(json_object_get(result, "timings"), "prune_s")));
    if (report) {
        json_object_del(result, "metrics");
        rc = write_json(report, result);
    }
out:
    json_decref(raw);
    json_decref(req);
    json_decref(result);
    job_spec_free(&spec);
    return rc;
}

static const char eval_usage[] =
    "usage: prunerd eval MODEL --data FILE [--vocab VOCAB] --classes CLASSES "
    "[--model-config CONFIG.json] [--max-length 32] "
    "[--batch-size 256] [--lowercase|--no-lowercase] [--tokenizer bert|bert_legacy] "
    "[--padding exact|dynamic] [--limit N] [--report R.json] [--logits OUT.f32] [--threads N] "
    "[--device D]";

int cli_eval(int argc, char **argv)
{
    enum {
        O_DATA = 256,
        O_VOCAB,
        O_CLASSES,
        O_MAXLEN,
        O_BATCH,
        O_LOWER,
        O_NOLOWER,
        O_PAD,
        O_LIMIT,
        O_REPORT,
        O_LOGITS,
        O_THREADS,
        O_DEVICE,
        O_TOKENIZER,
        O_CONFIG
    };
    static const struct option opts[] = {{"data", required_argument, 0, O_DATA},
                                         {"vocab", required_argument, 0, O_VOCAB},
                                         {"classes", required_argument, 0, O_CLASSES},
                                         {"max-length", required_argument, 0, O_MAXLEN},
                                         {"batch-size", required_argument, 0, O_BATCH},
                                         {"lowercase", no_argument, 0, O_LOWER},
                                         {"no-lowercase", no_argument, 0, O_NOLOWER},
                                         {"padding", required_argument, 0, O_PAD},
                                         {"limit", required_argument, 0, O_LIMIT},
                                         {"report", required_argument, 0, O_REPORT},
                                         {"logits", required_argument, 0, O_LOGITS},
                                         {"threads", required_argument, 0, O_THREADS},
                                         {"device", required_argument, 0, O_DEVICE},
                                         {"tokenizer", required_argument, 0, O_TOKENIZER},
                                         {"model-config", required_argument, 0, O_CONFIG},
                                         {0, 0, 0, 0}};
    const char *data = NULL, *vocab = NULL, *classes = NULL, *report = NULL, *logits_path = NULL;
    const char *device = "cpu", *config = NULL;
    long max_length = 32, batch = 256, limit = 0, threads = 0;
    int lowercase = -1, c, rc = 0;
    enum tok_mode mode = TOK_BERT;
    enum eval_padding pad = EVAL_PAD_EXACT;
    char err[1024];
    struct ts_model *m = NULL;
    struct tokenizer *tok = NULL;
    struct dataset *ds = NULL;
    struct eval_inputs *in = NULL;
    json_t *mj = NULL;
    float *logits = NULL;
    int ncls = 0;
    struct ckpt_files files = {0};
    char model[PATH_MAX], conf[PATH_MAX];

    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_DATA:
            data = optarg;
            break;
        case O_VOCAB:
            vocab = optarg;
            break;
        case O_CONFIG:
            config = optarg;
            break;
        case O_CLASSES:
            classes = optarg;
            break;
        case O_REPORT:
            report = optarg;
            break;
        case O_LOGITS:
            logits_path = optarg;
            break;
        case O_DEVICE:
            device = optarg;
            break;
        case O_LOWER:
            lowercase = 1;
            break;
        case O_NOLOWER:
            lowercase = 0;
            break;
        case O_TOKENIZER:
            if (tok_mode_parse(optarg, &mode))
                return fail(EXIT_USAGE, "--tokenizer: must be bert or bert_legacy");
            break;
        case O_PAD:
            if (!strcmp(optarg, "exact"))
                pad = EVAL_PAD_EXACT;
            else if (!strcmp(optarg, "dynamic"))
                pad = EVAL_PAD_DYNAMIC;
            else
                return fail(EXIT_USAGE, "--padding: must be exact or dynamic");
            break;
        case O_MAXLEN:
            if (parse_int(optarg, 2, 512, &max_length))
                return fail(EXIT_USAGE, "--max-length: must be an integer from 2 to 512");
            break;
        case O_BATCH:
            if (parse_int(optarg, 1, 4096, &batch))
                return fail(EXIT_USAGE, "--batch-size: must be an integer from 1 to 4096");
            break;
        case O_LIMIT:
            if (parse_int(optarg, 1, INT32_MAX, &limit))
                return fail(EXIT_USAGE, "--limit: must be a positive integer");
            break;
        case O_THREADS:
            if (parse_int(optarg, 1, 1024, &threads))
                return fail(EXIT_USAGE, "--threads: must be an integer from 1 to 1024");
            break;
        default:
            return fail(EXIT_USAGE, "%s", eval_usage);
        }
    }
    if (optind != argc - 1 || !data || !classes) return fail(EXIT_USAGE, "%s", eval_usage);
    if (threads > 0) ts_set_threads((int)threads);
    double t0 = fs_monotonic();
    /* What the flags leave out a Hugging Face folder gives, as in a job: its
     * vocab.txt, tokenizer_config.json's do_lower_case; lowercase said by
     * neither is BERT's default, true. */
    if (ckpt_resolve_local(NULL, argv[optind], model, sizeof model, err, sizeof err) ||
        (config && ckpt_resolve_local(NULL, config, conf, sizeof conf, err, sizeof err)) ||
        ckpt_locate(model, config ? conf : NULL, ckpt_resolve_local, NULL, &files, err,
                    sizeof err)) {
        rc = fail(EXIT_USAGE, "%s", err);
        goto out;
    }
    if (!vocab && !(vocab = files.vocab)) {
        rc = fail(EXIT_USAGE, "--vocab: is required (the model is no Hugging Face folder with a "
                              "vocab.txt)");
        goto out;
    }
    lowercase = ckpt_lowercase(&files, lowercase);
    if (dataset_open(data, classes, limit, &ds, err, sizeof err) ||
        tok_open(vocab, mode, lowercase, &tok, err, sizeof err) ||
        ckpt_open(&files, device, &m, err, sizeof err) ||
        eval_inputs_open(tok, ds, (int)max_length, &in, err, sizeof err)) {
        rc = fail(EXIT_USAGE, "%s", err);
        goto out;
    }
    double load_s = fs_monotonic() - t0 - in->tokenize_s;
    if (eval_score(m, in, ds, (int)batch, pad, NULL, "eval", stdout, &logits, &ncls, &mj, NULL, err,
                   sizeof err)) {
        rc = fail(EXIT_RUN, "%s", err);
        goto out;
    }
    if (logits_path) {
        int wrc = fs_write_atomic(logits_path, logits, in->n * (size_t)ncls * sizeof *logits, err,
                                  sizeof err);
        if (wrc) {
            rc = fail(EXIT_RUN, "%s", err);
            goto out;
        }
    }
    if (report) {
        json_t *r = json_pack(
            "{s:O, s:{s:f, s:f}, s:{s:s, s:i, s:s, s:i, s:i, s:s, s:b}}", "metrics", mj, "timings",
            "load_s", load_s, "tokenize_s", in->tokenize_s, "settings", "padding",
            pad == EVAL_PAD_DYNAMIC ? "dynamic" : "exact", "batch_size", (int)batch, "device",
            ts_model_device(m), "max_length", (int)max_length, "threads", ts_get_threads(),
            "tokenizer", tok_mode_names[mode], "lowercase", lowercase);
        rc = write_json(report, r);
        json_decref(r);
    }
out:
    free(logits);
    json_decref(mj);
    eval_inputs_destroy(in);
    ts_model_destroy(m);
    tok_destroy(tok);
    dataset_destroy(ds);
    ckpt_files_free(&files);
    return rc;
}

int cli_run(int argc, char **argv)
{
    enum { O_OUTDIR = 256, O_THREADS, O_PDIR, O_QUIET };
    static const struct option opts[] = {{"out-dir", required_argument, 0, O_OUTDIR},
                                         {"threads", required_argument, 0, O_THREADS},
                                         {"plugin-dir", required_argument, 0, O_PDIR},
                                         {"quiet", no_argument, 0, O_QUIET},
                                         {0, 0, 0, 0}};
    const char *out_dir = NULL, *plugin_dir = NULL;
    long threads = 0;
    int quiet = 0, c, rc;
    char err[1024], base[PATH_MAX], outbuf[PATH_MAX];
    json_error_t je;

    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_OUTDIR:
            out_dir = optarg;
            break;
        case O_PDIR:
            plugin_dir = optarg;
            break;
        case O_QUIET:
            quiet = 1;
            break;
        case O_THREADS:
            if (parse_int(optarg, 1, 1024, &threads))
                return fail(EXIT_USAGE, "--threads: must be an integer from 1 to 1024");
            break;
        default:
            return fail(EXIT_USAGE, "usage: prunerd run JOB.json [--out-dir DIR] [--threads N] "
                                    "[--plugin-dir DIR] [--quiet]");
        }
    }
    if (optind != argc - 1)
        return fail(EXIT_USAGE, "usage: prunerd run JOB.json [--out-dir DIR] [--threads N] "
                                "[--plugin-dir DIR] [--quiet]");
    const char *path = argv[optind];
    json_t *raw = json_load_file(path, JSON_REJECT_DUPLICATES, &je), *req = NULL, *result = NULL;
    struct job_spec spec = {0};
    if (!raw) return fail(EXIT_USAGE, "%s:%d: %s", path, je.line, je.text);
    snprintf(base, sizeof base, "%s", path);
    char *dir = dirname(base);
    if ((rc = prepare(raw, dir, field_name, &req, &spec))) goto out;
    if (!out_dir) {
        char name[PATH_MAX];
        snprintf(name, sizeof name, "%s", path);
        char *b = basename(name), *dot = strrchr(b, '.');
        if (dot && dot != b) *dot = '\0';
        snprintf(outbuf, sizeof outbuf, "%s.out", b);
        out_dir = outbuf;
    }
    /* the model's format, config and outputs before anything is made */
    struct job_field_error fe;
    if (job_check_model(&spec, ckpt_resolve_local, NULL, &fe)) {
        rc = fail(EXIT_USAGE, "%s: %s", fe.field, fe.message);
        goto out;
    }
    struct job_hooks hooks = {.plugin_dir = plugin_dir, .threads = (int)threads, .verbose = !quiet};
    int jrc = job_execute(&spec, req, out_dir, &hooks, &result, err, sizeof err);
    if (jrc) {
        rc = fail(jrc == ERR_INVALID || jrc == ERR_FORMAT || jrc == ERR_UNSUPPORTED ? EXIT_USAGE
                                                                                    : EXIT_RUN,
                  "%s", err);
        goto out;
    }
    printf("result: %s/result.json\n", out_dir);
out:
    json_decref(raw);
    json_decref(req);
    json_decref(result);
    job_spec_free(&spec);
    return rc;
}

int cli_token_hash(int argc, char **argv)
{
    const char *name = "token", *role = "submit";
    char secret[1024], hex[AUTH_HASH_HEX + 1], err[256];
    enum auth_role r;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--name") && i + 1 < argc) {
            name = argv[++i];
        } else if (!strcmp(argv[i], "--role") && i + 1 < argc) {
            role = argv[++i];
        } else {
            fprintf(stderr, "usage: prunerd token-hash [--name NAME] [--role read|submit|admin] "
                            "< secret\n");
            return 2;
        }
    }
    if (auth_role_parse(role, &r)) {
        fprintf(stderr, "prunerd token-hash: role must be read, submit or admin\n");
        return 2;
    }
    if (isatty(STDIN_FILENO)) fprintf(stderr, "token (the secret clients send as Bearer): ");
    if (!fgets(secret, sizeof secret, stdin)) {
        fprintf(stderr, "prunerd token-hash: no token on stdin\n");
        return 2;
    }
    secret[strcspn(secret, "\r\n")] = '\0';
    if (auth_hash_token(secret, hex, err, sizeof err)) {
        fprintf(stderr, "prunerd token-hash: %s\n", err);
        return 2;
    }
    /* Check the line the way the server will read it. */
    char spec[128];
    struct auth *a = auth_create();
    snprintf(spec, sizeof spec, "%s:%s", role, hex);
    int rc = a ? auth_add(a, name, spec, err, sizeof err) : ERR_NOMEM;
    auth_destroy(a);
    if (rc) {
        fprintf(stderr, "prunerd token-hash: %s\n", err);
        return 2;
    }
    printf("%s = %s\n", name, spec);
    return 0;
}
