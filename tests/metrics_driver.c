/* metrics_driver.c - runs core/metrics on labels from stdin, for the sklearn oracle test */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "metrics.h"

/*
 * usage: metrics_driver [--report DIGITS] [--names]
 * stdin: a line "NCLASSES N", then with --names NCLASSES class names, one a
 * line, then N true labels and N predicted labels (whitespace-separated
 * integers).  Prints metrics_to_json (compact) or, with --report, the text
 * report.  Exits 1 with the error on stderr when metrics_compute refuses.
 */
int main(int argc, char **argv)
{
    int rc = 2, digits = -1, with_names = 0, nclasses;
    long n;
    int *yt = NULL, *yp = NULL;
    char **names = NULL;
    struct metrics m = {0};
    char err[256];

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--report") && i + 1 < argc)
            digits = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--names"))
            with_names = 1;
        else {
            fprintf(stderr, "usage: metrics_driver [--report DIGITS] [--names]\n");
            return 2;
        }
    }
    if (scanf("%d %ld", &nclasses, &n) != 2 || n < 0 || nclasses < 0) {
        fprintf(stderr, "metrics_driver: bad header\n");
        return 2;
    }
    yt = calloc((size_t)n + 1, sizeof *yt);
    yp = calloc((size_t)n + 1, sizeof *yp);
    if (!yt || !yp) goto out;
    if (with_names) {
        char line[1024];
        names = calloc((size_t)nclasses + 1, sizeof *names);
        if (!names || !fgets(line, sizeof line, stdin)) /* the rest of the header line */
            goto bad_input;
        for (int c = 0; c < nclasses; c++) {
            if (!fgets(line, sizeof line, stdin)) goto bad_input;
            line[strcspn(line, "\n")] = '\0';
            if (!(names[c] = strdup(line))) goto out;
        }
    }
    for (long i = 0; i < n; i++)
        if (scanf("%d", &yt[i]) != 1) goto bad_input;
    for (long i = 0; i < n; i++)
        if (scanf("%d", &yp[i]) != 1) goto bad_input;
    if (metrics_compute(yt, yp, (size_t)n, nclasses, &m, err, sizeof err)) {
        fprintf(stderr, "metrics_driver: %s\n", err);
        rc = 1;
        goto out;
    }
    if (digits >= 0) {
        metrics_print_report(&m, names, digits, stdout);
    } else {
        json_t *j = metrics_to_json(&m, names);
        if (!j || json_dumpf(j, stdout, JSON_COMPACT)) {
            json_decref(j);
            goto out;
        }
        json_decref(j);
        putchar('\n');
    }
    rc = 0;
    goto out;
bad_input:
    fprintf(stderr, "metrics_driver: bad input\n");
out:
    metrics_free(&m);
    if (names)
        for (int c = 0; c < nclasses; c++)
            free(names[c]);
    free(names);
    free(yt);
    free(yp);
    return rc;
}
