/* Licensed to the Apache Software Foundation (ASF) under one or more
 * contributor license agreements; and licensed under the Apache License,
 * Version 2.0 (the "License"); you may not use this file except in
 * compliance with the License. See http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * Unit tests of rs_store: segmented values on every apr_dbm driver that
 * works here, the byte layout, corruption detection, simulated crashes,
 * garbage collection, read-modify-write under a global mutex across two
 * forked processes, and readers beside writers in other processes (shared
 * reads on sdbm, no torn values).
 */

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/wait.h>

#include <apr_dbm.h>
#include <apr_file_io.h>
#include <apr_global_mutex.h>
#include <apr_strings.h>
#include <apr_hash.h>
#include <apr_tables.h>

#include "rs_test.h"
#include "rs_store.h"
#include "rs_sdbm_guard.h"

/* Piece size of the layout: max(128, 460 - strlen(key)). */
static apr_size_t piece(const char *key)
{
    apr_size_t kl = strlen(key);

    return kl + 128 <= 460 ? 460 - kl : 128;
}

/* ---- helpers ------------------------------------------------------------ */

static char *pattern(apr_pool_t *p, apr_size_t len, unsigned seed)
{
    char *b = apr_palloc(p, len + 1);
    apr_size_t i;

    for (i = 0; i < len; i++) {
        seed = seed * 1103515245u + 12345u;
        b[i] = (char)(seed >> 16);          /* includes NUL bytes */
    }
    return b;
}

static int nseg(const char *key, apr_size_t len)
{
    apr_size_t pc = piece(key);

    return len <= pc ? 1 : (int)((len + pc - 1) / pc);
}

static apr_dbm_t *raw_open(rs_store_t *s, int write, apr_pool_t *p)
{
    apr_dbm_t *db = NULL;

    if (apr_dbm_open_ex(&db, rs_store_type(s), rs_store_path(s),
                        write ? APR_DBM_RWCREATE : APR_DBM_READONLY,
                        APR_OS_DEFAULT, p) != APR_SUCCESS) {
        return NULL;
    }
    return db;
}

/* Raw pairs whose key is `key` or starts with key "\x1f" (NULL: all). */
static int raw_count(rs_store_t *s, const char *key, apr_pool_t *p)
{
    apr_dbm_t *db = raw_open(s, 0, p);
    apr_size_t kl = key ? strlen(key) : 0;
    apr_datum_t k;
    int n = 0;

    if (!db) {
        return -1;
    }
    apr_dbm_firstkey(db, &k);
    while (k.dptr) {
        if (!key || (k.dsize >= kl && !memcmp(k.dptr, key, kl)
                     && (k.dsize == kl || k.dptr[kl] == '\x1f'))) {
            n++;
        }
        apr_dbm_nextkey(db, &k);
    }
    apr_dbm_close(db);
    return n;
}

static char *raw_get(rs_store_t *s, const char *key, apr_size_t *len,
                     apr_pool_t *p)
{
    apr_dbm_t *db = raw_open(s, 0, p);
    apr_datum_t k, v;
    char *out = NULL;

    k.dptr = (char *)key;
    k.dsize = strlen(key);
    if (db && apr_dbm_fetch(db, k, &v) == APR_SUCCESS && v.dptr) {
        out = apr_pmemdup(p, v.dptr, v.dsize);
        *len = v.dsize;
    }
    if (db) {
        apr_dbm_close(db);
    }
    return out;
}

static apr_status_t raw_put(rs_store_t *s, const char *key, const char *val,
                            apr_size_t len, apr_pool_t *p)
{
    apr_dbm_t *db = raw_open(s, 1, p);
    apr_datum_t k, v;
    apr_status_t rv;

    if (!db) {
        return APR_EGENERAL;
    }
    k.dptr = (char *)key;
    k.dsize = strlen(key);
    v.dptr = (char *)val;
    v.dsize = len;
    rv = val ? apr_dbm_store(db, k, v) : apr_dbm_delete(db, k);
    apr_dbm_close(db);
    return rv;
}

static const char *segkey(apr_pool_t *p, const char *key, unsigned gen,
                          unsigned n)
{
    return apr_psprintf(p, "%s\x1f%u.%u", key, gen, n);
}

static int get_is(rs_store_t *s, const char *key, const char *want,
                  apr_size_t wlen, apr_pool_t *p)
{
    char *v;
    apr_size_t len;

    return rs_store_get1(s, key, p, &v, &len) == APR_SUCCESS && len == wlen
           && !memcmp(v, want, wlen) && v[len] == '\0';
}

static apr_status_t get_rv(rs_store_t *s, const char *key, apr_pool_t *p)
{
    char *v;
    apr_size_t len;

    return rs_store_get1(s, key, p, &v, &len);
}

/* ---- tests -------------------------------------------------------------- */

static void test_missing(rs_store_t *s, apr_pool_t *p)
{
    rs_txn_t *txn = (rs_txn_t *)1;

    RS_CHECK(rs_store_begin(s, 0, p, &txn) == APR_ENOENT);
    RS_CHECK(txn == NULL);
    RS_CHECK(get_rv(s, "nothing", p) == APR_ENOENT);
    rs_store_end(NULL);
}

static void test_sizes(rs_store_t *s, apr_pool_t *p)
{
    static const apr_size_t sizes[] = {
        0, 1, 799, 800, 801, 1600, 1601, 100 * 1024, 1024 * 1024
    };
    int i, ok = 1, expect = 0;

    for (i = 0; i < (int)(sizeof(sizes) / sizeof(sizes[0])); i++) {
        const char *key = apr_psprintf(p, "v:%d", (int)sizes[i]);
        char *val = pattern(p, sizes[i], (unsigned)i + 1);

        ok &= rs_store_put1(s, key, val, sizes[i], p) == APR_SUCCESS;
        ok &= get_is(s, key, val, sizes[i], p);
        ok &= raw_count(s, key, p) == nseg(key, sizes[i]);
        expect += nseg(key, sizes[i]);
    }
    RS_CHECK(ok);
    RS_CHECK(raw_count(s, NULL, p) == expect);
    RS_CHECK(get_rv(s, "v:2", p) == APR_ENOENT);
}

