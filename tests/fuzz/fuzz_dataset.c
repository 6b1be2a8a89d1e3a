/* fuzz_dataset.c - libFuzzer target: dataset_open on a data file and a class file cut from one
 * input */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "err.h"

#include "fuzz_file.h"

static struct fuzz_file data_file, classes_file;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_file_open(&data_file, "data.txt");
    fuzz_file_open(&classes_file, "class.txt");
    return 0;
}

/* What dataset_open promises of a dataset it returns. */
static void check(const struct dataset *d, long limit)
{
    if (d->n == 0 || d->nclasses == 0 || (limit > 0 && d->n > (size_t)limit)) abort();
    for (size_t i = 0; i < d->n; i++) {
        const struct example *e = &d->examples[i];
        if (e->len == 0 || strlen(e->text) != e->len || e->label < 0 ||
            (size_t)e->label >= d->nclasses || memchr(e->text, '\n', e->len))
            abort();
    }
    for (size_t c = 0; c < d->nclasses; c++)
        if (!*d->classes[c] || strchr(d->classes[c], '\t') || strchr(d->classes[c], '\n')) abort();
}

/* Input: DATA 0x00 CLASSES (no 0x00: the classes are "a\nb\nc").  The
 * input's last byte, when the split exists, picks the limit. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char default_classes[] = "体育\n财经\nsports\n";
    const uint8_t *nul = memchr(data, 0, size);
    size_t dlen = nul ? (size_t)(nul - data) : size;
    const uint8_t *cls = nul ? nul + 1 : (const uint8_t *)default_classes;
    size_t clen = nul ? size - dlen - 1 : sizeof default_classes - 1;
    fuzz_file_set(&data_file, data, dlen);
    fuzz_file_set(&classes_file, cls, clen);

    char err[512];
    static const long limits[] = {0, 1, 2, 3, 7, -1};
    long limit = limits[(nul && size ? data[size - 1] : size) % 6];
    struct dataset *d = NULL;
    int rc = dataset_open(data_file.path, classes_file.path, limit, &d, err, sizeof err);
    if ((rc == 0) != (d != NULL)) {
        fprintf(stderr, "dataset_open returned %d with *out %p\n", rc, (void *)d);
        abort();
    }
    if (d) check(d, limit);
    dataset_destroy(d);
    return 0;
}
