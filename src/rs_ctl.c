/* Licensed to the Apache Software Foundation (ASF) under one or more
 * contributor license agreements; and licensed under the Apache License,
 * Version 2.0 (the "License"); you may not use this file except in
 * compliance with the License. See http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * rs_ctl.c - maintenance of the state database for resumablectl (see
 * rs_ctl.h). Keys and file names follow rs_engine: "u:<id>" records,
 * "t:<id>" tombstones (value: decimal apr_time_t of the removal),
 * "<dir>/.resumable/<id>.data" data files.
 */

#include <stdlib.h>
#include <string.h>
#include <apr_strings.h>
#include <apr_file_info.h>
#include <apr_file_io.h>
#include <apr_time.h>
#include <apr_hash.h>

#include "rs_ctl.h"
#include "rs_engine.h"
#include "rs_engine_private.h"
#include "rs_store.h"
#include "rs_data.h"
#include "rs_util.h"
#include "rs_log.h"

static int collect(void *baton, const char *key)
{
    apr_array_header_t *keys = baton;

    APR_ARRAY_PUSH(keys, const char *) = apr_pstrdup(keys->pool, key + 2);
    return 0;
}

static int cmp_item(const void *a, const void *b)
{
    const rs_ctl_item_t *x = *(rs_ctl_item_t *const *)a;
    const rs_ctl_item_t *y = *(rs_ctl_item_t *const *)b;

    return strcmp(x->id, y->id);
}

static apr_off_t file_size(const char *path, apr_pool_t *p)
{
    apr_finfo_t fi;

    if (APR_SUCCESS != apr_stat(&fi, path, APR_FINFO_SIZE, p)) {
        return -1;
    }
    return fi.size;
}

/* Cluster records: the bytes the segment files hold, contiguously from
 * 0 (a segment shorter than its committed length ends them); -1 when the
 * first one is missing. */
static apr_off_t segs_size(const rs_upload_t *u, apr_pool_t *p)
{
    apr_off_t fs = 0;
    int i;

    for (i = 0; i < u->nsegs; i++) {
        fs = file_size(rs_eng_seg_path(p, u, &u->segs[i]), p);
        if (fs < 0) {
            return i ? u->segs[i].start : (u->segs[i].len ? -1 : 0);
        }
        if (i + 1 < u->nsegs && fs < u->segs[i].len) {
            return u->segs[i].start + fs;
        }
    }
    return u->segs[u->nsegs - 1].start + fs;
}

static rs_ctl_item_t *item_read(rs_txn_t *txn, const char *id, apr_pool_t *p)
{
    rs_ctl_item_t *it = apr_pcalloc(p, sizeof(*it));
    char *val;
    apr_size_t len;

    it->id = id;
    it->data_size = -1;
    it->rv = rs_store_get(txn, apr_pstrcat(p, "u:", id, NULL), p, &val, &len);
    if (APR_SUCCESS == it->rv) {
        it->rv = rs_upload_decode(p, id, val, len, &it->u);
    }
    if (APR_SUCCESS != it->rv) {
        it->u = NULL;
    }
    else if (it->u->dir && it->u->nsegs > 0 && rs_upload_append_mode(it->u)) {
        it->data_size = segs_size(it->u, p);
    }
    else if (it->u->dir) {
        it->data_size = file_size(rs_data_path(p, it->u->dir, id), p);
    }
    return it;
}

rs_ctl_item_t *rs_ctl_find(const apr_array_header_t *items, const char *id)
{
    int i;

    for (i = 0; i < items->nelts; i++) {
        rs_ctl_item_t *it = APR_ARRAY_IDX(items, i, rs_ctl_item_t *);
        if (!strcmp(it->id, id)) {
            return it;
        }
    }
    return NULL;
}

