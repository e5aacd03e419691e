/* Licensed under the Apache License, Version 2.0. */
/*
 * The expiry sweep. Expired uploads must be reclaimed even when no request
 * touches them, so a singleton watchdog (mod_watchdog, one thread in one
 * child at a time, cf. mod_md_drive.c) calls rs_engine_sweep every
 * ResumableSweepInterval. The sweep lists the keys in one read
 * transaction (writes wait for it: about a second per million records),
 * reads the records 512 to a short read transaction, and acts only on the
 * few with work, each in its own transactions, taking an upload's writer
 * lock without waiting, so it never removes an upload being written. It
 * also materialises composed uploads a request left (its child was killed
 * before the log phase, or the copy failed): rs_engine_materialise logs
 * each one itself.
 */

#include <apr_optional.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <mod_watchdog.h>

#include "mod_resumable_private.h"
#include "mod_resumable_config.h"
#include "rs_stats.h"

#define RS_WATCHDOG "_resumable_sweep_"

static APR_OPTIONAL_FN_TYPE(ap_watchdog_get_instance) *wd_get_instance;
static APR_OPTIONAL_FN_TYPE(ap_watchdog_register_callback) *wd_register;

static apr_status_t sweep(int state, void *data, apr_pool_t *ptemp)
{
    server_rec *s = data;
    rs_engine_t *e;
    apr_status_t rv;
    int removed = 0;
    apr_time_t start = apr_time_now();

    if (AP_WATCHDOG_STATE_RUNNING != state
        || !(e = rs_httpd_engine_hold())) {
        return APR_SUCCESS;
    }
    rv = rs_engine_sweep(e, start, ptemp, &removed);
    rs_httpd_engine_release();
    start = apr_time_now() - start;
    rs_stats_add(RS_STAT_SWEEPS, 1);
    rs_stats_add(RS_STAT_SWEEP_USEC, start);
    rs_stats_set(RS_STAT_SWEEP_LAST_USEC, (apr_uint64_t)start);
    if (APR_SUCCESS != rv) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s, RS_LOGNO(04010)
                     "expiry sweep could not read the state database");
    }
    else if (removed) {
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, RS_LOGNO(04011)
                     "expiry sweep removed %d upload(s)", removed);
    }
    return APR_SUCCESS;      /* keep being called */
}

int rs_httpd_gc_post_config(apr_pool_t *pconf, server_rec *s)
{
    ap_watchdog_t *wd;
    apr_status_t rv;

    wd_get_instance = APR_RETRIEVE_OPTIONAL_FN(ap_watchdog_get_instance);
    wd_register = APR_RETRIEVE_OPTIONAL_FN(ap_watchdog_register_callback);
    if (!wd_get_instance || !wd_register) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, RS_LOGNO(04012)
                     "mod_watchdog is required to expire uploads; load it");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    rv = wd_get_instance(&wd, RS_WATCHDOG, 0, 1, pconf);
    if (APR_SUCCESS == rv) {
        rv = wd_register(wd, rs_conf_sweep_interval(s), s, sweep);
    }
    if (APR_SUCCESS != rv) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, RS_LOGNO(04013)
                     "cannot register the expiry sweep with mod_watchdog");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return OK;
}
