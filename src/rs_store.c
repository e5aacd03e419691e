/* Licensed to the Apache Software Foundation (ASF) under one or more
 * contributor license agreements; and licensed under the Apache License,
 * Version 2.0 (the "License"); you may not use this file except in
 * compliance with the License. See http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * rs_store.c - the state database: segmented values on apr_dbm.
 *
 * ON-DISK LAYOUT, byte by byte
 * ----------------------------
 * A value V of L bytes under the key K (strlen(K) bytes, stored without a
 * NUL, 1..RS_STORE_MAX_KEY bytes, never containing 0x1f) is cut into N
 * pieces of P bytes (the last one may be shorter):
 *
 *   P = max(128, 460 - strlen(K))       (128..459; see "Sizes" below)
 *   N = 1                 when L <= P
 *       ceil(L / P)       otherwise
 *
 * Head pair:  key   = K
 *             value = 20-byte header followed by piece 0 (min(L, P) bytes)
 *
 *   offset  size  field
 *   ------  ----  -------------------------------------------------------
 *       0     1   magic 0xD5
 *       1     1   format version, 1
 *       2     2   P, piece size, unsigned big endian (readers accept
 *                 1..800, so P may change without a format change)
 *       4     4   G, generation, unsigned big endian
 *       8     4   N, number of pieces including piece 0, big endian (>= 1)
 *      12     4   L, total length, big endian (<= RS_STORE_MAX_VALUE)
 *      16     4   CRC-32 of all L bytes of V (IEEE 802.3 polynomial,
 *                 reflected, init and final xor 0xffffffff: zlib's crc32),
 *                 big endian
 *      20   ...   piece 0 = V[0 .. min(L, P) - 1]
 *
 * Segment pairs, for n = 1 .. N-1:
 *             key   = K 0x1f decimal(G) '.' decimal(n)   (e.g. "u:x\x1f7.3")
 *             value = piece n = V[n*P .. min((n+1)*P, L) - 1]
 *                     (exactly P bytes except for the last piece)
 *
 * Every field is checked on read: magic, version, P range, L limit, N equal
 * to the count implied by L and P, the exact byte count of the head and of
 * each segment, and the CRC of the reassembled value. Any mismatch (or a
 * missing segment) is corruption: APR_EINVAL.
 *
 * Sizes: sdbm stores pairs in 1 KiB pages and refuses a pair above 1008
 * bytes. A head is strlen(K) + 20 + P bytes, a segment pair strlen(K) + P
 * plus at most 17 (0x1f, 10 digits of G, '.', 5 digits of n; N <= 4 MiB /
 * 128 < 100000). With strlen(K) + P = 460 two pairs share a page: pairs
 * that fill a page alone make sdbm split its hash tree much deeper, which
 * inflates its (sparse) files by orders of magnitude. Keys longer than 332
 * bytes get P = 128 (pairs <= 660 bytes). Values up to P bytes stay a
 * single pair. The other drivers have no such limits; the layout is the
 * same for all of them.
 *
 * CRASH SAFETY
 * ------------
 * rs_store_put with an old head of generation G (new generation G+1, or 1
 * when there is no readable old head):
 *   1. delete leftovers of generation G+1 (an earlier interrupted put),
 *   2. store the new segments 1..N-1 of G+1,
 *   3. store the head (the single atomic switch from old to new value),
 *   4. delete the old segments N_old-1 .. 1 of G (highest first),
 *   5. delete leftovers of G-1 (an earlier interrupted step 4).
 * Killed before 3: the old head and its segments are intact, the old value
 * is read; killed after 3: the new value is complete. Leftovers of an
 * interrupted step 1, 2, 4 or 5 always form a prefix 1..m of segment numbers
 * (written upwards, deleted downwards), so steps 1 and 5 stop at the first
 * missing number: one failed lookup each when there is nothing to clean.
 * rs_store_delete removes the head first (atomic switch to "absent"), then
 * the segments, highest first. Once the head switched the put or delete
 * has happened: a failure in steps 4-5 (or in a delete's segment removal)
 * is logged and leaves garbage, it is not reported as a failed change. Segments orphaned by a delete that was killed
 * half way are not reachable by a later put (which restarts at generation
 * 1); rs_store_gc finds them by iteration.
 *
 * KEPT OPEN (sdbm)
 * ----------------
 * sdbm is not opened per transaction: each process keeps a small pool of
 * handles (keep_t: an apr_sdbm handle opened read-write with
 * APR_FOPEN_SHARELOCK, and the guard with its own two descriptors), taken
 * by one transaction at a time (a thread mutex guards the idle list; up to
 * KEEP_IDLE_MAX idle handles). A write transaction takes apr_sdbm_lock
 * exclusive, a read the guard's shared lock, both on the handle's own .dir
 * descriptor, so threads and processes exclude each other exactly as
 * separate opens did (flock locks belong to the open file). apr_sdbm_lock
 * re-reads the directory size and forgets sdbm's cached pages
 * (apr-util 1.6 sdbm_lock.c, SDBM_INVALIDATE_CACHE), and the guard forgets
 * its blocks at each begin, so a transaction sees the previous ones'
 * writes as after a fresh open. Under the lock the guard fstat's both open
 * files (rs_sdbm_guard_stale): one that lost its last link (deleted, or
 * replaced by a rename, e.g. resumablectl's recovery) or changed owner or
 * mode drops the handle, and the transaction opens the paths again (with
 * the result a fresh open has: a new database, ENOENT, EACCES). A new
 * handle checks that the paths still name the files it opened. Handles
 * are never used across fork: a pthread_atfork count makes a child ignore
 * the idle list it inherited (the parent still owns it). Inside a write
 * transaction reads come from the guard's checked page, as for readers
 * (sdbm writes every change through at once); sdbm only stores, deletes
 * and iterates. Other drivers are opened per transaction.
 *
 * LOCKING
 * -------
 * Other drivers are opened per transaction (as in mod_socache_dbm), so no
 * driver state crosses a fork and every transaction sees the previous one's
 * writes; sdbm is kept open (above) with the same effect. Write
 * transactions hold the global mutex (when there is one) from
 * open to close. Read transactions on sdbm do not take it: sdbm itself
 * holds a lock on its .dir file for the life of a handle (apr_file_lock,
 * an flock here), shared for a read-only open and exclusive for a
 * read-write one (apr_sdbm_open without APR_FOPEN_SHARELOCK). A read
 * transaction on sdbm takes that same shared lock itself and reads the
 * pages without apr_sdbm ("paged"): the sdbm guard finds and checks the
 * key's page anyway (rs_sdbm_guard.h), the value is looked up in it as
 * sdbm does, which saves sdbm's open and its second walk of the directory.
 * Only an iteration (rs_store_keys) opens apr_sdbm as well, under the lock
 * already held. flock locks belong to the open file, so readers of all
 * threads and processes run in parallel while a writer excludes them from
 * its open to its close. A reader thus never sees a page being rewritten
 * or a put half done. The one gap is the reopen of a
 * write transaction whose directory grew (db_reopen_if_grown): a reader
 * may get in there and sees the database between two whole stores or
 * deletes, a state rs_store_put/rs_store_delete leave readable at every
 * step (CRASH SAFETY). Readers of the other drivers, whose locking differs,
 * take the global mutex as writers do.
 */

#include <stdio.h>
#include <string.h>

#include <sys/stat.h>

#include <apr_atomic.h>
#include <apr_dbm.h>
#include <apr_sdbm.h>
#include <apr_thread_mutex.h>
#include <pthread.h>
#include <apr_file_info.h>
#include <apr_hash.h>
#include <apr_strings.h>
#include <apr_tables.h>

#include "rs_store.h"
#include "rs_sdbm_guard.h"
#include "rs_log.h"

