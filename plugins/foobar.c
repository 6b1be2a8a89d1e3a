/* foobar.c - example plugin: the PyTorch tutorial's FooBarPruningMethod */
#include <stddef.h>
#include <stdint.h>

#include "plugin.h"

/*
 * "Prune every other entry in a tensor": mask.view(-1)[::2] = 0 on top of
 * the default mask.  Like any unstructured method inside PyTorch's
 * PruningContainer it works on the entries still unpruned (default mask 1):
 * the first, third, ... of them get pruned.  On a fresh tensor (mask all 1)
 * that is exactly the even flat indices.  Takes no parameters.
 */
static int foobar_compute_mask(const float *w, const int64_t *shape, int ndim, uint8_t *mask,
                               const char *params_json, char *err, size_t errlen)
{
    int64_t numel = 1, seen = 0;

    (void)w;
    (void)params_json;
    (void)err;
    (void)errlen;
    for (int d = 0; d < ndim; d++)
        numel *= shape[d];
    for (int64_t i = 0; i < numel; i++) {
        if (!mask[i]) continue;
        if (seen++ % 2 == 0) mask[i] = 0;
    }
    return 0;
}

static const struct prunerd_plugin_v1 foobar = {
    .abi = PRUNERD_PLUGIN_ABI,
    .name = "foobar",
    .description = "prune every other unpruned entry (PyTorch tutorial FooBarPruningMethod)",
    .compute_mask = foobar_compute_mask,
};

const struct prunerd_plugin_v1 *prunerd_plugin(void);

const struct prunerd_plugin_v1 *prunerd_plugin(void)
{
    return &foobar;
}
