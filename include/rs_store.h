/* Licensed under the Apache License, Version 2.0. */
#ifndef RS_STORE_H
#define RS_STORE_H

/*
 * Design: the state database. One apr_dbm file (any driver apr_dbm has;
 * default sdbm) shared by every httpd process. sdbm is kept open across
 * transactions (a pool of handles per process, each locked for one
 * transaction at a time; never used across fork; opened again when its
 * files were unlinked, replaced or re-owned: "KEPT OPEN" in rs_store.c);
 * the other drivers are opened per transaction, as in mod_socache_dbm. A write
 * transaction holds the global mutex (when one is given) from open to
 * close; read transactions on sdbm run in parallel under sdbm's own shared
 * file lock instead (other drivers: the mutex too), see "LOCKING" in
 * rs_store.c. Either way a transaction excludes writers and must be short:
 * never hold one while reading a request body, and never begin one while
 * another is open in the same thread (it would wait for itself).
 *
 * Values of any size (up to RS_STORE_MAX_VALUE) are stored, although sdbm
 * limits a key/value pair to ~1 KiB: a value is split into segments. The
 * head pair under `key` carries a generation number; segments live under
 * "key\x1f<gen>.<n>". A put writes the new generation's segments first and
 * the head last, then removes the old generation, so a process killed in
 * the middle leaves either the old or the new value, never a mix (stray
 * segments are garbage, removed by the next put of the key or by
 * rs_store_gc). Layout in rs_store.c.
 *
 * Key space (by convention of rs_engine, layout in rs_engine.c): "u:<id>"
 * upload records, "t:<id>" tombstones (410), "k:<hash>" client keys,
 * "h:<digest>" content index, "n:<hash>" and "q:<id>" pending-upload
 * counts; hooks' outbox (rs_hook.h): "o:<time><event id>" pending
 * notifications, "O:outbox" its marker. Iteration skips segment keys.
 */

#include <apr_pools.h>
#include <apr_global_mutex.h>
#include <apr_tables.h>
#include <apr_errno.h>
#include <apr_time.h>

#define RS_STORE_MAX_VALUE (4 * 1024 * 1024)
/** Longest key (bytes); keys never contain 0x1f (the segment separator). */
#define RS_STORE_MAX_KEY 512

typedef struct rs_store_t rs_store_t;
typedef struct rs_txn_t rs_txn_t;

/**
 * Describe a store. dbtype: apr_dbm type ("default", "SDBM", "GDBM", "DB",
 * "NDBM"); path: database file name without driver suffixes. mutex may be
 * NULL (single process: unit tests, resumablectl with its own lock).
 * Nothing is opened here.
 */
apr_status_t rs_store_create(rs_store_t **ps, const char *dbtype,
                             const char *path, apr_global_mutex_t *mutex,
                             apr_pool_t *p);

/** Path and type as configured. */
const char *rs_store_path(const rs_store_t *s);
const char *rs_store_type(const rs_store_t *s);

/**
 * Begin a transaction: lock the mutex (not for a read on sdbm), open the
 * database (creating it when `write` is set; sdbm then locks its files,
 * shared for a read, exclusive for a write). All allocations of the
 * transaction come from a subpool of p, destroyed by rs_store_end.
 * APR_ENOENT when the database does not exist and write is 0.
 */
apr_status_t rs_store_begin(rs_store_t *s, int write, apr_pool_t *p,
                            rs_txn_t **txn);
/** Close the database and unlock. Always call, also after errors. A
 *  provider store (below) commits a write transaction here: the result is
 *  the commit's (dbm: always APR_SUCCESS; a write is durable at its put). */
apr_status_t rs_store_end(rs_txn_t *txn);
/** End txn; returns rv, or the end's (commit's) failure when rv is
 *  APR_SUCCESS: `rv = rs_store_finish(txn, rv);` before acknowledging. */
apr_status_t rs_store_finish(rs_txn_t *txn, apr_status_t rv);

/** Value of key; *val is NUL terminated (not counted), from pool p.
 *  APR_ENOENT if absent; APR_EINVAL if the stored segments are corrupt. */
apr_status_t rs_store_get(rs_txn_t *txn, const char *key, apr_pool_t *p,
                          char **val, apr_size_t *len);
apr_status_t rs_store_put(rs_txn_t *txn, const char *key, const char *val,
                          apr_size_t len);
/** Values this process stored through s (successful rs_store_put calls)
 *  so far: a measure of state work, for tests. */
