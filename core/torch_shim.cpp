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
 * ts_dict_load reads torch.save files with a small restricted unpickler
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

extern "C" {
#include "err.h"
}
#include "torch_shim.h"

namespace
{

/* A c10::Error message is several lines plus a C++ backtrace; keep the text
 * without the backtrace, on one line. */
std::string one_line(const char *s)
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

enum ts_dtype dtype_of(at::ScalarType st)
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

int fill_info(const std::string &name, const at::Tensor &t, int is_param,
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

int io_code(int e)
{
    if (e == ENOSPC || e == EDQUOT) return ERR_NOSPACE;
    if (e == ENOENT || e == ENOTDIR) return ERR_NOTFOUND;
    return ERR_IO;
}

} /* namespace */

/* ---- models ---- */

struct ts_entry {
    std::string name;
    at::Tensor t; /* the module's own tensor (shares its storage) */
    int is_param;
    int mapped;        /* between map and unmap */
    at::Tensor shadow; /* float32 CPU copy while mapped, when not zero-copy */
};

struct ts_model {
    torch::jit::Module mod;
    at::Device dev{at::kCPU};
    std::string dev_name;
    std::vector<ts_entry> ents;
    std::vector<size_t> sd_order; /* ents in state_dict() order, for saving */
};

struct ts_dict {
    std::vector<std::string> names;
    std::vector<at::Tensor> tensors;
};

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
            mm->ents.push_back(ts_entry{p.name, p.value, 1, 0, at::Tensor()});
        if (mm->ents.empty())
            return err_set(err, errlen, ERR_UNSUPPORTED,
                           "frozen TorchScript module (no parameters): %s "
                           "(save it without torch.jit.freeze)",
                           path);
        for (const auto &b : mm->mod.named_buffers(true))
            mm->ents.push_back(ts_entry{b.name, b.value, 0, 0, at::Tensor()});
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

struct ts_model *ts_model_load(const char *path, const char *device, char *err, size_t errlen)
{
    struct ts_model *m = nullptr;
    return ts_model_open(path, device, &m, err, errlen) == 0 ? m : nullptr;
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

