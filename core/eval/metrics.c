/* metrics.c - classification metrics identical to sklearn's */
#include "metrics.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"

/*
 * DESIGN: the numbers are meant to be bit-identical to sklearn 1.9 on
 * numpy 2 (the venv's pins, tools/requirements.txt), not merely close, so
 * the arithmetic follows theirs step by step:
 *  - precision = tp / pred_sum, recall = tp / true_sum, both 0 where the
 *    denominator is 0 (_prf_divide, zero_division=0), dividing the counts
 *    as doubles;
 *  - f1 from the counts, as sklearn has since 1.4: 2 * tp / (true_sum +
 *    pred_sum) in doubles, 0 where the denominator is 0 (sklearn 1.2's
 *    2 * p * r / (p + r) differs from it in the last bit);
 *  - averages are np.average: numpy's pairwise sum (pairwise_sum below)
 *    divided by the count (macro) or by the total support (weighted, after
 *    multiplying each score by its support as a double);
 *  - accuracy is classification_report's micro precision: correct / n.
 * With no samples at all every score is 0, as sklearn gives.
 */

/* numpy's float64 add-reduce order (loops_utils.h, pairwise_sum): below 8
 * terms a plain loop; up to 128, eight interleaved partial sums combined as
 * ((r0+r1)+(r2+r3))+((r4+r5)+(r6+r7)) plus the rest in order; beyond, split
 * at half rounded down to a multiple of 8. */
static double pairwise_sum(const double *a, size_t n)
{
    if (n < 8) {
        double res = 0.0;
        for (size_t i = 0; i < n; i++)
            res += a[i];
        return res;
    }
    if (n <= 128) {
        double r[8];
        size_t i;
        for (i = 0; i < 8; i++)
            r[i] = a[i];
        for (i = 8; i < n - (n % 8); i += 8)
            for (size_t j = 0; j < 8; j++)
                r[j] += a[i + j];
        double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++)
            res += a[i];
        return res;
    }
    size_t n2 = n / 2;
    n2 -= n2 % 8;
    return pairwise_sum(a, n2) + pairwise_sum(a + n2, n - n2);
}

/* _prf_divide with zero_division=0. */
static double prf_divide(int64_t num, int64_t den)
{
    return den == 0 ? 0.0 : (double)num / (double)den;
}

/* sklearn's F-beta with beta = 1: (1 + b2) * tp / (b2 * true_sum + pred_sum). */
static double f1_of(int64_t tp, int64_t true_sum, int64_t pred_sum)
{
    double denom = 1.0 * (double)true_sum + (double)pred_sum;
    return denom == 0.0 ? 0.0 : 2.0 * (double)tp / denom;
}

