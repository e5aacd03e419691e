/* Licensed under the Apache License, Version 2.0. */
/*
 * The upload engine: records, reconciliation, the append path, completion,
 * concatenation, termination and the expiry sweep. See rs_engine.h.
 *
 * Store layout (rs_store keys):
 *   "u:<id>"   the upload record (rs_upload_encode)
 *   "t:<id>"   tombstone: decimal apr_time_t of removal (answers 410)
 *   "k:<hex>"  client key -> upload id. <hex> is the SHA-256 of
 *              "<area dir>\0<owner>\0<client key>": the client's own file
 *              id (untrusted, at most RS_ENGINE_MAX_KEY bytes) never
 *              becomes a key itself, and ids of different areas or users
 *              never meet. Written in the transaction that stores the new
 *              record (a concurrent create for the same key adopts the
 *              winner; a finished upload's key moves to a new upload of the
 *              same key), removed with the upload (terminate, expiry) when it
 *              still names it; a "k:" entry whose upload is gone is ignored.
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
 *     expected MD5 (md5 front end) the chunk files are copied end to end
 *     into "<id>.data" in the kernel (rs_data_copy_range: reflink or
 *     copy_file_range), the MD5 is verified, then the file is published
 *     like any other and the chunk files are removed.
 *
 * Concatenation: a final whose partials are all complete is composed
 * (rs_engine_compose.c); its partials list it among their waiters, and a
 * complete partial is not removed (DELETE, expiry) while a final that is
 * not published yet lists it (checked in the removing transaction).
 */

#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
#include <apr_strings.h>
#include <apr_time.h>

#include "rs_engine.h"
#include "rs_engine_private.h"
#include "rs_store.h"
#include "rs_data.h"
#include "rs_lock.h"
#include "rs_hash.h"
#include "rs_util.h"
#include "rs_log.h"

#define TOMB_LIFETIME apr_time_from_sec(7 * 86400)

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

/* "k:<sha256 hex of dir NUL owner NUL client key>": the client's own id,
 * scoped to area and user, never used raw as a key. */
