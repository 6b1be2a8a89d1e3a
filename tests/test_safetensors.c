/* test_safetensors.c - safetensors written and read back; malformed files refused by name */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ct.h"
#include "err.h"
#include "fsutil.h"
#include "safetensors.h"

static char dir[PATH_MAX];

static void path_of(const char *name, char *out, size_t len)
{
    snprintf(out, len, "%.900s/%s", dir, name);
}

/* Writes the 8-byte little-endian hlen, the header text and datalen bytes
 * (0, 1, 2, ...), cut to cut bytes when cut >= 0. */
static void write_raw(const char *path, uint64_t hlen, const char *header, size_t datalen, long cut)
{
    size_t hl = strlen(header), n = 8 + hl + datalen;
    unsigned char *buf = malloc(n ? n : 1);
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)(hlen >> (8 * i));
    memcpy(buf + 8, header, hl);
    for (size_t i = 0; i < datalen; i++)
        buf[8 + hl + i] = (unsigned char)i;
    if (cut >= 0 && (size_t)cut < n) n = (size_t)cut;
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, n, f) != n || fclose(f)) perror(path);
    free(buf);
}

/* ---- malformed files ---- */

#define LEN_OF_HEADER UINT64_MAX /* hlen: strlen(header) */

static const struct bad_case {
    const char *what;
    uint64_t hlen;
    const char *header;
    size_t datalen;
    long cut; /* -1: whole file */
    int code;
    const char *want; /* a substring of the message */
} bad_cases[] = {
    {"empty file", 0, "", 0, 0, ERR_FORMAT, "truncated: 0 bytes"},
    {"truncated length prefix", 0, "", 0, 5, ERR_FORMAT, "truncated: 5 bytes"},
    {"header length over 100 MB", ST_MAX_HEADER + 1, "{}", 0, -1, ERR_FORMAT,
     "header length 100000001 is over 100 MB"},
    {"header length 2^40", 1ull << 40, "{}", 0, -1, ERR_FORMAT,
     "header length 1099511627776 is over 100 MB"},
    {"header length beyond the file", 1000, "{}", 0, -1, ERR_FORMAT,
     "header length 1000 runs past the end of the file (10 bytes)"},
    {"header length 0", 0, "", 0, -1, ERR_FORMAT, "header is not a JSON object (it is empty)"},
    {"header not starting with {", LEN_OF_HEADER, " {}", 0, -1, ERR_FORMAT,
     "does not start with '{'"},
    {"header JSON array", LEN_OF_HEADER, "[{}]", 0, -1, ERR_FORMAT, "not a JSON object"},
    {"non-JSON header", LEN_OF_HEADER, "{nope", 0, -1, ERR_FORMAT, "header is not valid JSON"},
    {"header cut inside JSON", LEN_OF_HEADER, "{\"a\": {\"dtype\": ", 0, -1, ERR_FORMAT,
     "header is not valid JSON"},
    {"invalid UTF-8", LEN_OF_HEADER, "{\"\xff\xfe\": 1}", 0, -1, ERR_FORMAT,
     "header is not valid JSON"},
    {"entry not an object", LEN_OF_HEADER, "{\"a\": [1]}", 0, -1, ERR_FORMAT,
     "tensor 'a': expected an object"},
    {"entry missing data_offsets", LEN_OF_HEADER, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4,
     -1, ERR_FORMAT, "tensor 'a': missing key 'data_offsets'"},
    {"entry missing dtype", LEN_OF_HEADER, "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, -1,
     ERR_FORMAT, "missing key 'dtype'"},
    {"extra key", LEN_OF_HEADER,
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4, -1, ERR_FORMAT,
     "tensor 'a': unexpected key 'x'"},
    {"dtype not a string", LEN_OF_HEADER,
     "{\"a\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, -1, ERR_FORMAT,
     "dtype is not a string"},
    {"unknown dtype", LEN_OF_HEADER,
     "{\"a\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, -1, ERR_FORMAT,
     "tensor 'a': unknown dtype 'F33'"},
    {"F8_E4M3", LEN_OF_HEADER,
     "{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[4],\"data_offsets\":[0,4]}}", 4, -1, ERR_UNSUPPORTED,
     "tensor 'a': dtype F8_E4M3 is not supported"},
    {"U32", LEN_OF_HEADER, "{\"a\":{\"dtype\":\"U32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
     -1, ERR_UNSUPPORTED, "dtype U32 is not supported"},
    {"shape not a list", LEN_OF_HEADER,
     "{\"a\":{\"dtype\":\"F32\",\"shape\":1,\"data_offsets\":[0,4]}}", 4, -1, ERR_FORMAT,
     "shape is not a list"},
    {"negative shape", LEN_OF_HEADER,
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,-1],\"data_offsets\":[0,4]}}", 4, -1, ERR_FORMAT,
     "shape dimension 1 is negative"},
    {"fractional shape", LEN_OF_HEADER,
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}", 4, -1, ERR_FORMAT,
     "shape dimension 0 is not an integer"},
    {"too many dims", LEN_OF_HEADER,
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, -1,
     ERR_FORMAT, "shape has 9 dimensions, at most 8"},
    {"numel overflow", LEN_OF_HEADER,
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}", 4, -1,
     ERR_FORMAT, "shape [4294967296, 4294967296] overflows"},
    {"bytes overflow", LEN_OF_HEADER,
     "{\"a\":{\"dtype\":\"F64\",\"shape\":[4611686018427387904],\"data_offsets\":[0,4]}}", 4, -1,
     ERR_FORMAT, "overflows"},
    {"overflow before a zero", LEN_OF_HEADER,
     "{\"a\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296,0],\"data_offsets\":[0,0]}}", 0, -1,
     ERR_FORMAT, "overflows"},
    {"wrong byte size", LEN_OF_HEADER,
     "{\"a.weight\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,12]}}", 12, -1,
     ERR_FORMAT,
     "tensor 'a.weight': data_offsets [0, 12] hold 12 bytes, shape [2, 2] F32 needs 16"},
    {"offsets not a pair", LEN_OF_HEADER,
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 4, -1, ERR_FORMAT,
     "data_offsets is not a pair"},
    {"negative offset", LEN_OF_HEADER,
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4, -1, ERR_FORMAT,
     "data_offsets is not a pair"},
    {"offsets begin > end", LEN_OF_HEADER,
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8, -1, ERR_FORMAT,
     "data_offsets [8, 4] begin after they end"},
    {"overlapping offsets", LEN_OF_HEADER,
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
     "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
     12, -1, ERR_FORMAT, "tensor 'b' data_offsets [4, 12] overlap tensor 'a' [0, 8]"},
    {"the same region twice", LEN_OF_HEADER,
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
     "\"b\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
     4, -1, ERR_FORMAT, "overlap"},
    {"gap between tensors", LEN_OF_HEADER,
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
     "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
     12, -1, ERR_FORMAT,
     "gap of 4 bytes between tensor 'a' (ends at 4) and tensor 'b' (begins at 8)"},
    {"first tensor not at 0", LEN_OF_HEADER,
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, -1, ERR_FORMAT,
     "the first tensor 'a' begins at data offset 4, not 0"},
    {"data shorter than last offset", LEN_OF_HEADER,
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8, -1, ERR_FORMAT,
     "tensor 'a': data_offsets [0, 16] run past the end of the file (the data section holds 8 "
     "bytes)"},
    {"trailing bytes after last tensor", LEN_OF_HEADER,
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8, -1, ERR_FORMAT,
     "4 trailing bytes after the last tensor"},
    {"data but no tensors", LEN_OF_HEADER, "{}", 3, -1, ERR_FORMAT, "3 trailing bytes"},
    {"duplicate name", LEN_OF_HEADER,
     "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
     "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
     2, -1, ERR_FORMAT, "duplicate object key"},
    {"empty name", LEN_OF_HEADER, "{\"\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}",
     1, -1, ERR_FORMAT, "a tensor has an empty name"},
    {"metadata value not a string", LEN_OF_HEADER, "{\"__metadata__\":{\"format\":\"pt\",\"k\":1}}",
     0, -1, ERR_FORMAT, "__metadata__ 'k' is not a string"},
    {"metadata not an object", LEN_OF_HEADER, "{\"__metadata__\":\"pt\"}", 0, -1, ERR_FORMAT,
     "__metadata__ is not an object"},
    {"name with a newline", LEN_OF_HEADER,
     "{\"a\\nb\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, -1, ERR_FORMAT,
     "tensor 'a\\x0ab': data_offsets [0, 4] hold 4 bytes"},
};

