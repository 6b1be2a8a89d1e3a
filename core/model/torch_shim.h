/* torch_shim.h - C API over libtorch: models (TorchScript or native BERT), tensors, forward, save
 */
#ifndef PRUNERD_TORCH_SHIM_H
#define PRUNERD_TORCH_SHIM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * No C++ type and no exception crosses this header: every call returns 0 or a
 * negative ERR_* code (core/err.h) with a message in (err, errlen), or NULL
 * for constructors.  A struct ts_model is used by one thread at a time.
 */

#define TS_MAX_DIMS 8

enum ts_dtype {
    TS_FLOAT32,
    TS_FLOAT16,
    TS_BFLOAT16,
    TS_FLOAT64,
    TS_INT64,
    TS_INT32,
    TS_INT16,
    TS_INT8,
    TS_UINT8,
    TS_BOOL,
    TS_OTHER,
};

struct ts_tensor_info {
    const char *name; /* owned by the model or dict, valid until destroy */
    int ndim;         /* 0..TS_MAX_DIMS */
    int64_t shape[TS_MAX_DIMS];
    int64_t numel;
    enum ts_dtype dtype;
    int is_parameter; /* 1 parameter, 0 buffer (models); 1 for dict entries */
    int is_cuda;      /* lives on a CUDA device */
};

struct ts_model; /* a loaded model: a TorchScript module or a native BERT classifier */
struct ts_dict;  /* a loaded state_dict-style file: name -> tensor */

/* Library facts. Strings are static. */
const char *ts_libtorch_version(void); /* e.g. "1.13.1" */
int ts_cuda_available(void);           /* 1 when libtorch has CUDA and a device is there */
/* 1 when CUDA is compiled into the linked libtorch, writing its CUDA runtime
 * version ("13.0") into version; 0 (version "") when not. */
int ts_cuda_compiled(char *version, size_t len);
int ts_cuda_device_count(void); /* CUDA devices the driver shows; 0 without CUDA */
/* Returns the CUDA caching allocator's unused blocks to the driver (after a
 * job, after out-of-memory); a no-op without CUDA devices. */
void ts_cuda_empty_cache(void);
int ts_dtype_is_float(enum ts_dtype dt);
const char *ts_dtype_name(enum ts_dtype dt); /* "float32", "float16", ... */

/* Intra-op threads for this process (at::set_num_threads); n <= 0 leaves it. */
void ts_set_threads(int n);
int ts_get_threads(void);

/*
 * Loads a TorchScript archive (torch.jit.save output) onto device "cpu",
 * "cuda" or "cuda:N".  A frozen module (no parameters) is refused with
 * ERR_UNSUPPORTED; a file that is no TorchScript archive with ERR_FORMAT;
 * a CUDA device that is not there with ERR_UNSUPPORTED.  Returns 0 with
 * *out set (free with ts_model_destroy), or ERR_NOTFOUND / ERR_IO (file),
 * ERR_INVALID (device string), ERR_FORMAT, ERR_UNSUPPORTED, ERR_NOMEM,
 * ERR_TORCH with *out NULL.
 */
int ts_model_open(const char *path, const char *device, struct ts_model **out, char *err,
                  size_t errlen);
void ts_model_destroy(struct ts_model *m);

struct bert_config; /* model/bert_config.h */

/*
 * Builds a native BERT sequence classifier (model/bert.cpp) from weight
 * files: each a safetensors file or a torch.save zip of a state_dict (by
 * content), shards of one checkpoint in the order given.  Names may carry
 * the "bert." prefix or none; the head (classifier.* or fc.*) is found by
 * name and the label count read off its shape; an old checkpoint's
 * embeddings.position_ids / token_type_ids buffers are dropped.  Weights
 * are held as float32 (float16 and bfloat16 are widened, and saved back in
 * the dtype they came in); a float32 safetensors tensor on the CPU stays in
 * the file's private mapping (no second copy).  Missing, unexpected or
 * mis-shaped tensors are one ERR_FORMAT naming them.  Devices as
 * ts_model_open.  With c NULL the files are only read and checked, then
 * ERR_NOTFOUND ("no config").
 */
int ts_model_open_native(const char *const *weights, size_t nweights, const struct bert_config *c,
                         const char *device, struct ts_model **out, char *err, size_t errlen);

