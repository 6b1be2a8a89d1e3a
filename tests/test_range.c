/* test_range.c - single byte ranges: forms, clamping, unsatisfiable, ignored */
#include "ct.h"
#include "range.h"

static void check(const char *h, uint64_t size, enum range_result want, uint64_t ws, uint64_t wl)
{
    uint64_t s = 999, l = 999;
    enum range_result got = range_parse(h, size, &s, &l);
    CHECK(got == want, "'%s' of %llu: result %d, want %d", h ? h : "(null)",
          (unsigned long long)size, got, want);
    if (got == RANGE_OK && want == RANGE_OK)
        CHECK(s == ws && l == wl, "'%s': start %llu len %llu, want %llu %llu", h,
              (unsigned long long)s, (unsigned long long)l, (unsigned long long)ws,
              (unsigned long long)wl);
}

static void inm(const char *list, const char *etag, int want)
{
    int got = range_if_none_match(list, etag);
    CHECK(got == want, "If-None-Match '%s' against %s: %d, want %d", list ? list : "(none)", etag,
          got, want);
}

int main(void)
{
    inm(NULL, "\"ab\"", 0);
    inm("\"ab\"", "\"ab\"", 1);
    inm("W/\"ab\"", "\"ab\"", 1); /* weak comparison */
    inm("\"x\", \"ab\"", "\"ab\"", 1);
    inm("\"x\",\t\"ab\" ", "\"ab\"", 1);
    inm("*", "\"ab\"", 1);
    inm("\"abc\"", "\"ab\"", 0);
    inm("\"ab\"x", "\"ab\"", 0);
    inm("x\"ab\"", "\"ab\"", 0); /* a substring is not a tag */
    inm("\"x\"\"ab\"", "\"ab\"", 0);
    inm("", "\"ab\"", 0);

    check(NULL, 100, RANGE_NONE, 0, 0);
    check("bytes=0-9", 100, RANGE_OK, 0, 10);
    check("bytes=10-", 100, RANGE_OK, 10, 90);
    check("bytes=-10", 100, RANGE_OK, 90, 10);
    check("bytes=-1000", 100, RANGE_OK, 0, 100);
    check("bytes=50-1000", 100, RANGE_OK, 50, 50); /* end clamped */
    check("bytes=99-99", 100, RANGE_OK, 99, 1);
    check("bytes = 5-6", 100, RANGE_OK, 5, 2);
    check("Bytes=5-6", 100, RANGE_OK, 5, 2);
    check("bytes=100-", 100, RANGE_UNSATISFIABLE, 0, 0);
    check("bytes=100-200", 100, RANGE_UNSATISFIABLE, 0, 0);
    check("bytes=-0", 100, RANGE_UNSATISFIABLE, 0, 0);
    check("bytes=0-", 0, RANGE_UNSATISFIABLE, 0, 0);
    check("bytes=0-1,5-6", 100, RANGE_NONE, 0, 0); /* several ranges: whole file */
    check("bytes=9-3", 100, RANGE_NONE, 0, 0);     /* invalid: ignored */
    check("bytes=-", 100, RANGE_NONE, 0, 0);
    check("bytes=a-b", 100, RANGE_NONE, 0, 0);
    check("items=0-1", 100, RANGE_NONE, 0, 0);
    check("bytes=0-1x", 100, RANGE_NONE, 0, 0);
    check("bytes=99999999999999999999999-", 100, RANGE_NONE, 0, 0); /* overflow */
    return ct_done("test_range");
}