static void test_bad_files(void)
{
    char path[PATH_MAX], err[1024];
    for (size_t k = 0; k < sizeof bad_cases / sizeof bad_cases[0]; k++) {
        const struct bad_case *c = &bad_cases[k];
        path_of("bad.safetensors", path, sizeof path);
        write_raw(path, c->hlen == LEN_OF_HEADER ? strlen(c->header) : c->hlen, c->header,
                  c->datalen, c->cut);
        struct st_file *f = (struct st_file *)1;
        err[0] = '\0';
        int rc = st_open(path, &f, err, sizeof err);
        CHECK(rc == c->code, "%s: expected %s, got %s (%s)", c->what, err_name(c->code),
              err_name(rc), err);
        CHECK(f == NULL, "%s: *out not NULL on failure", c->what);
        CHECK(strstr(err, c->want) != NULL, "%s: expected a message with \"%s\", got \"%s\"",
              c->what, c->want, err);
        CHECK(!strncmp(err, path, strlen(path)) && !strncmp(err + strlen(path), ": ", 2),
              "%s: the message does not start with the path: \"%s\"", c->what, err);
        int oneline = 1;
        for (const unsigned char *p = (const unsigned char *)err; *p; p++)
            if (*p < 0x20 || *p >= 0x7f) oneline = 0;
        CHECK(oneline, "%s: the message is not one printable line: \"%s\"", c->what, err);
        if (f && f != (struct st_file *)1) st_close(f);
        unlink(path);
    }
}

