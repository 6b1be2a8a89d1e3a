/* auth.c - bearer tokens: sha256-hashed, named, with a role */
#include "auth.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "err.h"

struct auth_token {
    char name[AUTH_NAME_MAX + 1];
    enum auth_role role;
    unsigned char hash[32]; /* sha256 of the secret */
};

struct auth {
    struct auth_token *tokens;
    size_t n, cap;
};

const char *auth_role_name(enum auth_role role)
{
    switch (role) {
    case AUTH_READ:
        return "read";
    case AUTH_SUBMIT:
        return "submit";
    case AUTH_ADMIN:
        return "admin";
    case AUTH_NONE:
        break;
    }
    return "none";
}

int auth_role_parse(const char *name, enum auth_role *out)
{
    static const enum auth_role all[] = {AUTH_READ, AUTH_SUBMIT, AUTH_ADMIN};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        if (!strcmp(name, auth_role_name(all[i]))) {
            *out = all[i];
            return 0;
        }
    }
    return ERR_INVALID;
}

struct auth *auth_create(void)
{
    return calloc(1, sizeof(struct auth));
}

void auth_destroy(struct auth *a)
{
    if (!a) return;
    OPENSSL_cleanse(a->tokens, a->cap * sizeof *a->tokens);
    free(a->tokens);
    free(a);
}

size_t auth_count(const struct auth *a)
{
    return a ? a->n : 0;
}

static int sha256(const void *data, size_t len, unsigned char out[32])
{
    unsigned int outlen = 0;
    if (!EVP_Digest(data, len, out, &outlen, EVP_sha256(), NULL) || outlen != 32)
        return ERR_INTERNAL;
    return 0;
}

static int hex_value(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

int auth_add(struct auth *a, const char *name, const char *spec, char *err, size_t errlen)
{
    struct auth_token t = {0};
    const char *colon = strchr(spec, ':');
    char role[16];
    size_t nlen = strlen(name);

    if (nlen == 0 || nlen > AUTH_NAME_MAX)
        return err_set(err, errlen, ERR_INVALID, "token name must have 1 to %d characters",
                       AUTH_NAME_MAX);
    for (size_t i = 0; i < nlen; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!isalnum(c) && c != '-' && c != '_' && c != '.')
            return err_set(err, errlen, ERR_INVALID,
                           "token name '%s': use letters, digits, '-', '_' and '.'", name);
    }
    if (!colon || (size_t)(colon - spec) >= sizeof role)
        return err_set(err, errlen, ERR_INVALID, "token '%s': expected role:sha256hex", name);
    memcpy(role, spec, (size_t)(colon - spec));
    role[colon - spec] = '\0';
    if (auth_role_parse(role, &t.role))
        return err_set(err, errlen, ERR_INVALID,
                       "token '%s': role '%s' is not read, submit or admin", name, role);
    const char *hex = colon + 1;
    if (strlen(hex) != AUTH_HASH_HEX)
        return err_set(
            err, errlen, ERR_INVALID,
            "token '%s': the hash must be 64 hex digits (sha256; see prunerd token-hash)", name);
    for (int i = 0; i < 32; i++) {
        int hi = hex_value((unsigned char)hex[2 * i]),
            lo = hex_value((unsigned char)hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return err_set(err, errlen, ERR_INVALID, "token '%s': the hash is not hex", name);
        t.hash[i] = (unsigned char)(hi << 4 | lo);
    }
    for (size_t i = 0; i < a->n; i++)
        if (!strcmp(a->tokens[i].name, name))
            return err_set(err, errlen, ERR_INVALID, "token '%s' is defined twice", name);
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 4;
        struct auth_token *nt = realloc(a->tokens, cap * sizeof *nt);
        if (!nt) return err_set(err, errlen, ERR_NOMEM, "out of memory");
        a->tokens = nt;
        a->cap = cap;
    }
    memcpy(t.name, name, nlen + 1);
    a->tokens[a->n++] = t;
    return 0;
}

int auth_check(const struct auth *a, const char *authorization, const char **name,
               enum auth_role *role)
{
    unsigned char h[32];
    const char *p = authorization;
    size_t found = (size_t)-1;

    if (!p || strncasecmp(p, "Bearer ", 7) != 0) return ERR_NOTFOUND;
    p += 7;
    while (*p == ' ')
        p++;
    size_t len = strlen(p);
    while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
        len--;
    if (!len) return ERR_NOTFOUND;
    if (sha256(p, len, h)) return ERR_INTERNAL;
    /* Compare with every token, without stopping at a match. */
    for (size_t i = 0; i < a->n; i++) {
        int diff = CRYPTO_memcmp(h, a->tokens[i].hash, sizeof h);
        size_t mask = (size_t)0 - (size_t)(diff == 0);
        found = (found & ~mask) | (i & mask);
    }
    OPENSSL_cleanse(h, sizeof h);
    if (found == (size_t)-1) return ERR_DENIED;
    *name = a->tokens[found].name;
    *role = a->tokens[found].role;
    return 0;
}

int auth_hash_token(const char *secret, char hex[AUTH_HASH_HEX + 1], char *err, size_t errlen)
{
    static const char digits[] = "0123456789abcdef";
    unsigned char h[32];
    if (!secret || !*secret) return err_set(err, errlen, ERR_INVALID, "the token is empty");
    if (sha256(secret, strlen(secret), h))
        return err_set(err, errlen, ERR_INTERNAL, "sha256 failed");
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = digits[h[i] >> 4];
        hex[2 * i + 1] = digits[h[i] & 15];
    }
    hex[AUTH_HASH_HEX] = '\0';
    return 0;
}