        c10::IValue res = m->mod.forward({ids, mask});
        at::Tensor logits;
        if (res.isTensor()) {
            logits = res.toTensor();
        } else if (res.isTuple()) {
            const auto &el = res.toTupleRef().elements();
            if (el.empty() || !el[0].isTensor())
                return err_set(err, errlen, ERR_FORMAT,
                               "forward returned a tuple without a tensor first");
            logits = el[0].toTensor();
        } else if (res.isGenericDict()) {
            for (const auto &kv : res.toGenericDict())
                if (kv.key().isString() && kv.key().toStringRef() == "logits" &&
                    kv.value().isTensor())
                    logits = kv.value().toTensor();
            if (!logits.defined())
                return err_set(err, errlen, ERR_FORMAT,
                               "forward returned a dict without a \"logits\" tensor");
        } else {
            return err_set(err, errlen, ERR_FORMAT,
                           "forward returned %s, expected a tensor, tuple or dict",
                           res.tagKind().c_str());
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

/* A CPU tensor with t's dtype and shape but no memory: it stands for a tensor
 * whose bytes are written later, one at a time, so the pickle can say "cpu"
 * without the whole model being copied first. */
static at::Tensor placeholder_like(const at::Tensor &t)
{
    std::vector<int64_t> strides((size_t)t.dim());
    int64_t s = 1;
    for (int64_t d = t.dim() - 1; d >= 0; d--) {
        strides[(size_t)d] = s;
        s *= std::max<int64_t>(t.size(d), 1);
    }
    size_t nbytes = (size_t)t.numel() * t.element_size();
    c10::Storage st(c10::Storage::use_byte_size_t(), nbytes,
                    c10::DataPtr(nullptr, c10::Device(c10::kCPU)), nullptr, false);
    return at::empty({0}, at::TensorOptions().dtype(t.scalar_type()))
        .set_(st, 0, t.sizes(), strides);
}

/* Whether t is a CPU tensor that covers its whole storage densely, so the
 * storage can be written as it is. */
static bool whole_cpu_storage(const at::Tensor &t)
{
    return t.device().is_cpu() && t.layout() == at::kStrided && t.is_contiguous() &&
           t.storage_offset() == 0 && !t.is_conj() && !t.is_neg() &&
           t.storage().nbytes() == (size_t)t.numel() * t.element_size();
}

int ts_model_save_state_dict(struct ts_model *m, const char *path, char *err, size_t errlen)
{
    if (!m || !path) return err_set(err, errlen, ERR_INVALID, "save: bad model or path");
    ts_sink sink;
    if (sink.open(path) != 0)
        return err_set(err, errlen, io_code(sink.error), "%s: %s", path, strerror(sink.error));
    int rc = ts_catch(err, errlen, ERR_TORCH, path, [&]() -> int {
        torch::NoGradGuard no_grad;
        c10::impl::GenericDict dict(c10::StringType::get(), c10::TensorType::get());
        /* storage of a placeholder -> the tensor it stands for */
        std::unordered_map<const void *, at::Tensor> deferred;
        for (size_t i : m->sd_order) {
            const ts_entry &e = m->ents[i];
            at::Tensor t = e.t.detach();
            if (!whole_cpu_storage(t)) {
                at::Tensor ph = placeholder_like(t);
                deferred.emplace(ph.storage().unsafeGetStorageImpl(), t);
                t = ph;
            }
            dict.insert(e.name, t);
        }

        std::string pkl;
        torch::jit::Pickler pickler([&](const char *b, size_t n) { pkl.append(b, n); }, nullptr,
                                    nullptr, nullptr, nullptr, /*tag_aggregates=*/false);
        pickler.protocol();
        pickler.pushIValue(dict);
        pickler.stop();

        caffe2::serialize::PyTorchStreamWriter zip([&](const void *b, size_t n) -> size_t {
            sink.write(b, n);
            return n;
        });
        zip.writeRecord("data.pkl", pkl.data(), pkl.size());
        const std::vector<at::Tensor> &storages = pickler.tensorData();
        for (size_t i = 0; i < storages.size(); i++) {
            std::string rec = "data/" + std::to_string(i);
            auto it = deferred.find(storages[i].storage().unsafeGetStorageImpl());
            if (it == deferred.end()) {
                const at::Tensor &s = storages[i];
                zip.writeRecord(rec, s.storage().data(), s.storage().nbytes());
            } else {
                at::Tensor c = it->second.to(at::kCPU).contiguous();
                if (!c.is_contiguous() || c.is_conj() || c.is_neg())
                    c = c.resolve_conj().resolve_neg().contiguous();
                zip.writeRecord(rec, c.data_ptr(), (size_t)c.numel() * c.element_size());
            }
        }
        zip.writeEndOfFile();
        return 0;
    });
    int e = sink.close();
    if (rc == 0 && e) rc = err_set(err, errlen, io_code(e), "%s: write: %s", path, strerror(e));
    return rc;
}

} /* extern "C" */

/* ---- dict files: a restricted unpickler for torch.save output ---- */

namespace
{

struct pk_val;
using pk_ref = std::shared_ptr<pk_val>;

struct pk_val {
    enum kind { NONE, BOOL, INT, FLOAT, STR, TUPLE, LIST, DICT, GLOBAL, STORAGE, TENSOR, MARKER };
    kind k = NONE;
    int64_t i = 0;
    double f = 0;
    std::string s, s2;         /* STR: s; GLOBAL: module s, name s2 */
    std::vector<pk_ref> items; /* TUPLE, LIST */
    std::vector<std::pair<pk_ref, pk_ref>> dict;
    at::Tensor t; /* STORAGE: 1-D of its dtype; TENSOR */
};

pk_ref pk_new(pk_val::kind k)
{
    auto v = std::make_shared<pk_val>();
    v->k = k;
    return v;
}

[[noreturn]] void pk_fail(const std::string &msg)
{
    throw ts_format_error(msg);
}

struct pk_reader {
    caffe2::serialize::PyTorchStreamReader &zip;
    const uint8_t *p;
    size_t n, pos = 0;
    std::vector<pk_ref> stack;
    std::vector<size_t> marks;
    std::unordered_map<uint32_t, pk_ref> memo;
    std::unordered_map<std::string, pk_ref> storages;

    pk_reader(caffe2::serialize::PyTorchStreamReader &z, const uint8_t *data, size_t size)
        : zip(z), p(data), n(size)
    {
    }

