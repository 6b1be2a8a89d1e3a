/* fsutil.c - files written whole or not at all, sha256 of files, disk space */
#include "fsutil.h"

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "err.h"

struct fs_hooks fs_hooks;

static int do_fsync(int fd)
{
    return fs_hooks.fsync ? fs_hooks.fsync(fd) : fsync(fd);
}

static ssize_t do_write(int fd, const void *buf, size_t n)
{
    return fs_hooks.write ? fs_hooks.write(fd, buf, n) : write(fd, buf, n);
}

static void split_path(const char *path, char *dir, char *base, size_t len)
{
    char a[PATH_MAX], b[PATH_MAX];
    snprintf(a, sizeof a, "%s", path);
    snprintf(b, sizeof b, "%s", path);
    snprintf(dir, len, "%s", dirname(a));
    snprintf(base, len, "%s", basename(b));
}

int fs_tmp_path(const char *final, char *tmp, size_t tmplen, char *err, size_t errlen)
{
    char dir[PATH_MAX], base[PATH_MAX];
    uint32_t r = 0;
    if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r) r = (uint32_t)time(NULL);
    split_path(final, dir, base, sizeof dir);
    int n = snprintf(tmp, tmplen, "%s/.%s.tmp.%ld.%08x", dir, base, (long)getpid(), r);
    if (n < 0 || (size_t)n >= tmplen)
        return err_set(err, errlen, ERR_INVALID, "%s: path too long", final);
    return 0;
}

static int fsync_path(const char *path, int flags, char *err, size_t errlen)
{
    int fd = open(path, flags | O_CLOEXEC);
    if (fd < 0) return err_set(err, errlen, ERR_IO, "%s: open: %s", path, strerror(errno));
    int rc = 0;
    if (do_fsync(fd) != 0)
        rc = err_set(err, errlen, ERR_IO, "%s: fsync: %s", path, strerror(errno));
    close(fd);
    return rc;
}

int fs_fsync_path(const char *path, char *err, size_t errlen)
{
    return fsync_path(path, O_RDONLY, err, errlen);
}

int fs_commit(const char *tmp, const char *final, char *err, size_t errlen)
{
    char dir[PATH_MAX], base[PATH_MAX];
    int rc = fsync_path(tmp, O_RDONLY, err, errlen);
    if (rc) goto fail;
    if (rename(tmp, final) != 0) {
        rc = err_set(err, errlen, ERR_IO, "rename %s -> %s: %s", tmp, final, strerror(errno));
        goto fail;
    }
    split_path(final, dir, base, sizeof dir);
    return fsync_path(dir, O_RDONLY | O_DIRECTORY, err, errlen);
fail:
    unlink(tmp);
    return rc;
}

int fs_remove_stale_tmp(const char *dir, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int removed = 0;
    if (!d) return err_set(err, errlen, ERR_IO, "%s: %s", dir, strerror(errno));
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.' || !strstr(e->d_name, ".tmp.")) continue;
        if (unlinkat(dirfd(d), e->d_name, 0) == 0) {
            removed++;
        } else if (errno == EISDIR || errno == EPERM) { /* a folder being written */
            char sub[PATH_MAX], e2[256];
            if ((size_t)snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name) < sizeof sub &&
                fs_tree_remove(sub, e2, sizeof e2) == 0)
                removed++;
        }
    }
    closedir(d);
    return removed;
}

int fs_write_atomic(const char *path, const void *data, size_t n, char *err, size_t errlen)
{
    char tmp[PATH_MAX];
    int rc = fs_tmp_path(path, tmp, sizeof tmp, err, errlen);
    if (rc) return rc;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) return err_set(err, errlen, ERR_IO, "%s: create: %s", tmp, strerror(errno));
    const char *p = data;
    while (n > 0) {
        ssize_t w = do_write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            rc = err_set(err, errlen, errno == ENOSPC ? ERR_NOSPACE : ERR_IO, "%s: write: %s", path,
                         w < 0 ? strerror(errno) : "short write");
            close(fd);
            unlink(tmp);
            return rc;
        }
        p += w;
        n -= (size_t)w;
    }
    close(fd);
    return fs_commit(tmp, path, err, errlen);
}

/* Reads path into a new NUL-terminated buffer (caller frees): all of it in
 * one read when max_lines is 0, else in chunks until it holds max_lines
 * newlines, so a small limit does not read a big file. */
