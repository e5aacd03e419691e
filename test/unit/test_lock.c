/* Licensed to the Apache Software Foundation (ASF) under one or more
 * contributor license agreements; and licensed under the Apache License,
 * Version 2.0 (the "License"); you may not use this file except in
 * compliance with the License. See http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * Unit tests of rs_lock: exclusion between descriptors of one thread,
 * between threads and between forked processes, takeover through the stop
 * byte, APR_EBUSY when the holder does not yield, kill -9 of a holder,
 * idempotent release, one shared lock file (no file per upload), a
 * stop request that ends with its waiter, and an engine hold that makes a
 * missing staging folder (it does not stat it first).
 */

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include <apr_atomic.h>
#include <apr_strings.h>
#include <apr_thread_proc.h>
#include <apr_time.h>

#include "rs_test.h"
#include "rs_data.h"
#include "rs_engine_private.h"
#include "rs_lock.h"

#define MS(n) apr_time_from_msec(n)

static const char *dir;             /* staging directory of the suite */

static int exists(const char *name, apr_pool_t *p)
{
    return access(apr_pstrcat(p, dir, "/", name, NULL), F_OK) == 0;
}

/* ---- one process -------------------------------------------------------- */

static void test_basic(apr_pool_t *p)
{
    rs_lock_t *a, *b = (rs_lock_t *)1;
    apr_pool_t *sp;

    RS_CHECK(rs_lock_acquire(&a, dir, "one", 0, p) == APR_SUCCESS);
    RS_CHECK(exists(".writers.lock", p));       /* shared by all uploads */
    RS_CHECK(!exists("one.lock", p) && !exists("one.stop", p));
    RS_CHECK(rs_lock_acquire(&b, dir, "one", 0, p) == APR_EBUSY);
    RS_CHECK(b == NULL);
    RS_CHECK(!rs_lock_stop_requested(a));       /* wait 0: no request */
    RS_CHECK(rs_lock_acquire(&b, dir, "two", 0, p) == APR_SUCCESS);
    rs_lock_release(b);
    rs_lock_release(a);
    rs_lock_release(a);                         /* idempotent */
    RS_CHECK(rs_lock_acquire(&b, dir, "one", 0, p) == APR_SUCCESS);
    rs_lock_release(b);
    apr_pool_create(&sp, p);
    RS_CHECK(rs_lock_acquire(&a, dir, "one", 0, sp) == APR_SUCCESS);
    apr_pool_destroy(sp);                       /* cleanup releases */
    RS_CHECK(rs_lock_acquire(&b, dir, "one", 0, p) == APR_SUCCESS);
    rs_lock_release(b);
    /* a missing staging folder: APR_ENOENT, for the caller to create it */
    RS_CHECK(rs_lock_acquire(&a, "/nonexistent/dir", "x", 0, p)
             == APR_ENOENT);
}

/* rs_eng_hold opens the lock file without a stat of the staging folder
 * first: a missing folder (APR_ENOENT) is made and the lock taken. */
static void test_hold_makes_staging(apr_pool_t *p)
{
    static rs_engine_t eng;
    static rs_area_t area;
    rs_hold_t *h, *other;
    const char *staging;

    rs_test_engine(p, "lockhold", &eng, &area);
    staging = apr_pstrcat(p, area.dir, "/" RS_STAGING_DIR, NULL);
    apr_file_remove(apr_pstrcat(p, staging, "/.writers.lock", NULL), p);
    RS_CHECK(APR_SUCCESS == apr_dir_remove(staging, p));
    RS_CHECK(NULL == rs_eng_hold(&eng, area.dir, "held", 0, p, &h));
    RS_CHECK(access(apr_pstrcat(p, staging, "/.writers.lock", NULL),
                    F_OK) == 0);
    other = NULL;
    RS_CHECK(rs_eng_hold(&eng, area.dir, "held", 0, p, &other)
             && other == NULL);                 /* excluded as before */
    rs_eng_unhold(h);
    RS_CHECK(NULL == rs_eng_hold(&eng, area.dir, "held", 0, p, &other));
    rs_eng_unhold(other);
}

/* A waiter's stop request is seen while it waits and gone with it. */
static volatile apr_uint32_t stop_waiter_rv;