/* 1 for a native model, 0 for TorchScript. */
int ts_model_is_native(const struct ts_model *m);
/* Native models: the head ("classifier" or "fc"), the label count, the
 * layer count and each layer's heads and FFN width; the config it was
 * built with.  NULL / 0 / ERR_INVALID for TorchScript. */
const char *ts_model_head(const struct ts_model *m);
int ts_model_labels(const struct ts_model *m);
int ts_model_layers(const struct ts_model *m);
int ts_model_layer_shape(const struct ts_model *m, int layer, int *heads, int *ffn);
/* The heads and FFN neurons of all layers together (0 and 0 for TorchScript). */
void ts_model_units(const struct ts_model *m, size_t *heads, size_t *neurons);
const struct bert_config *ts_model_config(const struct ts_model *m);
/*
 * Structured pruning of a native model.  Heads are counted over the layers
 * in order (layer 0's heads first), and so are FFN neurons (as
 * ts_model_layer_shape gives them).  ts_model_magnitude writes each head's
 * L2 norm over its Q, K, V rows and its attention.output.dense columns,
 * and each neuron's over its intermediate.dense row and output.dense
 * column.  ts_model_shrink removes the heads and neurons whose keep byte is
 * 0 from the tensors themselves (as transformers' prune_heads and
 * prune_linear_layer do): the model becomes smaller, and its tensors'
 * shapes and count stay names-for-names.  ERR_UNSUPPORTED for TorchScript.
 */
int ts_model_magnitude(const struct ts_model *m, float *heads, float *neurons, char *err,
                       size_t errlen);
int ts_model_shrink(struct ts_model *m, const uint8_t *heads_keep, const uint8_t *neurons_keep,
                    char *err, size_t errlen);
/*
 * Importance from gradients: for each batch of batch rows of ids / mask
 * (int64 [n, len], row-major, on the CPU), of the cross-entropy loss (mean
 * over the batch) against labels (int64 [n]; NULL: the dense model's own
 * predictions); laid out as ts_model_magnitude's.
 *   TS_FISHER: the squared gradient with respect to a mask of ones on every
 *     head's context and every FFN neuron's activation, summed over the
 *     batches (Kwon et al. 2022; Michel et al. 2019 take |dL/dmask|);
 *   TS_TAYLOR: |sum of gradient x weight| over the weights
 *     ts_model_magnitude reads, the gradient summed over the batches
 *     (TextPruner).
 * progress(ud, done) is called after each batch and stops the pass with
 * ERR_CANCELLED when it returns non-zero.
 */
enum ts_importance { TS_FISHER, TS_TAYLOR };
int ts_model_importance(struct ts_model *m, enum ts_importance kind, const int64_t *ids,
                        const int64_t *mask, const int64_t *labels, int64_t n, int64_t len,
                        int batch, float *heads, float *neurons,
                        int (*progress)(void *ud, double done), void *ud, char *err, size_t errlen);
/*
 * Kwon et al.'s mask rescaling ("mask tuning") for the heads and neurons
 * whose keep byte is 1, on the dense model before ts_model_shrink: layer by
 * layer, the factors that bring the pruned layer's output closest, in least
 * squares over the calibration tokens (ids / mask as ts_model_importance's,
 * in batches of batch), to the dense model's.  Layer 0's heads keep 1, and
 * the last layer's neurons are fitted on the first token only.  A layer
 * whose system has no finite solution or a factor beyond +-10 stops the
 * pass there: it and the layers after it keep 1.  Factors go to
 * head_scale / neuron_scale (laid out as the keep bytes; 0 where removed),
 * and *stop says how far it got.  ts_model_scale multiplies each head's
 * attention.output.dense columns and each neuron's output.dense column by
 * its factor, laid out by the model's current heads and neurons.
 */
struct ts_rescale_stop {
    int layers;     /* layers done */
    int layer;      /* -1: all done; else where it stopped */
    int neurons;    /* 0: at the layer's heads, 1: at its neurons */
    int reason;     /* 1: no finite solution, 2: a factor beyond +-10 */
    double max_abs; /* reason 2: the largest |factor| */
};
int ts_model_rescale(struct ts_model *m, const int64_t *ids, const int64_t *mask, int64_t n,
                     int64_t len, int batch, const uint8_t *heads_keep, const uint8_t *neurons_keep,
                     float *head_scale, float *neuron_scale, struct ts_rescale_stop *stop,
                     int (*progress)(void *ud, double done), void *ud, char *err, size_t errlen);
