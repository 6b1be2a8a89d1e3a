/* eval.c - batched evaluation of a classifier on a tokenized dataset */
#include "eval.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "fsutil.h"
#include "metrics.h"

int eval_inputs_open(const struct tokenizer *t, const struct dataset *d, int max_length,
                     struct eval_inputs **out, char *err, size_t errlen)
{
    double t0 = fs_monotonic();
    struct eval_inputs *in = calloc(1, sizeof *in);
    int64_t *row = malloc(2 * (size_t)max_length * sizeof *row);
    int rc;
    *out = NULL;
    if (!in || !row) goto nomem;
    in->n = d->n;
    in->max_length = max_length;
    in->offset = malloc((d->n + 1) * sizeof *in->offset);
    in->label = malloc((d->n ? d->n : 1) * sizeof *in->label);
    size_t cap = d->n * 16 + 16;
    in->ids = malloc(cap * sizeof *in->ids);
    if (!in->offset || !in->label || !in->ids) goto nomem;
    in->offset[0] = 0;
    for (size_t i = 0; i < d->n; i++) {
        int len = 0;
        if ((rc = tok_encode(t, d->examples[i].text, d->examples[i].len, max_length, row,
                             row + max_length, &len, err, errlen))) {
            eval_inputs_destroy(in);
            free(row);
            return rc;
        }
        if (in->offset[i] + (size_t)len > cap) {
            cap = cap * 2 + (size_t)len;
            int32_t *ids = realloc(in->ids, cap * sizeof *ids);
            if (!ids) goto nomem;
            in->ids = ids;
        }
        for (int j = 0; j < len; j++)
            in->ids[in->offset[i] + (size_t)j] = (int32_t)row[j];
        in->offset[i + 1] = in->offset[i] + (size_t)len;
        in->label[i] = d->examples[i].label;
    }
    free(row);
    in->tokenize_s = fs_monotonic() - t0;
    *out = in;
    return 0;
nomem:
    free(row);
    eval_inputs_destroy(in);
    return err_set(err, errlen, ERR_NOMEM, "encoding the dataset: out of memory");
}

void eval_inputs_destroy(struct eval_inputs *in)
{
    if (!in) return;
    free(in->ids);
    free(in->offset);
    free(in->label);
    free(in);
}

void eval_output_free(struct eval_output *o)
{
    if (!o) return;
    free(o->pred);
    free(o->logits);
    memset(o, 0, sizeof *o);
}

struct len_index {
    size_t len, index;
};

static int by_length(const void *a, const void *b)
{
    const struct len_index *x = a, *y = b;
    if (x->len != y->len) return x->len < y->len ? -1 : 1;
    return x->index < y->index ? -1 : (x->index > y->index);
}

/* Indices of the examples in batching order: as given (exact), or by
 * length with ties in dataset order (dynamic).  Caller frees. */
static size_t *batch_order(const struct eval_inputs *in, enum eval_padding padding)
{
    size_t *order = malloc((in->n ? in->n : 1) * sizeof *order);
    if (!order) return NULL;
    for (size_t i = 0; i < in->n; i++)
        order[i] = i;
    if (padding != EVAL_PAD_DYNAMIC) return order;
    struct len_index *li = malloc((in->n ? in->n : 1) * sizeof *li);
    if (!li) {
        free(order);
        return NULL;
    }
    for (size_t i = 0; i < in->n; i++)
        li[i] = (struct len_index){in->offset[i + 1] - in->offset[i], i};
    qsort(li, in->n, sizeof *li, by_length);
    for (size_t i = 0; i < in->n; i++)
        order[i] = li[i].index;
    free(li);
    return order;
}

