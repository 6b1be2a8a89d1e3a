/* shim_driver.c - a command-line driver of the torch_shim C API for the Python tests */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "checkpoint.h"
#include "err.h"
#include "sweep.h"
#include "targets.h"
#include "torch_shim.h"

/*
 * shim_driver load MODEL [DEVICE]         -> "rc NAME MESSAGE" then, on success,
 *                                            one "name dtype is_param numel" line per tensor
 * shim_driver zero-first-half IN OUT.pt OUT.pth
 *                                         -> zeroes the first half (row-major) of every
 *                                            floating tensor, saves TorchScript and state_dict
 * shim_driver dict FILE                   -> "rc NAME MESSAGE" then "name dtype numel bits"
 * shim_driver forward MODEL INPUT         -> INPUT is "B L", B*L ids, B*L mask; prints
 *                                            "ncls" then B*ncls logits (%.9g)
 * shim_driver save-rss MODEL OUT (sd|ts)  -> saves and prints the resident set before and the
 *                                            peak during the save, in kB
 * shim_driver load-rss MODEL              -> loads on the CPU and prints the resident set before
 *                                            the load, the peak after it, after one forward of
 *                                            1 x 8 tokens and after reading a float of every
 *                                            page of every tensor (the forward leaves most
 *                                            embedding rows unread), in kB, and the tensors'
 *                                            float32 bytes
 *   sweep-restore MODEL GLOB unstructured|structured
 *                                            every group pruned by 0.5 and 0.9 and put back
 *                                            as a sweep does; the tensors against a fresh load
 * Exit status: 0 when the command ran (the rc line tells the outcome), 2 on usage errors.
 */

/* Any model checkpoint.h reads, with the config.json beside it. */
static int open_any(const char *path, const char *device, struct ts_model **m, char *err,
                    size_t errlen)
{
    char real[4096];
    int rc = ckpt_resolve_local(NULL, path, real, sizeof real, err, errlen);
    return rc ? rc : ckpt_open_path(real, NULL, ckpt_resolve_local, NULL, device, m, err, errlen);
}

static int report(int rc, const char *err)
{
    printf("%d %s %s\n", rc, rc ? err_name(rc) : "ok", rc ? err : "");
    return rc;
}

static int cmd_load(const char *path, const char *device)
{
    char err[1024] = "";
    struct ts_model *m = NULL;
    if (report(open_any(path, device, &m, err, sizeof err), err) != 0) return 0;
    printf("device %s\n", ts_model_device(m));
    for (size_t i = 0; i < ts_model_count(m); i++) {
        struct ts_tensor_info info;
        if (ts_model_info(m, i, &info) == 0)
            printf("%s %s %d %" PRId64 "\n", info.name, ts_dtype_name(info.dtype),
                   info.is_parameter, info.numel);
    }
    ts_model_destroy(m);
    return 0;
}

static int cmd_zero_first_half(const char *in, const char *out_ts, const char *out_sd)
{
    char err[1024] = "";
    struct ts_model *m = NULL;
    int rc = open_any(in, "cpu", &m, err, sizeof err);
    for (size_t i = 0; rc == 0 && i < ts_model_count(m); i++) {
        struct ts_tensor_info info;
        float *p = NULL;
        rc = ts_model_info(m, i, &info);
        if (rc != 0 || !ts_dtype_is_float(info.dtype)) continue;
        rc = ts_model_map_f32(m, i, &p, err, sizeof err);
        if (rc != 0) break;
        for (int64_t k = 0; k < info.numel / 2; k++)
            p[k] = 0.0f;
        rc = ts_model_unmap_f32(m, i, 1, err, sizeof err);
    }
    if (rc == 0) rc = ts_model_save_torchscript(m, out_ts, err, sizeof err);
    if (rc == 0) rc = ts_model_save_state_dict(m, out_sd, err, sizeof err);
    report(rc, err);
    ts_model_destroy(m);
    return 0;
}

