/* recover.c - fine-tuning a pruned model: the loop, its schedules, curve and checkpoints */
#include "recover.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bert_config.h"
#include "dataset.h"
#include "err.h"
#include "eval.h"
#include "fsutil.h"
#include "json_text.h"
#include "safetensors.h"

/* Curve points kept: one per ceil(steps / CURVE_POINTS) steps. */
#define CURVE_POINTS 1000

struct loop {
    const struct recover_args *a;
    const struct recover_hooks *h;
    const struct job_recover_spec *s;
    struct eval_inputs *in;
    size_t n;            /* training rows */
    long spe;            /* steps per epoch: ceil(n / batch) */
    long total;          /* steps */
    long warm;           /* warm-up steps */
    long sched_steps;    /* schedule: the step pruning ends at */
    long sched_every;    /* schedule: steps between prunings */
    long log_every;      /* steps per curve point */
    size_t *perm;        /* this epoch's row order */
    long perm_epoch;     /* the epoch perm is for; -1: none */
    int64_t *ids, *mask; /* one batch, [batch, max_length] */
    int64_t *labels;     /* [batch] */
    struct ts_trainer *tr;
    json_t *curve, *evals, *prunings;
    double acc_loss; /* the losses since the last curve point */
    long acc_n;
    double pruned_to; /* the schedule's last sparsity */
    double train_s;   /* seconds of steps in earlier attempts */
    double attempt_s; /* seconds of steps in this one */
    char ckpt[PATH_MAX];
};

int recover_checkpoint_path(const char *dir, char *out, size_t n)
{
    return (size_t)snprintf(out, n, "%s/state.safetensors", dir) >= n ? ERR_INVALID : 0;
}

/* The recover_state a checkpoint at path carries (caller decrefs), or NULL
 * when there is none or it cannot be read (the run then starts over). */
static json_t *state_of(const char *path)
{
    struct st_file *f = NULL;
    char e[256];
    if (access(path, F_OK) || st_open(path, &f, e, sizeof e)) return NULL;
    const char *text = st_metadata(f, "recover_state");
    json_t *st = text ? json_loads(text, 0, NULL) : NULL;
    st_close(f);
    return st;
}

int recover_checkpoint_seed(const char *dir, uint64_t *seed)
{
    char path[PATH_MAX];
    if (!dir || recover_checkpoint_path(dir, path, sizeof path)) return 0;
    json_t *st = state_of(path);
    const char *s = json_string_value(json_object_get(json_object_get(st, "identity"), "seed"));
    char *end = NULL;
    int ok = s && *s && (*seed = strtoull(s, &end, 10), *end == '\0');
    json_decref(st);
    return ok;
}

/* splitmix64: the shuffle's generator (fixed, so a seed means one order) */
static uint64_t mix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* The rows of epoch e in order: as read, or a Fisher-Yates shuffle seeded
 * with the seed and the epoch. */
static void order_for(struct loop *L, long e)
{
    if (L->perm_epoch == e) return;
    for (size_t i = 0; i < L->n; i++)
        L->perm[i] = i;
    if (L->s->shuffle) {
        uint64_t st = L->a->seed ^ ((uint64_t)e * 0xd1b54a32d192ed03ull);
        for (size_t i = L->n - 1; i > 0; i--) {
            size_t j = (size_t)(mix(&st) % (uint64_t)(i + 1));
            size_t t = L->perm[i];
            L->perm[i] = L->perm[j];
            L->perm[j] = t;
        }
    }
    L->perm_epoch = e;
}

/* Step t's (0-based) batch into ids / mask / labels; its row count. */
static int64_t batch_for(struct loop *L, long t)
{
    const long e = t / L->spe, k = t % L->spe;
    const size_t B = (size_t)L->s->batch_size, len = (size_t)L->s->max_length;
    order_for(L, e);
    size_t lo = (size_t)k * B, hi = lo + B < L->n ? lo + B : L->n;
    memset(L->ids, 0, (hi - lo) * len * sizeof *L->ids);
    memset(L->mask, 0, (hi - lo) * len * sizeof *L->mask);
    for (size_t r = lo; r < hi; r++) {
        size_t row = L->perm[r], b = r - lo;
        for (size_t j = L->in->offset[row], c = 0; j < L->in->offset[row + 1] && c < len;
             j++, c++) {
            L->ids[b * len + c] = L->in->ids[j];
            L->mask[b * len + c] = 1;
        }
        L->labels[b] = L->in->label[row];
    }
    return (int64_t)(hi - lo);
}