#define HEAD_MAGIC    0xD5
#define HEAD_VERSION  1
#define HEAD_SIZE     20
#define PIECE_MAX     800         /* largest P a reader accepts */
#define PIECE_TARGET  460         /* strlen(K) + P, see "Sizes" above */
#define PIECE_MIN     128
#define SEG_SEP       '\x1f'
#define SEGKEY_EXTRA  32          /* room for SEG_SEP G '.' n and a NUL */
#define MAX_SEGS      (RS_STORE_MAX_VALUE / PIECE_MIN + 1)
#define DB_PERMS      (APR_FPROT_UREAD | APR_FPROT_UWRITE | APR_FPROT_GREAD)

/* An sdbm database kept open across transactions (KEPT OPEN). */
typedef struct keep_t {
    struct keep_t *next;
    apr_pool_t *pool;           /* unmanaged: its own, destroyed by keep_drop */
    apr_sdbm_t *db;             /* read-write, APR_FOPEN_SHARELOCK; NULL
                                   until the first write transaction */
    rs_sdbm_guard_t *guard;     /* its pages checked; reads use it alone */
} keep_t;

#define KEEP_IDLE_MAX 16        /* idle handles kept per process */

struct rs_store_t {
    apr_pool_t *pool;
    const char *type;
    const char *path;
    apr_global_mutex_t *mutex;
    int sdbm;                   /* guarded pages, reads without the mutex */
    volatile apr_uint32_t puts; /* values stored (rs_store_puts) */
    const rs_store_ops_t *ops;  /* a provider store (rs_store.h), or NULL */
    void *impl;
#if APR_HAS_THREADS
    apr_thread_mutex_t *kmutex; /* guards idle (threads of one process) */
#endif
    keep_t *idle;               /* sdbm handles not in a transaction */
    int nidle;
    apr_uint32_t forks;         /* fork_count when idle was filled */
};

struct rs_txn_t {
    rs_store_t *store;
    apr_pool_t *pool;           /* the transaction's allocations */
    apr_pool_t *dbpool;         /* the open database, cleared on reopen */
    apr_dbm_t *db;              /* NULL after a failed reopen */
    keep_t *keep;               /* sdbm: the kept handle in use */
    apr_sdbm_t *sdb;            /* sdbm write: keep->db, locked exclusive */
    rs_sdbm_guard_t *guard;     /* sdbm: made by the first guarded access */
    int paged;                  /* read on sdbm: fetches from the guard */
    const char *dirfile;        /* sdbm directory file watched, or NULL */
    apr_off_t dirsize;
    int write;
    int locked;
    void *ptx;                  /* a provider's open transaction */
};

/* rs_store_thread_txns: a request runs in one thread from start to end */
static __thread apr_uint32_t thread_writes, thread_reads;

void rs_store_thread_txns(apr_uint32_t *writes, apr_uint32_t *reads)
{
    *writes = thread_writes;
    *reads = thread_reads;
}

typedef struct {
    apr_uint32_t piece;
    apr_uint32_t gen;
    apr_uint32_t nseg;
    apr_uint32_t len;
    apr_uint32_t crc;
} seg_head_t;

/* ---- encoding helpers --------------------------------------------------- */

static const apr_uint32_t crc_nibble[16] = {
    0x00000000, 0x1db71064, 0x3b6e20c8, 0x26d930ac,
    0x76dc4190, 0x6b6b51f4, 0x4db26158, 0x5005713c,
    0xedb88320, 0xf00f9344, 0xd6d6a3e8, 0xcb61b38c,
    0x9b64c2b0, 0x86d3d2d4, 0xa00ae278, 0xbdbdf21c
};

/* CRC-32 (zlib's), four bits at a time: a 64-byte table, no init race. */
static apr_uint32_t crc32_of(const char *data, apr_size_t len)
{
    const unsigned char *d = (const unsigned char *)data;
    apr_uint32_t crc = 0xffffffffU;
    apr_size_t i;

    for (i = 0; i < len; i++) {
        crc ^= d[i];
        crc = (crc >> 4) ^ crc_nibble[crc & 15];
        crc = (crc >> 4) ^ crc_nibble[crc & 15];
    }
    return crc ^ 0xffffffffU;
}

static void put_be32(unsigned char *b, apr_uint32_t v)
{
    b[0] = (unsigned char)(v >> 24);
    b[1] = (unsigned char)(v >> 16);
    b[2] = (unsigned char)(v >> 8);
    b[3] = (unsigned char)v;
}

static apr_uint32_t get_be32(const unsigned char *b)
{
    return ((apr_uint32_t)b[0] << 24) | ((apr_uint32_t)b[1] << 16)
           | ((apr_uint32_t)b[2] << 8) | (apr_uint32_t)b[3];
}

static apr_uint32_t piece_size(apr_size_t keylen)
{
    return (apr_uint32_t)(keylen + PIECE_MIN <= PIECE_TARGET
                          ? PIECE_TARGET - keylen : PIECE_MIN);
}

static apr_uint32_t nseg_for(apr_uint32_t len, apr_uint32_t piece)
{
    return len <= piece ? 1 : (len + piece - 1) / piece;
}

/* Bytes of piece n of a value described by h. */
static apr_size_t piece_len(const seg_head_t *h, apr_uint32_t n)
{
    apr_size_t start = (apr_size_t)n * h->piece;
    apr_size_t rest = h->len > start ? h->len - start : 0;

    return rest < h->piece ? rest : h->piece;
}

/* "K\x1fG.n" into buf (SEGKEY_EXTRA + strlen(K) bytes). */
static apr_datum_t seg_key(char *buf, const char *key, apr_size_t klen,
                           apr_uint32_t gen, apr_uint32_t n)
{
    apr_datum_t d;

    memcpy(buf, key, klen);
    d.dsize = klen + apr_snprintf(buf + klen, SEGKEY_EXTRA, "%c%u.%u",
                                  SEG_SEP, (unsigned)gen, (unsigned)n);
    d.dptr = buf;
    return d;
}

static apr_datum_t key_datum(const char *key)
{
    apr_datum_t d;

    d.dptr = (char *)key;
    d.dsize = strlen(key);
    return d;
}

/* Keys are NUL-free strings of 1..RS_STORE_MAX_KEY bytes without 0x1f. */
static apr_status_t check_key(rs_txn_t *txn, const char *key)
{
    apr_size_t klen = key ? strlen(key) : 0;

    if (klen == 0 || klen > RS_STORE_MAX_KEY || strchr(key, SEG_SEP)) {
        rs_log_perror(RS_LOG_MARK, RS_LOG_ERR, APR_EINVAL, txn->pool,
                      RS_LOGNO(03001) "invalid state key (length %"
                      APR_SIZE_T_FMT ", max %d, no 0x1f allowed)",
                      klen, RS_STORE_MAX_KEY);
        return APR_EINVAL;
    }
    return APR_SUCCESS;
}

/* ---- driver access with error reporting --------------------------------- */

static const char *db_error(rs_txn_t *txn)
{
    char buf[256];

    if (!txn->db) {
        return "sdbm failed";      /* the status logged says why */
    }
    apr_dbm_geterror(txn->db, NULL, buf, sizeof(buf));
    return apr_pstrdup(txn->pool, buf);
}

/* The driver calls: apr_sdbm on a kept sdbm handle, apr_dbm otherwise. */
static apr_sdbm_datum_t sdatum(apr_datum_t d)
{
    apr_sdbm_datum_t sd;

    sd.dptr = d.dptr;
    sd.dsize = (int)d.dsize;
    return sd;
}

static apr_status_t dbx_fetch(rs_txn_t *txn, apr_datum_t k, apr_datum_t *d)
{
    apr_sdbm_datum_t v;
    apr_status_t rv;

    if (!txn->sdb) {
        return apr_dbm_fetch(txn->db, k, d);
    }
    v.dptr = NULL;
    v.dsize = 0;
    rv = apr_sdbm_fetch(txn->sdb, &v, sdatum(k));
    d->dptr = v.dptr;
    d->dsize = v.dptr ? (apr_size_t)v.dsize : 0;
    return rv;
}