static int cmd_dict(const char *path)
{
    char err[1024] = "";
    struct ts_dict *d = NULL;
    if (report(ts_dict_open(path, &d, err, sizeof err), err) != 0) return 0;
    for (size_t i = 0; i < ts_dict_count(d); i++) {
        struct ts_tensor_info info;
        if (ts_dict_info(d, i, &info) != 0) continue;
        uint8_t *bits = malloc((size_t)info.numel + 1);
        if (!bits || ts_dict_read_u8(d, i, bits, (size_t)info.numel, err, sizeof err) != 0) {
            printf("%s read failed: %s\n", info.name, err);
            free(bits);
            continue;
        }
        printf("%s %s %" PRId64 " ", info.name, ts_dtype_name(info.dtype), info.numel);
        for (int64_t k = 0; k < info.numel; k++)
            putchar(bits[k] ? '1' : '0');
        printf("%s\n", info.numel ? "" : "-");
        free(bits);
    }
    ts_dict_destroy(d);
    return 0;
}

/* An input file: "B L", then B * L ids, then B * L mask values.  Returns 0
 * with *ids and *mask malloc'd (the caller frees them, also on failure). */
static int read_input(FILE *f, const char *input, int64_t *b, int64_t *l, int64_t **ids,
                      int64_t **mask, char *err, size_t errlen)
{
    if (!f || fscanf(f, "%" SCNd64 " %" SCNd64, b, l) != 2 || *b <= 0 || *l <= 0)
        return err_set(err, errlen, ERR_INVALID, "%s: bad input file", input);
    *ids = calloc((size_t)(*b * *l), sizeof **ids);
    *mask = calloc((size_t)(*b * *l), sizeof **mask);
    if (!*ids || !*mask) return err_set(err, errlen, ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < *b * *l; i++)
        if (fscanf(f, "%" SCNd64, &(*ids)[i]) != 1) return ERR_INVALID;
    for (int64_t i = 0; i < *b * *l; i++)
        if (fscanf(f, "%" SCNd64, &(*mask)[i]) != 1) return ERR_INVALID;
    return 0;
}

static int cmd_forward(const char *model, const char *input)
{
    char err[1024] = "";
    int64_t b = 0, l = 0, *ids = NULL, *mask = NULL;
    float *out = NULL;
    struct ts_model *m = NULL;
    int rc, ncls = 0;
    FILE *f = fopen(input, "r");
    if ((rc = read_input(f, input, &b, &l, &ids, &mask, err, sizeof err))) goto out;
    if (!(out = calloc((size_t)b * 1024, sizeof *out))) {
        rc = err_set(err, sizeof err, ERR_NOMEM, "out of memory");
        goto out;
    }
    rc = open_any(model, "cpu", &m, err, sizeof err);
    if (rc == 0)
        rc = ts_model_forward(m, ids, mask, b, l, out, (size_t)b * 1024, &ncls, err, sizeof err);
    if (report(rc, err) == 0) {
        printf("%d\n", ncls);
        for (int64_t i = 0; i < b * ncls; i++)
            printf("%.9g\n", out[i]);
    }
    rc = 0;
out:
    if (rc != 0) report(rc, err);
    if (f) fclose(f);
    ts_model_destroy(m);
    free(ids);
    free(mask);
    free(out);
    return 0;
}

/* The head count and one value per head, then the neuron count and one
 * value per neuron, a line each. */
static void print_units(const float *heads, size_t nh, const float *neurons, size_t nn)
{
    printf("%zu\n", nh);
    for (size_t i = 0; i < nh; i++)
        printf("%.9g\n", heads[i]);
    printf("%zu\n", nn);
    for (size_t i = 0; i < nn; i++)
        printf("%.9g\n", neurons[i]);
}

/* importance MODEL INPUT magnitude|fisher|taylor BATCH: INPUT as forward's,
 * then (fisher, taylor) a line of batch labels, or "model" for the model's
 * own predictions.  Prints the rc line, the head count, the heads' importances,
 * the neuron count and the neurons'. */
