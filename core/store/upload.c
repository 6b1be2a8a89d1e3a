/* upload.c - files sent to the daemon: a folder per owner, each written whole or not at all */
#include "upload.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "err.h"
#include "fsutil.h"
#include "json_text.h"
#include "roots.h"
#include "store.h"
#include "unpack.h"

#define ANONYMOUS "anonymous"       /* the owner folder with auth off */
#define PARTIAL_LOCK "uploads.lock" /* beside the three folders: see lock_partial */
#define UPLOAD_BUFFER (256u << 10)  /* bytes gathered per write(2) */

struct upload {
    struct store *s;
    char owner[UPLOAD_OWNER_MAX + 1];
    char odir[UPLOAD_OWNER_MAX + 1];
    char name[UPLOAD_NAME_MAX + 1];
    enum upload_unpack unpack;
    int replace;
    char want[65]; /* "" when not announced */
    uint64_t limit, quota, received;
    char tmp[PATH_MAX];
    int fd;
    EVP_MD_CTX *md;
    char *buf; /* UPLOAD_BUFFER bytes not yet written */
    size_t blen;
    int failed; /* the error written by the failing upload_write */
    struct upload_error failure;
};

/* ---- names and places ---- */

int upload_name_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > UPLOAD_NAME_MAX || !strcmp(name, ".") || !strcmp(name, "..")) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

static int fault(struct upload_error *e, enum upload_fault f, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fault(struct upload_error *e, enum upload_fault f, int code, const char *fmt, ...)
{
    va_list ap;
    e->fault = f;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return code;
}

/* The owner's folder name: the token name, or "anonymous" with auth off.
 * Token names are letters, digits, '-', '_' and '.' (auth.c), so only "."
 * and ".." could leave the folder. */
static int owner_dir(const char *owner, char out[UPLOAD_OWNER_MAX + 1])
{
    if (!owner || !*owner) {
        snprintf(out, UPLOAD_OWNER_MAX + 1, "%s", ANONYMOUS);
        return 0;
    }
    if (strlen(owner) > UPLOAD_OWNER_MAX || !upload_name_valid(owner)) return ERR_DENIED;
    snprintf(out, UPLOAD_OWNER_MAX + 1, "%s", owner);
    return 0;
}

static int place(char *out, size_t n, const struct store *s, const char *area, const char *odir,
                 const char *name, const char *suffix)
{
    int k = snprintf(out, n, "%s/%s%s%s%s%s%s", store_dir(s), area, odir ? "/" : "",
                     odir ? odir : "", name ? "/" : "", name ? name : "", suffix ? suffix : "");
    return k < 0 || (size_t)k >= n ? ERR_INVALID : 0;
}

#define ROOT_AREA "uploads"
#define META_AREA "uploads.meta"
#define PARTIAL_AREA "uploads.partial"

static int random_hex(char out[17])
{
    unsigned char r[8];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) return -1;
    for (int i = 0; i < 8; i++)
        snprintf(out + 2 * i, 3, "%02x", r[i]);
    return 0;
}

/* ---- the partial folder ---- */

/* uploads.lock: shared while a writer makes its file and takes
 * that file's flock, exclusive while the cleaner looks, so the cleaner
 * never finds a file made but not yet held.  The fd, or -1. */
static int lock_partial(const struct store *s, int how)
{
    char path[PATH_MAX];
    if (place(path, sizeof path, s, PARTIAL_LOCK, NULL, NULL, NULL)) return -1;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) return -1;
    while (flock(fd, how) != 0)
        if (errno != EINTR) {
            close(fd);
            return -1;
        }
    return fd;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

