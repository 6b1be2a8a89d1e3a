/* roots.c - request paths confined to the configured model and data roots */
#include "roots.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "err.h"

struct roots {
    char **dirs[2]; /* real paths, per kind */
    size_t n[2];
};

struct roots *roots_create(void)
{
    return calloc(1, sizeof(struct roots));
}

void roots_destroy(struct roots *r)
{
    if (!r) return;
    for (int k = 0; k < 2; k++) {
        for (size_t i = 0; i < r->n[k]; i++)
            free(r->dirs[k][i]);
        free(r->dirs[k]);
    }
    free(r);
}

int roots_add(struct roots *r, enum roots_kind kind, const char *dir, char *err, size_t errlen)
{
    char real[PATH_MAX];
    struct stat st;

    if (!realpath(dir, real))
        return err_set(err, errlen, errno == ENOENT ? ERR_NOTFOUND : ERR_IO, "root '%s': %s", dir,
                       strerror(errno));
    if (stat(real, &st) || !S_ISDIR(st.st_mode))
        return err_set(err, errlen, ERR_INVALID, "root '%s' is not a directory", dir);
    char **nd = realloc(r->dirs[kind], (r->n[kind] + 1) * sizeof *nd);
    if (!nd) return err_set(err, errlen, ERR_NOMEM, "out of memory");
    r->dirs[kind] = nd;
    if (!(nd[r->n[kind]] = strdup(real))) return err_set(err, errlen, ERR_NOMEM, "out of memory");
    r->n[kind]++;
    return 0;
}

size_t roots_count(const struct roots *r, enum roots_kind kind)
{
    return r->n[kind];
}

const char *roots_get(const struct roots *r, enum roots_kind kind, size_t i)
{
    return i < r->n[kind] ? r->dirs[kind][i] : NULL;
}

/* Is path (absolute, normalised) root itself or below it? */
static int is_under(const char *path, const char *root)
{
    size_t n = strlen(root);
    if (n == 1 && root[0] == '/') return path[0] == '/';
    return !strncmp(path, root, n) && (path[n] == '/' || path[n] == '\0');
}

static int has_dotdot(const char *path)
{
    const char *p = path;
    while (*p) {
        const char *e = strchr(p, '/');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == 2 && p[0] == '.' && p[1] == '.') return 1;
        if (!e) break;
        p = e + 1;
    }
    return 0;
}

/* Does some root of the allowed kinds hold path? */
static int allowed(const struct roots *r, enum roots_kind kind, const char *path)
{
    for (int k = 0; k < 2; k++) {
        if (kind == ROOTS_MODEL && k != ROOTS_MODEL) continue;
        for (size_t i = 0; i < r->n[k]; i++)
            if (is_under(path, r->dirs[k][i])) return 1;
    }
    return 0;
}

int roots_resolve(const struct roots *r, enum roots_kind kind, const char *path, char *out,
                  size_t outlen, char *err, size_t errlen)
{
    char joined[PATH_MAX], real[PATH_MAX];
    struct stat st;

    if (!path || !*path) return err_set(err, errlen, ERR_INVALID, "the path is empty");
    if (strlen(path) >= PATH_MAX / 2)
        return err_set(err, errlen, ERR_INVALID, "the path is too long");
    if (has_dotdot(path))
        return err_set(err, errlen, ERR_DENIED, "'%s': '..' is not allowed in paths", path);
    if (path[0] == '/') {
        /* Refuse outside paths before touching the file system. */
        if (!allowed(r, kind, path))
            return err_set(err, errlen, ERR_DENIED, "'%s' is outside the allowed roots", path);
        snprintf(joined, sizeof joined, "%s", path);
    } else {
        /* The first root that holds it: the model roots in order, then, for
         * data, the data roots (the daemon shows paths to non-admin callers
         * relative to their root, and takes them back so). */
        size_t nm = r->n[ROOTS_MODEL], nroots = nm + (kind == ROOTS_DATA ? r->n[ROOTS_DATA] : 0);
        struct stat ls;
        if (!r->n[ROOTS_MODEL])
            return err_set(err, errlen, ERR_DENIED, "no model root is configured");
        /* None holds it: the first model root's name goes on to "does not exist". */
        snprintf(joined, sizeof joined, "%s/%s", r->dirs[ROOTS_MODEL][0], path);
        for (size_t i = 0; i < nroots; i++) {
            const char *root = i < nm ? r->dirs[ROOTS_MODEL][i] : r->dirs[ROOTS_DATA][i - nm];
            char cand[sizeof joined];
            snprintf(cand, sizeof cand, "%s/%s", root, path);
            if (!lstat(cand, &ls)) { /* lstat opens nothing */
                memcpy(joined, cand, sizeof cand);
                break;
            }
        }
    }
    /* realpath follows symlinks with lstat/readlink only: nothing is opened. */
    if (!realpath(joined, real)) {
        int e = errno;
        if (e == ENOENT || e == ENOTDIR)
            return err_set(err, errlen, ERR_NOTFOUND, "'%s' does not exist", path);
        /* A link loop or an over-long name is the request's fault; a folder
         * this process may not search is as good as outside the roots. */
        return err_set(err, errlen,
                       e == ELOOP || e == ENAMETOOLONG ? ERR_INVALID
                       : e == EACCES                   ? ERR_DENIED
                                                       : ERR_IO,
                       "'%s': %s", path, strerror(e));
    }
    if (!allowed(r, kind, real))
        return err_set(err, errlen, ERR_DENIED, "'%s' leads outside the allowed roots", path);
    if (stat(real, &st)) return err_set(err, errlen, ERR_IO, "'%s': %s", path, strerror(errno));
    /* a model may be a Hugging Face folder; its files are resolved one by one later */
    if (!S_ISREG(st.st_mode) && !(kind == ROOTS_MODEL && S_ISDIR(st.st_mode)))
        return err_set(err, errlen, ERR_INVALID, "'%s' is not a regular file%s", path,
                       kind == ROOTS_MODEL ? " or a model folder" : "");
    if (strlen(real) >= outlen)
        return err_set(err, errlen, ERR_INVALID, "'%s': the path is too long", path);
    memcpy(out, real, strlen(real) + 1);
    return 0;
}

int roots_job_resolve(void *ud, const char *field, const char *path, char *out, size_t outlen,
                      char *err, size_t errlen)
{
    int config = !strcmp(field, "model_config");
    enum roots_kind kind = config || !strcmp(field, "model") ? ROOTS_MODEL : ROOTS_DATA;
    int rc = roots_resolve(ud, kind, path, out, outlen, err, errlen);
    struct stat st;
    /* Under a model root, but a config is one file, never a folder. */
    if (!rc && config && (stat(out, &st) || !S_ISREG(st.st_mode)))
        return err_set(err, errlen, ERR_INVALID, "'%s' is not a regular file (a config.json)",
                       path);
    return rc;
}

int roots_model_resolve(void *ud, const char *path, char *out, size_t outlen, char *err,
                        size_t errlen)
{
    return roots_resolve(ud, ROOTS_MODEL, path, out, outlen, err, errlen);
}
