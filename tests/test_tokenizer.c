/* test_tokenizer.c - the tokenizer on hand-picked strings over a tiny vocab */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ct.h"
#include "err.h"
#include "tokenizer.h"

/* One token a line; its id is the line number from 0. */
static const char *const vocab_lines[] = {
    "[PAD]",  "[UNK]", "[CLS]",      "[SEP]",  "hello", "he", "##llo", "un",  "##aff",
    "##able", "a",     "##a",        "b",      "ab",    "中", "文",    "!",   ",",
    ".",      "e",     "i",          "σ",      "##ς",   "ς",  "dup",   "dup", "##b",
    "##σ",    "é",     "##\xcc\x81", "[MASK]", "[",     "]",  "unk",
};
#define NVOCAB (sizeof vocab_lines / sizeof vocab_lines[0])
enum {
    HELLO = 4,
    UN = 7,
    AFF = 8,
    ABLE = 9,
    A = 10,
    CA = 11,
    B = 12,
    AB = 13,
    ZHONG = 14,
    WEN = 15,
    BANG = 16,
    COMMA = 17,
    DOT = 18,
    E = 19,
    I = 20,
    SIGMA = 21,
    CFINAL = 22,
    CSIGMA = 27, /* ##σ */
    EACUTE = 28, /* é, U+00E9 */
    CACUTE = 29, /* ##U+0301 */
    MASK = 30,
    LBR = 31,
    RBR = 32,
    UNKWORD = 33, /* unk */
    UNK = 1,
    CLS = 2,
    SEP = 3,
};

#define TOK_TEST_MAX 16

static char dir[64];

/* Writes a vocab file of the given lines joined by eol; returns its path (static). */
static const char *write_vocab(const char *name, const char *const *lines, size_t n,
                               const char *eol)
{
    static char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(EXIT_FAILURE);
    }
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s%s", lines[i], eol);
    fclose(f);
    return path;
}

/* Tokenizes text (len bytes, or strlen when len is -1) and compares with
 * the n ids that follow. */
static void check_ids(int line, struct tokenizer *t, const char *text, long len, int n, ...)
{
    struct tok_ids ids = {0};
    char err[128] = "";
    size_t l = len < 0 ? strlen(text) : (size_t)len;
    int rc = tok_tokenize(t, text, l, &ids, err, sizeof err);
    int ok = rc == 0 && ids.n == (size_t)n, want[TOK_TEST_MAX];
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n && i < TOK_TEST_MAX; i++) {
        want[i] = va_arg(ap, int);
        if (ok && ids.ids[i] != want[i]) ok = 0;
    }
    va_end(ap);
    if (ok) {
        ct_pass++;
    } else {
        ct_fail++;
        fprintf(stderr, "%s:%d: FAIL tokenize \"%s\": rc %d (%s), %zu ids:", __FILE__, line, text,
                rc, err, ids.n);
        for (size_t i = 0; i < ids.n; i++)
            fprintf(stderr, " %d", ids.ids[i]);
        fprintf(stderr, "; expected %d ids:", n);
        for (int i = 0; i < n && i < TOK_TEST_MAX; i++)
            fprintf(stderr, " %d", want[i]);
        fputc('\n', stderr);
    }
    tok_ids_free(&ids);
}
#define IDS(t, text, ...) check_ids(__LINE__, t, text, -1, __VA_ARGS__)