int upload_clean_partial(struct store *s)
{
    char dir[PATH_MAX], path[PATH_MAX + 300], e[256];
    int removed = 0;
    if (place(dir, sizeof dir, s, PARTIAL_AREA, NULL, NULL, NULL)) return 0;
    int lockfd = lock_partial(s, LOCK_EX);
    DIR *d = lockfd >= 0 ? opendir(dir) : NULL;
    if (!d) {
        if (lockfd >= 0) close(lockfd);
        return 0;
    }
    for (struct dirent *de; (de = readdir(d));) {
        struct stat st;
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (lstat(path, &st)) continue;
        if (S_ISREG(st.st_mode)) {
            /* A body being written is held with flock by its writer. */
            int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
            if (fd < 0) continue;
            int held = flock(fd, LOCK_EX | LOCK_NB) != 0;
            if (!held && unlink(path) == 0) removed++;
            close(fd);
            if (!held) {
                char sub[PATH_MAX + 310];
                snprintf(sub, sizeof sub, "%s.d", path);
                fs_tree_remove(sub, e, sizeof e);
            }
        } else if (S_ISDIR(st.st_mode)) {
            /* NAME.d (its body's file) or NAME.old (a replaced upload). */
            char body[PATH_MAX + 300];
            snprintf(body, sizeof body, "%s", path);
            if (ends_with(body, ".d")) body[strlen(body) - 2] = '\0';
            if ((ends_with(path, ".old") || access(body, F_OK) != 0 || !strcmp(body, path)) &&
                fs_tree_remove(path, e, sizeof e) == 0)
                removed++;
        }
    }
    closedir(d);
    close(lockfd);
    return removed;
}

int upload_prepare(struct store *s, char *root, size_t rootlen, char *err, size_t errlen)
{
    const char *areas[] = {ROOT_AREA, META_AREA, PARTIAL_AREA};
    char dir[PATH_MAX];
    int rc;
    for (size_t i = 0; i < sizeof areas / sizeof areas[0]; i++) {
        if (place(dir, sizeof dir, s, areas[i], NULL, NULL, NULL))
            return err_set(err, errlen, ERR_INVALID, "%s: path too long", store_dir(s));
        if ((rc = fs_mkdir_p(dir, err, errlen))) return rc;
    }
    upload_clean_partial(s);
    if (place(root, rootlen, s, ROOT_AREA, NULL, NULL, NULL))
        return err_set(err, errlen, ERR_INVALID, "%s: path too long", store_dir(s));
    return 0;
}

/* ---- metadata ---- */

static const char *kind_name(enum upload_kind k)
{
    return k == UPLOAD_FOLDER ? "folder" : "file";
}

static int64_t mtime_ns(const struct stat *st)
{
    return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

static int write_meta(const struct upload *u, const struct upload_info *info, const struct stat *st,
                      char *err, size_t errlen)
{
    char path[PATH_MAX];
    if (place(path, sizeof path, u->s, META_AREA, u->odir, u->name, ".json"))
        return err_set(err, errlen, ERR_INVALID, "%s: path too long", u->name);
    json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:f, s:I, s:I, s:I}", "name",
                          info->name, "owner", info->owner, "kind", kind_name(info->kind), "bytes",
                          (json_int_t)info->bytes, "archive_bytes", (json_int_t)info->archive_bytes,
                          "files", (json_int_t)info->files, "sha256", info->sha256, "created",
                          info->created, "ino", (json_int_t)st->st_ino, "size",
                          (json_int_t)st->st_size, "mtime_ns", (json_int_t)mtime_ns(st));
    char *text = o ? json_text_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    if (!text) return err_set(err, errlen, ERR_NOMEM, "out of memory");
    int rc = fs_write_atomic(path, text, strlen(text), err, errlen);
    free(text);
    return rc;
}

static __thread uint64_t walk_files, walk_bytes;

static int count_file(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)path;
    (void)ftw;
    if (flag == FTW_F && S_ISREG(st->st_mode)) {
        walk_files++;
        walk_bytes += (uint64_t)st->st_size;
    }
    return 0;
}

/* What the metadata says, when it was written for this very file; else
 * what the file itself says (sha256 for a file, counts for a folder). */
