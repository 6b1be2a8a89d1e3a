/* targets.c - which parameters a list of target globs names */
#include "targets.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

/* Matches name itself, or, for NAME.weight, the module NAME. */
static int glob_matches(const char *glob, const char *name)
{
    if (fnmatch(glob, name, 0) == 0) return 1;
    size_t len = strlen(name), wl = strlen(".weight");
    if (len <= wl || strcmp(name + len - wl, ".weight") != 0) return 0;
    char *module = strndup(name, len - wl);
    int hit = module && fnmatch(glob, module, 0) == 0;
    free(module);
    return hit;
}

int targets_resolve(const struct ts_model *m, char *const *globs, size_t nglobs, size_t **idx,
                    size_t *n, long *bad, char *err, size_t errlen)
{
    size_t count = ts_model_count(m), k = 0;
    size_t *out = malloc((count ? count : 1) * sizeof *out);
    char *hit = calloc(nglobs ? nglobs : 1, 1);
    int rc = 0;
    *bad = -1;
    if (!out || !hit) {
        rc = err_set(err, errlen, ERR_NOMEM, "targets: out of memory");
        goto out;
    }
    for (size_t i = 0; i < count; i++) {
        struct ts_tensor_info ti;
        if (ts_model_info(m, i, &ti) != 0) {
            rc = err_set(err, errlen, ERR_INTERNAL, "tensor %zu: no info", i);
            goto out;
        }
        if (!ti.is_parameter) continue;
        int matched = 0;
        for (size_t g = 0; g < nglobs; g++) {
            if (!glob_matches(globs[g], ti.name)) continue;
            hit[g] = 1;
            if (!matched && !ts_dtype_is_float(ti.dtype)) {
                *bad = (long)g;
                rc = err_set(err, errlen, ERR_INVALID, "%s is %s, not a floating-point parameter",
                             ti.name, ts_dtype_name(ti.dtype));
                goto out;
            }
            matched = 1;
        }
        if (matched) out[k++] = i;
    }
    for (size_t g = 0; g < nglobs; g++) {
        if (hit[g]) continue;
        *bad = (long)g;
        rc = err_set(err, errlen, ERR_INVALID, "'%s' matches no parameter of the model", globs[g]);
        goto out;
    }
    *idx = out;
    *n = k;
    out = NULL;
out:
    free(out);
    free(hit);
    return rc;
}

long targets_layer_index(const char *name)
{
    const char *p = strstr(name, "layer.");
    while (p) {
        if (p == name || p[-1] == '.') {
            char *end;
            long v = strtol(p + 6, &end, 10);
            if (end != p + 6 && (*end == '.' || *end == '\0') && v >= 0) return v;
        }
        p = strstr(p + 1, "layer.");
    }
    return -1;
}

int targets_layers(const struct ts_model *m, char *const *globs, size_t nglobs, int nlayers,
                   uint8_t *selected, long *bad, char *err, size_t errlen)
{
    size_t count = ts_model_count(m);
    char name[1024];
    *bad = -1;
    memset(selected, 0, (size_t)nlayers);
    for (size_t g = 0; g < nglobs; g++) {
        int hit = 0;
        for (size_t i = 0; i < count; i++) {
            struct ts_tensor_info ti;
            if (ts_model_info(m, i, &ti) != 0) continue;
            long l = targets_layer_index(ti.name);
            if (l < 0 || l >= nlayers) continue;
            /* the name and each module above it, down to the layer itself */
            snprintf(name, sizeof name, "%s", ti.name);
            char *dot = name;
            while (dot && targets_layer_index(name) == l) {
                if (fnmatch(globs[g], name, 0) == 0) {
                    selected[l] = 1;
                    hit = 1;
                    break;
                }
                if ((dot = strrchr(name, '.'))) *dot = '\0';
            }
        }
        if (!hit) {
            *bad = (long)g;
            return err_set(err, errlen, ERR_INVALID,
                           "'%s' names no encoder layer (nor a module or parameter in one)",
                           globs[g]);
        }
    }
    return 0;
}
