/* Licensed under the Apache License, Version 2.0. */
/*
 * Strict checks of sdbm pages before APR-util's sdbm uses them, and the
 * pair lookup of paged reads; see include/rs_sdbm_guard.h. The page
 * layout, page lookup and pair lookup follow APR-util's dbm/sdbm (sdbm.c
 * getpage/getdbit, sdbm_pair.c getpair/seepair):
 *   .pag: pages of PBLKSIZ (1024) bytes. A page starts with an array of
 *         shorts ino[0..n]: ino[0] = n, the number of entries (two per
 *         key/value pair, so even); ino[1..n] are offsets where each key and
 *         value start, counted from the page start, decreasing, and all at
 *         or above the end of the ino array.
 *   .dir: a bitmap; bit b set means page number b was split. sdbm walks it
 *         from bit 0 with the key's hash to find the page: while the bit is
 *         set, b = 2b + 1 or 2b + 2 by the next hash bit; the page number is
 *         the hash masked to the number of hash bits used.
 * The files are read with pread on their OS handles: one system call per
 * block, no shared file offset.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1            /* SEEK_DATA */
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <apr_file_io.h>
#include <apr_portable.h>
#include <apr_strings.h>

#include "rs_sdbm_guard.h"

#define PBLKSIZ 1024
#define DBLKSIZ 4096
#define BYTESIZ 8
#define CACHE_BLOCKS 8          /* directory blocks kept per guard */
#define CACHE_PAGES 16          /* checked pages kept per guard */
#define SCAN_PAGES 64           /* pages read per pread by rs_sdbm_guard_keys */

int rs_sdbm_page_ok(const unsigned char *page)
{
    short ino[PBLKSIZ / sizeof(short)];
    int n, i, floor_, off = PBLKSIZ;

    memcpy(ino, page, PBLKSIZ);
    n = ino[0];
    if (n < 0 || (n & 1) || (n + 1) * (int)sizeof(short) > PBLKSIZ) {
        return 0;
    }
    floor_ = (n + 1) * (int)sizeof(short);
    for (i = 1; i <= n; i++) {
        if (ino[i] > off || ino[i] < floor_) {
            return 0;
        }
        off = ino[i];
    }
    return 1;
}

/* sdbm's own hash (sdbm_hash.c): n = c + 65599 * n over the key bytes. */
static long sdbm_hash(const char *s, apr_size_t len)
{
    unsigned long n = 0;

    while (len--) {
        n = (unsigned long)(long)*s++ + 65599UL * n;
    }
    return (long)n;
}

/* Read `len` bytes at `off` with pread. A block that ends past the end of
 * the file reads as all zeros, as in sdbm's read_from. */
static apr_status_t read_at(int fd, apr_off_t off, unsigned char *buf,
                            apr_size_t len)
{
    apr_size_t got = 0;
    ssize_t n;

    while (got < len) {
        n = pread(fd, buf + got, len - got, (off_t)(off + (apr_off_t)got));
        if (n < 0 && EINTR == errno) {
            continue;
        }
        if (n < 0) {
            return APR_FROM_OS_ERROR(errno);
        }
        if (0 == n) {
            memset(buf, 0, len);
            break;
        }
        got += (apr_size_t)n;
    }
    return APR_SUCCESS;
}

struct rs_sdbm_guard_t {
    const char *path;
    const char *undo, *undotmp; /* "<path>.undo", "<path>.undo.tmp" */
    apr_pool_t *pool;
    int opened;                 /* 0 not yet, 1 open, -1 no files yet */
    int locked;                 /* rs_sdbm_guard_lock_shared holds it */
    int unlock_registered;
    apr_file_t *dirf;           /* .dir, the file sdbm locks */
    int dir, pag;               /* OS handles of the open files */
    struct stat dst, pst;       /* .dir and .pag as opened (rs_sdbm_guard_stale) */
    apr_off_t size;             /* of the .dir file; -1 unknown */
    long block[CACHE_BLOCKS];   /* cached block numbers, -1 free */
    int next;                   /* slot the next miss replaces */
    unsigned char *page;    /* the page of the last check (in pages) */
    long pno;               /* its page number */
    int page_ok;            /* page holds page pno as on disk, checked */
    int cur;                /* slot of page in pages */
    int pnext;              /* slot the next page miss replaces */
    long spno[CACHE_PAGES]; /* page held by each slot, checked; -1 none */
    unsigned char pages[CACHE_PAGES][PBLKSIZ];
    int fits;               /* the last journal found no split coming */
    unsigned char buf[CACHE_BLOCKS][DBLKSIZ];
};