static void test_not_a_file(void)
{
    char path[PATH_MAX], err[512];
    struct st_file *f = NULL;
    path_of("missing.safetensors", path, sizeof path);
    CHECK_INT(st_open(path, &f, err, sizeof err), ERR_NOTFOUND);
    CHECK(f == NULL && strstr(err, "missing.safetensors"), "missing: %s", err);
    CHECK_INT(st_open(dir, &f, err, sizeof err), ERR_IO);
    CHECK(strstr(err, "not a regular file") != NULL, "directory: %s", err);
}

/* ---- valid files ---- */

static void test_valid_edges(void)
{
    char path[PATH_MAX], err[512] = "";
    struct st_file *f = NULL;
    path_of("edge.safetensors", path, sizeof path);

    /* No tensors, no data, header padded with spaces. */
    write_raw(path, 8, "{}      ", 0, -1);
    CHECK_INT(st_open(path, &f, err, sizeof err), 0);
    if (f) {
        CHECK_INT(st_count(f), 0);
        CHECK_INT(st_find(f, "a"), -1);
        CHECK(st_get(f, 0) == NULL, "st_get past the end");
        CHECK(st_metadata(f, "format") == NULL, "metadata in a file without");
    }
    st_close(f);
    f = NULL;

    /* Zero-byte tensors only: no data section, data may be NULL. */
    const char *zeros = "{\"__metadata__\":{},\"e\":{\"dtype\":\"F32\",\"shape\":[0,3],"
                        "\"data_offsets\":[0,0]},\"z\":{\"dtype\":\"I64\",\"shape\":[3,0],"
                        "\"data_offsets\":[0,0]}}";
    write_raw(path, strlen(zeros), zeros, 0, -1);
    CHECK_INT(st_open(path, &f, err, sizeof err), 0);
    if (f) {
        CHECK_INT(st_count(f), 2);
        CHECK_INT(st_get(f, 0)->numel, 0);
        CHECK_INT(st_get(f, 1)->nbytes, 0);
        CHECK_INT(st_get(f, 1)->ndim, 2);
        CHECK_INT(st_find(f, "z"), 1);
    }
    st_close(f);
    f = NULL;

    /* A zero-byte tensor at the same offset as the next one, and the data
     * regions in another order than the header's. */
    const char *mixed = "{\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[4,6]},"
                        "\"e\":{\"dtype\":\"BOOL\",\"shape\":[0],\"data_offsets\":[0,0]},"
                        "\"a\":{\"dtype\":\"I16\",\"shape\":[2],\"data_offsets\":[0,4]}}";
    write_raw(path, strlen(mixed), mixed, 6, -1);
    CHECK_INT(st_open(path, &f, err, sizeof err), 0);
    if (f) {
        size_t base = 8 + strlen(mixed);
        CHECK_INT(st_count(f), 3);
        CHECK(!strcmp(st_get(f, 0)->name, "b") && !strcmp(st_get(f, 2)->name, "a"),
              "not in header order");
        CHECK_INT(st_get(f, 0)->offset, base + 4);
        CHECK_INT(st_get(f, 2)->offset, base);
        CHECK_INT(((unsigned char *)st_get(f, 0)->data)[1], 5);
        CHECK_INT(st_find(f, "a"), 2);
        CHECK_INT(st_find(f, "b"), 0);
        CHECK_INT(st_find(f, "e"), 1);
        CHECK_INT(st_find(f, "c"), -1);
        CHECK_INT(st_find(f, NULL), -1);
    }
    st_close(f);
    st_close(NULL);
    unlink(path);
}

