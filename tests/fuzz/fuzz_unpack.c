/* fuzz_unpack.c - libFuzzer target: unpack_archive on any bytes, as tar and as zip; nothing but
 * regular files and folders may appear, all inside the destination, and the counts must be true */
#include <dirent.h>
#include <ftw.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "fsutil.h"
#include "unpack.h"

#include "fuzz_file.h"

static struct fuzz_file in_file;
static char top[PATH_MAX]; /* holds only dest */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_file_open(&in_file, "archive");
    snprintf(top, sizeof top, "%s/prunerd-fuzz-unpack-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(top)) {
        perror("mkdtemp");
        abort();
    }
    return 0;
}

static uint64_t walked_files, walked_bytes, walked_other;

static int walk(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)path;
    (void)ftw;
    if (flag == FTW_F && S_ISREG(st->st_mode)) {
        walked_files++;
        walked_bytes += (uint64_t)st->st_size;
    } else if (flag != FTW_D && flag != FTW_DP) {
        walked_other++; /* a link, device, fifo... */
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char dest[PATH_MAX + 8], entry[256], err[512];
    struct unpack_limits lim = {1 << 20, 200};
    for (int zip = 0; zip < 2; zip++) {
        uint64_t files = 0, bytes = 0;
        if (ftruncate(in_file.fd, 0) || pwrite(in_file.fd, data, size, 0) != (ssize_t)size)
            FAIL("cannot write the input");
        snprintf(dest, sizeof dest, "%s/d", top);
        if (mkdir(dest, 0755)) FAIL("mkdir %s", dest);
        int rc = unpack_archive(in_file.path, zip ? UNPACK_ZIP : UNPACK_TAR, dest, &lim, &files,
                                &bytes, entry, sizeof entry, err, sizeof err);
        if (rc != 0 && rc != ERR_DENIED && rc != ERR_FORMAT)
            FAIL("unpack_archive: unexpected code %d: %s", rc, err);
        if (rc == ERR_DENIED && !strstr(err, entry))
            FAIL("the refusal does not name '%s': %s", entry, err);
        walked_files = walked_bytes = walked_other = 0;
        nftw(dest, walk, 16, FTW_PHYS);
        if (walked_other) FAIL("something other than files and folders was unpacked");
        if (walked_bytes > lim.max_bytes)
            FAIL("%llu bytes unpacked, over the limit", (unsigned long long)walked_bytes);
        if (rc == 0 && (walked_files != files || walked_bytes != bytes))
            FAIL("counts %llu files / %llu bytes, found %llu / %llu", (unsigned long long)files,
                 (unsigned long long)bytes, (unsigned long long)walked_files,
                 (unsigned long long)walked_bytes);
        DIR *d = opendir(top);
        int n = 0;
        for (struct dirent *de; d && (de = readdir(d));)
            if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) n++;
        if (d) closedir(d);
        if (n != 1) FAIL("something was written beside the destination");
        if (fs_tree_remove(dest, err, sizeof err)) FAIL("cleaning up: %s", err);
    }
    return 0;
}
