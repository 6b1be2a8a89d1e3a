/* upload.h - files sent to the daemon: a folder per owner, each written whole or not at all */
#ifndef PRUNERD_UPLOAD_H
#define PRUNERD_UPLOAD_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

struct store;
struct roots;

/*
 * DESIGN
 *
 * Uploads live in the artifact store, so a group of boxes sharing one store
 * shares them, and the quota counts them:
 *
 *   <artifact dir>/uploads/<owner>/<name>         the file, or an unpacked folder
 *   <artifact dir>/uploads.meta/<owner>/<name>.json  its sha256, size and time
 *   <artifact dir>/uploads.partial/               bodies still arriving
 *
 * <owner> is the caller's token name ("anonymous" with auth off).  The
 * uploads folder is a model root and a data root (after the configured
 * ones), so an upload's path goes straight into a job; upload_job_resolve
 * takes a caller's relative "<owner>/..." path to its own uploads first, and
 * refuses another owner's uploads.
 *
 * A body is written to a file of its own in uploads.partial, held with
 * flock while it is written, hashed as it comes, and at the end fsync'd and
 * renamed into place (an archive is unpacked beside it first, into a folder
 * that is renamed).  A broken connection removes it at once; what a killed
 * daemon left there is removed by upload_clean_partial (at start and with
 * the hourly sweep), which skips files another process still holds.  So an
 * upload is either listed whole or not at all.
 *
 * The .json beside an upload records the inode, size and mtime it was made
 * for; when they no longer match (the file was changed or placed by hand),
 * the metadata is worked out again from the file itself.  Commits and
 * removals of one owner take that owner's lock file in uploads.meta.
 */

#define UPLOAD_NAME_MAX 128
#define UPLOAD_MAX_ENTRIES 10000 /* archive entries */
#define UPLOAD_OWNER_MAX 64      /* AUTH_NAME_MAX */

enum upload_kind { UPLOAD_FILE, UPLOAD_FOLDER };
enum upload_unpack { UPLOAD_RAW, UPLOAD_TAR, UPLOAD_ZIP };

/* Why an upload was refused, beside its ERR_* code. */
enum upload_fault {
    UPLOAD_FAULT_NONE,
    UPLOAD_FAULT_NAME,      /* ERR_INVALID: not [A-Za-z0-9._-]{1,128}, or "." / ".." */
    UPLOAD_FAULT_OWNER,     /* ERR_DENIED: a token name that cannot be a folder */
    UPLOAD_FAULT_TOO_LARGE, /* ERR_INVALID: the body is over the limit */
    UPLOAD_FAULT_QUOTA,     /* ERR_NOSPACE: the store would pass its quota */
    UPLOAD_FAULT_CHECKSUM,  /* ERR_CONFLICT: the body is not the sha256 announced */
    UPLOAD_FAULT_EXISTS,    /* ERR_CONFLICT: the name holds other content */
    UPLOAD_FAULT_UNSAFE,    /* ERR_DENIED: an archive entry refused; entry names it */
    UPLOAD_FAULT_ARCHIVE,   /* ERR_FORMAT: not a readable archive */
    UPLOAD_FAULT_IO,        /* ERR_IO / ERR_NOMEM / ERR_NOSPACE (disk full) */
};

struct upload_error {
    enum upload_fault fault;
    char entry[256]; /* UPLOAD_FAULT_UNSAFE: the entry's path as the archive gives it */
    char message[512];
};

struct upload_info {
    char name[UPLOAD_NAME_MAX + 1];
    char owner[UPLOAD_OWNER_MAX + 1]; /* the token name; "" with auth off */
    enum upload_kind kind;
    uint64_t bytes;         /* the file's size, or the sum of the folder's files */
    uint64_t archive_bytes; /* a folder: the archive as sent */
    uint64_t files;         /* regular files: 1 for a file */
    char sha256[65];        /* of the body as sent; "" when not known (placed by hand) */
    double created;         /* unix seconds */
    char path[PATH_MAX];    /* absolute: what a job names */
    char relpath[UPLOAD_OWNER_MAX + UPLOAD_NAME_MAX + 2]; /* <owner folder>/<name>: the same,
                                                            relative to the uploads root */
};

/* Is name [A-Za-z0-9._-]{1,128} and neither "." nor ".."? */
int upload_name_valid(const char *name);

/* Makes the three folders and removes what killed uploads left.  The
 * uploads folder's path goes into root (for roots_add). */
int upload_prepare(struct store *s, char *root, size_t rootlen, char *err, size_t errlen);
/* Removes partial uploads no process holds; returns how many. */
int upload_clean_partial(struct store *s);

struct upload_params {
    const char *owner; /* the caller's token name; "" with auth off */
    const char *name;
    enum upload_unpack unpack;
    int replace;        /* replace other content under the name */
    const char *sha256; /* announced (64 hex digits, any case), or NULL */
    uint64_t limit;     /* bytes as sent, and once unpacked */
    uint64_t quota;     /* the store's quota; 0: none */
    uint64_t length;    /* the announced length, when known (else 0) */
    int length_known;
};

struct upload; /* one body on its way */

/* Checks the parameters (and the announced length against the limit and
 * the quota) and opens the partial file.  ERR_* with e filled. */
int upload_begin(struct store *s, const struct upload_params *p, struct upload **out,
                 struct upload_error *e);
/* Writes body bytes: ERR_INVALID (UPLOAD_FAULT_TOO_LARGE), ERR_NOSPACE
 * (quota or disk), ERR_IO.  After a failure the upload takes no more
 * bytes; upload_abort it. */
int upload_write(struct upload *u, const void *data, size_t n, struct upload_error *e);
/* The body is complete: checks the checksum, unpacks, and puts the upload
 * in place (or finds the same content there: *replayed = 1).  Frees u,
 * whatever it returns; on failure nothing is left behind. */
int upload_finish(struct upload *u, struct upload_info *info, int *replayed,
                  struct upload_error *e);
/* The body will not be complete: removes what was written and frees u. */
void upload_abort(struct upload *u);

/* owner's uploads, newest first (*out freed by the caller with free). */
int upload_list(struct store *s, const char *owner, struct upload_info **out, size_t *n, char *err,
                size_t errlen);
/* One upload: ERR_NOTFOUND when owner has none of that name. */
int upload_get(struct store *s, const char *owner, const char *name, struct upload_info *info,
               char *err, size_t errlen);
/* Removes an upload and its metadata and takes its bytes off the total. */
int upload_remove(struct store *s, const char *owner, const char *name, char *err, size_t errlen);

/* A job_resolve_fn and a ckpt_resolve_fn (ud: a struct upload_scope):
 * roots_job_resolve / roots_model_resolve, then ERR_DENIED when the file
 * is in the uploads folder of an owner other than scope->owner (admin:
 * any). */
struct upload_scope {
    const struct roots *roots;
    const struct store *store;
    const char *owner;
    int admin;
};
int upload_job_resolve(void *ud, const char *field, const char *path, char *out, size_t outlen,
                       char *err, size_t errlen);
int upload_model_resolve(void *ud, const char *path, char *out, size_t outlen, char *err,
                         size_t errlen);

#endif
