/* Licensed under the Apache License, Version 2.0. */
#ifndef RS_LOCK_H
#define RS_LOCK_H

/*
 * Design: one writer per upload across all httpd processes and threads.
 * The lock is an exclusive, non-blocking flock on "<staging>/<id>.lock"
 * (flock locks belong to the open file description, so two threads of one
 * process exclude each other too). The kernel drops it when the holder dies,
 * so a SIGKILLed child never leaves a stale lock.
 *
 * Takeover (cf. tusd's filelocker): a request that finds the lock taken
 * creates "<id>.stop" and polls for the lock up to `wait`. The holder checks
 * rs_lock_stop_requested() in its body loop; when it has been idle (the
 * client stalled or vanished) it stops reading, keeps the bytes it has,
 * releases the lock and ends. A holder that is still receiving data does not
 * yield, so the newcomer gets APR_EBUSY (-> 423). The newcomer removes the
 * stop file whether it won or not.
 */

#include <apr_pools.h>
#include <apr_time.h>

typedef struct rs_lock_t rs_lock_t;

/**
 * Take the lock for upload id in directory staging (must exist).
 * wait: how long to wait for a holder to yield (0: do not ask, fail at once).
 * APR_EBUSY: still held after wait. The lock is released by rs_lock_release
 * or by the cleanup of pool p.
 */
apr_status_t rs_lock_acquire(rs_lock_t **pl, const char *staging,
                             const char *id, apr_interval_time_t wait,
                             apr_pool_t *p);

/** Holder: has another request asked for this upload? (one stat call;
 *  rate-limited to once per 100 ms, cheap to call per bucket) */
int rs_lock_stop_requested(rs_lock_t *l);

/** Release (idempotent). */
void rs_lock_release(rs_lock_t *l);

/** Remove the lock and stop files of id (upload deleted; lock held). */
void rs_lock_remove_files(rs_lock_t *l);

#endif /* RS_LOCK_H */
