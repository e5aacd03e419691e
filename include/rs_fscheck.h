/* Licensed under the Apache License, Version 2.0. */
#ifndef RS_FSCHECK_H
#define RS_FSCHECK_H

/*
 * Design: the start-up self-test of an area's directory in cluster mode
 * (ResumableStateDB dbd:). Several nodes share the directory, and the
 * engine's integrity rests on a few POSIX promises of the shared file
 * system: an exclusive create (O_CREAT|O_EXCL) fails with EEXIST when the
 * name exists, link() never replaces an existing name, a hard link is the
 * same inode (link count 2), rename() works and fdatasync() succeeds. A
 * wrong mount (no hard links, a read-only or non-POSIX file system, a
 * directory the child user cannot write) is refused at start with a
 * clear message instead of failing uploads later.
 *
 * rs_fscheck_dir probes one directory with uniquely named files
 * (".rs-fscheck-<pid>-<random>.{a,b,c}") and removes them again, on
 * success and on failure. It uses the caller's credentials: the glue runs
 * it as the child user (see mod_resumable_state.c). rs_fscheck_area probes
 * an area's directory and then its staging folder (".resumable/", created
 * when absent, as rs_data_staging does). APR only.
 */

#include <apr_pools.h>

/**
 * Probe `dir`. APR_SUCCESS, or the status of the failing step with *why a
 * message without the directory's name, e.g. "hard links are not
 * supported (link: Operation not permitted)". Allocated from p.
 */
apr_status_t rs_fscheck_dir(const char *dir, apr_pool_t *p, const char **why);

/**
 * Probe the area directory `dir` and its staging folder (created when
 * absent). On failure *failed is the directory that failed (dir or its
 * staging folder) and *why as above.
 */
apr_status_t rs_fscheck_area(const char *dir, apr_pool_t *p,
                             const char **failed, const char **why);

#endif
