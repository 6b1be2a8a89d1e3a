/* dataset.c - THUCNews-format data: text<TAB>label lines and a class file */
#include "dataset.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "fsutil.h"

/*
 * FORMAT, as this loader reads it (both files):
 *  - UTF-8, checked strictly (no overlongs, no surrogates, nothing above
 *    U+10FFFF, no truncated sequences); a NUL byte is an error.  A leading
 *    UTF-8 byte-order mark is skipped.
 *  - Lines end in '\n'; one trailing '\r' on a line is stripped (CRLF files
 *    load).  The final newline is optional.  A blank line anywhere else is an
 *    error, never skipped.
 *  - Class file: one non-empty, unique name a line, no TAB in a name.
 *  - Data file: "text<TAB>label"; the label is what follows the LAST tab, so
 *    a text may itself hold tabs.  A label made only of ASCII digits is a
 *    class index (leading zeros allowed), anything else a class name.
 *  - Every error is "FILE:LINE: reason" (lines counted from 1).
 *  - With limit > 0 only the first limit lines are read and checked.
 *
 * MEMORY: a file is read in one go into one buffer; the texts are then
 * compacted in place to the front of that buffer (text, NUL, text, NUL...),
 * so examples[0].text owns the one allocation holding every text, and
 * classes[0] likewise owns the one holding every class name.
 */

static const char *skip_bom(const char *p, const char *end)
{
    if (end - p >= 3 && (unsigned char)p[0] == 0xEF && (unsigned char)p[1] == 0xBB &&
        (unsigned char)p[2] == 0xBF)
        return p + 3;
    return p;
}

/* Returns the offset of the first byte of s[0..n) that is not part of a
 * well-formed UTF-8 sequence (Unicode Table 3-7) or a NUL, or n if all is
 * well. */
static size_t utf8_check(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            if (c == 0) return i;
            i++;
            continue;
        }
        size_t need;
        unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0)
                lo = 0xA0; /* overlong below U+0800 */
            else if (c == 0xED)
                hi = 0x9F; /* surrogates U+D800..U+DFFF */
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0)
                lo = 0x90; /* overlong below U+10000 */
            else if (c == 0xF4)
                hi = 0x8F; /* above U+10FFFF */
        } else {
            return i; /* continuation byte, C0/C1 overlong lead, F5..FF */
        }
        if (n - i - 1 < need) return i;
        if (s[i + 1] < lo || s[i + 1] > hi) return i;
        for (size_t k = 2; k <= need; k++)
            if ((s[i + k] & 0xC0) != 0x80) return i;
        i += need + 1;
    }
    return n;
}

/* Cuts [p, end) at the next '\n': sets *line_len to the line's length
 * without "\n" and one trailing '\r', returns the start of the next line. */
static const char *next_line(const char *p, const char *end, size_t *line_len)
{
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *stop = nl ? nl : end;
    size_t l = (size_t)(stop - p);
    if (l && p[l - 1] == '\r') l--;
    *line_len = l;
    return nl ? nl + 1 : end;
}

static size_t count_lines(const char *p, const char *end)
{
    size_t n = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        n++;
        if (!nl) break;
        p = nl + 1;
    }
    return n;
}

/* Loads the class file into d->classes / d->nclasses. */
static int load_classes(struct dataset *d, const char *path, char *err, size_t errlen)
{
    int rc;
    char *buf = NULL;
    size_t len;
    char **names = NULL;
    rc = fs_read_file(path, 0, &buf, &len, err, errlen);
    if (rc) return rc;
    const char *end = buf + len;
    const char *p = skip_bom(buf, end);
    size_t cap = count_lines(p, end), n = 0, w = 0, lineno = 0;
    names = calloc(cap ? cap : 1, sizeof *names);
    if (!names) {
        rc = err_set(err, errlen, ERR_NOMEM, "%s: out of memory", path);
        goto out;
    }
    while (p < end) {
        size_t l;
        const char *line = p;
        p = next_line(p, end, &l);
        lineno++;
        if (l == 0) {
            rc = err_set(err, errlen, ERR_FORMAT, "%s:%zu: empty class name", path, lineno);
            goto out;
        }
        size_t bad = utf8_check((const unsigned char *)line, l);
        if (bad < l) {
            rc = err_set(err, errlen, ERR_FORMAT, "%s:%zu: invalid UTF-8 at byte %zu", path, lineno,
                         bad + 1);
            goto out;
        }
        if (memchr(line, '\t', l)) {
            rc = err_set(err, errlen, ERR_FORMAT, "%s:%zu: tab in class name", path, lineno);
            goto out;
        }
        memmove(buf + w, line, l); /* w <= line - buf: compacting never overtakes */
        buf[w + l] = '\0';
        for (size_t k = 0; k < n; k++) {
            if (!strcmp(names[k], buf + w)) {
                rc =
                    err_set(err, errlen, ERR_FORMAT, "%s:%zu: duplicate class name '%s' (line %zu)",
                            path, lineno, buf + w, k + 1);
                goto out;
            }
        }
        names[n++] = buf + w;
        w += l + 1;
    }
    if (n == 0) {
        rc = err_set(err, errlen, ERR_FORMAT, "%s: no class names", path);
        goto out;
    }
    d->classes = names;
    d->nclasses = n;
    names = NULL;
    buf = NULL; /* now owned by d->classes[0] */
out:
    free(names);
    free(buf);
    return rc;
}

