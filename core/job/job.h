/* job.h - one pruning job: its request, validation, paths and run */
#ifndef PRUNERD_JOB_H
#define PRUNERD_JOB_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "checkpoint.h"

#include "eval.h"
#include "prune.h"
#include "structured.h"
#include "tokenizer.h"

/*
 * A job request is the JSON that `prunerd run JOB.json` reads and
 * `POST /v1/jobs` takes:
 *
 *   {"model", "model_config", "targets": [glob...], "method", "amount", "amount_kind",
 *    "scope", "options": {n, dim, seed, threshold, mask, plugin,
 *    plugin_params, iterative}, "structured": {heads, neurons, target: {macs,
 *    seq_len}, scope, importance, calibration: {data, samples, batch_size,
 *    labels}, rescale, min_heads_per_layer, latency: {batches, seq_lens}}
 *    (method structured only),
 *    "eval": {data, vocab, classes, max_length,
 *    batch_size, lowercase, padding, limit, tokenizer} | absent, "outputs": [...],
 *    "device", "name"}
 *
 * A targets entry may also be {"glob", "amount"}: that glob's parameters are
 * pruned by its own amount (scope local; l1_unstructured, ln_structured).
 *
 * A sweep ("kind": "sweep", core/job/sweep.h) is {"model", "model_config",
 * "targets", "method": l1_unstructured | structured, "group": layer |
 * parameter, "amounts": [...], "recommend": {sparsity} | null, "options",
 * "eval" (required), "device", "name"}.
 *
 * "recover" (core/job/recover.h) fine-tunes the pruned model: {data, epochs |
 * steps, batch_size, lr, warmup, weight_decay, max_length, eval_every,
 * distill: {temperature, alpha} | null, shuffle, checkpoint_every,
 * max_grad_norm, schedule: {kind: "cubic", initial, final, steps, every} |
 * null}; it needs "eval".
 *
 * The stages, in order: loading, evaluating_before, importance, pruning,
 * evaluating_after, recovering, evaluating_recovered, saving (the
 * evaluations only when "eval" is given, importance only for method
 * structured, recovering and evaluating_recovered only with "recover"); a
 * sweep's: loading, evaluating_before, sweeping, saving.
 */

#define JOB_STAGE_COUNT 9
extern const char *const job_stages[JOB_STAGE_COUNT];

/* Which request field is wrong and why ("eval.max_length", "must be an
 * integer from 2 to 512"). */
struct job_field_error {
    char field[256]; /* a key sent is named whole up to 255 bytes */
    char message[512];
};

/* structured.latency: the forward passes timed, dense and pruned, for every
 * batch size x sequence length. */
#define JOB_LATENCY_MAX 8
struct job_latency_spec {
    int batches[JOB_LATENCY_MAX], nbatches;   /* [8] */
    int seq_lens[JOB_LATENCY_MAX], nseq_lens; /* [eval.max_length], else [128] */
};

/* The request's "eval" object, typed. */
struct job_eval_spec {
    char *data;                /* THUCNews-format file: text<TAB>label per line */
    char *vocab;               /* BERT vocab.txt; NULL: the model folder's (Hugging Face) */
    char *classes;             /* class names, one a line */
    int max_length;            /* 2..512, [CLS] and [SEP] included; 32 */
    int batch_size;            /* 1..4096; 256 */
    int lowercase;             /* BERT's do_lower_case: 0 or 1; -1: not said (the model
                                  folder's tokenizer_config.json, else 1) */
    enum eval_padding padding; /* EVAL_PAD_EXACT */
    enum tok_mode tokenizer;   /* TOK_BERT (TOK_BERT_LEGACY for a stored request without one) */
    long limit;                /* evaluate the first N examples; 0: all */
};

/*
 * A job request, typed: what job_request_normalize or job_spec_from_stored
 * made of the JSON, every default filled in.  The daemon reads this, never
 * the JSON; JSON stays at the edges (the HTTP body, the queue's column,
 * result.json).  Strings are owned (job_spec_free frees them).
 */
/* structured.importance */
enum job_importance { JOB_MAGNITUDE, JOB_TAYLOR, JOB_FISHER };

/* What a job does: prune a model and save it, or measure a sweep. */
enum job_kind { JOB_KIND_PRUNE, JOB_KIND_SWEEP };

/* A targets entry's own amount ({"glob", "amount"}). */
struct job_target_amount {
    int has;               /* 0: the top-level amount */
    struct prune_amount a; /* valid when has */
};

/* A sweep's fields (kind sweep). */
#define JOB_SWEEP_AMOUNTS_MAX 32
struct job_sweep_spec {
    int by_parameter;                      /* group "parameter"; 0: "layer" */
    double amounts[JOB_SWEEP_AMOUNTS_MAX]; /* fractions in (0, 1], increasing */
    int namounts;                          /* 1..JOB_SWEEP_AMOUNTS_MAX; 9 (0.1 .. 0.9) */
    int has_recommend;                     /* recommend given */
    double sparsity;                       /* recommend.sparsity, (0, the last amount] */
};

