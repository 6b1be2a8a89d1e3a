/* test_sweep.c - the sweep's recommendation: hulls, greedy amounts, exact sparsity */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "ct.h"
#include "err.h"
#include "sweep.h"

#define NEAR(a, b) (fabs((a) - (b)) < 1e-12)

/* Two equal-sized groups, one that loses nothing and one that loses a lot:
 * the weights go to the first, up to its largest measured amount. */
static void test_cheap_group_first(void)
{
    const int64_t numel[] = {100, 100};
    const double amounts[] = {0.5, 1.0};
    const double acc[] = {0.9, 0.9, /* group 0: flat */ 0.8, 0.5 /* group 1: steep */};
    double out[2], predicted;
    char err[256];
    CHECK_INT(
        sweep_recommend(numel, 2, amounts, 2, acc, 0.9, 0.5, out, &predicted, err, sizeof err), 0);
    CHECK(NEAR(out[0], 1.0) && NEAR(out[1], 0.0), "amounts %g %g", out[0], out[1]);
    CHECK(NEAR(predicted, 0.9), "predicted %g", predicted);
    /* 0.75 overall: group 0 full, group 1 half way along its first segment */
    CHECK_INT(
        sweep_recommend(numel, 2, amounts, 2, acc, 0.9, 0.75, out, &predicted, err, sizeof err), 0);
    CHECK(NEAR(out[0], 1.0) && NEAR(out[1], 0.5), "amounts %g %g", out[0], out[1]);
    CHECK(NEAR(predicted, 0.8), "predicted %g", predicted);
}

/* The loss per weight decides, not per amount: a big group's gentle slope
 * beats a small group's, per weight. */
static void test_per_weight(void)
{
    const int64_t numel[] = {1000, 10};
    const double amounts[] = {1.0};
    const double acc[] = {0.8, 0.85}; /* loses 0.1 over 1000 weights; 0.05 over 10 */
    double out[2], predicted;
    char err[256];
    /* 500 weights of 1010: all from group 0 (1e-4 per weight against 5e-3) */
    CHECK_INT(sweep_recommend(numel, 2, amounts, 1, acc, 0.9, 500.0 / 1010.0, out, &predicted, err,
                              sizeof err),
              0);
    CHECK(NEAR(out[0], 0.5) && NEAR(out[1], 0.0), "amounts %g %g", out[0], out[1]);
    CHECK(NEAR(predicted, 0.85), "predicted %g", predicted);
}

/* A curve that dips and recovers is read by its lower convex hull: the
 * point after the steep one is reached as one segment. */
static void test_hull(void)
{
    const int64_t numel[] = {100, 100};
    const double amounts[] = {0.25, 0.5, 0.75, 1.0};
    /* group 0: drops 0.5 at 0.25 and stays; group 1: 0.125 per 0.25, straight
     * (binary fractions: the slopes are exactly equal) */
    const double acc[] = {0.5, 0.5, 0.5, 0.5, 0.875, 0.75, 0.625, 0.5};
    double out[2], predicted;
    char err[256];
    /* group 0's hull is one segment 0 -> 1 losing 0.5, as gentle per weight
     * as group 1's: the tie goes to the first group, which is taken whole */
    CHECK_INT(
        sweep_recommend(numel, 2, amounts, 4, acc, 1.0, 0.5, out, &predicted, err, sizeof err), 0);
    CHECK(NEAR(out[0], 1.0) && NEAR(out[1], 0.0), "ties to the first group: %g %g", out[0], out[1]);
    CHECK(NEAR(predicted, 0.5), "predicted %g", predicted);
    /* without the hull, group 0's first segment (2 per unit) would lose to group 1's */
    CHECK_INT(
        sweep_recommend(numel, 2, amounts, 4, acc, 1.0, 0.25, out, &predicted, err, sizeof err), 0);
    CHECK(NEAR(out[0], 0.5) && NEAR(out[1], 0.0), "half of group 0's hull: %g %g", out[0], out[1]);
    CHECK(NEAR(predicted, 0.75), "predicted %g", predicted);
}

/* An accuracy that rises when pruned is taken first; the requested share
 * is met exactly for any sparsity in range. */
static void test_exact_share(void)
{
    const int64_t numel[] = {65536, 262144, 65536};
    const double amounts[] = {0.1, 0.3, 0.5, 0.7, 0.9};
    const double acc[] = {0.91, 0.9,  0.88, 0.8,  0.6, /* rises first */
                          0.9,  0.89, 0.87, 0.82, 0.7, /* the big one */
                          0.89, 0.85, 0.8,  0.7,  0.5};
    const double total = 65536 + 262144 + 65536;
    char err[256];
    for (int i = 1; i <= 18; i++) {
        const double sp = i * 0.05;
        double out[3], predicted;
        CHECK_INT(
            sweep_recommend(numel, 3, amounts, 5, acc, 0.9, sp, out, &predicted, err, sizeof err),
            0);
        double got = (out[0] * 65536 + out[1] * 262144 + out[2] * 65536) / total;
        CHECK(fabs(got - sp) < 1e-12, "sparsity %g: got %g", sp, got);
        for (int g = 0; g < 3; g++)
            CHECK(out[g] >= 0 && out[g] <= 0.9, "amount %g in range", out[g]);
        CHECK(predicted <= 0.9 + 0.01 + 1e-12, "predicted %g", predicted);
    }
    double out[3], predicted;
    CHECK_INT(
        sweep_recommend(numel, 3, amounts, 5, acc, 0.9, 0.02, out, &predicted, err, sizeof err), 0);
    /* group 0's rising segment (to 0.1), then group 1's flat one, in part */
    CHECK(NEAR(out[0], 0.1) && NEAR(out[1], (0.02 * 393216 - 6553.6) / 262144) && NEAR(out[2], 0),
          "the rising group first: %g %g %g", out[0], out[1], out[2]);
    CHECK(predicted > 0.9, "a predicted gain: %g", predicted);
}

static void test_bad(void)
{
    const int64_t numel[] = {10};
    const double amounts[] = {0.5};
    const double acc[] = {0.5};
    double out[1], predicted;
    char err[256];
    CHECK_INT(
        sweep_recommend(numel, 1, amounts, 1, acc, 0.9, 0.6, out, &predicted, err, sizeof err),
        ERR_INVALID);
    CHECK(strstr(err, "recommend.sparsity") != NULL, "message %s", err);
    CHECK_INT(sweep_recommend(numel, 1, amounts, 1, acc, 0.9, 0, out, &predicted, err, sizeof err),
              ERR_INVALID);
}

int main(void)
{
    test_cheap_group_first();
    test_per_weight();
    test_hull();
    test_exact_share();
    test_bad();
    return ct_done("test_sweep");
}
