/* models.c - /v1/models/inspect: the parameters of a model under a model root */
#include "api.h"

#include <limits.h>

#include "err.h"
#include "inspect.h"
#include "roots.h"

void api_models_inspect(struct api_request *rq, struct api_response *rs)
{
    const char *path = rq->query(rq->conn, "path");
    char real[PATH_MAX], err[512];

    if (!path || !*path) {
        api_reply_error(rs, 400, "invalid_field", "path", "give the model path: ?path=...");
        return;
    }
    int rc = roots_resolve(rq->env->roots, ROOTS_MODEL, path, real, sizeof real, err, sizeof err);
    if (rc) {
        api_reply_error(rs, api_status_for(rc), err_name(rc), "path", "%s", err);
        return;
    }
    /* The file is there and allowed: a failure to load means it is no usable model. */
    json_t *info = inspect_model(real, err, sizeof err);
    if (!info) {
        api_reply_error(rs, 400, "invalid_field", "path", "%s", err);
        return;
    }
    api_reply_json(rs, 200, info);
}
