/* Licensed under the Apache License, Version 2.0. */
/*
 * Chunk mode of the upload engine (slice, md5, flow): see the design notes
 * at the top of rs_engine.c ("Chunk mode") and rs_engine.h. Split from
 * rs_engine.c; shares its record and lock helpers through
 * rs_engine_private.h.
 */

#define _GNU_SOURCE 1
#define OPENSSL_SUPPRESS_DEPRECATED 1   /* MD5_CTX: its state is saved */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
#include <apr_strings.h>
#include <apr_time.h>
#include <openssl/md5.h>

#include "rs_engine.h"
#include "rs_engine_private.h"
#include "rs_store.h"
#include "rs_data.h"
#include "rs_lock.h"
#include "rs_hash.h"
#include "rs_util.h"
#include "rs_log.h"
#include "rs_stats.h"

/* ------------------------------------------------------------------------ */
/* chunk mode                                                                */

const char *rs_eng_chunk_path(apr_pool_t *p, const rs_upload_t *u, int index)
{
    return apr_psprintf(p, "%s/" RS_STAGING_DIR "/%s.c%d", u->dir, u->id,
                        index);
}

/* "<id>.md5s": the md5 front end's merge state (see md5s_load) */
static const char *md5s_path(apr_pool_t *p, const rs_upload_t *u)
{
    return apr_psprintf(p, "%s/" RS_STAGING_DIR "/%s.md5s", u->dir, u->id);
}

static int declared(const rs_upload_t *u)
{
    return !(u->flags & RS_UF_DEFER_LENGTH) && u->chunk_count > 1;
}

/* Size and SHA-256 of a file; 0 when it can not be read. */
static int file_digest(const char *path, apr_pool_t *p, apr_off_t *size,
                       unsigned char *d, apr_size_t *n)
{
    apr_file_t *f;
    apr_finfo_t fi;
    int ok = 0;

    if (APR_SUCCESS != apr_file_open(&f, path, APR_FOPEN_READ
                                     | APR_FOPEN_BINARY, 0, p)) {
        return 0;
    }
    if (APR_SUCCESS == apr_file_info_get(&fi, APR_FINFO_SIZE, f)) {
        *size = fi.size;
        ok = APR_SUCCESS == rs_hash_file_range("sha256", f, 0, fi.size, d, n,
                                               p);
    }
    apr_file_close(f);
    return ok;
}

static int same_bytes(const char *a, const char *b, apr_pool_t *p)
{
    unsigned char da[RS_HASH_MAX], db[RS_HASH_MAX];
    apr_size_t na = 0, nb = 0;
    apr_off_t sa = -1, sb = -2;

    return file_digest(a, p, &sa, da, &na) && file_digest(b, p, &sb, db, &nb)
           && sa == sb && rs_eng_digest_equal(da, na, db, nb);
}

/* Give the spooled bytes their chunk name; never replaces a stored chunk
 * (link, or renameat2 NOREPLACE where there are no hard links), which
 * must then hold the same bytes. *placed: a new chunk file was made. */
static rs_error_t *place_chunk(const rs_upload_t *u, const rs_chunk_t *c,
                              apr_pool_t *p, int *placed)
{
    const char *path = rs_eng_chunk_path(p, u, c->index);
    int err = 0;

    *placed = 0;
    if (0 != link(c->spool, path)) {
        err = errno;
        if ((EPERM == err || EOPNOTSUPP == err || EMLINK == err)
            && 0 == renameat2(AT_FDCWD, c->spool, AT_FDCWD, path,
                              RENAME_NOREPLACE)) {
            err = 0;
        }
    }
    if (0 == err) {
        *placed = 1;
    }
    else if (EEXIST != err) {
        return rs_eng_io_error(p, APR_FROM_OS_ERROR(err), "storing a chunk", u->id);
    }
    else if (!same_bytes(path, c->spool, p)) {
        return rs_error_make(p, RS_ERR_CHUNK_CONFLICT, 0, "chunk %d differs "
                             "from the one stored", c->index);
    }
    return NULL;
}