/* The request's "recover" object, typed (core/job/recover.h). */
struct job_recover_spec {
    char *data;            /* THUCNews-format training file (never the eval data) */
    int epochs;            /* 1..1000; 1 (0 when steps is given) */
    long steps;            /* optimizer steps; 0: epochs over the data */
    int batch_size;        /* 1..4096; 32 */
    double lr;             /* peak learning rate, (0, 1]; 2e-5 */
    double warmup;         /* [0, 1): the share of the steps the rate rises over; 0.06 */
    double weight_decay;   /* AdamW's, [0, 1]; 0.01 */
    int max_length;        /* 2..512; eval.max_length */
    long eval_every;       /* steps between evaluations on the eval set; 0: none */
    int has_distill;       /* distill from the model as loaded */
    double temperature;    /* (0, 100]; 2 */
    double alpha;          /* [0, 1]; 0.5 */
    int shuffle;           /* reshuffle every epoch (seeded); 1 */
    long checkpoint_every; /* steps between checkpoints; 500; 0: none */
    double max_grad_norm;  /* clip the gradients' 2-norm; 1.0; 0: no clipping */
    int has_schedule;      /* schedule: gradual pruning while training */
    double initial, final; /* sparsities: initial [0, final), final the job's amount */
    long schedule_steps;   /* the step pruning ends at; 0: three quarters of the steps */
    long schedule_every;   /* steps between prunings; 0: schedule_steps / 10 (at least 1) */
};

struct job_spec {
    enum job_kind kind;                   /* JOB_KIND_PRUNE */
    struct job_sweep_spec sweep;          /* kind sweep */
    char *model;                          /* the model: a file or a Hugging Face folder
                                             (model/checkpoint.h) */
    char *model_config;                   /* HF config.json for a single-file checkpoint, or NULL */
    char **targets;                       /* parameter or module globs */
    size_t ntargets;                      /* >= 1 */
    struct job_target_amount *tamounts;   /* [ntargets]: each entry's own amount */
    const struct prune_method *method;    /* an entry of prune_methods; l1_unstructured */
    struct prune_amount amount;           /* valid (prune_amount_check) when has_amount */
    int has_amount;                       /* 0: the method takes none (identity, threshold...) */
    enum prune_scope scope;               /* PRUNE_LOCAL */
    double n;                             /* ln_structured's p: > 0, +-INFINITY, PRUNE_NORM_FRO */
    int dim;                              /* structured methods' dim, -8..7; -1 */
    int has_seed;                         /* 0: a random seed per run */
    uint64_t seed;                        /* 0..INT64_MAX, when has_seed */
    int has_threshold;                    /* 1 for method threshold */
    double threshold;                     /* threshold: prune |w| < threshold; 0 when none */
    char *mask;                           /* custom_from_mask's mask file, or NULL */
    char *plugin;                         /* plugin name (letters, digits, '_', '-'), or NULL */
    char *plugin_params;                  /* compact JSON text for the plugin, or NULL */
    int iterative;                        /* exact zeros count as pruned already; 0 */
    int has_structured;                   /* method structured: its "structured" object */
    struct structured_request structured; /* seq_len: target.seq_len, else eval.max_length,
                                             else 128 */
    struct job_latency_spec latency;      /* structured only */
    enum job_importance importance;       /* structured.importance; JOB_MAGNITUDE */
    int rescale;                          /* structured.rescale; 0 */
    char *calibration_data;               /* structured.calibration.data (taylor, fisher or
                                             rescale), or NULL */
    int calibration_samples;              /* the file's first N lines; 2048 */
    int calibration_batch;                /* 32 */
    int calibration_model_labels;         /* labels "model": the dense model's predictions */
    int has_eval;                         /* 0: no evaluation (eval is zeroed) */
    struct job_eval_spec eval;            /* when has_eval */
    int has_recover;                      /* fine-tune after pruning */
    struct job_recover_spec recover;      /* when has_recover */
    unsigned outputs;                     /* JOB_OUT_* bits; 0: the input's own family */
    char device[16];                      /* "auto", "cpu", "cuda" or "cuda:N"; "auto" */
    char name[201];                       /* a label, at most 200 bytes; "" */
};

/* What a job saves, as bits of job_spec.outputs. */
enum job_output {
    JOB_OUT_TORCHSCRIPT = 1, /* model.pt */
    JOB_OUT_STATE_DICT = 2,  /* model.pth */
    JOB_OUT_SAFETENSORS = 4, /* model.safetensors (needs a native model) */
};

/* Frees what spec owns and zeroes it; safe on a zeroed spec (and NULL). */
void job_spec_free(struct job_spec *spec);

