/* Licensed to the Apache Software Foundation (ASF) under one or more
 * contributor license agreements; and licensed under the Apache License,
 * Version 2.0 (the "License"); you may not use this file except in
 * compliance with the License. See http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * rs_hash_follow.c - a digest that follows a file as it is written (design
 * in rs_hash_follow.h).
 *
 * Shared state under one mutex: `avail` (bytes from off the writer says
 * are in the file), `done` (bytes digested), `stop` (final or abandon),
 * `len` (the final length, -1 before final). The worker sleeps while it
 * has caught up; the writer signals only when the worker sleeps, so an
 * advance costs a lock and an unlock. The worker reads FOLLOW_READ bytes
 * at a time outside the lock: a read that size stays in the L2 cache
 * between the copy out of the page cache and the digest, so the copy costs
 * a fraction of the digest.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <unistd.h>

#include <apr_portable.h>
#include <apr_thread_proc.h>
#include <apr_thread_mutex.h>
#include <apr_thread_cond.h>

#include "rs_hash.h"
#include "rs_hash_follow.h"

#define FOLLOW_READ (256 * 1024)

struct rs_hash_follow_t {
    rs_hash_t *h;                 /* touched by the worker only, until joined */
    int fd;                       /* our own descriptor (dup) */
    apr_off_t off;
    char *buf;
    apr_thread_t *thread;
    apr_thread_mutex_t *mu;
    apr_thread_cond_t *cv;
    apr_off_t avail, done, len;   /* under mu */
    int stop, sleeping, failed;   /* under mu */
    int joined, finished;         /* the caller's */
};

/* pread up to n bytes at off; bytes read, 0 at the end, -1 on error. */
static apr_ssize_t follow_read(int fd, char *buf, apr_size_t n, apr_off_t off)
{
    ssize_t got;

    do {
        got = pread(fd, buf, n, off);
    } while (got < 0 && errno == EINTR);
    return got;
}

/* Next piece to digest (under mu): bytes, 0 when the worker is done. */
static apr_size_t follow_next(rs_hash_follow_t *hf)
{
    apr_off_t want;

    for (;;) {
        if (hf->failed || (hf->stop && hf->len < 0)
            || (hf->len >= 0 && hf->done >= hf->len)) {
            return 0;
        }
        want = (hf->len >= 0 ? hf->len : hf->avail) - hf->done;
        if (want > 0) {
            return want < FOLLOW_READ ? (apr_size_t)want : FOLLOW_READ;
        }
        hf->sleeping = 1;
        apr_thread_cond_wait(hf->cv, hf->mu);
        hf->sleeping = 0;
    }
}

static void *APR_THREAD_FUNC follow_worker(apr_thread_t *t, void *data)
{
    rs_hash_follow_t *hf = data;
    apr_ssize_t got;
    apr_size_t n;

    apr_thread_mutex_lock(hf->mu);
    while ((n = follow_next(hf)) > 0) {
        apr_off_t at = hf->off + hf->done;

        apr_thread_mutex_unlock(hf->mu);
        got = follow_read(hf->fd, hf->buf, n, at);
        if (got > 0) {
            rs_hash_update(hf->h, hf->buf, (apr_size_t)got);
        }
        apr_thread_mutex_lock(hf->mu);
        if (got <= 0) {
            hf->failed = 1;           /* truncated under us, or an error */
        }
        else {
            hf->done += got;
        }
    }
    hf->sleeping = 0;
    apr_thread_cond_broadcast(hf->cv);
    apr_thread_mutex_unlock(hf->mu);
    return NULL;
}

/* Stop (len < 0: abandon) and join the worker; close our descriptor. */
static void follow_join(rs_hash_follow_t *hf, apr_off_t len)
{
    apr_status_t ignored;

    if (hf->joined) {
        return;
    }
    apr_thread_mutex_lock(hf->mu);
    hf->stop = 1;
    hf->len = len;
    if (len > hf->avail) {
        hf->avail = len;
    }
    apr_thread_cond_broadcast(hf->cv);
    apr_thread_mutex_unlock(hf->mu);
    apr_thread_join(&ignored, hf->thread);
    hf->joined = 1;
    close(hf->fd);
}

static apr_status_t follow_cleanup(void *data)
{
    follow_join(data, -1);
    return APR_SUCCESS;
}

apr_status_t rs_hash_follow_start(rs_hash_follow_t **phf, const char *alg,
                                  apr_file_t *f, apr_off_t off,
                                  apr_pool_t *p)
{
#if APR_HAS_THREADS
    rs_hash_follow_t *hf = apr_pcalloc(p, sizeof(*hf));
    apr_os_file_t fd = -1;
    apr_status_t rv;

    if (APR_SUCCESS != (rv = rs_hash_create(&hf->h, alg, p))) {
        return rv;
    }
    if (!f || APR_SUCCESS != apr_os_file_get(&fd, f) || fd < 0) {
        return APR_EBADF;
    }
    if (APR_SUCCESS != (rv = apr_thread_mutex_create(&hf->mu,
                                   APR_THREAD_MUTEX_DEFAULT, p))
        || APR_SUCCESS != (rv = apr_thread_cond_create(&hf->cv, p))) {
        return rv;
    }
    if ((hf->fd = dup(fd)) < 0) {
        return APR_FROM_OS_ERROR(errno);
    }
    hf->off = off;
    hf->len = -1;
    hf->buf = apr_palloc(p, FOLLOW_READ);
    rv = apr_thread_create(&hf->thread, NULL, follow_worker, hf, p);
    if (APR_SUCCESS != rv) {
        close(hf->fd);
        return rv;
    }
    apr_pool_pre_cleanup_register(p, hf, follow_cleanup);
    *phf = hf;
    return APR_SUCCESS;
#else
    rs_hash_t *h;
    apr_status_t rv = rs_hash_create(&h, alg, p);

    (void)phf; (void)f; (void)off;
    return APR_SUCCESS == rv ? APR_ENOTHREAD : rv;
#endif
}

void rs_hash_follow_advance(rs_hash_follow_t *hf, apr_off_t written)
{
    apr_thread_mutex_lock(hf->mu);
    if (written > hf->avail) {
        hf->avail = written;
        if (hf->sleeping) {
            apr_thread_cond_signal(hf->cv);
        }
    }
    apr_thread_mutex_unlock(hf->mu);
}

apr_status_t rs_hash_follow_final(rs_hash_follow_t *hf, apr_off_t len,
                                  unsigned char *out, apr_size_t *outlen)
{
    if (hf->finished || len < 0) {
        return APR_EINVAL;
    }
    hf->finished = 1;
    follow_join(hf, len);
    if (hf->failed || hf->done != len) {
        return APR_EGENERAL;
    }
    return rs_hash_final(hf->h, out, outlen);
}
