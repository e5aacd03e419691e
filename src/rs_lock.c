/* Licensed to the Apache Software Foundation (ASF) under one or more
 * contributor license agreements; and licensed under the Apache License,
 * Version 2.0 (the "License"); you may not use this file except in
 * compliance with the License. See http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * rs_lock.c - one writer per upload (design in rs_lock.h).
 *
 * Why OFD locks (fcntl F_OFD_SETLK, Linux 3.15+) and not apr_file_lock:
 * apr_file_lock uses classic fcntl record locks, which belong to the
 * process, so two threads of one httpd child would both "hold" them, and
 * closing any descriptor of the file drops them. OFD locks belong to the
 * open file description, like flock, but lock byte ranges, so one file
 * serves every upload of a staging directory: no lock file is created,
 * checked or unlinked per request (the earlier "<id>.lock" + "<id>.stop"
 * files cost an open with create, two stats, an fstat and up to three
 * unlinks per request).
 *
 * The descriptor is a plain open(2) with O_CLOEXEC owned by a cleanup of the
 * caller's pool: it unlocks explicitly (F_UNLCK also covers a copy of the
 * descriptor inherited by a forked child) and closes. The lock file is
 * never removed, so a descriptor never locks a dead inode.
 *
 * Bytes: writer at 2h, stop request at 2h + 1, h = 64-bit FNV-1a of the id
 * reduced to 61 bits, so every offset fits a 64-bit off_t. Locks beyond the
 * end of the file are allowed; the file stays empty.
 */

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <apr_strings.h>
#include <apr_time.h>

#include "rs_lock.h"
#include "rs_log.h"

#define LOCK_POLL       apr_time_from_msec(20)
#define STOP_INTERVAL   apr_time_from_msec(100)
#define LOCK_PERMS      0640
#define LOCK_FILE       ".writers.lock"

struct rs_lock_t {
    apr_pool_t *pool;
    const char *lock_path;
    off_t slot;                 /* writer byte; stop byte is slot + 1 */
    apr_time_t checked;         /* last probe of the stop byte, 0: never */
    int fd;                     /* -1 when closed */
    int held;
    int stopped;                /* sticky result of rs_lock_stop_requested */
};

static off_t slot_of(const char *id)
{
    apr_uint64_t h = APR_UINT64_C(14695981039346656037);

    for (; *id; id++) {
        h = (h ^ (unsigned char)*id) * APR_UINT64_C(1099511628211);
    }
    return (off_t)((h & ((APR_UINT64_C(1) << 61) - 1)) * 2);
}

int rs_lock_ofd(int fd, apr_off_t start, apr_off_t len, int type)
{
    struct flock fl;
    int rc;

    memset(&fl, 0, sizeof(fl));     /* l_pid must be 0 for OFD locks */
    fl.l_type = (short)type;
    fl.l_whence = SEEK_SET;
    fl.l_start = (off_t)start;
    fl.l_len = (off_t)len;
    do {
        rc = fcntl(fd, F_OFD_SETLK, &fl);
    } while (rc < 0 && errno == EINTR);
    return rc;
}

/* One OFD lock operation on byte `at` of the lock file. */
static int byte_lock(rs_lock_t *l, off_t at, short type)
{
    return rs_lock_ofd(l->fd, at, 1, type);
}

static void lock_close(rs_lock_t *l)
{
    if (l->fd < 0) {
        return;
    }
    if (l->held) {
        byte_lock(l, l->slot, F_UNLCK);
        l->held = 0;
    }
    close(l->fd);
    l->fd = -1;
}

static apr_status_t lock_cleanup(void *data)
{
    lock_close(data);
    return APR_SUCCESS;
}

static apr_status_t lock_open(rs_lock_t *l)
{
    do {
        l->fd = open(l->lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
                     LOCK_PERMS);
    } while (l->fd < 0 && errno == EINTR);
    if (l->fd < 0) {
        apr_status_t rv = APR_FROM_OS_ERROR(errno);

        if (APR_STATUS_IS_ENOENT(rv)) {
            return APR_ENOENT;      /* no staging directory: the caller's */
        }
        rs_log_perror(RS_LOG_MARK, RS_LOG_ERR, rv, l->pool,
                      RS_LOGNO(03050) "cannot open lock file %s",
                      l->lock_path);
        return rv;
    }
    return APR_SUCCESS;
}