static void test_overwrite(rs_store_t *s, apr_pool_t *p)
{
    static const apr_size_t sizes[] = {
        1024 * 1024, 10, 100 * 1024, 0, 801, 4 * 1024 * 1024, 800
    };
    int i;

    for (i = 0; i < (int)(sizeof(sizes) / sizeof(sizes[0])); i++) {
        char *val = pattern(p, sizes[i], (unsigned)i + 7);

        RS_CHECK(rs_store_put1(s, "ow", val, sizes[i], p) == APR_SUCCESS);
        RS_CHECK(get_is(s, "ow", val, sizes[i], p));
        RS_CHECK(raw_count(s, "ow", p) == nseg("ow", sizes[i]));
    }
    RS_CHECK(rs_store_delete1(s, "ow", p) == APR_SUCCESS);
    RS_CHECK(raw_count(s, "ow", p) == 0);
    RS_CHECK(get_rv(s, "ow", p) == APR_ENOENT);
    RS_CHECK(rs_store_delete1(s, "ow", p) == APR_SUCCESS);
}

static void test_layout(rs_store_t *s, apr_pool_t *p)
{
    static const unsigned char head[] = {
        0xd5, 1, 0x01, 0xcb, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 3,
        0x35, 0x24, 0x41, 0xc2, 'a', 'b', 'c'
    };
    apr_size_t len = 0;
    char *raw;

    rs_store_put1(s, "L", "xyz", 3, p);                 /* generation 1 */
    RS_CHECK(rs_store_put1(s, "L", "abc", 3, p) == APR_SUCCESS);
    raw = raw_get(s, "L", &len, p);
    RS_CHECK(raw && len == sizeof(head) && !memcmp(raw, head, len));
    rs_store_put1(s, "L", pattern(p, 1700, 3), 1700, p);
    RS_CHECK(raw_get(s, segkey(p, "L", 3, 3), &len, p) && len == 323);
    RS_CHECK(raw_get(s, segkey(p, "L", 3, 1), &len, p) && len == 459);
    RS_CHECK(!raw_get(s, segkey(p, "L", 3, 4), &len, p));
    rs_store_delete1(s, "L", p);
}

/* Put a head copy modified by fn, expect APR_EINVAL, restore. */
static void corrupt_head(rs_store_t *s, const char *key, int off,
                         unsigned char val, apr_size_t cut, apr_pool_t *p)
{
    apr_size_t len = 0;
    char *orig = raw_get(s, key, &len, p);
    char *bad = apr_pmemdup(p, orig, len);

    if (off >= 0) {
        bad[off] = (char)val;
    }
    raw_put(s, key, bad, cut ? cut : len, p);
    RS_CHECK(get_rv(s, key, p) == APR_EINVAL);
    raw_put(s, key, orig, len, p);
}

static void test_corruption(rs_store_t *s, apr_pool_t *p)
{
    char *val = pattern(p, 3000, 11);
    const char *seg = segkey(p, "c", 1, 2);
    char *orig;
    apr_size_t len = 0;

    RS_CHECK(rs_store_put1(s, "c", val, 3000, p) == APR_SUCCESS);
    corrupt_head(s, "c", 0, 0x00, 0, p);            /* magic */
    corrupt_head(s, "c", 1, 0x02, 0, p);            /* version */
    corrupt_head(s, "c", 2, 0xff, 0, p);            /* piece size */
    corrupt_head(s, "c", 11, 0x09, 0, p);           /* segment count */
    corrupt_head(s, "c", 12, 0xff, 0, p);           /* length > max */
    corrupt_head(s, "c", 15, 0x01, 0, p);           /* length */
    corrupt_head(s, "c", 17, 0x00, 0, p);           /* checksum */
    corrupt_head(s, "c", 25, (unsigned char)~val[5], 0, p);   /* data */
    corrupt_head(s, "c", -1, 0, 10, p);             /* truncated */
    RS_CHECK(get_is(s, "c", val, 3000, p));
    orig = raw_get(s, seg, &len, p);
    RS_CHECK(orig && len == 459);
    orig[3] ^= 0x40;
    raw_put(s, seg, orig, len, p);
    RS_CHECK(get_rv(s, "c", p) == APR_EINVAL);
    raw_put(s, seg, orig, len - 1, p);
    RS_CHECK(get_rv(s, "c", p) == APR_EINVAL);
    raw_put(s, seg, NULL, 0, p);
    RS_CHECK(get_rv(s, "c", p) == APR_EINVAL);
    RS_CHECK(rs_store_put1(s, "c", "fine", 4, p) == APR_SUCCESS);
    RS_CHECK(get_is(s, "c", "fine", 4, p));
    RS_CHECK(rs_store_delete1(s, "c", p) == APR_SUCCESS);
    RS_CHECK(raw_count(s, "c", p) == 0);
}

