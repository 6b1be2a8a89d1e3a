/* sweep.h - a sensitivity sweep: each group of targets pruned by each amount on its own */
#ifndef PRUNERD_SWEEP_H
#define PRUNERD_SWEEP_H

#include <stddef.h>
#include <stdint.h>

#include "torch_shim.h"

/*
 * DESIGN
 * A sweep measures, for each group of a model's targets and each amount,
 * the accuracy of the model with only that group pruned by that amount.
 * The model is loaded and its evaluation inputs tokenized once (job.c);
 * each point sets the group's own tensors aside (ts_model_keep), prunes
 * them, is evaluated, and puts them back bit for bit (ts_model_put_back),
 * so no point sees another's pruning and the whole model is never copied.
 *
 *   - Unstructured (l1_unstructured): a group is the targets of one
 *     encoder layer (group "layer"; a target outside the layers is a group
 *     of its own) or one parameter (group "parameter"); a point prunes
 *     each of its tensors by the amount on its own, as a job with scope
 *     local on those tensors does.
 *   - Structured: each selected layer gives two groups, its heads and its
 *     FFN neurons; a point removes that fraction of the layer's heads (or
 *     neurons) by magnitude, as a structured job with scope local on that
 *     layer does, and the shrunk layer is put back after.
 */

struct sweep_group {
    char *name;      /* "bert.encoder.layer.3", a parameter name, or "...layer.3.heads" */
    size_t *tensors; /* model indices: the tensors pruned (unstructured) or set aside */
    size_t ntensors;
    int64_t numel; /* unstructured: the weights the group holds */
    int layer;     /* structured: the encoder layer; -1 otherwise */
    int neurons;   /* structured: 1 the FFN neurons, 0 the heads */
};

/*
 * The groups of the targets (model indices, in model order) of m:
 * by_parameter one per target, else one per encoder layer (in layer order,
 * then the targets outside the layers, each its own).  *out is malloc'd
 * (sweep_groups_free).  Returns 0 or ERR_NOMEM.
 */
int sweep_groups_unstructured(const struct ts_model *m, const size_t *targets, size_t ntargets,
                              int by_parameter, struct sweep_group **out, size_t *ngroups,
                              char *err, size_t errlen);

/* Structured: the heads and neurons groups of every selected layer of a
 * native model, each holding the layer's tensors. */
int sweep_groups_structured(const struct ts_model *m, const uint8_t *selected, int nlayers,
                            struct sweep_group **out, size_t *ngroups, char *err, size_t errlen);

void sweep_groups_free(struct sweep_group *g, size_t n);

/*
 * Prunes group g of m by amount (a fraction): l1_unstructured with scope
 * local on each tensor, or (structured groups) that fraction of the
 * layer's heads or neurons, the least important by head_imp / neuron_imp
 * (laid out as ts_model_magnitude's) removed.  The caller keeps the
 * group's tensors first and puts them back after.  Returns 0 or an ERR_*
 * code with a message.
 */
int sweep_prune(struct ts_model *m, const struct sweep_group *g, double amount,
                const float *head_imp, const float *neuron_imp, int threads, char *err,
                size_t errlen);

/*
 * The recommendation: per-group amounts (out[ng], fractions) whose pruned
 * weights, sum of out[g] * numel[g], are sparsity of all the groups'
 * weights, chosen to minimise the accuracy lost as the measured curves
 * predict.  acc[g * na + k] is group g's accuracy at amounts[k]
 * (increasing); dense the model's.  Each curve is read as its lower convex
 * hull over (0, dense) and the measured points (a loss that can only grow
 * as fast as measured), and weights go greedily to the hull segment with
 * the least loss per weight, the last one in part.  *predicted gets the
 * predicted accuracy: dense less the sum of the groups' predicted losses.
 * sparsity must be in (0, amounts[na - 1]]; ERR_INVALID otherwise.
 */
int sweep_recommend(const int64_t *numel, size_t ng, const double *amounts, size_t na,
                    const double *acc, double dense, double sparsity, double *out,
                    double *predicted, char *err, size_t errlen);

#endif