static const char *kkey(apr_pool_t *p, const char *dir, const char *owner,
                        const char *client_key)
{
    unsigned char d[RS_HASH_MAX];
    apr_size_t n = 0;
    rs_hash_t *h;

    if (APR_SUCCESS != rs_hash_create(&h, "sha256", p)) {
        return NULL;
    }
    rs_hash_update(h, dir, strlen(dir) + 1);
    rs_hash_update(h, owner, strlen(owner) + 1);
    rs_hash_update(h, client_key, strlen(client_key));
    rs_hash_final(h, d, &n);
    return apr_pstrcat(p, "k:", rs_util_hex(p, d, n), NULL);
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

/* The upload a client key maps to, in txn: *id, or NULL when there is
 * none (or, with active_only, when it is no longer active). */
static apr_status_t key_target(rs_txn_t *txn, const char *key, int active_only,
                               apr_pool_t *p, const char **id)
{
    char *val;
    apr_size_t len;
    rs_upload_t *u;
    apr_status_t rv = rs_store_get(txn, key, p, &val, &len);

    *id = NULL;
    if (APR_STATUS_IS_ENOENT(rv)) {
        return APR_SUCCESS;
    }
    if (APR_SUCCESS != rv) {
        return rv;
    }
    rv = rs_eng_txn_load(txn, val, p, &u);
    if (APR_SUCCESS == rv && (!active_only || RS_STATE_ACTIVE == u->state)) {
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
    rs_txn_t *txn;
    rs_upload_t *cur = NULL;
    apr_status_t rv = rs_store_begin(e->store, 1, p, &txn);

    if (APR_SUCCESS != rv) {
        return rv;
    }
    rv = rs_eng_txn_load(txn, u->id, p, &cur);
    if (APR_SUCCESS == rv) {
        apply_progress(cur, u);
        rv = rs_eng_txn_save(txn, cur, p);
    }
    rv = rs_store_finish(txn, rv);          /* pgsql: the commit */
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
                                  rs_lock_t *lock, apr_pool_t *p);

/* Remove an expired upload unless a writer holds it (then it is in use
 * and not expired after all) or, for a partial, a final still needs its
 * data. 1 when removed. */
static int expire_now(rs_engine_t *e, rs_upload_t *u, apr_time_t now,
                      apr_pool_t *p)
{
    const char *staging;
    rs_lock_t *lock;
    rs_upload_t *cur;
    int removed = 0;

    if (APR_SUCCESS == rs_data_staging(p, u->dir, 0, &staging)
        && !rs_eng_release_partial(e, NULL, u, p)
        && APR_SUCCESS == rs_lock_acquire(&lock, staging, u->id, 0, p)) {
        /* read again under the lock: another sweeper (another node of a
         * cluster) may have removed it, a writer may have touched it */
        if (!rs_eng_lookup(e, u->id, p, &cur) && expired(cur, now)
            && APR_SUCCESS == remove_upload(e, cur, lock, p)) {
            rs_log_perror(RS_LOG_MARK, RS_LOG_INFO, 0, p, RS_LOGNO(01005)
                          "upload %s: expired, removed", u->id);
            removed = 1;
        }
        rs_lock_release(lock);
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
                                     rs_upload_t *u, apr_pool_t *p)
{
    rs_area_t now = *a;
    rs_body_t empty = { empty_read, NULL, 0, NULL };
    rs_append_t ap;
    rs_append_result_t res;
    rs_upload_t *fresh;

    memset(&ap, 0, sizeof(ap));
    ap.offset = u->offset;
    ap.declare_length = -1;
    now.lock_wait = 0;
    if (!rs_engine_append(e, &now, u, &ap, &empty, p, &res)
        && !rs_eng_lookup(e, u->id, p, &fresh)) {
        return fresh;
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
    if (expired(u, apr_time_now()) && expire_now(e, u, apr_time_now(), p)) {
        return rs_error_make(p, RS_ERR_GONE, 0, "upload expired");
    }
    if (RS_STATE_ASSEMBLING == u->state && (u->flags & RS_UF_FINAL)) {
        u = recover_final(e, a, u, p);
    }
    if (rs_upload_append_mode(u)) {
        u = offset_now(e, a, u, p);
    }
    if (rs_upload_append_mode(u) && u->length >= 0 && u->offset == u->length) {
        u = recover_complete(e, a, u, p);
    }
    *pu = u;
    return NULL;
}

rs_error_t *rs_engine_find_key(rs_engine_t *e, const rs_area_t *a,
                               const char *owner, const char *client_key,
                               apr_pool_t *p, rs_upload_t **u)
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
        rv = key_target(txn, kkey(p, a->dir, owner, client_key), 0, p,
                        &id);
        rs_store_end(txn);
    }
    if (APR_SUCCESS != rv && !APR_STATUS_IS_ENOENT(rv)) {
        return rs_eng_state_error(p, rv, "key lookup", "-");
    }
    err = id ? rs_engine_open(e, a, id, owner, p, u)
             : rs_error_make(p, RS_ERR_NOT_FOUND, 0, NULL);
    if (err && RS_ERR_GONE == err->code) {
        err = rs_error_make(p, RS_ERR_NOT_FOUND, 0, NULL);
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
static rs_error_t *store_new(rs_engine_t *e, rs_upload_t *u, apr_pool_t *p,
                             const char **existing)
{
    rs_txn_t *txn;
    const char *key = NULL;
    apr_status_t rv = rs_store_begin(e->store, 1, p, &txn);

    *existing = NULL;
    if (APR_SUCCESS != rv) {
        return rs_eng_state_error(p, rv, "write", u->id);
    }
    if (u->client_key) {
        key = kkey(p, u->dir, u->owner, u->client_key);
        rv = key_target(txn, key, 1, p, existing);
    }
    if (APR_SUCCESS == rv && !*existing && key) {
        rv = rs_store_put(txn, key, u->id, strlen(u->id));
    }
    if (APR_SUCCESS == rv && !*existing) {
        rv = rs_eng_txn_save(txn, u, p);
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

rs_error_t *rs_engine_create(rs_engine_t *e, const rs_area_t *a,
                             rs_upload_t *u, apr_pool_t *p)
{
    const char *staging, *id, *existing;
    apr_file_t *f;
    rs_error_t *err = rs_eng_check_size(a, u->length, p);
    apr_status_t rv;

    if (err || (err = check_key(u->client_key, p))) {
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
    if ((err = store_new(e, u, p, &existing))) {
        return err;
    }
    if (existing) {
        return adopt(e, a, u, existing, p);
    }
    rs_log_perror(RS_LOG_MARK, RS_LOG_DEBUG, 0, p, RS_LOGNO(01006)
                  "upload %s: created, length %" APR_OFF_T_FMT, id, u->length);
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
    const char *k = kkey(p, dir, owner ? owner : "", "");

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
    const char *path;
    rs_upload_t *fresh;
    apr_status_t rv = APR_SUCCESS;

    if (!(u->flags & RS_UF_PARTIAL)) {
        rv = rs_data_publish(p, rs_data_path(p, u->dir, u->id), u->dir,
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
    if (APR_SUCCESS != (rv = rs_eng_save_progress(e, u, p, &fresh))) {
        return rs_eng_state_error(p, rv, "write", u->id);
    }
    rs_log_perror(RS_LOG_MARK, RS_LOG_INFO, 0, p, RS_LOGNO(01008)
                  "upload %s: complete, %" APR_OFF_T_FMT " bytes%s%s", u->id,
                  u->length, u->path ? " at " : "", u->path ? u->path : "");
    if (md5hex) {
        index_content(e, a, u, md5hex, p);  /* verified: free to index now */
    }
    wake_waiters(e, a, fresh, p);
    return NULL;
}

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
        *total = (*total < 0 || pu->length < 0) ? -1 : *total + pu->length;
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
    const char *staging;
    rs_lock_t *lock;
    rs_txn_t *txn;
    rs_upload_t *u, **parts;
    rs_error_t *err = NULL;
    apr_off_t total;
    int ready;
    apr_status_t rv;

    if (APR_SUCCESS != (rv = rs_data_staging(p, a->dir, 1, &staging))
        || APR_SUCCESS != (rv = rs_lock_acquire(&lock, staging, final_id,
                                                wait, p))) {
        return rs_error_make(p, RS_ERR_LOCKED, rv, NULL);
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
    err = rs_eng_compose(e, u, total, rs_eng_publish_name(p, a, u), p);
cleanup:
    rs_lock_release(lock);
    return err;
}

static rs_error_t *assemble(rs_engine_t *e, const rs_area_t *a,
                            const char *final_id, apr_pool_t *p)
{
    return assemble_wait(e, a, final_id, a->lock_wait, p);
}

/* In one transaction: store final u and register it with its unfinished
 * partials, so a partial completing concurrently sees it. */
static rs_error_t *register_final(rs_engine_t *e, rs_upload_t *u,
                                  int allow_unfinished, apr_pool_t *p)
{
    rs_txn_t *txn;
    rs_upload_t **parts;
    rs_error_t *err;
    apr_off_t total;
    apr_status_t rv = rs_store_begin(e->store, 1, p, &txn);
    int i, ready;

    if (APR_SUCCESS != rv) {
        return rs_eng_state_error(p, rv, "open", u->id);
    }
    err = load_parts(e, txn, u, p, &parts, &ready, &total);
    if (!err && !ready && !allow_unfinished) {
        err = rs_error_make(p, RS_ERR_NOT_FINISHED, 0, NULL);
    }
    for (i = 0; !err && APR_SUCCESS == rv && i < u->parts->nelts; i++) {
        if (!parts[i]->waiters) {       /* waiting for it, or using it */
            parts[i]->waiters = apr_array_make(p, 1, sizeof(char *));
        }
        APR_ARRAY_PUSH(parts[i]->waiters, const char *) = u->id;
        rv = rs_eng_txn_save(txn, parts[i], p);
    }
    if (!err) {
        u->length = total;
        u->state = ready ? RS_STATE_ACTIVE : RS_STATE_ASSEMBLING;
        rv = rs_eng_txn_save(txn, u, p);
    }
    rs_store_end(txn);
    if (!err && APR_SUCCESS != rv) {
        err = rs_eng_state_error(p, rv, "write", u->id);
    }
    return err;
}

rs_error_t *rs_engine_concat(rs_engine_t *e, const rs_area_t *a,
                             rs_upload_t *u, int allow_unfinished,
                             apr_pool_t *p)
{
    rs_upload_t *fresh;
    rs_error_t *err;
    const char *id;
    apr_status_t rv;

    if (!u->parts || u->parts->nelts < 1
        || u->parts->nelts > RS_UPLOAD_MAX_PARTS) {
        return rs_error_make(p, RS_ERR_INVALID_CONCAT, 0,
                             "a final upload needs 1 to %d partial uploads",
                             RS_UPLOAD_MAX_PARTS);
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
    if ((err = register_final(e, u, allow_unfinished, p))) {
        return err;
    }
    if ((err = rs_eng_check_size(a, u->length, p))) {
        rs_engine_terminate(e, a, u, p);
        return err;
    }
    if (!(err = assemble(e, a, u->id, p))
        && !rs_engine_open(e, a, u->id, u->owner, p, &fresh)) {
        *u = *fresh;
    }
    return err;
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
    rs_lock_t *lock;
    apr_file_t *f;
    rs_writer_t *w;
    rs_hash_t *hash;
    apr_off_t start;
    apr_off_t remaining;           /* -1: unbounded */
    int verify;                    /* bytes count only once verified */
} append_ctx;

rs_error_t *rs_eng_lock(const rs_area_t *a, const rs_upload_t *u,
                        apr_pool_t *p, rs_lock_t **lock)
{
    const char *staging;
    apr_status_t rv = rs_data_staging(p, u->dir, 1, &staging);

    if (APR_SUCCESS == rv) {
        rv = rs_lock_acquire(lock, staging, u->id, a->lock_wait, p);
    }
    if (APR_STATUS_IS_EBUSY(rv)) {
        return rs_error_make(p, RS_ERR_LOCKED, rv, NULL);
    }
    return APR_SUCCESS == rv ? NULL : rs_eng_io_error(p, rv, "locking", u->id);
}

static rs_error_t *take_lock(append_ctx *c)
{
    return rs_eng_lock(c->a, c->u, c->p, &c->lock);
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

/* Everything that can be decided before reading the body. */
static rs_error_t *precheck(append_ctx *c)
{
    rs_upload_t *u = c->u;
    rs_error_t *err;

    if (u->flags & RS_UF_FINAL) {
        return rs_error_make(c->p, RS_ERR_MODIFY_FINAL, 0, NULL);
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
    c->remaining = u->length >= 0 ? u->length - u->offset
                   : (c->a->max_size > 0 ? c->a->max_size - u->offset : -1);
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

/* Mark an unverified append in the record before writing its bytes. */
static rs_error_t *begin_write(append_ctx *c)
{
    apr_status_t rv;

    c->start = c->u->offset;
    c->verify = c->ap->checksum_alg || c->ap->checksum_trailer;
    if (c->ap->checksum_alg
        && APR_SUCCESS != rs_hash_create_for(&c->hash, c->ap->checksum_alg,
                                             c->body->length, c->p)) {
        return rs_error_make(c->p, RS_ERR_CHECKSUM_ALGORITHM, 0, NULL);
    }
    if (c->verify) {
        c->u->pending_from = c->start;
        if (APR_SUCCESS != (rv = rs_eng_save_progress(c->e, c->u, c->p, NULL))) {
            return rs_eng_state_error(c->p, rv, "write", c->u->id);
        }
    }
    c->body->take_pipe = !c->hash;   /* bytes go to the file untouched */
    rv = rs_writer_create(&c->w, c->f, c->start, c->e->write_buffer, c->p);
    if (APR_SUCCESS == rv) {
        rs_writer_writeback(c->w, c->a->sync);  /* the fdatasync will wait */
    }
    return APR_SUCCESS == rv ? NULL : rs_eng_io_error(c->p, rv, "writer", c->u->id);
}

/* Stream the body into the writer. Returns the reason it stopped. */
static rs_error_t *stream(append_ctx *c)
{
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
            if (apr_time_now() - last >= c->a->stall_time
                && rs_lock_stop_requested(c->lock)) {
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
        if (APR_SUCCESS != rv) {
            return rs_eng_io_error(c->p, rv, "writing", c->u->id);
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
        rv = rs_hash_file_range(alg, c->f, c->start, n, got, &glen, c->p);
    }
    else {
        rv = rs_hash_final(c->hash, got, &glen);
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

/* Roll back to the start offset (unverified or refused bytes). */
static void rollback(append_ctx *c)
{
    rs_data_truncate(c->f, c->start);
    c->u->offset = c->start;
    c->u->pending_from = -1;
    rs_eng_save_progress(c->e, c->u, c->p, NULL);
}

/* Persist what the stream left: flush, sync, verify, record the offset. */
static rs_error_t *finish(append_ctx *c, rs_error_t *why,
                          rs_append_result_t *res)
{
    apr_status_t rv = rs_writer_flush(c->w);
    apr_off_t n = rs_writer_flushed(c->w);
    rs_error_t *err = why;

    res->received = rs_writer_total(c->w);
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
    if (APR_SUCCESS != (rv = rs_eng_save_progress(c->e, c->u, c->p, NULL)) && !err) {
        err = rs_eng_state_error(c->p, rv, "write", c->u->id);
    }
    return err;
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
        err = complete(e, a, u, p);
    }
cleanup:
    if (c.f) {
        apr_file_close(c.f);
    }
    if (c.lock && RS_STATE_COMPLETE == u->state
        && !(u->flags & RS_UF_PARTIAL)) {
        rs_lock_remove_files(c.lock);   /* nobody writes a finished upload */
    }
    if (c.lock) {
        rs_lock_release(c.lock);
    }
    return err;
}

/* ------------------------------------------------------------------------ */
/* termination and expiry                                                    */

/* Remove u's "k:" entry when it still names u. */
static apr_status_t drop_key(rs_txn_t *txn, const rs_upload_t *u,
                             apr_pool_t *p)
{
    const char *key = kkey(p, u->dir, u->owner, u->client_key);
    char *val;
    apr_size_t len;
    apr_status_t rv = rs_store_get(txn, key, p, &val, &len);

    if (APR_SUCCESS == rv && !strcmp(val, u->id)) {
        return rs_store_delete(txn, key);
    }
    return APR_STATUS_IS_ENOENT(rv) ? APR_SUCCESS : rv;
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
        if (APR_SUCCESS == rv && !(f->flags & RS_UF_PUBLISHED)) {
            return APR_EBUSY;
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
                                  rs_lock_t *lock, apr_pool_t *p)
{
    rs_txn_t *txn;
    char stamp[32];
    apr_status_t rv = rs_store_begin(e->store, 1, p, &txn);

    if (APR_SUCCESS != rv) {
        return rv;
    }
    apr_snprintf(stamp, sizeof(stamp), "%" APR_TIME_T_FMT, apr_time_now());
    if (APR_SUCCESS != (rv = check_unused(txn, u->id, p))) {
        rs_store_end(txn);
        return rv;
    }
    rv = rs_store_delete(txn, ukey(p, u->id));
    if (APR_SUCCESS == rv) {
        rv = rs_store_put(txn, tkey(p, u->id), stamp, strlen(stamp));
    }
    if (APR_SUCCESS == rv && u->client_key) {
        rv = drop_key(txn, u, p);
    }
    rs_store_end(txn);
    rs_data_remove(rs_data_path(p, u->dir, u->id), p);
    if (u->flags & RS_UF_CHUNKED) {
        rs_eng_remove_chunks(u, p);
    }
    if ((u->flags & RS_UF_PUBLISHED) && u->path) {
        rs_data_remove(u->path, p);
    }
    rs_lock_remove_files(lock);
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
        rv = remove_upload(e, u, c.lock, p);
    }
    rs_lock_release(c.lock);
    if (APR_STATUS_IS_EBUSY(rv)) {
        return rs_error_make(p, RS_ERR_LOCKED, rv, "a final concatenation "
                             "still uses this partial upload");
    }
    if (APR_SUCCESS != rv) {
        return rs_eng_state_error(p, rv, "delete", u->id);
    }
    rs_log_perror(RS_LOG_MARK, RS_LOG_DEBUG, 0, p, RS_LOGNO(01009)
                  "upload %s: terminated", u->id);
    return NULL;
}

#define SWEEP_BATCH 512          /* records read per sweep transaction */

typedef struct sweep_ctx {
    apr_pool_t *p;
    apr_array_header_t *keys;
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
            && (u->flags & (RS_UF_COMPOSED | RS_UF_UNINDEXED)))
           || expired(u, now);
}

/* Read n keys in one read transaction and add those with work to todo:
 * most records (finished uploads, live ones) need nothing, and one
 * transaction per record would cost a million of them for a million. */
static void sweep_triage(rs_engine_t *e, const char **keys, int n,
                         apr_time_t now, apr_pool_t *p,
                         apr_array_header_t *todo)
{
    rs_txn_t *txn;
    rs_upload_t *u;
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
    if (RS_STATE_COMPLETE == u->state && (u->flags & RS_UF_UNINDEXED)) {
        index_later(e, u, p);
    }
    return expired(u, now) ? expire_now(e, u, now, p) : 0;
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
    if (APR_SUCCESS != (rv = rs_store_begin(e->store, 0, p, &txn))) {
        return APR_STATUS_IS_ENOENT(rv) ? APR_SUCCESS : rv;
    }
    rv = rs_store_keys(txn, "", collect_key, &s);
    rs_store_end(txn);
    todo = apr_array_make(p, 16, sizeof(const char *));
    apr_pool_create(&iter, p);
    for (i = 0; i < s.keys->nelts; i += SWEEP_BATCH) {
        sweep_triage(e, (const char **)s.keys->elts + i,
                     s.keys->nelts - i < SWEEP_BATCH ? s.keys->nelts - i
                     : SWEEP_BATCH, now, iter, todo);
        apr_pool_clear(iter);
    }
    for (i = 0; i < todo->nelts; i++) {
        *removed += sweep_one(e, APR_ARRAY_IDX(todo, i, const char *), now,
                              iter);
        apr_pool_clear(iter);
    }
    apr_pool_destroy(iter);
    return rv;
}
