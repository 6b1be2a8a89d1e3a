/* dataset.h - THUCNews-format data: text<TAB>label lines and a class file */
#ifndef PRUNERD_DATASET_H
#define PRUNERD_DATASET_H

#include <stddef.h>

struct example {
    char *text; /* UTF-8, NUL-terminated */
    size_t len; /* bytes of text */
    int label;  /* index into classes */
};

struct dataset {
    struct example *examples;
    size_t n;
    char **classes; /* class names, in label order */
    size_t nclasses;
};

/*
 * Loads classes_path (one name a line, last newline optional) and data_path
 * (text<TAB>label, label an integer in range or a class name).  limit > 0
 * keeps the first limit lines.  UTF-8 is checked.  A malformed line is
 * ERR_FORMAT with "FILE:LINE: reason"; a file that cannot be read is
 * ERR_NOTFOUND or ERR_IO; ERR_NOMEM.  Returns 0 with *out set (free with
 * dataset_destroy), or the code with *out NULL.
 */
int dataset_open(const char *data_path, const char *classes_path, long limit, struct dataset **out,
                 char *err, size_t errlen);
void dataset_destroy(struct dataset *d);

#endif
