/* job.c - one pruning job run: load, evaluate, prune, evaluate, save */
#include "job.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "bert_config.h"
#include "dataset.h"
#include "err.h"
#include "eval.h"
#include "checkpoint.h"
#include "fsutil.h"
#include "json_text.h"
#include "prune.h"
#include "queue.h"
#include "recover.h"
#include "sparsity.h"
#include "structured.h"
#include "sweep.h"
#include "targets.h"
#include "tokenizer.h"
#include "torch_shim.h"

/* The stages, as indexes of job_stages. */
enum {
    ST_LOAD,
    ST_EVAL_BEFORE,
    ST_IMPORTANCE,
    ST_PRUNE,
    ST_EVAL_AFTER,
    ST_RECOVER,
    ST_EVAL_RECOVERED,
    ST_SAVE,
    ST_SWEEP
};

/* Share of the whole job each stage stands for, for progress: without and
 * with evaluation, and a structured job's (importance from data, rescale). */
static const double stage_weight_eval[JOB_STAGE_COUNT] = {0.05, 0.4, 0, 0.05, 0.4, 0, 0, 0.1, 0};
static const double stage_weight_noeval[JOB_STAGE_COUNT] = {0.3, 0, 0, 0.2, 0, 0, 0, 0.5, 0};
static const double stage_weight_structured[JOB_STAGE_COUNT] = {0.05, 0.2, 0.25, 0.2, 0.2,
                                                                0,    0,   0.1,  0};
/* a sweep: its points are nearly all of it */
static const double stage_weight_sweep[JOB_STAGE_COUNT] = {0.02, 0.03, 0, 0, 0, 0, 0, 0.01, 0.94};
/* recover: training is nearly all of it */
static const double stage_weight_recover[JOB_STAGE_COUNT] = {0.02, 0.04, 0.02, 0.01, 0.04,
                                                             0.82, 0.04, 0.01, 0};

/* Where artifacts go.  family: the input's own format is written there
 * (the command line's --out); the others are written when wanted. */
struct job_outputs {
    const char *torchscript; /* NULL: not wanted */
    const char *state_dict;
    const char *safetensors; /* a folder */
    const char *family;      /* NULL, or the path for the input's own format */
    const char *result;      /* NULL: not written */
    unsigned outputs;        /* JOB_OUT_* asked for; 0: the input's family */
    const char *recover_dir; /* recover's checkpoints; NULL: none */
};

struct run {
    const struct job_spec *spec;
    const json_t *request; /* for provenance.request only */
    const struct job_hooks *hooks;
    double weight[JOB_STAGE_COUNT];
    int stage;               /* index in job_stages */
    double sub_lo, sub_hi;   /* the part of the stage progress() now counts in; 0, 1 */
    struct ckpt_files files; /* what the model is made of */
    struct ts_model *model;
    struct tokenizer *tok;
    struct dataset *data;
    struct eval_inputs *inputs;
    size_t *targets;
    size_t ntargets;
    struct prune_amount *tamount; /* [ntargets]: each target's amount, when entries give them */
    uint64_t seed;
    json_t *result;
    json_t *timings;
    FILE *out; /* the seed's printout, or NULL */
    const struct job_outputs *o;
    unsigned want;     /* JOB_OUT_* this run writes (outputs_for) */
    const char *vocab; /* the vocab and lowercasing the evaluation used */
    int lowercase;
    uint8_t *layers; /* structured: the encoder layers the targets select */
    int nlayers;
    int **removed; /* structured: each layer's removed heads, numbered as loaded */
    int *nremoved;
    struct latency_point *points; /* structured: latency, typed */
    size_t npoints;
    struct calibration *cal;           /* structured: the calibration rows, or NULL */
    float *hi, *ni;                    /* structured: each head's and neuron's importance */
    struct ts_model *teacher;          /* recover.distill: the model as loaded */
    const struct prune_amount *amount; /* what prune() prunes to instead of the request's */
};

/* structured.calibration's rows, encoded as the evaluation encodes its data
 * (padded to eval.max_length). */
struct calibration {
    int64_t *ids, *mask, *labels; /* [n, len], [n, len], [n] */
    size_t n, len;
};

static int cancelled(void *ud)
{
    const struct run *r = ud;
    return r->hooks && r->hooks->cancelled && r->hooks->cancelled(r->hooks->ud);
}

static void stage_begin(struct run *r, int stage)
{
    r->stage = stage;
    r->sub_lo = 0;
    r->sub_hi = 1;
    if (r->hooks && r->hooks->stage) r->hooks->stage(r->hooks->ud, job_stages[stage]);
}

/* done: fraction of the current stage completed. */
static void progress(void *ud, double done)
{
    struct run *r = ud;
    if (!r->hooks || !r->hooks->progress) return;
    double p = 0;
    for (int s = 0; s < r->stage; s++)
        p += r->weight[s];
    done = r->sub_lo + (r->sub_hi - r->sub_lo) * done;
    r->hooks->progress(r->hooks->ud, p + r->weight[r->stage] * done);
}

/* Until the next call, progress() counts [lo, hi] of the current stage. */
static void substage(struct run *r, double lo, double hi)
{
    r->sub_lo = lo;
    r->sub_hi = hi;
    progress(r, 0);
}

/* The job removes heads and neurons: method structured, or a structured sweep. */
static int structured_of(const struct job_spec *s)
{
    return s->has_structured || (s->kind == JOB_KIND_SWEEP && s->method->id == PRUNE_STRUCTURED);
}

