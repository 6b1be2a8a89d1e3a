/* metrics.h - classification metrics identical to sklearn's */
#ifndef PRUNERD_METRICS_H
#define PRUNERD_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

/*
 * The numbers of sklearn.metrics.classification_report(y_true, y_pred,
 * labels=range(nclasses), output_dict=True, zero_division=0) and
 * confusion_matrix(y_true, y_pred, labels=range(nclasses)).
 */
struct metrics {
    int nclasses;
    int64_t samples;
    double accuracy;
    double *precision, *recall, *f1; /* nclasses each */
    int64_t *support;                /* nclasses */
    int64_t *confusion;              /* nclasses x nclasses, [true][pred] */
    double macro_precision, macro_recall, macro_f1;
    double weighted_precision, weighted_recall, weighted_f1;
};

/* Fills m from n labels in [0, nclasses). Labels out of range: ERR_INVALID.
 * Free with metrics_free. */
int metrics_compute(const int *y_true, const int *y_pred, size_t n, int nclasses, struct metrics *m,
                    char *err, size_t errlen);
void metrics_free(struct metrics *m);

/* The result.json shape: accuracy, macro_*, weighted_f1, per_class [{name,
 * precision, recall, f1, support}], confusion, samples.  New reference. */
json_t *metrics_to_json(const struct metrics *m, char *const *class_names);

/* The text table classification_report prints (digits decimals). */
void metrics_print_report(const struct metrics *m, char *const *class_names, int digits, FILE *out);

#endif
