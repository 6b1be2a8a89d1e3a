/* test_torch_shim.c - the libtorch C API on small models made by make_test_models.py */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ct.h"
#include "err.h"
#include "torch_shim.h"

/* CHECK_INT evaluates its argument again to print it: calls go through this. */
#define CHECK_RC(expr, want)                                                                       \
    do {                                                                                           \
        long long rc_ = (long long)(expr);                                                         \
        CHECK(rc_ == (long long)(want), "%s: expected %lld, got %lld", #expr, (long long)(want),   \
              rc_);                                                                                \
    } while (0)

static char dir[256];

static const char *path_in(const char *name)
{
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

/* Runs make_test_models.py (found via PRUNERD_TESTS) into a fresh temp dir. */
static int make_models(void)
{
    const char *src = getenv("PRUNERD_TESTS");
    if (!src) {
        fprintf(stderr, "PRUNERD_TESTS (the tests/ source folder) is not set\n");
        return -1;
    }
    snprintf(dir, sizeof dir, "%s/prunerd-shim-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return -1;
    }
    const char *py = getenv("PRUNERD_PYTHON");
    if (!py || !*py) {
        fprintf(stderr, "PRUNERD_PYTHON is not set: run under meson test (a Python with torch)\n");
        return -1;
    }
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' '%s/make_test_models.py' '%s'", py, src, dir);
    int rc = system(cmd);
    if (rc != 0) {
        fprintf(stderr, "'%s' failed (%d): a Python with torch is required\n", cmd, rc);
        return -1;
    }
    return 0;
}

static void remove_dir(void)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (dir[0] && system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

/* names_<m>.txt: "name dtype is_param ndim shape..." in the order Python gives. */
static void check_names(const struct ts_model *m, const char *model)
{
    char fname[64];
    snprintf(fname, sizeof fname, "names_%s.txt", model);
    FILE *f = fopen(path_in(fname), "r");
    CHECK(f != NULL, "open %s", fname);
    if (!f) return;
    char name[256], dtype[32];
    int is_param, ndim;
    size_t i = 0;
    while (fscanf(f, "%255s %31s %d %d", name, dtype, &is_param, &ndim) == 4) {
        int64_t shape[TS_MAX_DIMS] = {0};
        for (int d = 0; d < ndim && d < TS_MAX_DIMS; d++)
            if (fscanf(f, "%" SCNd64, &shape[d]) != 1) break;
        struct ts_tensor_info info;
        int rc = ts_model_info(m, i, &info);
        CHECK_INT(rc, 0);
        if (rc == 0) {
            CHECK(!strcmp(info.name, name), "%s[%zu]: expected %s, got %s", model, i, name,
                  info.name);
            CHECK(!strcmp(ts_dtype_name(info.dtype), dtype), "%s: dtype %s, got %s", name, dtype,
                  ts_dtype_name(info.dtype));
            CHECK_INT(info.is_parameter, is_param);
            CHECK_INT(info.ndim, ndim);
            int64_t numel = 1;
            for (int d = 0; d < ndim; d++) {
                CHECK_INT(info.shape[d], shape[d]);
                numel *= shape[d];
            }
            CHECK_INT(info.numel, numel);
            CHECK_INT(info.is_cuda, 0);
            CHECK_RC(ts_model_find(m, name), (long)i);
        }
        i++;
    }
    fclose(f);
    CHECK_RC(ts_model_count(m), i);
}

/* logits_<m>.txt: "B L C", ids, mask, logits from Python. */
static void check_forward(struct ts_model *m, const char *model)
{
    char fname[64];
    snprintf(fname, sizeof fname, "logits_%s.txt", model);
    FILE *f = fopen(path_in(fname), "r");
    CHECK(f != NULL, "open %s", fname);
    if (!f) return;
    int64_t b, l;
    int c;
    int got_n = fscanf(f, "%" SCNd64 " %" SCNd64 " %d", &b, &l, &c);
    CHECK_INT(got_n, 3);
    if (got_n != 3 || b <= 0 || l <= 0 || c <= 0) {
        fclose(f);
        return;
    }
    int64_t *ids = calloc((size_t)(b * l), sizeof *ids);
    int64_t *mask = calloc((size_t)(b * l), sizeof *mask);
    float *want = calloc((size_t)(b * c), sizeof *want);
    float *got = calloc((size_t)(b * c), sizeof *got);
    int nread = 0;
    for (int64_t i = 0; i < b * l; i++)
        nread += fscanf(f, "%" SCNd64, &ids[i]) == 1;
    for (int64_t i = 0; i < b * l; i++)
        nread += fscanf(f, "%" SCNd64, &mask[i]) == 1;
    for (int64_t i = 0; i < b * c; i++)
        nread += fscanf(f, "%f", &want[i]) == 1;
    CHECK_INT(nread, 2 * b * l + b * c);
    fclose(f);

    char err[256] = "";
    int ncls = 0;
    int rc = ts_model_forward(m, ids, mask, b, l, got, (size_t)(b * c), &ncls, err, sizeof err);
    CHECK(rc == 0, "%s forward: %d %s", model, rc, err);
    CHECK_INT(ncls, c);
    double worst = 0;
    for (int64_t i = 0; i < b * c; i++)
        worst = fmax(worst, fabs((double)got[i] - want[i]));
    CHECK(worst <= 1e-5, "%s: logits differ from Python by %g", model, worst);

    rc = ts_model_forward(m, ids, mask, b, l, got, (size_t)(b * c - 1), &ncls, err, sizeof err);
    CHECK(rc == ERR_INVALID, "%s: small output buffer gave %d %s", model, rc, err);
    rc = ts_model_forward(m, ids, mask, 0, l, got, (size_t)(b * c), &ncls, err, sizeof err);
    CHECK_INT(rc, ERR_INVALID);
    free(ids);
    free(mask);
    free(want);
    free(got);
}

static int64_t zeros_of(const struct ts_model *m, long i)
{
    int64_t z = -1;
    char err[256] = "";
    int rc = ts_model_count_zeros(m, (size_t)i, &z, err, sizeof err);
    CHECK(rc == 0, "count_zeros: %d %s", rc, err);
    return z;
}

/* Zeroes the first half of tensor i through a mapping; returns its numel. */
static int64_t zero_first_half(struct ts_model *m, long i, int write_back)
{
    struct ts_tensor_info info;
    char err[256] = "";
    CHECK_RC(ts_model_info(m, (size_t)i, &info), 0);
    float *p = NULL;
    int rc = ts_model_map_f32(m, (size_t)i, &p, err, sizeof err);
    CHECK(rc == 0 && p, "map %s: %d %s", info.name, rc, err);
    if (rc != 0) return info.numel;
    for (int64_t k = 0; k < info.numel / 2; k++)
        p[k] = 0.0f;
    for (int64_t k = info.numel / 2; k < info.numel; k++)
        if (p[k] == 0.0f) p[k] = 1.0f; /* keep the count exact */
    rc = ts_model_unmap_f32(m, (size_t)i, write_back, err, sizeof err);
    CHECK(rc == 0, "unmap %s: %d %s", info.name, rc, err);
    return info.numel;
}

static void test_library(void)
{
    int maj, min, pat;
    const char *v = ts_libtorch_version();
    CHECK(sscanf(v, "%d.%d.%d", &maj, &min, &pat) == 3, "version '%s'", v);
    CHECK(ts_cuda_available() == 0 || ts_cuda_available() == 1, "cuda %d", ts_cuda_available());
    CHECK(!strcmp(ts_dtype_name(TS_BFLOAT16), "bfloat16"), "%s", ts_dtype_name(TS_BFLOAT16));
    CHECK(ts_dtype_is_float(TS_FLOAT16) && !ts_dtype_is_float(TS_BOOL), "is_float");
    int before = ts_get_threads();
    ts_set_threads(2);
    CHECK_RC(ts_get_threads(), 2);
    ts_set_threads(0);
    CHECK_RC(ts_get_threads(), 2);
    ts_set_threads(before);
}

/* ts_model_open / ts_dict_open, holding them to their contract: 0 with an
 * object, or a code with NULL. */
static struct ts_model *load_model(const char *path, const char *device, char *err, size_t errlen)
{
    struct ts_model *m = (struct ts_model *)&m; /* not NULL: ts_model_open must set it */
    int rc = ts_model_open(path, device, &m, err, errlen);
    CHECK((rc == 0) == (m != NULL), "ts_model_open(%s) returned %d with model %p", path, rc,
          (void *)m);
    return m;
}

static struct ts_dict *load_dict(const char *path, char *err, size_t errlen)
{
    struct ts_dict *d = (struct ts_dict *)&d;
    int rc = ts_dict_open(path, &d, err, errlen);
    CHECK((rc == 0) == (d != NULL), "ts_dict_open(%s) returned %d with dict %p", path, rc,
          (void *)d);
    return d;
}

static void test_load_errors(void)
{
    char err[512] = "";
    struct ts_model *m = load_model(path_in("frozen.pt"), "cpu", err, sizeof err);
    CHECK(m == NULL && strstr(err, "frozen TorchScript module"), "frozen: '%s'", err);
    ts_model_destroy(m);
    m = load_model(path_in("garbage.pt"), "cpu", err, sizeof err);
    CHECK(m == NULL && strstr(err, "not a TorchScript archive"), "garbage: '%s'", err);
    m = load_model(path_in("masks_dict.pth"), "cpu", err, sizeof err);
    CHECK(m == NULL && strstr(err, "not a TorchScript archive"), "state_dict as model: '%s'", err);
    m = load_model(path_in("missing.pt"), "cpu", err, sizeof err);
    CHECK(m == NULL && strstr(err, "missing.pt"), "missing: '%s'", err);
    struct ts_dict *d = load_dict(path_in("name_nul.pth"), err, sizeof err);
    CHECK(d == NULL && strstr(err, "name holds a NUL byte"), "NUL in a name: '%s'", err);
    ts_dict_destroy(d);
    m = load_model(path_in("tiny_bert.pt"), "tpu:x", err, sizeof err);
    CHECK(m == NULL && strstr(err, "tpu:x"), "bad device: '%s'", err);
    if (!ts_cuda_available()) {
        m = load_model(path_in("tiny_bert.pt"), "cuda", err, sizeof err);
        CHECK(m == NULL && strstr(err, "CUDA is not available"), "cuda: '%s'", err);
    }
    ts_model_destroy(NULL);
}

/* The codes behind those messages, through ts_model_open / ts_dict_open. */
static void test_load_codes(void)
{
    struct {
        const char *file, *device;
        int code;
    } cases[] = {
        {"frozen.pt", "cpu", ERR_UNSUPPORTED},
        {"garbage.pt", "cpu", ERR_FORMAT},
        {"masks_dict.pth", "cpu", ERR_FORMAT},
        {"missing.pt", "cpu", ERR_NOTFOUND},
        {"tiny_bert.pt", "tpu:x", ERR_INVALID},
        {"tiny_bert.pt", "cuda:7", ERR_UNSUPPORTED},
        {"tiny_bert.pt", "cpu", 0},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char err[512] = "";
        struct ts_model *m = (struct ts_model *)&cases[k];
        int rc = ts_model_open(path_in(cases[k].file), cases[k].device, &m, err, sizeof err);
        CHECK(rc == cases[k].code, "%s on %s: want %s, got %s (%s)", cases[k].file, cases[k].device,
              err_name(cases[k].code), err_name(rc), err);
        CHECK((m != NULL) == (rc == 0), "%s: model pointer %p with rc %d", cases[k].file, (void *)m,
              rc);
        ts_model_destroy(m);
    }
    struct {
        const char *file;
        int code;
    } dicts[] = {
        {"list.pth", ERR_FORMAT},     {"legacy.pth", ERR_FORMAT},    {"garbage.pt", ERR_FORMAT},
        {"tiny_bert.pt", ERR_FORMAT}, {"missing.pth", ERR_NOTFOUND}, {"masks_od.pth", 0},
        {"name_nul.pth", ERR_FORMAT},
    };
    for (size_t k = 0; k < sizeof dicts / sizeof dicts[0]; k++) {
        char err[512] = "";
        struct ts_dict *d = NULL;
        int rc = ts_dict_open(path_in(dicts[k].file), &d, err, sizeof err);
        CHECK(rc == dicts[k].code, "%s: want %s, got %s (%s)", dicts[k].file,
              err_name(dicts[k].code), err_name(rc), err);
        CHECK((d != NULL) == (rc == 0), "%s: dict pointer with rc %d", dicts[k].file, rc);
        ts_dict_destroy(d);
    }
}

static void test_tiny_bert(void)
{
    char err[512] = "";
    struct ts_model *m = load_model(path_in("tiny_bert.pt"), "cpu", err, sizeof err);
    CHECK(m != NULL, "load tiny_bert: %s", err);
    if (!m) return;
    CHECK(!strcmp(ts_model_device(m), "cpu"), "device %s", ts_model_device(m));
    check_names(m, "tiny_bert");
    check_forward(m, "tiny_bert");
    CHECK_RC(ts_model_find(m, "bert.nope"), -1);

    long q = ts_model_find(m, "bert.encoder.layer.0.attention.self.query.weight");
    CHECK(q >= 0, "query weight index %ld", q);
    CHECK_RC(zeros_of(m, q), 0);

    /* zero-copy: writes land in the model even without write_back */
    int64_t n = zero_first_half(m, q, 0);
    CHECK_RC(zeros_of(m, q), n / 2);

    float *p = NULL;
    CHECK_RC(ts_model_map_f32(m, (size_t)q, &p, err, sizeof err), 0);
    CHECK_RC(ts_model_map_f32(m, (size_t)q, &p, err, sizeof err), ERR_INVALID);
    CHECK_RC(ts_model_unmap_f32(m, (size_t)q, 1, err, sizeof err), 0);
    CHECK_RC(ts_model_unmap_f32(m, (size_t)q, 1, err, sizeof err), ERR_INVALID);

    long pos = ts_model_find(m, "bert.embeddings.position_ids");
    CHECK(pos >= 0, "position_ids index %ld", pos);
    CHECK_RC(ts_model_map_f32(m, (size_t)pos, &p, err, sizeof err), ERR_INVALID);
    CHECK(strstr(err, "int64") != NULL, "int buffer map: '%s'", err);
    CHECK_RC(zeros_of(m, pos), 1); /* arange starts at 0 */
    CHECK_RC(ts_model_map_f32(m, 100000, &p, err, sizeof err), ERR_INVALID);

    /* pruned weights change the logits: the forward really uses the model */
    float logits[64];
    int ncls = 0;
    int64_t ids[7] = {2, 3, 4, 5, 6, 7, 8}, mask[7] = {1, 1, 1, 1, 1, 1, 1};
    CHECK_RC(ts_model_forward(m, ids, mask, 1, 7, logits, 64, &ncls, err, sizeof err), 0);

    /* save both ways and read them back */
    const char *ts_out = path_in("tiny_bert_saved.pt");
    const char *sd_out = path_in("tiny_bert_saved.pth");
    CHECK_RC(ts_model_save_torchscript(m, ts_out, err, sizeof err), 0);
    CHECK_RC(ts_model_save_state_dict(m, sd_out, err, sizeof err), 0);
    int rc = ts_model_save_state_dict(m, "/nonexistent-dir/x.pth", err, sizeof err);
    CHECK(rc == ERR_NOTFOUND, "save to a missing dir: %d %s", rc, err);
    rc = ts_model_save_torchscript(m, "/nonexistent-dir/x.pt", err, sizeof err);
    CHECK(rc == ERR_NOTFOUND, "save to a missing dir: %d %s", rc, err);
    if (access("/dev/full", W_OK) == 0) {
        rc = ts_model_save_state_dict(m, "/dev/full", err, sizeof err);
        CHECK(rc == ERR_NOSPACE, "save to /dev/full: %d %s", rc, err);
        rc = ts_model_save_torchscript(m, "/dev/full", err, sizeof err);
        CHECK(rc == ERR_NOSPACE, "save to /dev/full: %d %s", rc, err);
    }

    struct ts_model *m2 = load_model(ts_out, "cpu", err, sizeof err);
    CHECK(m2 != NULL, "reload saved TorchScript: %s", err);
    if (m2) {
        CHECK_RC(ts_model_count(m2), ts_model_count(m));
        CHECK_RC(
            zeros_of(m2, ts_model_find(m2, "bert.encoder.layer.0.attention.self.query.weight")),
            n / 2);
        float logits2[64];
        int ncls2 = 0;
        CHECK_RC(ts_model_forward(m2, ids, mask, 1, 7, logits2, 64, &ncls2, err, sizeof err), 0);
        CHECK_INT(ncls2, ncls);
        CHECK(!memcmp(logits, logits2, sizeof(float) * (size_t)ncls), "reloaded logits differ");
        ts_model_destroy(m2);
    }

    struct ts_dict *d = load_dict(sd_out, err, sizeof err);
    CHECK(d != NULL, "state_dict via ts_dict_load: %s", err);
    if (d) {
        CHECK_RC(ts_dict_count(d), ts_model_count(m));
        for (size_t i = 0; i < ts_model_count(m); i++) {
            struct ts_tensor_info a, b;
            ts_model_info(m, i, &a);
            long j = ts_dict_find(d, a.name);
            CHECK(j >= 0, "%s missing from the state_dict", a.name);
            if (j < 0) continue;
            ts_dict_info(d, (size_t)j, &b);
            CHECK(a.dtype == b.dtype && a.numel == b.numel && a.ndim == b.ndim, "%s differs",
                  a.name);
            uint8_t *bits = malloc((size_t)b.numel + 1);
            CHECK_RC(ts_dict_read_u8(d, (size_t)j, bits, (size_t)b.numel, err, sizeof err), 0);
            int64_t z = 0;
            for (int64_t k = 0; k < b.numel; k++)
                z += !bits[k];
            CHECK(z == zeros_of(m, (long)i), "%s: %lld zeros in the file", a.name, (long long)z);
            free(bits);
        }
        ts_dict_destroy(d);
    }
    ts_model_destroy(m);
}

static void test_other_outputs(void)
{
    const char *models[] = {"tuple", "dict", "half"};
    for (size_t k = 0; k < 3; k++) {
        char err[512] = "", fname[64];
        snprintf(fname, sizeof fname, "%s.pt", models[k]);
        struct ts_model *m = load_model(path_in(fname), "cpu", err, sizeof err);
        CHECK(m != NULL, "load %s: %s", fname, err);
        if (!m) continue;
        check_names(m, models[k]);
        check_forward(m, models[k]);
        ts_model_destroy(m);
    }
}

/* Copies (float16, bfloat16, float64, non-contiguous) write back only when asked. */
static void test_copies(void)
{
    char err[512] = "";
    struct ts_model *m = load_model(path_in("half.pt"), "cpu", err, sizeof err);
    CHECK(m != NULL, "load half.pt: %s", err);
    if (!m) return;
    const char *names[] = {"emb.weight", "proj", "bias"};
    for (size_t k = 0; k < 3; k++) {
        long i = ts_model_find(m, names[k]);
        CHECK(i >= 0, "%s", names[k]);
        if (i < 0) continue;
        int64_t z0 = zeros_of(m, i);
        zero_first_half(m, i, 0);
        CHECK(zeros_of(m, i) == z0, "%s: write_back=0 changed the tensor", names[k]);
        int64_t n = zero_first_half(m, i, 1);
        CHECK(zeros_of(m, i) == n / 2, "%s: %lld zeros after write-back, want %lld", names[k],
              (long long)zeros_of(m, i), (long long)(n / 2));
    }
    ts_model_destroy(m);

    m = load_model(path_in("tuple.pt"), "cpu", err, sizeof err);
    CHECK(m != NULL, "load tuple.pt: %s", err);
    if (!m) return;
    long w = ts_model_find(m, "w"); /* a transposed parameter, logical shape [16, 4] */
    CHECK(w >= 0, "w index %ld", w);
    float *p = NULL, saved[64];
    int64_t z0 = zeros_of(m, w);
    CHECK_RC(ts_model_map_f32(m, (size_t)w, &p, err, sizeof err), 0);
    if (p) {
        memcpy(saved, p, sizeof saved);
        CHECK(saved[1] != 0.0f, "w[0][1] is %g", saved[1]);
        p[1] = 0.0f;
        saved[1] = 0.0f;
    }
    CHECK_RC(ts_model_unmap_f32(m, (size_t)w, 1, err, sizeof err), 0);
    CHECK_RC(zeros_of(m, w), z0 + 1);
    p = NULL;
    CHECK_RC(ts_model_map_f32(m, (size_t)w, &p, err, sizeof err), 0);
    CHECK(p && !memcmp(p, saved, sizeof saved), "w after write-back differs (layout)");
    CHECK_RC(ts_model_unmap_f32(m, (size_t)w, 0, err, sizeof err), 0);
    ts_model_destroy(m);
}

static void check_masks(const char *file)
{
    char err[512] = "", txt[64];
    struct ts_dict *d = load_dict(path_in(file), err, sizeof err);
    CHECK(d != NULL, "load %s: %s", file, err);
    if (!d) return;
    snprintf(txt, sizeof txt, "masks_%.40s", file);
    strcpy(strstr(txt, ".pth"), ".txt");
    FILE *f = fopen(path_in(txt), "r");
    CHECK(f != NULL, "open %s", txt);
    char name[256], dtype[32];
    static char bits[65536];
    long long numel;
    size_t i = 0;
    while (f && fscanf(f, "%255s %31s %lld %65535s", name, dtype, &numel, bits) == 4) {
        struct ts_tensor_info info;
        CHECK_RC(ts_dict_info(d, i, &info), 0);
        CHECK(!strcmp(info.name, name), "%s[%zu]: %s, want %s", file, i, info.name, name);
        CHECK(!strcmp(ts_dtype_name(info.dtype), dtype), "%s: %s, want %s", name,
              ts_dtype_name(info.dtype), dtype);
        CHECK_INT(info.numel, numel);
        CHECK_INT(info.is_parameter, 1);
        CHECK_RC(ts_dict_find(d, name), (long)i);
        uint8_t *got = malloc((size_t)numel + 1);
        CHECK_RC(ts_dict_read_u8(d, i, got, (size_t)numel, err, sizeof err), 0);
        int same = 1;
        for (long long k = 0; k < numel; k++)
            same &= got[k] == (bits[k] == '1');
        CHECK(same, "%s: non-zero pattern differs from Python", name);
        if (numel > 0)
            CHECK_RC(ts_dict_read_u8(d, i, got, (size_t)numel - 1, err, sizeof err), ERR_INVALID);
        free(got);
        i++;
    }
    if (f) fclose(f);
    CHECK(i > 0 && ts_dict_count(d) == i, "%s: %zu entries, want %zu", file, ts_dict_count(d), i);
    CHECK_RC(ts_dict_find(d, "nope"), -1);
    ts_dict_destroy(d);
}

static void test_dicts(void)
{
    check_masks("masks_dict.pth");
    check_masks("masks_od.pth");
    check_masks("masks_p4.pth");
    check_masks("masks_twice.pth");
    ts_dict_destroy(NULL);
}

int main(void)
{
    if (make_models() != 0) {
        CHECK(0, "could not make the test models");
        return ct_done("test_torch_shim");
    }
    test_library();
    test_load_errors();
    test_load_codes();
    test_tiny_bert();
    test_other_outputs();
    test_copies();
    test_dicts();
    remove_dir();
    return ct_done("test_torch_shim");
}