static int threads_of(const struct job_hooks *h)
{
    if (h && h->threads > 0) return h->threads;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* Prints the [:5, :5] corner of tensor idx, as the seed does. */
static void print_corner(struct run *r, size_t idx, const char *when)
{
    struct ts_tensor_info ti;
    float *w;
    char err[256];
    if (!r->out || ts_model_info(r->model, idx, &ti) != 0) return;
    if (ts_model_map_f32(r->model, idx, &w, err, sizeof err) != 0) return;
    int64_t rows = ti.ndim >= 2 ? ti.shape[0] : 1;
    int64_t cols = ti.ndim >= 2 ? ti.numel / ti.shape[0] : ti.numel;
    fprintf(r->out, "%s: %s[:5, :5]\n", when, ti.name);
    for (int64_t i = 0; i < rows && i < 5; i++) {
        fputs("  [", r->out);
        for (int64_t j = 0; j < cols && j < 5; j++)
            fprintf(r->out, "%s% .4f", j ? ", " : "", (double)w[i * cols + j]);
        fputs("]\n", r->out);
    }
    ts_model_unmap_f32(r->model, idx, 0, err, sizeof err);
}

/*
 * What this run saves (JOB_OUT_* bits in r->want), decided once the
 * model's format is known: the outputs asked for, or when the request said
 * nothing the input's own family (TorchScript: torchscript + state_dict; a
 * state_dict file: state_dict; safetensors or a Hugging Face folder:
 * safetensors).  TorchScript is written only from TorchScript, and
 * safetensors only from a model read from its weights.
 */
static int outputs_of(enum ckpt_kind k, unsigned asked, unsigned *out, char *err, size_t errlen)
{
    unsigned family = k == CKPT_TORCHSCRIPT  ? JOB_OUT_TORCHSCRIPT | JOB_OUT_STATE_DICT
                      : k == CKPT_STATE_DICT ? JOB_OUT_STATE_DICT
                                             : JOB_OUT_SAFETENSORS;
    unsigned want = asked ? asked : family;
    if ((want & JOB_OUT_TORCHSCRIPT) && k != CKPT_TORCHSCRIPT)
        return err_set(err, errlen, ERR_INVALID,
                       "outputs: torchscript is written only for a TorchScript input; this "
                       "model is a %s (ask for safetensors or state_dict)",
                       ckpt_kind_name(k));
    if ((want & JOB_OUT_SAFETENSORS) && k == CKPT_TORCHSCRIPT)
        return err_set(err, errlen, ERR_INVALID,
                       "outputs: safetensors is written for models read from their weights; "
                       "this one is TorchScript (ask for torchscript or state_dict)");
    *out = want;
    return 0;
}

static int outputs_for(struct run *r, char *err, size_t errlen)
{
    if (r->o->family) { /* the command line names its paths */
        r->want = 0;
        return 0;
    }
    return outputs_of(r->files.kind, r->o->outputs, &r->want, err, errlen);
}

int job_check_model(const struct job_spec *spec, ckpt_resolve_fn resolve, void *ud,
                    struct job_field_error *fe)
{
    struct ckpt_files f;
    unsigned want;
    char err[sizeof fe->message];
    int rc = ckpt_locate(spec->model, spec->model_config, resolve, ud, &f, err, sizeof err);
    const char *field = "model";
    if (!rc && f.kind != CKPT_TORCHSCRIPT && !f.config) {
        rc = ckpt_config_missing(&f, err, sizeof err);
    } else if (!rc && spec->has_eval && !spec->eval.vocab && !f.vocab) {
        rc = err_set(err, sizeof err, ERR_INVALID,
                     "is required (the model is no Hugging Face folder with a vocab.txt)");
        field = "eval.vocab";
    } else if (!rc && structured_of(spec) && f.kind == CKPT_TORCHSCRIPT) {
        rc = err_set(err, sizeof err, ERR_INVALID,
                     "structured needs a model read from its weights (a state_dict, safetensors "
                     "or a Hugging Face folder with its config.json); this one is TorchScript");
        field = "method";
    } else if (!rc && (rc = outputs_of(f.kind, spec->outputs, &want, err, sizeof err))) {
        field = "outputs";
    }
    if (rc) {
        const char *msg = err;
        if (!strncmp(err, "model_config: ", 14)) field = "model_config", msg = err + 14;
        if (!strncmp(err, "outputs: ", 9)) msg = err + 9;
        snprintf(fe->field, sizeof fe->field, "%s", field);
        snprintf(fe->message, sizeof fe->message, "%s", msg);
    }
    ckpt_files_free(&f);
    return rc;
}

/* Each target's own amount into r->tamount, when an entry of the request
 * gives one ({"glob", "amount"}); the rest get the top-level amount.  A
 * parameter two entries match with different amounts is ERR_INVALID, *bad
 * the later entry. */
static int target_amounts(struct run *r, long *bad, char *err, size_t errlen)
{
    const struct job_spec *s = r->spec;
    int any = 0, rc = 0;
    for (size_t j = 0; j < s->ntargets; j++)
        any |= s->tamounts[j].has;
    if (!any) return 0;
    long *who = malloc((r->ntargets + 1) * sizeof *who); /* the entry that set it; -1 none */
    if (!(r->tamount = calloc(r->ntargets + 1, sizeof *r->tamount)) || !who) {
        rc = err_set(err, errlen, ERR_NOMEM, "out of memory");
        goto out;
    }
    for (size_t t = 0; t < r->ntargets; t++)
        who[t] = -1;
    for (size_t j = 0; j < s->ntargets && !rc; j++) {
        size_t *idx = NULL, n = 0;
        long b;
        const struct prune_amount *a = s->tamounts[j].has ? &s->tamounts[j].a : &s->amount;
        if ((rc = targets_resolve(r->model, &s->targets[j], 1, &idx, &n, &b, err, errlen))) {
            *bad = (long)j;
            break;
        }
        for (size_t k = 0; k < n && !rc; k++) {
            size_t t = 0;
            while (t < r->ntargets && r->targets[t] != idx[k])
                t++;
            if (t == r->ntargets) continue;
            const struct prune_amount *old = &r->tamount[t];
            if (who[t] >= 0 &&
                (old->is_count != a->is_count ||
                 (a->is_count ? old->count != a->count : old->fraction != a->fraction))) {
                struct ts_tensor_info ti;
                ts_model_info(r->model, idx[k], &ti);
                *bad = (long)j;
                rc = err_set(err, errlen, ERR_INVALID,
                             "%s is matched by targets[%ld] too, with another amount", ti.name,
                             who[t]);
                break;
            }
            if (who[t] < 0) {
                r->tamount[t] = *a;
                who[t] = (long)j;
            }
        }
        free(idx);
    }
out:
    free(who);
    return rc;
}

static int load(struct run *r, char *err, size_t errlen)
{
    const struct job_spec *s = r->spec;
    const char *device = s->device;
    const char *pinned = r->hooks ? r->hooks->gpu_device : NULL;
    if (pinned && (!strcmp(device, "auto") || !strcmp(device, "cuda")))
        device = pinned;
    else if (!strcmp(device, "auto"))
        device = ts_cuda_available() ? "cuda" : "cpu";
    ts_set_threads(threads_of(r->hooks));
    /* Every file of the model through the hooks' resolver (the roots in the
     * daemon), its format from its content (model/checkpoint.h). */
    ckpt_resolve_fn resolve =
        r->hooks && r->hooks->resolve ? r->hooks->resolve : ckpt_resolve_local;
    void *rud = r->hooks && r->hooks->resolve ? r->hooks->resolve_ud : NULL;
    int rc = ckpt_locate(s->model, s->model_config, resolve, rud, &r->files, err, errlen);
    if (rc) return rc;
    if (s->kind == JOB_KIND_SWEEP)
        r->want = 0; /* a sweep saves no model */
    else if ((rc = outputs_for(r, err, errlen)))
        return rc;
    if ((rc = ckpt_open(&r->files, device, &r->model, err, errlen))) return rc;

    long bad = -1;
    if (structured_of(s)) {
        if (!ts_model_is_native(r->model))
            return err_set(err, errlen, ERR_INVALID,
                           "method: structured needs a model read from its weights; this one "
                           "is TorchScript");
        r->nlayers = ts_model_layers(r->model);
        if (!(r->layers = calloc((size_t)r->nlayers + 1, 1)))
            return err_set(err, errlen, ERR_NOMEM, "out of memory");
        rc = targets_layers(r->model, s->targets, s->ntargets, r->nlayers, r->layers, &bad, err,
                            errlen);
    } else {
        rc = targets_resolve(r->model, s->targets, s->ntargets, &r->targets, &r->ntargets, &bad,
                             err, errlen);
        if (!rc) rc = target_amounts(r, &bad, err, errlen);
    }
    if (rc) {
        char msg[512];
        snprintf(msg, sizeof msg, "targets[%ld]: %s", bad, err);
        return err_set(err, errlen, rc, "%s", msg);
    }
    progress(r, 0.5);

    if (s->has_eval) {
        const struct job_eval_spec *ev = &s->eval;
        /* What the request leaves out a Hugging Face folder gives: its
         * vocab.txt, tokenizer_config.json's do_lower_case; lowercase said by
         * neither is BERT's default, true. */
        const char *vocab = ev->vocab ? ev->vocab : r->files.vocab;
        if (!vocab)
            return err_set(err, errlen, ERR_INVALID,
                           "eval.vocab: is required (the model is no Hugging Face folder with a "
                           "vocab.txt)");
        int lowercase = ckpt_lowercase(&r->files, ev->lowercase);
        int rc;
        if ((rc = dataset_open(ev->data, ev->classes, ev->limit, &r->data, err, errlen))) return rc;
        /* (A request queued before eval.tokenizer existed has TOK_BERT_LEGACY
         * here: job_spec_from_stored saw to it.) */
        if ((rc = tok_open(vocab, ev->tokenizer, lowercase, &r->tok, err, errlen))) return rc;
        r->vocab = vocab;
        r->lowercase = lowercase;
        if ((rc = eval_inputs_open(r->tok, r->data, ev->max_length, &r->inputs, err, errlen)))
            return rc;
    }
    if (s->has_recover) {
        if (!ts_model_is_native(r->model))
            return err_set(err, errlen, ERR_INVALID,
                           "recover: training needs a model read from its weights; this one is "
                           "TorchScript");
        if (s->recover.has_distill && (rc = ts_model_clone(r->model, &r->teacher, err, errlen)))
            return rc;
    }
    if (r->out) {
        size_t count = ts_model_count(r->model);
        int64_t numel = 0;
        for (size_t i = 0; i < count; i++) {
            struct ts_tensor_info ti;
            if (ts_model_info(r->model, i, &ti) == 0 && ti.is_parameter) numel += ti.numel;
        }
        fprintf(r->out, "model: %s (%lld parameters in %zu tensors, on %s)\n", s->model,
                (long long)numel, count, ts_model_device(r->model));
        fprintf(r->out, "targets: %zu parameters\n", r->ntargets);
        for (size_t t = 0; t < r->ntargets; t++) {
            struct ts_tensor_info ti;
            if (ts_model_info(r->model, r->targets[t], &ti) != 0) continue;
            fprintf(r->out, "  %s [", ti.name);
            for (int d = 0; d < ti.ndim; d++)
                fprintf(r->out, "%s%lld", d ? ", " : "", (long long)ti.shape[d]);
            fprintf(r->out, "] %s\n", ts_dtype_name(ti.dtype));
        }
    }
    return 0;
}

/* Evaluates into result.metrics[when]; typed, unless NULL, gets the
 * metrics too (caller frees with metrics_free). */
static int evaluate_typed(struct run *r, const char *when, struct metrics *typed, char *err,
                          size_t errlen)
{
    const struct job_eval_spec *ev = &r->spec->eval;
    struct eval_hooks eh = {r, progress, cancelled};
    json_t *mj;
    int rc = eval_score(r->model, r->inputs, r->data, ev->batch_size, ev->padding, &eh, when,
                        r->out, NULL, NULL, &mj, typed, err, errlen);
    if (rc) return rc;
    json_object_set_new(json_object_get(r->result, "metrics"), when, mj);
    return 0;
}

static int evaluate(struct run *r, const char *when, char *err, size_t errlen)
{
    return evaluate_typed(r, when, NULL, err, errlen);
}

static int64_t parameters_of(const struct ts_model *m)
{
    int64_t n = 0;
    for (size_t i = 0; i < ts_model_count(m); i++) {
        struct ts_tensor_info ti;
        if (ts_model_info(m, i, &ti) == 0 && ti.is_parameter) n += ti.numel;
    }
    return n;
}

static void timing(struct run *r, const char *key, double since);

#define LATENCY_WARMUP 3
#define LATENCY_RUNS 20

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Forward milliseconds of m on batch x len ids (every token attended), p50
 * and p90 by nearest rank over LATENCY_RUNS timed runs after
 * LATENCY_WARMUP untimed ones. */
static int latency_of(struct ts_model *m, int batch, int len, double *p50, double *p90, char *err,
                      size_t errlen)
{
    const struct bert_config *c = ts_model_config(m);
    size_t n = (size_t)batch * (size_t)len;
    int64_t *ids = malloc(n * sizeof *ids), *mask = malloc(n * sizeof *mask);
    float *out = malloc((size_t)batch * (size_t)ts_model_labels(m) * sizeof *out + sizeof *out);
    double ms[LATENCY_RUNS];
    int ncls, rc = 0;
    if (!ids || !mask || !out) {
        rc = err_set(err, errlen, ERR_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        ids[i] = i % (size_t)len == 0 ? 0 : 1 + (int64_t)((i * 7919) % (size_t)(c->vocab_size - 1));
        mask[i] = 1;
    }
    for (int k = 0; k < LATENCY_WARMUP + LATENCY_RUNS && !rc; k++) {
        double t = fs_monotonic();
        rc = ts_model_forward(m, ids, mask, batch, len, out,
                              (size_t)batch * (size_t)ts_model_labels(m), &ncls, err, errlen);
        if (k >= LATENCY_WARMUP) ms[k - LATENCY_WARMUP] = (fs_monotonic() - t) * 1000.0;
    }
    if (!rc) {
        qsort(ms, LATENCY_RUNS, sizeof ms[0], cmp_double);
        *p50 = ms[(LATENCY_RUNS + 1) / 2 - 1];
        *p90 = ms[(LATENCY_RUNS * 9 + 9) / 10 - 1];
    }
out:
    free(ids);
    free(mask);
    free(out);
    return rc;
}

/* One batch x length of structured.latency, timed dense and pruned. */
struct latency_point {
    int batch, seq_len;
    double dense_p50, dense_p90, pruned_p50, pruned_p90;
};

/* The points of the request (lengths above max_position_embeddings left
 * out) into r->points. */
static int latency_begin(struct run *r, char *err, size_t errlen)
{
    const struct job_latency_spec *ls = &r->spec->latency;
    const int maxpos = ts_model_config(r->model)->max_position_embeddings;
    r->points = calloc((size_t)(ls->nseq_lens * ls->nbatches) + 1, sizeof *r->points);
    if (!r->points) return err_set(err, errlen, ERR_NOMEM, "out of memory");
    for (int s = 0; s < ls->nseq_lens; s++)
        for (int b = 0; b < ls->nbatches && ls->seq_lens[s] <= maxpos; b++)
            r->points[r->npoints++] =
                (struct latency_point){.batch = ls->batches[b], .seq_len = ls->seq_lens[s]};
    return 0;
}

/* Times r->model at every point: the dense figures when pruned is 0, else
 * the pruned ones. */
static int latency_pass(struct run *r, int pruned, char *err, size_t errlen)
{
    for (size_t k = 0; k < r->npoints; k++) {
        struct latency_point *pt = &r->points[k];
        int rc =
            latency_of(r->model, pt->batch, pt->seq_len, pruned ? &pt->pruned_p50 : &pt->dense_p50,
                       pruned ? &pt->pruned_p90 : &pt->dense_p90, err, errlen);
        if (rc) return rc;
        if (cancelled(r)) return err_set(err, errlen, ERR_CANCELLED, "cancelled");
    }
    return 0;
}

static double speedup_of(const struct latency_point *pt)
{
    return pt->pruned_p50 > 0 ? pt->dense_p50 / pt->pruned_p50 : 0;
}

/* result.structured.latency, from r->points. */
static json_t *latency_json(struct run *r)
{
    const struct job_latency_spec *ls = &r->spec->latency;
    const int maxpos = ts_model_config(r->model)->max_position_embeddings;
    json_t *points = json_array(), *skipped = json_array();
    for (int s = 0; s < ls->nseq_lens; s++)
        if (ls->seq_lens[s] > maxpos) json_array_append_new(skipped, json_integer(ls->seq_lens[s]));
    for (size_t k = 0; k < r->npoints; k++) {
        const struct latency_point *pt = &r->points[k];
        json_array_append_new(points, json_pack("{s:i, s:i, s:{s:f, s:f}, s:{s:f, s:f}, s:f}",
                                                "batch", pt->batch, "seq_len", pt->seq_len,
                                                "dense_ms", "p50", pt->dense_p50, "p90",
                                                pt->dense_p90, "pruned_ms", "p50", pt->pruned_p50,
                                                "p90", pt->pruned_p90, "speedup", speedup_of(pt)));
    }
    return json_pack("{s:s, s:i, s:i, s:i, s:o, s:o}", "device", ts_model_device(r->model),
                     "threads", threads_of(r->hooks), "runs", LATENCY_RUNS, "warmup",
                     LATENCY_WARMUP, "points", points, "skipped_seq_lens", skipped);
}

/* A pass over the calibration rows: progress in the current (sub)stage,
 * and a cancel between batches. */
static int pass_progress(void *ud, double done)
{
    struct run *r = ud;
    progress(r, done);
    return cancelled(r);
}

static void calibration_free(struct calibration *c)
{
    if (!c) return;
    free(c->ids);
    free(c->mask);
    free(c->labels);
    free(c);
}

/* structured.calibration read and encoded as the evaluation reads its data,
 * padded to eval.max_length, into r->cal; with labels the model must have
 * when a gradient importance uses them. */
static int calibration_load(struct run *r, char *err, size_t errlen)
{
    const struct job_spec *s = r->spec;
    struct dataset *ds = NULL;
    struct eval_inputs *in = NULL;
    struct calibration *c = NULL;
    int rc = dataset_open(s->calibration_data, s->eval.classes, s->calibration_samples, &ds, err,
                          errlen);
    if (rc) return rc;
    if (!r->tok) {
        rc = err_set(err, errlen, ERR_INTERNAL, "calibration: no tokenizer");
        goto out;
    }
    if ((rc = eval_inputs_open(r->tok, ds, s->eval.max_length, &in, err, errlen))) goto out;
    const size_t n = in->n, L = (size_t)in->max_length;
    if (!(c = calloc(1, sizeof *c)) || !(c->ids = calloc(n * L + 1, sizeof *c->ids)) ||
        !(c->mask = calloc(n * L + 1, sizeof *c->mask)) ||
        !(c->labels = malloc((n + 1) * sizeof *c->labels))) {
        rc = err_set(err, errlen, ERR_NOMEM, "out of memory");
        goto out;
    }
    c->n = n;
    c->len = L;
    const int labelled = s->importance != JOB_MAGNITUDE && !s->calibration_model_labels;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = in->offset[i], k = 0; j < in->offset[i + 1] && k < L; j++, k++) {
            c->ids[i * L + k] = in->ids[j];
            c->mask[i * L + k] = 1;
        }
        c->labels[i] = in->label[i];
        if (labelled && (in->label[i] < 0 || in->label[i] >= ts_model_labels(r->model))) {
            rc = err_set(err, errlen, ERR_INVALID,
                         "structured.calibration.data: line %zu has label %d; the model has %d",
                         i + 1, in->label[i], ts_model_labels(r->model));
            goto out;
        }
    }
    r->cal = c;
    c = NULL;
out:
    calibration_free(c);
    eval_inputs_destroy(in);
    dataset_destroy(ds);
    return rc;
}

