/* checkpoint.c - what a model path holds (by content) and the files it is made of */
#include "checkpoint.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "bert_config.h"
#include "err.h"
#include "fsutil.h"
#include "safetensors.h"

const char *ckpt_kind_name(enum ckpt_kind k)
{
    switch (k) {
    case CKPT_TORCHSCRIPT:
        return "torchscript";
    case CKPT_STATE_DICT:
        return "state_dict";
    case CKPT_SAFETENSORS:
        return "safetensors";
    case CKPT_HF_DIR:
        return "hf_folder";
    }
    return "unknown";
}

void ckpt_files_free(struct ckpt_files *f)
{
    if (!f) return;
    free(f->path);
    free(f->config);
    for (size_t i = 0; i < f->nweights; i++)
        free(f->weights[i]);
    free(f->weights);
    free(f->vocab);
    memset(f, 0, sizeof *f);
    f->do_lower_case = -1;
}

int ckpt_resolve_local(void *ud, const char *path, char *out, size_t outlen, char *err,
                       size_t errlen)
{
    char real[PATH_MAX];
    (void)ud;
    if (!realpath(path, real))
        return err_set(err, errlen, errno == ENOENT ? ERR_NOTFOUND : ERR_IO, "%s: %s", path,
                       strerror(errno));
    if (strlen(real) >= outlen) return err_set(err, errlen, ERR_INVALID, "%s: path too long", real);
    memcpy(out, real, strlen(real) + 1);
    return 0;
}

/* What the first bytes say. */
enum sniff { SNIFF_ZIP, SNIFF_PICKLE, SNIFF_SAFETENSORS, SNIFF_EMPTY, SNIFF_OTHER };

static int sniff(const char *path, enum sniff *s, char *err, size_t errlen)
{
    unsigned char b[9] = {0};
    FILE *f = fopen(path, "rb");
    if (!f)
        return err_set(err, errlen, errno == ENOENT ? ERR_NOTFOUND : ERR_IO, "%s: %s", path,
                       strerror(errno));
    size_t n = fread(b, 1, sizeof b, f);
    fclose(f);
    *s = n == 0 ? SNIFF_EMPTY : SNIFF_OTHER;
    if (n >= 4 && !memcmp(b, "PK\x03\x04", 4))
        *s = SNIFF_ZIP;
    else if (n >= 2 && b[0] == 0x80 && b[1] >= 2 && b[1] <= 5)
        *s = SNIFF_PICKLE;
    else if (n == 9 && b[8] == '{')
        *s = SNIFF_SAFETENSORS;
    return 0;
}

int ckpt_lowercase(const struct ckpt_files *f, int said)
{
    return said >= 0 ? said : f->do_lower_case >= 0 ? f->do_lower_case : 1;
}

static int legacy_pickle(const char *path, char *err, size_t errlen)
{
    return err_set(err, errlen, ERR_FORMAT,
                   "%s: a legacy torch.save file (a pickle, not a zip: PyTorch before 1.6 or "
                   "_use_new_zipfile_serialization=False); load it with torch and re-save it "
                   "with PyTorch 1.6 or later",
                   path);
}

/* Resolves dir/name (must lie in dir once resolved); ERR_NOTFOUND when absent. */
static int in_folder(const char *dir, const char *name, ckpt_resolve_fn resolve, void *ud,
                     char **out, char *err, size_t errlen)
{
    char joined[PATH_MAX], real[PATH_MAX];
    *out = NULL;
    if (!*name || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, ".."))
        return err_set(err, errlen, ERR_DENIED,
                       "%s: '%s' is outside the folder (not a file name in it)", dir, name);
    if ((size_t)snprintf(joined, sizeof joined, "%s/%s", dir, name) >= sizeof joined)
        return err_set(err, errlen, ERR_INVALID, "%s/%s: path too long", dir, name);
    struct stat st;
    if (lstat(joined, &st) != 0) return err_set(err, errlen, ERR_NOTFOUND, "%s: not there", joined);
    int rc = resolve(ud, joined, real, sizeof real, err, errlen);
    if (rc) return rc;
    size_t dl = strlen(dir);
    if (strncmp(real, dir, dl) || real[dl] != '/' || strchr(real + dl + 1, '/'))
        return err_set(err, errlen, ERR_DENIED, "%s: leads outside the folder (to %s)", joined,
                       real);
    if (stat(real, &st) != 0 || !S_ISREG(st.st_mode))
        return err_set(err, errlen, ERR_FORMAT, "%s: not a regular file", joined);
    if (!(*out = strdup(real))) return err_set(err, errlen, ERR_NOMEM, "out of memory");
    return 0;
}

