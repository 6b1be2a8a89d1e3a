/* test_prune.c - the pruning core and the plugin loader on hand-computed tensors */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ct.h"
#include "err.h"
#include "plugin.h"
#include "prune.h"

static char err[512];

/* One target over data with the given shape. */
static struct prune_target tgt(float *data, const int64_t *shape, int ndim)
{
    int64_t n = 1;
    for (int d = 0; d < ndim; d++)
        n *= shape[d];
    return (struct prune_target){
        .name = "t", .data = data, .ndim = ndim, .shape = shape, .numel = n};
}

static struct prune_amount count(int64_t c)
{
    return (struct prune_amount){.is_count = 1, .count = c};
}

static struct prune_amount frac(double f)
{
    return (struct prune_amount){.is_count = 0, .fraction = f};
}

static int same(const float *a, const float *b, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (!(a[i] == b[i] || (isnan(a[i]) && isnan(b[i])))) return 0;
    return 1;
}

static void show(const char *what, const float *a, int64_t n)
{
    fprintf(stderr, "  %s:", what);
    for (int64_t i = 0; i < n; i++)
        fprintf(stderr, " %g", a[i]);
    fputc('\n', stderr);
}

#define CHECK_VEC(got, want, n)                                                                    \
    do {                                                                                           \
        int ok_ = same(got, want, n);                                                              \
        CHECK(ok_, "vectors differ");                                                              \
        if (!ok_) {                                                                                \
            show("want", want, n);                                                                 \
            show("got ", got, n);                                                                  \
        }                                                                                          \
    } while (0)

/* Runs one method on a 1-D or n-D copy and compares with want. */
static void run1(const char *label, struct prune_params p, const float *in, const int64_t *shape,
                 int ndim, const float *want, int64_t want_pruned)
{
    float buf[64];
    int64_t n = 1;
    for (int d = 0; d < ndim; d++)
        n *= shape[d];
    memcpy(buf, in, (size_t)n * sizeof *buf);
    struct prune_target t = tgt(buf, shape, ndim);
    int rc = prune_apply(&t, 1, &p, err, sizeof err);
    CHECK(rc == 0, "%s: rc %d (%s)", label, rc, err);
    if (!same(buf, want, n)) fprintf(stderr, "in %s:\n", label);
    CHECK_VEC(buf, want, n);
    CHECK(t.pruned == want_pruned, "%s: pruned %lld, want %lld", label, (long long)t.pruned,
          (long long)want_pruned);
}

static void test_method_table(void)
{
    static const char *names[] = {
        "identity",          "l1_unstructured", "random_unstructured", "ln_structured",
        "random_structured", "threshold",       "custom_from_mask",    "plugin",
        "structured"};
    int n = 0;
    for (const struct prune_method *m = prune_methods; m->name; m++)
        n++;
    CHECK_INT(n, 9);
    for (int i = 0; i < 9; i++) {
        const struct prune_method *m = prune_method_find(names[i]);
        CHECK(m && !strcmp(m->name, names[i]), "find %s", names[i]);
    }
    CHECK(prune_method_find("L1_unstructured") == NULL, "names are exact");
    CHECK(prune_method_find(NULL) == NULL, "NULL name");
    const struct prune_method *l1 = prune_method_find("l1_unstructured");
    const struct prune_method *ln = prune_method_find("ln_structured");
    const struct prune_method *ru = prune_method_find("random_unstructured");
    CHECK(l1->flags & PRUNE_F_GLOBAL && l1->flags & PRUNE_F_AMOUNT, "l1 flags %u", l1->flags);
    CHECK(ru->flags & PRUNE_F_RANDOM && ru->flags & PRUNE_F_GLOBAL, "random flags %u", ru->flags);
    CHECK(ln->flags & PRUNE_F_STRUCTURED && !(ln->flags & PRUNE_F_GLOBAL), "ln flags %u",
          ln->flags);
    CHECK(!(prune_method_find("threshold")->flags & PRUNE_F_GLOBAL), "threshold is local");
}