static void test_crash(rs_store_t *s, apr_pool_t *p)
{
    char *a = pattern(p, 3000, 21), *b = pattern(p, 1700, 22);
    char *c = pattern(p, 900, 23);
    unsigned n;

    RS_CHECK(rs_store_put1(s, "k", a, 3000, p) == APR_SUCCESS);  /* gen 1 */
    /* A put of gen 2 killed before its head: five segments, no head. */
    for (n = 1; n <= 5; n++) {
        raw_put(s, segkey(p, "k", 2, n), "garbage", 7, p);
    }
    RS_CHECK(get_is(s, "k", a, 3000, p));
    RS_CHECK(raw_count(s, "k", p) == 7 + 5);
    RS_CHECK(rs_store_put1(s, "k", b, 1700, p) == APR_SUCCESS);  /* gen 2 */
    RS_CHECK(get_is(s, "k", b, 1700, p));
    RS_CHECK(raw_count(s, "k", p) == 4);
    /* A put killed after its head, during the old generation's removal. */
    raw_put(s, segkey(p, "k", 1, 1), a + 459, 459, p);
    raw_put(s, segkey(p, "k", 1, 2), a + 918, 459, p);
    RS_CHECK(get_is(s, "k", b, 1700, p));
    RS_CHECK(rs_store_put1(s, "k", c, 900, p) == APR_SUCCESS);   /* gen 3 */
    RS_CHECK(get_is(s, "k", c, 900, p));
    RS_CHECK(raw_count(s, "k", p) == 2);
    /* A delete killed after removing the head: orphans, found by gc. */
    raw_put(s, "k", NULL, 0, p);
    RS_CHECK(get_rv(s, "k", p) == APR_ENOENT);
    RS_CHECK(raw_count(s, "k", p) == 1);
}

static void test_gc(rs_store_t *s, apr_pool_t *p)
{
    rs_txn_t *txn;
    apr_size_t removed = 99;
    int before;

    rs_store_put1(s, "g:1", pattern(p, 5000, 31), 5000, p);
    rs_store_put1(s, "g:2", pattern(p, 5000, 32), 5000, p);
    raw_put(s, "g:1", NULL, 0, p);
    raw_put(s, segkey(p, "g:2", 7, 1), "x", 1, p);      /* other gen */
    raw_put(s, segkey(p, "g:2", 1, 40), "x", 1, p);     /* beyond N */
    before = raw_count(s, NULL, p);
    RS_CHECK(rs_store_begin(s, 0, p, &txn) == APR_SUCCESS);
    RS_CHECK(rs_store_gc(txn, "", &removed) == APR_EACCES);
    rs_store_end(txn);
    RS_CHECK(rs_store_begin(s, 1, p, &txn) == APR_SUCCESS);
    RS_CHECK(rs_store_gc(txn, "g:", &removed) == APR_SUCCESS);
    RS_CHECK(removed == 10 + 2);
    RS_CHECK(rs_store_gc(txn, "", &removed) == APR_SUCCESS);
    RS_CHECK(removed == 1);                             /* k, test_crash */
    rs_store_end(txn);
    RS_CHECK(raw_count(s, NULL, p) == before - 13);
    RS_CHECK(get_is(s, "g:2", pattern(p, 5000, 32), 5000, p));
    rs_store_delete1(s, "g:2", p);
}

static int collect_cb(void *baton, const char *key)
{
    apr_array_header_t *arr = baton;

    APR_ARRAY_PUSH(arr, const char *) = apr_pstrdup(arr->pool, key);
    return 0;
}

static int stop_cb(void *baton, const char *key)
{
    ++*(int *)baton;
    return 1;
}

static int has_key(apr_array_header_t *arr, const char *key)
{
    int i;

    for (i = 0; i < arr->nelts; i++) {
        if (!strcmp(APR_ARRAY_IDX(arr, i, const char *), key)) {
            return 1;
        }
    }
    return 0;
}

static void test_keys(rs_store_t *s, apr_pool_t *p)
{
    apr_array_header_t *arr = apr_array_make(p, 4, sizeof(const char *));
    rs_txn_t *txn;
    int calls = 0;

    rs_store_put1(s, "u:1", "one", 3, p);
    rs_store_put1(s, "u:2", pattern(p, 9000, 41), 9000, p);
    rs_store_put1(s, "t:1", "tomb", 4, p);
    rs_store_put1(s, "u:3", "", 0, p);
    RS_CHECK(rs_store_begin(s, 0, p, &txn) == APR_SUCCESS);
    RS_CHECK(rs_store_keys(txn, "u:", collect_cb, arr) == APR_SUCCESS);
    RS_CHECK(arr->nelts == 3);
    RS_CHECK(has_key(arr, "u:1") && has_key(arr, "u:2"));
    RS_CHECK(has_key(arr, "u:3") && !has_key(arr, "t:1"));
    RS_CHECK(rs_store_keys(txn, "u:", stop_cb, &calls) == APR_SUCCESS);
    RS_CHECK(calls == 1);
    arr->nelts = 0;
    RS_CHECK(rs_store_keys(txn, NULL, collect_cb, arr) == APR_SUCCESS);
    RS_CHECK(arr->nelts >= 4 && has_key(arr, "t:1"));
    RS_CHECK(rs_store_put(txn, "u:4", "x", 1) == APR_EACCES);
    RS_CHECK(rs_store_delete(txn, "u:1") == APR_EACCES);
    rs_store_end(txn);
}