static int read_info(const struct store *s, const char *owner, const char *odir, const char *name,
                     struct upload_info *info, char *err, size_t errlen)
{
    char path[PATH_MAX], meta[PATH_MAX];
    struct stat st;
    memset(info, 0, sizeof *info);
    if (place(path, sizeof path, s, ROOT_AREA, odir, name, NULL) ||
        place(meta, sizeof meta, s, META_AREA, odir, name, ".json"))
        return err_set(err, errlen, ERR_INVALID, "%s: path too long", name);
    if (lstat(path, &st) || !(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)))
        return err_set(err, errlen, ERR_NOTFOUND, "no upload '%s'", name);
    snprintf(info->name, sizeof info->name, "%s", name);
    snprintf(info->owner, sizeof info->owner, "%s", owner);
    snprintf(info->path, sizeof info->path, "%s", path);
    snprintf(info->relpath, sizeof info->relpath, "%s/%s", odir, name);
    info->kind = S_ISDIR(st.st_mode) ? UPLOAD_FOLDER : UPLOAD_FILE;

    json_t *m = json_load_file(meta, 0, NULL);
    json_int_t ino = 0, size = -1, mns = -1;
    const char *sha = NULL, *kind = NULL;
    json_int_t bytes = 0, abytes = 0, files = 0;
    double created = 0;
    if (m &&
        !json_unpack(m, "{s:s, s:I, s:I, s:I, s:s, s:F, s:I, s:I, s:I, s:s}", "kind", &kind,
                     "bytes", &bytes, "archive_bytes", &abytes, "files", &files, "sha256", &sha,
                     "created", &created, "ino", &ino, "size", &size, "mtime_ns", &mns, "name",
                     &(const char *){NULL}) &&
        (uint64_t)ino == (uint64_t)st.st_ino && !strcmp(kind, kind_name(info->kind)) &&
        (info->kind == UPLOAD_FOLDER || (size == st.st_size && mns == mtime_ns(&st))) &&
        strlen(sha) <= 64) {
        info->bytes = (uint64_t)bytes;
        info->archive_bytes = (uint64_t)abytes;
        info->files = (uint64_t)files;
        snprintf(info->sha256, sizeof info->sha256, "%s", sha);
        info->created = created;
        json_decref(m);
        return 0;
    }
    json_decref(m);
    /* Changed or placed by hand: the file says. */
    info->created = (double)st.st_mtim.tv_sec + (double)st.st_mtim.tv_nsec / 1e9;
    if (info->kind == UPLOAD_FILE) {
        int64_t n = 0;
        int rc = fs_sha256_file(path, info->sha256, &n, err, errlen);
        if (rc) return rc;
        info->bytes = (uint64_t)n;
        info->files = 1;
    } else {
        walk_files = walk_bytes = 0;
        nftw(path, count_file, 16, FTW_PHYS);
        info->files = walk_files;
        info->bytes = walk_bytes;
    }
    return 0;
}

/* The owner's lock (commits and removals), in uploads.meta/<owner>/. */
static int lock_owner(const struct store *s, const char *odir, char *err, size_t errlen)
{
    char dir[PATH_MAX], path[PATH_MAX + 8];
    int rc;
    if (place(dir, sizeof dir, s, META_AREA, odir, NULL, NULL))
        return err_set(err, errlen, ERR_INVALID, "path too long");
    if ((rc = fs_mkdir_p(dir, err, errlen))) return rc;
    if (place(dir, sizeof dir, s, ROOT_AREA, odir, NULL, NULL) ||
        (rc = fs_mkdir_p(dir, err, errlen)))
        return rc ? rc : ERR_INVALID;
    snprintf(path, sizeof path, "%s/%s/%s/.lock", store_dir(s), META_AREA, odir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) return err_set(err, errlen, ERR_IO, "%s: %s", path, strerror(errno));
    while (flock(fd, LOCK_EX) != 0)
        if (errno != EINTR) {
            close(fd);
            return err_set(err, errlen, ERR_IO, "%s: flock: %s", path, strerror(errno));
        }
    return fd;
}

static void unlock_owner(int fd)
{
    if (fd >= 0) close(fd); /* releases the flock */
}

/* ---- one upload ---- */

static int hex64(const char *s)
{
    if (!s || strlen(s) != 64) return 0;
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') ||
              (s[i] >= 'A' && s[i] <= 'F')))
            return 0;
    return 1;
}

