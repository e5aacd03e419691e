/* Licensed to the Apache Software Foundation (ASF) under one or more
 * contributor license agreements; and licensed under the Apache License,
 * Version 2.0 (the "License"); you may not use this file except in
 * compliance with the License. See http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * rs_engine_lease.c - one writer per upload: the hold (rs_engine_private.h).
 *
 * On one node a hold is rs_lock's OFD byte lock: the kernel excludes
 * writers and drops the lock of a dead one. In cluster mode
 * (e->lease_time > 0: the state is in PostgreSQL, the data on a shared file
 * system) no kernel sees every writer, so a hold is a lease in the upload's
 * record instead (scaleout.md §5.4):
 *
 *   acquire  one write transaction: when the lease is free (released),
 *            expired by the store's clock, or its owner is a dead process of
 *            this kernel (boot id, pid and start time), raise the epoch,
 *            name ourselves owner until now + lease_time, clear stop_req.
 *            An append-mode upload then gets its segment: after a clean
 *            release the last one is continued (the writer truncates it to
 *            its committed length); after a takeover (the previous holder
 *            never released: dead, frozen or cut off) a new segment file
 *            "<id>.e<epoch>" starting at the committed offset, so the old
 *            writer's file is never written by anyone else.
 *   busy     set stop_req (ask the holder to yield, as rs_lock's stop
 *            byte does) and poll every LEASE_POLL up to `wait`.
 *   renew    every save of a holder (rs_eng_save_held) checks the stored
 *            epoch is still its own (else RS_EFENCED: the writer stops,
 *            nothing of it counts) and moves lease_until on.
 *   release  one write transaction clearing the owner, if the epoch is
 *            still ours.
 *
 * Every write of the lease fields happens inside a store write
 * transaction, which excludes all other writers of the database on every
 * node (rs_store.h, providers), so the check and the change are atomic.
 */

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <apr_file_io.h>
#include <apr_strings.h>

#include "rs_data.h"
#include "rs_engine_private.h"
#include "rs_lock.h"
#include "rs_log.h"
#include "rs_store.h"

#define LEASE_POLL    apr_time_from_msec(100)
#define STOP_INTERVAL apr_time_from_msec(250)
#define STOP_FRESH    apr_time_from_sec(2)     /* a stop request older than
                                                  this has no waiter left */

struct rs_hold_t {
    rs_engine_t *e;
    apr_pool_t *p;
    const char *id;
    rs_lock_t *lock;            /* one node */
    apr_int64_t epoch;          /* cluster: the epoch we hold */
    int takeover;               /* cluster: the previous holder vanished */
    int held;
    apr_time_t renewed;         /* local time the last renewal began */
    apr_time_t checked;         /* last stop probe */
    int stopped;
    int release_on_save;        /* cluster: the next save frees the lease */
};

int rs_eng_cluster(const rs_engine_t *e)
{
    return e->lease_time > 0;
}

/* ---- who we are ----------------------------------------------------------- */

static int read_small(const char *path, char *buf, apr_size_t size)
{
    FILE *f = fopen(path, "r");
    size_t n;

    if (!f) {
        return -1;
    }
    n = fread(buf, 1, size - 1, f);
    fclose(f);
    buf[n] = '\0';
    return (int)n;
}

/* Start time (field 22 of /proc/<pid>/stat, clock ticks since boot) and
 * state of pid; 0 when the process does not exist. */
static int proc_start(long pid, unsigned long long *start, char *state)
{
    char path[64], buf[1024], *s;
    int i;

    apr_snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    if (read_small(path, buf, sizeof(buf)) <= 0
        || !(s = strrchr(buf, ')'))) {
        return 0;
    }
    s += 2;                                     /* ") S ..." */
    *state = *s;
    for (i = 3; i < 22 && s; i++) {             /* s is at field 3 */
        s = strchr(s, ' ');
        s = s ? s + 1 : NULL;
    }
    if (!s || sscanf(s, "%llu", start) != 1) {
        return 0;
    }
    return 1;
}