/* Directory block number `block`, from the cache or read on a miss. */
static const unsigned char *dir_block(rs_sdbm_guard_t *g, long block,
                                      apr_status_t *rv)
{
    int i = 0;

    while (i < CACHE_BLOCKS && g->block[i] != block) {
        i++;
    }
    if (CACHE_BLOCKS == i) {
        i = g->next;
        g->next = (g->next + 1) % CACHE_BLOCKS;
        g->block[i] = -1;
        *rv = read_at(g->dir, (apr_off_t)block * DBLKSIZ, g->buf[i], DBLKSIZ);
        if (APR_SUCCESS == *rv) {
            g->block[i] = block;
        }
    }
    return g->buf[i];
}

static int dir_bit(rs_sdbm_guard_t *g, long bit, apr_status_t *rv)
{
    long c = bit / BYTESIZ;
    const unsigned char *b = dir_block(g, c / DBLKSIZ, rv);

    return APR_SUCCESS == *rv && (b[c % DBLKSIZ] & (1 << (bit % BYTESIZ)));
}

/* The page number sdbm uses for hash. */
static apr_status_t page_of(rs_sdbm_guard_t *g, long hash, long *page)
{
    long dbit = 0, maxbno = (long)(g->size * BYTESIZ);
    int hbit = 0;
    apr_status_t rv = APR_SUCCESS;

    while (dbit < maxbno && hbit < 31 && dir_bit(g, dbit, &rv)) {
        dbit = 2 * dbit + ((hash & (1L << hbit++)) ? 2 : 1);
    }
    *page = hash & ((1L << hbit) - 1);
    return rv;
}

static apr_status_t open_one(rs_sdbm_guard_t *g, const char *suffix,
                             apr_file_t **pf, int *fd)
{
    apr_file_t *f;
    apr_os_file_t os;
    apr_status_t rv = apr_file_open(&f, apr_pstrcat(g->pool, g->path, suffix,
                                                    NULL),
                                    APR_FOPEN_READ | APR_FOPEN_BINARY, 0,
                                    g->pool);

    if (APR_SUCCESS == rv) {
        apr_os_file_get(&os, f);
        *fd = os;
        *pf = f;
    }
    return rv;
}

/* Open both files once; closed with the pool (apr_file_t cleanups). */
static apr_status_t guard_open(rs_sdbm_guard_t *g)
{
    apr_file_t *pagf;
    apr_status_t rv = open_one(g, ".dir", &g->dirf, &g->dir);

    if (APR_SUCCESS == rv) {
        rv = open_one(g, ".pag", &pagf, &g->pag);
    }
    if (APR_SUCCESS == rv && (fstat(g->dir, &g->dst) || fstat(g->pag,
                                                               &g->pst))) {
        rv = APR_FROM_OS_ERROR(errno);
    }
    if (APR_STATUS_IS_ENOENT(rv)) {
        g->opened = -1;             /* sdbm creates fresh files */
        return APR_SUCCESS;
    }
    g->opened = APR_SUCCESS == rv;
    return rv;
}

/* f still is what was opened as st: linked, same owner and mode. */
static int same_file(int fd, const struct stat *st, struct stat *now)
{
    return 0 == fstat(fd, now) && now->st_nlink > 0
           && now->st_uid == st->st_uid && now->st_gid == st->st_gid
           && now->st_mode == st->st_mode;
}

apr_off_t rs_sdbm_guard_dir_size(const rs_sdbm_guard_t *g)
{
    return g->size;
}

int rs_sdbm_guard_stale(rs_sdbm_guard_t *g)
{
    struct stat d, pg;

    if (g->opened <= 0) {
        return 0;
    }
    if (!same_file(g->dir, &g->dst, &d) || !same_file(g->pag, &g->pst, &pg)) {
        return 1;
    }
    g->size = (apr_off_t)d.st_size;     /* saves the check's fstat */
    return 0;
}

apr_status_t rs_sdbm_guard_open_at_path(rs_sdbm_guard_t *g)
{
    struct stat d, pg;
    apr_status_t rv = g->opened ? APR_SUCCESS : guard_open(g);

    if (APR_SUCCESS != rv || g->opened <= 0) {
        return APR_SUCCESS == rv ? APR_ENOENT : rv;
    }
    if (stat(apr_pstrcat(g->pool, g->path, ".dir", NULL), &d)
        || stat(apr_pstrcat(g->pool, g->path, ".pag", NULL), &pg)) {
        return APR_FROM_OS_ERROR(errno);
    }
    return d.st_ino == g->dst.st_ino && d.st_dev == g->dst.st_dev
           && pg.st_ino == g->pst.st_ino && pg.st_dev == g->pst.st_dev
           ? APR_SUCCESS : APR_EAGAIN;
}