static void test_amount(void)
{
    struct prune_amount a;
    int64_t k = -1;

    a = count(-1);
    CHECK_INT(prune_amount_check(&a, err, sizeof err), ERR_INVALID);
    CHECK(strstr(err, "amount=-1 ") != NULL, "message '%s'", err);
    a = frac(1.5);
    CHECK_INT(prune_amount_check(&a, err, sizeof err), ERR_INVALID);
    CHECK(strstr(err, "amount=1.5 ") && strstr(err, "[0, 1]"), "message '%s'", err);
    a = frac(-0.1);
    CHECK_INT(prune_amount_check(&a, err, sizeof err), ERR_INVALID);
    CHECK(strstr(err, "amount=-0.1 ") != NULL, "message '%s'", err);
    a = frac(NAN);
    CHECK_INT(prune_amount_check(&a, err, sizeof err), ERR_INVALID);
    a = frac(1.0);
    CHECK_INT(prune_amount_check(&a, err, sizeof err), 0);
    a = frac(0.0);
    CHECK_INT(prune_amount_check(&a, err, sizeof err), 0);
    a = count(0);
    CHECK_INT(prune_amount_check(&a, err, sizeof err), 0);

    /* Python's round: half to even */
    static const struct {
        double f;
        int64_t n, k;
    } r[] = {{0.5, 5, 2},
             {0.5, 7, 4},
             {0.25, 6, 2},
             {0.75, 6, 4},
             {0.3, 10, 3},
             {1.0, 7, 7},
             {0.0, 9, 0},
             {0.5, 1, 0},
             {0.5, 3, 2},
             {0.1, 0, 0},
             {0.3, 768 * 768, 176947}};
    for (size_t i = 0; i < sizeof r / sizeof r[0]; i++) {
        a = frac(r[i].f);
        CHECK_INT(prune_amount_nparams(&a, r[i].n, &k, err, sizeof err), 0);
        CHECK(k == r[i].k, "round(%g * %lld) = %lld, want %lld", r[i].f, (long long)r[i].n,
              (long long)k, (long long)r[i].k);
    }
    a = count(5);
    CHECK_INT(prune_amount_nparams(&a, 4, &k, err, sizeof err), ERR_INVALID);
    CHECK(strstr(err, "amount=5 ") && strstr(err, "=4"), "message '%s'", err);
    CHECK_INT(prune_amount_nparams(&a, 5, &k, err, sizeof err), 0);
    CHECK_INT(k, 5);
    a = count(-3);
    CHECK_INT(prune_amount_nparams(&a, 5, &k, err, sizeof err), ERR_INVALID);
}

static void test_l1(void)
{
    struct prune_params p = {.method = PRUNE_L1_UNSTRUCTURED, .amount = count(2)};
    int64_t s5[] = {5}, s3[] = {3}, s6[] = {6};

    float a[] = {0.5f, -0.1f, 0.3f, -0.2f, 0.4f};
    float a2[] = {0.5f, 0, 0.3f, 0, 0.4f};
    run1("l1 count 2", p, a, s5, 1, a2, 2);

    /* ties: |1| four times; the lowest flat index goes first */
    float t[] = {1, -1, 1, 2, -1};
    float t2[] = {0, 0, 1, 2, -1};
    run1("l1 ties", p, t, s5, 1, t2, 2);

    p.amount = frac(0.5); /* round(2.5) = 2 */
    run1("l1 0.5 of 5", p, a, s5, 1, a2, 2);
    p.amount = frac(0.0);
    run1("l1 0.0", p, a, s5, 1, a, 0);
    p.amount = count(0);
    run1("l1 count 0", p, a, s5, 1, a, 0);
    p.amount = frac(1.0);
    float z[8] = {0};
    run1("l1 1.0", p, a, s5, 1, z, 5);
    p.amount = count(1); /* 1 is a count, 1.0 a fraction */
    float a1[] = {0.5f, 0, 0.3f, -0.2f, 0.4f};
    run1("l1 count 1", p, a, s5, 1, a1, 1);

    /* NaN ranks above every number */
    float nn[] = {NAN, 1, 2};
    float nn2[] = {NAN, 0, 0};
    p.amount = count(2);
    run1("l1 nan kept", p, nn, s3, 1, nn2, 2);
    p.amount = count(3);
    run1("l1 nan last", p, nn, s3, 1, z, 3);

    /* iterative: zeros are pruned already, the amount applies to the rest */
    float it[] = {0, 1, 2, 3, -0.0f, 4};
    float it2[] = {0, 0, 0, 3, 0, 4};
    p.amount = frac(0.5);
    p.iterative = 1;
    run1("l1 iterative", p, it, s6, 1, it2, 4);
    p.amount = count(4);
    run1("l1 iterative all", p, it, s6, 1, z, 6);
    p.amount = count(0);
    run1("l1 iterative 0", p, it, s6, 1, it, 2);
    /* without iterative, zeros are small weights: round(3) = 3 smallest */
    p.iterative = 0;
    p.amount = frac(0.5);
    float it3[] = {0, 0, 2, 3, 0, 4};
    run1("l1 not iterative", p, it, s6, 1, it3, 3);

    /* a count larger than what remains */
    float buf[6];
    memcpy(buf, it, sizeof buf);
    struct prune_target tg = tgt(buf, s6, 1);
    p.iterative = 1;
    p.amount = count(5);
    CHECK_INT(prune_apply(&tg, 1, &p, err, sizeof err), ERR_INVALID);
    CHECK(strstr(err, "amount=5") && strstr(err, "=4"), "message '%s'", err);
    CHECK_VEC(buf, it, 6);
}

