/* Licensed under the Apache License, Version 2.0. */
/*
 * The provider seam of rs_store (rs_store.h, "providers"): a store made by
 * rs_store_create_provider hands every call to its ops table and nothing to
 * the dbm code. The provider here keeps its values in a hash and applies a
 * write transaction's puts and deletes at its end, as pgsql does at COMMIT,
 * so the seam's contract (read-only transactions refuse writes, keys by
 * prefix, gc removes nothing, a failed commit reaches rs_store_finish) is
 * checked without a database.
 */
#include <string.h>
#include <apr_hash.h>
#include <apr_strings.h>

#include "rs_test.h"
#include "rs_store.h"
#include "rs_store_pgsql.h"

typedef struct {
    apr_pool_t *pool;
    apr_hash_t *kv;
    int begun, ended, fail_commit;
} mem_t;

typedef struct {
    mem_t *m;
    int write;
    apr_array_header_t *log;    /* "+key=value" / "-key", applied at end */
} mem_tx_t;

static apr_status_t m_begin(void *impl, int write, apr_pool_t *tp, void **ptx)
{
    mem_tx_t *tx = apr_pcalloc(tp, sizeof(*tx));

    tx->m = impl;
    tx->write = write;
    tx->log = apr_array_make(tp, 4, sizeof(const char *));
    tx->m->begun++;
    *ptx = tx;
    return APR_SUCCESS;
}

static apr_status_t m_end(void *ptx)
{
    mem_tx_t *tx = ptx;
    int i;

    tx->m->ended++;
    if (tx->m->fail_commit && tx->log->nelts) {
        return APR_ECONNABORTED;
    }
    for (i = 0; i < tx->log->nelts; i++) {
        const char *e = APR_ARRAY_IDX(tx->log, i, const char *);
        const char *eq = strchr(e, '=');
        char *k = apr_pstrndup(tx->m->pool, e + 1,
                               eq ? (apr_size_t)(eq - e - 1) : strlen(e + 1));

        apr_hash_set(tx->m->kv, k, APR_HASH_KEY_STRING,
                     '+' == *e ? apr_pstrdup(tx->m->pool, eq + 1) : NULL);
    }
    return APR_SUCCESS;
}

static apr_status_t m_get(void *ptx, const char *key, apr_pool_t *p,
                          char **val, apr_size_t *len)
{
    mem_tx_t *tx = ptx;
    const char *v = apr_hash_get(tx->m->kv, key, APR_HASH_KEY_STRING);

    if (!v) {
        return APR_ENOENT;
    }
    *val = apr_pstrdup(p, v);
    *len = strlen(v);
    return APR_SUCCESS;
}

static apr_status_t m_put(void *ptx, const char *key, const char *val,
                          apr_size_t len)
{
    mem_tx_t *tx = ptx;

    APR_ARRAY_PUSH(tx->log, const char *) =
        apr_psprintf(tx->log->pool, "+%s=%.*s", key, (int)len, val);
    return APR_SUCCESS;
}

static apr_status_t m_del(void *ptx, const char *key)
{
    mem_tx_t *tx = ptx;

    APR_ARRAY_PUSH(tx->log, const char *) =
        apr_pstrcat(tx->log->pool, "-", key, NULL);
    return APR_SUCCESS;
}

static apr_status_t m_keys(void *ptx, const char *prefix, apr_pool_t *p,
                           apr_array_header_t **keys)
{
    mem_tx_t *tx = ptx;
    apr_hash_index_t *hi;

    *keys = apr_array_make(p, 4, sizeof(const char *));
    for (hi = apr_hash_first(p, tx->m->kv); hi; hi = apr_hash_next(hi)) {
        const char *k = apr_hash_this_key(hi);

        if (!strncmp(k, prefix, strlen(prefix))) {
            APR_ARRAY_PUSH(*keys, const char *) = k;
        }
    }
    return APR_SUCCESS;
}

static const rs_store_ops_t mem_ops = {
    "mem", m_begin, m_end, m_get, m_put, m_del, m_keys
};

static int count_key(void *baton, const char *key)
{
    ++*(int *)baton;
    return 0;
}

