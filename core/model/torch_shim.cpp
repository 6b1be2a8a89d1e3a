/* torch_shim.cpp - libtorch behind a C API: TorchScript models, tensors, forward, save */

/*
 * DESIGN
 *
 * Every exported function is a C function whose body runs inside one
 * try/catch (ts_catch): c10::Error and std::exception become ERR_* codes with
 * a one-line message, so no exception crosses the C API.
 *
 * A struct ts_model holds the torch::jit::Module plus one entry per named
 * parameter and buffer (recursive, in module order).  Each entry keeps the
 * tensor handle itself (sharing storage with the module), so writing through
 * a mapped pointer or copy_ changes the module in place.
 *
 * The state_dict file is the zip layout of torch.save: "data.pkl" (a pickle
 * of the dict whose tensors refer to storages by key) and one record
 * "data/<key>" per storage, plus the "version" record written by
 * PyTorchStreamWriter.  The pickle is small and built in memory; storages go
 * to the file one at a time straight from the tensors (CPU) or from a
 * one-tensor CPU copy (CUDA, views of larger storages), so saving does not
 * double the model in memory.  Files are written through ts_sink, which never
 * reports a failed write to libtorch: PyTorchStreamWriter's destructor
 * finalises the archive and would call std::terminate if it threw there.  The
 * sink remembers the first errno and the caller turns it into ERR_IO or
 * ERR_NOSPACE.
 *
 * ts_dict_open reads torch.save files with a small restricted unpickler
 * (struct pk_*) rather than torch::jit::pickle_load: libtorch 1.13's
 * unpickler turns collections.OrderedDict into None, and a state_dict is an
 * OrderedDict.  It knows only the opcodes and globals torch.save emits for a
 * dict of tensors and runs no code.
 */

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <new>
#include <streambuf>
#include <string>
#include <unordered_map>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/pickler.h>
#include <torch/cuda.h>
#include <torch/script.h>
#include <torch/version.h>
#ifdef PRUNERD_TORCH_CUDA
#include <ATen/detail/CUDAHooksInterface.h>
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 9)
#include <c10/core/CachingDeviceAllocator.h>
#define TS_HAVE_DEVICE_ALLOCATOR 1
#endif
#endif

#include "torch_internal.hpp"
extern "C" {
#include "safetensors.h"
}

using namespace ts;

/* ---- models ---- */

