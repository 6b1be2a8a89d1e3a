/* test_json_text.c - reals in their shortest round-trip form, everything else as jansson writes it
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ct.h"
#include "json_text.h"

/* json_text_dumps of text (parsed first), compact. */
static char *dump(const char *text, size_t flags)
{
    json_error_t e;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &e);
    if (!j) return strdup("(parse error)");
    char *s = json_text_dumps(j, flags | JSON_ENCODE_ANY);
    json_decref(j);
    return s;
}

static void expect(const char *in, const char *want)
{
    char *got = dump(in, JSON_COMPACT);
    CHECK(got && !strcmp(got, want), "%s: want %s, got %s", in, want, got ? got : "(null)");
    free(got);
}

int main(void)
{
    expect("0.3", "0.3");
    expect("0.1", "0.1");
    expect("1e-12", "1e-12");
    expect("0.30000000000000004", "0.30000000000000004"); /* 0.1 + 0.2 needs 17 digits */
    expect("1.0", "1.0");                                 /* still a real */
    expect("-0.0", "-0.0");
    expect("100.0", "100.0");
    expect("1e20", "1e20");
    expect("123456789.125", "123456789.125");
    expect("5e-324", "5e-324"); /* the smallest subnormal: one digit reads back */
    expect("1.7976931348623157e308", "1.7976931348623157e308");
    expect("1e-7", "1e-7");
    expect("0.0001", "0.0001");
    expect("1e15", "1000000000000000.0");
    expect("1e16", "1e16");
    expect("2.5e-5", "2.5e-5");
    expect("42", "42"); /* integers untouched */
    expect("-7", "-7");
    expect("\"0.29999999999999999 and 1e-12\"",
           "\"0.29999999999999999 and 1e-12\""); /* strings too */
    expect("\"a \\\" 0.29999999999999999\"", "\"a \\\" 0.29999999999999999\"");
    expect("{\"amount\": 0.3, \"n\": [0.7, 3, {\"x\": 1e-12}], \"s\": \"0.3\"}",
           "{\"amount\":0.3,\"n\":[0.7,3,{\"x\":1e-12}],\"s\":\"0.3\"}");
    /* every real reads back to the same double */
    unsigned seed = 7;
    for (int i = 0; i < 20000; i++) {
        seed = seed * 1103515245u + 12345u;
        double v = ldexp((double)(seed >> 4) / (double)(1u << 28), (int)(seed % 64) - 32) *
                   (seed & 8 ? -1 : 1);
        json_t *r = json_real(v);
        char *s = json_text_dumps(r, JSON_ENCODE_ANY);
        char *jans = json_dumps(r, JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
        CHECK(s && strtod(s, NULL) == v && strlen(s) <= strlen(jans), "%.17g printed as %s", v, s);
        free(s);
        free(jans);
        json_decref(r);
    }
    char buf[32];
    CHECK(!strcmp(json_text_real(0.3, buf, sizeof buf), "0.3"), "json_text_real(0.3) = %s", buf);
    CHECK(!strcmp(json_text_real(1.5, buf, sizeof buf), "1.5"), "json_text_real(1.5) = %s", buf);
    /* Strings of any bytes: invalid or cut UTF-8 becomes U+FFFD. */
    static const struct {
        const char *in, *want;
    } strs[] = {
        {"plain", "plain"},
        {"caf\xc3\xa9", "caf\xc3\xa9"},
        {"\xff", "\xef\xbf\xbd"},
        {"a\xc3", "a\xef\xbf\xbd"},                               /* cut mid-character */
        {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* a surrogate */
        {"\xe4\xb8\xad\xe6", "\xe4\xb8\xad\xef\xbf\xbd"},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        json_t *j = json_text_string(strs[i].in);
        CHECK(j && !strcmp(json_string_value(j), strs[i].want), "json_text_string case %zu: '%s'",
              i, j ? json_string_value(j) : "(null)");
        json_decref(j);
    }
    char *indented = dump("{\"a\": [0.3]}", JSON_INDENT(2));
    CHECK(indented && !strcmp(indented, "{\n  \"a\": [\n    0.3\n  ]\n}"), "indented: %s",
          indented);
    free(indented);
    return ct_done("test_json_text");
}
