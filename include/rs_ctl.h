/* Licensed under the Apache License, Version 2.0. */
#ifndef RS_CTL_H
#define RS_CTL_H

/*
 * Design: the maintenance side of the state database, used by the
 * resumablectl tool (tools/resumablectl.c) and its unit tests; the httpd
 * module never calls it. It reads the same store (rs_store, no global
 * mutex) and the same record codec (rs_upload) as the engine:
 *
 *   rs_ctl_load    every "u:<id>" record, decoded (a record that does not
 *                  decode is kept as an item with u == NULL and its status)
 *   rs_ctl_check   compare one record with the files it names: the data
 *                  file of an unfinished upload must exist and hold at least
 *                  the recorded offset (an acknowledged byte is on disk), a
 *                  published file must exist, a composed upload's parts
 *                  (rs_engine_parts) must exist and hold its bytes (its
 *                  own data file is only a copy in progress)
 *   rs_ctl_repair  make one record consistent again (see rs_ctl_problem_t)
 *   rs_ctl_pending ResumableMaxPending's counts (layout in rs_engine.c)
 *                  against the uploads that hold no data: every "q:<id>"
 *                  entry must name a record still flagged RS_UF_PENDING,
 *                  and every "n:<hash>" count must equal the number of
 *                  such entries naming it. A process killed (or a disk
 *                  full) between two writes of a creation, a first byte or
 *                  a removal leaves a count off by one; a count stuck high
 *                  refuses a user's (or the area's) uploads forever, so
 *                  repair recounts
 *   rs_ctl_adopt   rebuild a record for a data file that has none (a lost
 *                  or corrupted database): an anonymous upload of unknown
 *                  length whose offset is the file size, so a client that
 *                  still knows the upload URL can resume it
 *
 * Concurrency: the store has no mutex here. Callers serialize among
 * themselves (resumablectl takes an flock on "<db>.ctl.lock") and must only
 * write (repair, adopt, expire) while httpd is stopped; reads are safe
 * while it runs (every value is CRC-checked; a read racing a write at most
 * reports a transient problem).
 */

#include <apr_pools.h>
#include <apr_tables.h>
#include "rs_upload.h"

struct rs_store_t;

typedef enum {
    RS_CTL_OK = 0,
    RS_CTL_CORRUPT,       /* record does not decode: deleted, tombstoned */
    RS_CTL_NO_DATA,       /* unfinished upload without data file: removed */
    RS_CTL_AHEAD,         /* offset beyond the data file: offset lowered */
    RS_CTL_NO_FILE,       /* published file missing: record removed */
    RS_CTL_STUCK,         /* final still assembling although every part is
                             complete (interrupted assembly): reported,
                             not repaired (needs the engine) */
    RS_CTL_NO_PARTS       /* composed upload whose parts are gone: record
                             removed, tombstone left */
} rs_ctl_problem_t;

typedef struct rs_ctl_item_t {
    const char *id;
    rs_upload_t *u;              /* NULL when the record is corrupt */
    apr_status_t rv;             /* status of reading/decoding the record */
    apr_off_t data_size;         /* size of the data file, -1 if absent */
    int parts_ready;             /* final: every part loaded and complete */
    int parts_missing;           /* composed: a part is gone or short */
    rs_ctl_problem_t problem;    /* set by rs_ctl_check */
    const char *what;            /* human readable problem, or NULL */
} rs_ctl_item_t;

/** All upload records, sorted by id (array of rs_ctl_item_t *).
 *  APR_ENOENT when the database does not exist. */
apr_status_t rs_ctl_load(struct rs_store_t *s, apr_pool_t *p,
                         apr_array_header_t **items);

/** One record by id; APR_ENOENT when absent. */
apr_status_t rs_ctl_load_one(struct rs_store_t *s, const char *id,
                             apr_pool_t *p, rs_ctl_item_t **item);

/** Check item against the file system; returns item->problem. */
rs_ctl_problem_t rs_ctl_check(rs_ctl_item_t *item, apr_pool_t *p);

/** Repair what rs_ctl_check found; *action describes what was done. */
apr_status_t rs_ctl_repair(struct rs_store_t *s, rs_ctl_item_t *item,
                           apr_pool_t *p, const char **action);

/**
 * Check (repair 0) or correct (repair 1, httpd stopped) ResumableMaxPending's
 * counts: *problems receives one line (const char *) per entry naming no
 * pending upload (removed) and per count that differs from its entries
 * (set to their number). APR_SUCCESS without a database.
 */
apr_status_t rs_ctl_pending(struct rs_store_t *s, int repair, apr_pool_t *p,
                            apr_array_header_t **problems);
/** Remove orphaned segments of the whole database; *removed counts them. */
apr_status_t rs_ctl_gc(struct rs_store_t *s, apr_pool_t *p,
                       apr_size_t *removed);

/**
 * For every "<dir>/.resumable/<id>.data" with a valid id and no record (nor
 * tombstone), store a record: ACTIVE, tus, deferred length, offset = file
 * size, owner as given ("" anonymous), expires = now + expire (0: never).
 * *adopted receives the ids (const char *).
 */
apr_status_t rs_ctl_adopt(struct rs_store_t *s, const char *dir,
                          const char *owner, apr_interval_time_t expire,
                          apr_pool_t *p, apr_array_header_t **adopted);

/** Age in seconds of u (now - created). */
long rs_ctl_age(const rs_upload_t *u, apr_time_t now);

/** The item of upload id in items (from rs_ctl_load), or NULL. */
rs_ctl_item_t *rs_ctl_find(const apr_array_header_t *items, const char *id);

#endif /* RS_CTL_H */