static const char *importance_name(enum job_importance i)
{
    return i == JOB_FISHER ? "fisher" : i == JOB_TAYLOR ? "taylor" : "magnitude";
}

/* The importance stage: each head's and neuron's importance into r->hi and
 * r->ni (the calibration rows read first, when the job has them). */
static int importance(struct run *r, char *err, size_t errlen)
{
    const struct job_spec *s = r->spec;
    size_t nh, nn;
    int rc;
    ts_model_units(r->model, &nh, &nn);
    if (!(r->hi = calloc(nh + 1, sizeof *r->hi)) || !(r->ni = calloc(nn + 1, sizeof *r->ni)))
        return err_set(err, errlen, ERR_NOMEM, "out of memory");
    float *hi = r->hi, *ni = r->ni;
    if (s->calibration_data && (rc = calibration_load(r, err, errlen))) return rc;
    if (s->importance == JOB_MAGNITUDE) return ts_model_magnitude(r->model, hi, ni, err, errlen);
    const struct calibration *c = r->cal;
    return ts_model_importance(r->model, s->importance == JOB_TAYLOR ? TS_TAYLOR : TS_FISHER,
                               c->ids, c->mask, s->calibration_model_labels ? NULL : c->labels,
                               (int64_t)c->n, (int64_t)c->len, s->calibration_batch, hi, ni,
                               pass_progress, r, err, errlen);
}

/* The kept heads' and neurons' factors, laid out by the smaller model's
 * own heads and neurons (the kept ones, in order). */
