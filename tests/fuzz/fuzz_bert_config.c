/* fuzz_bert_config.c - libFuzzer target: bert_config_load on any bytes, then bert_config_write over
 * them */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bert_config.h"
#include "err.h"

#include "fuzz_file.h"

static struct fuzz_file in_file, out_file;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_file_open(&in_file, "config.json");
    fuzz_file_open(&out_file, "saved-config.json");
    return 0;
}

#define MAX_LAYERS 48

/* Saves a pruned model's config.json over the input (its pruned_heads,
 * id2label and all), as a job does, and reads it back: what prunerd
 * writes it must read, with the same shape. */
static void write_and_reload(const char *src, const struct bert_config *c, const uint8_t *data,
                             size_t size)
{
    static int heads[MAX_LAYERS], ffn[MAX_LAYERS], nremoved[MAX_LAYERS], rm[MAX_LAYERS][2];
    static const int *removed[MAX_LAYERS];
    char err[512];
    int n = c->num_attention_heads;
    int nlayers = c->num_hidden_layers < MAX_LAYERS ? c->num_hidden_layers : MAX_LAYERS;
    for (int l = 0; l < nlayers; l++) {
        uint8_t b = size ? data[l % size] : 0;
        int g = (b >> 4) % 4 < n ? (b >> 4) % 4 : 0; /* heads an earlier save removed */
        int k = n - g;                               /* heads in the model read */
        nremoved[l] = k > 2 ? b % 3 : 0;             /* heads this save removes */
        rm[l][0] = b % k;                            /* numbered in the model read */
        rm[l][1] = (rm[l][0] + 1) % k;
        heads[l] = k - nremoved[l];
        ffn[l] = b & 1 ? c->intermediate_size : c->intermediate_size / 2 + 1;
        removed[l] = rm[l];
    }
    struct bert_shape shape = {nlayers, heads, ffn, removed, nremoved};
    int nlabels = c->num_labels > 0 && c->num_labels <= 64 ? c->num_labels : 2;
    const char *head = size && data[size - 1] & 1 ? "classifier" : "fc";
    if (bert_config_write(src, c, head, nlabels, NULL, &shape, out_file.path, err, sizeof err)) {
        fprintf(stderr, "bert_config_write refused a config bert_config_load took: %s\n", err);
        abort();
    }
    struct bert_config back;
    if (bert_config_load(out_file.path, &back, err, sizeof err) != 0) {
        fprintf(stderr, "bert_config_load refused what bert_config_write wrote: %s\n", err);
        abort();
    }
    if (back.hidden_size != c->hidden_size || back.num_attention_heads != c->num_attention_heads ||
        back.num_hidden_layers != c->num_hidden_layers || back.hidden_act != c->hidden_act ||
        back.vocab_size != c->vocab_size || back.num_labels != nlabels) {
        fprintf(stderr, "saved config reads back differently\n");
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    struct bert_config c;
    const char *path = fuzz_file_set(&in_file, data, size);
    if (bert_config_load(path, &c, err, sizeof err) != 0) return 0;
    /* what the forward relies on once a config loads */
    if (c.hidden_size <= 0 || c.num_attention_heads <= 0 || c.hidden_size % c.num_attention_heads) {
        fprintf(stderr, "loaded a config the forward cannot use: hidden %d heads %d\n",
                c.hidden_size, c.num_attention_heads);
        abort();
    }
    write_and_reload(path, &c, data, size);
    return 0;
}
