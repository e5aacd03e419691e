/* Licensed to the Apache Software Foundation (ASF) under one or more
 * contributor license agreements; and licensed under the Apache License,
 * Version 2.0 (the "License"); you may not use this file except in
 * compliance with the License. See http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * rs_store_pgsql.c - the pgsql state provider: rs_store's key space in one
 * PostgreSQL table, reached through apr_dbd. Design, schema, transactions
 * and errors: include/rs_store_pgsql.h.
 */

#include <stdlib.h>
#include <string.h>

#include <apr_dbd.h>
#include <apr_strings.h>
#include <apr_tables.h>

#include "rs_store_pgsql.h"
#include "rs_log.h"

/* pg_advisory_xact_lock(int4, int4): 0x52534d44 ("RSMD"), 1 the writers */
#define SQL_WRITE_BEGIN "BEGIN; SELECT pg_advisory_xact_lock(1381190980, 1), " \
                        "(extract(epoch FROM clock_timestamp()) * 1000000)::bigint"
#define SQL_READ_BEGIN  "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; "

/* Step n (1-based) takes the schema from version n-1 to n. */
static const char *const migrations[RS_PGSQL_SCHEMA_VERSION] = {
    "CREATE TABLE IF NOT EXISTS resumable_schema (version integer NOT NULL);"
    "CREATE TABLE IF NOT EXISTS resumable_kv "
    "(k bytea PRIMARY KEY, v bytea NOT NULL)",
};

typedef struct pg_store {
    apr_pool_t *pool;
    const char *name;
    rs_pgsql_open_fn *open;
    rs_pgsql_close_fn *close;
    void *baton;
    /* direct mode: one connection of our own */
    const char *params;
    const apr_dbd_driver_t *driver;
    apr_dbd_t *handle;
} pg_store;

typedef struct pg_tx {
    pg_store *st;
    apr_pool_t *pool;
    const apr_dbd_driver_t *drv;
    apr_dbd_t *h;
    void *conn;
    int write;
    int begun;                  /* BEGIN sent (a read sends it lazily) */
    apr_time_t clock;           /* a write: PostgreSQL's clock when it got
                                   the writers' lock (0: unknown) */
    apr_status_t failed;        /* first failure: ROLLBACK at the end */
} pg_tx;

/* ---- hex ---------------------------------------------------------------- */

static char *hex_of(apr_pool_t *p, const char *data, apr_size_t len)
{
    static const char digits[] = "0123456789abcdef";
    char *h = apr_palloc(p, 2 * len + 1), *o = h;
    apr_size_t i;

    for (i = 0; i < len; i++) {
        *o++ = digits[((const unsigned char *)data)[i] >> 4];
        *o++ = digits[((const unsigned char *)data)[i] & 15];
    }
    *o = '\0';
    return h;
}

