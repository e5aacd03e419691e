/* Licensed under the Apache License, Version 2.0. */
#ifndef RS_HASH_H
#define RS_HASH_H

/*
 * Design: streaming digests through OpenSSL EVP for tus checksums (md5,
 * sha1, sha256, sha512) and RFC 9530 digests (sha-256, sha-512). A context
 * is fed while a body streams (no buffering); a range of a data file can be
 * hashed after the fact (trailer checksums, verification). The EVP context
 * is freed by a pool cleanup. A pipelined context digests in a worker
 * thread of its own, so hashing a large body overlaps reading and writing
 * it (1 MiB of buffers, one copy of every byte). tus checksums of large
 * bodies use rs_hash_follow.h instead: the body stays on the splice path
 * and a worker digests it from the page cache.
 */

#include <apr_pools.h>
#include <apr_file_io.h>

#define RS_HASH_MAX 64            /* bytes of the largest digest (sha512) */

typedef struct rs_hash_t rs_hash_t;

/** Comma-separated algorithm names for Tus-Checksum-Algorithm. */
#define RS_HASH_TUS_ALGORITHMS "md5,sha1,sha256,sha512"

/** 1 if alg is one of md5, sha1, sha256, sha512 (exact, lower case). */
int rs_hash_known(const char *alg);

/** Start a digest. APR_ENOTIMPL for an unknown algorithm name. */
apr_status_t rs_hash_create(rs_hash_t **h, const char *alg, apr_pool_t *p);
/** Like rs_hash_create, digesting in a worker thread (falls back to the
 *  caller's thread when none can be started). The thread is joined by
 *  rs_hash_final, or when p is cleared. Not for concurrent updaters. */
apr_status_t rs_hash_create_pipelined(rs_hash_t **h, const char *alg,
                                      apr_pool_t *p);
/** Bodies from this size on (or of unknown size) are digested pipelined. */
#define RS_HASH_PIPE_MIN (1024 * 1024)
/** rs_hash_create_pipelined for `expected` bytes of RS_HASH_PIPE_MIN or
 *  more or unknown (-1), else rs_hash_create. */
apr_status_t rs_hash_create_for(rs_hash_t **h, const char *alg,
                                apr_off_t expected, apr_pool_t *p);
/** 1 if h digests in a worker thread. */
int rs_hash_is_pipelined(const rs_hash_t *h);
void rs_hash_update(rs_hash_t *h, const void *data, apr_size_t len);
/** Finish; out must hold RS_HASH_MAX bytes. The context may not be reused. */
apr_status_t rs_hash_final(rs_hash_t *h, unsigned char *out, apr_size_t *outlen);

/** Digest of len bytes of f starting at off (reads in 1 MiB pieces). */
apr_status_t rs_hash_file_range(const char *alg, apr_file_t *f, apr_off_t off,
                                apr_off_t len, unsigned char *out,
                                apr_size_t *outlen, apr_pool_t *p);

/**
 * Parse a tus Upload-Checksum value "<alg> SP <base64 digest>".
 * APR_EINVAL: malformed, or digest length not the algorithm's;
 * APR_ENOTIMPL: well formed but unknown algorithm.
 */
apr_status_t rs_hash_parse_checksum(apr_pool_t *p, const char *hdr,
                                    const char **alg,
                                    const unsigned char **digest,
                                    apr_size_t *len);

#endif /* RS_HASH_H */