/* A waiting final whose parts are all complete. */
static void mark_parts_ready(apr_array_header_t *items, rs_ctl_item_t *it)
{
    int i;

    if (!it->u || RS_STATE_ASSEMBLING != it->u->state || !it->u->parts) {
        return;
    }
    for (i = 0; i < it->u->parts->nelts; i++) {
        rs_ctl_item_t *part = rs_ctl_find(items, APR_ARRAY_IDX(it->u->parts, i,
                                                             const char *));
        if (!part || !part->u || RS_STATE_COMPLETE != part->u->state) {
            return;
        }
    }
    it->parts_ready = 1;
}

static int composed(const rs_upload_t *u)
{
    return u && RS_STATE_COMPLETE == u->state && (u->flags & RS_UF_COMPOSED);
}

/* Every part of composed u there with at least its bytes? */
static int parts_present(rs_store_t *s, const rs_upload_t *u, apr_pool_t *p)
{
    rs_engine_t e = { s, 0 };
    apr_array_header_t *parts;
    int i;

    if (rs_engine_parts(&e, u, p, &parts)) {
        return 0;
    }
    for (i = 0; i < parts->nelts; i++) {
        const rs_part_t *part = &APR_ARRAY_IDX(parts, i, rs_part_t);

        if (file_size(part->path, p) < part->len) {
            return 0;
        }
    }
    return 1;
}

/* A composed upload (served from its parts until materialised) whose
 * parts are gone, unless it was materialised meanwhile (httpd runs). */
static void mark_parts_missing(rs_store_t *s, rs_ctl_item_t *it,
                               apr_pool_t *p)
{
    rs_ctl_item_t *again;
    rs_txn_t *txn;

    if (!composed(it->u) || parts_present(s, it->u, p)
        || APR_SUCCESS != rs_store_begin(s, 0, p, &txn)) {
        return;
    }
    again = item_read(txn, it->id, p);
    rs_store_end(txn);
    it->parts_missing = composed(again->u);
}

apr_status_t rs_ctl_load(rs_store_t *s, apr_pool_t *p,
                         apr_array_header_t **items)
{
    apr_array_header_t *keys = apr_array_make(p, 64, sizeof(const char *));
    rs_txn_t *txn;
    apr_status_t rv = rs_store_begin(s, 0, p, &txn);
    int i;

    *items = apr_array_make(p, 64, sizeof(rs_ctl_item_t *));
    if (APR_SUCCESS != rv) {
        return rv;
    }
    rv = rs_store_keys(txn, "u:", collect, keys);
    for (i = 0; APR_SUCCESS == rv && i < keys->nelts; i++) {
        APR_ARRAY_PUSH(*items, rs_ctl_item_t *) =
            item_read(txn, APR_ARRAY_IDX(keys, i, const char *), p);
    }
    rs_store_end(txn);
    for (i = 0; i < (*items)->nelts; i++) {
        mark_parts_ready(*items, APR_ARRAY_IDX(*items, i, rs_ctl_item_t *));
        mark_parts_missing(s, APR_ARRAY_IDX(*items, i, rs_ctl_item_t *), p);
    }
    qsort((*items)->elts, (*items)->nelts, sizeof(rs_ctl_item_t *),
          cmp_item);
    return rv;
}

apr_status_t rs_ctl_load_one(rs_store_t *s, const char *id, apr_pool_t *p,
                             rs_ctl_item_t **item)
{
    rs_txn_t *txn;
    apr_status_t rv = rs_store_begin(s, 0, p, &txn);

    if (APR_SUCCESS != rv) {
        return rv;
    }
    *item = item_read(txn, id, p);
    rs_store_end(txn);
    mark_parts_missing(s, *item, p);
    return APR_STATUS_IS_ENOENT((*item)->rv) ? APR_ENOENT : APR_SUCCESS;
}

/* Still taking bytes: active, and not refused by a pre-finish hook (whose
 * data is removed on purpose and which only answers 403 until it expires). */
static int unfinished(const rs_upload_t *u)
{
    return RS_STATE_ACTIVE == u->state && !(u->flags & RS_UF_REJECTED);
}