static void test_txn(rs_store_t *s, apr_pool_t *p)
{
    rs_txn_t *txn;
    char *v;
    apr_size_t len;
    char *big = pattern(p, RS_STORE_MAX_VALUE + 1, 51);
    char *lkey = apr_palloc(p, RS_STORE_MAX_KEY + 2);

    memset(lkey, 'x', RS_STORE_MAX_KEY + 1);
    lkey[RS_STORE_MAX_KEY + 1] = '\0';
    RS_CHECK(rs_store_begin(s, 1, p, &txn) == APR_SUCCESS);
    RS_CHECK(rs_store_put(txn, "a", "1", 1) == APR_SUCCESS);
    RS_CHECK(rs_store_put(txn, "a", "22", 2) == APR_SUCCESS);
    RS_CHECK(rs_store_get(txn, "a", p, &v, &len) == APR_SUCCESS);
    RS_CHECK(len == 2 && !strcmp(v, "22"));
    RS_CHECK(rs_store_put(txn, "", "1", 1) == APR_EINVAL);
    RS_CHECK(rs_store_put(txn, "a\x1f" "b", "1", 1) == APR_EINVAL);
    RS_CHECK(rs_store_put(txn, lkey, "1", 1) == APR_EINVAL);
    RS_CHECK(rs_store_get(txn, lkey, p, &v, &len) == APR_EINVAL);
    RS_CHECK(rs_store_put(txn, "a", big, RS_STORE_MAX_VALUE + 1)
             == APR_EINVAL);
    RS_CHECK(rs_store_put(txn, "a", big, RS_STORE_MAX_VALUE) == APR_SUCCESS);
    lkey[RS_STORE_MAX_KEY] = '\0';          /* longest key, smallest piece */
    RS_CHECK(rs_store_put(txn, lkey, big, 100000) == APR_SUCCESS);
    RS_CHECK(rs_store_get(txn, lkey, p, &v, &len) == APR_SUCCESS);
    RS_CHECK(len == 100000 && !memcmp(v, big, len));
    RS_CHECK(rs_store_delete(txn, lkey) == APR_SUCCESS);
    RS_CHECK(rs_store_delete(txn, "a") == APR_SUCCESS);
    rs_store_end(txn);
    RS_CHECK(raw_count(s, "a", p) == 0);
    RS_CHECK(raw_count(s, lkey, p) == 0);
}

static void test_files(rs_store_t *s, apr_pool_t *p)
{
    const char *f1, *f2;
    int sdbm = !strcasecmp(rs_store_type(s), "sdbm");

    RS_CHECK(rs_store_files(s, p, &f1, &f2) == APR_SUCCESS);
    RS_CHECK(f1 && access(f1, F_OK) == 0);
    RS_CHECK(sdbm ? f2 && access(f2, F_OK) == 0 : f2 == NULL);
}

/* ---- two processes, one counter ----------------------------------------- */

#define RMW_ROUNDS 200

static int rmw_child(rs_store_t *s, apr_global_mutex_t *m, const char *lf)
{
    apr_pool_t *p;
    int i, bad = 0;

    apr_pool_create(&p, NULL);
    if (apr_global_mutex_child_init(&m, lf, p) != APR_SUCCESS) {
        return 2;
    }
    for (i = 0; i < RMW_ROUNDS; i++) {
        rs_txn_t *txn;
        char *v, *nv;
        apr_size_t len;

        if (rs_store_begin(s, 1, p, &txn) != APR_SUCCESS) {
            return 3;
        }
        bad |= rs_store_get(txn, "n", p, &v, &len) != APR_SUCCESS;
        nv = apr_psprintf(p, "%-1500d", atoi(v) + 1);  /* two segments */
        bad |= rs_store_put(txn, "n", nv, strlen(nv)) != APR_SUCCESS;
        rs_store_end(txn);
        apr_pool_clear(p);
    }
    return bad;
}

/* A store of `name` in dir whose writes take a fresh global mutex on
 * lock file `lock` (the mutex the children of the tests below share). */
static rs_store_t *store_with_mutex(const char *type, const char *dir,
                                   const char *name, const char *lock,
                                   apr_global_mutex_t **m, apr_pool_t *p)
{
    rs_store_t *s = NULL;

    RS_CHECK(apr_global_mutex_create(m, lock, APR_LOCK_DEFAULT, p)
             == APR_SUCCESS);
    rs_store_create(&s, type, apr_pstrcat(p, dir, name, NULL), *m, p);
    return s;
}

static void test_mutex(const char *type, const char *dir, apr_pool_t *p)
{
    const char *lf = apr_pstrcat(p, dir, "/mutex", NULL);
    apr_global_mutex_t *m;
    rs_store_t *s;
    pid_t pid[2];
    int i, st, ok = 1;
    char *v;
    apr_size_t len;

    s = store_with_mutex(type, dir, "/counter", lf, &m, p);
    RS_CHECK(rs_store_put1(s, "n", "0", 1, p) == APR_SUCCESS);
    for (i = 0; i < 2; i++) {
        fflush(stdout);
        if ((pid[i] = fork()) == 0) {
            _exit(rmw_child(s, m, lf));
        }
    }
    for (i = 0; i < 2; i++) {
        ok &= waitpid(pid[i], &st, 0) == pid[i] && WIFEXITED(st)
              && WEXITSTATUS(st) == 0;
    }
    RS_CHECK(ok);
    RS_CHECK(rs_store_get1(s, "n", p, &v, &len) == APR_SUCCESS);
    RS_CHECK(len == 1500 && atoi(v) == 2 * RMW_ROUNDS);
    apr_global_mutex_destroy(m);
}

/* ---- readers and writers in parallel ------------------------------------ */

/* Wait up to ms for pid: 1 exited with status 0, 0 still running, -1
 * failed (then reaped). */
static int wait_for(pid_t pid, int ms)
{
    int st, i;
    pid_t r;

    for (i = 0; i <= ms / 10; i++) {
        r = waitpid(pid, &st, WNOHANG);
        if (r == pid) {
            return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 1 : -1;
        }
        if (r < 0) {
            return -1;
        }
        apr_sleep(apr_time_from_msec(10));
    }
    return 0;
}

static void reap(pid_t pid)
{
    int st;

    if (0 == wait_for(pid, 0)) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
    }
}

/* A child that reads (write 0) or writes (write 1) key "w" once. */
static pid_t spawn_rw(rs_store_t *s, apr_global_mutex_t *m, const char *lf,
                      int write)
{
    pid_t pid;

    fflush(stdout);
    if ((pid = fork()) == 0) {
        apr_pool_t *p;
        char *v;
        apr_size_t len;

        apr_pool_create(&p, NULL);
        if (m && apr_global_mutex_child_init(&m, lf, p) != APR_SUCCESS) {
            _exit(2);
        }
        if (write) {
            _exit(rs_store_put1(s, "w", "written", 7, p) != APR_SUCCESS);
        }
        _exit(rs_store_get1(s, "w", p, &v, &len) != APR_SUCCESS);
    }
    return pid;
}

