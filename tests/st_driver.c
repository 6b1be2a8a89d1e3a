/* st_driver.c - a command-line driver of core/model/safetensors for the Python oracle test */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "err.h"
#include "safetensors.h"

/*
 * st_driver read FILE [KEY...] -> "rc NAME MESSAGE", then on success one
 *                                 "tensor NAME DTYPE [d0,d1] NUMEL SHA256" line per
 *                                 tensor (sha256 of its bytes) and "meta KEY VALUE"
 *                                 for each KEY given that the file has
 * st_driver write FILE         -> writes the tensors test_safetensors_oracle.py expects
 *                                 (see sample()), with __metadata__ {"format": "pt"};
 *                                 prints "rc NAME MESSAGE"
 * Exit status: 0 when the command ran (the rc line tells the outcome), 2 on usage errors.
 */

static int report(int rc, const char *err)
{
    printf("%d %s %s\n", rc, rc ? err_name(rc) : "ok", rc ? err : "");
    return rc;
}

static void sha256_hex(const void *data, size_t n, char hex[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(n ? data : "", n, md, &len, EVP_sha256(), NULL);
    for (unsigned i = 0; i < len && i < 32; i++)
        sprintf(hex + 2 * i, "%02x", md[i]);
    hex[64] = '\0';
}

static int cmd_read(const char *path, int nkeys, char **keys)
{
    char err[1024] = "", hex[65];
    struct st_file *f = NULL;
    if (report(st_open(path, &f, err, sizeof err), err) != 0) return 0;
    for (size_t i = 0; i < st_count(f); i++) {
        const struct st_tensor *t = st_get(f, i);
        sha256_hex(t->data, t->nbytes, hex);
        printf("tensor %s %s [", t->name, st_dtype_name(t->dtype));
        for (int d = 0; d < t->ndim; d++)
            printf("%s%" PRId64, d ? "," : "", t->shape[d]);
        printf("] %" PRId64 " %s\n", t->numel, hex);
    }
    for (int k = 0; k < nkeys; k++)
        if (st_metadata(f, keys[k])) printf("meta %s %s\n", keys[k], st_metadata(f, keys[k]));
    st_close(f);
    return 0;
}

/* The sample the oracle test rebuilds in PyTorch: element k of each tensor
 * is its value below, row-major. */
struct sample {
    float f32[6];
    uint16_t f16[4], bf16[4];
    double f64[3];
    int64_t i64[4];
    int32_t i32[2];
    int16_t i16[2];
    int8_t i8[3];
    uint8_t u8[3], b8[4];
    float scalar;
};

static int get_sample(void *ud, size_t i, const void **data, size_t *nbytes, char *err,
                      size_t errlen)
{
    const struct sample *s = ud;
    const void *p[] = {s->f32, s->f16, s->bf16, s->f64, s->i64,     s->i32,
                       s->i16, s->i8,  s->u8,   s->b8,  &s->scalar, NULL};
    const size_t n[] = {sizeof s->f32, sizeof s->f16, sizeof s->bf16,   sizeof s->f64,
                        sizeof s->i64, sizeof s->i32, sizeof s->i16,    sizeof s->i8,
                        sizeof s->u8,  sizeof s->b8,  sizeof s->scalar, 0};
    if (i >= sizeof n / sizeof n[0]) return err_set(err, errlen, ERR_INTERNAL, "entry %zu", i);
    *data = p[i];
    *nbytes = n[i];
    return 0;
}

static int cmd_write(const char *path)
{
    char err[1024] = "";
    static const int64_t s23[] = {2, 3}, s4[] = {4}, s22[] = {2, 2}, s3[] = {3}, s2[] = {2},
                         s40[] = {4, 0}, s14[] = {1, 4};
    static const struct st_entry entries[] = {
        {"bert.encoder.layer.0.attention.self.query.weight", TS_FLOAT32, 2, s23},
        {"half", TS_FLOAT16, 1, s4},
        {"brain", TS_BFLOAT16, 2, s22},
        {"double", TS_FLOAT64, 1, s3},
        {"bert.embeddings.position_ids", TS_INT64, 2, s14},
        {"i32", TS_INT32, 1, s2},
        {"i16", TS_INT16, 1, s2},
        {"i8", TS_INT8, 1, s3},
        {"u8", TS_UINT8, 1, s3},
        {"mask", TS_BOOL, 2, s22},
        {"scalar", TS_FLOAT32, 0, NULL},
        {"empty", TS_FLOAT32, 2, s40},
    };
    static const char *const meta[] = {"format", "pt", NULL};
    struct sample s = {
        .f32 = {-1.0f, -0.5f, 0.0f, 0.5f, 1.0f, 1.5f},
        .f16 = {0x3c00, 0xc000, 0x0000, 0x7bff},  /* 1, -2, 0, 65504 */
        .bf16 = {0x3f80, 0xc040, 0x0000, 0x4049}, /* 1, -3, 0, 3.140625 */
        .f64 = {3.141592653589793, -1e300, 5e-324},
        .i64 = {INT64_MIN, -1, 0, INT64_MAX},
        .i32 = {INT32_MIN, INT32_MAX},
        .i16 = {-300, 300},
        .i8 = {-128, 0, 127},
        .u8 = {0, 128, 255},
        .b8 = {1, 0, 0, 1},
        .scalar = 42.0f,
    };
    report(st_write(path, entries, sizeof entries / sizeof entries[0], meta, get_sample, &s, err,
                    sizeof err),
           err);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && !strcmp(argv[1], "read")) return cmd_read(argv[2], argc - 3, argv + 3);
    if (argc == 3 && !strcmp(argv[1], "write")) return cmd_write(argv[2]);
    fprintf(stderr, "usage: st_driver read FILE [KEY...] | st_driver write FILE\n");
    return 2;
}