static rs_ctl_problem_t problem(rs_ctl_item_t *it, rs_ctl_problem_t pr,
                                const char *what)
{
    it->problem = pr;
    it->what = what;
    return pr;
}

rs_ctl_problem_t rs_ctl_check(rs_ctl_item_t *it, apr_pool_t *p)
{
    const rs_upload_t *u = it->u;

    if (!u) {
        return problem(it, RS_CTL_CORRUPT, "record is corrupt");
    }
    if (unfinished(u) && !(u->flags & RS_UF_FINAL) && it->data_size < 0) {
        return problem(it, RS_CTL_NO_DATA, "data file is missing");
    }
    if (unfinished(u) && rs_upload_append_mode(u)
        && u->offset > it->data_size) {
        return problem(it, RS_CTL_AHEAD, apr_psprintf(p,
                       "offset %" APR_OFF_T_FMT " is ahead of the data file"
                       " (%" APR_OFF_T_FMT " bytes)", u->offset,
                       it->data_size));
    }
    if ((u->flags & RS_UF_PUBLISHED) && u->path
        && file_size(u->path, p) < 0) {
        return problem(it, RS_CTL_NO_FILE, "published file is missing");
    }
    if (it->parts_missing) {
        return problem(it, RS_CTL_NO_PARTS, "composed upload: a part of its "
                       "data is missing");
    }
    if (it->parts_ready) {
        return problem(it, RS_CTL_STUCK, "final is still assembling although "
                       "every part is complete (interrupted assembly)");
    }
    return problem(it, RS_CTL_OK, NULL);
}

/* Delete the record; with tomb, leave a tombstone so clients see 410. */
static apr_status_t remove_record(rs_txn_t *txn, const char *id, int tomb,
                                  apr_pool_t *p)
{
    /* ResumableMaxPending's count before the record (rs_engine_pending.c) */
    apr_status_t rv = rs_eng_pending_release(txn, id, p);
    const char *now;

    if (APR_SUCCESS == rv) {
        rv = rs_store_delete(txn, apr_pstrcat(p, "u:", id, NULL));
    }

    if (APR_SUCCESS == rv && tomb) {
        now = apr_psprintf(p, "%" APR_TIME_T_FMT, apr_time_now());
        rv = rs_store_put(txn, apr_pstrcat(p, "t:", id, NULL), now,
                          strlen(now));
    }
    return rv;
}

static apr_status_t lower_offset(rs_txn_t *txn, rs_ctl_item_t *it,
                                 apr_pool_t *p)
{
    char *buf;
    apr_size_t len;
    apr_status_t rv;

    rs_upload_t *u = it->u;
    int i;

    u->offset = it->data_size;
    u->pending_from = -1;
    for (i = 0; i < u->nsegs; i++) {        /* cluster: cut the segments */
        if (u->segs[i].start + u->segs[i].len >= u->offset) {
            u->segs[i].len = u->offset - u->segs[i].start;
            u->nsegs = i + 1;
            break;
        }
    }
    rv = rs_upload_encode(it->u, p, &buf, &len);
    if (APR_SUCCESS == rv) {
        rv = rs_store_put(txn, apr_pstrcat(p, "u:", it->id, NULL), buf, len);
    }
    return rv;
}

static apr_status_t repair_txn(rs_txn_t *txn, rs_ctl_item_t *it,
                               apr_pool_t *p, const char **action)
{
    switch (it->problem) {
    case RS_CTL_CORRUPT:
        *action = "corrupt record deleted (its data file, if any, can be "
                  "adopted with rebuild)";
        return remove_record(txn, it->id, 0, p);
    case RS_CTL_NO_DATA:
    case RS_CTL_NO_FILE:
    case RS_CTL_NO_PARTS:
        *action = "record removed, tombstone left (clients get 410)";
        return remove_record(txn, it->id, 1, p);
    case RS_CTL_AHEAD:
        *action = apr_psprintf(p, "offset lowered to %" APR_OFF_T_FMT,
                               it->data_size);
        return lower_offset(txn, it, p);
    case RS_CTL_STUCK:
        *action = "not repairable offline";
        return APR_ENOTIMPL;
    default:
        *action = "nothing to do";
        return APR_SUCCESS;
    }
}