int upload_begin(struct store *s, const struct upload_params *p, struct upload **out,
                 struct upload_error *e)
{
    char rnd[17], dir[PATH_MAX];
    struct upload *u;

    *out = NULL;
    memset(e, 0, sizeof *e);
    if (!upload_name_valid(p->name))
        return fault(e, UPLOAD_FAULT_NAME, ERR_INVALID,
                     "an upload's name is 1 to %d of A-Z a-z 0-9 . _ -, not '.' or '..'",
                     UPLOAD_NAME_MAX);
    if (p->sha256 && !hex64(p->sha256))
        return fault(e, UPLOAD_FAULT_CHECKSUM, ERR_INVALID,
                     "Content-SHA256 must be 64 hex digits (the sha256 of the body)");
    if (p->length_known && p->length > p->limit)
        return fault(e, UPLOAD_FAULT_TOO_LARGE, ERR_INVALID,
                     "the body of %llu bytes is over the upload limit of %llu bytes",
                     (unsigned long long)p->length, (unsigned long long)p->limit);
    if (p->quota && p->length_known && store_used(s) + p->length > p->quota)
        return fault(e, UPLOAD_FAULT_QUOTA, ERR_NOSPACE,
                     "%llu more bytes would pass the store's quota of %llu bytes (%llu used)",
                     (unsigned long long)p->length, (unsigned long long)p->quota,
                     (unsigned long long)store_used(s));
    if (!(u = calloc(1, sizeof *u))) return fault(e, UPLOAD_FAULT_IO, ERR_NOMEM, "out of memory");
    u->fd = -1;
    if (owner_dir(p->owner, u->odir)) {
        free(u);
        return fault(e, UPLOAD_FAULT_OWNER, ERR_DENIED, "token '%s' cannot own uploads", p->owner);
    }
    u->s = s;
    snprintf(u->owner, sizeof u->owner, "%s", p->owner ? p->owner : "");
    snprintf(u->name, sizeof u->name, "%s", p->name);
    u->unpack = p->unpack;
    u->replace = p->replace;
    u->limit = p->limit;
    u->quota = p->quota;
    if (p->sha256)
        for (int i = 0; i < 65; i++)
            u->want[i] = (char)(p->sha256[i] >= 'A' && p->sha256[i] <= 'F' ? p->sha256[i] + 32
                                                                           : p->sha256[i]);
    if (place(dir, sizeof dir, s, PARTIAL_AREA, NULL, NULL, NULL) || random_hex(rnd) ||
        (size_t)snprintf(u->tmp, sizeof u->tmp, "%s/%s.%s", dir, u->odir, rnd) >= sizeof u->tmp) {
        free(u);
        return fault(e, UPLOAD_FAULT_IO, ERR_IO, "cannot name a partial file");
    }
    /* Held with flock while written, so upload_clean_partial leaves it;
     * made and locked under the folder's shared lock. */
    int plock = lock_partial(s, LOCK_SH);
    u->fd = plock < 0 ? -1 : open(u->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    int held = u->fd >= 0 && flock(u->fd, LOCK_EX) == 0;
    if (plock >= 0) close(plock);
    if (!held || !(u->buf = malloc(UPLOAD_BUFFER)) || !(u->md = EVP_MD_CTX_new()) ||
        EVP_DigestInit_ex(u->md, EVP_sha256(), NULL) != 1) {
        int rc = fault(e, UPLOAD_FAULT_IO, errno == ENOSPC ? ERR_NOSPACE : ERR_IO, "%s: %s", u->tmp,
                       strerror(errno));
        upload_abort(u);
        return rc;
    }
    *out = u;
    return 0;
}

/* Writes the buffered bytes to the partial file. */
static int flush(struct upload *u)
{
    const char *p = u->buf;
    size_t n = u->blen;
    while (!u->failed && n) {
        ssize_t w = fs_hooks.write ? fs_hooks.write(u->fd, p, n) : write(u->fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0)
            u->failed = fault(&u->failure, UPLOAD_FAULT_IO, errno == ENOSPC ? ERR_NOSPACE : ERR_IO,
                              "writing the upload: %s",
                              errno == ENOSPC ? "the disk is full" : strerror(errno));
        else {
            p += w;
            n -= (size_t)w;
        }
    }
    u->blen = 0;
    return u->failed;
}

int upload_write(struct upload *u, const void *data, size_t n, struct upload_error *e)
{
    const char *p = data;
    if (u->failed) {
        *e = u->failure;
        return u->failed;
    }
    if (n > u->limit - u->received)
        u->failed =
            fault(&u->failure, UPLOAD_FAULT_TOO_LARGE, ERR_INVALID,
                  "the body is over the upload limit of %llu bytes", (unsigned long long)u->limit);
    else if (u->quota && store_used(u->s) + u->received + n > u->quota)
        u->failed = fault(&u->failure, UPLOAD_FAULT_QUOTA, ERR_NOSPACE,
                          "the body would pass the store's quota of %llu bytes",
                          (unsigned long long)u->quota);
    else if (EVP_DigestUpdate(u->md, data, n) != 1)
        u->failed = fault(&u->failure, UPLOAD_FAULT_IO, ERR_INTERNAL, "sha256 failed");
    else
        u->received += n;
    /* libmicrohttpd hands over a few KiB at a time: gathered into
     * UPLOAD_BUFFER bytes per write. */
    while (!u->failed && n) {
        size_t k = n < UPLOAD_BUFFER - u->blen ? n : UPLOAD_BUFFER - u->blen;
        memcpy(u->buf + u->blen, p, k);
        u->blen += k;
        p += k;
        n -= k;
        if (u->blen == UPLOAD_BUFFER) flush(u);
    }
    if (u->failed) *e = u->failure;
    return u->failed;
}

void upload_abort(struct upload *u)
{
    char sub[PATH_MAX + 4], e[256];
    if (!u) return;
    if (u->tmp[0]) {
        snprintf(sub, sizeof sub, "%s.d", u->tmp);
        fs_tree_remove(sub, e, sizeof e);
        unlink(u->tmp);
    }
    if (u->fd >= 0) close(u->fd);
    EVP_MD_CTX_free(u->md);
    free(u->buf);
    free(u);
}

/* The unpacked folder to put in place: the only folder at the top, when
 * that is all there is, else the whole of sub. */
static void unpacked_top(const char *sub, char *out, size_t n)
{
    char only[NAME_MAX + 1] = "";
    int count = 0, is_dir = 0;
    DIR *d = opendir(sub);
    snprintf(out, n, "%s", sub);
    if (!d) return;
    for (struct dirent *de; (de = readdir(d));) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        if (++count > 1) break;
        snprintf(only, sizeof only, "%s", de->d_name);
        is_dir = de->d_type == DT_DIR;
    }
    closedir(d);
    if (count == 1 && is_dir) snprintf(out, n, "%s/%s", sub, only);
}

