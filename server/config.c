/* config.c - prunerd serve settings: defaults, INI config file, command-line flags */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

static char *xstrdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

static int set_str(char **dst, const char *v)
{
    char *d = strdup(v);
    if (!d) return ERR_NOMEM;
    free(*dst);
    *dst = d;
    return 0;
}

static void list_clear(char ***list, size_t *n)
{
    for (size_t i = 0; i < *n; i++)
        free((*list)[i]);
    free(*list);
    *list = NULL;
    *n = 0;
}

static int list_add(char ***list, size_t *n, const char *v)
{
    char **nl = realloc(*list, (*n + 1) * sizeof *nl);
    if (!nl) return ERR_NOMEM;
    *list = nl;
    if (!(nl[*n] = strdup(v))) return ERR_NOMEM;
    (*n)++;
    return 0;
}

int config_init(struct config *c, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    snprintf(c->host, sizeof c->host, "127.0.0.1");
    c->port = 8080;
    c->workers = 1;
    c->http_threads = 4;
    c->body_limit = 1 << 20;
    c->upload_limit = 4ull << 30;
    c->max_attempts = 3;
    c->stop_timeout_s = 20;
    c->retention_days = 30;
    c->free_space_factor = 2.0;
    c->lease_seconds = 30;
    if (!(c->data_dir = xstrdup("./var")) || list_add(&c->model_roots, &c->n_model_roots, ".") ||
        list_add(&c->data_roots, &c->n_data_roots, ".")) {
        config_free(c);
        return err_set(err, errlen, ERR_NOMEM, "out of memory");
    }
    return 0;
}

void config_free(struct config *c)
{
    if (!c) return;
    free(c->data_dir);
    free(c->artifact_dir);
    free(c->queue_dsn);
    free(c->plugin_dir);
    list_clear(&c->model_roots, &c->n_model_roots);
    list_clear(&c->data_roots, &c->n_data_roots);
    for (size_t i = 0; i < c->n_tokens; i++) {
        free(c->tokens[i].name);
        free(c->tokens[i].spec);
    }
    free(c->tokens);
    memset(c, 0, sizeof *c);
}

int config_parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    while (isspace((unsigned char)*s))
        s++;
    if (!isdigit((unsigned char)*s)) return ERR_INVALID;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno) return ERR_INVALID;
    unsigned shift = 0;
    switch (toupper((unsigned char)*end)) {
    case 'K':
        shift = 10;
        end++;
        break;
    case 'M':
        shift = 20;
        end++;
        break;
    case 'G':
        shift = 30;
        end++;
        break;
    case 'T':
        shift = 40;
        end++;
        break;
    default:
        break;
    }
    if (*end == 'i' || *end == 'I') end++;
    if (*end == 'B' || *end == 'b') end++;
    if (*end != '\0' || (shift && v > (UINT64_MAX >> shift))) return ERR_INVALID;
    *out = (uint64_t)v << shift;
    return 0;
}

static int parse_int(const char *s, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < lo || v > hi) return ERR_INVALID;
    *out = (int)v;
    return 0;
}

int config_parse_listen(struct config *c, const char *s, char *err, size_t errlen)
{
    const char *colon;
    char host[sizeof c->host];
    int port;

    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            return err_set(err, errlen, ERR_INVALID, "listen '%s': expected [ADDR]:PORT", s);
        if ((size_t)(close - s - 1) >= sizeof host)
            return err_set(err, errlen, ERR_INVALID, "listen '%s': address too long", s);
        memcpy(host, s + 1, (size_t)(close - s - 1));
        host[close - s - 1] = '\0';
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon) return err_set(err, errlen, ERR_INVALID, "listen '%s': expected ADDR:PORT", s);
        if ((size_t)(colon - s) >= sizeof host)
            return err_set(err, errlen, ERR_INVALID, "listen '%s': address too long", s);
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = '\0';
    }
    if (parse_int(colon + 1, 0, 65535, &port))
        return err_set(err, errlen, ERR_INVALID, "listen '%s': port must be 0 to 65535", s);
    if (host[0]) snprintf(c->host, sizeof c->host, "%s", host);
    c->port = (unsigned)port;
    return 0;
}

int config_host_is_loopback(const char *host)
{
    return !strncmp(host, "127.", 4) || !strcmp(host, "localhost") || !strcmp(host, "::1");
}

/* [server] gpus: "" or "none" (no list), "all", or device indices "0,1,3"
 * (each 0..63, no repeats). */