    const uint8_t *take(size_t k)
    {
        if (k > n - pos) pk_fail("data.pkl: truncated pickle");
        const uint8_t *r = p + pos;
        pos += k;
        return r;
    }
    uint64_t le(size_t k)
    {
        const uint8_t *b = take(k);
        uint64_t v = 0;
        for (size_t j = 0; j < k; j++)
            v |= (uint64_t)b[j] << (8 * j);
        return v;
    }
    std::string line()
    {
        size_t start = pos;
        while (pos < n && p[pos] != '\n')
            pos++;
        if (pos >= n) pk_fail("data.pkl: truncated pickle");
        return std::string((const char *)p + start, (pos++) - start);
    }
    pk_ref pop()
    {
        if (stack.empty() || (!marks.empty() && stack.size() <= marks.back()))
            pk_fail("data.pkl: pickle stack underflow");
        pk_ref v = stack.back();
        stack.pop_back();
        return v;
    }
    pk_ref &top()
    {
        if (stack.empty()) pk_fail("data.pkl: pickle stack underflow");
        return stack.back();
    }
    std::vector<pk_ref> pop_mark()
    {
        if (marks.empty()) pk_fail("data.pkl: pickle MARK missing");
        size_t m = marks.back();
        marks.pop_back();
        std::vector<pk_ref> v(stack.begin() + (long)m, stack.end());
        stack.resize(m);
        return v;
    }
    void memo_put(uint32_t id)
    {
        memo[id] = top();
    }
    pk_ref memo_get(uint32_t id)
    {
        auto it = memo.find(id);
        if (it == memo.end()) pk_fail("data.pkl: pickle memo entry missing");
        return it->second;
    }

    static at::ScalarType storage_dtype(const pk_ref &g)
    {
        static const std::pair<const char *, at::ScalarType> types[] = {
            {"FloatStorage", at::kFloat}, {"DoubleStorage", at::kDouble},
            {"HalfStorage", at::kHalf},   {"BFloat16Storage", at::kBFloat16},
            {"LongStorage", at::kLong},   {"IntStorage", at::kInt},
            {"ShortStorage", at::kShort}, {"CharStorage", at::kChar},
            {"ByteStorage", at::kByte},   {"BoolStorage", at::kBool},
        };
        if (g->k == pk_val::GLOBAL && g->s == "torch")
            for (const auto &ty : types)
                if (g->s2 == ty.first) return ty.second;
        pk_fail("data.pkl: unsupported storage type " +
                (g->k == pk_val::GLOBAL ? g->s + "." + g->s2 : std::string("?")));
    }

    /* ('storage', torch.XStorage, key, location, numel) -> the record's bytes */
    pk_ref persistent_load(const pk_ref &pid)
    {
        if (pid->k != pk_val::TUPLE || pid->items.size() != 5 || pid->items[0]->k != pk_val::STR ||
            pid->items[0]->s != "storage" || pid->items[2]->k != pk_val::STR ||
            pid->items[4]->k != pk_val::INT)
            pk_fail("data.pkl: unsupported persistent id");
        const std::string &key = pid->items[2]->s;
        auto it = storages.find(key);
        if (it != storages.end()) return it->second;
        at::ScalarType st = storage_dtype(pid->items[1]);
        int64_t numel = pid->items[4]->i;
        std::string rec = "data/" + key;
        if (numel < 0 || !zip.hasRecord(rec)) pk_fail("missing storage record " + rec);
        auto data = zip.getRecord(rec);
        size_t need = (size_t)numel * c10::elementSize(st);
        if (std::get<1>(data) < need) pk_fail("storage record " + rec + " is short");
        pk_ref v = pk_new(pk_val::STORAGE);
        if (numel == 0) {
            v->t = at::empty({0}, at::TensorOptions().dtype(st));
        } else {
            auto keep = std::make_shared<at::DataPtr>(std::move(std::get<0>(data)));
            v->t = at::from_blob(
                keep->get(), {numel}, [keep](void *) {}, at::TensorOptions().dtype(st));
        }
        storages.emplace(key, v);
        return v;
    }

    static std::vector<int64_t> ints(const pk_ref &v, const char *what)
    {
        if (v->k != pk_val::TUPLE && v->k != pk_val::LIST)
            pk_fail(std::string("data.pkl: tensor ") + what + " is not a tuple");
        std::vector<int64_t> r;
        for (const pk_ref &x : v->items) {
            if (x->k != pk_val::INT)
                pk_fail(std::string("data.pkl: tensor ") + what + " is not integers");
            r.push_back(x->i);
        }
        return r;
    }