static const char *boot_id(void)
{
    static char id[64];

    if (!id[0] && read_small("/proc/sys/kernel/random/boot_id", id,
                             sizeof(id)) > 0) {
        id[strcspn(id, "\n")] = '\0';
    }
    return id[0] ? id : "unknown";
}

const char *rs_eng_lease_me(apr_pool_t *p)
{
    unsigned long long start = 0;
    char state;

    proc_start((long)getpid(), &start, &state);
    return apr_psprintf(p, "%s:%ld:%" APR_UINT64_T_FMT, boot_id(),
                        (long)getpid(), (apr_uint64_t)start);
}

/* Is owner a process of this kernel that is gone (or a zombie)? Owners of
 * other machines cannot be judged: their lease has to expire. */
static int owner_dead(const char *owner)
{
    const char *mine = boot_id(), *rest;
    unsigned long long start, now_start;
    long pid;
    char state;
    size_t n = strlen(mine);

    if (strncmp(owner, mine, n) || owner[n] != ':' || !strcmp(mine, "unknown")) {
        return 0;
    }
    rest = owner + n + 1;
    if (sscanf(rest, "%ld:%llu", &pid, &start) != 2 || pid <= 0) {
        return 0;
    }
    if (!proc_start(pid, &now_start, &state)) {
        return 1;
    }
    return now_start != start || 'Z' == state || 'X' == state;
}

/* ---- segments ------------------------------------------------------------- */

const char *rs_eng_seg_path(apr_pool_t *p, const rs_upload_t *u,
                            const rs_segment_t *s)
{
    return apr_psprintf(p, "%s/" RS_STAGING_DIR "/%s.e%" APR_INT64_T_FMT,
                        u->dir, u->id, s->epoch);
}

/* The segment a new holder of epoch writes (see the top). */
static apr_status_t seg_take(rs_upload_t *u, int takeover, apr_pool_t *p)
{
    rs_segment_t *segs;

    if (u->nsegs > 0 && !takeover) {
        return APR_SUCCESS;             /* continue the last one */
    }
    if (u->nsegs >= RS_UPLOAD_MAX_SEGS) {
        return APR_ENOSPC;
    }
    segs = apr_pcalloc(p, sizeof(*segs) * (u->nsegs + 1));
    if (u->nsegs) {
        memcpy(segs, u->segs, sizeof(*segs) * u->nsegs);
    }
    segs[u->nsegs].epoch = u->epoch;
    segs[u->nsegs].start = u->nsegs ? segs[u->nsegs - 1].start
                                      + segs[u->nsegs - 1].len : 0;
    segs[u->nsegs].len = u->offset - segs[u->nsegs].start;
    u->segs = segs;
    u->nsegs++;
    return APR_SUCCESS;
}

/* ---- the lease ------------------------------------------------------------ */

