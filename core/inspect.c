/* inspect.c - describe a TorchScript model's parameters and buffers */
#include "inspect.h"

#include "err.h"
#include "torch_shim.h"

json_t *model_inspect(const char *path, int *code, char *err, size_t errlen)
{
    struct ts_model *m = ts_model_load(path, "cpu", err, errlen);
    json_t *list = NULL, *out = NULL;
    int64_t total = 0, nparams = 0;

    *code = ERR_OK;
    if (!m) {
        /* The shim's message says why; the code is not returned by a constructor. */
        *code = ERR_FORMAT;
        return NULL;
    }
    if (!(list = json_array())) goto oom;
    for (size_t i = 0; i < ts_model_count(m); i++) {
        struct ts_tensor_info ti;
        int64_t zeros = 0;
        char zerr[128];
        if (ts_model_info(m, i, &ti)) continue;
        json_t *shape = json_array();
        for (int d = 0; d < ti.ndim; d++)
            json_array_append_new(shape, json_integer(ti.shape[d]));
        json_t *e = json_pack("{s:s, s:o, s:s, s:I, s:s}", "name", ti.name, "shape", shape, "dtype",
                              ts_dtype_name(ti.dtype), "numel", (json_int_t)ti.numel, "kind",
                              ti.is_parameter ? "parameter" : "buffer");
        if (!e) goto oom;
        if (ts_dtype_is_float(ti.dtype) && !ts_model_count_zeros(m, i, &zeros, zerr, sizeof zerr)) {
            json_object_set_new(e, "zeros", json_integer(zeros));
            json_object_set_new(e, "sparsity",
                                json_real(ti.numel ? (double)zeros / (double)ti.numel : 0.0));
        }
        json_array_append_new(list, e);
        if (ti.is_parameter) {
            nparams++;
            total += ti.numel;
        }
    }
    out = json_pack("{s:s, s:s, s:O, s:I, s:I}", "path", path, "device", ts_model_device(m),
                    "parameters", list, "parameter_count", (json_int_t)nparams, "total_numel",
                    (json_int_t)total);
    if (!out) goto oom;
    json_decref(list);
    ts_model_destroy(m);
    return out;
oom:
    json_decref(list);
    ts_model_destroy(m);
    *code = err_set(err, errlen, ERR_NOMEM, "out of memory");
    return NULL;
}
