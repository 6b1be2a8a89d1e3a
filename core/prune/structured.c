/* structured.c - which attention heads and FFN neurons a structured job keeps */

#include "structured.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"

/* A head or neuron in the ranking. */
struct item {
    float imp;
    int idx;
};

/* Most important first; of equal ones the earlier-numbered first, so the
 * later-numbered is removed first. */
static int by_importance(const void *pa, const void *pb)
{
    const struct item *a = pa, *b = pb;
    if (a->imp != b->imp) return a->imp > b->imp ? -1 : 1;
    return (a->idx > b->idx) - (a->idx < b->idx);
}

int64_t structured_macs(int nlayers, const int *heads, const int *ffn, int seq_len, int hidden,
                        int head_size)
{
    const int64_t L = seq_len, H = hidden, d = head_size;
    int64_t total = 0;
    for (int l = 0; l < nlayers; l++)
        total += (int64_t)heads[l] * (4 * L * H * d + 2 * L * L * d) + (int64_t)ffn[l] * 2 * L * H;
    return total;
}

/* Removes from keep the k least important of items[0..n) (sorted). */
static void remove_last(const struct item *items, size_t n, int64_t k, uint8_t *keep)
{
    for (int64_t i = 0; i < k; i++)
        keep[items[n - 1 - (size_t)i].idx] = 0;
}

/* The candidates of one kind (heads: those not protected) in the selected
 * layers, or in layer only (layer >= 0), sorted. */
static size_t candidates(const struct structured_shape *sh, const int *width, const float *imp,
                         const uint8_t *protect, int layer, struct item *out)
{
    size_t n = 0;
    int base = 0;
    for (int l = 0; l < sh->nlayers; l++) {
        if (sh->selected[l] && (layer < 0 || layer == l))
            for (int i = 0; i < width[l]; i++)
                if (!protect || !protect[base + i])
                    out[n++] = (struct item){imp[base + i], base + i};
        base += width[l];
    }
    qsort(out, n, sizeof *out, by_importance);
    return n;
}

/* Amount mode for one kind: heads (protect set) or neurons. */
static int by_amount(const struct structured_shape *sh, const struct structured_request *rq,
                     const struct prune_amount *a, const int *width, const float *imp,
                     const uint8_t *protect, const char *field, const char *what,
                     struct item *items, uint8_t *keep, char *err, size_t errlen)
{
    char msg[256];
    for (int l = rq->scope == PRUNE_GLOBAL ? -1 : 0; l < sh->nlayers; l++) {
        if (l >= 0 && !sh->selected[l]) continue;
        int64_t n = 0, k;
        for (int j = 0; j < sh->nlayers; j++)
            if (sh->selected[j] && (l < 0 || j == l)) n += width[j];
        if (prune_amount_nparams(a, n, &k, msg, sizeof msg))
            return l < 0 ? err_set(err, errlen, ERR_INVALID, "%s: %s", field, msg)
                         : err_set(err, errlen, ERR_INVALID, "%s: layer %d: %s", field, l, msg);
        size_t c = candidates(sh, width, imp, protect, l, items);
        if (k > (int64_t)c)
            return err_set(err, errlen, ERR_INVALID,
                           "%s: removing %lld of %lld %s%s leaves fewer than "
                           "structured.min_heads_per_layer (%d) in a layer",
                           field, (long long)k, (long long)n, what, l < 0 ? "" : " of a layer",
                           rq->min_heads_per_layer);
        remove_last(items, c, k, keep);
        if (l < 0) break;
    }
    return 0;
}

