/* test_store.c - the artifact store: the job folder layout and the quota's running total */
#include "store.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ct.h"
#include "err.h"
#include "fsutil.h"

#define ID "0b6f5e4a-3c2d-4e1f-8a9b-0c1d2e3f4a5b"

/* Writes n bytes to path (fsync'd, so st_blocks is final). */
static void write_file(const char *path, size_t n)
{
    FILE *f = fopen(path, "wb");
    char *buf = calloc(1, n ? n : 1);
    CHECK(f && buf, "open %s", path);
    if (f) {
        for (size_t i = 0; i < n; i++)
            buf[i] = (char)(i * 7 + 1);
        fwrite(buf, 1, n, f);
        fflush(f);
        fsync(fileno(f));
        fclose(f);
    }
    free(buf);
}

int main(void)
{
    char tmpl[] = "/tmp/prunerd-test-store-XXXXXX", path[PATH_MAX + 64], err[256];
    const char *root = mkdtemp(tmpl);
    struct store *s = NULL;
    CHECK(root != NULL, "mkdtemp");
    if (!root) return ct_done("test_store");

    /* Open: jobs/ made, what is already there counted. */
    snprintf(path, sizeof path, "%s/prunerd.db", root);
    write_file(path, 40000);
    CHECK_INT(store_open(root, &s, err, sizeof err), 0);
    if (!s) return ct_done("test_store");
    struct stat st;
    snprintf(path, sizeof path, "%s/jobs", root);
    CHECK(!stat(path, &st) && S_ISDIR(st.st_mode), "store_open made %s", path);
    uint64_t base = store_used(s);
    CHECK(base == store_tree_usage(root) && base >= 40000, "open counts the dir: %llu",
          (unsigned long long)base);

    /* The layout. */
    char dir[PATH_MAX], run[PATH_MAX], want[PATH_MAX + 64];
    store_job_dir(s, ID, dir, sizeof dir);
    snprintf(want, sizeof want, "%s/jobs/%s", root, ID);
    CHECK(!strcmp(dir, want), "job dir %s, want %s", dir, want);
    store_run_dir(s, ID, 0, run, sizeof run);
    CHECK(!strcmp(run, want), "unfenced run dir %s, want %s", run, want);
    store_run_dir(s, ID, 7, run, sizeof run);
    snprintf(want, sizeof want, "%s/jobs/%s/run-7", root, ID);
    CHECK(!strcmp(run, want), "fenced run dir %s, want %s", run, want);
    CHECK(!strcmp(store_dir(s), root), "store_dir %s", store_dir(s));

    /* A run as a worker accounts for it: measure, write, measure again. */
    CHECK_INT(store_job_usage(s, ID), 0);
    uint64_t before = store_job_usage(s, ID);
    CHECK_INT(fs_mkdir_p(run, err, sizeof err), 0);
    snprintf(path, sizeof path, "%s/model.pth", run);
    write_file(path, 100000);
    uint64_t after = store_job_usage(s, ID);
    CHECK(after >= 100000, "the job folder holds %llu bytes", (unsigned long long)after);
    /* A running total: files written behind its back are not seen... */
    CHECK(store_used(s) == base, "not yet accounted: %llu, want %llu",
          (unsigned long long)store_used(s), (unsigned long long)base);
    store_account(s, (int64_t)after - (int64_t)before);
    CHECK(store_used(s) == base + after, "accounted: %llu, want %llu",
          (unsigned long long)store_used(s), (unsigned long long)(base + after));
    /* ...until a recount. */
    snprintf(path, sizeof path, "%s/other", root);
    write_file(path, 20000);
    uint64_t seen = store_used(s);
    store_recount(s);
    CHECK(seen == base + after && store_used(s) == store_tree_usage(root) &&
              store_used(s) >= seen + 20000,
          "recount: %llu -> %llu", (unsigned long long)seen, (unsigned long long)store_used(s));

    /* Removal takes the folder's bytes off. */
    uint64_t full = store_used(s);
    CHECK_INT(store_remove_job(s, "../etc", err, sizeof err), ERR_INVALID);
    CHECK_INT(store_remove_job(s, ID, err, sizeof err), 0);
    CHECK(store_used(s) == full - after, "after removal %llu, want %llu",
          (unsigned long long)store_used(s), (unsigned long long)(full - after));
    store_job_dir(s, ID, dir, sizeof dir);
    CHECK(stat(dir, &st) != 0, "%s is gone", dir);
    CHECK_INT(store_remove_job(s, ID, err, sizeof err), 0); /* gone already: fine */

    /* The total never goes below zero. */
    store_account(s, -(int64_t)store_used(s) - 12345);
    CHECK_INT(store_used(s), 0);

    store_destroy(s);
    store_destroy(NULL);
    fs_tree_remove(root, err, sizeof err);
    return ct_done("test_store");
}