apr_status_t rs_ctl_repair(rs_store_t *s, rs_ctl_item_t *it, apr_pool_t *p,
                           const char **action)
{
    rs_txn_t *txn;
    apr_status_t rv = rs_store_begin(s, 1, p, &txn);

    *action = "not repaired";
    if (APR_SUCCESS != rv) {
        return rv;
    }
    rv = repair_txn(txn, it, p, action);
    rs_store_end(txn);
    if (APR_SUCCESS == rv && RS_CTL_OK != it->problem) {
        rs_log_perror(RS_LOG_MARK, RS_LOG_NOTICE, 0, p, RS_LOGNO(08001)
                      "upload %s: %s: %s", it->id, it->what, *action);
    }
    return rv;
}

apr_status_t rs_ctl_gc(rs_store_t *s, apr_pool_t *p, apr_size_t *removed)
{
    rs_txn_t *txn;
    apr_status_t rv = rs_store_begin(s, 1, p, &txn);

    *removed = 0;
    if (APR_SUCCESS != rv) {
        return rv;
    }
    rv = rs_store_gc(txn, "", removed);
    rs_store_end(txn);
    return rv;
}

/* "<id>.data" -> id, when the name is exactly that with a valid id. */
static const char *data_id(apr_pool_t *p, const char *name)
{
    apr_size_t n = strlen(name);
    char *id;

    if (n != RS_ID_LEN + 5 || strcmp(name + RS_ID_LEN, ".data")) {
        return NULL;
    }
    id = apr_pstrndup(p, name, RS_ID_LEN);
    return rs_util_id_valid(id) ? id : NULL;
}

/* A record (also a corrupt one: repair first) or a tombstone exists. */
static int known(rs_txn_t *txn, const char *id, apr_pool_t *p)
{
    char *val;
    apr_size_t len;
    apr_status_t rv = rs_store_get(txn, apr_pstrcat(p, "u:", id, NULL), p,
                                   &val, &len);

    return !APR_STATUS_IS_ENOENT(rv)
           || APR_SUCCESS == rs_store_get(txn, apr_pstrcat(p, "t:", id, NULL),
                                          p, &val, &len);
}

static apr_status_t adopt_one(rs_txn_t *txn, const char *dir, const char *id,
                              const apr_finfo_t *fi, const char *owner,
                              apr_interval_time_t expire, apr_pool_t *p)
{
    rs_upload_t *u = rs_upload_make(p, id);
    char *buf;
    apr_size_t len;
    apr_status_t rv;

    u->proto = RS_PROTO_TUS;
    u->flags = RS_UF_DEFER_LENGTH;
    u->offset = fi->size;
    u->created = fi->mtime;
    u->updated = apr_time_now();
    u->expires = expire > 0 ? u->updated + expire : 0;
    u->owner = owner;
    u->dir = dir;
    rv = rs_upload_encode(u, p, &buf, &len);
    if (APR_SUCCESS == rv) {
        rv = rs_store_put(txn, apr_pstrcat(p, "u:", id, NULL), buf, len);
    }
    if (APR_SUCCESS == rv) {
        rs_log_perror(RS_LOG_MARK, RS_LOG_NOTICE, 0, p, RS_LOGNO(08002)
                      "upload %s: record rebuilt from its data file (%"
                      APR_OFF_T_FMT " bytes, length unknown)", id, fi->size);
    }
    return rv;
}

