/* eval.h - batched evaluation of a classifier on a tokenized dataset */
#ifndef PRUNERD_EVAL_H
#define PRUNERD_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include <stdio.h>

#include <jansson.h>

#include "dataset.h"
#include "metrics.h"
#include "tokenizer.h"
#include "torch_shim.h"

enum eval_padding {
    EVAL_PAD_EXACT,   /* every input padded to max_length (the tutorial's) */
    EVAL_PAD_DYNAMIC, /* bucketed by length, padded to the longest in the batch */
};

/* A dataset encoded once ([CLS] ids [SEP], no padding), reused for the
 * evaluations before and after pruning. */
struct eval_inputs {
    int32_t *ids;   /* all examples' ids, concatenated */
    size_t *offset; /* n + 1 offsets into ids */
    int *label;     /* n */
    size_t n;
    int max_length;
    double tokenize_s; /* seconds spent encoding */
};

/* Encodes every example of d.  Returns 0 with *out set (free with
 * eval_inputs_destroy), or ERR_NOMEM or tok_encode's code with *out NULL. */
int eval_inputs_open(const struct tokenizer *t, const struct dataset *d, int max_length,
                     struct eval_inputs **out, char *err, size_t errlen);
void eval_inputs_destroy(struct eval_inputs *in);

struct eval_hooks {
    void *ud;
    void (*progress)(void *ud, double done); /* fraction of examples done */
    int (*cancelled)(void *ud);              /* checked between batches */
};

struct eval_output {
    int *pred;     /* n predictions (argmax, first on ties) */
    float *logits; /* n x ncls, in dataset order */
    int ncls;
    size_t n;
    double forward_s;     /* seconds in forward passes and batching */
    double samples_per_s; /* n / (tokenize_s + forward_s) */
};
void eval_output_free(struct eval_output *o);

/* Runs the model over in in batches of batch_size.  Returns 0, ERR_CANCELLED
 * when hooks said so, or another ERR_* with a message. */
int eval_run(struct ts_model *m, const struct eval_inputs *in, int batch_size,
             enum eval_padding padding, const struct eval_hooks *hooks, struct eval_output *out,
             char *err, size_t errlen);

/*
 * eval_run, then the metrics against the labels, typed: *eo and *mt filled
 * (caller frees them with eval_output_free and metrics_free).  A model
 * whose outputs are not d's classes is ERR_FORMAT.  Returns 0 or an ERR_*
 * code with a message, with nothing to free.
 */
int eval_metrics(struct ts_model *m, const struct eval_inputs *in, const struct dataset *d,
                 int batch_size, enum eval_padding padding, const struct eval_hooks *hooks,
                 struct eval_output *eo, struct metrics *mt, char *err, size_t errlen);

/*
 * eval_metrics, then the metrics as a new metrics object in
 * the result.json shape (metrics_to_json plus samples_per_s).  Prints the
 * one-line summary and sklearn's report on out unless out is NULL.  When
 * logits is set it gets the n x ncls logits (caller frees) and *ncls their
 * width.  When typed is set it gets the metrics as eval_metrics gives them
 * (caller frees with metrics_free).  Returns 0 with *metrics set (a new reference), or
 * ERR_CANCELLED when cancelled, or another ERR_* with a message, with *metrics NULL.
 */
int eval_score(struct ts_model *m, const struct eval_inputs *in, const struct dataset *d,
               int batch_size, enum eval_padding padding, const struct eval_hooks *hooks,
               const char *label, FILE *out, float **logits, int *ncls, json_t **metrics,
               struct metrics *typed, char *err, size_t errlen);

#endif
