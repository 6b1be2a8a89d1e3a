/* safetensors.h - the safetensors format, read (mmap) and written (streamed) */
#ifndef PRUNERD_SAFETENSORS_H
#define PRUNERD_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "torch_shim.h" /* enum ts_dtype, TS_MAX_DIMS */

/*
 * A safetensors file is an 8-byte little-endian header length N, N bytes of
 * JSON ({"name": {"dtype", "shape", "data_offsets": [begin, end]}, ...,
 * "__metadata__": {"key": "value"}}), then the data, offsets counted from the
 * byte after the header.  st_open validates it as the reference
 * implementation does before anything is used:
 *   - N is at most 100 MB (ST_MAX_HEADER), the header starts with '{' and is
 *     a JSON object (jansson), every entry an object with exactly those keys;
 *   - dtype is one the format names; a known dtype prunerd cannot hold
 *     (F8_*, U16, U32, U64, ...) is ERR_UNSUPPORTED;
 *   - shapes are non-negative integers, at most TS_MAX_DIMS of them, and
 *     end - begin == numel * dtype size (no overflow);
 *   - the data regions, sorted by offset, are contiguous from 0 and end
 *     exactly at the end of the file (no gap, no overlap, nothing past it);
 *   - no name twice (jansson's JSON_REJECT_DUPLICATES), no empty name;
 *     __metadata__ maps strings to strings.
 * Anything else is ERR_FORMAT with the reason ("header length 1234567890 is
 * over 100 MB").  Nothing in a file is trusted before it is checked.
 */

#define ST_MAX_HEADER (100u * 1000u * 1000u)

struct st_tensor {
    const char *name; /* owned by the file, valid until st_close */
    enum ts_dtype dtype;
    int ndim;
    int64_t shape[TS_MAX_DIMS];
    int64_t numel;
    void *data;    /* into the private (copy-on-write) mapping: writable, never written back */
    size_t nbytes; /* numel * element size */
    size_t offset; /* of data from the start of the file */
};

struct st_file;

/* Opens and validates path, mapping it MAP_PRIVATE (read and write, so a
 * float32 tensor can be pruned in place without touching the file).
 * Returns 0 with *out set, or ERR_NOTFOUND / ERR_IO (the file), ERR_FORMAT
 * or ERR_UNSUPPORTED (its content) with a message and *out NULL.  Free with
 * st_close; st_close(NULL) is a no-op. */
int st_open(const char *path, struct st_file **out, char *err, size_t errlen);
void st_close(struct st_file *f);

/* Tensors in header order (jansson's insertion order). */
size_t st_count(const struct st_file *f);
const struct st_tensor *st_get(const struct st_file *f, size_t i);
/* Index of name, or -1. */
long st_find(const struct st_file *f, const char *name);
/* A __metadata__ value, or NULL. */
const char *st_metadata(const struct st_file *f, const char *key);

/* The safetensors dtype name ("F32", "BF16") of a ts_dtype, or NULL for TS_OTHER. */
const char *st_dtype_name(enum ts_dtype dt);
/* Bytes per element of a ts_dtype (0 for TS_OTHER). */
size_t st_dtype_size(enum ts_dtype dt);

/* One tensor to write. */
struct st_entry {
    const char *name;
    enum ts_dtype dtype;
    int ndim;
    const int64_t *shape;
};

/* Hands the bytes of entry i (numel * size, row-major) to the writer:
 * *data stays valid until the next call.  Returns 0 or an ERR_* with a
 * message. */
typedef int (*st_bytes_fn)(void *ud, size_t i, const void **data, size_t *nbytes, char *err,
                           size_t errlen);

/*
 * Writes a safetensors file at path (exactly there: the caller picks a
 * temporary name and renames): the header for the n entries in the order
 * given, with "__metadata__" from meta (key, value, key, value, ..., NULL;
 * meta may be NULL), padded with spaces to a multiple of 8 bytes as the
 * reference writer does, then each entry's bytes from get, one at a time,
 * so no second copy of the model is held.  A byte count that disagrees with
 * the entry's shape is ERR_INTERNAL.  Returns 0, ERR_IO / ERR_NOSPACE
 * (write), ERR_INVALID (duplicate or empty name, bad shape) with a message.
 * Does not fsync.
 */
int st_write(const char *path, const struct st_entry *entries, size_t n, const char *const *meta,
             st_bytes_fn get, void *ud, char *err, size_t errlen);

#endif
