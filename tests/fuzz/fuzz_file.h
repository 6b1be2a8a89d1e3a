/* fuzz_file.h - what the fuzz targets share: an in-memory file (memfd) for parsers that read a
 * path, and FAIL */
#ifndef PRUNERD_FUZZ_FILE_H
#define PRUNERD_FUZZ_FILE_H

#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/*
 * The parsers take paths; a memfd seen through /proc/self/fd/N is a regular
 * file with no disk behind it and nothing to clean up.  Each target keeps
 * one per file it needs for the life of the process (no mutable state
 * beyond that: libFuzzer runs inputs one at a time).
 */
struct fuzz_file {
    int fd;
    char path[32];
};

/* A broken promise of the parser under test: says which, and crashes, so
 * libFuzzer keeps the input. */
#define FAIL(...)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fputc('\n', stderr);                                                                       \
        abort();                                                                                   \
    } while (0)

/* Makes f; aborts on failure (the target cannot run without it). */
static inline void fuzz_file_open(struct fuzz_file *f, const char *name)
{
    f->fd = memfd_create(name, 0);
    if (f->fd < 0) {
        perror("memfd_create");
        abort();
    }
    snprintf(f->path, sizeof f->path, "/proc/self/fd/%d", f->fd);
}

/* Replaces f's content with data[0..n); returns f->path. */
static inline const char *fuzz_file_set(struct fuzz_file *f, const void *data, size_t n)
{
    if (ftruncate(f->fd, 0) != 0 || (n && pwrite(f->fd, data, n, 0) != (ssize_t)n)) {
        perror("fuzz_file_set");
        abort();
    }
    return f->path;
}

#endif