int eval_run(struct ts_model *m, const struct eval_inputs *in, int batch_size,
             enum eval_padding padding, const struct eval_hooks *hooks, struct eval_output *out,
             char *err, size_t errlen)
{
    int rc = 0;
    size_t L = (size_t)in->max_length, B = (size_t)batch_size;
    int64_t *ids = malloc(B * L * sizeof *ids);
    int64_t *mask = malloc(B * L * sizeof *mask);
    size_t cap = B * 4096; /* floats: up to 4096 classes */
    float *logits = malloc(cap * sizeof *logits);
    size_t *order = batch_order(in, padding);
    double t0 = fs_monotonic();

    memset(out, 0, sizeof *out);
    out->n = in->n;
    out->pred = malloc((in->n ? in->n : 1) * sizeof *out->pred);
    if (!ids || !mask || !logits || !order || !out->pred) {
        rc = err_set(err, errlen, ERR_NOMEM, "evaluation: out of memory");
        goto out;
    }
    for (size_t start = 0; start < in->n; start += B) {
        if (hooks && hooks->cancelled && hooks->cancelled(hooks->ud)) {
            rc = err_set(err, errlen, ERR_CANCELLED, "cancelled");
            goto out;
        }
        size_t nb = in->n - start < B ? in->n - start : B;
        size_t width = L;
        if (padding == EVAL_PAD_DYNAMIC) {
            width = 1;
            for (size_t r = 0; r < nb; r++) {
                size_t i = order[start + r], len = in->offset[i + 1] - in->offset[i];
                if (len > width) width = len;
            }
        }
        memset(ids, 0, nb * width * sizeof *ids);
        memset(mask, 0, nb * width * sizeof *mask);
        for (size_t r = 0; r < nb; r++) {
            size_t i = order[start + r], len = in->offset[i + 1] - in->offset[i];
            for (size_t j = 0; j < len; j++) {
                ids[r * width + j] = in->ids[in->offset[i] + j];
                mask[r * width + j] = 1;
            }
        }
        int ncls = 0;
        rc = ts_model_forward(m, ids, mask, (int64_t)nb, (int64_t)width, logits, cap, &ncls, err,
                              errlen);
        if (rc) goto out;
        if (!out->logits) {
            out->ncls = ncls;
            out->logits = malloc((in->n ? in->n : 1) * (size_t)ncls * sizeof *out->logits);
            if (!out->logits) {
                rc = err_set(err, errlen, ERR_NOMEM, "evaluation: out of memory");
                goto out;
            }
        } else if (ncls != out->ncls) {
            rc = err_set(err, errlen, ERR_FORMAT, "the model returned %d then %d classes",
                         out->ncls, ncls);
            goto out;
        }
        for (size_t r = 0; r < nb; r++) {
            size_t i = order[start + r];
            const float *row = logits + r * (size_t)ncls;
            int best = 0;
            for (int c = 1; c < ncls; c++)
                if (row[c] > row[best]) best = c;
            out->pred[i] = best;
            memcpy(out->logits + i * (size_t)ncls, row, (size_t)ncls * sizeof *row);
        }
        if (hooks && hooks->progress)
            hooks->progress(hooks->ud, (double)(start + nb) / (double)in->n);
    }
    out->forward_s = fs_monotonic() - t0;
    double total = in->tokenize_s + out->forward_s;
    out->samples_per_s = total > 0 ? (double)in->n / total : 0.0;
out:
    free(ids);
    free(mask);
    free(logits);
    free(order);
    if (rc) eval_output_free(out);
    return rc;
}

int eval_metrics(struct ts_model *m, const struct eval_inputs *in, const struct dataset *d,
                 int batch_size, enum eval_padding padding, const struct eval_hooks *hooks,
                 struct eval_output *eo, struct metrics *mt, char *err, size_t errlen)
{
    int rc = eval_run(m, in, batch_size, padding, hooks, eo, err, errlen);
    if (rc) return rc;
    if (eo->ncls != (int)d->nclasses)
        rc = err_set(err, errlen, ERR_FORMAT,
                     "the model has %d outputs but the class file names %zu classes", eo->ncls,
                     d->nclasses);
    else
        rc = metrics_compute(in->label, eo->pred, eo->n, eo->ncls, mt, err, errlen);
    if (rc) eval_output_free(eo);
    return rc;
}

int eval_score(struct ts_model *m, const struct eval_inputs *in, const struct dataset *d,
               int batch_size, enum eval_padding padding, const struct eval_hooks *hooks,
               const char *label, FILE *out, float **logits, int *ncls, json_t **metrics,
               struct metrics *typed, char *err, size_t errlen)
{
    struct eval_output eo;
    struct metrics mt;
    json_t *mj = NULL;
    int rc;
    *metrics = NULL;
    if ((rc = eval_metrics(m, in, d, batch_size, padding, hooks, &eo, &mt, err, errlen))) return rc;
    if (!(mj = metrics_to_json(&mt, d->classes))) {
        metrics_free(&mt);
        rc = err_set(err, errlen, ERR_NOMEM, "metrics: out of memory");
        goto out;
    }
    json_object_set_new(mj, "samples_per_s", json_real(eo.samples_per_s));
    if (out) {
        fprintf(out,
                "%s: accuracy %.4f, macro-F1 %.4f, macro precision %.4f (%zu samples, %.0f "
                "samples/s)\n",
                label, mt.accuracy, mt.macro_f1, mt.macro_precision, eo.n, eo.samples_per_s);
        metrics_print_report(&mt, d->classes, 4, out);
    }
    if (typed)
        *typed = mt;
    else
        metrics_free(&mt);
    if (logits) {
        *logits = eo.logits;
        *ncls = eo.ncls;
        eo.logits = NULL;
    }
    *metrics = mj;
out:
    eval_output_free(&eo);
    return rc;
}
