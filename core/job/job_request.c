/* job_request.c - a job request checked field by field, defaults filled in */
#include "job.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "json_text.h"
#include "prune.h"
#include "tokenizer.h"

const char *const job_stages[JOB_STAGE_COUNT] = {
    "loading",    "evaluating_before",    "importance", "pruning",  "evaluating_after",
    "recovering", "evaluating_recovered", "saving",     "sweeping",
};

static int bad(struct job_field_error *fe, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int bad(struct job_field_error *fe, const char *field, const char *fmt, ...)
{
    va_list ap;
    snprintf(fe->field, sizeof fe->field, "%s", field);
    va_start(ap, fmt);
    vsnprintf(fe->message, sizeof fe->message, fmt, ap);
    va_end(ap);
    return ERR_INVALID;
}

/* Refuses keys of obj not in allowed (NULL-terminated): a typo must not be
 * silently ignored. */
static int only_keys(const json_t *obj, const char *prefix, const char *const *allowed,
                     struct job_field_error *fe)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        int ok = 0;
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = !strcmp(*a, key);
        if (!ok) {
            char field[sizeof fe->field];
            snprintf(field, sizeof field, "%s%s", prefix, key);
            return bad(fe, field, "unknown field");
        }
    }
    return 0;
}

static int get_string(const json_t *obj, const char *key, const char *field, int required,
                      const char *def, json_t *out, struct job_field_error *fe)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        if (required) return bad(fe, field, "is required");
        json_object_set_new(out, key, def ? json_string(def) : json_null());
        return 0;
    }
    if (!json_is_string(v)) return bad(fe, field, "must be a string");
    if (json_string_length(v) == 0) return bad(fe, field, "must not be empty");
    if (strlen(json_string_value(v)) != json_string_length(v))
        return bad(fe, field, "must not contain NUL characters");
    json_object_set(out, key, v);
    return 0;
}

static int get_int(const json_t *obj, const char *key, const char *field, json_int_t lo,
                   json_int_t hi, int nullable, json_int_t def, json_t *out,
                   struct job_field_error *fe)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        json_object_set_new(out, key, nullable ? json_null() : json_integer(def));
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return bad(fe, field, "must be an integer from %lld to %lld%s", (long long)lo,
                   (long long)hi, nullable ? " or null" : "");
    json_object_set(out, key, v);
    return 0;
}

static int get_bool(const json_t *obj, const char *key, const char *field, int def, json_t *out,
                    struct job_field_error *fe)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        json_object_set_new(out, key, json_boolean(def));
        return 0;
    }
    if (!json_is_boolean(v)) return bad(fe, field, "must be true or false");
    json_object_set(out, key, v);
    return 0;
}

/* A bool that may stay unset: absent or null is null. */
static int get_bool_or_null(const json_t *obj, const char *key, const char *field, json_t *out,
                            struct job_field_error *fe)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        json_object_set_new(out, key, json_null());
        return 0;
    }
    if (!json_is_boolean(v)) return bad(fe, field, "must be true, false or null");
    json_object_set(out, key, v);
    return 0;
}

static int get_enum(const json_t *obj, const char *key, const char *field, const char *const *names,
                    const char *def, json_t *out, struct job_field_error *fe)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        json_object_set_new(out, key, json_string(def));
        return 0;
    }
    if (json_is_string(v))
        for (const char *const *n = names; *n; n++)
            if (!strcmp(*n, json_string_value(v))) {
                json_object_set(out, key, v);
                return 0;
            }
    char list[160] = "";
    for (const char *const *n = names; *n; n++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s\"%s\"",
                 n == names ? "" : ", ", *n);
    return bad(fe, field, "must be one of %s", list);
}

/* amount + amount_kind -> a JSON integer (count) or real (fraction). */
static int get_amount(const json_t *in, const struct prune_method *pm, json_t *out,
                      struct job_field_error *fe)
{
    static const char *const kinds[] = {"fraction", "count", NULL};
    json_t *v = json_object_get(in, "amount");
    json_t *k = json_object_get(in, "amount_kind");
    struct prune_amount a = {0};
    char msg[256];

    if (k && !json_is_null(k)) {
        int rc = get_enum(in, "amount_kind", "amount_kind", kinds, "fraction", out, fe);
        if (rc) return rc;
    }
    if (!v || json_is_null(v)) {
        if (pm->flags & PRUNE_F_AMOUNT) return bad(fe, "amount", "is required for %s", pm->name);
        json_object_set_new(out, "amount", json_null());
        json_object_set_new(out, "amount_kind", json_null());
        return 0;
    }
    if (!json_is_number(v)) return bad(fe, "amount", "must be a number");
    const char *kind = k && json_is_string(k) ? json_string_value(k)
                       : json_is_integer(v)   ? "count"
                                              : "fraction";
    double x = json_number_value(v);
    char shown[32];
    if (!strcmp(kind, "count")) {
        if (!isfinite(x) || x != floor(x) || fabs(x) > 9007199254740992.0)
            return bad(fe, "amount",
                       "amount=%s should either be a float in the range [0, 1] or a "
                       "non-negative integer (amount_kind \"count\" needs a whole number)",
                       json_text_real(x, shown, sizeof shown));
        a.is_count = 1;
        a.count = (int64_t)x;
    } else {
        a.fraction = x;
    }
    if (prune_amount_check(&a, msg, sizeof msg) != 0) return bad(fe, "amount", "%s", msg);
    json_object_set_new(out, "amount", a.is_count ? json_integer(a.count) : json_real(a.fraction));
    json_object_set_new(out, "amount_kind", json_string(kind));
    return 0;
}

static int get_norm(const json_t *opts, int required, json_t *out, struct job_field_error *fe)
{
    json_t *v = json_object_get(opts, "n");
    if (!v || json_is_null(v)) {
        if (required)
            return bad(
                fe, "options.n",
                "is required for ln_structured (a number > 0, \"inf\", \"-inf\" or \"fro\")");
        json_object_set_new(out, "n", json_null());
        return 0;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (strcmp(s, "inf") && strcmp(s, "-inf") && strcmp(s, "fro"))
            return bad(fe, "options.n", "must be a number > 0, \"inf\", \"-inf\" or \"fro\"");
    } else if (!json_is_number(v) || !(json_number_value(v) > 0) ||
               !isfinite(json_number_value(v))) {
        return bad(fe, "options.n", "must be a number > 0, \"inf\", \"-inf\" or \"fro\"");
    }
    json_object_set(out, "n", v);
    return 0;
}

static int plugin_name_ok(const char *s)
{
    if (!*s || strlen(s) > 64) return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-'))
            return 0;
    return 1;
}

