/* torch_internal.hpp - what the C++ files behind torch_shim.h share (never included from C) */
#ifndef PRUNERD_TORCH_INTERNAL_HPP
#define PRUNERD_TORCH_INTERNAL_HPP

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <map>
#include <memory>
#include <stdexcept>
#include <streambuf>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <caffe2/serialize/inline_container.h>
#include <torch/script.h>

extern "C" {
#include "err.h"
}
#include "torch_shim.h"

namespace ts
{

/* A c10::Error message is several lines plus a C++ backtrace; keep the text
 * without the backtrace, on one line. */
inline std::string one_line(const char *s)
{
    std::string out;
    bool space = false;
    for (; *s; s++) {
        char c = *s;
        if (c == '\n' || c == '\r' || c == '\t' || c == ' ') {
            space = !out.empty();
            continue;
        }
        if (space) out.push_back(' ');
        space = false;
        out.push_back(c);
    }
    return out;
}

/* Runs f() and maps what it throws onto (code, message); code_torch is the code
 * for a libtorch error in this context (ERR_TORCH, ERR_FORMAT, ERR_IO). */
struct ts_format_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

template <class F> int ts_catch(char *err, size_t errlen, int code_torch, const char *ctx, F &&f)
{
    try {
        return f();
    } catch (const ts_format_error &e) {
        return err_set(err, errlen, ERR_FORMAT, "%s: %s", ctx, e.what());
    } catch (const c10::OutOfMemoryError &e) {
        /* CUDA's caching allocator ran out: give back what it caches so the
         * daemon's next job starts clean, and say so plainly. */
        ts_cuda_empty_cache();
        return err_set(err, errlen, ERR_NOMEM, "%s: out of memory: %s", ctx,
                       one_line(e.what_without_backtrace()).c_str());
    } catch (const c10::Error &e) {
        return err_set(err, errlen, code_torch, "%s: %s", ctx,
                       one_line(e.what_without_backtrace()).c_str());
    } catch (const std::bad_alloc &) {
        return err_set(err, errlen, ERR_NOMEM, "%s: out of memory", ctx);
    } catch (const std::exception &e) {
        return err_set(err, errlen, code_torch, "%s: %s", ctx, one_line(e.what()).c_str());
    } catch (...) {
        return err_set(err, errlen, ERR_INTERNAL, "%s: unknown C++ exception", ctx);
    }
}

inline enum ts_dtype dtype_of(at::ScalarType st)
{
    switch (st) {
    case at::kFloat:
        return TS_FLOAT32;
    case at::kHalf:
        return TS_FLOAT16;
    case at::kBFloat16:
        return TS_BFLOAT16;
    case at::kDouble:
        return TS_FLOAT64;
    case at::kLong:
        return TS_INT64;
    case at::kInt:
        return TS_INT32;
    case at::kShort:
        return TS_INT16;
    case at::kChar:
        return TS_INT8;
    case at::kByte:
        return TS_UINT8;
    case at::kBool:
        return TS_BOOL;
    default:
        return TS_OTHER;
    }
}

inline int fill_info(const std::string &name, const at::Tensor &t, int is_param,
                     struct ts_tensor_info *out)
{
    if (!out) return ERR_INVALID;
    memset(out, 0, sizeof *out);
    out->name = name.c_str();
    out->ndim = (int)t.dim();
    for (int64_t d = 0; d < t.dim() && d < TS_MAX_DIMS; d++)
        out->shape[d] = t.size(d);
    out->numel = t.numel();
    out->dtype = dtype_of(t.scalar_type());
    out->is_parameter = is_param;
    out->is_cuda = t.is_cuda();
    return t.dim() > TS_MAX_DIMS ? ERR_UNSUPPORTED : 0;
}

/* A write-only file for PyTorchStreamWriter and Module::save.  Writes never
 * fail towards libtorch (see DESIGN); the first errno is kept in error. */
class ts_sink : public std::streambuf
{
  public:
    FILE *f = nullptr;
    int error = 0;