    pk_ref reduce(const pk_ref &fn, const pk_ref &args)
    {
        if (fn->k != pk_val::GLOBAL || args->k != pk_val::TUPLE)
            pk_fail("data.pkl: unsupported REDUCE");
        const std::string q = fn->s + "." + fn->s2;
        const auto &a = args->items;
        if (q == "collections.OrderedDict" && a.empty()) return pk_new(pk_val::DICT);
        if ((q == "torch._utils._rebuild_tensor_v2" && a.size() >= 4) ||
            (q == "torch._utils._rebuild_tensor" && a.size() == 4)) {
            if (a[0]->k != pk_val::STORAGE || a[1]->k != pk_val::INT)
                pk_fail("data.pkl: bad tensor arguments");
            pk_ref v = pk_new(pk_val::TENSOR);
            v->t = a[0]->t.as_strided(ints(a[2], "size"), ints(a[3], "stride"), a[1]->i);
            return v;
        }
        if ((q == "torch._utils._rebuild_parameter" ||
             q == "torch._utils._rebuild_parameter_with_state") &&
            !a.empty() && a[0]->k == pk_val::TENSOR)
            return a[0];
        if (q == "torch.jit._pickle.restore_type_tag" && !a.empty()) return a[0];
        pk_fail("data.pkl: unsupported object " + q);
    }

