/* plugin.c - loads pruning plugins (dir/NAME.so) and checks their ABI */
#include "plugin.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "err.h"

#define PLUGIN_NAME_MAX 64

struct plugin_handle {
    void *dl;                            /* dlopen handle */
    const struct prunerd_plugin_v1 *api; /* owned by the shared object */
};

static int name_ok(const char *name)
{
    size_t n = 0;
    if (!name) return 0;
    for (const char *c = name; *c; c++, n++) {
        int ok = (*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
                 *c == '_' || *c == '-';
        if (!ok) return 0;
    }
    return n > 0 && n <= PLUGIN_NAME_MAX;
}

struct plugin_handle *plugin_open(const char *dir, const char *name, char *err, size_t errlen)
{
    char *rdir = NULL, *rfile = NULL, path[PATH_MAX];
    struct plugin_handle *h = NULL;
    void *dl = NULL;
    struct stat st;

    if (!name_ok(name)) {
        err_set(err, errlen, ERR_INVALID,
                "plugin name '%s' is not allowed: use 1 to %d of [A-Za-z0-9_-]",
                name ? name : "(null)", PLUGIN_NAME_MAX);
        goto fail;
    }
    if (!dir || !(rdir = realpath(dir, NULL))) {
        err_set(err, errlen, ERR_NOTFOUND, "plugin dir '%s': %s", dir ? dir : "(null)",
                strerror(dir ? errno : EINVAL));
        goto fail;
    }
    if (snprintf(path, sizeof path, "%s/%s.so", rdir, name) >= (int)sizeof path) {
        err_set(err, errlen, ERR_INVALID, "plugin path too long");
        goto fail;
    }
    if (!(rfile = realpath(path, NULL))) {
        err_set(err, errlen, ERR_NOTFOUND, "plugin '%s' not found in %s", name, rdir);
        goto fail;
    }
    /* no symlink (or anything else) may lead out of the plugin dir */
    size_t nd = strlen(rdir);
    if (strncmp(rfile, rdir, nd) || (rfile[nd] != '/' && strcmp(rdir, "/"))) {
        err_set(err, errlen, ERR_DENIED, "plugin '%s' resolves to %s, outside %s", name, rfile,
                rdir);
        goto fail;
    }
    if (stat(rfile, &st) || !S_ISREG(st.st_mode)) {
        err_set(err, errlen, ERR_INVALID, "plugin '%s' is not a regular file", name);
        goto fail;
    }
    dl = dlopen(rfile, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        err_set(err, errlen, ERR_FORMAT, "plugin '%s': %s", name, dlerror());
        goto fail;
    }
    prunerd_plugin_fn fn;
    void *sym = dlsym(dl, "prunerd_plugin");
    memcpy(&fn, &sym, sizeof fn); /* POSIX: object to function pointer */
    if (!sym) {
        err_set(err, errlen, ERR_FORMAT, "plugin '%s' does not export prunerd_plugin", name);
        goto fail;
    }
    const struct prunerd_plugin_v1 *api = fn();
    if (!api || api->abi != PRUNERD_PLUGIN_ABI) {
        err_set(err, errlen, ERR_FORMAT, "plugin '%s' has ABI %u, prunerd needs %d", name,
                api ? (unsigned)api->abi : 0u, PRUNERD_PLUGIN_ABI);
        goto fail;
    }
    if (!api->compute_mask) {
        err_set(err, errlen, ERR_FORMAT, "plugin '%s' has no compute_mask", name);
        goto fail;
    }
    h = malloc(sizeof *h);
    if (!h) {
        err_set(err, errlen, ERR_NOMEM, "out of memory");
        goto fail;
    }
    h->dl = dl;
    h->api = api;
    free(rdir);
    free(rfile);
    return h;
fail:
    if (dl) dlclose(dl);
    free(rdir);
    free(rfile);
    return NULL;
}

const struct prunerd_plugin_v1 *plugin_api(const struct plugin_handle *h)
{
    return h ? h->api : NULL;
}

void plugin_close(struct plugin_handle *h)
{
    if (!h) return;
    dlclose(h->dl);
    free(h);
}