    int open(const char *path)
    {
        f = fopen(path, "wb");
        if (!f) error = errno;
        return f ? 0 : -1;
    }
    void write(const void *buf, size_t n)
    {
        if (error || n == 0) return;
        if (fwrite(buf, 1, n, f) != n) error = errno ? errno : EIO;
    }
    /* Closes the file; returns 0 or the first errno seen. */
    int close()
    {
        if (f) {
            if (fclose(f) != 0 && !error) error = errno ? errno : EIO;
            f = nullptr;
        }
        return error;
    }
    ~ts_sink() override
    {
        close();
    }

  protected:
    std::streamsize xsputn(const char *s, std::streamsize n) override
    {
        write(s, (size_t)n);
        return n;
    }
    int_type overflow(int_type c) override
    {
        if (!traits_type::eq_int_type(c, traits_type::eof())) {
            char ch = traits_type::to_char_type(c);
            write(&ch, 1);
        }
        return traits_type::not_eof(c);
    }
};

inline int io_code(int e)
{
    if (e == ENOSPC || e == EDQUOT) return ERR_NOSPACE;
    if (e == ENOENT || e == ENOTDIR) return ERR_NOTFOUND;
    return ERR_IO;
}

/*
 * Whether the first record of the zip at path is inside a folder
 * ("archive/data.pkl"), as torch.save and torch.jit.save write it.
 * PyTorchStreamReader refuses a zip whose first record is not, but throws
 * from its constructor after miniz has allocated, which leaks; asking first
 * keeps a hostile zip from costing the daemon memory.
 */
inline bool zip_first_record_in_folder(const char *path)
{
    unsigned char h[30];
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    bool ok = fread(h, 1, sizeof h, f) == sizeof h && !memcmp(h, "PK\x03\x04", 4);
    size_t n = ok ? (size_t)(h[26] | h[27] << 8) : 0;
    std::string name(n, '\0');
    ok = ok && n > 0 && fread(&name[0], 1, n, f) == n && name.find('/') != std::string::npos;
    fclose(f);
    return ok;
}

/* A named tensor of a checkpoint, in file order. */
struct named_tensor {
    std::string name;
    at::Tensor t;
};

} /* namespace ts */

struct bert_net; /* model/bert.cpp */

/* One named parameter or buffer of a model. */
struct ts_entry {
    std::string name;
    at::Tensor t; /* the model's own tensor (shares its storage) */
    int is_param;
    int mapped;                             /* between map and unmap */
    at::Tensor shadow;                      /* float32 CPU copy while mapped, when not zero-copy */
    at::ScalarType file_dtype = at::kFloat; /* native: the dtype it is saved in */
};

enum class ts_kind { torchscript, native };

struct ts_model {
    ts_kind kind = ts_kind::torchscript;
    torch::jit::Module mod;                  /* torchscript */
    std::shared_ptr<bert_net> net;           /* native */
    std::vector<std::shared_ptr<void>> keep; /* native: mappings the tensors point into */
    at::Device dev{at::kCPU};
    std::string dev_name;
    std::vector<ts_entry> ents;
    std::vector<size_t> sd_order; /* ents in state_dict() order, for saving */
};

struct ts_dict {
    std::vector<std::string> names;
    std::vector<at::Tensor> tensors;
};

/* ---- model/bert.cpp ---- */
extern "C" {
#include "bert_config.h"
}

