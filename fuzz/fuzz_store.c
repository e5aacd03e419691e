/* Licensed under the Apache License, Version 2.0. */
/*
 * libFuzzer target: the segment decoding of rs_store, fed through a real
 * sdbm database in a temporary directory (no code is factored out of
 * rs_store.c). The input is cut into a head value and up to 7 segment
 * values, each as a 2-byte big-endian length followed by the bytes:
 *
 *   byte 0       number of segments n (low 3 bits)
 *   then n + 1 times: len (2 bytes, big endian) and len bytes
 *
 * The head goes under "u:x", segment i (1-based) under "u:x\x1f<G>.<i>"
 * with G taken from bytes 4..7 of the head (as the format defines), so the
 * decoder sees well-formed keys with arbitrary values. Then rs_store_get,
 * rs_store_keys, rs_store_gc and a put/get round trip run on it.
 */
#include <stdio.h>
#include <unistd.h>
#include <apr_dbm.h>
#include <apr_strings.h>
#include "fuzz_common.h"
#include "rs_store.h"

#define KEY "u:x"

static char tmp_dir[] = "/tmp/rs-fuzz-store-XXXXXX";

static void db_wipe(apr_pool_t *p);

static void tmp_remove(void)
{
    apr_pool_t *p;

    apr_pool_create(&p, NULL);
    db_wipe(p);
    rmdir(tmp_dir);
    apr_pool_destroy(p);
}

static const char *db_path(void)
{
    static char path[64];

    if (!path[0]) {
        if (!mkdtemp(tmp_dir)) {
            abort();
        }
        snprintf(path, sizeof(path), "%s/db", tmp_dir);
        atexit(tmp_remove);
    }
    return path;
}

static void db_wipe(apr_pool_t *p)
{
    const char *f1 = NULL, *f2 = NULL;

    apr_dbm_get_usednames_ex(p, "SDBM", db_path(), &f1, &f2);
    if (f1) {
        unlink(f1);
    }
    if (f2) {
        unlink(f2);
    }
}

static void raw_put(apr_dbm_t *db, const char *k, apr_size_t klen,
                    const uint8_t *v, apr_size_t vlen)
{
    apr_datum_t dk, dv;

    dk.dptr = (char *)k;
    dk.dsize = klen;
    dv.dptr = (char *)v;
    dv.dsize = vlen;
    apr_dbm_store(db, dk, dv);   /* sdbm refuses pairs > 1008 bytes: fine */
}

static unsigned long head_gen(const uint8_t *v, apr_size_t len)
{
    if (len < 8) {
        return 1;
    }
    return ((unsigned long)v[4] << 24) | ((unsigned long)v[5] << 16)
           | ((unsigned long)v[6] << 8) | v[7];
}

static int write_input(apr_pool_t *p, const uint8_t *data, size_t size)
{
    apr_dbm_t *db;
    unsigned long gen = 1;
    int nseg, i;
    size_t pos = 1;

    if (size < 1 || APR_SUCCESS != apr_dbm_open_ex(&db, "SDBM", db_path(),
                                                   APR_DBM_RWCREATE,
                                                   0600, p)) {
        return 0;
    }
    nseg = data[0] & 7;
    for (i = 0; i <= nseg && pos + 2 <= size; i++) {
        apr_size_t len = ((apr_size_t)data[pos] << 8) | data[pos + 1];
        pos += 2;
        len = len > size - pos ? size - pos : len;
        if (0 == i) {
            gen = head_gen(data + pos, len);
            raw_put(db, KEY, strlen(KEY), data + pos, len);
        }
        else {
            char *k = apr_psprintf(p, KEY "\x1f%lu.%d", gen, i);
            raw_put(db, k, strlen(k), data + pos, len);
        }
        pos += len;
    }
    apr_dbm_close(db);
    return 1;
}

static int count_key(void *baton, const char *key)
{
    (*(int *)baton)++;
    return 0;
}

static void exercise(apr_pool_t *p)
{
    rs_store_t *s;
    rs_txn_t *txn;
    char *val;
    apr_size_t len, removed;
    int n = 0;

    rs_store_create(&s, "SDBM", db_path(), NULL, p);
    if (APR_SUCCESS != rs_store_begin(s, 1, p, &txn)) {
        return;
    }
    if (APR_SUCCESS == rs_store_get(txn, KEY, p, &val, &len)
        && val[len] != '\0') {
        abort();
    }
    rs_store_keys(txn, "u:", count_key, &n);
    rs_store_gc(txn, "u:", &removed);
    /* whatever was there, a put must win and read back exactly */
    if (APR_SUCCESS == rs_store_put(txn, KEY, "fresh", 5)
        && (APR_SUCCESS != rs_store_get(txn, KEY, p, &val, &len)
            || 5 != len || memcmp(val, "fresh", 5))) {
        abort();
    }
    rs_store_end(txn);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();

    db_wipe(p);
    if (write_input(p, data, size)) {
        exercise(p);
    }
    apr_pool_destroy(p);
    return 0;
}
