/* fuzz_tokenizer.c - libFuzzer target: tok_tokenize and tok_encode on any bytes, both modes, both
 * cases */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "tokenizer.h"

#include "fuzz_file.h"

/* A small vocab in bert-base-chinese's shape: the specials first ([PAD] is
 * id 0), CJK characters, ASCII words and ## pieces, punctuation, an accent. */
static const char vocab[] = "[PAD]\n[unused1]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n"
                            "!\n\"\n#\n(\n)\n,\n-\n.\n/\n:\n?\n[\n]\n"
                            "0\n1\n2\n9\na\nb\ne\ni\nn\ns\nt\nx\n"
                            "the\nun\n##aff\n##able\n##s\n##ing\n##ed\n##a\n##e\n##2\n"
                            "bert\nprune\n##r\nhello\nworld\nnba\n2023\n##0\n"
                            "中\n国\n新\n闻\n体\n育\n财\n经\n股\n市\n的\n了\n人\n"
                            "，\n。\n！\n？\n、\n（\n）\n：\n"
                            "é\ncafé\nα\nß\nǆ\n##é\n";

#define NTOK (2 * TOK_MODE_COUNT)
static struct tokenizer *toks[NTOK]; /* [mode * 2 + lowercase], made once */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    struct fuzz_file f;
    char err[256];
    fuzz_file_open(&f, "vocab.txt");
    fuzz_file_set(&f, vocab, sizeof vocab - 1);
    for (int i = 0; i < NTOK; i++) {
        if (tok_open(f.path, (enum tok_mode)(i / 2), i % 2, &toks[i], err, sizeof err) != 0) {
            fprintf(stderr, "tok_open: %s\n", err);
            abort();
        }
    }
    close(f.fd);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    /* from 2 (nothing but [CLS] [SEP]) up, and past the 512 of the stack buffer */
    int max_length = size ? 2 + data[0] % 64 : 2;
    if (size > 1 && data[1] == 0xff) max_length = 600;
    int64_t *ids = malloc((size_t)max_length * sizeof *ids);
    int64_t *mask = malloc((size_t)max_length * sizeof *mask);
    if (!ids || !mask) abort();
    char err[256];

    for (int i = 0; i < NTOK; i++) {
        const struct tokenizer *t = toks[i];
        struct tok_ids v = {0};
        int real_len = -1;
        int rc = tok_tokenize(t, text, size, &v, err, sizeof err);
        int rc2 = tok_encode(t, text, size, max_length, ids, mask, &real_len, err, sizeof err);
        /* Both read the whole text for UTF-8, so they agree on whether it is. */
        if ((rc == 0) != (rc2 == 0)) {
            fprintf(stderr, "tok %d: tokenize rc %d, encode rc %d\n", i, rc, rc2);
            abort();
        }
        if (rc == 0) {
            /* encode is [CLS] + the first max_length - 2 ids + [SEP], padded */
            size_t keep = v.n < (size_t)max_length - 2 ? v.n : (size_t)max_length - 2;
            if (real_len != (int)keep + 2 || ids[0] != tok_cls_id(t) ||
                ids[keep + 1] != tok_sep_id(t)) {
                fprintf(stderr, "tok %d: encode real_len %d, expected %zu\n", i, real_len,
                        keep + 2);
                abort();
            }
            for (size_t k = 0; k < keep; k++)
                if (ids[k + 1] != v.ids[k]) {
                    fprintf(stderr, "tok %d: encode id %zu is %lld, tokenize gave %d\n", i, k,
                            (long long)ids[k + 1], v.ids[k]);
                    abort();
                }
            for (int k = 0; k < max_length; k++)
                if (mask[k] != (k < real_len) || (k >= real_len && ids[k] != TOK_PAD_ID)) {
                    fprintf(stderr, "tok %d: bad mask or padding at %d\n", i, k);
                    abort();
                }
            for (size_t k = 0; k < v.n; k++)
                if (!tok_id_to_token(t, v.ids[k])) {
                    fprintf(stderr, "tok %d: id %d out of the vocab\n", i, v.ids[k]);
                    abort();
                }
        }
        tok_ids_free(&v);
    }
    free(ids);
    free(mask);
    return 0;
}
