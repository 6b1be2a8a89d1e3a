/* recover.h - fine-tuning a pruned model: the loop, its schedules, curve and checkpoints */
#ifndef PRUNERD_RECOVER_H
#define PRUNERD_RECOVER_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "job.h"
#include "tokenizer.h"
#include "torch_shim.h"

/*
 * What the job gives the loop.  The training rows are spec->data read with
 * the eval block's classes and tokenizer (tok), padded to max_length.
 */
struct recover_args {
    const struct job_recover_spec *spec;
    struct ts_model *model;
    struct ts_model *teacher; /* the model as loaded (distill), or NULL */
    const struct tokenizer *tok;
    const char *classes;
    const size_t *held; /* the tensors whose zeros stay zero (the pruned targets) */
    size_t nheld;
    uint64_t seed;              /* shuffling and dropout */
    const char *checkpoint_dir; /* NULL: no checkpoints */
};

struct recover_hooks {
    void *ud;
    void (*progress)(void *ud, double done); /* fraction of the steps done */
    int (*cancelled)(void *ud);              /* checked before every step */
    /* recover.schedule: prune the held tensors to sparsity (a fraction of
     * the targets, as the job's amount counts it); 0 or an ERR_* */
    int (*prune_to)(void *ud, double sparsity, char *err, size_t errlen);
    /* recover.eval_every: accuracy and macro-F1 on the eval set */
    int (*evaluate)(void *ud, double *accuracy, double *macro_f1, char *err, size_t errlen);
};

/*
 * Trains args->model in place (model/train.cpp's trainer) for the spec's
 * steps: the learning rate rises linearly over the first ceil(warmup *
 * steps) steps and falls linearly to 0 at the last (transformers'
 * get_linear_schedule_with_warmup; the first step's rate is 0 when there
 * is a warm-up); batches in order, or reshuffled every epoch from the seed;
 * a schedule prunes every `every` steps to final + (initial - final)(1 -
 * t / steps)^3 and to final at `steps`.  With a checkpoint_dir, the state
 * is saved there every checkpoint_every steps (atomically, one file), and a
 * state found there for the same run (steps, batch size, rows, seed) is
 * resumed from.  Writes result.recovery into *recovery (caller decrefs):
 * {steps, epochs, steps_per_epoch, batch_size, warmup_steps, resumed_from_step,
 * steps_this_attempt, time_per_step_s, device, distill, curve: [{step, loss,
 * lr}], eval: [{step, accuracy, macro_f1}], schedule}, and its gist typed
 * into *sum.  Returns 0,
 * ERR_CANCELLED (the checkpoint stays), or another ERR_* with a message.
 */
struct recover_summary {
    long steps, ran;              /* all of the run's steps; this attempt's */
    double time_per_step_s;       /* this attempt's */
    double first_loss, last_loss; /* the curve's first and last points (0 without one) */
    const char *device;           /* the model's */
};
int recover_run(const struct recover_args *a, const struct recover_hooks *h, json_t **recovery,
                struct recover_summary *sum, char *err, size_t errlen);

/* The checkpoint file in dir (PATH/state.safetensors). */
int recover_checkpoint_path(const char *dir, char *out, size_t n);
/* The seed of the checkpoint in dir, when there is one: 1 with *seed set,
 * else 0.  A job without options.seed draws a seed per run; one that
 * resumes takes its checkpoint's, so the run it continues is the same. */
int recover_checkpoint_seed(const char *dir, uint64_t *seed);

#endif
