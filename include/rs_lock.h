/* Licensed under the Apache License, Version 2.0. */
#ifndef RS_LOCK_H
#define RS_LOCK_H

/*
 * Design: one writer per upload across all httpd processes and threads.
 * Every staging directory has one lock file, "<staging>/.writers.lock",
 * created on first use and never removed (so a request creates and removes
 * no file). An upload's writer holds an open file description (OFD) lock,
 * fcntl F_OFD_SETLK, on one byte of it: the writer byte at offset 2 * h,
 * h a 61-bit hash of the upload id (collisions: about 2^-61 per pair of
 * live uploads). OFD locks belong to the open file description and every
 * acquire opens the file anew, so threads and processes exclude each other
 * alike; the kernel drops the lock when the holder dies, so a SIGKILLed
 * child never leaves a stale lock.
 *
 * Takeover (cf. tusd's filelocker): a request that finds the lock taken
 * asks the holder to yield by holding a shared lock on the stop byte
 * (offset 2 * h + 1) while it polls for the writer byte, up to `wait`. The
 * holder checks rs_lock_stop_requested() in its body loop (F_OFD_GETLK on
 * the stop byte); when it has been idle (the client stalled or vanished) it
 * stops reading, keeps the bytes it has, releases the lock and ends. A
 * holder that is still receiving data does not yield, so the newcomer gets
 * APR_EBUSY (-> 423). A request stays only while its waiter holds it (a
 * waiter that gives up or dies withdraws it), so no stale request is ever
 * left for a later holder.
 */

#include <apr_pools.h>
#include <apr_time.h>

typedef struct rs_lock_t rs_lock_t;

/**
 * Take the lock for upload id in directory staging.
 * wait: how long to wait for a holder to yield (0: do not ask, fail at once).
 * APR_EBUSY: still held after wait. APR_ENOENT (not logged): staging does
 * not exist, so a caller need not stat it before every acquire: it creates
 * it on APR_ENOENT and tries again. The lock is released by rs_lock_release
 * or by the cleanup of pool p.
 */
apr_status_t rs_lock_acquire(rs_lock_t **pl, const char *staging,
                             const char *id, apr_interval_time_t wait,
                             apr_pool_t *p);

/** Holder: has another request asked for this upload? (one fcntl call;
 *  rate-limited to once per 100 ms, cheap to call per bucket) */
int rs_lock_stop_requested(rs_lock_t *l);

/** One OFD lock operation (fcntl F_OFD_SETLK, retried on EINTR) on
 *  [start, start + len) of fd (len 0: to the end); type F_WRLCK, F_RDLCK
 *  or F_UNLCK. 0, or -1 with errno (EAGAIN/EACCES: held elsewhere). */
int rs_lock_ofd(int fd, apr_off_t start, apr_off_t len, int type);

/** Release (idempotent). */
void rs_lock_release(rs_lock_t *l);

/** The upload is finished or deleted (lock held): nothing left to remove
 *  since the lock file is shared; kept for the callers' symmetry. */
void rs_lock_remove_files(rs_lock_t *l);

#endif /* RS_LOCK_H */
