/* bert_config.c - a Hugging Face BertConfig (config.json), typed */
#include "bert_config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "err.h"
#include "json_text.h"

void bert_config_default(struct bert_config *c)
{
    memset(c, 0, sizeof *c);
    c->vocab_size = 30522;
    c->hidden_size = 768;
    c->num_hidden_layers = 12;
    c->num_attention_heads = 12;
    c->intermediate_size = 3072;
    c->hidden_act = BERT_ACT_GELU;
    c->max_position_embeddings = 512;
    c->type_vocab_size = 2;
    c->layer_norm_eps = 1e-12;
    c->hidden_dropout_prob = 0.1;
    c->attention_probs_dropout_prob = 0.1;
    c->classifier_dropout = -1;
    snprintf(c->model_type, sizeof c->model_type, "bert");
}

static const struct {
    const char *name;
    enum bert_act act;
} acts[] = {
    {"gelu", BERT_ACT_GELU},
    {"gelu_new", BERT_ACT_GELU_TANH},
    {"gelu_pytorch_tanh", BERT_ACT_GELU_TANH},
    {"relu", BERT_ACT_RELU},
    {"silu", BERT_ACT_SILU},
    {"swish", BERT_ACT_SILU},
};

const char *bert_act_name(enum bert_act a)
{
    for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++)
        if (acts[i].act == a) return acts[i].name;
    return "gelu";
}

/* An integer key from lo to hi, or the default already in *v. */
static int get_int(const char *path, const json_t *o, const char *key, int lo, int hi, int *v,
                   char *err, size_t errlen)
{
    json_t *x = json_object_get(o, key);
    if (!x || json_is_null(x)) return 0;
    if (!json_is_integer(x) || json_integer_value(x) < lo || json_integer_value(x) > hi)
        return err_set(err, errlen, ERR_FORMAT, "%s: \"%s\" must be an integer from %d to %d", path,
                       key, lo, hi);
    *v = (int)json_integer_value(x);
    return 0;
}

/* A probability key in [0, 1), or the default already in *v (null too). */
static int get_prob(const char *path, const json_t *o, const char *key, double *v, char *err,
                    size_t errlen)
{
    json_t *x = json_object_get(o, key);
    if (!x || json_is_null(x)) return 0;
    if (!json_is_number(x) || !(json_number_value(x) >= 0) || !(json_number_value(x) < 1))
        return err_set(err, errlen, ERR_FORMAT, "%s: \"%s\" must be a number in [0, 1)", path, key);
    *v = json_number_value(x);
    return 0;
}