static void compact(const float *scale, const uint8_t *keep, size_t n, float *out)
{
    for (size_t i = 0, k = 0; i < n; i++)
        if (keep[i]) out[k++] = scale[i];
}

/* The smallest and largest of v[i] where keep[i] (0 and 0 when none is kept). */
static void kept_range(const float *v, const uint8_t *keep, size_t n, double *lo, double *hi)
{
    int any = 0;
    *lo = *hi = 0;
    for (size_t i = 0; i < n; i++) {
        if (!keep[i]) continue;
        if (!any++ || v[i] < *lo) *lo = v[i];
        if (any == 1 || v[i] > *hi) *hi = v[i];
    }
}

/* result.structured.rescale: how far it got and the factors' range. */
static json_t *rescale_json(const struct ts_rescale_stop *st, const float *hs, const uint8_t *hk,
                            size_t nh, const float *ns, const uint8_t *nk, size_t nn)
{
    double hlo, hhi, nlo, nhi;
    kept_range(hs, hk, nh, &hlo, &hhi);
    kept_range(ns, nk, nn, &nlo, &nhi);
    json_t *stopped = json_null();
    if (st->layer >= 0)
        stopped = json_pack("{s:i, s:s, s:s, s:f}", "layer", st->layer, "at",
                            st->neurons ? "neurons" : "heads", "reason",
                            st->reason == 1 ? "no finite solution" : "a factor beyond 10 in size",
                            "max_abs_factor", st->max_abs);
    return json_pack("{s:i, s:o, s:{s:f, s:f}, s:{s:f, s:f}}", "layers", st->layers, "stopped",
                     stopped, "heads", "min", hlo, "max", hhi, "neurons", "min", nlo, "max", nhi);
}

/*
 * Method structured, the pruning stage after the importance stage: the
 * choice (structured.h); with rescale, Kwon's factors on the dense model;
 * the dense latency; the heads and neurons removed from the tensors; with
 * rescale, metrics.after_mask on that smaller model and then the factors
 * folded into its columns; the pruned latency.  result.structured says
 * what went and what it saves (parameters, encoder MACs at seq_len).
 */
static int prune_structured(struct run *r, const float *hi, const float *ni, char *err,
                            size_t errlen)
{
    const struct structured_request *q = &r->spec->structured;
    const int rescale = r->spec->rescale;
    /* a copy: ts_model_shrink binds a new net, and the config with it */
    const struct bert_config cfg = *ts_model_config(r->model), *c = &cfg;
    const int nl = r->nlayers;
    int *heads = calloc((size_t)nl + 1, sizeof *heads), *ffn = calloc((size_t)nl + 1, sizeof *ffn);
    int *heads2 = calloc((size_t)nl + 1, sizeof *heads2),
        *ffn2 = calloc((size_t)nl + 1, sizeof *ffn2);
    float *hs = NULL, *ns = NULL, *hs2 = NULL, *ns2 = NULL;
    uint8_t *hk = NULL, *nk = NULL;
    size_t nh = 0, nn = 0;
    json_t *layers = NULL, *rj = NULL;
    struct ts_rescale_stop stop = {0, -1, 0, 0, 0};
    int rc = 0;
    r->removed = calloc((size_t)nl + 1, sizeof *r->removed);
    r->nremoved = calloc((size_t)nl + 1, sizeof *r->nremoved);
    if (!heads || !ffn || !heads2 || !ffn2 || !r->removed || !r->nremoved) {
        rc = err_set(err, errlen, ERR_NOMEM, "out of memory");
        goto out;
    }
    for (int l = 0; l < nl; l++) {
        ts_model_layer_shape(r->model, l, &heads[l], &ffn[l]);
        nh += (size_t)heads[l];
        nn += (size_t)ffn[l];
    }
    hk = malloc(nh + 1);
    nk = malloc(nn + 1);
    hs = calloc(nh + 1, sizeof *hs);
    ns = calloc(nn + 1, sizeof *ns);
    hs2 = calloc(nh + 1, sizeof *hs2);
    ns2 = calloc(nn + 1, sizeof *ns2);
    if (!hk || !nk || !hs || !ns || !hs2 || !ns2) {
        rc = err_set(err, errlen, ERR_NOMEM, "out of memory");
        goto out;
    }
    const int head_size = c->hidden_size / c->num_attention_heads;
    struct structured_shape sh = {nl, heads, ffn, r->layers, c->hidden_size, head_size};
    if ((rc = structured_select(&sh, q, hi, ni, hk, nk, err, errlen))) goto out;
    double t = fs_monotonic();
    if (rescale) {
        substage(r, 0, 0.4);
        const struct calibration *cal = r->cal;
        if ((rc = ts_model_rescale(r->model, cal->ids, cal->mask, (int64_t)cal->n,
                                   (int64_t)cal->len, r->spec->calibration_batch, hk, nk, hs, ns,
                                   &stop, pass_progress, r, err, errlen)))
            goto out;
        timing(r, "rescale_s", t);
        rj = rescale_json(&stop, hs, hk, nh, ns, nk, nn);
        if (r->out)
            fprintf(r->out, "rescale: %d of %d layers%s\n", stop.layers, nl,
                    stop.layer >= 0 ? " (stopped: no usable factors)" : "");
    }
    substage(r, rescale ? 0.4 : 0, rescale ? 0.5 : 0.5);
    double lt = fs_monotonic();
    if ((rc = latency_begin(r, err, errlen)) || (rc = latency_pass(r, 0, err, errlen))) goto out;
    int64_t params = parameters_of(r->model);
    int64_t macs = structured_macs(nl, heads, ffn, q->seq_len, c->hidden_size, head_size);
    layers = json_array();
    size_t h = 0, f = 0, hkept = 0, nkept = 0;
    for (int l = 0; l < nl; l++) {
        json_t *gone = json_array();
        r->removed[l] = malloc(sizeof **r->removed * (size_t)(heads[l] + 1));
        if (!r->removed[l]) {
            json_decref(gone);
            rc = err_set(err, errlen, ERR_NOMEM, "out of memory");
            goto out;
        }
        for (int i = 0; i < heads[l]; i++) {
            if (hk[h + (size_t)i]) {
                heads2[l]++;
                continue;
            }
            r->removed[l][r->nremoved[l]++] = i;
            json_array_append_new(gone, json_integer(i));
        }
        for (int i = 0; i < ffn[l]; i++)
            ffn2[l] += nk[f + (size_t)i];
        h += (size_t)heads[l];
        f += (size_t)ffn[l];
        hkept += (size_t)heads2[l];
        nkept += (size_t)ffn2[l];
        json_array_append_new(layers, json_pack("{s:i, s:b, s:i, s:i, s:i, s:i, s:o}", "layer", l,
                                                "selected", r->layers[l], "heads_before", heads[l],
                                                "heads", heads2[l], "ffn_before", ffn[l], "ffn",
                                                ffn2[l], "removed_heads", gone));
    }
    if ((rc = ts_model_shrink(r->model, hk, nk, err, errlen))) goto out;
    if (rescale) {
        if (r->spec->has_eval) { /* the smaller model before its factors */
            substage(r, 0.5, 0.9);
            double et = fs_monotonic();
            if ((rc = evaluate(r, "after_mask", err, errlen))) goto out;
            timing(r, "eval_after_mask_s", et);
        }
        compact(hs, hk, nh, hs2);
        compact(ns, nk, nn, ns2);
        if ((rc = ts_model_scale(r->model, hs2, ns2, err, errlen))) goto out;
    }
    substage(r, rescale ? 0.9 : 0.5, 1);
    if ((rc = latency_pass(r, 1, err, errlen))) goto out;
    timing(r, "latency_s", lt);
    int64_t params2 = parameters_of(r->model);
    int64_t macs2 = structured_macs(nl, heads2, ffn2, q->seq_len, c->hidden_size, head_size);
    json_t *sj = json_pack(
        "{s:s, s:i, s:{s:I, s:I}, s:{s:I, s:I}, s:{s:I, s:I, s:f}, s:{s:I, s:I, s:f}, s:o, s:o}",
        "importance", importance_name(r->spec->importance), "seq_len", q->seq_len, "heads",
        "before", (json_int_t)nh, "after", (json_int_t)hkept, "neurons", "before", (json_int_t)nn,
        "after", (json_int_t)nkept, "parameters", "dense", (json_int_t)params, "pruned",
        (json_int_t)params2, "kept", params ? (double)params2 / (double)params : 1.0,
        "encoder_macs", "dense", (json_int_t)macs, "pruned", (json_int_t)macs2, "kept",
        macs ? (double)macs2 / (double)macs : 1.0, "layers", layers, "latency", latency_json(r));
    layers = NULL;
    if (r->cal) {
        const struct job_spec *s = r->spec;
        json_object_set_new(sj, "calibration",
                            json_pack("{s:s, s:I, s:i, s:s}", "data", s->calibration_data,
                                      "samples", (json_int_t)r->cal->n, "batch_size",
                                      s->calibration_batch, "labels",
                                      s->calibration_model_labels ? "model" : "data"));
    }
    if (rj) json_object_set_new(sj, "rescale", rj);
    rj = NULL;
    json_object_set_new(r->result, "structured", sj);
    if (r->out)
        fprintf(r->out,
                "structured: heads %zu -> %zu, FFN neurons %zu -> %zu, parameters %lld -> %lld, "
                "encoder MACs at %d tokens %.4f of dense\n",
                nh, hkept, nn, nkept, (long long)params, (long long)params2, q->seq_len,
                macs ? (double)macs2 / (double)macs : 1.0);
    for (size_t k = 0; r->out && k < r->npoints; k++) {
        const struct latency_point *pt = &r->points[k];
        fprintf(r->out,
                "latency batch %d x %d tokens: dense p50 %.2f ms, pruned p50 %.2f ms, %.2fx\n",
                pt->batch, pt->seq_len, pt->dense_p50, pt->pruned_p50, speedup_of(pt));
    }
out:
    json_decref(layers);
    json_decref(rj);
    free(heads);
    free(ffn);
    free(heads2);
    free(ffn2);
    free(hs);
    free(ns);
    free(hs2);
    free(ns2);
    free(hk);
    free(nk);
    return rc;
}

