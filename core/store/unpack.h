/* unpack.h - tar and zip archives unpacked with libarchive, refusing what could escape */
#ifndef PRUNERD_UNPACK_H
#define PRUNERD_UNPACK_H

#include <stddef.h>
#include <stdint.h>

/*
 * Only regular files and folders are unpacked.  An entry is refused, and
 * the unpacking stops, when its path is absolute, has a ".." component or
 * a backslash, or is empty; when it is a symlink, a hard link, a device, a
 * fifo or a socket; when it comes a second time (or a file is where a
 * folder should be); when it is past max_entries; or when the bytes
 * written so far pass max_bytes (whatever the headers claim).  Nothing is
 * ever written outside dest: no link is made, and each path is checked
 * before it is opened.  Files get mode 0644 and folders 0755, whatever the
 * archive says.  The caller removes dest on failure.
 */
enum unpack_format { UNPACK_TAR, UNPACK_ZIP }; /* tar: plain, gzip, bzip2, xz or zstd */

struct unpack_limits {
    uint64_t max_bytes;
    uint64_t max_entries;
};

/* Unpacks the archive file into the existing, empty folder dest.  Returns
 * 0 with the file count and their bytes; ERR_DENIED with the entry's path
 * in entry for a refused entry; ERR_FORMAT for what is not such an
 * archive; ERR_IO (or ERR_NOSPACE) writing; a message in err. */
int unpack_archive(const char *archive, enum unpack_format format, const char *dest,
                   const struct unpack_limits *lim, uint64_t *files, uint64_t *bytes, char *entry,
                   size_t entrylen, char *err, size_t errlen);

#endif
