/* sweep.c - a sensitivity sweep's groups, its pruning of one group, and its recommendation */
#include "sweep.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bert_config.h"
#include "err.h"
#include "prune.h"
#include "structured.h"
#include "targets.h"

void sweep_groups_free(struct sweep_group *g, size_t n)
{
    for (size_t i = 0; g && i < n; i++) {
        free(g[i].name);
        free(g[i].tensors);
    }
    free(g);
}

/* The length of name's "...encoder.layer.N" prefix, or 0 when it has none. */
static size_t layer_prefix(const char *name)
{
    const char *p = strstr(name, "encoder.layer.");
    if (!p) return 0;
    p += strlen("encoder.layer.");
    if (*p < '0' || *p > '9') return 0;
    while (*p >= '0' && *p <= '9')
        p++;
    return *p == '.' ? (size_t)(p - name) : 0;
}

static int add_tensor(struct sweep_group *g, size_t idx, int64_t numel)
{
    size_t *t = realloc(g->tensors, (g->ntensors + 1) * sizeof *t);
    if (!t) return ERR_NOMEM;
    g->tensors = t;
    g->tensors[g->ntensors++] = idx;
    g->numel += numel;
    return 0;
}

int sweep_groups_unstructured(const struct ts_model *m, const size_t *targets, size_t ntargets,
                              int by_parameter, struct sweep_group **out, size_t *ngroups,
                              char *err, size_t errlen)
{
    struct sweep_group *g = calloc(ntargets + 1, sizeof *g);
    size_t n = 0;
    int rc = 0;
    *out = NULL;
    *ngroups = 0;
    if (!g) return err_set(err, errlen, ERR_NOMEM, "out of memory");
    /* the layers' groups first, in layer order, then the rest in model order */
    for (int pass = 0; pass < 2 && !rc; pass++) {
        for (size_t i = 0; i < ntargets && !rc; i++) {
            struct ts_tensor_info ti;
            if (ts_model_info(m, targets[i], &ti) != 0) {
                rc = err_set(err, errlen, ERR_INTERNAL, "sweep: no tensor %zu", targets[i]);
                break;
            }
            size_t len = by_parameter ? 0 : layer_prefix(ti.name);
            if ((pass == 0) != (len > 0)) continue;
            if (!len) len = strlen(ti.name);
            long layer = targets_layer_index(ti.name);
            size_t k = 0;
            while (k < n && !(strlen(g[k].name) == len && !strncmp(g[k].name, ti.name, len)))
                k++;
            if (k == n) {
                /* a new group: layers sorted by index as they come */
                size_t at = n;
                while (pass == 0 && at > 0 && g[at - 1].layer > layer)
                    at--;
                memmove(&g[at + 1], &g[at], (n - at) * sizeof *g);
                memset(&g[at], 0, sizeof *g);
                g[at].layer = pass == 0 ? (int)layer : -1;
                if (!(g[at].name = strndup(ti.name, len))) rc = ERR_NOMEM;
                n++;
                k = at;
            }
            if (!rc) rc = add_tensor(&g[k], targets[i], ti.numel);
        }
    }
    if (rc) {
        sweep_groups_free(g, n);
        return rc == ERR_NOMEM ? err_set(err, errlen, rc, "out of memory") : rc;
    }
    for (size_t k = 0; k < n; k++)
        g[k].layer = -1; /* the layer field is the structured groups' */
    *out = g;
    *ngroups = n;
    return 0;
}

