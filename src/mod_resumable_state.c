/* Licensed under the Apache License, Version 2.0. */
/*
 * Process-wide state of the module: the log seam into httpd's error log,
 * the global mutex that guards the state database, the store and the
 * engine. The mutex follows httpd's pattern (mod_dav_fs, mod_authn_socache):
 * registered in pre_config (so `Mutex resumable-statedb ...` can tune it),
 * created in post_config (not in the dry-run pass), reattached in
 * child_init. It only ever guards short dbm transactions: the writing ones
 * (read transactions on sdbm share sdbm's own file lock instead and do not
 * take it; see rs_store.h).
 */

#include <unistd.h>
#include <apr_strings.h>
#include <apr_file_info.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <http_main.h>
#include <http_core.h>
#include <util_mutex.h>
#include <mpm_common.h>
#include <unixd.h>

#include "mod_resumable_private.h"
#include "mod_resumable_config.h"
#include "rs_store.h"
#include "rs_log.h"

#ifndef RS_DEFAULT_STATEDB
#define RS_DEFAULT_STATEDB "/var/lib/apache2/resumable/state"
#endif

static apr_global_mutex_t *mutex;
static rs_engine_t engine;
static const char *db_type, *db_path;

rs_engine_t *rs_httpd_engine(void)
{
    return engine.store ? &engine : NULL;
}

/* ------------------------------------------------------------------------ */
/* log seam                                                                  */

static void log_cb(void *baton, const char *file, int line,
                   rs_log_level_t level, apr_status_t rv, const char *msg)
{
    ap_log_error_(file, line, APLOG_MODULE_INDEX, (int)level, rv,
                  ap_server_conf, "%s", msg);
}

static int log_enabled(void *baton, rs_log_level_t level)
{
    return ap_server_conf
           && APLOG_MODULE_IS_LEVEL(ap_server_conf, APLOG_MODULE_INDEX,
                                    (int)level);
}

/* ------------------------------------------------------------------------ */
/* hooks                                                                     */

void rs_httpd_state_pre_config(apr_pool_t *pconf)
{
    ap_mutex_register(pconf, RS_MUTEX_TYPE, NULL, APR_LOCK_DEFAULT, 0);
    rs_log_set(log_cb, log_enabled, NULL);
}

/* Give the child user the database directory and files (started as root). */
static void give_to_child_user(apr_pool_t *p, server_rec *s, const char *dir)
{
    const char *f1 = NULL, *f2 = NULL;

    if (geteuid() != 0) {
        return;
    }
    rs_store_files(engine.store, p, &f1, &f2);
    if (chown(dir, ap_unixd_config.user_id, ap_unixd_config.group_id)
        || (f1 && chown(f1, ap_unixd_config.user_id, ap_unixd_config.group_id))
        || (f2 && chown(f2, ap_unixd_config.user_id,
                        ap_unixd_config.group_id))) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, errno, s, RS_LOGNO(04002)
                     "cannot give the state database %s to the child user",
                     db_path);
    }
}

/* Create the database (and its directory) now, as the parent, so a broken
 * path or driver stops the start with a clear message. */
static int prepare_db(apr_pool_t *ptemp, server_rec *s)
{
    char *dir = apr_pstrdup(ptemp, db_path), *slash = strrchr(dir, '/');
    rs_txn_t *txn;
    apr_status_t rv = APR_SUCCESS;

    if (slash && slash != dir) {
        *slash = '\0';
        rv = apr_dir_make_recursive(dir, APR_FPROT_OS_DEFAULT & 0750, ptemp);
    }
    if (APR_SUCCESS == rv) {
        rv = rs_store_begin(engine.store, 1, ptemp, &txn);
    }
    if (APR_SUCCESS != rv) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, RS_LOGNO(04003)
                     "ResumableStateDB: cannot create the state database %s "
                     "(type %s)", db_path, db_type);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    rs_store_end(txn);
    give_to_child_user(ptemp, s, dir);
    return OK;
}

const char *rs_httpd_statedb_path(void)
{
    return db_path;
}

int rs_httpd_state_post_config(apr_pool_t *pconf, apr_pool_t *ptemp,
                               server_rec *s)
{
    const rs_srv_conf_t *c;
    apr_status_t rv;

    rs_conf_server_defaults(s);
    c = rs_conf_server(s);
    db_type = c->statedb_type ? c->statedb_type : "sdbm";
    db_path = c->statedb_path ? c->statedb_path : RS_DEFAULT_STATEDB;
    engine.write_buffer = (apr_size_t)c->write_buffer;
    if (AP_SQ_MS_CREATE_PRE_CONFIG == ap_state_query(AP_SQ_MAIN_STATE)) {
        return OK;
    }
    rv = ap_global_mutex_create(&mutex, NULL, RS_MUTEX_TYPE, NULL, s, pconf, 0);
    if (APR_SUCCESS != rv) {
        return HTTP_INTERNAL_SERVER_ERROR;  /* httpd logged why */
    }
    rv = rs_store_create(&engine.store, db_type, db_path, mutex, pconf);
    if (APR_SUCCESS != rv) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, RS_LOGNO(04004)
                     "ResumableStateDB: unusable database %s:%s", db_type,
                     db_path);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return prepare_db(ptemp, s);
}

void rs_httpd_state_child_init(apr_pool_t *p, server_rec *s)
{
    apr_status_t rv;

    if (!mutex) {
        return;
    }
    rv = apr_global_mutex_child_init(&mutex, apr_global_mutex_lockfile(mutex),
                                     p);
    if (APR_SUCCESS != rv) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, RS_LOGNO(04005)
                     "cannot reattach the state database mutex");
        engine.store = NULL;
        return;
    }
    rs_store_create(&engine.store, db_type, db_path, mutex, p);
}
