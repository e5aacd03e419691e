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

#include <grp.h>
#include <pwd.h>
#include <unistd.h>
#include <apr_strings.h>
#include <apr_file_info.h>
#include <apr_atomic.h>

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
#include "rs_store_pgsql.h"
#include "rs_fscheck.h"
#include "rs_log.h"
#include "mod_dbd.h"

#ifndef RS_DEFAULT_STATEDB
#define RS_DEFAULT_STATEDB "/var/lib/apache2/resumable/state"
#endif

static apr_global_mutex_t *mutex;
static rs_engine_t engine;
static const char *db_type, *db_path;
static int cluster;             /* ResumableStateDB dbd: */
static volatile apr_uint32_t lent;      /* connections out (this child) */
static volatile apr_uint32_t exiting;   /* the child pool goes */
static volatile apr_uint32_t stopping;  /* no new background job */
static volatile apr_uint32_t held;      /* background jobs running */
static APR_OPTIONAL_FN_TYPE(ap_dbd_open) *dbd_open;
static APR_OPTIONAL_FN_TYPE(ap_dbd_close) *dbd_close;

rs_engine_t *rs_httpd_engine(void)
{
    return engine.store ? &engine : NULL;
}

rs_engine_t *rs_httpd_engine_hold(void)
{
    apr_atomic_inc32(&held);
    if (!engine.store || apr_atomic_read32(&stopping)) {
        apr_atomic_dec32(&held);
        return NULL;
    }
    return &engine;
}

void rs_httpd_engine_release(void)
{
    apr_atomic_dec32(&held);
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
    return cluster ? NULL : db_path;
}

int rs_httpd_cluster(void)
{
    return cluster;
}

/* ------------------------------------------------------------------------ */
/* cluster mode: the pgsql provider on mod_dbd's connections                 */

/* One pooled connection per short transaction (never across a body). */
static apr_status_t dbd_lend(void *baton, apr_pool_t *p,
                             const apr_dbd_driver_t **driver,
                             apr_dbd_t **handle, void **conn)
{
    ap_dbd_t *d;

    if (apr_atomic_read32(&exiting)) {
        *conn = NULL;
        *handle = NULL;
        return APR_EINTR;
    }
    apr_atomic_inc32(&lent);
    if (!(d = dbd_open(p, baton))) {
        apr_atomic_dec32(&lent);
    }
    *conn = d;
    *handle = d ? d->handle : NULL;
    *driver = d ? d->driver : NULL;
    return d ? APR_SUCCESS : APR_ECONNREFUSED;
}

static void dbd_return(void *baton, void *conn)
{
    dbd_close(baton, conn);
    apr_atomic_dec32(&lent);
}

/* A pre-cleanup of the child pool, run before mod_dbd's pool goes (and
 * before mod_watchdog stops the sweep's thread): start no new sweep, let a
 * running one finish, then lend no more connections and wait for those
 * out to come back: apr_reslist aborts the child if one is still out when
 * its pool goes. Bounded (10 s each). */
static apr_status_t cluster_child_exit(void *data)
{
    int i;

    apr_atomic_set32(&stopping, 1);
    for (i = 0; i < 1000 && apr_atomic_read32(&held); i++) {
        apr_sleep(apr_time_from_msec(10));
    }
    apr_atomic_set32(&exiting, 1);
    for (i = 0; i < 1000 && apr_atomic_read32(&lent); i++) {
        apr_sleep(apr_time_from_msec(10));
    }
    return APR_SUCCESS;
}

/* The argument of the main server's `name` directive (mod_dbd's own
 * configuration, read from the tree: mod_dbd keeps it private). */
static const char *main_directive(apr_pool_t *p, const char *name)
{
    const ap_directive_t *d;
    const char *found = NULL, *args;

    for (d = ap_conftree; d; d = d->next) {
        if (!strcasecmp(d->directive, name)) {
            args = d->args;
            found = ap_getword_conf(p, &args);
        }
    }
    return found;
}