/* Is c acceptable for u? Declares the chunk count when c brings one. */
static rs_error_t *check_chunk(rs_upload_t *u, const rs_chunk_t *c,
                               apr_pool_t *p)
{
    int t;

    if (c->index < 0 || c->index >= RS_UPLOAD_MAX_CHUNKS - 1
        || c->total < 0 || c->total >= RS_UPLOAD_MAX_CHUNKS - 1) {
        return rs_error_make(p, RS_ERR_BAD_REQUEST, 0, "chunk index or count "
                             "out of range (at most %d chunks)",
                             RS_UPLOAD_MAX_CHUNKS - 2);
    }
    if (c->total > 0 && !declared(u)) {
        if (u->chunk_count > c->total + 1) {
            return rs_error_make(p, RS_ERR_INCONSISTENT_LENGTH, 0, "more "
                                 "chunks stored than the count %d", c->total);
        }
        return NULL;                    /* declared by mark_chunk */
    }
    t = u->chunk_count - 1;
    if (!declared(u)) {
        return NULL;
    }
    if (c->total > 0 && c->total != t) {
        return rs_error_make(p, RS_ERR_INCONSISTENT_LENGTH, 0, "chunk count "
                             "%d, but %d was declared", c->total, t);
    }
    if (c->index > t) {
        return rs_error_make(p, RS_ERR_BAD_REQUEST, 0, "chunk index %d out "
                             "of range (count %d)", c->index, t);
    }
    if ((0 == c->index && rs_upload_chunk_has(u, t))
        || (t == c->index && rs_upload_chunk_has(u, 0))) {
        return rs_error_make(p, RS_ERR_BAD_REQUEST, 0, "chunk numbering mixes "
                             "0-based and 1-based indexes");
    }
    return NULL;
}

/* Resize u's map to count entries (count >= chunk_count). */
static void grow_map(rs_upload_t *u, int count, apr_pool_t *p)
{
    unsigned char *map = apr_pcalloc(p, (count + 7) / 8);

    if (u->chunk_map && u->chunk_count > 0) {
        memcpy(map, u->chunk_map, (u->chunk_count + 7) / 8);
    }
    u->chunk_map = map;
    u->chunk_count = count;
}

/* First index and count of a complete run of chunks, or 0. With a declared
 * count T: 0..T-1 or 1..T; else 0 (or 1) up to the highest present. */
int rs_eng_chunk_run(const rs_upload_t *u, int *base)
{
    int i, last = -1, n;

    *base = rs_upload_chunk_has(u, 0) ? 0 : 1;
    if (declared(u)) {
        last = *base + u->chunk_count - 2;
    }
    for (i = u->chunk_count - 1; last < 0 && i >= 0; i--) {
        last = rs_upload_chunk_has(u, i) ? i : -1;
    }
    n = last - *base + 1;
    for (i = *base; n > 0 && i <= last; i++) {
        if (!rs_upload_chunk_has(u, i)) {
            return 0;
        }
    }
    return n > 0 ? n : 0;
}

/* ResumableMaxSize bounds what is staged, at every chunk (issue 11), not
 * only the merge: chunk c of size bytes, not stored yet in u, must keep
 * the sum of u's staged chunks (u->offset in chunk mode) within the
 * maximum, and its place must fit a file of at most the maximum. Every
 * chunk but the last has the file's chunk size C; the last has at most C
 * (ceil geometry: seeds, md5) or less than 2C (Flow.js' floor geometry,
 * which always declares its count). So a chunk of size s at index i (0-
 * or 1-based) ends a file of at least i * s bytes, unless it may be the
 * last of a declared count T; and a chunk that is not is C: the file has
 * more than (T - 1) * s bytes. */