rs_sdbm_guard_t *rs_sdbm_guard_make(const char *path, apr_pool_t *p)
{
    rs_sdbm_guard_t *g = apr_palloc(p, sizeof(*g));

    g->path = apr_pstrdup(p, path);
    g->undo = apr_pstrcat(p, path, ".undo", NULL);
    g->undotmp = apr_pstrcat(p, path, ".undo.tmp", NULL);
    g->pool = p;
    g->opened = 0;
    g->locked = g->unlock_registered = 0;
    g->fits = 0;
    g->dir = g->pag = -1;
    g->pno = -1;
    g->page = g->pages[0];
    g->cur = g->pnext = 0;
    rs_sdbm_guard_changed(g);
    return g;
}

void rs_sdbm_guard_changed(rs_sdbm_guard_t *g)
{
    int i;

    for (i = 0; i < CACHE_BLOCKS; i++) {
        g->block[i] = -1;
    }
    for (i = 0; i < CACHE_PAGES; i++) {
        g->spno[i] = -1;
    }
    g->next = 0;
    g->size = -1;
    g->page_ok = 0;
    if (g->opened < 0) {
        g->opened = 0;              /* the files may exist now */
    }
}

/* Make slot i the current page (g->page, g->pno). */
static void page_use(rs_sdbm_guard_t *g, int i, long pno)
{
    g->cur = i;
    g->page = g->pages[i];
    g->pno = pno;
}

apr_status_t rs_sdbm_guard_check(rs_sdbm_guard_t *g, const char *key,
                                 apr_size_t klen)
{
    struct stat st;
    long pno;
    int i;
    apr_status_t rv = APR_SUCCESS;

    if (0 == g->opened) {
        rv = guard_open(g);
    }
    if (APR_SUCCESS != rv || g->opened < 0) {
        return rv;
    }
    if (g->size < 0) {
        if (fstat(g->dir, &st)) {
            return APR_FROM_OS_ERROR(errno);
        }
        g->size = (apr_off_t)st.st_size;
    }
    rv = page_of(g, sdbm_hash(key, klen), &pno);
    g->page_ok = 0;
    if (APR_SUCCESS != rv) {
        return rv;
    }
    for (i = 0; i < CACHE_PAGES; i++) {
        if (g->spno[i] == pno) {
            page_use(g, i, pno);    /* read and checked, unchanged since */
            g->page_ok = 1;
            return APR_SUCCESS;
        }
    }
    i = g->pnext;
    g->pnext = (g->pnext + 1) % CACHE_PAGES;
    g->spno[i] = -1;
    page_use(g, i, pno);
    rv = read_at(g->pag, (apr_off_t)pno * PBLKSIZ, g->page, PBLKSIZ);
    if (APR_SUCCESS != rv) {
        return rv;
    }
    g->page_ok = rs_sdbm_page_ok(g->page);
    if (g->page_ok) {
        g->spno[i] = pno;
    }
    return g->page_ok ? APR_SUCCESS : APR_EINVAL;
}

void rs_sdbm_guard_page_changed(rs_sdbm_guard_t *g)
{
    g->page_ok = 0;
    g->spno[g->cur] = -1;           /* the page of the last check */
}

int rs_sdbm_guard_stored(rs_sdbm_guard_t *g)
{
    int split = !g->fits;

    if (split) {
        rs_sdbm_guard_changed(g);
    }
    else {
        rs_sdbm_guard_page_changed(g);
    }
    g->fits = 0;
    return split;
}

/* Unlock explicitly before the close, as sdbm does: a copy of the
 * descriptor inherited by a child forked meanwhile would keep the lock. */
static apr_status_t guard_unlock(void *data)
{
    rs_sdbm_guard_t *g = data;

    if (g->locked) {
        apr_file_unlock(g->dirf);
        g->locked = 0;
    }
    return APR_SUCCESS;
}

void rs_sdbm_guard_unlock(rs_sdbm_guard_t *g)
{
    guard_unlock(g);
}

