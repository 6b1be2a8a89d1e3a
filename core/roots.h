/* roots.h - request paths confined to the configured model and data roots */
#ifndef PRUNERD_ROOTS_H
#define PRUNERD_ROOTS_H

#include <stddef.h>

/*
 * A request names files relative to a root (or absolute): a relative path
 * is looked for under each model root in order, then, for data, under each
 * data root; the first that holds it wins.
 * Models must lie under a model root; eval data, vocab, classes and masks
 * under a data root or a model root.  A path with a ".." component, an
 * absolute path outside every root, or one whose symlinks lead outside, is
 * refused with ERR_DENIED and never opened.
 */
enum roots_kind { ROOTS_MODEL, ROOTS_DATA };

struct roots;

/* Empty roots; NULL when out of memory.  roots_destroy(NULL) is a no-op. */
struct roots *roots_create(void);
void roots_destroy(struct roots *r);

/* Adds a root directory (made absolute and real).  ERR_NOTFOUND when it does
 * not exist, ERR_INVALID when it is no directory. */
int roots_add(struct roots *r, enum roots_kind kind, const char *dir, char *err, size_t errlen);
size_t roots_count(const struct roots *r, enum roots_kind kind);
/* The i-th root of a kind (real path), or NULL. */
const char *roots_get(const struct roots *r, enum roots_kind kind, size_t i);

/*
 * Resolves path for kind (a regular file; for ROOTS_MODEL also a folder,
 * whose files the caller resolves one by one): writes the real absolute path into out and
 * returns 0; ERR_DENIED when outside (or in a folder this process may not
 * search), ERR_NOTFOUND when missing, ERR_INVALID for an empty or over-long
 * path or a symlink loop, ERR_IO otherwise, with a message.
 */
int roots_resolve(const struct roots *r, enum roots_kind kind, const char *path, char *out,
                  size_t outlen, char *err, size_t errlen);

/* A job_resolve_fn (core/job/job.h) over roots (ud): "model" and
 * "model_config" (the model's own config.json, a regular file: ERR_INVALID
 * for a folder) are ROOTS_MODEL, every other field ROOTS_DATA. */
int roots_job_resolve(void *ud, const char *field, const char *path, char *out, size_t outlen,
                      char *err, size_t errlen);

/* A ckpt_resolve_fn (model/checkpoint.h) over roots (ud): ROOTS_MODEL. */
int roots_model_resolve(void *ud, const char *path, char *out, size_t outlen, char *err,
                        size_t errlen);

#endif