void suite_provider(apr_pool_t *p)
{
    mem_t m = { p, apr_hash_make(p), 0, 0, 0 };
    rs_store_t *s;
    rs_txn_t *txn;
    char *val;
    apr_size_t len, removed = 9;
    const char *f1, *f2;
    int n = 0;

    RS_CHECK(rs_store_create_provider(&s, &mem_ops, &m, "mem:x", p)
             == APR_SUCCESS);
    RS_CHECK_STR(rs_store_type(s), "mem");
    RS_CHECK_STR(rs_store_path(s), "mem:x");
    RS_CHECK(rs_store_provider(s, &mem_ops) == &m);
    RS_CHECK(!rs_store_is_pgsql(s));
    RS_CHECK(rs_store_files(s, p, &f1, &f2) == APR_ENOTIMPL);

    /* a write transaction: applied at its end */
    RS_CHECK(rs_store_begin(s, 1, p, &txn) == APR_SUCCESS);
    RS_CHECK(rs_store_put(txn, "u:a", "one", 3) == APR_SUCCESS);
    RS_CHECK(rs_store_put(txn, "u:b", "two", 3) == APR_SUCCESS);
    RS_CHECK(rs_store_put(txn, "t:c", "x", 1) == APR_SUCCESS);
    RS_CHECK(rs_store_put(txn, "bad\x1fkey", "x", 1) == APR_EINVAL);
    RS_CHECK(rs_store_put(txn, "u:big", "x", RS_STORE_MAX_VALUE + 1)
             == APR_EINVAL);
    RS_CHECK(rs_store_get1(s, "u:a", p, &val, &len) == APR_ENOENT);
    RS_CHECK(rs_store_gc(txn, "", &removed) == APR_SUCCESS && removed == 0);
    RS_CHECK(rs_store_end(txn) == APR_SUCCESS);
    RS_CHECK(rs_store_get1(s, "u:a", p, &val, &len) == APR_SUCCESS
             && len == 3);
    RS_CHECK_STR(val, "one");

    /* reads refuse writes, list by prefix */
    RS_CHECK(rs_store_begin(s, 0, p, &txn) == APR_SUCCESS);
    RS_CHECK(rs_store_put(txn, "u:z", "z", 1) == APR_EACCES);
    RS_CHECK(rs_store_delete(txn, "u:a") == APR_EACCES);
    RS_CHECK(rs_store_keys(txn, "u:", count_key, &n) == APR_SUCCESS);
    RS_CHECK(n == 2);
    RS_CHECK(rs_store_get(txn, "", p, &val, &len) == APR_EINVAL);
    RS_CHECK(rs_store_end(txn) == APR_SUCCESS);

    /* delete; a failed commit is what rs_store_finish reports */
    RS_CHECK(rs_store_delete1(s, "u:b", p) == APR_SUCCESS);
    RS_CHECK(rs_store_get1(s, "u:b", p, &val, &len) == APR_ENOENT);
    m.fail_commit = 1;
    RS_CHECK(rs_store_begin(s, 1, p, &txn) == APR_SUCCESS);
    RS_CHECK(rs_store_put(txn, "u:a", "new", 3) == APR_SUCCESS);
    RS_CHECK(rs_store_finish(txn, APR_SUCCESS) == APR_ECONNABORTED);
    RS_CHECK(RS_STORE_UNAVAILABLE(APR_ECONNABORTED));
    RS_CHECK(rs_store_put1(s, "u:a", "new", 3, p) == APR_ECONNABORTED);
    RS_CHECK(rs_store_delete1(s, "u:a", p) == APR_ECONNABORTED);
    RS_CHECK(rs_store_begin(s, 1, p, &txn) == APR_SUCCESS);
    RS_CHECK(rs_store_finish(txn, APR_EINVAL) == APR_EINVAL);
    m.fail_commit = 0;
    RS_CHECK(rs_store_get1(s, "u:a", p, &val, &len) == APR_SUCCESS);
    RS_CHECK_STR(val, "one");
    RS_CHECK(m.begun == m.ended);
}