apr_status_t rs_sdbm_guard_lock_shared(rs_sdbm_guard_t *g)
{
    apr_status_t rv = g->opened > 0 ? APR_SUCCESS : guard_open(g);

    if (APR_SUCCESS == rv && g->opened < 0) {
        g->opened = 0;
        return APR_ENOENT;
    }
    if (APR_SUCCESS == rv) {
        rv = apr_file_lock(g->dirf, APR_FLOCK_SHARED);
    }
    g->locked = APR_SUCCESS == rv;
    if (APR_SUCCESS == rv && !g->unlock_registered) {
        /* registered after the open: runs before the file's close */
        apr_pool_cleanup_register(g->pool, g, guard_unlock,
                                  apr_pool_cleanup_null);
        g->unlock_registered = 1;
    }
    return rv;
}

/* sdbm_pair.c seepair: the index of key's entry in a checked page, 0 if
 * absent. Entry i is a key from ino[i] up to the previous entry's start;
 * its value follows at ino[i + 1]. */
static int seepair(const unsigned char *page, const char *key,
                   apr_size_t klen)
{
    short ino[PBLKSIZ / sizeof(short)];
    int i, n, off = PBLKSIZ;

    memcpy(ino, page, PBLKSIZ);
    n = ino[0];
    for (i = 1; i < n; i += 2) {
        if ((apr_size_t)(off - ino[i]) == klen
            && !memcmp(key, page + ino[i], klen)) {
            return i;
        }
        off = ino[i + 1];
    }
    return 0;
}

apr_status_t rs_sdbm_guard_fetch(rs_sdbm_guard_t *g, const char *key,
                                 apr_size_t klen, const char **val,
                                 apr_size_t *vlen)
{
    short ino[PBLKSIZ / sizeof(short)];
    apr_status_t rv = rs_sdbm_guard_check(g, key, klen);
    int i;

    *val = NULL;
    *vlen = 0;
    if (APR_SUCCESS != rv || g->opened < 0
        || 0 == (i = seepair(g->page, key, klen))) {
        return rv;
    }
    memcpy(ino, g->page, PBLKSIZ);
    *val = (const char *)g->page + ino[i + 1];
    *vlen = (apr_size_t)(ino[i] - ino[i + 1]);
    return APR_SUCCESS;
}

/* Call cb for every key of a checked page; 1 when cb stopped the scan. */
static int page_keys(const unsigned char *page, rs_sdbm_key_cb *cb,
                     void *baton)
{
    short ino[PBLKSIZ / sizeof(short)];
    int i, n, off = PBLKSIZ;

    memcpy(ino, page, PBLKSIZ);
    n = ino[0];
    for (i = 1; i < n; i += 2) {
        if (cb(baton, (const char *)page + ino[i], (apr_size_t)(off - ino[i]))) {
            return 1;
        }
        off = ino[i + 1];
    }
    return 0;
}

/* Next offset at or after off that holds data (holes are empty pages),
 * rounded down to a page; -1 past the end. Without SEEK_DATA: off. */
static apr_off_t next_data(int fd, apr_off_t off, apr_off_t end)
{
#ifdef SEEK_DATA
    off_t d = lseek(fd, (off_t)off, SEEK_DATA);

    if (d < 0) {
        return ENXIO == errno ? -1 : off;
    }
    return ((apr_off_t)d / PBLKSIZ) * PBLKSIZ;
#else
    return off < end ? off : -1;
#endif
}

apr_status_t rs_sdbm_guard_keys(rs_sdbm_guard_t *g, rs_sdbm_key_cb *cb,
                                void *baton, int *bad)
{
    unsigned char buf[SCAN_PAGES * PBLKSIZ];
    struct stat st;
    apr_off_t off = 0, len;
    apr_status_t rv;
    int i;

    *bad = 0;
    if (!g->opened && APR_SUCCESS != (rv = guard_open(g))) {
        return rv;
    }
    if (g->opened < 0 || 0 != fstat(g->pag, &st)) {
        return g->opened < 0 ? APR_SUCCESS : APR_FROM_OS_ERROR(errno);
    }
    while (off < (apr_off_t)st.st_size
           && (off = next_data(g->pag, off, st.st_size)) >= 0) {
        len = (apr_off_t)st.st_size - off;
        len = len < (apr_off_t)sizeof(buf) ? len : (apr_off_t)sizeof(buf);
        len -= len % PBLKSIZ;
        if (len <= 0) {
            break;
        }
        if (APR_SUCCESS != (rv = read_at(g->pag, off, buf, (apr_size_t)len))) {
            return rv;
        }
        for (i = 0; i < len / PBLKSIZ; i++) {
            if (!rs_sdbm_page_ok(buf + i * PBLKSIZ)) {
                (*bad)++;
            }
            else if (page_keys(buf + i * PBLKSIZ, cb, baton)) {
                return APR_SUCCESS;
            }
        }
        off += len;
    }
    return APR_SUCCESS;
}