static void test_l1_global(void)
{
    int64_t s3[] = {3}, s2[] = {2};
    float a[] = {3, 1, 2}, b[] = {0.5f, 4};
    struct prune_target t[2] = {tgt(a, s3, 1), tgt(b, s2, 1)};
    struct prune_params p = {
        .method = PRUNE_L1_UNSTRUCTURED, .scope = PRUNE_GLOBAL, .amount = count(2)};
    CHECK_INT(prune_apply(t, 2, &p, err, sizeof err), 0);
    float a2[] = {3, 0, 2}, b2[] = {0, 4};
    CHECK_VEC(a, a2, 3);
    CHECK_VEC(b, b2, 2);
    CHECK(t[0].pruned == 1 && t[1].pruned == 1, "pruned %lld %lld", (long long)t[0].pruned,
          (long long)t[1].pruned);

    /* ties across targets: targets in order, then lowest index */
    float c[] = {5, 1}, d[] = {1, 1};
    t[0] = tgt(c, s2, 1);
    t[1] = tgt(d, s2, 1);
    CHECK_INT(prune_apply(t, 2, &p, err, sizeof err), 0);
    float c2[] = {5, 0}, d2[] = {0, 1};
    CHECK_VEC(c, c2, 2);
    CHECK_VEC(d, d2, 2);

    /* global iterative: the amount applies to what remains in all targets */
    float e[] = {0, 2, 3}, f[] = {0, 1};
    t[0] = tgt(e, s3, 1);
    t[1] = tgt(f, s2, 1);
    p.iterative = 1;
    p.amount = frac(0.5); /* 3 remain: round(1.5) = 2 */
    CHECK_INT(prune_apply(t, 2, &p, err, sizeof err), 0);
    float e2[] = {0, 0, 3}, f2[] = {0, 0};
    CHECK_VEC(e, e2, 3);
    CHECK_VEC(f, f2, 2);
    CHECK(t[0].pruned == 2 && t[1].pruned == 2, "pruned %lld %lld", (long long)t[0].pruned,
          (long long)t[1].pruned);

    /* an empty target in the middle takes no part */
    int64_t s0[] = {0};
    float u[] = {2, 1}, w[] = {3, 0.5f}, u2[] = {2, 0}, w2[] = {3, 0};
    struct prune_target t3[3] = {tgt(u, s2, 1), tgt(NULL, s0, 1), tgt(w, s2, 1)};
    p.amount = count(2);
    CHECK_INT(prune_apply(t3, 3, &p, err, sizeof err), 0);
    CHECK_VEC(u, u2, 2);
    CHECK_VEC(w, w2, 2);
    CHECK_INT(t3[1].pruned, 0);

    /* a global count larger than all targets together */
    p.iterative = 0;
    p.amount = count(6);
    float g[] = {1, 2, 3}, h[] = {4, 5};
    t[0] = tgt(g, s3, 1);
    t[1] = tgt(h, s2, 1);
    CHECK_INT(prune_apply(t, 2, &p, err, sizeof err), ERR_INVALID);
    CHECK(strstr(err, "=5") != NULL, "message '%s'", err);

    /* local: validated before any write (the second target fails) */
    p.scope = PRUNE_LOCAL;
    p.amount = count(3);
    float g0[] = {1, 2, 3};
    CHECK_INT(prune_apply(t, 2, &p, err, sizeof err), ERR_INVALID);
    CHECK_VEC(g, g0, 3);
}