static apr_status_t dbx_store(rs_txn_t *txn, apr_datum_t k, apr_datum_t d)
{
    return txn->sdb ? apr_sdbm_store(txn->sdb, sdatum(k), sdatum(d),
                                     APR_SDBM_REPLACE)
                    : apr_dbm_store(txn->db, k, d);
}

static apr_status_t dbx_delete(rs_txn_t *txn, apr_datum_t k)
{
    return txn->sdb ? apr_sdbm_delete(txn->sdb, sdatum(k))
                    : apr_dbm_delete(txn->db, k);
}

static int dbx_exists(rs_txn_t *txn, apr_datum_t k)
{
    apr_datum_t d;

    if (!txn->sdb) {
        return apr_dbm_exists(txn->db, k);
    }
    return APR_SUCCESS == dbx_fetch(txn, k, &d) && d.dptr != NULL;
}

/* firstkey when first, else nextkey; sdbm's datums need no freeing */
static apr_status_t dbx_key(rs_txn_t *txn, int first, apr_datum_t *k)
{
    apr_sdbm_datum_t sk;
    apr_status_t rv;

    if (!txn->sdb) {
        return first ? apr_dbm_firstkey(txn->db, k)
                     : apr_dbm_nextkey(txn->db, k);
    }
    sk.dptr = NULL;
    sk.dsize = 0;
    rv = first ? apr_sdbm_firstkey(txn->sdb, &sk)
               : apr_sdbm_nextkey(txn->sdb, &sk);
    k->dptr = sk.dptr;
    k->dsize = sk.dptr ? (apr_size_t)sk.dsize : 0;
    return rv;
}

static void dbx_free(rs_txn_t *txn, apr_datum_t d)
{
    if (txn->db) {
        apr_dbm_freedatum(txn->db, d);
    }
}

#define HAS_DB(txn) ((txn)->db || (txn)->sdb)

static apr_off_t file_size(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 ? (apr_off_t)st.st_size : -1;
}

static apr_status_t db_open(rs_txn_t *txn)
{
    rs_store_t *s = txn->store;
    apr_status_t rv;

    rv = apr_dbm_open_ex(&txn->db, s->type, s->path,
                         txn->write ? APR_DBM_RWCREATE : APR_DBM_READONLY,
                         DB_PERMS, txn->dbpool);
    if (rv != APR_SUCCESS) {
        txn->db = NULL;
        if (!txn->write && APR_STATUS_IS_ENOENT(rv)) {
            return APR_ENOENT;
        }
        rs_log_perror(RS_LOG_MARK, RS_LOG_ERR, rv, txn->pool,
                      RS_LOGNO(03009) "cannot open state database %s "
                      "(type %s, %s)", s->path, s->type,
                      txn->write ? "read-write" : "read-only");
        return rv;
    }
    if (txn->dirfile) {
        txn->dirsize = file_size(txn->dirfile);
    }
    return APR_SUCCESS;
}

/*
 * sdbm keeps the size of its directory bitmap (maxbno) from the open and,
 * when a split sets a bit more than one directory block past the end, grows
 * it by one block only. Until the next open its lookups then stop too high
 * in the hash tree and miss (or misplace) keys. Reopening re-reads the size,
 * so a write transaction on a two-file driver watches the directory file
 * and reopens after any store that made it grow.
 */
static apr_status_t sdb_relock(rs_txn_t *txn);

static apr_status_t db_reopen_if_grown(rs_txn_t *txn)
{
    if (!txn->dirfile || file_size(txn->dirfile) == txn->dirsize) {
        return APR_SUCCESS;
    }
    if (txn->sdb) {
        return sdb_relock(txn);
    }
    apr_dbm_close(txn->db);
    txn->db = NULL;
    apr_pool_clear(txn->dbpool);
    return db_open(txn);
}

/* Fetch; an absent key gives APR_SUCCESS with d->dptr == NULL. */
/* sdbm crashes on some corrupt pages instead of reporting them: look at
 * the key's page first (rs_sdbm_guard.h). Other drivers check themselves. */
static apr_status_t guard(rs_txn_t *txn, apr_datum_t k)
{
    apr_status_t rv;

    if (!txn->store->sdbm) {
        return APR_SUCCESS;
    }
    if (!txn->guard) {
        txn->guard = rs_sdbm_guard_make(txn->store->path, txn->pool);
    }
    rv = rs_sdbm_guard_check(txn->guard, k.dptr, k.dsize);
    if (APR_SUCCESS != rv) {
        rs_log_perror(RS_LOG_MARK, RS_LOG_CRIT, rv, txn->pool,
                      RS_LOGNO(03012) "state database %s is corrupt (bad "
                      "sdbm page); stop httpd and recover it with "
                      "resumablectl (see README)", txn->store->path);
    }
    return rv;
}

/* A paged read: the value from the checked page (see LOCKING). */
static apr_status_t page_fetch(rs_txn_t *txn, apr_datum_t k, apr_datum_t *d)
{
    const char *v;
    apr_size_t vlen;
    apr_status_t rv = rs_sdbm_guard_fetch(txn->guard, k.dptr, k.dsize, &v,
                                          &vlen);

    if (APR_EINVAL == rv) {
        rs_log_perror(RS_LOG_MARK, RS_LOG_CRIT, rv, txn->pool,
                      RS_LOGNO(03012) "state database %s is corrupt (bad "
                      "sdbm page); stop httpd and recover it with "
                      "resumablectl (see README)", txn->store->path);
    }
    else if (APR_SUCCESS != rv) {
        rs_log_perror(RS_LOG_MARK, RS_LOG_ERR, rv, txn->pool,
                      RS_LOGNO(03002) "state database %s: fetch failed: "
                      "read error", txn->store->path);
    }
    d->dptr = (char *)v;
    d->dsize = vlen;
    return rv;
}

/* Datums of a paged read live in the guard: nothing to free. */
static void datum_free(rs_txn_t *txn, apr_datum_t d)
{
    if (!txn->paged) {
        dbx_free(txn, d);
    }
}

static apr_status_t db_fetch(rs_txn_t *txn, apr_datum_t k, apr_datum_t *d)
{
    apr_status_t rv;

    d->dptr = NULL;
    d->dsize = 0;
    if (txn->paged || txn->sdb) {
        /* a writer too: under its exclusive lock the page on disk is
         * sdbm's, which writes every change through at once */
        if (!txn->guard) {
            return APR_EBADF;
        }
        return page_fetch(txn, k, d);
    }
    if (!HAS_DB(txn)) {
        return APR_EBADF;
    }
    if (APR_SUCCESS != (rv = guard(txn, k))) {
        return rv;
    }
    rv = dbx_fetch(txn, k, d);
    if (rv != APR_SUCCESS) {
        rs_log_perror(RS_LOG_MARK, RS_LOG_ERR, rv, txn->pool,
                      RS_LOGNO(03002) "state database %s: fetch failed: %s",
                      txn->store->path, db_error(txn));
        d->dptr = NULL;
    }
    return rv;
}

/* sdbm: put back what a split left half done (rs_sdbm_guard.h), a killed
 * writer's (at the start of a write transaction) or this one's after a
 * failed store; sdbm is reopened to see the files as they are now. */