static void test_both(struct tokenizer *lo, struct tokenizer *cs)
{
    struct tokenizer *both[2] = {lo, cs};
    for (int k = 0; k < 2; k++) {
        struct tokenizer *t = both[k];
        IDS(t, "unaffable", 3, UN, AFF, ABLE);
        IDS(t, "hello!", 2, HELLO, BANG);
        IDS(t, "a,b.", 4, A, COMMA, B, DOT);
        IDS(t, "a中b", 3, A, ZHONG, B);
        IDS(t, "中文", 2, ZHONG, WEN);
        IDS(t, "ab", 1, AB);
        IDS(t, "abz", 1, UNK); /* ab + ##z: uncoverable -> one [UNK] */
        IDS(t, "", 0);
        IDS(t, " \t\r\n ", 0);
        IDS(t, "a\tb", 2, A, B);
        IDS(t,
            "a\xe2\x80\xa8"
            "b",
            2, A, B); /* U+2028: str.split() splits */
        IDS(t,
            "a\xc2\xa0"
            "b",
            2, A, B); /* U+00A0: Zs, a space */
        IDS(t,
            "a\xe2\x80\x8b"
            "b",
            1, AB); /* U+200B: Cf, dropped */
        IDS(t,
            "a\xc2\x85"
            "b",
            1, AB); /* U+0085: Cc, dropped before the split */
        IDS(t,
            "a\x1c"
            "b",
            1, AB); /* U+001C: likewise */
        IDS(t,
            "a\xef\xbf\xbd"
            "b",
            1, AB);                               /* U+FFFD dropped */
        check_ids(__LINE__, t, "a\0b", 3, 1, AB); /* U+0000 dropped */
        IDS(t,
            "a\xee\x80\x80"
            "b",
            1, AB);           /* U+E000: Co, dropped */
        IDS(t, "dup", 1, 25); /* a repeated token: its last id */
    }
    /* 100 code points is a word, 101 is [UNK]. */
    char word[128];
    memset(word, 'a', 101);
    word[100] = '\0';
    struct tok_ids ids = {0};
    char err[128];
    CHECK_INT(tok_tokenize(cs, word, 100, &ids, err, sizeof err), 0);
    CHECK(ids.n == 100 && ids.ids[0] == A && ids.ids[99] == CA, "%zu ids", ids.n);
    word[100] = 'a';
    word[101] = '\0';
    IDS(cs, word, 1, UNK);
    IDS(lo, word, 1, UNK);
    tok_ids_free(&ids);
}

static void test_lower(struct tokenizer *lo, struct tokenizer *cs)
{
    IDS(lo, "UNaffable", 3, UN, AFF, ABLE);
    IDS(cs, "UNaffable", 1, UNK);
    IDS(lo, "Hello!", 2, HELLO, BANG);
    IDS(cs, "Hello!", 2, UNK, BANG);
    IDS(lo, "\xc3\x89", 1, E); /* É -> é -> e + U+0301 -> e */
    IDS(cs, "\xc3\x89", 1, UNK);
    IDS(lo, "e\xcc\x81", 1, E); /* e + U+0301 (slow path); cased: test_legacy, test_bert */
    IDS(lo, "\xc4\xb0", 1, I);  /* İ -> i (legacy: lower, then strip; bert: the reverse) */
    IDS(cs, "\xc4\xb0", 1, UNK);
    IDS(lo, "\xce\xa3", 1, SIGMA); /* a lone Σ is not final */
    IDS(cs, "\xce\xa3", 1, UNK);
    IDS(lo, "\xc3\xa9", 1, E); /* é */
    IDS(cs, "\xc3\xa9", 1, EACUTE);
}

/* Where BertTokenizerLegacy's Python (Unicode 14.0) semantics show. */
static void test_legacy(struct tokenizer *lo, struct tokenizer *cs)
{
    struct tokenizer *both[2] = {lo, cs};
    for (int k = 0; k < 2; k++) {
        struct tokenizer *t = both[k];
        IDS(t,
            "a\xcd\xb8"
            "b",
            1, AB); /* U+0378: unassigned (Cn), dropped */
        /* Assigned in Unicode 15.0, unassigned (so dropped) in 14.0: */
        IDS(t,
            "a\xf0\x9f\xab\xa8"
            "b",
            1, AB); /* U+1FAE8 (So in 15.0) */
        IDS(t,
            "a\xe0\xb3\xb3"
            "b",
            1, AB); /* U+0CF3 (Mc in 15.0) */
        IDS(t,
            "a\xf0\xb1\x8d\x90"
            "b",
            1, AB); /* U+31350 CJK ext. H (Lo) */
        IDS(t,
            "a\xf0\xab\xa0\xa0"
            "b",
            3, A, UNK, B); /* U+2B820: a CJK ideograph to BERT */
        IDS(t,
            "a\xe1\x99\xad"
            "b",
            1, UNK); /* U+166D: So, no punctuation */
        IDS(t,
            "a\xf0\x9e\xa5\x9e"
            "b",
            3, A, UNK, B); /* U+1E95E: Po (Adlam, Unicode 9.0) */
        IDS(t,
            "a\xe0\xa2\x90"
            "b",
            1, AB); /* U+0890: Cf (Unicode 14.0), dropped */
    }
    IDS(lo, "\xce\xa3\xce\xa3", 2, SIGMA, CFINAL);       /* ΣΣ -> σς */
    IDS(lo, "\xce\xa3\xce\xa3.", 3, SIGMA, CFINAL, DOT); /* '.' is case-ignorable */
    IDS(lo,
        "\xce\xa3\xce\xa3"
        "a",
        3, SIGMA, CSIGMA, CA);       /* σσa: not final */
    IDS(cs, "e\xcc\x81", 1, EACUTE); /* NFC: é */
    IDS(cs, "e\xcc\x81[CLS]a", 3, EACUTE, CLS, A);
    IDS(lo,
        "a\xe1\xab\x81"
        "b",
        1, AB); /* U+1AC1: Mn (Unicode 13.0), stripped */
}

