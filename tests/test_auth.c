/* test_auth.c - bearer tokens: hashing, parsing config values, roles, checks */
#include <string.h>

#include "auth.h"
#include "ct.h"
#include "err.h"

int main(void)
{
    char hex[AUTH_HASH_HEX + 1], err[256], spec[128];
    const char *name = NULL;
    enum auth_role role = AUTH_NONE;
    struct auth *a = auth_create();

    /* sha256("abc") from FIPS 180-2. */
    CHECK_INT(auth_hash_token("abc", hex, err, sizeof err), 0);
    CHECK(!strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
          "sha256(abc) = %s", hex);
    CHECK_INT(auth_hash_token("", hex, err, sizeof err), ERR_INVALID);

    CHECK_INT(auth_count(a), 0);
    CHECK_INT(auth_check(a, "Bearer abc", &name, &role), ERR_DENIED);

    auth_hash_token("s3cret-reader", hex, err, sizeof err);
    snprintf(spec, sizeof spec, "read:%s", hex);
    CHECK_INT(auth_add(a, "reader", spec, err, sizeof err), 0);
    auth_hash_token("s3cret-admin", hex, err, sizeof err);
    for (char *p = hex; *p; p++) /* upper-case hex is accepted */
        if (*p >= 'a' && *p <= 'f') *p = (char)(*p - 'a' + 'A');
    snprintf(spec, sizeof spec, "admin:%s", hex);
    CHECK_INT(auth_add(a, "boss", spec, err, sizeof err), 0);
    CHECK_INT(auth_count(a), 2);

    /* Bad config values. */
    CHECK_INT(auth_add(a, "boss", spec, err, sizeof err), ERR_INVALID); /* twice */
    CHECK(strstr(err, "twice") != NULL, "message: %s", err);
    CHECK_INT(auth_add(a, "x", "root:00", err, sizeof err), ERR_INVALID);  /* role */
    CHECK_INT(auth_add(a, "x", "read:00", err, sizeof err), ERR_INVALID);  /* length */
    CHECK_INT(auth_add(a, "x", "readonly", err, sizeof err), ERR_INVALID); /* no colon */
    snprintf(spec, sizeof spec, "read:%.63sg", hex);
    CHECK_INT(auth_add(a, "x", spec, err, sizeof err), ERR_INVALID); /* not hex */
    CHECK_INT(auth_add(a, "bad name", spec, err, sizeof err), ERR_INVALID);
    CHECK_INT(auth_add(a, "", spec, err, sizeof err), ERR_INVALID);
    CHECK_INT(auth_count(a), 2);

    /* Checks. */
    CHECK_INT(auth_check(a, "Bearer s3cret-reader", &name, &role), 0);
    CHECK(name && !strcmp(name, "reader"), "name %s", name ? name : "(null)");
    CHECK_INT(role, AUTH_READ);
    CHECK_INT(auth_check(a, "bearer  s3cret-admin ", &name, &role), 0);
    CHECK(name && !strcmp(name, "boss"), "name %s", name ? name : "(null)");
    CHECK_INT(role, AUTH_ADMIN);
    CHECK_INT(auth_check(a, "Bearer s3cret-reade", &name, &role), ERR_DENIED);
    CHECK_INT(auth_check(a, "Bearer s3cret-reader2", &name, &role), ERR_DENIED);
    CHECK_INT(auth_check(a, NULL, &name, &role), ERR_NOTFOUND);
    CHECK_INT(auth_check(a, "Basic cmVhZGVyOng=", &name, &role), ERR_NOTFOUND);
    CHECK_INT(auth_check(a, "Bearer ", &name, &role), ERR_NOTFOUND);

    /* Roles. */
    CHECK(AUTH_READ < AUTH_SUBMIT && AUTH_SUBMIT < AUTH_ADMIN, "roles ordered");
    CHECK_INT(auth_role_parse("submit", &role), 0);
    CHECK_INT(role, AUTH_SUBMIT);
    CHECK_INT(auth_role_parse("Submit", &role), ERR_INVALID);
    CHECK(!strcmp(auth_role_name(AUTH_ADMIN), "admin"), "admin name");

    auth_destroy(a);
    auth_destroy(NULL);
    return ct_done("test_auth");
}
