/* test_metrics.c - core/metrics on small cases worked out by hand */
#include <math.h>
#include <string.h>

#include "ct.h"
#include "err.h"
#include "metrics.h"

#define CHECK_NEAR(got, want)                                                                      \
    CHECK(fabs((got) - (want)) < 1e-12, "expected %.17g, got %.17g", (double)(want), (double)(got))

/* Renders the report into a string (caller frees). */
static char *report(const struct metrics *m, char *const *names, int digits)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    metrics_print_report(m, names, digits, f);
    fclose(f);
    return buf;
}

/* The example of sklearn's classification_report docstring. */
static void test_docstring_example(void)
{
    int yt[] = {0, 1, 2, 2, 2}, yp[] = {0, 0, 2, 2, 1};
    struct metrics m;
    char err[128] = "";
    CHECK_INT(metrics_compute(yt, yp, 5, 3, &m, err, sizeof err), 0);
    CHECK_INT(m.samples, 5);
    CHECK_NEAR(m.accuracy, 0.6);
    CHECK_NEAR(m.precision[0], 0.5);
    CHECK_NEAR(m.recall[0], 1.0);
    CHECK_NEAR(m.f1[0], 2.0 / 3.0);
    CHECK_NEAR(m.precision[1], 0.0);
    CHECK_NEAR(m.recall[1], 0.0);
    CHECK_NEAR(m.f1[1], 0.0);
    CHECK_NEAR(m.precision[2], 1.0);
    CHECK_NEAR(m.recall[2], 2.0 / 3.0);
    CHECK_NEAR(m.f1[2], 0.8);
    CHECK_INT(m.support[0], 1);
    CHECK_INT(m.support[1], 1);
    CHECK_INT(m.support[2], 3);
    int64_t cm[9] = {1, 0, 0, 1, 0, 0, 0, 1, 2};
    for (int i = 0; i < 9; i++)
        CHECK(m.confusion[i] == cm[i], "confusion[%d][%d] = %lld, want %lld", i / 3, i % 3,
              (long long)m.confusion[i], (long long)cm[i]);
    CHECK_NEAR(m.macro_precision, 0.5);
    CHECK_NEAR(m.macro_recall, 5.0 / 9.0);
    CHECK_NEAR(m.macro_f1, (2.0 / 3.0 + 0.8) / 3.0);
    CHECK_NEAR(m.weighted_precision, 0.7);
    CHECK_NEAR(m.weighted_recall, 0.6);
    CHECK_NEAR(m.weighted_f1, (2.0 / 3.0 + 2.4) / 5.0);

    char *names[] = {"class 0", "class 1", "class 2"};
    const char *want = "              precision    recall  f1-score   support\n"
                       "\n"
                       "     class 0       0.50      1.00      0.67         1\n"
                       "     class 1       0.00      0.00      0.00         1\n"
                       "     class 2       1.00      0.67      0.80         3\n"
                       "\n"
                       "    accuracy                           0.60         5\n"
                       "   macro avg       0.50      0.56      0.49         5\n"
                       "weighted avg       0.70      0.60      0.61         5\n";
    char *got = report(&m, names, 2);
    CHECK(got && !strcmp(got, want), "report:\n%s\nwant:\n%s", got ? got : "(null)", want);
    free(got);
    metrics_free(&m);
    CHECK(m.precision == NULL && m.confusion == NULL, "metrics_free clears the struct");
    metrics_free(&m); /* twice is harmless */
    metrics_free(NULL);
}

/* Class 2 has neither support nor predictions: it counts, with zeros, in
 * the macro average, and the report's micro row is "micro avg". */
static void test_unseen_class(void)
{
    int yt[] = {0, 0, 1}, yp[] = {0, 1, 1};
    struct metrics m;
    CHECK_INT(metrics_compute(yt, yp, 3, 3, &m, NULL, 0), 0);
    CHECK_NEAR(m.precision[0], 1.0);
    CHECK_NEAR(m.recall[0], 0.5);
    CHECK_NEAR(m.f1[0], 2.0 / 3.0);
    CHECK_NEAR(m.precision[1], 0.5);
    CHECK_NEAR(m.recall[1], 1.0);
    CHECK_NEAR(m.f1[1], 2.0 / 3.0);
    CHECK_NEAR(m.precision[2] + m.recall[2] + m.f1[2], 0.0);
    CHECK_INT(m.support[2], 0);
    CHECK_NEAR(m.accuracy, 2.0 / 3.0);
    CHECK_NEAR(m.macro_precision, 0.5);
    CHECK_NEAR(m.macro_recall, 0.5);
    CHECK_NEAR(m.macro_f1, 4.0 / 9.0);
    CHECK_NEAR(m.weighted_precision, 2.5 / 3.0);
    CHECK_NEAR(m.weighted_recall, 2.0 / 3.0);
    CHECK_NEAR(m.weighted_f1, 2.0 / 3.0);
    char *got = report(&m, NULL, 2);
    /* sklearn >= 1.4: an unseen class still gives the "accuracy" row */
    CHECK(got && strstr(got, "\n    accuracy                           0.67         3\n") &&
              !strstr(got, "micro avg"),
          "accuracy row in:\n%s", got ? got : "(null)");
    CHECK(got && strstr(got, "\n           2       0.00      0.00      0.00         0\n"),
          "index-named row in:\n%s", got ? got : "(null)");
    free(got);
    metrics_free(&m);
}

