/* test_dataset.c - THUCNews loading: good files, every malformed line, the real dev set */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ct.h"
#include "dataset.h"
#include "err.h"

static char tmpdir[] = "/tmp/test_dataset.XXXXXX";

/* Writes len bytes to tmpdir/name; returns the path (static buffer per slot). */
static const char *put(int slot, const char *name, const char *data, size_t len)
{
    static char paths[2][512];
    snprintf(paths[slot], sizeof paths[slot], "%s/%s", tmpdir, name);
    FILE *f = fopen(paths[slot], "wb");
    if (!f || fwrite(data, 1, len, f) != len) {
        fprintf(stderr, "cannot write %s\n", paths[slot]);
        exit(1);
    }
    fclose(f);
    return paths[slot];
}

#define PUTS(slot, name, s) put(slot, name, s, sizeof(s) - 1)

static const char *classes3(void)
{
    return PUTS(1, "class.txt", "finance\nrealty\nstocks\n");
}

/* dataset_open, holding it to its contract: 0 with a dataset, or a code with
 * NULL; the code is kept in last_rc. */
static int last_rc;
static struct dataset *load(const char *data, const char *cls, long limit, char *err, size_t errlen)
{
    struct dataset *d = (struct dataset *)&d; /* not NULL: dataset_open must set it */
    last_rc = dataset_open(data, cls, limit, &d, err, errlen);
    CHECK((last_rc == 0) == (d != NULL), "dataset_open returned %d with dataset %p", last_rc,
          (void *)d);
    return d;
}

/* Expects dataset_open to fail with ERR_FORMAT and a message holding want. */
static void expect_fail(const char *what, const char *data, size_t len, const char *want)
{
    char err[512] = "";
    const char *cls = classes3();
    const char *path = put(0, "bad.txt", data, len);
    struct dataset *d = load(path, cls, 0, err, sizeof err);
    CHECK(d == NULL && last_rc == ERR_FORMAT, "%s: loaded, or code %d", what, last_rc);
    dataset_destroy(d);
    char full[600];
    snprintf(full, sizeof full, want, path);
    CHECK(strstr(err, full) != NULL, "%s: message '%s' lacks '%s'", what, err, full);
}

#define EXPECT_FAIL(what, s, want) expect_fail(what, s, sizeof(s) - 1, want)

static void test_good(void)
{
    char err[256] = "";
    const char *cls = classes3();
    const char *data = PUTS(0, "good.txt", "上证指数\t2\nsome\ttabbed text\t0\r\nhouse\trealty\n");
    struct dataset *d = load(data, cls, 0, err, sizeof err);
    CHECK(d != NULL, "load: %s", err);
    if (!d) return;
    CHECK_INT(d->n, 3);
    CHECK_INT(d->nclasses, 3);
    CHECK(!strcmp(d->classes[2], "stocks"), "class 2 '%s'", d->classes[2]);
    CHECK(!strcmp(d->examples[0].text, "上证指数"), "text 0 '%s'", d->examples[0].text);
    CHECK_INT(d->examples[0].len, strlen("上证指数"));
    CHECK_INT(d->examples[0].label, 2);
    CHECK(!strcmp(d->examples[1].text, "some\ttabbed text"), "text 1 '%s'", d->examples[1].text);
    CHECK_INT(d->examples[1].label, 0);
    CHECK(!strcmp(d->examples[2].text, "house"), "text 2 '%s'", d->examples[2].text);
    CHECK_INT(d->examples[2].label, 1);
    dataset_destroy(d);
    dataset_destroy(NULL);

    /* No final newline in either file; a CRLF class file; a BOM. */
    cls = PUTS(1, "class_nonl.txt",
               "\xEF\xBB\xBF"
               "a\r\nb");
    data = PUTS(0, "nonl.txt",
                "\xEF\xBB\xBF"
                "x\t1\ny\tb\nz\t00");
    d = load(data, cls, 0, err, sizeof err);
    CHECK(d != NULL, "load without final newlines: %s", err);
    if (d) {
        CHECK_INT(d->nclasses, 2);
        CHECK(!strcmp(d->classes[0], "a") && !strcmp(d->classes[1], "b"), "classes '%s' '%s'",
              d->classes[0], d->classes[1]);
        CHECK_INT(d->n, 3);
        CHECK(!strcmp(d->examples[0].text, "x"), "BOM skipped: '%s'", d->examples[0].text);
        CHECK_INT(d->examples[1].label, 1);
        CHECK_INT(d->examples[2].label, 0);
        CHECK(!strcmp(d->examples[2].text, "z"), "last text '%s'", d->examples[2].text);
    }
    dataset_destroy(d);
}

