/* Licensed under the Apache License, Version 2.0. */
/*
 * Representation digests of uploads: a hashing body wrapper and the record
 * update, on the public APIs of rs_store and rs_upload. See
 * rs_engine_digest.h.
 */

#include <string.h>
#include <apr_strings.h>
#include <apr_file_io.h>

#include "rs_engine_digest.h"
#include "rs_engine_private.h"
#include "rs_data.h"
#include "rs_store.h"
#include "rs_upload.h"

#define PREFIX_BLOCK (256 * 1024)

/* Hash the first len bytes of path. */
static apr_status_t hash_file(rs_digest_body_t *db, const char *path,
                              apr_off_t left, char *buf, apr_pool_t *p)
{
    apr_file_t *f;
    apr_status_t rv;

    if (left <= 0) {
        return APR_SUCCESS;
    }
    rv = apr_file_open(&f, path, APR_FOPEN_READ | APR_FOPEN_BINARY, 0, p);
    while (APR_SUCCESS == rv && left > 0) {
        apr_size_t n = left < PREFIX_BLOCK ? (apr_size_t)left : PREFIX_BLOCK;
        rv = apr_file_read_full(f, buf, n, &n);
        if (APR_SUCCESS == rv) {
            rs_hash_update(db->hash, buf, n);
            left -= n;
        }
    }
    if (f && APR_SUCCESS == rv) {
        apr_file_close(f);
    }
    return rv;
}

/* Hash [0, prefix) of the stored bytes: the data file, or in cluster mode
 * the segments in order. */
static apr_status_t hash_prefix(rs_digest_body_t *db, apr_pool_t *p)
{
    const rs_upload_t *u = db->u;
    apr_off_t left = db->prefix, n;
    char *buf;
    apr_status_t rv = APR_SUCCESS;
    int i;

    if (left <= 0) {
        return APR_SUCCESS;
    }
    buf = apr_palloc(p, PREFIX_BLOCK);
    if (!u->nsegs) {
        return hash_file(db, rs_data_path(p, u->dir, u->id), left, buf, p);
    }
    for (i = 0; APR_SUCCESS == rv && i < u->nsegs && left > 0; i++) {
        n = u->segs[i].len < left ? u->segs[i].len : left;
        rv = hash_file(db, rs_eng_seg_path(p, u, &u->segs[i]), n, buf, p);
        left -= n;
    }
    return APR_SUCCESS == rv && left > 0 ? APR_EGENERAL : rv;
}

/* End of the body: finish the digest when the representation is whole. */
static apr_status_t at_end(rs_digest_body_t *db)
{
    if (db->total >= 0 && db->prefix + db->streamed != db->total) {
        return APR_EOF;              /* not the whole upload: no digest */
    }
    if (APR_SUCCESS != rs_hash_final(db->hash, db->digest, &db->digest_len)) {
        return APR_EGENERAL;
    }
    db->done = 1;
    if (db->expect && (db->expect_len != db->digest_len
                       || memcmp(db->expect, db->digest, db->digest_len))) {
        db->mismatch = 1;
        return APR_EGENERAL;         /* the engine must not complete it */
    }
    return APR_EOF;
}

static apr_status_t digest_read(rs_body_t *b, const char **data,
                                apr_size_t *len)
{
    rs_digest_body_t *db = b->ctx;
    apr_status_t rv;

    if (!db->started) {
        db->started = 1;
        rv = hash_prefix(db, db->pool);
        if (APR_SUCCESS != rv) {
            return rv;
        }
    }
    rv = db->inner->read(db->inner, data, len);
    if (APR_SUCCESS == rv) {
        rs_hash_update(db->hash, *data, *len);
        db->streamed += *len;
    }
    else if (APR_STATUS_IS_EOF(rv)) {
        rv = at_end(db);
    }
    return rv;
}

static const char *digest_trailer(rs_body_t *b, const char *name)
{
    rs_digest_body_t *db = b->ctx;

    return db->inner->trailer ? db->inner->trailer(db->inner, name) : NULL;
}

apr_status_t rs_digest_body_make(apr_pool_t *p, rs_body_t *inner,
                                 const char *alg, const rs_upload_t *u,
                                 apr_off_t prefix, apr_off_t total,
                                 rs_digest_body_t **pdb)
{
    rs_digest_body_t *db = apr_pcalloc(p, sizeof(*db));
    apr_status_t rv;

    if (strcmp(alg, "sha256") && strcmp(alg, "sha512")) {
        return APR_ENOTIMPL;
    }
    if (APR_SUCCESS != (rv = rs_hash_create_for(&db->hash, alg, total, p))) {
        return rv;
    }
    db->pool = p;
    db->inner = inner;
    db->alg = alg;
    db->u = u;
    db->prefix = prefix;
    db->total = total;
    db->body.read = digest_read;
    db->body.trailer = digest_trailer;
    db->body.length = inner->length;
    db->body.ctx = db;
    *pdb = db;
    return APR_SUCCESS;
}

apr_status_t rs_engine_digest_set(rs_engine_t *e, const char *id,
                                  const char *alg, const char *hex,
                                  apr_pool_t *p)
{
    const char *key = apr_pstrcat(p, "u:", id, NULL);
    rs_upload_t *u;
    rs_txn_t *txn;
    char *val;
    apr_size_t len;
    apr_status_t rv = rs_store_begin(e->store, 1, p, &txn);

    if (APR_SUCCESS != rv) {
        return rv;
    }
    rv = rs_store_get(txn, key, p, &val, &len);
    if (APR_SUCCESS == rv) {
        rv = rs_upload_decode(p, id, val, len, &u);
    }
    if (APR_SUCCESS == rv) {
        u->digest_alg = alg;
        u->digest = hex;
        rv = rs_upload_encode(u, p, &val, &len);
    }
    if (APR_SUCCESS == rv) {
        rv = rs_store_put(txn, key, val, len);
    }
    rs_store_end(txn);
    return rv;
}