static int cmd_importance(const char *model, const char *input, const char *kind, const char *bs)
{
    char err[1024] = "", word[16] = "";
    int64_t b = 0, l = 0, *ids = NULL, *mask = NULL, *labels = NULL;
    float *hi = NULL, *ni = NULL;
    struct ts_model *m = NULL;
    int rc, fisher = !strcmp(kind, "fisher") || !strcmp(kind, "taylor");
    size_t nh = 0, nn = 0;
    FILE *f = fopen(input, "r");
    if ((rc = read_input(f, input, &b, &l, &ids, &mask, err, sizeof err))) goto out;
    if (!(labels = calloc((size_t)b, sizeof *labels))) {
        rc = err_set(err, sizeof err, ERR_NOMEM, "out of memory");
        goto out;
    }
    rc = ERR_INVALID;
    int own = fisher && fscanf(f, " %15[a-z]", word) == 1 && !strcmp(word, "model");
    for (int64_t i = 0; fisher && !own && i < b; i++)
        if (fscanf(f, "%" SCNd64, &labels[i]) != 1) goto out;
    if ((rc = open_any(model, "cpu", &m, err, sizeof err))) goto out;
    ts_model_units(m, &nh, &nn);
    hi = calloc(nh + 1, sizeof *hi);
    ni = calloc(nn + 1, sizeof *ni);
    if (!hi || !ni) {
        rc = err_set(err, sizeof err, ERR_NOMEM, "out of memory");
        goto out;
    }
    rc = fisher ? ts_model_importance(m, strcmp(kind, "taylor") ? TS_FISHER : TS_TAYLOR, ids, mask,
                                      own ? NULL : labels, b, l, atoi(bs), hi, ni, NULL, NULL, err,
                                      sizeof err)
                : ts_model_magnitude(m, hi, ni, err, sizeof err);
    if (report(rc, err) == 0) {
        print_units(hi, nh, ni, nn);
    }
    rc = 0;
out:
    if (rc != 0) report(rc, err);
    if (f) fclose(f);
    ts_model_destroy(m);
    free(ids);
    free(mask);
    free(labels);
    free(hi);
    free(ni);
    return 0;
}

/* rescale MODEL INPUT BATCH: INPUT as forward's, then the heads' keep bytes
 * and the neurons' (0 or 1, as ts_model_magnitude lays them out).  Prints
 * the rc line, "layers layer neurons reason", the head count and factors,
 * the neuron count and factors. */
static int cmd_rescale(const char *model, const char *input, const char *bs)
{
    char err[1024] = "";
    int64_t b = 0, l = 0, *ids = NULL, *mask = NULL;
    float *hs = NULL, *ns = NULL;
    uint8_t *hk = NULL, *nk = NULL;
    struct ts_model *m = NULL;
    struct ts_rescale_stop st;
    size_t nh = 0, nn = 0;
    int rc, v;
    FILE *f = fopen(input, "r");
    if ((rc = read_input(f, input, &b, &l, &ids, &mask, err, sizeof err))) goto out;
    if ((rc = open_any(model, "cpu", &m, err, sizeof err))) goto out;
    ts_model_units(m, &nh, &nn);
    hs = calloc(nh + 1, sizeof *hs);
    ns = calloc(nn + 1, sizeof *ns);
    hk = calloc(nh + 1, 1);
    nk = calloc(nn + 1, 1);
    if (!hs || !ns || !hk || !nk) {
        rc = err_set(err, sizeof err, ERR_NOMEM, "out of memory");
        goto out;
    }
    rc = err_set(err, sizeof err, ERR_INVALID, "%s: bad keep bytes", input);
    for (size_t i = 0; i < nh + nn; i++) {
        if (fscanf(f, "%d", &v) != 1) goto out;
        if (i < nh)
            hk[i] = (uint8_t)v;
        else
            nk[i - nh] = (uint8_t)v;
    }
    rc = ts_model_rescale(m, ids, mask, b, l, atoi(bs), hk, nk, hs, ns, &st, NULL, NULL, err,
                          sizeof err);
    if (report(rc, err) == 0) {
        printf("%d %d %d %d\n", st.layers, st.layer, st.neurons, st.reason);
        print_units(hs, nh, ns, nn);
    }
    rc = 0;
out:
    if (rc != 0) report(rc, err);
    if (f) fclose(f);
    ts_model_destroy(m);
    free(ids);
    free(mask);
    free(hs);
    free(ns);
    free(hk);
    free(nk);
    return 0;
}

/* "VmRSS" or "VmHWM" from /proc/self/status, in kB; -1 if unknown. */
static long proc_kb(const char *key)
{
    char line[256];
    long kb = -1;
    FILE *f = fopen("/proc/self/status", "r");
    size_t n = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, key, n) && line[n] == ':') kb = strtol(line + n + 1, NULL, 10);
    if (f) fclose(f);
    return kb;
}

/* Resets VmHWM to the current RSS (Linux >= 4.0); 0 on success. */
static int reset_peak(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f) return -1;
    int ok = fputs("5", f) >= 0;
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