static rs_error_t *check_staged(const rs_area_t *a, const rs_upload_t *u,
                                const rs_chunk_t *c, apr_off_t size,
                                apr_pool_t *p)
{
    apr_off_t max = a->max_size;
    int t = declared(u) ? u->chunk_count - 1 : c->total;
    int maybe_last = t > 0 && c->index >= t - 1;

    if (max <= 0 || rs_upload_chunk_has(u, c->index)) {
        return NULL;
    }
    if (size > max - u->offset) {
        return rs_error_make(p, RS_ERR_MAX_SIZE, 0, "the staged chunks would "
                             "exceed the maximum of %" APR_OFF_T_FMT " bytes",
                             max);
    }
    if (size > 0 && ((!maybe_last && c->index > max / size)
                     || (t > 1 && c->index < t - 1
                         && (apr_off_t)(t - 1) > max / size))) {
        return rs_error_make(p, RS_ERR_MAX_SIZE, 0, "chunk %d of %"
                             APR_OFF_T_FMT " bytes: the file would exceed the "
                             "maximum of %" APR_OFF_T_FMT " bytes", c->index,
                             size, max);
    }
    return NULL;
}

/* Record chunk c of size bytes in the stored record (one transaction, so
 * concurrent chunks of one upload never lose each other's bits), and add
 * its size to the staged bytes when its index is new. */
static rs_error_t *mark_chunk(rs_engine_t *e, const rs_area_t *a,
                              rs_upload_t *u, const rs_chunk_t *c,
                              apr_off_t size, apr_pool_t *p)
{
    rs_txn_t *txn;
    rs_upload_t *cur = NULL;
    rs_error_t *err = NULL;
    apr_status_t rv = rs_store_begin(e->store, 1, p, &txn);

    if (APR_SUCCESS != rv) {
        return rs_eng_state_error(p, rv, "write", u->id);
    }
    rv = rs_eng_txn_load(txn, u->id, p, &cur);
    if (APR_SUCCESS == rv && RS_STATE_ACTIVE == cur->state
        && !(err = check_chunk(cur, c, p))
        && !(err = check_staged(a, cur, c, size, p))) {
        if (!rs_upload_chunk_has(cur, c->index)) {
            cur->offset += size;
        }
        if (c->total > 0 && !declared(cur)) {
            grow_map(cur, c->total + 1, p);
            cur->flags &= ~RS_UF_DEFER_LENGTH;
        }
        else if (c->index >= cur->chunk_count) {
            grow_map(cur, c->index + 1, p);
        }
        rs_upload_chunk_set(cur, c->index);
        cur->updated = apr_time_now();
        cur->expires = rs_engine_expires(a, cur);
        rv = rs_eng_pending_data(txn, cur, p);
        if (APR_SUCCESS == rv) {
            rv = rs_eng_txn_save(txn, cur, p);
        }
    }
    rs_store_end(txn);
    if (APR_SUCCESS != rv) {
        return rs_eng_state_error(p, rv, "write", u->id);
    }
    *u = *cur;
    return err;
}

/* Chunk i of size bytes (the last of the run when `last`) fits chunk_size
 * (0: any) and the area's maximum when it ends the file at at + size? */
static rs_error_t *check_size(const rs_area_t *a, int i, int last,
                              apr_off_t size, apr_off_t chunk_size,
                              apr_off_t at, apr_pool_t *p)
{
    if (chunk_size > 0
        && (size > chunk_size || (!last && size != chunk_size))) {
        return rs_error_make(p, RS_ERR_INCONSISTENT_LENGTH, 0, "chunk %d has %"
                             APR_OFF_T_FMT " bytes, the chunk size is %"
                             APR_OFF_T_FMT, i, size, chunk_size);
    }
    return rs_eng_check_size(a, at + size, p);
}

/* Chunk i (the last of the run when `last`), which should start at *at:
 * check its size, then copy it to dst at *at, or without dst (the chunk
 * files will be the composed upload's data) make it durable with sync on.
 * *at advances by its size. */