/* While this process holds a transaction (`write`: a write one), a
 * child that reads or writes (`child_writes`) waits, and goes on once the
 * transaction ends. */
static void child_waits_for_txn(rs_store_t *s, apr_global_mutex_t *m,
                                const char *lf, int write, int child_writes,
                                apr_pool_t *p)
{
    rs_txn_t *txn;
    pid_t pid;

    RS_CHECK(rs_store_begin(s, write, p, &txn) == APR_SUCCESS);
    pid = spawn_rw(s, m, lf, child_writes);
    RS_CHECK(wait_for(pid, 300) == 0);
    rs_store_end(txn);
    RS_CHECK(wait_for(pid, 10000) == 1);
    reap(pid);
}

/*
 * sdbm: a read transaction does not take the global mutex (a child reads
 * while the mutex is held), and it excludes writers by sdbm's shared lock:
 * a writing child waits until the read transaction ends, and a reading
 * child waits for an open write transaction. Other drivers: readers wait
 * for the mutex.
 */
static void test_shared_read(const char *type, const char *dir,
                             apr_pool_t *p)
{
    const char *lf = apr_pstrcat(p, dir, "/rmutex", NULL);
    int sdbm = !strcasecmp(type, "SDBM");
    apr_global_mutex_t *m;
    rs_store_t *s;
    pid_t pid;

    s = store_with_mutex(type, dir, "/shared", lf, &m, p);
    RS_CHECK(rs_store_put1(s, "w", "1", 1, p) == APR_SUCCESS);
    RS_CHECK(apr_global_mutex_lock(m) == APR_SUCCESS);
    pid = spawn_rw(s, m, lf, 0);
    RS_CHECK(wait_for(pid, sdbm ? 10000 : 300) == (sdbm ? 1 : 0));
    apr_global_mutex_unlock(m);
    if (!sdbm) {
        RS_CHECK(wait_for(pid, 10000) == 1);
    }
    reap(pid);
    if (sdbm) {
        /* a reader holds sdbm's shared lock: the writer waits */
        child_waits_for_txn(s, m, lf, 0, 1, p);
        /* a writer holds the exclusive lock: the reader waits */
        child_waits_for_txn(s, m, lf, 1, 0, p);
    }
    RS_CHECK(get_is(s, "w", sdbm ? "written" : "1", sdbm ? 7 : 1, p));
    apr_global_mutex_destroy(m);
}

#define TORN_WRITES 300
#define TORN_READS  1500
#define TORN_LEN    2000            /* five segments */

/* Version i of the value: "%08d" i, then pattern bytes of seed i. */
static char *torn_value(apr_pool_t *p, unsigned i)
{
    char *v = pattern(p, TORN_LEN, i);

    apr_snprintf(v, 9, "%08u", i);
    v[8] = '.';
    return v;
}

/* Writer: TORN_WRITES versions of "v", each with a 600-byte filler key
 * that keeps splitting pages and growing the directory. */
static int torn_writer(rs_store_t *s, apr_global_mutex_t *m, const char *lf)
{
    apr_pool_t *p;
    unsigned i;
    int bad = 0;

    apr_pool_create(&p, NULL);
    if (apr_global_mutex_child_init(&m, lf, p) != APR_SUCCESS) {
        return 2;
    }
    for (i = 1; i <= TORN_WRITES && !bad; i++, apr_pool_clear(p)) {
        rs_txn_t *txn;

        if (rs_store_begin(s, 1, p, &txn) != APR_SUCCESS) {
            return 3;
        }
        bad |= rs_store_put(txn, "v", torn_value(p, i), TORN_LEN) != 0;
        bad |= rs_store_put(txn, apr_psprintf(p, "fill%u", i),
                            pattern(p, 600, i), 600) != 0;
        rs_store_end(txn);
    }
    return bad;
}

/* Reader: every read is a whole version, never older than the last. */
static int torn_reader(rs_store_t *s)
{
    apr_pool_t *p;
    unsigned last = 0, ver;
    int i;

    apr_pool_create(&p, NULL);
    for (i = 0; i < TORN_READS; i++, apr_pool_clear(p)) {
        char *v;
        apr_size_t len;

        if (rs_store_get1(s, "v", p, &v, &len) != APR_SUCCESS
            || len != TORN_LEN || sscanf(v, "%8u", &ver) != 1
            || ver < last || memcmp(v, torn_value(p, ver), TORN_LEN)) {
            return 1;
        }
        last = ver;
    }
    return 0;
}

/* One writer and two readers in three processes: no torn or stale read. */
static void test_torn(const char *type, const char *dir, apr_pool_t *p)
{
    const char *lf = apr_pstrcat(p, dir, "/tmutex", NULL);
    apr_global_mutex_t *m;
    rs_store_t *s;
    pid_t pid[3];
    int i, ok = 1;

    s = store_with_mutex(type, dir, "/torn", lf, &m, p);
    RS_CHECK(rs_store_put1(s, "v", torn_value(p, 0), TORN_LEN, p) == 0);
    for (i = 0; i < 3; i++) {
        fflush(stdout);
        if ((pid[i] = fork()) == 0) {
            if (i == 0) {
                _exit(torn_writer(s, m, lf));
            }
            if (apr_global_mutex_child_init(&m, lf, p) != APR_SUCCESS) {
                _exit(2);
            }
            _exit(torn_reader(s));
        }
    }
    for (i = 0; i < 3; i++) {
        ok &= wait_for(pid[i], 120000) == 1;
        reap(pid[i]);
    }
    RS_CHECK(ok);
    RS_CHECK(get_is(s, "v", torn_value(p, TORN_WRITES), TORN_LEN, p));
    apr_global_mutex_destroy(m);
}

/* ---- a deep sdbm hash tree ---------------------------------------------- */