/* One attempt. *busy: held by a live owner (stop_req set when ask). */
static rs_error_t *lease_try(rs_hold_t *h, int ask, int *busy)
{
    rs_engine_t *e = h->e;
    apr_pool_t *p = h->p;
    apr_time_t began = apr_time_now(), now;
    rs_txn_t *txn;
    rs_upload_t *cur;
    apr_status_t rv = rs_store_begin(e->store, 1, p, &txn);
    int save = 0, takeover = 0, dead = 0;

    *busy = 0;
    if (APR_SUCCESS != rv) {
        return rs_eng_state_error(p, rv, "lease", h->id);
    }
    rv = rs_eng_txn_load(txn, h->id, p, &cur);
    if (APR_SUCCESS == rv) {
        rv = rs_store_clock(txn, &now);
    }
    if (APR_SUCCESS != rv) {
        rs_store_end(txn);
        return APR_STATUS_IS_ENOENT(rv) ? rs_error_make(p, RS_ERR_NOT_FOUND,
                                                        rv, NULL)
               : rs_eng_state_error(p, rv, "lease", h->id);
    }
    if (!cur->lease_owner || cur->lease_until <= now
        || (dead = owner_dead(cur->lease_owner))) {
        takeover = cur->lease_owner != NULL;
        cur->epoch++;
        cur->lease_owner = rs_eng_lease_me(p);
        cur->lease_until = now + e->lease_time;
        cur->stop_req = 0;
        if (rs_upload_append_mode(cur)) {
            rv = seg_take(cur, takeover, p);
        }
        save = 1;
    }
    else {
        *busy = 1;
        if (ask && cur->stop_req < now - STOP_FRESH / 2) {
            cur->stop_req = now;
            save = 1;
        }
    }
    if (APR_SUCCESS == rv && save) {
        rv = rs_eng_txn_save(txn, cur, p);
    }
    rv = rs_store_finish(txn, rv);
    if (APR_STATUS_IS_ENOSPC(rv)) {
        return rs_error_make(p, RS_ERR_LOCKED, rv, "too many takeovers");
    }
    if (APR_SUCCESS != rv) {
        *busy = 0;
        return rs_eng_state_error(p, rv, "lease", h->id);
    }
    if (!*busy) {
        h->epoch = cur->epoch;
        h->takeover = takeover;
        h->renewed = began;
        h->held = 1;
        if (takeover) {
            rs_log_perror(RS_LOG_MARK, RS_LOG_INFO, 0, p, RS_LOGNO(09830)
                          "upload %s: lease taken over at epoch %"
                          APR_INT64_T_FMT " (its holder never released it: %s)",
                          h->id, cur->epoch, dead ? "the process is gone"
                          : "the lease expired");
        }
    }
    return NULL;
}

static rs_error_t *lease_acquire(rs_hold_t *h, apr_interval_time_t wait)
{
    apr_time_t until = apr_time_now() + wait;
    rs_error_t *err;
    int busy;

    for (;;) {
        err = lease_try(h, wait > 0, &busy);
        if (err || !busy) {
            return err;
        }
        if (apr_time_now() >= until) {
            return rs_error_make(h->p, RS_ERR_LOCKED, APR_EBUSY, NULL);
        }
        apr_sleep(LEASE_POLL);
    }
}

static void lease_release(rs_hold_t *h)
{
    rs_txn_t *txn;
    rs_upload_t *cur;
    apr_pool_t *p;
    apr_status_t rv;

    apr_pool_create(&p, h->p);
    rv = rs_store_begin(h->e->store, 1, p, &txn);
    if (APR_SUCCESS == rv) {
        rv = rs_eng_txn_load(txn, h->id, p, &cur);
        if (APR_SUCCESS == rv && cur->epoch == h->epoch && cur->lease_owner) {
            cur->lease_owner = NULL;
            cur->lease_until = 0;
            cur->stop_req = 0;
            rv = rs_eng_txn_save(txn, cur, p);
        }
        rv = rs_store_finish(txn, APR_STATUS_IS_ENOENT(rv) ? APR_SUCCESS
                             : rv);
    }
    if (APR_SUCCESS != rv) {
        rs_log_perror(RS_LOG_MARK, RS_LOG_WARNING, rv, p, RS_LOGNO(09833)
                      "upload %s: lease not released (it expires after "
                      "ResumableLeaseTime)", h->id);
    }
    apr_pool_destroy(p);
}

/* Stop probe of a holder: asked to yield, or fenced already. */
static int lease_stop(rs_hold_t *h)
{
    rs_txn_t *txn;
    rs_upload_t *cur;
    apr_pool_t *p;
    apr_time_t now;
    int stop = 0;

    apr_pool_create(&p, h->p);
    if (APR_SUCCESS == rs_store_begin(h->e->store, 0, p, &txn)) {
        if (APR_SUCCESS == rs_eng_txn_load(txn, h->id, p, &cur)
            && APR_SUCCESS == rs_store_clock(txn, &now)) {
            stop = cur->epoch != h->epoch
                   || (cur->stop_req && cur->stop_req >= now - STOP_FRESH);
        }
        rs_store_end(txn);
    }
    apr_pool_destroy(p);
    return stop;
}

