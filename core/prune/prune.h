/* prune.h - pruning masks identical to torch.nn.utils.prune, applied in place */
#ifndef PRUNERD_PRUNE_H
#define PRUNERD_PRUNE_H

#include <stddef.h>
#include <stdint.h>

#include "plugin.h"

/*
 * The pruning core works on plain float32 buffers and knows nothing of
 * libtorch or HTTP.  Pruning is always permanent: a pruned weight is set to
 * zero in place (what prune.remove leaves); no mask or original copy is kept.
 */

enum prune_method_id {
    PRUNE_IDENTITY,
    PRUNE_L1_UNSTRUCTURED,
    PRUNE_RANDOM_UNSTRUCTURED,
    PRUNE_LN_STRUCTURED,
    PRUNE_RANDOM_STRUCTURED,
    PRUNE_THRESHOLD,
    PRUNE_CUSTOM_FROM_MASK,
    PRUNE_PLUGIN,
    PRUNE_STRUCTURED, /* heads and FFN neurons of a whole BERT (structured.h, job.c) */
};

enum prune_scope { PRUNE_LOCAL, PRUNE_GLOBAL };

/* What a method takes; see the table in README / docs. */
enum {
    PRUNE_F_GLOBAL = 1u << 0,     /* may run with scope global */
    PRUNE_F_STRUCTURED = 1u << 1, /* prunes whole channels along dim */
    PRUNE_F_AMOUNT = 1u << 2,     /* uses amount */
    PRUNE_F_RANDOM = 1u << 3,     /* uses seed */
};

struct prune_method {
    const char *name; /* PyTorch's name, e.g. "l1_unstructured" */
    enum prune_method_id id;
    unsigned flags; /* PRUNE_F_* */
};

/* The one method table, ended by an entry with name NULL. */
extern const struct prune_method prune_methods[];
/* The entry named name, or NULL. */
const struct prune_method *prune_method_find(const char *name);

/* Amount as in PyTorch: a fraction in [0, 1] or a non-negative count. */
struct prune_amount {
    int is_count; /* 1: count is used; 0: fraction is used */
    double fraction;
    int64_t count;
};

/* PyTorch's _validate_pruning_amount_init: ERR_INVALID with its message. */
int prune_amount_check(const struct prune_amount *a, char *err, size_t errlen);
/* _validate_pruning_amount + _compute_nparams_toprune for a tensor (or, for
 * global, all targets) of n entries: count, or nearbyint(fraction * n). */
int prune_amount_nparams(const struct prune_amount *a, int64_t n, int64_t *k, char *err,
                         size_t errlen);

#define PRUNE_NORM_FRO 2.0 /* "fro" over the reduced dims is the 2-norm */

struct prune_params {
    enum prune_method_id method;
    enum prune_scope scope;
    struct prune_amount amount;
    double n;                               /* ln_structured: p (> 0, INFINITY, -INFINITY) */
    int dim;                                /* structured: channel dim, negative from the end */
    uint64_t seed;                          /* random methods */
    double threshold;                       /* threshold: prune |w| < threshold */
    int iterative;                          /* exact zeros count as already pruned */
    const struct prunerd_plugin_v1 *plugin; /* plugin method */
    const char *plugin_params;              /* JSON text handed to the plugin, may be NULL */
    int threads;                            /* worker threads for selection; <= 0: 1 */
};

struct prune_target {
    const char *name; /* for messages */
    float *data;      /* numel float32, row-major, modified in place */
    int ndim;
    const int64_t *shape;
    int64_t numel;
    const uint8_t *mask; /* custom_from_mask: numel bytes, 0 = prune; else NULL */
    int64_t pruned;      /* out: entries whose final mask is 0 */
};

/*
 * Computes the masks PyTorch would compute for these targets and zeroes the
 * pruned entries in place.  scope local prunes each target by the amount on
 * its own; scope global (unstructured methods only) selects one threshold
 * over all targets together, without concatenating them.  Everything is
 * validated before any weight changes.  Returns 0 or ERR_INVALID /
 * ERR_NOMEM / ERR_INTERNAL with a message.
 */
int prune_apply(struct prune_target *targets, size_t ntargets, const struct prune_params *p,
                char *err, size_t errlen);

#endif
