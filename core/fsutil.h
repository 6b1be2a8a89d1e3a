/* fsutil.h - files written whole or not at all, sha256 of files, disk space */
#ifndef PRUNERD_FSUTIL_H
#define PRUNERD_FSUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * Replaceable system calls, so tests can make fsync or write fail (disk
 * full, I/O error).  fs_hooks is read on every call; tests set it before
 * starting threads and reset it after (NULL members mean the real call).
 */
struct fs_hooks {
    int (*fsync)(int fd);
    ssize_t (*write)(int fd, const void *buf, size_t n);
};
extern struct fs_hooks fs_hooks;

/* A temporary name beside final: DIR/.BASE.tmp.PID.RANDOM. */
int fs_tmp_path(const char *final, char *tmp, size_t tmplen, char *err, size_t errlen);

/* fsyncs tmp, renames it to final and fsyncs the folder.  On failure tmp
 * is removed and final left as it was. */
int fs_commit(const char *tmp, const char *final, char *err, size_t errlen);

/* fsyncs a file or folder. */
int fs_fsync_path(const char *path, char *err, size_t errlen);

/* Removes what a killed writer left in dir: files and folders named like
 * fs_tmp_path's (.NAME.tmp.*).  Returns how many were removed, or a
 * negative ERR_*. */
int fs_remove_stale_tmp(const char *dir, char *err, size_t errlen);

/* Writes data to path through a temporary name and fs_commit. */
int fs_write_atomic(const char *path, const void *data, size_t n, char *err, size_t errlen);

/* Reads path into a new NUL-terminated buffer (caller frees *buf), all of
 * it when max_lines is 0, else until it holds max_lines newlines.  A
 * missing file is ERR_NOTFOUND, a folder ERR_IO. */
int fs_read_file(const char *path, size_t max_lines, char **buf, size_t *len, char *err,
                 size_t errlen);

/* sha256 of a file as 64 lowercase hex digits, and its size. */
int fs_sha256_file(const char *path, char hex[65], int64_t *bytes, char *err, size_t errlen);

/* Removes dir and everything in it, not following links: 0 (also when it
 * was not there) or ERR_IO with a message. */
int fs_tree_remove(const char *dir, char *err, size_t errlen);

/* mkdir -p with mode 0755. */
int fs_mkdir_p(const char *path, char *err, size_t errlen);

/* Bytes free to unprivileged users on the file system holding path. */
int fs_free_bytes(const char *path, int64_t *bytes, char *err, size_t errlen);

/* Seconds since the epoch, and a monotonic clock, as doubles. */
double fs_now(void);
double fs_monotonic(void);

#endif