static void *APR_THREAD_FUNC stop_waiter(apr_thread_t *t, void *data)
{
    apr_pool_t *p;
    rs_lock_t *l;

    apr_pool_create(&p, NULL);
    apr_atomic_set32(&stop_waiter_rv,
                     rs_lock_acquire(&l, dir, "st", MS(300), p) + 1);
    apr_pool_destroy(p);
    apr_thread_exit(t, APR_SUCCESS);
    return NULL;
}

static void test_stop_flag(apr_pool_t *p)
{
    apr_thread_t *t;
    apr_status_t rv;
    rs_lock_t *l, *m;

    RS_CHECK(rs_lock_acquire(&l, dir, "st", 0, p) == APR_SUCCESS);
    RS_CHECK(rs_lock_acquire(&m, dir, "st2", 0, p) == APR_SUCCESS);
    RS_CHECK(!rs_lock_stop_requested(l));
    apr_thread_create(&t, NULL, stop_waiter, NULL, p);
    apr_sleep(MS(50));
    RS_CHECK(!rs_lock_stop_requested(l));       /* rate limited */
    apr_sleep(MS(80));
    RS_CHECK(rs_lock_stop_requested(l));
    RS_CHECK(!rs_lock_stop_requested(m));       /* another upload */
    apr_thread_join(&rv, t);
    RS_CHECK(apr_atomic_read32(&stop_waiter_rv) == APR_EBUSY + 1);
    RS_CHECK(rs_lock_stop_requested(l));        /* sticky */
    rs_lock_remove_files(l);
    rs_lock_release(l);
    rs_lock_release(m);
    RS_CHECK(rs_lock_acquire(&l, dir, "st", 0, p) == APR_SUCCESS);
    RS_CHECK(!rs_lock_stop_requested(l));       /* withdrawn: none stale */
    rs_lock_release(l);
    RS_CHECK(exists(".writers.lock", p));
}

/* ---- threads ------------------------------------------------------------ */

#define T_THREADS 4
#define T_ROUNDS 25

static volatile apr_uint32_t inside, overlaps, failures;

static void *APR_THREAD_FUNC excl_thread(apr_thread_t *t, void *data)
{
    apr_pool_t *p;
    int i;

    apr_pool_create(&p, NULL);
    for (i = 0; i < T_ROUNDS; i++) {
        rs_lock_t *l;

        if (rs_lock_acquire(&l, dir, "thr", apr_time_from_sec(20), p)) {
            apr_atomic_inc32(&failures);
            continue;
        }
        if (apr_atomic_inc32(&inside) != 0) {
            apr_atomic_inc32(&overlaps);
        }
        apr_sleep(300);
        apr_atomic_dec32(&inside);
        rs_lock_release(l);
    }
    apr_pool_destroy(p);
    apr_thread_exit(t, APR_SUCCESS);
    return NULL;
}

static void test_threads(apr_pool_t *p)
{
    apr_thread_t *t[T_THREADS];
    apr_status_t rv;
    int i, ok = 1;

    for (i = 0; i < T_THREADS; i++) {
        ok &= apr_thread_create(&t[i], NULL, excl_thread, NULL, p) == 0;
    }
    for (i = 0; i < T_THREADS; i++) {
        apr_thread_join(&rv, t[i]);
    }
    RS_CHECK(ok);
    RS_CHECK(failures == 0);
    RS_CHECK(overlaps == 0);
}

/* ---- processes ---------------------------------------------------------- */

typedef struct {
    pid_t pid;
    int up[2];                  /* child -> parent */
    int down[2];                /* parent -> child */
} child_t;

enum { HOLD_UNTIL_TOLD, HOLD_UNTIL_STOP };

static void child_main(child_t *c, const char *id, int mode)
{
    apr_pool_t *p;
    rs_lock_t *l;
    char ch = 'g';
    int i;

    apr_pool_create(&p, NULL);
    if (rs_lock_acquire(&l, dir, id, 0, p) != APR_SUCCESS) {
        _exit(2);
    }
    if (write(c->up[1], &ch, 1) != 1) {
        _exit(3);
    }
    if (mode == HOLD_UNTIL_TOLD) {
        _exit(read(c->down[0], &ch, 1) == 1 ? 0 : 4);
    }
    for (i = 0; i < 1000 && !rs_lock_stop_requested(l); i++) {
        apr_sleep(MS(5));
    }
    rs_lock_release(l);
    _exit(i < 1000 ? 0 : 5);
}