/* ---- holds ---------------------------------------------------------------- */

rs_error_t *rs_eng_hold(rs_engine_t *e, const char *dir, const char *id,
                        apr_interval_time_t wait, apr_pool_t *p,
                        rs_hold_t **ph)
{
    rs_hold_t *h = apr_pcalloc(p, sizeof(*h));
    const char *staging;
    apr_status_t rv;

    h->e = e;
    h->p = p;
    h->id = apr_pstrdup(p, id);
    *ph = NULL;
    if (rs_eng_cluster(e)) {
        rs_error_t *err;

        rv = rs_data_staging(p, dir, 1, &staging);
        if (APR_SUCCESS != rv) {
            return rs_eng_io_error(p, rv, "locking", id);
        }
        if ((err = lease_acquire(h, wait))) {
            return err;
        }
    }
    else {
        /* no stat of the staging folder per request: made when the lock
         * file's open finds it missing (rs_lock_acquire) */
        staging = apr_pstrcat(p, dir, "/" RS_STAGING_DIR, NULL);
        rv = rs_lock_acquire(&h->lock, staging, id, wait, p);
        if (APR_STATUS_IS_ENOENT(rv)
            && APR_SUCCESS == (rv = rs_data_staging(p, dir, 1, &staging))) {
            rv = rs_lock_acquire(&h->lock, staging, id, wait, p);
        }
        if (APR_STATUS_IS_EBUSY(rv)) {
            return rs_error_make(p, RS_ERR_LOCKED, rv, NULL);
        }
        if (APR_SUCCESS != rv) {
            return rs_eng_io_error(p, rv, "locking", id);
        }
        h->held = 1;
    }
    *ph = h;
    return NULL;
}

int rs_eng_hold_stop_requested(rs_hold_t *h)
{
    apr_time_t now;

    if (!h || !h->held) {
        return 0;
    }
    if (h->lock) {
        return rs_lock_stop_requested(h->lock);
    }
    now = apr_time_now();
    if (!h->stopped && now - h->checked >= STOP_INTERVAL) {
        h->checked = now;
        h->stopped = lease_stop(h);
    }
    return h->stopped;
}

void rs_eng_unhold(rs_hold_t *h)
{
    if (!h || !h->held) {
        return;
    }
    h->held = 0;
    if (h->lock) {
        rs_lock_release(h->lock);
    }
    else {
        lease_release(h);
    }
}

void rs_eng_hold_release_on_save(rs_hold_t *h)
{
    if (h && !h->lock) {
        h->release_on_save = 1;
    }
}

int rs_eng_hold_releasing(const rs_hold_t *h)
{
    return h && h->release_on_save;
}

void rs_eng_hold_forget(rs_hold_t *h)
{
    if (h && !h->lock) {
        h->held = 0;                /* a save freed the lease already */
    }
}

apr_int64_t rs_eng_hold_epoch(const rs_hold_t *h)
{
    return h ? h->epoch : 0;
}

int rs_eng_hold_takeover(const rs_hold_t *h)
{
    return h && h->takeover;
}

void rs_eng_hold_renewed(rs_hold_t *h, apr_time_t began)
{
    if (h) {
        h->renewed = began;
    }
}

int rs_eng_hold_expiring(const rs_hold_t *h)
{
    apr_interval_time_t t = h ? h->e->lease_time : 0;

    return t > 0 && apr_time_now() - h->renewed > t - t / 5;
}

int rs_eng_hold_renew_due(const rs_hold_t *h)
{
    apr_interval_time_t t = h ? h->e->lease_time : 0;

    return t > 0 && apr_time_now() - h->renewed > t / 3;
}