static int get_options(const json_t *in, const struct prune_method *pm, json_t *out,
                       struct job_field_error *fe)
{
    static const char *const keys[] = {"n",      "dim",           "seed",      "threshold", "mask",
                                       "plugin", "plugin_params", "iterative", NULL};
    json_t *opts = json_object_get(in, "options");
    json_t *empty = json_object();
    json_t *o = json_object();
    int rc = 0;
    if (opts && !json_is_null(opts) && !json_is_object(opts)) {
        rc = bad(fe, "options", "must be an object");
        goto out;
    }
    if (!opts || json_is_null(opts)) opts = empty;
    if ((rc = only_keys(opts, "options.", keys, fe))) goto out;
    if ((rc = get_norm(opts, pm->id == PRUNE_LN_STRUCTURED, o, fe))) goto out;
    if ((rc = get_int(opts, "dim", "options.dim", -8, 7, 0, -1, o, fe))) goto out;
    if ((rc = get_int(opts, "seed", "options.seed", 0, INT64_MAX, 1, 0, o, fe))) goto out;

    json_t *t = json_object_get(opts, "threshold");
    if (!t || json_is_null(t)) {
        if (pm->id == PRUNE_THRESHOLD) {
            rc = bad(fe, "options.threshold", "is required for threshold (prune |w| < threshold)");
            goto out;
        }
        json_object_set_new(o, "threshold", json_null());
    } else if (!json_is_number(t) || !isfinite(json_number_value(t)) || json_number_value(t) < 0) {
        rc = bad(fe, "options.threshold", "must be a number >= 0");
        goto out;
    } else {
        json_object_set(o, "threshold", t);
    }
    if ((rc = get_string(opts, "mask", "options.mask", pm->id == PRUNE_CUSTOM_FROM_MASK, NULL, o,
                         fe)))
        goto out;
    if ((rc = get_string(opts, "plugin", "options.plugin", pm->id == PRUNE_PLUGIN, NULL, o, fe)))
        goto out;
    json_t *pl = json_object_get(o, "plugin");
    if (json_is_string(pl) && !plugin_name_ok(json_string_value(pl))) {
        rc = bad(fe, "options.plugin", "must be a plugin name: letters, digits, '_' and '-'");
        goto out;
    }
    json_t *pp = json_object_get(opts, "plugin_params");
    json_object_set_new(o, "plugin_params", pp ? json_incref(pp) : json_null());
    if ((rc = get_bool(opts, "iterative", "options.iterative", 0, o, fe))) goto out;
    json_object_set(out, "options", o);
out:
    json_decref(o);
    json_decref(empty);
    return rc;
}

static int get_eval(const json_t *in, json_t *out, struct job_field_error *fe)
{
    static const char *const keys[] = {"data",       "vocab",     "classes", "max_length",
                                       "batch_size", "lowercase", "padding", "limit",
                                       "tokenizer",  NULL};
    static const char *const paddings[] = {"exact", "dynamic", NULL};
    json_t *ev = json_object_get(in, "eval");
    if (!ev || json_is_null(ev)) {
        json_object_set_new(out, "eval", json_null());
        return 0;
    }
    if (!json_is_object(ev)) return bad(fe, "eval", "must be an object or null");
    json_t *o = json_object();
    int rc;
    if ((rc = only_keys(ev, "eval.", keys, fe)) ||
        (rc = get_string(ev, "data", "eval.data", 1, NULL, o, fe)) ||
        (rc = get_string(ev, "vocab", "eval.vocab", 0, NULL, o, fe)) ||
        (rc = get_string(ev, "classes", "eval.classes", 1, NULL, o, fe)) ||
        (rc = get_int(ev, "max_length", "eval.max_length", 2, 512, 0, 32, o, fe)) ||
        (rc = get_int(ev, "batch_size", "eval.batch_size", 1, 4096, 0, 256, o, fe)) ||
        (rc = get_bool_or_null(ev, "lowercase", "eval.lowercase", o, fe)) ||
        (rc = get_enum(ev, "padding", "eval.padding", paddings, "exact", o, fe)) ||
        (rc = get_enum(ev, "tokenizer", "eval.tokenizer", tok_mode_names, tok_mode_names[TOK_BERT],
                       o, fe)) ||
        (rc = get_int(ev, "limit", "eval.limit", 1, INT32_MAX, 1, 0, o, fe))) {
        json_decref(o);
        return rc;
    }
    json_object_set_new(out, "eval", o);
    return 0;
}

/* structured.heads / structured.neurons: an integer is a count, a real a
 * fraction (PyTorch's amount rules); absent or null: none of that kind. */
static int get_struct_amount(const json_t *st, const char *key, const char *field, json_t *out,
                             struct job_field_error *fe)
{
    json_t *v = json_object_get(st, key);
    char msg[256];
    if (!v || json_is_null(v)) {
        json_object_set_new(out, key, json_null());
        return 0;
    }
    if (!json_is_number(v)) return bad(fe, field, "must be a fraction in [0, 1], a count, or null");
    struct prune_amount a = {.is_count = json_is_integer(v)};
    if (a.is_count)
        a.count = (int64_t)json_integer_value(v);
    else
        a.fraction = json_real_value(v);
    if (prune_amount_check(&a, msg, sizeof msg)) return bad(fe, field, "%s", msg);
    json_object_set(out, key, v);
    return 0;
}

/* structured.latency: {batches: [8], seq_lens: [def_len]} filled in. */
static int get_latency(const json_t *lat, json_int_t def_len, json_t *out,
                       struct job_field_error *fe)
{
    static const char *const keys[] = {"batches", "seq_lens", NULL};
    const json_int_t defs[2] = {8, def_len};
    int rc;
    if (lat && !json_is_null(lat) && !json_is_object(lat))
        return bad(fe, "structured.latency", "must be an object {\"batches\", \"seq_lens\"}");
    if (json_is_object(lat) && (rc = only_keys(lat, "structured.latency.", keys, fe))) return rc;
    json_t *lo = json_object();
    json_object_set_new(out, "latency", lo);
    for (int k = 0; k < 2; k++) {
        json_t *a = json_object_get(lat, keys[k]), *x;
        char field[48];
        size_t i;
        snprintf(field, sizeof field, "structured.latency.%s", keys[k]);
        if (!a || json_is_null(a)) {
            json_object_set_new(lo, keys[k], json_pack("[I]", defs[k]));
            continue;
        }
        int ok = json_is_array(a) && json_array_size(a) && json_array_size(a) <= JOB_LATENCY_MAX;
        json_array_foreach(a, i, x) ok &=
            json_is_integer(x) && json_integer_value(x) >= 1 && json_integer_value(x) <= 4096;
        if (!ok)
            return bad(fe, field, "must be a list of 1 to %d integers from 1 to 4096",
                       JOB_LATENCY_MAX);
        json_object_set(lo, keys[k], a);
    }
    return 0;
}

