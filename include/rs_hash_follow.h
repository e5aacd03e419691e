/* Licensed under the Apache License, Version 2.0. */
#ifndef RS_HASH_FOLLOW_H
#define RS_HASH_FOLLOW_H

/*
 * Design: a digest that follows a file as it is written (issue 15). A
 * checksummed body then stays on the splice path (socket -> pipe -> page
 * cache, no copy through the request's thread): the writer tells the
 * follower how far the file is written (rs_hash_follow_advance), and a
 * worker thread of its own reads those bytes back from the page cache
 * (pread into a small buffer that stays in the CPU's cache) and digests
 * them while the next bytes arrive. The digest is the only per-byte cost
 * of the worker, and it overlaps the receive; rs_hash_follow_final waits
 * for the last bytes, so the caller verifies before it counts them.
 *
 * The worker reads through a descriptor of its own (a dup), so closing the
 * caller's file does not pull it from under the worker. A short read (the
 * caller truncated the range, e.g. a rollback) fails the digest. A caller
 * that gives up before final leaves the worker to the pool: a pre-cleanup
 * stops and joins it. One writer thread per follower.
 */

#include <apr_pools.h>
#include <apr_file_io.h>

typedef struct rs_hash_follow_t rs_hash_follow_t;

/** Follow f from offset off with algorithm alg (rs_hash_create's names).
 *  APR_ENOTIMPL: unknown algorithm; another error: no thread or descriptor
 *  (the caller then digests in memory). */
apr_status_t rs_hash_follow_start(rs_hash_follow_t **hf, const char *alg,
                                  apr_file_t *f, apr_off_t off,
                                  apr_pool_t *p);

/** The first `written` bytes from off are in the file (monotonic). */
void rs_hash_follow_advance(rs_hash_follow_t *hf, apr_off_t written);

/** Digest of exactly len bytes from off (all of them written): waits for
 *  the worker and joins it. out must hold RS_HASH_MAX bytes. APR_EGENERAL
 *  when a read or an update failed; APR_EINVAL when called twice. */
apr_status_t rs_hash_follow_final(rs_hash_follow_t *hf, apr_off_t len,
                                  unsigned char *out, apr_size_t *outlen);

#endif /* RS_HASH_FOLLOW_H */
