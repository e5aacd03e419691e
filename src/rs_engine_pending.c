/* Licensed under the Apache License, Version 2.0. */
/*
 * ResumableMaxPending (issue 11): uploads created but holding no data yet
 * are counted per user (an anonymous client per address) and per area, in
 * the store transactions that create them, give them their first byte and
 * remove them: "n:<hash>" counters and a "q:<id>" entry per counted
 * upload (layout at the top of rs_engine.c). A creation reads two
 * counters; nothing scans the store. Split from rs_engine.c; shared
 * through rs_engine_private.h.
 *
 * Order of writes: the store has no atomic multi-key transaction (each
 * put is atomic, a process killed or a disk full between two of them
 * leaves the first). A count too high refuses a user's uploads for good,
 * one too low lets one more in and comes back to the truth at 0 (a count
 * never goes below 0). So every transaction writes in the order that
 * leaves a count low, never high, when it stops after any write:
 *   creation   the record (flagged RS_UF_PENDING) and its "q:" entry
 *              before the counters are raised (rs_eng_pending_count)
 *   release    the counters lowered before the "q:" entry goes, and the
 *              entry released before the record is deleted (remove_upload,
 *              resumablectl), never an entry naming no record
 * resumablectl verify/repair recounts (rs_ctl_pending).
 */

#include <apr_strings.h>

#include "rs_engine.h"
#include "rs_engine_private.h"
#include "rs_store.h"
#include "rs_log.h"

static const char *pending_user_key(apr_pool_t *p, const rs_area_t *a,
                                    const rs_upload_t *u)
{
    const char *pieces[4];

    pieces[0] = "n";
    pieces[1] = u->dir;
    pieces[2] = *u->owner ? "u" : "a";
    pieces[3] = *u->owner ? u->owner : (a->client ? a->client : "");
    return rs_eng_hash_key(p, "n:", pieces, 4);
}

static const char *pending_area_key(apr_pool_t *p, const char *dir)
{
    const char *pieces[2];

    pieces[0] = "n";
    pieces[1] = dir;
    return rs_eng_hash_key(p, "n:", pieces, 2);
}

static apr_int64_t count_get(rs_txn_t *txn, const char *key, apr_pool_t *p)
{
    char *val;
    apr_size_t len;
    apr_int64_t n;

    if (!key || APR_SUCCESS != rs_store_get(txn, key, p, &val, &len)) {
        return 0;
    }
    n = apr_atoi64(val);
    return n > 0 ? n : 0;
}

static apr_status_t count_add(rs_txn_t *txn, const char *key, int delta,
                              apr_pool_t *p)
{
    apr_int64_t n = count_get(txn, key, p) + delta;
    const char *v = apr_psprintf(p, "%" APR_INT64_T_FMT, n);

    if (!key) {
        return APR_EGENERAL;            /* no SHA-256 (rs_eng_hash_key) */
    }
    return n <= 0 ? rs_store_delete(txn, key)
                  : rs_store_put(txn, key, v, strlen(v));
}

/* Does creating u count against ResumableMaxPending? Not a final (it
 * holds no data of its own) nor an upload of length 0 (complete at
 * once). */
int rs_eng_counts_pending(const rs_area_t *a, const rs_upload_t *u)
{
    return (a->max_pending > 0 || a->max_pending_area > 0)
           && !(u->flags & RS_UF_FINAL) && 0 != u->length;
}

/* In txn: may new upload u count (RS_UF_PENDING set), or *err when its
 * user or the area is at the limit. Writes nothing: the record is stored
 * first, then rs_eng_pending_count raises the counters. */