/* The "structured" object of method structured, with its defaults. */
static int get_structured(const json_t *in, json_t *out, struct job_field_error *fe)
{
    static const char *const keys[] = {
        "heads",      "neurons",     "target",  "scope",
        "importance", "calibration", "rescale", "min_heads_per_layer",
        "latency",    NULL};
    static const char *const tkeys[] = {"macs", "seq_len", NULL};
    static const char *const scopes[] = {"global", "local", NULL};
    static const char *const importances[] = {"magnitude", "taylor", "fisher", NULL};
    json_t *st = json_object_get(in, "structured");
    if (!json_is_object(st))
        return bad(fe, "structured",
                   "must be an object: {\"heads\", \"neurons\"} or "
                   "{\"target\": {\"macs\"}}");
    json_t *o = json_object();
    int rc;
    if ((rc = only_keys(st, "structured.", keys, fe)) ||
        (rc = get_struct_amount(st, "heads", "structured.heads", o, fe)) ||
        (rc = get_struct_amount(st, "neurons", "structured.neurons", o, fe)) ||
        (rc = get_enum(st, "scope", "structured.scope", scopes, "global", o, fe)) ||
        (rc = get_enum(st, "importance", "structured.importance", importances, "magnitude", o,
                       fe)) ||
        (rc = get_int(st, "min_heads_per_layer", "structured.min_heads_per_layer", 0, 1024, 0, 0, o,
                      fe)))
        goto out;
    const char *imp = json_string_value(json_object_get(o, "importance"));
    json_t *cal = json_object_get(st, "calibration"), *rs = json_object_get(st, "rescale");
    if (rs && !json_is_null(rs) && !json_is_boolean(rs)) {
        rc = bad(fe, "structured.rescale", "must be true or false");
        goto out;
    }
    const int rescale = json_is_true(rs);
    json_object_set_new(o, "rescale", json_boolean(rescale));
    /* the length the MACs and latency default to: eval's max_length (its
     * default 32), else 128 */
    const json_t *ev = json_object_get(in, "eval");
    const json_t *evlen = json_object_get(ev, "max_length");
    json_int_t def_len = !json_is_object(ev)      ? 128
                         : json_is_integer(evlen) ? json_integer_value(evlen)
                                                  : 32;
    static const char *const ckeys[] = {"data", "samples", "batch_size", "labels", NULL};
    static const char *const label_kinds[] = {"data", "model", NULL};
    /* what reads the calibration data: a gradient importance, rescale */
    const char *user = strcmp(imp, "magnitude") ? imp : rescale ? "rescale" : NULL;
    if (user) {
        json_t *co = json_object();
        json_object_set_new(o, "calibration", co);
        if (!json_is_object(cal)) {
            rc = bad(fe, "structured.calibration",
                     "is required for %s: {\"data\": a THUCNews-format file such as "
                     "train.txt}",
                     user);
            goto out;
        }
        if ((rc = only_keys(cal, "structured.calibration.", ckeys, fe)) ||
            (rc = get_string(cal, "data", "structured.calibration.data", 1, NULL, co, fe)) ||
            (rc = get_int(cal, "samples", "structured.calibration.samples", 1, 1000000, 0, 2048, co,
                          fe)) ||
            (rc = get_int(cal, "batch_size", "structured.calibration.batch_size", 1, 4096, 0, 32,
                          co, fe)) ||
            (rc = get_enum(cal, "labels", "structured.calibration.labels", label_kinds, "data", co,
                           fe)))
            goto out;
        if (!json_is_object(ev)) {
            rc = bad(fe, "structured.calibration",
                     "%s reads its data with the job's eval settings (vocab, classes, "
                     "max_length, lowercase): give an eval block",
                     user);
            goto out;
        }
    } else if (cal && !json_is_null(cal)) {
        rc = bad(fe, "structured.calibration",
                 "is for the taylor and fisher importances and rescale (magnitude needs no data)");
        goto out;
    }
    if ((rc = get_latency(json_object_get(st, "latency"), def_len, o, fe))) goto out;
    json_t *t = json_object_get(st, "target");
    int amounts =
        !json_is_null(json_object_get(o, "heads")) || !json_is_null(json_object_get(o, "neurons"));
    if (t && !json_is_null(t)) {
        json_t *to = json_object(), *m;
        json_object_set_new(o, "target", to);
        if (!json_is_object(t)) {
            rc = bad(fe, "structured.target", "must be an object {\"macs\": F, \"seq_len\": L}");
            goto out;
        }
        if ((rc = only_keys(t, "structured.target.", tkeys, fe))) goto out;
        m = json_object_get(t, "macs");
        if (!json_is_number(m) || !(json_number_value(m) > 0) || json_number_value(m) > 1) {
            rc = bad(fe, "structured.target.macs",
                     "must be a number in (0, 1]: the fraction of the encoder's MACs to keep");
            goto out;
        }
        json_object_set_new(to, "macs", json_real(json_number_value(m)));
        if ((rc = get_int(t, "seq_len", "structured.target.seq_len", 1, 4096, 0, def_len, to, fe)))
            goto out;
        if (amounts) {
            rc = bad(fe, "structured.target",
                     "give either structured.target or structured.heads / neurons, not both");
            goto out;
        }
        if (!strcmp(json_string_value(json_object_get(o, "scope")), "local")) {
            rc = bad(fe, "structured.scope",
                     "target.macs ranks heads and neurons across layers: use global");
            goto out;
        }
    } else {
        json_object_set_new(o, "target", json_null());
        if (!amounts) {
            rc = bad(fe, "structured", "needs heads, neurons or target.macs");
            goto out;
        }
    }
    json_object_set(out, "structured", o);
out:
    json_decref(o);
    return rc;
}

/* A number in [lo, hi] (lo excluded when lo_open); absent or null: def. */
static int get_real(const json_t *obj, const char *key, const char *field, double lo, int lo_open,
                    double hi, double def, json_t *out, struct job_field_error *fe)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        json_object_set_new(out, key, json_real(def));
        return 0;
    }
    double x = json_is_number(v) ? json_number_value(v) : NAN;
    if (!(lo_open ? x > lo : x >= lo) || !(x <= hi)) {
        char a[32], b[32];
        return bad(fe, field, "must be a number in %s%s, %s]", lo_open ? "(" : "[",
                   json_text_real(lo, a, sizeof a), json_text_real(hi, b, sizeof b));
    }
    json_object_set_new(out, key, json_real(x));
    return 0;
}

/* recover.schedule: Zhu & Gupta's cubic schedule for l1_unstructured,
 * ending on the job's amount (a fraction). */