static apr_status_t undo_split(rs_txn_t *txn)
{
    int applied = 0;
    apr_status_t rv = rs_sdbm_undo_apply(txn->store->path, txn->pool,
                                         &applied);

    if (APR_SUCCESS != rv) {
        rs_log_perror(RS_LOG_MARK, RS_LOG_ERR, rv, txn->pool,
                      RS_LOGNO(09502) "state database %s: undoing an "
                      "interrupted split failed%s", txn->store->path,
                      APR_EINVAL == rv ? " (not an undo file: removed)"
                      : "");
    }
    if (!applied) {
        return APR_EINVAL == rv ? APR_SUCCESS : rv;
    }
    rs_log_perror(RS_LOG_MARK, RS_LOG_WARNING, 0, txn->pool, RS_LOGNO(09503)
                  "state database %s: a store interrupted in the middle of "
                  "a page split was undone", txn->store->path);
    if (txn->guard) {
        rs_sdbm_guard_changed(txn->guard);
    }
    if (txn->sdb) {
        return sdb_relock(txn);
    }
    apr_dbm_close(txn->db);
    txn->db = NULL;
    apr_pool_clear(txn->dbpool);
    return db_open(txn);
}

static apr_status_t db_store(rs_txn_t *txn, apr_datum_t k, const char *v,
                             apr_size_t vlen)
{
    apr_datum_t d;
    apr_status_t rv;
    int journal = 0;

    if (!HAS_DB(txn)) {
        return APR_EBADF;
    }
    d.dptr = (char *)v;
    d.dsize = vlen;
    if (APR_SUCCESS != (rv = guard(txn, k))) {
        return rv;
    }
    if (txn->guard && APR_SUCCESS != (rv = rs_sdbm_guard_journal(
                                          txn->guard, k.dptr, k.dsize, vlen,
                                          &journal))) {
        rs_log_perror(RS_LOG_MARK, RS_LOG_ERR, rv, txn->pool,
                      RS_LOGNO(09501) "state database %s: saving the page "
                      "of a split failed", txn->store->path);
        return rv;
    }
    rv = dbx_store(txn, k, d);
    if (journal && rv != APR_SUCCESS) {
        undo_split(txn);            /* a full disk in the middle */
    }
    else if (journal) {
        rs_sdbm_guard_unjournal(txn->guard);
    }
    if (rv != APR_SUCCESS) {
        if (txn->guard) {
            rs_sdbm_guard_changed(txn->guard);  /* what sdbm left: unknown */
        }
        rs_log_perror(RS_LOG_MARK, RS_LOG_ERR, rv, txn->pool,
                      RS_LOGNO(03003) "state database %s: store of %"
                      APR_SIZE_T_FMT " bytes failed: %s",
                      txn->store->path, vlen, db_error(txn));
        return rv;
    }
    if (txn->guard && !rs_sdbm_guard_stored(txn->guard)) {
        return APR_SUCCESS;         /* no split: the directory is as it was */
    }
    return db_reopen_if_grown(txn);
}

static int db_exists(rs_txn_t *txn, apr_datum_t k)
{
    apr_datum_t d;

    if (txn->sdb) {                 /* from the checked page, as a fetch */
        return APR_SUCCESS == page_fetch(txn, k, &d) && d.dptr;
    }
    return HAS_DB(txn) && APR_SUCCESS == guard(txn, k)
           && dbx_exists(txn, k);
}

static apr_status_t db_delete(rs_txn_t *txn, apr_datum_t k)
{
    apr_status_t rv;

    if (!HAS_DB(txn)) {
        return APR_EBADF;
    }
    if (APR_SUCCESS != (rv = guard(txn, k))) {
        return rv;
    }
    rv = dbx_delete(txn, k);
    if (txn->guard) {
        rs_sdbm_guard_page_changed(txn->guard);     /* never splits */
    }
    if (rv != APR_SUCCESS && dbx_exists(txn, k)) {
        rs_log_perror(RS_LOG_MARK, RS_LOG_ERR, rv, txn->pool,
                      RS_LOGNO(03004) "state database %s: delete failed: %s",
                      txn->store->path, db_error(txn));
        return rv;
    }
    return APR_SUCCESS;
}

static apr_status_t check_write(rs_txn_t *txn, const char *what)
{
    if (txn->write) {
        return APR_SUCCESS;
    }
    rs_log_perror(RS_LOG_MARK, RS_LOG_ERR, APR_EACCES, txn->pool,
                  RS_LOGNO(03005) "state database %s: %s in a read-only "
                  "transaction", txn->store->path, what);
    return APR_EACCES;
}

/* ---- head --------------------------------------------------------------- */

/* Validate a head's header against its own size; fills h. */
static apr_status_t head_parse(const apr_datum_t *d, seg_head_t *h)
{
    const unsigned char *b = (const unsigned char *)d->dptr;

    if (d->dsize < HEAD_SIZE || b[0] != HEAD_MAGIC || b[1] != HEAD_VERSION) {
        return APR_EINVAL;
    }
    h->piece = ((apr_uint32_t)b[2] << 8) | b[3];
    h->gen = get_be32(b + 4);
    h->nseg = get_be32(b + 8);
    h->len = get_be32(b + 12);
    h->crc = get_be32(b + 16);
    if (h->piece == 0 || h->piece > PIECE_MAX || h->len > RS_STORE_MAX_VALUE
        || h->nseg != nseg_for(h->len, h->piece)
        || d->dsize != HEAD_SIZE + piece_len(h, 0)) {
        return APR_EINVAL;
    }
    return APR_SUCCESS;
}

static void head_encode(unsigned char *b, const seg_head_t *h)
{
    b[0] = HEAD_MAGIC;
    b[1] = HEAD_VERSION;
    b[2] = (unsigned char)(h->piece >> 8);
    b[3] = (unsigned char)h->piece;
    put_be32(b + 4, h->gen);
    put_be32(b + 8, h->nseg);
    put_be32(b + 12, h->len);
    put_be32(b + 16, h->crc);
}

static void log_corrupt(rs_txn_t *txn, const char *key, const char *what)
{
    rs_log_perror(RS_LOG_MARK, RS_LOG_ERR, APR_EINVAL, txn->pool,
                  RS_LOGNO(03006) "state database %s: value of key \"%s\" "
                  "is corrupt (%s)", txn->store->path, key, what);
}

/*
 * Read the header of key's head. *found: 0 absent, 1 valid header,
 * -1 present but unparsable (logged).
 */
static apr_status_t head_read(rs_txn_t *txn, const char *key, seg_head_t *h,
                              int *found)
{
    apr_datum_t d;
    apr_status_t rv = db_fetch(txn, key_datum(key), &d);

    *found = 0;
    if (rv != APR_SUCCESS || !d.dptr) {
        return rv;
    }
    *found = head_parse(&d, h) == APR_SUCCESS ? 1 : -1;
    datum_free(txn, d);
    if (*found < 0) {
        log_corrupt(txn, key, "bad head");
    }
    return APR_SUCCESS;
}

/* ---- segments ----------------------------------------------------------- */

/* Delete segments from..to-1 of generation gen, highest first. */
static apr_status_t segs_delete(rs_txn_t *txn, const char *key,
                                apr_uint32_t gen, apr_uint32_t from,
                                apr_uint32_t to)
{
    apr_size_t klen = strlen(key);
    char *buf = apr_palloc(txn->pool, klen + SEGKEY_EXTRA);
    apr_status_t rv = APR_SUCCESS;

    while (to > from && rv == APR_SUCCESS) {
        to--;
        rv = db_delete(txn, seg_key(buf, key, klen, gen, to));
    }
    return rv;
}

/* Delete leftover segments 1..m of gen (a prefix, see CRASH SAFETY). */
static apr_status_t segs_sweep(rs_txn_t *txn, const char *key,
                               apr_uint32_t gen)
{
    apr_size_t klen = strlen(key);
    char *buf = apr_palloc(txn->pool, klen + SEGKEY_EXTRA);
    apr_uint32_t m = 1;

    while (m <= MAX_SEGS
           && db_exists(txn, seg_key(buf, key, klen, gen, m))) {
        m++;
    }
    return segs_delete(txn, key, gen, 1, m);
}

