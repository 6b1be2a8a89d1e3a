/* sparsity.c - how many weights are zero: model, targets, parameters, layers */
#include "sparsity.h"

#include <stdlib.h>

#include "err.h"
#include "targets.h"

static double ratio(int64_t zeros, int64_t numel)
{
    return numel ? (double)zeros / (double)numel : 0.0;
}

static json_t *shape_json(const struct ts_tensor_info *ti)
{
    json_t *a = json_array();
    for (int d = 0; d < ti->ndim; d++)
        json_array_append_new(a, json_integer(ti->shape[d]));
    return a;
}

struct layer_sum {
    long layer;
    int64_t numel, zeros;
};

static int by_layer(const void *a, const void *b)
{
    long x = ((const struct layer_sum *)a)->layer, y = ((const struct layer_sum *)b)->layer;
    return (x > y) - (x < y);
}

json_t *sparsity_compute(const struct ts_model *m, const size_t *targets, size_t ntargets,
                         char *err, size_t errlen)
{
    int64_t all_numel = 0, all_zeros = 0, t_numel = 0, t_zeros = 0;
    size_t count = ts_model_count(m), nlayers = 0;
    struct layer_sum *layers = calloc(ntargets ? ntargets : 1, sizeof *layers);
    json_t *params = json_array(), *res = NULL;
    if (err && errlen) err[0] = '\0';
    if (!layers || !params) goto fail;

    for (size_t i = 0; i < count; i++) {
        struct ts_tensor_info ti;
        int64_t zeros;
        if (ts_model_info(m, i, &ti) != 0) goto fail;
        if (!ti.is_parameter || !ts_dtype_is_float(ti.dtype)) continue;
        if (ts_model_count_zeros(m, i, &zeros, err, errlen) != 0) goto fail;
        all_numel += ti.numel;
        all_zeros += zeros;
    }
    for (size_t t = 0; t < ntargets; t++) {
        struct ts_tensor_info ti;
        int64_t zeros;
        if (ts_model_info(m, targets[t], &ti) != 0) goto fail;
        if (ts_model_count_zeros(m, targets[t], &zeros, err, errlen) != 0) goto fail;
        t_numel += ti.numel;
        t_zeros += zeros;
        json_array_append_new(params,
                              json_pack("{s:s, s:o, s:I, s:I, s:f}", "name", ti.name, "shape",
                                        shape_json(&ti), "numel", (json_int_t)ti.numel, "zeros",
                                        (json_int_t)zeros, "sparsity", ratio(zeros, ti.numel)));
        long layer = targets_layer_index(ti.name);
        if (layer < 0) continue;
        size_t l = 0;
        while (l < nlayers && layers[l].layer != layer)
            l++;
        if (l == nlayers) layers[nlayers++].layer = layer;
        layers[l].numel += ti.numel;
        layers[l].zeros += zeros;
    }
    qsort(layers, nlayers, sizeof *layers, by_layer);
    json_t *jl = json_array();
    for (size_t l = 0; l < nlayers; l++)
        json_array_append_new(
            jl, json_pack("{s:I, s:I, s:I, s:f}", "layer", (json_int_t)layers[l].layer, "numel",
                          (json_int_t)layers[l].numel, "zeros", (json_int_t)layers[l].zeros,
                          "sparsity", ratio(layers[l].zeros, layers[l].numel)));
    res = json_pack("{s:f, s:f, s:I, s:I, s:o, s:o}", "global", ratio(all_zeros, all_numel),
                    "targets", ratio(t_zeros, t_numel), "target_numel", (json_int_t)t_numel,
                    "target_zeros", (json_int_t)t_zeros, "parameters", params, "layers", jl);
    free(layers);
    return res;
fail:
    if (err && errlen && !err[0]) err_set(err, errlen, ERR_INTERNAL, "sparsity: failed");
    json_decref(params);
    free(layers);
    return NULL;
}