/*
 * Checks a request and returns a new object with every default filled in
 * (*out, caller decrefs; out may be NULL when only spec is wanted) and, when
 * spec is not NULL, the same request typed (caller frees it with
 * job_spec_free).  Paths are left as given.  On a bad field returns
 * ERR_INVALID with fe filled (fe may not be NULL), ERR_NOMEM when out of
 * memory; *out is then NULL and *spec zeroed.
 */
int job_request_normalize(const json_t *in, json_t **out, struct job_spec *spec,
                          struct job_field_error *fe);

/*
 * job_request_normalize for a request the queue stored (text, its JSON
 * column), read the way it ran when it was stored: a request whose eval has
 * no "tokenizer" was queued before eval.tokenizer existed and ran with the
 * legacy tokenizer, so it gets TOK_BERT_LEGACY (and *out says "bert_legacy").
 * Returns as job_request_normalize, or ERR_FORMAT when text is not JSON
 * (fe.field "", fe.message saying why).
 */
int job_spec_from_stored(const char *text, json_t **out, struct job_spec *spec,
                         struct job_field_error *fe);

/*
 * Resolves a path a request names.  field is "model", "model_config", "eval.data",
 * "eval.vocab", "eval.classes" or "options.mask".  Writes the absolute real
 * path into out.  Returns 0, ERR_DENIED (outside the allowed roots: never
 * opened), ERR_NOTFOUND, or ERR_INVALID, with a message.
 */
typedef int (*job_resolve_fn)(void *ud, const char *field, const char *path, char *out,
                              size_t outlen, char *err, size_t errlen);

/*
 * Replaces every path spec names by resolve's answer, and the same path in
 * req, the normalized JSON spec was made from, unless req is NULL (so the
 * two keep telling the same request).  On failure returns resolve's code
 * (or ERR_NOMEM) with fe naming the field; the paths before it are
 * resolved then, the rest not.
 */
int job_request_resolve_paths(struct job_spec *spec, json_t *req, job_resolve_fn resolve, void *ud,
                              struct job_field_error *fe);

/*
 * What a request's model is, checked before it is queued: the files are
 * there (each through resolve, model/checkpoint.h), a single file has its
 * config.json, eval has a vocab (its own or the folder's), and the outputs
 * asked for can be written from this format.  Returns 0, or the code with fe
 * naming the field ("model", "model_config", "eval.vocab", "outputs").
 */
int job_check_model(const struct job_spec *spec, ckpt_resolve_fn resolve, void *ud,
                    struct job_field_error *fe);

struct job_hooks {
    void *ud;
    void (*stage)(void *ud, const char *stage);  /* a stage begins */
    void (*progress)(void *ud, double progress); /* 0..1 over the whole job */
    int (*cancelled)(void *ud);                  /* non-zero: stop at the next batch or stage */
    const char *plugin_dir; /* where plugins load from; NULL: plugins refused */
    int threads;            /* libtorch and pruning threads; <= 0: default */
    const char *gpu_device; /* "cuda:N": what "auto" and "cuda" mean (a worker's GPU);
                               NULL: cuda when a device is there, else cpu */
    int verbose;            /* print the seed's output (module, 5x5 corner, metrics) on stdout */
    /* resolves each file of a model folder (the roots in the daemon);
     * NULL: ckpt_resolve_local (the command line) */
    int (*resolve)(void *ud, const char *path, char *out, size_t outlen, char *err, size_t errlen);
    void *resolve_ud;
    /* where recover keeps its checkpoint (created when needed; a later run
     * of the job with the same folder resumes from it); NULL: OUT_DIR/recover
     * for job_execute, none for job_execute_to */
    const char *recover_dir;
};

/*
 * Runs spec, whose paths are resolved (absolute): load, evaluate, prune,
 * evaluate, save.  request is the normalized JSON spec was made from (paths
 * resolved by the same job_request_resolve_paths call): result.json records
 * it as provenance.request, and nothing else reads it.  Writes the artifacts
 * and result.json into out_dir (each through a temporary name, fsync'd and
 * renamed when complete) and returns the result in *result (caller decrefs).
 * Returns ERR_CANCELLED when hooks->cancelled said so (nothing is left in
 * out_dir but completed files), or another ERR_* with a message.
 */
int job_execute(const struct job_spec *spec, const json_t *request, const char *out_dir,
                const struct job_hooks *hooks, json_t **result, char *err, size_t errlen);

/*
 * job_execute with the artifact paths given one by one (NULL: not written;
 * spec->outputs is not consulted), for `prunerd prune --out ...
 * --state-dict ... --report ...`: family gets the input's own format (a
 * TorchScript file, a state_dict file, or a Hugging Face folder for
 * safetensors and folder inputs), state_dict a state_dict as well.
 */
int job_execute_to(const struct job_spec *spec, const json_t *request, const char *family,
                   const char *state_dict, const char *result_path, const struct job_hooks *hooks,
                   json_t **result, char *err, size_t errlen);

#endif