namespace ts
{
/*
 * Binds m->ents (a checkpoint's tensors, under their file names, float32,
 * on m->dev) to a BERT sequence classifier of config c: finds the prefix
 * ("bert." or none) and the head (classifier.* or fc.*) by name, takes each
 * layer's heads and FFN width from its weights' shapes, and checks every
 * name and shape as load_state_dict(strict=True) would.  Sets m->net, or
 * returns ERR_FORMAT listing what is missing, unexpected or mis-shaped.
 */
int bert_bind(struct ts_model *m, const struct bert_config *c, char *err, size_t errlen);
/* Logits [batch, labels] of int64 ids and mask [batch, len] on the net's device. */
at::Tensor bert_forward(const bert_net &net, const at::Tensor &ids, const at::Tensor &mask);
/* Dropout probabilities in training (HF's hidden, attention-probability and
 * classifier dropout). */
struct bert_dropout {
    double hidden, attention, classifier;
};
/* bert_forward with dropout, for training under autograd. */
at::Tensor bert_forward_train(const bert_net &net, const at::Tensor &ids, const at::Tensor &mask,
                              const bert_dropout &d);
const char *bert_head(const bert_net &net); /* "classifier" or "fc" */
int bert_labels(const bert_net &net);
int bert_layers(const bert_net &net);
void bert_layer_shape(const bert_net &net, int i, int *heads, int *ffn);
const struct bert_config *bert_config_of(const bert_net &net);
/* Magnitude importance: each head's L2 norm over its Q, K and V rows and
 * its columns of attention.output.dense, into heads (every layer's heads in
 * layer order); each FFN neuron's over its intermediate.dense row and
 * output.dense column, into neurons. */
void bert_magnitude(const bert_net &net, float *heads, float *neurons);
/* Removes the heads and neurons whose keep byte is 0 (laid out as
 * bert_magnitude's), as prune_heads / prune_linear_layer do: m->ents get the
 * smaller tensors and the net is bound again. */
/* m's tensors named in repl replaced (none of them mapped), and the net
 * bound again; 0 or an ERR_* code with a message. */
int bert_replace(struct ts_model *m, const std::map<std::string, at::Tensor> &repl, char *err,
                 size_t errlen);
int bert_shrink(struct ts_model *m, const uint8_t *heads_keep, const uint8_t *neurons_keep,
                char *err, size_t errlen);
/* Importance from gradients, per calibration batch of ids / mask (int64
 * [N, L] on the net's device), of the cross-entropy loss (mean over the
 * batch) against labels (int64 [N], or the model's own predictions when
 * undefined):
 *   fisher: the squared gradient with respect to a mask of ones on every
 *           head's context and every neuron's activation, summed over the
 *           batches (Kwon et al. 2022);
 *   taylor: |sum over a head's Q, K, V rows and attention.output.dense
 *           columns (a neuron's intermediate.dense row and output.dense
 *           column) of gradient x weight|, the gradient summed over the
 *           batches (TextPruner's first-order Taylor).
 * Laid out as bert_magnitude's.  progress(ud, done) after each batch stops
 * the pass (ERR_CANCELLED) when it returns non-zero.  Returns 0. */
enum bert_importance { BERT_IMPORTANCE_FISHER, BERT_IMPORTANCE_TAYLOR };
int bert_importance(const bert_net &net, enum bert_importance kind, const at::Tensor &ids,
                    const at::Tensor &mask, const at::Tensor &labels, int64_t batch, float *heads,
                    float *neurons, int (*progress)(void *ud, double done), void *ud);
/* Kwon et al.'s layer-wise mask tuning: the factors of the kept heads and
 * neurons (keep bytes laid out as bert_magnitude's) that make each layer's
 * output, by least squares over the calibration rows' tokens, closest to
 * the dense model's; into head_scale / neuron_scale (0 where removed), and
 * how far it got into *stop (torch_shim.h).  See docs/api.md.
 * ERR_CANCELLED when progress says so. */
int bert_rescale(const bert_net &net, const at::Tensor &ids, const at::Tensor &mask, int64_t batch,
                 const uint8_t *heads_keep, const uint8_t *neurons_keep, float *head_scale,
                 float *neuron_scale, struct ts_rescale_stop *stop,
                 int (*progress)(void *ud, double done), void *ud);
/* Multiplies each head's attention.output.dense columns and each neuron's
 * output.dense column by its factor (the net's own heads and neurons). */
int bert_scale(struct ts_model *m, const float *head_scale, const float *neuron_scale, char *err,
               size_t errlen);

/* ---- model/torch_save.cpp ---- */
/* Reads a torch.save zip holding a dict of name -> tensor (a state_dict) with
 * the restricted unpickler, in the dict's order.  Tensors point into
 * records read into memory.  ERR_FORMAT with the reason otherwise. */
int torch_save_read(const char *path, std::vector<named_tensor> &out, char *err, size_t errlen);
/* torch_save_read on an open zip (path names it in messages): what follows
 * opening the file, and the fuzz target's way in (tests/fuzz). */
int torch_save_read_zip(caffe2::serialize::PyTorchStreamReader &zip, const char *path,
                        std::vector<named_tensor> &out, char *err, size_t errlen);
} /* namespace ts */

#endif