/* Where BertTokenizer's Rust semantics show (see core/eval/tokenizer.c, DESIGN). */
static void test_bert(struct tokenizer *lo, struct tokenizer *cs)
{
    struct tokenizer *both[2] = {lo, cs};
    for (int k = 0; k < 2; k++) {
        struct tokenizer *t = both[k];
        IDS(t,
            "a\xcd\xb8"
            "b",
            1, UNK); /* U+0378: unassigned, kept */
        IDS(t,
            "a\xf0\x9f\xab\xa8"
            "b",
            1, UNK); /* U+1FAE8: kept */
        IDS(t,
            "a\xf0\xab\xa0\xa0"
            "b",
            1, UNK); /* U+2B820: the crate's CJK ranges start at U+2B920 */
        IDS(t,
            "a\xe1\x99\xad"
            "b",
            3, A, UNK, B); /* U+166D: Po in Unicode 8.0 */
        IDS(t,
            "a\xf0\x9e\xa5\x9e"
            "b",
            1, UNK); /* U+1E95E: unknown to Unicode 8.0 */
        IDS(t,
            "a\xe0\xa2\x90"
            "b",
            1, UNK); /* U+0890: unknown to Unicode 8.0, kept */
    }
    IDS(lo, "\xce\xa3\xce\xa3", 2, SIGMA, CSIGMA);       /* ΣΣ -> σσ: no final sigma */
    IDS(lo, "\xce\xa3\xce\xa3.", 3, SIGMA, CSIGMA, DOT); /* likewise */
    IDS(cs, "e\xcc\x81", 2, E, CACUTE);                  /* no NFC */
    IDS(cs, "e\xcc\x81[CLS]a", 4, E, CACUTE, CLS, A);
    IDS(lo,
        "a\xe1\xab\x81"
        "b",
        1, UNK); /* U+1AC1: no Mn to Unicode 8.0, kept */
    IDS(lo,
        "a\xf0\x91\xa4\xb8"
        "b",
        1, UNK);                        /* U+11938: no decomposition, one [UNK] */
    IDS(lo, "\xc4\xb0", 1, I);          /* İ: NFD, strip, then lower */
    IDS(lo, "e\xcc\x81\xcc\x81", 1, E); /* two marks, both stripped */
}

/* Special tokens in the text: kept whole in both modes. */
static void test_special(struct tokenizer *lo, struct tokenizer *cs)
{
    struct tokenizer *both[2] = {lo, cs};
    for (int k = 0; k < 2; k++) {
        struct tokenizer *t = both[k];
        IDS(t, "[CLS]", 1, CLS);
        IDS(t, "a[SEP]b", 3, A, SEP, B);
        IDS(t, "a [MASK] b", 3, A, MASK, B);
        IDS(t, "[UNK][PAD]", 2, UNK, 0);
        IDS(t, "[unk]", 3, LBR, UNKWORD, RBR); /* exact case only */
        IDS(t, "[SEP", 2, LBR, UNK);
        IDS(t, "[ab", 2, LBR, AB);
        IDS(t, "\xc3\xa9[SEP]\xc3\xa9", 3, t == lo ? E : EACUTE, SEP, t == lo ? E : EACUTE);
    }
    IDS(lo, "e\xcc\x81[CLS]a", 3, E, CLS, A); /* slow path, cut at [CLS] */
}