/* Unpacks the body into tmp.d; fills the counts and the folder to move. */
static int unpack_body(struct upload *u, struct upload_info *info, char *src, size_t srclen,
                       struct upload_error *e)
{
    char sub[PATH_MAX + 4], err[512];
    struct unpack_limits lim = {u->limit, UPLOAD_MAX_ENTRIES};
    snprintf(sub, sizeof sub, "%s.d", u->tmp);
    if (mkdir(sub, 0755)) return fault(e, UPLOAD_FAULT_IO, ERR_IO, "%s: %s", sub, strerror(errno));
    int rc = unpack_archive(u->tmp, u->unpack == UPLOAD_ZIP ? UNPACK_ZIP : UNPACK_TAR, sub, &lim,
                            &info->files, &info->bytes, e->entry, sizeof e->entry, err, sizeof err);
    if (rc)
        return fault(e,
                     rc == ERR_DENIED   ? UPLOAD_FAULT_UNSAFE
                     : rc == ERR_FORMAT ? UPLOAD_FAULT_ARCHIVE
                                        : UPLOAD_FAULT_IO,
                     rc, "%s", err);
    if (u->quota && store_used(u->s) + info->bytes > u->quota)
        return fault(e, UPLOAD_FAULT_QUOTA, ERR_NOSPACE,
                     "%llu unpacked bytes would pass the store's quota of %llu bytes",
                     (unsigned long long)info->bytes, (unsigned long long)u->quota);
    info->archive_bytes = u->received;
    unpacked_top(sub, src, srclen);
    return 0;
}