static void test_ln_structured(void)
{
    int64_t s23[] = {2, 3}, s33[] = {3, 3}, s222[] = {2, 2, 2}, s6[] = {6};
    float w[] = {5, 9, 3, 4, 1, 6};
    struct prune_params p = {.method = PRUNE_LN_STRUCTURED, .amount = count(1), .dim = -1};

    /* columns: inf 5 9 6, -inf 4 1 3, L1 9 10 9 (tie: lower index), L2 41 82 45 */
    float c0[] = {0, 9, 3, 0, 1, 6}, c1[] = {5, 0, 3, 4, 0, 6};
    p.n = INFINITY;
    run1("ln inf", p, w, s23, 2, c0, 2);
    p.n = -INFINITY;
    run1("ln -inf", p, w, s23, 2, c1, 2);
    p.n = 1;
    run1("ln 1 tie", p, w, s23, 2, c0, 2);
    p.n = PRUNE_NORM_FRO;
    run1("ln fro", p, w, s23, 2, c0, 2);
    p.n = 3; /* cubes: 189, 730, 243 */
    run1("ln 3", p, w, s23, 2, c0, 2);
    p.n = 0.5; /* (sqrt sums)^2: 17.9, 16, 17.5 */
    run1("ln 0.5", p, w, s23, 2, c1, 2);
    p.n = 1;
    p.dim = 0; /* rows: 17, 11 */
    float r1[] = {5, 9, 3, 0, 0, 0};
    run1("ln rows", p, w, s23, 2, r1, 3);
    p.amount = frac(0.5); /* round(1.0) of 2 rows */
    run1("ln rows 0.5", p, w, s23, 2, r1, 3);
    p.amount = frac(1.0);
    float z[9] = {0};
    run1("ln rows 1.0", p, w, s23, 2, z, 6);
    p.amount = count(0);
    run1("ln rows count 0", p, w, s23, 2, w, 0);

    /* iterative: the all-zero row is pruned already */
    float it[] = {0, 0, 0, 1, 2, 3, 4, 5, 6};
    float it1[] = {0, 0, 0, 0, 0, 0, 4, 5, 6}, it0[] = {0, 0, 0, 1, 2, 3, 4, 5, 6};
    p.amount = count(1);
    p.iterative = 1;
    run1("ln iterative", p, it, s33, 2, it1, 6);
    p.iterative = 0;
    run1("ln not iterative", p, it, s33, 2, it0, 3);
    p.amount = frac(0.5);
    p.iterative = 1; /* round(0.5 * 2) = 1 */
    run1("ln iterative 0.5", p, it, s33, 2, it1, 6);
    p.iterative = 0; /* round(0.5 * 3) = 2 */
    float it2[] = {0, 0, 0, 0, 0, 0, 4, 5, 6};
    run1("ln 0.5 of 3", p, it, s33, 2, it2, 6);

    /* 3-D, dim 1: channel 0 = {1,2,5,6}, channel 1 = {3,4,7,8} */
    float c3[] = {1, 2, 3, 4, 5, 6, 7, 8}, c3w[] = {0, 0, 3, 4, 0, 0, 7, 8};
    p.amount = count(1);
    p.dim = 1;
    run1("ln 3-D", p, c3, s222, 3, c3w, 4);

    /* NaN channel has norm NaN and is kept */
    float wn[] = {NAN, 0.1f, 0.2f, 5, 6, 7}, wn2[] = {NAN, 0, 0, 5, 0, 0};
    p.dim = -1;
    p.n = 2;
    p.amount = count(2);
    run1("ln nan", p, wn, s23, 2, wn2, 4);

    /* refused */
    float buf[9];
    memcpy(buf, w, sizeof w);
    struct prune_target t = tgt(buf, s6, 1);
    p.amount = count(1);
    CHECK_INT(prune_apply(&t, 1, &p, err, sizeof err), ERR_INVALID);
    CHECK(strstr(err, "multidimensional") != NULL, "message '%s'", err);
    t = tgt(buf, s23, 2);
    p.dim = 2;
    CHECK_INT(prune_apply(&t, 1, &p, err, sizeof err), ERR_INVALID);
    p.dim = -3;
    CHECK_INT(prune_apply(&t, 1, &p, err, sizeof err), ERR_INVALID);
    p.dim = 0;
    p.amount = count(3);
    CHECK_INT(prune_apply(&t, 1, &p, err, sizeof err), ERR_INVALID);
    CHECK(strstr(err, "amount=3") != NULL, "message '%s'", err);
    p.amount = count(1);
    p.n = 0;
    CHECK_INT(prune_apply(&t, 1, &p, err, sizeof err), ERR_INVALID);
    p.n = 2;
    p.scope = PRUNE_GLOBAL;
    CHECK_INT(prune_apply(&t, 1, &p, err, sizeof err), ERR_INVALID);
    CHECK(strstr(err, "global") && strstr(err, "ln_structured"), "message '%s'", err);
    p.method = PRUNE_RANDOM_STRUCTURED;
    CHECK_INT(prune_apply(&t, 1, &p, err, sizeof err), ERR_INVALID);
    CHECK(strstr(err, "random_structured") != NULL, "message '%s'", err);
    CHECK_VEC(buf, w, 6);
}