/* ---- the writer ---- */

struct blobs {
    const void **data;
    const size_t *nbytes;
    int lie;    /* hand out one byte too few for entry 0 */
    int refuse; /* fail for entry 1 */
};

static int get_blob(void *ud, size_t i, const void **data, size_t *nbytes, char *err, size_t errlen)
{
    struct blobs *b = ud;
    if (b->refuse && i == 1) return err_set(err, errlen, ERR_CANCELLED, "stopped at %zu", i);
    *data = b->data[i];
    *nbytes = b->nbytes[i] - (b->lie && i == 0 ? 1 : 0);
    return 0;
}

static uint64_t header_len(const char *path)
{
    unsigned char b[8] = {0};
    FILE *f = fopen(path, "rb");
    if (f) {
        if (fread(b, 1, 8, f) != 8) memset(b, 0, 8);
        fclose(f);
    }
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | b[i];
    return n;
}

static void test_round_trip(void)
{
    char path[PATH_MAX], err[512] = "";
    float f32[6] = {1.5f, -2.0f, 0.0f, 3.25f, 1e-8f, -0.0f};
    uint16_t f16[4] = {0x3c00, 0xc000, 0x0000, 0x7bff};
    uint16_t bf16[4] = {0x3f80, 0xc000, 0x0000, 0x7f7f};
    double f64[2] = {3.141592653589793, -1e300};
    int64_t i64[3] = {INT64_MIN, 0, INT64_MAX};
    int32_t i32[2] = {-7, 7};
    int16_t i16[2] = {-300, 300};
    int8_t i8[3] = {-128, 0, 127};
    uint8_t u8[3] = {0, 128, 255};
    uint8_t b8[5] = {1, 0, 0, 1, 1};
    float scalar = 42.0f;
    int64_t s23[] = {2, 3}, s4[] = {4}, s22[] = {2, 2}, s2[] = {2}, s3[] = {3}, s5[] = {5},
            s03[] = {0, 3};
    const struct st_entry entries[] = {
        {"bert.embeddings.word_embeddings.weight", TS_FLOAT32, 2, s23},
        {"half", TS_FLOAT16, 1, s4},
        {"brain", TS_BFLOAT16, 2, s22},
        {"double", TS_FLOAT64, 1, s2},
        {"bert.embeddings.position_ids", TS_INT64, 1, s3},
        {"i32", TS_INT32, 1, s2},
        {"i16", TS_INT16, 1, s2},
        {"i8", TS_INT8, 1, s3},
        {"u8", TS_UINT8, 1, s3},
        {"mask", TS_BOOL, 1, s5},
        {"scalar", TS_FLOAT32, 0, NULL},
        {"empty", TS_FLOAT32, 2, s03},
    };
    const void *data[] = {f32, f16, bf16, f64, i64, i32, i16, i8, u8, b8, &scalar, NULL};
    const size_t nbytes[] = {24, 8, 8, 16, 24, 8, 4, 3, 3, 5, 4, 0};
    const size_t n = sizeof entries / sizeof entries[0];
    const char *meta[] = {"format", "pt", "note", "written by test_safetensors", NULL};
    struct blobs b = {data, nbytes, 0, 0};

    path_of("rt.safetensors", path, sizeof path);
    CHECK_INT(st_write(path, entries, n, meta, get_blob, &b, err, sizeof err), 0);
    uint64_t hlen = header_len(path);
    CHECK((8 + hlen) % 8 == 0, "header length %llu: 8 + N is not a multiple of 8",
          (unsigned long long)hlen);

    struct st_file *f = NULL;
    CHECK_INT(st_open(path, &f, err, sizeof err), 0);
    if (!f) {
        printf("  %s\n", err);
        return;
    }
    CHECK_INT(st_count(f), n);
    size_t at = 8 + (size_t)hlen;
    for (size_t i = 0; i < n && i < st_count(f); i++) {
        const struct st_tensor *t = st_get(f, i);
        int64_t numel = 1;
        for (int d = 0; d < entries[i].ndim; d++)
            numel *= entries[i].shape[d];
        CHECK(!strcmp(t->name, entries[i].name), "entry %zu: name %s, want %s", i, t->name,
              entries[i].name);
        CHECK(t->dtype == entries[i].dtype, "%s: dtype %d, want %d", t->name, t->dtype,
              entries[i].dtype);
        CHECK(t->ndim == entries[i].ndim, "%s: ndim %d, want %d", t->name, t->ndim,
              entries[i].ndim);
        CHECK(!memcmp(t->shape, entries[i].shape ? entries[i].shape : s2,
                      sizeof(int64_t) * (size_t)t->ndim),
              "%s: shape differs", t->name);
        CHECK(t->numel == numel, "%s: numel %lld, want %lld", t->name, (long long)t->numel,
              (long long)numel);
        CHECK(t->nbytes == nbytes[i], "%s: nbytes %zu, want %zu", t->name, t->nbytes, nbytes[i]);
        CHECK(t->offset == at, "%s: offset %zu, want %zu", t->name, t->offset, at);
        CHECK(!nbytes[i] || (t->data && !memcmp(t->data, data[i], nbytes[i])),
              "%s: the bytes differ", t->name);
        CHECK_INT(st_find(f, entries[i].name), i);
        at += nbytes[i];
    }
    CHECK(st_metadata(f, "format") && !strcmp(st_metadata(f, "format"), "pt"), "metadata format");
    CHECK(st_metadata(f, "note") && !strcmp(st_metadata(f, "note"), "written by test_safetensors"),
          "metadata note");
    CHECK(st_metadata(f, "nope") == NULL && st_metadata(f, NULL) == NULL, "metadata nope");

    /* The mapping is private: writing to it leaves the file as it was. */
    float *w = st_get(f, 0)->data;
    w[0] = 99.0f;
    st_close(f);
    f = NULL;
    CHECK_INT(st_open(path, &f, err, sizeof err), 0);
    if (f) {
        float first;
        memcpy(&first, st_get(f, 0)->data, sizeof first);
        CHECK(first == 1.5f, "the file changed under a private mapping: %g", (double)first);
    }
    st_close(f);

    /* The header itself: metadata first, then the entries in order, compact. */
    char *text = NULL;
    size_t len = 0;
    CHECK_INT(fs_read_file(path, 0, &text, &len, err, sizeof err), 0);
    if (text) {
        const char *want = "{\"__metadata__\":{\"format\":\"pt\",\"note\":\"written by "
                           "test_safetensors\"},\"bert.embeddings.word_embeddings.weight\":{"
                           "\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},";
        CHECK(!strncmp(text + 8, want, strlen(want)), "header begins %.200s", text + 8);
        CHECK(strstr(text + 8,
                     "\"scalar\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[103,107]}") !=
                  NULL,
              "the 0-d entry: %.*s", (int)hlen, text + 8);
        size_t end = 8 + (size_t)hlen;
        while (end > 8 && text[end - 1] == ' ')
            end--;
        CHECK(text[end - 1] == '}', "header padding is not spaces after the JSON");
        CHECK(8 + (size_t)hlen - end < 8, "more than 7 bytes of padding");
    }
    free(text);
    unlink(path);
}

