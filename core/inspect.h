/* inspect.h - describe a TorchScript model's parameters and buffers */
#ifndef PRUNERD_INSPECT_H
#define PRUNERD_INSPECT_H

#include <stddef.h>

#include <jansson.h>

/*
 * Loads the model at path (already resolved and allowed) on the CPU and
 * returns {"path", "parameters": [{"name", "shape", "dtype", "numel",
 * "zeros", "sparsity", "kind": "parameter"|"buffer"}], "parameter_count",
 * "total_numel"} (caller decrefs), or NULL with a message and *code set to
 * an ERR_* (ERR_FORMAT: not TorchScript, ERR_UNSUPPORTED: frozen, ...).
 */
json_t *model_inspect(const char *path, int *code, char *err, size_t errlen);

#endif
