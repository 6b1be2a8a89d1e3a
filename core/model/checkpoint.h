/* checkpoint.h - what a model path holds (by content) and the files it is made of */
#ifndef PRUNERD_CHECKPOINT_H
#define PRUNERD_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "torch_shim.h"

/*
 * A job's "model" is one of:
 *   - a TorchScript archive (torch.jit.save);
 *   - a torch.save zip of a state_dict (.pt, .pth, .bin: the name does not
 *     matter), with a config.json beside it or named by model_config;
 *   - a safetensors file, the same way;
 *   - a Hugging Face folder: config.json plus model.safetensors, or the
 *     shards a model.safetensors.index.json names, or pytorch_model.bin;
 *     vocab.txt and tokenizer_config.json are picked up when there.
 * The format is read from the content, never from the name.  Every file is
 * resolved on its own through the caller's resolver (the roots in the
 * daemon), and a folder's files must also lie in that folder once links are
 * followed, so an index or a link cannot point elsewhere.
 */
enum ckpt_kind {
    CKPT_TORCHSCRIPT,
    CKPT_STATE_DICT,  /* one torch.save file */
    CKPT_SAFETENSORS, /* one safetensors file */
    CKPT_HF_DIR,      /* a save_pretrained folder */
};

struct ckpt_files {
    enum ckpt_kind kind;
    char *path;     /* the model as named, resolved */
    char *config;   /* config.json; NULL for TorchScript, or when a single
                       file has none beside it (ckpt_open refuses it then) */
    char **weights; /* the weight files, shards in index order */
    size_t nweights;
    int weights_safetensors; /* 1: safetensors weights, 0: torch.save (or TorchScript) */
    char *vocab;             /* the folder's vocab.txt, or NULL */
    int do_lower_case;       /* the folder's tokenizer_config.json says: 0/1; -1 unknown */
};

/* Resolves an absolute or relative path to a real absolute one (0), or
 * ERR_DENIED / ERR_NOTFOUND / ERR_INVALID with a message. */
typedef int (*ckpt_resolve_fn)(void *ud, const char *path, char *out, size_t outlen, char *err,
                               size_t errlen);

/*
 * Finds out what model (already resolved) is and which files make it, each
 * through resolve.  model_config (resolved, or NULL) overrides the
 * config.json beside a single file; without either, config stays NULL (see
 * ckpt_config_missing).  Fills *out (free with
 * ckpt_files_free, also after a failure).  Returns 0 or ERR_FORMAT (a file
 * that is none of the above, a legacy pickle, a folder without weights),
 * ERR_NOTFOUND (a config or shard that is not there), ERR_DENIED, ERR_IO,
 * with a message naming the file.
 */
int ckpt_locate(const char *model, const char *model_config, ckpt_resolve_fn resolve, void *ud,
                struct ckpt_files *out, char *err, size_t errlen);
void ckpt_files_free(struct ckpt_files *f);

/* The lowercasing an evaluation of f uses: said (0 or 1) when said >= 0,
 * else the folder's tokenizer_config.json, else BERT's default, true. */
int ckpt_lowercase(const struct ckpt_files *f, int said);

/* "torchscript", "state_dict", "safetensors", "hf_folder" (static). */
const char *ckpt_kind_name(enum ckpt_kind k);

/* ERR_NOTFOUND with the message for a single file without config.json. */
int ckpt_config_missing(const struct ckpt_files *f, char *err, size_t errlen);

/* Opens what ckpt_locate found on device: ts_model_open for TorchScript,
 * config.json and ts_model_open_native for the rest.  Without a config the
 * weights are still read, so a broken file is reported as such before
 * ckpt_config_missing. */
int ckpt_open(const struct ckpt_files *f, const char *device, struct ts_model **out, char *err,
              size_t errlen);

/* ckpt_locate, then ckpt_open: the model at path (resolved), in one call. */
int ckpt_open_path(const char *path, const char *model_config, ckpt_resolve_fn resolve, void *ud,
                   const char *device, struct ts_model **out, char *err, size_t errlen);

/* A file of a saved folder. */
struct ckpt_saved_file {
    char name[32]; /* "config.json", "model.safetensors" */
    char sha256[65];
    int64_t bytes;
};

struct ckpt_saved {
    struct ckpt_saved_file files[2];
    size_t nfiles;
    int64_t bytes; /* all files */
};

/*
 * Writes a native model as a Hugging Face folder at dir: model.safetensors
 * (ts_model_save_safetensors: the input's names and dtypes, __metadata__
 * {"format": "pt"}) and config.json (config_src updated by
 * bert_config_write with the head and the labels: labels[i] for nlabels
 * names, or NULL).  Everything goes into a temporary folder beside dir,
 * each file fsync'd, and the folder is renamed to dir when complete (a dir
 * left by an earlier run is replaced), so dir is whole or absent.  Fills
 * *out.  Returns 0 or ERR_* with a message; nothing is left on failure.
 */
int ckpt_save_folder(struct ts_model *m, const char *config_src, const char *const *labels,
                     int nlabels, const int *const *removed, const int *nremoved, const char *dir,
                     struct ckpt_saved *out, char *err, size_t errlen);

/* A ckpt_resolve_fn for the command line: realpath, no roots. */
int ckpt_resolve_local(void *ud, const char *path, char *out, size_t outlen, char *err,
                       size_t errlen);

#endif
