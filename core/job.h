/* job.h - one pruning job: its request, validation, paths and run */
#ifndef PRUNERD_JOB_H
#define PRUNERD_JOB_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/*
 * A job request is the JSON that `prunerd run JOB.json` reads and
 * `POST /v1/jobs` takes:
 *
 *   {"model", "targets": [glob...], "method", "amount", "amount_kind",
 *    "scope", "options": {n, dim, seed, threshold, mask, plugin,
 *    plugin_params, iterative}, "eval": {data, vocab, classes, max_length,
 *    batch_size, lowercase, padding, limit, tokenizer} | absent, "outputs": [...],
 *    "device", "name"}
 *
 * The stages, in order: loading, evaluating_before, pruning,
 * evaluating_after, saving (the evaluations only when "eval" is given).
 */

#define JOB_STAGE_COUNT 5
extern const char *const job_stages[JOB_STAGE_COUNT];

/* Which request field is wrong and why ("eval.max_length", "must be an
 * integer from 2 to 512"). */
struct job_field_error {
    char field[64];
    char message[256];
};

/*
 * Checks a request and returns a new object with every default filled in
 * (*out, caller decrefs).  Paths are left as given.  On a bad field returns
 * ERR_INVALID with fe filled (fe may not be NULL).
 */
int job_request_normalize(const json_t *in, json_t **out, struct job_field_error *fe);

/*
 * Resolves a path a request names.  field is "model", "eval.data",
 * "eval.vocab", "eval.classes" or "options.mask".  Writes the absolute real
 * path into out.  Returns 0, ERR_DENIED (outside the allowed roots: never
 * opened), ERR_NOTFOUND, or ERR_INVALID, with a message.
 */
typedef int (*job_resolve_fn)(void *ud, const char *field, const char *path, char *out,
                              size_t outlen, char *err, size_t errlen);

/* Replaces every path in a normalized request by resolve's answer.  On
 * failure returns resolve's code with fe naming the field. */
int job_request_resolve_paths(json_t *req, job_resolve_fn resolve, void *ud,
                              struct job_field_error *fe);

struct job_hooks {
    void *ud;
    void (*stage)(void *ud, const char *stage);  /* a stage begins */
    void (*progress)(void *ud, double progress); /* 0..1 over the whole job */
    int (*cancelled)(void *ud);                  /* non-zero: stop at the next batch or stage */
    const char *plugin_dir; /* where plugins load from; NULL: plugins refused */
    int threads;            /* libtorch and pruning threads; <= 0: default */
    const char *gpu_device; /* "cuda:N": what "auto" and "cuda" mean (a worker's GPU);
                               NULL: cuda when a device is there, else cpu */
    int verbose;            /* print the seed's output (module, 5x5 corner, metrics) on stdout */
};

/*
 * Runs a normalized request whose paths are resolved (absolute): load,
 * evaluate, prune, evaluate, save.  Writes the artifacts and result.json
 * into out_dir (each through a temporary name, fsync'd and renamed when
 * complete) and returns the result in *result (caller decrefs).  Returns
 * ERR_CANCELLED when hooks->cancelled said so (nothing is left in out_dir
 * but completed files), or another ERR_* with a message.
 */
int job_execute(const json_t *req, const char *out_dir, const struct job_hooks *hooks,
                json_t **result, char *err, size_t errlen);

/*
 * job_execute with the artifact paths given one by one (NULL: not written),
 * for `prunerd prune --out ... --state-dict ... --report ...`.
 */
int job_execute_to(const json_t *req, const char *torchscript, const char *state_dict,
                   const char *result_path, const struct job_hooks *hooks, json_t **result,
                   char *err, size_t errlen);

/*
 * Where a job's files live under the artifact store: artifact_dir/jobs/<id>/,
 * and the folder one run writes into: that folder itself for an unfenced
 * claim (SQLite, fence 0), artifact_dir/jobs/<id>/run-<fence>/ with
 * PostgreSQL, so a rescued run and its rescuer never share a file.
 * Downloads read the folder of the run that finished (the row's fence).
 */
void job_run_dir(const char *artifact_dir, const char *id, int64_t fence, char *out, size_t n);
/* Removes artifact_dir/jobs/<id>/ and everything in it (id must be a job
 * id).  Returns 0 (also when it was not there), ERR_INVALID or ERR_IO. */
int job_dir_remove(const char *artifact_dir, const char *id, char *err, size_t errlen);

#endif