static int get_schedule(const json_t *rc_in, const json_t *o, json_t *ro,
                        struct job_field_error *fe)
{
    static const char *const keys[] = {"kind", "initial", "final", "steps", "every", NULL};
    static const char *const kinds[] = {"cubic", NULL};
    json_t *sc = json_object_get(rc_in, "schedule");
    if (!sc || json_is_null(sc)) {
        json_object_set_new(ro, "schedule", json_null());
        return 0;
    }
    if (!json_is_object(sc))
        return bad(fe, "recover.schedule",
                   "must be an object {\"kind\": \"cubic\", \"initial\", \"final\", "
                   "\"steps\", \"every\"} or null");
    const char *method = json_string_value(json_object_get(o, "method"));
    if (strcmp(method, "l1_unstructured"))
        return bad(fe, "recover.schedule",
                   "is for method l1_unstructured (local or global), not %s", method);
    const json_t *amount = json_object_get(o, "amount");
    if (!json_is_real(amount))
        return bad(fe, "amount", "must be a fraction with recover.schedule (its final sparsity)");
    json_t *e;
    size_t i;
    json_array_foreach(json_object_get(o, "targets"), i, e) if (json_is_object(e)) return bad(
        fe, "recover.schedule",
        "prunes every target to the schedule's sparsity: give the "
        "targets as globs, without amounts of their own");
    json_t *so = json_object();
    json_object_set_new(ro, "schedule", so);
    int rc;
    double fin = json_real_value(amount);
    if ((rc = only_keys(sc, "recover.schedule.", keys, fe)) ||
        (rc = get_enum(sc, "kind", "recover.schedule.kind", kinds, "cubic", so, fe)) ||
        (rc = get_real(sc, "final", "recover.schedule.final", 0, 1, 1, fin, so, fe)) ||
        (rc = get_real(sc, "initial", "recover.schedule.initial", 0, 0, 1, 0, so, fe)) ||
        (rc = get_int(sc, "steps", "recover.schedule.steps", 1, INT32_MAX, 1, 0, so, fe)) ||
        (rc = get_int(sc, "every", "recover.schedule.every", 1, INT32_MAX, 1, 0, so, fe)))
        return rc;
    if (json_real_value(json_object_get(so, "final")) != fin)
        return bad(fe, "recover.schedule.final",
                   "is the job's amount (%.17g): give one, or the same in both", fin);
    if (!(json_real_value(json_object_get(so, "initial")) < fin))
        return bad(fe, "recover.schedule.initial", "must be below final (%.17g)", fin);
    return 0;
}

/* The "recover" object: fine-tuning after pruning, with its defaults. */
static int get_recover(const json_t *in, json_t *out, struct job_field_error *fe)
{
    static const char *const keys[] = {
        "data",    "epochs",           "steps",         "batch_size", "lr",
        "warmup",  "weight_decay",     "max_length",    "eval_every", "distill",
        "shuffle", "checkpoint_every", "max_grad_norm", "schedule",   NULL};
    static const char *const dkeys[] = {"temperature", "alpha", NULL};
    json_t *rv = json_object_get(in, "recover");
    if (!rv || json_is_null(rv)) {
        json_object_set_new(out, "recover", json_null());
        return 0;
    }
    if (!json_is_object(rv))
        return bad(fe, "recover",
                   "must be an object {\"data\", \"epochs\" | \"steps\", ...} "
                   "or null");
    const json_t *ev = json_object_get(out, "eval");
    if (!json_is_object(ev))
        return bad(fe, "recover",
                   "reads its data with the job's eval settings (vocab, classes, lowercase): "
                   "give an eval block");
    json_t *o = json_object();
    int rc;
    const json_t *ep = json_object_get(rv, "epochs"), *st = json_object_get(rv, "steps");
    if ((rc = only_keys(rv, "recover.", keys, fe)) ||
        (rc = get_string(rv, "data", "recover.data", 1, NULL, o, fe)))
        goto out;
    if (ep && !json_is_null(ep) && st && !json_is_null(st)) {
        rc = bad(fe, "recover.steps", "give epochs or steps, not both");
        goto out;
    }
    const int by_steps = st && !json_is_null(st);
    if ((rc = get_int(rv, "epochs", "recover.epochs", 1, 1000, by_steps, 1, o, fe)) ||
        (rc = get_int(rv, "steps", "recover.steps", 1, INT32_MAX, 1, 0, o, fe)) ||
        (rc = get_int(rv, "batch_size", "recover.batch_size", 1, 4096, 0, 32, o, fe)) ||
        (rc = get_real(rv, "lr", "recover.lr", 0, 1, 1, 2e-5, o, fe)) ||
        (rc = get_real(rv, "warmup", "recover.warmup", 0, 0, 1, 0.06, o, fe)) ||
        (rc = get_real(rv, "weight_decay", "recover.weight_decay", 0, 0, 1, 0.01, o, fe)) ||
        (rc = get_int(rv, "max_length", "recover.max_length", 2, 512, 0,
                      json_integer_value(json_object_get(ev, "max_length")), o, fe)) ||
        (rc = get_int(rv, "eval_every", "recover.eval_every", 0, INT32_MAX, 0, 0, o, fe)) ||
        (rc = get_bool(rv, "shuffle", "recover.shuffle", 1, o, fe)) ||
        (rc = get_int(rv, "checkpoint_every", "recover.checkpoint_every", 0, INT32_MAX, 0, 500, o,
                      fe)) ||
        (rc = get_real(rv, "max_grad_norm", "recover.max_grad_norm", 0, 0, 1e6, 1.0, o, fe)))
        goto out;
    if (json_real_value(json_object_get(o, "warmup")) >= 1) {
        rc = bad(fe, "recover.warmup", "must be below 1 (the share of the steps spent warming up)");
        goto out;
    }
    json_t *d = json_object_get(rv, "distill");
    if (!d || json_is_null(d) || json_is_false(d)) {
        json_object_set_new(o, "distill", json_null());
    } else if (!json_is_object(d) && !json_is_true(d)) {
        rc = bad(fe, "recover.distill",
                 "must be an object {\"temperature\", \"alpha\"}, true "
                 "or null");
        goto out;
    } else {
        json_t *dob = json_object(), *din = json_is_object(d) ? d : NULL;
        json_object_set_new(o, "distill", dob);
        if ((din && (rc = only_keys(din, "recover.distill.", dkeys, fe))) ||
            (rc = get_real(din, "temperature", "recover.distill.temperature", 0, 1, 100, 2, dob,
                           fe)) ||
            (rc = get_real(din, "alpha", "recover.distill.alpha", 0, 0, 1, 0.5, dob, fe)))
            goto out;
    }
    if ((rc = get_schedule(rv, out, o, fe))) goto out;
    json_object_set(out, "recover", o);
out:
    json_decref(o);
    return rc;
}

/* The names of enum job_output's bits, in bit order. */
static const char *const output_names[] = {"torchscript", "state_dict", "safetensors"};
#define OUTPUT_COUNT (sizeof output_names / sizeof output_names[0])
_Static_assert(JOB_OUT_SAFETENSORS == 1u << 2, "output_names follows enum job_output's bits");

/* null (absent) stays null: the input's own family, decided when the job
 * runs, so a stored request keeps saying "unset". */
static int get_outputs(const json_t *in, json_t *out, struct job_field_error *fe)
{
    json_t *v = json_object_get(in, "outputs");
    if (!v || json_is_null(v)) {
        json_object_set_new(out, "outputs", json_null());
        return 0;
    }
    if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > OUTPUT_COUNT)
        return bad(fe, "outputs",
                   "must be null or a non-empty list of \"torchscript\", "
                   "\"state_dict\" and \"safetensors\"");
    int seen[OUTPUT_COUNT] = {0};
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        const char *s = json_is_string(e) ? json_string_value(e) : "";
        size_t which = 0;
        while (which < OUTPUT_COUNT && strcmp(s, output_names[which]))
            which++;
        if (which == OUTPUT_COUNT || seen[which]++)
            return bad(fe, "outputs",
                       "must be null or a non-empty list of \"torchscript\", "
                       "\"state_dict\" and \"safetensors\", each once");
    }
    json_object_set(out, "outputs", v);
    return 0;
}

