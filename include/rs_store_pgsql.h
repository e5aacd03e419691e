/* Licensed under the Apache License, Version 2.0. */
#ifndef RS_STORE_PGSQL_H
#define RS_STORE_PGSQL_H

/*
 * Design: the pgsql state provider (rs_store.h, "providers"), so that
 * several httpd nodes share one state database. APR-only: SQL goes through
 * apr_dbd; the connections come from the caller. `open` lends one
 * connection for one short transaction and `close` takes it back (the
 * httpd glue wraps mod_dbd's ap_dbd_open/ap_dbd_close; resumablectl and
 * the parent's start-up check use rs_store_pgsql_direct). A connection is
 * never held across a request body: rs_store transactions are short.
 *
 * Schema, version 1 (rs_store_pgsql_schema creates it when absent; every
 * later version adds one step to the migration list in rs_store_pgsql.c):
 *
 *   resumable_schema (version integer NOT NULL)         one row
 *   resumable_kv     (k bytea PRIMARY KEY, v bytea NOT NULL)
 *
 * resumable_kv holds rs_store's key space as is ("u:<id>", "t:<id>", ...).
 * Keys are bytea, not text: binary-safe whatever the database encoding,
 * and ordered bytewise, so a prefix listing is a range scan of the
 * primary key (k >= prefix AND k < prefix+1). Values need no segments.
 * Keys and values travel as hex text (decode(..., 'hex')): no client byte
 * reaches SQL text unescaped, whatever standard_conforming_strings says.
 *
 * Transactions. A write is "BEGIN; SELECT pg_advisory_xact_lock(k1, k2)":
 * writers of the database are serialised on every node exactly as the
 * global mutex serialises them on one node; the lock is transaction
 * scoped, so COMMIT/ROLLBACK (or a dropped session) always releases it and
 * a pooled connection never carries it. Its puts become visible together
 * at COMMIT (rs_store_end reports a failed commit). A read is "BEGIN
 * ISOLATION LEVEL REPEATABLE READ READ ONLY", sent together with its first
 * statement: one consistent snapshot, no lock, never waits for a writer.
 *
 * Errors. No connection, or a connection found broken after a failed
 * statement: APR_ECONNREFUSED / APR_ECONNABORTED (RS_STORE_UNAVAILABLE,
 * the engine answers 503). A failed BEGIN on a pooled connection that
 * apr_dbd could reset is retried once (a PostgreSQL restart leaves every
 * pooled connection broken until its next use). Any other SQL error:
 * APR_EGENERAL. Every failure logs a tagged line with PostgreSQL's message.
 */

#include <apr_pools.h>
#include <apr_dbd.h>

#include "rs_store.h"

#define RS_PGSQL_SCHEMA_VERSION 1

/** Lend a connection for one transaction (*conn is handed to close).
 *  APR_EINTR: none, the process is exiting (not logged). */
typedef apr_status_t rs_pgsql_open_fn(void *baton, apr_pool_t *p,
                                      const apr_dbd_driver_t **driver,
                                      apr_dbd_t **handle, void **conn);
typedef void rs_pgsql_close_fn(void *baton, void *conn);

/** A pgsql store on lent connections. name: for messages (rs_store_path). */
apr_status_t rs_store_pgsql_create(rs_store_t **ps, rs_pgsql_open_fn *open,
                                   rs_pgsql_close_fn *close, void *baton,
                                   const char *name, apr_pool_t *p);

/**
 * A pgsql store with its own connection (apr_dbd driver "pgsql", params a
 * libpq conninfo string as in DBDParams), opened at the first transaction
 * and kept until p is destroyed. For one thread: resumablectl, the
 * parent's start-up check. APR_ENOTIMPL when apr_dbd has no pgsql driver.
 */
apr_status_t rs_store_pgsql_direct(rs_store_t **ps, const char *params,
                                   apr_pool_t *p);

/**
 * Check the schema: *version receives the version found (0: none). With
 * migrate set, create it when absent and run the steps up to
 * RS_PGSQL_SCHEMA_VERSION, in one write transaction. APR_ENOENT: absent
 * (or older) and migrate is 0; APR_ENOTIMPL: newer than this build knows.
 */
apr_status_t rs_store_pgsql_schema(rs_store_t *s, int migrate, apr_pool_t *p,
                                   int *version);

/** Is s a pgsql store? */
int rs_store_is_pgsql(const rs_store_t *s);

#endif /* RS_STORE_PGSQL_H */
