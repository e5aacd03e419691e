/* Licensed to the Apache Software Foundation (ASF) under one or more
 * contributor license agreements; and licensed under the Apache License,
 * Version 2.0 (the "License"); you may not use this file except in
 * compliance with the License. See http://www.apache.org/licenses/LICENSE-2.0
 */
/*
 * mod_resumable: resumable, chunked, parallel uploads inside httpd.
 *
 * This file is only the module record, hook registration and the log-phase
 * hook that materialises composed uploads (rs_engine.h). The upload
 * engine and the protocol front ends are APR-only (src/rs_*.c); the httpd
 * glue lives in src/mod_resumable_*.c:
 *   _config   directives and per-dir/per-server configuration
 *   _state    state database, its global mutex, log seam
 *   _gc       expiry sweep on mod_watchdog
 *   _hook     application hooks: engine callbacks, outbox deliverer
 *   _request  request view, body reader, dispatch, CORS, responses
 *   _download GET/HEAD of finished uploads
 *   _walk     ResumableMapToStorage Off: no directory walk for upload URLs
 */

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <http_core.h>
#include <http_request.h>
#include <http_protocol.h>
#include <ap_release.h>

#include "mod_resumable_private.h"
#include "mod_resumable_config.h"
#include "rs_version.h"

static int rs_pre_config(apr_pool_t *pconf, apr_pool_t *plog,
                         apr_pool_t *ptemp)
{
    rs_httpd_state_pre_config(pconf);
    rs_conf_reset(pconf);
    rs_conf_reset_hooks();
    return OK;
}

/* Runs before mod_watchdog's post_config (APR_HOOK_LAST), so the sweep's
 * callback is registered when the watchdog threads are planned. */
static int rs_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                          apr_pool_t *ptemp, server_rec *s)
{
    int rv = rs_httpd_state_post_config(pconf, ptemp, s);

    if (OK != rv || AP_SQ_MS_CREATE_PRE_CONFIG == ap_state_query(
                                                      AP_SQ_MAIN_STATE)) {
        return rv;
    }
    rs_conf_store_ids_init(pconf);
    if (OK != (rv = rs_httpd_status_post_config(pconf, s))) {
        return rv;
    }
    if (OK != (rv = rs_httpd_gc_post_config(pconf, s))
        || OK != (rv = rs_httpd_hook_post_config(pconf, s))) {
        return rv;
    }
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, RS_LOGNO(04040)
                 "mod_resumable/%s started", RS_VERSION);
    return OK;
}

static void rs_child_init(apr_pool_t *p, server_rec *s)
{
    rs_httpd_state_child_init(p, s);
}

/* After the response went out (the log phase): materialise the uploads
 * this request composed (rs_engine.h, "Composition"), in this child, off
 * the request path. A failure leaves them composed for the sweep; the
 * engine logs it. */
static int rs_log_transaction(request_rec *r)
{
    const apr_array_header_t *ids = rs_engine_composed(r->pool);
    rs_engine_t *e = ids ? rs_httpd_engine() : NULL;
    rs_area_t *a = e ? rs_conf_area(r) : NULL;
    int i;

    for (i = 0; a && i < ids->nelts; i++) {
        rs_engine_materialise(e, a, APR_ARRAY_IDX(ids, i, const char *),
                              r->pool);
    }
    return DECLINED;
}

static void rs_register_hooks(apr_pool_t *p)
{
    ap_hook_pre_config(rs_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(rs_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(rs_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    /* after mod_alias/mod_rewrite/mod_proxy (a URL they map keeps its
     * walk), before core_translate; map_to_storage before core's walk */
    ap_hook_translate_name(rs_httpd_walk_translate, NULL, NULL,
                           APR_HOOK_LAST);
    ap_hook_map_to_storage(rs_httpd_walk_map, NULL, NULL, APR_HOOK_FIRST);
    ap_hook_handler(rs_httpd_handle, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_fixups(rs_httpd_range_fixup, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_fixups(rs_httpd_store_guard, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_log_transaction(rs_log_transaction, NULL, NULL, APR_HOOK_LAST);
    rs_httpd_status_register();
}

module AP_MODULE_DECLARE_DATA resumable_module = {
    STANDARD20_MODULE_STUFF,
    rs_conf_create_dir,
    rs_conf_merge_dir,
    rs_conf_create_srv,
    rs_conf_merge_srv,
    rs_conf_cmds,
    rs_register_hooks,
#if defined(AP_MODULE_FLAG_ALWAYS_MERGE)
    AP_MODULE_FLAG_ALWAYS_MERGE
#endif
};