int bert_config_load(const char *path, struct bert_config *c, char *err, size_t errlen)
{
    json_error_t je;
    json_t *o;
    int rc = 0;
    bert_config_default(c);
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        return err_set(err, errlen, e == ENOENT ? ERR_NOTFOUND : ERR_IO, "%s: %s", path,
                       strerror(e));
    }
    o = json_loadf(f, JSON_REJECT_DUPLICATES, &je);
    fclose(f);
    if (!o)
        return err_set(err, errlen, ERR_FORMAT, "%s: not JSON: %s (line %d)", path, je.text,
                       je.line);
    if (!json_is_object(o)) {
        rc = err_set(err, errlen, ERR_FORMAT, "%s: config.json must be a JSON object", path);
        goto out;
    }
    const char *mt = json_string_value(json_object_get(o, "model_type"));
    if (json_object_get(o, "model_type") && (!mt || strcmp(mt, "bert"))) {
        rc = err_set(err, errlen, ERR_UNSUPPORTED,
                     "%s: \"model_type\" is %s%s%s: only \"bert\" models are read", path,
                     mt ? "\"" : "", mt ? mt : "not a string", mt ? "\"" : "");
        goto out;
    }
    const char *pe = json_string_value(json_object_get(o, "position_embedding_type"));
    if (json_object_get(o, "position_embedding_type") &&
        !json_is_null(json_object_get(o, "position_embedding_type")) &&
        (!pe || strcmp(pe, "absolute"))) {
        rc = err_set(err, errlen, ERR_UNSUPPORTED,
                     "%s: \"position_embedding_type\" %s: only \"absolute\" is supported", path,
                     pe ? pe : "is not a string");
        goto out;
    }
    if ((rc = get_int(path, o, "vocab_size", 1, 1 << 24, &c->vocab_size, err, errlen)) ||
        (rc = get_int(path, o, "hidden_size", 1, 1 << 16, &c->hidden_size, err, errlen)) ||
        (rc = get_int(path, o, "num_hidden_layers", 0, 1024, &c->num_hidden_layers, err, errlen)) ||
        (rc = get_int(path, o, "num_attention_heads", 1, 1 << 12, &c->num_attention_heads, err,
                      errlen)) ||
        (rc = get_int(path, o, "intermediate_size", 1, 1 << 20, &c->intermediate_size, err,
                      errlen)) ||
        (rc = get_int(path, o, "max_position_embeddings", 1, 1 << 20, &c->max_position_embeddings,
                      err, errlen)) ||
        (rc = get_int(path, o, "type_vocab_size", 1, 1 << 16, &c->type_vocab_size, err, errlen)) ||
        (rc = get_int(path, o, "num_labels", 1, 1 << 20, &c->num_labels, err, errlen)) ||
        (rc = get_prob(path, o, "hidden_dropout_prob", &c->hidden_dropout_prob, err, errlen)) ||
        (rc = get_prob(path, o, "attention_probs_dropout_prob", &c->attention_probs_dropout_prob,
                       err, errlen)) ||
        (rc = get_prob(path, o, "classifier_dropout", &c->classifier_dropout, err, errlen)))
        goto out;
    if (c->hidden_size % c->num_attention_heads) {
        rc = err_set(err, errlen, ERR_FORMAT,
                     "%s: \"hidden_size\" %d is not a multiple of \"num_attention_heads\" %d", path,
                     c->hidden_size, c->num_attention_heads);
        goto out;
    }
    json_t *eps = json_object_get(o, "layer_norm_eps");
    if (eps && !json_is_null(eps)) {
        if (!json_is_number(eps) || !(json_number_value(eps) > 0) ||
            !isfinite(json_number_value(eps))) {
            rc = err_set(err, errlen, ERR_FORMAT, "%s: \"layer_norm_eps\" must be a number > 0",
                         path);
            goto out;
        }
        c->layer_norm_eps = json_number_value(eps);
    }
    json_t *act = json_object_get(o, "hidden_act");
    if (act && !json_is_null(act)) {
        const char *a = json_string_value(act);
        size_t i;
        for (i = 0; a && i < sizeof acts / sizeof acts[0]; i++)
            if (!strcmp(acts[i].name, a)) break;
        if (!a || i == sizeof acts / sizeof acts[0]) {
            rc = err_set(err, errlen, ERR_UNSUPPORTED,
                         "%s: \"hidden_act\" must be \"gelu\", \"gelu_new\", "
                         "\"gelu_pytorch_tanh\", \"relu\" or \"silu\"",
                         path);
            goto out;
        }
        c->hidden_act = acts[i].act;
    }
    json_t *id2label = json_object_get(o, "id2label");
    if (json_is_object(id2label) && json_object_size(id2label) > 0)
        c->num_labels = (int)json_object_size(id2label);
out:
    json_decref(o);
    return rc;
}

/* shape's layers into o's "prunerd" block and its removed heads into
 * "pruned_heads", numbered as in the unpruned model: the input's own
 * pruned_heads of a layer say which of its original heads are gone, so the
 * k-th head now is the k-th one not among them (when they do not fit the
 * weights, the layer's history is unknown and starts again). */
