/* inspect.h - a model's tensors as JSON (names, shapes, dtypes, sparsity) */
#ifndef PRUNERD_INSPECT_H
#define PRUNERD_INSPECT_H

#include <stddef.h>

#include <jansson.h>

/*
 * Loads the TorchScript model at path on the CPU and describes it:
 *   {"model": path, "parameters": n, "numel": n, "sparsity": global,
 *    "tensors": [{name, kind: parameter|buffer, shape, dtype, numel,
 *                 zeros, sparsity}]}
 * (zeros and sparsity for floating-point tensors only).  A new reference,
 * or NULL with a message.
 */
json_t *inspect_model(const char *path, char *err, size_t errlen);

#endif