static int cmd_save_rss(const char *model, const char *out, const char *kind)
{
    char err[1024] = "";
    struct ts_model *m = NULL;
    int rc = open_any(model, "cpu", &m, err, sizeof err);
    if (rc == 0) {
        int reset = reset_peak();
        long before = proc_kb("VmRSS");
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        long maxrss_before = ru.ru_maxrss;
        rc = strcmp(kind, "ts") ? ts_model_save_state_dict(m, out, err, sizeof err)
                                : ts_model_save_torchscript(m, out, err, sizeof err);
        getrusage(RUSAGE_SELF, &ru);
        printf("rss_before_kb %ld peak_during_save_kb %ld peak_reset %s maxrss_before_kb %ld "
               "maxrss_after_kb %ld\n",
               before, proc_kb("VmHWM"), reset == 0 ? "yes" : "no", maxrss_before, ru.ru_maxrss);
    }
    report(rc, err);
    ts_model_destroy(m);
    return 0;
}

static int cmd_load_rss(const char *model)
{
    char err[1024] = "";
    struct ts_model *m = NULL;
    int64_t ids[8], mask[8];
    float out[4096];
    int ncls = 0;
    /* the peak from here on, not libtorch's start-up */
    int reset = reset_peak();
    long before = proc_kb("VmRSS");
    int rc = open_any(model, "cpu", &m, err, sizeof err);
    if (rc == 0) {
        long load_peak = proc_kb("VmHWM"), load_rss = proc_kb("VmRSS");
        int64_t bytes = 0;
        for (size_t i = 0; i < ts_model_count(m); i++) {
            struct ts_tensor_info info;
            if (ts_model_info(m, i, &info) == 0) bytes += info.numel * 4;
        }
        for (int j = 0; j < 8; j++) {
            ids[j] = j; /* [PAD], [unused1], ...: in any vocabulary of 8 or more */
            mask[j] = 1;
        }
        rc = ts_model_forward(m, ids, mask, 1, 8, out, sizeof out / sizeof out[0], &ncls, err,
                              sizeof err);
        long fwd_peak = proc_kb("VmHWM"), fwd_rss = proc_kb("VmRSS");
        volatile float sink = 0.0f;
        for (size_t i = 0; rc == 0 && i < ts_model_count(m); i++) {
            struct ts_tensor_info info;
            float *p = NULL;
            if (ts_model_info(m, i, &info) != 0 || !ts_dtype_is_float(info.dtype)) continue;
            if ((rc = ts_model_map_f32(m, i, &p, err, sizeof err)) != 0) break;
            for (int64_t k = 0; k < info.numel; k += 1024) /* 4 KiB pages of float32 */
                sink += p[k];
            rc = ts_model_unmap_f32(m, i, 0, err, sizeof err);
        }
        (void)sink;
        printf("rss_before_kb %ld peak_after_load_kb %ld rss_after_load_kb %ld "
               "peak_after_forward_kb %ld rss_after_forward_kb %ld peak_after_read_kb %ld "
               "rss_after_read_kb %ld peak_reset %s f32_bytes %" PRId64 "\n",
               before, load_peak, load_rss, fwd_peak, fwd_rss, proc_kb("VmHWM"), proc_kb("VmRSS"),
               reset == 0 ? "yes" : "no", bytes);
    }
    report(rc, err);
    ts_model_destroy(m);
    return 0;
}

/* Every group of the model's targets (glob; structured: every layer's heads
 * and neurons) pruned by 0.5 and 0.9 and put back, as a sweep does; then
 * each tensor compared, shape and bytes, with the file loaded afresh. */
