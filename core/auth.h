/* auth.h - bearer tokens: sha256-hashed, named, with a role */
#ifndef PRUNERD_AUTH_H
#define PRUNERD_AUTH_H

#include <stddef.h>

/*
 * Roles are ordered: read < submit < admin.
 *   read:   list, view, download
 *   submit: also submit, and cancel / delete its own jobs
 *   admin:  everything (any job)
 * Tokens are kept only as the sha256 of the secret, in lower-case hex, and
 * compared in constant time.  A config line reads `name = role:sha256hex`.
 */
enum auth_role { AUTH_NONE = 0, AUTH_READ = 1, AUTH_SUBMIT = 2, AUTH_ADMIN = 3 };

#define AUTH_NAME_MAX 64
#define AUTH_HASH_HEX 64

const char *auth_role_name(enum auth_role role); /* "read", ...; static */
int auth_role_parse(const char *name, enum auth_role *out);

struct auth;

/* An empty token set; NULL when out of memory.  auth_destroy(NULL) is a no-op. */
struct auth *auth_create(void);
void auth_destroy(struct auth *a);

/* Adds a token from its config value "role:sha256hex" (64 hex digits, any
 * case).  ERR_INVALID with a message on a bad name, role or hash, or a name
 * already used. */
int auth_add(struct auth *a, const char *name, const char *spec, char *err, size_t errlen);
size_t auth_count(const struct auth *a);

/*
 * Checks an Authorization header value ("Bearer SECRET"; may be NULL).
 * On a match writes the token's name (static until auth_destroy) and role
 * and returns 0.  ERR_NOTFOUND when no bearer token was presented,
 * ERR_DENIED when it matches none.  Every stored token is compared, in
 * constant time, whatever matches.
 */
int auth_check(const struct auth *a, const char *authorization, const char **name,
               enum auth_role *role);

/* sha256 of the secret in lower-case hex (hex has room for 65 bytes). */
int auth_hash_token(const char *secret, char hex[AUTH_HASH_HEX + 1], char *err, size_t errlen);

#endif