/* transformers' get_linear_schedule_with_warmup at step t (0-based). */
static double lr_at(const struct loop *L, long t)
{
    double f = t < L->warm ? (double)t / (double)(L->warm > 1 ? L->warm : 1)
                           : (double)(L->total - t) /
                                 (double)(L->total - L->warm > 1 ? L->total - L->warm : 1);
    return L->s->lr * (f > 0 ? f : 0);
}

/* Zhu & Gupta's sparsity at step t of the schedule. */
static double cubic_at(const struct loop *L, long t)
{
    const double si = L->s->initial, sf = L->s->final;
    if (t >= L->sched_steps) return sf;
    double r = 1 - (double)t / (double)L->sched_steps;
    return sf + (si - sf) * r * r * r;
}

static json_t *schedule_json(const struct loop *L)
{
    if (!L->s->has_schedule) return json_null();
    return json_pack("{s:s, s:f, s:f, s:I, s:I, s:O}", "kind", "cubic", "initial", L->s->initial,
                     "final", L->s->final, "steps", (json_int_t)L->sched_steps, "every",
                     (json_int_t)L->sched_every, "prunings", L->prunings);
}

/* What a checkpoint must agree on to be resumed. */
static json_t *identity_json(const struct loop *L)
{
    char seed[32];
    snprintf(seed, sizeof seed, "%" PRIu64, L->a->seed);
    return json_pack("{s:I, s:i, s:I, s:i, s:s, s:b, s:b}", "steps", (json_int_t)L->total,
                     "batch_size", L->s->batch_size, "rows", (json_int_t)L->n, "max_length",
                     L->s->max_length, "seed", seed, "distill", L->s->has_distill, "schedule",
                     L->s->has_schedule);
}

static int checkpoint_save(struct loop *L, char *err, size_t errlen)
{
    char tmp[PATH_MAX];
    json_t *st = json_pack("{s:o, s:O, s:O, s:O, s:f, s:I, s:f, s:f}", "identity", identity_json(L),
                           "curve", L->curve, "eval", L->evals, "prunings", L->prunings, "acc_loss",
                           L->acc_loss, "acc_n", (json_int_t)L->acc_n, "pruned_to", L->pruned_to,
                           "train_s", L->train_s + L->attempt_s);
    char *text = st ? json_text_dumps(st, JSON_COMPACT) : NULL;
    json_decref(st);
    if (!text) return err_set(err, errlen, ERR_NOMEM, "checkpoint: out of memory");
    const char *meta[] = {"recover_state", text, NULL};
    int rc = fs_tmp_path(L->ckpt, tmp, sizeof tmp, err, errlen);
    if (!rc && (rc = ts_trainer_save(L->tr, tmp, meta, err, errlen))) remove(tmp);
    if (!rc) rc = fs_commit(tmp, L->ckpt, err, errlen);
    free(text);
    return rc;
}

/* Resumes from the checkpoint when there is one for this run: *step is
 * where it left off (0 when none).  A checkpoint of another run (other
 * steps, rows, seed...) is set aside, not used. */
static int checkpoint_load(struct loop *L, long *step, char *err, size_t errlen)
{
    *step = 0;
    json_t *st = state_of(L->ckpt), *want = identity_json(L);
    int same = st && json_equal(json_object_get(st, "identity"), want);
    json_decref(want);
    int rc = 0;
    if (same && (rc = ts_trainer_load(L->tr, L->ckpt, err, errlen)) == 0) {
        json_decref(L->curve);
        json_decref(L->evals);
        json_decref(L->prunings);
        L->curve = json_incref(json_object_get(st, "curve"));
        L->evals = json_incref(json_object_get(st, "eval"));
        L->prunings = json_incref(json_object_get(st, "prunings"));
        L->acc_loss = json_number_value(json_object_get(st, "acc_loss"));
        L->acc_n = (long)json_integer_value(json_object_get(st, "acc_n"));
        L->pruned_to = json_number_value(json_object_get(st, "pruned_to"));
        L->train_s = json_number_value(json_object_get(st, "train_s"));
        *step = (long)ts_trainer_steps(L->tr);
        if (!json_is_array(L->curve) || !json_is_array(L->evals) || !json_is_array(L->prunings))
            rc = err_set(err, errlen, ERR_FORMAT, "%s: a malformed recover_state", L->ckpt);
    }
    json_decref(st);
    return rc;
}