/* Resolves a label field to a class index, or returns -1. */
static long parse_label(const struct dataset *d, const char *s, size_t l)
{
    size_t k = 0;
    while (k < l && s[k] >= '0' && s[k] <= '9')
        k++;
    if (k == l) {
        unsigned long v = 0;
        for (k = 0; k < l; k++) {
            v = v * 10 + (unsigned long)(s[k] - '0');
            if (v >= d->nclasses) break; /* out of range; also stops overflow */
        }
        return k == l ? (long)v : -1;
    }
    for (size_t c = 0; c < d->nclasses; c++)
        if (strlen(d->classes[c]) == l && !memcmp(d->classes[c], s, l)) return (long)c;
    return -1;
}

int dataset_open(const char *data_path, const char *classes_path, long limit, struct dataset **out,
                 char *err, size_t errlen)
{
    int rc;
    char *buf = NULL;
    size_t len;
    struct dataset *d = calloc(1, sizeof *d);
    *out = NULL;
    if (!d) return err_set(err, errlen, ERR_NOMEM, "out of memory");
    rc = load_classes(d, classes_path, err, errlen);
    if (rc) goto out;
    rc = fs_read_file(data_path, limit > 0 ? (size_t)limit : 0, &buf, &len, err, errlen);
    if (rc) goto out;

    const char *end = buf + len;
    const char *p = skip_bom(buf, end);
    size_t cap = count_lines(p, end);
    if (limit > 0 && (unsigned long)limit < cap) cap = (size_t)limit;
    d->examples = calloc(cap ? cap : 1, sizeof *d->examples);
    if (!d->examples) {
        rc = err_set(err, errlen, ERR_NOMEM, "%s: out of memory", data_path);
        goto out;
    }
    size_t w = 0, lineno = 0;
    while (p < end && d->n < cap) {
        size_t l;
        const char *line = p;
        p = next_line(p, end, &l);
        lineno++;
        if (l == 0) {
            rc = err_set(err, errlen, ERR_FORMAT, "%s:%zu: empty line", data_path, lineno);
            goto out;
        }
        size_t bad = utf8_check((const unsigned char *)line, l);
        if (bad < l) {
            rc = err_set(err, errlen, ERR_FORMAT, "%s:%zu: invalid UTF-8 at byte %zu", data_path,
                         lineno, bad + 1);
            goto out;
        }
        const char *tab = memrchr(line, '\t', l);
        if (!tab) {
            rc = err_set(err, errlen, ERR_FORMAT, "%s:%zu: no tab between text and label",
                         data_path, lineno);
            goto out;
        }
        size_t tlen = (size_t)(tab - line), llen = l - tlen - 1;
        if (tlen == 0) {
            rc = err_set(err, errlen, ERR_FORMAT, "%s:%zu: empty text", data_path, lineno);
            goto out;
        }
        if (llen == 0) {
            rc = err_set(err, errlen, ERR_FORMAT, "%s:%zu: empty label", data_path, lineno);
            goto out;
        }
        long label = parse_label(d, tab + 1, llen);
        if (label < 0) {
            int show = llen > 64 ? 64 : (int)llen;
            rc = err_set(err, errlen, ERR_FORMAT,
                         "%s:%zu: label '%.*s' is neither an index below %zu nor a class name",
                         data_path, lineno, show, tab + 1, d->nclasses);
            goto out;
        }
        memmove(buf + w, line, tlen); /* w <= line - buf: compacting never overtakes */
        buf[w + tlen] = '\0';
        d->examples[d->n].len = tlen;
        d->examples[d->n].label = (int)label;
        d->n++;
        w += tlen + 1;
    }
    if (d->n == 0) {
        rc = err_set(err, errlen, ERR_FORMAT, "%s: no examples", data_path);
        goto out;
    }
    /* Give back what the skipped lines (limit) and labels took, then point
     * the examples into the (maybe moved) block. */
    char *nb = realloc(buf, w);
    if (nb) buf = nb;
    for (size_t i = 0, off = 0; i < d->n; i++) {
        d->examples[i].text = buf + off;
        off += d->examples[i].len + 1;
    }
    buf = NULL; /* now owned by d->examples[0].text */
out:
    free(buf);
    if (rc)
        dataset_destroy(d);
    else
        *out = d;
    return rc;
}

void dataset_destroy(struct dataset *d)
{
    if (!d) return;
    if (d->examples && d->n) free(d->examples[0].text);
    free(d->examples);
    if (d->classes && d->nclasses) free(d->classes[0]);
    free(d->classes);
    free(d);
}
