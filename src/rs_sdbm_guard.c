/* Licensed under the Apache License, Version 2.0. */
/*
 * Strict checks of sdbm pages before APR-util's sdbm uses them; see
 * include/rs_sdbm_guard.h. The page layout and page lookup follow APR-util's
 * dbm/sdbm (sdbm.c getpage/getdbit, sdbm_pair.c):
 *   .pag: pages of PBLKSIZ (1024) bytes. A page starts with an array of
 *         shorts ino[0..n]: ino[0] = n, the number of entries (two per
 *         key/value pair, so even); ino[1..n] are offsets where each key and
 *         value start, counted from the page start, decreasing, and all at
 *         or above the end of the ino array.
 *   .dir: a bitmap; bit b set means page number b was split. sdbm walks it
 *         from bit 0 with the key's hash to find the page: while the bit is
 *         set, b = 2b + 1 or 2b + 2 by the next hash bit; the page number is
 *         the hash masked to the number of hash bits used.
 */

#include <apr_strings.h>

#include "rs_sdbm_guard.h"

#define PBLKSIZ 1024
#define DBLKSIZ 4096
#define BYTESIZ 8

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

/* Read `len` bytes at `off`; short reads past the end are zero filled. */
static apr_status_t read_at(apr_file_t *f, apr_off_t off, unsigned char *buf,
                            apr_size_t len)
{
    apr_size_t got = len;
    apr_status_t rv;

    memset(buf, 0, len);
    rv = apr_file_seek(f, APR_SET, &off);
    if (APR_SUCCESS == rv) {
        rv = apr_file_read_full(f, buf, len, &got);
    }
    return APR_STATUS_IS_EOF(rv) ? APR_SUCCESS : rv;
}

typedef struct dirmap {
    apr_file_t *f;
    apr_off_t size;
    long block;                 /* cached block number, -1 none */
    unsigned char buf[DBLKSIZ];
} dirmap;

static int dir_bit(dirmap *d, long bit, apr_status_t *rv)
{
    long c = bit / BYTESIZ, block = c / DBLKSIZ;

    if (block != d->block) {
        *rv = read_at(d->f, (apr_off_t)block * DBLKSIZ, d->buf, DBLKSIZ);
        d->block = block;
    }
    return (d->buf[c % DBLKSIZ] & (1 << (bit % BYTESIZ))) != 0;
}

/* The page number sdbm uses for hash. */
static apr_status_t page_of(dirmap *d, long hash, long *page)
{
    long dbit = 0, maxbno = (long)(d->size * BYTESIZ);
    int hbit = 0;
    apr_status_t rv = APR_SUCCESS;

    while (dbit < maxbno && hbit < 31 && dir_bit(d, dbit, &rv)) {
        dbit = 2 * dbit + ((hash & (1L << hbit++)) ? 2 : 1);
    }
    *page = hash & ((1L << hbit) - 1);
    return rv;
}

static apr_status_t open_parts(const char *path, apr_pool_t *p,
                               apr_file_t **dir, apr_file_t **pag)
{
    apr_status_t rv = apr_file_open(dir, apr_pstrcat(p, path, ".dir", NULL),
                                    APR_FOPEN_READ | APR_FOPEN_BINARY, 0, p);

    if (APR_SUCCESS == rv) {
        rv = apr_file_open(pag, apr_pstrcat(p, path, ".pag", NULL),
                           APR_FOPEN_READ | APR_FOPEN_BINARY, 0, p);
    }
    return rv;
}

apr_status_t rs_sdbm_guard_key(const char *path, const char *key,
                               apr_size_t klen, apr_pool_t *p)
{
    unsigned char page[PBLKSIZ];
    apr_file_t *pag;
    apr_finfo_t fi;
    dirmap *d = apr_pcalloc(p, sizeof(*d));
    long pno;
    apr_status_t rv = open_parts(path, p, &d->f, &pag);

    if (APR_STATUS_IS_ENOENT(rv)) {
        return APR_SUCCESS;         /* sdbm creates fresh files */
    }
    d->block = -1;
    if (APR_SUCCESS == rv
        && APR_SUCCESS == (rv = apr_file_info_get(&fi, APR_FINFO_SIZE, d->f))) {
        d->size = fi.size;
        rv = page_of(d, sdbm_hash(key, klen), &pno);
    }
    if (APR_SUCCESS == rv) {
        rv = read_at(pag, (apr_off_t)pno * PBLKSIZ, page, PBLKSIZ);
    }
    apr_file_close(d->f);
    apr_file_close(pag);
    if (APR_SUCCESS != rv) {
        return rv;
    }
    return rs_sdbm_page_ok(page) ? APR_SUCCESS : APR_EINVAL;
}
