/* test_err.c - the error convention helpers */
#include <string.h>

#include "ct.h"
#include "err.h"

int main(void)
{
    char msg[16];
    CHECK_INT(err_set(msg, sizeof msg, ERR_INVALID, "amount %d", 7), ERR_INVALID);
    CHECK(!strcmp(msg, "amount 7"), "message '%s'", msg);
    CHECK_INT(err_set(msg, 4, ERR_IO, "truncated"), ERR_IO);
    CHECK(!strcmp(msg, "tru"), "truncated to '%s'", msg);
    CHECK_INT(err_set(NULL, 0, ERR_NOMEM, "x"), ERR_NOMEM);
    CHECK(!strcmp(err_name(ERR_DENIED), "denied"), "name '%s'", err_name(ERR_DENIED));
    CHECK(!strcmp(err_name(12345), "unknown"), "name '%s'", err_name(12345));
    return ct_done("test_err");
}