static int prune(struct run *r, char *err, size_t errlen)
{
    if (r->spec->has_structured) return prune_structured(r, r->hi, r->ni, err, errlen);
    const struct job_spec *s = r->spec;
    const struct prune_method *pm = s->method;
    struct prune_params p = {0};
    struct prune_target *t = calloc(r->ntargets ? r->ntargets : 1, sizeof *t);
    struct ts_tensor_info *ti = calloc(r->ntargets ? r->ntargets : 1, sizeof *ti);
    uint8_t **masks = calloc(r->ntargets ? r->ntargets : 1, sizeof *masks);
    struct ts_dict *maskfile = NULL;
    struct plugin_handle *plugin = NULL;
    size_t mapped = 0;
    int rc = 0;

    if (!t || !ti || !masks || !pm) {
        rc = err_set(err, errlen, pm ? ERR_NOMEM : ERR_INTERNAL, "pruning: %s",
                     pm ? "out of memory" : "no method");
        goto out;
    }
    p.method = pm->id;
    p.scope = s->scope;
    p.amount = r->amount ? *r->amount : s->amount; /* zero (fraction 0) when it takes none */
    p.n = s->n;
    p.dim = s->dim;
    p.seed = r->seed;
    p.threshold = s->threshold;
    p.iterative = s->iterative;
    p.threads = threads_of(r->hooks);

    if (pm->id == PRUNE_PLUGIN) {
        if (!r->hooks || !r->hooks->plugin_dir) {
            rc = err_set(err, errlen, ERR_INVALID,
                         "options.plugin: plugins are off (no plugin dir configured)");
            goto out;
        }
        plugin = plugin_open(r->hooks->plugin_dir, s->plugin ? s->plugin : "", err, errlen);
        if (!plugin) {
            rc = ERR_INVALID;
            goto out;
        }
        p.plugin = plugin_api(plugin);
        p.plugin_params = s->plugin_params ? s->plugin_params : "null"; /* the ABI's "absent" */
    }
    if (pm->id == PRUNE_CUSTOM_FROM_MASK) {
        if ((rc = ts_dict_open(s->mask ? s->mask : "", &maskfile, err, errlen))) goto out;
    }
    for (size_t i = 0; i < r->ntargets; i++) {
        ts_model_info(r->model, r->targets[i], &ti[i]);
        if (maskfile) {
            char module[1024];
            long mi = ts_dict_find(maskfile, ti[i].name);
            size_t len = strlen(ti[i].name);
            if (mi < 0 && len > 7 && !strcmp(ti[i].name + len - 7, ".weight")) {
                snprintf(module, sizeof module, "%.*s", (int)(len - 7), ti[i].name);
                mi = ts_dict_find(maskfile, module);
            }
            struct ts_tensor_info mti;
            if (mi < 0 || ts_dict_info(maskfile, (size_t)mi, &mti) != 0) {
                rc = err_set(err, errlen, ERR_INVALID, "options.mask: no mask for %s", ti[i].name);
                goto out;
            }
            if (mti.numel != ti[i].numel) {
                rc = err_set(err, errlen, ERR_INVALID,
                             "options.mask: the mask for %s has %lld entries, the parameter %lld",
                             ti[i].name, (long long)mti.numel, (long long)ti[i].numel);
                goto out;
            }
            masks[i] = malloc((size_t)ti[i].numel ? (size_t)ti[i].numel : 1);
            if (!masks[i]) {
                rc = err_set(err, errlen, ERR_NOMEM, "out of memory");
                goto out;
            }
            if ((rc = ts_dict_read_u8(maskfile, (size_t)mi, masks[i], (size_t)ti[i].numel, err,
                                      errlen)))
                goto out;
        }
    }
    for (; mapped < r->ntargets; mapped++) {
        size_t i = mapped;
        if ((rc = ts_model_map_f32(r->model, r->targets[i], &t[i].data, err, errlen))) goto out;
        t[i].name = ti[i].name;
        t[i].ndim = ti[i].ndim;
        t[i].shape = ti[i].shape;
        t[i].numel = ti[i].numel;
        t[i].mask = masks[i];
    }
    if (!r->tamount || r->amount) {
        rc = prune_apply(t, r->ntargets, &p, err, errlen);
    } else { /* scope local: each target by its own amount, as one call would */
        for (size_t i = 0; i < r->ntargets && !rc; i++) {
            struct prune_params pi = p;
            pi.amount = r->tamount[i];
            rc = prune_apply(&t[i], 1, &pi, err, errlen);
        }
    }
out:
    for (size_t i = 0; i < mapped; i++) {
        char e2[256];
        int rc2 = ts_model_unmap_f32(r->model, r->targets[i], rc == 0, e2, sizeof e2);
        if (rc2 && !rc) rc = err_set(err, errlen, rc2, "%s", e2);
    }
    for (size_t i = 0; masks && i < r->ntargets; i++)
        free(masks[i]);
    free(masks);
    free(t);
    free(ti);
    ts_dict_destroy(maskfile);
    plugin_close(plugin);
    return rc;
}

/* Saves one artifact through a temporary name; appends it to artifacts. */
static int save_one(struct run *r, const char *format, const char *path, char *err, size_t errlen)
{
    char tmp[PATH_MAX], hex[65];
    int64_t bytes = 0;
    int rc = fs_tmp_path(path, tmp, sizeof tmp, err, errlen);
    if (rc) return rc;
    rc = !strcmp(format, "torchscript") ? ts_model_save_torchscript(r->model, tmp, err, errlen)
                                        : ts_model_save_state_dict(r->model, tmp, err, errlen);
    if (!rc) rc = fs_sha256_file(tmp, hex, &bytes, err, errlen);
    if (!rc) rc = fs_commit(tmp, path, err, errlen);
    if (rc) {
        unlink(tmp);
        return rc;
    }
    json_array_append_new(json_object_get(r->result, "artifacts"),
                          json_pack("{s:s, s:s, s:I, s:s}", "format", format, "path", path, "bytes",
                                    (json_int_t)bytes, "sha256", hex));
    if (r->out)
        fprintf(r->out, "saved %s: %s (%lld bytes, sha256 %s)\n", format, path, (long long)bytes,
                hex);
    return 0;
}

/* A Hugging Face folder at dir (model/checkpoint.h); appends it to
 * artifacts with its files.  The labels are the evaluation's class names
 * when they fit the head. */
static int save_folder(struct run *r, const char *dir, char *err, size_t errlen)
{
    struct ckpt_saved saved;
    int nlabels = ts_model_labels(r->model);
    const char *const *labels =
        r->data && (int)r->data->nclasses == nlabels ? (const char *const *)r->data->classes : NULL;
    int rc =
        ckpt_save_folder(r->model, r->files.config, labels, nlabels, (const int *const *)r->removed,
                         r->nremoved, dir, &saved, err, errlen);
    if (rc) return rc;
    json_t *files = json_array();
    for (size_t i = 0; i < saved.nfiles; i++)
        json_array_append_new(files, json_pack("{s:s, s:I, s:s}", "name", saved.files[i].name,
                                               "bytes", (json_int_t)saved.files[i].bytes, "sha256",
                                               saved.files[i].sha256));
    json_array_append_new(json_object_get(r->result, "artifacts"),
                          json_pack("{s:s, s:s, s:I, s:o}", "format", "safetensors", "path", dir,
                                    "bytes", (json_int_t)saved.bytes, "files", files));
    if (r->out)
        fprintf(r->out, "saved safetensors: %s/ (%lld bytes: config.json, model.safetensors)\n",
                dir, (long long)saved.bytes);
    return 0;
}

static json_t *input_json(const char *path, char *err, size_t errlen)
{
    char hex[65];
    int64_t bytes;
    if (fs_sha256_file(path, hex, &bytes, err, errlen) != 0) return NULL;
    return json_pack("{s:s, s:s, s:I}", "path", path, "sha256", hex, "bytes", (json_int_t)bytes);
}

