/* prune_driver.c - runs prune_apply on raw float32 files, for the PyTorch oracle and benchmarks */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "err.h"
#include "plugin.h"
#include "prune.h"

/*
 * usage: prune_driver --method NAME [--scope local|global] [--amount A]
 *          [--n P|inf|-inf|fro] [--dim D] [--seed S] [--threshold T]
 *          [--iterative] [--threads N] [--plugin-dir DIR --plugin NAME]
 *          [--params JSON] [--sweep COUNT] IN:OUT:SHAPE[:MASK] ...
 *
 * IN and OUT are raw little-endian float32, SHAPE is like 64x48 (a scalar
 * is "s"), MASK raw bytes (0 = prune).  An amount holding '.', 'e', "inf"
 * or "nan" is a fraction (Python float), anything else a count (Python
 * int).  --sweep runs seeds S .. S+COUNT-1 on fresh copies of the input
 * and appends every result to OUT.  Prints "elapsed_ms=... peak_rss_kb=...
 * pruned=a,b,..." (elapsed: prune_apply only, summed over a sweep).
 * Exit 0 on success, 1 when prune_apply fails, 2 on bad usage or I/O.
 */

#define MAX_TARGETS 1024
#define MAX_DIMS 8

struct tgt {
    char *in, *out, *maskf;
    int64_t shape[MAX_DIMS];
    int ndim;
    int64_t numel;
    float *data, *orig;
    uint8_t *mask;
};

static int die(const char *fmt, const char *arg)
{
    fprintf(stderr, "prune_driver: ");
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    return 2;
}

static void *read_file(const char *path, size_t size)
{
    FILE *f = fopen(path, "rb");
    void *buf = malloc(size ? size : 1);
    int ok = f && buf && fread(buf, 1, size, f) == size && fgetc(f) == EOF;
    if (f) fclose(f);
    if (!ok) {
        free(buf);
        return NULL;
    }
    return buf;
}

static int parse_target(char *spec, struct tgt *t)
{
    char *parts[4] = {0};
    int n = 0;
    for (char *tok = strtok(spec, ":"); tok && n < 4; tok = strtok(NULL, ":"))
        parts[n++] = tok;
    if (n < 3) return -1;
    t->in = parts[0];
    t->out = parts[1];
    t->maskf = parts[3];
    t->numel = 1;
    t->ndim = 0;
    if (strcmp(parts[2], "s")) {
        for (char *d = strtok(parts[2], "x"); d; d = strtok(NULL, "x")) {
            if (t->ndim == MAX_DIMS) return -1;
            char *end;
            t->shape[t->ndim] = strtoll(d, &end, 10);
            if (*end || t->shape[t->ndim] < 0) return -1;
            t->numel *= t->shape[t->ndim++];
        }
    }
    return 0;
}

/* Peak RSS in KiB of this program: VmHWM, which exec resets (ru_maxrss
 * keeps the forking parent's high-water mark across exec). */
static long peak_rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) kb = atol(line + 6);
    if (f) fclose(f);
    if (kb < 0) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        kb = ru.ru_maxrss;
    }
    return kb;
}

static double parse_norm(const char *s)
{
    if (!strcmp(s, "fro")) return PRUNE_NORM_FRO;
    return strtod(s, NULL); /* "inf", "-inf" included */
}

static int parse_amount(const char *s, struct prune_amount *a)
{
    char *end;
    errno = 0;
    if (strpbrk(s, ".eEnN")) {
        a->is_count = 0;
        a->fraction = strtod(s, &end);
    } else {
        a->is_count = 1;
        a->count = strtoll(s, &end, 10);
    }
    return *end || errno ? -1 : 0;
}