static void write_shape(json_t *o, const struct bert_config *c, const struct bert_shape *shape)
{
    int uneven = 0;
    json_t *layers = json_array();
    for (int l = 0; l < shape->nlayers; l++) {
        uneven |=
            shape->heads[l] != c->num_attention_heads || shape->ffn[l] != c->intermediate_size;
        json_array_append_new(
            layers, json_pack("{s:i, s:i}", "heads", shape->heads[l], "ffn", shape->ffn[l]));
    }
    if (uneven)
        json_object_set_new(o, "prunerd", json_pack("{s:o}", "layers", layers));
    else {
        json_object_del(o, "prunerd");
        json_decref(layers);
    }
    if (!shape->removed) return;
    json_t *had = json_object_get(o, "pruned_heads");
    json_t *ph = json_object();
    const int n = c->num_attention_heads;
    char *gone = malloc((size_t)n + 1);
    int *now = malloc(sizeof *now * (size_t)(n + 1));
    for (int l = 0; gone && now && l < shape->nlayers; l++) {
        char key[16];
        snprintf(key, sizeof key, "%d", l);
        memset(gone, 0, (size_t)n + 1);
        json_t *e = json_is_object(had) ? json_object_get(had, key) : NULL, *v;
        size_t i;
        int ngone = 0;
        json_array_foreach(e, i, v)
        {
            json_int_t h = json_integer_value(v);
            if (json_is_integer(v) && h >= 0 && h < n && !gone[h]) gone[h] = 1, ngone++;
        }
        if (n - ngone != shape->heads[l] + shape->nremoved[l])
            memset(gone, 0, (size_t)n), ngone = 0;
        int k = 0;
        for (int h = 0; h < n; h++)
            if (!gone[h]) now[k++] = h;
        for (int r = 0; r < shape->nremoved[l]; r++)
            if (shape->removed[l][r] >= 0 && shape->removed[l][r] < k)
                gone[now[shape->removed[l][r]]] = 1;
        json_t *list = json_array();
        for (int h = 0; h < n; h++)
            if (gone[h]) json_array_append_new(list, json_integer(h));
        if (json_array_size(list))
            json_object_set_new(ph, key, list);
        else
            json_decref(list);
    }
    free(gone);
    free(now);
    json_object_set_new(o, "pruned_heads", ph);
}

int bert_config_write(const char *src, const struct bert_config *c, const char *head, int nlabels,
                      const char *const *labels, const struct bert_shape *shape, const char *path,
                      char *err, size_t errlen)
{
    json_t *o = NULL, *id2label = json_object(), *label2id = json_object();
    int rc = 0;
    if (src) {
        json_error_t je;
        o = json_load_file(src, JSON_REJECT_DUPLICATES, &je);
        if (!json_is_object(o)) {
            rc = err_set(err, errlen, ERR_FORMAT, "%s: not a JSON object", src);
            goto out;
        }
    } else {
        o = json_pack("{s:i, s:i, s:i, s:i, s:i, s:s, s:i, s:i, s:f, s:f, s:f}", "vocab_size",
                      c->vocab_size, "hidden_size", c->hidden_size, "num_hidden_layers",
                      c->num_hidden_layers, "num_attention_heads", c->num_attention_heads,
                      "intermediate_size", c->intermediate_size, "hidden_act",
                      bert_act_name(c->hidden_act), "max_position_embeddings",
                      c->max_position_embeddings, "type_vocab_size", c->type_vocab_size,
                      "layer_norm_eps", c->layer_norm_eps, "hidden_dropout_prob",
                      c->hidden_dropout_prob, "attention_probs_dropout_prob",
                      c->attention_probs_dropout_prob);
    }
    json_object_set_new(o, "model_type", json_string("bert"));
    if (head && !strcmp(head, "classifier"))
        json_object_set_new(o, "architectures", json_pack("[s]", "BertForSequenceClassification"));
    /* the input's own names when it has one for each label */
    json_t *had = json_object_get(o, "id2label");
    int keep = !labels && json_is_object(had) && (int)json_object_size(had) == nlabels;
    for (int i = 0; i < nlabels; i++) {
        char key[16], def[32];
        snprintf(key, sizeof key, "%d", i);
        snprintf(def, sizeof def, "LABEL_%d", i);
        snprintf(key, sizeof key, "%d", i);
        const char *old = keep ? json_string_value(json_object_get(had, key)) : NULL;
        const char *name = labels && labels[i] ? labels[i] : old ? old : def;
        json_object_set_new(id2label, key, json_string(name));
        json_object_set_new(label2id, name, json_integer(i));
    }
    json_object_set(o, "id2label", id2label);
    json_object_set(o, "label2id", label2id);
    json_object_del(o, "num_labels"); /* id2label says it */
    if (shape) write_shape(o, c, shape);
    char *text = json_text_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    FILE *f = text ? fopen(path, "w") : NULL;
    int bad = !f || fputs(text, f) < 0;
    if (f && fclose(f)) bad = 1;
    free(text);
    if (bad) {
        rc = err_set(err, errlen, ERR_IO, "%s: cannot write", path);
        goto out;
    }
out:
    json_decref(o);
    json_decref(id2label);
    json_decref(label2id);
    return rc;
}
