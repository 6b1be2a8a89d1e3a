/* safetensors.c - the safetensors format, read (mmap) and written (streamed) */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "err.h"

/*
 * DESIGN: the header is read with pread into a buffer and checked in full
 * (JSON, every entry, then the data regions sorted by offset) before the file
 * is mapped, so a file that lies about itself costs at most its header.  The
 * parsed header stays alive for the life of the st_file: tensor names and
 * metadata values point into it.  The mapping is MAP_PRIVATE and writable:
 * pruning in place changes private pages only, never the file.  A file that
 * is truncated by someone else after st_open still raises SIGBUS on access,
 * as any mapping does.
 */

struct st_file {
    json_t *header;      /* the parsed header: owns names and metadata */
    json_t *meta;        /* its "__metadata__" (borrowed), or NULL */
    struct st_tensor *t; /* n tensors in header order */
    size_t n;
    const struct st_tensor **by_name; /* t sorted by name, for st_find */
    void *map;                        /* the whole file, or NULL when no data */
    size_t maplen;
};

/* The dtype names of the format; size 0 marks those prunerd cannot hold. */
static const struct {
    const char *name;
    enum ts_dtype dt;
    size_t size;
} dtypes[] = {
    {"F64", TS_FLOAT64, 8},       {"F32", TS_FLOAT32, 4},   {"F16", TS_FLOAT16, 2},
    {"BF16", TS_BFLOAT16, 2},     {"I64", TS_INT64, 8},     {"I32", TS_INT32, 4},
    {"I16", TS_INT16, 2},         {"I8", TS_INT8, 1},       {"U8", TS_UINT8, 1},
    {"BOOL", TS_BOOL, 1},         {"U16", TS_OTHER, 0},     {"U32", TS_OTHER, 0},
    {"U64", TS_OTHER, 0},         {"C64", TS_OTHER, 0},     {"F8_E4M3", TS_OTHER, 0},
    {"F8_E5M2", TS_OTHER, 0},     {"F8_E8M0", TS_OTHER, 0}, {"F8_E4M3FNUZ", TS_OTHER, 0},
    {"F8_E5M2FNUZ", TS_OTHER, 0}, {"F6_E2M3", TS_OTHER, 0}, {"F6_E3M2", TS_OTHER, 0},
    {"F4", TS_OTHER, 0},
};
#define N_DTYPES (sizeof dtypes / sizeof dtypes[0])

const char *st_dtype_name(enum ts_dtype dt)
{
    for (size_t i = 0; i < N_DTYPES; i++)
        if (dtypes[i].size && dtypes[i].dt == dt) return dtypes[i].name;
    return NULL;
}

size_t st_dtype_size(enum ts_dtype dt)
{
    for (size_t i = 0; i < N_DTYPES; i++)
        if (dtypes[i].size && dtypes[i].dt == dt) return dtypes[i].size;
    return 0;
}

/* ---- messages ---- */

/* Copies s into out for a one-line message: control bytes (and, with
 * ascii set, bytes past 0x7f: jansson's error text may quote invalid UTF-8)
 * written as \xNN, cut at about 80 characters with "..." after. */
static const char *printable_as(const char *s, int ascii, char *out, size_t outlen)
{
    size_t o = 0, cap = (outlen < 84 ? outlen : 84) - 4;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char tmp[5];
        int bad = *p < 0x20 || *p == 0x7f || (ascii && *p > 0x7f);
        int k =
            bad ? snprintf(tmp, sizeof tmp, "\\x%02x", *p) : snprintf(tmp, sizeof tmp, "%c", *p);
        if (o + (size_t)k > cap) {
            /* no half a UTF-8 character before the dots */
            while (o > 0 && ((unsigned char)out[o - 1] & 0xc0) == 0x80)
                o--;
            if (o > 0 && (unsigned char)out[o - 1] >= 0xc0) o--;
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        memcpy(out + o, tmp, (size_t)k);
        o += (size_t)k;
    }
    out[o] = '\0';
    return out;
}