static void test_encode(struct tokenizer *t)
{
    int64_t ids[600], mask[600];
    int n = -1;
    char err[128];
    CHECK_INT(tok_encode(t, "a b a b a", 9, 5, ids, mask, &n, err, sizeof err), 0);
    CHECK_INT(n, 5);
    int64_t w5[] = {2, A, B, A, 3};
    for (int i = 0; i < 5; i++) {
        CHECK_INT(ids[i], w5[i]);
        CHECK_INT(mask[i], 1);
    }
    CHECK_INT(tok_encode(t, "a b a b a", 9, 10, ids, mask, &n, err, sizeof err), 0);
    CHECK_INT(n, 7);
    int64_t w10[] = {2, A, B, A, B, A, 3, 0, 0, 0};
    for (int i = 0; i < 10; i++) {
        CHECK_INT(ids[i], w10[i]);
        CHECK_INT(mask[i], i < 7);
    }
    CHECK_INT(tok_encode(t, "a b", 3, 2, ids, mask, &n, err, sizeof err), 0);
    CHECK(n == 2 && ids[0] == 2 && ids[1] == 3, "n %d", n);
    /* more room than the stack buffer */
    CHECK_INT(tok_encode(t, "ab", 2, 600, ids, mask, &n, err, sizeof err), 0);
    CHECK(n == 3 && ids[1] == AB && ids[599] == 0 && mask[2] == 1 && mask[3] == 0, "n %d", n);
    CHECK_INT(tok_encode(t, "a", 1, 1, ids, mask, &n, err, sizeof err), ERR_INVALID);
    /* invalid UTF-8 after the ids kept is still an error */
    CHECK_INT(tok_encode(t, "a b a b a \xff", 11, 4, ids, mask, &n, err, sizeof err), ERR_INVALID);
    CHECK_INT(tok_encode(t, "a b a b a \xee\x80\x80\xff", 14, 4, ids, mask, &n, err, sizeof err),
              ERR_INVALID);
}

static void test_invalid(struct tokenizer *t)
{
    static const char *const bad[] = {
        "\xff",
        "a\x80",
        "\xc0\x80",         /* overlong NUL */
        "\xe0\x80\xaf",     /* overlong '/' */
        "\xed\xa0\x80",     /* surrogate */
        "\xf4\x90\x80\x80", /* above U+10FFFF */
        "\xe4\xb8",         /* truncated */
        "\xc3\x89\xff",     /* after a character of the slow path... */
        "\xee\x80\x80\xff", /* ...and after one outside the table */
    };
    struct tok_ids ids = {0};
    char err[128];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        CHECK_INT(tok_tokenize(t, bad[i], strlen(bad[i]), &ids, err, sizeof err), ERR_INVALID);
        CHECK(strstr(err, "UTF-8") != NULL, "message '%s'", err);
        CHECK_INT(ids.n, 0);
    }
    /* the list is cleared, then refilled */
    CHECK_INT(tok_tokenize(t, "a b", 3, &ids, err, sizeof err), 0);
    CHECK_INT(tok_tokenize(t, "ab", 2, &ids, err, sizeof err), 0);
    CHECK(ids.n == 1 && ids.ids[0] == AB, "%zu ids", ids.n);
    tok_ids_free(&ids);
}

/* tok_open, holding it to its contract: 0 with a tokenizer, or a code with
 * NULL; *rc gets the code. */
static struct tokenizer *open_tok(const char *path, enum tok_mode mode, int lower, int *rc,
                                  char *err, size_t errlen)
{
    struct tokenizer *t = (struct tokenizer *)&t; /* not NULL: tok_open must set it */
    *rc = tok_open(path, mode, lower, &t, err, errlen);
    CHECK((*rc == 0) == (t != NULL), "tok_open returned %d with tokenizer %p", *rc, (void *)t);
    return t;
}