extern "C" {

const char *ts_libtorch_version(void)
{
#if defined(PRUNERD_TORCH_VERSION) /* the build knows better than the header (meson.build) */
    return PRUNERD_TORCH_VERSION;
#elif defined(TORCH_VERSION_MAJOR) && defined(TORCH_VERSION_MINOR) && defined(TORCH_VERSION_PATCH)
#define TS_STR2(x) #x
#define TS_STR(x) TS_STR2(x)
    return TS_STR(TORCH_VERSION_MAJOR) "." TS_STR(TORCH_VERSION_MINOR) "." TS_STR(
        TORCH_VERSION_PATCH);
#elif defined(TORCH_VERSION)
    return TORCH_VERSION;
#else
    return "unknown";
#endif
}

int ts_cuda_available(void)
{
    try {
        return torch::cuda::is_available() ? 1 : 0;
    } catch (...) {
        return 0;
    }
}

int ts_cuda_compiled(char *version, size_t len)
{
    if (version && len) version[0] = '\0';
#ifdef PRUNERD_TORCH_CUDA
    try {
        /* CUDART_VERSION as libtorch_cuda was built: 13000 is 13.0.  It needs
         * no device, only the hooks libtorch_cuda registers when linked. */
        long v = at::detail::getCUDAHooks().versionCUDART();
        if (version && len) snprintf(version, len, "%ld.%ld", v / 1000, (v % 1000) / 10);
        return 1;
    } catch (...) {
        return 0;
    }
#else
    return 0;
#endif
}

int ts_cuda_device_count(void)
{
#ifdef PRUNERD_TORCH_CUDA
    try {
        return (int)torch::cuda::device_count();
    } catch (...) {
        return 0;
    }
#else
    return 0;
#endif
}

void ts_cuda_empty_cache(void)
{
#ifdef TS_HAVE_DEVICE_ALLOCATOR
    try {
        if (ts_cuda_device_count() > 0)
            c10::getDeviceAllocator(c10::DeviceType::CUDA)->emptyCache();
    } catch (...) {
    }
#endif
}

int ts_dtype_is_float(enum ts_dtype dt)
{
    return dt == TS_FLOAT32 || dt == TS_FLOAT16 || dt == TS_BFLOAT16 || dt == TS_FLOAT64;
}

const char *ts_dtype_name(enum ts_dtype dt)
{
    switch (dt) {
    case TS_FLOAT32:
        return "float32";
    case TS_FLOAT16:
        return "float16";
    case TS_BFLOAT16:
        return "bfloat16";
    case TS_FLOAT64:
        return "float64";
    case TS_INT64:
        return "int64";
    case TS_INT32:
        return "int32";
    case TS_INT16:
        return "int16";
    case TS_INT8:
        return "int8";
    case TS_UINT8:
        return "uint8";
    case TS_BOOL:
        return "bool";
    case TS_OTHER:
        break;
    }
    return "other";
}

/* Inter-op threads are left alone: at::set_num_interop_threads may be called
 * once only, before any inter-op work, and throws otherwise. */
void ts_set_threads(int n)
{
    if (n <= 0) return;
    try {
        at::set_num_threads(n);
    } catch (...) {
    }
}

int ts_get_threads(void)
{
    try {
        return at::get_num_threads();
    } catch (...) {
        return 1;
    }
}

/* Python's state_dict() order: a module's own parameters, its own buffers,
 * then each child's, depth first. */
static void state_dict_order(struct ts_model *m, const torch::jit::Module &mod,
                             const std::string &prefix)
{
    for (const auto &p : mod.named_parameters(false)) {
        long i = ts_model_find(m, (prefix + p.name).c_str());
        if (i >= 0) m->sd_order.push_back((size_t)i);
    }
    for (const auto &b : mod.named_buffers(false)) {
        long i = ts_model_find(m, (prefix + b.name).c_str());
        if (i >= 0) m->sd_order.push_back((size_t)i);
    }
    for (const auto &c : mod.named_children())
        state_dict_order(m, c.value, prefix + c.name + ".");
}

/* device "cpu", "cuda" or "cuda:N" -> a device that is there. */
static int parse_device(const char *device, at::Device *out, char *err, size_t errlen)
{
    at::Device dev(at::kCPU);
    try {
        dev = at::Device(std::string(device));
    } catch (const c10::Error &) {
        return err_set(err, errlen, ERR_INVALID, "device '%s': expected cpu, cuda or cuda:N",
                       device);
    }
    if (dev.is_cuda()) {
        if (!torch::cuda::is_available())
            return err_set(err, errlen, ERR_UNSUPPORTED,
                           "device '%s': CUDA is not available (libtorch %s without CUDA "
                           "or no GPU)",
                           device, ts_libtorch_version());
        if (!dev.has_index()) dev = at::Device(at::kCUDA, 0);
        /* device_count() is size_t in 1.13 and DeviceIndex in 2.x */
        long ndev = (long)torch::cuda::device_count();
        if ((long)dev.index() >= ndev)
            return err_set(err, errlen, ERR_UNSUPPORTED, "device '%s': only %ld CUDA devices",
                           device, ndev);
    } else if (!dev.is_cpu()) {
        return err_set(err, errlen, ERR_UNSUPPORTED, "device '%s': only cpu and cuda", device);
    }
    *out = dev;
    return 0;
}

int ts_model_open(const char *path, const char *device, struct ts_model **out, char *err,
                  size_t errlen)
{
    struct ts_model *m = nullptr;
    if (!path || !device || !out)
        return err_set(err, errlen, ERR_INVALID, "model path, device and output are required");
    *out = nullptr;
    FILE *probe = fopen(path, "rb");
    if (!probe) {
        int e = errno;
        return err_set(err, errlen, io_code(e), "%s: %s", path, strerror(e));
    }
    fclose(probe);

    int rc = ts_catch(err, errlen, ERR_TORCH, path, [&]() -> int {
        at::Device dev(at::kCPU);
        int drc = parse_device(device, &dev, err, errlen);
        if (drc) return drc;

        std::unique_ptr<ts_model> mm(new ts_model);
        try {
            mm->mod = torch::jit::load(path, dev);
        } catch (const c10::Error &e) {
            return err_set(err, errlen, ERR_FORMAT, "%s: not a TorchScript archive: %s", path,
                           one_line(e.what_without_backtrace()).c_str());
        }
        mm->mod.eval();
        mm->dev = dev;
        mm->dev_name = dev.str();
        for (const auto &p : mm->mod.named_parameters(true))
            mm->ents.push_back(
                ts_entry{p.name, p.value, 1, 0, at::Tensor(), p.value.scalar_type()});
        if (mm->ents.empty())
            return err_set(err, errlen, ERR_UNSUPPORTED,
                           "frozen TorchScript module (no parameters): %s "
                           "(save it without torch.jit.freeze)",
                           path);
        for (const auto &b : mm->mod.named_buffers(true))
            mm->ents.push_back(
                ts_entry{b.name, b.value, 0, 0, at::Tensor(), b.value.scalar_type()});
        state_dict_order(mm.get(), mm->mod, "");
        if (mm->sd_order.size() != mm->ents.size())
            return err_set(err, errlen, ERR_INTERNAL, "%s: %zu tensors but %zu in state_dict order",
                           path, mm->ents.size(), mm->sd_order.size());
        m = mm.release();
        return 0;
    });
    if (rc != 0) {
        delete m;
        return rc;
    }
    *out = m;
    return 0;
}

void ts_model_destroy(struct ts_model *m)
{
    try {
        delete m;
    } catch (...) {
    }
}

size_t ts_model_count(const struct ts_model *m)
{
    return m ? m->ents.size() : 0;
}

int ts_model_info(const struct ts_model *m, size_t i, struct ts_tensor_info *out)
{
    if (!m || i >= m->ents.size()) return ERR_INVALID;
    try {
        const ts_entry &e = m->ents[i];
        return fill_info(e.name, e.t, e.is_param, out);
    } catch (...) {
        return ERR_TORCH;
    }
}

long ts_model_find(const struct ts_model *m, const char *name)
{
    if (!m || !name) return -1;
    for (size_t i = 0; i < m->ents.size(); i++)
        if (m->ents[i].name == name) return (long)i;
    return -1;
}

const char *ts_model_device(const struct ts_model *m)
{
    return m ? m->dev_name.c_str() : "cpu";
}

/* A float32 CPU tensor laid out densely in row-major order hands out its own
 * memory; everything else is worked on through a copy. */
static bool zero_copy(const at::Tensor &t)
{
    return t.device().is_cpu() && t.layout() == at::kStrided && t.scalar_type() == at::kFloat &&
           t.is_contiguous() && !t.is_conj() && !t.is_neg();
}

int ts_model_map_f32(struct ts_model *m, size_t i, float **data, char *err, size_t errlen)
{
    if (!m || !data || i >= m->ents.size())
        return err_set(err, errlen, ERR_INVALID, "map: bad model, index or output");
    ts_entry &e = m->ents[i];
    *data = nullptr;
    if (e.mapped) return err_set(err, errlen, ERR_INVALID, "%s: already mapped", e.name.c_str());
    return ts_catch(err, errlen, ERR_TORCH, e.name.c_str(), [&]() -> int {
        if (!e.t.is_floating_point() || e.t.layout() != at::kStrided)
            return err_set(err, errlen, ERR_INVALID, "%s: %s tensor is not floating point",
                           e.name.c_str(), ts_dtype_name(dtype_of(e.t.scalar_type())));
        torch::NoGradGuard no_grad;
        if (zero_copy(e.t)) {
            *data = e.t.data_ptr<float>();
        } else {
            at::Tensor c = at::empty(e.t.sizes(), at::TensorOptions().dtype(at::kFloat));
            c.copy_(e.t);
            e.shadow = c;
            *data = c.data_ptr<float>();
        }
        e.mapped = 1;
        return 0;
    });
}

int ts_model_unmap_f32(struct ts_model *m, size_t i, int write_back, char *err, size_t errlen)
{
    if (!m || i >= m->ents.size())
        return err_set(err, errlen, ERR_INVALID, "unmap: bad model or index");
    ts_entry &e = m->ents[i];
    if (!e.mapped) return err_set(err, errlen, ERR_INVALID, "%s: not mapped", e.name.c_str());
    int rc = ts_catch(err, errlen, ERR_TORCH, e.name.c_str(), [&]() -> int {
        if (write_back && e.shadow.defined()) {
            torch::NoGradGuard no_grad;
            if (e.t.scalar_type() == at::kFloat) {
                e.t.copy_(e.shadow);
            } else {
                /* Only the elements the caller changed: a float64 value
                 * round-tripped through float32 would lose its low bits. */
                at::Tensor old = e.t.to(at::kCPU);
                at::Tensor changed = e.shadow.ne(old.to(at::kFloat));
                e.t.copy_(at::where(changed, e.shadow.to(old.scalar_type()), old));
            }
        }
        return 0;
    });
    e.shadow = at::Tensor();
    e.mapped = 0;
    return rc;
}

struct ts_kept {
    std::vector<size_t> idx;
    std::vector<at::Tensor> t;
};

int ts_model_keep(const struct ts_model *m, const size_t *idx, size_t n, struct ts_kept **out,
                  char *err, size_t errlen)
{
    *out = nullptr;
    if (!m) return err_set(err, errlen, ERR_INVALID, "keep: no model");
    auto k = std::make_unique<ts_kept>();
    int rc = ts_catch(err, errlen, ERR_TORCH, "keeping tensors", [&]() -> int {
        torch::NoGradGuard no_grad;
        for (size_t j = 0; j < n; j++) {
            if (idx[j] >= m->ents.size())
                return err_set(err, errlen, ERR_INVALID, "keep: bad index %zu", idx[j]);
            k->idx.push_back(idx[j]);
            k->t.push_back(m->ents[idx[j]].t.clone());
        }
        return 0;
    });
    if (!rc) *out = k.release();
    return rc;
}

int ts_model_put_back(struct ts_model *m, const struct ts_kept *k, char *err, size_t errlen)
{
    if (!m || !k) return err_set(err, errlen, ERR_INVALID, "put back: no model or tensors");
    for (size_t idx : k->idx)
        if (idx >= m->ents.size() || m->ents[idx].mapped)
            return err_set(err, errlen, ERR_INVALID, "put back: tensor %zu is mapped", idx);
    return ts_catch(err, errlen, ERR_TORCH, "putting tensors back", [&]() -> int {
        torch::NoGradGuard no_grad;
        std::map<std::string, at::Tensor> repl; /* a shrunk tensor: put back whole */
        for (size_t j = 0; j < k->idx.size(); j++) {
            ts_entry &e = m->ents[k->idx[j]];
            if (e.t.sizes() == k->t[j].sizes())
                e.t.copy_(k->t[j]);
            else
                repl[e.name] = k->t[j].clone(); /* k stays whole for the next put back */
        }
        if (repl.empty()) return 0;
        if (!ts_model_is_native(m))
            return err_set(err, errlen, ERR_INTERNAL,
                           "put back: a TorchScript tensor changed shape");
        return bert_replace(m, repl, err, errlen);
    });
}

void ts_kept_destroy(struct ts_kept *k)
{
    delete k;
}

int ts_model_count_zeros(const struct ts_model *m, size_t i, int64_t *zeros, char *err,
                         size_t errlen)
{
    if (!m || !zeros || i >= m->ents.size())
        return err_set(err, errlen, ERR_INVALID, "count_zeros: bad model, index or output");
    const ts_entry &e = m->ents[i];
    return ts_catch(err, errlen, ERR_TORCH, e.name.c_str(), [&]() -> int {
        c10::InferenceMode guard;
        *zeros = e.t.numel() - at::count_nonzero(e.t).item<int64_t>();
        return 0;
    });
}

/* The logits in what a TorchScript forward returned: a tensor, a tuple
 * whose first element is one, or a dict with "logits". */
static int torchscript_logits(const c10::IValue &res, at::Tensor *logits, char *err, size_t errlen)
{
    if (res.isTensor()) {
        *logits = res.toTensor();
    } else if (res.isTuple()) {
        const auto &el = res.toTupleRef().elements();
        if (el.empty() || !el[0].isTensor())
            return err_set(err, errlen, ERR_FORMAT,
                           "forward returned a tuple without a tensor first");
        *logits = el[0].toTensor();
    } else if (res.isGenericDict()) {
        for (const auto &kv : res.toGenericDict())
            if (kv.key().isString() && kv.key().toStringRef() == "logits" && kv.value().isTensor())
                *logits = kv.value().toTensor();
        if (!logits->defined())
            return err_set(err, errlen, ERR_FORMAT,
                           "forward returned a dict without a \"logits\" tensor");
    } else {
        return err_set(err, errlen, ERR_FORMAT,
                       "forward returned %s, expected a tensor, tuple or dict",
                       res.tagKind().c_str());
    }
    return 0;
}

int ts_model_forward(struct ts_model *m, const int64_t *input_ids, const int64_t *attention_mask,
                     int64_t batch, int64_t len, float *out, size_t out_cap, int *ncls, char *err,
                     size_t errlen)
{
    if (!m || !input_ids || !attention_mask || !out || !ncls)
        return err_set(err, errlen, ERR_INVALID, "forward: missing argument");
    if (batch <= 0 || len <= 0 || batch > INT64_MAX / len)
        return err_set(err, errlen, ERR_INVALID, "forward: bad shape [%lld, %lld]",
                       (long long)batch, (long long)len);
    return ts_catch(err, errlen, ERR_TORCH, "forward", [&]() -> int {
        c10::InferenceMode guard;
        auto i64 = at::TensorOptions().dtype(at::kLong);
        /* from_blob does not own the caller's buffers: copy them (clone on the
         * CPU, a transfer on CUDA) so the model never aliases them. */
        at::Tensor ids = at::from_blob(const_cast<int64_t *>(input_ids), {batch, len}, i64);
        at::Tensor mask = at::from_blob(const_cast<int64_t *>(attention_mask), {batch, len}, i64);
        ids = m->dev.is_cpu() ? ids.clone() : ids.to(m->dev);
        mask = m->dev.is_cpu() ? mask.clone() : mask.to(m->dev);

        at::Tensor logits;
        if (m->kind == ts_kind::native) {
            logits = bert_forward(*m->net, ids, mask);
        } else {
            int frc = torchscript_logits(m->mod.forward({ids, mask}), &logits, err, errlen);
            if (frc) return frc;
        }
        if (!logits.is_floating_point() || logits.dim() != 2 || logits.size(0) != batch)
            return err_set(err, errlen, ERR_FORMAT,
                           "forward: logits must be float [%lld, classes], got %s %s",
                           (long long)batch, ts_dtype_name(dtype_of(logits.scalar_type())),
                           c10::str(logits.sizes()).c_str());
        int64_t k = logits.size(1);
        if (k <= 0 || k > INT32_MAX)
            return err_set(err, errlen, ERR_FORMAT, "forward: %lld classes", (long long)k);
        if ((uint64_t)logits.numel() > (uint64_t)out_cap)
            return err_set(err, errlen, ERR_INVALID,
                           "forward: %lld logits do not fit in %zu floats",
                           (long long)logits.numel(), out_cap);
        at::Tensor cpu = logits.to(at::kCPU, at::kFloat).contiguous();
        memcpy(out, cpu.data_ptr<float>(), (size_t)cpu.numel() * sizeof(float));
        *ncls = (int)k;
        return 0;
    });
}

int ts_model_save_torchscript(struct ts_model *m, const char *path, char *err, size_t errlen)
{
    if (!m || !path) return err_set(err, errlen, ERR_INVALID, "save: bad model or path");
    if (m->kind == ts_kind::native)
        return err_set(err, errlen, ERR_UNSUPPORTED,
                       "a TorchScript file is written only for a TorchScript input: this model "
                       "was read from its weights (ask for safetensors or state_dict)");
    ts_sink sink;
    if (sink.open(path) != 0)
        return err_set(err, errlen, io_code(sink.error), "%s: %s", path, strerror(sink.error));
    int rc = ts_catch(err, errlen, ERR_TORCH, path, [&]() -> int {
        std::ostream os(&sink);
        m->mod.save(os);
        os.flush();
        return 0;
    });
    int e = sink.close();
    if (rc == 0 && e) rc = err_set(err, errlen, io_code(e), "%s: write: %s", path, strerror(e));
    return rc;
}

/* ---- native models ---- */

static at::ScalarType scalar_of(enum ts_dtype dt)
{
    switch (dt) {
    case TS_FLOAT32:
        return at::kFloat;
    case TS_FLOAT16:
        return at::kHalf;
    case TS_BFLOAT16:
        return at::kBFloat16;
    case TS_FLOAT64:
        return at::kDouble;
    case TS_INT64:
        return at::kLong;
    case TS_INT32:
        return at::kInt;
    case TS_INT16:
        return at::kShort;
    case TS_INT8:
        return at::kChar;
    case TS_UINT8:
        return at::kByte;
    case TS_BOOL:
        return at::kBool;
    case TS_OTHER:
        break;
    }
    return at::kFloat;
}

/* Buffers an old checkpoint may carry that the model does not use. */
static bool ignored_buffer(const std::string &name)
{
    static const char *const ends[] = {"embeddings.position_ids", "embeddings.token_type_ids"};
    for (const char *e : ends) {
        size_t n = strlen(e);
        if (name.size() >= n && name.compare(name.size() - n, n, e) == 0 &&
            (name.size() == n || name[name.size() - n - 1] == '.'))
            return true;
    }
    return false;
}

/* The tensors of one safetensors file; float32 ones on the CPU stay in its
 * mapping, which the tensors keep alive. */
static int read_safetensors(const char *path, std::vector<named_tensor> &out, char *err,
                            size_t errlen)
{
    struct st_file *f = nullptr;
    int rc = st_open(path, &f, err, errlen);
    if (rc) return rc;
    std::shared_ptr<st_file> keep(f, st_close);
    for (size_t i = 0; i < st_count(f); i++) {
        const struct st_tensor *t = st_get(f, i);
        std::vector<int64_t> shape(t->shape, t->shape + t->ndim);
        at::ScalarType st = scalar_of(t->dtype);
        auto opts = at::TensorOptions().dtype(st);
        at::Tensor x;
        if (t->numel == 0)
            x = at::empty(shape, opts);
        else if (((uintptr_t)t->data % c10::elementSize(st)) == 0)
            x = at::from_blob(
                t->data, shape, [keep](void *) {}, opts);
        else /* not aligned for its dtype: a copy */
            x = at::from_blob(
                    t->data, {(int64_t)t->nbytes}, [keep](void *) {},
                    at::TensorOptions().dtype(at::kByte))
                    .clone()
                    .view(st)
                    .view(shape);
        out.push_back(named_tensor{t->name, x});
    }
    return 0;
}

int ts_model_open_native(const char *const *weights, size_t nweights, const struct bert_config *c,
                         const char *device, struct ts_model **out, char *err, size_t errlen)
{
    if (!weights || !nweights || !device || !out)
        return err_set(err, errlen, ERR_INVALID, "weights, device and output are required");
    *out = nullptr;
    struct ts_model *m = nullptr;
    int rc = ts_catch(err, errlen, ERR_TORCH, weights[0], [&]() -> int {
        at::Device dev(at::kCPU);
        int drc = parse_device(device, &dev, err, errlen);
        if (drc) return drc;
        std::unique_ptr<ts_model> mm(new ts_model);
        mm->kind = ts_kind::native;
        mm->dev = dev;
        mm->dev_name = dev.str();
        std::unordered_map<std::string, size_t> seen;
        for (size_t w = 0; w < nweights; w++) {
            unsigned char magic[4] = {0, 0, 0, 0};
            FILE *fp = fopen(weights[w], "rb");
            if (!fp) {
                int e = errno;
                return err_set(err, errlen, io_code(e), "%s: %s", weights[w], strerror(e));
            }
            size_t got = fread(magic, 1, 4, fp);
            fclose(fp);
            std::vector<named_tensor> items;
            int frc = got == 4 && !memcmp(magic, "PK\x03\x04", 4)
                          ? torch_save_read(weights[w], items, err, errlen)
                      : got >= 2 && magic[0] == 0x80
                          ? torch_save_read(weights[w], items, err, errlen)
                          : read_safetensors(weights[w], items, err, errlen);
            if (frc) return frc;
            for (named_tensor &x : items) {
                if (ignored_buffer(x.name)) continue;
                if (!seen.emplace(x.name, w).second)
                    return err_set(err, errlen, ERR_FORMAT, "%s: tensor '%s' is also in %s",
                                   weights[w], x.name.c_str(), weights[seen[x.name]]);
                ts_entry e{x.name, x.t, 1, 0, at::Tensor(), x.t.scalar_type()};
                if (e.t.is_floating_point() && e.t.scalar_type() != at::kFloat)
                    e.t = e.t.to(at::kFloat);
                if (dev.is_cuda()) e.t = e.t.to(dev);
                mm->ents.push_back(std::move(e));
            }
        }
        if (!c) return err_set(err, errlen, ERR_NOTFOUND, "%s: no config", weights[0]);
        int brc = bert_bind(mm.get(), c, err, errlen);
        if (brc) return brc;
        for (size_t i = 0; i < mm->ents.size(); i++)
            mm->sd_order.push_back(i);
        m = mm.release();
        return 0;
    });
    if (rc) {
        delete m;
        return rc;
    }
    *out = m;
    return 0;
}

int ts_model_is_native(const struct ts_model *m)
{
    return m && m->kind == ts_kind::native;
}

const char *ts_model_head(const struct ts_model *m)
{
    return ts_model_is_native(m) ? bert_head(*m->net) : nullptr;
}

int ts_model_labels(const struct ts_model *m)
{
    return ts_model_is_native(m) ? bert_labels(*m->net) : 0;
}

int ts_model_layers(const struct ts_model *m)
{
    return ts_model_is_native(m) ? bert_layers(*m->net) : 0;
}

int ts_model_layer_shape(const struct ts_model *m, int layer, int *heads, int *ffn)
{
    if (!ts_model_is_native(m) || layer < 0 || layer >= bert_layers(*m->net) || !heads || !ffn)
        return ERR_INVALID;
    bert_layer_shape(*m->net, layer, heads, ffn);
    return 0;
}

void ts_model_units(const struct ts_model *m, size_t *heads, size_t *neurons)
{
    *heads = *neurons = 0;
    for (int l = 0; ts_model_is_native(m) && l < bert_layers(*m->net); l++) {
        int h, f;
        bert_layer_shape(*m->net, l, &h, &f);
        *heads += (size_t)h;
        *neurons += (size_t)f;
    }
}

/* Structured pruning on a TorchScript model. */
static int not_native(char *err, size_t errlen)
{
    return err_set(err, errlen, ERR_UNSUPPORTED,
                   "structured pruning needs a model read from its weights (this one is "
                   "TorchScript)");
}

int ts_model_magnitude(const struct ts_model *m, float *heads, float *neurons, char *err,
                       size_t errlen)
{
    if (!ts_model_is_native(m)) return not_native(err, errlen);
    return ts_catch(err, errlen, ERR_TORCH, "importance", [&] {
        bert_magnitude(*m->net, heads, neurons);
        return 0;
    });
}

/* ids / mask [n, len] (and labels [n]) from the caller's memory onto m's device. */
static int calibration_tensors(const struct ts_model *m, const char *what, const int64_t *ids,
                               const int64_t *mask, const int64_t *labels, int64_t n, int64_t len,
                               int batch, at::Tensor &ti, at::Tensor &tm, at::Tensor &tl, char *err,
                               size_t errlen)
{
    if (n <= 0 || len <= 0 || batch <= 0 || n > INT64_MAX / len)
        return err_set(err, errlen, ERR_INVALID, "%s: bad shape [%lld, %lld], batch %d", what,
                       (long long)n, (long long)len, batch);
    auto i64 = at::TensorOptions().dtype(at::kLong);
    ti = at::from_blob(const_cast<int64_t *>(ids), {n, len}, i64).to(m->dev, false, true);
    tm = at::from_blob(const_cast<int64_t *>(mask), {n, len}, i64).to(m->dev, false, true);
    if (labels) tl = at::from_blob(const_cast<int64_t *>(labels), {n}, i64).to(m->dev, false, true);
    return 0;
}

int ts_model_importance(struct ts_model *m, enum ts_importance kind, const int64_t *ids,
                        const int64_t *mask, const int64_t *labels, int64_t n, int64_t len,
                        int batch, float *heads, float *neurons,
                        int (*progress)(void *ud, double done), void *ud, char *err, size_t errlen)
{
    if (!ts_model_is_native(m)) return not_native(err, errlen);
    const char *what = kind == TS_TAYLOR ? "taylor importance" : "fisher importance";
    return ts_catch(err, errlen, ERR_TORCH, what, [&]() -> int {
        at::Tensor ti, tm, tl;
        int rc =
            calibration_tensors(m, what, ids, mask, labels, n, len, batch, ti, tm, tl, err, errlen);
        if (rc) return rc;
        rc = bert_importance(*m->net,
                             kind == TS_TAYLOR ? BERT_IMPORTANCE_TAYLOR : BERT_IMPORTANCE_FISHER,
                             ti, tm, tl, batch, heads, neurons, progress, ud);
        return rc ? err_set(err, errlen, rc, "cancelled") : 0;
    });
}

int ts_model_rescale(struct ts_model *m, const int64_t *ids, const int64_t *mask, int64_t n,
                     int64_t len, int batch, const uint8_t *heads_keep, const uint8_t *neurons_keep,
                     float *head_scale, float *neuron_scale, struct ts_rescale_stop *stop,
                     int (*progress)(void *ud, double done), void *ud, char *err, size_t errlen)
{
    if (!ts_model_is_native(m)) return not_native(err, errlen);
    return ts_catch(err, errlen, ERR_TORCH, "rescale", [&]() -> int {
        at::Tensor ti, tm, tl;
        int rc = calibration_tensors(m, "rescale", ids, mask, nullptr, n, len, batch, ti, tm, tl,
                                     err, errlen);
        if (rc) return rc;
        rc = bert_rescale(*m->net, ti, tm, batch, heads_keep, neurons_keep, head_scale,
                          neuron_scale, stop, progress, ud);
        return rc ? err_set(err, errlen, rc, "cancelled") : 0;
    });
}

int ts_model_scale(struct ts_model *m, const float *head_scale, const float *neuron_scale,
                   char *err, size_t errlen)
{
    if (!ts_model_is_native(m)) return not_native(err, errlen);
    return ts_catch(err, errlen, ERR_TORCH, "folding the rescale factors",
                    [&] { return bert_scale(m, head_scale, neuron_scale, err, errlen); });
}

int ts_model_shrink(struct ts_model *m, const uint8_t *heads_keep, const uint8_t *neurons_keep,
                    char *err, size_t errlen)
{
    if (!ts_model_is_native(m)) return not_native(err, errlen);
    return ts_catch(err, errlen, ERR_TORCH, "removing heads and neurons",
                    [&] { return bert_shrink(m, heads_keep, neurons_keep, err, errlen); });
}

const struct bert_config *ts_model_config(const struct ts_model *m)
{
    return ts_model_is_native(m) ? bert_config_of(*m->net) : nullptr;
}

enum ts_dtype ts_model_file_dtype(const struct ts_model *m, size_t i)
{
    if (!m || i >= m->ents.size()) return TS_OTHER;
    return dtype_of(m->ents[i].file_dtype);
}

/* What st_write asks for: the bytes of one tensor in its file dtype. */
struct st_source {
    struct ts_model *m;
    at::Tensor hold; /* a converted copy, until the next tensor */
};

static int st_bytes(void *ud, size_t i, const void **data, size_t *nbytes, char *err, size_t errlen)
{
    st_source *src = (st_source *)ud;
    const ts_entry &e = src->m->ents[src->m->sd_order[i]];
    return ts_catch(err, errlen, ERR_TORCH, e.name.c_str(), [&]() -> int {
        torch::NoGradGuard no_grad;
        at::Tensor t = e.t.detach();
        if (!t.device().is_cpu() || t.scalar_type() != e.file_dtype || !t.is_contiguous() ||
            t.is_conj() || t.is_neg())
            t = t.to(at::kCPU).to(e.file_dtype).resolve_conj().resolve_neg().contiguous();
        src->hold = t;
        *data = t.numel() ? t.data_ptr() : nullptr;
        *nbytes = (size_t)t.numel() * t.element_size();
        return 0;
    });
}

int ts_model_save_safetensors(struct ts_model *m, const char *path, char *err, size_t errlen)
{
    if (!m || !path) return err_set(err, errlen, ERR_INVALID, "save: bad model or path");
    std::vector<struct st_entry> entries;
    std::vector<std::vector<int64_t>> shapes;
    int rc = ts_catch(err, errlen, ERR_TORCH, path, [&]() -> int {
        shapes.reserve(m->sd_order.size());
        for (size_t i : m->sd_order) {
            const ts_entry &e = m->ents[i];
            enum ts_dtype dt = dtype_of(e.file_dtype);
            if (dt == TS_OTHER)
                return err_set(err, errlen, ERR_UNSUPPORTED, "%s: no safetensors dtype for it",
                               e.name.c_str());
            shapes.emplace_back(e.t.sizes().begin(), e.t.sizes().end());
            entries.push_back(st_entry{e.name.c_str(), dt, (int)e.t.dim(), shapes.back().data()});
        }
        return 0;
    });
    if (rc) return rc;
    static const char *const meta[] = {"format", "pt", nullptr};
    st_source src{m, at::Tensor()};
    return st_write(path, entries.data(), entries.size(), meta, st_bytes, &src, err, errlen);
}

} /* extern "C" */