static const char *printable(const char *s, char *out, size_t outlen)
{
    return printable_as(s, 0, out, outlen);
}

/* For the caller's names in the writer, which may not be UTF-8. */
static const char *printable_ascii(const char *s, char *out, size_t outlen)
{
    return printable_as(s, 1, out, outlen);
}

/* "[2, 3]" into out. */
static const char *shape_str(const int64_t *shape, int ndim, char *out, size_t outlen)
{
    size_t o = (size_t)snprintf(out, outlen, "[");
    for (int d = 0; d < ndim && o < outlen; d++)
        o += (size_t)snprintf(out + o, outlen - o, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (o < outlen) snprintf(out + o, outlen - o, "]");
    return out;
}

/* err_set with "path: " in front. */
static int fail(char *err, size_t errlen, int code, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int fail(char *err, size_t errlen, int code, const char *path, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return err_set(err, errlen, code, "%s: %s", path, msg);
}

/* Returns ERR_NOSPACE for a full disk or quota, else ERR_IO. */
static int write_code(int e)
{
    return e == ENOSPC || e == EDQUOT ? ERR_NOSPACE : ERR_IO;
}

/* ---- reading ---- */

static int read_at(int fd, void *buf, size_t n, off_t off)
{
    char *p = buf;
    while (n > 0) {
        ssize_t r = pread(fd, p, n, off);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return errno;
        if (r == 0) return EIO; /* the file shrank under us */
        p += r;
        n -= (size_t)r;
        off += r;
    }
    return 0;
}

/* A JSON integer >= 0 into *v; 0 or -1. */
static int get_count(const json_t *j, uint64_t *v)
{
    if (!json_is_integer(j) || json_integer_value(j) < 0) return -1;
    *v = (uint64_t)json_integer_value(j);
    return 0;
}

struct region {
    uint64_t begin, end;
    size_t i; /* tensor index */
};

static int by_offsets(const void *a, const void *b)
{
    const struct region *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

static int by_name(const void *a, const void *b)
{
    const struct st_tensor *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

/* Checks one header entry and fills t (all but data and offset); begin/end
 * are its data_offsets, end no further than datalen. */
static int check_entry(const char *path, const char *name, json_t *v, uint64_t datalen,
                       struct st_tensor *t, uint64_t *begin, uint64_t *end, char *err,
                       size_t errlen)
{
    char pn[96], sh[160];
    const char *key;
    json_t *val;

    printable(name, pn, sizeof pn);
    if (!*name) return fail(err, errlen, ERR_FORMAT, path, "a tensor has an empty name");
    if (!json_is_object(v))
        return fail(err, errlen, ERR_FORMAT, path,
                    "tensor '%s': expected an object of dtype, shape and data_offsets", pn);
    json_object_foreach(v, key, val)
    {
        if (strcmp(key, "dtype") && strcmp(key, "shape") && strcmp(key, "data_offsets")) {
            char pk[96];
            return fail(err, errlen, ERR_FORMAT, path, "tensor '%s': unexpected key '%s'", pn,
                        printable(key, pk, sizeof pk));
        }
    }
    json_t *jd = json_object_get(v, "dtype"), *js = json_object_get(v, "shape"),
           *jo = json_object_get(v, "data_offsets");
    if (!jd || !js || !jo) {
        const char *missing = !jd ? "dtype" : !js ? "shape" : "data_offsets";
        return fail(err, errlen, ERR_FORMAT, path, "tensor '%s': missing key '%s'", pn, missing);
    }

    /* dtype */
    if (!json_is_string(jd))
        return fail(err, errlen, ERR_FORMAT, path, "tensor '%s': dtype is not a string", pn);
    const char *dn = json_string_value(jd);
    size_t k = 0, size = 0;
    while (k < N_DTYPES && strcmp(dtypes[k].name, dn))
        k++;
    if (k == N_DTYPES) {
        char pd[96];
        return fail(err, errlen, ERR_FORMAT, path, "tensor '%s': unknown dtype '%s'", pn,
                    printable(dn, pd, sizeof pd));
    }
    if (!dtypes[k].size)
        return fail(err, errlen, ERR_UNSUPPORTED, path,
                    "tensor '%s': dtype %s is not supported (prunerd holds F64, F32, F16, BF16, "
                    "I64, I32, I16, I8, U8, BOOL)",
                    pn, dn);
    t->dtype = dtypes[k].dt;
    size = dtypes[k].size;

    /* shape */
    if (!json_is_array(js))
        return fail(err, errlen, ERR_FORMAT, path, "tensor '%s': shape is not a list", pn);
    size_t ndim = json_array_size(js);
    if (ndim > TS_MAX_DIMS)
        return fail(err, errlen, ERR_FORMAT, path,
                    "tensor '%s': shape has %zu dimensions, at most %d are supported", pn, ndim,
                    TS_MAX_DIMS);
    t->ndim = (int)ndim;
    uint64_t numel = 1;
    int overflow = 0;
    for (size_t d = 0; d < ndim; d++) {
        uint64_t dim;
        json_t *jv = json_array_get(js, d);
        if (json_is_integer(jv) && json_integer_value(jv) < 0)
            return fail(err, errlen, ERR_FORMAT, path,
                        "tensor '%s': shape dimension %zu is negative (%lld)", pn, d,
                        (long long)json_integer_value(jv));
        if (get_count(jv, &dim))
            return fail(err, errlen, ERR_FORMAT, path,
                        "tensor '%s': shape dimension %zu is not an integer", pn, d);
        t->shape[d] = (int64_t)dim; /* json_int_t fits in int64_t */
        /* As the reference does: any intermediate product past the limit fails. */
        if (dim && numel > (uint64_t)INT64_MAX / dim)
            overflow = 1;
        else
            numel *= dim;
    }
    shape_str(t->shape, t->ndim, sh, sizeof sh);
    if (overflow || numel > (uint64_t)INT64_MAX / size || numel * size > SIZE_MAX)
        return fail(err, errlen, ERR_FORMAT, path,
                    "tensor '%s': shape %s overflows the element count", pn, sh);
    t->numel = (int64_t)numel;
    t->nbytes = (size_t)(numel * size);

    /* data_offsets */
    if (!json_is_array(jo) || json_array_size(jo) != 2 || get_count(json_array_get(jo, 0), begin) ||
        get_count(json_array_get(jo, 1), end))
        return fail(err, errlen, ERR_FORMAT, path,
                    "tensor '%s': data_offsets is not a pair [begin, end] of non-negative "
                    "integers",
                    pn);
    if (*begin > *end)
        return fail(err, errlen, ERR_FORMAT, path,
                    "tensor '%s': data_offsets [%llu, %llu] begin after they end", pn,
                    (unsigned long long)*begin, (unsigned long long)*end);
    if (*end - *begin != t->nbytes)
        return fail(err, errlen, ERR_FORMAT, path,
                    "tensor '%s': data_offsets [%llu, %llu] hold %llu bytes, shape %s %s needs "
                    "%zu",
                    pn, (unsigned long long)*begin, (unsigned long long)*end,
                    (unsigned long long)(*end - *begin), sh, dn, t->nbytes);
    if (*end > datalen)
        return fail(err, errlen, ERR_FORMAT, path,
                    "tensor '%s': data_offsets [%llu, %llu] run past the end of the file (the "
                    "data section holds %llu bytes)",
                    pn, (unsigned long long)*begin, (unsigned long long)*end,
                    (unsigned long long)datalen);
    return 0;
}

static int check_metadata(const char *path, json_t *m, char *err, size_t errlen)
{
    const char *key;
    json_t *val;
    if (!json_is_object(m))
        return fail(err, errlen, ERR_FORMAT, path, "__metadata__ is not an object");
    json_object_foreach(m, key, val)
    {
        if (!json_is_string(val)) {
            char pk[96];
            return fail(err, errlen, ERR_FORMAT, path, "__metadata__ '%s' is not a string",
                        printable(key, pk, sizeof pk));
        }
    }
    return 0;
}

/* The data regions, sorted by offset, tile [0, datalen) exactly. */
static int check_layout(const char *path, const struct st_file *f, struct region *r,
                        uint64_t datalen, char *err, size_t errlen)
{
    char pa[96], pb[96];
    uint64_t at = 0;
    qsort(r, f->n, sizeof *r, by_offsets);
    for (size_t k = 0; k < f->n; k++) {
        const char *name = f->t[r[k].i].name;
        if (r[k].begin > at) {
            if (k == 0)
                return fail(err, errlen, ERR_FORMAT, path,
                            "gap: the first tensor '%s' begins at data offset %llu, not 0",
                            printable(name, pa, sizeof pa), (unsigned long long)r[k].begin);
            return fail(err, errlen, ERR_FORMAT, path,
                        "gap of %llu bytes between tensor '%s' (ends at %llu) and tensor '%s' "
                        "(begins at %llu)",
                        (unsigned long long)(r[k].begin - at),
                        printable(f->t[r[k - 1].i].name, pa, sizeof pa), (unsigned long long)at,
                        printable(name, pb, sizeof pb), (unsigned long long)r[k].begin);
        }
        if (r[k].begin < at)
            return fail(err, errlen, ERR_FORMAT, path,
                        "tensor '%s' data_offsets [%llu, %llu] overlap tensor '%s' [%llu, %llu]",
                        printable(name, pa, sizeof pa), (unsigned long long)r[k].begin,
                        (unsigned long long)r[k].end,
                        printable(f->t[r[k - 1].i].name, pb, sizeof pb),
                        (unsigned long long)r[k - 1].begin, (unsigned long long)r[k - 1].end);
        at = r[k].end;
    }
    if (at != datalen)
        return fail(err, errlen, ERR_FORMAT, path,
                    "%llu trailing bytes after the last tensor (the data section holds %llu "
                    "bytes, the tensors end at %llu)",
                    (unsigned long long)(datalen - at), (unsigned long long)datalen,
                    (unsigned long long)at);
    return 0;
}

/* Parses and checks the header text (hlen bytes) of a file of fsize bytes. */
static int parse_header(const char *path, struct st_file *f, const char *text, uint64_t hlen,
                        uint64_t fsize, char *err, size_t errlen)
{
    json_error_t je;
    const char *name;
    json_t *v;
    uint64_t datalen = fsize - 8 - hlen;
    struct region *r = NULL;
    int rc = 0;

    f->header = json_loadb(text, (size_t)hlen, JSON_REJECT_DUPLICATES, &je);
    if (!f->header) {
        char pt[96];
        return fail(err, errlen, ERR_FORMAT, path, "header is not valid JSON: %s (byte %d)",
                    printable_as(je.text, 1, pt, sizeof pt), je.position);
    }
    if (!json_is_object(f->header))
        return fail(err, errlen, ERR_FORMAT, path, "header is not a JSON object");
    f->meta = json_object_get(f->header, "__metadata__");
    if (f->meta && (rc = check_metadata(path, f->meta, err, errlen))) return rc;

    size_t n = json_object_size(f->header) - (f->meta ? 1 : 0);
    f->t = calloc(n ? n : 1, sizeof *f->t);
    r = calloc(n ? n : 1, sizeof *r);
    f->by_name = calloc(n ? n : 1, sizeof *f->by_name);
    if (!f->t || !r || !f->by_name) {
        rc = fail(err, errlen, ERR_NOMEM, path, "out of memory for %zu tensors", n);
        goto out;
    }
    json_object_foreach(f->header, name, v)
    {
        if (!strcmp(name, "__metadata__")) continue;
        struct st_tensor *t = &f->t[f->n];
        t->name = name;
        rc = check_entry(path, name, v, datalen, t, &r[f->n].begin, &r[f->n].end, err, errlen);
        if (rc) goto out;
        r[f->n].i = f->n;
        f->by_name[f->n] = t;
        f->n++;
    }
    if ((rc = check_layout(path, f, r, datalen, err, errlen))) goto out;
    for (size_t k = 0; k < f->n; k++)
        f->t[r[k].i].offset = (size_t)(8 + hlen + r[k].begin);
    qsort(f->by_name, f->n, sizeof *f->by_name, by_name);
out:
    free(r);
    return rc;
}

int st_open(const char *path, struct st_file **out, char *err, size_t errlen)
{
    struct st_file *f = NULL;
    char *text = NULL;
    unsigned char lenbuf[8];
    struct stat st;
    int rc = 0, e;

    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        e = errno;
        return fail(err, errlen, e == ENOENT || e == ENOTDIR ? ERR_NOTFOUND : ERR_IO, path, "%s",
                    strerror(e));
    }
    if (fstat(fd, &st) != 0) {
        rc = fail(err, errlen, ERR_IO, path, "fstat: %s", strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = fail(err, errlen, ERR_IO, path, "not a regular file");
        goto out;
    }
    uint64_t fsize = (uint64_t)st.st_size;
    if (fsize > SIZE_MAX) {
        rc = fail(err, errlen, ERR_UNSUPPORTED, path, "%llu bytes do not fit in memory",
                  (unsigned long long)fsize);
        goto out;
    }
    if (fsize < 8) {
        rc = fail(err, errlen, ERR_FORMAT, path,
                  "truncated: %llu bytes, fewer than the 8-byte header length",
                  (unsigned long long)fsize);
        goto out;
    }
    if ((e = read_at(fd, lenbuf, 8, 0))) {
        rc = fail(err, errlen, ERR_IO, path, "read: %s", strerror(e));
        goto out;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | lenbuf[i];
    if (hlen > ST_MAX_HEADER) {
        rc = fail(err, errlen, ERR_FORMAT, path, "header length %llu is over 100 MB",
                  (unsigned long long)hlen);
        goto out;
    }
    if (hlen > fsize - 8) {
        rc = fail(err, errlen, ERR_FORMAT, path,
                  "header length %llu runs past the end of the file (%llu bytes)",
                  (unsigned long long)hlen, (unsigned long long)fsize);
        goto out;
    }
    f = calloc(1, sizeof *f);
    text = malloc(hlen ? hlen : 1);
    if (!f || !text) {
        rc = fail(err, errlen, ERR_NOMEM, path, "out of memory for a %llu-byte header",
                  (unsigned long long)hlen);
        goto out;
    }
    if (hlen && (e = read_at(fd, text, (size_t)hlen, 8))) {
        rc = fail(err, errlen, ERR_IO, path, "read: %s", strerror(e));
        goto out;
    }
    if (hlen == 0 || text[0] != '{') {
        rc = fail(err, errlen, ERR_FORMAT, path, "header is not a JSON object (it %s)",
                  hlen == 0 ? "is empty" : "does not start with '{'");
        goto out;
    }
    if ((rc = parse_header(path, f, text, hlen, fsize, err, errlen))) goto out;
    if (fsize > 8 + hlen) {
        f->maplen = (size_t)fsize;
        f->map = mmap(NULL, f->maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
        if (f->map == MAP_FAILED) {
            f->map = NULL;
            e = errno;
            rc = fail(err, errlen, e == ENOMEM ? ERR_NOMEM : ERR_IO, path, "mmap: %s", strerror(e));
            goto out;
        }
        for (size_t i = 0; i < f->n; i++)
            f->t[i].data = (char *)f->map + f->t[i].offset;
    }
    *out = f;
    f = NULL;
out:
    st_close(f);
    free(text);
    close(fd);
    return rc;
}

void st_close(struct st_file *f)
{
    if (!f) return;
    if (f->map) munmap(f->map, f->maplen);
    free(f->by_name);
    free(f->t);
    json_decref(f->header);
    free(f);
}

size_t st_count(const struct st_file *f)
{
    return f->n;
}

const struct st_tensor *st_get(const struct st_file *f, size_t i)
{
    return i < f->n ? &f->t[i] : NULL;
}

long st_find(const struct st_file *f, const char *name)
{
    struct st_tensor key = {.name = name};
    const struct st_tensor *kp = &key;
    if (!name || !f->n) return -1;
    const struct st_tensor **hit = bsearch(&kp, f->by_name, f->n, sizeof *f->by_name, by_name);
    return hit ? (long)(*hit - f->t) : -1;
}

const char *st_metadata(const struct st_file *f, const char *key)
{
    return key ? json_string_value(json_object_get(f->meta, key)) : NULL;
}

/* ---- writing ---- */

/* The header object for the entries, with each entry's byte count in
 * nbytes[i]; NULL with a message (ERR_INVALID or ERR_NOMEM in *rc). */
static json_t *build_header(const char *path, const struct st_entry *entries, size_t n,
                            const char *const *meta, uint64_t *nbytes, int *rc, char *err,
                            size_t errlen)
{
    char pn[96], sh[160];
    uint64_t at = 0;
    json_t *root = json_object();
    if (!root) goto nomem;
    if (meta && meta[0]) {
        json_t *m = json_object();
        if (!m || json_object_set_new(root, "__metadata__", m)) goto nomem;
        for (size_t k = 0; meta[k]; k += 2) {
            printable_ascii(meta[k], pn, sizeof pn);
            if (!meta[k + 1]) {
                *rc = fail(err, errlen, ERR_INVALID, path, "metadata '%s' has no value", pn);
                goto fail;
            }
            if (json_object_get(m, meta[k])) {
                *rc = fail(err, errlen, ERR_INVALID, path, "metadata '%s' given twice", pn);
                goto fail;
            }
            json_t *s = json_string(meta[k + 1]);
            if (!s || json_object_set_new(m, meta[k], s)) {
                *rc = fail(err, errlen, ERR_INVALID, path, "metadata '%s' is not UTF-8", pn);
                goto fail;
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        const struct st_entry *e = &entries[i];
        const char *name = e->name ? e->name : "";
        size_t size = st_dtype_size(e->dtype);
        printable_ascii(name, pn, sizeof pn);
        if (!*name || !strcmp(name, "__metadata__")) {
            *rc = fail(err, errlen, ERR_INVALID, path, "entry %zu: the name '%s' is not allowed", i,
                       pn);
            goto fail;
        }
        if (json_object_get(root, name)) {
            *rc = fail(err, errlen, ERR_INVALID, path, "duplicate tensor name '%s'", pn);
            goto fail;
        }
        if (!size) {
            *rc = fail(err, errlen, ERR_INVALID, path,
                       "tensor '%s': dtype %d has no safetensors name", pn, (int)e->dtype);
            goto fail;
        }
        if (e->ndim < 0 || e->ndim > TS_MAX_DIMS || (e->ndim && !e->shape)) {
            *rc = fail(err, errlen, ERR_INVALID, path, "tensor '%s': %d dimensions", pn, e->ndim);
            goto fail;
        }
        json_t *shape = json_array();
        if (!shape) goto nomem;
        uint64_t numel = 1;
        int bad = 0;
        for (int d = 0; d < e->ndim; d++) {
            if (e->shape[d] < 0)
                bad = 1;
            else if (e->shape[d] && numel > (uint64_t)INT64_MAX / (uint64_t)e->shape[d])
                bad = 1;
            else
                numel *= (uint64_t)e->shape[d];
            json_array_append_new(shape, json_integer((json_int_t)e->shape[d]));
        }
        if (!bad && (numel > (uint64_t)INT64_MAX / size || numel * size > SIZE_MAX ||
                     numel * size > (uint64_t)INT64_MAX - at)) /* offsets are JSON integers */
            bad = 1;
        if (bad) {
            json_decref(shape);
            *rc = fail(err, errlen, ERR_INVALID, path, "tensor '%s': bad shape %s", pn,
                       shape_str(e->shape, e->ndim, sh, sizeof sh));
            goto fail;
        }
        nbytes[i] = numel * size;
        json_t *entry =
            json_pack("{s:s, s:o, s:[I, I]}", "dtype", st_dtype_name(e->dtype), "shape", shape,
                      "data_offsets", (json_int_t)at, (json_int_t)(at + nbytes[i]));
        at += nbytes[i];
        if (!entry) goto nomem;
        if (json_object_set_new(root, name, entry)) {
            *rc = fail(err, errlen, ERR_INVALID, path, "tensor name '%s' is not UTF-8", pn);
            goto fail;
        }
    }
    return root;
nomem:
    *rc = fail(err, errlen, ERR_NOMEM, path, "out of memory for the header");
fail:
    json_decref(root);
    return NULL;
}

int st_write(const char *path, const struct st_entry *entries, size_t n, const char *const *meta,
             st_bytes_fn get, void *ud, char *err, size_t errlen)
{
    static const char spaces[8] = "        ";
    uint64_t *nbytes = NULL;
    json_t *root = NULL;
    char *text = NULL;
    FILE *out = NULL;
    int rc = 0, e = 0;

    if (!path || (n && (!entries || !get)))
        return err_set(err, errlen, ERR_INVALID, "st_write: no path, entries or callback");
    nbytes = calloc(n ? n : 1, sizeof *nbytes);
    if (!nbytes) return fail(err, errlen, ERR_NOMEM, path, "out of memory");
    root = build_header(path, entries, n, meta, nbytes, &rc, err, errlen);
    if (!root) goto out;
    text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!text) {
        rc = fail(err, errlen, ERR_NOMEM, path, "out of memory for the header");
        goto out;
    }
    size_t len = strlen(text), pad = (8 - len % 8) % 8;
    uint64_t hlen = len + pad;
    unsigned char lenbuf[8];
    for (int i = 0; i < 8; i++)
        lenbuf[i] = (unsigned char)(hlen >> (8 * i));

    out = fopen(path, "wb");
    if (!out) {
        e = errno;
        rc = fail(err, errlen, write_code(e), path, "create: %s", strerror(e));
        goto out;
    }
    errno = 0;
    if (fwrite(lenbuf, 1, 8, out) != 8 || fwrite(text, 1, len, out) != len ||
        fwrite(spaces, 1, pad, out) != pad) {
        e = errno ? errno : EIO;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const void *data = NULL;
        size_t got = 0;
        if ((rc = get(ud, i, &data, &got, err, errlen))) goto out;
        if ((uint64_t)got != nbytes[i] || (got && !data)) {
            char pn[96], sh[160];
            rc = fail(err, errlen, ERR_INTERNAL, path,
                      "tensor '%s': handed %zu bytes, shape %s %s needs %llu",
                      printable_ascii(entries[i].name, pn, sizeof pn), got,
                      shape_str(entries[i].shape, entries[i].ndim, sh, sizeof sh),
                      st_dtype_name(entries[i].dtype), (unsigned long long)nbytes[i]);
            goto out;
        }
        errno = 0;
        if (got && fwrite(data, 1, got, out) != got) {
            e = errno ? errno : EIO;
            goto out;
        }
    }
out:
    if (out) {
        errno = 0;
        if (fclose(out) != 0 && !e && !rc) e = errno ? errno : EIO;
    }
    if (e && !rc) rc = fail(err, errlen, write_code(e), path, "write: %s", strerror(e));
    free(text);
    json_decref(root);
    free(nbytes);
    return rc;
}