static int provenance(struct run *r, char *err, size_t errlen)
{
    const struct job_eval_spec *ev = &r->spec->eval;
    const struct {
        const char *name, *path;
    } evfiles[] = {{"data", ev->data}, {"vocab", r->vocab}, {"classes", ev->classes}};
    json_t *inputs = json_object();
    json_t *req = json_deep_copy(r->request);
    json_t *model = NULL;
    if (r->files.kind == CKPT_HF_DIR || r->files.config) {
        /* a folder, or weights with a config: each file on its own */
        json_t *files = json_array();
        int64_t bytes = 0;
        model = json_pack("{s:s, s:s, s:o}", "path", r->spec->model, "format",
                          ckpt_kind_name(r->files.kind), "files", files);
        for (size_t i = 0; i <= r->files.nweights; i++) {
            const char *p = i < r->files.nweights ? r->files.weights[i] : r->files.config;
            json_t *f = input_json(p, err, errlen);
            if (!f) goto fail;
            bytes += json_integer_value(json_object_get(f, "bytes"));
            json_array_append_new(files, f);
        }
        json_object_set_new(model, "bytes", json_integer(bytes));
    } else {
        if (!(model = input_json(r->spec->model, err, errlen))) goto fail;
        json_object_set_new(model, "format", json_string(ckpt_kind_name(r->files.kind)));
    }
    json_object_set_new(inputs, "model", model);
    model = NULL;
    for (size_t i = 0; r->spec->has_eval && i < 3; i++) {
        if (!evfiles[i].path) continue;
        json_t *f = input_json(evfiles[i].path, err, errlen);
        if (!f) goto fail;
        json_object_set_new(inputs, evfiles[i].name, f);
    }
    json_object_set_new(json_object_get(req, "options"), "seed", json_integer((json_int_t)r->seed));
    if (r->spec->has_eval) /* what eval ran with, the model folder's defaults included */
        json_object_set_new(inputs, "tokenizer",
                            json_pack("{s:s, s:b}", "vocab", r->vocab, "lowercase", r->lowercase));
    json_object_set_new(r->result, "provenance",
                        json_pack("{s:o, s:o, s:I, s:{s:s, s:s}, s:s, s:i}", "inputs", inputs,
                                  "request", req, "seed", (json_int_t)r->seed, "versions",
                                  "prunerd", PRUNERD_VERSION, "libtorch", ts_libtorch_version(),
                                  "device", ts_model_device(r->model), "threads",
                                  threads_of(r->hooks)));
    return 0;
fail:
    json_decref(model);
    json_decref(inputs);
    json_decref(req);
    return ERR_IO;
}

static void timing(struct run *r, const char *key, double since)
{
    json_object_set_new(r->timings, key, json_real(fs_monotonic() - since));
}

/* The end of every job: timings and provenance into the result, and
 * result.json written (atomically) when o names it. */
static int finish(struct run *r, const struct job_outputs *o, char *err, size_t errlen)
{
    json_object_set(r->result, "timings", r->timings);
    int rc = provenance(r, err, errlen);
    if (rc) return rc;
    if (o->result) {
        char *text = json_text_dumps(r->result, JSON_INDENT(2));
        if (!text) return err_set(err, errlen, ERR_NOMEM, "result: out of memory");
        rc = fs_write_atomic(o->result, text, strlen(text), err, errlen);
        free(text);
        if (rc) return rc;
    }
    progress(r, 1.0);
    return 0;
}

/* A sweep's points, typed: groups x amounts. */
struct sweep_run {
    struct sweep_group *groups;
    size_t ngroups;
    double *acc, *f1, *secs; /* [ngroups * namounts] */
};

/* Every point: the group's tensors set aside, pruned by the amount,
 * evaluated on the inputs tokenized once, and put back. */
static int sweep_points(struct run *r, struct sweep_run *w, char *err, size_t errlen)
{
    const struct job_sweep_spec *sw = &r->spec->sweep;
    const struct job_eval_spec *ev = &r->spec->eval;
    const size_t na = (size_t)sw->namounts, total = w->ngroups * na;
    struct eval_hooks eh = {r, progress, cancelled};
    int rc = 0;
    for (size_t g = 0; g < w->ngroups && !rc; g++) {
        struct ts_kept *kept = NULL;
        const struct sweep_group *gr = &w->groups[g];
        if ((rc = ts_model_keep(r->model, gr->tensors, gr->ntensors, &kept, err, errlen))) break;
        for (size_t k = 0; k < na && !rc; k++) {
            const size_t at = g * na + k;
            if (cancelled(r)) {
                rc = err_set(err, errlen, ERR_CANCELLED, "cancelled");
                break;
            }
            substage(r, (double)at / (double)total, (double)(at + 1) / (double)total);
            double t = fs_monotonic();
            struct eval_output eo;
            struct metrics mt;
            int scored = 0;
            rc = sweep_prune(r->model, gr, sw->amounts[k], r->hi, r->ni, threads_of(r->hooks), err,
                             errlen);
            if (!rc)
                scored = !(rc = eval_metrics(r->model, r->inputs, r->data, ev->batch_size,
                                             ev->padding, &eh, &eo, &mt, err, errlen));
            int rc2 = ts_model_put_back(r->model, kept, err, errlen);
            if (!rc) rc = rc2;
            if (scored) {
                w->acc[at] = mt.accuracy;
                w->f1[at] = mt.macro_f1;
                metrics_free(&mt);
                eval_output_free(&eo);
            }
            if (!rc) {
                w->secs[at] = fs_monotonic() - t;
                if (r->out)
                    fprintf(r->out, "point %s at %.4g: accuracy %.4f, macro-F1 %.4f (%.2f s)\n",
                            gr->name, sw->amounts[k], w->acc[at], w->f1[at], w->secs[at]);
            }
        }
        ts_kept_destroy(kept);
    }
    return rc;
}

/* result.recommendation: the amounts per group for recommend.sparsity, and
 * the prune job that applies them (the sweep's request with each swept
 * tensor a {"glob", "amount"} entry). */
static int sweep_recommendation(struct run *r, const struct sweep_run *w, double dense, char *err,
                                size_t errlen)
{
    const struct job_sweep_spec *sw = &r->spec->sweep;
    int64_t *numel = calloc(w->ngroups + 1, sizeof *numel);
    double *amount = calloc(w->ngroups + 1, sizeof *amount), predicted = 0;
    int rc = 0;
    if (!numel || !amount) {
        rc = err_set(err, errlen, ERR_NOMEM, "out of memory");
        goto out;
    }
    for (size_t g = 0; g < w->ngroups; g++)
        numel[g] = w->groups[g].numel;
    if ((rc = sweep_recommend(numel, w->ngroups, sw->amounts, (size_t)sw->namounts, w->acc, dense,
                              sw->sparsity, amount, &predicted, err, errlen)))
        goto out;
    json_t *req = json_deep_copy(r->request), *targets = json_array(), *amounts = json_object();
    const char *keys[] = {"kind", "group", "amounts", "recommend"};
    for (size_t k = 0; k < 4; k++)
        json_object_del(req, keys[k]);
    int64_t pruned = 0, all = 0;
    for (size_t g = 0; g < w->ngroups; g++) {
        const struct sweep_group *gr = &w->groups[g];
        json_object_set_new(amounts, gr->name, json_real(amount[g]));
        for (size_t i = 0; i < gr->ntensors; i++) {
            struct ts_tensor_info ti;
            int64_t k = 0;
            struct prune_amount a = {.fraction = amount[g]};
            ts_model_info(r->model, gr->tensors[i], &ti);
            prune_amount_nparams(&a, ti.numel, &k, err, errlen);
            pruned += k;
            all += ti.numel;
            json_array_append_new(targets,
                                  json_pack("{s:s, s:f}", "glob", ti.name, "amount", amount[g]));
        }
    }
    char name[201];
    snprintf(name, sizeof name, "%.180s%srecommended", r->spec->name, r->spec->name[0] ? " " : "");
    json_object_set_new(req, "targets", targets);
    json_object_set_new(req, "method", json_string("l1_unstructured"));
    json_object_set_new(req, "amount", json_real(sw->sparsity));
    json_object_set_new(req, "amount_kind", json_string("fraction"));
    json_object_set_new(req, "scope", json_string("local"));
    json_object_set_new(req, "outputs", json_null());
    json_object_set_new(req, "name", json_string(name));
    const double achieved = all ? (double)pruned / (double)all : 0.0;
    json_object_set_new(r->result, "recommendation",
                        json_pack("{s:f, s:f, s:f, s:o, s:o}", "sparsity", sw->sparsity, "achieved",
                                  achieved, "predicted_accuracy", predicted, "amounts", amounts,
                                  "request", req));
    if (r->out)
        fprintf(r->out, "recommendation: sparsity %.4f, predicted accuracy %.4f\n", achieved,
                predicted);
out:
    free(numel);
    free(amount);
    return rc;
}

struct ranked {
    size_t group;
    double sensitivity;
};

