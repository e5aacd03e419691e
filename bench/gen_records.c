/* Licensed under the Apache License, Version 2.0. */
/*
 * gen_records: fill a mod_resumable state database with COUNT upload
 * records for the benchmark suite (HEAD with 10^6 records stored).
 *
 *   gen_records TYPE PATH TEMPLATE_ID COUNT
 *
 * Reads the record "u:TEMPLATE_ID" (a real upload created through the
 * server), and stores COUNT copies under fresh random ids with the module's
 * own codec and store (src/rs_upload.c, src/rs_store.c), in transactions
 * of BATCH records. Run it while the server is stopped (no global mutex).
 * Built by bench/run.py like the unit tests: linked with src/rs_*.c.
 */

#include <stdio.h>
#include <stdlib.h>
#include <apr_general.h>
#include <apr_strings.h>

#include "rs_store.h"
#include "rs_upload.h"
#include "rs_util.h"

#define BATCH 20000

static int fail(const char *what, apr_status_t rv)
{
    char buf[256];

    fprintf(stderr, "gen_records: %s: %s\n", what,
            apr_strerror(rv, buf, sizeof(buf)));
    return 1;
}

static apr_status_t load_template(rs_store_t *s, const char *id,
                                  apr_pool_t *p, rs_upload_t **u)
{
    rs_txn_t *txn;
    char *val;
    apr_size_t len;
    apr_status_t rv = rs_store_begin(s, 0, p, &txn);

    if (APR_SUCCESS != rv) {
        return rv;
    }
    rv = rs_store_get(txn, apr_pstrcat(p, "u:", id, NULL), p, &val, &len);
    if (APR_SUCCESS == rv) {
        rv = rs_upload_decode(p, id, val, len, u);
    }
    rs_store_end(txn);
    return rv;
}

static apr_status_t put_batch(rs_store_t *s, rs_upload_t *u, long n,
                              apr_pool_t *p)
{
    rs_txn_t *txn;
    char *buf;
    apr_size_t len;
    apr_status_t rv = rs_store_begin(s, 1, p, &txn);

    if (APR_SUCCESS != rv) {
        return rv;
    }
    while (APR_SUCCESS == rv && n-- > 0) {
        rv = rs_util_id_new(p, &u->id);
        if (APR_SUCCESS == rv) {
            rv = rs_upload_encode(u, p, &buf, &len);
        }
        if (APR_SUCCESS == rv) {
            rv = rs_store_put(txn, apr_pstrcat(p, "u:", u->id, NULL), buf,
                              len);
        }
    }
    rs_store_end(txn);
    return rv;
}

int main(int argc, const char *const *argv)
{
    apr_pool_t *p, *batch;
    rs_store_t *s;
    rs_upload_t *u;
    apr_status_t rv;
    long count, done;

    if (argc != 5 || (count = atol(argv[4])) <= 0) {
        fprintf(stderr, "usage: gen_records TYPE PATH TEMPLATE_ID COUNT\n");
        return 2;
    }
    apr_app_initialize(&argc, &argv, NULL);
    apr_pool_create(&p, NULL);
    apr_pool_create(&batch, p);
    if (APR_SUCCESS != (rv = rs_store_create(&s, argv[1], argv[2], NULL, p))) {
        return fail("store", rv);
    }
    if (APR_SUCCESS != (rv = load_template(s, argv[3], p, &u))) {
        return fail("template record", rv);
    }
    for (done = 0; done < count; done += BATCH) {
        rv = put_batch(s, u, count - done < BATCH ? count - done : BATCH,
                       batch);
        apr_pool_clear(batch);
        if (APR_SUCCESS != rv) {
            return fail("put", rv);
        }
    }
    printf("%ld records\n", count);
    apr_pool_destroy(p);
    apr_terminate();
    return 0;
}
