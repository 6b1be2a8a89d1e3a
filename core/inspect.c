/* inspect.c - a model's tensors as JSON (names, shapes, dtypes, sparsity) */
#include "inspect.h"

#include "err.h"
#include "torch_shim.h"

json_t *inspect_model(const char *path, char *err, size_t errlen)
{
    struct ts_model *m = ts_model_load(path, "cpu", err, errlen);
    if (!m) return NULL;
    json_t *tensors = json_array();
    int64_t numel = 0, zeros_all = 0, fnumel = 0;
    size_t nparams = 0, count = ts_model_count(m);
    for (size_t i = 0; i < count; i++) {
        struct ts_tensor_info ti;
        int64_t zeros = 0;
        if (ts_model_info(m, i, &ti) != 0) continue;
        json_t *shape = json_array();
        for (int d = 0; d < ti.ndim; d++) json_array_append_new(shape, json_integer(ti.shape[d]));
        json_t *t = json_pack("{s:s, s:s, s:o, s:s, s:I}", "name", ti.name, "kind",
                              ti.is_parameter ? "parameter" : "buffer", "shape", shape, "dtype",
                              ts_dtype_name(ti.dtype), "numel", (json_int_t)ti.numel);
        if (ts_dtype_is_float(ti.dtype) && ts_model_count_zeros(m, i, &zeros, err, errlen) == 0) {
            json_object_set_new(t, "zeros", json_integer(zeros));
            json_object_set_new(t, "sparsity", json_real(ti.numel ? (double)zeros / (double)ti.numel : 0));
            if (ti.is_parameter) {
                fnumel += ti.numel;
                zeros_all += zeros;
            }
        }
        if (ti.is_parameter) {
            nparams++;
            numel += ti.numel;
        }
        json_array_append_new(tensors, t);
    }
    ts_model_destroy(m);
    return json_pack("{s:s, s:I, s:I, s:f, s:o}", "model", path, "parameters", (json_int_t)nparams,
                     "numel", (json_int_t)numel, "sparsity",
                     fnumel ? (double)zeros_all / (double)fnumel : 0.0, "tensors", tensors);
}
