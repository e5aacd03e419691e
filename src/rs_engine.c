/* Licensed under the Apache License, Version 2.0. */
/*
 * The upload engine: records, reconciliation, the append path, completion,
 * concatenation, termination and the expiry sweep. See rs_engine.h.
 *
 * Store layout (rs_store keys):
 *   "u:<id>"   the upload record (rs_upload_encode)
 *   "t:<id>"   tombstone: decimal apr_time_t of removal (answers 410)
 *   "k:<hex>"  client key -> upload id. <hex> is the SHA-256 of
 *              "k2\0<area dir>\0<owner>\0<protocol id>\0<client key>":
 *              the client's own file id (untrusted, at most
 *              RS_ENGINE_MAX_KEY bytes) never becomes a key itself, and
 *              ids of different areas, users or protocols never meet (the
 *              offset front end's "slice:x.bin" is not the slice upload of
 *              x.bin). Entries of the first form (before issue 11), the
 *              SHA-256 of "<area dir>\0<owner>\0<client key>" without the
 *              protocol, are still read when no new entry exists, but only
 *              for the protocol of the upload they name: the chunk front
 *              ends prefix their keys ("slice:", "md5:", "flow:"), so an
 *              old upload is still found by its own protocol, never by
 *              another's. They are never written again and are removed
 *              with their upload. Written in the transaction that stores
 *              the new record (a concurrent create for the same key adopts
 *              the winner; a finished upload's key moves to a new upload of
 *              the same key), removed with the upload (terminate, expiry)
 *              when it still names it; a "k:" entry whose upload is gone is
 *              ignored.
 *   "n:<hex>"  count of pending uploads (created, holding no data yet,
 *              RS_UF_PENDING) of a user in an area (<hex>: SHA-256 of
 *              "n\0<dir>\0u\0<owner>", or "n\0<dir>\0a\0<client address>"
 *              for anonymous clients) or of the whole area ("n\0<dir>"):
 *              decimal, removed at 0. Checked and raised in the
 *              transaction that stores a new record (ResumableMaxPending:
 *              RS_ERR_TOO_MANY_PENDING beyond), lowered in the one that
 *              first records data for it (an append, a chunk, completion)
 *              or removes it. Never a scan: creation costs two reads
 *              (rs_engine_pending.c).
 *   "q:<id>"   "<user counter key> <area counter key>" of a pending
 *              upload: what to lower, even without its record (resumablectl).
 *              A kill between two writes of one transaction can leave a
 *              count one off; it only ever counts uploads still flagged.
 *   "h:md5:<md5 hex>:<32 hex of SHA-256 of "<area dir>\0<owner>\0">"
 *              content index -> id of the owner's published upload with
 *              that content. Written when any upload is published (its MD5
 *              computed once then, or taken from the md5 front end's
 *              verification) unless the entry already names a live upload
 *              (so the md5 handshake answers one URL for the content);
 *              read by rs_engine_content_find, which drops entries whose
 *              upload or file is gone (an older value, a path, is dropped
 *              the same way).
 *
 * Chunk mode (RS_UF_CHUNKED; slice, md5, flow):
 *   - Each chunk keeps its own file "<area>/.resumable/<id>.c<index>",
 *     made by linking the front end's spool file (no copy; link never
 *     replaces, so of two concurrent different chunks one is refused).
 *     Chunk sizes need not be known in advance (seed 000 tells its chunk
 *     size only at the merge). A re-sent chunk is compared with the stored
 *     one (size and SHA-256): the same bytes succeed, others are
 *     RS_ERR_CHUNK_CONFLICT.
 *   - The record's chunk_map has a bit per index, set in one store
 *     transaction per chunk (concurrent chunks never lose bits). While
 *     RS_UF_DEFER_LENGTH is set the count is unknown and chunk_count is
 *     the highest index + 1; once a client names the count T the flag is
 *     cleared and chunk_count = T + 1, so both numberings fit (0..T-1 or
 *     1..T; a request mixing them is refused).
 *   - Completion (all of a declared count present, or an explicit merge)
 *     runs under the upload's writer lock, exactly once. Without an MD5
 *     to verify the upload is composed (rs_engine_compose.c): complete at
 *     once, the chunk files (synced first) are its data until it is
 *     materialised off the request path, then they are removed. With an
 *     expected MD5 (md5 front end) the chunk files are merged end to end
 *     into "<id>.data" and hashed as the run from chunk 0 grows (each
 *     chunk by the request that extends the run, rs_engine_chunk.c), the
 *     MD5 is verified, then the file is published like any other and the
 *     chunk files are removed after the answer (RS_UF_CHUNKS_LEFT: the
 *     sweep removes what a killed child left).
 *
 * Concatenation: a final whose partials are all complete is composed
 * (rs_engine_compose.c); its partials list it among their waiters, and a
 * complete partial is not removed (DELETE, expiry) while a final that is
 * not published yet lists it (checked in the removing transaction).
 *   - Registration (register_final) is one write transaction: every
 *     check first (parts distinct and at most RS_ENGINE_MAX_PARTS, each a
 *     partial of the owner, sizes, room on each waiter list), then one
 *     record write per partial and the final's record last. The first
 *     failing write stops it and the partials written so far are put back,
 *     so a refused final leaves nothing; a kill in the middle leaves at
 *     most waiter entries naming no record, which nothing counts.
 *   - A waiter list holds only finals that still need the partial: a final
 *     leaves its partials' lists when it is materialised (published), and
 *     a full list (RS_ENGINE_MAX_WAITERS) is first cleared of published
 *     and vanished finals before a new final is refused (RS_ERR_LOCKED).
 */

#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
#include <apr_hash.h>
#include <apr_strings.h>
#include <apr_time.h>

#include "rs_engine.h"
#include "rs_engine_private.h"
#include "rs_hook.h"
#include "rs_store.h"
#include "rs_data.h"
#include "rs_lock.h"
#include "rs_hash.h"
#include "rs_hash_follow.h"
#include "rs_util.h"
#include "rs_log.h"
#include "rs_stats.h"

#define TOMB_LIFETIME apr_time_from_sec(7 * 86400)

#if RS_ENGINE_MAX_PARTS > RS_UPLOAD_MAX_PARTS \
    || RS_ENGINE_MAX_WAITERS > RS_UPLOAD_MAX_PARTS
#error "a record holds at most RS_UPLOAD_MAX_PARTS parts or waiters"
#endif

/* ------------------------------------------------------------------------ */
/* records                                                                   */

static const char *ukey(apr_pool_t *p, const char *id)
{
    return apr_pstrcat(p, "u:", id, NULL);
}

static const char *tkey(apr_pool_t *p, const char *id)
{
    return apr_pstrcat(p, "t:", id, NULL);
}

/* prefix + hex SHA-256 of the given pieces, each followed by a NUL but
 * the last. */
const char *rs_eng_hash_key(apr_pool_t *p, const char *prefix,
                            const char *const *pieces, int n)
{
    unsigned char d[RS_HASH_MAX];
    apr_size_t len = 0;
    rs_hash_t *h;
    int i;

    if (APR_SUCCESS != rs_hash_create(&h, "sha256", p)) {
        return NULL;
    }
    for (i = 0; i < n; i++) {
        rs_hash_update(h, pieces[i], strlen(pieces[i]) + (i < n - 1));
    }
    rs_hash_final(h, d, &len);
    return apr_pstrcat(p, prefix, rs_util_hex(p, d, len), NULL);
}

static const char *hash_key(apr_pool_t *p, const char *const *pieces, int n)
{
    return rs_eng_hash_key(p, "k:", pieces, n);
}

/* The first form "k:<sha256 hex of dir NUL owner NUL client key>", shared
 * by all protocols: read only (see the store layout above), and the base
 * of the content index key (hkey). */
static const char *kkey_v1(apr_pool_t *p, const char *dir, const char *owner,
                           const char *client_key)
{
    const char *pieces[3];

    pieces[0] = dir;
    pieces[1] = owner;
    pieces[2] = client_key;
    return hash_key(p, pieces, 3);
}

/* "k:<sha256 hex of "k2" NUL dir NUL owner NUL proto NUL client key>": the
 * client's own id, scoped to area, user and protocol, never used raw as
 * a key. The "k2" (a dir is absolute: it starts with '/') keeps it apart
 * from every first-form key. */
static const char *kkey(apr_pool_t *p, const char *dir, const char *owner,
                        rs_proto_id_t proto, const char *client_key)
{
    const char *pieces[5];

    pieces[0] = "k2";
    pieces[1] = dir;
    pieces[2] = owner;
    pieces[3] = apr_itoa(p, (int)proto);
    pieces[4] = client_key;
    return hash_key(p, pieces, 5);
}

static rs_error_t *check_key(const char *client_key, apr_pool_t *p)
{
    apr_size_t n = client_key ? strlen(client_key) : 0;

    if (client_key && (0 == n || n > RS_ENGINE_MAX_KEY)) {
        return rs_error_make(p, RS_ERR_BAD_REQUEST, 0, "the file id must "
                             "have 1 to %d bytes", RS_ENGINE_MAX_KEY);
    }
    return NULL;
}

apr_status_t rs_eng_txn_load(rs_txn_t *txn, const char *id, apr_pool_t *p,
                             rs_upload_t **u)
{
    char *val;
    apr_size_t len;
    apr_status_t rv = rs_store_get(txn, ukey(p, id), p, &val, &len);

    if (APR_SUCCESS == rv) {
        rv = rs_upload_decode(p, id, val, len, u);
        if (APR_SUCCESS != rv) {
            rs_log_perror(RS_LOG_MARK, RS_LOG_ERR, rv, p, RS_LOGNO(01001)
                          "upload %s: state record is corrupt", id);
        }
    }
    return rv;
}

/* The upload a client key of protocol proto maps to, in txn: *id, or
 * NULL when there is none (or, with active_only, when it is no longer
 * active). An entry naming another protocol's upload (a first-form key,
 * see above) is no match: logged, and ignored. */
static apr_status_t key_target(rs_txn_t *txn, const char *key,
                               rs_proto_id_t proto, int active_only,
                               apr_pool_t *p, const char **id)
{
    char *val;
    apr_size_t len;
    rs_upload_t *u;
    apr_status_t rv = key ? rs_store_get(txn, key, p, &val, &len)
                          : APR_EGENERAL;

    *id = NULL;
    if (APR_STATUS_IS_ENOENT(rv)) {
        return APR_SUCCESS;
    }
    if (APR_SUCCESS != rv) {
        return rv;
    }
    rv = rs_eng_txn_load(txn, val, p, &u);
    if (APR_SUCCESS == rv && proto != u->proto) {
        rs_log_perror(RS_LOG_MARK, RS_LOG_INFO, 0, p, RS_LOGNO(09100)
                      "upload %s: a client key of protocol %d names this "
                      "upload of protocol %d: ignored", u->id, (int)proto,
                      (int)u->proto);
        return APR_SUCCESS;
    }
    if (APR_SUCCESS == rv && (!active_only || (RS_STATE_ACTIVE == u->state
                                               && !(u->flags
                                                    & RS_UF_REJECTED)))) {
        *id = val;
    }
    return APR_STATUS_IS_ENOENT(rv) ? APR_SUCCESS : rv;
}

apr_status_t rs_eng_txn_save(rs_txn_t *txn, const rs_upload_t *u, apr_pool_t *p)
{
    char *buf;
    apr_size_t len;
    apr_status_t rv = rs_upload_encode(u, p, &buf, &len);

    if (APR_SUCCESS == rv) {
        rv = rs_store_put(txn, ukey(p, u->id), buf, len);
    }
    return rv;
}

rs_error_t *rs_eng_state_error(apr_pool_t *p, apr_status_t rv, const char *what,
                               const char *id)
{
    if (RS_EFENCED == rv) {             /* logged (RS09831) where found */
        return rs_error_make(p, RS_ERR_FENCED, 0, NULL);
    }
    rs_log_perror(RS_LOG_MARK, RS_LOG_ERR, rv, p, RS_LOGNO(01002)
                  "upload %s: state database %s failed", id, what);
    return rs_error_make(p, RS_STORE_UNAVAILABLE(rv)
                         ? RS_ERR_STATE_UNAVAILABLE : RS_ERR_STATE, rv, NULL);
}

rs_error_t *rs_eng_io_error(apr_pool_t *p, apr_status_t rv, const char *what,
                            const char *id)
{
    rs_errcode_t code = rs_error_from_io(rv, RS_ERR_STORAGE);

    rs_log_perror(RS_LOG_MARK, RS_ERR_STORAGE_FULL == code ? RS_LOG_WARNING
                  : RS_LOG_ERR, rv, p, RS_LOGNO(01003)
                  "upload %s: %s failed", id, what);
    return rs_error_make(p, code, rv, NULL);
}

/* Fields a writer owns: copied onto the freshest record before saving, so
 * changes others made meanwhile (waiters of a partial) are kept. */
static void apply_progress(rs_upload_t *dst, const rs_upload_t *src)
{
    dst->state = src->state;
    dst->flags = src->flags;
    dst->length = src->length;
    dst->offset = src->offset;
    dst->pending_from = src->pending_from;
    dst->updated = src->updated;
    dst->expires = src->expires;
    dst->path = src->path;
    dst->filename = src->filename;      /* a pre-finish answer may name it */
    dst->digest_alg = src->digest_alg;
    dst->digest = src->digest;
    if (src->flags & RS_UF_CHUNKED) {
        dst->chunk_map = src->chunk_map;
    }
}