/*
 * sdbm's handle keeps its directory size from the open and can miss keys
 * after a split that grows the directory by more than a block (rs_store
 * reopens then). 20000 pairs of 600 bytes build such a tree; a large value
 * written, read and deleted in one transaction must stay consistent.
 */
#define DEEP_KEYS 20000

static void test_deep_tree(const char *type, const char *dir, apr_pool_t *p)
{
    char *big = pattern(p, 4 * 1024 * 1024, 61), *v;
    apr_size_t len;
    apr_pool_t *sp;
    rs_store_t *s;
    rs_txn_t *txn;
    int i, ok = 1;

    apr_pool_create(&sp, p);
    rs_store_create(&s, type, apr_pstrcat(p, dir, "/deep", NULL), NULL, p);
    RS_CHECK(rs_store_begin(s, 1, p, &txn) == APR_SUCCESS);
    for (i = 0; i < DEEP_KEYS; i++, apr_pool_clear(sp)) {
        ok &= rs_store_put(txn, apr_psprintf(sp, "x%d", i),
                           pattern(sp, 600, (unsigned)i), 600) == 0;
    }
    rs_store_end(txn);
    RS_CHECK(ok);
    RS_CHECK(rs_store_begin(s, 1, p, &txn) == APR_SUCCESS);
    RS_CHECK(rs_store_put(txn, "big", big, 4 * 1024 * 1024) == APR_SUCCESS);
    RS_CHECK(rs_store_get(txn, "big", p, &v, &len) == APR_SUCCESS
             && len == 4 * 1024 * 1024 && !memcmp(v, big, len));
    RS_CHECK(rs_store_delete(txn, "big") == APR_SUCCESS);
    RS_CHECK(rs_store_get(txn, "big", p, &v, &len) == APR_ENOENT);
    rs_store_end(txn);
    RS_CHECK(raw_count(s, "big", p) == 0);
    RS_CHECK(rs_store_begin(s, 0, p, &txn) == APR_SUCCESS);
    for (i = 0; i < DEEP_KEYS; i++, apr_pool_clear(sp)) {
        ok &= rs_store_get(txn, apr_psprintf(sp, "x%d", i), sp, &v, &len) == 0
              && len == 600 && !memcmp(v, pattern(sp, 600, (unsigned)i), 600);
    }
    {   /* every key listed once (sdbm: from the pages, holes skipped) */
        apr_array_header_t *arr = apr_array_make(p, DEEP_KEYS,
                                                 sizeof(const char *));
        apr_hash_t *seen = apr_hash_make(p);

        RS_CHECK(rs_store_keys(txn, "x", collect_cb, arr) == APR_SUCCESS);
        for (i = 0; i < arr->nelts; i++) {
            apr_hash_set(seen, APR_ARRAY_IDX(arr, i, const char *),
                         APR_HASH_KEY_STRING, "");
        }
        RS_CHECK(arr->nelts == DEEP_KEYS
                 && apr_hash_count(seen) == DEEP_KEYS);
        RS_CHECK(has_key(arr, "x0")
                 && has_key(arr, apr_psprintf(p, "x%d", DEEP_KEYS - 1)));
    }
    rs_store_end(txn);
    RS_CHECK(ok);
    apr_pool_destroy(sp);
}

/* ---- the guard on real files -------------------------------------------- */

/* One guard checks many keys (directory blocks cached across checks), but
 * reads each page afresh: a page corrupted after the first check is still
 * caught. No files yet: nothing to check. A paged read (shared lock, pairs
 * looked up in the checked pages) finds what apr_sdbm finds. */
static void test_guard_files(const char *dir, apr_pool_t *p)
{
    const char *path = apr_pstrcat(p, dir, "/guarded", NULL), *v;
    rs_sdbm_guard_t *g, *r;
    apr_file_t *f;
    apr_pool_t *sp;
    rs_store_t *s;
    rs_txn_t *txn;
    char junk[1024];
    apr_size_t n;
    int i, ok = 1;

    g = rs_sdbm_guard_make(path, p);
    RS_CHECK(rs_sdbm_guard_check(g, "k", 1) == APR_SUCCESS);
    rs_store_create(&s, "SDBM", path, NULL, p);
    apr_pool_create(&sp, p);
    RS_CHECK(rs_store_begin(s, 1, p, &txn) == APR_SUCCESS);
    for (i = 0; i < 3000; i++, apr_pool_clear(sp)) {
        ok &= rs_store_put(txn, apr_psprintf(sp, "g%d", i),
                           pattern(sp, 500, (unsigned)i), 500) == 0;
    }
    rs_store_end(txn);
    RS_CHECK(ok);
    rs_sdbm_guard_changed(g);           /* the files exist now */
    for (i = 0; i < 3000; i++, apr_pool_clear(sp)) {
        const char *k = apr_psprintf(sp, "g%d", i);

        ok &= rs_sdbm_guard_check(g, k, strlen(k)) == APR_SUCCESS;
    }
    RS_CHECK(ok);
    /* fetch from the pages: the very pairs apr_sdbm returns */
    r = rs_sdbm_guard_make(path, sp);
    RS_CHECK(rs_sdbm_guard_lock_shared(r) == APR_SUCCESS);
    for (i = 0; i < 3000; i++) {
        const char *k = apr_psprintf(sp, "g%d", i), *v;
        apr_size_t vlen, rlen = 0;
        char *raw = raw_get(s, k, &rlen, sp);

        ok &= raw && rs_sdbm_guard_fetch(r, k, strlen(k), &v, &vlen) == 0
              && v && vlen == rlen && !memcmp(v, raw, vlen);
    }
    RS_CHECK(ok);
    RS_CHECK(rs_sdbm_guard_fetch(r, "g3000", 5, &v, &n) == APR_SUCCESS
             && !v && !n);
    apr_pool_clear(sp);
    r = rs_sdbm_guard_make(apr_pstrcat(p, dir, "/none", NULL), sp);
    RS_CHECK(rs_sdbm_guard_lock_shared(r) == APR_ENOENT);
    memset(junk, 0, sizeof(junk));
    junk[0] = 1;                        /* odd entry count on every page */
    RS_CHECK(apr_file_open(&f, apr_pstrcat(p, path, ".pag", NULL),
                           APR_FOPEN_WRITE, 0, p) == APR_SUCCESS);
    for (i = 0; i < 4096; i++) {
        n = sizeof(junk);
        apr_file_write_full(f, junk, n, &n);
    }
    apr_file_close(f);
    RS_CHECK(rs_sdbm_guard_check(g, "g1", 2) == APR_EINVAL);
    RS_CHECK(get_rv(s, "g1", p) == APR_EINVAL);
    apr_pool_destroy(sp);
}

