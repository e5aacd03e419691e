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
 * a clear log line instead of a crash.
 *
 * A guard opens the two files on its first check and keeps them (and up
 * to eight directory blocks and 16 checked pages) until its pool goes
 * away, so a lookup costs one pread per directory block and page not yet
 * seen: a put's head read, its segment sweep on another page and its store
 * read the head's page once. A store or delete forgets the page it wrote
 * (rs_sdbm_guard_page_changed: the page of the last check), a split all
 * pages and blocks (rs_sdbm_guard_changed). It
 * serves one transaction at a time: rs_store keeps it (with its sdbm
 * handle) across transactions of one process and calls
 * rs_sdbm_guard_changed at each begin. Cached blocks stay valid while
 * sdbm's file lock keeps writers out (a read transaction); the writer
 * itself calls rs_sdbm_guard_changed after each of its stores and
 * deletes. Not thread safe: one transaction per guard at a time.
 *
 * As the guard finds and reads the very page sdbm would read, a read
 * transaction can take its values from there (rs_sdbm_guard_fetch, sdbm's
 * own pair lookup on the checked page) and skip apr_sdbm altogether: it
 * only has to hold the lock apr_sdbm holds for a read, a shared
 * apr_file_lock on the .dir file (rs_sdbm_guard_lock_shared), so that no
 * writer changes the files meanwhile.
 */

#include <apr_pools.h>

typedef struct rs_sdbm_guard_t rs_sdbm_guard_t;

/** Check a raw 1 KiB sdbm page. 1 if well formed. */
int rs_sdbm_page_ok(const unsigned char *page);

/**
 * A guard for the sdbm database at path (without .dir/.pag), allocated
 * from p; its files are opened by the first check and closed with p.
 */
rs_sdbm_guard_t *rs_sdbm_guard_make(const char *path, apr_pool_t *p);

/**
 * Check the page that holds key. APR_SUCCESS: well formed or not yet
 * written (no files yet); APR_EINVAL: the page (or the directory leading
 * to it) is corrupt; other codes: the files could not be read.
 */
apr_status_t rs_sdbm_guard_check(rs_sdbm_guard_t *g, const char *key,
                                 apr_size_t klen);

/** The database was written: forget the cached size, blocks and page. */
void rs_sdbm_guard_changed(rs_sdbm_guard_t *g);

/** A store that did not split (rs_sdbm_guard_journal saved nothing) or a
 *  delete: only that page changed; the directory blocks stay valid. */
void rs_sdbm_guard_page_changed(rs_sdbm_guard_t *g);

/** After a store journaled by rs_sdbm_guard_journal: page_changed when
 *  that found the pair fits its page (no split: returns 0), else changed
 *  (returns 1: the directory may have grown). */
int rs_sdbm_guard_stored(rs_sdbm_guard_t *g);

/**
 * Open the files and take sdbm's shared lock on the .dir file (waits for
 * a writer), held until the guard's pool is destroyed. APR_ENOENT: no
 * database; other codes: the files could not be opened or locked.
 */
apr_status_t rs_sdbm_guard_lock_shared(rs_sdbm_guard_t *g);

/**
 * Check key's page and look key up in it, as sdbm's fetch does. *val
 * points into the guard (valid until its next check or fetch), NULL when
 * key is absent (APR_SUCCESS). Errors as rs_sdbm_guard_check. Call only
 * under rs_sdbm_guard_lock_shared or a writer's lock.
 */
apr_status_t rs_sdbm_guard_fetch(rs_sdbm_guard_t *g, const char *key,
                                 apr_size_t klen, const char **val,
                                 apr_size_t *vlen);

/** Release the lock of rs_sdbm_guard_lock_shared before the pool goes
 *  (a guard kept across transactions, rs_store.c "KEPT OPEN"). */
void rs_sdbm_guard_unlock(rs_sdbm_guard_t *g);

/**
 * A guard kept across transactions: after taking the lock, are its open
 * files still the database? 1 when either was unlinked or replaced (the
 * open file has no link left) or its owner or mode changed: the caller
 * drops the guard and opens the files again (which then fails as a fresh
 * open would, e.g. EACCES). Two fstat calls; also notes the .dir size.
 */
int rs_sdbm_guard_stale(rs_sdbm_guard_t *g);

/** The .dir size the guard last saw (rs_sdbm_guard_stale, a check), -1
 *  when it has none. */
apr_off_t rs_sdbm_guard_dir_size(const rs_sdbm_guard_t *g);

/**
 * Open the files (when not yet) and check that the paths name them now:
 * APR_SUCCESS, APR_EAGAIN when a path names another file (replaced in
 * between: open again), APR_ENOENT when there are no files.
 */
apr_status_t rs_sdbm_guard_open_at_path(rs_sdbm_guard_t *g);

/** Called for each key by rs_sdbm_guard_keys; nonzero stops the scan. */
typedef int rs_sdbm_key_cb(void *baton, const char *key, apr_size_t klen);

/**
 * Every key of the database, page by page as sdbm's firstkey/nextkey
 * visit them, but skipping the file's holes (sdbm's .pag is sparse: a
 * million records span gigabytes of mostly unwritten pages) and reading
 * 64 pages per pread. Pages that fail the strict check are skipped and
 * counted in *bad (the caller decides; rs_store fails the listing). Call only under rs_sdbm_guard_lock_shared or a
 * writer's lock.
 */
apr_status_t rs_sdbm_guard_keys(rs_sdbm_guard_t *g, rs_sdbm_key_cb *cb,
                                void *baton, int *bad);

/*
 * Crash safety of a split. sdbm stores a pair that does not fit its page by
 * splitting the page: the page rewritten without the keys that move, a
 * directory bit set, the new page written, in turn (and again when the
 * keys still do not fit). A writer killed (or a disk full) between those
 * writes loses every key that moves: records of other uploads, client
 * keys, counters. So before such a store the writer saves the page and
 * the directory to "<path>.undo" (rs_sdbm_guard_journal, after
 * rs_sdbm_guard_check of the key) and removes it once the store returned
 * (rs_sdbm_guard_unjournal); the next writer that finds the file (under the
 * writer's lock, before sdbm reads a page) puts them back
 * (rs_sdbm_undo_apply): the database is as before the store that did not
 * finish, whose transaction never returned. A store that fits its page is
 * one page write and needs no journal. Pages a split wrote past the old
 * end of the .pag file are cut off; one written into a hole stays but is
 * unreachable (no directory bit leads to it) until a split writes it anew.
 */

/** Before storing key (just checked) with a value of vlen bytes: when the
 *  pair does not fit the page (after its old pair is deleted), save the
 *  undo file (*saved 1). */
apr_status_t rs_sdbm_guard_journal(rs_sdbm_guard_t *g, const char *key,
                                   apr_size_t klen, apr_size_t vlen,
                                   int *saved);

/** After the store returned: remove the undo file. */
void rs_sdbm_guard_unjournal(rs_sdbm_guard_t *g);

/** Is an undo file of a killed writer waiting? (one stat) */
int rs_sdbm_undo_pending(const char *path, apr_pool_t *p);

/** Writer's lock held: apply and remove a waiting undo file (*applied 1;
 *  the caller reopens sdbm). An undo file that is not well formed is
 *  removed (APR_EINVAL); nothing waiting: APR_SUCCESS, *applied 0. */
apr_status_t rs_sdbm_undo_apply(const char *path, apr_pool_t *p,
                                int *applied);

#endif /* RS_SDBM_GUARD_H */
