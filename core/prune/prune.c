/* prune.c - torch.nn.utils.prune masks computed on float32 buffers, applied in place */
#include "prune.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "json_text.h"

/*
 * DESIGN
 *
 * Every method follows PyTorch 1.13's torch/nn/utils/prune.py: the same
 * amount rules (_validate_pruning_amount_init, _validate_pruning_amount,
 * _compute_nparams_toprune with Python's round, i.e. half to even), the same
 * candidate sets, the same counts.  What PyTorch leaves open we fix here:
 *
 * Selection (l1_unstructured, local and global).  The importance of an entry
 * is |w|.  For non-negative floats the IEEE bit pattern orders like the
 * value, so the key of w is its bits with the sign cleared (a uint32 below
 * 2^31).  The k-th smallest key is found in place by a radix select in three
 * read-only passes over the data (11 + 11 + 9 bits); each pass runs on
 * p->threads threads over contiguous ranges of the (virtual) concatenation
 * of the targets, with one histogram per thread, merged afterwards.  Nothing
 * is copied: global pruning never builds the concatenated vector PyTorch
 * builds.  A fourth pass zeroes the selected entries.  Iterative pruning
 * adds one counting pass (the amount needs the number of non-zeros first).
 * Scratch: a 16 KiB histogram per thread.
 *
 * Tie rule.  Entries whose key is below the k-th key T are pruned.  Entries
 * whose key equals T (the same |w|, so +x and -x tie) are pruned in the
 * order of the concatenation -- targets in the order given, then lowest flat
 * (row-major) index first -- until exactly k entries are pruned.  The same
 * holds for every thread count: the last pass's per-thread histograms tell
 * each thread how many keys equal to T lie in its range before it.
 * PyTorch's topk breaks such ties in an unspecified order.
 *
 * NaN rule.  |NaN| ranks above +inf (its key is larger), as in torch.topk:
 * a NaN weight is pruned only when k exceeds the number of other candidates.
 * For ln_structured a channel holding a NaN has norm NaN and is kept first.
 * threshold never prunes NaN (|NaN| < t is false).
 *
 * ln_structured.  Channel norms are computed in double over all dims but
 * dim (PyTorch: float32 torch.norm); the k channels of smallest norm are
 * pruned, i.e. the top C - k by norm are kept as in PyTorch.  Equal norms:
 * the lower channel index is pruned first.  n is p > 0, INFINITY (max |w|),
 * -INFINITY (min |w|) or PRUNE_NORM_FRO (= 2); "fro" is the 2-norm over any
 * number of dims (PyTorch 1.13 refuses "fro" over more than 2 dims).
 *
 * Random methods.  One xoshiro256** stream seeded from p->seed through
 * splitmix64 serves the whole call, consumed in target order.  Exactly k
 * entries (channels) are drawn uniformly among the candidates with
 * selection sampling (Knuth's algorithm S, integers drawn with Lemire's
 * unbiased method): no memory, one pass, the same seed gives the same mask.
 * PyTorch's own RNG cannot be matched.
 *
 * threshold (not in PyTorch) prunes |w| < p->threshold; identity prunes
 * nothing; custom_from_mask prunes where the target's mask byte is 0; the
 * plugin method prunes where the plugin's mask is 0.  None takes amount.
 * A target's pruned count is the number of zeros in its final mask: with
 * iterative this includes the weights that were zero before (PyTorch's
 * container mask), without it only what this call selected.
 *
 * Iterative.  Exact zeros (+0.0 and -0.0) are what an earlier pruning left:
 * the default mask is (w != 0), implicit in the data, never stored.  As in
 * PruningContainer._combine_masks the new amount applies to what remains:
 * unstructured methods select among the non-zero entries (global: across all
 * targets); structured methods among the channels that are not all zero.
 * Without iterative the default mask is all ones and zeros are just small
 * weights.
 *
 * All validation, including every amount against its candidate count,
 * happens before any weight changes.  The plugin method runs the plugin on
 * every target first (keeping each result as a bitmap) and writes only when
 * all succeeded.
 */

#define PRUNE_MAX_THREADS 64
#define PRUNE_MIN_CHUNK 65536 /* entries per thread worth a thread */

const struct prune_method prune_methods[] = {
    {"identity", PRUNE_IDENTITY, 0},
    {"l1_unstructured", PRUNE_L1_UNSTRUCTURED, PRUNE_F_GLOBAL | PRUNE_F_AMOUNT},
    {"random_unstructured", PRUNE_RANDOM_UNSTRUCTURED,
     PRUNE_F_GLOBAL | PRUNE_F_AMOUNT | PRUNE_F_RANDOM},
    {"ln_structured", PRUNE_LN_STRUCTURED, PRUNE_F_STRUCTURED | PRUNE_F_AMOUNT},
    {"random_structured", PRUNE_RANDOM_STRUCTURED,
     PRUNE_F_STRUCTURED | PRUNE_F_AMOUNT | PRUNE_F_RANDOM},
    {"threshold", PRUNE_THRESHOLD, 0},
    {"custom_from_mask", PRUNE_CUSTOM_FROM_MASK, 0},
    {"plugin", PRUNE_PLUGIN, 0},
    {"structured", PRUNE_STRUCTURED, 0},
    {NULL, 0, 0},
};