static apr_status_t segs_write(rs_txn_t *txn, const char *key,
                               const seg_head_t *h, const char *val)
{
    apr_size_t klen = strlen(key);
    char *buf = apr_palloc(txn->pool, klen + SEGKEY_EXTRA);
    apr_status_t rv = APR_SUCCESS;
    apr_uint32_t n;

    for (n = 1; n < h->nseg && rv == APR_SUCCESS; n++) {
        rv = db_store(txn, seg_key(buf, key, klen, h->gen, n),
                      val + (apr_size_t)n * h->piece, piece_len(h, n));
    }
    return rv;
}

/* Copy segments 1..N-1 into buf (which already holds piece 0). */
static apr_status_t segs_read(rs_txn_t *txn, const char *key,
                              const seg_head_t *h, char *buf)
{
    apr_size_t klen = strlen(key);
    char *kbuf = apr_palloc(txn->pool, klen + SEGKEY_EXTRA);
    apr_status_t rv = APR_SUCCESS;
    apr_uint32_t n;
    apr_datum_t d;

    for (n = 1; n < h->nseg && rv == APR_SUCCESS; n++) {
        rv = db_fetch(txn, seg_key(kbuf, key, klen, h->gen, n), &d);
        if (rv == APR_SUCCESS && (!d.dptr || d.dsize != piece_len(h, n))) {
            log_corrupt(txn, key, d.dptr ? "segment size" : "missing segment");
            rv = APR_EINVAL;
        }
        else if (rv == APR_SUCCESS) {
            memcpy(buf + (apr_size_t)n * h->piece, d.dptr, d.dsize);
        }
        if (d.dptr) {
            datum_free(txn, d);
        }
    }
    return rv;
}

/* ---- store and transactions --------------------------------------------- */

/* Forks seen by this process image: a child's count differs from its
 * parent's, so handles inherited through fork are never used (no system
 * call per transaction, unlike getpid). */
static volatile apr_uint32_t fork_count;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

static void forked(void)
{
    fork_count++;
}

static void fork_watch(void)
{
    pthread_atfork(NULL, NULL, forked);
}

static apr_status_t keep_cleanup(void *data);

apr_status_t rs_store_create(rs_store_t **ps, const char *dbtype,
                             const char *path, apr_global_mutex_t *mutex,
                             apr_pool_t *p)
{
    rs_store_t *s;

    *ps = NULL;
    if (!path || !*path) {
        return APR_EINVAL;
    }
    s = apr_pcalloc(p, sizeof(*s));
    s->pool = p;
    s->type = apr_pstrdup(p, dbtype && *dbtype ? dbtype : "default");
    s->path = apr_pstrdup(p, path);
    s->mutex = mutex;
    s->sdbm = !strcasecmp(s->type, "sdbm");
    pthread_once(&fork_once, fork_watch);
    s->forks = fork_count;
#if APR_HAS_THREADS
    if (s->sdbm && APR_SUCCESS != apr_thread_mutex_create(
                                      &s->kmutex, APR_THREAD_MUTEX_DEFAULT,
                                      p)) {
        return APR_ENOMEM;
    }
#endif
    /* registered after the mutex: runs before it is destroyed */
    apr_pool_cleanup_register(p, s, keep_cleanup, apr_pool_cleanup_null);
    *ps = s;
    return APR_SUCCESS;
}

apr_status_t rs_store_create_provider(rs_store_t **ps,
                                      const rs_store_ops_t *ops, void *impl,
                                      const char *name, apr_pool_t *p)
{
    rs_store_t *s = apr_pcalloc(p, sizeof(*s));

    s->pool = p;
    s->type = ops->type;
    s->path = apr_pstrdup(p, name ? name : ops->type);
    s->ops = ops;
    s->impl = impl;
    *ps = s;
    return APR_SUCCESS;
}

void *rs_store_provider(const rs_store_t *s, const rs_store_ops_t *ops)
{
    return s && s->ops == ops ? s->impl : NULL;
}

const char *rs_store_path(const rs_store_t *s)
{
    return s->path;
}

const char *rs_store_type(const rs_store_t *s)
{
    return s->type;
}

apr_status_t rs_store_files(const rs_store_t *s, apr_pool_t *p,
                            const char **f1, const char **f2)
{
    *f1 = *f2 = NULL;
    if (s->ops) {
        return APR_ENOTIMPL;
    }
    return apr_dbm_get_usednames_ex(p, s->type, s->path, f1, f2);
}

apr_status_t rs_store_clock(rs_txn_t *txn, apr_time_t *now)
{
    if (txn->ptx && txn->store->ops->clock) {
        return txn->store->ops->clock(txn->ptx, now);
    }
    *now = apr_time_now();
    return APR_SUCCESS;
}

/* ---- kept-open sdbm handles (KEPT OPEN) ------------------------------- */


static void keep_drop(keep_t *k)
{
    apr_pool_destroy(k->pool);      /* closes sdbm's and the guard's files */
}

static apr_status_t keep_cleanup(void *data)
{
    rs_store_t *s = data;
    keep_t *k;

    while (s->forks == fork_count && (k = s->idle)) {
        s->idle = k->next;
        keep_drop(k);
    }
    s->idle = NULL;
    s->nidle = 0;
    return APR_SUCCESS;
}

static keep_t *keep_new(rs_store_t *s)
{
    apr_pool_t *kp;
    keep_t *k;

    if (APR_SUCCESS != apr_pool_create_unmanaged_ex(&kp, NULL, NULL)) {
        return NULL;
    }
    apr_pool_tag(kp, "rs_store_keep");
    k = apr_pcalloc(kp, sizeof(*k));
    k->pool = kp;
    k->guard = rs_sdbm_guard_make(s->path, kp);
    return k;
}

/* An idle handle of this process or a new one. Handles a forked child
 * inherited are its parent's: left alone (the parent closes them). */
static keep_t *keep_get(rs_store_t *s)
{
    keep_t *k;

#if APR_HAS_THREADS
    apr_thread_mutex_lock(s->kmutex);
#endif
    if (s->forks != fork_count) {
        s->idle = NULL;         /* the parent's (and not locked by it) */
        s->nidle = 0;
        s->forks = fork_count;
    }
    if ((k = s->idle)) {
        s->idle = k->next;
        s->nidle--;
    }
#if APR_HAS_THREADS
    apr_thread_mutex_unlock(s->kmutex);
#endif
    return k ? k : keep_new(s);
}

static void keep_put(rs_store_t *s, keep_t *k)
{
#if APR_HAS_THREADS
    apr_thread_mutex_lock(s->kmutex);
#endif
    if (s->forks != fork_count) {
        k = NULL;               /* got before a fork: its lock is shared
                                   with the parent, leave it alone */
    }
    else if (s->nidle < KEEP_IDLE_MAX) {
        k->next = s->idle;
        s->idle = k;
        s->nidle++;
        k = NULL;
    }
#if APR_HAS_THREADS
    apr_thread_mutex_unlock(s->kmutex);
#endif
    if (k) {
        keep_drop(k);
    }
}

/* The transaction is done with its handle: unlock, give it back. */
static void keep_release(rs_txn_t *txn)
{
    if (txn->sdb) {
        apr_sdbm_unlock(txn->sdb);
        txn->sdb = NULL;
    }
    else {
        rs_sdbm_guard_unlock(txn->keep->guard);
    }
    keep_put(txn->store, txn->keep);
    txn->keep = NULL;
    txn->guard = NULL;
}

/* Exclusive again: sdbm re-reads the directory size and forgets its
 * cached pages (a reader may get in between, see LOCKING). */
