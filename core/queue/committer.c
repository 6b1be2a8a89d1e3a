/* committer.c - group commit: concurrent job submissions share one transaction */
#include "committer.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "err.h"

struct pending {
    struct queue_submission *sub;
    int done;
    struct pending *next;
};

struct committer {
    struct queue *q;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t work;         /* something is pending, or stopping */
    pthread_cond_t done;         /* a batch was committed */
    struct pending *head, *tail; /* FIFO of waiting submissions */
    int stopping;
};

static void *committer_main(void *arg)
{
    struct committer *c = arg;
    struct queue_submission batch[COMMITTER_BATCH];
    struct pending *taken[COMMITTER_BATCH];
    char err[256];

    pthread_mutex_lock(&c->lock);
    for (;;) {
        while (!c->head && !c->stopping)
            pthread_cond_wait(&c->work, &c->lock);
        if (!c->head && c->stopping) break;
        size_t n = 0;
        while (c->head && n < COMMITTER_BATCH) {
            taken[n] = c->head;
            batch[n] = *c->head->sub;
            c->head = c->head->next;
            n++;
        }
        if (!c->head) c->tail = NULL;
        pthread_mutex_unlock(&c->lock);

        queue_submit_many(c->q, batch, n, err, sizeof err);

        pthread_mutex_lock(&c->lock);
        for (size_t i = 0; i < n; i++) {
            *taken[i]->sub = batch[i];
            taken[i]->done = 1;
        }
        pthread_cond_broadcast(&c->done);
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

struct committer *committer_create(const char *db_path, char *err, size_t errlen)
{
    struct committer *c = calloc(1, sizeof *c);
    if (!c) {
        err_set(err, errlen, ERR_NOMEM, "committer: out of memory");
        return NULL;
    }
    if (!(c->q = queue_open(db_path, err, errlen))) {
        free(c);
        return NULL;
    }
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->work, NULL);
    pthread_cond_init(&c->done, NULL);
    if (pthread_create(&c->thread, NULL, committer_main, c) != 0) {
        err_set(err, errlen, ERR_INTERNAL, "committer: cannot start its thread");
        queue_close(c->q);
        pthread_mutex_destroy(&c->lock);
        pthread_cond_destroy(&c->work);
        pthread_cond_destroy(&c->done);
        free(c);
        return NULL;
    }
    return c;
}

void committer_destroy(struct committer *c)
{
    if (!c) return;
    pthread_mutex_lock(&c->lock);
    c->stopping = 1;
    pthread_cond_signal(&c->work);
    pthread_mutex_unlock(&c->lock);
    pthread_join(c->thread, NULL);
    queue_close(c->q);
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->work);
    pthread_cond_destroy(&c->done);
    free(c);
}

int committer_submit(struct committer *c, struct queue_submission *sub)
{
    struct pending p = {.sub = sub};
    pthread_mutex_lock(&c->lock);
    if (c->stopping) {
        pthread_mutex_unlock(&c->lock);
        return sub->rc = err_set(sub->err, sizeof sub->err, ERR_CANCELLED, "shutting down");
    }
    if (c->tail)
        c->tail->next = &p;
    else
        c->head = &p;
    c->tail = &p;
    pthread_cond_signal(&c->work);
    while (!p.done)
        pthread_cond_wait(&c->done, &c->lock);
    pthread_mutex_unlock(&c->lock);
    return sub->rc;
}