static int cmp_ranked(const void *a, const void *b)
{
    const struct ranked *x = a, *y = b;
    if (x->sensitivity != y->sensitivity) return x->sensitivity > y->sensitivity ? -1 : 1;
    return (x->group > y->group) - (x->group < y->group);
}

/* result.points, result.sweep (its groups most sensitive first). */
static int sweep_json(struct run *r, const struct sweep_run *w, double dense, double dense_f1)
{
    const struct job_sweep_spec *sw = &r->spec->sweep;
    const size_t na = (size_t)sw->namounts;
    struct ranked *rk = calloc(w->ngroups + 1, sizeof *rk);
    if (!rk) return ERR_NOMEM;
    json_t *points = json_array(), *groups = json_array(), *amounts = json_array();
    for (size_t k = 0; k < na; k++)
        json_array_append_new(amounts, json_real(sw->amounts[k]));
    for (size_t g = 0; g < w->ngroups; g++) {
        double drop = 0;
        for (size_t k = 0; k < na; k++) {
            const size_t at = g * na + k;
            drop += dense - w->acc[at];
            json_array_append_new(points,
                                  json_pack("{s:s, s:f, s:f, s:f, s:f}", "group", w->groups[g].name,
                                            "amount", sw->amounts[k], "accuracy", w->acc[at],
                                            "macro_f1", w->f1[at], "seconds", w->secs[at]));
        }
        rk[g] = (struct ranked){g, drop / (double)na};
    }
    qsort(rk, w->ngroups, sizeof *rk, cmp_ranked);
    for (size_t i = 0; i < w->ngroups; i++) {
        const struct sweep_group *gr = &w->groups[rk[i].group];
        json_t *names = json_array();
        for (size_t t = 0; gr->layer < 0 && t < gr->ntensors; t++) {
            struct ts_tensor_info ti;
            ts_model_info(r->model, gr->tensors[t], &ti);
            json_array_append_new(names, json_string(ti.name));
        }
        json_t *o = json_pack("{s:s, s:o, s:f}", "group", gr->name, "tensors", names, "sensitivity",
                              rk[i].sensitivity);
        if (gr->layer >= 0) {
            int heads, ffn;
            ts_model_layer_shape(r->model, gr->layer, &heads, &ffn);
            json_object_set_new(o, "layer", json_integer(gr->layer));
            json_object_set_new(o, "unit", json_string(gr->neurons ? "neurons" : "heads"));
            json_object_set_new(o, "units", json_integer(gr->neurons ? ffn : heads));
        } else {
            json_object_set_new(o, "parameters", json_integer((json_int_t)gr->numel));
        }
        json_array_append_new(groups, o);
    }
    free(rk);
    json_object_set_new(r->result, "points", points);
    json_object_set_new(
        r->result, "sweep",
        json_pack("{s:s, s:s, s:o, s:{s:f, s:f}, s:o}", "method", r->spec->method->name, "group",
                  sw->by_parameter ? "parameter" : "layer", "amounts", amounts, "dense", "accuracy",
                  dense, "macro_f1", dense_f1, "groups", groups));
    return 0;
}

/* A sweep: load, the dense evaluation, the points, result.json. */
static int execute_sweep(struct run *r, const struct job_outputs *o, char *err, size_t errlen)
{
    struct sweep_run w = {0};
    int rc;
    double t, dense, dense_f1;
    memcpy(r->weight, stage_weight_sweep, sizeof r->weight);
    r->result = json_pack("{s:s, s:{}, s:[]}", "kind", "sweep", "metrics", "artifacts");
    r->timings = json_object();

    stage_begin(r, ST_LOAD);
    t = fs_monotonic();
    if ((rc = load(r, err, errlen))) goto out;
    timing(r, "load_s", t);
    json_object_set_new(r->timings, "tokenize_s", json_real(r->inputs->tokenize_s));
    if (cancelled(r)) {
        rc = err_set(err, errlen, ERR_CANCELLED, "cancelled");
        goto out;
    }
    stage_begin(r, ST_EVAL_BEFORE);
    t = fs_monotonic();
    struct metrics before;
    if ((rc = evaluate_typed(r, "before", &before, err, errlen))) goto out;
    timing(r, "eval_before_s", t);
    dense = before.accuracy;
    dense_f1 = before.macro_f1;
    metrics_free(&before);

    stage_begin(r, ST_SWEEP);
    t = fs_monotonic();
    if (structured_of(r->spec)) {
        size_t nh, nn;
        ts_model_units(r->model, &nh, &nn);
        if (!(r->hi = calloc(nh + 1, sizeof *r->hi)) || !(r->ni = calloc(nn + 1, sizeof *r->ni))) {
            rc = err_set(err, errlen, ERR_NOMEM, "out of memory");
            goto out;
        }
        if ((rc = ts_model_magnitude(r->model, r->hi, r->ni, err, errlen)) ||
            (rc = sweep_groups_structured(r->model, r->layers, r->nlayers, &w.groups, &w.ngroups,
                                          err, errlen)))
            goto out;
    } else if ((rc = sweep_groups_unstructured(r->model, r->targets, r->ntargets,
                                               r->spec->sweep.by_parameter, &w.groups, &w.ngroups,
                                               err, errlen))) {
        goto out;
    }
    const size_t n = w.ngroups * (size_t)r->spec->sweep.namounts + 1;
    if (!(w.acc = calloc(n, sizeof *w.acc)) || !(w.f1 = calloc(n, sizeof *w.f1)) ||
        !(w.secs = calloc(n, sizeof *w.secs))) {
        rc = err_set(err, errlen, ERR_NOMEM, "out of memory");
        goto out;
    }
    if ((rc = sweep_points(r, &w, err, errlen))) goto out;
    timing(r, "sweep_s", t);
    if ((rc = sweep_json(r, &w, dense, dense_f1))) {
        rc = err_set(err, errlen, rc, "out of memory");
        goto out;
    }
    if (r->spec->sweep.has_recommend && (rc = sweep_recommendation(r, &w, dense, err, errlen)))
        goto out;

    stage_begin(r, ST_SAVE);
    rc = finish(r, o, err, errlen);
out:
    sweep_groups_free(w.groups, w.ngroups);
    free(w.acc);
    free(w.f1);
    free(w.secs);
    return rc;
}

/* result.sparsity of the model as it is now. */
static int sparsity_into(struct run *r, char *err, size_t errlen)
{
    json_t *sp = sparsity_compute(r->model, r->targets, r->ntargets, err, errlen);
    if (!sp) return ERR_INTERNAL;
    json_object_set_new(r->result, "sparsity", sp);
    if (r->ntargets) print_corner(r, r->targets[0], "after");
    if (r->out)
        fprintf(r->out, "sparsity: targets %.4f, model %.4f\n",
                json_real_value(json_object_get(sp, "targets")),
                json_real_value(json_object_get(sp, "global")));
    return 0;
}

/* recover.schedule: the targets pruned to sparsity by the job's method and scope. */
static int recover_prune_to(void *ud, double sparsity, char *err, size_t errlen)
{
    struct run *r = ud;
    const struct prune_amount a = {.fraction = sparsity};
    r->amount = &a;
    int rc = prune(r, err, errlen);
    r->amount = NULL;
    return rc;
}

/* recover.eval_every: the eval set's accuracy and macro-F1 now. */
static int recover_evaluate(void *ud, double *accuracy, double *macro_f1, char *err, size_t errlen)
{
    struct run *r = ud;
    const struct job_eval_spec *ev = &r->spec->eval;
    struct eval_hooks eh = {r, NULL, cancelled};
    struct eval_output eo = {0};
    struct metrics mt = {0};
    int rc = eval_metrics(r->model, r->inputs, r->data, ev->batch_size, ev->padding, &eh, &eo, &mt,
                          err, errlen);
    if (rc) return rc;
    *accuracy = mt.accuracy;
    *macro_f1 = mt.macro_f1;
    eval_output_free(&eo);
    metrics_free(&mt);
    return 0;
}

/* The recovering stage: training with the pruned weights held at zero
 * (core/job/recover.h), into result.recovery. */
static int recover(struct run *r, char *err, size_t errlen)
{
    const struct job_spec *s = r->spec;
    struct recover_args a = {.spec = &s->recover,
                             .model = r->model,
                             .teacher = r->teacher,
                             .tok = r->tok,
                             .classes = s->eval.classes,
                             .held = r->targets,
                             .nheld = r->ntargets,
                             .seed = r->seed,
                             .checkpoint_dir = r->o->recover_dir};
    struct recover_hooks h = {r, progress, cancelled, recover_prune_to, recover_evaluate};
    json_t *rec = NULL;
    struct recover_summary sum;
    int rc = recover_run(&a, &h, &rec, &sum, err, errlen);
    if (rc) return rc;
    if (r->out)
        fprintf(r->out,
                "recovery: %ld steps (%ld this run) on %s, %.4f s a step, loss %.4f -> %.4f\n",
                sum.steps, sum.ran, sum.device, sum.time_per_step_s, sum.first_loss, sum.last_loss);
    json_object_set_new(r->result, "recovery", rec);
    return 0;
}