static apr_status_t sdb_relock(rs_txn_t *txn)
{
    apr_status_t rv;

    apr_sdbm_unlock(txn->sdb);
    rv = apr_sdbm_lock(txn->sdb, APR_FLOCK_EXCLUSIVE);
    if (txn->guard) {
        rs_sdbm_guard_changed(txn->guard);
    }
    if (APR_SUCCESS != rv) {
        txn->sdb = NULL;            /* not locked: not to be unlocked */
        rs_log_perror(RS_LOG_MARK, RS_LOG_ERR, rv, txn->pool,
                      RS_LOGNO(09910) "state database %s: cannot lock it "
                      "again", txn->store->path);
        return rv;
    }
    txn->dirsize = file_size(txn->dirfile);
    return APR_SUCCESS;
}

/* Open k's sdbm read-write (creating the files), then its guard, and
 * check that the paths still name what both opened. */
static apr_status_t keep_open_db(rs_txn_t *txn, keep_t *k)
{
    apr_status_t rv = apr_sdbm_open(&k->db, txn->store->path,
                                    APR_FOPEN_READ | APR_FOPEN_WRITE
                                    | APR_FOPEN_CREATE
                                    | APR_FOPEN_SHARELOCK, DB_PERMS,
                                    k->pool);

    if (APR_SUCCESS != rv) {
        k->db = NULL;
        return rv;
    }
    return rs_sdbm_guard_open_at_path(k->guard);
}

/* One try of a write transaction's open on a kept handle; APR_EAGAIN:
 * the handle was stale (dropped), try a new one. */
static apr_status_t keep_write_try(rs_txn_t *txn)
{
    keep_t *k = keep_get(txn->store);
    apr_status_t rv = k ? APR_SUCCESS : APR_ENOMEM;

    if (k && !k->db) {
        rv = keep_open_db(txn, k);
    }
    if (APR_SUCCESS == rv) {
        rv = apr_sdbm_lock(k->db, APR_FLOCK_EXCLUSIVE);
    }
    if (APR_SUCCESS == rv) {
        rs_sdbm_guard_changed(k->guard);
        txn->keep = k;
        txn->sdb = k->db;
        txn->guard = k->guard;
        if (!rs_sdbm_guard_stale(k->guard)) {
            txn->dirsize = rs_sdbm_guard_dir_size(k->guard);
            return APR_SUCCESS;
        }
        apr_sdbm_unlock(k->db);
        txn->keep = NULL;
        txn->sdb = NULL;
        txn->guard = NULL;
        rv = APR_EAGAIN;
    }
    if (k) {
        keep_drop(k);
    }
    return rv;
}

static apr_status_t keep_write_open(rs_txn_t *txn)
{
    apr_status_t rv = keep_write_try(txn);

    if (APR_STATUS_IS_EAGAIN(rv)) {
        rv = keep_write_try(txn);   /* replaced under us: once more */
    }
    if (APR_STATUS_IS_EAGAIN(rv)) {
        rv = APR_EGENERAL;          /* replaced twice in a row */
    }
    if (APR_SUCCESS != rv) {
        rs_log_perror(RS_LOG_MARK, RS_LOG_ERR, rv, txn->pool,
                      RS_LOGNO(03009) "cannot open state database %s "
                      "(type %s, read-write)", txn->store->path,
                      txn->store->type);
        return rv;
    }
    return undo_split(txn);         /* under sdbm's exclusive lock */
}

static apr_status_t txn_cleanup(void *data)
{
    rs_txn_t *txn = data;

    if (txn->ptx) {
        txn->store->ops->end(txn->ptx);
        txn->ptx = NULL;
    }
    if (txn->keep) {
        keep_release(txn);
    }
    if (txn->db) {
        apr_dbm_close(txn->db);
        txn->db = NULL;
    }
    if (txn->locked) {
        apr_global_mutex_unlock(txn->store->mutex);
        txn->locked = 0;
    }
    return APR_SUCCESS;
}

static apr_status_t txn_lock(rs_txn_t *txn)
{
    apr_status_t rv;

    /* sdbm's shared flock orders readers against writers (LOCKING) */
    if (!txn->store->mutex || (!txn->write && txn->store->sdbm)) {
        return APR_SUCCESS;
    }
    rv = apr_global_mutex_lock(txn->store->mutex);
    if (rv != APR_SUCCESS) {
        rs_log_perror(RS_LOG_MARK, RS_LOG_ERR, rv, txn->pool,
                      RS_LOGNO(03007) "cannot lock the mutex of state "
                      "database %s", txn->store->path);
        return rv;
    }
    txn->locked = 1;
    return APR_SUCCESS;
}

/* A paged read on sdbm: sdbm's shared lock, no apr_sdbm (LOCKING). */
static apr_status_t paged_try(rs_txn_t *txn)
{
    keep_t *k = keep_get(txn->store);
    apr_status_t rv;

    if (!k) {
        return APR_ENOMEM;
    }
    rs_sdbm_guard_changed(k->guard);
    rv = rs_sdbm_guard_lock_shared(k->guard);
    if (APR_SUCCESS == rv && !rs_sdbm_guard_stale(k->guard)) {
        txn->keep = k;
        txn->guard = k->guard;
        return APR_SUCCESS;
    }
    if (APR_SUCCESS == rv) {            /* unlinked, replaced, chmod'ed */
        rs_sdbm_guard_unlock(k->guard);
        keep_drop(k);
        return APR_EAGAIN;
    }
    keep_drop(k);                       /* no files yet, or unreadable */
    return rv;
}

static apr_status_t paged_open(rs_txn_t *txn)
{
    apr_status_t rv;

    txn->paged = 1;
    rv = paged_try(txn);
    if (APR_STATUS_IS_EAGAIN(rv)) {
        rv = paged_try(txn);
    }
    if (APR_STATUS_IS_EAGAIN(rv)) {
        rv = APR_EGENERAL;
    }
    if (APR_SUCCESS != rv && !APR_STATUS_IS_ENOENT(rv)) {
        rs_log_perror(RS_LOG_MARK, RS_LOG_ERR, rv, txn->pool,
                      RS_LOGNO(03009) "cannot open state database %s "
                      "(type %s, read-only)", txn->store->path,
                      txn->store->type);
    }
    return APR_STATUS_IS_ENOENT(rv) ? APR_ENOENT : rv;
}

/* Read-only opens of a missing database fail with driver specific codes:
 * look for the file first. */
static apr_status_t txn_open(rs_txn_t *txn)
{
    const char *f1, *f2;
    apr_finfo_t fi;
    apr_status_t rv;

    if (!txn->write && txn->store->sdbm) {
        return paged_open(txn);
    }
    rv = rs_store_files(txn->store, txn->pool, &f1, &f2);
    if (rv != APR_SUCCESS) {
        rs_log_perror(RS_LOG_MARK, RS_LOG_ERR, rv, txn->pool,
                      RS_LOGNO(03008) "unknown state database type %s",
                      txn->store->type);
        return rv;
    }
    if (!txn->write) {
        rv = apr_stat(&fi, f1, APR_FINFO_TYPE, txn->pool);
        if (APR_STATUS_IS_ENOENT(rv) || APR_STATUS_IS_ENOTDIR(rv)) {
            return APR_ENOENT;
        }
    }
    txn->dirfile = txn->write && f2 ? f1 : NULL;
    if (txn->write && txn->store->sdbm) {
        return keep_write_open(txn);    /* KEPT OPEN */
    }
    return db_open(txn);
}

