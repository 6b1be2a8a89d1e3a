/* structured.h - which attention heads and FFN neurons a structured job keeps */
#ifndef PRUNERD_STRUCTURED_H
#define PRUNERD_STRUCTURED_H

#include <stddef.h>
#include <stdint.h>

#include "prune.h"

/*
 * The encoder as it is: per layer its heads and FFN width, and whether the
 * job's targets select it.  Heads and neurons are numbered over the layers
 * in order, layer 0's first (as ts_model_magnitude lays them out).
 */
struct structured_shape {
    int nlayers;
    const int *heads, *ffn;  /* per layer */
    const uint8_t *selected; /* per layer: 1 when it may be pruned */
    int hidden, head_size;
};

/* What the job asks for (the request's "structured" object, typed). */
struct structured_request {
    int has_heads, has_neurons; /* amounts; absent: none of that kind */
    struct prune_amount heads, neurons;
    int has_target;          /* target.macs instead of amounts */
    double macs;             /* keep this fraction of the encoder's MACs, (0, 1] */
    int seq_len;             /* L of the MACs formula */
    enum prune_scope scope;  /* PRUNE_GLOBAL: one ranking; local: per layer */
    int min_heads_per_layer; /* the most important ones stay, in selected layers */
};

/* The encoder's multiply-accumulates at sequence length L: the sum over
 * layers of heads * (4 L H d + 2 L^2 d) + ffn * 2 L H. */
int64_t structured_macs(int nlayers, const int *heads, const int *ffn, int seq_len, int hidden,
                        int head_size);

/*
 * Chooses what to keep (head_keep / neuron_keep: 1 kept, 0 removed), by
 * importance (higher is more important).  Ties: of two equal importances
 * the one numbered later is removed first.
 *   - Amounts, global: the amount (fraction of, or count among, the
 *     selected layers' heads or neurons, rounded as PyTorch rounds) of the
 *     least important, across layers.  Local: the amount of each selected
 *     layer's own (a count is per layer).
 *   - target.macs (global only): Kwon et al.'s search.  For every count of
 *     heads kept (the most important first), the neurons that fit in the
 *     rest of the budget (the most important first); the combination with
 *     the largest total importance wins, the one with more heads on a tie.
 *     What the budget cannot move (layers not selected, protected heads) is
 *     counted first.
 * min_heads_per_layer protects each selected layer's most important heads.
 * Returns 0, or ERR_INVALID with a message naming the request field
 * ("structured.heads: ...").
 */
int structured_select(const struct structured_shape *sh, const struct structured_request *rq,
                      const float *head_imp, const float *neuron_imp, uint8_t *head_keep,
                      uint8_t *neuron_keep, char *err, size_t errlen);

#endif