/* recover.schedule before step t: prune when the schedule says so. */
static int schedule_step(struct loop *L, long t, char *err, size_t errlen)
{
    if (!L->s->has_schedule || L->pruned_to >= L->s->final) return 0;
    if (t < L->sched_steps && t % L->sched_every) return 0;
    double s = cubic_at(L, t);
    if (s <= L->pruned_to && t < L->sched_steps) return 0;
    int rc = L->h->prune_to(L->h->ud, s, err, errlen);
    if (!rc) rc = ts_trainer_hold(L->tr, L->a->held, L->a->nheld, err, errlen);
    if (rc) return rc;
    L->pruned_to = s;
    json_array_append_new(L->prunings,
                          json_pack("{s:I, s:f}", "step", (json_int_t)t, "sparsity", s));
    return 0;
}

static int train(struct loop *L, json_t **recovery, struct recover_summary *sum, char *err,
                 size_t errlen)
{
    const struct job_recover_spec *s = L->s;
    const struct recover_args *a = L->a;
    struct ts_train_opts o = {.weight_decay = s->weight_decay,
                              .beta1 = 0.9,
                              .beta2 = 0.999,
                              .eps = 1e-8,
                              .max_grad_norm = s->max_grad_norm,
                              .dropout = 1,
                              .distill_alpha = s->has_distill ? s->alpha : 0,
                              .distill_temperature = s->has_distill ? s->temperature : 1,
                              .seed = a->seed};
    int rc = ts_trainer_open(a->model, s->has_distill ? a->teacher : NULL, &o, &L->tr, err, errlen);
    if (rc) return rc;
    if ((rc = ts_trainer_hold(L->tr, a->held, a->nheld, err, errlen))) return rc;
    long start = 0;
    if (L->ckpt[0] && (rc = checkpoint_load(L, &start, err, errlen))) return rc;
    const long first = start;
    for (long t = start; t < L->total; t++) {
        if (L->h->cancelled && L->h->cancelled(L->h->ud))
            return err_set(err, errlen, ERR_CANCELLED, "cancelled");
        if ((rc = schedule_step(L, t, err, errlen))) return rc;
        int64_t b = batch_for(L, t);
        double lr = lr_at(L, t), loss, ts = fs_monotonic();
        rc = ts_trainer_step(L->tr, L->ids, L->mask, L->labels, b, s->max_length, lr, &loss, err,
                             errlen);
        if (rc) return rc;
        L->attempt_s += fs_monotonic() - ts;
        L->acc_loss += loss;
        L->acc_n++;
        const long done = t + 1;
        if (done % L->log_every == 0 || done == L->total) {
            json_array_append_new(L->curve,
                                  json_pack("{s:I, s:f, s:f}", "step", (json_int_t)done, "loss",
                                            L->acc_loss / (double)L->acc_n, "lr", lr));
            L->acc_loss = 0;
            L->acc_n = 0;
        }
        if (s->eval_every && done % s->eval_every == 0 && done < L->total && L->h->evaluate) {
            double acc, f1;
            if ((rc = L->h->evaluate(L->h->ud, &acc, &f1, err, errlen))) return rc;
            json_array_append_new(L->evals, json_pack("{s:I, s:f, s:f}", "step", (json_int_t)done,
                                                      "accuracy", acc, "macro_f1", f1));
        }
        if (L->h->progress) L->h->progress(L->h->ud, (double)done / (double)L->total);
        if (L->ckpt[0] && s->checkpoint_every && done % s->checkpoint_every == 0 &&
            done < L->total && (rc = checkpoint_save(L, err, errlen)))
            return rc;
    }
    /* the schedule ends on final, however the steps fell */
    if ((rc = schedule_step(L, L->total, err, errlen))) return rc;
    const long ran = L->total - first;
    const size_t npts = json_array_size(L->curve);
    *sum = (struct recover_summary){
        .steps = L->total,
        .ran = ran,
        .time_per_step_s = ran > 0 ? L->attempt_s / (double)ran : 0.0,
        .first_loss =
            npts ? json_real_value(json_object_get(json_array_get(L->curve, 0), "loss")) : 0,
        .last_loss =
            npts ? json_real_value(json_object_get(json_array_get(L->curve, npts - 1), "loss")) : 0,
        .device = ts_model_device(L->a->model)};
    json_t *out = json_pack(
        "{s:I, s:i, s:I, s:i, s:I, s:f, s:f, s:I, s:I, s:f, s:s, s:o, s:O, s:O, s:o}", "steps",
        (json_int_t)L->total, "epochs", s->steps ? 0 : s->epochs, "steps_per_epoch",
        (json_int_t)L->spe, "batch_size", s->batch_size, "warmup_steps", (json_int_t)L->warm, "lr",
        s->lr, "weight_decay", s->weight_decay, "resumed_from_step", (json_int_t)first,
        "steps_this_attempt", (json_int_t)ran, "time_per_step_s", sum->time_per_step_s, "device",
        sum->device, "distill",
        s->has_distill ? json_pack("{s:f, s:f}", "temperature", s->temperature, "alpha", s->alpha)
                       : json_null(),
        "curve", L->curve, "eval", L->evals, "schedule", schedule_json(L));
    if (!out) return err_set(err, errlen, ERR_NOMEM, "recover: out of memory");
    json_object_set_new(out, "rows", json_integer((json_int_t)L->n));
    json_object_set_new(out, "train_s", json_real(L->train_s + L->attempt_s));
    *recovery = out;
    return 0;
}

