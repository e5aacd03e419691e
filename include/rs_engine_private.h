/* Licensed under the Apache License, Version 2.0. */
#ifndef RS_ENGINE_PRIVATE_H
#define RS_ENGINE_PRIVATE_H

/*
 * Design: helpers the engine's own files (rs_engine.c, rs_engine_chunk.c,
 * rs_engine_compose.c) share. Not an interface for front ends or the
 * glue: they use rs_engine.h.
 * Errors follow rs_engine.h (rs_error_t *, NULL = success); allocations come
 * from the pool passed in.
 */

#include "rs_engine.h"

struct rs_txn_t;
struct rs_lock_t;

/** Record of id in an open transaction (APR_ENOENT: none). */
apr_status_t rs_eng_txn_load(struct rs_txn_t *txn, const char *id,
                             apr_pool_t *p, rs_upload_t **u);
apr_status_t rs_eng_txn_save(struct rs_txn_t *txn, const rs_upload_t *u,
                             apr_pool_t *p);
/** Copy the writer-owned fields of u onto the stored record. */
apr_status_t rs_eng_save_progress(rs_engine_t *e, const rs_upload_t *u,
                                  apr_pool_t *p, rs_upload_t **fresh);
/** The stored record of id (404/410 errors, no owner or area check). */
rs_error_t *rs_eng_lookup(rs_engine_t *e, const char *id, apr_pool_t *p,
                          rs_upload_t **u);
/** Logged errors for state database and data file failures. */
rs_error_t *rs_eng_state_error(apr_pool_t *p, apr_status_t rv,
                               const char *what, const char *id);
rs_error_t *rs_eng_io_error(apr_pool_t *p, apr_status_t rv, const char *what,
                            const char *id);
/** RS_ERR_MAX_SIZE when length exceeds the area's maximum. */
rs_error_t *rs_eng_check_size(const rs_area_t *a, apr_off_t length,
                              apr_pool_t *p);
/** Lower-case hex MD5 of the first len bytes of path, or NULL. */
const char *rs_eng_md5_of(apr_pool_t *p, const char *path, apr_off_t len);
/** Complete u (publish); md5hex: its verified MD5 or NULL. */
rs_error_t *rs_eng_complete_md5(rs_engine_t *e, const rs_area_t *a,
                                rs_upload_t *u, const char *md5hex,
                                apr_pool_t *p);
int rs_eng_digest_equal(const unsigned char *a, apr_size_t alen,
                        const unsigned char *b, apr_size_t blen);
/** Remove the chunk files of a chunked upload. */
void rs_eng_remove_chunks(const rs_upload_t *u, apr_pool_t *p);
/** The sweep's part of RS_UF_CHUNKS_LEFT: remove the chunk files of
 *  complete upload u (what a kill after the answer left) and clear the
 *  bit in its record. */
void rs_eng_chunks_sweep(rs_engine_t *e, rs_upload_t *u, apr_pool_t *p);
/** "<dir>/.resumable/<id>.c<index>": chunk file of a chunk-mode upload. */
const char *rs_eng_chunk_path(apr_pool_t *p, const rs_upload_t *u,
                              int index);
/** First index (*base) and count of u's complete run of chunks, or 0. */
int rs_eng_chunk_run(const rs_upload_t *u, int *base);
/** The name u is published under in area a (sanitized, defused). */
const char *rs_eng_publish_name(apr_pool_t *p, const rs_area_t *a,
                                const rs_upload_t *u);
/** Complete u composed (rs_engine.h): length = offset = total, published
 *  later under its name in a (rs_eng_publish_name, taken after pre-finish,
 *  which may change it); stores the record, notes the id in p for the
 *  glue. */
rs_error_t *rs_eng_compose(rs_engine_t *e, const rs_area_t *a,
                           rs_upload_t *u, apr_off_t total, apr_pool_t *p);
/** Before partial u is removed: materialise the composed finals that use
 *  it (a NULL: without waiting). An error: u must stay. */
rs_error_t *rs_eng_release_partial(rs_engine_t *e, const rs_area_t *a,
                                   const rs_upload_t *u, apr_pool_t *p);
/** prefix + hex SHA-256 of pieces (each but the last followed by NUL). */
const char *rs_eng_hash_key(apr_pool_t *p, const char *prefix,
                            const char *const *pieces, int n);
/** Does creating u in a count against ResumableMaxPending? */
int rs_eng_counts_pending(const rs_area_t *a, const rs_upload_t *u);
/** In txn: new upload u counts (sets RS_UF_PENDING), or set *err
 *  (RS_ERR_TOO_MANY_PENDING, logged RS09103) when its user or the area is
 *  at the limit. Writes nothing (see rs_eng_pending_count). */
apr_status_t rs_eng_pending_take(struct rs_txn_t *txn, const rs_area_t *a,
                                 rs_upload_t *u, apr_pool_t *p,
                                 rs_error_t **err);
/** In txn, after u's record (flagged RS_UF_PENDING by
 *  rs_eng_pending_take) is stored: write its "q:" entry, then raise the
 *  counters (the order a kill can only leave low, rs_engine_pending.c). */
apr_status_t rs_eng_pending_count(struct rs_txn_t *txn, const rs_area_t *a,
                                  const rs_upload_t *u, apr_pool_t *p);
/** In txn: stored record cur holds data (has_data): no longer pending. */
apr_status_t rs_eng_pending_update(struct rs_txn_t *txn, rs_upload_t *cur,
                                   int has_data, apr_pool_t *p);