/* "kind": "prune" (absent) or "sweep"; only a sweep's normalized request
 * says its kind, so a prune job's stays as it was. */
static int get_kind(const json_t *in, json_t *out, int *sweep, struct job_field_error *fe)
{
    json_t *k = json_object_get(in, "kind");
    *sweep = 0;
    if (!k || json_is_null(k)) return 0;
    if (json_is_string(k) && !strcmp(json_string_value(k), "prune")) return 0;
    if (!json_is_string(k) || strcmp(json_string_value(k), "sweep"))
        return bad(fe, "kind", "must be \"prune\" or \"sweep\"");
    *sweep = 1;
    json_object_set_new(out, "kind", json_string("sweep"));
    return 0;
}

/* A glob: a non-empty string without NUL. */
static int glob_ok(const json_t *e)
{
    return json_is_string(e) && json_string_length(e) != 0 &&
           strlen(json_string_value(e)) == json_string_length(e);
}

/* targets: a glob, or a list of globs and (prune jobs) {"glob", "amount"}
 * objects, an integer amount a count and a real a fraction. */
static int get_targets(const json_t *in, int sweep, json_t *out, struct job_field_error *fe)
{
    static const char *const keys[] = {"glob", "amount", NULL};
    json_t *t = json_object_get(in, "targets"), *e;
    size_t i;
    char field[64], msg[256];
    if (glob_ok(t)) {
        json_object_set_new(out, "targets", json_pack("[O]", t));
        return 0;
    }
    if (!json_is_array(t) || json_array_size(t) == 0)
        return bad(fe, "targets", "must be a non-empty list of parameter or module globs");
    json_array_foreach(t, i, e)
    {
        if (glob_ok(e)) continue;
        if (!json_is_object(e) || sweep)
            return bad(fe, "targets",
                       sweep ? "targets[%zu] must be a non-empty string (a sweep chooses the "
                               "amounts itself)"
                             : "targets[%zu] must be a non-empty string or an object {\"glob\", "
                               "\"amount\"}",
                       i);
        snprintf(field, sizeof field, "targets[%zu].", i);
        int rc = only_keys(e, field, keys, fe);
        if (rc) return rc;
        snprintf(field, sizeof field, "targets[%zu].glob", i);
        if (!glob_ok(json_object_get(e, "glob")))
            return bad(fe, field, "must be a non-empty string");
        snprintf(field, sizeof field, "targets[%zu].amount", i);
        json_t *a = json_object_get(e, "amount");
        if (!json_is_number(a))
            return bad(fe, field, "must be a fraction in [0, 1] or a count (an integer)");
        struct prune_amount pa = {.is_count = json_is_integer(a)};
        if (pa.is_count)
            pa.count = (int64_t)json_integer_value(a);
        else
            pa.fraction = json_real_value(a);
        if (prune_amount_check(&pa, msg, sizeof msg)) return bad(fe, field, "%s", msg);
    }
    json_object_set(out, "targets", t);
    return 0;
}

/* Entries with their own amount need a method that prunes each parameter
 * by an amount on its own, deterministically. */
static int check_target_amounts(const json_t *o, const struct prune_method *pm,
                                struct job_field_error *fe)
{
    json_t *e;
    size_t i;
    json_array_foreach(json_object_get(o, "targets"), i, e)
    {
        if (!json_is_object(e)) continue;
        char field[64];
        snprintf(field, sizeof field, "targets[%zu].amount", i);
        if (pm->id != PRUNE_L1_UNSTRUCTURED && pm->id != PRUNE_LN_STRUCTURED)
            return bad(fe, field, "is for methods l1_unstructured and ln_structured; %s takes none",
                       pm->name);
        if (strcmp(json_string_value(json_object_get(o, "scope")), "local"))
            return bad(fe, field, "needs scope local (each parameter by its own amount)");
    }
    return 0;
}

/* A sweep's own fields: group, amounts, recommend; what a sweep refuses. */
static int get_sweep(const json_t *in, const struct prune_method *pm, json_t *out,
                     struct job_field_error *fe)
{
    static const char *const groups[] = {"layer", "parameter", NULL};
    static const char *const refused[] = {"amount", "amount_kind", "scope", "structured",
                                          "outputs"};
    for (size_t u = 0; u < sizeof refused / sizeof refused[0]; u++) {
        json_t *x = json_object_get(in, refused[u]);
        /* (the normalized sweep says scope "local": it must read back) */
        int local = !strcmp(refused[u], "scope") && json_is_string(x) &&
                    !strcmp(json_string_value(x), "local");
        if (x && !json_is_null(x) && !local)
            return bad(fe, refused[u],
                       "is not used by a sweep (it prunes by each of \"amounts\" and saves no "
                       "model)");
    }
    if (pm->id != PRUNE_L1_UNSTRUCTURED && pm->id != PRUNE_STRUCTURED)
        return bad(fe, "method", "a sweep runs l1_unstructured or structured");
    int rc = get_enum(in, "group", "group", groups, "layer", out, fe);
    if (rc) return rc;
    if (pm->id == PRUNE_STRUCTURED &&
        strcmp(json_string_value(json_object_get(out, "group")), "layer"))
        return bad(fe, "group",
                   "a structured sweep's groups are each layer's heads and neurons: "
                   "use \"layer\"");
    json_t *a = json_object_get(in, "amounts"), *x;
    size_t i;
    if (!a || json_is_null(a)) {
        json_t *d = json_array();
        for (int k = 1; k <= 9; k++)
            json_array_append_new(d, json_real(k / 10.0));
        json_object_set_new(out, "amounts", d);
    } else {
        int ok = json_is_array(a) && json_array_size(a) >= 1 &&
                 json_array_size(a) <= JOB_SWEEP_AMOUNTS_MAX;
        double last = 0;
        json_array_foreach(a, i, x)
        {
            double v = json_is_number(x) ? json_number_value(x) : -1;
            ok &= v > last && v <= 1;
            last = v;
        }
        if (!ok)
            return bad(fe, "amounts",
                       "must be a list of 1 to %d fractions in (0, 1], in increasing order",
                       JOB_SWEEP_AMOUNTS_MAX);
        json_t *d = json_array();
        json_array_foreach(a, i, x) json_array_append_new(d, json_real(json_number_value(x)));
        json_object_set_new(out, "amounts", d);
    }
    json_t *amounts = json_object_get(out, "amounts");
    double top = json_real_value(json_array_get(amounts, json_array_size(amounts) - 1));
    json_t *r = json_object_get(in, "recommend");
    if (!r || json_is_null(r)) {
        json_object_set_new(out, "recommend", json_null());
    } else {
        static const char *const rkeys[] = {"sparsity", NULL};
        if (!json_is_object(r)) return bad(fe, "recommend", "must be an object {\"sparsity\"}");
        if ((rc = only_keys(r, "recommend.", rkeys, fe))) return rc;
        if (pm->id != PRUNE_L1_UNSTRUCTURED)
            return bad(fe, "recommend", "is for l1_unstructured sweeps");
        json_t *sp = json_object_get(r, "sparsity");
        if (!json_is_number(sp) || !(json_number_value(sp) > 0) || json_number_value(sp) > top)
            return bad(fe, "recommend.sparsity",
                       "must be a number in (0, %g] (the largest of amounts)", top);
        json_object_set_new(out, "recommend",
                            json_pack("{s:f}", "sparsity", json_number_value(sp)));
    }
    if (!json_is_object(json_object_get(in, "eval")))
        return bad(fe, "eval", "is required for a sweep: each point is an evaluation");
    json_object_set_new(out, "amount", json_null());
    json_object_set_new(out, "amount_kind", json_null());
    json_object_set_new(out, "scope", json_string("local"));
    return 0;
}