/* "ResumableSync Off" anywhere in the configuration files? */
static const ap_directive_t *sync_off(const ap_directive_t *d)
{
    const ap_directive_t *hit;

    for (; d; d = d->next) {
        if (!strcasecmp(d->directive, "ResumableSync") && d->args
            && !strcasecmp(d->args, "off")) {
            return d;
        }
        if (d->first_child && (hit = sync_off(d->first_child))) {
            return hit;
        }
    }
    return NULL;
}

static int cluster_refuse(server_rec *s, const char *why)
{
    ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, RS_LOGNO(09810)
                 "ResumableStateDB dbd: %s", why);
    return HTTP_INTERNAL_SERVER_ERROR;
}

/* Check everything now, as the parent, on a connection of our own (mod_dbd
 * pools exist in the children only): a wrong or unreachable database, a
 * missing driver or schema stops the start with a clear message. */
static int cluster_check(apr_pool_t *ptemp, server_rec *s)
{
    const char *driver = main_directive(ptemp, "DBDriver");
    const char *params = main_directive(ptemp, "DBDParams");
    const ap_directive_t *off = sync_off(ap_conftree);
    rs_store_t *check;
    int version;
    apr_status_t rv;

    if (!dbd_open || !dbd_close) {
        return cluster_refuse(s, "needs mod_dbd (LoadModule dbd_module)");
    }
    if (!driver || strcasecmp(driver, "pgsql") || !params) {
        return cluster_refuse(s, "needs `DBDriver pgsql` and `DBDParams "
                              "...` in the main server configuration");
    }
    if (off) {
        return cluster_refuse(s, apr_psprintf(ptemp, "refuses `ResumableSync"
                              " Off` (%s:%d): a node's page cache is lost "
                              "with the node", off->filename,
                              off->line_num));
    }
    rv = rs_store_pgsql_direct(&check, params, ptemp);
    if (APR_SUCCESS == rv) {
        rv = rs_store_pgsql_schema(check, 1, ptemp, &version);
    }
    if (APR_SUCCESS != rv) {
        return cluster_refuse(s, "cannot use the PostgreSQL database of "
                              "DBDParams (see the line above)");
    }
    return OK;
}

/* The probe runs with the children's credentials (User, Group and the
 * User's supplementary groups, as unixd gives them) when started as root:
 * the children write into the directories, and a probe that ran as root
 * would pass where they are refused. Effective ids only, given back after
 * (post_config runs single-threaded). */
typedef struct {
    int switched;
    gid_t egid;
    int ngroups;
    gid_t *groups;
} creds_t;

static void back_to_root(creds_t *c)
{
    if (c->switched) {
        if (seteuid(0) || setegid(c->egid)
            || setgroups((size_t)c->ngroups, c->groups)) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, errno, NULL, RS_LOGNO(09821)
                         "cannot take back root's credentials after the "
                         "directory self-test");
        }
        c->switched = 0;
    }
}

static const char *as_child_user(creds_t *c, apr_pool_t *p)
{
    const char *user = ap_unixd_config.user_name;

    c->switched = 0;
    if (geteuid() != 0 || ap_unixd_config.user_id == (uid_t)-1 || !user) {
        return NULL;            /* not root: the children are this user */
    }
    c->egid = getegid();
    c->ngroups = getgroups(0, NULL);
    c->groups = apr_pcalloc(p, sizeof(gid_t) * (c->ngroups + 1));
    if (c->ngroups < 0
        || (c->ngroups = getgroups(c->ngroups, c->groups)) < 0) {
        return apr_psprintf(p, "getgroups: %s", strerror(errno));
    }
    c->switched = 1;
    if ('#' == *user) {         /* as unixd: the name of that uid */
        struct passwd *pw = getpwuid(ap_unixd_config.user_id);

        user = pw ? apr_pstrdup(p, pw->pw_name) : NULL;
    }
    if ((user ? initgroups(user, ap_unixd_config.group_id)
         : setgroups(1, &ap_unixd_config.group_id))
        || setegid(ap_unixd_config.group_id)
        || seteuid(ap_unixd_config.user_id)) {
        const char *why = apr_psprintf(p, "cannot take the credentials of "
                                       "User %s: %s",
                                       ap_unixd_config.user_name,
                                       strerror(errno));
        back_to_root(c);
        return why;
    }
    return NULL;
}