static void test_limit(void)
{
    char err[256] = "";
    const char *cls = classes3();
    /* Line 4 is malformed: a limit of 3 never reads it. */
    const char *data = PUTS(0, "limit.txt", "a\t0\nb\t1\nc\t2\nbroken\nd\t0\n");
    struct dataset *d = load(data, cls, 3, err, sizeof err);
    CHECK(d != NULL, "limit 3: %s", err);
    if (d) {
        CHECK_INT(d->n, 3);
        CHECK(!strcmp(d->examples[2].text, "c"), "text 2 '%s'", d->examples[2].text);
        CHECK(!strcmp(d->examples[0].text, "a"), "text 0 '%s'", d->examples[0].text);
    }
    dataset_destroy(d);
    d = load(data, cls, 1, err, sizeof err);
    CHECK(d && d->n == 1 && !strcmp(d->examples[0].text, "a"), "limit 1");
    dataset_destroy(d);
    d = load(data, cls, 0, err, sizeof err);
    CHECK(d == NULL && strstr(err, "limit.txt:4: no tab"), "no limit reaches line 4: '%s'", err);
    dataset_destroy(d);
    d = load(data, cls, 100, err, sizeof err);
    CHECK(d == NULL, "limit past the end reads everything");
    dataset_destroy(d);

    /* A file bigger than the loader's first chunk: the limit falls in a
     * later chunk, and the lines across chunk edges come out whole. */
    size_t cap = 20000 * 16, len = 0;
    char *big = malloc(cap);
    CHECK(big != NULL, "malloc");
    if (!big) return;
    for (int i = 0; i < 20000; i++)
        len += (size_t)snprintf(big + len, cap - len, "text%05d\t%d\n", i, i % 3);
    data = put(0, "big.txt", big, len);
    free(big);
    for (long lim = 9999; lim <= 20001; lim += 5001) {
        long want = lim > 20000 ? 20000 : lim;
        d = load(data, cls, lim, err, sizeof err);
        CHECK(d && d->n == (size_t)want, "big file, limit %ld: %s", lim, err);
        int ok = d != NULL;
        for (size_t i = 0; d && i < d->n; i++) {
            char t[32];
            snprintf(t, sizeof t, "text%05zu", i);
            if (strcmp(d->examples[i].text, t) || d->examples[i].label != (int)(i % 3)) ok = 0;
        }
        CHECK(ok, "big file, limit %ld: every text and label in order", lim);
        dataset_destroy(d);
    }
}

static void test_malformed(void)
{
    EXPECT_FAIL("missing tab", "ok\t1\nno tab here\n", "%s:2: no tab");
    EXPECT_FAIL("empty text", "ok\t1\n\t1\n", "%s:2: empty text");
    EXPECT_FAIL("empty label", "ok\t\n", "%s:1: empty label");
    EXPECT_FAIL("label out of range", "ok\t1\nok\t3\n", "%s:2: label '3'");
    EXPECT_FAIL("huge label", "ok\t99999999999999999999999\n", "%s:1: label '9999");
    EXPECT_FAIL("negative label", "ok\t-1\n", "%s:1: label '-1'");
    EXPECT_FAIL("unknown class name", "ok\tsports\n", "%s:1: label 'sports'");
    EXPECT_FAIL("label with a space", "ok\t1 \n", "%s:1: label '1 '");
    EXPECT_FAIL("blank line inside", "a\t0\n\nb\t1\n", "%s:2: empty line");
    EXPECT_FAIL("two final newlines", "a\t0\n\n", "%s:2: empty line");
    EXPECT_FAIL("empty file", "", "%s: no examples");
    EXPECT_FAIL("NUL byte", "a\0b\t0\n", "%s:1: invalid UTF-8 at byte 2");

    /* Invalid UTF-8, on line 2, at byte 3 of the line. */
    static const char *bad[] = {
        "\x80",             /* lone continuation */
        "\xC0\x80",         /* overlong NUL */
        "\xC1\xBF",         /* overlong 2-byte */
        "\xE0\x80\x80",     /* overlong 3-byte */
        "\xE0\x9F\xBF",     /* overlong: U+07FF in 3 bytes */
        "\xF0\x8F\xBF\xBF", /* overlong: U+FFFF in 4 bytes */
        "\xED\xA0\x80",     /* surrogate U+D800 */
        "\xED\xBF\xBF",     /* surrogate U+DFFF */
        "\xF4\x90\x80\x80", /* U+110000 */
        "\xF5\x80\x80\x80", /* lead byte beyond U+10FFFF */
        "\xFF",             /* never valid */
        "\xE4\xB8",         /* truncated (then the tab) */
        "\xE4\xB8x",        /* bad continuation */
        "\xF0\x9F\x98",     /* truncated 4-byte */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char data[64], what[64];
        int len = snprintf(data, sizeof data, "ok\t0\nab%s\t1\n", bad[i]);
        snprintf(what, sizeof what, "invalid UTF-8 case %zu", i);
        expect_fail(what, data, (size_t)len, "%s:2: invalid UTF-8 at byte 3");
    }
    /* ...and the boundaries that are valid. */
    static const char *good[] = {
        "\xC2\x80",         /* U+0080 */
        "\xDF\xBF",         /* U+07FF */
        "\xE0\xA0\x80",     /* U+0800 */
        "\xED\x9F\xBF",     /* U+D7FF */
        "\xEE\x80\x80",     /* U+E000 */
        "\xEF\xBF\xBF",     /* U+FFFF */
        "\xF0\x90\x80\x80", /* U+10000 */
        "\xF4\x8F\xBF\xBF", /* U+10FFFF */
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        char data[64], err[256] = "";
        int len = snprintf(data, sizeof data, "ab%s\t1\n", good[i]);
        const char *cls = classes3();
        const char *path = put(0, "edge.txt", data, (size_t)len);
        struct dataset *d = load(path, cls, 0, err, sizeof err);
        CHECK(d && d->examples[0].len == (size_t)len - 3, "valid UTF-8 case %zu: %s", i, err);
        dataset_destroy(d);
    }
}