/* ---- undo of a split ------------------------------------------------------
 * "<path>.undo": UNDO_MAGIC, then page number, .dir size and .pag size as
 * 8-byte native integers, the page (PBLKSIZ) and the whole .dir. Written
 * as "<path>.undo.tmp" and renamed, so it exists whole or not at all. */

#define UNDO_MAGIC "RSSDBMU1"
#define UNDO_HEAD  (8 + 3 * 8)

static int seepair(const unsigned char *page, const char *key,
                   apr_size_t klen);

/* sdbm_pair.c fitpair: room on page for key and a value of vlen bytes,
 * once the key's old pair is deleted (sdbm's replace deletes it first)? */
static int page_fits(const unsigned char *page, const char *key,
                     apr_size_t klen, apr_size_t vlen)
{
    short ino[PBLKSIZ / sizeof(short)];
    int n, off, i = seepair(page, key, klen);
    apr_size_t room;

    memcpy(ino, page, PBLKSIZ);
    n = ino[0];
    off = n > 0 ? ino[n] : PBLKSIZ;
    room = (apr_size_t)(off - (n + 1) * (int)sizeof(short));
    if (i) {
        room += klen + (apr_size_t)(ino[i] - ino[i + 1])
                + 2 * sizeof(short);
    }
    return klen + vlen + 2 * sizeof(short) <= room;
}

static apr_status_t write_all(int fd, const void *buf, apr_size_t len,
                              apr_off_t off)
{
    const char *b = buf;
    ssize_t n;

    while (len > 0) {
        n = pwrite(fd, b, len, (off_t)off);
        if (n < 0 && EINTR == errno) {
            continue;
        }
        if (n <= 0) {
            return n < 0 ? APR_FROM_OS_ERROR(errno) : APR_EGENERAL;
        }
        b += n;
        off += n;
        len -= (apr_size_t)n;
    }
    return APR_SUCCESS;
}

static apr_status_t fd_size(int fd, apr_off_t *size)
{
    struct stat st;

    if (fstat(fd, &st)) {
        return APR_FROM_OS_ERROR(errno);
    }
    *size = (apr_off_t)st.st_size;
    return APR_SUCCESS;
}

/* Save page g->pno, the .dir and the .pag size to the undo file. */
static apr_status_t undo_write(rs_sdbm_guard_t *g)
{
    const char *undo = g->undo, *tmp = g->undotmp;
    apr_int64_t head[3];
    apr_off_t dsize = 0, psize = 0;
    unsigned char *dir = NULL;
    apr_status_t rv = fd_size(g->dir, &dsize);
    int fd = -1;

    if (APR_SUCCESS == rv) {
        rv = fd_size(g->pag, &psize);
    }
    if (APR_SUCCESS == rv && !(dir = malloc(dsize ? (size_t)dsize : 1))) {
        rv = APR_ENOMEM;
    }
    if (APR_SUCCESS == rv) {
        rv = read_at(g->dir, 0, dir, (apr_size_t)dsize);
    }
    if (APR_SUCCESS == rv
        && (fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600))
           < 0) {
        rv = APR_FROM_OS_ERROR(errno);
    }
    head[0] = g->pno;
    head[1] = dsize;
    head[2] = psize;
    if (APR_SUCCESS == rv) {
        rv = write_all(fd, UNDO_MAGIC, 8, 0);
    }
    if (APR_SUCCESS == rv) {
        rv = write_all(fd, head, sizeof(head), 8);
    }
    if (APR_SUCCESS == rv) {
        rv = write_all(fd, g->page, PBLKSIZ, UNDO_HEAD);
    }
    if (APR_SUCCESS == rv) {
        rv = write_all(fd, dir, (apr_size_t)dsize, UNDO_HEAD + PBLKSIZ);
    }
    if (fd >= 0 && close(fd) && APR_SUCCESS == rv) {
        rv = APR_FROM_OS_ERROR(errno);
    }
    if (APR_SUCCESS == rv && rename(tmp, undo)) {
        rv = APR_FROM_OS_ERROR(errno);
    }
    if (APR_SUCCESS != rv) {
        unlink(tmp);
    }
    free(dir);
    return rv;
}

