/* bert_config.h - a Hugging Face BertConfig (config.json), typed */
#ifndef PRUNERD_BERT_CONFIG_H
#define PRUNERD_BERT_CONFIG_H

#include <stddef.h>

enum bert_act {
    BERT_ACT_GELU,      /* "gelu": erf */
    BERT_ACT_GELU_TANH, /* "gelu_new", "gelu_pytorch_tanh" */
    BERT_ACT_RELU,
    BERT_ACT_SILU, /* "silu", "swish" */
};

/*
 * The keys of config.json the forward needs, with BertConfig's defaults for
 * absent ones.  The heads and FFN width of each layer are not in it: they
 * come from the weights' shapes (attention_head_size = hidden_size /
 * num_attention_heads), so layers may differ once heads or FFN rows are
 * pruned.
 */
struct bert_config {
    int vocab_size;              /* 30522 */
    int hidden_size;             /* 768 */
    int num_hidden_layers;       /* 12 */
    int num_attention_heads;     /* 12 */
    int intermediate_size;       /* 3072 */
    enum bert_act hidden_act;    /* gelu */
    int max_position_embeddings; /* 512 */
    int type_vocab_size;         /* 2 */
    double layer_norm_eps;       /* 1e-12 */
    int num_labels;              /* from id2label or num_labels; 0: the config does not say */
    /* dropout in training (the recover stage); inference has none */
    double hidden_dropout_prob;          /* 0.1 */
    double attention_probs_dropout_prob; /* 0.1 */
    double classifier_dropout;           /* -1 (null): hidden_dropout_prob */
    char model_type[32];                 /* "bert" */
};

/* BertConfig's defaults. */
void bert_config_default(struct bert_config *c);

/*
 * Reads config.json at path.  Refuses (ERR_FORMAT, naming the key) what is
 * not JSON, a wrong type, a value out of range, a model_type other than
 * "bert", a position_embedding_type other than "absolute", an unknown
 * hidden_act, and a hidden_size that num_attention_heads does not divide.
 * Returns 0, ERR_NOTFOUND / ERR_IO or ERR_FORMAT / ERR_UNSUPPORTED with a
 * message.
 */
int bert_config_load(const char *path, struct bert_config *c, char *err, size_t errlen);

/* The encoder as saved: each layer's heads and FFN width, and the heads
 * this save removed from each layer, numbered as in the model that was read
 * (removed and nremoved NULL: none). */
struct bert_shape {
    int nlayers;
    const int *heads, *ffn;
    const int *const *removed;
    const int *nremoved;
};

/*
 * Writes config.json for a saved model at path (exactly there; the caller
 * renames): the input's config (src, or BertConfig's keys from c when src is
 * NULL) with "model_type": "bert", "architectures" for the head
 * ("BertForSequenceClassification" for classifier.*, kept as it was for
 * fc.*), and "id2label" / "label2id" for the nlabels labels: labels[i];
 * when labels is NULL the input's id2label if it has nlabels names, else
 * "LABEL_i".  With shape (may be NULL) and a layer narrower than the
 * config says, also "prunerd": {"layers": [{"heads", "ffn"}, ...]}; and
 * shape's removed heads go into "pruned_heads" as transformers v4 keeps it
 * (per layer, the heads' numbers in the unpruned model, merged with the
 * input's own pruned_heads).  Returns 0 or ERR_* with a message.
 */
int bert_config_write(const char *src, const struct bert_config *c, const char *head, int nlabels,
                      const char *const *labels, const struct bert_shape *shape, const char *path,
                      char *err, size_t errlen);

/* "gelu", "gelu_new", ... of an activation (static). */
const char *bert_act_name(enum bert_act a);

#endif