static int execute(struct run *r, const struct job_outputs *o, char *err, size_t errlen)
{
    int has_eval = r->spec->has_eval;
    int rc;
    double t;

    if (r->spec->has_seed) {
        r->seed = r->spec->seed;
    } else {
        if (getrandom(&r->seed, sizeof r->seed, 0) != (ssize_t)sizeof r->seed)
            r->seed = (uint64_t)getpid();
        r->seed &= (1ull << 53) - 1; /* exact in a JSON number anywhere */
        if (r->spec->has_recover) recover_checkpoint_seed(o->recover_dir, &r->seed);
    }
    if (r->spec->kind == JOB_KIND_SWEEP) return execute_sweep(r, o, err, errlen);
    memcpy(r->weight,
           r->spec->has_recover      ? stage_weight_recover
           : r->spec->has_structured ? stage_weight_structured
           : has_eval                ? stage_weight_eval
                                     : stage_weight_noeval,
           sizeof r->weight);
    if (r->spec->has_recover && !r->spec->has_structured) { /* no importance stage */
        r->weight[ST_RECOVER] += r->weight[ST_IMPORTANCE];
        r->weight[ST_IMPORTANCE] = 0;
    }
    if (r->spec->has_structured && !has_eval) { /* the evaluations' share to the others */
        r->weight[ST_EVAL_BEFORE] = r->weight[ST_EVAL_AFTER] = 0;
        r->weight[ST_LOAD] = 0.2;
        r->weight[ST_SAVE] = 0.35;
    }
    r->result = json_pack("{s:{}, s:[]}", "metrics", "artifacts");
    r->timings = json_object();

    stage_begin(r, ST_LOAD);
    t = fs_monotonic();
    if ((rc = load(r, err, errlen))) return rc;
    timing(r, "load_s", t);
    if (r->inputs) json_object_set_new(r->timings, "tokenize_s", json_real(r->inputs->tokenize_s));
    if (r->ntargets) print_corner(r, r->targets[0], "before");

    if (has_eval) {
        if (cancelled(r)) return err_set(err, errlen, ERR_CANCELLED, "cancelled");
        stage_begin(r, ST_EVAL_BEFORE);
        t = fs_monotonic();
        if ((rc = evaluate(r, "before", err, errlen))) return rc;
        timing(r, "eval_before_s", t);
    }
    if (r->spec->has_structured) {
        if (cancelled(r)) return err_set(err, errlen, ERR_CANCELLED, "cancelled");
        stage_begin(r, ST_IMPORTANCE);
        t = fs_monotonic();
        if ((rc = importance(r, err, errlen))) return rc;
        timing(r, "importance_s", t);
    }
    if (cancelled(r)) return err_set(err, errlen, ERR_CANCELLED, "cancelled");
    stage_begin(r, ST_PRUNE);
    t = fs_monotonic();
    /* a gradual schedule starts at its initial sparsity */
    const struct prune_amount initial = {.fraction = r->spec->recover.initial};
    if (r->spec->has_recover && r->spec->recover.has_schedule) r->amount = &initial;
    rc = prune(r, err, errlen);
    r->amount = NULL;
    if (rc) return rc;
    timing(r, "prune_s", t);
    if ((rc = sparsity_into(r, err, errlen))) return rc;

    const int recovering = r->spec->has_recover;
    if (has_eval) {
        if (cancelled(r)) return err_set(err, errlen, ERR_CANCELLED, "cancelled");
        stage_begin(r, ST_EVAL_AFTER);
        t = fs_monotonic();
        if ((rc = evaluate(r, recovering ? "after_pruning" : "after", err, errlen))) return rc;
        timing(r, "eval_after_s", t);
    }
    if (recovering) {
        if (cancelled(r)) return err_set(err, errlen, ERR_CANCELLED, "cancelled");
        stage_begin(r, ST_RECOVER);
        t = fs_monotonic();
        if ((rc = recover(r, err, errlen))) return rc;
        timing(r, "recover_s", t);
        if ((rc = sparsity_into(r, err, errlen))) return rc;
        if (cancelled(r)) return err_set(err, errlen, ERR_CANCELLED, "cancelled");
        stage_begin(r, ST_EVAL_RECOVERED);
        t = fs_monotonic();
        if ((rc = evaluate(r, "after_recovery", err, errlen))) return rc;
        json_t *mj = json_object_get(r->result, "metrics");
        json_object_set(mj, "after", json_object_get(mj, "after_recovery"));
        timing(r, "eval_recovered_s", t);
    }
    if (cancelled(r)) return err_set(err, errlen, ERR_CANCELLED, "cancelled");
    stage_begin(r, ST_SAVE);
    t = fs_monotonic();
    if (o->family) {
        enum ckpt_kind k = r->files.kind;
        rc = k == CKPT_TORCHSCRIPT  ? save_one(r, "torchscript", o->family, err, errlen)
             : k == CKPT_STATE_DICT ? save_one(r, "state_dict", o->family, err, errlen)
                                    : save_folder(r, o->family, err, errlen);
        if (rc) return rc;
    }
    if ((r->want & JOB_OUT_TORCHSCRIPT) && o->torchscript &&
        (rc = save_one(r, "torchscript", o->torchscript, err, errlen)))
        return rc;
    progress(r, 0.4);
    if (((r->want & JOB_OUT_STATE_DICT) || (o->family && o->state_dict)) && o->state_dict &&
        (rc = save_one(r, "state_dict", o->state_dict, err, errlen)))
        return rc;
    progress(r, 0.7);
    if ((r->want & JOB_OUT_SAFETENSORS) && o->safetensors &&
        (rc = save_folder(r, o->safetensors, err, errlen)))
        return rc;
    timing(r, "save_s", t);
    return finish(r, o, err, errlen);
}

static int run_job(const struct job_spec *spec, const json_t *request, const struct job_outputs *o,
                   const struct job_hooks *hooks, json_t **result, char *err, size_t errlen)
{
    struct run r = {.spec = spec,
                    .request = request,
                    .hooks = hooks,
                    .o = o,
                    .out = hooks && hooks->verbose ? stdout : NULL};
    int rc = execute(&r, o, err, errlen);
    if (rc == 0 && result) *result = json_incref(r.result);
    json_decref(r.result);
    json_decref(r.timings);
    eval_inputs_destroy(r.inputs);
    dataset_destroy(r.data);
    tok_destroy(r.tok);
    free(r.targets);
    free(r.tamount);
    free(r.layers);
    for (int l = 0; r.removed && l < r.nlayers; l++)
        free(r.removed[l]);
    free(r.removed);
    free(r.nremoved);
    free(r.points);
    calibration_free(r.cal);
    free(r.hi);
    free(r.ni);
    ts_model_destroy(r.teacher);
    ts_model_destroy(r.model);
    /* a checkpoint is kept only for a run that did not end: a cancel (a
     * shutdown's requeue resumes from it) or a kill */
    if (o->recover_dir && rc != ERR_CANCELLED) {
        char e2[256];
        fs_tree_remove(o->recover_dir, e2, sizeof e2);
    }
    ckpt_files_free(&r.files);
    /* whatever the job left in CUDA's caching allocator (after an
     * out-of-memory too) goes back, so the next job and other processes on
     * the GPU get it; a no-op without CUDA devices */
    ts_cuda_empty_cache();
    return rc;
}

int job_execute_to(const struct job_spec *spec, const json_t *request, const char *family,
                   const char *state_dict, const char *result_path, const struct job_hooks *hooks,
                   json_t **result, char *err, size_t errlen)
{
    struct job_outputs o = {.state_dict = state_dict, .family = family, .result = result_path};
    return run_job(spec, request, &o, hooks, result, err, errlen);
}

int job_execute(const struct job_spec *spec, const json_t *request, const char *out_dir,
                const struct job_hooks *hooks, json_t **result, char *err, size_t errlen)
{
    char ts[PATH_MAX], sd[PATH_MAX], st[PATH_MAX], res[PATH_MAX], rec[PATH_MAX];
    int rc;
    if ((rc = fs_mkdir_p(out_dir, err, errlen))) return rc;
    /* A run killed while saving left temporary files: this run replaces them. */
    if ((rc = fs_remove_stale_tmp(out_dir, err, errlen)) < 0) return rc;
    snprintf(ts, sizeof ts, "%s/model.pt", out_dir);
    snprintf(sd, sizeof sd, "%s/model.pth", out_dir);
    snprintf(st, sizeof st, "%s/safetensors", out_dir);
    snprintf(res, sizeof res, "%s/result.json", out_dir);
    snprintf(rec, sizeof rec, "%s/recover", out_dir);
    struct job_outputs o = {.torchscript = ts,
                            .state_dict = sd,
                            .safetensors = st,
                            .result = res,
                            .outputs = spec->outputs,
                            .recover_dir = !spec->has_recover            ? NULL
                                           : hooks && hooks->recover_dir ? hooks->recover_dir
                                                                         : rec};
    return run_job(spec, request, &o, hooks, result, err, errlen);
}