static void test_class_file(void)
{
    char err[256] = "";
    const char *data = PUTS(0, "d.txt", "x\t0\n");
    struct {
        const char *what, *text, *want;
    } cases[] = {
        {"empty class name", "a\n\nb\n", ":2: empty class name"},
        {"duplicate", "a\nb\na\n", ":3: duplicate class name 'a'"},
        {"tab in name", "a\tb\n", ":1: tab in class name"},
        {"invalid UTF-8", "a\n\xC0\xAF\n", ":2: invalid UTF-8 at byte 1"},
        {"empty class file", "", ": no class names"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *cls = put(1, "c.txt", cases[i].text, strlen(cases[i].text));
        struct dataset *d = load(data, cls, 0, err, sizeof err);
        char full[600];
        snprintf(full, sizeof full, "%s%s", cls, cases[i].want);
        CHECK(d == NULL && strstr(err, full), "%s: message '%s' lacks '%s'", cases[i].what, err,
              full);
        dataset_destroy(d);
    }
}

static void test_missing_file(void)
{
    char err[256] = "", path[600];
    snprintf(path, sizeof path, "%s/does-not-exist.txt", tmpdir);
    struct dataset *d = load(path, classes3(), 0, err, sizeof err);
    CHECK(d == NULL && last_rc == ERR_NOTFOUND && strstr(err, path) && strstr(err, "No such file"),
          "missing data: %d '%s'", last_rc, err);
    const char *data = PUTS(0, "d.txt", "x\t0\n");
    d = load(data, path, 0, err, sizeof err);
    CHECK(d == NULL && strstr(err, path), "missing classes: '%s'", err);
    d = load(tmpdir, classes3(), 0, err, sizeof err);
    CHECK(d == NULL && strstr(err, tmpdir), "a directory as data: '%s'", err);
}

/* The real THUCNews dev set: 10,000 lines, 1,000 a class. */
static void test_thucnews_dev(void)
{
    const char *shared = getenv("PRUNERD_SHARED");
    char data[1024], cls[1024], err[512] = "";
    CHECK(shared && *shared, "PRUNERD_SHARED is not set: cannot find the THUCNews dev set");
    if (!shared) return;
    snprintf(data, sizeof data, "%s/data/thucnews/dev.txt", shared);
    snprintf(cls, sizeof cls, "%s/data/thucnews/class.txt", shared);
    CHECK(access(data, R_OK) == 0 && access(cls, R_OK) == 0,
          "THUCNews dev set missing: need %s and %s", data, cls);
    struct dataset *d = load(data, cls, 0, err, sizeof err);
    CHECK(d != NULL, "dev.txt: %s", err);
    if (!d) return;
    CHECK_INT(d->n, 10000);
    CHECK_INT(d->nclasses, 10);
    CHECK(!strcmp(d->classes[0], "finance") && !strcmp(d->classes[9], "entertainment"),
          "classes '%s' .. '%s'", d->classes[0], d->classes[9]);
    size_t per[10] = {0};
    int ok = 1;
    for (size_t i = 0; i < d->n; i++) {
        if (d->examples[i].label < 0 || d->examples[i].label >= 10 || !d->examples[i].len ||
            strlen(d->examples[i].text) != d->examples[i].len)
            ok = 0;
        else
            per[d->examples[i].label]++;
    }
    CHECK(ok, "every example has a label in range and a text of its length");
    for (int c = 0; c < 10; c++)
        CHECK(per[c] == 1000, "class %d has %zu examples, want 1000", c, per[c]);
    dataset_destroy(d);

    d = load(data, cls, 5, err, sizeof err);
    CHECK(d && d->n == 5 && d->examples[0].label == 8, "dev.txt limit 5: %s", err);
    dataset_destroy(d);
}

int main(void)
{
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_good();
    test_limit();
    test_malformed();
    test_class_file();
    test_missing_file();
    test_thucnews_dev();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return ct_done("test_dataset");
}
