/* store.h - the artifact store: where a job's files live, and the bytes they use */
#ifndef PRUNERD_STORE_H
#define PRUNERD_STORE_H

#include <stddef.h>
#include <stdint.h>

/*
 * DESIGN
 *
 * A job's files live in <artifact dir>/jobs/<id>/, or, for a fenced run
 * (PostgreSQL leases), in jobs/<id>/run-<fence>/; this module is the one
 * place that spells that layout.  The API, the workers and the start-up
 * code all go through it.
 *
 * The quota is checked on every POST /v1/jobs, so walking the tree then
 * would cost a walk per request.  Instead the store keeps a running total:
 * the whole artifact dir is counted once by store_open (and again by
 * store_recount, which the retention sweep calls hourly, so the SQLite
 * files and other daemons' writes to a shared store are caught up with),
 * and between counts each change to a job's folder is added or taken off
 * as it happens: a worker measures the folder before and after a run
 * (store_job_usage + store_account), and store_remove_job measures it
 * before deleting it.  Sizes are allocated blocks (st_blocks), as du
 * counts them.  Every call is thread-safe.
 */
struct store;

/* Makes <artifact_dir>/jobs when missing and counts the bytes under
 * artifact_dir.  *out is freed with store_destroy; ERR_IO on failure. */
int store_open(const char *artifact_dir, struct store **out, char *err, size_t errlen);
void store_destroy(struct store *s); /* NULL: no-op */

/* The artifact dir, as given to store_open. */
const char *store_dir(const struct store *s);

/* jobs/<id>, and the folder of one run of it (fence 0: jobs/<id> itself). */
void store_job_dir(const struct store *s, const char *id, char *out, size_t n);
void store_run_dir(const struct store *s, const char *id, int64_t fence, char *out, size_t n);

/* Bytes under jobs/<id> now (0 when it does not exist): walks that folder. */
uint64_t store_job_usage(const struct store *s, const char *id);
/* Adds delta (negative: frees) to the running total, which never goes below 0. */
void store_account(struct store *s, int64_t delta);
/* The running total: bytes used under the artifact dir. */
uint64_t store_used(struct store *s);
/* Counts the whole artifact dir again and makes that the total. */
void store_recount(struct store *s);

/* Deletes jobs/<id> and takes its bytes off the total.  ERR_INVALID when id
 * is not a job id (nothing is touched), ERR_IO when removing fails (what was
 * removed is still taken off). */
int store_remove_job(struct store *s, const char *id, char *err, size_t errlen);

/* Bytes under any folder (allocated blocks), without following links. */
uint64_t store_tree_usage(const char *dir);

#endif