/* A prune job's refusal of a sweep's own fields. */
static int refuse_sweep_fields(const json_t *in, struct job_field_error *fe)
{
    static const char *const sweep_only[] = {"group", "amounts", "recommend"};
    for (size_t u = 0; u < 3; u++) {
        json_t *x = json_object_get(in, sweep_only[u]);
        if (x && !json_is_null(x))
            return bad(fe, sweep_only[u], "is only for a sweep (\"kind\": \"sweep\")");
    }
    return 0;
}

static int device_ok(const char *s)
{
    if (!strcmp(s, "auto") || !strcmp(s, "cpu") || !strcmp(s, "cuda")) return 1;
    if (strncmp(s, "cuda:", 5) || !s[5] || strlen(s) > 8) return 0;
    for (s += 5; *s; s++)
        if (*s < '0' || *s > '9') return 0;
    return 1;
}

void job_spec_free(struct job_spec *spec)
{
    if (!spec) return;
    free(spec->model);
    free(spec->model_config);
    for (size_t i = 0; i < spec->ntargets; i++)
        free(spec->targets[i]);
    free(spec->targets);
    free(spec->tamounts);
    free(spec->mask);
    free(spec->plugin);
    free(spec->plugin_params);
    free(spec->eval.data);
    free(spec->eval.vocab);
    free(spec->eval.classes);
    free(spec->calibration_data);
    free(spec->recover.data);
    memset(spec, 0, sizeof *spec);
}

/* A copy of the string v, NULL for anything else; *nomem set when the copy
 * failed. */
static char *dup_str(const json_t *v, int *nomem)
{
    if (!json_is_string(v)) return NULL;
    char *s = strdup(json_string_value(v));
    if (!s) *nomem = 1;
    return s;
}

static const char *str_of(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : "";
}

/* ln_structured's p as prune_params takes it; "fro" (and none) is the 2-norm. */
static double norm_of(const json_t *n)
{
    if (json_is_number(n)) return json_number_value(n);
    const char *s = json_string_value(n);
    if (!s || !strcmp(s, "fro")) return PRUNE_NORM_FRO;
    return !strcmp(s, "-inf") ? -INFINITY : INFINITY;
}

/* The typed copy of a normalized request r (every field there and valid):
 * the one place that turns its keys into fields.  0 or ERR_NOMEM. */
