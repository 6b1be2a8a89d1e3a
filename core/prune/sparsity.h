/* sparsity.h - how many weights are zero: model, targets, parameters, layers */
#ifndef PRUNERD_SPARSITY_H
#define PRUNERD_SPARSITY_H

#include <stddef.h>

#include <jansson.h>

#include "torch_shim.h"

/*
 * The report's "sparsity" object:
 *   global      zeros / numel over every floating-point parameter of the model
 *   targets     zeros / numel over the targets
 *   parameters  [{name, shape, numel, zeros, sparsity}] one per target
 *   layers      [{layer, numel, zeros, sparsity}] one per encoder layer index
 *               found in the target names, ascending
 * Returns a new reference, or NULL with a message.
 */
json_t *sparsity_compute(const struct ts_model *m, const size_t *targets, size_t ntargets,
                         char *err, size_t errlen);

#endif
