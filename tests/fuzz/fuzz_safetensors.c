/* fuzz_safetensors.c - libFuzzer target: st_open on any bytes, the tensors walked, written and read
 * back */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "err.h"
#include "safetensors.h"

#include "fuzz_file.h"

static struct fuzz_file in_file, out_file;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_file_open(&in_file, "model.safetensors");
    fuzz_file_open(&out_file, "resaved.safetensors");
    return 0;
}

static int tensor_bytes(void *ud, size_t i, const void **data, size_t *nbytes, char *err,
                        size_t errlen)
{
    (void)err;
    (void)errlen;
    const struct st_tensor *t = st_get(ud, i);
    *data = t->data;
    *nbytes = t->nbytes;
    return 0;
}

/* The "__metadata__" of a header st_open took, as st_write's key, value list. */
static const char **metadata_of(const uint8_t *data, size_t size, json_t **header)
{
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | data[i];
    *header = json_loadb((const char *)data + 8, (size_t)hlen, 0, NULL);
    json_t *m = json_object_get(*header, "__metadata__");
    const char **kv = calloc(2 * json_object_size(m) + 1, sizeof *kv);
    const char *key;
    json_t *v;
    size_t k = 0;
    (void)size;
    if (!kv) abort();
    json_object_foreach(m, key, v)
    {
        kv[k++] = key;
        kv[k++] = json_string_value(v);
    }
    return kv;
}

/* Writes f out again (tensors in header order, the same metadata) and
 * checks st_open reads the copy as the same file. */
static void resave(const struct st_file *f, const uint8_t *data, size_t size)
{
    char err[1024];
    size_t n = st_count(f);
    struct st_entry *ents = calloc(n ? n : 1, sizeof *ents);
    json_t *header = NULL;
    const char **meta = metadata_of(data, size, &header);
    if (!ents) abort();
    for (size_t i = 0; i < n; i++) {
        const struct st_tensor *t = st_get(f, i);
        ents[i] = (struct st_entry){t->name, t->dtype, t->ndim, t->shape};
    }
    if (st_write(out_file.path, ents, n, meta, tensor_bytes, (void *)f, err, sizeof err))
        FAIL("st_write of a file st_open took: %s", err);
    struct st_file *g = NULL;
    if (st_open(out_file.path, &g, err, sizeof err)) FAIL("st_open of st_write's copy: %s", err);
    if (st_count(g) != n) FAIL("copy has %zu tensors, not %zu", st_count(g), n);
    for (size_t i = 0; i < n; i++) {
        const struct st_tensor *a = st_get(f, i), *b = st_get(g, i);
        if (strcmp(a->name, b->name) || a->dtype != b->dtype || a->ndim != b->ndim ||
            memcmp(a->shape, b->shape, sizeof a->shape[0] * (size_t)a->ndim) ||
            a->nbytes != b->nbytes || (a->nbytes && memcmp(a->data, b->data, a->nbytes)))
            FAIL("tensor %zu '%s' differs in the copy", i, a->name);
    }
    for (size_t k = 0; meta[k]; k += 2) {
        const char *v = st_metadata(g, meta[k]);
        if (!v || strcmp(v, meta[k + 1])) FAIL("metadata '%s' differs in the copy", meta[k]);
    }
    st_close(g);
    free(meta);
    json_decref(header);
    free(ents);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[1024];
    struct st_file *f = NULL;
    const char *path = fuzz_file_set(&in_file, data, size);
    int rc = st_open(path, &f, err, sizeof err);
    if (rc) {
        if (f) FAIL("st_open failed (%d) but set *out", rc);
        return 0;
    }
    size_t n = st_count(f), total = 0;
    for (size_t i = 0; i < n; i++) {
        const struct st_tensor *t = st_get(f, i);
        if (!t || !*t->name || t->ndim < 0 || t->ndim > TS_MAX_DIMS || t->numel < 0 ||
            t->nbytes != (size_t)t->numel * st_dtype_size(t->dtype) || t->offset < 8 ||
            t->offset > size || t->nbytes > size - t->offset)
            FAIL("tensor %zu: bad fields or outside the file", i);
        if (t->nbytes && !t->data) FAIL("tensor %zu: no data", i);
        if (t->nbytes && memcmp(t->data, data + t->offset, t->nbytes))
            FAIL("tensor %zu: data is not the file's bytes at its offset", i);
        if (st_find(f, t->name) != (long)i) FAIL("st_find('%s') is not %zu", t->name, i);
        total += t->nbytes;
    }
    if (st_get(f, n) != NULL) FAIL("st_get past the end");
    (void)st_metadata(f, "format");
    (void)st_metadata(f, NULL);
    (void)st_find(f, "");
    /* the data regions tile the data section exactly */
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | data[i];
    if (total != size - 8 - hlen)
        FAIL("tensors hold %zu bytes of a %llu-byte data section", total,
             (unsigned long long)(size - 8 - hlen));
    resave(f, data, size);
    st_close(f);
    return 0;
}
