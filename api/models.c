/* models.c - /v1/models/inspect: the parameters of a model under a model root */
#include "api.h"

#include <limits.h>

#include "err.h"
#include "inspect.h"
#include "roots.h"
#include "upload.h"

void api_models_inspect(struct api_request *rq, struct api_response *rs)
{
    const char *path = rq->query(rq->conn, "path");
    const char *config = rq->query(rq->conn, "model_config");
    char real[PATH_MAX], real_config[PATH_MAX], err[512];

    if (!path || !*path) {
        api_reply_error(rs, 400, "invalid_field", "path", "give the model path: ?path=...");
        return;
    }
    struct upload_scope scope = {rq->env->roots, rq->env->store, rq->token_name,
                                 rq->role >= AUTH_ADMIN}; /* another's uploads are refused */
    int rc = upload_model_resolve(&scope, path, real, sizeof real, err, sizeof err);
    if (rc) {
        api_reply_error(rs, api_status_for(rc), err_name(rc), "path", "%s", err);
        return;
    }
    if (config && *config &&
        (rc = upload_model_resolve(&scope, config, real_config, sizeof real_config, err,
                                   sizeof err))) {
        api_reply_error(rs, api_status_for(rc), err_name(rc), "model_config", "%s", err);
        return;
    }
    /* The file is there and allowed: a failure to load means it is no usable
     * model (a file of a folder outside the roots is still refused as such). */
    json_t *info = inspect_model(real, config && *config ? real_config : NULL, upload_model_resolve,
                                 &scope, &rc, err, sizeof err);
    if (!info) {
        if (rc == ERR_DENIED)
            api_reply_error(rs, 403, err_name(rc), "path", "%s", err);
        else
            api_reply_error(rs, 400, "invalid_field", "path", "%s", err);
        return;
    }
    api_reply_json(rs, 200, info);
}