/* One non-blocking attempt on the writer byte: APR_SUCCESS, APR_EBUSY or
 * an error (logged). */
static apr_status_t lock_try(rs_lock_t *l)
{
    int err;

    if (byte_lock(l, l->slot, F_WRLCK) == 0) {
        l->held = 1;
        return APR_SUCCESS;
    }
    err = errno;
    if (err == EAGAIN || err == EACCES) {
        return APR_EBUSY;
    }
    rs_log_perror(RS_LOG_MARK, RS_LOG_ERR, APR_FROM_OS_ERROR(err), l->pool,
                  RS_LOGNO(03051) "OFD lock of %s failed", l->lock_path);
    return APR_FROM_OS_ERROR(err);
}

/* Ask the holder to yield: a shared lock on the stop byte, held while we
 * poll (other waiters share it). */
static void stop_request(rs_lock_t *l)
{
    if (byte_lock(l, l->slot + 1, F_RDLCK) < 0) {
        rs_log_perror(RS_LOG_MARK, RS_LOG_WARNING, APR_FROM_OS_ERROR(errno),
                      l->pool, RS_LOGNO(03052) "cannot request a stop in %s",
                      l->lock_path);
    }
}

/* Poll until the holder yields or `wait` has passed; withdraws the stop
 * request in any case. */
static apr_status_t lock_wait(rs_lock_t *l, apr_interval_time_t wait)
{
    apr_time_t deadline = apr_time_now() + wait;
    apr_status_t rv = APR_EBUSY;
    apr_interval_time_t left;

    stop_request(l);
    while (rv == APR_EBUSY && (left = deadline - apr_time_now()) > 0) {
        apr_sleep(left < LOCK_POLL ? left : LOCK_POLL);
        rv = lock_try(l);
    }
    byte_lock(l, l->slot + 1, F_UNLCK);
    return rv;
}

apr_status_t rs_lock_acquire(rs_lock_t **pl, const char *staging,
                             const char *id, apr_interval_time_t wait,
                             apr_pool_t *p)
{
    rs_lock_t *l = apr_pcalloc(p, sizeof(*l));
    apr_status_t rv;

    *pl = NULL;
    l->pool = p;
    l->fd = -1;
    l->lock_path = apr_pstrcat(p, staging, "/" LOCK_FILE, NULL);
    l->slot = slot_of(id);
    apr_pool_cleanup_register(p, l, lock_cleanup, apr_pool_cleanup_null);
    if ((rv = lock_open(l)) == APR_SUCCESS) {
        rv = lock_try(l);
        if (rv == APR_EBUSY && wait > 0) {
            rv = lock_wait(l, wait);
        }
    }
    if (rv != APR_SUCCESS) {
        rs_lock_release(l);
        return rv;
    }
    *pl = l;
    return APR_SUCCESS;
}

int rs_lock_stop_requested(rs_lock_t *l)
{
    struct flock fl;
    apr_time_t now;

    if (l->stopped) {
        return 1;
    }
    now = apr_time_now();
    if (l->checked && now - l->checked < STOP_INTERVAL) {
        return 0;
    }
    l->checked = now;
    memset(&fl, 0, sizeof(fl));
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = l->slot + 1;
    fl.l_len = 1;
    l->stopped = l->fd >= 0 && fcntl(l->fd, F_OFD_GETLK, &fl) == 0
                 && fl.l_type != F_UNLCK;
    return l->stopped;
}

void rs_lock_release(rs_lock_t *l)
{
    if (l) {
        apr_pool_cleanup_kill(l->pool, l, lock_cleanup);
        lock_close(l);
    }
}

void rs_lock_remove_files(rs_lock_t *l)
{
    (void)l;        /* the lock file is shared and stays (rs_lock.h) */
}