int main(int argc, char **argv)
{
    static struct tgt tg[MAX_TARGETS];
    static struct prune_target pt[MAX_TARGETS];
    struct prune_params p = {.scope = PRUNE_LOCAL, .dim = -1, .n = PRUNE_NORM_FRO, .threads = 1};
    const char *plugin_dir = NULL, *plugin_name = NULL;
    struct plugin_handle *ph = NULL;
    const struct prune_method *m = NULL;
    size_t nt = 0;
    long sweep = 0;
    int rc = 2;
    char err[512];

    p.amount.is_count = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = 1;
        if (!strcmp(a, "--method") && v) {
            if (!(m = prune_method_find(v))) return die("unknown method %s", v);
            p.method = m->id;
        } else if (!strcmp(a, "--scope") && v) {
            p.scope = !strcmp(v, "global") ? PRUNE_GLOBAL : PRUNE_LOCAL;
        } else if (!strcmp(a, "--amount") && v) {
            if (parse_amount(v, &p.amount)) return die("bad amount %s", v);
        } else if (!strcmp(a, "--n") && v) {
            p.n = parse_norm(v);
        } else if (!strcmp(a, "--dim") && v) {
            p.dim = atoi(v);
        } else if (!strcmp(a, "--seed") && v) {
            p.seed = strtoull(v, NULL, 10);
        } else if (!strcmp(a, "--threshold") && v) {
            p.threshold = strtod(v, NULL);
        } else if (!strcmp(a, "--threads") && v) {
            p.threads = atoi(v);
        } else if (!strcmp(a, "--plugin-dir") && v) {
            plugin_dir = v;
        } else if (!strcmp(a, "--plugin") && v) {
            plugin_name = v;
        } else if (!strcmp(a, "--params") && v) {
            p.plugin_params = v;
        } else if (!strcmp(a, "--sweep") && v) {
            sweep = atol(v);
        } else if (!strcmp(a, "--iterative")) {
            p.iterative = 1;
            takes = 0;
        } else if (a[0] != '-' && nt < MAX_TARGETS) {
            if (parse_target(argv[i], &tg[nt])) return die("bad target %s", a);
            nt++;
            takes = 0;
        } else {
            return die("bad argument %s", a);
        }
        i += takes;
    }
    if (!m) return die("%s", "--method is required");

    for (size_t i = 0; i < nt; i++) {
        struct tgt *t = &tg[i];
        if (!(t->data = read_file(t->in, (size_t)t->numel * sizeof(float)))) {
            rc = die("cannot read %s (or its size does not match the shape)", t->in);
            goto out;
        }
        if (t->maskf && !(t->mask = read_file(t->maskf, (size_t)t->numel))) {
            rc = die("cannot read mask %s", t->maskf);
            goto out;
        }
        if (sweep > 0) {
            t->orig = malloc((size_t)t->numel * sizeof(float) + 1);
            if (!t->orig) goto out;
            memcpy(t->orig, t->data, (size_t)t->numel * sizeof(float));
        }
        pt[i] = (struct prune_target){.name = t->in,
                                      .data = t->data,
                                      .ndim = t->ndim,
                                      .shape = t->shape,
                                      .numel = t->numel,
                                      .mask = t->mask};
    }
    if (plugin_name) {
        ph = plugin_open(plugin_dir ? plugin_dir : ".", plugin_name, err, sizeof err);
        if (!ph) {
            fprintf(stderr, "prune_driver: %s\n", err);
            rc = 1;
            goto out;
        }
        p.plugin = plugin_api(ph);
    }

    double elapsed = 0;
    uint64_t seed0 = p.seed;
    for (long s = 0; s < (sweep > 0 ? sweep : 1); s++) {
        struct timespec t0, t1;
        if (sweep > 0) {
            p.seed = seed0 + (uint64_t)s;
            for (size_t i = 0; i < nt; i++)
                memcpy(tg[i].data, tg[i].orig, (size_t)tg[i].numel * sizeof(float));
        }
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int prc = prune_apply(pt, nt, &p, err, sizeof err);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        elapsed += (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
        if (prc) {
            fprintf(stderr, "prune_driver: %s: %s\n", err_name(prc), err);
            rc = 1;
            goto out;
        }
        for (size_t i = 0; i < nt; i++) {
            FILE *f = fopen(tg[i].out, s ? "ab" : "wb");
            size_t nb = (size_t)tg[i].numel;
            int ok = f && fwrite(tg[i].data, sizeof(float), nb, f) == nb;
            if (f && fclose(f)) ok = 0;
            if (!ok) {
                rc = die("cannot write %s", tg[i].out);
                goto out;
            }
        }
    }
    printf("elapsed_ms=%.3f peak_rss_kb=%ld pruned=", elapsed, peak_rss_kb());
    for (size_t i = 0; i < nt; i++)
        printf("%s%" PRId64, i ? "," : "", pt[i].pruned);
    printf("\n");
    rc = 0;
out:
    plugin_close(ph);
    for (size_t i = 0; i < nt; i++) {
        free(tg[i].data);
        free(tg[i].orig);
        free(tg[i].mask);
    }
    return rc;
}