static rs_error_t *take_chunk(const rs_area_t *a, rs_upload_t *u,
                              apr_file_t *dst, int i, int last,
                              apr_off_t chunk_size, apr_off_t *at,
                              apr_pool_t *p)
{
    apr_file_t *src;
    apr_finfo_t fi;
    rs_error_t *err = NULL;
    apr_status_t rv = apr_file_open(&src, rs_eng_chunk_path(p, u, i),
                                    APR_FOPEN_READ | APR_FOPEN_BINARY, 0, p);

    if (APR_SUCCESS != rv) {
        return rs_eng_io_error(p, rv, "opening a chunk", u->id);
    }
    rv = apr_file_info_get(&fi, APR_FINFO_SIZE, src);
    if (APR_SUCCESS == rv
        && !(err = check_size(a, i, last, fi.size, chunk_size, *at, p))) {
        rv = dst ? rs_data_copy_range(dst, *at, src, 0, fi.size)
                 : a->sync ? rs_data_sync(src) : APR_SUCCESS;
        *at += fi.size;
    }
    apr_file_close(src);
    if (!err && APR_SUCCESS != rv) {
        err = rs_eng_io_error(p, rv, dst ? "assembling chunks"
                              : "syncing a chunk", u->id);
    }
    return err;
}

/* Complete u composed of chunks base..base+n-1 (rs_engine_compose.c). */
static rs_error_t *compose_chunks(rs_engine_t *e, const rs_area_t *a,
                                  rs_upload_t *u, int base, int n,
                                  apr_off_t chunk_size, apr_pool_t *p)
{
    apr_off_t at = 0;
    rs_error_t *err = NULL;
    int i;

    for (i = base; !err && i < base + n; i++) {
        err = take_chunk(a, u, NULL, i, i == base + n - 1, chunk_size, &at,
                         p);
    }
    return err ? err : rs_eng_compose(e, a, u, at, p);
}

void rs_eng_remove_chunks(const rs_upload_t *u, apr_pool_t *p)
{
    int i;

    for (i = 0; i < u->chunk_count; i++) {
        rs_data_remove(rs_eng_chunk_path(p, u, i), p);
    }
    rs_data_remove(md5s_path(p, u), p);
    rs_data_remove(apr_pstrcat(p, md5s_path(p, u), ".new", NULL), p);
}

/* ---- chunk files removed after the answer ---------------------------------
 *
 * Unlinking a completed md5 upload's chunk files frees all their pages
 * (about 0.3 ms per 5 MiB chunk on tmpfs: 35 ms for 100), which the last
 * chunk's answer does not need: the file is published and the record says
 * complete before. So the record is completed with RS_UF_CHUNKS_LEFT (in
 * the same transaction), and the files go in a cleanup of the request's
 * pool, which httpd runs once the response has been written. A kill in
 * between leaves the files and the bit: the expiry sweep (sweep_wants)
 * removes the files and clears the bit (rs_eng_chunks_sweep). */

typedef struct {
    const char *dir, *id;
    int count;
} chunks_left_t;

/* Unlink "<dir>/.resumable/<id><suffix>[<i>]" (i < 0: no number) without
 * allocating: this runs while the pool goes. Absent is fine; another
 * failure leaves the file to the sweep. */
static void staged_unlink(const chunks_left_t *c, const char *suffix, int i)
{
    char path[4096], num[16] = "";
    apr_size_t n;

    if (i >= 0) {
        apr_snprintf(num, sizeof(num), "%d", i);
    }
    n = apr_snprintf(path, sizeof(path), "%s/" RS_STAGING_DIR "/%s%s%s",
                     c->dir, c->id, suffix, num);
    if (n < sizeof(path) - 1) {         /* not cut short */
        unlink(path);
    }
}

static apr_status_t chunks_left_cleanup(void *data)
{
    const chunks_left_t *c = data;
    int i;

    for (i = 0; i < c->count; i++) {
        staged_unlink(c, ".c", i);
    }
    staged_unlink(c, ".md5s", -1);
    staged_unlink(c, ".md5s.new", -1);
    return APR_SUCCESS;
}