int metrics_compute(const int *y_true, const int *y_pred, size_t n, int nclasses, struct metrics *m,
                    char *err, size_t errlen)
{
    int rc = 0;
    struct metrics t = {0};
    double *tmp = NULL;

    if (!m || nclasses < 1 || (n && (!y_true || !y_pred)))
        return err_set(err, errlen, ERR_INVALID, "metrics: need nclasses >= 1 and label arrays");
    size_t k = (size_t)nclasses;
    if (k > SIZE_MAX / sizeof(int64_t) / k)
        return err_set(err, errlen, ERR_INVALID, "metrics: %d classes is too many", nclasses);
    for (size_t i = 0; i < n; i++) {
        if (y_true[i] < 0 || y_true[i] >= nclasses)
            return err_set(err, errlen, ERR_INVALID,
                           "metrics: true label %d of sample %zu is outside [0, %d)", y_true[i], i,
                           nclasses);
        if (y_pred[i] < 0 || y_pred[i] >= nclasses)
            return err_set(err, errlen, ERR_INVALID,
                           "metrics: predicted label %d of sample %zu is outside [0, %d)",
                           y_pred[i], i, nclasses);
    }

    t.nclasses = nclasses;
    t.samples = (int64_t)n;
    t.precision = calloc(k, sizeof *t.precision);
    t.recall = calloc(k, sizeof *t.recall);
    t.f1 = calloc(k, sizeof *t.f1);
    t.support = calloc(k, sizeof *t.support);
    t.confusion = calloc(k * k, sizeof *t.confusion);
    tmp = calloc(k, sizeof *tmp);
    if (!t.precision || !t.recall || !t.f1 || !t.support || !t.confusion || !tmp) {
        rc = err_set(err, errlen, ERR_NOMEM, "metrics: out of memory");
        goto out;
    }

    for (size_t i = 0; i < n; i++)
        t.confusion[(size_t)y_true[i] * k + (size_t)y_pred[i]]++;

    int64_t correct = 0, total_support = 0;
    for (size_t c = 0; c < k; c++) {
        int64_t tp = t.confusion[c * k + c], pred_sum = 0, true_sum = 0;
        for (size_t j = 0; j < k; j++) {
            true_sum += t.confusion[c * k + j];
            pred_sum += t.confusion[j * k + c];
        }
        t.precision[c] = prf_divide(tp, pred_sum);
        t.recall[c] = prf_divide(tp, true_sum);
        t.f1[c] = f1_of(tp, true_sum, pred_sum);
        t.support[c] = true_sum;
        correct += tp;
        total_support += true_sum;
    }
    t.accuracy = prf_divide(correct, (int64_t)n);

    t.macro_precision = pairwise_sum(t.precision, k) / (double)k;
    t.macro_recall = pairwise_sum(t.recall, k) / (double)k;
    t.macro_f1 = pairwise_sum(t.f1, k) / (double)k;

    /* Total support is 0 only with no samples, hence no predictions either:
     * sklearn then returns zero_division (0) for all three. */
    if (total_support > 0) {
        double w = (double)total_support;
        for (size_t c = 0; c < k; c++)
            tmp[c] = t.precision[c] * (double)t.support[c];
        t.weighted_precision = pairwise_sum(tmp, k) / w;
        for (size_t c = 0; c < k; c++)
            tmp[c] = t.recall[c] * (double)t.support[c];
        t.weighted_recall = pairwise_sum(tmp, k) / w;
        for (size_t c = 0; c < k; c++)
            tmp[c] = t.f1[c] * (double)t.support[c];
        t.weighted_f1 = pairwise_sum(tmp, k) / w;
    }

    *m = t;
    memset(&t, 0, sizeof t);
out:
    free(tmp);
    metrics_free(&t);
    return rc;
}

void metrics_free(struct metrics *m)
{
    if (!m) return;
    free(m->precision);
    free(m->recall);
    free(m->f1);
    free(m->support);
    free(m->confusion);
    memset(m, 0, sizeof *m);
}

/* Writes class c's display name (its index when names is NULL) into buf. */
static const char *class_name(char *const *names, int c, char *buf, size_t buflen)
{
    if (names && names[c]) return names[c];
    snprintf(buf, buflen, "%d", c);
    return buf;
}

json_t *metrics_to_json(const struct metrics *m, char *const *class_names)
{
    if (!m) return NULL;
    size_t k = (size_t)m->nclasses;
    json_t *o = json_object();
    json_t *per = json_array();
    json_t *conf = json_array();
    if (!o || !per || !conf) goto fail;
    int bad = 0;
    bad |= json_object_set_new(o, "accuracy", json_real(m->accuracy));
    bad |= json_object_set_new(o, "macro_precision", json_real(m->macro_precision));
    bad |= json_object_set_new(o, "macro_recall", json_real(m->macro_recall));
    bad |= json_object_set_new(o, "macro_f1", json_real(m->macro_f1));
    bad |= json_object_set_new(o, "weighted_precision", json_real(m->weighted_precision));
    bad |= json_object_set_new(o, "weighted_recall", json_real(m->weighted_recall));
    bad |= json_object_set_new(o, "weighted_f1", json_real(m->weighted_f1));
    for (size_t c = 0; c < k; c++) {
        char nbuf[16];
        bad |= json_array_append_new(
            per, json_pack("{s:s, s:f, s:f, s:f, s:I}", "name",
                           class_name(class_names, (int)c, nbuf, sizeof nbuf), "precision",
                           m->precision[c], "recall", m->recall[c], "f1", m->f1[c], "support",
                           (json_int_t)m->support[c]));
        json_t *row = json_array();
        bad |= json_array_append_new(conf, row);
        for (size_t j = 0; j < k && row; j++)
            bad |= json_array_append_new(row, json_integer((json_int_t)m->confusion[c * k + j]));
    }
    bad |= json_object_set_new(o, "per_class", per);
    per = NULL;
    bad |= json_object_set_new(o, "confusion", conf);
    conf = NULL;
    bad |= json_object_set_new(o, "samples", json_integer((json_int_t)m->samples));
    if (bad) goto fail;
    return o;
fail:
    json_decref(per);
    json_decref(conf);
    json_decref(o);
    return NULL;
}