apr_status_t rs_eng_pending_take(rs_txn_t *txn, const rs_area_t *a,
                                 rs_upload_t *u, apr_pool_t *p,
                                 rs_error_t **err)
{
    const char *uk = pending_user_key(p, a, u);
    const char *ak = pending_area_key(p, u->dir);
    apr_int64_t nu = count_get(txn, uk, p), na = count_get(txn, ak, p);

    if (!uk || !ak) {
        return APR_EGENERAL;            /* no SHA-256 (rs_eng_hash_key) */
    }
    if ((a->max_pending > 0 && nu >= a->max_pending)
        || (a->max_pending_area > 0 && na >= a->max_pending_area)) {
        rs_log_perror(RS_LOG_MARK, RS_LOG_INFO, 0, p, RS_LOGNO(09103)
                      "upload refused: %s '%s' has %" APR_INT64_T_FMT
                      " unfinished uploads without data (limit %"
                      APR_INT64_T_FMT "), the area %" APR_INT64_T_FMT
                      " (limit %" APR_INT64_T_FMT ")", *u->owner ? "user"
                      : "client", *u->owner ? u->owner : (a->client
                      ? a->client : "-"), nu, a->max_pending, na,
                      a->max_pending_area);
        *err = rs_error_make(p, RS_ERR_TOO_MANY_PENDING, 0, "too many "
                             "unfinished uploads that hold no data yet (%s "
                             "limit %" APR_INT64_T_FMT "): send data to them "
                             "or delete them first", (a->max_pending > 0
                             && nu >= a->max_pending) ? "per user" : "area",
                             (a->max_pending > 0 && nu >= a->max_pending)
                             ? a->max_pending : a->max_pending_area);
        return APR_SUCCESS;
    }
    u->flags |= RS_UF_PENDING;
    return APR_SUCCESS;
}

apr_status_t rs_eng_pending_count(rs_txn_t *txn, const rs_area_t *a,
                                  const rs_upload_t *u, apr_pool_t *p)
{
    const char *uk = pending_user_key(p, a, u);
    const char *ak = pending_area_key(p, u->dir);
    const char *q = apr_pstrcat(p, uk, " ", ak, NULL);
    apr_status_t rv;

    if (!(u->flags & RS_UF_PENDING)) {
        return APR_SUCCESS;
    }
    rv = rs_store_put(txn, apr_pstrcat(p, "q:", u->id, NULL), q, strlen(q));
    if (APR_SUCCESS == rv) {
        rv = count_add(txn, uk, 1, p);
    }
    if (APR_SUCCESS == rv) {
        rv = count_add(txn, ak, 1, p);
    }
    return rv;
}

apr_status_t rs_eng_pending_release(rs_txn_t *txn, const char *id,
                                    apr_pool_t *p)
{
    const char *q = apr_pstrcat(p, "q:", id, NULL);
    char *val, *sp;
    apr_size_t len;
    apr_status_t rv = rs_store_get(txn, q, p, &val, &len);

    if (APR_STATUS_IS_ENOENT(rv)) {
        return APR_SUCCESS;
    }
    if (APR_SUCCESS != rv) {
        return rv;
    }
    if ((sp = strchr(val, ' '))) {
        *sp++ = '\0';
        rv = count_add(txn, sp, -1, p);
    }
    if (APR_SUCCESS == rv) {
        rv = count_add(txn, val, -1, p);
    }
    return APR_SUCCESS == rv ? rs_store_delete(txn, q) : rv;
}

/* In txn, for stored record cur: once it holds data, it is no longer
 * pending. */
apr_status_t rs_eng_pending_update(rs_txn_t *txn, rs_upload_t *cur,
                                   int has_data, apr_pool_t *p)
{
    if (!(cur->flags & RS_UF_PENDING) || !has_data) {
        return APR_SUCCESS;
    }
    cur->flags &= ~RS_UF_PENDING;
    return rs_eng_pending_release(txn, cur->id, p);
}

apr_status_t rs_eng_pending_data(rs_txn_t *txn, rs_upload_t *cur,
                                 apr_pool_t *p)
{
    return rs_eng_pending_update(txn, cur, 1, p);
}