/* Remove u's chunk files once the answer is out (see above). */
static void chunks_after_answer(const rs_upload_t *u, apr_pool_t *p)
{
    chunks_left_t *c = apr_palloc(p, sizeof(*c));

    c->dir = u->dir;
    c->id = u->id;
    c->count = u->chunk_count;
    apr_pool_cleanup_register(p, c, chunks_left_cleanup,
                              apr_pool_cleanup_null);
}

void rs_eng_chunks_sweep(rs_engine_t *e, rs_upload_t *u, apr_pool_t *p)
{
    rs_eng_remove_chunks(u, p);
    u->flags &= ~RS_UF_CHUNKS_LEFT;
    rs_eng_save_progress(e, u, p, NULL);
}

/* ---- md5 front end: incremental merge and whole-file MD5 ------------------
 *
 * An md5 upload's chunks are merged into "<id>.data" and fed to the
 * whole-file MD5 as the contiguous run from the first chunk grows, by the
 * chunk request that extends it (under the writer lock, taken without
 * waiting: a busy lock means another request is merging), so the last
 * chunk only merges itself and compares the digest: no re-read of the
 * file. Progress is kept in "<id>.md5s" (chunks and bytes merged, the MD5
 * state, a check value), written after the merged bytes (fdatasynced with
 * sync on), so after kill -9 it never claims bytes the data file lacks; a
 * missing or bad one only means starting over from the first chunk, as
 * the full merge always did. The data file may hold bytes past the state
 * (a merge killed midway): they are rewritten, and the file is truncated
 * to the merged length at completion.
 */

typedef struct {
    char magic[8];
    apr_int32_t base;           /* numbering of the run: 0 or 1 */
    apr_int32_t next;           /* chunks base..next-1 merged */
    apr_int64_t bytes;          /* their bytes, [0, bytes) of the data */
    MD5_CTX ctx;
    apr_uint64_t check;         /* FNV-1a of everything before it */
} md5_state_t;

#define MD5S_MAGIC "RSMD5S1"
#define MD5S_BLOCK (1024 * 1024)

static apr_uint64_t md5s_check(const md5_state_t *st)
{
    const unsigned char *b = (const unsigned char *)st;
    apr_uint64_t h = APR_UINT64_C(14695981039346656037);
    apr_size_t i;

    for (i = 0; i < offsetof(md5_state_t, check); i++) {
        h = (h ^ b[i]) * APR_UINT64_C(1099511628211);
    }
    return h;
}

/* The saved state, if sound and no longer than the data file; else a new
 * one at the first chunk. */
static void md5s_load(const rs_upload_t *u, int base, md5_state_t *st,
                      apr_pool_t *p)
{
    apr_file_t *f;
    apr_finfo_t fi;
    apr_size_t n = sizeof(*st);
    int ok = 0;

    if (APR_SUCCESS == apr_file_open(&f, md5s_path(p, u), APR_FOPEN_READ
                                     | APR_FOPEN_BINARY, 0, p)) {
        ok = APR_SUCCESS == apr_file_read_full(f, st, n, &n)
             && n == sizeof(*st) && !memcmp(st->magic, MD5S_MAGIC, 8)
             && st->check == md5s_check(st) && st->base == base
             && st->next >= base && st->bytes >= 0
             && APR_SUCCESS == apr_stat(&fi, rs_data_path(p, u->dir, u->id),
                                        APR_FINFO_SIZE, p)
             && fi.size >= st->bytes;
        apr_file_close(f);
    }
    if (!ok) {
        memset(st, 0, sizeof(*st));
        memcpy(st->magic, MD5S_MAGIC, 8);
        st->base = st->next = base;
        MD5_Init(&st->ctx);
    }
}

/* Write the state beside the data (a new file renamed over the old). */
static apr_status_t md5s_save(const rs_upload_t *u, md5_state_t *st,
                              apr_pool_t *p)
{
    const char *path = md5s_path(p, u);
    const char *tmp = apr_pstrcat(p, path, ".new", NULL);
    apr_file_t *f;
    apr_size_t n = sizeof(*st);
    apr_status_t rv;

    st->check = md5s_check(st);
    rv = apr_file_open(&f, tmp, APR_FOPEN_WRITE | APR_FOPEN_CREATE
                       | APR_FOPEN_TRUNCATE | APR_FOPEN_BINARY,
                       APR_FPROT_UREAD | APR_FPROT_UWRITE, p);
    if (APR_SUCCESS == rv) {
        rv = apr_file_write_full(f, st, n, &n);
        apr_file_close(f);
    }
    return APR_SUCCESS == rv ? apr_file_rename(tmp, path, p) : rv;
}

