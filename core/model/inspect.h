/* inspect.h - a model's tensors as JSON (format, architecture, shapes, dtypes, sparsity) */
#ifndef PRUNERD_INSPECT_H
#define PRUNERD_INSPECT_H

#include <stddef.h>

#include <jansson.h>

#include "checkpoint.h"

/*
 * Loads the model at path (any format model/checkpoint.h reads; model_config
 * as a job's, or NULL; every file through resolve) on the CPU and describes
 * it:
 *   {"model": path, "format": "torchscript"|"state_dict"|"safetensors"|"hf_folder",
 *    "dtype": the parameters' dtype ("mixed" when they differ),
 *    "architecture": {"type": "bert", "head": "classifier"|"fc", "labels",
 *                     "hidden_size", "hidden_act", "layers": [{heads, ffn}]} (native only),
 *    "parameters": n, "numel": n, "sparsity": global,
 *    "tensors": [{name, kind: parameter|buffer, shape, dtype, numel,
 *                 zeros, sparsity}]}
 * (zeros and sparsity for floating-point tensors only; dtype as saved).  A
 * new reference, or NULL with a message and the code in *rc.
 */
json_t *inspect_model(const char *path, const char *model_config, ckpt_resolve_fn resolve, void *ud,
                      int *rc, char *err, size_t errlen);

#endif
