/* store.c - the artifact store: job folders and the running total of their bytes */
#include "store.h"

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "err.h"
#include "fsutil.h"
#include "queue.h"

struct store {
    char *dir;            /* the artifact dir */
    pthread_mutex_t lock; /* guards used */
    uint64_t used;        /* bytes: the last count plus the changes since */
};

static __thread uint64_t tree_sum; /* nftw has no user pointer */

static int add_blocks(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)path;
    (void)flag;
    (void)ftw;
    tree_sum += (uint64_t)st->st_blocks * 512u;
    return 0;
}

uint64_t store_tree_usage(const char *dir)
{
    tree_sum = 0;
    nftw(dir, add_blocks, 16, FTW_PHYS);
    return tree_sum;
}

int store_open(const char *artifact_dir, struct store **out, char *err, size_t errlen)
{
    char jobs[PATH_MAX];
    struct store *s;
    int rc;

    *out = NULL;
    if ((size_t)snprintf(jobs, sizeof jobs, "%s/jobs", artifact_dir) >= sizeof jobs)
        return err_set(err, errlen, ERR_IO, "artifact dir %s: path too long", artifact_dir);
    if ((rc = fs_mkdir_p(jobs, err, errlen))) return rc;
    if (!(s = calloc(1, sizeof *s)) || !(s->dir = strdup(artifact_dir))) {
        free(s);
        return err_set(err, errlen, ERR_NOMEM, "out of memory");
    }
    pthread_mutex_init(&s->lock, NULL);
    s->used = store_tree_usage(artifact_dir);
    *out = s;
    return 0;
}

void store_destroy(struct store *s)
{
    if (!s) return;
    pthread_mutex_destroy(&s->lock);
    free(s->dir);
    free(s);
}

const char *store_dir(const struct store *s)
{
    return s->dir;
}

void store_job_dir(const struct store *s, const char *id, char *out, size_t n)
{
    snprintf(out, n, "%s/jobs/%s", s->dir, id);
}

void store_run_dir(const struct store *s, const char *id, int64_t fence, char *out, size_t n)
{
    if (fence > 0)
        snprintf(out, n, "%s/jobs/%s/run-%lld", s->dir, id, (long long)fence);
    else
        store_job_dir(s, id, out, n);
}

uint64_t store_job_usage(const struct store *s, const char *id)
{
    char dir[PATH_MAX];
    store_job_dir(s, id, dir, sizeof dir);
    return store_tree_usage(dir);
}

void store_account(struct store *s, int64_t delta)
{
    pthread_mutex_lock(&s->lock);
    if (delta < 0 && (uint64_t)-delta > s->used)
        s->used = 0;
    else
        s->used += (uint64_t)delta;
    pthread_mutex_unlock(&s->lock);
}

uint64_t store_used(struct store *s)
{
    pthread_mutex_lock(&s->lock);
    uint64_t v = s->used;
    pthread_mutex_unlock(&s->lock);
    return v;
}

void store_recount(struct store *s)
{
    uint64_t v = store_tree_usage(s->dir);
    pthread_mutex_lock(&s->lock);
    s->used = v;
    pthread_mutex_unlock(&s->lock);
}

int store_remove_job(struct store *s, const char *id, char *err, size_t errlen)
{
    char dir[PATH_MAX];
    if (!id || !job_id_valid(id))
        return err_set(err, errlen, ERR_INVALID, "'%s' is not a job id", id ? id : "");
    store_job_dir(s, id, dir, sizeof dir);
    int64_t before = (int64_t)store_tree_usage(dir);
    int rc = fs_tree_remove(dir, err, errlen);
    store_account(s, (int64_t)store_tree_usage(dir) - before); /* 0 once gone */
    return rc;
}