/* Moves src to final, which may exist (only with replace): a file over a
 * file is one rename; otherwise the two are exchanged and the old one
 * removed, so the name is never empty. */
static int put_in_place(struct upload *u, const char *src, const char *final, int exists,
                        int both_files, struct upload_error *e)
{
    char old[PATH_MAX + 8], err[256];
    if (!exists || both_files) {
        if (rename(src, final))
            return fault(e, UPLOAD_FAULT_IO, ERR_IO, "rename to %s: %s", final, strerror(errno));
        return 0;
    }
    if (renameat2(AT_FDCWD, src, AT_FDCWD, final, RENAME_EXCHANGE) == 0) {
        fs_tree_remove(src, err, sizeof err); /* the old one, now at src */
        unlink(src);
        return 0;
    }
    /* No exchange on this file system: move the old one aside first. */
    snprintf(old, sizeof old, "%s.old", u->tmp);
    if (rename(final, old))
        return fault(e, UPLOAD_FAULT_IO, ERR_IO, "rename of %s: %s", final, strerror(errno));
    if (rename(src, final)) {
        int rc = fault(e, UPLOAD_FAULT_IO, ERR_IO, "rename to %s: %s", final, strerror(errno));
        rename(old, final);
        return rc;
    }
    fs_tree_remove(old, err, sizeof err);
    unlink(old);
    return 0;
}

int upload_finish(struct upload *u, struct upload_info *info, int *replayed, struct upload_error *e)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char final[PATH_MAX], dir[PATH_MAX], src[PATH_MAX + 300], err[512];
    struct upload_info had;
    struct stat st;
    int rc = 0, lockfd = -1;

    *replayed = 0;
    memset(e, 0, sizeof *e);
    memset(info, 0, sizeof *info);
    if (u->failed) {
        *e = u->failure;
        rc = u->failed;
        goto out;
    }
    if (EVP_DigestFinal_ex(u->md, md, &mdlen) != 1 || mdlen != 32) {
        rc = fault(e, UPLOAD_FAULT_IO, ERR_INTERNAL, "sha256 failed");
        goto out;
    }
    for (unsigned i = 0; i < 32; i++)
        snprintf(info->sha256 + 2 * i, 3, "%02x", md[i]);
    if (u->want[0] && strcmp(u->want, info->sha256)) {
        rc = fault(e, UPLOAD_FAULT_CHECKSUM, ERR_CONFLICT,
                   "the body's sha256 is %s, not the Content-SHA256 %s: nothing was kept",
                   info->sha256, u->want);
        goto out;
    }
    if (flush(u)) {
        *e = u->failure;
        rc = u->failed;
        goto out;
    }
    if (fsync(u->fd)) {
        rc = fault(e, UPLOAD_FAULT_IO, ERR_IO, "fsync: %s", strerror(errno));
        goto out;
    }
    snprintf(info->name, sizeof info->name, "%s", u->name);
    snprintf(info->owner, sizeof info->owner, "%s", u->owner);
    snprintf(src, sizeof src, "%s", u->tmp);
    if (u->unpack != UPLOAD_RAW) {
        info->kind = UPLOAD_FOLDER;
        if ((rc = unpack_body(u, info, src, sizeof src, e))) goto out;
    } else {
        info->kind = UPLOAD_FILE;
        info->bytes = u->received;
        info->files = 1;
    }
    if (place(final, sizeof final, u->s, ROOT_AREA, u->odir, u->name, NULL) ||
        place(dir, sizeof dir, u->s, ROOT_AREA, u->odir, NULL, NULL)) {
        rc = fault(e, UPLOAD_FAULT_NAME, ERR_INVALID, "the path is too long");
        goto out;
    }
    if ((lockfd = lock_owner(u->s, u->odir, err, sizeof err)) < 0) {
        rc = fault(e, UPLOAD_FAULT_IO, lockfd, "%s", err);
        goto out;
    }
    int exists = lstat(final, &st) == 0;
    uint64_t before = 0;
    if (exists) {
        if (read_info(u->s, u->owner, u->odir, u->name, &had, err, sizeof err) == 0 &&
            had.kind == info->kind && !strcmp(had.sha256, info->sha256)) {
            *info = had; /* the same content: a replay, nothing changes */
            *replayed = 1;
            goto out;
        }
        if (!u->replace) {
            rc = fault(e, UPLOAD_FAULT_EXISTS, ERR_CONFLICT,
                       "'%s' holds other content: send ?replace=1 to replace it", u->name);
            goto out;
        }
        before = store_tree_usage(final);
    }
    if ((rc = put_in_place(u, src, final, exists, S_ISREG(st.st_mode) && !strcmp(src, u->tmp), e)))
        goto out;
    if (fs_fsync_path(dir, err, sizeof err) || lstat(final, &st)) {
        rc = fault(e, UPLOAD_FAULT_IO, ERR_IO, "%s", err[0] ? err : strerror(errno));
        goto out;
    }
    info->created = fs_now();
    snprintf(info->path, sizeof info->path, "%s", final);
    snprintf(info->relpath, sizeof info->relpath, "%s/%s", u->odir, u->name);
    store_account(u->s, (int64_t)store_tree_usage(final) - (int64_t)before);
    /* The upload is in place; without its metadata it is still listed,
     * worked out from the file. */
    if (write_meta(u, info, &st, err, sizeof err)) {
        char meta[PATH_MAX];
        if (!place(meta, sizeof meta, u->s, META_AREA, u->odir, u->name, ".json")) unlink(meta);
    }