int fs_read_file(const char *path, size_t max_lines, char **buf_out, size_t *len_out, char *err,
                 size_t errlen)
{
    int rc = 0;
    char *buf = NULL;
    size_t len = 0, cap = 0, lines = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        return err_set(err, errlen, e == ENOENT ? ERR_NOTFOUND : ERR_IO, "%s: %s", path,
                       strerror(e));
    }
    struct stat st;
    int have_st = fstat(fileno(f), &st) == 0;
    if (have_st && S_ISDIR(st.st_mode)) {
        rc = err_set(err, errlen, ERR_IO, "%s: is a directory", path);
        goto out;
    }
    /* Room for the whole file, its NUL, and one byte more so the read that
     * meets EOF needs no regrowth. */
    if (max_lines == 0 && have_st && S_ISREG(st.st_mode) && st.st_size > 0 &&
        (uintmax_t)st.st_size < SIZE_MAX - 2)
        cap = (size_t)st.st_size + 2;
    if (cap < 65536) cap = 65536;
    for (;;) {
        if (!buf || len + 1 >= cap) {
            if (buf) cap *= 2;
            char *nb = realloc(buf, cap);
            if (!nb) {
                rc = err_set(err, errlen, ERR_NOMEM, "%s: out of memory", path);
                goto out;
            }
            buf = nb;
        }
        size_t got = fread(buf + len, 1, cap - len - 1, f);
        if (got == 0) {
            if (ferror(f)) {
                rc = err_set(err, errlen, ERR_IO, "%s: read error: %s", path, strerror(errno));
                goto out;
            }
            break;
        }
        if (max_lines) {
            for (const char *q = buf + len, *e = buf + len + got;
                 (q = memchr(q, '\n', (size_t)(e - q))) != NULL; q++)
                lines++;
        }
        len += got;
        if (max_lines && lines >= max_lines) break;
    }
    buf[len] = '\0';
    *buf_out = buf;
    *len_out = len;
    buf = NULL;
out:
    free(buf);
    fclose(f);
    return rc;
}

int fs_sha256_file(const char *path, char hex[65], int64_t *bytes, char *err, size_t errlen)
{
    int rc = 0;
    int64_t total = 0;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    size_t bufsz = 1 << 20;
    unsigned char *buf = NULL;
    EVP_MD_CTX *ctx = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return err_set(err, errlen, ERR_IO, "%s: open: %s", path, strerror(errno));
    buf = malloc(bufsz);
    ctx = EVP_MD_CTX_new();
    if (!buf || !ctx) {
        rc = err_set(err, errlen, ERR_NOMEM, "sha256: out of memory");
        goto out;
    }
    if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        rc = err_set(err, errlen, ERR_INTERNAL, "sha256: init failed");
        goto out;
    }
    for (;;) {
        ssize_t r = read(fd, buf, bufsz);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            rc = err_set(err, errlen, ERR_IO, "%s: read: %s", path, strerror(errno));
            goto out;
        }
        if (r == 0) break;
        EVP_DigestUpdate(ctx, buf, (size_t)r);
        total += r;
    }
    EVP_DigestFinal_ex(ctx, md, &mdlen);
    for (unsigned i = 0; i < mdlen && i < 32; i++)
        sprintf(hex + 2 * i, "%02x", md[i]);
    hex[64] = '\0';
    if (bytes) *bytes = total;
out:
    EVP_MD_CTX_free(ctx);
    free(buf);
    close(fd);
    return rc;
}

int fs_mkdir_p(const char *path, char *err, size_t errlen)
{
    char p[PATH_MAX];
    int n = snprintf(p, sizeof p, "%s", path);
    if (n <= 0 || (size_t)n >= sizeof p)
        return err_set(err, errlen, ERR_INVALID, "bad folder path");
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST)
            return err_set(err, errlen, ERR_IO, "%s: mkdir: %s", p, strerror(errno));
        *s = '/';
    }
    if (mkdir(p, 0755) != 0 && errno != EEXIST)
        return err_set(err, errlen, ERR_IO, "%s: mkdir: %s", p, strerror(errno));
    return 0;
}

int fs_free_bytes(const char *path, int64_t *bytes, char *err, size_t errlen)
{
    struct statvfs s;
    if (statvfs(path, &s) != 0)
        return err_set(err, errlen, ERR_IO, "%s: statvfs: %s", path, strerror(errno));
    *bytes = (int64_t)s.f_bavail * (int64_t)s.f_frsize;
    return 0;
}

double fs_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

double fs_monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path) && errno != ENOENT ? -1 : 0;
}

int fs_tree_remove(const char *dir, char *err, size_t errlen)
{
    if (nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) && errno != ENOENT)
        return err_set(err, errlen, ERR_IO, "removing %s: %s", dir, strerror(errno));
    return 0;
}