/* Write u's progress fields into the stored record (read-modify-write in
 * one short transaction). *fresh receives the stored result. */
apr_status_t rs_eng_save_progress(rs_engine_t *e, const rs_upload_t *u,
                                  apr_pool_t *p, rs_upload_t **fresh)
{
    return rs_eng_save_event(e, u, -1, p, fresh);
}

apr_status_t rs_eng_save_event(rs_engine_t *e, const rs_upload_t *u,
                               int event, apr_pool_t *p, rs_upload_t **fresh)
{
    return rs_eng_save_held(e, NULL, u, event, p, fresh);
}

/* Cluster: may the writer of u (holder h, or whoever read u) still change
 * stored record cur? Renews h's lease and sizes the last segment. */
static apr_status_t fence(rs_engine_t *e, rs_hold_t *h, rs_txn_t *txn,
                          rs_upload_t *cur, const rs_upload_t *u,
                          int completes, apr_pool_t *p)
{
    apr_int64_t mine = h ? rs_eng_hold_epoch(h) : u->epoch;
    rs_segment_t *last;
    apr_time_t now;
    apr_status_t rv;

    if (cur->epoch != mine) {
        rs_log_perror(RS_LOG_MARK, RS_LOG_WARNING, 0, p, RS_LOGNO(09831)
                      "upload %s: writer of epoch %" APR_INT64_T_FMT
                      " fenced: the lease is at epoch %" APR_INT64_T_FMT
                      " (another request took it over); its bytes since "
                      "its last checkpoint do not count", u->id, mine,
                      cur->epoch);
        return RS_EFENCED;
    }
    if ((h && rs_eng_hold_releasing(h) && cur->lease_owner)
        || (!h && completes)) {
        cur->lease_owner = NULL;        /* released in this save: a
                                           complete upload has no writer */
        cur->lease_until = cur->stop_req = 0;
    }
    else if (h && cur->lease_owner) {
        if (APR_SUCCESS != (rv = rs_store_clock(txn, &now))) {
            return rv;
        }
        cur->lease_until = now + e->lease_time;
    }
    if (cur->nsegs > 0 && !(cur->flags & RS_UF_CHUNKED)) {
        last = &cur->segs[cur->nsegs - 1];
        if (cur->offset >= last->start) {
            last->len = cur->offset - last->start;
        }
    }
    return APR_SUCCESS;
}

apr_status_t rs_eng_save_held(rs_engine_t *e, rs_hold_t *h,
                              const rs_upload_t *u, int event, apr_pool_t *p,
                              rs_upload_t **fresh)
{
    rs_txn_t *txn;
    rs_upload_t *cur = NULL;
    apr_time_t began = apr_time_now();
    apr_status_t rv = rs_store_begin(e->store, 1, p, &txn);
    int completes = 0;

    if (APR_SUCCESS != rv) {
        return rv;
    }
    rv = rs_eng_txn_load(txn, u->id, p, &cur);
    if (APR_SUCCESS == rv) {
        unsigned int pending = cur->flags & RS_UF_PENDING;

        completes = RS_STATE_COMPLETE != cur->state
                    && RS_STATE_COMPLETE == u->state;
        if (event < 0 && e->hooks && RS_STATE_ACTIVE == u->state
            && u->offset > cur->offset && !(u->flags & RS_UF_CHUNKED)
            && (u->length < 0 || u->offset < u->length)) {
            event = RS_HOOK_POST_RECEIVE;       /* progress, not the end */
        }
        apply_progress(cur, u);
        cur->flags = (cur->flags & ~RS_UF_PENDING) | pending;
        rv = rs_eng_pending_update(txn, cur, cur->offset > 0
                                   || RS_STATE_COMPLETE == cur->state, p);
    }
    if (APR_SUCCESS == rv && rs_eng_cluster(e)) {
        rv = fence(e, h, txn, cur, u, completes, p);
    }
    if (APR_SUCCESS == rv) {
        rv = rs_eng_txn_save(txn, cur, p);
    }
    if (APR_SUCCESS == rv && event >= 0) {
        rv = rs_eng_record(e, txn, event, cur, p);
    }
    rv = rs_store_finish(txn, rv);          /* pgsql: the commit */
    if (APR_SUCCESS == rv) {
        rs_eng_hold_renewed(h, began);
        if (rs_eng_hold_releasing(h)) {
            rs_eng_hold_forget(h);
        }
    }
    if (fresh) {
        *fresh = cur;
    }
    return rv;
}

apr_time_t rs_engine_expires(const rs_area_t *a, const rs_upload_t *u)
{
    return a->expire > 0 ? u->updated + a->expire : 0;
}

/* ------------------------------------------------------------------------ */
/* reconciliation                                                            */

/* The offset the data file supports. An unverified append in flight (or
 * left by a killed writer) does not count; bytes beyond the record of a
 * plain append do (they reached the disk). With sync on, such bytes are
 * made durable before they are reported. No data file: 0 (*gone set when
 * gone is not NULL). */
static apr_off_t disk_offset(const rs_area_t *a, const rs_upload_t *u,
                             int *gone, apr_pool_t *p)
{
    const char *path = rs_data_path(p, u->dir, u->id);
    apr_off_t size = 0;
    apr_file_t *f;

    if (APR_SUCCESS != rs_data_size(path, &size, p)) {
        if (gone) {
            *gone = 1;
        }
        return 0;
    }
    if (u->pending_from >= 0) {
        return size < u->pending_from ? size : u->pending_from;
    }
    if (size > u->offset && a->sync
        && APR_SUCCESS == rs_data_open(&f, path, 0, p)) {
        rs_data_sync(f);
        apr_file_close(f);
    }
    if (u->length >= 0 && size > u->length) {
        size = u->length;
    }
    return size;
}

/* Under the writer lock: make file and record agree for good. */
static apr_status_t reconcile_locked(rs_engine_t *e, const rs_area_t *a,
                                     rs_upload_t *u, apr_file_t *f,
                                     apr_pool_t *p)
{
    apr_off_t size = disk_offset(a, u, NULL, p);
    apr_status_t rv;

    if (u->pending_from < 0 && size == u->offset) {
        return APR_SUCCESS;
    }
    rv = rs_data_truncate(f, size);
    if (APR_SUCCESS != rv) {
        return rv;
    }
    if (size != u->offset) {
        rs_log_perror(RS_LOG_MARK, RS_LOG_INFO, 0, p, RS_LOGNO(01004)
                      "upload %s: offset reconciled with data file: %"
                      APR_OFF_T_FMT " -> %" APR_OFF_T_FMT, u->id, u->offset,
                      size);
    }
    u->offset = size;
    u->pending_from = -1;
    return rs_eng_save_progress(e, u, p, NULL);
}

/* ------------------------------------------------------------------------ */
/* open                                                                      */

rs_error_t *rs_eng_lookup(rs_engine_t *e, const char *id, apr_pool_t *p,
                          rs_upload_t **u)
{
    rs_txn_t *txn;
    char *val;
    apr_size_t len;
    apr_status_t rv = rs_store_begin(e->store, 0, p, &txn);

    if (APR_STATUS_IS_ENOENT(rv)) {
        return rs_error_make(p, RS_ERR_NOT_FOUND, rv, NULL);
    }
    if (APR_SUCCESS != rv) {
        return rs_eng_state_error(p, rv, "open", id);
    }
    rv = rs_eng_txn_load(txn, id, p, u);
    if (APR_STATUS_IS_ENOENT(rv)) {
        rv = rs_store_get(txn, tkey(p, id), p, &val, &len);
        rs_store_end(txn);
        return rs_error_make(p, APR_SUCCESS == rv ? RS_ERR_GONE
                             : RS_ERR_NOT_FOUND, 0, NULL);
    }
    rs_store_end(txn);
    return APR_SUCCESS == rv ? NULL : rs_eng_state_error(p, rv, "read", id);
}

/* Incomplete uploads and complete partials (only useful until they are
 * concatenated) expire; published files do not. */
static int expired(const rs_upload_t *u, apr_time_t now)
{
    return (RS_STATE_COMPLETE != u->state || (u->flags & RS_UF_PARTIAL))
           && u->expires && u->expires < now;
}

static apr_status_t remove_upload(rs_engine_t *e, rs_upload_t *u,
                                  rs_hold_t *hold, int event, apr_pool_t *p);

/* Remove an expired upload unless a writer holds it (then it is in use
 * and not expired after all) or, for a partial, a final still needs its
 * data. 1 when removed. */
static int expire_now(rs_engine_t *e, rs_upload_t *u, apr_time_t now,
                      apr_pool_t *p)
{
    rs_hold_t *hold;
    rs_upload_t *cur;
    int removed = 0;

    if (!rs_eng_release_partial(e, NULL, u, p)
        && !rs_eng_hold(e, u->dir, u->id, 0, p, &hold)) {
        /* read again under the lock: another sweeper (another node of a
         * cluster) may have removed it, a writer may have touched it */
        if (!rs_eng_lookup(e, u->id, p, &cur) && expired(cur, now)
            && APR_SUCCESS == remove_upload(e, cur, hold, RS_HOOK_POST_EXPIRE, p)) {
            rs_log_perror(RS_LOG_MARK, RS_LOG_INFO, 0, p, RS_LOGNO(01005)
                          "upload %s: expired, removed", u->id);
            rs_stats_add(RS_STAT_EXPIRED, 1);
            removed = 1;
        }
        rs_eng_unhold(hold);
    }
    return removed;
}

static rs_error_t *assemble_wait(rs_engine_t *e, const rs_area_t *a,
                                 const char *final_id,
                                 apr_interval_time_t wait, apr_pool_t *p);

/* A final still waiting although its last partial completed: the request
 * that completed it was killed before it assembled the final. Assemble
 * it now unless another request is at it (lock not free at once). */
static rs_upload_t *recover_final(rs_engine_t *e, const rs_area_t *a,
                                  rs_upload_t *u, apr_pool_t *p)
{
    rs_upload_t *fresh, *part;
    int i;

    /* opening a part completes it when its writer died after the last
     * byte (recover_complete): then the final can be assembled below */
    for (i = 0; u->parts && i < u->parts->nelts; i++) {
        rs_engine_open(e, a, APR_ARRAY_IDX(u->parts, i, const char *),
                       u->owner, p, &part);
    }
    if (!assemble_wait(e, a, u->id, 0, p)
        && !rs_eng_lookup(e, u->id, p, &fresh)) {
        return fresh;
    }
    return u;
}

static apr_status_t empty_read(rs_body_t *b, const char **data,
                               apr_size_t *len)
{
    return APR_EOF;
}

/* All bytes are on disk, but the upload was not completed (its writer was
 * killed after the last write): complete it now with an empty append,
 * unless a writer holds it (it is completing it then). */
static rs_upload_t *recover_complete(rs_engine_t *e, const rs_area_t *a,
                                     rs_upload_t *u, apr_pool_t *p,
                                     rs_error_t **hook_err)
{
    rs_area_t now = *a;
    rs_body_t empty = { empty_read, NULL, 0, NULL };
    rs_append_t ap;
    rs_append_result_t res;
    rs_upload_t *fresh;
    rs_error_t *err;

    memset(&ap, 0, sizeof(ap));
    ap.offset = u->offset;
    ap.declare_length = -1;
    now.lock_wait = 0;
    err = rs_engine_append(e, &now, u, &ap, &empty, p, &res);
    if (!err && !rs_eng_lookup(e, u->id, p, &fresh)) {
        return fresh;
    }
    if (err && (RS_ERR_HOOK_REJECTED == err->code
                || RS_ERR_HOOK_UNAVAILABLE == err->code
                || RS_ERR_HOOK_FAILED == err->code)) {
        *hook_err = err;        /* pre-finish said no or could not be
                                   asked: never looks finished */
    }
    return u;
}

#define GONE_POLL apr_time_from_msec(2)
#define GONE_WAIT apr_time_from_sec(5)

/*
 * u with the offset its data file supports. A writer that completes an
 * upload publishes (moves) the data file before it stores the record that
 * says so: a reader that read the record just before finds no data file.
 * It then polls the writer's lock (without asking it to stop, at most
 * GONE_WAIT) and reads the record again under it. A data file gone while
 * nobody writes is lost: offset 0, as reconciliation has it.
 */
static rs_upload_t *offset_now(rs_engine_t *e, const rs_area_t *a,
                               rs_upload_t *u, apr_pool_t *p)
{
    apr_time_t until = apr_time_now() + GONE_WAIT;
    const char *staging;
    rs_upload_t *fresh = NULL;
    rs_error_t *err;
    rs_lock_t *lock;
    int gone = 0;
    apr_status_t rv;

    u->offset = disk_offset(a, u, &gone, p);
    if (!gone || APR_SUCCESS != rs_data_staging(p, u->dir, 0, &staging)) {
        return u;
    }
    while (APR_STATUS_IS_EBUSY(rv = rs_lock_acquire(&lock, staging, u->id, 0,
                                                    p))
           && apr_time_now() < until) {
        apr_sleep(GONE_POLL);
    }
    if (APR_SUCCESS != rv) {
        return u;
    }
    err = rs_eng_lookup(e, u->id, p, &fresh);
    if (err ? RS_ERR_GONE == err->code : !rs_upload_append_mode(fresh)) {
        rs_lock_remove_files(lock);     /* finished or deleted: no writer */
    }
    rs_lock_release(lock);
    if (err) {
        return u;
    }
    if (rs_upload_append_mode(fresh)) {
        fresh->offset = disk_offset(a, fresh, NULL, p);
    }
    return fresh;
}