/* Code points in a UTF-8 string: what Python's len() and str.format's
 * padding count. */
static size_t utf8_width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80) w++;
    return w;
}

static void put_right(FILE *out, const char *s, size_t width)
{
    size_t w = utf8_width(s);
    for (; w < width; w++)
        fputc(' ', out);
    fputs(s, out);
}

/* sklearn prints supports with "{:>9}"; they are integers, except when no
 * sample at all is predicted right: then its multilabel_confusion_matrix
 * starts from np.zeros (floats) and they print as "1000.0".  Copied. */
static void put_support(FILE *out, int64_t support, int as_float)
{
    char buf[32];
    snprintf(buf, sizeof buf, as_float ? "%lld.0" : "%lld", (long long)support);
    fprintf(out, " %9s\n", buf);
}

static void put_row(FILE *out, const char *name, size_t width, int digits, double p, double r,
                    double f, int64_t support, int float_support)
{
    put_right(out, name, width);
    fprintf(out, "  %9.*f %9.*f %9.*f", digits, p, digits, r, digits, f);
    put_support(out, support, float_support);
}

void metrics_print_report(const struct metrics *m, char *const *class_names, int digits, FILE *out)
{
    if (!m || !out) return;
    if (digits < 0) digits = 0;
    size_t k = (size_t)m->nclasses;
    char nbuf[16];

    /* width = max(longest name, len("weighted avg"), digits) */
    size_t width = strlen("weighted avg");
    for (size_t c = 0; c < k; c++) {
        size_t w = utf8_width(class_name(class_names, (int)c, nbuf, sizeof nbuf));
        if (w > width) width = w;
    }
    if ((size_t)digits > width) width = (size_t)digits;

    put_right(out, "", width);
    fprintf(out, "  %9s %9s %9s %9s\n\n", "precision", "recall", "f1-score", "support");
    int64_t total = 0, correct = 0, pred_total = 0;
    for (size_t c = 0; c < k; c++) {
        int64_t pred_sum = 0;
        for (size_t j = 0; j < k; j++)
            pred_sum += m->confusion[j * k + c];
        total += m->support[c];
        correct += m->confusion[c * k + c];
        pred_total += pred_sum;
    }
    int float_support = correct == 0;
    for (size_t c = 0; c < k; c++)
        put_row(out, class_name(class_names, (int)c, nbuf, sizeof nbuf), width, digits,
                m->precision[c], m->recall[c], m->f1[c], m->support[c], float_support);
    fputc('\n', out);

    /* The micro average: sklearn (since 1.4) names its row "accuracy" and
     * shows only its F1 when the labels asked for include every label seen,
     * which always holds here (labels are 0..k-1). */
    put_right(out, "accuracy", width);
    fprintf(out, "  %9s %9s %9.*f", "", "", digits, f1_of(correct, total, pred_total));
    put_support(out, total, float_support);
    put_row(out, "macro avg", width, digits, m->macro_precision, m->macro_recall, m->macro_f1,
            total, float_support);
    put_row(out, "weighted avg", width, digits, m->weighted_precision, m->weighted_recall,
            m->weighted_f1, total, float_support);
}