static int spec_of(const json_t *r, struct job_spec *s)
{
    const json_t *opts = json_object_get(r, "options"), *ev = json_object_get(r, "eval");
    const json_t *targets = json_object_get(r, "targets"), *amount = json_object_get(r, "amount");
    const json_t *v;
    int nomem = 0;
    size_t i;

    s->model = dup_str(json_object_get(r, "model"), &nomem);
    s->model_config = dup_str(json_object_get(r, "model_config"), &nomem);
    s->targets = calloc(json_array_size(targets), sizeof *s->targets);
    s->tamounts = calloc(json_array_size(targets), sizeof *s->tamounts);
    if (!s->targets || !s->tamounts) return ERR_NOMEM;
    json_array_foreach(targets, i, v)
    {
        const json_t *a = json_object_get(v, "amount");
        struct job_target_amount *ta = &s->tamounts[s->ntargets];
        ta->has = json_is_number(a);
        ta->a.is_count = json_is_integer(a);
        ta->a.count = (int64_t)json_integer_value(a);
        ta->a.fraction = json_is_real(a) ? json_real_value(a) : 0;
        s->targets[s->ntargets++] =
            dup_str(json_is_object(v) ? json_object_get(v, "glob") : v, &nomem);
    }
    s->kind = !strcmp(str_of(r, "kind"), "sweep") ? JOB_KIND_SWEEP : JOB_KIND_PRUNE;
    if (s->kind == JOB_KIND_SWEEP) {
        struct job_sweep_spec *w = &s->sweep;
        const json_t *rec = json_object_get(r, "recommend");
        w->by_parameter = !strcmp(str_of(r, "group"), "parameter");
        json_array_foreach(json_object_get(r, "amounts"), i, v) w->amounts[w->namounts++] =
            json_number_value(v);
        w->has_recommend = json_is_object(rec);
        w->sparsity = json_number_value(json_object_get(rec, "sparsity"));
    }
    s->method = prune_method_find(str_of(r, "method"));
    s->has_amount = json_is_number(amount);
    s->amount.is_count = !strcmp(str_of(r, "amount_kind"), "count");
    if (s->amount.is_count)
        s->amount.count = (int64_t)json_integer_value(amount);
    else
        s->amount.fraction = json_number_value(amount);
    s->scope = !strcmp(str_of(r, "scope"), "global") ? PRUNE_GLOBAL : PRUNE_LOCAL;

    s->n = norm_of(json_object_get(opts, "n"));
    s->dim = (int)json_integer_value(json_object_get(opts, "dim"));
    v = json_object_get(opts, "seed");
    s->has_seed = json_is_integer(v);
    s->seed = (uint64_t)json_integer_value(v);
    v = json_object_get(opts, "threshold");
    s->has_threshold = json_is_number(v);
    s->threshold = json_number_value(v);
    s->mask = dup_str(json_object_get(opts, "mask"), &nomem);
    s->plugin = dup_str(json_object_get(opts, "plugin"), &nomem);
    v = json_object_get(opts, "plugin_params");
    if (v && !json_is_null(v) &&
        !(s->plugin_params = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT)))
        nomem = 1;
    s->iterative = json_is_true(json_object_get(opts, "iterative"));

    const json_t *st = json_object_get(r, "structured");
    s->has_structured = json_is_object(st);
    if (s->has_structured) {
        struct structured_request *q = &s->structured;
        const json_t *h = json_object_get(st, "heads"), *nu = json_object_get(st, "neurons");
        const json_t *tg = json_object_get(st, "target");
        q->has_heads = json_is_number(h);
        q->heads.is_count = json_is_integer(h);
        q->heads.count = (int64_t)json_integer_value(h);
        q->heads.fraction = json_is_real(h) ? json_real_value(h) : 0;
        q->has_neurons = json_is_number(nu);
        q->neurons.is_count = json_is_integer(nu);
        q->neurons.count = (int64_t)json_integer_value(nu);
        q->neurons.fraction = json_is_real(nu) ? json_real_value(nu) : 0;
        q->has_target = json_is_object(tg);
        q->macs = json_real_value(json_object_get(tg, "macs"));
        q->seq_len = q->has_target ? (int)json_integer_value(json_object_get(tg, "seq_len"))
                     : json_is_object(ev)
                         ? (int)json_integer_value(json_object_get(ev, "max_length"))
                         : 128;
        q->scope = !strcmp(str_of(st, "scope"), "local") ? PRUNE_LOCAL : PRUNE_GLOBAL;
        q->min_heads_per_layer =
            (int)json_integer_value(json_object_get(st, "min_heads_per_layer"));
        const json_t *lat = json_object_get(st, "latency");
        const json_t *cal = json_object_get(st, "calibration");
        const char *imp = str_of(st, "importance");
        s->importance = !strcmp(imp, "fisher")   ? JOB_FISHER
                        : !strcmp(imp, "taylor") ? JOB_TAYLOR
                                                 : JOB_MAGNITUDE;
        s->rescale = json_is_true(json_object_get(st, "rescale"));
        s->calibration_data = dup_str(json_object_get(cal, "data"), &nomem);
        s->calibration_samples = (int)json_integer_value(json_object_get(cal, "samples"));
        s->calibration_batch = (int)json_integer_value(json_object_get(cal, "batch_size"));
        s->calibration_model_labels = !strcmp(str_of(cal, "labels"), "model");
        json_array_foreach(json_object_get(lat, "batches"), i, v)
            s->latency.batches[s->latency.nbatches++] = (int)json_integer_value(v);
        json_array_foreach(json_object_get(lat, "seq_lens"), i, v)
            s->latency.seq_lens[s->latency.nseq_lens++] = (int)json_integer_value(v);
    }

    s->has_eval = json_is_object(ev);
    if (s->has_eval) {
        struct job_eval_spec *e = &s->eval;
        e->data = dup_str(json_object_get(ev, "data"), &nomem);
        e->vocab = dup_str(json_object_get(ev, "vocab"), &nomem);
        e->classes = dup_str(json_object_get(ev, "classes"), &nomem);
        e->max_length = (int)json_integer_value(json_object_get(ev, "max_length"));
        e->batch_size = (int)json_integer_value(json_object_get(ev, "batch_size"));
        v = json_object_get(ev, "lowercase");
        e->lowercase = json_is_boolean(v) ? json_is_true(v) : -1;
        e->padding = !strcmp(str_of(ev, "padding"), "dynamic") ? EVAL_PAD_DYNAMIC : EVAL_PAD_EXACT;
        if (tok_mode_parse(str_of(ev, "tokenizer"), &e->tokenizer)) e->tokenizer = TOK_BERT;
        e->limit = (long)json_integer_value(json_object_get(ev, "limit"));
    }

    const json_t *rv = json_object_get(r, "recover");
    s->has_recover = json_is_object(rv);
    if (s->has_recover) {
        struct job_recover_spec *q = &s->recover;
        const json_t *d = json_object_get(rv, "distill"), *sc = json_object_get(rv, "schedule");
        q->data = dup_str(json_object_get(rv, "data"), &nomem);
        q->epochs = (int)json_integer_value(json_object_get(rv, "epochs"));
        q->steps = (long)json_integer_value(json_object_get(rv, "steps"));
        q->batch_size = (int)json_integer_value(json_object_get(rv, "batch_size"));
        q->lr = json_real_value(json_object_get(rv, "lr"));
        q->warmup = json_real_value(json_object_get(rv, "warmup"));
        q->weight_decay = json_real_value(json_object_get(rv, "weight_decay"));
        q->max_length = (int)json_integer_value(json_object_get(rv, "max_length"));
        q->eval_every = (long)json_integer_value(json_object_get(rv, "eval_every"));
        q->shuffle = json_is_true(json_object_get(rv, "shuffle"));
        q->checkpoint_every = (long)json_integer_value(json_object_get(rv, "checkpoint_every"));
        q->max_grad_norm = json_real_value(json_object_get(rv, "max_grad_norm"));
        q->has_distill = json_is_object(d);
        q->temperature = json_real_value(json_object_get(d, "temperature"));
        q->alpha = json_real_value(json_object_get(d, "alpha"));
        q->has_schedule = json_is_object(sc);
        q->initial = json_real_value(json_object_get(sc, "initial"));
        q->final = json_real_value(json_object_get(sc, "final"));
        q->schedule_steps = (long)json_integer_value(json_object_get(sc, "steps"));
        q->schedule_every = (long)json_integer_value(json_object_get(sc, "every"));
    }

    json_array_foreach(json_object_get(r, "outputs"), i, v)
    {
        for (size_t b = 0; b < OUTPUT_COUNT; b++)
            if (!strcmp(json_string_value(v), output_names[b])) s->outputs |= 1u << b;
    }
    snprintf(s->device, sizeof s->device, "%s", str_of(r, "device"));
    snprintf(s->name, sizeof s->name, "%s", str_of(r, "name"));
    return nomem ? ERR_NOMEM : 0;
}

int job_request_normalize(const json_t *in, json_t **out, struct job_spec *spec,
                          struct job_field_error *fe)
{
    static const char *const keys[] = {
        "model",   "model_config", "targets",   "method",  "amount", "amount_kind", "scope",
        "options", "eval",         "outputs",   "device",  "name",   "structured",  "kind",
        "group",   "amounts",      "recommend", "recover", NULL};
    static const char *const scopes[] = {"local", "global", NULL};
    json_t *o = json_object();
    int rc = 0;
    memset(fe, 0, sizeof *fe);
    if (out) *out = NULL;
    if (spec) memset(spec, 0, sizeof *spec);
    if (!json_is_object(in)) {
        rc = bad(fe, "", "the job must be a JSON object");
        goto out;
    }
    if ((rc = only_keys(in, "", keys, fe))) goto out;
    if ((rc = get_string(in, "model", "model", 1, NULL, o, fe))) goto out;
    if ((rc = get_string(in, "model_config", "model_config", 0, NULL, o, fe))) goto out;

    int sweep = 0;
    if ((rc = get_kind(in, o, &sweep, fe)) || (rc = get_targets(in, sweep, o, fe))) goto out;