const struct prune_method *prune_method_find(const char *name)
{
    if (!name) return NULL;
    for (const struct prune_method *m = prune_methods; m->name; m++)
        if (!strcmp(m->name, name)) return m;
    return NULL;
}

static const struct prune_method *method_by_id(enum prune_method_id id)
{
    for (const struct prune_method *m = prune_methods; m->name; m++)
        if (m->id == id) return m;
    return NULL;
}

/* ---- amount ---------------------------------------------------------- */

/* Writes v as Python's repr would (shortest round-trip, "1.0" not "1"). */
static void fmt_float(char *buf, size_t len, double v)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    if (!strpbrk(buf, ".eni") && strlen(buf) + 3 <= len) strcat(buf, ".0");
}

int prune_amount_check(const struct prune_amount *a, char *err, size_t errlen)
{
    char num[40];

    if (a->is_count) {
        if (a->count >= 0) return 0;
        snprintf(num, sizeof num, "%" PRId64, a->count);
    } else {
        if (a->fraction >= 0.0 && a->fraction <= 1.0) return 0; /* NaN fails */
        fmt_float(num, sizeof num, a->fraction);
    }
    return err_set(err, errlen, ERR_INVALID,
                   "amount=%s should either be a float in the range [0, 1] or a "
                   "non-negative integer",
                   num);
}

int prune_amount_nparams(const struct prune_amount *a, int64_t n, int64_t *k, char *err,
                         size_t errlen)
{
    int rc = prune_amount_check(a, err, errlen);
    if (rc) return rc;
    if (a->is_count) {
        if (a->count > n)
            return err_set(err, errlen, ERR_INVALID,
                           "amount=%" PRId64 " should be smaller than the number of "
                           "parameters to prune=%" PRId64,
                           a->count, n);
        *k = a->count;
    } else {
        /* Python's round(amount * n): the same double product, half to even
         * in the default rounding mode. */
        *k = (int64_t)nearbyint(a->fraction * (double)n);
    }
    return 0;
}

/* ---- small helpers --------------------------------------------------- */

static inline uint32_t key_of(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u & 0x7fffffffu;
}

static const char *tname(const struct prune_target *t)
{
    return t->name ? t->name : "?";
}