int sweep_groups_structured(const struct ts_model *m, const uint8_t *selected, int nlayers,
                            struct sweep_group **out, size_t *ngroups, char *err, size_t errlen)
{
    struct sweep_group *g = calloc(2 * (size_t)nlayers + 1, sizeof *g);
    size_t n = 0;
    int rc = 0;
    *out = NULL;
    *ngroups = 0;
    if (!g) return err_set(err, errlen, ERR_NOMEM, "out of memory");
    for (int l = 0; l < nlayers && !rc; l++) {
        if (!selected[l]) continue;
        char prefix[256] = "";
        for (int kind = 0; kind < 2 && !rc; kind++) {
            struct sweep_group *x = &g[n++];
            x->layer = l;
            x->neurons = kind;
            for (size_t i = 0; i < ts_model_count(m) && !rc; i++) {
                struct ts_tensor_info ti;
                if (ts_model_info(m, i, &ti) != 0 || targets_layer_index(ti.name) != l) continue;
                size_t len = layer_prefix(ti.name);
                if (!len) continue;
                if (!prefix[0]) snprintf(prefix, sizeof prefix, "%.*s", (int)len, ti.name);
                rc = add_tensor(x, i, 0);
            }
            char name[300];
            snprintf(name, sizeof name, "%s.%s", prefix, kind ? "neurons" : "heads");
            if (!rc && !(x->name = strdup(name))) rc = ERR_NOMEM;
        }
    }
    if (rc) {
        sweep_groups_free(g, n);
        return err_set(err, errlen, rc, "out of memory");
    }
    *out = g;
    *ngroups = n;
    return 0;
}

static int prune_structured_group(struct ts_model *m, const struct sweep_group *g, double amount,
                                  const float *hi, const float *ni, char *err, size_t errlen)
{
    const struct bert_config *c = ts_model_config(m);
    const int nl = ts_model_layers(m);
    int *heads = calloc((size_t)nl + 1, sizeof *heads), *ffn = calloc((size_t)nl + 1, sizeof *ffn);
    uint8_t *sel = calloc((size_t)nl + 1, 1), *hk = NULL, *nk = NULL;
    size_t nh = 0, nn = 0;
    int rc = 0;
    if (!heads || !ffn || !sel) {
        rc = err_set(err, errlen, ERR_NOMEM, "out of memory");
        goto out;
    }
    for (int l = 0; l < nl; l++) {
        ts_model_layer_shape(m, l, &heads[l], &ffn[l]);
        nh += (size_t)heads[l];
        nn += (size_t)ffn[l];
    }
    sel[g->layer] = 1;
    if (!(hk = malloc(nh + 1)) || !(nk = malloc(nn + 1))) {
        rc = err_set(err, errlen, ERR_NOMEM, "out of memory");
        goto out;
    }
    const int head_size = c->hidden_size / c->num_attention_heads;
    struct structured_shape sh = {nl, heads, ffn, sel, c->hidden_size, head_size};
    struct structured_request q = {.scope = PRUNE_LOCAL};
    struct prune_amount a = {.fraction = amount};
    if (g->neurons)
        q.has_neurons = 1, q.neurons = a;
    else
        q.has_heads = 1, q.heads = a;
    if ((rc = structured_select(&sh, &q, hi, ni, hk, nk, err, errlen))) goto out;
    rc = ts_model_shrink(m, hk, nk, err, errlen);
out:
    free(heads);
    free(ffn);
    free(sel);
    free(hk);
    free(nk);
    return rc;
}

int sweep_prune(struct ts_model *m, const struct sweep_group *g, double amount,
                const float *head_imp, const float *neuron_imp, int threads, char *err,
                size_t errlen)
{
    if (g->layer >= 0)
        return prune_structured_group(m, g, amount, head_imp, neuron_imp, err, errlen);
    struct prune_target *t = calloc(g->ntensors + 1, sizeof *t);
    struct ts_tensor_info *ti = calloc(g->ntensors + 1, sizeof *ti);
    size_t mapped = 0;
    int rc = 0;
    if (!t || !ti) {
        rc = err_set(err, errlen, ERR_NOMEM, "out of memory");
        goto out;
    }
    for (; mapped < g->ntensors; mapped++) {
        size_t i = mapped;
        ts_model_info(m, g->tensors[i], &ti[i]);
        if ((rc = ts_model_map_f32(m, g->tensors[i], &t[i].data, err, errlen))) goto out;
        t[i].name = ti[i].name;
        t[i].ndim = ti[i].ndim;
        t[i].shape = ti[i].shape;
        t[i].numel = ti[i].numel;
    }
    struct prune_params p = {.method = PRUNE_L1_UNSTRUCTURED,
                             .scope = PRUNE_LOCAL,
                             .amount = {.fraction = amount},
                             .threads = threads};
    rc = prune_apply(t, g->ntensors, &p, err, errlen);
out:
    for (size_t i = 0; i < mapped; i++) {
        char e2[256];
        int rc2 = ts_model_unmap_f32(m, g->tensors[i], rc == 0, e2, sizeof e2);
        if (rc2 && !rc) rc = err_set(err, errlen, rc2, "%s", e2);
    }
    free(t);
    free(ti);
    return rc;
}

