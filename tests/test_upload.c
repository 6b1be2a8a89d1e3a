/* test_upload.c - uploads: names, whole-or-nothing writes, replays, limits, archives, owners */
#include "upload.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <openssl/evp.h>

#include "ct.h"
#include "err.h"
#include "fsutil.h"
#include "roots.h"
#include "store.h"

static char base[PATH_MAX];

/* Entries in a folder, not counting "." and ".."; -1 when it is missing. */
static int count_dir(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    if (!d) return -1;
    for (struct dirent *de; (de = readdir(d));)
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) n++;
    closedir(d);
    return n;
}

static int partial_count(void)
{
    char dir[PATH_MAX + 32];
    snprintf(dir, sizeof dir, "%s/uploads.partial", base);
    return count_dir(dir);
}

static void sha_hex(const void *data, size_t n, char hex[65])
{
    unsigned char md[32];
    unsigned int len = 0;
    EVP_Digest(data, n, md, &len, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

/* One upload of data, written in pieces of 1000 bytes.  Returns the code. */
static int send(struct store *s, const char *owner, const char *name, const void *data, size_t n,
                enum upload_unpack unpack, int replace, const char *sha, uint64_t limit,
                uint64_t quota, struct upload_info *info, int *replayed, struct upload_error *e)
{
    struct upload_params p = {.owner = owner,
                              .name = name,
                              .unpack = unpack,
                              .replace = replace,
                              .sha256 = sha,
                              .limit = limit,
                              .quota = quota};
    struct upload *u = NULL;
    int rc = upload_begin(s, &p, &u, e);
    if (rc) return rc;
    for (size_t off = 0; off < n; off += 1000) {
        size_t k = n - off < 1000 ? n - off : 1000;
        if ((rc = upload_write(u, (const char *)data + off, k, e))) break;
    }
    return upload_finish(u, info, replayed, e); /* reports the write's error too */
}

static int send_file(struct store *s, const char *owner, const char *name, const char *text,
                     struct upload_info *info)
{
    struct upload_error e;
    int replayed;
    return send(s, owner, name, text, strlen(text), UPLOAD_RAW, 0, NULL, 1 << 20, 0, info,
                &replayed, &e);
}

/* ---- archives made in memory with libarchive ---- */

struct entry_spec {
    const char *path;
    mode_t type; /* AE_IFREG, AE_IFDIR, AE_IFLNK, AE_IFCHR */
    const char *data;
    const char *link; /* symlink target, or hard link target */
    int hard;
    int64_t size; /* -1: strlen(data) */
};

static void *make_archive(int zip, int gzip, const struct entry_spec *es, size_t n, size_t *len)
{
    size_t cap = 1 << 24;
    char *buf = malloc(cap);
    struct archive *a = archive_write_new();
    if (zip)
        archive_write_set_format_zip(a);
    else
        archive_write_set_format_pax_restricted(a);
    if (gzip) archive_write_add_filter_gzip(a);
    archive_write_open_memory(a, buf, cap, len);
    for (size_t i = 0; i < n; i++) {
        struct archive_entry *ent = archive_entry_new();
        archive_entry_set_pathname(ent, es[i].path);
        archive_entry_set_filetype(ent, es[i].type);
        archive_entry_set_perm(ent, 0644);
        if (es[i].link && es[i].hard) archive_entry_set_hardlink(ent, es[i].link);
        if (es[i].link && !es[i].hard) archive_entry_set_symlink(ent, es[i].link);
        int64_t size = es[i].type == AE_IFREG && es[i].data ? (int64_t)strlen(es[i].data) : 0;
        if (es[i].size >= 0 && es[i].type == AE_IFREG && !es[i].data) size = es[i].size;
        archive_entry_set_size(ent, size);
        archive_write_header(a, ent);
        if (es[i].data) archive_write_data(a, es[i].data, strlen(es[i].data));
        if (!es[i].data && size > 0) {
            static char zeros[65536];
            for (int64_t off = 0; off < size; off += (int64_t)sizeof zeros)
                archive_write_data(a, zeros,
                                   (size_t)(size - off < (int64_t)sizeof zeros
                                                ? size - off
                                                : (int64_t)sizeof zeros));
        }
        archive_entry_free(ent);
    }
    archive_write_close(a);
    archive_write_free(a);
    return buf;
}

/* Sends an archive that must be refused as unsafe, naming entry, with
 * nothing unpacked or left behind. */
static void refused(struct store *s, const char *what, int zip, int gzip,
                    const struct entry_spec *es, size_t n, const char *entry, uint64_t limit)
{
    size_t len = 0;
    void *buf = make_archive(zip, gzip, es, n, &len);
    struct upload_info info;
    struct upload_error e;
    int replayed;
    char dir[PATH_MAX + 64];
    int rc = send(s, "alice", "bad", buf, len, zip ? UPLOAD_ZIP : UPLOAD_TAR, 0, NULL, limit, 0,
                  &info, &replayed, &e);
    CHECK(rc == ERR_DENIED && e.fault == UPLOAD_FAULT_UNSAFE, "%s: refused as unsafe (rc %d, %s)",
          what, rc, e.message);
    CHECK(!strcmp(e.entry, entry), "%s: names entry '%s', got '%s'", what, entry, e.entry);
    CHECK(strstr(e.message, entry) != NULL, "%s: the message names the entry: %s", what, e.message);
    snprintf(dir, sizeof dir, "%s/uploads/alice/bad", base);
    CHECK(access(dir, F_OK) != 0, "%s: nothing unpacked at %s", what, dir);
    CHECK_INT(partial_count(), 0);
    free(buf);
}

int main(void)
{
    char tmpl[] = "/tmp/prunerd-test-upload-XXXXXX", root[PATH_MAX], err[512], path[PATH_MAX + 64];
    struct store *s = NULL;
    struct upload_info info, again;
    struct upload_error e;
    int replayed = -1, rc;

    if (!mkdtemp(tmpl) || !realpath(tmpl, base)) {
        CHECK(0, "mkdtemp");
        return ct_done("test_upload");
    }
    CHECK_INT(store_open(base, &s, err, sizeof err), 0);
    CHECK_INT(upload_prepare(s, root, sizeof root, err, sizeof err), 0);
    snprintf(path, sizeof path, "%s/uploads", base);
    CHECK(!strcmp(root, path), "the uploads root is %s, got %s", path, root);
    CHECK_INT(partial_count(), 0);

    /* Names. */
    CHECK(upload_name_valid("bert20250521.pt"), "a plain name");
    CHECK(upload_name_valid("A-b_c.d"), "letters, digits, . _ -");
    CHECK(upload_name_valid(".hidden"), "a leading dot is allowed");
    const char *bad_names[] = {"", ".", "..", "a/b", "a b", "a%2Fb", "é", "a\\b", NULL};
    for (int i = 0; bad_names[i]; i++)
        CHECK(!upload_name_valid(bad_names[i]), "'%s' refused", bad_names[i]);
    char long_name[200];
    memset(long_name, 'x', 129);
    long_name[129] = '\0';
    CHECK(!upload_name_valid(long_name), "129 characters refused");
    long_name[128] = '\0';
    CHECK(upload_name_valid(long_name), "128 characters allowed");
    rc = send(s, "alice", "..", "x", 1, UPLOAD_RAW, 0, NULL, 100, 0, &info, &replayed, &e);
    CHECK(rc == ERR_INVALID && e.fault == UPLOAD_FAULT_NAME, "'..' refused at begin: %d", rc);
    rc = send(s, "..", "x", "x", 1, UPLOAD_RAW, 0, NULL, 100, 0, &info, &replayed, &e);
    CHECK(rc == ERR_DENIED && e.fault == UPLOAD_FAULT_OWNER, "owner '..' refused: %d", rc);

    /* A file: in pieces, hashed, in place, counted. */
    size_t n = 250000;
    char *data = malloc(n), sha[65];
    for (size_t i = 0; i < n; i++)
        data[i] = (char)(i * 31 + 7);
    sha_hex(data, n, sha);
    uint64_t used0 = store_used(s);
    rc = send(s, "alice", "w.bin", data, n, UPLOAD_RAW, 0, sha, 1 << 20, 0, &info, &replayed, &e);
    CHECK(rc == 0 && !replayed, "a new upload: rc %d (%s)", rc, e.message);
    CHECK(!strcmp(info.sha256, sha), "its sha256: %s", info.sha256);
    CHECK_INT(info.bytes, n);
    CHECK_INT(info.files, 1);
    CHECK_INT(info.kind, UPLOAD_FILE);
    snprintf(path, sizeof path, "%s/uploads/alice/w.bin", base);
    CHECK(!strcmp(info.path, path), "path %s", info.path);
    CHECK(!strcmp(info.relpath, "alice/w.bin"), "relpath %s", info.relpath);
    char got[65];
    int64_t gotn = 0;
    CHECK(fs_sha256_file(path, got, &gotn, err, sizeof err) == 0 && !strcmp(got, sha),
          "the file on disk is the body");
    CHECK(store_used(s) >= used0 + n, "the quota's total grew by the file: %llu -> %llu",
          (unsigned long long)used0, (unsigned long long)store_used(s));
    CHECK_INT(partial_count(), 0);

    /* The same content again: a replay; other content: a conflict; replace. */
    rc = send(s, "alice", "w.bin", data, n, UPLOAD_RAW, 0, NULL, 1 << 20, 0, &again, &replayed, &e);
    CHECK(rc == 0 && replayed == 1, "same content: a replay (rc %d)", rc);
    CHECK(again.created == info.created, "a replay changes nothing");
    data[0] ^= 1;
    rc = send(s, "alice", "w.bin", data, n, UPLOAD_RAW, 0, NULL, 1 << 20, 0, &again, &replayed, &e);
    CHECK(rc == ERR_CONFLICT && e.fault == UPLOAD_FAULT_EXISTS, "other content: 409 (rc %d)", rc);
    CHECK(fs_sha256_file(path, got, &gotn, err, sizeof err) == 0 && !strcmp(got, sha),
          "the first content stays");
    uint64_t used1 = store_used(s);
    rc = send(s, "alice", "w.bin", data, 1000, UPLOAD_RAW, 1, NULL, 1 << 20, 0, &again, &replayed,
              &e);
    CHECK(rc == 0 && !replayed && again.bytes == 1000, "replace: rc %d bytes %llu", rc,
          (unsigned long long)again.bytes);
    CHECK(store_used(s) < used1, "replacing with less gives bytes back");
    CHECK_INT(partial_count(), 0);

    /* Checksums. */
    char upper[65];
    sha_hex(data, 5000, sha);
    for (int i = 0; i < 65; i++)
        upper[i] = (char)(sha[i] >= 'a' && sha[i] <= 'f' ? sha[i] - 32 : sha[i]);
    rc = send(s, "alice", "c.bin", data, 5000, UPLOAD_RAW, 0, upper, 1 << 20, 0, &info, &replayed,
              &e);
    CHECK(rc == 0, "an upper-case Content-SHA256 matches: %d %s", rc, e.message);
    rc =
        send(s, "alice", "d.bin", data, 4999, UPLOAD_RAW, 0, sha, 1 << 20, 0, &info, &replayed, &e);
    CHECK(rc == ERR_CONFLICT && e.fault == UPLOAD_FAULT_CHECKSUM, "a mismatch: rc %d", rc);
    snprintf(path, sizeof path, "%s/uploads/alice/d.bin", base);
    CHECK(access(path, F_OK) != 0, "nothing kept after a mismatch");
    rc =
        send(s, "alice", "d.bin", data, 10, UPLOAD_RAW, 0, "abc", 1 << 20, 0, &info, &replayed, &e);
    CHECK(rc == ERR_INVALID && e.fault == UPLOAD_FAULT_CHECKSUM, "a malformed sha256: %d", rc);
    CHECK_INT(partial_count(), 0);

    /* The limit and the quota: announced, and found while streaming. */
    struct upload_params p = {
        .owner = "alice", .name = "big", .limit = 1000, .length = 1001, .length_known = 1};
    struct upload *u = NULL;
    rc = upload_begin(s, &p, &u, &e);
    CHECK(rc == ERR_INVALID && e.fault == UPLOAD_FAULT_TOO_LARGE && !u, "announced over: %d", rc);
    rc = send(s, "alice", "big", data, 1001, UPLOAD_RAW, 0, NULL, 1000, 0, &info, &replayed, &e);
    CHECK(rc == ERR_INVALID && e.fault == UPLOAD_FAULT_TOO_LARGE, "streamed over: %d", rc);
    p = (struct upload_params){.owner = "alice",
                               .name = "big",
                               .limit = 1 << 20,
                               .quota = store_used(s) + 100,
                               .length = 101,
                               .length_known = 1};
    rc = upload_begin(s, &p, &u, &e);
    CHECK(rc == ERR_NOSPACE && e.fault == UPLOAD_FAULT_QUOTA, "announced over the quota: %d", rc);
    rc = send(s, "alice", "big", data, 5000, UPLOAD_RAW, 0, NULL, 1 << 20, store_used(s) + 100,
              &info, &replayed, &e);
    CHECK(rc == ERR_NOSPACE && e.fault == UPLOAD_FAULT_QUOTA, "streamed over the quota: %d", rc);
    snprintf(path, sizeof path, "%s/uploads/alice/big", base);
    CHECK(access(path, F_OK) != 0, "nothing kept over the limits");
    CHECK_INT(partial_count(), 0);

    /* Abort: what was written goes. */
    p = (struct upload_params){.owner = "alice", .name = "cut", .limit = 1 << 20};
    CHECK_INT(upload_begin(s, &p, &u, &e), 0);
    CHECK_INT(upload_write(u, data, 3000, &e), 0);
    CHECK_INT(partial_count(), 1);
    upload_abort(u);
    CHECK_INT(partial_count(), 0);

    /* Cleaning: a file held by its writer stays; one nobody holds goes. */
    p.name = "held";
    CHECK_INT(upload_begin(s, &p, &u, &e), 0);
    snprintf(path, sizeof path, "%s/uploads.partial/alice.deadbeefdeadbeef", base);
    FILE *f = fopen(path, "w");
    if (f) fclose(f);
    snprintf(path, sizeof path, "%s/uploads.partial/alice.deadbeefdeadbeef.d", base);
    mkdir(path, 0755);
    CHECK_INT(partial_count(), 3);
    CHECK_INT(upload_clean_partial(s), 1); /* the file nobody holds (its folder with it) */
    CHECK_INT(partial_count(), 1);         /* the held one */
    upload_abort(u);
    CHECK_INT(partial_count(), 0);

    /* Listing (newest first), getting, removing. */
    CHECK_INT(send_file(s, "bob", "one.txt", "1", &info), 0);
    usleep(20000);
    CHECK_INT(send_file(s, "bob", "two.txt", "22", &info), 0);
    struct upload_info *v = NULL;
    size_t nv = 0;
    CHECK_INT(upload_list(s, "bob", &v, &nv, err, sizeof err), 0);
    CHECK(nv == 2 && !strcmp(v[0].name, "two.txt") && !strcmp(v[1].name, "one.txt"),
          "bob's two, newest first (%zu)", nv);
    free(v);
    CHECK_INT(upload_list(s, "carol", &v, &nv, err, sizeof err), 0);
    CHECK_INT(nv, 0);
    CHECK_INT(upload_get(s, "bob", "one.txt", &info, err, sizeof err), 0);
    CHECK_INT(info.bytes, 1);
    CHECK_INT(upload_get(s, "alice", "one.txt", &info, err, sizeof err), ERR_NOTFOUND);
    uint64_t used2 = store_used(s);
    CHECK_INT(upload_remove(s, "bob", "one.txt", err, sizeof err), 0);
    CHECK(store_used(s) < used2, "a removal gives its bytes back");
    CHECK_INT(upload_get(s, "bob", "one.txt", &info, err, sizeof err), ERR_NOTFOUND);
    CHECK_INT(upload_remove(s, "bob", "one.txt", err, sizeof err), ERR_NOTFOUND);

    /* Auth off: the anonymous folder. */
    CHECK_INT(send_file(s, "", "anon.txt", "a", &info), 0);
    CHECK(strstr(info.path, "/uploads/anonymous/anon.txt") && !strcmp(info.owner, ""),
          "auth off: %s", info.path);

    /* Metadata worked out again: a file placed by hand, or changed. */
    snprintf(path, sizeof path, "%s/uploads/bob/hand.txt", base);
    f = fopen(path, "w");
    if (f) {
        fputs("by hand", f);
        fclose(f);
    }
    sha_hex("by hand", 7, sha);
    CHECK(upload_get(s, "bob", "hand.txt", &info, err, sizeof err) == 0 &&
              !strcmp(info.sha256, sha) && info.bytes == 7,
          "a file placed by hand: sha256 from the file (%s)", info.sha256);
    snprintf(path, sizeof path, "%s/uploads/bob/two.txt", base);
    f = fopen(path, "w");
    if (f) {
        fputs("changed!", f);
        fclose(f);
    }
    sha_hex("changed!", 8, sha);
    CHECK(upload_get(s, "bob", "two.txt", &info, err, sizeof err) == 0 &&
              !strcmp(info.sha256, sha) && info.bytes == 8,
          "a changed file: its metadata is not trusted (%s)", info.sha256);

    /* Owners: a job may name its owner's uploads, not another's. */
    struct roots *r = roots_create();
    CHECK_INT(roots_add(r, ROOTS_MODEL, root, err, sizeof err), 0);
    CHECK_INT(roots_add(r, ROOTS_DATA, root, err, sizeof err), 0);
    char real[PATH_MAX];
    struct upload_scope alice = {r, s, "alice", 0}, bob = {r, s, "bob", 0}, admin = {r, s, "", 1};
    CHECK_INT(
        upload_job_resolve(&alice, "eval.data", "alice/c.bin", real, sizeof real, err, sizeof err),
        0);
    CHECK_INT(
        upload_job_resolve(&bob, "eval.data", "alice/c.bin", real, sizeof real, err, sizeof err),
        ERR_DENIED);
    snprintf(path, sizeof path, "%s/uploads/alice/c.bin", base);
    CHECK_INT(upload_model_resolve(&bob, path, real, sizeof real, err, sizeof err), ERR_DENIED);
    CHECK_INT(upload_model_resolve(&admin, path, real, sizeof real, err, sizeof err), 0);
    CHECK_INT(upload_job_resolve(&bob, "model", "bob/hand.txt", real, sizeof real, err, sizeof err),
              0);
    /* A caller's own "<owner>/..." means its upload, before the roots; a
     * token named like a folder of the roots takes nobody's paths. */
    char other[PATH_MAX - 64], mine[PATH_MAX + 64];
    snprintf(other, sizeof other, "%.3000s/roots", base);
    mkdir(other, 0755);
    snprintf(path, sizeof path, "%s/alice", other);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/alice/c.bin", other);
    f = fopen(path, "w");
    if (f) fclose(f);
    struct roots *r2 = roots_create();
    CHECK_INT(roots_add(r2, ROOTS_MODEL, other, err, sizeof err), 0);
    CHECK_INT(roots_add(r2, ROOTS_MODEL, root, err, sizeof err), 0);
    struct upload_scope alice2 = {r2, s, "alice", 0}, bob2 = {r2, s, "bob", 0};
    snprintf(mine, sizeof mine, "%s/uploads/alice/c.bin", base);
    CHECK(upload_job_resolve(&alice2, "eval.data", "alice/c.bin", real, sizeof real, err,
                             sizeof err) == 0 &&
              !strcmp(real, mine),
          "alice's alice/c.bin is her upload, not the root's file: %s", real);
    CHECK(upload_job_resolve(&bob2, "eval.data", "alice/c.bin", real, sizeof real, err,
                             sizeof err) == 0 &&
              !strcmp(real, path),
          "bob's alice/c.bin is the root's file: %s", real);
    roots_destroy(r2);
    roots_destroy(r);

    /* Archives: a folder, its one top folder taken as the upload. */
    struct entry_spec good[] = {
        {"m/", AE_IFDIR, NULL, NULL, 0, 0},
        {"m/config.json", AE_IFREG, "{\"a\": 1}", NULL, 0, -1},
        {"m/sub/w.txt", AE_IFREG, "weights", NULL, 0, -1},
    };
    for (int zip = 0; zip < 2; zip++) {
        size_t len = 0;
        void *buf = make_archive(zip, !zip, good, 3, &len);
        const char *name = zip ? "mz" : "mt";
        rc = send(s, "alice", name, buf, len, zip ? UPLOAD_ZIP : UPLOAD_TAR, 0, NULL, 1 << 20, 0,
                  &info, &replayed, &e);
        CHECK(rc == 0 && info.kind == UPLOAD_FOLDER && info.files == 2 && info.bytes == 15 &&
                  info.archive_bytes == len,
              "%s: a folder of 2 files, 15 bytes (rc %d, %s)", name, rc, e.message);
        snprintf(path, sizeof path, "%s/uploads/alice/%s/sub/w.txt", base, name);
        CHECK(access(path, F_OK) == 0, "%s: the top folder 'm' is the upload", name);
        rc = send(s, "alice", name, buf, len, zip ? UPLOAD_ZIP : UPLOAD_TAR, 0, NULL, 1 << 20, 0,
                  &again, &replayed, &e);
        CHECK(rc == 0 && replayed == 1, "%s: the same archive again is a replay", name);
        free(buf);
    }
    /* Replacing a folder with another: exchanged, the old one gone. */
    struct entry_spec flat[] = {{"config.json", AE_IFREG, "{}", NULL, 0, -1},
                                {"model.bin", AE_IFREG, "xy", NULL, 0, -1}};
    size_t flen = 0;
    void *fbuf = make_archive(0, 0, flat, 2, &flen);
    rc = send(s, "alice", "mt", fbuf, flen, UPLOAD_TAR, 0, NULL, 1 << 20, 0, &info, &replayed, &e);
    CHECK(rc == ERR_CONFLICT && e.fault == UPLOAD_FAULT_EXISTS, "another folder: 409 (%d)", rc);
    rc = send(s, "alice", "mt", fbuf, flen, UPLOAD_TAR, 1, NULL, 1 << 20, 0, &info, &replayed, &e);
    snprintf(path, sizeof path, "%s/uploads/alice/mt", base);
    CHECK(rc == 0 && count_dir(path) == 2, "replaced: the new folder's 2 files (%d, %d)", rc,
          count_dir(path));
    free(fbuf);
    CHECK_INT(partial_count(), 0);

    /* Archives refused, each naming its entry, nothing unpacked. */
    struct entry_spec dotdot[] = {{"ok.txt", AE_IFREG, "ok", NULL, 0, -1},
                                  {"a/../../evil", AE_IFREG, "x", NULL, 0, -1}};
    refused(s, "tar '..'", 0, 0, dotdot, 2, "a/../../evil", 1 << 20);
    refused(s, "zip '..'", 1, 0, dotdot, 2, "a/../../evil", 1 << 20);
    struct entry_spec abs[] = {{"/tmp/evil", AE_IFREG, "x", NULL, 0, -1}};
    refused(s, "an absolute path", 0, 0, abs, 1, "/tmp/evil", 1 << 20);
    struct entry_spec sym[] = {{"ok.txt", AE_IFREG, "ok", NULL, 0, -1},
                               {"link", AE_IFLNK, NULL, "/etc/passwd", 0, 0}};
    refused(s, "a symlink", 0, 0, sym, 2, "link", 1 << 20);
    struct entry_spec hard[] = {{"ok.txt", AE_IFREG, "ok", NULL, 0, -1},
                                {"hard", AE_IFREG, NULL, "ok.txt", 1, 0}};
    refused(s, "a hard link", 0, 0, hard, 2, "hard", 1 << 20);
    struct entry_spec dev[] = {{"tty", AE_IFCHR, NULL, NULL, 0, 0}};
    refused(s, "a device", 0, 0, dev, 1, "tty", 1 << 20);
    struct entry_spec bomb[] = {{"zeros.bin", AE_IFREG, NULL, NULL, 0, 3 << 20}};
    refused(s, "3 MiB of zeros, gzip'd, over a 1 MiB limit", 0, 1, bomb, 1, "zeros.bin", 1 << 20);
    struct entry_spec twice[] = {{"a.txt", AE_IFREG, "1", NULL, 0, -1},
                                 {"a.txt", AE_IFREG, "2", NULL, 0, -1}};
    refused(s, "an entry twice", 0, 0, twice, 2, "a.txt", 1 << 20);
    struct entry_spec clash[] = {{"a", AE_IFREG, "1", NULL, 0, -1},
                                 {"a/b.txt", AE_IFREG, "2", NULL, 0, -1}};
    refused(s, "a file where a folder goes", 0, 0, clash, 2, "a/b.txt", 1 << 20);
    struct entry_spec *many = calloc(UPLOAD_MAX_ENTRIES + 1, sizeof *many);
    char(*names)[16] = calloc(UPLOAD_MAX_ENTRIES + 1, 16);
    for (int i = 0; i <= UPLOAD_MAX_ENTRIES; i++) {
        snprintf(names[i], 16, "f%05d", i);
        many[i] = (struct entry_spec){names[i], AE_IFREG, "", NULL, 0, -1};
    }
    refused(s, "10,001 entries", 0, 1, many, UPLOAD_MAX_ENTRIES + 1, "f10000", 1 << 20);
    free(many);
    free(names);
    /* Not an archive. */
    rc = send(s, "alice", "junk", "this is not a tar file, not at all, not even close", 50,
              UPLOAD_TAR, 0, NULL, 1 << 20, 0, &info, &replayed, &e);
    CHECK(rc == ERR_FORMAT && e.fault == UPLOAD_FAULT_ARCHIVE, "junk: invalid archive (%d %s)", rc,
          e.message);
    CHECK_INT(partial_count(), 0);

    free(data);
    store_destroy(s);
    fs_tree_remove(base, err, sizeof err);
    return ct_done("test_upload");
}