apr_uint32_t rs_store_puts(const rs_store_t *s);
/** Transactions the calling thread began so far (rs_store_begin that
 *  succeeded), write and read, over every store: what one request cost
 *  (the glue's RESUMABLE_STATE_WRITES/READS variables, tests). */
void rs_store_thread_txns(apr_uint32_t *writes, apr_uint32_t *reads);
/** Remove key and its segments; APR_SUCCESS also when absent. */
apr_status_t rs_store_delete(rs_txn_t *txn, const char *key);

/** Callback for rs_store_keys: return non-zero to stop. */
typedef int rs_store_key_cb(void *baton, const char *key);
/**
 * Call cb for every head key starting with prefix (segments skipped). Keys
 * are copied before the callback, which must not modify the database (collect
 * keys, then act on them in later transactions).
 */
apr_status_t rs_store_keys(rs_txn_t *txn, const char *prefix,
                           rs_store_key_cb *cb, void *baton);

/**
 * Remove orphaned segments of keys starting with prefix (left behind when a
 * process was killed in the middle of rs_store_delete, or when a head was
 * lost). Write transaction; iterates the whole database, so call it from
 * periodic maintenance, not per request. *removed: segments deleted.
 */
apr_status_t rs_store_gc(rs_txn_t *txn, const char *prefix,
                         apr_size_t *removed);

/** Convenience: one-shot transactions. */
apr_status_t rs_store_get1(rs_store_t *s, const char *key, apr_pool_t *p,
                           char **val, apr_size_t *len);
apr_status_t rs_store_put1(rs_store_t *s, const char *key, const char *val,
                           apr_size_t len, apr_pool_t *p);
apr_status_t rs_store_delete1(rs_store_t *s, const char *key, apr_pool_t *p);

/** The clock the store judges time by, read inside txn: PostgreSQL's
 *  for the pgsql provider (one clock for every node: writer leases expire
 *  by it), the local clock for dbm. */
apr_status_t rs_store_clock(rs_txn_t *txn, apr_time_t *now);

/** The files apr_dbm uses for path/type (for chown at startup). */
apr_status_t rs_store_files(const rs_store_t *s, apr_pool_t *p,
                            const char **f1, const char **f2);

/* ---- providers ------------------------------------------------------------
 *
 * A store is either the built-in dbm store above or a provider given by an
 * ops table (today: pgsql, include/rs_store_pgsql.h). Every rs_store_*
 * function keeps its contract for both; the dbm code is not involved for a
 * provider store. A provider's write transaction excludes every other
 * writer of the same database (on every node), as the global mutex does
 * for dbm on one machine, and its reads see one consistent state. Values
 * need no segments there (rs_store_gc removes nothing).
 */
typedef struct rs_store_ops_t {
    const char *type;           /* rs_store_type(), e.g. "pgsql" */
    /* begin: *ptx lives in tp (the transaction's pool, destroyed after
     * end); APR_ENOENT is not used (a provider database always exists) */
    apr_status_t (*begin)(void *impl, int write, apr_pool_t *tp, void **ptx);
    apr_status_t (*end)(void *tx);          /* commit or finish */
    apr_status_t (*get)(void *tx, const char *key, apr_pool_t *p,
                        char **val, apr_size_t *len);
    apr_status_t (*put)(void *tx, const char *key, const char *val,
                        apr_size_t len);
    apr_status_t (*del)(void *tx, const char *key);
    /* head keys starting with prefix, in byte order, copied into p */
    apr_status_t (*keys)(void *tx, const char *prefix, apr_pool_t *p,
                         apr_array_header_t **keys);
    /* the database's clock (µs since the epoch); NULL: the local clock */
    apr_status_t (*clock)(void *tx, apr_time_t *now);
} rs_store_ops_t;

/** A store served by a provider; name is what rs_store_path() reports
 *  (for messages), impl the provider's handle. */
apr_status_t rs_store_create_provider(rs_store_t **ps,
                                      const rs_store_ops_t *ops, void *impl,
                                      const char *name, apr_pool_t *p);

/** The provider's handle, or NULL for a dbm store. */
void *rs_store_provider(const rs_store_t *s, const rs_store_ops_t *ops);

/** A provider could not reach its database (no connection, connection
 *  lost): the engine answers 503, not 500. */
#define RS_STORE_UNAVAILABLE(rv) \
    ((rv) == APR_ECONNREFUSED || (rv) == APR_ECONNABORTED)

#endif /* RS_STORE_H */