static int64_t zeros(const float *a, int64_t n)
{
    int64_t z = 0;
    for (int64_t i = 0; i < n; i++)
        z += a[i] == 0;
    return z;
}

static void test_random(void)
{
    int64_t s100[] = {100}, s5[] = {5}, s10x4[] = {10, 4};
    float base[100], a[100], b[100];
    for (int i = 0; i < 100; i++)
        base[i] = (float)(i + 1);
    struct prune_params p = {.method = PRUNE_RANDOM_UNSTRUCTURED, .amount = count(30), .seed = 7};

    memcpy(a, base, sizeof a);
    struct prune_target t = tgt(a, s100, 1);
    CHECK_INT(prune_apply(&t, 1, &p, err, sizeof err), 0);
    CHECK_INT(zeros(a, 100), 30);
    CHECK_INT(t.pruned, 30);
    memcpy(b, base, sizeof b);
    t = tgt(b, s100, 1);
    CHECK_INT(prune_apply(&t, 1, &p, err, sizeof err), 0);
    CHECK(!memcmp(a, b, sizeof a), "same seed, same mask");
    p.seed = 8;
    memcpy(b, base, sizeof b);
    CHECK_INT(prune_apply(&t, 1, &p, err, sizeof err), 0);
    CHECK(memcmp(a, b, sizeof a), "another seed, another mask");

    /* iterative: 20 zeros, 0.5 of the 80 left */
    memcpy(a, base, sizeof a);
    for (int i = 0; i < 100; i += 5)
        a[i] = 0;
    p.iterative = 1;
    p.amount = frac(0.5);
    t = tgt(a, s100, 1);
    CHECK_INT(prune_apply(&t, 1, &p, err, sizeof err), 0);
    CHECK_INT(zeros(a, 100), 60);
    CHECK_INT(t.pruned, 60);
    int kept_zero = 1;
    for (int i = 0; i < 100; i += 5)
        kept_zero &= a[i] == 0;
    CHECK(kept_zero, "zeros stay zero");

    /* global: exactly k over both */
    memcpy(a, base, sizeof a);
    memcpy(b, base, sizeof b);
    int64_t s40[] = {40}, s60[] = {60};
    struct prune_target two[2] = {tgt(a, s40, 1), tgt(b, s60, 1)};
    p.iterative = 0;
    p.scope = PRUNE_GLOBAL;
    p.amount = count(50);
    CHECK_INT(prune_apply(two, 2, &p, err, sizeof err), 0);
    CHECK_INT(zeros(a, 40) + zeros(b, 60), 50);
    CHECK_INT(two[0].pruned + two[1].pruned, 50);

    /* uniform over the 10 subsets of 2 among 5 */
    int hist[32] = {0};
    p.scope = PRUNE_LOCAL;
    p.amount = count(2);
    for (int s = 0; s < 10000; s++) {
        float v[5] = {1, 2, 3, 4, 5};
        t = tgt(v, s5, 1);
        p.seed = (uint64_t)s;
        prune_apply(&t, 1, &p, err, sizeof err);
        int m = 0;
        for (int i = 0; i < 5; i++)
            m |= (v[i] == 0) << i;
        hist[m]++;
    }
    int bad = 0, subsets = 0;
    for (int m = 0; m < 32; m++) {
        if (__builtin_popcount(m) == 2) {
            subsets++;
            bad += hist[m] < 850 || hist[m] > 1150; /* mean 1000, sd 30 */
        } else {
            bad += hist[m] != 0;
        }
    }
    CHECK(subsets == 10 && bad == 0, "subset counts not uniform (bad %d)", bad);

    /* random_structured: exactly k whole rows */
    p.method = PRUNE_RANDOM_STRUCTURED;
    p.dim = 0;
    p.amount = count(3);
    int rows[10] = {0}, partial = 0, wrong_k = 0;
    for (int s = 0; s < 2000; s++) {
        float v[40];
        for (int i = 0; i < 40; i++)
            v[i] = (float)(i + 1);
        t = tgt(v, s10x4, 2);
        p.seed = (uint64_t)s;
        CHECK_INT(prune_apply(&t, 1, &p, err, sizeof err), 0);
        int nrows = 0;
        for (int r = 0; r < 10; r++) {
            int z = zeros(v + 4 * r, 4);
            partial += z != 0 && z != 4;
            if (z == 4) {
                nrows++;
                rows[r]++;
            }
        }
        wrong_k += nrows != 3;
    }
    CHECK(partial == 0 && wrong_k == 0, "%d partly zero rows, %d draws without 3 rows", partial,
          wrong_k);
    for (int r = 0; r < 10; r++) /* mean 600, sd 20.5 */
        CHECK(rows[r] > 500 && rows[r] < 700, "row %d pruned %d times of 2000", r, rows[r]);
}