apr_status_t rs_store_begin(rs_store_t *s, int write, apr_pool_t *p,
                            rs_txn_t **ptxn)
{
    apr_pool_t *tp;
    rs_txn_t *txn;
    apr_status_t rv;

    *ptxn = NULL;
    apr_pool_create(&tp, p);
    apr_pool_tag(tp, "rs_store_txn");
    txn = apr_pcalloc(tp, sizeof(*txn));
    txn->store = s;
    txn->pool = tp;
    txn->write = write ? 1 : 0;
    apr_pool_create(&txn->dbpool, tp);
    /* A pre-cleanup closes the database before dbpool goes away. */
    apr_pool_pre_cleanup_register(tp, txn, txn_cleanup);
    if (!s->ops && !txn->write && s->sdbm && rs_sdbm_undo_pending(s->path, tp)) {
        rs_txn_t *w;                /* a killed writer's split: undo first */

        if (APR_SUCCESS == rs_store_begin(s, 1, tp, &w)) {
            rs_store_end(w);
        }
    }
    if (s->ops) {
        rv = s->ops->begin(s->impl, txn->write, tp, &txn->ptx);
    }
    else if ((rv = txn_lock(txn)) == APR_SUCCESS) {
        rv = txn_open(txn);
    }
    if (rv != APR_SUCCESS) {
        apr_pool_destroy(tp);
        return rv;
    }
    if (txn->write) {
        thread_writes++;
    }
    else {
        thread_reads++;
    }
    *ptxn = txn;
    return APR_SUCCESS;
}

apr_status_t rs_store_end(rs_txn_t *txn)
{
    apr_status_t rv = APR_SUCCESS;

    if (txn) {
        if (txn->ptx) {
            rv = txn->store->ops->end(txn->ptx);
            txn->ptx = NULL;
        }
        apr_pool_destroy(txn->pool);
    }
    return rv;
}

apr_status_t rs_store_finish(rs_txn_t *txn, apr_status_t rv)
{
    apr_status_t end = rs_store_end(txn);

    return APR_SUCCESS == rv ? end : rv;
}

/* ---- values ------------------------------------------------------------- */

apr_status_t rs_store_get(rs_txn_t *txn, const char *key, apr_pool_t *p,
                          char **val, apr_size_t *len)
{
    apr_datum_t d;
    seg_head_t h;
    char *buf = NULL;
    apr_status_t rv;

    *val = NULL;
    *len = 0;
    if ((rv = check_key(txn, key)) != APR_SUCCESS) {
        return rv;
    }
    if (txn->ptx) {
        return txn->store->ops->get(txn->ptx, key, p, val, len);
    }
    if ((rv = db_fetch(txn, key_datum(key), &d)) != APR_SUCCESS) {
        return rv;
    }
    if (!d.dptr) {
        return APR_ENOENT;
    }
    if ((rv = head_parse(&d, &h)) == APR_SUCCESS) {
        buf = apr_palloc(p, (apr_size_t)h.len + 1);
        memcpy(buf, d.dptr + HEAD_SIZE, d.dsize - HEAD_SIZE);
    }
    datum_free(txn, d);
    if (rv != APR_SUCCESS) {
        log_corrupt(txn, key, "bad head");
        return APR_EINVAL;
    }
    if ((rv = segs_read(txn, key, &h, buf)) != APR_SUCCESS) {
        return rv;
    }
    if (crc32_of(buf, h.len) != h.crc) {
        log_corrupt(txn, key, "checksum mismatch");
        return APR_EINVAL;
    }
    buf[h.len] = '\0';
    *val = buf;
    *len = h.len;
    return APR_SUCCESS;
}

static apr_status_t head_write(rs_txn_t *txn, const char *key,
                               const seg_head_t *h, const char *val)
{
    apr_size_t first = piece_len(h, 0);
    unsigned char *b = apr_palloc(txn->pool, HEAD_SIZE + first);

    head_encode(b, h);
    if (first) {
        memcpy(b + HEAD_SIZE, val, first);
    }
    return db_store(txn, key_datum(key), (const char *)b, HEAD_SIZE + first);
}

static apr_status_t check_put(rs_txn_t *txn, const char *key,
                              const char *val, apr_size_t len)
{
    apr_status_t rv;

    if ((rv = check_write(txn, "put")) != APR_SUCCESS
        || (rv = check_key(txn, key)) != APR_SUCCESS) {
        return rv;
    }
    if (len > RS_STORE_MAX_VALUE || (len && !val)) {
        rs_log_perror(RS_LOG_MARK, RS_LOG_ERR, APR_EINVAL, txn->pool,
                      RS_LOGNO(03010) "state value for \"%s\" too large (%"
                      APR_SIZE_T_FMT " bytes, max %d)", key, len,
                      RS_STORE_MAX_VALUE);
        return APR_EINVAL;
    }
    return APR_SUCCESS;
}

/* After the head switched (a put or delete is done), removing old
 * segments failed: they are garbage for rs_store_gc (resumablectl
 * repair) and the change stands; reporting it as failed would make the
 * caller undo or repeat work that took effect. */
static void log_garbage(rs_txn_t *txn, const char *key, apr_status_t rv)
{
    rs_log_perror(RS_LOG_MARK, RS_LOG_WARNING, rv, txn->pool,
                  RS_LOGNO(09207) "state \"%s\" written, but removing its "
                  "old segments failed (garbage for resumablectl repair)",
                  key);
}

static apr_status_t put_value(rs_txn_t *txn, const char *key,
                              const char *val, apr_size_t len)
{
    seg_head_t old, h;
    int found;
    apr_status_t rv;

    if ((rv = check_put(txn, key, val, len)) != APR_SUCCESS) {
        return rv;
    }
    if (txn->ptx) {
        return txn->store->ops->put(txn->ptx, key, val, len);
    }
    if ((rv = head_read(txn, key, &old, &found)) != APR_SUCCESS) {
        return rv;
    }
    h.piece = piece_size(strlen(key));
    h.len = (apr_uint32_t)len;
    h.nseg = nseg_for(h.len, h.piece);
    h.gen = found > 0 ? old.gen + 1 : 1;
    h.crc = crc32_of(val, len);
    if ((rv = segs_sweep(txn, key, h.gen)) != APR_SUCCESS
        || (rv = segs_write(txn, key, &h, val)) != APR_SUCCESS
        || (rv = head_write(txn, key, &h, val)) != APR_SUCCESS
        || found <= 0) {
        return rv;
    }
    /* stored: a failure from here on only leaves garbage (rs_store_gc) */
    if ((rv = segs_delete(txn, key, old.gen, 1, old.nseg)) != APR_SUCCESS
        || (rv = segs_sweep(txn, key, old.gen - 1)) != APR_SUCCESS) {
        log_garbage(txn, key, rv);
    }
    return APR_SUCCESS;
}

apr_status_t rs_store_put(rs_txn_t *txn, const char *key, const char *val,
                          apr_size_t len)
{
    apr_status_t rv = put_value(txn, key, val, len);

    if (APR_SUCCESS == rv) {
        apr_atomic_inc32(&txn->store->puts);
    }
    return rv;
}

apr_uint32_t rs_store_puts(const rs_store_t *s)
{
    return apr_atomic_read32((volatile apr_uint32_t *)&s->puts);
}

apr_status_t rs_store_delete(rs_txn_t *txn, const char *key)
{
    seg_head_t old;
    int found;
    apr_status_t rv;

    if ((rv = check_write(txn, "delete")) != APR_SUCCESS
        || (rv = check_key(txn, key)) != APR_SUCCESS) {
        return rv;
    }
    if (txn->ptx) {
        return txn->store->ops->del(txn->ptx, key);
    }
    if ((rv = head_read(txn, key, &old, &found)) != APR_SUCCESS
        || found == 0) {
        return rv;
    }
    /* The atomic switch; segments of an unparsable head are left to gc. */
    if ((rv = db_delete(txn, key_datum(key))) != APR_SUCCESS || found < 0) {
        return rv;
    }
    /* deleted: a failure from here on only leaves garbage (rs_store_gc) */
    if ((rv = segs_delete(txn, key, old.gen, 1, old.nseg)) != APR_SUCCESS
        || (rv = segs_sweep(txn, key, old.gen + 1)) != APR_SUCCESS
        || (rv = segs_sweep(txn, key, old.gen - 1)) != APR_SUCCESS) {
        log_garbage(txn, key, rv);
    }
    return APR_SUCCESS;
}

/* ---- iteration ---------------------------------------------------------- */