static int add_weight(struct ckpt_files *f, char *path, char *err, size_t errlen)
{
    char **w = realloc(f->weights, (f->nweights + 1) * sizeof *w);
    if (!w) {
        free(path);
        return err_set(err, errlen, ERR_NOMEM, "out of memory");
    }
    f->weights = w;
    f->weights[f->nweights++] = path;
    return 0;
}

/* The shards model.safetensors.index.json names, each once, in order. */
static int read_index(struct ckpt_files *f, const char *dir, const char *index,
                      ckpt_resolve_fn resolve, void *ud, char *err, size_t errlen)
{
    json_error_t je;
    json_t *o = json_load_file(index, JSON_REJECT_DUPLICATES, &je);
    json_t *map = json_object_get(o, "weight_map");
    const char *key;
    json_t *v;
    int rc = 0;
    if (!json_is_object(map) || json_object_size(map) == 0) {
        rc = err_set(err, errlen, ERR_FORMAT, "%s: %s", index,
                     o ? "no \"weight_map\" object of tensor -> shard" : je.text);
        goto out;
    }
    json_object_foreach(map, key, v)
    {
        const char *shard = json_string_value(v);
        if (!shard) {
            rc = err_set(err, errlen, ERR_FORMAT, "%s: weight_map[\"%s\"] is not a file name",
                         index, key);
            goto out;
        }
        char *p = NULL;
        if ((rc = in_folder(dir, shard, resolve, ud, &p, err, errlen))) goto out;
        int dup = 0;
        for (size_t i = 0; i < f->nweights && !dup; i++)
            dup = !strcmp(f->weights[i], p);
        if (dup)
            free(p);
        else if ((rc = add_weight(f, p, err, errlen)))
            goto out;
    }
out:
    json_decref(o);
    return rc;
}

static int locate_folder(const char *dir, ckpt_resolve_fn resolve, void *ud, struct ckpt_files *f,
                         char *err, size_t errlen)
{
    char *p = NULL;
    int rc;
    f->kind = CKPT_HF_DIR;
    rc = in_folder(dir, "config.json", resolve, ud, &f->config, err, errlen);
    if (rc == ERR_NOTFOUND)
        return err_set(err, errlen, ERR_FORMAT,
                       "%s: a folder without config.json (not a save_pretrained folder)", dir);
    if (rc) return rc;
    if ((rc = in_folder(dir, "model.safetensors", resolve, ud, &p, err, errlen)) == 0) {
        f->weights_safetensors = 1;
        rc = add_weight(f, p, err, errlen);
    } else if (rc == ERR_NOTFOUND && (rc = in_folder(dir, "model.safetensors.index.json", resolve,
                                                     ud, &p, err, errlen)) == 0) {
        f->weights_safetensors = 1;
        rc = read_index(f, dir, p, resolve, ud, err, errlen);
        free(p);
        if (rc == ERR_NOTFOUND) return rc; /* a shard it names: the message says which */
    } else if (rc == ERR_NOTFOUND &&
               (rc = in_folder(dir, "pytorch_model.bin", resolve, ud, &p, err, errlen)) == 0) {
        rc = add_weight(f, p, err, errlen);
    }
    if (rc == ERR_NOTFOUND)
        return err_set(err, errlen, ERR_FORMAT,
                       "%s: no weights (model.safetensors, model.safetensors.index.json or "
                       "pytorch_model.bin)",
                       dir);
    if (rc) return rc;
    for (size_t i = 0; i < f->nweights; i++) {
        enum sniff s;
        if ((rc = sniff(f->weights[i], &s, err, errlen))) return rc;
        if (f->weights_safetensors && s != SNIFF_SAFETENSORS)
            return err_set(err, errlen, ERR_FORMAT, "%s: not a safetensors file", f->weights[i]);
        if (!f->weights_safetensors && s == SNIFF_PICKLE)
            return legacy_pickle(f->weights[i], err, errlen);
    }
    /* the tokenizer's files, when the folder has them */
    rc = in_folder(dir, "vocab.txt", resolve, ud, &f->vocab, err, errlen);
    if (rc && rc != ERR_NOTFOUND) return rc;
    rc = in_folder(dir, "tokenizer_config.json", resolve, ud, &p, err, errlen);
    if (rc == 0) {
        json_error_t je;
        json_t *tc = json_load_file(p, 0, &je);
        json_t *lc = json_object_get(tc, "do_lower_case");
        if (json_is_boolean(lc)) f->do_lower_case = json_is_true(lc);
        json_decref(tc);
        free(p);
    } else if (rc != ERR_NOTFOUND) {
        return rc;
    }
    return 0;
}