static void test_vocab(struct tokenizer *t, enum tok_mode mode)
{
    int rc;
    char err[256];
    CHECK_INT(tok_vocab_size(t), NVOCAB);
    CHECK_INT(tok_cls_id(t), 2);
    CHECK_INT(tok_sep_id(t), 3);
    CHECK_INT(tok_unk_id(t), 1);
    CHECK(tok_id_to_token(t, HELLO) && !strcmp(tok_id_to_token(t, HELLO), "hello"), "token");
    CHECK(tok_id_to_token(t, -1) == NULL, "id -1");
    CHECK(tok_id_to_token(t, NVOCAB) == NULL, "id %zu", NVOCAB);
    CHECK_INT(tok_token_to_id(t, "##llo", 5), 6);
    CHECK_INT(tok_token_to_id(t, "hellox", 5), HELLO);
    CHECK_INT(tok_token_to_id(t, "nope", 4), -1);

    /* CRLF line ends, no final newline: the same tokens in both modes */
    const char *crlf = write_vocab("crlf.txt", vocab_lines, NVOCAB, "\r\n");
    struct tokenizer *c = open_tok(crlf, mode, 1, &rc, err, sizeof err);
    CHECK(c != NULL, "%s", err);
    if (c) {
        CHECK_INT(tok_vocab_size(c), NVOCAB);
        CHECK_INT(tok_token_to_id(c, "hello", 5), HELLO);
        IDS(c, "unaffable", 3, UN, AFF, ABLE);
        tok_destroy(c);
    }
    /* A lone CR ends a line for Python, not for Rust's lines() */
    const char *cr_lines[] = {"[PAD]\r[UNK]\r[CLS]\r[SEP]\rlast"};
    const char *cr = write_vocab("cr.txt", cr_lines, 1, "");
    err[0] = '\0';
    c = open_tok(cr, mode, 0, &rc, err, sizeof err);
    if (mode == TOK_BERT_LEGACY) {
        CHECK(c != NULL, "%s", err);
        if (c) {
            CHECK_INT(tok_vocab_size(c), 5);
            CHECK_INT(tok_token_to_id(c, "last", 4), 4);
        }
    } else {
        CHECK(c == NULL && strstr(err, "[UNK]") != NULL, "CR-only vocab: '%s'", err);
    }
    tok_destroy(c);
    /* Trailing whitespace: BertTokenizer's WordPiece::read_file trims it */
    const char *ws_lines[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "ab \t", "cd\xe3\x80\x80", "e f"};
    c = open_tok(write_vocab("ws.txt", ws_lines, 7, "\n"), mode, 0, &rc, err, sizeof err);
    CHECK(c != NULL, "%s", err);
    if (c) {
        int trim = mode == TOK_BERT;
        CHECK_INT(tok_token_to_id(c, "ab", 2), trim ? 4 : -1);
        CHECK_INT(tok_token_to_id(c, "ab \t", 4), trim ? -1 : 4);
        CHECK_INT(tok_token_to_id(c, "cd", 2), trim ? 5 : -1); /* U+3000 is White_Space */
        CHECK_INT(tok_token_to_id(c, "e f", 3), 6);
        CHECK(!strcmp(tok_id_to_token(c, 4), trim ? "ab" : "ab \t"), "token 4 '%s'",
              tok_id_to_token(c, 4));
        IDS(c, "ab", 1, trim ? 4 : UNK);
        tok_destroy(c);
    }

    /* missing file, missing specials, [PAD] not at 0, not UTF-8 */
    char missing[128];
    snprintf(missing, sizeof missing, "%s/missing.txt", dir);
    err[0] = '\0';
    CHECK(open_tok(missing, mode, 1, &rc, err, sizeof err) == NULL && rc == ERR_NOTFOUND,
          "missing vocab: %d", rc);
    CHECK(strstr(err, "missing.txt") != NULL, "message '%s'", err);
    const char *nounk_lines[] = {"[PAD]", "[CLS]", "[SEP]", "a"};
    err[0] = '\0';
    CHECK(open_tok(write_vocab("nounk.txt", nounk_lines, 4, "\n"), mode, 1, &rc, err, sizeof err) ==
              NULL,
          "no [UNK]");
    CHECK_INT(rc, ERR_FORMAT);
    CHECK(strstr(err, "[UNK]") != NULL, "message '%s'", err);
    const char *pad_lines[] = {"a", "[PAD]", "[UNK]", "[CLS]", "[SEP]"};
    err[0] = '\0';
    CHECK(open_tok(write_vocab("pad.txt", pad_lines, 5, "\n"), mode, 1, &rc, err, sizeof err) ==
              NULL,
          "[PAD] at 1");
    CHECK(err[0] != '\0', "no message");
    const char *bin_lines[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "\xff"};
    err[0] = '\0';
    CHECK(open_tok(write_vocab("bin.txt", bin_lines, 5, "\n"), mode, 1, &rc, err, sizeof err) ==
              NULL,
          "not UTF-8");
    CHECK_INT(rc, ERR_FORMAT);
    CHECK(strstr(err, "line 5") != NULL, "message '%s'", err);
    CHECK(open_tok(NULL, mode, 1, &rc, err, sizeof err) == NULL && rc == ERR_INVALID, "NULL path");
    err[0] = '\0';
    CHECK(open_tok(crlf, (enum tok_mode)7, 1, &rc, err, sizeof err) == NULL && rc == ERR_INVALID,
          "mode 7");
    CHECK(strstr(err, "mode") != NULL, "message '%s'", err);
    tok_destroy(NULL);
    tok_ids_free(NULL);
}

