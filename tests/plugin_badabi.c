/* plugin_badabi.c - a test plugin with a wrong ABI version, which the loader must refuse */
#include <stddef.h>
#include <stdint.h>

#include "plugin.h"

static int badabi_compute_mask(const float *w, const int64_t *shape, int ndim, uint8_t *mask,
                               const char *params_json, char *err, size_t errlen)
{
    (void)w, (void)shape, (void)ndim, (void)mask, (void)params_json, (void)err, (void)errlen;
    return 0;
}

static const struct prunerd_plugin_v1 badabi = {
    .abi = PRUNERD_PLUGIN_ABI + 98,
    .name = "badabi",
    .description = "wrong ABI on purpose",
    .compute_mask = badabi_compute_mask,
};

const struct prunerd_plugin_v1 *prunerd_plugin(void);

const struct prunerd_plugin_v1 *prunerd_plugin(void)
{
    return &badabi;
}
