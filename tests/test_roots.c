/* test_roots.c - request paths confined to roots: .., absolute paths, symlinks */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ct.h"
#include "err.h"
#include "roots.h"

static char base[PATH_MAX]; /* realpath needs PATH_MAX; kept short */
#define P 1024

static void touch(const char *rel)
{
    char p[P];
    snprintf(p, sizeof p, "%.512s/%s", base, rel);
    FILE *f = fopen(p, "w");
    if (f) {
        fputs("x", f);
        fclose(f);
    }
}

static void mk(const char *rel)
{
    char p[P];
    snprintf(p, sizeof p, "%.512s/%s", base, rel);
    mkdir(p, 0700);
}

static void link_to(const char *target, const char *rel)
{
    char p[P];
    snprintf(p, sizeof p, "%.512s/%s", base, rel);
    if (symlink(target, p)) perror("symlink");
}

static int resolve(struct roots *r, enum roots_kind k, const char *path, char *out)
{
    char err[512];
    int rc = roots_resolve(r, k, path, out, PATH_MAX, err, sizeof err);
    if (rc) printf("  %s -> %d (%s)\n", path, rc, err);
    return rc;
}

int main(void)
{
    char tmpl[] = "/tmp/test_roots.XXXXXX", out[PATH_MAX], p[P], err[256];
    if (!mkdtemp(tmpl) || !realpath(tmpl, base)) {
        perror("mkdtemp");
        return 1;
    }
    mk("models");
    mk("models/sub");
    mk("data");
    mk("outside");
    touch("models/m.pt");
    touch("models/config.json");
    touch("models/sub/n.pt");
    touch("data/dev.txt");
    touch("outside/secret.pt");
    link_to("../outside/secret.pt", "models/escape.pt"); /* escapes */
    link_to("sub/n.pt", "models/inside.pt");             /* stays inside */
    link_to("../outside", "models/outdir");              /* a directory that escapes */
    link_to("../data/dev.txt", "models/data-link.txt");  /* into a data root */
    link_to("loop-b", "models/loop-a");                  /* a loop */
    link_to("loop-a", "models/loop-b");

    struct roots *r = roots_create();
    snprintf(p, sizeof p, "%.512s/models", base);
    CHECK_INT(roots_add(r, ROOTS_MODEL, p, err, sizeof err), 0);
    snprintf(p, sizeof p, "%.512s/data", base);
    CHECK_INT(roots_add(r, ROOTS_DATA, p, err, sizeof err), 0);
    snprintf(p, sizeof p, "%.512s/nope", base);
    CHECK_INT(roots_add(r, ROOTS_DATA, p, err, sizeof err), ERR_NOTFOUND);
    snprintf(p, sizeof p, "%.512s/models/m.pt", base);
    CHECK_INT(roots_add(r, ROOTS_DATA, p, err, sizeof err), ERR_INVALID);
    CHECK_INT(roots_count(r, ROOTS_MODEL), 1);
    CHECK_INT(roots_count(r, ROOTS_DATA), 1);

    /* Relative to the first model root. */
    CHECK_INT(resolve(r, ROOTS_MODEL, "m.pt", out), 0);
    snprintf(p, sizeof p, "%.512s/models/m.pt", base);
    CHECK(!strcmp(out, p), "got %s want %s", out, p);
    CHECK_INT(resolve(r, ROOTS_MODEL, "sub/n.pt", out), 0);
    CHECK_INT(resolve(r, ROOTS_MODEL, "./sub//n.pt", out), 0);
    CHECK_INT(resolve(r, ROOTS_MODEL, "inside.pt", out), 0);
    snprintf(p, sizeof p, "%.512s/models/sub/n.pt", base);
    CHECK(!strcmp(out, p), "symlink inside resolves to %s", out);

    /* Absolute, inside. */
    snprintf(p, sizeof p, "%.512s/models/m.pt", base);
    CHECK_INT(resolve(r, ROOTS_MODEL, p, out), 0);

    /* Escapes. */
    CHECK_INT(resolve(r, ROOTS_MODEL, "../outside/secret.pt", out), ERR_DENIED);
    CHECK_INT(resolve(r, ROOTS_MODEL, "sub/../m.pt", out), ERR_DENIED); /* any ".." */
    CHECK_INT(resolve(r, ROOTS_MODEL, "escape.pt", out), ERR_DENIED);
    CHECK_INT(resolve(r, ROOTS_MODEL, "outdir/secret.pt", out), ERR_DENIED);
    snprintf(p, sizeof p, "%.512s/outside/secret.pt", base);
    CHECK_INT(resolve(r, ROOTS_MODEL, p, out), ERR_DENIED);
    CHECK_INT(resolve(r, ROOTS_MODEL, "/etc/passwd", out), ERR_DENIED);
    CHECK_INT(resolve(r, ROOTS_DATA, "/etc/passwd", out), ERR_DENIED);
    /* Outside and missing: still 403, not 404 (no probing outside the roots). */
    CHECK_INT(resolve(r, ROOTS_MODEL, "/nonexistent/x.pt", out), ERR_DENIED);
    /* A prefix that is not a parent directory. */
    snprintf(p, sizeof p, "%.512s/models-evil/x.pt", base);
    CHECK_INT(resolve(r, ROOTS_MODEL, p, out), ERR_DENIED);

    /* Kinds: data files may be under a data root or a model root; models not under data. */
    snprintf(p, sizeof p, "%.512s/data/dev.txt", base);
    CHECK_INT(resolve(r, ROOTS_DATA, p, out), 0);
    CHECK_INT(resolve(r, ROOTS_MODEL, p, out), ERR_DENIED);
    CHECK_INT(resolve(r, ROOTS_DATA, "m.pt", out), 0);
    CHECK_INT(resolve(r, ROOTS_DATA, "data-link.txt", out), 0);
    CHECK_INT(resolve(r, ROOTS_MODEL, "data-link.txt", out), ERR_DENIED);

    /* Missing, empty, not a file. */
    CHECK_INT(resolve(r, ROOTS_MODEL, "missing.pt", out), ERR_NOTFOUND);
    CHECK_INT(resolve(r, ROOTS_MODEL, "", out), ERR_INVALID);
    CHECK_INT(resolve(r, ROOTS_DATA, "sub", out), ERR_INVALID);
    /* a model may be a folder (a Hugging Face save_pretrained) */
    CHECK_INT(resolve(r, ROOTS_MODEL, "sub", out), 0);
    /* A link loop and an over-long name are the request's fault, not I/O. */
    CHECK_INT(resolve(r, ROOTS_MODEL, "loop-a", out), ERR_INVALID);
    char longname[300];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    CHECK_INT(resolve(r, ROOTS_MODEL, longname, out), ERR_INVALID);

    /* The job_resolve_fn adapter. */
    char e2[256];
    CHECK_INT(roots_job_resolve(r, "model", "m.pt", out, sizeof out, e2, sizeof e2), 0);
    snprintf(p, sizeof p, "%.512s/data/dev.txt", base);
    CHECK_INT(roots_job_resolve(r, "eval.data", p, out, sizeof out, e2, sizeof e2), 0);
    CHECK_INT(roots_job_resolve(r, "model", p, out, sizeof out, e2, sizeof e2), ERR_DENIED);
    /* A model's config.json sits with the model: model roots only. */
    CHECK_INT(roots_job_resolve(r, "model_config", "config.json", out, sizeof out, e2, sizeof e2),
              0);
    CHECK_INT(roots_job_resolve(r, "model_config", p, out, sizeof out, e2, sizeof e2), ERR_DENIED);
    /* ...and is one file: a folder is refused, though a model may be one. */
    CHECK_INT(roots_job_resolve(r, "model_config", "sub", out, sizeof out, e2, sizeof e2),
              ERR_INVALID);
    CHECK(strstr(e2, "not a regular file") != NULL, "model_config folder: '%s'", e2);
    CHECK_INT(roots_job_resolve(r, "model", "sub", out, sizeof out, e2, sizeof e2), 0);

    roots_destroy(r);
    roots_destroy(NULL);
    char cmd[P];
    snprintf(cmd, sizeof cmd, "rm -rf '%.512s'", base);
    if (system(cmd)) fprintf(stderr, "cleanup failed\n");
    return ct_done("test_roots");
}