rs_error_t *rs_engine_open(rs_engine_t *e, const rs_area_t *a, const char *id,
                           const char *owner, apr_pool_t *p, rs_upload_t **pu)
{
    rs_upload_t *u;
    rs_error_t *err = rs_eng_lookup(e, id, p, &u);

    if (err) {
        return err;
    }
    if (strcmp(u->dir, a->dir) || strcmp(u->owner, owner ? owner : "")) {
        return rs_error_make(p, RS_ERR_NOT_FOUND, 0, NULL);
    }
    if (u->flags & RS_UF_REJECTED) {
        return rs_error_make(p, RS_ERR_REJECTED, 0, NULL);
    }
    if (expired(u, apr_time_now()) && expire_now(e, u, apr_time_now(), p)) {
        return rs_error_make(p, RS_ERR_GONE, 0, "upload expired");
    }
    if (RS_STATE_ASSEMBLING == u->state && (u->flags & RS_UF_FINAL)) {
        u = recover_final(e, a, u, p);
    }
    if (rs_upload_append_mode(u) && !rs_eng_cluster(e)) {
        u = offset_now(e, a, u, p);     /* cluster: the record's offset is
                                           the committed one */
    }
    if (rs_upload_append_mode(u) && u->length >= 0 && u->offset == u->length) {
        u = recover_complete(e, a, u, p, &err);
    }
    rs_report_upload(p, u);
    *pu = u;
    return err;
}

rs_error_t *rs_engine_find_key(rs_engine_t *e, const rs_area_t *a,
                               const char *owner, rs_proto_id_t proto,
                               const char *client_key, apr_pool_t *p,
                               rs_upload_t **u)
{
    rs_txn_t *txn;
    const char *id = NULL;
    rs_error_t *err = check_key(client_key, p);
    apr_status_t rv;

    owner = owner ? owner : "";
    if (err) {
        return err;
    }
    rv = rs_store_begin(e->store, 0, p, &txn);
    if (APR_SUCCESS == rv) {
        rv = key_target(txn, kkey(p, a->dir, owner, proto, client_key),
                        proto, 0, p, &id);
        if (APR_SUCCESS == rv && !id) {     /* an entry of the first form */
            rv = key_target(txn, kkey_v1(p, a->dir, owner, client_key),
                            proto, 0, p, &id);
        }
        rs_store_end(txn);
    }
    if (APR_SUCCESS != rv && !APR_STATUS_IS_ENOENT(rv)) {
        return rs_eng_state_error(p, rv, "key lookup", "-");
    }
    err = id ? rs_engine_open(e, a, id, owner, p, u)
             : rs_error_make(p, RS_ERR_NOT_FOUND, 0, NULL);
    if (err && (RS_ERR_GONE == err->code || RS_ERR_REJECTED == err->code)) {
        err = rs_error_make(p, RS_ERR_NOT_FOUND, 0, NULL);  /* a refused
                                        one frees its key for a new upload */
    }
    return err;
}

/* ------------------------------------------------------------------------ */
/* create                                                                    */

static rs_error_t *complete(rs_engine_t *e, const rs_area_t *a, rs_upload_t *u,
                            apr_pool_t *p);

rs_error_t *rs_eng_check_size(const rs_area_t *a, apr_off_t length,
                              apr_pool_t *p)
{
    if (a->max_size > 0 && length > a->max_size) {
        return rs_error_make(p, RS_ERR_MAX_SIZE, 0, "upload length %"
                             APR_OFF_T_FMT " exceeds the maximum of %"
                             APR_OFF_T_FMT, length, a->max_size);
    }
    return NULL;
}

/* Store a new record and, with a client key, its "k:" entry. When the key
 * already names an active upload (a concurrent create won), nothing is
 * stored and *existing is that upload's id. A key of a finished upload is
 * taken over by the new one (the client uploads again). */
static rs_error_t *store_new(rs_engine_t *e, const rs_area_t *a,
                             rs_upload_t *u, apr_pool_t *p,
                             const char **existing)
{
    rs_txn_t *txn;
    const char *key = NULL;
    rs_error_t *refused = NULL;
    apr_status_t rv = rs_store_begin(e->store, 1, p, &txn);

    *existing = NULL;
    if (APR_SUCCESS != rv) {
        return rs_eng_state_error(p, rv, "write", u->id);
    }
    if (u->client_key) {
        key = kkey(p, u->dir, u->owner, u->proto, u->client_key);
        rv = key_target(txn, key, u->proto, 1, p, existing);
    }
    if (APR_SUCCESS == rv && !*existing && rs_eng_counts_pending(a, u)) {
        rv = rs_eng_pending_take(txn, a, u, p, &refused);
    }
    if (refused) {
        rs_store_end(txn);
        return refused;
    }
    if (APR_SUCCESS == rv && !*existing && key) {
        rv = rs_store_put(txn, key, u->id, strlen(u->id));
    }
    if (APR_SUCCESS == rv && !*existing) {
        rv = rs_eng_txn_save(txn, u, p);
    }
    if (APR_SUCCESS == rv && !*existing) {      /* after the record */
        rv = rs_eng_pending_count(txn, a, u, p);
    }
    if (APR_SUCCESS == rv && !*existing) {
        rv = rs_eng_record(e, txn, RS_HOOK_POST_CREATE, u, p);
    }
    rv = rs_store_finish(txn, rv);          /* pgsql: the commit */
    return APR_SUCCESS == rv ? NULL : rs_eng_state_error(p, rv, "write", u->id);
}

/* Another request created the upload of u's client key first: drop the
 * data file made for u and continue with that one. */
static rs_error_t *adopt(rs_engine_t *e, const rs_area_t *a, rs_upload_t *u,
                         const char *id, apr_pool_t *p)
{
    rs_upload_t *fresh;
    rs_error_t *err;

    rs_data_remove(rs_data_path(p, a->dir, u->id), p);
    if ((err = rs_engine_open(e, a, id, u->owner, p, &fresh))) {
        return err;
    }
    *u = *fresh;
    return NULL;
}

/* A chunk list declared at creation (md5's handshake lists its chunks
 * before any byte) is state the client pays nothing for: at most one
 * chunk per RS_ENGINE_MIN_CHUNK bytes of ResumableMaxSize (issue 11). */
static rs_error_t *check_chunk_list(const rs_area_t *a, const rs_upload_t *u,
                                    apr_pool_t *p)
{
    apr_off_t n = u->chunk_count - 1;
    apr_off_t max = a->max_size > 0
                    ? (a->max_size + RS_ENGINE_MIN_CHUNK - 1)
                      / RS_ENGINE_MIN_CHUNK : RS_UPLOAD_MAX_CHUNKS;

    if (!(u->flags & RS_UF_CHUNKED) || (u->flags & RS_UF_DEFER_LENGTH)
        || n <= max) {
        return NULL;
    }
    rs_log_perror(RS_LOG_MARK, RS_LOG_INFO, 0, p, RS_LOGNO(09102)
                  "upload refused: %" APR_OFF_T_FMT " chunks declared, at "
                  "most %" APR_OFF_T_FMT " fit the maximum size", n, max);
    return rs_error_make(p, RS_ERR_MAX_SIZE, 0, "%" APR_OFF_T_FMT " chunks "
                         "are more than the maximum size allows (%"
                         APR_OFF_T_FMT ")", n, max);
}

/* What every creation decides before anything is stored: the checks, the
 * id, the times and the pre-create gate. */
static rs_error_t *create_prepare(rs_engine_t *e, const rs_area_t *a,
                                  rs_upload_t *u, apr_pool_t *p)
{
    const char *id;
    rs_error_t *err = rs_eng_check_size(a, u->length, p);
    apr_status_t rv;

    if (err || (err = check_key(u->client_key, p))
        || (err = check_chunk_list(a, u, p))) {
        return err;
    }
    if (APR_SUCCESS != (rv = rs_util_id_new(p, &id))) {
        return rs_error_make(p, RS_ERR_STORAGE, rv, "no random id");
    }
    u->id = id;
    u->dir = a->dir;
    u->created = u->updated = apr_time_now();
    u->expires = rs_engine_expires(a, u);
    if (!u->owner) {
        u->owner = "";
    }
    return rs_eng_gate(e, RS_HOOK_PRE_CREATE, u, p);
}

/* A new upload is known to this request alone: logged and counted. */
static void created_note(const rs_upload_t *u, apr_pool_t *p)
{
    rs_log_perror(RS_LOG_MARK, RS_LOG_DEBUG, 0, p, RS_LOGNO(01006)
                  "upload %s: created, length %" APR_OFF_T_FMT, u->id,
                  u->length);
    rs_stats_add(RS_STAT_CREATED, 1);
    rs_report_upload(p, u);
    rs_report(p)->created = 1;
}