static apr_status_t adopt_dir(rs_txn_t *txn, const char *dir,
                              const char *staging, const char *owner,
                              apr_interval_time_t expire, apr_pool_t *p,
                              apr_array_header_t *adopted)
{
    apr_dir_t *d;
    apr_finfo_t fi;
    const char *id;
    apr_status_t rv = apr_dir_open(&d, staging, p);

    if (APR_SUCCESS != rv) {
        return rv;
    }
    while (APR_SUCCESS == rv
           && APR_SUCCESS == apr_dir_read(&fi, APR_FINFO_TYPE | APR_FINFO_NAME
                                          | APR_FINFO_SIZE | APR_FINFO_MTIME,
                                          d)) {
        if (APR_REG != fi.filetype || !(id = data_id(p, fi.name))
            || known(txn, id, p)) {
            continue;
        }
        rv = adopt_one(txn, dir, id, &fi, owner, expire, p);
        if (APR_SUCCESS == rv) {
            APR_ARRAY_PUSH(adopted, const char *) = id;
        }
    }
    apr_dir_close(d);
    return rv;
}

apr_status_t rs_ctl_adopt(rs_store_t *s, const char *dir, const char *owner,
                          apr_interval_time_t expire, apr_pool_t *p,
                          apr_array_header_t **adopted)
{
    const char *staging;
    rs_txn_t *txn;
    apr_status_t rv;

    *adopted = apr_array_make(p, 8, sizeof(const char *));
    rv = rs_data_staging(p, dir, 0, &staging);
    if (APR_SUCCESS != rv) {
        return rv;
    }
    rv = rs_store_begin(s, 1, p, &txn);
    if (APR_SUCCESS != rv) {
        return rv;
    }
    rv = adopt_dir(txn, dir, staging, owner ? owner : "", expire, p,
                   *adopted);
    rs_store_end(txn);
    return rv;
}

long rs_ctl_age(const rs_upload_t *u, apr_time_t now)
{
    return u->created ? (long)apr_time_sec(now - u->created) : 0;
}

/* ------------------------------------------------------------------------ */
/* ResumableMaxPending's counts                                              */

static int collect_full(void *baton, const char *key)
{
    apr_array_header_t *keys = baton;

    APR_ARRAY_PUSH(keys, const char *) = apr_pstrdup(keys->pool, key);
    return 0;
}

/* Is "q:<id>" (value val) an entry of a record that still counts: there,
 * decodable and flagged RS_UF_PENDING? */
static int pend_entry_live(rs_txn_t *txn, const char *id, apr_pool_t *p)
{
    rs_upload_t *u;
    char *val;
    apr_size_t len;

    return APR_SUCCESS == rs_store_get(txn, apr_pstrcat(p, "u:", id, NULL),
                                       p, &val, &len)
           && APR_SUCCESS == rs_upload_decode(p, id, val, len, &u)
           && (u->flags & RS_UF_PENDING);
}

static void pend_count(apr_hash_t *want, const char *key, apr_pool_t *p)
{
    apr_int64_t *n = apr_hash_get(want, key, APR_HASH_KEY_STRING);

    if (!n) {
        n = apr_pcalloc(p, sizeof(*n));
        apr_hash_set(want, apr_pstrdup(p, key), APR_HASH_KEY_STRING, n);
    }
    ++*n;
}

static void pend_problem(apr_array_header_t *out, const char *what)
{
    APR_ARRAY_PUSH(out, const char *) = what;
}

/* "q:" entries: the live ones are counted into want, the others are
 * problems (removed with repair). */
