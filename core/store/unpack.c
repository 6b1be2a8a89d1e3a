/* unpack.c - tar and zip archives unpacked with libarchive, refusing what could escape */
#include "unpack.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "err.h"

#define MAX_DEPTH 64

static int refuse(char *entry, size_t entrylen, const char *path, char *err, size_t errlen,
                  const char *why)
{
    snprintf(entry, entrylen, "%s", path);
    return err_set(err, errlen, ERR_DENIED, "archive entry '%s': %s", path, why);
}

/* Splits path into its components (in buf), dropping "" and ".".  Returns
 * the count, or -1 with why set. */
static int split_path(const char *path, char *buf, size_t buflen, char *parts[MAX_DEPTH],
                      const char **why)
{
    int n = 0;
    if (path[0] == '/') {
        *why = "an absolute path";
        return -1;
    }
    if (strchr(path, '\\')) {
        *why = "a backslash in the path";
        return -1;
    }
    if (strlen(path) >= buflen) {
        *why = "a path too long";
        return -1;
    }
    strcpy(buf, path);
    for (char *save = NULL, *c = strtok_r(buf, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
        if (!strcmp(c, ".")) continue;
        if (!strcmp(c, "..")) {
            *why = "a '..' component";
            return -1;
        }
        if (n == MAX_DEPTH) {
            *why = "more than 64 folders deep";
            return -1;
        }
        parts[n++] = c;
    }
    return n;
}

/* Opens (making it when missing) the folder parts[0..n) under dirfd, one
 * level at a time and never through a link.  -1 with errno on failure. */
static int open_dirs(int dirfd, char *parts[], int n)
{
    int fd = dup(dirfd);
    for (int i = 0; fd >= 0 && i < n; i++) {
        if (mkdirat(fd, parts[i], 0755) && errno != EEXIST) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
        int next = openat(fd, parts[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int e = errno;
        close(fd);
        errno = e;
        fd = next;
    }
    return fd;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Writes the current entry's data to name in dirfd. */
static int write_file(struct archive *a, int dirfd, const char *name, const char *path,
                      const struct unpack_limits *lim, uint64_t *bytes, char *entry,
                      size_t entrylen, char *err, size_t errlen)
{
    char buf[65536];
    int rc = 0;
    int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) {
        if (errno == EEXIST)
            return refuse(entry, entrylen, path, err, errlen, "it comes twice in the archive");
        if (errno == ENOSPC) return err_set(err, errlen, ERR_NOSPACE, "%s: disk full", path);
        return err_set(err, errlen, ERR_IO, "%s: %s", path, strerror(errno));
    }
    for (;;) {
        la_ssize_t got = archive_read_data(a, buf, sizeof buf);
        if (got == 0) break;
        if (got < 0) {
            rc = err_set(err, errlen, ERR_FORMAT, "archive entry '%s': %s", path,
                         archive_error_string(a) ? archive_error_string(a) : "unreadable");
            break;
        }
        if ((uint64_t)got > lim->max_bytes - *bytes) {
            char why[96];
            snprintf(why, sizeof why, "more than %llu bytes once unpacked",
                     (unsigned long long)lim->max_bytes);
            rc = refuse(entry, entrylen, path, err, errlen, why);
            break;
        }
        *bytes += (uint64_t)got;
        if (write_all(fd, buf, (size_t)got)) {
            rc = err_set(err, errlen, errno == ENOSPC ? ERR_NOSPACE : ERR_IO, "%s: %s", path,
                         strerror(errno));
            break;
        }
    }
    if (!rc && fsync(fd)) rc = err_set(err, errlen, ERR_IO, "%s: fsync: %s", path, strerror(errno));
    close(fd);
    if (!rc && fsync(dirfd))
        rc = err_set(err, errlen, ERR_IO, "%s: fsync of its folder: %s", path, strerror(errno));
    return rc;
}

/* An entry's name and type, before anything is written: 0, or ERR_DENIED. */
static int check_entry(struct archive_entry *ent, char *entry, size_t entrylen, char *err,
                       size_t errlen)
{
    const char *path = archive_entry_pathname(ent);
    char buf[PATH_MAX], *parts[MAX_DEPTH];
    const char *why = NULL;

    if (!path || !*path) return refuse(entry, entrylen, "", err, errlen, "no name");
    if (archive_entry_hardlink(ent))
        return refuse(entry, entrylen, path, err, errlen, "a hard link");
    if (archive_entry_symlink(ent) || archive_entry_filetype(ent) == AE_IFLNK)
        return refuse(entry, entrylen, path, err, errlen, "a symlink");
    mode_t type = archive_entry_filetype(ent);
    if (type != AE_IFREG && type != AE_IFDIR)
        return refuse(entry, entrylen, path, err, errlen, "a device, fifo or socket");
    int n = split_path(path, buf, sizeof buf, parts, &why);
    if (n < 0) return refuse(entry, entrylen, path, err, errlen, why);
    if (n == 0 && type != AE_IFDIR) return refuse(entry, entrylen, path, err, errlen, "no name");
    return 0;
}

static int unpack_entry(struct archive *a, struct archive_entry *ent, int destfd,
                        const struct unpack_limits *lim, uint64_t *files, uint64_t *bytes,
                        char *entry, size_t entrylen, char *err, size_t errlen)
{
    const char *path = archive_entry_pathname(ent);
    char buf[PATH_MAX], *parts[MAX_DEPTH];
    const char *why = NULL;
    int rc = check_entry(ent, entry, entrylen, err, errlen);
    if (rc) return rc;
    mode_t type = archive_entry_filetype(ent);
    int n = split_path(path, buf, sizeof buf, parts, &why);
    if (n <= 0) return 0; /* "./" */
    int dirfd = open_dirs(destfd, parts, type == AE_IFDIR ? n : n - 1);
    if (dirfd < 0) {
        if (errno == ENOTDIR || errno == ELOOP || errno == EEXIST)
            return refuse(entry, entrylen, path, err, errlen, "a file is where its folder is");
        return err_set(err, errlen, errno == ENOSPC ? ERR_NOSPACE : ERR_IO, "%s: %s", path,
                       strerror(errno));
    }
    if (type == AE_IFREG) {
        rc = write_file(a, dirfd, parts[n - 1], path, lim, bytes, entry, entrylen, err, errlen);
        if (!rc) (*files)++;
    }
    close(dirfd);
    return rc;
}

static struct archive *open_archive(const char *path, enum unpack_format format, char *err,
                                    size_t errlen, int *rc)
{
    struct archive *a = archive_read_new();
    *rc = 0;
    if (!a) {
        *rc = err_set(err, errlen, ERR_NOMEM, "out of memory");
        return NULL;
    }
    if (format == UNPACK_ZIP) {
        archive_read_support_format_zip_seekable(a);
    } else {
        archive_read_support_format_tar(a);
        archive_read_support_filter_gzip(a);
        archive_read_support_filter_bzip2(a);
        archive_read_support_filter_xz(a);
        archive_read_support_filter_zstd(a);
    }
    if (archive_read_open_filename(a, path, 65536) != ARCHIVE_OK) {
        *rc = err_set(err, errlen, ERR_FORMAT, "not a readable %s archive: %s",
                      format == UNPACK_ZIP ? "zip" : "tar",
                      archive_error_string(a) ? archive_error_string(a) : "unknown format");
        archive_read_free(a);
        return NULL;
    }
    return a;
}

/* The next entry: 1, 0 at the end, or ERR_FORMAT. */
static int next_entry(struct archive *a, enum unpack_format format, struct archive_entry **ent,
                      char *err, size_t errlen)
{
    int r = archive_read_next_header(a, ent);
    if (r == ARCHIVE_EOF) return 0;
    if (r == ARCHIVE_OK || r == ARCHIVE_WARN) return 1;
    return err_set(err, errlen, ERR_FORMAT, "not a readable %s archive: %s",
                   format == UNPACK_ZIP ? "zip" : "tar",
                   archive_error_string(a) ? archive_error_string(a) : "unreadable");
}

/* The first pass: every entry's name and type, their count, and the sizes
 * their headers give, before anything is written. */
static int scan(const char *archive, enum unpack_format format, const struct unpack_limits *lim,
                char *entry, size_t entrylen, char *err, size_t errlen)
{
    struct archive_entry *ent;
    uint64_t count = 0, declared = 0;
    int rc, more;
    struct archive *a = open_archive(archive, format, err, errlen, &rc);
    if (!a) return rc;
    while ((more = next_entry(a, format, &ent, err, errlen)) == 1) {
        const char *p = archive_entry_pathname(ent);
        char why[96];
        if (++count > lim->max_entries) {
            snprintf(why, sizeof why, "more than %llu entries",
                     (unsigned long long)lim->max_entries);
            rc = refuse(entry, entrylen, p ? p : "", err, errlen, why);
            break;
        }
        if ((rc = check_entry(ent, entry, entrylen, err, errlen))) break;
        if (archive_entry_size_is_set(ent) && archive_entry_size(ent) > 0) {
            uint64_t size = (uint64_t)archive_entry_size(ent);
            if (size > lim->max_bytes - declared) {
                snprintf(why, sizeof why, "more than %llu bytes once unpacked",
                         (unsigned long long)lim->max_bytes);
                rc = refuse(entry, entrylen, p ? p : "", err, errlen, why);
                break;
            }
            declared += size;
        }
    }
    if (!rc && more < 0) rc = more;
    if (!rc && count == 0) rc = err_set(err, errlen, ERR_FORMAT, "the archive is empty");
    archive_read_free(a);
    return rc;
}

int unpack_archive(const char *archive, enum unpack_format format, const char *dest,
                   const struct unpack_limits *lim, uint64_t *files, uint64_t *bytes, char *entry,
                   size_t entrylen, char *err, size_t errlen)
{
    struct archive_entry *ent;
    int rc, more, destfd;

    *files = *bytes = 0;
    entry[0] = '\0';
    if ((rc = scan(archive, format, lim, entry, entrylen, err, errlen))) return rc;
    /* The second pass writes, counting the bytes as they come (a header's
     * size may lie, or be missing). */
    struct archive *a = open_archive(archive, format, err, errlen, &rc);
    if (!a) return rc;
    if ((destfd = open(dest, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
        rc = err_set(err, errlen, ERR_IO, "%s: %s", dest, strerror(errno));
        archive_read_free(a);
        return rc;
    }
    while ((more = next_entry(a, format, &ent, err, errlen)) == 1)
        if ((rc = unpack_entry(a, ent, destfd, lim, files, bytes, entry, entrylen, err, errlen)))
            break;
    if (!rc && more < 0) rc = more;
    if (!rc && fsync(destfd))
        rc = err_set(err, errlen, ERR_IO, "%s: fsync: %s", dest, strerror(errno));
    close(destfd);
    archive_read_free(a);
    return rc;
}