static void test_threshold_custom_identity(void)
{
    int64_t s5[] = {5}, s4[] = {4};
    float w[] = {0.1f, -0.5f, 0.2f, -0.05f, NAN};
    float w2[] = {0, -0.5f, 0.2f, 0, NAN};
    struct prune_params p = {.method = PRUNE_THRESHOLD, .threshold = 0.2};
    run1("threshold", p, w, s5, 1, w2, 2);
    p.threshold = 0;
    run1("threshold 0", p, w, s5, 1, w, 0);

    float buf[5];
    memcpy(buf, w, sizeof buf);
    struct prune_target t = tgt(buf, s5, 1);
    p.threshold = -1;
    CHECK_INT(prune_apply(&t, 1, &p, err, sizeof err), ERR_INVALID);
    p.threshold = NAN;
    CHECK_INT(prune_apply(&t, 1, &p, err, sizeof err), ERR_INVALID);
    p.threshold = 1;
    p.scope = PRUNE_GLOBAL;
    CHECK_INT(prune_apply(&t, 1, &p, err, sizeof err), ERR_INVALID);
    CHECK_VEC(buf, w, 5);

    float c[] = {1, 2, 0, 4}, c2[] = {1, 0, 0, 0};
    uint8_t mask[] = {1, 0, 1, 0};
    float cb[4];
    memcpy(cb, c, sizeof cb);
    t = tgt(cb, s4, 1);
    t.mask = mask;
    p = (struct prune_params){.method = PRUNE_CUSTOM_FROM_MASK};
    CHECK_INT(prune_apply(&t, 1, &p, err, sizeof err), 0);
    CHECK_VEC(cb, c2, 4);
    CHECK_INT(t.pruned, 2);
    memcpy(cb, c, sizeof cb);
    p.iterative = 1; /* c[2] is zero: pruned before */
    CHECK_INT(prune_apply(&t, 1, &p, err, sizeof err), 0);
    CHECK_INT(t.pruned, 3);
    t.mask = NULL;
    CHECK_INT(prune_apply(&t, 1, &p, err, sizeof err), ERR_INVALID);

    p = (struct prune_params){.method = PRUNE_IDENTITY};
    run1("identity", p, c, s4, 1, c, 0);
    p.iterative = 1;
    run1("identity iterative", p, c, s4, 1, c, 1);
}

static int fail_mask(const float *w, const int64_t *shape, int ndim, uint8_t *mask,
                     const char *params_json, char *e, size_t elen)
{
    (void)w, (void)ndim, (void)params_json;
    if (shape[0] == 3) {
        snprintf(e, elen, "no tensors of 3");
        return 1;
    }
    mask[0] = 0;
    return 0;
}