static apr_status_t pend_entries(rs_txn_t *txn, int repair, apr_hash_t *want,
                                 apr_array_header_t *out, apr_pool_t *p)
{
    apr_array_header_t *keys = apr_array_make(p, 16, sizeof(const char *));
    apr_status_t rv = rs_store_keys(txn, "q:", collect_full, keys);
    char *val, *sp;
    apr_size_t len;
    int i;

    for (i = 0; APR_SUCCESS == rv && i < keys->nelts; i++) {
        const char *key = APR_ARRAY_IDX(keys, i, const char *);

        if (APR_SUCCESS != rs_store_get(txn, key, p, &val, &len)) {
            continue;
        }
        sp = strchr(val, ' ');
        if (!sp || !pend_entry_live(txn, key + 2, p)) {
            pend_problem(out, apr_psprintf(p, "pending entry of upload %s: "
                                           "the upload is gone or holds "
                                           "data%s", key + 2, repair
                                           ? ": removed" : ""));
            rv = repair ? rs_store_delete(txn, key) : APR_SUCCESS;
            continue;
        }
        *sp++ = '\0';
        pend_count(want, val, p);
        pend_count(want, sp, p);
    }
    return rv;
}

/* Set counter key from stored count have to want (0: removed). */
static apr_status_t pend_fix(rs_txn_t *txn, const char *key,
                             apr_int64_t have, apr_int64_t want, int repair,
                             apr_array_header_t *out, apr_pool_t *p)
{
    const char *v = apr_psprintf(p, "%" APR_INT64_T_FMT, want);

    if (have == want) {
        return APR_SUCCESS;
    }
    pend_problem(out, apr_psprintf(p, "pending count %s is %" APR_INT64_T_FMT
                                   ", %" APR_INT64_T_FMT " uploads hold no "
                                   "data%s", key, have, want, repair
                                   ? ": corrected" : ""));
    if (!repair) {
        return APR_SUCCESS;
    }
    return want > 0 ? rs_store_put(txn, key, v, strlen(v))
                    : rs_store_delete(txn, key);
}

static apr_status_t pend_counters(rs_txn_t *txn, int repair, apr_hash_t *want,
                                  apr_array_header_t *out, apr_pool_t *p)
{
    apr_array_header_t *keys = apr_array_make(p, 16, sizeof(const char *));
    apr_status_t rv = rs_store_keys(txn, "n:", collect_full, keys);
    apr_hash_index_t *hi;
    char *val;
    apr_size_t len;
    int i;

    for (i = 0; APR_SUCCESS == rv && i < keys->nelts; i++) {
        const char *key = APR_ARRAY_IDX(keys, i, const char *);
        apr_int64_t *w = apr_hash_get(want, key, APR_HASH_KEY_STRING);
        apr_int64_t have = APR_SUCCESS == rs_store_get(txn, key, p, &val,
                                                       &len)
                           ? apr_atoi64(val) : 0;

        rv = pend_fix(txn, key, have, w ? *w : 0, repair, out, p);
        apr_hash_set(want, key, APR_HASH_KEY_STRING, NULL);
    }
    for (hi = apr_hash_first(p, want); APR_SUCCESS == rv && hi;
         hi = apr_hash_next(hi)) {
        const void *key;
        void *w;

        apr_hash_this(hi, &key, NULL, &w);
        rv = pend_fix(txn, key, 0, *(apr_int64_t *)w, repair, out, p);
    }
    return rv;
}

apr_status_t rs_ctl_pending(rs_store_t *s, int repair, apr_pool_t *p,
                            apr_array_header_t **problems)
{
    apr_hash_t *want = apr_hash_make(p);
    rs_txn_t *txn;
    apr_status_t rv = rs_store_begin(s, repair, p, &txn);

    *problems = apr_array_make(p, 4, sizeof(const char *));
    if (APR_SUCCESS != rv) {
        return APR_STATUS_IS_ENOENT(rv) ? APR_SUCCESS : rv;
    }
    rv = pend_entries(txn, repair, want, *problems, p);
    if (APR_SUCCESS == rv) {
        rv = pend_counters(txn, repair, want, *problems, p);
    }
    rs_store_end(txn);
    if (APR_SUCCESS == rv && repair && (*problems)->nelts) {
        rs_log_perror(RS_LOG_MARK, RS_LOG_NOTICE, 0, p, RS_LOGNO(09500)
                      "pending counts: %d problems corrected",
                      (*problems)->nelts);
    }
    return rv;
}
