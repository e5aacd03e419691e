/* Licensed under the Apache License, Version 2.0. */
/* The registry of front ends and the shared error rendering. */

#include <apr_strings.h>

#include "rs_proto.h"

/* Dispatch order: the most specific matchers first. */
const rs_proto_t *const rs_protos[] = {
    &rs_proto_ietf,
    &rs_proto_tus,
    &rs_proto_offset,
    &rs_proto_md5,
    &rs_proto_flow,
    &rs_proto_slice,
    NULL
};

const rs_proto_t *rs_proto_find(const char *name)
{
    int i;

    for (i = 0; rs_protos[i]; i++) {
        if (!strcasecmp(rs_protos[i]->name, name)) {
            return rs_protos[i];
        }
    }
    return NULL;
}

const char *rs_proto_names(apr_pool_t *p)
{
    const char *names = "all";
    int i;

    for (i = 0; rs_protos[i]; i++) {
        names = apr_pstrcat(p, names, ", ", rs_protos[i]->name, NULL);
    }
    return names;
}

void rs_proto_error(rs_req_t *req, rs_error_t *err)
{
    req->error = err;
    req->status = err->status;
    req->content_type = "text/plain; charset=utf-8";
    req->text = apr_psprintf(req->pool, "%s: %s\n", err->name,
                             err->detail ? err->detail : "");
    if (RS_ERR_HOOK_REJECTED == err->code) {    /* the application's words */
        req->text = apr_pstrcat(req->pool, err->detail ? err->detail : "",
                                "\n", NULL);
    }
}
