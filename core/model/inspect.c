/* inspect.c - a model's tensors as JSON (format, architecture, shapes, dtypes, sparsity) */
#include "inspect.h"

#include <string.h>

#include "bert_config.h"
#include "err.h"
#include "torch_shim.h"

static json_t *architecture(const struct ts_model *m)
{
    const struct bert_config *c = ts_model_config(m);
    json_t *layers = json_array();
    for (int i = 0; i < ts_model_layers(m); i++) {
        int heads = 0, ffn = 0;
        ts_model_layer_shape(m, i, &heads, &ffn);
        json_array_append_new(layers, json_pack("{s:i, s:i}", "heads", heads, "ffn", ffn));
    }
    return json_pack("{s:s, s:s, s:i, s:i, s:s, s:o}", "type", "bert", "head", ts_model_head(m),
                     "labels", ts_model_labels(m), "hidden_size", c->hidden_size, "hidden_act",
                     bert_act_name(c->hidden_act), "layers", layers);
}

json_t *inspect_model(const char *path, const char *model_config, ckpt_resolve_fn resolve, void *ud,
                      int *rc, char *err, size_t errlen)
{
    struct ckpt_files files;
    struct ts_model *m = NULL;
    int code = ckpt_locate(path, model_config, resolve, ud, &files, err, errlen);
    if (!code) code = ckpt_open(&files, "cpu", &m, err, errlen);
    if (code) {
        ckpt_files_free(&files);
        if (rc) *rc = code;
        return NULL;
    }
    json_t *tensors = json_array();
    int64_t numel = 0, zeros_all = 0, fnumel = 0;
    size_t nparams = 0, count = ts_model_count(m);
    const char *dtype = NULL;
    for (size_t i = 0; i < count; i++) {
        struct ts_tensor_info ti;
        int64_t zeros = 0;
        if (ts_model_info(m, i, &ti) != 0) continue;
        const char *dt = ts_dtype_name(ts_model_file_dtype(m, i));
        json_t *shape = json_array();
        for (int d = 0; d < ti.ndim; d++)
            json_array_append_new(shape, json_integer(ti.shape[d]));
        json_t *t = json_pack("{s:s, s:s, s:o, s:s, s:I}", "name", ti.name, "kind",
                              ti.is_parameter ? "parameter" : "buffer", "shape", shape, "dtype", dt,
                              "numel", (json_int_t)ti.numel);
        if (ts_dtype_is_float(ti.dtype) && ts_model_count_zeros(m, i, &zeros, err, errlen) == 0) {
            json_object_set_new(t, "zeros", json_integer(zeros));
            json_object_set_new(t, "sparsity",
                                json_real(ti.numel ? (double)zeros / (double)ti.numel : 0));
            if (ti.is_parameter) {
                fnumel += ti.numel;
                zeros_all += zeros;
            }
        }
        if (ti.is_parameter) {
            nparams++;
            numel += ti.numel;
            dtype = !dtype || !strcmp(dtype, dt) ? dt : "mixed";
        }
        json_array_append_new(tensors, t);
    }
    json_t *out =
        json_pack("{s:s, s:s, s:s, s:I, s:I, s:f, s:o}", "model", path, "format",
                  ckpt_kind_name(files.kind), "dtype", dtype ? dtype : "none", "parameters",
                  (json_int_t)nparams, "numel", (json_int_t)numel, "sparsity",
                  fnumel ? (double)zeros_all / (double)fnumel : 0.0, "tensors", tensors);
    if (ts_model_is_native(m)) json_object_set_new(out, "architecture", architecture(m));
    ts_model_destroy(m);
    ckpt_files_free(&files);
    return out;
}