    pk_ref run()
    {
        for (;;) {
            uint8_t op = *take(1);
            switch (op) {
            case 0x80:
                take(1);
                break; /* PROTO */
            case 0x95:
                take(8);
                break; /* FRAME */
            case '.':
                return pop(); /* STOP */
            case '(':
                marks.push_back(stack.size());
                break; /* MARK */
            case 'N':
                stack.push_back(pk_new(pk_val::NONE));
                break;
            case 0x88:
            case 0x89: { /* NEWTRUE/FALSE */
                pk_ref v = pk_new(pk_val::BOOL);
                v->i = op == 0x88;
                stack.push_back(v);
                break;
            }
            case 'J':
            case 'K':
            case 'M': { /* BININT, 1, 2 */
                pk_ref v = pk_new(pk_val::INT);
                v->i = op == 'J' ? (int64_t)(int32_t)le(4) : (int64_t)le(op == 'K' ? 1 : 2);
                stack.push_back(v);
                break;
            }
            case 0x8a: { /* LONG1 */
                size_t k = (size_t)le(1);
                if (k > 8) pk_fail("data.pkl: integer too large");
                uint64_t u = k ? le(k) : 0;
                if (k && k < 8 && (u >> (8 * k - 1)) & 1) u |= ~(uint64_t)0 << (8 * k);
                pk_ref v = pk_new(pk_val::INT);
                v->i = (int64_t)u;
                stack.push_back(v);
                break;
            }
            case 'G': { /* BINFLOAT */
                const uint8_t *b = take(8);
                uint64_t u = 0;
                for (int j = 0; j < 8; j++)
                    u = (u << 8) | b[j];
                pk_ref v = pk_new(pk_val::FLOAT);
                memcpy(&v->f, &u, sizeof u);
                stack.push_back(v);
                break;
            }
            case 'X':
            case 0x8c:
            case 0x8d: { /* BINUNICODE* */
                size_t k = (size_t)le(op == 'X' ? 4 : op == 0x8c ? 1 : 8);
                pk_ref v = pk_new(pk_val::STR);
                const uint8_t *b = take(k);
                v->s.assign((const char *)b, k);
                stack.push_back(v);
                break;
            }
            case 'c': { /* GLOBAL */
                pk_ref v = pk_new(pk_val::GLOBAL);
                v->s = line();
                v->s2 = line();
                stack.push_back(v);
                break;
            }
            case 0x93: { /* STACK_GLOBAL */
                pk_ref name = pop(), mod = pop();
                if (name->k != pk_val::STR || mod->k != pk_val::STR)
                    pk_fail("data.pkl: bad STACK_GLOBAL");
                pk_ref v = pk_new(pk_val::GLOBAL);
                v->s = mod->s;
                v->s2 = name->s;
                stack.push_back(v);
                break;
            }
            case 'q':
                memo_put((uint32_t)le(1));
                break; /* BINPUT */
            case 'r':
                memo_put((uint32_t)le(4));
                break; /* LONG_BINPUT */
            case 0x94:
                memo_put((uint32_t)memo.size());
                break; /* MEMOIZE */
            case 'h':
                stack.push_back(memo_get((uint32_t)le(1)));
                break;
            case 'j':
                stack.push_back(memo_get((uint32_t)le(4)));
                break;
            case '}':
                stack.push_back(pk_new(pk_val::DICT));
                break;
            case ']':
                stack.push_back(pk_new(pk_val::LIST));
                break;
            case ')':
                stack.push_back(pk_new(pk_val::TUPLE));
                break;
            case 't':
            case 'l':
            case 'd': { /* TUPLE, LIST, DICT */
                std::vector<pk_ref> xs = pop_mark();
                pk_ref v = pk_new(op == 't'   ? pk_val::TUPLE
                                  : op == 'l' ? pk_val::LIST
                                              : pk_val::DICT);
                if (op == 'd') {
                    if (xs.size() % 2) pk_fail("data.pkl: odd DICT");
                    for (size_t j = 0; j < xs.size(); j += 2)
                        v->dict.emplace_back(xs[j], xs[j + 1]);
                } else {
                    v->items = std::move(xs);
                }
                stack.push_back(v);
                break;
            }
            case 0x85:
            case 0x86:
            case 0x87: { /* TUPLE1..3 */
                size_t k = (size_t)(op - 0x84);
                pk_ref v = pk_new(pk_val::TUPLE);
                v->items.resize(k);
                for (size_t j = k; j-- > 0;)
                    v->items[j] = pop();
                stack.push_back(v);
                break;
            }
            case 's': { /* SETITEM */
                pk_ref val = pop(), key = pop();
                pk_ref &d = top();
                if (d->k != pk_val::DICT) pk_fail("data.pkl: SETITEM on a non-dict");
                d->dict.emplace_back(key, val);
                break;
            }
            case 'u': { /* SETITEMS */
                std::vector<pk_ref> xs = pop_mark();
                pk_ref &d = top();
                if (d->k != pk_val::DICT || xs.size() % 2) pk_fail("data.pkl: bad SETITEMS");
                for (size_t j = 0; j < xs.size(); j += 2)
                    d->dict.emplace_back(xs[j], xs[j + 1]);
                break;
            }
            case 'a': { /* APPEND */
                pk_ref val = pop();
                pk_ref &l = top();
                if (l->k != pk_val::LIST) pk_fail("data.pkl: APPEND on a non-list");
                l->items.push_back(val);
                break;
            }
            case 'e': { /* APPENDS */
                std::vector<pk_ref> xs = pop_mark();
                pk_ref &l = top();
                if (l->k != pk_val::LIST) pk_fail("data.pkl: APPENDS on a non-list");
                l->items.insert(l->items.end(), xs.begin(), xs.end());
                break;
            }
            case 'Q': { /* BINPERSID */
                pk_ref pid = pop();
                stack.push_back(persistent_load(pid));
                break;
            }
            case 'R': { /* REDUCE */
                pk_ref args = pop(), fn = pop();
                stack.push_back(reduce(fn, args));
                break;
            }
            case 'b': /* BUILD */
                /* state of an OrderedDict (_metadata) or a Parameter: unused */
                pop();
                top();
                break;
            case '0':
                pop();
                break; /* POP */
            case '1':
                pop_mark();
                break; /* POP_MARK */
            case '2':
                stack.push_back(top());
                break; /* DUP */
            default: {
                char hex[8];
                snprintf(hex, sizeof hex, "0x%02x", op);
                pk_fail(std::string("data.pkl: unsupported pickle opcode ") + hex);
            }
            }
        }
    }
};

} /* namespace */

extern "C" {

int ts_dict_open(const char *path, struct ts_dict **out, char *err, size_t errlen)
{
    if (!path || !out)
        return err_set(err, errlen, ERR_INVALID, "dict path and output are required");
    *out = nullptr;
    FILE *probe = fopen(path, "rb");
    if (!probe) {
        int e = errno;
        return err_set(err, errlen, io_code(e), "%s: %s", path, strerror(e));
    }
    fclose(probe);
    struct ts_dict *d = nullptr;
    int rc = ts_catch(err, errlen, ERR_FORMAT, path, [&]() -> int {
        std::unique_ptr<caffe2::serialize::PyTorchStreamReader> zip;
        try {
            zip.reset(new caffe2::serialize::PyTorchStreamReader(std::string(path)));
        } catch (const c10::Error &e) {
            return err_set(err, errlen, ERR_FORMAT,
                           "%s: not a torch.save zip file (legacy format or other file): %s", path,
                           one_line(e.what_without_backtrace()).c_str());
        }
        if (!zip->hasRecord("data.pkl"))
            return err_set(err, errlen, ERR_FORMAT, "%s: no data.pkl (not a torch.save file)",
                           path);
        if (zip->hasRecord("byteorder")) {
            auto bo = zip->getRecord("byteorder");
            std::string order((const char *)std::get<0>(bo).get(), std::get<1>(bo));
            if (order != "little")
                return err_set(err, errlen, ERR_UNSUPPORTED, "%s: byte order '%s'", path,
                               order.c_str());
        }
        if (zip->hasRecord("constants.pkl"))
            return err_set(err, errlen, ERR_FORMAT,
                           "%s: a TorchScript archive, not a torch.save dict of tensors", path);
        auto pkl = zip->getRecord("data.pkl");
        pk_reader rd(*zip, (const uint8_t *)std::get<0>(pkl).get(), std::get<1>(pkl));
        pk_ref root;
        try {
            root = rd.run();
        } catch (const ts_format_error &e) {
            return err_set(err, errlen, ERR_FORMAT, "%s: not a dict of name -> tensor: %s", path,
                           e.what());
        }
        if (root->k != pk_val::DICT)
            return err_set(err, errlen, ERR_FORMAT, "%s: holds no dict of name -> tensor", path);
        std::unique_ptr<ts_dict> dd(new ts_dict);
        for (const auto &kv : root->dict) {
            if (kv.first->k != pk_val::STR || kv.second->k != pk_val::TENSOR)
                return err_set(err, errlen, ERR_FORMAT,
                               "%s: holds a dict whose entries are not name -> tensor", path);
            dd->names.push_back(kv.first->s);
            dd->tensors.push_back(kv.second->t);
        }
        d = dd.release();
        return 0;
    });
    if (rc != 0) {
        delete d;
        return rc;
    }
    *out = d;
    return 0;
}

struct ts_dict *ts_dict_load(const char *path, char *err, size_t errlen)
{
    struct ts_dict *d = nullptr;
    return ts_dict_open(path, &d, err, errlen) == 0 ? d : nullptr;
}

void ts_dict_destroy(struct ts_dict *d)
{
    try {
        delete d;
    } catch (...) {
    }
}

size_t ts_dict_count(const struct ts_dict *d)
{
    return d ? d->names.size() : 0;
}

int ts_dict_info(const struct ts_dict *d, size_t i, struct ts_tensor_info *out)
{
    if (!d || i >= d->names.size()) return ERR_INVALID;
    try {
        return fill_info(d->names[i], d->tensors[i], 1, out);
    } catch (...) {
        return ERR_TORCH;
    }
}

long ts_dict_find(const struct ts_dict *d, const char *name)
{
    if (!d || !name) return -1;
    for (size_t i = 0; i < d->names.size(); i++)
        if (d->names[i] == name) return (long)i;
    return -1;
}

int ts_dict_read_u8(const struct ts_dict *d, size_t i, uint8_t *out, size_t n, char *err,
                    size_t errlen)
{
    if (!d || !out || i >= d->names.size())
        return err_set(err, errlen, ERR_INVALID, "read_u8: bad dict, index or output");
    const at::Tensor &t = d->tensors[i];
    const std::string &name = d->names[i];
    return ts_catch(err, errlen, ERR_TORCH, name.c_str(), [&]() -> int {
        if ((uint64_t)t.numel() > (uint64_t)n)
            return err_set(err, errlen, ERR_INVALID, "%s: %lld elements do not fit in %zu bytes",
                           name.c_str(), (long long)t.numel(), n);
        c10::InferenceMode guard;
        at::Tensor nz = t.ne(0).to(at::kByte).contiguous();
        if (nz.numel()) memcpy(out, nz.data_ptr<uint8_t>(), (size_t)nz.numel());
        return 0;
    });
}

} /* extern "C" */
