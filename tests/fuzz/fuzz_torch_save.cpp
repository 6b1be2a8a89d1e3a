/* fuzz_torch_save.cpp - libFuzzer target: the torch.save reader, on a data.pkl of any bytes or a
 * whole zip */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "torch_internal.hpp"

#include "fuzz_file.h"

/*
 * Input: a whole file when it starts like a zip ("PK\3\4"): written to a
 * memfd and read through ts_dict_open, as a job reads a mask or state_dict.
 * Anything else is data.pkl: put in a zip made here, with records data/0 to
 * data/3 of 64, 8, 0 and 256 bytes for its persistent ids to name, and read
 * with torch_save_read_zip, so the fuzzer works on the unpickler rather than
 * on finding a zip.
 */

/* torch_shim.cpp's, which ts_catch calls on CUDA out-of-memory: nothing to
 * empty here, and linking the shim would drag in the whole model. */
extern "C" void ts_cuda_empty_cache(void) {}

static const size_t record_sizes[] = {64, 8, 0, 256};
#define MAX_RECORD 256
static struct fuzz_file zip_file;

extern "C" int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_file_open(&zip_file, "model.pth");
    return 0;
}

/* The bytes a strided view reaches, checked against its storage (and, for
 * the records made here, against the largest record), then read through
 * ASan's memcpy so a view past its record is caught. */
static void check_view(const std::string &name, const at::Tensor &t, size_t max_storage)
{
    if (t.numel() == 0) return;
    int64_t last = t.storage_offset(), step;
    for (int64_t d = 0; d < t.dim(); d++) {
        if (t.stride(d) < 0 || __builtin_mul_overflow(t.size(d) - 1, t.stride(d), &step) ||
            __builtin_add_overflow(last, step, &last))
            FAIL("%s: stride %lld or extent overflows", name.c_str(), (long long)t.stride(d));
    }
    size_t es = (size_t)t.element_size(), nbytes = t.storage().nbytes();
    size_t begin = (size_t)t.storage_offset() * es, end = ((size_t)last + 1) * es;
    if (end > nbytes || nbytes > max_storage)
        FAIL("%s: view reaches byte %zu of a %zu-byte storage (records hold at most %zu)",
             name.c_str(), end, nbytes, max_storage);
    std::vector<unsigned char> copy(end - begin);
    memcpy(copy.data(), (const unsigned char *)t.storage().data() + begin, end - begin);
}

static void read_pickle(const uint8_t *data, size_t size)
{
    std::string zip;
    {
        caffe2::serialize::PyTorchStreamWriter w([&](const void *b, size_t n) -> size_t {
            zip.append((const char *)b, n);
            return n;
        });
        w.writeRecord("data.pkl", data, size);
        w.writeRecord("byteorder", "little", 6);
        unsigned char rec[MAX_RECORD];
        for (size_t i = 0; i < sizeof rec; i++)
            rec[i] = (unsigned char)(i * 37 + 1);
        for (size_t k = 0; k < sizeof record_sizes / sizeof record_sizes[0]; k++)
            w.writeRecord("data/" + std::to_string(k), rec, record_sizes[k]);
        w.writeEndOfFile();
    }
    std::istringstream in(zip);
    caffe2::serialize::PyTorchStreamReader reader(&in);
    std::vector<ts::named_tensor> out;
    char err[1024];
    if (ts::torch_save_read_zip(reader, "fuzz.pth", out, err, sizeof err) != 0) {
        if (!out.empty())
            FAIL("torch_save_read_zip failed (%s) with %zu tensors out", err, out.size());
        return;
    }
    std::set<std::string> names;
    for (const ts::named_tensor &x : out) {
        if (x.name.find('\0') != std::string::npos)
            FAIL("a name with a NUL byte was read (%zu bytes)", x.name.size());
        if (!names.insert(x.name).second) FAIL("%s: read twice", x.name.c_str());
        check_view(x.name, x.t, MAX_RECORD);
    }
}

static void read_zip(const uint8_t *data, size_t size)
{
    char err[1024];
    struct ts_dict *d = nullptr;
    const char *path = fuzz_file_set(&zip_file, data, size);
    int rc = ts_dict_open(path, &d, err, sizeof err);
    if (rc) {
        if (d) FAIL("ts_dict_open failed (%d) but set *out", rc);
        return;
    }
    for (size_t i = 0; i < ts_dict_count(d); i++) {
        struct ts_tensor_info info = {};
        if (ts_dict_info(d, i, &info) == 0 && info.numel >= 0 && info.numel <= (1 << 20)) {
            std::vector<uint8_t> u8((size_t)info.numel + 1);
            (void)ts_dict_read_u8(d, i, u8.data(), u8.size(), err, sizeof err);
        }
        if (info.name && ts_dict_find(d, info.name) < 0)
            FAIL("ts_dict_find does not find tensor %zu", i);
    }
    ts_dict_destroy(d);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size >= 4 && !memcmp(data, "PK\x03\x04", 4))
        read_zip(data, size);
    else
        read_pickle(data, size);
    return 0;
}