/* Append chunk i to dst at st->bytes and to the MD5. */
static rs_error_t *md5s_take(const rs_area_t *a, const rs_upload_t *u,
                             apr_file_t *dst, int i, md5_state_t *st,
                             char *buf, apr_pool_t *p)
{
    apr_file_t *src;
    apr_finfo_t fi;
    apr_off_t at = st->bytes, left;
    rs_error_t *err = NULL;
    apr_status_t rv = apr_file_open(&src, rs_eng_chunk_path(p, u, i),
                                    APR_FOPEN_READ | APR_FOPEN_BINARY, 0, p);

    if (APR_SUCCESS != rv) {
        return rs_eng_io_error(p, rv, "opening a chunk", u->id);
    }
    rv = apr_file_info_get(&fi, APR_FINFO_SIZE, src);
    if (APR_SUCCESS == rv
        && !(err = check_size(a, i, 1, fi.size, 0, at, p))) {
        for (left = fi.size; APR_SUCCESS == rv && left > 0; ) {
            apr_size_t n = left < MD5S_BLOCK ? (apr_size_t)left : MD5S_BLOCK;
            apr_size_t w;

            rv = apr_file_read_full(src, buf, n, &n);
            if (APR_SUCCESS == rv) {
                MD5_Update(&st->ctx, buf, n);
                rv = apr_file_seek(dst, APR_SET, &at);
            }
            if (APR_SUCCESS == rv) {
                rv = apr_file_write_full(dst, buf, n, &w);
            }
            if (APR_SUCCESS == rv && a->sync) {
                rs_data_writeback(dst, at, n);  /* the sync will wait */
            }
            at += n;
            left -= n;
        }
    }
    apr_file_close(src);
    if (!err && APR_SUCCESS != rv) {
        err = rs_eng_io_error(p, rv, "merging a chunk", u->id);
    }
    if (!err) {
        st->bytes = at;
        st->next = i + 1;
    }
    return err;
}

/* Merge the present chunks from st->next on (at most up to last) into the
 * data file, then (unless `finishing`) sync it and save the state. The
 * completion (md5s_finish) sizes and syncs the file itself, once, and
 * needs no state for chunks it completes (issue 15: the last chunk paid a
 * second fdatasync, a cache flush on disk, that a middle chunk does not;
 * should it fail or be killed, the state saved before still holds: its
 * bytes are a prefix of the file). */
static rs_error_t *md5s_advance(const rs_area_t *a, const rs_upload_t *u,
                                md5_state_t *st, int last, int finishing,
                                apr_pool_t *p)
{
    apr_file_t *dst;
    rs_error_t *err = NULL;
    int start = st->next;
    char *buf;
    apr_status_t rv;

    if (st->next > last || !rs_upload_chunk_has(u, st->next)) {
        return NULL;
    }
    rv = rs_data_open(&dst, rs_data_path(p, u->dir, u->id), 1, p);
    if (APR_SUCCESS != rv) {
        return rs_eng_io_error(p, rv, "opening the data file", u->id);
    }
    buf = apr_palloc(p, MD5S_BLOCK);
    while (!err && st->next <= last && rs_upload_chunk_has(u, st->next)) {
        err = md5s_take(a, u, dst, st->next, st, buf, p);
    }
    rv = !err && a->sync && !finishing && st->next > start
         ? rs_data_sync(dst) : APR_SUCCESS;
    apr_file_close(dst);
    if (!err && APR_SUCCESS != rv) {
        err = rs_eng_io_error(p, rv, "syncing the data file", u->id);
    }
    if (!err && !finishing && st->next > start
        && APR_SUCCESS != (rv = md5s_save(u, st, p))) {
        err = rs_eng_io_error(p, rv, "saving the MD5 state", u->id);
    }
    return err;
}