/* ---- driver loop -------------------------------------------------------- */

static int driver_works(const char *type, const char *dir, apr_pool_t *p)
{
    apr_dbm_t *db;
    const char *path = apr_pstrcat(p, dir, "/probe-", type, NULL);

    if (apr_dbm_open_ex(&db, type, path, APR_DBM_RWCREATE, APR_OS_DEFAULT, p)
        != APR_SUCCESS) {
        return 0;
    }
    apr_dbm_close(db);
    return 1;
}

static void test_driver(const char *type, apr_pool_t *p)
{
    const char *dir = rs_test_tmpdir(p, apr_pstrcat(p, "store-", type, NULL));
    rs_store_t *s;

    if (!driver_works(type, dir, p)) {
        printf("# store: apr_dbm driver %s not available, skipped\n", type);
        return;
    }
    RS_CHECK(rs_store_create(&s, type, apr_pstrcat(p, dir, "/state", NULL),
                             NULL, p) == APR_SUCCESS);
    RS_CHECK_STR(rs_store_type(s), type);
    test_missing(s, p);
    test_sizes(s, p);
    test_overwrite(s, p);
    test_layout(s, p);
    test_corruption(s, p);
    test_crash(s, p);
    test_gc(s, p);
    test_keys(s, p);
    test_txn(s, p);
    test_files(s, p);
    test_mutex(type, dir, p);
    test_shared_read(type, dir, p);
    test_torn(type, dir, p);
    if (!strcasecmp(type, "SDBM")) {
        test_guard_files(dir, p);
        test_deep_tree(type, dir, p);
    }
}

/* The strict sdbm page check that keeps corrupt pages away from sdbm. */
static void test_sdbm_page_guard(void)
{
    unsigned char page[1024];
    short *ino = (short *)page;

    memset(page, 0, sizeof(page));
    RS_CHECK(rs_sdbm_page_ok(page));                /* empty page */
    ino[0] = 2; ino[1] = 1020; ino[2] = 1000;       /* one pair */
    RS_CHECK(rs_sdbm_page_ok(page));
    ino[0] = 1;                                     /* odd entry count */
    RS_CHECK(!rs_sdbm_page_ok(page));
    ino[0] = 2; ino[2] = 4;                         /* value in the table */
    RS_CHECK(!rs_sdbm_page_ok(page));
    ino[2] = 1021;                                  /* offsets increase */
    RS_CHECK(!rs_sdbm_page_ok(page));
    ino[0] = -2;
    RS_CHECK(!rs_sdbm_page_ok(page));
    ino[0] = 600;                                   /* table beyond page */
    RS_CHECK(!rs_sdbm_page_ok(page));
}

/* The undo file of a split (rs_sdbm_guard.h): a pair that fits its page
 * needs none; one that does not saves page and directory; a writer that
 * finds the file (a killed writer's) puts them back, also when a reader
 * comes first; a malformed one is removed, not applied. */
static void test_split_undo(apr_pool_t *p)
{
    const char *dir = rs_test_tmpdir(p, "undo");
    const char *path = apr_pstrcat(p, dir, "/state", NULL);
    const char *undo = apr_pstrcat(p, path, ".undo", NULL);
    rs_sdbm_guard_t *g;
    rs_store_t *s;
    rs_txn_t *txn;
    apr_file_t *f;
    char *val;
    apr_size_t len;
    int saved, i;

    RS_CHECK(APR_SUCCESS == rs_store_create(&s, "SDBM", path, NULL, p));
    for (i = 0; i < 40; i++) {           /* several pages, splits made */
        char k[16];

        apr_snprintf(k, sizeof(k), "key%d", i);
        RS_CHECK(APR_SUCCESS == rs_store_put1(s, k, "0123456789abcdef0123",
                                              20, p));
    }
    RS_CHECK(!rs_sdbm_undo_pending(path, p));   /* every split cleaned up */
    g = rs_sdbm_guard_make(path, p);
    RS_CHECK(APR_SUCCESS == rs_sdbm_guard_check(g, "key7", 4));
    RS_CHECK(APR_SUCCESS == rs_sdbm_guard_journal(g, "key7", 4, 10, &saved));
    RS_CHECK(0 == saved);                       /* fits: one page write */
    RS_CHECK(APR_SUCCESS == rs_sdbm_guard_journal(g, "key7", 4, 2000, &saved));
    RS_CHECK(1 == saved && rs_sdbm_undo_pending(path, p));
    /* what a killed split leaves: the key's page without some of its keys */
    RS_CHECK(APR_SUCCESS == rs_store_begin(s, 1, p, &txn));  /* applies! */
    rs_store_end(txn);
    RS_CHECK(!rs_sdbm_undo_pending(path, p));
    RS_CHECK(APR_SUCCESS == rs_sdbm_guard_journal(g, "key7", 4, 2000, &saved));
    RS_CHECK(APR_SUCCESS == rs_store_delete1(s, "key7", p)); /* applied first */
    RS_CHECK(APR_ENOENT == rs_store_get1(s, "key7", p, &val, &len));
    RS_CHECK(APR_SUCCESS == rs_sdbm_guard_journal(g, "key7", 4, 2000, &saved));
    rs_sdbm_guard_unjournal(g);                 /* the store returned */
    RS_CHECK(!rs_sdbm_undo_pending(path, p));
    /* page saved, then the page torn (key gone), then a kill: undone */
    RS_CHECK(APR_SUCCESS == rs_store_put1(s, "key7", "again", 5, p));
    g = rs_sdbm_guard_make(path, p);
    RS_CHECK(APR_SUCCESS == rs_sdbm_guard_check(g, "key7", 4));
    RS_CHECK(APR_SUCCESS == rs_sdbm_guard_journal(g, "key7", 4, 2000, &saved));
    rename(undo, apr_pstrcat(p, undo, ".keep", NULL));
    RS_CHECK(APR_SUCCESS == rs_store_delete1(s, "key7", p));
    rename(apr_pstrcat(p, undo, ".keep", NULL), undo);
    RS_CHECK(APR_SUCCESS == rs_store_get1(s, "key7", p, &val, &len));
    RS_CHECK(5 == len && !memcmp(val, "again", 5));   /* a reader undid */
    RS_CHECK(!rs_sdbm_undo_pending(path, p));
    for (i = 0; i < 40; i++) {
        char k[16];

        apr_snprintf(k, sizeof(k), "key%d", i);
        RS_CHECK(APR_SUCCESS == rs_store_get1(s, k, p, &val, &len));
    }
    /* a malformed undo file is removed, not applied */
    RS_CHECK(APR_SUCCESS == apr_file_open(&f, undo, APR_FOPEN_WRITE
                                          | APR_FOPEN_CREATE, APR_OS_DEFAULT,
                                          p));
    apr_file_puts("not an undo file", f);
    apr_file_close(f);
    RS_CHECK(APR_SUCCESS == rs_store_put1(s, "key7", "third", 5, p));
    RS_CHECK(!rs_sdbm_undo_pending(path, p));
    RS_CHECK(APR_SUCCESS == rs_store_get1(s, "key7", p, &val, &len));
    RS_CHECK(5 == len && !memcmp(val, "third", 5));
}