/** In txn: upload id is no longer pending (ResumableMaxPending): lower
 *  the counters its "q:" entry names and remove it (none: a no-op). */
apr_status_t rs_eng_pending_release(struct rs_txn_t *txn, const char *id,
                                    apr_pool_t *p);
/** In txn: stored record cur now holds data; release it when pending. */
apr_status_t rs_eng_pending_data(struct rs_txn_t *txn, rs_upload_t *cur,
                                 apr_pool_t *p);
/** 1 for the chunk protocols (slice, md5, flow). */
int rs_eng_chunk_proto(rs_proto_id_t proto);
/** An engine entry point was handed an upload of the wrong mode or
 *  protocol (what: "an append", "a chunk"...): logs RS09101 (info) and
 *  returns RS_ERR_WRONG_PROTOCOL (400). */
rs_error_t *rs_eng_wrong_mode(apr_pool_t *p, const rs_upload_t *u,
                              const char *what);
/* Holds (rs_engine_lease.c): the one writer of an upload. On one node an
 * OFD lock (rs_lock.h); in cluster mode (rs_eng_cluster) a lease with an
 * epoch in the record, judged by the store's clock (design at the top of
 * rs_engine_lease.c). */
typedef struct rs_hold_t rs_hold_t;
/** A save by a holder whose epoch is no longer the record's: it lost the
 *  lease to another request (RS_ERR_FENCED). */
#define RS_EFENCED (APR_OS_START_USERERR + 931)
int rs_eng_cluster(const rs_engine_t *e);
/** Hold upload id (staging folder of dir): wait up to `wait` for the
 *  holder to yield (asking it), else RS_ERR_LOCKED. Release with
 *  rs_eng_unhold (a lease left behind expires after e->lease_time). */
rs_error_t *rs_eng_hold(rs_engine_t *e, const char *dir, const char *id,
                        apr_interval_time_t wait, apr_pool_t *p,
                        rs_hold_t **h);
/** Has a newcomer asked the holder to yield (or taken the lease)?
 *  Rate-limited: cheap to call per idle tick. */
int rs_eng_hold_stop_requested(rs_hold_t *h);
void rs_eng_unhold(rs_hold_t *h);
apr_int64_t rs_eng_hold_epoch(const rs_hold_t *h);
/** Cluster: let h's next save (rs_eng_save_held) also free the lease (one
 *  write transaction less). No-op on one node. */
void rs_eng_hold_release_on_save(rs_hold_t *h);
int rs_eng_hold_releasing(const rs_hold_t *h);
/** Cluster: the lease was freed by a save (a completion): unhold has
 *  nothing left to write. */
void rs_eng_hold_forget(rs_hold_t *h);
/** Cluster: the previous holder never released (a new segment began). */
int rs_eng_hold_takeover(const rs_hold_t *h);
/** A renewal that began at local time `began` succeeded. */
void rs_eng_hold_renewed(rs_hold_t *h, apr_time_t began);
/** Cluster: a renewal is due (a third of the lease passed). */
int rs_eng_hold_renew_due(const rs_hold_t *h);
/** Cluster: the lease may have passed by now (no renewal for 4/5 of it):
 *  the holder must stop writing. */
int rs_eng_hold_expiring(const rs_hold_t *h);
/** "<boot id>:<pid>:<start time>" of this process (a lease owner). */
const char *rs_eng_lease_me(apr_pool_t *p);
/** "<dir>/.resumable/<id>.e<epoch>": file of segment s of u. */
const char *rs_eng_seg_path(apr_pool_t *p, const rs_upload_t *u,
                            const rs_segment_t *s);
/** The file completion publishes: "<id>.data", or in cluster mode the
 *  segments joined by the writer of epoch u->epoch, "<id>.j<epoch>". */
const char *rs_eng_data_src(const rs_engine_t *e, const rs_upload_t *u,
                            apr_pool_t *p);
/** The upload's hold for a writer (waits up to the area's lock_wait). */
rs_error_t *rs_eng_lock(rs_engine_t *e, const rs_area_t *a,
                        const rs_upload_t *u, apr_pool_t *p, rs_hold_t **h);
/** rs_eng_save_event by holder h (NULL: u's epoch must still be the
 *  record's in cluster mode): fenced (RS_EFENCED) when the record's epoch
 *  moved on; renews h's lease. */
apr_status_t rs_eng_save_held(rs_engine_t *e, rs_hold_t *h,
                              const rs_upload_t *u, int event, apr_pool_t *p,
                              rs_upload_t **fresh);

/* Hooks (rs_engine_hook.c): no-ops when e->hooks is NULL. */
/** Ask a blocking hook (rs_engine_hooks_t.gate). */
rs_error_t *rs_eng_gate(rs_engine_t *e, int event, rs_upload_t *u,
                        apr_pool_t *p);
/** Record a notification inside txn (rs_engine_hooks_t.record). */
apr_status_t rs_eng_record(rs_engine_t *e, struct rs_txn_t *txn, int event,
                           const rs_upload_t *u, apr_pool_t *p);
/** pre-finish for u (not for partials): a refusal marks u RS_UF_REJECTED,
 *  stores it and removes its data; the error is returned either way. */
rs_error_t *rs_eng_finish_gate(rs_engine_t *e, rs_upload_t *u,
                               apr_pool_t *p);
/** rs_eng_save_progress that also records event (-1: none) in the same
 *  transaction. */
apr_status_t rs_eng_save_event(rs_engine_t *e, const rs_upload_t *u,
                               int event, apr_pool_t *p, rs_upload_t **fresh);

#endif /* RS_ENGINE_PRIVATE_H */