/* A chunk of an md5 upload was stored: merge the run it may extend, if no
 * other request holds the upload (best effort: completion catches up). */
static void md5s_grow(rs_engine_t *e, const rs_area_t *a, rs_upload_t *u,
                      apr_pool_t *p)
{
    rs_hold_t *lock;
    rs_upload_t *fresh;
    md5_state_t st;
    rs_error_t *err;

    if (rs_eng_hold(e, u->dir, u->id, 0, p, &lock)) {
        return;
    }
    /* from chunk 0 only: the seed numbers from 0, and until chunk 0 is
     * there a 1-based run can not be told from a gap */
    if (!rs_eng_lookup(e, u->id, p, &fresh)
        && RS_STATE_ACTIVE == fresh->state
        && rs_upload_chunk_has(fresh, 0)) {
        md5s_load(fresh, 0, &st, p);
        err = md5s_advance(a, fresh, &st, fresh->chunk_count - 1, 0, p);
        if (err) {
            rs_log_perror(RS_LOG_MARK, RS_LOG_DEBUG, err->cause, p,
                          RS_LOGNO(09900) "upload %s: incremental MD5 "
                          "stopped (%s); completion merges the rest",
                          u->id, err->detail ? err->detail : "");
        }
    }
    rs_eng_unhold(lock);
}

/* Under the writer lock, with md5hex: merge what is left of chunks
 * base..base+n-1, compare the whole-file MD5, size the data file. */
static rs_error_t *md5s_finish(const rs_area_t *a, rs_upload_t *u, int base,
                               int n, const char *md5hex, apr_pool_t *p)
{
    md5_state_t st;
    unsigned char d[MD5_DIGEST_LENGTH];
    apr_file_t *f;
    rs_error_t *err;
    apr_status_t rv;
    const char *got;

    md5s_load(u, base, &st, p);
    if (st.next > base + n) {
        md5s_load(u, -1, &st, p);            /* not this run: start over */
        st.base = st.next = base;
    }
    if ((err = md5s_advance(a, u, &st, base + n - 1, 1, p))) {
        return err;
    }
    if (st.next != base + n) {
        return rs_eng_io_error(p, APR_EGENERAL, "merging chunks", u->id);
    }
    rv = rs_data_open(&f, rs_data_path(p, u->dir, u->id), 1, p);
    if (APR_SUCCESS == rv) {
        rv = rs_data_truncate(f, st.bytes);
        if (APR_SUCCESS == rv && a->sync) {
            rv = rs_data_sync(f);
        }
        apr_file_close(f);
    }
    if (APR_SUCCESS != rv) {
        return rs_eng_io_error(p, rv, "assembling chunks", u->id);
    }
    u->length = u->offset = st.bytes;
    MD5_Final(d, &st.ctx);
    got = rs_util_hex(p, d, sizeof(d));
    if (strcmp(got, md5hex)) {
        rs_data_remove(md5s_path(p, u), p);  /* may not match the chunks */
        return rs_error_make(p, RS_ERR_CHECKSUM_MISMATCH, 0, "the file's MD5 "
                             "is %s, not %s", got, md5hex);
    }
    return NULL;
}

/* Under the writer lock: compose the complete run, or, with md5hex,
 * assemble, verify and publish it now (the answer carries the result). *u
 * is the fresh record; nothing happens when another request finished it
 * first. */