int structured_select(const struct structured_shape *sh, const struct structured_request *rq,
                      const float *head_imp, const float *neuron_imp, uint8_t *head_keep,
                      uint8_t *neuron_keep, char *err, size_t errlen)
{
    size_t nh = 0, nn = 0;
    for (int l = 0; l < sh->nlayers; l++) {
        nh += (size_t)sh->heads[l];
        nn += (size_t)sh->ffn[l];
    }
    memset(head_keep, 1, nh);
    memset(neuron_keep, 1, nn);
    uint8_t *protect = calloc(nh ? nh : 1, 1);
    struct item *items = malloc((nh > nn ? nh : nn) * sizeof *items + sizeof *items);
    int rc = 0;
    if (!protect || !items) {
        rc = err_set(err, errlen, ERR_NOMEM, "out of memory");
        goto out;
    }
    /* each selected layer's most important heads stay */
    for (int l = 0; l < sh->nlayers && rq->min_heads_per_layer > 0; l++) {
        if (!sh->selected[l]) continue;
        size_t c = candidates(sh, sh->heads, head_imp, NULL, l, items);
        for (size_t i = 0; i < c && i < (size_t)rq->min_heads_per_layer; i++)
            protect[items[i].idx] = 1;
    }
    if (!rq->has_target) {
        if (rq->has_heads &&
            (rc = by_amount(sh, rq, &rq->heads, sh->heads, head_imp, protect, "structured.heads",
                            "heads", items, head_keep, err, errlen)))
            goto out;
        if (rq->has_neurons &&
            (rc = by_amount(sh, rq, &rq->neurons, sh->ffn, neuron_imp, NULL, "structured.neurons",
                            "neurons", items, neuron_keep, err, errlen)))
            goto out;
        goto out;
    }

    /* target.macs: Kwon's search over the number of heads kept */
    const double L = rq->seq_len, H = sh->hidden, d = sh->head_size;
    const double head_cost = 4 * L * H * d + 2 * L * L * d, neuron_cost = 2 * L * H;
    double budget = rq->macs * (double)structured_macs(sh->nlayers, sh->heads, sh->ffn, rq->seq_len,
                                                       sh->hidden, sh->head_size);
    double fixed = 0;
    for (int l = 0; l < sh->nlayers; l++)
        if (!sh->selected[l]) fixed += sh->heads[l] * head_cost + sh->ffn[l] * neuron_cost;
    for (size_t i = 0; i < nh; i++)
        fixed += protect[i] * head_cost;
    if (fixed > budget) {
        rc = err_set(err, errlen, ERR_INVALID,
                     "structured.target.macs: %g keeps less than the layers not targeted and "
                     "min_heads_per_layer need (%.4f of the encoder's MACs)",
                     rq->macs, fixed / (budget / rq->macs));
        goto out;
    }
    struct item *hs = items, *ns = malloc(nn * sizeof *ns + sizeof *ns);
    double *nsum = malloc((nn + 1) * sizeof *nsum);
    if (!ns || !nsum) {
        free(ns);
        free(nsum);
        rc = err_set(err, errlen, ERR_NOMEM, "out of memory");
        goto out;
    }
    size_t hc = candidates(sh, sh->heads, head_imp, protect, -1, hs);
    size_t ncand = candidates(sh, sh->ffn, neuron_imp, NULL, -1, ns);
    nsum[0] = 0;
    for (size_t i = 0; i < ncand; i++)
        nsum[i + 1] = nsum[i] + ns[i].imp;
    double hsum = 0, best = -1;
    size_t best_h = 0, best_n = 0;
    for (size_t h = 0; h <= hc; h++) {
        if (h) hsum += hs[h - 1].imp;
        double cost = fixed + (double)h * head_cost;
        if (cost > budget) break;
        double fit = (budget - cost) / neuron_cost;
        size_t k = fit >= (double)ncand ? ncand : (size_t)fit;
        if (hsum + nsum[k] >= best) {
            best = hsum + nsum[k];
            best_h = h;
            best_n = k;
        }
    }
    remove_last(hs, hc, (int64_t)(hc - best_h), head_keep);
    remove_last(ns, ncand, (int64_t)(ncand - best_n), neuron_keep);
    free(ns);
    free(nsum);
out:
    free(protect);
    free(items);
    return rc;
}