int recover_run(const struct recover_args *a, const struct recover_hooks *h, json_t **recovery,
                struct recover_summary *sum, char *err, size_t errlen)
{
    const struct job_recover_spec *s = a->spec;
    struct dataset *ds = NULL;
    struct loop L = {.a = a, .h = h, .s = s, .perm_epoch = -1};
    int rc;
    *recovery = NULL;
    const struct bert_config *cfg = ts_model_config(a->model);
    if (!cfg)
        return err_set(err, errlen, ERR_INVALID,
                       "recover: needs a model read from its weights; this one is TorchScript");
    if (s->max_length > cfg->max_position_embeddings)
        return err_set(err, errlen, ERR_INVALID,
                       "recover.max_length: %d is more than the model's max_position_embeddings "
                       "(%d)",
                       s->max_length, cfg->max_position_embeddings);
    if ((rc = dataset_open(s->data, a->classes, 0, &ds, err, errlen))) return rc;
    if ((rc = eval_inputs_open(a->tok, ds, s->max_length, &L.in, err, errlen))) goto out;
    L.n = L.in->n;
    if (L.n == 0) {
        rc = err_set(err, errlen, ERR_INVALID, "recover.data: %s has no rows", s->data);
        goto out;
    }
    for (size_t i = 0; i < L.n; i++)
        if (L.in->label[i] < 0 || L.in->label[i] >= ts_model_labels(a->model)) {
            rc = err_set(err, errlen, ERR_INVALID,
                         "recover.data: line %zu has label %d; the "
                         "model has %d",
                         i + 1, L.in->label[i], ts_model_labels(a->model));
            goto out;
        }
    L.spe = (long)((L.n + (size_t)s->batch_size - 1) / (size_t)s->batch_size);
    L.total = s->steps ? s->steps : (long)s->epochs * L.spe;
    L.warm = (long)ceil(s->warmup * (double)L.total);
    L.log_every = (L.total + CURVE_POINTS - 1) / CURVE_POINTS;
    if (s->has_schedule) {
        L.sched_steps = s->schedule_steps ? s->schedule_steps : (L.total * 3) / 4;
        if (L.sched_steps < 1) L.sched_steps = 1;
        if (L.sched_steps > L.total) {
            rc = err_set(err, errlen, ERR_INVALID,
                         "recover.schedule.steps: %ld is more than the %ld training steps",
                         L.sched_steps, L.total);
            goto out;
        }
        L.sched_every = s->schedule_every ? s->schedule_every : L.sched_steps / 10;
        if (L.sched_every < 1) L.sched_every = 1;
        L.pruned_to = s->initial;
    }
    const size_t B = (size_t)s->batch_size, len = (size_t)s->max_length;
    L.perm = malloc(L.n * sizeof *L.perm);
    L.ids = malloc(B * len * sizeof *L.ids);
    L.mask = malloc(B * len * sizeof *L.mask);
    L.labels = malloc(B * sizeof *L.labels);
    L.curve = json_array();
    L.evals = json_array();
    L.prunings = json_array();
    if (!L.perm || !L.ids || !L.mask || !L.labels || !L.curve || !L.evals || !L.prunings) {
        rc = err_set(err, errlen, ERR_NOMEM, "recover: out of memory");
        goto out;
    }
    if (a->checkpoint_dir) {
        if ((rc = fs_mkdir_p(a->checkpoint_dir, err, errlen))) goto out;
        if ((rc = fs_remove_stale_tmp(a->checkpoint_dir, err, errlen)) < 0) goto out;
        if (recover_checkpoint_path(a->checkpoint_dir, L.ckpt, sizeof L.ckpt)) {
            rc = err_set(err, errlen, ERR_INVALID, "recover: the checkpoint path is too long");
            goto out;
        }
    }
    rc = train(&L, recovery, sum, err, errlen);
out:
    ts_trainer_destroy(L.tr);
    json_decref(L.curve);
    json_decref(L.evals);
    json_decref(L.prunings);
    free(L.perm);
    free(L.ids);
    free(L.mask);
    free(L.labels);
    eval_inputs_destroy(L.in);
    dataset_destroy(ds);
    return rc;
}