static int config_parse_gpus(struct config *c, const char *val, char *msg, size_t msglen)
{
    c->n_gpus = 0;
    c->gpus_all = 0;
    if (!*val || !strcmp(val, "none")) return 0;
    if (!strcmp(val, "all")) {
        c->gpus_all = 1;
        return 0;
    }
    const char *p = val;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v >= CONFIG_MAX_GPUS || (*end && *end != ',') ||
            c->n_gpus == CONFIG_MAX_GPUS)
            goto bad;
        for (int i = 0; i < c->n_gpus; i++)
            if (c->gpus[i] == (int)v) goto bad;
        c->gpus[c->n_gpus++] = (int)v;
        p = *end ? end + 1 : end;
        if (*end && !*p) goto bad;
    }
    return 0;
bad:
    c->n_gpus = 0;
    return err_set(msg, msglen, ERR_INVALID,
                   "gpus must be none, all, or CUDA device indices 0..%d separated by commas, "
                   "each once (got \"%s\")",
                   CONFIG_MAX_GPUS - 1, val);
}

/* Sets one key of one section; msg gets the reason on failure. */
static int config_set(struct config *c, const char *section, const char *key, const char *val,
                      int from_file, char *msg, size_t msglen)
{
    uint64_t size;
    int rc = 0;

#define KEY(s, k) (!strcmp(section, s) && !strcmp(key, k))
    if (KEY("server", "listen")) {
        return config_parse_listen(c, val, msg, msglen);
    } else if (KEY("server", "workers")) {
        if (parse_int(val, 1, 64, &c->workers))
            return err_set(msg, msglen, ERR_INVALID, "workers must be 1 to 64");
    } else if (KEY("server", "gpus")) {
        return config_parse_gpus(c, val, msg, msglen);
    } else if (KEY("server", "http_threads")) {
        if (parse_int(val, 1, 256, &c->http_threads))
            return err_set(msg, msglen, ERR_INVALID, "http_threads must be 1 to 256");
    } else if (KEY("server", "job_threads")) {
        if (parse_int(val, 0, 256, &c->job_threads))
            return err_set(msg, msglen, ERR_INVALID, "job_threads must be 0 to 256");
    } else if (KEY("server", "log_format")) {
        if (strcmp(val, "text") && strcmp(val, "json"))
            return err_set(msg, msglen, ERR_INVALID, "log_format must be text or json");
        c->log_json = !strcmp(val, "json");
    } else if (KEY("server", "plugin_dir")) {
        rc = set_str(&c->plugin_dir, val);
    } else if (KEY("paths", "data_dir")) {
        rc = set_str(&c->data_dir, val);
    } else if (KEY("paths", "artifact_dir")) {
        rc = set_str(&c->artifact_dir, val);
    } else if (KEY("queue", "backend")) {
        if (strcmp(val, "sqlite") && strcmp(val, "postgres"))
            return err_set(msg, msglen, ERR_INVALID, "backend must be sqlite or postgres");
        c->queue_postgres = !strcmp(val, "postgres");
    } else if (KEY("queue", "dsn")) {
        rc = set_str(&c->queue_dsn, val);
    } else if (KEY("queue", "lease_seconds")) {
        if (parse_int(val, 2, 86400, &c->lease_seconds))
            return err_set(msg, msglen, ERR_INVALID, "lease_seconds must be 2 to 86400");
    } else if (KEY("paths", "model_root")) {
        rc = list_add(&c->model_roots, &c->n_model_roots, val);
    } else if (KEY("paths", "data_root")) {
        rc = list_add(&c->data_roots, &c->n_data_roots, val);
    } else if (KEY("limits", "body_limit")) {
        if (config_parse_size(val, &size) || size == 0 || size > (1ull << 32))
            return err_set(msg, msglen, ERR_INVALID, "body_limit must be 1 byte to 4G");
        c->body_limit = (size_t)size;
    } else if (KEY("limits", "upload_limit")) {
        if (config_parse_size(val, &size) || size == 0)
            return err_set(msg, msglen, ERR_INVALID,
                           "upload_limit must be a size of 1 byte or more");
        c->upload_limit = size;
    } else if (KEY("limits", "max_attempts")) {
        if (parse_int(val, 1, 100, &c->max_attempts))
            return err_set(msg, msglen, ERR_INVALID, "max_attempts must be 1 to 100");
    } else if (KEY("limits", "stop_timeout")) {
        if (parse_int(val, 1, 3600, &c->stop_timeout_s))
            return err_set(msg, msglen, ERR_INVALID, "stop_timeout must be 1 to 3600 seconds");
    } else if (KEY("limits", "retention_days")) {
        if (parse_int(val, 0, 36500, &c->retention_days))
            return err_set(msg, msglen, ERR_INVALID, "retention_days must be 0 to 36500");
    } else if (KEY("limits", "free_space_factor")) {
        char *end;
        double f = strtod(val, &end);
        if (end == val || *end || !(f >= 0 && f <= 1e6))
            return err_set(msg, msglen, ERR_INVALID, "free_space_factor must be 0 to 1000000");
        c->free_space_factor = f;
    } else if (KEY("limits", "quota")) {
        if (config_parse_size(val, &c->quota_bytes))
            return err_set(msg, msglen, ERR_INVALID, "quota must be a size (e.g. 10G) or 0");
    } else if (!strcmp(section, "tokens") && from_file) {
        struct config_token *nt = realloc(c->tokens, (c->n_tokens + 1) * sizeof *nt);
        if (!nt) return err_set(msg, msglen, ERR_NOMEM, "out of memory");
        c->tokens = nt;
        nt[c->n_tokens].name = strdup(key);
        nt[c->n_tokens].spec = strdup(val);
        c->n_tokens++;
        if (!nt[c->n_tokens - 1].name || !nt[c->n_tokens - 1].spec) rc = ERR_NOMEM;
    } else {
        return err_set(msg, msglen, ERR_INVALID, "unknown setting [%s] %s", section, key);
    }
#undef KEY
    if (rc) return err_set(msg, msglen, rc, "out of memory");
    return 0;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

int config_parse_text(struct config *c, const char *text, const char *source, char *err,
                      size_t errlen)
{
    char section[32] = "";
    char *copy = strdup(text), *save = NULL, *line;
    int lineno = 0, rc = 0, roots_reset[2] = {0, 0};
    char msg[256];

    if (!copy) return err_set(err, errlen, ERR_NOMEM, "out of memory");
    /* strtok_r would skip empty lines and miscount: walk by hand. */
    for (line = copy; line; line = save) {
        char *nl = strchr(line, '\n');
        save = nl ? nl + 1 : NULL;
        if (nl) *nl = '\0';
        lineno++;
        char *s = trim(line);
        if (!*s || *s == '#' || *s == ';') continue;
        if (*s == '[') {
            char *close = strchr(s, ']');
            if (!close || close[1] != '\0' || (size_t)(close - s - 1) >= sizeof section) {
                rc = err_set(err, errlen, ERR_INVALID, "%s:%d: bad section header", source, lineno);
                goto out;
            }
            *close = '\0';
            snprintf(section, sizeof section, "%s", trim(s + 1));
            if (strcmp(section, "server") && strcmp(section, "paths") &&
                strcmp(section, "limits") && strcmp(section, "tokens") &&
                strcmp(section, "queue")) {
                rc = err_set(err, errlen, ERR_INVALID, "%s:%d: unknown section [%s]", source,
                             lineno, section);
                goto out;
            }
            continue;
        }
        char *eq = strchr(s, '=');
        if (!eq || !section[0]) {
            rc = err_set(err, errlen, ERR_INVALID, "%s:%d: expected key = value in a section",
                         source, lineno);
            goto out;
        }
        *eq = '\0';
        char *key = trim(s), *val = trim(eq + 1);
        /* The file's roots replace the defaults (".") at the first mention. */
        if (!strcmp(section, "paths") && !strcmp(key, "model_root") && !roots_reset[0]++)
            list_clear(&c->model_roots, &c->n_model_roots);
        if (!strcmp(section, "paths") && !strcmp(key, "data_root") && !roots_reset[1]++)
            list_clear(&c->data_roots, &c->n_data_roots);
        rc = config_set(c, section, key, val, 1, msg, sizeof msg);
        if (rc) {
            err_set(err, errlen, rc, "%s:%d: %s", source, lineno, msg);
            goto out;
        }
    }
out:
    free(copy);
    return rc;
}

int config_parse_file(struct config *c, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    char *buf = NULL;
    size_t len = 0;
    int rc = 0;

    if (!f)
        return err_set(err, errlen, errno == ENOENT ? ERR_NOTFOUND : ERR_IO, "%s: %s", path,
                       strerror(errno));
    if (fseek(f, 0, SEEK_END) || (long)(len = (size_t)ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
        rc = err_set(err, errlen, ERR_IO, "%s: cannot read", path);
        goto out;
    }
    if (len > (1 << 20)) {
        rc = err_set(err, errlen, ERR_INVALID, "%s: over 1 MiB", path);
        goto out;
    }
    if (!(buf = malloc(len + 1))) {
        rc = err_set(err, errlen, ERR_NOMEM, "out of memory");
        goto out;
    }
    if (fread(buf, 1, len, f) != len) {
        rc = err_set(err, errlen, ERR_IO, "%s: short read", path);
        goto out;
    }
    buf[len] = '\0';
    rc = config_parse_text(c, buf, path, err, errlen);
out:
    free(buf);
    fclose(f);
    return rc;
}

/* Flags and the [section] key they set. */
static const struct {
    const char *flag, *section, *key;
} flags[] = {
    {"--listen", "server", "listen"},
    {"--workers", "server", "workers"},
    {"--gpus", "server", "gpus"},
    {"--http-threads", "server", "http_threads"},
    {"--job-threads", "server", "job_threads"},
    {"--log-format", "server", "log_format"},
    {"--plugin-dir", "server", "plugin_dir"},
    {"--data-dir", "paths", "data_dir"},
    {"--artifact-dir", "paths", "artifact_dir"},
    {"--queue-backend", "queue", "backend"},
    {"--queue-dsn", "queue", "dsn"},
    {"--lease-seconds", "queue", "lease_seconds"},
    {"--model-root", "paths", "model_root"},
    {"--data-root", "paths", "data_root"},
    {"--body-limit", "limits", "body_limit"},
    {"--upload-limit", "limits", "upload_limit"},
    {"--max-attempts", "limits", "max_attempts"},
    {"--stop-timeout", "limits", "stop_timeout"},
    {"--retention-days", "limits", "retention_days"},
    {"--quota", "limits", "quota"},
};

void config_usage(FILE *out)
{
    fprintf(out,
            "usage: prunerd serve [--config FILE] [--listen ADDR:PORT] [--data-dir DIR]\n"
            "                     [--model-root DIR ...] [--data-root DIR ...] [--workers N]\n"
            "                     [--gpus all|none|I,J,...] [--http-threads N] [--job-threads "
            "N] [--log-format text|json]\n"
            "                     [--plugin-dir DIR]\n"
            "                     [--body-limit SIZE] [--upload-limit SIZE] [--max-attempts N]\n"
            "                     [--stop-timeout S]\n"
            "                     [--retention-days D] [--quota SIZE]\n"
            "                     [--artifact-dir DIR] [--queue-backend sqlite|postgres]\n"
            "                     [--queue-dsn DSN] [--lease-seconds S]\n"
            "Flags override the config file (see deploy/prunerd.conf.example).\n");
}

int config_parse_args(struct config *c, int argc, char **argv, int *help, char *err, size_t errlen)
{
    int rc, roots_reset[2] = {0, 0};
    char msg[256];

    *help = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--config")) {
            if (i + 1 >= argc) return err_set(err, errlen, ERR_INVALID, "--config needs a value");
            if ((rc = config_parse_file(c, argv[i + 1], err, errlen))) return rc;
        }
    }
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *val = NULL;
        size_t k;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            *help = 1;
            return 0;
        }
        if (!strcmp(a, "--config")) {
            i++;
            continue;
        }
        for (k = 0; k < sizeof flags / sizeof flags[0]; k++) {
            size_t n = strlen(flags[k].flag);
            if (!strncmp(a, flags[k].flag, n) && (a[n] == '\0' || a[n] == '=')) {
                if (a[n] == '=')
                    val = a + n + 1;
                else if (i + 1 < argc)
                    val = argv[++i];
                else
                    return err_set(err, errlen, ERR_INVALID, "%s needs a value", flags[k].flag);
                break;
            }
        }
        if (k == sizeof flags / sizeof flags[0])
            return err_set(err, errlen, ERR_INVALID, "unknown option '%s'", a);
        /* Roots on the command line replace the file's. */
        if (!strcmp(flags[k].key, "model_root") && !roots_reset[0]++)
            list_clear(&c->model_roots, &c->n_model_roots);
        if (!strcmp(flags[k].key, "data_root") && !roots_reset[1]++)
            list_clear(&c->data_roots, &c->n_data_roots);
        if ((rc = config_set(c, flags[k].section, flags[k].key, val, 0, msg, sizeof msg)))
            return err_set(err, errlen, rc, "%s: %s", flags[k].flag, msg);
    }
    return 0;
}

int config_validate(const struct config *c, char *err, size_t errlen)
{
    if (!c->n_model_roots) return err_set(err, errlen, ERR_INVALID, "no model root");
    if (!c->n_data_roots && !c->n_model_roots)
        return err_set(err, errlen, ERR_INVALID, "no data root");
    if (c->queue_postgres && (!c->queue_dsn || !*c->queue_dsn))
        return err_set(err, errlen, ERR_INVALID,
                       "[queue] backend = postgres needs a dsn (or --queue-dsn)");
    if (!c->queue_postgres && c->queue_dsn)
        return err_set(err, errlen, ERR_INVALID,
                       "a queue dsn is set but [queue] backend is sqlite: set backend = postgres");
    if (!config_host_is_loopback(c->host) && !c->n_tokens)
        return err_set(err, errlen, ERR_INVALID,
                       "refusing to listen on %s without tokens: add a [tokens] section "
                       "(prunerd token-hash prints a line) or listen on 127.0.0.1",
                       c->host);
    return 0;
}