static void test_plugin(void)
{
    const char *build = getenv("PRUNERD_BUILD");
    char dir[1024], tdir[1024];
    CHECK(build != NULL, "PRUNERD_BUILD is not set: cannot find the plugins");
    if (!build) return;
    snprintf(dir, sizeof dir, "%s/plugins", build);
    snprintf(tdir, sizeof tdir, "%s/tests", build);

    struct plugin_handle *h = plugin_open(dir, "foobar", err, sizeof err);
    CHECK(h != NULL, "foobar: %s", err);
    if (h) {
        const struct prunerd_plugin_v1 *api = plugin_api(h);
        CHECK(api->abi == PRUNERD_PLUGIN_ABI && !strcmp(api->name, "foobar"), "api");
        int64_t s23[] = {2, 3}, s6[] = {6};
        float w[] = {1, 2, 3, 4, 5, 6}, w2[] = {0, 2, 0, 4, 0, 6};
        struct prune_params p = {.method = PRUNE_PLUGIN, .plugin = api};
        run1("foobar", p, w, s23, 2, w2, 3);
        /* iterative: every other entry among the unpruned 1, 3, 4, 5 */
        float v[] = {0, 1, 0, 2, 3, 4}, v2[] = {0, 0, 0, 2, 0, 4};
        p.iterative = 1;
        run1("foobar iterative", p, v, s6, 1, v2, 4);
        plugin_close(h);
    }
    plugin_close(NULL);

    static const char *bad[] = {"../x", "", "a/b", "foobar.so", "a b", "x\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        h = plugin_open(dir, bad[i], err, sizeof err);
        CHECK(h == NULL && strstr(err, "not allowed"), "name '%s': %s", bad[i], err);
        plugin_close(h);
    }
    h = plugin_open(dir, "missing", err, sizeof err);
    CHECK(h == NULL && strstr(err, "not found"), "missing: %s", err);
    h = plugin_open("/nonexistent-dir", "foobar", err, sizeof err);
    CHECK(h == NULL, "missing dir");
    h = plugin_open(tdir, "badabi", err, sizeof err);
    CHECK(h == NULL && strstr(err, "ABI"), "badabi: %s", err);
    plugin_close(h);

    /* a symlink out of the plugin dir is refused */
    char tmp[] = "/tmp/prunerd-plugins-XXXXXX", link[1200], target[1200];
    if (mkdtemp(tmp)) {
        snprintf(link, sizeof link, "%s/evil.so", tmp);
        snprintf(target, sizeof target, "%s/foobar.so", dir);
        CHECK(symlink(target, link) == 0, "symlink");
        h = plugin_open(tmp, "evil", err, sizeof err);
        CHECK(h == NULL && strstr(err, "outside"), "symlink out: %s", err);
        plugin_close(h);
        unlink(link);
        rmdir(tmp);
    }

    /* a failing plugin changes nothing, not even the targets before it */
    static const struct prunerd_plugin_v1 failing = {
        .abi = PRUNERD_PLUGIN_ABI, .name = "failing", .compute_mask = fail_mask};
    int64_t s2[] = {2}, s3[] = {3};
    float a[] = {1, 2}, b[] = {3, 4, 5}, a0[] = {1, 2}, b0[] = {3, 4, 5};
    struct prune_target t[2] = {tgt(a, s2, 1), tgt(b, s3, 1)};
    struct prune_params p = {.method = PRUNE_PLUGIN, .plugin = &failing};
    CHECK_INT(prune_apply(t, 2, &p, err, sizeof err), ERR_INVALID);
    CHECK(strstr(err, "no tensors of 3") != NULL, "message '%s'", err);
    CHECK_VEC(a, a0, 2);
    CHECK_VEC(b, b0, 3);
    p.plugin = NULL;
    CHECK_INT(prune_apply(t, 1, &p, err, sizeof err), ERR_INVALID);
}

/* Reference for the tie rule: sort (key, global index), take the first k. */
static const float *ref_data;
static int ref_cmp(const void *pa, const void *pb)
{
    int64_t a = *(const int64_t *)pa, b = *(const int64_t *)pb;
    float fa = fabsf(ref_data[a]), fb = fabsf(ref_data[b]);
    if (fa != fb) return fa < fb ? -1 : 1;
    return (a > b) - (a < b);
}

