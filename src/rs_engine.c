/* Licensed under the Apache License, Version 2.0. */
/*
 * The upload engine: records, reconciliation, the append path, completion,
 * concatenation, termination and the expiry sweep. See rs_engine.h.
 */

#include <apr_strings.h>
#include <apr_time.h>

#include "rs_engine.h"
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

static apr_status_t txn_load(rs_txn_t *txn, const char *id, apr_pool_t *p,
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

static apr_status_t txn_save(rs_txn_t *txn, const rs_upload_t *u, apr_pool_t *p)
{
    char *buf;
    apr_size_t len;
    apr_status_t rv = rs_upload_encode(u, p, &buf, &len);

    if (APR_SUCCESS == rv) {
        rv = rs_store_put(txn, ukey(p, u->id), buf, len);
    }
    return rv;
}

static rs_error_t *state_error(apr_pool_t *p, apr_status_t rv, const char *what,
                               const char *id)
{
    rs_log_perror(RS_LOG_MARK, RS_LOG_ERR, rv, p, RS_LOGNO(01002)
                  "upload %s: state database %s failed", id, what);
    return rs_error_make(p, RS_ERR_STATE, rv, NULL);
}

static rs_error_t *io_error(apr_pool_t *p, apr_status_t rv, const char *what,
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
static apr_status_t save_progress(rs_engine_t *e, const rs_upload_t *u,
                                  apr_pool_t *p, rs_upload_t **fresh)
{
    rs_txn_t *txn;
    rs_upload_t *cur = NULL;
    apr_status_t rv = rs_store_begin(e->store, 1, p, &txn);

    if (APR_SUCCESS != rv) {
        return rv;
    }
    rv = txn_load(txn, u->id, p, &cur);
    if (APR_SUCCESS == rv) {
        apply_progress(cur, u);
        rv = txn_save(txn, cur, p);
    }
    rs_store_end(txn);
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

static int append_mode(const rs_upload_t *u)
{
    return RS_STATE_ACTIVE == u->state && !(u->flags & RS_UF_CHUNKED)
           && !(u->flags & RS_UF_FINAL);
}

/* The offset the data file supports. An unverified append in flight (or
 * left by a killed writer) does not count; bytes beyond the record of a
 * plain append do (they reached the disk). With sync on, such bytes are
 * made durable before they are reported. */
static apr_off_t disk_offset(const rs_area_t *a, const rs_upload_t *u,
                             apr_pool_t *p)
{
    const char *path = rs_data_path(p, u->dir, u->id);
    apr_off_t size = 0;
    apr_file_t *f;

    if (APR_SUCCESS != rs_data_size(path, &size, p)) {
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
    apr_off_t size = disk_offset(a, u, p);
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
    return save_progress(e, u, p, NULL);
}

/* ------------------------------------------------------------------------ */
/* open                                                                      */

static rs_error_t *lookup(rs_engine_t *e, const char *id, apr_pool_t *p,
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
        return state_error(p, rv, "open", id);
    }
    rv = txn_load(txn, id, p, u);
    if (APR_STATUS_IS_ENOENT(rv)) {
        rv = rs_store_get(txn, tkey(p, id), p, &val, &len);
        rs_store_end(txn);
        return rs_error_make(p, APR_SUCCESS == rv ? RS_ERR_GONE
                             : RS_ERR_NOT_FOUND, 0, NULL);
    }
    rs_store_end(txn);
    return APR_SUCCESS == rv ? NULL : state_error(p, rv, "read", id);
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
 * and not expired after all). 1 when removed. */
static int expire_now(rs_engine_t *e, rs_upload_t *u, apr_pool_t *p)
{
    const char *staging;
    rs_lock_t *lock;
    int removed = 0;

    if (APR_SUCCESS == rs_data_staging(p, u->dir, 0, &staging)
        && APR_SUCCESS == rs_lock_acquire(&lock, staging, u->id, 0, p)) {
        if (APR_SUCCESS == remove_upload(e, u, lock, p)) {
            rs_log_perror(RS_LOG_MARK, RS_LOG_INFO, 0, p, RS_LOGNO(01005)
                          "upload %s: expired, removed", u->id);
            removed = 1;
        }
        rs_lock_release(lock);
    }
    return removed;
}

rs_error_t *rs_engine_open(rs_engine_t *e, const rs_area_t *a, const char *id,
                           const char *owner, apr_pool_t *p, rs_upload_t **pu)
{
    rs_upload_t *u;
    rs_error_t *err = lookup(e, id, p, &u);

    if (err) {
        return err;
    }
    if (strcmp(u->dir, a->dir) || strcmp(u->owner, owner ? owner : "")) {
        return rs_error_make(p, RS_ERR_NOT_FOUND, 0, NULL);
    }
    if (expired(u, apr_time_now()) && expire_now(e, u, p)) {
        return rs_error_make(p, RS_ERR_GONE, 0, "upload expired");
    }
    if (append_mode(u)) {
        u->offset = disk_offset(a, u, p);
    }
    *pu = u;
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* create                                                                    */

static rs_error_t *complete(rs_engine_t *e, const rs_area_t *a, rs_upload_t *u,
                            apr_pool_t *p);

static rs_error_t *check_size(const rs_area_t *a, apr_off_t length,
                              apr_pool_t *p)
{
    if (a->max_size > 0 && length > a->max_size) {
        return rs_error_make(p, RS_ERR_MAX_SIZE, 0, "upload length %"
                             APR_OFF_T_FMT " exceeds the maximum of %"
                             APR_OFF_T_FMT, length, a->max_size);
    }
    return NULL;
}

static rs_error_t *store_new(rs_engine_t *e, rs_upload_t *u, apr_pool_t *p)
{
    rs_txn_t *txn;
    apr_status_t rv = rs_store_begin(e->store, 1, p, &txn);

    if (APR_SUCCESS == rv) {
        rv = txn_save(txn, u, p);
        rs_store_end(txn);
    }
    return APR_SUCCESS == rv ? NULL : state_error(p, rv, "write", u->id);
}

rs_error_t *rs_engine_create(rs_engine_t *e, const rs_area_t *a,
                             rs_upload_t *u, apr_pool_t *p)
{
    const char *staging, *id;
    apr_file_t *f;
    rs_error_t *err = check_size(a, u->length, p);
    apr_status_t rv;

    if (err) {
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
        return io_error(p, rv, "creating the data file", id);
    }
    if ((err = store_new(e, u, p))) {
        return err;
    }
    rs_log_perror(RS_LOG_MARK, RS_LOG_DEBUG, 0, p, RS_LOGNO(01006)
                  "upload %s: created, length %" APR_OFF_T_FMT, id, u->length);
    if (0 == u->length && !(u->flags & (RS_UF_FINAL | RS_UF_PARTIAL))) {
        return complete(e, a, u, p);
    }
    if (0 == u->length) {
        u->state = RS_STATE_COMPLETE;
        return APR_SUCCESS == save_progress(e, u, p, NULL) ? NULL
               : state_error(p, APR_EGENERAL, "write", id);
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* completion and concatenation                                              */

static const char *publish_name(apr_pool_t *p, const rs_upload_t *u)
{
    const char *name = u->filename ? rs_util_sanitize_name(p, u->filename)
                                   : NULL;
    return name ? name : u->id;
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

/* u reached its length: publish it (or, for a partial, mark it complete
 * and wake the finals that wait for it). */
static rs_error_t *complete(rs_engine_t *e, const rs_area_t *a, rs_upload_t *u,
                            apr_pool_t *p)
{
    const char *path;
    rs_upload_t *fresh;
    apr_status_t rv = APR_SUCCESS;

    if (!(u->flags & RS_UF_PARTIAL)) {
        rv = rs_data_publish(p, rs_data_path(p, u->dir, u->id), u->dir,
                             publish_name(p, u), 0, &path);
        if (APR_SUCCESS != rv) {
            return io_error(p, rv, "publishing the file", u->id);
        }
        u->path = path;
        u->flags |= RS_UF_PUBLISHED;
    }
    u->state = RS_STATE_COMPLETE;
    u->offset = u->length;
    if (!(u->flags & RS_UF_PARTIAL)) {
        u->expires = 0;
    }
    if (APR_SUCCESS != (rv = save_progress(e, u, p, &fresh))) {
        return state_error(p, rv, "write", u->id);
    }
    rs_log_perror(RS_LOG_MARK, RS_LOG_INFO, 0, p, RS_LOGNO(01008)
                  "upload %s: complete, %" APR_OFF_T_FMT " bytes%s%s", u->id,
                  u->length, u->path ? " at " : "", u->path ? u->path : "");
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
        apr_status_t rv = txn_load(txn, pid, p, &pu);

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

/* Copy the partials' data into the final's data file. */
static rs_error_t *copy_parts(rs_upload_t *u, rs_upload_t **parts,
                              apr_pool_t *p)
{
    apr_file_t *dst, *src;
    apr_off_t at = 0;
    apr_status_t rv;
    int i;

    rv = rs_data_open(&dst, rs_data_path(p, u->dir, u->id), 1, p);
    for (i = 0; APR_SUCCESS == rv && i < u->parts->nelts; i++) {
        rv = rs_data_open(&src, rs_data_path(p, parts[i]->dir, parts[i]->id),
                          0, p);
        if (APR_SUCCESS == rv) {
            rv = rs_data_copy_range(dst, at, src, 0, parts[i]->length);
            apr_file_close(src);
        }
        at += parts[i]->length;
    }
    if (APR_SUCCESS == rv) {
        rv = rs_data_truncate(dst, at);
    }
    if (APR_SUCCESS == rv) {
        rv = rs_data_sync(dst);
    }
    return APR_SUCCESS == rv ? NULL : io_error(p, rv, "concatenation", u->id);
}

static rs_error_t *assemble(rs_engine_t *e, const rs_area_t *a,
                            const char *final_id, apr_pool_t *p)
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
                                                a->lock_wait, p))) {
        return rs_error_make(p, RS_ERR_LOCKED, rv, NULL);
    }
    if (APR_SUCCESS != (rv = rs_store_begin(e->store, 0, p, &txn))) {
        err = state_error(p, rv, "open", final_id);
        goto cleanup;
    }
    rv = txn_load(txn, final_id, p, &u);
    if (APR_SUCCESS == rv && RS_STATE_COMPLETE != u->state) {
        err = load_parts(e, txn, u, p, &parts, &ready, &total);
    }
    rs_store_end(txn);
    if (APR_SUCCESS != rv || err || RS_STATE_COMPLETE == u->state || !ready) {
        goto cleanup;
    }
    if (!(err = copy_parts(u, parts, p))) {
        u->length = total;
        err = complete(e, a, u, p);
    }
cleanup:
    rs_lock_release(lock);
    return err;
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
        return state_error(p, rv, "open", u->id);
    }
    err = load_parts(e, txn, u, p, &parts, &ready, &total);
    if (!err && !ready && !allow_unfinished) {
        err = rs_error_make(p, RS_ERR_NOT_FINISHED, 0, NULL);
    }
    for (i = 0; !err && i < u->parts->nelts; i++) {
        if (RS_STATE_COMPLETE != parts[i]->state) {
            if (!parts[i]->waiters) {
                parts[i]->waiters = apr_array_make(p, 1, sizeof(char *));
            }
            APR_ARRAY_PUSH(parts[i]->waiters, const char *) = u->id;
            rv = txn_save(txn, parts[i], p);
        }
    }
    if (!err) {
        u->length = total;
        u->state = ready ? RS_STATE_ACTIVE : RS_STATE_ASSEMBLING;
        rv = txn_save(txn, u, p);
    }
    rs_store_end(txn);
    if (!err && APR_SUCCESS != rv) {
        err = state_error(p, rv, "write", u->id);
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
    if ((err = check_size(a, u->length, p))) {
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

static rs_error_t *take_lock(append_ctx *c)
{
    const char *staging;
    apr_status_t rv = rs_data_staging(c->p, c->u->dir, 1, &staging);

    if (APR_SUCCESS == rv) {
        rv = rs_lock_acquire(&c->lock, staging, c->u->id, c->a->lock_wait,
                             c->p);
    }
    if (APR_STATUS_IS_EBUSY(rv)) {
        return rs_error_make(c->p, RS_ERR_LOCKED, rv, NULL);
    }
    return APR_SUCCESS == rv ? NULL : io_error(c->p, rv, "locking", c->u->id);
}

/* Re-read the record under the lock and make it agree with the file. */
static rs_error_t *refresh(append_ctx *c)
{
    rs_upload_t *u;
    rs_error_t *err = lookup(c->e, c->u->id, c->p, &u);
    apr_status_t rv;

    if (err) {
        return err;
    }
    *c->u = *u;
    if (!append_mode(u)) {
        return NULL;                    /* complete or final: no data file */
    }
    rv = rs_data_open(&c->f, rs_data_path(c->p, u->dir, u->id), 1, c->p);
    if (APR_SUCCESS != rv) {
        return io_error(c->p, rv, "opening the data file", u->id);
    }
    rv = reconcile_locked(c->e, c->a, c->u, c->f, c->p);
    return APR_SUCCESS == rv ? NULL : io_error(c->p, rv, "reconciling", u->id);
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
    if ((err = check_size(c->a, len, c->p))) {
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
        && APR_SUCCESS != rs_hash_create(&c->hash, c->ap->checksum_alg, c->p)) {
        return rs_error_make(c->p, RS_ERR_CHECKSUM_ALGORITHM, 0, NULL);
    }
    if (c->verify) {
        c->u->pending_from = c->start;
        if (APR_SUCCESS != (rv = save_progress(c->e, c->u, c->p, NULL))) {
            return state_error(c->p, rv, "write", c->u->id);
        }
    }
    rv = rs_writer_create(&c->w, c->f, c->start, c->e->write_buffer, c->p);
    return APR_SUCCESS == rv ? NULL : io_error(c->p, rv, "writer", c->u->id);
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
                return io_error(c->p, rv, "writing", c->u->id);
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
        if (APR_SUCCESS != (rv = rs_writer_write(c->w, data, len))) {
            return io_error(c->p, rv, "writing", c->u->id);
        }
    }
}

static int digest_equal(const unsigned char *a, apr_size_t alen,
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
        return io_error(c->p, rv, "hashing", c->u->id);
    }
    if (!digest_equal(got, glen, expect, elen)) {
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
    save_progress(c->e, c->u, c->p, NULL);
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
        err = io_error(c->p, rv, "writing", c->u->id);
    }
    if (c->a->sync && APR_SUCCESS != (rv = rs_data_sync(c->f)) && !err) {
        err = io_error(c->p, rv, "fsync", c->u->id);
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
    if (APR_SUCCESS != (rv = save_progress(c->e, c->u, c->p, NULL)) && !err) {
        err = state_error(c->p, rv, "write", c->u->id);
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

/* Delete data, published file and record; leave a tombstone. The caller
 * holds the upload's lock. */
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
    rv = rs_store_delete(txn, ukey(p, u->id));
    if (APR_SUCCESS == rv) {
        rv = rs_store_put(txn, tkey(p, u->id), stamp, strlen(stamp));
    }
    rs_store_end(txn);
    rs_data_remove(rs_data_path(p, u->dir, u->id), p);
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
    apr_status_t rv;

    if (err) {
        return err;
    }
    rv = remove_upload(e, u, c.lock, p);
    rs_lock_release(c.lock);
    if (APR_SUCCESS != rv) {
        return state_error(p, rv, "delete", u->id);
    }
    rs_log_perror(RS_LOG_MARK, RS_LOG_DEBUG, 0, p, RS_LOGNO(01009)
                  "upload %s: terminated", u->id);
    return NULL;
}

typedef struct sweep_ctx {
    apr_pool_t *p;
    apr_array_header_t *keys;
} sweep_ctx;

static int collect_key(void *baton, const char *key)
{
    sweep_ctx *s = baton;

    APR_ARRAY_PUSH(s->keys, const char *) = apr_pstrdup(s->p, key);
    return 0;
}

/* One key of the sweep: an expired upload or an old tombstone. */
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
    if (lookup(e, key + 2, p, &u) || !expired(u, now)) {
        return 0;
    }
    return expire_now(e, u, p);
}

apr_status_t rs_engine_sweep(rs_engine_t *e, apr_time_t now, apr_pool_t *p,
                             int *removed)
{
    sweep_ctx s;
    rs_txn_t *txn;
    apr_pool_t *iter;
    apr_status_t rv;
    int i;

    *removed = 0;
    s.p = p;
    s.keys = apr_array_make(p, 64, sizeof(const char *));
    if (APR_SUCCESS != (rv = rs_store_begin(e->store, 0, p, &txn))) {
        return APR_STATUS_IS_ENOENT(rv) ? APR_SUCCESS : rv;
    }
    rv = rs_store_keys(txn, "u:", collect_key, &s);
    if (APR_SUCCESS == rv) {
        rv = rs_store_keys(txn, "t:", collect_key, &s);
    }
    rs_store_end(txn);
    apr_pool_create(&iter, p);
    for (i = 0; i < s.keys->nelts; i++) {
        *removed += sweep_one(e, APR_ARRAY_IDX(s.keys, i, const char *), now,
                              iter);
        apr_pool_clear(iter);
    }
    apr_pool_destroy(iter);
    return rv;
}