static void test_alignment(void)
{
    char path[PATH_MAX], err[512] = "", name[40];
    uint8_t byte = 7;
    int64_t one[] = {1};
    path_of("align.safetensors", path, sizeof path);
    for (int k = 1; k <= 16; k++) {
        memset(name, 'x', (size_t)k);
        name[k] = '\0';
        struct st_entry e = {name, TS_UINT8, 1, one};
        const void *data[] = {&byte};
        const size_t nb[] = {1};
        struct blobs b = {data, nb, 0, 0};
        CHECK_INT(st_write(path, &e, 1, NULL, get_blob, &b, err, sizeof err), 0);
        uint64_t hlen = header_len(path);
        struct stat st;
        CHECK(stat(path, &st) == 0 && (uint64_t)st.st_size == 8 + hlen + 1,
              "name length %d: file size", k);
        CHECK((8 + hlen) % 8 == 0, "name length %d: 8 + %llu is not a multiple of 8", k,
              (unsigned long long)hlen);
        struct st_file *f = NULL;
        CHECK_INT(st_open(path, &f, err, sizeof err), 0);
        CHECK(f && st_get(f, 0)->offset % 8 == 0, "name length %d: data not 8-aligned", k);
        st_close(f);
    }
    /* No entries at all. */
    CHECK_INT(st_write(path, NULL, 0, NULL, NULL, NULL, err, sizeof err), 0);
    CHECK_INT(header_len(path), 8);
    struct st_file *f = NULL;
    CHECK_INT(st_open(path, &f, err, sizeof err), 0);
    CHECK(f && st_count(f) == 0, "empty file");
    st_close(f);
    unlink(path);
}