static void test_mode_names(void)
{
    enum tok_mode m = TOK_BERT_LEGACY;
    CHECK_INT(tok_mode_parse("bert", &m), 0);
    CHECK_INT(m, TOK_BERT);
    CHECK_INT(tok_mode_parse("bert_legacy", &m), 0);
    CHECK_INT(m, TOK_BERT_LEGACY);
    CHECK_INT(tok_mode_parse("BERT", &m), ERR_INVALID);
    CHECK_INT(tok_mode_parse(NULL, &m), ERR_INVALID);
    CHECK_INT(m, TOK_BERT_LEGACY);
    CHECK(!strcmp(tok_mode_names[TOK_BERT], "bert"), "%s", tok_mode_names[TOK_BERT]);
    CHECK(tok_mode_names[TOK_MODE_COUNT] == NULL, "names end with NULL");
}

int main(void)
{
    char err[256];
    int rc;
    snprintf(dir, sizeof dir, "/tmp/test_tokenizer.XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return EXIT_FAILURE;
    }
    const char *path = write_vocab("vocab.txt", vocab_lines, NVOCAB, "\n");
    char vocab[128];
    snprintf(vocab, sizeof vocab, "%s", path);
    test_mode_names();
    for (int mode = 0; mode < TOK_MODE_COUNT; mode++) {
        struct tokenizer *lo = open_tok(vocab, (enum tok_mode)mode, 1, &rc, err, sizeof err);
        CHECK(lo != NULL, "tok_open %s lower: %s", tok_mode_names[mode], err);
        struct tokenizer *cs = open_tok(vocab, (enum tok_mode)mode, 0, &rc, err, sizeof err);
        CHECK(cs != NULL, "tok_open %s cased: %s", tok_mode_names[mode], err);
        if (lo && cs) {
            int before = ct_fail;
            test_both(lo, cs);
            test_lower(lo, cs);
            test_special(lo, cs);
            if (mode == TOK_BERT_LEGACY)
                test_legacy(lo, cs);
            else
                test_bert(lo, cs);
            test_encode(lo);
            test_invalid(lo);
            test_invalid(cs);
            test_vocab(lo, (enum tok_mode)mode);
            if (ct_fail != before)
                fprintf(stderr, "(those failures: mode %s)\n", tok_mode_names[mode]);
        }
        tok_destroy(lo);
        tok_destroy(cs);
    }
    static const char *const files[] = {"vocab.txt", "crlf.txt", "cr.txt", "ws.txt",
                                        "nounk.txt", "pad.txt",  "bin.txt"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char p[128];
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        unlink(p);
    }
    rmdir(dir);
    return ct_done("test_tokenizer");
}