static void test_threads(void)
{
    enum { N0 = 150000, N1 = 1000, N2 = 250001, N = N0 + N1 + N2 };
    int64_t sh[3][1] = {{N0}, {N1}, {N2}};
    float *orig = malloc(N * sizeof *orig), *one = malloc(N * sizeof *one),
          *many = malloc(N * sizeof *many);
    int64_t *idx = malloc(N * sizeof *idx);
    CHECK(orig && one && many && idx, "malloc");
    if (!orig || !one || !many || !idx) goto out;

    uint64_t x = 12345;
    for (int i = 0; i < N; i++) { /* few distinct values: many ties, some zeros */
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        orig[i] = ((int)(x >> 59) - 16) * 0.25f;
        if ((x >> 40 & 1023) == 0) orig[i] = ((x >> 20) & 0xffff) * 1e-3f;
    }
    for (int iter = 0; iter <= 1; iter++) {
        for (int scope = 0; scope <= 1; scope++) {
            struct prune_params p = {.method = PRUNE_L1_UNSTRUCTURED,
                                     .scope = scope ? PRUNE_GLOBAL : PRUNE_LOCAL,
                                     .amount = frac(0.37),
                                     .iterative = iter};
            memcpy(one, orig, N * sizeof *one);
            struct prune_target t1[3] = {tgt(one, sh[0], 1), tgt(one + N0, sh[1], 1),
                                         tgt(one + N0 + N1, sh[2], 1)};
            p.threads = 1;
            CHECK_INT(prune_apply(t1, 3, &p, err, sizeof err), 0);
            for (int th = 2; th <= 7; th += 5) {
                memcpy(many, orig, N * sizeof *many);
                struct prune_target t2[3] = {tgt(many, sh[0], 1), tgt(many + N0, sh[1], 1),
                                             tgt(many + N0 + N1, sh[2], 1)};
                p.threads = th;
                CHECK_INT(prune_apply(t2, 3, &p, err, sizeof err), 0);
                CHECK(!memcmp(one, many, N * sizeof *one),
                      "%d threads differ from 1 (iterative %d, global %d)", th, iter, scope);
                for (int j = 0; j < 3; j++)
                    CHECK_INT(t2[j].pruned, t1[j].pruned);
            }
            if (!scope) continue;
            /* global: the exact mask of the documented tie rule */
            int64_t n = 0;
            for (int64_t i = 0; i < N; i++)
                if (!iter || orig[i] != 0) idx[n++] = i;
            ref_data = orig;
            qsort(idx, (size_t)n, sizeof *idx, ref_cmp);
            int64_t k = (int64_t)nearbyint(0.37 * (double)n), mism = 0;
            memcpy(many, orig, N * sizeof *many);
            for (int64_t i = 0; i < k; i++)
                many[idx[i]] = 0;
            for (int64_t i = 0; i < N; i++)
                mism += many[i] != one[i];
            CHECK(mism == 0, "tie rule: %lld entries differ from the reference", (long long)mism);
            int64_t total = t1[0].pruned + t1[1].pruned + t1[2].pruned;
            CHECK(total == (iter ? N - n + k : k), "pruned %lld", (long long)total);
        }
    }
out:
    free(orig);
    free(one);
    free(many);
    free(idx);
}

static void test_bad_targets(void)
{
    int64_t s[] = {2, 3};
    float w[6] = {1, 2, 3, 4, 5, 6};
    struct prune_target t = tgt(w, s, 2);
    struct prune_params p = {.method = PRUNE_L1_UNSTRUCTURED, .amount = count(1)};
    t.numel = 5;
    CHECK_INT(prune_apply(&t, 1, &p, err, sizeof err), ERR_INVALID);
    t.numel = 6;
    t.data = NULL;
    CHECK_INT(prune_apply(&t, 1, &p, err, sizeof err), ERR_INVALID);
    t.data = w;
    p.method = (enum prune_method_id)99;
    CHECK_INT(prune_apply(&t, 1, &p, err, sizeof err), ERR_INVALID);
    p.method = PRUNE_L1_UNSTRUCTURED;
    p.amount = frac(2.0);
    CHECK_INT(prune_apply(&t, 1, &p, err, sizeof err), ERR_INVALID);
    CHECK_INT(prune_apply(NULL, 0, &p, err, sizeof err), ERR_INVALID);
    p.amount = frac(0.5);
    CHECK_INT(prune_apply(NULL, 0, &p, err, sizeof err), 0);
}

int main(void)
{
    test_method_table();
    test_amount();
    test_l1();
    test_l1_global();
    test_ln_structured();
    test_random();
    test_threshold_custom_identity();
    test_plugin();
    test_threads();
    test_bad_targets();
    return ct_done("test_prune");
}