/* One segment of a group's hull: from amount x0 to x1, losing slope
 * accuracy per unit of amount. */
struct segment {
    size_t group;
    double x0, x1, slope, per_weight;
};

static int cmp_segment(const void *a, const void *b)
{
    const struct segment *x = a, *y = b;
    if (x->per_weight != y->per_weight) return x->per_weight < y->per_weight ? -1 : 1;
    if (x->group != y->group) return x->group < y->group ? -1 : 1;
    return (x->x0 > y->x0) - (x->x0 < y->x0);
}

int sweep_recommend(const int64_t *numel, size_t ng, const double *amounts, size_t na,
                    const double *acc, double dense, double sparsity, double *out,
                    double *predicted, char *err, size_t errlen)
{
    if (!ng || !na || !(sparsity > 0) || sparsity > amounts[na - 1])
        return err_set(err, errlen, ERR_INVALID,
                       "recommend.sparsity: must be in (0, %g] (the largest amount)",
                       na ? amounts[na - 1] : 0.0);
    struct segment *seg = calloc(ng * na + 1, sizeof *seg);
    size_t *hull = calloc(na + 2, sizeof *hull);
    double *x = calloc(na + 2, sizeof *x), *y = calloc(na + 2, sizeof *y);
    size_t nseg = 0;
    int rc = 0;
    if (!seg || !hull || !x || !y) {
        rc = err_set(err, errlen, ERR_NOMEM, "out of memory");
        goto out;
    }
    double total = 0;
    for (size_t g = 0; g < ng; g++) {
        total += (double)numel[g];
        x[0] = 0;
        y[0] = 0;
        for (size_t k = 0; k < na; k++) {
            x[k + 1] = amounts[k];
            y[k + 1] = dense - acc[g * na + k];
        }
        /* the lower convex hull of (x, y), x increasing (Andrew's chain) */
        size_t h = 0;
        for (size_t k = 0; k <= na; k++) {
            while (h >= 2) {
                size_t a = hull[h - 2], b = hull[h - 1];
                double cross = (x[b] - x[a]) * (y[k] - y[a]) - (y[b] - y[a]) * (x[k] - x[a]);
                if (cross > 0) break; /* a left turn: b stays */
                h--;
            }
            hull[h++] = k;
        }
        for (size_t s = 0; s + 1 < h; s++) {
            size_t a = hull[s], b = hull[s + 1];
            double slope = (y[b] - y[a]) / (x[b] - x[a]);
            seg[nseg++] = (struct segment){g, x[a], x[b], slope,
                                           numel[g] > 0 ? slope / (double)numel[g] : 1e300};
        }
        out[g] = 0;
    }
    qsort(seg, nseg, sizeof *seg, cmp_segment);
    double left = sparsity * total, lost = 0;
    for (size_t s = 0; s < nseg && left > 0; s++) {
        const struct segment *sg = &seg[s];
        double w = (sg->x1 - sg->x0) * (double)numel[sg->group];
        double part = w <= left ? 1.0 : left / w;
        out[sg->group] = sg->x0 + part * (sg->x1 - sg->x0);
        lost += part * (sg->x1 - sg->x0) * sg->slope;
        if (part < 1) break; /* the budget ends inside this segment */
        left -= w;
    }
    *predicted = dense - lost;
out:
    free(seg);
    free(hull);
    free(x);
    free(y);
    return rc;
}
