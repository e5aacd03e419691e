/* Licensed under the Apache License, Version 2.0. */
#ifndef RS_SDBM_GUARD_H
#define RS_SDBM_GUARD_H

/*
 * Design: APR-util's sdbm trusts its page file. Its page check (chkpage)
 * accepts pages whose entry count is odd or whose offsets run into the
 * offset table, and sdbm's putpair/getpair then write or read outside the
 * 1 KiB page: a corrupted state database (disk fault, a stray copy, an admin
 * mistake) crashes the httpd child that touches it. rs_store asks this guard
 * before every sdbm fetch, store and delete: it finds the page sdbm will use
 * for the key exactly as sdbm does (hash, then the split bitmap in the .dir
 * file) and checks that page strictly. A bad page turns into APR_EINVAL and
 * a clear log line instead of a crash. Costs one or two preads of 1-4 KiB.
 */

#include <apr_pools.h>
#include <apr_file_io.h>

/** Check a raw 1 KiB sdbm page. 1 if well formed. */
int rs_sdbm_page_ok(const unsigned char *page);

/**
 * Check the page of the sdbm database at path (without .dir/.pag) that
 * holds key. APR_SUCCESS: well formed or not yet written; APR_EINVAL: the
 * page (or the directory leading to it) is corrupt.
 */
apr_status_t rs_sdbm_guard_key(const char *path, const char *key,
                               apr_size_t klen, apr_pool_t *p);

#endif /* RS_SDBM_GUARD_H */