/* xoshiro256** seeded by splitmix64 (Blackman and Vigna). */
struct rng {
    uint64_t s[4];
};

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void rng_seed(struct rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(struct rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

/* A uniform integer in [0, n), n > 0, without bias (Lemire 2019). */
static uint64_t rng_below(struct rng *r, uint64_t n)
{
    __uint128_t m = (__uint128_t)rng_next(r) * n;
    uint64_t lo = (uint64_t)m;
    if (lo < n) {
        uint64_t floor = -n % n;
        while (lo < floor) {
            m = (__uint128_t)rng_next(r) * n;
            lo = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

/* Selection sampling: is this candidate one of the need drawn among the
 * left remaining candidates?  Updates need and left. */
static inline int rng_pick(struct rng *r, int64_t *need, int64_t *left)
{
    int pick = *need > 0 && (int64_t)rng_below(r, (uint64_t)*left) < *need;
    (*left)--;
    if (pick) (*need)--;
    return pick;
}

/* ---- threads over the concatenation of targets ----------------------- */

struct span {
    float *data;
    int64_t n;
    int64_t base;  /* index of data[0] in the concatenation */
    size_t target; /* index into the targets */
};

struct spans {
    const struct span *s;
    size_t ns;
    int64_t total;
};

/* Called for each piece of a thread's range that lies in one span. */
typedef void (*piece_fn)(void *ctx, int tid, const struct span *span, float *x, int64_t cnt);

struct par_arg {
    const struct spans *sp;
    piece_fn fn;
    void *ctx;
    int tid;
    int64_t lo, hi;
};

static void *par_main(void *arg)
{
    struct par_arg *a = arg;
    const struct spans *sp = a->sp;
    size_t lo = 0, hi = sp->ns;

    while (hi - lo > 1) { /* the last span starting at or before a->lo */
        size_t mid = (lo + hi) / 2;
        if (sp->s[mid].base <= a->lo)
            lo = mid;
        else
            hi = mid;
    }
    for (size_t i = lo; i < sp->ns && sp->s[i].base < a->hi; i++) {
        const struct span *s = &sp->s[i];
        int64_t from = a->lo > s->base ? a->lo - s->base : 0;
        int64_t to = a->hi < s->base + s->n ? a->hi - s->base : s->n;
        if (to > from) a->fn(a->ctx, a->tid, s, s->data + from, to - from);
    }
    return NULL;
}

/* Runs fn over nthreads contiguous ranges of the concatenation, thread tid
 * taking the tid-th range.  A thread that cannot start runs its range
 * inline, so results never depend on thread creation. */
static void par_run(int nthreads, const struct spans *sp, piece_fn fn, void *ctx)
{
    struct par_arg args[PRUNE_MAX_THREADS];
    pthread_t th[PRUNE_MAX_THREADS];
    int started[PRUNE_MAX_THREADS] = {0};

    for (int t = 0; t < nthreads; t++) {
        args[t] = (struct par_arg){sp,
                                   fn,
                                   ctx,
                                   t,
                                   (int64_t)((__int128)sp->total * t / nthreads),
                                   (int64_t)((__int128)sp->total * (t + 1) / nthreads)};
        if (t > 0) started[t] = !pthread_create(&th[t], NULL, par_main, &args[t]);
    }
    for (int t = 0; t < nthreads; t++)
        if (!started[t]) par_main(&args[t]);
    for (int t = 1; t < nthreads; t++)
        if (started[t]) pthread_join(th[t], NULL);
}

static int par_threads(const struct prune_params *p, int64_t total)
{
    int64_t t = p->threads > 0 ? p->threads : 1;
    if (t > PRUNE_MAX_THREADS) t = PRUNE_MAX_THREADS;
    if (t > total / PRUNE_MIN_CHUNK) t = total / PRUNE_MIN_CHUNK;
    return t < 1 ? 1 : (int)t;
}

/* ---- radix select ------------------------------------------------------ */

#define SEL_BINS 2048

struct sel {
    const struct spans *sp;
    int nthreads;
    size_t ntargets;
    int skip_zero;   /* iterative: key 0 is no candidate */
    int level;       /* 0: bits 30..20, 1: bits 19..9, 2: bits 8..0 */
    uint32_t prefix; /* the bits above this level, fixed by earlier levels */
    uint64_t *hist;  /* nthreads x SEL_BINS */
    int64_t *per;    /* nthreads x ntargets: pruned entries */
    uint32_t tkey;   /* apply: the k-th key */
    int64_t *quota;  /* apply: per thread, the keys equal to tkey it prunes */
};

/* Histogram passes count into SEL_SUB interleaved uint32 sub-histograms, so
 * that runs of equal bins do not serialise on one counter; every entry adds
 * 0 or 1 to its bin, so the loops have no (unpredictable) branches. */
#define SEL_SUB 4
#define SEL_BLOCK (INT64_C(1) << 28) /* entries per flush: uint32 cannot overflow */

/* The bin of key k at a level; *in is 1 when k is a candidate there. */
static inline uint32_t sel_bin(uint32_t k, int level, uint32_t pre, uint32_t skip_zero,
                               uint32_t *in)
{
    uint32_t cand = (k != 0) | !skip_zero;
    if (level == 0) {
        *in = cand;
        return k >> 20;
    }
    if (level == 1) {
        *in = cand & ((k >> 20) == pre);
        return (k >> 9) & 0x7ff;
    }
    *in = cand & ((k >> 9) == pre);
    return k & 0x1ff;
}

static inline __attribute__((always_inline)) void sel_count(uint32_t (*sub)[SEL_BINS],
                                                            const float *x, int64_t cnt, int level,
                                                            uint32_t pre, uint32_t skip_zero)
{
    int64_t i = 0;
    uint32_t b, in;
    for (; i + SEL_SUB <= cnt; i += SEL_SUB) {
        for (int j = 0; j < SEL_SUB; j++) {
            b = sel_bin(key_of(x[i + j]), level, pre, skip_zero, &in);
            sub[j][b] += in;
        }
    }
    for (; i < cnt; i++) {
        b = sel_bin(key_of(x[i]), level, pre, skip_zero, &in);
        sub[0][b] += in;
    }
}

static void sel_hist(void *ctx, int tid, const struct span *span, float *x, int64_t cnt)
{
    struct sel *s = ctx;
    uint64_t *h = s->hist + (size_t)tid * SEL_BINS;
    uint32_t sub[SEL_SUB][SEL_BINS];

    (void)span;
    for (int64_t off = 0; off < cnt; off += SEL_BLOCK) {
        int64_t n = cnt - off < SEL_BLOCK ? cnt - off : SEL_BLOCK;
        memset(sub, 0, sizeof sub);
        /* constant arguments: each combination gets its own loop */
        if (s->level == 0 && !s->skip_zero)
            sel_count(sub, x + off, n, 0, 0, 0);
        else if (s->level == 0)
            sel_count(sub, x + off, n, 0, 0, 1);
        else if (s->level == 1 && !s->skip_zero)
            sel_count(sub, x + off, n, 1, s->prefix, 0);
        else if (s->level == 1)
            sel_count(sub, x + off, n, 1, s->prefix, 1);
        else if (!s->skip_zero)
            sel_count(sub, x + off, n, 2, s->prefix, 0);
        else
            sel_count(sub, x + off, n, 2, s->prefix, 1);
        for (int b = 0; b < SEL_BINS; b++)
            h[b] += (uint64_t)sub[0][b] + sub[1][b] + sub[2][b] + sub[3][b];
    }
}

/* Zeroes the keys below tkey (branch-free, so it vectorises), then the
 * thread's quota of keys equal to tkey, first come first.  Keys of 0 count
 * as pruned: in iterative mode they are pruned before and tkey >= 1. */
static void sel_apply(void *ctx, int tid, const struct span *span, float *x, int64_t cnt)
{
    struct sel *s = ctx;
    int64_t quota = s->quota[tid], n = 0;
    uint32_t t = s->tkey;

    for (int64_t i = 0; i < cnt; i++) {
        uint32_t b;
        memcpy(&b, &x[i], sizeof b);
        uint32_t below = (b & 0x7fffffffu) < t;
        n += below;
        b &= below - 1u;
        memcpy(&x[i], &b, sizeof b);
    }
    for (int64_t i = 0; i < cnt && quota > 0; i++) {
        if (key_of(x[i]) == t) {
            x[i] = 0.0f;
            quota--;
            n++;
        }
    }
    s->quota[tid] = quota;
    s->per[(size_t)tid * s->ntargets + span->target] += n;
}

/* Runs one histogram level; m receives the merged histogram. */
static void sel_level(struct sel *s, int level, uint32_t prefix, uint64_t *m)
{
    s->level = level;
    s->prefix = prefix;
    memset(s->hist, 0, (size_t)s->nthreads * SEL_BINS * sizeof *s->hist);
    par_run(s->nthreads, s->sp, sel_hist, s);
    memset(m, 0, SEL_BINS * sizeof *m);
    for (int t = 0; t < s->nthreads; t++)
        for (int b = 0; b < SEL_BINS; b++)
            m[b] += s->hist[(size_t)t * SEL_BINS + b];
}

/* The bin holding the k-th (1-based) candidate; k becomes its rank inside. */
static uint32_t sel_pick(const uint64_t *m, int64_t *k)
{
    uint32_t b = 0;
    while (b < SEL_BINS - 1 && (int64_t)m[b] < *k)
        *k -= (int64_t)m[b++];
    return b;
}

/*
 * l1_unstructured over the spans sp (one target for local, all for global):
 * finds the candidate count (*ncand), checks the amount against it, and
 * unless check_only prunes the k smallest |w| by the tie rule above, adding
 * to pruned[target] the entries whose final mask is 0.  hist (threads x
 * SEL_BINS) and per (threads x ntargets) are the caller's scratch, so that
 * nothing can fail once writing has begun.
 */
static int l1_select(const struct spans *sp, size_t ntargets, const struct prune_params *p,
                     int check_only, uint64_t *hist, int64_t *per, int64_t *ncand, int64_t *pruned,
                     char *err, size_t errlen)
{
    struct sel s = {
        .sp = sp, .ntargets = ntargets, .skip_zero = p->iterative, .hist = hist, .per = per};
    uint64_t m[SEL_BINS];
    int64_t k = 0, q[PRUNE_MAX_THREADS] = {0};
    int rc;

    s.nthreads = par_threads(p, sp->total);
    s.quota = q;
    memset(per, 0, (size_t)s.nthreads * ntargets * sizeof *per);
    if (!p->iterative && check_only) {
        *ncand = sp->total; /* no pass needed */
    } else {
        sel_level(&s, 0, 0, m);
        *ncand = 0;
        for (int b = 0; b < SEL_BINS; b++)
            *ncand += (int64_t)m[b];
    }
    rc = prune_amount_nparams(&p->amount, *ncand, &k, err, errlen);
    if (rc || check_only) return rc;

    /* k = 0: nothing new; in iterative mode the zeros (key 0 < 1) are counted */
    s.tkey = p->iterative ? 1 : 0;
    int work = k > 0 || p->iterative;
    if (k > 0) {
        uint32_t b0 = sel_pick(m, &k);
        sel_level(&s, 1, b0, m);
        uint32_t b1 = sel_pick(m, &k);
        sel_level(&s, 2, (b0 << 11) | b1, m);
        uint32_t b2 = sel_pick(m, &k);
        s.tkey = (b0 << 20) | (b1 << 9) | b2;
        /* k is now how many keys equal to tkey get pruned, first come first:
         * each thread's share follows from the counts in the ranges before. */
        int64_t before = 0;
        for (int t = 0; t < s.nthreads; t++) {
            int64_t here = (int64_t)s.hist[(size_t)t * SEL_BINS + b2], want = k - before;
            q[t] = want <= 0 ? 0 : (want < here ? want : here);
            before += here;
        }
    }
    if (work) par_run(s.nthreads, sp, sel_apply, &s);
    for (size_t j = 0; j < ntargets; j++)
        for (int t = 0; t < s.nthreads; t++)
            pruned[j] += s.per[(size_t)t * ntargets + j];
    return 0;
}

/* ---- random unstructured ------------------------------------------------ */

static int64_t count_nonzero(const float *x, int64_t n)
{
    int64_t c = 0;
    for (int64_t i = 0; i < n; i++)
        c += key_of(x[i]) != 0;
    return c;
}

/* Prunes k of the ncand candidates of sp, uniformly at random. */
static void random_unstructured(const struct spans *sp, int iterative, int64_t k, int64_t ncand,
                                struct rng *r, int64_t *pruned)
{
    int64_t need = k, left = ncand;
    for (size_t si = 0; si < sp->ns; si++) {
        const struct span *s = &sp->s[si];
        int64_t n = 0;
        for (int64_t i = 0; i < s->n; i++) {
            if (iterative && !key_of(s->data[i])) {
                n++;
            } else if (rng_pick(r, &need, &left)) {
                s->data[i] = 0.0f;
                n++;
            }
        }
        pruned[s->target] += n;
    }
}

/* ---- structured ------------------------------------------------------- */

struct chan {
    int dim;             /* resolved channel dim */
    int64_t outer;       /* product of the dims before dim */
    int64_t nch;         /* channels: shape[dim] */
    int64_t inner;       /* product of the dims after dim */
    double *norm;        /* nch (ln_structured) or NULL */
    unsigned char *nan;  /* nch: the channel holds a NaN (ln_structured) */
    int64_t *nnz;        /* nch: non-zero entries per channel */
    int64_t kept;        /* candidate channels */
    int64_t k;           /* channels to prune */
    unsigned char *drop; /* nch: 1 = prune this channel */
};

static void chan_free(struct chan *c)
{
    free(c->norm);
    free(c->nan);
    free(c->nnz);
    free(c->drop);
}

static int chan_shape(const struct prune_target *t, int dim, struct chan *c, char *err,
                      size_t errlen)
{
    if (t->ndim <= 1) {
        char shape[64] = "[]";
        if (t->ndim == 1) snprintf(shape, sizeof shape, "[%" PRId64 "]", t->shape[0]);
        return err_set(err, errlen, ERR_INVALID,
                       "%s: structured pruning can only be applied to multidimensional "
                       "tensors; found tensor of shape %s with %d dims",
                       tname(t), shape, t->ndim);
    }
    if (dim < -t->ndim || dim >= t->ndim)
        return err_set(err, errlen, ERR_INVALID, "%s: invalid dim %d for a tensor with %d dims",
                       tname(t), dim, t->ndim);
    c->dim = dim < 0 ? dim + t->ndim : dim;
    c->nch = t->shape[c->dim];
    c->outer = c->inner = 1;
    for (int d = 0; d < c->dim; d++)
        c->outer *= t->shape[d];
    for (int d = c->dim + 1; d < t->ndim; d++)
        c->inner *= t->shape[d];
    return 0;
}

/* Fills the per-channel non-zero counts and, for ln_structured, the norms
 * over all dims but dim: p-norm for finite p > 0, max |w| for inf, min |w|
 * for -inf, NaN when the channel holds a NaN. */
static void chan_stats(const struct prune_target *t, struct chan *c, double pn)
{
    for (int64_t j = 0; j < c->nch; j++) {
        c->nnz[j] = 0;
        if (c->norm) {
            c->norm[j] = pn == -INFINITY && c->outer > 0 && c->inner > 0 ? INFINITY : 0.0;
            c->nan[j] = 0;
        }
    }
    const float *x = t->data;
    for (int64_t o = 0; o < c->outer; o++) {
        for (int64_t j = 0; j < c->nch; j++, x += c->inner) {
            int64_t nz = 0;
            for (int64_t i = 0; i < c->inner; i++)
                nz += key_of(x[i]) != 0;
            c->nnz[j] += nz;
            if (!c->norm) continue;
            double acc = c->norm[j];
            for (int64_t i = 0; i < c->inner; i++) {
                double a = fabs((double)x[i]);
                if (isnan(a))
                    c->nan[j] = 1;
                else if (pn == INFINITY)
                    acc = a > acc ? a : acc;
                else if (pn == -INFINITY)
                    acc = a < acc ? a : acc;
                else if (pn == 1.0)
                    acc += a;
                else if (pn == 2.0)
                    acc += a * a;
                else
                    acc += pow(a, pn);
            }
            c->norm[j] = acc;
        }
    }
    if (!c->norm) return;
    for (int64_t j = 0; j < c->nch; j++) {
        if (c->nan[j])
            c->norm[j] = NAN;
        else if (pn == 2.0)
            c->norm[j] = sqrt(c->norm[j]);
        else if (isfinite(pn) && pn != 1.0)
            c->norm[j] = pow(c->norm[j], 1.0 / pn);
    }
}

struct chan_order {
    double norm;
    int64_t idx;
};

/* Ascending norm, NaN last, then ascending index: the front gets pruned. */
static int chan_cmp(const void *pa, const void *pb)
{
    const struct chan_order *a = pa, *b = pb;
    int na = isnan(a->norm), nb = isnan(b->norm);
    if (na != nb) return na - nb;
    if (!na && a->norm != b->norm) return a->norm < b->norm ? -1 : 1;
    return (a->idx > b->idx) - (a->idx < b->idx);
}

/* Zeroes the channels marked in drop. */
static void chan_zero(struct prune_target *t, const struct chan *c, const unsigned char *drop)
{
    float *x = t->data;
    for (int64_t o = 0; o < c->outer; o++)
        for (int64_t j = 0; j < c->nch; j++, x += c->inner)
            if (drop[j]) memset(x, 0, (size_t)c->inner * sizeof *x);
}

/* Picks the k channels to drop among the candidates (phase A: no writes). */
static int chan_select(struct chan *c, const struct prune_params *p, struct rng *r, char *err,
                       size_t errlen)
{
    c->drop = calloc((size_t)c->nch ? (size_t)c->nch : 1, 1);
    if (!c->drop) return err_set(err, errlen, ERR_NOMEM, "out of memory for channels");
    if (p->method == PRUNE_LN_STRUCTURED && c->k > 0) {
        struct chan_order *ord = malloc((size_t)c->kept * sizeof *ord);
        if (!ord) return err_set(err, errlen, ERR_NOMEM, "out of memory for channels");
        int64_t n = 0;
        for (int64_t j = 0; j < c->nch; j++)
            if (!p->iterative || c->nnz[j]) ord[n++] = (struct chan_order){c->norm[j], j};
        qsort(ord, (size_t)n, sizeof *ord, chan_cmp);
        for (int64_t j = 0; j < c->k; j++)
            c->drop[ord[j].idx] = 1;
        free(ord);
    } else if (p->method == PRUNE_RANDOM_STRUCTURED) {
        int64_t need = c->k, left = c->kept;
        for (int64_t j = 0; j < c->nch && need > 0; j++)
            if ((!p->iterative || c->nnz[j]) && rng_pick(r, &need, &left)) c->drop[j] = 1;
    }
    return 0;
}

/* Zeroes the dropped channels and sets the pruned count (phase B). */
static void chan_apply(struct prune_target *t, const struct chan *c, int iterative)
{
    if (c->k > 0) chan_zero(t, c, c->drop);
    if (!iterative) {
        t->pruned = c->k * c->outer * c->inner;
    } else {
        t->pruned = t->numel;
        for (int64_t j = 0; j < c->nch; j++)
            if (!c->drop[j]) t->pruned -= c->nnz[j];
    }
}

static int structured(struct prune_target *targets, size_t nt, const struct prune_params *p,
                      struct rng *r, char *err, size_t errlen)
{
    struct chan *cs = calloc(nt ? nt : 1, sizeof *cs);
    int rc = 0;
    char msg[256];

    if (!cs) return err_set(err, errlen, ERR_NOMEM, "out of memory for channels");
    if (p->method == PRUNE_LN_STRUCTURED && !(p->n > 0.0 || p->n == -INFINITY)) {
        char shown[32];
        rc = err_set(err, errlen, ERR_INVALID,
                     "ln_structured: n must be a positive number, inf, -inf or fro (got %s)",
                     json_text_real(p->n, shown, sizeof shown));
        goto out;
    }
    /* Everything checked and measured before the first write. */
    for (size_t i = 0; i < nt; i++) {
        struct chan *c = &cs[i];
        rc = chan_shape(&targets[i], p->dim, c, err, errlen);
        if (rc) goto out;
        c->nnz = malloc((size_t)(c->nch ? c->nch : 1) * sizeof *c->nnz);
        if (p->method == PRUNE_LN_STRUCTURED) {
            c->norm = malloc((size_t)(c->nch ? c->nch : 1) * sizeof *c->norm);
            c->nan = malloc((size_t)(c->nch ? c->nch : 1));
        }
        if (!c->nnz || (p->method == PRUNE_LN_STRUCTURED && (!c->norm || !c->nan))) {
            rc = err_set(err, errlen, ERR_NOMEM, "out of memory for channels");
            goto out;
        }
        chan_stats(&targets[i], c, p->n);
        c->kept = 0;
        for (int64_t j = 0; j < c->nch; j++)
            c->kept += !p->iterative || c->nnz[j];
        rc = prune_amount_nparams(&p->amount, c->kept, &c->k, msg, sizeof msg);
        if (rc) {
            rc = err_set(err, errlen, rc, "%s: %s", tname(&targets[i]), msg);
            goto out;
        }
        rc = chan_select(c, p, r, err, errlen);
        if (rc) goto out;
    }
    for (size_t i = 0; i < nt; i++)
        chan_apply(&targets[i], &cs[i], p->iterative);
out:
    for (size_t i = 0; i < nt; i++)
        chan_free(&cs[i]);
    free(cs);
    return rc;
}

/* ---- unstructured, elementwise ------------------------------------------ */

static int unstructured(struct prune_target *targets, size_t nt, const struct prune_params *p,
                        struct rng *r, char *err, size_t errlen)
{
    size_t ngroups = p->scope == PRUNE_GLOBAL ? 1 : nt;
    struct span *spans = calloc(nt ? nt : 1, sizeof *spans);
    int64_t *ncand = calloc(nt ? nt : 1, sizeof *ncand);
    int64_t *pruned = calloc(nt ? nt : 1, sizeof *pruned);
    int maxth = p->threads < 1                   ? 1
                : p->threads > PRUNE_MAX_THREADS ? PRUNE_MAX_THREADS
                                                 : p->threads;
    uint64_t *hist = malloc((size_t)maxth * SEL_BINS * sizeof *hist);
    int64_t *per = malloc(((size_t)maxth * nt + 1) * sizeof *per);
    int64_t base = 0;
    int rc = 0;
    char msg[256];

    if (!spans || !ncand || !pruned || !hist || !per) {
        rc = err_set(err, errlen, ERR_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < nt; i++) {
        spans[i] = (struct span){targets[i].data, targets[i].numel, base, i};
        base += targets[i].numel;
    }
    /* Pass 1 checks every group's amount; pass 2 prunes. */
    for (int write = 0; write <= 1; write++) {
        for (size_t g = 0; g < ngroups; g++) {
            struct spans sp;
            struct span one;
            if (p->scope == PRUNE_GLOBAL) {
                sp = (struct spans){spans, nt, base};
            } else {
                one = spans[g];
                one.base = 0;
                sp = (struct spans){&one, 1, one.n};
            }
            if (p->method == PRUNE_L1_UNSTRUCTURED) {
                rc = l1_select(&sp, nt, p, !write, hist, per, &ncand[g], pruned, msg, sizeof msg);
            } else { /* random_unstructured */
                if (!write) {
                    ncand[g] = 0;
                    for (size_t s = 0; s < sp.ns; s++)
                        ncand[g] +=
                            p->iterative ? count_nonzero(sp.s[s].data, sp.s[s].n) : sp.s[s].n;
                    int64_t k;
                    rc = prune_amount_nparams(&p->amount, ncand[g], &k, msg, sizeof msg);
                } else {
                    int64_t k = 0;
                    prune_amount_nparams(&p->amount, ncand[g], &k, NULL, 0);
                    random_unstructured(&sp, p->iterative, k, ncand[g], r, pruned);
                }
            }
            if (rc) {
                if (p->scope == PRUNE_GLOBAL)
                    rc = err_set(err, errlen, rc, "global: %s", msg);
                else
                    rc = err_set(err, errlen, rc, "%s: %s", tname(&targets[g]), msg);
                goto out;
            }
        }
    }
    for (size_t i = 0; i < nt; i++)
        targets[i].pruned = pruned[i];
out:
    free(spans);
    free(ncand);
    free(pruned);
    free(hist);
    free(per);
    return rc;
}

/* identity, threshold, custom_from_mask: one pass per target. */
static void elementwise(struct prune_target *t, const struct prune_params *p)
{
    int64_t n = 0;
    for (int64_t i = 0; i < t->numel; i++) {
        float x = t->data[i];
        int drop = 0;
        if (p->iterative && !key_of(x)) {
            n++; /* pruned before; left as it is */
            continue;
        }
        if (p->method == PRUNE_THRESHOLD)
            drop = fabsf(x) < p->threshold;
        else if (p->method == PRUNE_CUSTOM_FROM_MASK)
            drop = !t->mask[i];
        if (drop) {
            t->data[i] = 0.0f;
            n++;
        }
    }
    t->pruned = n;
}

/* ---- plugin ----------------------------------------------------------- */

static int plugin_run(struct prune_target *targets, size_t nt, const struct prune_params *p,
                      char *err, size_t errlen)
{
    const struct prunerd_plugin_v1 *pl = p->plugin;
    uint8_t **bits = calloc(nt ? nt : 1, sizeof *bits);
    uint8_t *mask = NULL;
    int64_t maxn = 1;
    int rc = 0;
    char msg[256];

    if (!bits) return err_set(err, errlen, ERR_NOMEM, "out of memory for plugin masks");
    for (size_t i = 0; i < nt; i++)
        if (targets[i].numel > maxn) maxn = targets[i].numel;
    mask = malloc((size_t)maxn);
    if (!mask) {
        rc = err_set(err, errlen, ERR_NOMEM, "out of memory for a plugin mask");
        goto out;
    }
    for (size_t i = 0; i < nt; i++) {
        struct prune_target *t = &targets[i];
        bits[i] = calloc((size_t)(t->numel + 7) / 8 + 1, 1);
        if (!bits[i]) {
            rc = err_set(err, errlen, ERR_NOMEM, "out of memory for plugin masks");
            goto out;
        }
        for (int64_t j = 0; j < t->numel; j++)
            mask[j] = !p->iterative || key_of(t->data[j]);
        msg[0] = '\0';
        if (pl->compute_mask(t->data, t->shape, t->ndim, mask,
                             p->plugin_params ? p->plugin_params : "null", msg, sizeof msg)) {
            msg[sizeof msg - 1] = '\0';
            rc = err_set(err, errlen, ERR_INVALID, "plugin %s on %s: %s", pl->name ? pl->name : "?",
                         tname(t), msg[0] ? msg : "failed");
            goto out;
        }
        /* combined with the default mask, kept as 1 bit per entry */
        for (int64_t j = 0; j < t->numel; j++) {
            int keep = mask[j] && (!p->iterative || key_of(t->data[j]));
            if (!keep) bits[i][j >> 3] |= (uint8_t)(1u << (j & 7));
        }
    }
    for (size_t i = 0; i < nt; i++) {
        struct prune_target *t = &targets[i];
        int64_t n = 0;
        for (int64_t j = 0; j < t->numel; j++)
            if (bits[i][j >> 3] >> (j & 7) & 1) {
                t->data[j] = 0.0f;
                n++;
            }
        t->pruned = n;
    }
out:
    for (size_t i = 0; i < nt; i++)
        free(bits[i]);
    free(bits);
    free(mask);
    return rc;
}

/* ---- entry --------------------------------------------------------------- */

static int check_target(const struct prune_target *t, char *err, size_t errlen)
{
    int64_t n = 1;
    if (t->numel < 0 || t->ndim < 0 || (t->ndim > 0 && !t->shape) || (t->numel > 0 && !t->data))
        return err_set(err, errlen, ERR_INVALID, "%s: bad tensor description", tname(t));
    for (int d = 0; d < t->ndim; d++) {
        if (t->shape[d] < 0)
            return err_set(err, errlen, ERR_INVALID, "%s: negative size in shape", tname(t));
        if (t->shape[d] && n > INT64_MAX / t->shape[d])
            return err_set(err, errlen, ERR_INVALID, "%s: shape too large", tname(t));
        n *= t->shape[d];
    }
    if (n != t->numel)
        return err_set(err, errlen, ERR_INVALID,
                       "%s: shape holds %" PRId64 " entries, numel says %" PRId64, tname(t), n,
                       t->numel);
    return 0;
}

int prune_apply(struct prune_target *targets, size_t ntargets, const struct prune_params *p,
                char *err, size_t errlen)
{
    const struct prune_method *m = method_by_id(p->method);
    struct rng r;
    int rc;

    if (!m) return err_set(err, errlen, ERR_INVALID, "unknown pruning method %d", (int)p->method);
    if (ntargets && !targets) return err_set(err, errlen, ERR_INVALID, "no targets");
    if (p->scope != PRUNE_LOCAL && p->scope != PRUNE_GLOBAL)
        return err_set(err, errlen, ERR_INVALID, "unknown scope %d", (int)p->scope);
    if (p->scope == PRUNE_GLOBAL && !(m->flags & PRUNE_F_GLOBAL)) {
        if (m->flags & PRUNE_F_STRUCTURED)
            return err_set(err, errlen, ERR_INVALID,
                           "%s prunes whole channels and cannot run with scope global: global "
                           "pruning is only for unstructured methods (l1_unstructured, "
                           "random_unstructured), as in PyTorch's global_unstructured",
                           m->name);
        return err_set(err, errlen, ERR_INVALID,
                       "%s cannot run with scope global (only l1_unstructured and "
                       "random_unstructured can)",
                       m->name);
    }
    if (m->flags & PRUNE_F_AMOUNT) {
        rc = prune_amount_check(&p->amount, err, errlen);
        if (rc) return rc;
    }
    for (size_t i = 0; i < ntargets; i++) {
        rc = check_target(&targets[i], err, errlen);
        if (rc) return rc;
    }
    switch (p->method) {
    case PRUNE_THRESHOLD:
        if (!(p->threshold >= 0.0)) {
            char shown[32];
            return err_set(err, errlen, ERR_INVALID,
                           "threshold must be a non-negative number (got %s)",
                           json_text_real(p->threshold, shown, sizeof shown));
        }
        break;
    case PRUNE_CUSTOM_FROM_MASK:
        for (size_t i = 0; i < ntargets; i++)
            if (!targets[i].mask && targets[i].numel)
                return err_set(err, errlen, ERR_INVALID, "custom_from_mask: %s has no mask",
                               tname(&targets[i]));
        break;
    case PRUNE_PLUGIN:
        if (!p->plugin || p->plugin->abi != PRUNERD_PLUGIN_ABI || !p->plugin->compute_mask)
            return err_set(err, errlen, ERR_INVALID, "plugin method without a valid plugin");
        break;
    default:
        break;
    }

    rng_seed(&r, p->seed);
    switch (p->method) {
    case PRUNE_L1_UNSTRUCTURED:
    case PRUNE_RANDOM_UNSTRUCTURED:
        return unstructured(targets, ntargets, p, &r, err, errlen);
    case PRUNE_LN_STRUCTURED:
    case PRUNE_RANDOM_STRUCTURED:
        return structured(targets, ntargets, p, &r, err, errlen);
    case PRUNE_PLUGIN:
        return plugin_run(targets, ntargets, p, err, errlen);
    case PRUNE_IDENTITY:
    case PRUNE_THRESHOLD:
    case PRUNE_CUSTOM_FROM_MASK:
        for (size_t i = 0; i < ntargets; i++)
            elementwise(&targets[i], p);
        return 0;
    case PRUNE_STRUCTURED:
        return err_set(err, errlen, ERR_INVALID,
                       "structured removes heads and neurons from a whole model, not masks of "
                       "tensors");
    }
    return err_set(err, errlen, ERR_INTERNAL, "method %s has no implementation", m->name);
}