/*
 * Copy every key starting with prefix into an array (pool p): head keys when
 * segments is 0, segment keys when it is 1. Keys holding a NUL are not ours
 * and skipped. The datum of the previous key stays valid until nextkey
 * returns (gdbm needs it), then it is freed.
 */
typedef struct keys_ctx {
    const char *prefix;
    apr_size_t plen;
    int segments;
    apr_array_header_t *arr;
} keys_ctx;

/* Keep key k when it has the prefix and is (or is not) a segment key. */
static int keys_take(void *baton, const char *k, apr_size_t klen)
{
    keys_ctx *c = baton;
    int is_seg = memchr(k, SEG_SEP, klen) != NULL;

    if (is_seg == c->segments && klen >= c->plen && !memchr(k, '\0', klen)
        && !memcmp(k, c->prefix, c->plen)) {
        APR_ARRAY_PUSH(c->arr, const char *) =
            apr_pstrmemdup(c->arr->pool, k, klen);
    }
    return 0;
}

/* A paged read lists the keys from the pages themselves (holes skipped),
 * under the shared lock it holds: apr_sdbm's nextkey reads every page of
 * the sparse file one read() at a time. A corrupt page fails the listing,
 * as it fails any fetch. */
static apr_status_t keys_paged(rs_txn_t *txn, keys_ctx *c)
{
    int bad = 0;
    apr_status_t rv = rs_sdbm_guard_keys(txn->guard, keys_take, c, &bad);

    if (APR_SUCCESS == rv && bad) {
        rs_log_perror(RS_LOG_MARK, RS_LOG_CRIT, 0, txn->pool,
                      RS_LOGNO(03014) "state database %s: %d corrupt "
                      "page(s) found while listing keys",
                      txn->store->path, bad);
        rv = APR_EINVAL;        /* as a failed fetch: the database is bad */
    }
    return rv;
}

static apr_status_t keys_collect(rs_txn_t *txn, const char *prefix,
                                 int segments, apr_pool_t *p,
                                 apr_array_header_t **out)
{
    apr_size_t plen = strlen(prefix);
    apr_array_header_t *arr = apr_array_make(p, 64, sizeof(const char *));
    apr_datum_t k, prev;
    apr_status_t rv;

    if (!HAS_DB(txn) && txn->paged && txn->guard) {
        keys_ctx c = { prefix, plen, segments, arr };

        *out = arr;
        return keys_paged(txn, &c);
    }
    rv = !HAS_DB(txn) && txn->paged ? db_open(txn) : APR_SUCCESS;

    k.dptr = NULL;
    if (APR_SUCCESS == rv) {
        rv = HAS_DB(txn) ? dbx_key(txn, 1, &k) : APR_EBADF;
    }

    while (rv == APR_SUCCESS && k.dptr) {
        int is_seg = memchr(k.dptr, SEG_SEP, k.dsize) != NULL;

        if (is_seg == segments && k.dsize >= plen
            && !memchr(k.dptr, '\0', k.dsize)
            && !memcmp(k.dptr, prefix, plen)) {
            APR_ARRAY_PUSH(arr, const char *) =
                apr_pstrmemdup(p, k.dptr, k.dsize);
        }
        prev = k;
        rv = dbx_key(txn, 0, &k);
        dbx_free(txn, prev);
    }
    if (APR_STATUS_IS_EOF(rv)) {
        rv = APR_SUCCESS;       /* sdbm says EOF past its last page */
    }
    if (rv != APR_SUCCESS && HAS_DB(txn)) {
        rs_log_perror(RS_LOG_MARK, RS_LOG_ERR, rv, txn->pool,
                      RS_LOGNO(03011) "state database %s: iteration "
                      "failed: %s", txn->store->path, db_error(txn));
    }
    *out = arr;
    return rv;
}

apr_status_t rs_store_keys(rs_txn_t *txn, const char *prefix,
                           rs_store_key_cb *cb, void *baton)
{
    apr_pool_t *sp;
    apr_array_header_t *keys;
    apr_status_t rv;
    int i;

    apr_pool_create(&sp, txn->pool);
    rv = txn->ptx
         ? txn->store->ops->keys(txn->ptx, prefix ? prefix : "", sp, &keys)
         : keys_collect(txn, prefix ? prefix : "", 0, sp, &keys);
    for (i = 0; rv == APR_SUCCESS && i < keys->nelts; i++) {
        if (cb(baton, APR_ARRAY_IDX(keys, i, const char *))) {
            break;
        }
    }
    apr_pool_destroy(sp);
    return rv;
}

/*
 * Is segment key sk ("K\x1fG.n") still referenced by K's head? Heads are
 * looked up once per K; cache maps K to a seg_head_t or to "absent".
 */
static int seg_is_live(rs_txn_t *txn, apr_hash_t *cache, const char *sk)
{
    static seg_head_t absent;
    const char *sep = strchr(sk, SEG_SEP);
    const char *base = apr_pstrmemdup(apr_hash_pool_get(cache), sk,
                                      sep - sk);
    seg_head_t *h = apr_hash_get(cache, base, APR_HASH_KEY_STRING);
    unsigned gen, n;
    char tail;
    int found;

    if (!h) {
        h = apr_palloc(apr_hash_pool_get(cache), sizeof(*h));
        if (head_read(txn, base, h, &found) != APR_SUCCESS || found <= 0) {
            h = &absent;
        }
        apr_hash_set(cache, base, APR_HASH_KEY_STRING, h);
    }
    if (h == &absent || sscanf(sep + 1, "%u.%u%c", &gen, &n, &tail) != 2) {
        return 0;
    }
    return gen == h->gen && n >= 1 && n < h->nseg;
}

apr_status_t rs_store_gc(rs_txn_t *txn, const char *prefix,
                         apr_size_t *removed)
{
    apr_pool_t *sp;
    apr_array_header_t *segs;
    apr_hash_t *cache;
    apr_status_t rv;
    int i;

    *removed = 0;
    if ((rv = check_write(txn, "gc")) != APR_SUCCESS || txn->ptx) {
        return rv;              /* a provider has no segments */
    }
    apr_pool_create(&sp, txn->pool);
    cache = apr_hash_make(sp);
    rv = keys_collect(txn, prefix ? prefix : "", 1, sp, &segs);
    for (i = 0; rv == APR_SUCCESS && i < segs->nelts; i++) {
        const char *sk = APR_ARRAY_IDX(segs, i, const char *);

        if (!seg_is_live(txn, cache, sk)) {
            rv = db_delete(txn, key_datum(sk));
            *removed += rv == APR_SUCCESS;
        }
    }
    apr_pool_destroy(sp);
    return rv;
}

/* ---- one-shot transactions ---------------------------------------------- */

apr_status_t rs_store_get1(rs_store_t *s, const char *key, apr_pool_t *p,
                           char **val, apr_size_t *len)
{
    rs_txn_t *txn;
    apr_status_t rv = rs_store_begin(s, 0, p, &txn);

    if (rv != APR_SUCCESS) {
        *val = NULL;
        *len = 0;
        return rv;
    }
    rv = rs_store_get(txn, key, p, val, len);
    rs_store_end(txn);
    return rv;
}

apr_status_t rs_store_put1(rs_store_t *s, const char *key, const char *val,
                           apr_size_t len, apr_pool_t *p)
{
    rs_txn_t *txn;
    apr_status_t rv = rs_store_begin(s, 1, p, &txn);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    rv = rs_store_put(txn, key, val, len);
    return rs_store_finish(txn, rv);
}

apr_status_t rs_store_delete1(rs_store_t *s, const char *key, apr_pool_t *p)
{
    rs_txn_t *txn;
    apr_status_t rv = rs_store_begin(s, 1, p, &txn);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    rv = rs_store_delete(txn, key);
    return rs_store_finish(txn, rv);
}