out:
    unlock_owner(lockfd);
    upload_abort(u); /* removes the partial file (renamed already when kept) */
    return rc;
}

/* ---- listing and removal ---- */

static int by_newest(const void *a, const void *b)
{
    const struct upload_info *x = a, *y = b;
    if (x->created != y->created) return x->created < y->created ? 1 : -1;
    return strcmp(x->name, y->name);
}

int upload_list(struct store *s, const char *owner, struct upload_info **out, size_t *n, char *err,
                size_t errlen)
{
    char odir[UPLOAD_OWNER_MAX + 1], dir[PATH_MAX];
    struct upload_info *v = NULL;
    size_t cap = 0;

    *out = NULL;
    *n = 0;
    if (owner_dir(owner, odir))
        return err_set(err, errlen, ERR_DENIED, "no uploads for '%s'", owner);
    if (place(dir, sizeof dir, s, ROOT_AREA, odir, NULL, NULL))
        return err_set(err, errlen, ERR_INVALID, "path too long");
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : err_set(err, errlen, ERR_IO, "%s: %s", dir, strerror(errno));
    for (struct dirent *de; (de = readdir(d));) {
        if (!upload_name_valid(de->d_name)) continue;
        if (*n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            struct upload_info *nv = realloc(v, nc * sizeof *v);
            if (!nv) {
                closedir(d);
                free(v);
                *n = 0;
                return err_set(err, errlen, ERR_NOMEM, "out of memory");
            }
            v = nv;
            cap = nc;
        }
        char e2[256];
        if (read_info(s, owner ? owner : "", odir, de->d_name, &v[*n], e2, sizeof e2) == 0) (*n)++;
    }
    closedir(d);
    if (*n) qsort(v, *n, sizeof *v, by_newest);
    *out = v;
    if (!*n) {
        free(v);
        *out = NULL;
    }
    return 0;
}

int upload_get(struct store *s, const char *owner, const char *name, struct upload_info *info,
               char *err, size_t errlen)
{
    char odir[UPLOAD_OWNER_MAX + 1];
    if (!upload_name_valid(name))
        return err_set(err, errlen, ERR_INVALID, "'%s' is not an upload name", name);
    if (owner_dir(owner, odir)) return err_set(err, errlen, ERR_NOTFOUND, "no upload '%s'", name);
    return read_info(s, owner ? owner : "", odir, name, info, err, errlen);
}

