/* Licensed under the Apache License, Version 2.0. */
/*
 * Composition: zero-copy completion of final concatenations and chunk
 * merges (see rs_engine.h, "Composition", and RS_UF_COMPOSED in
 * rs_upload.h).
 *
 *   compose      the upload becomes COMPLETE | RS_UF_COMPOSED in one store
 *                write; `path` keeps the name it will be published under
 *                (chosen with the area's deny list, which the sweep does
 *                not have). Its parts were synced before (a partial's last
 *                append, rs_eng_compose's callers for chunk files), so the
 *                acknowledged data is durable without a copy. The id is
 *                noted in the request pool's userdata (rs_engine_composed).
 *   parts        a final's parts are its partials' data files (lengths from
 *                their records), a chunk-mode upload's its chunk files of
 *                the complete run (lengths from the files).
 *   materialise  under the writer lock: copy the parts into "<id>.data"
 *                (rs_data_copy_range), sync, link it into the area
 *                (rs_data_publish, keeping "<id>.data"), then one
 *                transaction turns COMPOSED into PUBLISHED, and only then
 *                are "<id>.data" and chunk files removed. A kill after the
 *                link leaves "<id>.data" with a second link in the area:
 *                the next attempt records that one (no copy, no "name (1)"). A failure removes the copy
 *                (the upload stays composed; the sweep tries again); a
 *                kill before the transaction leaves the composed record
 *                and its parts, the data file is rewritten next time.
 *   partials     a partial records the finals using it (waiters); before
 *                it is removed, those still composed are materialised. A
 *                final leaves its partials' lists in the transaction that
 *                records it published (the lists hold only finals that
 *                still need the partial, so they stay short).
 */

#include <errno.h>
#include <apr_strings.h>
#include <apr_time.h>

#include "rs_engine.h"
#include "rs_engine_private.h"
#include "rs_hook.h"
#include "rs_store.h"
#include "rs_data.h"
#include "rs_lock.h"
#include "rs_log.h"
#include "rs_stats.h"

#define COMPOSED_NOTE "rs_engine_composed"

static int composed(const rs_upload_t *u)
{
    return RS_STATE_COMPLETE == u->state && (u->flags & RS_UF_COMPOSED);
}

const apr_array_header_t *rs_engine_composed(apr_pool_t *p)
{
    void *ids = NULL;

    apr_pool_userdata_get(&ids, COMPOSED_NOTE, p);
    return ids;
}

static void note_composed(apr_pool_t *p, const char *id)
{
    apr_array_header_t *ids = (apr_array_header_t *)rs_engine_composed(p);

    if (!ids) {
        ids = apr_array_make(p, 1, sizeof(const char *));
        apr_pool_userdata_setn(ids, COMPOSED_NOTE, NULL, p);
    }
    APR_ARRAY_PUSH(ids, const char *) = apr_pstrdup(p, id);
}