static void test_write_errors(void)
{
    char path[PATH_MAX], err[512] = "";
    static const int64_t s2[] = {2}, sneg[] = {-1}, sbig[] = {INT64_MAX, 2};
    static const int64_t s9[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    static const int64_t s15[] = {6917529027641081856}; /* 1.5 * 2^62: twice is past 2^63 */
    uint8_t bytes[2] = {1, 2};
    const void *data[] = {bytes, bytes};
    const size_t nb[] = {2, 2};
    struct blobs b = {data, nb, 0, 0};
    struct stat st;
    path_of("w.safetensors", path, sizeof path);

    static const struct {
        const char *what;
        struct st_entry e[2];
        const char *want;
    } invalid[] = {
        {"duplicate name",
         {{"a", TS_UINT8, 1, s2}, {"a", TS_UINT8, 1, s2}},
         "duplicate tensor name 'a'"},
        {"empty name",
         {{"a", TS_UINT8, 1, s2}, {"", TS_UINT8, 1, s2}},
         "the name '' is not allowed"},
        {"NULL name", {{"a", TS_UINT8, 1, s2}, {NULL, TS_UINT8, 1, s2}}, "is not allowed"},
        {"__metadata__",
         {{"__metadata__", TS_UINT8, 1, s2}, {"b", TS_UINT8, 1, s2}},
         "the name '__metadata__' is not allowed"},
        {"TS_OTHER", {{"a", TS_UINT8, 1, s2}, {"b", TS_OTHER, 1, s2}}, "has no safetensors name"},
        {"negative dim", {{"a", TS_UINT8, 1, s2}, {"b", TS_UINT8, 1, sneg}}, "bad shape [-1]"},
        {"overflow", {{"a", TS_UINT8, 1, s2}, {"b", TS_FLOAT32, 2, sbig}}, "bad shape"},
        {"offsets past 2^63",
         {{"a", TS_UINT8, 1, s15}, {"b", TS_UINT8, 1, s15}},
         "tensor 'b': bad shape"},
        {"9 dims", {{"a", TS_UINT8, 1, s2}, {"b", TS_UINT8, 9, s9}}, "9 dimensions"},
        {"no shape", {{"a", TS_UINT8, 1, s2}, {"b", TS_UINT8, 1, NULL}}, "1 dimensions"},
        {"not UTF-8", {{"a", TS_UINT8, 1, s2}, {"\xff", TS_UINT8, 1, s2}}, "not UTF-8"},
    };
    for (size_t k = 0; k < sizeof invalid / sizeof invalid[0]; k++) {
        unlink(path);
        err[0] = '\0';
        int rc = st_write(path, invalid[k].e, 2, NULL, get_blob, &b, err, sizeof err);
        CHECK(rc == ERR_INVALID, "%s: expected invalid, got %s (%s)", invalid[k].what, err_name(rc),
              err);
        CHECK(strstr(err, invalid[k].want) != NULL, "%s: expected \"%s\" in \"%s\"",
              invalid[k].what, invalid[k].want, err);
        CHECK(stat(path, &st) != 0, "%s: a file was created", invalid[k].what);
    }

    const struct st_entry ok[] = {{"a", TS_UINT8, 1, s2}, {"b", TS_UINT8, 1, s2}};
    const char *meta_odd[] = {"format", NULL, NULL};
    const char *meta_twice[] = {"k", "1", "k", "2", NULL};
    CHECK_INT(st_write(path, ok, 2, meta_odd, get_blob, &b, err, sizeof err), ERR_INVALID);
    CHECK(strstr(err, "metadata 'format' has no value") != NULL, "odd metadata: %s", err);
    CHECK_INT(st_write(path, ok, 2, meta_twice, get_blob, &b, err, sizeof err), ERR_INVALID);
    CHECK(strstr(err, "metadata 'k' given twice") != NULL, "metadata twice: %s", err);
    CHECK_INT(st_write(NULL, ok, 2, NULL, get_blob, &b, err, sizeof err), ERR_INVALID);
    CHECK_INT(st_write(path, ok, 2, NULL, NULL, &b, err, sizeof err), ERR_INVALID);

    /* The callback's byte count must match the shape; its errors come back as they are. */
    b.lie = 1;
    CHECK_INT(st_write(path, ok, 2, NULL, get_blob, &b, err, sizeof err), ERR_INTERNAL);
    CHECK(strstr(err, "tensor 'a': handed 1 bytes, shape [2] U8 needs 2") != NULL, "lie: %s", err);
    b.lie = 0;
    b.refuse = 1;
    CHECK_INT(st_write(path, ok, 2, NULL, get_blob, &b, err, sizeof err), ERR_CANCELLED);
    CHECK(!strcmp(err, "stopped at 1"), "callback message: %s", err);
    b.refuse = 0;

    /* Disk full, and a folder that is not there. */
    CHECK_INT(st_write("/dev/full", ok, 2, NULL, get_blob, &b, err, sizeof err), ERR_NOSPACE);
    CHECK(strstr(err, "/dev/full: write:") != NULL, "disk full: %s", err);
    path_of("no/such/dir.safetensors", path, sizeof path);
    CHECK_INT(st_write(path, ok, 2, NULL, get_blob, &b, err, sizeof err), ERR_IO);
    CHECK(strstr(err, "create:") != NULL, "no folder: %s", err);
}

static void test_dtypes(void)
{
    static const struct {
        enum ts_dtype dt;
        const char *name;
        size_t size;
    } want[] = {
        {TS_FLOAT64, "F64", 8},   {TS_FLOAT32, "F32", 4}, {TS_FLOAT16, "F16", 2},
        {TS_BFLOAT16, "BF16", 2}, {TS_INT64, "I64", 8},   {TS_INT32, "I32", 4},
        {TS_INT16, "I16", 2},     {TS_INT8, "I8", 1},     {TS_UINT8, "U8", 1},
        {TS_BOOL, "BOOL", 1},
    };
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
        const char *n = st_dtype_name(want[k].dt);
        CHECK(n && !strcmp(n, want[k].name), "dtype %d: name %s, want %s", want[k].dt,
              n ? n : "NULL", want[k].name);
        CHECK_INT(st_dtype_size(want[k].dt), want[k].size);
    }
    CHECK(st_dtype_name(TS_OTHER) == NULL, "TS_OTHER has a name");
    CHECK_INT(st_dtype_size(TS_OTHER), 0);
}

int main(void)
{
    char tmpl[] = "/tmp/test_safetensors.XXXXXX";
    if (!mkdtemp(tmpl) || !realpath(tmpl, dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_dtypes();
    test_round_trip();
    test_alignment();
    test_valid_edges();
    test_bad_files();
    test_not_a_file();
    test_write_errors();
    char err[256];
    fs_tree_remove(dir, err, sizeof err);
    return ct_done("test_safetensors");
}