/* Fork a holder of lock id; returns once it holds the lock. */
static int child_start(child_t *c, const char *id, int mode)
{
    char ch;

    if (pipe(c->up) < 0 || pipe(c->down) < 0) {
        return 0;
    }
    fflush(stdout);
    if ((c->pid = fork()) == 0) {
        child_main(c, id, mode);
    }
    return c->pid > 0 && read(c->up[0], &ch, 1) == 1;
}

static int child_end(child_t *c)
{
    int st = -1;

    close(c->up[0]);
    close(c->up[1]);
    close(c->down[0]);
    close(c->down[1]);
    waitpid(c->pid, &st, 0);
    return st;
}

static void test_process_exclusion(apr_pool_t *p)
{
    child_t c;
    rs_lock_t *l;
    int st;

    RS_CHECK(child_start(&c, "proc", HOLD_UNTIL_TOLD));
    RS_CHECK(rs_lock_acquire(&l, dir, "proc", 0, p) == APR_EBUSY);
    RS_CHECK(write(c.down[1], "x", 1) == 1);
    st = child_end(&c);
    RS_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    RS_CHECK(rs_lock_acquire(&l, dir, "proc", 0, p) == APR_SUCCESS);
    rs_lock_release(l);
}

static void test_takeover(apr_pool_t *p)
{
    child_t c;
    rs_lock_t *l;
    apr_time_t t0;
    int st;

    RS_CHECK(child_start(&c, "take", HOLD_UNTIL_STOP));
    t0 = apr_time_now();
    RS_CHECK(rs_lock_acquire(&l, dir, "take", apr_time_from_sec(5), p)
             == APR_SUCCESS);
    RS_CHECK(apr_time_now() - t0 < apr_time_from_sec(2));
    st = child_end(&c);
    RS_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    rs_lock_release(l);
}

static void test_busy_and_kill(apr_pool_t *p)
{
    child_t c;
    rs_lock_t *l;
    apr_time_t t0;
    int st;

    RS_CHECK(child_start(&c, "busy", HOLD_UNTIL_TOLD));
    t0 = apr_time_now();
    RS_CHECK(rs_lock_acquire(&l, dir, "busy", MS(200), p) == APR_EBUSY);
    RS_CHECK(apr_time_now() - t0 >= MS(200));
    kill(c.pid, SIGKILL);
    st = child_end(&c);
    RS_CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    RS_CHECK(rs_lock_acquire(&l, dir, "busy", 0, p) == APR_SUCCESS);
    rs_lock_release(l);
}

/* Two processes increment a counter file under the lock. */
#define P_ROUNDS 100

static int counter_child(const char *path)
{
    apr_pool_t *p;
    int i, fd = open(path, O_RDWR), bad = 0;

    apr_pool_create(&p, NULL);
    for (i = 0; i < P_ROUNDS && fd >= 0; i++) {
        rs_lock_t *l;
        int v = 0;

        if (rs_lock_acquire(&l, dir, "cnt", apr_time_from_sec(20), p)) {
            bad = 1;
            continue;
        }
        bad |= pread(fd, &v, sizeof(v), 0) != sizeof(v);
        apr_sleep(200);
        v++;
        bad |= pwrite(fd, &v, sizeof(v), 0) != sizeof(v);
        rs_lock_release(l);
    }
    return fd < 0 || bad;
}

static void test_process_counter(apr_pool_t *p)
{
    const char *path = apr_pstrcat(p, dir, "/counter", NULL);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600), v = 0, i, st;
    int ok = 1;
    pid_t pid[2];

    RS_CHECK(fd >= 0 && pwrite(fd, &v, sizeof(v), 0) == sizeof(v));
    for (i = 0; i < 2; i++) {
        fflush(stdout);
        if ((pid[i] = fork()) == 0) {
            _exit(counter_child(path));
        }
    }
    for (i = 0; i < 2; i++) {
        ok &= waitpid(pid[i], &st, 0) == pid[i] && WIFEXITED(st)
              && WEXITSTATUS(st) == 0;
    }
    RS_CHECK(ok);
    RS_CHECK(pread(fd, &v, sizeof(v), 0) == sizeof(v) && v == 2 * P_ROUNDS);
    close(fd);
}

void suite_lock(apr_pool_t *p)
{
    dir = rs_test_tmpdir(p, "lock");
    test_basic(p);
    test_stop_flag(p);
    test_threads(p);
    test_process_exclusion(p);
    test_takeover(p);
    test_busy_and_kill(p);
    test_process_counter(p);
    test_hold_makes_staging(p);
}