rs_error_t *rs_eng_compose(rs_engine_t *e, const rs_area_t *a,
                           rs_upload_t *u, apr_off_t total, apr_pool_t *p)
{
    apr_status_t rv;
    rs_error_t *err;
    apr_off_t length = u->length;

    u->length = total;                  /* what pre-finish reports */
    if ((err = rs_eng_finish_gate(e, u, p))) {
        if (!(u->flags & RS_UF_REJECTED)) {
            u->length = length;
        }
        return err;
    }
    u->state = RS_STATE_COMPLETE;
    u->flags = (u->flags | RS_UF_COMPOSED) & ~RS_UF_PUBLISHED;
    u->length = u->offset = total;
    u->path = rs_eng_publish_name(p, a, u);  /* after pre-finish: it may
                                                name the file */
    u->expires = 0;
    u->updated = apr_time_now();
    rv = rs_eng_save_event(e, u, (u->flags & RS_UF_PARTIAL) ? -1
                           : RS_HOOK_POST_FINISH, p, NULL);
    if (APR_SUCCESS != rv) {
        return rs_eng_state_error(p, rv, "write", u->id);
    }
    rs_stats_add(RS_STAT_COMPLETED, 1);
    rs_log_perror(RS_LOG_MARK, RS_LOG_INFO, 0, p, RS_LOGNO(01030)
                  "upload %s: complete, %" APR_OFF_T_FMT " bytes composed of "
                  "its parts", u->id, total);
    note_composed(p, u->id);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* parts                                                                     */

static rs_error_t *final_parts(rs_engine_t *e, const rs_upload_t *u,
                               apr_pool_t *p, apr_array_header_t *parts)
{
    rs_upload_t *pu;
    rs_part_t *part;
    rs_error_t *err;
    int i;

    for (i = 0; u->parts && i < u->parts->nelts; i++) {
        err = rs_eng_lookup(e, APR_ARRAY_IDX(u->parts, i, const char *), p,
                            &pu);
        if (err || RS_STATE_COMPLETE != pu->state) {
            return rs_error_make(p, RS_ERR_STATE, 0, "partial %s of %s is "
                                 "gone", APR_ARRAY_IDX(u->parts, i,
                                                       const char *), u->id);
        }
        part = apr_array_push(parts);
        part->path = rs_data_path(p, pu->dir, pu->id);
        part->len = pu->length;
    }
    return NULL;
}

static rs_error_t *chunk_parts(const rs_upload_t *u, apr_pool_t *p,
                               apr_array_header_t *parts)
{
    rs_part_t *part;
    apr_finfo_t fi;
    apr_status_t rv;
    int i, base, n = rs_eng_chunk_run(u, &base);

    for (i = base; i < base + n; i++) {
        part = apr_array_push(parts);
        part->path = rs_eng_chunk_path(p, u, i);
        rv = apr_stat(&fi, part->path, APR_FINFO_SIZE, p);
        if (APR_SUCCESS != rv) {
            return rs_error_make(p, RS_ERR_STORAGE, rv, "chunk %d of %s is "
                                 "gone", i, u->id);
        }
        part->len = fi.size;
    }
    return NULL;
}

rs_error_t *rs_engine_parts(rs_engine_t *e, const rs_upload_t *u,
                            apr_pool_t *p, apr_array_header_t **parts)
{
    apr_off_t total = 0;
    rs_error_t *err;
    int i;

    *parts = apr_array_make(p, 8, sizeof(rs_part_t));
    err = (u->flags & RS_UF_CHUNKED) ? chunk_parts(u, p, *parts)
                                     : final_parts(e, u, p, *parts);
    for (i = 0; !err && i < (*parts)->nelts; i++) {
        total += APR_ARRAY_IDX(*parts, i, rs_part_t).len;
    }
    if (!err && total != u->length) {
        err = rs_error_make(p, RS_ERR_STORAGE, 0, "the parts of %s hold %"
                            APR_OFF_T_FMT " bytes, not %" APR_OFF_T_FMT,
                            u->id, total, u->length);
    }
    return err;
}

/* ------------------------------------------------------------------------ */
/* materialise                                                               */

/* Copy the parts end to end into dst (truncated to their total), sync. */
static apr_status_t copy_parts(apr_file_t *dst,
                               const apr_array_header_t *parts, apr_pool_t *p)
{
    apr_file_t *src;
    apr_off_t at = 0;
    apr_status_t rv = APR_SUCCESS;
    int i;

    for (i = 0; APR_SUCCESS == rv && i < parts->nelts; i++) {
        const rs_part_t *part = &APR_ARRAY_IDX(parts, i, rs_part_t);

        rv = apr_file_open(&src, part->path, APR_FOPEN_READ | APR_FOPEN_BINARY,
                           0, p);
        if (APR_SUCCESS == rv) {
            rv = rs_data_copy_range(dst, at, src, 0, part->len);
            apr_file_close(src);
        }
        at += part->len;
    }
    if (APR_SUCCESS == rv) {
        rv = rs_data_truncate(dst, at);
    }
    return APR_SUCCESS == rv ? rs_data_sync(dst) : rv;
}

/* Take final f off the waiter list of each of its partials (in txn): it
 * no longer needs them, and the lists stay bounded. A failure only leaves
 * an entry that a full list drops (rs_engine.c, add_waiter); logged. */
static void leave_partials(rs_txn_t *txn, const rs_upload_t *f,
                           apr_pool_t *p)
{
    rs_upload_t *pu;
    apr_status_t rv;
    int i, j, n;

    for (i = 0; f->parts && i < f->parts->nelts; i++) {
        const char *pid = APR_ARRAY_IDX(f->parts, i, const char *);

        if (APR_SUCCESS != (rv = rs_eng_txn_load(txn, pid, p, &pu))
            || !pu->waiters) {
            continue;                   /* gone already (or unreadable) */
        }
        for (j = n = 0; j < pu->waiters->nelts; j++) {
            const char *w = APR_ARRAY_IDX(pu->waiters, j, const char *);

            if (strcmp(w, f->id)) {
                APR_ARRAY_IDX(pu->waiters, n++, const char *) = w;
            }
        }
        if (n == pu->waiters->nelts) {
            continue;                   /* not listed (any more) */
        }
        pu->waiters->nelts = n;
        if (APR_SUCCESS != (rv = rs_eng_txn_save(txn, pu, p))) {
            rs_log_perror(RS_LOG_MARK, RS_LOG_WARNING, rv, p, RS_LOGNO(09204)
                          "upload %s: taking published final %s off its "
                          "waiters failed", pid, f->id);
        }
    }
}

/* The area's other link to data file src, or NULL: a materialisation
 * killed after it linked the copy into the area and before it recorded
 * that left one (the data file is unlinked only once the record says
 * published). The copy was complete and synced before it was linked, so
 * that file is the one to record: no second copy, no second name. */
static const char *linked_in(apr_pool_t *p, const char *src, const char *dir)
{
    apr_finfo_t fs, fe, fc;
    apr_dir_t *d;
    const char *path = NULL, *cand;
    apr_status_t rv;

    if (APR_SUCCESS != apr_stat(&fs, src, APR_FINFO_NLINK | APR_FINFO_INODE
                                | APR_FINFO_DEV, p)
        || fs.nlink < 2 || APR_SUCCESS != apr_dir_open(&d, dir, p)) {
        return NULL;
    }
    while (!path) {
        rv = apr_dir_read(&fe, APR_FINFO_NAME | APR_FINFO_INODE, d);
        if (APR_SUCCESS != rv && APR_INCOMPLETE != rv) {
            break;
        }
        if ((fe.valid & APR_FINFO_INODE) && fe.inode != fs.inode) {
            continue;
        }
        cand = apr_pstrcat(p, dir, "/", fe.name, NULL);
        if (APR_SUCCESS == apr_stat(&fc, cand, APR_FINFO_TYPE | APR_FINFO_INODE
                                    | APR_FINFO_DEV | APR_FINFO_LINK, p)
            && APR_REG == fc.filetype && fc.inode == fs.inode
            && fc.device == fs.device) {
            path = cand;
        }
    }
    apr_dir_close(d);
    return path;
}

/* The data file holds the parts: publish it (linked: it is in the area
 * already) and record that, in one transaction with leaving the partials;
 * only then the data file's own name goes. When the record can not be
 * written the published name is removed again (the upload stays composed,
 * its parts its data): nothing else points to it. */
static apr_status_t publish(rs_engine_t *e, rs_upload_t *u,
                            const char *linked, apr_pool_t *p)
{
    rs_txn_t *txn;
    rs_upload_t *cur;
    const char *src = rs_data_path(p, u->dir, u->id), *path = linked;
    const char *name = u->path ? u->path : u->id;
    apr_status_t rv = linked ? APR_SUCCESS
                      : rs_data_publish(p, src, u->dir, name, 1, &path);

    if (EPERM == rv || EOPNOTSUPP == rv || EMLINK == rv) {
        /* no second link possible here: move it (as before the record) */
        rv = rs_data_publish(p, src, u->dir, name, 0, &path);
    }
    if (APR_SUCCESS != rv) {
        return rv;
    }
    if (APR_SUCCESS == (rv = rs_store_begin(e->store, 1, p, &txn))) {
        rv = rs_eng_txn_load(txn, u->id, p, &cur);
        if (APR_SUCCESS == rv) {
            cur->flags = (cur->flags & ~RS_UF_COMPOSED) | RS_UF_PUBLISHED
                         | RS_UF_UNINDEXED;
            cur->path = path;
            rv = rs_eng_txn_save(txn, cur, p);
        }
        if (APR_SUCCESS == rv && (cur->flags & RS_UF_FINAL)) {
            leave_partials(txn, cur, p);
        }
        rs_store_end(txn);
    }
    rs_data_remove(APR_SUCCESS == rv ? src : path, p);
    return rv;
}

/* Under the lock: materialise u (fresh, composed). */
static rs_error_t *materialise(rs_engine_t *e, rs_upload_t *u, apr_pool_t *p)
{
    apr_array_header_t *parts;
    apr_file_t *dst;
    apr_time_t start = apr_time_now();
    rs_error_t *err = rs_engine_parts(e, u, p, &parts);
    const char *linked;
    apr_status_t rv = APR_SUCCESS;

    if (err) {
        return err;
    }
    linked = linked_in(p, rs_data_path(p, u->dir, u->id), u->dir);
    if (!linked && APR_SUCCESS == (rv = rs_data_open(
                                       &dst, rs_data_path(p, u->dir, u->id),
                                       1, p))) {
        rv = copy_parts(dst, parts, p);
        apr_file_close(dst);
    }
    if (APR_SUCCESS == rv) {
        rv = publish(e, u, linked, p);
    }
    if (APR_SUCCESS != rv) {
        rs_data_remove(rs_data_path(p, u->dir, u->id), p);  /* no space kept */
        return rs_error_make(p, rs_error_from_io(rv, RS_ERR_STORAGE), rv,
                             "copying or publishing the parts failed");
    }
    if (u->flags & RS_UF_CHUNKED) {
        rs_eng_remove_chunks(u, p);
    }
    rs_log_perror(RS_LOG_MARK, RS_LOG_INFO, 0, p, RS_LOGNO(01031)
                  "upload %s: materialised %" APR_OFF_T_FMT " bytes from %d "
                  "parts in %" APR_TIME_T_FMT " ms", u->id, u->length,
                  parts->nelts, apr_time_as_msec(apr_time_now() - start));
    return NULL;
}

rs_error_t *rs_engine_materialise(rs_engine_t *e, const rs_area_t *a,
                                  const char *id, apr_pool_t *p)
{
    rs_upload_t *u;
    rs_hold_t *lock;
    rs_error_t *err = rs_eng_lookup(e, id, p, &u);

    if (err || !composed(u)) {
        return NULL;                    /* gone, or done already */
    }
    if ((err = rs_eng_hold(e, u->dir, id, a ? a->lock_wait : 0, p, &lock))) {
        return RS_ERR_NOT_FOUND == err->code ? NULL : err;
    }
    if (!(err = rs_eng_lookup(e, id, p, &u)) && composed(u)) {
        err = materialise(e, u, p);
    }
    rs_eng_unhold(lock);
    if (err && RS_ERR_LOCKED != err->code) {
        rs_log_perror(RS_LOG_MARK, RS_LOG_WARNING, err->cause, p,
                      RS_LOGNO(01032) "upload %s: materialising failed "
                      "(it stays composed): %s", id,
                      err->detail ? err->detail : err->name);
    }
    return err;
}

rs_error_t *rs_eng_release_partial(rs_engine_t *e, const rs_area_t *a,
                                   const rs_upload_t *u, apr_pool_t *p)
{
    rs_upload_t *f;
    rs_error_t *err = NULL;
    int i;

    for (i = 0; !err && u->waiters && i < u->waiters->nelts; i++) {
        const char *fid = APR_ARRAY_IDX(u->waiters, i, const char *);

        if (!rs_eng_lookup(e, fid, p, &f) && composed(f)) {
            err = rs_engine_materialise(e, a, fid, p);
        }
    }
    return err;
}
