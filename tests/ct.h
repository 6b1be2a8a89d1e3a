/* ct.h - a tiny assert header for the C unit tests */
#ifndef PRUNERD_CT_H
#define PRUNERD_CT_H

#include <stdio.h>
#include <stdlib.h>

/* Each CHECK prints what it expected and what it got, then counts a failure;
 * ct_done() prints the tally ("N passed, N failed") and gives the exit code. */
static int ct_pass, ct_fail;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (cond) {                                                                                \
            ct_pass++;                                                                             \
        } else {                                                                                   \
            ct_fail++;                                                                             \
            fprintf(stderr, "%s:%d: FAIL %s: ", __FILE__, __LINE__, #cond);                        \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

/* got and want are evaluated once, so a call with side effects may be checked. */
#define CHECK_INT(got, want)                                                                       \
    do {                                                                                           \
        long long ct_got_ = (long long)(got), ct_want_ = (long long)(want);                        \
        CHECK(ct_got_ == ct_want_, "%s: expected %lld, got %lld", #got, ct_want_, ct_got_);        \
    } while (0)

static inline int ct_done(const char *name)
{
    printf("%s: %d passed, %d failed\n", name, ct_pass, ct_fail);
    return ct_fail ? EXIT_FAILURE : (ct_pass ? EXIT_SUCCESS : 77);
}

#endif
