/* plugin.h - the pruning plugin ABI and its loader */
#ifndef PRUNERD_PLUGIN_H
#define PRUNERD_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

/*
 * A plugin is a shared object in the configured plugin directory, named
 * NAME.so, exporting `const struct prunerd_plugin_v1 *prunerd_plugin(void)`.
 * Raise PRUNERD_PLUGIN_ABI when the struct changes; the loader refuses any
 * other version.
 */
#define PRUNERD_PLUGIN_ABI 1

struct prunerd_plugin_v1 {
    uint32_t abi; /* PRUNERD_PLUGIN_ABI */
    const char *name;
    const char *description;
    /*
     * Fills mask (numel bytes, row-major): 1 keep, 0 prune.  mask arrives
     * holding the default mask (all 1, or 0 where iterative pruning already
     * removed a weight); the result is combined with it.  params_json is the
     * job's plugin_params ("null" when absent).  Returns 0, or non-zero with
     * a message in err.
     */
    int (*compute_mask)(const float *w, const int64_t *shape, int ndim, uint8_t *mask,
                        const char *params_json, char *err, size_t errlen);
};

typedef const struct prunerd_plugin_v1 *(*prunerd_plugin_fn)(void);

struct plugin_handle;

/*
 * Opens dir/NAME.so.  name must be [A-Za-z0-9_-]+ and the resolved file
 * must lie in dir (no symlink out).  Returns NULL with a message on failure.
 */
struct plugin_handle *plugin_open(const char *dir, const char *name, char *err, size_t errlen);
const struct prunerd_plugin_v1 *plugin_api(const struct plugin_handle *h);
void plugin_close(struct plugin_handle *h);

#endif