static int cmd_sweep_restore(const char *path, const char *glob, const char *how)
{
    char err[1024] = "";
    struct ts_model *m = NULL, *ref = NULL;
    struct sweep_group *g = NULL;
    size_t ng = 0, *idx = NULL, nidx = 0;
    uint8_t *sel = NULL;
    float *hi = NULL, *ni = NULL;
    long bad;
    const int structured = !strcmp(how, "structured");
    int rc = open_any(path, "cpu", &m, err, sizeof err);
    if (!rc) rc = open_any(path, "cpu", &ref, err, sizeof err);
    if (!rc && structured) {
        int nl = ts_model_layers(m);
        size_t nh, nn;
        ts_model_units(m, &nh, &nn);
        sel = calloc((size_t)nl + 1, 1);
        hi = calloc(nh + 1, sizeof *hi);
        ni = calloc(nn + 1, sizeof *ni);
        char *globs[] = {(char *)glob};
        rc = targets_layers(m, globs, 1, nl, sel, &bad, err, sizeof err);
        if (!rc) rc = ts_model_magnitude(m, hi, ni, err, sizeof err);
        if (!rc) rc = sweep_groups_structured(m, sel, nl, &g, &ng, err, sizeof err);
    } else if (!rc) {
        char *globs[] = {(char *)glob};
        rc = targets_resolve(m, globs, 1, &idx, &nidx, &bad, err, sizeof err);
        if (!rc) rc = sweep_groups_unstructured(m, idx, nidx, 0, &g, &ng, err, sizeof err);
    }
    const double amounts[] = {0.5, 0.9};
    for (size_t k = 0; k < ng && !rc; k++) {
        struct ts_kept *kept = NULL;
        rc = ts_model_keep(m, g[k].tensors, g[k].ntensors, &kept, err, sizeof err);
        for (size_t a = 0; a < 2 && !rc; a++) {
            rc = sweep_prune(m, &g[k], amounts[a], hi, ni, 1, err, sizeof err);
            if (!rc) rc = ts_model_put_back(m, kept, err, sizeof err);
        }
        ts_kept_destroy(kept);
    }
    if (report(rc, err) == 0) {
        size_t same = 0;
        for (size_t i = 0; i < ts_model_count(m); i++) {
            struct ts_tensor_info a, b;
            float *x, *y;
            ts_model_info(m, i, &a);
            ts_model_info(ref, i, &b);
            if (!ts_dtype_is_float(a.dtype)) continue;
            int ok = a.ndim == b.ndim && a.numel == b.numel;
            for (int d = 0; ok && d < a.ndim; d++)
                ok = a.shape[d] == b.shape[d];
            if (ok && !ts_model_map_f32(m, i, &x, err, sizeof err)) {
                if (!ts_model_map_f32(ref, i, &y, err, sizeof err)) {
                    ok = !memcmp(x, y, (size_t)a.numel * sizeof *x);
                    ts_model_unmap_f32(ref, i, 0, err, sizeof err);
                }
                ts_model_unmap_f32(m, i, 0, err, sizeof err);
            }
            if (!ok) printf("differs %s\n", a.name);
            same += (size_t)ok;
        }
        printf("groups %zu identical %zu\n", ng, same);
    }
    sweep_groups_free(g, ng);
    free(idx);
    free(sel);
    free(hi);
    free(ni);
    ts_model_destroy(m);
    ts_model_destroy(ref);
    return 0;
}

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : "";
    if (!strcmp(cmd, "load") && (argc == 3 || argc == 4))
        return cmd_load(argv[2], argc == 4 ? argv[3] : "cpu");
    if (!strcmp(cmd, "zero-first-half") && argc == 5)
        return cmd_zero_first_half(argv[2], argv[3], argv[4]);
    if (!strcmp(cmd, "dict") && argc == 3) return cmd_dict(argv[2]);
    if (!strcmp(cmd, "forward") && argc == 4) return cmd_forward(argv[2], argv[3]);
    if (!strcmp(cmd, "importance") && argc == 6)
        return cmd_importance(argv[2], argv[3], argv[4], argv[5]);
    if (!strcmp(cmd, "rescale") && argc == 5) return cmd_rescale(argv[2], argv[3], argv[4]);
    if (!strcmp(cmd, "save-rss") && argc == 5) return cmd_save_rss(argv[2], argv[3], argv[4]);
    if (!strcmp(cmd, "load-rss") && argc == 3) return cmd_load_rss(argv[2]);
    if (!strcmp(cmd, "sweep-restore") && argc == 5)
        return cmd_sweep_restore(argv[2], argv[3], argv[4]);
    fprintf(
        stderr,
        "usage: shim_driver load MODEL [DEVICE] | zero-first-half IN OUT.pt OUT.pth | "
        "dict FILE | forward MODEL INPUT | importance MODEL INPUT magnitude|fisher|taylor BATCH | "
        "rescale MODEL INPUT BATCH | "
        "save-rss MODEL OUT sd|ts | load-rss MODEL | "
        "sweep-restore MODEL GLOB unstructured|structured\n");
    return 2;
}