rs_error_t *rs_engine_create(rs_engine_t *e, const rs_area_t *a,
                             rs_upload_t *u, apr_pool_t *p)
{
    const char *staging, *id, *existing;
    apr_file_t *f;
    rs_error_t *err = create_prepare(e, a, u, p);
    apr_status_t rv;

    if (err) {
        return err;
    }
    id = u->id;
    rv = rs_data_staging(p, a->dir, 1, &staging);
    if (APR_SUCCESS == rv && !(u->flags & RS_UF_FINAL)) {
        rv = rs_data_open(&f, rs_data_path(p, a->dir, id), 1, p);
        if (APR_SUCCESS == rv) {
            apr_file_close(f);
        }
    }
    if (APR_SUCCESS != rv) {
        return rs_eng_io_error(p, rv, "creating the data file", id);
    }
    if ((err = store_new(e, a, u, p, &existing))) {
        rs_data_remove(rs_data_path(p, a->dir, id), p);
        return err;
    }
    if (existing) {
        return adopt(e, a, u, existing, p);
    }
    created_note(u, p);
    if (0 == u->length && !(u->flags & (RS_UF_FINAL | RS_UF_PARTIAL))) {
        return complete(e, a, u, p);
    }
    if (0 == u->length) {
        u->state = RS_STATE_COMPLETE;
        return APR_SUCCESS == rs_eng_save_progress(e, u, p, NULL) ? NULL
               : rs_eng_state_error(p, APR_EGENERAL, "write", id);
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* completion and concatenation                                              */

/* The name a finished file gets in the area: sanitized, never executable
 * by the server (the area's deny list), the id when nothing usable is left. */
const char *rs_eng_publish_name(apr_pool_t *p, const rs_area_t *a,
                                const rs_upload_t *u)
{
    const char *name = u->filename ? rs_util_sanitize_name(p, u->filename)
                                   : NULL;
    return name ? rs_util_defuse_name(p, name, a->deny_ext) : u->id;
}

static rs_error_t *assemble(rs_engine_t *e, const rs_area_t *a,
                            const char *final_id, apr_pool_t *p);

/* Notify the finals waiting for partial u. */
static void wake_waiters(rs_engine_t *e, const rs_area_t *a,
                         const rs_upload_t *u, apr_pool_t *p)
{
    int i;

    for (i = 0; u->waiters && i < u->waiters->nelts; i++) {
        rs_error_t *err = assemble(e, a, APR_ARRAY_IDX(u->waiters, i,
                                   const char *), p);
        if (err) {
            rs_log_perror(RS_LOG_MARK, RS_LOG_WARNING, err->cause, p,
                          RS_LOGNO(01007) "upload %s: assembling waiting "
                          "final %s failed: %s", u->id,
                          APR_ARRAY_IDX(u->waiters, i, const char *),
                          err->detail);
        }
    }
}

/* "h:md5:<hex>:<32 hex of SHA-256 of "<area dir>\0<owner>\0">" */
/* Content index key: per area directory and per user (another user must
 * not learn that, or get, a file with the same content). */
static const char *hkey(apr_pool_t *p, const char *dir, const char *owner,
                        const char *md5hex)
{
    const char *k = kkey_v1(p, dir, owner ? owner : "", "");

    return k ? apr_pstrcat(p, "h:md5:", md5hex, ":",
                           apr_pstrndup(p, k + 2, 32), NULL) : NULL;
}

/* The upload a content index entry of (dir, owner) names, if it still
 * serves that content: the owner's, in dir, complete, published, its file
 * a regular file. Anything else is a stale entry. */
static rs_upload_t *content_live(rs_engine_t *e, const char *dir,
                                 const char *owner, const char *id,
                                 apr_pool_t *p)
{
    rs_upload_t *u;
    apr_finfo_t fi;

    if (!rs_util_id_valid(id) || rs_eng_lookup(e, id, p, &u)
        || strcmp(u->dir, dir) || strcmp(u->owner, owner ? owner : "")
        || RS_STATE_COMPLETE != u->state || !(u->flags & RS_UF_PUBLISHED)
        || !u->path || APR_SUCCESS != apr_stat(&fi, u->path, APR_FINFO_TYPE, p)
        || APR_REG != fi.filetype) {
        return NULL;
    }
    return u;
}

const char *rs_eng_md5_of(apr_pool_t *p, const char *path, apr_off_t len)
{
    unsigned char d[RS_HASH_MAX];
    apr_size_t n = 0;
    apr_file_t *f;
    apr_status_t rv = apr_file_open(&f, path, APR_FOPEN_READ
                                    | APR_FOPEN_BINARY, 0, p);

    if (APR_SUCCESS == rv) {
        rv = rs_hash_file_range("md5", f, 0, len, d, &n, p);
        apr_file_close(f);
    }
    return APR_SUCCESS == rv ? rs_util_hex(p, d, n) : NULL;
}

/* Content index entry key: set it to id (NULL: remove it) when it is
 * absent (or unreadable) or still holds `seen` (judged stale outside this
 * transaction: content_live reads records in transactions of its own);
 * when another request changed it meanwhile, that change stands. */
static apr_status_t content_swap(rs_engine_t *e, const char *key,
                                 const char *seen, const char *id,
                                 apr_pool_t *p)
{
    rs_txn_t *txn;
    char *val;
    apr_size_t len;
    apr_status_t rv = rs_store_begin(e->store, 1, p, &txn);

    if (APR_SUCCESS != rv) {
        return rv;
    }
    rv = rs_store_get(txn, key, p, &val, &len);
    if (APR_SUCCESS == rv ? (seen && !strcmp(val, seen)) : id != NULL) {
        rv = id ? rs_store_put(txn, key, id, strlen(id))
             : rs_store_delete(txn, key);
    }
    else {
        rv = APR_SUCCESS;
    }
    rs_store_end(txn);
    return rv;
}

/* Record the published file of u in the area's content index (read by
 * the md5 front end's instant upload, across every protocol that shares
 * the area's directory, whichever front ends the completing location
 * enables). md5hex: the verified MD5 when known, else the file is hashed
 * once here. */
static void index_content(rs_engine_t *e, const rs_area_t *a,
                          const rs_upload_t *u, const char *md5hex,
                          apr_pool_t *p)
{
    const char *key;
    char *seen = NULL;
    apr_size_t len;
    apr_status_t rv = APR_EGENERAL;

    if (!u->path) {
        return;
    }
    md5hex = md5hex ? md5hex : rs_eng_md5_of(p, u->path, u->length);
    if (md5hex && (key = hkey(p, u->dir, u->owner, md5hex))) {
        rv = rs_store_get1(e->store, key, p, &seen, &len);
        if (APR_SUCCESS == rv && strcmp(seen, u->id)
            && content_live(e, u->dir, u->owner, seen, p)) {
            return;            /* the content's URL stays the first one's */
        }
        rv = content_swap(e, key, APR_SUCCESS == rv ? seen : NULL, u->id, p);
    }
    if (APR_SUCCESS != rv) {
        rs_log_perror(RS_LOG_MARK, RS_LOG_WARNING, rv, p, RS_LOGNO(07002)
                      "upload %s: indexing its content failed", u->id);
    }
}

/* The sweep's part of content indexing: hash a published file that was
 * finished without a verified MD5, so md5 handshakes find it (the request
 * that finished it did not pay for reading it back). */
static void index_later(rs_engine_t *e, rs_upload_t *u, apr_pool_t *p)
{
    if (u->flags & RS_UF_PUBLISHED) {
        index_content(e, NULL, u, NULL, p);
    }
    u->flags &= ~RS_UF_UNINDEXED;
    rs_eng_save_progress(e, u, p, NULL);
}

rs_error_t *rs_engine_content_find(rs_engine_t *e, const rs_area_t *a,
                                   const char *owner,
                                   const char *md5hex, apr_pool_t *p,
                                   rs_upload_t **pu)
{
    const char *key = hkey(p, a->dir, owner, md5hex);
    apr_size_t len;
    char *val;
    apr_status_t rv = key ? rs_store_get1(e->store, key, p, &val, &len)
                          : APR_EGENERAL;

    if (APR_STATUS_IS_ENOENT(rv)) {
        return rs_error_make(p, RS_ERR_NOT_FOUND, 0, NULL);
    }
    if (APR_SUCCESS != rv) {
        return rs_eng_state_error(p, rv, "content lookup", "-");
    }
    if (!(*pu = content_live(e, a->dir, owner, val, p))) {
        content_swap(e, key, val, NULL, p);     /* the upload went away */
        return rs_error_make(p, RS_ERR_NOT_FOUND, 0, NULL);
    }
    return NULL;
}

rs_error_t *rs_eng_complete_md5(rs_engine_t *e, const rs_area_t *a,
                                rs_upload_t *u, const char *md5hex,
                                apr_pool_t *p);

static rs_error_t *complete(rs_engine_t *e, const rs_area_t *a, rs_upload_t *u,
                            apr_pool_t *p)
{
    return rs_eng_complete_md5(e, a, u, NULL, p);
}

/* u reached its length: publish it (or, for a partial, mark it complete
 * and wake the finals that wait for it) and index its content. */
rs_error_t *rs_eng_complete_md5(rs_engine_t *e, const rs_area_t *a,
                                rs_upload_t *u, const char *md5hex,
                                apr_pool_t *p)
{
    const char *path, *src = rs_eng_data_src(e, u, p);
    int joined = strcmp(src, rs_data_path(p, u->dir, u->id)) != 0;
    rs_upload_t *fresh, before = *u;
    apr_status_t rv = APR_SUCCESS;

    rs_error_t *err = rs_eng_finish_gate(e, u, p);

    if (err) {
        return err;
    }
    if (!(u->flags & RS_UF_PARTIAL)) {
        rv = rs_data_publish(p, src, u->dir,
                             rs_eng_publish_name(p, a, u), 0, &path);
        if (APR_SUCCESS != rv) {
            return rs_eng_io_error(p, rv, "publishing the file", u->id);
        }
        u->path = path;
        u->flags |= RS_UF_PUBLISHED;
    }
    u->state = RS_STATE_COMPLETE;
    u->offset = u->length;
    if (!(u->flags & RS_UF_PARTIAL)) {
        u->expires = 0;
    }
    if (!md5hex && u->path) {
        u->flags |= RS_UF_UNINDEXED;    /* hashed later by the sweep, so any
                                           area sharing the directory dedups */
    }
    rv = rs_eng_save_event(e, u, (u->flags & RS_UF_PARTIAL) ? -1
                           : RS_HOOK_POST_FINISH, p, &fresh);
    if (APR_SUCCESS != rv) {
        /* the record still says active: its bytes go back where it
         * looks for them, so none are lost */
        if ((u->flags & RS_UF_PUBLISHED) && !(before.flags & RS_UF_PUBLISHED)
            && joined) {
            rs_data_remove(u->path, p); /* cluster: the segments keep them */
        }
        else if ((u->flags & RS_UF_PUBLISHED)
            && !(before.flags & RS_UF_PUBLISHED)
            && APR_SUCCESS != apr_file_rename(u->path, rs_data_path(
                                                  p, u->dir, u->id), p)) {
            rs_log_perror(RS_LOG_MARK, RS_LOG_ERR, 0, p, RS_LOGNO(09206)
                          "upload %s: its record says active, but its "
                          "bytes are at %s", u->id, u->path);
        }
        *u = before;
        return rs_eng_state_error(p, rv, "write", u->id);
    }
    if (joined && (u->flags & RS_UF_PARTIAL)
        && APR_SUCCESS != (rv = apr_file_rename(src, rs_data_path(
                                                    p, u->dir, u->id), p))) {
        rs_log_perror(RS_LOG_MARK, RS_LOG_ERR, rv, p, RS_LOGNO(09835)
                      "upload %s: complete, but its bytes stay at %s", u->id,
                      src);
    }
    rs_stats_add(RS_STAT_COMPLETED, 1);
    rs_report_upload(p, u);
    rs_log_perror(RS_LOG_MARK, RS_LOG_INFO, 0, p, RS_LOGNO(01008)
                  "upload %s: complete, %" APR_OFF_T_FMT " bytes%s%s", u->id,
                  u->length, u->path ? " at " : "", u->path ? u->path : "");
    if (md5hex) {
        index_content(e, a, u, md5hex, p);  /* verified: free to index now */
    }
    wake_waiters(e, a, fresh, p);
    return NULL;
}

#define OFF_MAX ((apr_off_t)APR_INT64_MAX)

/* Load every part of final u. *ready: all complete. *total: summed length
 * (-1 when some length is unknown). */
static rs_error_t *load_parts(rs_engine_t *e, rs_txn_t *txn,
                              const rs_upload_t *u, apr_pool_t *p,
                              rs_upload_t ***parts, int *ready,
                              apr_off_t *total)
{
    int i;

    *parts = apr_pcalloc(p, sizeof(rs_upload_t *) * (u->parts->nelts + 1));
    *ready = 1;
    *total = 0;
    for (i = 0; i < u->parts->nelts; i++) {
        const char *pid = APR_ARRAY_IDX(u->parts, i, const char *);
        rs_upload_t *pu;
        apr_status_t rv = rs_eng_txn_load(txn, pid, p, &pu);

        if (APR_SUCCESS != rv || !(pu->flags & RS_UF_PARTIAL)
            || strcmp(pu->owner, u->owner) || strcmp(pu->dir, u->dir)) {
            return rs_error_make(p, RS_ERR_INVALID_CONCAT, rv,
                                 "%s is not a partial upload", pid);
        }
        (*parts)[i] = pu;
        *ready = *ready && RS_STATE_COMPLETE == pu->state;
        if (*total < 0 || pu->length < 0) {
            *total = -1;
        }
        else if (!rs_util_off_add(*total, pu->length, total)) {
            return rs_error_make(p, RS_ERR_MAX_SIZE, 0, "the partial "
                                 "uploads' lengths add up past 2^63");
        }
    }
    return NULL;
}

/* Compose final final_id when all its partials are complete (a no-op
 * otherwise, and when it is complete already); waits up to `wait` for
 * its lock. The partials' data (synced when they completed) is the
 * final's until it is materialised. */
static rs_error_t *assemble_wait(rs_engine_t *e, const rs_area_t *a,
                                 const char *final_id,
                                 apr_interval_time_t wait, apr_pool_t *p)
{
    rs_hold_t *lock;
    rs_txn_t *txn;
    rs_upload_t *u, **parts;
    rs_error_t *err = NULL;
    apr_off_t total;
    int ready;
    apr_status_t rv;

    if ((err = rs_eng_hold(e, a->dir, final_id, wait, p, &lock))) {
        return RS_ERR_NOT_FOUND == err->code ? NULL
               : rs_error_make(p, RS_ERR_LOCKED, err->cause, NULL);
    }
    if (APR_SUCCESS != (rv = rs_store_begin(e->store, 0, p, &txn))) {
        err = rs_eng_state_error(p, rv, "open", final_id);
        goto cleanup;
    }
    rv = rs_eng_txn_load(txn, final_id, p, &u);
    if (APR_SUCCESS == rv && RS_STATE_COMPLETE != u->state) {
        err = load_parts(e, txn, u, p, &parts, &ready, &total);
    }
    rs_store_end(txn);
    if (APR_SUCCESS != rv || err || RS_STATE_COMPLETE == u->state || !ready) {
        goto cleanup;
    }
    err = rs_eng_compose(e, a, u, total, p);
cleanup:
    rs_eng_unhold(lock);
    return err;
}

static rs_error_t *assemble(rs_engine_t *e, const rs_area_t *a,
                            const char *final_id, apr_pool_t *p)
{
    return assemble_wait(e, a, final_id, a->lock_wait, p);
}

/* Partial pu's waiters without the finals that no longer need it
 * (published, refused by a pre-finish hook, or gone): a list full of
 * finals that were published before they could leave it (a kill), were
 * refused (they use nothing, as check_unused knows) or were removed
 * unpublished. */
static apr_status_t prune_waiters(rs_txn_t *txn, rs_upload_t *pu,
                                  apr_pool_t *p)
{
    apr_array_header_t *keep = apr_array_make(p, pu->waiters->nelts,
                                               sizeof(const char *));
    rs_upload_t *f;
    apr_status_t rv;
    int i;

    for (i = 0; i < pu->waiters->nelts; i++) {
        const char *fid = APR_ARRAY_IDX(pu->waiters, i, const char *);

        rv = rs_eng_txn_load(txn, fid, p, &f);
        if (APR_SUCCESS == rv
            && !(f->flags & (RS_UF_PUBLISHED | RS_UF_REJECTED))) {
            APR_ARRAY_PUSH(keep, const char *) = fid;
        }
        else if (APR_SUCCESS != rv && !APR_STATUS_IS_ENOENT(rv)) {
            return rv;
        }
    }
    pu->waiters = keep;
    return APR_SUCCESS;
}

/* Add final fid to the waiters of partial pu (in memory: a new list, so
 * the loaded one can be put back). RS_ERR_LOCKED when RS_ENGINE_MAX_WAITERS
 * finals that are not published yet use it already. */
static rs_error_t *add_waiter(rs_txn_t *txn, rs_upload_t *pu, const char *fid,
                              apr_pool_t *p)
{
    apr_array_header_t *w;
    apr_status_t rv;

    if (pu->waiters && pu->waiters->nelts >= RS_ENGINE_MAX_WAITERS
        && APR_SUCCESS != (rv = prune_waiters(txn, pu, p))) {
        return rs_eng_state_error(p, rv, "read", pu->id);
    }
    if (pu->waiters && pu->waiters->nelts >= RS_ENGINE_MAX_WAITERS) {
        rs_log_perror(RS_LOG_MARK, RS_LOG_INFO, 0, p, RS_LOGNO(09201)
                      "upload %s: final %s refused: %d finals that are not "
                      "published yet use this partial", pu->id, fid,
                      pu->waiters->nelts);
        return rs_error_make(p, RS_ERR_LOCKED, 0, "partial upload %s is used "
                             "by %d final uploads that are not complete or "
                             "not published yet (at most %d): try again "
                             "later", pu->id, pu->waiters->nelts,
                             RS_ENGINE_MAX_WAITERS);
    }
    w = pu->waiters ? apr_array_copy(p, pu->waiters)
                    : apr_array_make(p, 1, sizeof(const char *));
    APR_ARRAY_PUSH(w, const char *) = fid;
    pu->waiters = w;
    return NULL;
}

/* Write partials parts[0..n-1] (with their new waiter lists), then final
 * u; all or nothing: after a failed write the partials written so far get
 * their records as loaded (before[]) back. */
static apr_status_t write_final(rs_txn_t *txn, rs_upload_t *u,
                                rs_upload_t **parts, rs_upload_t **before,
                                int n, apr_pool_t *p)
{
    apr_status_t rv = APR_SUCCESS, undo;
    int i, written;

    for (written = 0; APR_SUCCESS == rv && written < n; written++) {
        rv = rs_eng_txn_save(txn, parts[written], p);
    }
    if (APR_SUCCESS == rv) {
        rv = rs_eng_txn_save(txn, u, p);
    }
    for (i = 0; APR_SUCCESS != rv && i < written; i++) {
        if (APR_SUCCESS != (undo = rs_eng_txn_save(txn, before[i], p))) {
            /* only a waiter entry naming no record stays: harmless */
            rs_log_perror(RS_LOG_MARK, RS_LOG_WARNING, undo, p,
                          RS_LOGNO(09202) "upload %s: taking refused final "
                          "%s off its waiters failed", before[i]->id, u->id);
        }
    }
    return rv;
}

/* In one transaction: check final u against its partials, then store it
 * and register it with them (a partial completing or being removed
 * concurrently sees it). On any error nothing is stored. */
static rs_error_t *register_final(rs_engine_t *e, const rs_area_t *a,
                                  rs_upload_t *u, int allow_unfinished,
                                  apr_pool_t *p)
{
    rs_txn_t *txn;
    rs_upload_t **parts, **before;
    rs_error_t *err;
    apr_off_t total;
    apr_status_t rv = rs_store_begin(e->store, 1, p, &txn);
    int i, ready, n = u->parts->nelts;

    if (APR_SUCCESS != rv) {
        return rs_eng_state_error(p, rv, "open", u->id);
    }
    err = load_parts(e, txn, u, p, &parts, &ready, &total);
    if (!err && !ready && !allow_unfinished) {
        err = rs_error_make(p, RS_ERR_NOT_FINISHED, 0, NULL);
    }
    if (!err && total >= 0) {
        err = rs_eng_check_size(a, total, p);
    }
    before = apr_pcalloc(p, sizeof(rs_upload_t *) * (n + 1));
    for (i = 0; !err && i < n; i++) {
        before[i] = apr_pmemdup(p, parts[i], sizeof(rs_upload_t));
        err = add_waiter(txn, parts[i], u->id, p);
    }
    if (!err) {
        u->length = total;
        u->state = ready ? RS_STATE_ACTIVE : RS_STATE_ASSEMBLING;
        rv = write_final(txn, u, parts, before, n, p);
        if (APR_SUCCESS != rv) {
            err = rs_eng_state_error(p, rv, "write", u->id);
        }
    }
    rs_store_end(txn);
    return err;
}

/* 1 to RS_ENGINE_MAX_PARTS parts, none listed twice (each would cost a
 * record write, and a final of the same bytes twice needs a partial
 * uploaded twice). */
static rs_error_t *check_parts(const rs_upload_t *u, apr_pool_t *p)
{
    apr_hash_t *seen = apr_hash_make(p);
    int i;

    if (!u->parts || u->parts->nelts < 1
        || u->parts->nelts > RS_ENGINE_MAX_PARTS) {
        return rs_error_make(p, RS_ERR_INVALID_CONCAT, 0,
                             "a final upload needs 1 to %d partial uploads",
                             RS_ENGINE_MAX_PARTS);
    }
    for (i = 0; i < u->parts->nelts; i++) {
        const char *pid = APR_ARRAY_IDX(u->parts, i, const char *);

        if (apr_hash_get(seen, pid, APR_HASH_KEY_STRING)) {
            rs_log_perror(RS_LOG_MARK, RS_LOG_INFO, 0, p, RS_LOGNO(09203)
                          "final concatenation refused: it lists partial "
                          "upload %s twice", pid);
            return rs_error_make(p, RS_ERR_INVALID_CONCAT, 0, "partial "
                                 "upload %s is listed twice", pid);
        }
        apr_hash_set(seen, pid, APR_HASH_KEY_STRING, pid);
    }
    return NULL;
}

rs_error_t *rs_engine_concat(rs_engine_t *e, const rs_area_t *a,
                             rs_upload_t *u, int allow_unfinished,
                             apr_pool_t *p)
{
    rs_upload_t *fresh;
    rs_error_t *err;
    const char *id;
    apr_status_t rv;

    if ((err = check_parts(u, p))) {
        return err;
    }
    if (APR_SUCCESS != (rv = rs_util_id_new(p, &id))) {
        return rs_error_make(p, RS_ERR_STORAGE, rv, "no random id");
    }
    u->id = id;
    u->dir = a->dir;
    u->flags |= RS_UF_FINAL;
    u->owner = u->owner ? u->owner : "";
    u->created = u->updated = apr_time_now();
    u->expires = rs_engine_expires(a, u);
    if ((err = rs_eng_gate(e, RS_HOOK_PRE_CREATE, u, p))
        || (err = register_final(e, a, u, allow_unfinished, p))) {
        return err;
    }
    if ((err = assemble(e, a, u->id, p))) {
        rs_engine_terminate(e, a, u, p);    /* refused: nothing is kept */
        return err;
    }
    if (!rs_engine_open(e, a, u->id, u->owner, p, &fresh)) {
        *u = *fresh;
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* append                                                                    */

typedef struct append_ctx {
    rs_engine_t *e;
    const rs_area_t *a;
    rs_upload_t *u;
    const rs_append_t *ap;
    rs_body_t *body;
    apr_pool_t *p;
    rs_hold_t *lock;
    apr_file_t *f;
    rs_writer_t *w;
    rs_hash_t *hash;
    rs_hash_follow_t *follow;      /* digests the file as it is written */
    apr_off_t start;
    apr_off_t remaining;           /* -1: unbounded */
    int verify;                    /* bytes count only once verified */
    /* cluster mode: the segment written, and checkpoints */
    apr_off_t base;                /* upload offset of the file's byte 0 */
    apr_off_t committed;           /* upload offset counted so far */
    apr_time_t ckpt_time;          /* last checkpoint (local clock) */
    int deferred;                  /* a deferred creation: no record yet,
                                      nothing is saved before the end
                                      (rs_engine_create_append) */
} append_ctx;

rs_error_t *rs_eng_lock(rs_engine_t *e, const rs_area_t *a,
                        const rs_upload_t *u, apr_pool_t *p, rs_hold_t **h)
{
    return rs_eng_hold(e, u->dir, u->id, a->lock_wait, p, h);
}

static rs_error_t *take_lock(append_ctx *c)
{
    return rs_eng_lock(c->e, c->a, c->u, c->p, &c->lock);
}

/* Cluster: open the segment this writer owns (the last one; a new, empty
 * one after a takeover), cut to its committed length. A file shorter than
 * that lost committed bytes (or shows a stale size: looked at twice). */
static rs_error_t *open_segment(append_ctx *c)
{
    rs_upload_t *u = c->u;
    const rs_segment_t *seg = &u->segs[u->nsegs - 1];
    const char *path = rs_eng_seg_path(c->p, u, seg);
    apr_off_t size = 0;
    apr_status_t rv;
    int i;

    c->base = seg->start;
    rv = rs_data_open(&c->f, path, 1, c->p);
    for (i = 0; APR_SUCCESS == rv && i < 2; i++) {
        rv = rs_data_size(path, &size, c->p);
        if (APR_SUCCESS != rv || size >= seg->len) {
            break;
        }
        apr_sleep(apr_time_from_msec(200));
    }
    if (APR_SUCCESS == rv && size < seg->len) {
        rs_log_perror(RS_LOG_MARK, RS_LOG_ERR, 0, c->p, RS_LOGNO(09834)
                      "upload %s: segment %s holds %" APR_OFF_T_FMT
                      " bytes, %" APR_OFF_T_FMT " were committed: the shared "
                      "file system lost data", u->id, path, size, seg->len);
        rv = APR_EGENERAL;
    }
    if (APR_SUCCESS == rv && size > seg->len) {
        rv = rs_data_truncate(c->f, seg->len);  /* an uncounted tail */
    }
    return APR_SUCCESS == rv ? NULL
           : rs_eng_io_error(c->p, rv, "opening the segment", u->id);
}

/* Re-read the record under the lock and make it agree with the file. */
static rs_error_t *refresh(append_ctx *c)
{
    rs_upload_t *u;
    rs_error_t *err = rs_eng_lookup(c->e, c->u->id, c->p, &u);
    apr_status_t rv;

    if (err) {
        return err;
    }
    *c->u = *u;
    if (!rs_upload_append_mode(u)) {
        return NULL;                    /* complete or final: no data file */
    }
    if (rs_eng_cluster(c->e)) {
        return u->nsegs > 0 ? open_segment(c)
               : rs_eng_io_error(c->p, APR_EGENERAL, "finding the segment",
                                 u->id);
    }
    rv = rs_data_open(&c->f, rs_data_path(c->p, u->dir, u->id), 1, c->p);
    if (APR_SUCCESS != rv) {
        return rs_eng_io_error(c->p, rv, "opening the data file", u->id);
    }
    rv = reconcile_locked(c->e, c->a, c->u, c->f, c->p);
    return APR_SUCCESS == rv ? NULL : rs_eng_io_error(c->p, rv, "reconciling", u->id);
}

static rs_error_t *declare_length(append_ctx *c)
{
    rs_upload_t *u = c->u;
    apr_off_t len = c->ap->declare_length;
    rs_error_t *err;

    if (len < 0 || (u->length >= 0 && len == u->length)) {
        return NULL;
    }
    if (u->length >= 0) {
        return rs_error_make(c->p, RS_ERR_LENGTH_ALREADY_SET, 0, NULL);
    }
    if (len < u->offset) {
        return rs_error_make(c->p, RS_ERR_INCONSISTENT_LENGTH, 0,
                             "length %" APR_OFF_T_FMT " is below the offset",
                             len);
    }
    if ((err = rs_eng_check_size(c->a, len, c->p))) {
        return err;
    }
    u->length = len;
    u->flags &= ~RS_UF_DEFER_LENGTH;
    return NULL;
}

int rs_eng_chunk_proto(rs_proto_id_t proto)
{
    return RS_PROTO_SLICE == proto || RS_PROTO_MD5 == proto
           || RS_PROTO_FLOW == proto;
}

rs_error_t *rs_eng_wrong_mode(apr_pool_t *p, const rs_upload_t *u,
                              const char *what)
{
    rs_log_perror(RS_LOG_MARK, RS_LOG_INFO, 0, p, RS_LOGNO(09101)
                  "upload %s: %s refused: the upload is of protocol %d%s",
                  u->id, what, (int)u->proto, (u->flags & RS_UF_CHUNKED)
                  ? " (chunk mode)" : "");
    return rs_error_make(p, RS_ERR_WRONG_PROTOCOL, 0, "upload %s was created "
                         "with another protocol: %s is not possible", u->id,
                         what);
}

/* Everything that can be decided before reading the body. Only an
 * append-mode upload takes appended bytes: a chunk-mode one (slice, md5,
 * flow) has no data file to write through (issue 11). */
static rs_error_t *precheck(append_ctx *c)
{
    rs_upload_t *u = c->u;
    rs_error_t *err;

    if (u->flags & RS_UF_FINAL) {
        return rs_error_make(c->p, RS_ERR_MODIFY_FINAL, 0, NULL);
    }
    if ((u->flags & RS_UF_CHUNKED) || rs_eng_chunk_proto(u->proto)
        || (!c->f && RS_STATE_COMPLETE != u->state)) {
        return rs_eng_wrong_mode(c->p, u, "an append");
    }
    if (c->ap->offset != u->offset) {
        return rs_error_make(c->p, RS_ERR_MISMATCHED_OFFSET, 0,
                             "offset %" APR_OFF_T_FMT " does not match the "
                             "upload's offset %" APR_OFF_T_FMT,
                             c->ap->offset, u->offset);
    }
    if ((err = declare_length(c))) {
        return err;
    }
    c->remaining = u->length >= 0 ? u->length - u->offset   /* -1: none */
                   : c->a->max_size <= 0 ? -1
                   : c->a->max_size > u->offset ? c->a->max_size - u->offset
                   : 0;        /* past a lowered ResumableMaxSize: no room */
    if (RS_STATE_COMPLETE == u->state && 0 != c->body->length) {
        return rs_error_make(c->p, RS_ERR_SIZE_EXCEEDED, 0,
                             "the upload is already complete");
    }
    if (c->remaining >= 0 && c->body->length > c->remaining) {
        return rs_error_make(c->p, RS_ERR_SIZE_EXCEEDED, 0,
                             "body of %" APR_OFF_T_FMT " bytes exceeds the "
                             "remaining %" APR_OFF_T_FMT, c->body->length,
                             c->remaining);
    }
    return NULL;
}

/* Digest a checksummed body of RS_HASH_PIPE_MIN or more (or of unknown
 * size) from the file as it is written, in a worker thread (issue 15): the
 * body stays on the splice path and the digest overlaps the receive. A
 * smaller body, or no thread, is digested in memory as it streams. */
static apr_status_t hash_start(append_ctx *c)
{
    const char *alg = c->ap->checksum_alg;
    apr_status_t rv;

    if (c->body->length < 0 || c->body->length >= RS_HASH_PIPE_MIN) {
        rv = rs_hash_follow_start(&c->follow, alg, c->f, c->start - c->base,
                                  c->p);
        if (APR_SUCCESS == rv || APR_STATUS_IS_ENOTIMPL(rv)) {
            return rv;
        }
        c->follow = NULL;
    }
    return rs_hash_create(&c->hash, alg, c->p);
}

/* Mark an unverified append in the record before writing its bytes. */
static rs_error_t *begin_write(append_ctx *c)
{
    apr_status_t rv;

    c->start = c->committed = c->u->offset;
    c->ckpt_time = apr_time_now();
    c->verify = c->ap->checksum_alg || c->ap->checksum_trailer;
    if (c->ap->checksum_alg && APR_SUCCESS != hash_start(c)) {
        return rs_error_make(c->p, RS_ERR_CHECKSUM_ALGORITHM, 0, NULL);
    }
    if (c->verify && !rs_eng_cluster(c->e) && !c->deferred) {
        /* (cluster: nothing counts before a checkpoint, and a verified
         * append checkpoints only once verified) */
        c->u->pending_from = c->start;
        if (APR_SUCCESS != (rv = rs_eng_save_progress(c->e, c->u, c->p, NULL))) {
            return rs_eng_state_error(c->p, rv, "write", c->u->id);
        }
    }
    c->body->take_pipe = !c->hash;   /* bytes go to the file untouched */
    rv = rs_writer_create(&c->w, c->f, c->start - c->base,
                          c->e->write_buffer, c->p);
    if (APR_SUCCESS == rv) {
        rs_writer_writeback(c->w, c->a->sync);  /* the fdatasync will wait */
    }
    return APR_SUCCESS == rv ? NULL : rs_eng_io_error(c->p, rv, "writer", c->u->id);
}

#define CKPT_IDLE  apr_time_from_sec(1)       /* idle bytes wait this long */
#define CKPT_RETRY apr_time_from_msec(250)    /* after a failed attempt */

/* Cluster: make what was written count: fdatasync, then a save fenced by
 * the writer's epoch that also renews its lease. A verified append only
 * renews (its bytes count once verified). NULL, or why to stop: fenced,
 * or the lease about to pass without a renewal (the state store cannot
 * be reached: stop writing before another node may take over). */
static rs_error_t *checkpoint(append_ctx *c)
{
    apr_status_t rv = rs_writer_flush(c->w);
    apr_off_t upto = c->start + rs_writer_flushed(c->w);

    if (APR_SUCCESS != rv) {
        return rs_eng_io_error(c->p, rv, "writing", c->u->id);
    }
    if (!c->verify && upto > c->committed) {
        if (APR_SUCCESS != (rv = rs_data_sync(c->f))) {
            return rs_eng_io_error(c->p, rv, "fsync", c->u->id);
        }
        c->u->offset = upto;
        c->u->updated = apr_time_now();
        c->u->expires = rs_engine_expires(c->a, c->u);
    }
    rv = rs_eng_save_held(c->e, c->lock, c->u, -1, c->p, NULL);
    c->ckpt_time = apr_time_now();
    if (APR_SUCCESS == rv) {
        c->committed = c->u->offset;
        return NULL;
    }
    c->u->offset = c->committed;            /* not counted */
    if (RS_EFENCED == rv) {
        return rs_error_make(c->p, RS_ERR_FENCED, 0, NULL);
    }
    if (rs_eng_hold_expiring(c->lock)) {
        rs_log_perror(RS_LOG_MARK, RS_LOG_WARNING, rv, c->p, RS_LOGNO(09832)
                      "upload %s: no checkpoint for most of the lease "
                      "(state database unreachable): this writer stops",
                      c->u->id);
        return rs_error_make(c->p, RS_ERR_STATE_UNAVAILABLE, rv, NULL);
    }
    return NULL;                            /* the next one may succeed */
}

static int checkpoint_due(append_ctx *c, int idle)
{
    apr_time_t since;
    apr_off_t pending;

    if (!rs_eng_cluster(c->e)) {
        return 0;                       /* one node: nothing per piece */
    }
    since = apr_time_now() - c->ckpt_time;
    if (since < CKPT_RETRY / 5) {
        return 0;
    }
    if (rs_eng_hold_expiring(c->lock)
        || (rs_eng_hold_renew_due(c->lock) && since >= CKPT_RETRY)) {
        return 1;
    }
    pending = c->start + rs_writer_total(c->w) - c->committed;
    return !c->verify && pending > 0
           && (pending >= c->e->checkpoint || (idle && since >= CKPT_IDLE));
}

/* Stream the body into the writer. Returns the reason it stopped. */
static rs_error_t *stream(append_ctx *c)
{
    rs_error_t *err;
    apr_time_t last = apr_time_now();
    const char *data;
    apr_size_t len;
    apr_status_t rv;

    for (;;) {
        rv = c->body->read(c->body, &data, &len);
        if (APR_STATUS_IS_EOF(rv)) {
            return NULL;
        }
        if (APR_STATUS_IS_EAGAIN(rv)) {
            /* idle: put what we have on disk, so a HEAD sees it */
            if (APR_SUCCESS != (rv = rs_writer_flush(c->w))) {
                return rs_eng_io_error(c->p, rv, "writing", c->u->id);
            }
            if (checkpoint_due(c, 1) && (err = checkpoint(c))) {
                return err;
            }
            if (apr_time_now() - last >= c->a->stall_time
                && rs_eng_hold_stop_requested(c->lock)) {
                rs_stats_add(RS_STAT_TAKEOVERS, 1);
                return rs_error_make(c->p, RS_ERR_INTERRUPTED, 0, NULL);
            }
            continue;
        }
        if (APR_SUCCESS != rv) {
            return rs_error_make(c->p, APR_STATUS_IS_TIMEUP(rv)
                                 ? RS_ERR_TIMEOUT : RS_ERR_BODY_READ, rv, NULL);
        }
        last = apr_time_now();
        if (c->remaining >= 0
            && rs_writer_total(c->w) + (apr_off_t)len > c->remaining) {
            return rs_error_make(c->p, RS_ERR_SIZE_EXCEEDED, 0,
                                 "body exceeds the upload length");
        }
        if (c->hash) {
            rs_hash_update(c->hash, data, len);
        }
        rv = data ? rs_writer_write(c->w, data, len)
                  : rs_writer_splice(c->w, c->body->pipe_fd, len);
        if (c->follow) {
            rs_hash_follow_advance(c->follow, rs_writer_flushed(c->w));
        }
        if (APR_SUCCESS != rv) {
            return rs_eng_io_error(c->p, rv, "writing", c->u->id);
        }
        if (checkpoint_due(c, 0) && (err = checkpoint(c))) {
            return err;
        }
    }
}

int rs_eng_digest_equal(const unsigned char *a, apr_size_t alen,
                        const unsigned char *b, apr_size_t blen)
{
    return alen == blen && 0 == memcmp(a, b, alen);
}

/* Verify a header or trailer checksum over the bytes just written. */
static rs_error_t *verify(append_ctx *c, apr_off_t n)
{
    unsigned char got[RS_HASH_MAX];
    apr_size_t glen = 0, elen = c->ap->checksum_len;
    const unsigned char *expect = c->ap->checksum;
    const char *alg = c->ap->checksum_alg, *hdr;
    apr_status_t rv;

    if (c->ap->checksum_trailer && !alg) {
        hdr = c->body->trailer ? c->body->trailer(c->body,
                                                  c->ap->trailer_name) : NULL;
        if (!hdr) {
            return rs_error_make(c->p, RS_ERR_INVALID_CHECKSUM, 0,
                                 "the checksum trailer is missing");
        }
        rv = rs_hash_parse_checksum(c->p, hdr, &alg, &expect, &elen);
        if (APR_SUCCESS != rv) {
            return rs_error_make(c->p, APR_STATUS_IS_ENOTIMPL(rv)
                                 ? RS_ERR_CHECKSUM_ALGORITHM
                                 : RS_ERR_INVALID_CHECKSUM, rv, NULL);
        }
        rv = rs_hash_file_range(alg, c->f, c->start - c->base, n, got, &glen,
                                c->p);
    }
    else {
        rv = c->follow ? rs_hash_follow_final(c->follow, n, got, &glen)
                       : rs_hash_final(c->hash, got, &glen);
    }
    if (APR_SUCCESS != rv) {
        return rs_eng_io_error(c->p, rv, "hashing", c->u->id);
    }
    if (!rs_eng_digest_equal(got, glen, expect, elen)) {
        return rs_error_make(c->p, RS_ERR_CHECKSUM_MISMATCH, 0,
                             "%s checksum does not match", alg);
    }
    return NULL;
}

/* Roll back to what counts (unverified or refused bytes): the start
 * offset, or in cluster mode the last checkpoint (never below it: those
 * bytes may be another writer's base by now). */
static void rollback(append_ctx *c)
{
    rs_data_truncate(c->f, c->committed - c->base);
    c->u->offset = c->committed;
    c->u->pending_from = -1;
    if (!c->deferred) {
        rs_eng_save_held(c->e, c->lock, c->u, -1, c->p, NULL);
    }
}

/* The append that just ended completes the upload (its length reached, or
 * declared by the completion: IETF). Then finish leaves the offset to the
 * completion's write transaction: one state write for both (issue 15). */
static int completes(const append_ctx *c)
{
    const rs_upload_t *u = c->u;
    apr_off_t len = u->length >= 0 ? u->length
                    : c->ap->complete ? u->offset : -1;

    return RS_STATE_COMPLETE != u->state && len >= 0 && u->offset == len;
}

/* Complete u after finish saved nothing (completes): when the completion
 * fails before its write (a hook, publishing, the state write itself),
 * the offset is saved alone, as finish would have done; the bytes are on
 * disk (synced first with ResumableSync On) either way. */
static rs_error_t *complete_append(append_ctx *c)
{
    rs_error_t *err = complete(c->e, c->a, c->u, c->p);
    apr_status_t rv;

    if (err && APR_SUCCESS != (rv = rs_eng_save_progress(c->e, c->u, c->p,
                                                         NULL))) {
        rs_eng_state_error(c->p, rv, "write", c->u->id);
    }
    return err;
}

/* Persist what the stream left: flush, sync, verify, record the offset. */
static int reached_end(const rs_upload_t *u);

static rs_error_t *finish(append_ctx *c, rs_error_t *why,
                          rs_append_result_t *res)
{
    apr_status_t rv = rs_writer_flush(c->w);
    apr_off_t n = rs_writer_flushed(c->w);
    rs_error_t *err = why;

    res->received = rs_writer_total(c->w);
    if (why && (RS_ERR_FENCED == why->code
                || RS_ERR_STATE_UNAVAILABLE == why->code)) {
        /* cluster: this writer may no longer change anything */
        res->stored = c->committed - c->start;
        res->interrupted = 1;
        c->u->offset = c->committed;
        return why;
    }
    if (APR_SUCCESS != rv && !err) {
        err = rs_eng_io_error(c->p, rv, "writing", c->u->id);
    }
    if (c->a->sync && APR_SUCCESS != (rv = rs_data_sync(c->f)) && !err) {
        err = rs_eng_io_error(c->p, rv, "fsync", c->u->id);
    }
    if (!err && c->verify) {
        err = verify(c, n);
    }
    if ((err && c->verify) || (err && RS_ERR_SIZE_EXCEEDED == err->code)) {
        rollback(c);
        return err;
    }
    res->stored = n;
    res->interrupted = err != NULL;
    c->u->offset = c->start + n;
    c->u->pending_from = -1;
    if (n > 0 || !err) {
        c->u->updated = apr_time_now();
        c->u->expires = rs_engine_expires(c->a, c->u);
    }
    if ((!err && completes(c)) || c->deferred) {
        return err;             /* saved by the completion (complete_append)
                                   or the deferred creation's one write */
    }
    if (!reached_end(c->u) && !(c->ap->complete && c->u->length < 0)) {
        rs_eng_hold_release_on_save(c->lock);   /* no completion follows */
    }
    rv = rs_eng_save_held(c->e, c->lock, c->u, -1, c->p, NULL);
    if (APR_SUCCESS != rv && !err) {
        err = rs_eng_state_error(c->p, rv, "write", c->u->id);
    }
    if (APR_SUCCESS == rv) {
        c->committed = c->u->offset;
    }
    return err;
}

/* Cluster: the upload's bytes as one file "<id>.j<epoch>" (the writer's
 * own name: a fenced writer that reaches this point too never touches the
 * file of the holder that replaced it), which completion publishes (a
 * partial's becomes "<id>.data" once its completion is stored): a link to
 * a single segment, else the segments copied in order (in the kernel where
 * it can) and synced. */
static rs_error_t *join_segments(append_ctx *c)
{
    rs_upload_t *u = c->u;
    const char *data = rs_eng_data_src(c->e, u, c->p), *src;
    apr_file_t *dst = NULL, *f;
    apr_status_t rv;
    apr_off_t len;
    int i;

    rs_data_remove(data, c->p);         /* left by an earlier attempt */
    if (1 == u->nsegs) {
        rv = apr_file_link(rs_eng_seg_path(c->p, u, &u->segs[0]), data);
        return APR_SUCCESS == rv ? NULL
               : rs_eng_io_error(c->p, rv, "linking the segment", u->id);
    }
    rv = rs_data_open(&dst, data, 1, c->p);
    for (i = 0; APR_SUCCESS == rv && i < u->nsegs; i++) {
        len = i + 1 < u->nsegs ? u->segs[i].len : u->offset - u->segs[i].start;
        src = rs_eng_seg_path(c->p, u, &u->segs[i]);
        if (len > 0 && APR_SUCCESS == (rv = rs_data_open(&f, src, 0, c->p))) {
            rv = rs_data_copy_range(dst, u->segs[i].start, f, 0, len);
            apr_file_close(f);
        }
    }
    if (APR_SUCCESS == rv) {
        rv = rs_data_truncate(dst, u->offset);
    }
    if (APR_SUCCESS == rv) {
        rv = rs_data_sync(dst);
    }
    if (dst) {
        apr_file_close(dst);
    }
    return APR_SUCCESS == rv ? NULL
           : rs_eng_io_error(c->p, rv, "joining the segments", u->id);
}

const char *rs_eng_data_src(const rs_engine_t *e, const rs_upload_t *u,
                            apr_pool_t *p)
{
    if (rs_eng_cluster(e) && u->nsegs > 0 && !(u->flags & RS_UF_CHUNKED)) {
        return apr_psprintf(p, "%s/" RS_STAGING_DIR "/%s.j%" APR_INT64_T_FMT,
                            u->dir, u->id, u->epoch);
    }
    return rs_data_path(p, u->dir, u->id);
}

/* Remove the segment files of u (cluster; after completion or removal). */
static void remove_segments(const rs_upload_t *u, apr_pool_t *p)
{
    int i;

    for (i = 0; i < u->nsegs; i++) {
        rs_data_remove(rs_eng_seg_path(p, u, &u->segs[i]), p);
    }
}

static int reached_end(const rs_upload_t *u)
{
    return RS_STATE_COMPLETE != u->state && u->length >= 0
           && u->offset == u->length;
}

rs_error_t *rs_engine_append(rs_engine_t *e, const rs_area_t *a,
                             rs_upload_t *u, const rs_append_t *ap,
                             rs_body_t *body, apr_pool_t *p,
                             rs_append_result_t *res)
{
    append_ctx c = { e, a, u, ap, body, p };
    rs_error_t *err;

    memset(res, 0, sizeof(*res));
    if ((err = take_lock(&c)) || (err = refresh(&c)) || (err = precheck(&c))) {
        goto cleanup;
    }
    if (RS_STATE_COMPLETE == u->state) {
        goto cleanup;                       /* empty append: a no-op */
    }
    if (!(err = begin_write(&c))) {
        err = finish(&c, stream(&c), res);
    }
    if (!err && ap->complete && u->length < 0) {
        u->length = u->offset;              /* IETF: length from completion */
        u->flags &= ~RS_UF_DEFER_LENGTH;
    }
    if (!err && reached_end(u)) {
        if (rs_eng_cluster(e) && u->nsegs > 0
            && (err = join_segments(&c))) {
            /* finish left the offset to the completion: save it alone */
            apr_status_t rv = rs_eng_save_held(e, c.lock, u, -1, p, NULL);

            if (APR_SUCCESS != rv) {
                rs_eng_state_error(p, rv, "write", u->id);
            }
        }
        if (!err) {
            err = complete_append(&c);
        }
        if (!err) {
            rs_eng_hold_forget(c.lock); /* the completion freed the lease */
        }
        if (rs_eng_cluster(e) && u->nsegs > 0) {
            if (!err) {
                remove_segments(u, p);
                if (!(u->flags & RS_UF_PARTIAL)) {  /* made at creation */
                    rs_data_remove(rs_data_path(p, u->dir, u->id), p);
                }
            }
            else {          /* the bytes stay in the segments */
                rs_data_remove(rs_eng_data_src(e, u, p), p);
            }
        }
    }
cleanup:
    if (c.f) {
        apr_file_close(c.f);
    }
    rs_eng_unhold(c.lock);
    rs_report_upload(p, u);
    rs_report(p)->bytes += res->stored;
    return err;
}

/* ------------------------------------------------------------------------ */
/* deferred creation (issue 15)                                              */

/* May the creation of u with a body be stored once, after its body? Only
 * when no other request can reach the upload meanwhile and nothing needs
 * its record before: one node (a cluster writer's lease lives in the
 * record), no client key (a concurrent create of the same key must find
 * this one: the adopt path), no concatenation or chunk mode, not of
 * length 0 (complete at creation). */
static int deferrable(const rs_engine_t *e, const rs_upload_t *u)
{
    return !rs_eng_cluster(e) && !u->client_key
           && !(u->flags & (RS_UF_FINAL | RS_UF_PARTIAL | RS_UF_CHUNKED))
           && !rs_eng_chunk_proto(u->proto) && 0 != u->length;
}

/* ResumableMaxPending before the body, as store_new checks it: a read
 * transaction (the only one of a deferred creation; none without a
 * limit). The count is raised only if the stored record ends up holding
 * no data (store_deferred). */
static rs_error_t *pending_check(rs_engine_t *e, const rs_area_t *a,
                                 const rs_upload_t *u, apr_pool_t *p)
{
    rs_txn_t *txn;
    rs_upload_t probe = *u;
    rs_error_t *refused = NULL;
    apr_status_t rv;

    if (!rs_eng_counts_pending(a, u)) {
        return NULL;
    }
    rv = rs_store_begin(e->store, 0, p, &txn);
    if (APR_STATUS_IS_ENOENT(rv)) {
        return NULL;                    /* no database yet: no counts */
    }
    if (APR_SUCCESS != rv) {
        return rs_eng_state_error(p, rv, "read", u->id);
    }
    rv = rs_eng_pending_take(txn, a, &probe, p, &refused);
    rs_store_end(txn);
    if (refused) {
        return refused;
    }
    return APR_SUCCESS == rv ? NULL : rs_eng_state_error(p, rv, "read", u->id);
}

/* The one write of a deferred creation: the record as the body left it,
 * then the events in today's order: post-create (the upload as it was
 * created), then what the body brought (post-receive for progress, as
 * rs_eng_save_held judges it; post-finish for a completion). */
static apr_status_t store_deferred(rs_engine_t *e, const rs_area_t *a,
                                   const rs_upload_t *born, rs_upload_t *u,
                                   apr_pool_t *p)
{
    rs_txn_t *txn;
    rs_error_t *late = NULL;
    int event = -1;
    apr_status_t rv = rs_store_begin(e->store, 1, p, &txn);

    if (APR_SUCCESS != rv) {
        return rv;
    }
    if (RS_STATE_COMPLETE != u->state && 0 == u->offset
        && rs_eng_counts_pending(a, u)) {
        /* holds no data: counted as store_new counts it (checked before
         * the body; a limit reached meanwhile leaves it uncounted, the
         * low side rs_engine_pending.c allows) */
        rv = rs_eng_pending_take(txn, a, u, p, &late);
    }
    if (RS_STATE_COMPLETE == u->state) {
        event = RS_HOOK_POST_FINISH;
    }
    else if (e->hooks && RS_STATE_ACTIVE == u->state && u->offset > 0
             && (u->length < 0 || u->offset < u->length)) {
        event = RS_HOOK_POST_RECEIVE;
    }
    if (APR_SUCCESS == rv) {
        rv = rs_eng_txn_save(txn, u, p);
    }
    if (APR_SUCCESS == rv) {                /* after the record */
        rv = rs_eng_pending_count(txn, a, u, p);
    }
    if (APR_SUCCESS == rv) {
        rv = rs_eng_record(e, txn, RS_HOOK_POST_CREATE, born, p);
    }
    if (APR_SUCCESS == rv && event >= 0) {
        rv = rs_eng_record(e, txn, event, u, p);
    }
    return rs_store_finish(txn, rv);        /* pgsql: the commit */
}

/* Store the deferred upload with its bytes at "<id>.data" (renamed from
 * tmp first: a record never names a missing file); why is returned when
 * that worked. A failure removes the bytes: no record names them and the
 * client got no URL. */
static rs_error_t *store_partial(append_ctx *c, const rs_upload_t *born,
                                 const char *tmp, rs_error_t *why,
                                 int *stored)
{
    const char *data = rs_data_path(c->p, c->u->dir, c->u->id);
    apr_status_t rv = apr_file_rename(tmp, data, c->p);

    if (APR_SUCCESS != rv) {
        rs_data_remove(tmp, c->p);
        return rs_eng_io_error(c->p, rv, "storing the data file", c->u->id);
    }
    if (APR_SUCCESS != (rv = store_deferred(c->e, c->a, born, c->u, c->p))) {
        rs_data_remove(data, c->p);
        return rs_eng_state_error(c->p, rv, "write", c->u->id);
    }
    *stored = 1;
    created_note(c->u, c->p);
    return why;
}

/* A deferred upload that received all its bytes: pre-finish (a refusal
 * stores it RS_UF_REJECTED without its data; an unreachable hook stores
 * it active, all bytes in, as complete_append leaves it), publish straight
 * from tmp, then the one write. As rs_eng_complete_md5 without an MD5. */
static rs_error_t *store_complete(append_ctx *c, const rs_upload_t *born,
                                  const char *tmp, int *stored)
{
    rs_upload_t *u = c->u;
    const char *path;
    rs_error_t *err = rs_eng_gate(c->e, RS_HOOK_PRE_FINISH, u, c->p);
    apr_status_t rv;

    if (err && RS_ERR_HOOK_REJECTED == err->code) {
        u->flags |= RS_UF_REJECTED;
        u->expires = u->expires ? u->expires : apr_time_now()
                                               + apr_time_from_sec(86400);
        rs_log_perror(RS_LOG_MARK, RS_LOG_INFO, 0, c->p, RS_LOGNO(09700)
                      "upload %s: refused by the pre-finish hook (%d), not "
                      "published", u->id, err->status);
        return store_partial(c, born, tmp, err, stored);
    }
    if (err) {
        return store_partial(c, born, tmp, err, stored);
    }
    rv = rs_data_publish(c->p, tmp, u->dir, rs_eng_publish_name(c->p, c->a,
                                                                 u),
                         0, &path);
    if (APR_SUCCESS != rv) {
        return store_partial(c, born, tmp, rs_eng_io_error(
                                 c->p, rv, "publishing the file", u->id),
                             stored);
    }
    u->path = path;
    u->flags |= RS_UF_PUBLISHED | RS_UF_UNINDEXED;  /* hashed by the sweep */
    u->state = RS_STATE_COMPLETE;
    u->offset = u->length;
    u->expires = 0;
    if (APR_SUCCESS != (rv = store_deferred(c->e, c->a, born, u, c->p))) {
        rs_data_remove(path, c->p);     /* no record, no URL: not kept */
        return rs_eng_state_error(c->p, rv, "write", u->id);
    }
    *stored = 1;
    created_note(u, c->p);
    rs_stats_add(RS_STAT_COMPLETED, 1);
    rs_log_perror(RS_LOG_MARK, RS_LOG_INFO, 0, c->p, RS_LOGNO(01008)
                  "upload %s: complete, %" APR_OFF_T_FMT " bytes at %s",
                  u->id, u->length, path);
    return NULL;
}

/* The deferred creation after its body (why: how the body ended). */
static rs_error_t *store_after_body(append_ctx *c, const rs_upload_t *born,
                                    const char *tmp, rs_error_t *why,
                                    int *stored)
{
    rs_upload_t *u = c->u;
    rs_error_t *err;

    if (!why && c->ap->complete && u->length < 0) {
        u->length = u->offset;              /* IETF: length from completion */
        u->flags &= ~RS_UF_DEFER_LENGTH;
    }
    if (why || !reached_end(u)) {
        return store_partial(c, born, tmp, why, stored);
    }
    err = store_complete(c, born, tmp, stored);
    if (err && (u->flags & RS_UF_REJECTED) && *stored) {
        rs_data_remove(rs_data_path(c->p, u->dir, u->id), c->p);
    }
    return err;
}

rs_error_t *rs_engine_create_append(rs_engine_t *e, const rs_area_t *a,
                                    rs_upload_t *u, const rs_append_t *ap,
                                    rs_body_t *body, apr_pool_t *p,
                                    rs_append_result_t *res, int *stored)
{
    append_ctx c = { e, a, u, ap, body, p };
    rs_upload_t born;
    const char *tmp;
    rs_error_t *err;
    apr_status_t rv;

    memset(res, 0, sizeof(*res));
    *stored = 0;
    if (!deferrable(e, u)) {
        if ((err = rs_engine_create(e, a, u, p))) {
            return err;
        }
        *stored = 1;
        return rs_engine_append(e, a, u, ap, body, p, res);
    }
    if ((err = create_prepare(e, a, u, p))
        || (err = pending_check(e, a, u, p))) {
        return err;
    }
    tmp = rs_data_new_path(p, a->dir, u->id);
    rv = rs_data_open_staged(&c.f, a->dir, tmp, p);
    if (APR_SUCCESS == rv) {
        rv = rs_data_claim(c.f);            /* the sweep's sign of life */
    }
    if (APR_SUCCESS != rv) {
        if (c.f) {
            apr_file_close(c.f);
            rs_data_remove(tmp, p);
        }
        return rs_eng_io_error(p, rv, "creating the data file", u->id);
    }
    c.deferred = 1;
    born = *u;
    rs_report_upload(p, &born);             /* the access log's "before" */
    if (!(err = precheck(&c)) && !(err = begin_write(&c))) {
        err = finish(&c, stream(&c), res);
    }
    err = store_after_body(&c, &born, tmp, err, stored);
    apr_file_close(c.f);                    /* and the claim */
    rs_report_upload(p, u);
    rs_report(p)->bytes += res->stored;
    return err;
}

/* ------------------------------------------------------------------------ */
/* termination and expiry                                                    */

/* Remove "k:" entry key when it still names u. */
static apr_status_t drop_key_entry(rs_txn_t *txn, const char *key,
                                   const rs_upload_t *u, apr_pool_t *p)
{
    char *val;
    apr_size_t len;
    apr_status_t rv = key ? rs_store_get(txn, key, p, &val, &len)
                          : APR_EGENERAL;

    if (APR_SUCCESS == rv && !strcmp(val, u->id)) {
        return rs_store_delete(txn, key);
    }
    return APR_STATUS_IS_ENOENT(rv) ? APR_SUCCESS : rv;
}

/* Remove u's "k:" entries (either form) that still name u. */
static apr_status_t drop_key(rs_txn_t *txn, const rs_upload_t *u,
                             apr_pool_t *p)
{
    apr_status_t rv = drop_key_entry(txn, kkey(p, u->dir, u->owner, u->proto,
                                               u->client_key), u, p);

    if (APR_SUCCESS == rv) {
        rv = drop_key_entry(txn, kkey_v1(p, u->dir, u->owner, u->client_key),
                            u, p);
    }
    return rv;
}

/* APR_EBUSY when complete partial id is listed by a final that is not
 * published yet (composed, or about to be): its data is that final's. */
static apr_status_t check_unused(rs_txn_t *txn, const char *id, apr_pool_t *p)
{
    rs_upload_t *u, *f;
    apr_status_t rv = rs_eng_txn_load(txn, id, p, &u);
    int i;

    if (APR_SUCCESS != rv || !(u->flags & RS_UF_PARTIAL)
        || RS_STATE_COMPLETE != u->state) {
        return APR_STATUS_IS_ENOENT(rv) ? APR_SUCCESS : rv;
    }
    for (i = 0; u->waiters && i < u->waiters->nelts; i++) {
        rv = rs_eng_txn_load(txn, APR_ARRAY_IDX(u->waiters, i, const char *),
                             p, &f);
        if (APR_SUCCESS == rv
            && !(f->flags & (RS_UF_PUBLISHED | RS_UF_REJECTED))) {
            return APR_EBUSY;           /* a refused final uses nothing */
        }
        if (APR_SUCCESS != rv && !APR_STATUS_IS_ENOENT(rv)) {
            return rv;
        }
    }
    return APR_SUCCESS;
}

/* Delete data, published file and record; leave a tombstone. The caller
 * holds the upload's lock. APR_EBUSY: a partial still in use, kept. */
static apr_status_t remove_upload(rs_engine_t *e, rs_upload_t *u,
                                  rs_hold_t *hold, int event, apr_pool_t *p)
{
    rs_txn_t *txn;
    rs_upload_t *cur = u;
    char stamp[32];
    apr_status_t kv, rv = rs_store_begin(e->store, 1, p, &txn);

    if (APR_SUCCESS != rv) {
        return rv;
    }
    if (rs_eng_cluster(e)) {
        /* fenced like a writer; the segments are the stored record's */
        rv = rs_eng_txn_load(txn, u->id, p, &cur);
        if (APR_SUCCESS == rv && cur->epoch != rs_eng_hold_epoch(hold)) {
            rv = RS_EFENCED;
        }
        if (APR_SUCCESS != rv) {
            rs_store_end(txn);
            return rv;
        }
    }
    apr_snprintf(stamp, sizeof(stamp), "%" APR_TIME_T_FMT, apr_time_now());
    if (APR_SUCCESS != (rv = check_unused(txn, u->id, p))) {
        rs_store_end(txn);
        return rv;
    }
    /* the record's deletion decides: before it nothing is removed (a
     * tombstone next to a record is not read), after it a "k:" entry
     * naming no record is ignored. Its pending count goes first: a "q:"
     * entry naming no record would hold a count for good. */
    rv = rs_eng_pending_release(txn, u->id, p);
    if (APR_SUCCESS == rv) {
        rv = rs_store_put(txn, tkey(p, u->id), stamp, strlen(stamp));
    }
    if (APR_SUCCESS == rv) {
        rv = rs_store_delete(txn, ukey(p, u->id));
    }
    if (APR_SUCCESS == rv && u->client_key
        && APR_SUCCESS != (kv = drop_key(txn, u, p))) {
        rs_log_perror(RS_LOG_MARK, RS_LOG_WARNING, kv, p, RS_LOGNO(09205)
                      "upload %s: removed, but not its client key", u->id);
    }
    if (APR_SUCCESS == rv && !(u->flags & RS_UF_REJECTED)) {
        rv = rs_eng_record(e, txn, event, u, p);
    }
    rs_store_end(txn);
    if (APR_SUCCESS != rv) {
        return rv;                      /* the upload stays, files and all */
    }
    rs_data_remove(rs_data_path(p, u->dir, u->id), p);
    remove_segments(cur, p);
    if (cur->flags & RS_UF_CHUNKED) {
        rs_eng_remove_chunks(cur, p);
    }
    if ((cur->flags & RS_UF_PUBLISHED) && cur->path) {
        rs_data_remove(cur->path, p);
    }
    return rv;
}

rs_error_t *rs_engine_terminate(rs_engine_t *e, const rs_area_t *a,
                                rs_upload_t *u, apr_pool_t *p)
{
    append_ctx c = { e, a, u, NULL, NULL, p };
    rs_error_t *err = take_lock(&c);
    rs_upload_t *fresh;
    apr_status_t rv;

    if (err) {
        return err;
    }
    /* a partial's data may be a composed final's: materialise that first;
     * while that fails, the partial stays (423) */
    rv = APR_SUCCESS;
    if ((u->flags & RS_UF_PARTIAL) && !rs_eng_lookup(e, u->id, p, &fresh)
        && rs_eng_release_partial(e, a, fresh, p)) {
        rv = APR_EBUSY;
    }
    if (APR_SUCCESS == rv) {
        rv = remove_upload(e, u, c.lock, RS_HOOK_POST_TERMINATE, p);
    }
    rs_eng_unhold(c.lock);
    if (APR_STATUS_IS_EBUSY(rv)) {
        return rs_error_make(p, RS_ERR_LOCKED, rv, "a final concatenation "
                             "still uses this partial upload");
    }
    if (APR_SUCCESS != rv) {
        return rs_eng_state_error(p, rv, "delete", u->id);
    }
    rs_log_perror(RS_LOG_MARK, RS_LOG_DEBUG, 0, p, RS_LOGNO(01009)
                  "upload %s: terminated", u->id);
    rs_stats_add(RS_STAT_TERMINATED, 1);
    rs_report(p)->terminated = 1;
    return NULL;
}

#define SWEEP_BATCH 512          /* records read per sweep transaction */

typedef struct sweep_ctx {
    apr_pool_t *p;
    apr_array_header_t *keys;
    apr_hash_t *dirs;               /* area directories seen (orphans) */
} sweep_ctx;

/* Upload records and tombstones, collected in one pass over the keys. */
static int collect_key(void *baton, const char *key)
{
    sweep_ctx *s = baton;

    if (!strncmp(key, "u:", 2) || !strncmp(key, "t:", 2)) {
        APR_ARRAY_PUSH(s->keys, const char *) = apr_pstrdup(s->p, key);
    }
    return 0;
}

/* Has the sweep anything to do with record u? */
static int sweep_wants(const rs_upload_t *u, apr_time_t now)
{
    return (RS_STATE_COMPLETE == u->state
            && (u->flags & (RS_UF_COMPOSED | RS_UF_UNINDEXED
                            | RS_UF_CHUNKS_LEFT)))
           || expired(u, now);
}

/* Read n keys in one read transaction and add those with work to todo:
 * most records (finished uploads, live ones) need nothing, and one
 * transaction per record would cost a million of them for a million. */
static void sweep_triage(rs_engine_t *e, const char **keys, int n,
                         apr_time_t now, apr_pool_t *p,
                         apr_array_header_t *todo, apr_hash_t *dirs)
{
    rs_txn_t *txn;
    rs_upload_t *u = NULL;
    char *val;
    apr_size_t len;
    int i, want;

    if (APR_SUCCESS != rs_store_begin(e->store, 0, p, &txn)) {
        return;
    }
    for (i = 0; i < n; i++) {
        if (!strncmp(keys[i], "t:", 2)) {
            want = APR_SUCCESS == rs_store_get(txn, keys[i], p, &val, &len)
                   && apr_atoi64(val) + TOMB_LIFETIME < now;
        }
        else {
            want = APR_SUCCESS == rs_eng_txn_load(txn, keys[i] + 2, p, &u)
                   && sweep_wants(u, now);
            if (u && u->dir && !apr_hash_get(dirs, u->dir,
                                             APR_HASH_KEY_STRING)) {
                const char *d = apr_pstrdup(apr_hash_pool_get(dirs), u->dir);

                apr_hash_set(dirs, d, APR_HASH_KEY_STRING, d);
            }
            u = NULL;
        }
        if (want) {
            APR_ARRAY_PUSH(todo, const char *) = keys[i];
        }
    }
    rs_store_end(txn);
}

/* One key of the sweep, read again in its own transactions (it may have
 * changed since the triage): an old tombstone, a composed upload to
 * materialise, a file to index, an expired upload. */
static int sweep_one(rs_engine_t *e, const char *key, apr_time_t now,
                     apr_pool_t *p)
{
    rs_upload_t *u;
    char *val;
    apr_size_t len;

    if (!strncmp(key, "t:", 2)) {
        if (APR_SUCCESS == rs_store_get1(e->store, key, p, &val, &len)
            && apr_atoi64(val) + TOMB_LIFETIME < now) {
            rs_store_delete1(e->store, key, p);
        }
        return 0;
    }
    if (rs_eng_lookup(e, key + 2, p, &u)) {
        return 0;
    }
    if (RS_STATE_COMPLETE == u->state && (u->flags & RS_UF_COMPOSED)) {
        rs_engine_materialise(e, NULL, u->id, p);   /* its child was killed */
        return 0;
    }
    if (RS_STATE_COMPLETE == u->state && (u->flags & RS_UF_CHUNKS_LEFT)) {
        rs_eng_chunks_sweep(e, u, p);       /* killed after its answer */
    }
    if (RS_STATE_COMPLETE == u->state && (u->flags & RS_UF_UNINDEXED)) {
        index_later(e, u, p);
    }
    return expired(u, now) ? expire_now(e, u, now, p) : 0;
}

/* Orphaned deferred creations (rs_data_sweep_new) in the dirs seen. A
 * cluster defers none: its shared directories are not listed. */
static void sweep_new(rs_engine_t *e, apr_hash_t *dirs, apr_time_t now,
                      apr_pool_t *p)
{
    apr_hash_index_t *hi;
    int n = 0;

    for (hi = rs_eng_cluster(e) ? NULL : apr_hash_first(p, dirs); hi;
         hi = apr_hash_next(hi)) {
        rs_data_sweep_new(p, apr_hash_this_key(hi), RS_ENGINE_NEW_GRACE, now,
                          &n);
    }
}

apr_status_t rs_engine_sweep(rs_engine_t *e, apr_time_t now, apr_pool_t *p,
                             int *removed)
{
    sweep_ctx s;
    rs_txn_t *txn;
    apr_pool_t *iter;
    apr_array_header_t *todo;
    apr_status_t rv;
    int i;

    *removed = 0;
    s.p = p;
    s.keys = apr_array_make(p, 64, sizeof(const char *));
    s.dirs = apr_hash_make(p);
    for (i = 0; e->dirs && i < e->dirs->nelts; i++) {
        const char *d = APR_ARRAY_IDX(e->dirs, i, const char *);

        apr_hash_set(s.dirs, d, APR_HASH_KEY_STRING, d);
    }
    if (APR_SUCCESS != (rv = rs_store_begin(e->store, 0, p, &txn))) {
        sweep_new(e, s.dirs, now, p);
        return APR_STATUS_IS_ENOENT(rv) ? APR_SUCCESS : rv;
    }
    rv = rs_store_keys(txn, "", collect_key, &s);
    rs_store_end(txn);
    todo = apr_array_make(p, 16, sizeof(const char *));
    apr_pool_create(&iter, p);
    for (i = 0; i < s.keys->nelts; i += SWEEP_BATCH) {
        sweep_triage(e, (const char **)s.keys->elts + i,
                     s.keys->nelts - i < SWEEP_BATCH ? s.keys->nelts - i
                     : SWEEP_BATCH, now, iter, todo, s.dirs);
        apr_pool_clear(iter);
    }
    for (i = 0; i < todo->nelts; i++) {
        *removed += sweep_one(e, APR_ARRAY_IDX(todo, i, const char *), now,
                              iter);
        apr_pool_clear(iter);
    }
    apr_pool_destroy(iter);
    sweep_new(e, s.dirs, now, p);
    return rv;
}