    json_t *m = json_object_get(in, "method");
    const struct prune_method *pm =
        json_is_string(m) ? prune_method_find(json_string_value(m)) : NULL;
    if (m && !json_is_null(m) && !pm) {
        char list[256] = "";
        for (const struct prune_method *p = prune_methods; p->name; p++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
                     p == prune_methods ? "" : ", ", p->name);
        rc = bad(fe, "method", "must be one of %s", list);
        goto out;
    }
    if (!pm) pm = prune_method_find("l1_unstructured");
    json_object_set_new(o, "method", json_string(pm->name));
    if (sweep) {
        if ((rc = get_sweep(in, pm, o, fe))) goto out; /* (it refuses "structured") */
    } else if ((rc = refuse_sweep_fields(in, fe))) {
        goto out;
    } else if (pm->id == PRUNE_STRUCTURED) {
        static const char *const unused[] = {"amount", "amount_kind", "scope"};
        for (size_t u = 0; u < 3; u++) {
            json_t *x = json_object_get(in, unused[u]);
            if (x && !json_is_null(x)) {
                rc = bad(fe, unused[u],
                         "is not used by method structured: give "
                         "structured.heads / neurons / target / scope");
                goto out;
            }
        }
        if ((rc = get_structured(in, o, fe))) goto out;
    } else {
        json_t *x = json_object_get(in, "structured");
        if (x && !json_is_null(x)) {
            rc = bad(fe, "structured", "is only for method structured");
            goto out;
        }
    }
    if (!sweep && (rc = get_amount(in, pm, o, fe))) goto out;
    /* structured has its own scope (and refuses this one), so a stored
     * request normalizes to itself again */
    if (!sweep && pm->id != PRUNE_STRUCTURED &&
        (rc = get_enum(in, "scope", "scope", scopes, "local", o, fe)))
        goto out;
    if (!sweep && (rc = check_target_amounts(o, pm, fe))) goto out;
    if (!sweep && pm->id != PRUNE_STRUCTURED &&
        !strcmp(json_string_value(json_object_get(o, "scope")), "global") &&
        !(pm->flags & PRUNE_F_GLOBAL)) {
        rc = bad(fe, "scope",
                 "%s cannot run with scope global (only l1_unstructured and "
                 "random_unstructured, as PyTorch's global_unstructured)",
                 pm->name);
        goto out;
    }
    if ((rc = get_options(in, pm, o, fe))) goto out;
    if ((rc = get_eval(in, o, fe))) goto out;
    if (sweep) {
        json_t *x = json_object_get(in, "recover");
        if (x && !json_is_null(x)) {
            rc = bad(fe, "recover", "is for a pruning job, not a sweep");
            goto out;
        }
    } else if ((rc = get_recover(in, o, fe))) {
        goto out;
    }
    if ((rc = get_outputs(in, o, fe))) goto out;

    json_t *d = json_object_get(in, "device");
    if (d && !json_is_null(d) && (!json_is_string(d) || !device_ok(json_string_value(d)))) {
        rc = bad(fe, "device", "must be \"auto\", \"cpu\", \"cuda\" or \"cuda:N\"");
        goto out;
    }
    json_object_set_new(o, "device", d && !json_is_null(d) ? json_incref(d) : json_string("auto"));

    json_t *n = json_object_get(in, "name");
    if (n && !json_is_null(n) && (!json_is_string(n) || json_string_length(n) > 200)) {
        rc = bad(fe, "name", "must be a string of at most 200 bytes");
        goto out;
    }
    json_object_set_new(o, "name", n && !json_is_null(n) ? json_incref(n) : json_string(""));
    if (spec && (rc = spec_of(o, spec))) {
        job_spec_free(spec);
        snprintf(fe->message, sizeof fe->message, "out of memory");
        goto out;
    }
    if (out)
        *out = o;
    else
        json_decref(o);
    o = NULL;
out:
    json_decref(o);
    return rc;
}

int job_spec_from_stored(const char *text, json_t **out, struct job_spec *spec,
                         struct job_field_error *fe)
{
    json_error_t je;
    json_t *req = json_loads(text, 0, &je);
    int rc;
    if (!req) {
        memset(fe, 0, sizeof *fe);
        if (out) *out = NULL;
        if (spec) memset(spec, 0, sizeof *spec);
        snprintf(fe->message, sizeof fe->message, "the stored request is not JSON: %s", je.text);
        return ERR_FORMAT;
    }
    /* Queued before eval.tokenizer existed: it ran with the legacy tokenizer
     * (the request then had no key for it), and still does. */
    json_t *ev = json_object_get(req, "eval");
    if (json_is_object(ev) && !json_object_get(ev, "tokenizer"))
        json_object_set_new(ev, "tokenizer", json_string(tok_mode_names[TOK_BERT_LEGACY]));
    rc = job_request_normalize(req, out, spec, fe);
    json_decref(req);
    return rc;
}

int job_request_resolve_paths(struct job_spec *spec, json_t *req, job_resolve_fn resolve, void *ud,
                              struct job_field_error *fe)
{
    struct {
        const char *field, *object, *key;
        char **path;
    } paths[] = {
        {"model", NULL, "model", &spec->model},
        {"model_config", NULL, "model_config", &spec->model_config},
        {"eval.data", "eval", "data", &spec->eval.data},
        {"eval.vocab", "eval", "vocab", &spec->eval.vocab},
        {"eval.classes", "eval", "classes", &spec->eval.classes},
        {"options.mask", "options", "mask", &spec->mask},
    };
    char resolved[4096], msg[256];
    memset(fe, 0, sizeof *fe);
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        if (!*paths[i].path) continue;
        msg[0] = '\0';
        int rc =
            resolve(ud, paths[i].field, *paths[i].path, resolved, sizeof resolved, msg, sizeof msg);
        char *copy = rc ? NULL : strdup(resolved);
        if (!rc && !copy) {
            rc = ERR_NOMEM;
            snprintf(msg, sizeof msg, "out of memory");
        }
        if (rc) {
            snprintf(fe->field, sizeof fe->field, "%s", paths[i].field);
            snprintf(fe->message, sizeof fe->message, "%s", msg);
            return rc;
        }
        free(*paths[i].path);
        *paths[i].path = copy;
        json_t *obj = paths[i].object ? json_object_get(req, paths[i].object) : req;
        if (json_is_object(obj)) json_object_set_new(obj, paths[i].key, json_string(resolved));
    }
    /* structured.calibration.data and recover.data, one level deeper: data
     * files, never the eval set (choosing on or training on the data it is
     * scored on is a leak) */
    struct {
        const char *field, *object, *sub;
        char **path;
    } deeper[] = {
        {"structured.calibration.data", "structured", "calibration", &spec->calibration_data},
        {"recover.data", "recover", NULL, &spec->recover.data},
    };
    for (size_t i = 0; i < sizeof deeper / sizeof deeper[0]; i++) {
        if (!*deeper[i].path) continue;
        msg[0] = '\0';
        int rc = resolve(ud, deeper[i].field, *deeper[i].path, resolved, sizeof resolved, msg,
                         sizeof msg);
        char *copy = rc ? NULL : strdup(resolved);
        if (!rc && !copy) rc = ERR_NOMEM, snprintf(msg, sizeof msg, "out of memory");
        if (!rc && spec->eval.data && !strcmp(resolved, spec->eval.data)) {
            rc = ERR_INVALID;
            snprintf(msg, sizeof msg, "is the eval data: %s on other data, such as train.txt",
                     i == 0 ? "calibrate" : "train");
        }
        if (rc) {
            free(copy);
            snprintf(fe->field, sizeof fe->field, "%s", deeper[i].field);
            snprintf(fe->message, sizeof fe->message, "%s", msg);
            return rc;
        }
        free(*deeper[i].path);
        *deeper[i].path = copy;
        json_t *obj = json_object_get(req, deeper[i].object);
        if (deeper[i].sub) obj = json_object_get(obj, deeper[i].sub);
        if (json_is_object(obj)) json_object_set_new(obj, "data", json_string(resolved));
    }
    return 0;
}