static int fscheck_refuse(server_rec *s, const char *dir, const char *failed,
                          const char *why)
{
    ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, RS_LOGNO(09820)
                 "ResumableDir %s%s%s: %s; cluster mode needs a POSIX shared "
                 "file system, writable by the httpd User: NFS >= 4.1 with "
                 "sync exports, CephFS, GlusterFS with client caches off "
                 "(README Cluster)", dir,
                 strcmp(dir, failed) ? ", staging folder " : "",
                 strcmp(dir, failed) ? failed : "", why);
    return HTTP_INTERNAL_SERVER_ERROR;
}

/* Was dirs[i] seen before i? */
static int seen_before(const apr_array_header_t *dirs, int i)
{
    int j;

    for (j = 0; j < i; j++) {
        if (!strcmp(APR_ARRAY_IDX(dirs, j, const char *),
                    APR_ARRAY_IDX(dirs, i, const char *))) {
            return 1;
        }
    }
    return 0;
}

/* The self-test of every distinct ResumableDir and its staging folder
 * (rs_fscheck.h). A directory that does not exist is left to the request
 * path, which reports it as without cluster mode. */
static int cluster_fscheck(apr_pool_t *ptemp, server_rec *s)
{
    const apr_array_header_t *dirs = rs_conf_store_dirs();
    const char *dir, *failed = NULL, *why = NULL;
    apr_finfo_t fi;
    apr_status_t rv = APR_SUCCESS;
    creds_t creds;
    int i;

    if ((why = as_child_user(&creds, ptemp))) {
        return fscheck_refuse(s, "(all)", "(all)", why);
    }
    for (i = 0; dirs && i < dirs->nelts && rv == APR_SUCCESS; i++) {
        dir = APR_ARRAY_IDX(dirs, i, const char *);
        if (seen_before(dirs, i) || APR_STATUS_IS_ENOENT(
                apr_stat(&fi, dir, APR_FINFO_TYPE, ptemp))) {
            continue;
        }
        rv = rs_fscheck_area(dir, ptemp, &failed, &why);
    }
    back_to_root(&creds);
    return rv == APR_SUCCESS ? OK : fscheck_refuse(s, dir, failed, why);
}

static int cluster_post_config(apr_pool_t *pconf, apr_pool_t *ptemp,
                               server_rec *s)
{
    int rv;

    cluster = 1;
    dbd_open = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_open);
    dbd_close = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_close);
    /* also in the first (pre-detach) pass: `apachectl start` itself then
     * fails with the reason, not only the daemon's error log */
    if (OK != (rv = cluster_check(ptemp, s))
        || OK != (rv = cluster_fscheck(ptemp, s))) {
        return rv;
    }
    rs_store_pgsql_create(&engine.store, dbd_lend, dbd_return, s, "dbd:",
                          pconf);
    engine.lease_time = rs_conf_server(s)->lease_time;
    engine.checkpoint = rs_conf_server(s)->checkpoint;
    return OK;
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
    engine.dirs = rs_conf_store_dirs();     /* orphans of deferred creates */
    engine.lease_time = 0;              /* one node: OFD locks */
    engine.checkpoint = 0;
    cluster = 0;
    mutex = NULL;
    if (!strcmp(db_type, "dbd")) {
        return cluster_post_config(pconf, ptemp, s);
    }
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

    if (cluster) {
        apr_atomic_set32(&exiting, 0);
        apr_atomic_set32(&stopping, 0);
        apr_pool_pre_cleanup_register(p, NULL, cluster_child_exit);
        return;
    }
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