int upload_remove(struct store *s, const char *owner, const char *name, char *err, size_t errlen)
{
    char odir[UPLOAD_OWNER_MAX + 1], path[PATH_MAX], meta[PATH_MAX], dir[PATH_MAX];
    struct stat st;
    int rc = 0, lockfd;

    if (!upload_name_valid(name))
        return err_set(err, errlen, ERR_INVALID, "'%s' is not an upload name", name);
    if (owner_dir(owner, odir)) return err_set(err, errlen, ERR_NOTFOUND, "no upload '%s'", name);
    if (place(path, sizeof path, s, ROOT_AREA, odir, name, NULL) ||
        place(meta, sizeof meta, s, META_AREA, odir, name, ".json") ||
        place(dir, sizeof dir, s, ROOT_AREA, odir, NULL, NULL))
        return err_set(err, errlen, ERR_INVALID, "path too long");
    if ((lockfd = lock_owner(s, odir, err, errlen)) < 0) return lockfd;
    if (lstat(path, &st)) {
        rc = err_set(err, errlen, ERR_NOTFOUND, "no upload '%s'", name);
        goto out;
    }
    uint64_t before = store_tree_usage(path);
    if (S_ISDIR(st.st_mode))
        rc = fs_tree_remove(path, err, errlen);
    else if (unlink(path))
        rc = err_set(err, errlen, ERR_IO, "%s: %s", path, strerror(errno));
    unlink(meta);
    fs_fsync_path(dir, err, errlen);
    store_account(s, (int64_t)store_tree_usage(path) - (int64_t)before);
out:
    unlock_owner(lockfd);
    return rc;
}

/* ---- jobs naming uploads ---- */

static int check_owner(const struct upload_scope *sc, const char *real, char *err, size_t errlen)
{
    char root[PATH_MAX], odir[UPLOAD_OWNER_MAX + 1];
    if (sc->admin || place(root, sizeof root, sc->store, ROOT_AREA, NULL, NULL, NULL)) return 0;
    size_t n = strlen(root);
    if (strncmp(real, root, n) || real[n] != '/') return 0; /* not an upload */
    const char *who = real + n + 1;
    size_t len = strcspn(who, "/");
    if (owner_dir(sc->owner, odir) == 0 && strlen(odir) == len && !strncmp(who, odir, len))
        return 0;
    return err_set(err, errlen, ERR_DENIED, "%s is another caller's upload", real);
}

/* A relative path whose first folder is the caller's own uploads folder
 * means the upload, whatever the other roots hold: it is made absolute
 * (in buf) under the uploads root.  Any other path is left as it is, so
 * a token named like a folder of the roots takes nobody's paths. */
static const char *own_upload(const struct upload_scope *sc, const char *path, char *buf, size_t n)
{
    char odir[UPLOAD_OWNER_MAX + 1];
    size_t len = strlen(path);
    if (path[0] == '/' || owner_dir(sc->owner, odir)) return path;
    size_t k = strlen(odir);
    if (len <= k + 1 || strncmp(path, odir, k) || path[k] != '/') return path;
    if (place(buf, n, sc->store, ROOT_AREA, NULL, path, NULL)) return path;
    return buf;
}

int upload_job_resolve(void *ud, const char *field, const char *path, char *out, size_t outlen,
                       char *err, size_t errlen)
{
    const struct upload_scope *sc = ud;
    char buf[PATH_MAX];
    int rc = roots_job_resolve((void *)sc->roots, field, own_upload(sc, path, buf, sizeof buf), out,
                               outlen, err, errlen);
    return rc ? rc : check_owner(sc, out, err, errlen);
}

int upload_model_resolve(void *ud, const char *path, char *out, size_t outlen, char *err,
                         size_t errlen)
{
    const struct upload_scope *sc = ud;
    char buf[PATH_MAX];
    int rc = roots_model_resolve((void *)sc->roots, own_upload(sc, path, buf, sizeof buf), out,
                                 outlen, err, errlen);
    return rc ? rc : check_owner(sc, out, err, errlen);
}