/* sdbm is kept open across transactions (rs_store.c "KEPT OPEN"): what a
 * forked child wrote through its own handles, files replaced by a rename
 * (an older copy) and files deleted are all seen by the next transaction
 * of the same store, never the files it had open before. */
static void kept_copy(const char *path, const char *sfx, apr_pool_t *p)
{
    RS_CHECK(APR_SUCCESS == apr_file_copy(
                 apr_pstrcat(p, path, sfx, NULL),
                 apr_pstrcat(p, path, sfx, ".old", NULL),
                 APR_FPROT_FILE_SOURCE_PERMS, p));
}

static void kept_back(const char *path, const char *sfx, apr_pool_t *p)
{
    RS_CHECK(0 == rename(apr_pstrcat(p, path, sfx, ".old", NULL),
                         apr_pstrcat(p, path, sfx, NULL)));
}

static void test_kept_open(apr_pool_t *p)
{
    const char *path = apr_pstrcat(p, rs_test_tmpdir(p, "kept"), "/state",
                                   NULL);
    rs_store_t *s;
    pid_t pid;
    int st = -1;

    RS_CHECK(APR_SUCCESS == rs_store_create(&s, "SDBM", path, NULL, p));
    RS_CHECK(APR_SUCCESS == rs_store_put1(s, "a", "1", 1, p));
    RS_CHECK(get_is(s, "a", "1", 1, p));
    kept_copy(path, ".dir", p);
    kept_copy(path, ".pag", p);
    RS_CHECK(APR_SUCCESS == rs_store_put1(s, "b", "2", 1, p));
    pid = fork();               /* the child must not use the parent's */
    if (0 == pid) {
        _exit(APR_SUCCESS == rs_store_put1(s, "c", "3", 1, p) ? 0 : 1);
    }
    RS_CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
    RS_CHECK(WIFEXITED(st) && 0 == WEXITSTATUS(st));
    RS_CHECK(get_is(s, "c", "3", 1, p));
    RS_CHECK(get_is(s, "b", "2", 1, p));
    kept_back(path, ".dir", p);     /* the older copy renamed over */
    kept_back(path, ".pag", p);
    RS_CHECK(get_rv(s, "b", p) == APR_ENOENT);
    RS_CHECK(get_is(s, "a", "1", 1, p));
    RS_CHECK(APR_SUCCESS == rs_store_put1(s, "d", "4", 1, p));
    RS_CHECK(get_is(s, "d", "4", 1, p));
    unlink(apr_pstrcat(p, path, ".dir", NULL));     /* deleted */
    unlink(apr_pstrcat(p, path, ".pag", NULL));
    RS_CHECK(get_rv(s, "a", p) == APR_ENOENT);
    RS_CHECK(APR_SUCCESS == rs_store_put1(s, "e", "5", 1, p));
    RS_CHECK(get_rv(s, "d", p) == APR_ENOENT);
    RS_CHECK(get_is(s, "e", "5", 1, p));
}

void suite_store(apr_pool_t *p)
{
    test_sdbm_page_guard();
    test_split_undo(p);
    test_kept_open(p);
    static const char *const types[] = { "SDBM", "GDBM", "DB", "default" };
    rs_store_t *s;
    int i;

    RS_CHECK(rs_store_create(&s, NULL, NULL, NULL, p) == APR_EINVAL);
    RS_CHECK(rs_store_create(&s, NULL, "/x", NULL, p) == APR_SUCCESS);
    RS_CHECK_STR(rs_store_type(s), "default");
    for (i = 0; i < (int)(sizeof(types) / sizeof(types[0])); i++) {
        apr_pool_t *sp;

        apr_pool_create(&sp, p);
        test_driver(types[i], sp);
        apr_pool_destroy(sp);
    }
}
