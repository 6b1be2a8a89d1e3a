/* committer.h - group commit: concurrent job submissions share one transaction */
#ifndef PRUNERD_COMMITTER_H
#define PRUNERD_COMMITTER_H

#include <stddef.h>

#include "queue.h"

/*
 * DESIGN.  Every submitted job must be on disk before its 201 goes out, and
 * an fsync costs milliseconds, so committing each POST alone caps the
 * submit rate at one fsync each.  The committer owns one thread and one
 * struct queue.  Submitting threads append their struct queue_submission to
 * a FIFO under a mutex and wait on a condition variable; the committer takes
 * everything waiting (up to COMMITTER_BATCH), writes it with
 * queue_submit_many in one transaction, marks each done and wakes them all.
 * A lone submission waits for no one: the batch is whatever arrived while
 * the previous commit ran.
 */
#define COMMITTER_BATCH 64

struct committer;

/* Opens its own queue on db_path and starts the thread.  NULL with a
 * message on failure. */
struct committer *committer_create(const char *db_path, char *err, size_t errlen);
/* Commits what is waiting, stops the thread, closes the queue. NULL: no-op. */
void committer_destroy(struct committer *c);

/* Blocks until sub is committed (or failed); the outcome is in sub->rc,
 * sub->id, sub->existed and sub->err.  Returns sub->rc. */
int committer_submit(struct committer *c, struct queue_submission *sub);

#endif