static int hex_val(char c)
{
    return c >= '0' && c <= '9' ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Hex text back to bytes (NUL terminated, not counted); APR_EINVAL when
 * it is not hex. */
static apr_status_t hex_decode(apr_pool_t *p, const char *h, char **out,
                               apr_size_t *len)
{
    apr_size_t n = h ? strlen(h) : 0, i;
    char *b;

    if (!h || n % 2) {
        return APR_EINVAL;
    }
    b = apr_palloc(p, n / 2 + 1);
    for (i = 0; i < n / 2; i++) {
        int hi = hex_val(h[2 * i]), lo = hex_val(h[2 * i + 1]);

        if (hi < 0 || lo < 0) {
            return APR_EINVAL;
        }
        b[i] = (char)(hi << 4 | lo);
    }
    b[n / 2] = '\0';
    *out = b;
    *len = n / 2;
    return APR_SUCCESS;
}

/* ---- statements --------------------------------------------------------- */

/* After a failed statement: is the connection gone (503) or was it the
 * statement (500)? apr_dbd's check resets a broken pgsql connection. */
static apr_status_t fail(pg_tx *tx, int err, const char *what)
{
    const char *msg = apr_dbd_error(tx->drv, tx->h, err);
    int gone = apr_dbd_check_conn(tx->drv, tx->pool, tx->h) != APR_SUCCESS;
    apr_status_t rv = gone ? APR_ECONNABORTED : APR_EGENERAL;

    rs_log_perror(RS_LOG_MARK, RS_LOG_ERR, rv, tx->pool,
                  RS_LOGNO(09802) "state database %s: %s failed%s (%d): %s",
                  tx->st->name, what, gone ? " (connection lost)" : "", err,
                  msg && *msg ? msg : "(no message)");
    if (!tx->failed) {
        tx->failed = rv;
    }
    return rv;
}

/* A read sends its BEGIN with its first statement (one round trip). */
static const char *with_begin(pg_tx *tx, const char *sql)
{
    if (tx->begun) {
        return sql;
    }
    tx->begun = 1;
    return apr_pstrcat(tx->pool, SQL_READ_BEGIN, sql, NULL);
}

/* The first statement of a read carries its BEGIN: when it fails on a
 * pooled connection that was broken (PostgreSQL restarted) and apr_dbd
 * could reset it, nothing was done yet and it is sent once more. */
static int retry_first(pg_tx *tx, int first, int err)
{
    int n;

    if (!err || !first
        || apr_dbd_check_conn(tx->drv, tx->pool, tx->h) != APR_SUCCESS) {
        return 0;
    }
    apr_dbd_query(tx->drv, tx->h, &n, "ROLLBACK");
    return 1;
}

static apr_status_t exec(pg_tx *tx, const char *sql, const char *what,
                         int *nrows)
{
    int n = 0, err, first = !tx->begun;
    const char *q = with_begin(tx, sql);

    if (tx->failed) {
        return tx->failed;
    }
    err = apr_dbd_query(tx->drv, tx->h, &n, q);
    if (retry_first(tx, first, err)) {
        err = apr_dbd_query(tx->drv, tx->h, &n, q);
    }
    if (err) {
        return fail(tx, err, what);
    }
    if (nrows) {
        *nrows = n;
    }
    return APR_SUCCESS;
}

static apr_status_t query(pg_tx *tx, const char *sql, const char *what,
                          apr_pool_t *p, apr_dbd_results_t **res)
{
    int err, first = !tx->begun;
    const char *q = with_begin(tx, sql);

    *res = NULL;
    if (tx->failed) {
        return tx->failed;
    }
    err = apr_dbd_select(tx->drv, p, tx->h, res, q, 1);
    if (retry_first(tx, first, err)) {
        *res = NULL;
        err = apr_dbd_select(tx->drv, p, tx->h, res, q, 1);
    }
    return err ? fail(tx, err, what) : APR_SUCCESS;
}

/* Column 0 of row `n` (1-based) of res, or NULL. */
static const char *entry(pg_tx *tx, apr_pool_t *p, apr_dbd_results_t *res,
                         int n)
{
    apr_dbd_row_t *row = NULL;

    if (apr_dbd_get_row(tx->drv, p, res, &row, n) != 0 || !row) {
        return NULL;
    }
    return apr_dbd_get_entry(tx->drv, row, 0);
}

/* ---- connections and transactions --------------------------------------- */

static apr_status_t conn_get(pg_tx *tx)
{
    pg_store *st = tx->st;
    apr_status_t rv = st->open(st->baton, tx->pool, &tx->drv, &tx->h,
                               &tx->conn);

    if (APR_EINTR == rv) {      /* the lender is shutting down: quietly */
        tx->h = NULL;
        return APR_ECONNREFUSED;
    }
    if (APR_SUCCESS != rv || !tx->h) {
        rs_log_perror(RS_LOG_MARK, RS_LOG_ERR, rv, tx->pool,
                      RS_LOGNO(09801) "state database %s: no connection "
                      "to PostgreSQL (DBDriver pgsql, DBDParams; see the "
                      "line above)", st->name);
        tx->h = NULL;
        return APR_ECONNREFUSED;
    }
    return APR_SUCCESS;
}

static void conn_put(pg_tx *tx)
{
    if (tx->h) {
        tx->st->close(tx->st->baton, tx->conn);
        tx->h = NULL;
    }
}

/* BEGIN and the writers' lock, which answers PostgreSQL's clock once it
 * is held (leases are judged by it: no round trip of its own); one retry
 * on a connection apr_dbd reset. */
static apr_status_t write_begin(pg_tx *tx)
{
    apr_dbd_results_t *res = NULL;
    apr_dbd_row_t *row = NULL;
    const char *v;
    char *end;
    int err = apr_dbd_select(tx->drv, tx->pool, tx->h, &res, SQL_WRITE_BEGIN,
                             1);

    if (retry_first(tx, 1, err)) {
        res = NULL;
        err = apr_dbd_select(tx->drv, tx->pool, tx->h, &res, SQL_WRITE_BEGIN,
                             1);
    }
    tx->begun = 1;
    if (err) {
        return fail(tx, err, "begin");
    }
    if (0 == apr_dbd_get_row(tx->drv, tx->pool, res, &row, 1) && row
        && (v = apr_dbd_get_entry(tx->drv, row, 1))) {
        tx->clock = (apr_time_t)apr_strtoi64(v, &end, 10);
        if (*end) {
            tx->clock = 0;
        }
    }
    return APR_SUCCESS;
}

static apr_status_t pg_begin(void *impl, int write, apr_pool_t *tp, void **ptx)
{
    pg_tx *tx = apr_pcalloc(tp, sizeof(*tx));
    apr_status_t rv;
    int n;

    *ptx = NULL;
    tx->st = impl;
    tx->pool = tp;
    tx->write = write;
    if (APR_SUCCESS != (rv = conn_get(tx))) {
        return rv;
    }
    if (write && APR_SUCCESS != (rv = write_begin(tx))) {
        apr_dbd_query(tx->drv, tx->h, &n, "ROLLBACK");
        conn_put(tx);
        return rv;
    }
    *ptx = tx;
    return APR_SUCCESS;
}

static apr_status_t pg_end(void *ptx)
{
    pg_tx *tx = ptx;
    apr_status_t rv = tx->failed;
    int n, err;

    if (tx->begun && !tx->failed) {
        err = apr_dbd_query(tx->drv, tx->h, &n, "COMMIT");
        if (err) {
            rv = fail(tx, err, tx->write ? "commit" : "end of a read");
        }
    }
    else if (tx->begun) {
        apr_dbd_query(tx->drv, tx->h, &n, "ROLLBACK");
    }
    conn_put(tx);
    return rv;
}

/* ---- values and keys ---------------------------------------------------- */

static apr_status_t pg_get(void *ptx, const char *key, apr_pool_t *p,
                           char **val, apr_size_t *len)
{
    pg_tx *tx = ptx;
    apr_dbd_results_t *res;
    const char *sql = apr_pstrcat(p, "SELECT encode(v, 'hex') FROM "
                                  "resumable_kv WHERE k = decode('",
                                  hex_of(p, key, strlen(key)), "', 'hex')",
                                  NULL);
    const char *h;
    apr_status_t rv = query(tx, sql, "read", p, &res);

    if (APR_SUCCESS != rv) {
        return rv;
    }
    if (!(h = entry(tx, p, res, 1))) {
        return APR_ENOENT;
    }
    if (APR_SUCCESS != (rv = hex_decode(p, h, val, len))) {
        rs_log_perror(RS_LOG_MARK, RS_LOG_ERR, rv, p, RS_LOGNO(09803)
                      "state database %s: value of \"%s\" is not hex",
                      tx->st->name, key);
    }
    return rv;
}

static apr_status_t pg_put(void *ptx, const char *key, const char *val,
                           apr_size_t len)
{
    pg_tx *tx = ptx;
    apr_pool_t *sp;
    apr_status_t rv;

    apr_pool_create(&sp, tx->pool);
    rv = exec(tx, apr_pstrcat(sp, "INSERT INTO resumable_kv (k, v) VALUES "
                              "(decode('", hex_of(sp, key, strlen(key)),
                              "', 'hex'), decode('", hex_of(sp, val, len),
                              "', 'hex')) ON CONFLICT (k) DO UPDATE SET "
                              "v = EXCLUDED.v", NULL), "store", NULL);
    apr_pool_destroy(sp);
    return rv;
}

static apr_status_t pg_del(void *ptx, const char *key)
{
    pg_tx *tx = ptx;

    return exec(tx, apr_pstrcat(tx->pool, "DELETE FROM resumable_kv WHERE "
                                "k = decode('", hex_of(tx->pool, key,
                                                       strlen(key)),
                                "', 'hex')", NULL), "delete", NULL);
}

/* The smallest byte string above every string starting with prefix, as
 * hex; NULL when there is none (empty or all 0xff). */
static const char *prefix_end(apr_pool_t *p, const char *prefix)
{
    apr_size_t n = strlen(prefix);
    unsigned char *b = (unsigned char *)apr_pstrdup(p, prefix);

    while (n > 0 && b[n - 1] == 0xff) {
        n--;
    }
    if (n == 0) {
        return NULL;
    }
    b[n - 1]++;
    return hex_of(p, (const char *)b, n);
}

static apr_status_t pg_keys(void *ptx, const char *prefix, apr_pool_t *p,
                            apr_array_header_t **keys)
{
    pg_tx *tx = ptx;
    const char *end = prefix_end(p, prefix), *h;
    const char *sql = apr_pstrcat(
        p, "SELECT encode(k, 'hex') FROM resumable_kv WHERE k >= decode('",
        hex_of(p, prefix, strlen(prefix)), "', 'hex')",
        end ? " AND k < decode('" : "", end ? end : "", end ? "', 'hex')" : "",
        " ORDER BY k", NULL);
    apr_dbd_results_t *res;
    apr_status_t rv = query(tx, sql, "key listing", p, &res);
    int i, n;

    *keys = apr_array_make(p, 64, sizeof(const char *));
    if (APR_SUCCESS != rv) {
        return rv;
    }
    n = apr_dbd_num_tuples(tx->drv, res);
    for (i = 1; i <= n && (h = entry(tx, p, res, i)); i++) {
        char *k;
        apr_size_t klen;

        /* rs_store keys never hold a NUL; anything else is not ours */
        if (APR_SUCCESS == hex_decode(p, h, &k, &klen)
            && strlen(k) == klen) {
            APR_ARRAY_PUSH(*keys, const char *) = k;
        }
    }
    return APR_SUCCESS;
}

/* PostgreSQL's clock now (not the transaction's start: a writer may have
 * waited for the writers' lock), in µs since the epoch. */
static apr_status_t pg_clock(void *ptx, apr_time_t *now)
{
    pg_tx *tx = ptx;
    apr_dbd_results_t *res;
    const char *v;
    char *end;
    apr_status_t rv;

    if (tx->clock) {
        *now = tx->clock;               /* read with the writers' lock */
        return APR_SUCCESS;
    }
    rv = query(tx, "SELECT (extract(epoch FROM clock_timestamp())"
               " * 1000000)::bigint", "clock", tx->pool, &res);
    if (APR_SUCCESS != rv) {
        return rv;
    }
    v = entry(tx, tx->pool, res, 1);
    if (!v) {
        return fail(tx, 0, "clock");
    }
    *now = (apr_time_t)apr_strtoi64(v, &end, 10);
    return *end ? fail(tx, 0, "clock") : APR_SUCCESS;
}

static const rs_store_ops_t pgsql_ops = {
    "pgsql", pg_begin, pg_end, pg_get, pg_put, pg_del, pg_keys, pg_clock
};

/* ---- stores ------------------------------------------------------------- */

int rs_store_is_pgsql(const rs_store_t *s)
{
    return rs_store_provider(s, &pgsql_ops) != NULL;
}

apr_status_t rs_store_pgsql_create(rs_store_t **ps, rs_pgsql_open_fn *open,
                                   rs_pgsql_close_fn *close, void *baton,
                                   const char *name, apr_pool_t *p)
{
    pg_store *st = apr_pcalloc(p, sizeof(*st));

    st->pool = p;
    st->name = apr_pstrdup(p, name ? name : "dbd:");
    st->open = open;
    st->close = close;
    st->baton = baton;
    return rs_store_create_provider(ps, &pgsql_ops, st, st->name, p);
}

static apr_status_t direct_cleanup(void *data)
{
    pg_store *st = data;

    if (st->handle) {
        apr_dbd_close(st->driver, st->handle);
        st->handle = NULL;
    }
    return APR_SUCCESS;
}

/* Direct mode: open our own connection once, lend it to every txn. */
static apr_status_t direct_open(void *baton, apr_pool_t *p,
                                const apr_dbd_driver_t **driver,
                                apr_dbd_t **handle, void **conn)
{
    pg_store *st = baton;
    const char *err = NULL;
    apr_status_t rv;

    if (!st->handle) {
        rv = apr_dbd_open_ex(st->driver, st->pool, st->params, &st->handle,
                             &err);
        if (APR_SUCCESS != rv || !st->handle) {
            rs_log_perror(RS_LOG_MARK, RS_LOG_ERR, rv, p, RS_LOGNO(09804)
                          "cannot connect to PostgreSQL: %s",
                          err ? err : "(no message)");
            st->handle = NULL;
            return APR_ECONNREFUSED;
        }
        apr_pool_cleanup_register(st->pool, st, direct_cleanup,
                                  apr_pool_cleanup_null);
    }
    *driver = st->driver;
    *handle = st->handle;
    *conn = NULL;
    return APR_SUCCESS;
}

static void direct_close(void *baton, void *conn)
{
}

apr_status_t rs_store_pgsql_direct(rs_store_t **ps, const char *params,
                                   apr_pool_t *p)
{
    pg_store *st;
    apr_status_t rv;

    *ps = NULL;
    apr_dbd_init(p);
    rs_store_pgsql_create(ps, direct_open, direct_close, NULL, "dbd:", p);
    st = rs_store_provider(*ps, &pgsql_ops);
    st->baton = st;
    st->params = apr_pstrdup(p, params ? params : "");
    rv = apr_dbd_get_driver(p, "pgsql", &st->driver);
    if (APR_SUCCESS != rv) {
        rs_log_perror(RS_LOG_MARK, RS_LOG_ERR, rv, p, RS_LOGNO(09805)
                      "apr_dbd has no pgsql driver here (Debian: install "
                      "libaprutil1-dbd-pgsql)");
        *ps = NULL;
        return APR_ENOTIMPL;
    }
    return APR_SUCCESS;
}

/* ---- schema ------------------------------------------------------------- */

static apr_status_t schema_version(pg_tx *tx, apr_pool_t *p, int *version)
{
    apr_dbd_results_t *res;
    const char *v;
    apr_status_t rv = query(tx, "SELECT to_regclass('resumable_schema') "
                            "IS NOT NULL", "schema lookup", p, &res);

    *version = 0;
    if (APR_SUCCESS != rv || !(v = entry(tx, p, res, 1)) || *v != 't') {
        return rv;
    }
    rv = query(tx, "SELECT coalesce(max(version), 0) FROM resumable_schema",
               "schema version", p, &res);
    if (APR_SUCCESS == rv && (v = entry(tx, p, res, 1))) {
        *version = atoi(v);
    }
    return rv;
}

static apr_status_t schema_migrate(pg_tx *tx, int from, apr_pool_t *p)
{
    apr_status_t rv = APR_SUCCESS;
    int v;

    for (v = from; APR_SUCCESS == rv && v < RS_PGSQL_SCHEMA_VERSION; v++) {
        rv = exec(tx, migrations[v], "schema migration", NULL);
        if (APR_SUCCESS == rv) {
            rv = exec(tx, apr_psprintf(p, "DELETE FROM resumable_schema; "
                                       "INSERT INTO resumable_schema VALUES "
                                       "(%d)", v + 1),
                      "schema version update", NULL);
        }
        if (APR_SUCCESS == rv) {
            rs_log_perror(RS_LOG_MARK, RS_LOG_NOTICE, 0, p, RS_LOGNO(09806)
                          "state database %s: schema version %d created",
                          tx->st->name, v + 1);
        }
    }
    return rv;
}

apr_status_t rs_store_pgsql_schema(rs_store_t *s, int migrate, apr_pool_t *p,
                                   int *version)
{
    pg_store *st = rs_store_provider(s, &pgsql_ops);
    pg_tx *tx;
    apr_pool_t *tp;
    apr_status_t rv, end;

    *version = 0;
    if (!st) {
        return APR_EINVAL;
    }
    apr_pool_create(&tp, p);
    /* a write transaction: two nodes starting at once create it once */
    if (APR_SUCCESS != (rv = pg_begin(st, 1, tp, (void **)&tx))) {
        apr_pool_destroy(tp);
        return rv;
    }
    rv = schema_version(tx, tp, version);
    if (APR_SUCCESS == rv && *version > RS_PGSQL_SCHEMA_VERSION) {
        rs_log_perror(RS_LOG_MARK, RS_LOG_ERR, 0, tp, RS_LOGNO(09807)
                      "state database %s: schema version %d is newer than "
                      "this mod_resumable knows (%d)", st->name, *version,
                      RS_PGSQL_SCHEMA_VERSION);
        rv = APR_ENOTIMPL;
    }
    else if (APR_SUCCESS == rv && *version < RS_PGSQL_SCHEMA_VERSION) {
        rv = migrate ? schema_migrate(tx, *version, tp) : APR_ENOENT;
    }
    if (APR_SUCCESS != rv && !tx->failed) {
        tx->failed = rv;        /* roll back */
    }
    end = pg_end(tx);
    apr_pool_destroy(tp);
    return APR_SUCCESS != rv ? rv : end;
}