apr_status_t rs_sdbm_guard_journal(rs_sdbm_guard_t *g, const char *key,
                                   apr_size_t klen, apr_size_t vlen,
                                   int *saved)
{
    apr_status_t rv;

    *saved = 0;
    g->fits = g->opened > 0 && g->pno >= 0 && g->page_ok
              && page_fits(g->page, key, klen, vlen);
    if (g->opened <= 0 || g->pno < 0 || g->fits) {
        return APR_SUCCESS;         /* no split: one page write */
    }
    rv = undo_write(g);
    *saved = APR_SUCCESS == rv;
    return rv;
}

void rs_sdbm_guard_unjournal(rs_sdbm_guard_t *g)
{
    unlink(g->undo);
}

int rs_sdbm_undo_pending(const char *path, apr_pool_t *p)
{
    struct stat st;

    return 0 == stat(apr_pstrcat(p, path, ".undo", NULL), &st);
}

/* Put page, .dir and .pag size of the undo file u (fd) back. */
static apr_status_t undo_restore(int u, const char *path, apr_pool_t *p)
{
    char magic[8];
    apr_int64_t head[3];
    unsigned char page[PBLKSIZ], *dir = NULL;
    apr_off_t usize = 0;
    apr_status_t rv = fd_size(u, &usize);
    int dfd = -1, pfd = -1;

    if (APR_SUCCESS == rv) {
        rv = read_at(u, 0, (unsigned char *)magic, 8);
    }
    if (APR_SUCCESS == rv) {
        rv = read_at(u, 8, (unsigned char *)head, sizeof(head));
    }
    if (APR_SUCCESS == rv && (memcmp(magic, UNDO_MAGIC, 8) || head[0] < 0
                              || head[1] < 0 || head[2] < 0
                              || usize != UNDO_HEAD + PBLKSIZ + head[1])) {
        rv = APR_EINVAL;
    }
    if (APR_SUCCESS == rv && !(dir = malloc(head[1] ? (size_t)head[1] : 1))) {
        rv = APR_ENOMEM;
    }
    if (APR_SUCCESS == rv) {
        rv = read_at(u, UNDO_HEAD, page, PBLKSIZ);
    }
    if (APR_SUCCESS == rv) {
        rv = read_at(u, UNDO_HEAD + PBLKSIZ, dir, (apr_size_t)head[1]);
    }
    if (APR_SUCCESS == rv
        && ((dfd = open(apr_pstrcat(p, path, ".dir", NULL), O_RDWR
                        | O_CLOEXEC)) < 0
            || (pfd = open(apr_pstrcat(p, path, ".pag", NULL), O_RDWR
                           | O_CLOEXEC)) < 0)) {
        rv = APR_FROM_OS_ERROR(errno);
    }
    if (APR_SUCCESS == rv) {
        rv = write_all(pfd, page, PBLKSIZ, (apr_off_t)head[0] * PBLKSIZ);
    }
    if (APR_SUCCESS == rv) {
        rv = write_all(dfd, dir, (apr_size_t)head[1], 0);
    }
    if (APR_SUCCESS == rv && (ftruncate(dfd, (off_t)head[1])
                              || ftruncate(pfd, (off_t)(head[2]
                                  > (head[0] + 1) * PBLKSIZ ? head[2]
                                  : (head[0] + 1) * PBLKSIZ)))) {
        rv = APR_FROM_OS_ERROR(errno);
    }
    if (dfd >= 0) {
        close(dfd);
    }
    if (pfd >= 0) {
        close(pfd);
    }
    free(dir);
    return rv;
}

apr_status_t rs_sdbm_undo_apply(const char *path, apr_pool_t *p,
                                int *applied)
{
    const char *undo = apr_pstrcat(p, path, ".undo", NULL);
    int u = open(undo, O_RDONLY | O_CLOEXEC);
    apr_status_t rv;

    *applied = 0;
    if (u < 0) {        /* a lone .undo.tmp (no split began) is overwritten
                           by the next journal: one system call here */
        return ENOENT == errno ? APR_SUCCESS : APR_FROM_OS_ERROR(errno);
    }
    unlink(apr_pstrcat(p, undo, ".tmp", NULL));
    rv = undo_restore(u, path, p);
    close(u);
    if (APR_EINVAL == rv || APR_SUCCESS == rv) {
        unlink(undo);               /* applied, or not ours to apply */
    }
    *applied = APR_SUCCESS == rv;
    return rv;
}
