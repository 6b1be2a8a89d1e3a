/* tokenizer.h - transformers' BertTokenizer and BertTokenizerLegacy over a vocab.txt */
#ifndef PRUNERD_TOKENIZER_H
#define PRUNERD_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

/*
 * A tokenizer is read-only once created, so one may be shared by threads.
 * docs/api.md ("Tokenizers") lists where the two modes differ.
 */
struct tokenizer;

/* Which transformers tokenizer to follow; both read the same vocab.txt. */
enum tok_mode {
    TOK_BERT = 0,        /* transformers 5's BertTokenizer: the Rust tokenizers
                          * pipeline (BertNormalizer, BertPreTokenizer, WordPiece) */
    TOK_BERT_LEGACY = 1, /* transformers' BertTokenizerLegacy: the Python
                          * BasicTokenizer + WordpieceTokenizer of transformers 4,
                          * which ../shared/data/golden/README.md spells out */
};
#define TOK_MODE_COUNT 2

/* The modes' names as the job request (eval.tokenizer) and the CLI
 * (--tokenizer) spell them, indexed by enum tok_mode, NULL-terminated. */
extern const char *const tok_mode_names[TOK_MODE_COUNT + 1];
/* Sets *mode to the mode called name; ERR_INVALID (*mode untouched) if none. */
int tok_mode_parse(const char *name, enum tok_mode *mode);

/* Special ids of bert-base-chinese; tok_open checks the vocab has them. */
#define TOK_PAD_ID 0

/* Loads vocab_path (one token a line) for mode.  lowercase: BERT's
 * do_lower_case (strip_accents follows it, as both transformers classes
 * default).  Returns 0 with *out set (free with tok_destroy), or ERR_INVALID
 * (mode, no path), ERR_NOTFOUND / ERR_IO (the file), ERR_FORMAT (the vocab:
 * not UTF-8, no tokens, a special token missing), ERR_NOMEM, with *out NULL. */
int tok_open(const char *vocab_path, enum tok_mode mode, int lowercase, struct tokenizer **out,
             char *err, size_t errlen);
void tok_destroy(struct tokenizer *t);

size_t tok_vocab_size(const struct tokenizer *t);
/* The token of id (vocab-owned), or NULL when out of range. */
const char *tok_id_to_token(const struct tokenizer *t, int32_t id);
/* The id of token (len bytes), or -1. */
int32_t tok_token_to_id(const struct tokenizer *t, const char *token, size_t len);
int32_t tok_cls_id(const struct tokenizer *t);
int32_t tok_sep_id(const struct tokenizer *t);
int32_t tok_unk_id(const struct tokenizer *t);

/* Growable id list; tok_ids_free releases it. */
struct tok_ids {
    int32_t *ids;
    size_t n, cap;
};
void tok_ids_free(struct tok_ids *v);

/*
 * Tokenizes text (len bytes of UTF-8) into ids, appended to out after
 * clearing it: no [CLS]/[SEP] added, no truncation.  As in transformers, the
 * special tokens [PAD] [UNK] [CLS] [SEP] [MASK] written in the text (exact
 * case, anywhere) are kept whole, each as its id, when the vocab has them.
 * Invalid UTF-8 is ERR_INVALID.
 */
int tok_tokenize(const struct tokenizer *t, const char *text, size_t len, struct tok_ids *out,
                 char *err, size_t errlen);

/*
 * Model input: [CLS] + ids[:max_length-2] + [SEP], padded with 0 to
 * max_length; attention mask 1 on real tokens.  ids and mask hold max_length
 * entries.  *real_len gets the unpadded length.
 */
int tok_encode(const struct tokenizer *t, const char *text, size_t len, int max_length,
               int64_t *ids, int64_t *mask, int *real_len, char *err, size_t errlen);

#endif