static void test_all_wrong_and_all_right(void)
{
    int yt[] = {0, 1, 1}, yp[] = {1, 0, 0};
    struct metrics m;
    CHECK_INT(metrics_compute(yt, yp, 3, 2, &m, NULL, 0), 0);
    CHECK_NEAR(m.accuracy, 0.0);
    CHECK_NEAR(m.macro_f1, 0.0);
    CHECK_NEAR(m.weighted_precision, 0.0);
    CHECK_INT(m.confusion[1], 1); /* true 0, predicted 1 */
    CHECK_INT(m.confusion[2], 2); /* true 1, predicted 0 */
    metrics_free(&m);

    CHECK_INT(metrics_compute(yt, yt, 3, 2, &m, NULL, 0), 0);
    CHECK_NEAR(m.accuracy, 1.0);
    CHECK_NEAR(m.macro_f1, 1.0);
    CHECK_NEAR(m.weighted_recall, 1.0);
    metrics_free(&m);
}

/* No samples: every number 0, as sklearn gives with zero_division=0. */
static void test_no_samples(void)
{
    struct metrics m;
    CHECK_INT(metrics_compute(NULL, NULL, 0, 2, &m, NULL, 0), 0);
    CHECK_INT(m.samples, 0);
    CHECK_NEAR(m.accuracy + m.macro_f1 + m.weighted_f1 + m.weighted_precision, 0.0);
    CHECK(!isnan(m.weighted_recall), "weighted recall %g", m.weighted_recall);
    metrics_free(&m);
}

static void test_invalid(void)
{
    int yt[] = {0, 2}, yp[] = {0, 1}, neg[] = {-1, 0};
    struct metrics m = {0};
    char err[128] = "";
    CHECK_INT(metrics_compute(yt, yp, 2, 2, &m, err, sizeof err), ERR_INVALID);
    CHECK(strstr(err, "true label 2 of sample 1"), "message '%s'", err);
    CHECK(m.precision == NULL && m.nclasses == 0, "m untouched on failure");
    CHECK_INT(metrics_compute(yp, neg, 2, 2, &m, err, sizeof err), ERR_INVALID);
    CHECK(strstr(err, "predicted label -1 of sample 0"), "message '%s'", err);
    CHECK_INT(metrics_compute(yp, yp, 2, 0, &m, err, sizeof err), ERR_INVALID);
}

static void test_json(void)
{
    int yt[] = {0, 1, 2, 2, 2}, yp[] = {0, 0, 2, 2, 1};
    char *names[] = {"finance", "realty", "stocks"};
    struct metrics m;
    CHECK_INT(metrics_compute(yt, yp, 5, 3, &m, NULL, 0), 0);
    json_t *j = metrics_to_json(&m, names);
    CHECK(j != NULL, "metrics_to_json");
    if (j) {
        const char *keys[] = {"accuracy",           "macro_precision", "macro_recall", "macro_f1",
                              "weighted_precision", "weighted_recall", "weighted_f1",  "per_class",
                              "confusion",          "samples"};
        for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
            CHECK(json_object_get(j, keys[i]), "key %s", keys[i]);
        CHECK_INT(json_object_size(j), sizeof keys / sizeof *keys);
        CHECK_NEAR(json_real_value(json_object_get(j, "accuracy")), 0.6);
        CHECK_NEAR(json_real_value(json_object_get(j, "weighted_precision")), 0.7);
        CHECK_INT(json_integer_value(json_object_get(j, "samples")), 5);
        json_t *pc = json_object_get(j, "per_class");
        CHECK_INT(json_array_size(pc), 3);
        json_t *c2 = json_array_get(pc, 2);
        CHECK(!strcmp(json_string_value(json_object_get(c2, "name")), "stocks"), "name");
        CHECK_NEAR(json_real_value(json_object_get(c2, "recall")), 2.0 / 3.0);
        CHECK_NEAR(json_real_value(json_object_get(c2, "f1")), 0.8);
        CHECK_INT(json_integer_value(json_object_get(c2, "support")), 3);
        json_t *cm = json_object_get(j, "confusion");
        CHECK_INT(json_array_size(cm), 3);
        CHECK_INT(json_integer_value(json_array_get(json_array_get(cm, 2), 1)), 1);
        CHECK_INT(json_integer_value(json_array_get(json_array_get(cm, 1), 0)), 1);
        char *s = json_dumps(j, JSON_COMPACT);
        CHECK(s && strstr(s, "\"per_class\":[{\""), "dump %s", s ? s : "(null)");
        free(s);
        json_decref(j);
    }
    j = metrics_to_json(&m, NULL);
    json_t *n0 = json_object_get(json_array_get(json_object_get(j, "per_class"), 0), "name");
    CHECK(n0 && !strcmp(json_string_value(n0), "0"), "index name without class names");
    json_decref(j);
    metrics_free(&m);
}

int main(void)
{
    test_docstring_example();
    test_unseen_class();
    test_all_wrong_and_all_right();
    test_no_samples();
    test_invalid();
    test_json();
    return ct_done("test_metrics");
}