static rs_error_t *assemble_chunks(rs_engine_t *e, const rs_area_t *a,
                                   rs_upload_t *u, apr_off_t chunk_size,
                                   const char *md5hex, apr_pool_t *p)
{
    rs_hold_t *lock = NULL;
    rs_upload_t *fresh;
    rs_error_t *err = rs_eng_lock(e, a, u, p, &lock);
    int base, n;

    if (err) {
        return err;
    }
    if (!(err = rs_eng_lookup(e, u->id, p, &fresh))) {
        *u = *fresh;
    }
    n = err ? 0 : rs_eng_chunk_run(u, &base);
    if (err || RS_STATE_ACTIVE != u->state) {
        /* finished by another request: nothing to do */
    }
    else if (!n) {
        err = rs_error_make(p, RS_ERR_INCOMPLETE, 0, "%d chunks missing",
                            rs_upload_chunks_missing(u));
    }
    else if (!md5hex) {
        err = compose_chunks(e, a, u, base, n, chunk_size, p);
    }
    else if (!(err = md5s_finish(a, u, base, n, md5hex, p))) {
        u->flags |= RS_UF_CHUNKS_LEFT;      /* saved with the completion */
        if (!(err = rs_eng_complete_md5(e, a, u, md5hex, p))) {
            chunks_after_answer(u, p);
        }
        else {
            u->flags &= ~RS_UF_CHUNKS_LEFT;  /* not complete: no meaning */
        }
    }
    rs_eng_unhold(lock);
    return err;
}

static rs_error_t *chunk_put(rs_engine_t *e, const rs_area_t *a,
                             rs_upload_t *u, const rs_chunk_t *c,
                             apr_pool_t *p)
{
    rs_error_t *err;
    apr_off_t size = 0;
    apr_status_t rv;
    int placed = 0, base;

    if (!(u->flags & RS_UF_CHUNKED) || !rs_eng_chunk_proto(u->proto)) {
        return rs_eng_wrong_mode(p, u, "a chunk");
    }
    if (RS_STATE_COMPLETE == u->state) {
        return NULL;                    /* a late re-send: nothing to do */
    }
    if (APR_SUCCESS != (rv = rs_data_size(c->spool, &size, p))) {
        return rs_eng_io_error(p, rv, "reading a chunk", u->id);
    }
    if ((err = check_chunk(u, c, p)) || (err = check_staged(a, u, c, size, p))
        || (err = place_chunk(u, c, p, &placed))) {
        return err;
    }
    err = mark_chunk(e, a, u, c, size, p);
    if (placed && (err || RS_STATE_ACTIVE != u->state)) {
        /* refused, or late */
        rs_data_remove(rs_eng_chunk_path(p, u, c->index), p);
    }
    if (err) {
        return err;
    }
    if (RS_STATE_ACTIVE == u->state && declared(u)
        && rs_eng_chunk_run(u, &base)) {
        err = assemble_chunks(e, a, u, 0, c->file_md5, p);
        /* locked: another last chunk is assembling; this one is stored */
        return err && RS_ERR_LOCKED == err->code ? NULL : err;
    }
    if (RS_STATE_ACTIVE == u->state && c->file_md5) {
        md5s_grow(e, a, u, p);
    }
    return NULL;
}

rs_error_t *rs_engine_chunk_put(rs_engine_t *e, const rs_area_t *a,
                                rs_upload_t *u, const rs_chunk_t *c,
                                apr_pool_t *p)
{
    apr_finfo_t fi;
    int sized = APR_SUCCESS == apr_stat(&fi, c->spool, APR_FINFO_SIZE, p);
    rs_error_t *err = chunk_put(e, a, u, c, p);

    rs_data_remove(c->spool, p);        /* consumed, whatever happened */
    rs_report_upload(p, u);
    if (!err && sized) {
        rs_report(p)->bytes += fi.size;
    }
    return err;
}

rs_error_t *rs_engine_chunk_merge(rs_engine_t *e, const rs_area_t *a,
                                  rs_upload_t *u, apr_off_t chunk_size,
                                  apr_pool_t *p)
{
    if (!(u->flags & RS_UF_CHUNKED) || !rs_eng_chunk_proto(u->proto)) {
        return rs_eng_wrong_mode(p, u, "a merge");
    }
    if (RS_STATE_COMPLETE == u->state) {
        return NULL;
    }
    return assemble_chunks(e, a, u, chunk_size, NULL, p);
}