int ts_model_scale(struct ts_model *m, const float *head_scale, const float *neuron_scale,
                   char *err, size_t errlen);
/*
 * Training a native model (model/train.cpp): AdamW on every parameter with
 * the gradients of held entries masked and the entries set to zero again
 * after each update, the gradients clipped to a global 2-norm, the loss
 * cross-entropy or, with a teacher, (1 - alpha) CE + alpha T^2 KL(teacher
 * || student) as PyTorch computes them.  A trainer uses the model's own
 * tensors: between steps the model evaluates, prunes and saves as usual
 * (with none of them mapped during a step).  Dropout draws from libtorch's
 * default generator, seeded with seed at open and seed + step at load.
 */
struct ts_train_opts {
    double weight_decay;      /* decoupled; not on biases and LayerNorm parameters */
    double beta1, beta2, eps; /* AdamW's: 0.9, 0.999, 1e-8 */
    double max_grad_norm;     /* <= 0: no clipping */
    int dropout;              /* 1: the config's dropout probabilities; 0: none */
    double distill_alpha;     /* with a teacher: the KL term's weight in [0, 1] */
    double distill_temperature;
    uint64_t seed;
};
struct ts_trainer;
/* A copy of a native model's tensors (a teacher); ERR_UNSUPPORTED for TorchScript. */
int ts_model_clone(const struct ts_model *m, struct ts_model **out, char *err, size_t errlen);
/* A trainer on m (and teacher, may be NULL), neither owned; both must
 * outlive it.  ERR_UNSUPPORTED for TorchScript. */
int ts_trainer_open(struct ts_model *m, struct ts_model *teacher, const struct ts_train_opts *o,
                    struct ts_trainer **out, char *err, size_t errlen);
void ts_trainer_destroy(struct ts_trainer *t);
/* The zeros of tensors idx[0..n) of the model, as they are now, are held
 * at zero from here on (replacing what was held for those tensors). */
int ts_trainer_hold(struct ts_trainer *t, const size_t *idx, size_t n, char *err, size_t errlen);
/* One optimizer step at learning rate lr on int64 ids / mask [batch, len]
 * and labels [batch] (on the CPU); *loss is the step's loss before the
 * update.  A loss that is not finite is ERR_INVALID (after the update). */
int ts_trainer_step(struct ts_trainer *t, const int64_t *ids, const int64_t *mask,
                    const int64_t *labels, int64_t batch, int64_t len, double lr, double *loss,
                    char *err, size_t errlen);
int64_t ts_trainer_steps(const struct ts_trainer *t); /* steps taken, loads included */
/* The parameters, both moments, the held masks and the step count as a
 * safetensors file at path (exactly there; the caller renames), with meta
 * (key, value, ..., NULL) added to __metadata__ ("trainer_step" is the
 * trainer's).  ts_trainer_load puts such a file back, checking every
 * tensor before writing any. */
int ts_trainer_save(struct ts_trainer *t, const char *path, const char *const *meta, char *err,
                    size_t errlen);
int ts_trainer_load(struct ts_trainer *t, const char *path, char *err, size_t errlen);

/* The dtype tensor i is saved in (a native model's file dtype; a
 * TorchScript tensor's own). */
enum ts_dtype ts_model_file_dtype(const struct ts_model *m, size_t i);

/* Named parameters, then named buffers, recursively, in module order (the
 * order of named_parameters() / named_buffers() in Python), names with dots. */
size_t ts_model_count(const struct ts_model *m);
int ts_model_info(const struct ts_model *m, size_t i, struct ts_tensor_info *out);
/* Index of the tensor with this name, or -1. */
long ts_model_find(const struct ts_model *m, const char *name);

/*
 * Float32 view of tensor i for reading and writing in place.  A contiguous
 * float32 CPU tensor hands out its own storage (no copy).  Anything else
 * floating (float16, bfloat16, float64, CUDA, non-contiguous) gets a float32
 * CPU copy owned by the model; ts_model_unmap_f32 writes it back (when
 * write_back is set) and frees it.  Every map must be unmapped.  Non-float
 * tensors are refused with ERR_INVALID.
 */