int ckpt_locate(const char *model, const char *model_config, ckpt_resolve_fn resolve, void *ud,
                struct ckpt_files *out, char *err, size_t errlen)
{
    struct stat st;
    enum sniff s;
    int rc;
    memset(out, 0, sizeof *out);
    out->do_lower_case = -1;
    if (!(out->path = strdup(model))) return err_set(err, errlen, ERR_NOMEM, "out of memory");
    if (stat(model, &st) != 0)
        return err_set(err, errlen, errno == ENOENT ? ERR_NOTFOUND : ERR_IO, "%s: %s", model,
                       strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        if (model_config)
            return err_set(err, errlen, ERR_INVALID,
                           "model_config: a Hugging Face folder has its own config.json");
        return locate_folder(model, resolve, ud, out, err, errlen);
    }
    if ((rc = sniff(model, &s, err, errlen))) return rc;
    if (s == SNIFF_PICKLE) return legacy_pickle(model, err, errlen);
    if (s == SNIFF_EMPTY)
        return err_set(err, errlen, ERR_FORMAT, "%s: an empty file, not a model", model);
    if (s != SNIFF_ZIP) {
        /* no zip, no pickle: safetensors or nothing, and its reader says why not */
        struct st_file *stf = NULL;
        char why[512];
        if ((rc = st_open(model, &stf, why, sizeof why))) {
            const char *reason = strncmp(why, model, strlen(model)) ? why : why + strlen(model);
            if (*reason == ':') reason++;
            while (*reason == ' ')
                reason++;
            return err_set(err, errlen, rc == ERR_UNSUPPORTED ? rc : ERR_FORMAT,
                           "%s: not a model format prunerd reads (a zip: TorchScript or "
                           "torch.save; or safetensors): as safetensors, %s",
                           model, reason);
        }
        st_close(stf);
    }
    if (s == SNIFF_ZIP) {
        int torchscript = 0;
        if ((rc = ts_zip_kind(model, &torchscript, err, errlen))) return rc;
        if (torchscript) {
            out->kind = CKPT_TORCHSCRIPT;
            char *w = strdup(model);
            return w ? add_weight(out, w, err, errlen)
                     : err_set(err, errlen, ERR_NOMEM, "out of memory");
        }
        out->kind = CKPT_STATE_DICT;
    } else {
        out->kind = CKPT_SAFETENSORS;
        out->weights_safetensors = 1;
    }
    char *w = strdup(model);
    if (!w || (rc = add_weight(out, w, err, errlen)))
        return w ? rc : err_set(err, errlen, ERR_NOMEM, "out of memory");
    if (model_config) {
        if (!(out->config = strdup(model_config)))
            return err_set(err, errlen, ERR_NOMEM, "out of memory");
        return 0;
    }
    /* config.json beside the file */
    char dir[PATH_MAX], beside[PATH_MAX], real[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", model);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    if ((size_t)snprintf(beside, sizeof beside, "%s/config.json", dir) >= sizeof beside)
        return err_set(err, errlen, ERR_INVALID, "%s: path too long", model);
    if (stat(beside, &st) != 0) return 0; /* config NULL: ckpt_open says so */
    if ((rc = resolve(ud, beside, real, sizeof real, err, errlen))) return rc;
    if (!(out->config = strdup(real))) return err_set(err, errlen, ERR_NOMEM, "out of memory");
    return 0;
}

int ckpt_config_missing(const struct ckpt_files *f, char *err, size_t errlen)
{
    return err_set(err, errlen, ERR_NOTFOUND,
                   "model_config: %s is a %s file, which needs its config.json: put one beside "
                   "it or name it in model_config",
                   f->path, ckpt_kind_name(f->kind));
}

int ckpt_open(const struct ckpt_files *f, const char *device, struct ts_model **out, char *err,
              size_t errlen)
{
    if (f->kind == CKPT_TORCHSCRIPT) return ts_model_open(f->weights[0], device, out, err, errlen);
    if (!f->config) {
        /* a file that is not what it seems says so first; then the config */
        int rc = ts_model_open_native((const char *const *)f->weights, f->nweights, NULL, "cpu",
                                      out, err, errlen);
        if (rc && rc != ERR_NOTFOUND) return rc;
        return ckpt_config_missing(f, err, errlen);
    }
    struct bert_config c;
    int rc = bert_config_load(f->config, &c, err, errlen);
    if (rc) return rc;
    return ts_model_open_native((const char *const *)f->weights, f->nweights, &c, device, out, err,
                                errlen);
}

int ckpt_open_path(const char *path, const char *model_config, ckpt_resolve_fn resolve, void *ud,
                   const char *device, struct ts_model **out, char *err, size_t errlen)
{
    struct ckpt_files f;
    int rc = ckpt_locate(path, model_config, resolve, ud, &f, err, errlen);
    if (!rc) rc = ckpt_open(&f, device, out, err, errlen);
    ckpt_files_free(&f);
    return rc;
}

int ckpt_save_folder(struct ts_model *m, const char *config_src, const char *const *labels,
                     int nlabels, const int *const *removed, const int *nremoved, const char *dir,
                     struct ckpt_saved *out, char *err, size_t errlen)
{
    static const char *const names[2] = {"model.safetensors", "config.json"};
    char tmp[PATH_MAX], path[PATH_MAX];
    int rc;
    memset(out, 0, sizeof *out);
    if (!ts_model_is_native(m))
        return err_set(err, errlen, ERR_UNSUPPORTED,
                       "outputs: safetensors is written for models read from their weights "
                       "(this one is TorchScript: ask for torchscript or state_dict)");
    if ((rc = fs_tmp_path(dir, tmp, sizeof tmp, err, errlen))) return rc;
    if (mkdir(tmp, 0755) != 0)
        return err_set(err, errlen, errno == ENOSPC ? ERR_NOSPACE : ERR_IO, "mkdir %s: %s", tmp,
                       strerror(errno));
    int nl = ts_model_layers(m);
    int *heads = calloc((size_t)nl + 1, sizeof *heads), *ffn = calloc((size_t)nl + 1, sizeof *ffn);
    if (!heads || !ffn) {
        free(heads);
        free(ffn);
        rmdir(tmp);
        return err_set(err, errlen, ERR_NOMEM, "out of memory");
    }
    for (int l = 0; l < nl; l++)
        ts_model_layer_shape(m, l, &heads[l], &ffn[l]);
    struct bert_shape shape = {nl, heads, ffn, removed, nremoved};
    for (size_t i = 0; i < 2; i++) {
        struct ckpt_saved_file *f = &out->files[i];
        if ((size_t)snprintf(path, sizeof path, "%s/%s", tmp, names[i]) >= sizeof path) {
            rc = err_set(err, errlen, ERR_INVALID, "%s: path too long", tmp);
            goto fail;
        }
        rc = i == 0 ? ts_model_save_safetensors(m, path, err, errlen)
                    : bert_config_write(config_src, ts_model_config(m), ts_model_head(m), nlabels,
                                        labels, &shape, path, err, errlen);
        if (!rc) rc = fs_fsync_path(path, err, errlen);
        if (!rc) rc = fs_sha256_file(path, f->sha256, &f->bytes, err, errlen);
        if (rc) goto fail;
        snprintf(f->name, sizeof f->name, "%s", names[i]);
        out->bytes += f->bytes;
        out->nfiles++;
    }
    if ((rc = fs_tree_remove(dir, err, errlen))) goto fail;
    if ((rc = fs_commit(tmp, dir, err, errlen))) goto fail;
    free(heads);
    free(ffn);
    return 0;
fail : {
    char e2[256];
    free(heads);
    free(ffn);
    fs_tree_remove(tmp, e2, sizeof e2);
    memset(out, 0, sizeof *out);
    return rc;
}
}
