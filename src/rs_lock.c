/* Licensed to the Apache Software Foundation (ASF) under one or more
 * contributor license agreements; and licensed under the Apache License,
 * Version 2.0 (the "License"); you may not use this file except in
 * compliance with the License. See http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * rs_lock.c - one writer per upload (design in rs_lock.h).
 *
 * Why flock(2) and not apr_file_lock: on Linux apr_file_lock uses fcntl
 * record locks, which belong to the process, so two threads of one httpd
 * child would both "hold" them. flock locks belong to the open file
 * description; every acquire opens the lock file anew, so threads and
 * processes exclude each other alike.
 *
 * The descriptor is a plain open(2) with O_CLOEXEC owned by a cleanup of the
 * caller's pool: it unlocks explicitly (LOCK_UN also covers a copy of the
 * descriptor inherited by a forked child) and closes.
 *
 * A lock file unlinked while a waiter polls on it (rs_lock_remove_files of a
 * deleted upload) would give the waiter a lock on a dead inode while a later
 * request locks a new file. After every successful flock the descriptor is
 * therefore compared with the path (device and inode); on a mismatch the
 * file is reopened and the attempt repeated.
 *
 * Stop files: the waiter creates "<id>.stop" before polling and re-creates
 * it at every poll (another waiter that gave up may have removed it); it
 * removes it when done, won or lost. A winner also removes a stale one, so
 * a waiter killed while polling does not leave the next holder a false
 * request.
 */

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <apr_strings.h>
#include <apr_time.h>

#include "rs_lock.h"
#include "rs_log.h"

#define LOCK_POLL       apr_time_from_msec(20)
#define STOP_INTERVAL   apr_time_from_msec(100)
#define LOCK_PERMS      0640
#define REOPEN_TRIES    8

struct rs_lock_t {
    apr_pool_t *pool;
    const char *lock_path;
    const char *stop_path;
    apr_time_t checked;         /* last stat of the stop file, 0: never */
    int fd;                     /* -1 when closed */
    int held;
    int stopped;                /* sticky result of rs_lock_stop_requested */
};

static void lock_close(rs_lock_t *l)
{
    if (l->fd < 0) {
        return;
    }
    if (l->held) {
        flock(l->fd, LOCK_UN);
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

        rs_log_perror(RS_LOG_MARK, RS_LOG_ERR, rv, l->pool,
                      RS_LOGNO(03050) "cannot open lock file %s",
                      l->lock_path);
        return rv;
    }
    return APR_SUCCESS;
}

/* Does the locked descriptor still belong to the file at lock_path? */
static int lock_current(rs_lock_t *l)
{
    struct stat fst, pst;

    if (fstat(l->fd, &fst) < 0 || stat(l->lock_path, &pst) < 0) {
        return 0;
    }
    return fst.st_dev == pst.st_dev && fst.st_ino == pst.st_ino;
}

/* One flock attempt on an open descriptor: APR_SUCCESS, APR_EBUSY, error. */
static apr_status_t lock_flock(rs_lock_t *l)
{
    int rc;

    do {
        rc = flock(l->fd, LOCK_EX | LOCK_NB);
    } while (rc < 0 && errno == EINTR);
    if (rc == 0) {
        l->held = 1;
        return APR_SUCCESS;
    }
    if (errno == EWOULDBLOCK) {
        return APR_EBUSY;
    }
    rc = errno;
    rs_log_perror(RS_LOG_MARK, RS_LOG_ERR, APR_FROM_OS_ERROR(rc), l->pool,
                  RS_LOGNO(03051) "flock of %s failed", l->lock_path);
    return APR_FROM_OS_ERROR(rc);
}

/* Non-blocking attempt, reopening when the file was replaced meanwhile. */
static apr_status_t lock_try(rs_lock_t *l)
{
    apr_status_t rv;
    int tries;

    for (tries = 0; tries < REOPEN_TRIES; tries++) {
        if (l->fd < 0 && (rv = lock_open(l)) != APR_SUCCESS) {
            return rv;
        }
        if ((rv = lock_flock(l)) != APR_SUCCESS || lock_current(l)) {
            return rv;
        }
        lock_close(l);
    }
    return APR_EBUSY;
}

/* Ask the holder to yield: create the stop file (it may exist already). */
static void stop_request(rs_lock_t *l)
{
    int fd;

    do {
        fd = open(l->stop_path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
                  LOCK_PERMS);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        rs_log_perror(RS_LOG_MARK, RS_LOG_WARNING, APR_FROM_OS_ERROR(errno),
                      l->pool, RS_LOGNO(03052) "cannot create stop file %s",
                      l->stop_path);
        return;
    }
    close(fd);
}

static void remove_file(rs_lock_t *l, const char *path)
{
    if (unlink(path) < 0 && errno != ENOENT) {
        rs_log_perror(RS_LOG_MARK, RS_LOG_WARNING, APR_FROM_OS_ERROR(errno),
                      l->pool, RS_LOGNO(03053) "cannot remove %s", path);
    }
}

/* Poll until the holder yields or `wait` has passed; removes the stop file
 * in any case. */
static apr_status_t lock_wait(rs_lock_t *l, apr_interval_time_t wait)
{
    apr_time_t deadline = apr_time_now() + wait;
    apr_status_t rv = APR_EBUSY;
    apr_interval_time_t left;

    stop_request(l);
    while (rv == APR_EBUSY && (left = deadline - apr_time_now()) > 0) {
        apr_sleep(left < LOCK_POLL ? left : LOCK_POLL);
        if ((rv = lock_try(l)) == APR_EBUSY) {
            stop_request(l);
        }
    }
    remove_file(l, l->stop_path);
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
    l->lock_path = apr_pstrcat(p, staging, "/", id, ".lock", NULL);
    l->stop_path = apr_pstrcat(p, staging, "/", id, ".stop", NULL);
    apr_pool_cleanup_register(p, l, lock_cleanup, apr_pool_cleanup_null);
    rv = lock_try(l);
    if (rv == APR_EBUSY && wait > 0) {
        rv = lock_wait(l, wait);
    }
    else if (rv == APR_SUCCESS) {
        remove_file(l, l->stop_path);       /* stale: nobody is waiting */
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
    apr_time_t now;
    struct stat st;

    if (l->stopped) {
        return 1;
    }
    now = apr_time_now();
    if (l->checked && now - l->checked < STOP_INTERVAL) {
        return 0;
    }
    l->checked = now;
    l->stopped = stat(l->stop_path, &st) == 0;
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
    remove_file(l, l->lock_path);
    remove_file(l, l->stop_path);
}
