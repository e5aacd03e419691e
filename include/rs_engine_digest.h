/* Licensed under the Apache License, Version 2.0. */
#ifndef RS_ENGINE_DIGEST_H
#define RS_ENGINE_DIGEST_H

/*
 * Design: representation digests (RFC 9530 Repr-Digest) of whole uploads,
 * computed while the completing request streams, without an engine change:
 *
 * - rs_digest_body_make() wraps a request body. The engine reads through
 *   it; on the first read (the engine then holds the writer lock and has
 *   checked the offset) the bytes already stored, [0, prefix), are hashed
 *   from the data file, then every body piece as it passes. At the end of
 *   the body, when prefix + streamed bytes make the whole representation
 *   (`total`, or any size when total is -1), the digest is final and, if an
 *   expected one was given, compared: a mismatch turns the end of the body
 *   into a read error, so the engine keeps the bytes but never completes
 *   (publishes) the upload. The caller then reports and cancels it.
 * - rs_engine_digest_set() stores the digest in the upload's record
 *   (u->digest_alg, u->digest) in one short store transaction, for uploads
 *   that completed meanwhile.
 *
 * Threading: request threads; the wrapper belongs to one request.
 */

#include <apr_pools.h>
#include "rs_engine.h"
#include "rs_hash.h"

typedef struct rs_digest_body_t {
    rs_body_t body;              /* hand &body to rs_engine_append */
    rs_body_t *inner;
    apr_pool_t *pool;
    rs_hash_t *hash;
    const char *alg;             /* "sha256" or "sha512" */
    const rs_upload_t *u;        /* whose stored bytes are the prefix: its
                                    data file, or (cluster) its segments */
    apr_off_t prefix;            /* stored bytes hashed before the body */
    apr_off_t total;             /* whole size, or -1: whatever arrives */
    apr_off_t streamed;
    const unsigned char *expect; /* expected digest or NULL */
    apr_size_t expect_len;
    int started;
    int done;                    /* digest[] is the representation's */
    int mismatch;                /* it differs from expect */
    unsigned char digest[RS_HASH_MAX];
    apr_size_t digest_len;
} rs_digest_body_t;

/**
 * Wrap inner. alg: "sha256" or "sha512" (APR_ENOTIMPL else). u/prefix:
 * the upload and its verified offset. All from pool p.
 */
apr_status_t rs_digest_body_make(apr_pool_t *p, rs_body_t *inner,
                                 const char *alg, const rs_upload_t *u,
                                 apr_off_t prefix, apr_off_t total,
                                 rs_digest_body_t **db);

/** Store alg/hex as the digest of upload id (record "u:<id>").
 *  APR_ENOENT when the record is gone. */
apr_status_t rs_engine_digest_set(rs_engine_t *e, const char *id,
                                  const char *alg, const char *hex,
                                  apr_pool_t *p);

#endif /* RS_ENGINE_DIGEST_H */