int ts_model_map_f32(struct ts_model *m, size_t i, float **data, char *err, size_t errlen);
int ts_model_unmap_f32(struct ts_model *m, size_t i, int write_back, char *err, size_t errlen);

/*
 * Tensors set aside and put back bit for bit (a sweep's restore).
 * ts_model_keep copies tensors idx[0..n) of m, on their device and in their
 * dtype, into *out (caller frees with ts_kept_destroy; NULL on failure).
 * ts_model_put_back writes them back: in place where the tensor's shape is
 * unchanged, else (a native model shrunk since) as the tensor itself, the
 * model bound again.  None of the tensors may be mapped.  Returns 0 or an
 * ERR_* code with a message.
 */
struct ts_kept;
int ts_model_keep(const struct ts_model *m, const size_t *idx, size_t n, struct ts_kept **out,
                  char *err, size_t errlen);
int ts_model_put_back(struct ts_model *m, const struct ts_kept *k, char *err, size_t errlen);
void ts_kept_destroy(struct ts_kept *k);

/* Zeros in tensor i (any float dtype, any device) without mapping it. */
int ts_model_count_zeros(const struct ts_model *m, size_t i, int64_t *zeros, char *err,
                         size_t errlen);

/*
 * forward(input_ids, attention_mask) under inference mode on int64 [batch,
 * len] inputs (row-major, on the CPU; moved to the model's device).  Accepts
 * a Tensor result, a tuple whose first element is the logits, or a dict with
 * "logits".  Writes batch * ncls float32 logits into out (capacity out_cap
 * floats) and the class count into *ncls.
 */
int ts_model_forward(struct ts_model *m, const int64_t *input_ids, const int64_t *attention_mask,
                     int64_t batch, int64_t len, float *out, size_t out_cap, int *ncls, char *err,
                     size_t errlen);

/* The device the model lives on ("cpu", "cuda:0"). Static or model-owned. */
const char *ts_model_device(const struct ts_model *m);

/*
 * Save as TorchScript (Module::save), or as a state_dict file that Python's
 * torch.load reads as a dict name -> tensor (parameters and buffers, on the
 * CPU), written record by record to the zip without building the file in
 * memory.  Both write exactly to path (the caller picks a temporary name and
 * renames); they do not fsync.
 */
int ts_model_save_torchscript(struct ts_model *m, const char *path, char *err, size_t errlen);
int ts_model_save_state_dict(struct ts_model *m, const char *path, char *err, size_t errlen);
/* The same tensors as a safetensors file (model/safetensors.h) with
 * __metadata__ {"format": "pt"}, each in its file dtype, one tensor at a
 * time.  TorchScript is refused (ERR_UNSUPPORTED): that is the torchscript
 * output's job. */
int ts_model_save_safetensors(struct ts_model *m, const char *path, char *err, size_t errlen);

/* For a zip file: 1 in *torchscript when it is a TorchScript archive
 * (constants.pkl), 0 when a torch.save file (data.pkl); ERR_FORMAT when it
 * is neither, ERR_IO / ERR_NOTFOUND for the file. */
int ts_zip_kind(const char *path, int *torchscript, char *err, size_t errlen);

/*
 * A torch.save'd dict of name -> tensor (e.g. masks for custom_from_mask).
 * Returns 0 with *out set (free with ts_dict_destroy), or the code
 * (ERR_FORMAT for anything but a zip-format torch.save of a dict of name ->
 * tensor; ERR_NOTFOUND / ERR_IO for the file) with *out NULL.
 * ts_dict_read_u8 writes numel bytes, 1 where the element is non-zero, 0
 * where it is zero (any dtype).
 */
int ts_dict_open(const char *path, struct ts_dict **out, char *err, size_t errlen);
void ts_dict_destroy(struct ts_dict *d);
size_t ts_dict_count(const struct ts_dict *d);
int ts_dict_info(const struct ts_dict *d, size_t i, struct ts_tensor_info *out);
long ts_dict_find(const struct ts_dict *d, const char *name);
int ts_dict_read_u8(const struct ts_dict *d, size_t i, uint8_t *out, size_t n, char *err,
                    size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
