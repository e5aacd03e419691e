/* Licensed to the Apache Software Foundation (ASF) under one or more
 * contributor license agreements; and licensed under the Apache License,
 * Version 2.0 (the "License"); you may not use this file except in
 * compliance with the License. See http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * Unit tests of rs_data: staging directory, the coalescing writer (random
 * piece sizes against a reference, chunks at offsets in random order),
 * truncate/size/reserve/sync, kernel and fallback range copies, publishing
 * under unique names, pieces moved in from a pipe (splice, and read+pwrite
 * where the file cannot take a splice).
 */

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <apr_file_io.h>
#include <apr_strings.h>

#include "rs_test.h"
#include "rs_data.h"

static unsigned rnd_state = 12345;

static unsigned rnd(void)
{
    rnd_state = rnd_state * 1103515245u + 12345u;
    return (rnd_state >> 8) & 0xffffff;
}

static char *random_bytes(apr_pool_t *p, apr_size_t len)
{
    char *b = apr_palloc(p, len);
    apr_size_t i;

    for (i = 0; i < len; i++) {
        b[i] = (char)rnd();
    }
    return b;
}

/* Whole file content; NULL when unreadable. */
static char *slurp(const char *path, apr_size_t *len, apr_pool_t *p)
{
    apr_finfo_t fi;
    apr_file_t *f;
    char *buf;

    if (apr_stat(&fi, path, APR_FINFO_SIZE, p) != APR_SUCCESS
        || apr_file_open(&f, path, APR_FOPEN_READ, 0, p) != APR_SUCCESS) {
        return NULL;
    }
    buf = apr_palloc(p, (apr_size_t)fi.size + 1);
    *len = (apr_size_t)fi.size;
    if (*len && apr_file_read_full(f, buf, *len, NULL) != APR_SUCCESS) {
        buf = NULL;
    }
    apr_file_close(f);
    return buf;
}

static int same_file(const char *path, const char *want, apr_size_t wlen,
                     apr_pool_t *p)
{
    apr_size_t len = 0;
    char *got = slurp(path, &len, p);

    return got && len == wlen && !memcmp(got, want, wlen);
}

static apr_file_t *file_with(const char *path, const char *data,
                             apr_size_t len, apr_pool_t *p)
{
    apr_file_t *f = NULL;
    apr_size_t n = len;

    if (rs_data_open(&f, path, 1, p) == APR_SUCCESS && len) {
        apr_file_write_full(f, data, len, &n);
    }
    return f;
}

/* ---- paths -------------------------------------------------------------- */

static void test_staging(const char *dir, apr_pool_t *p)
{
    const char *st, *bad = apr_pstrcat(p, dir, "/plain", NULL);
    struct stat sb;
    mode_t mask = umask(0);

    umask(mask);
    RS_CHECK(rs_data_staging(p, dir, 0, &st) == APR_ENOENT);
    RS_CHECK_STR(st, apr_pstrcat(p, dir, "/.resumable", NULL));
    RS_CHECK(rs_data_staging(p, dir, 1, &st) == APR_SUCCESS);
    RS_CHECK(stat(st, &sb) == 0 && S_ISDIR(sb.st_mode)
             && (sb.st_mode & 0777) == (0750 & ~mask));
    RS_CHECK(rs_data_staging(p, dir, 1, &st) == APR_SUCCESS);
    RS_CHECK(rs_data_staging(p, dir, 0, &st) == APR_SUCCESS);
    RS_CHECK_STR(rs_data_path(p, dir, "abc"),
                 apr_pstrcat(p, dir, "/.resumable/abc.data", NULL));
    apr_dir_make(bad, APR_OS_DEFAULT, p);
    apr_file_close(file_with(apr_pstrcat(p, bad, "/.resumable", NULL),
                             "x", 1, p));
    RS_CHECK(rs_data_staging(p, bad, 1, &st) == APR_ENOTDIR);
    RS_CHECK(rs_data_staging(p, "/nonexistent/dir", 1, &st) != APR_SUCCESS);
}

static void test_file_ops(const char *dir, apr_pool_t *p)
{
    const char *path = apr_pstrcat(p, dir, "/ops.data", NULL);
    apr_file_t *f;
    apr_off_t size = -1;

    RS_CHECK(rs_data_open(&f, path, 0, p) == APR_ENOENT);
    RS_CHECK(rs_data_size(path, &size, p) == APR_ENOENT);
    RS_CHECK(rs_data_open(&f, path, 1, p) == APR_SUCCESS);
    RS_CHECK(rs_data_size(path, &size, p) == APR_SUCCESS && size == 0);
    RS_CHECK(rs_data_reserve(f, 0, 1 << 20) == APR_SUCCESS);
    RS_CHECK(rs_data_size(path, &size, p) == APR_SUCCESS && size == 0);
    RS_CHECK(rs_data_reserve(f, 0, 0) == APR_SUCCESS);
    RS_CHECK(rs_data_truncate(f, 5000) == APR_SUCCESS);
    RS_CHECK(rs_data_size(path, &size, p) == APR_SUCCESS && size == 5000);
    RS_CHECK(rs_data_truncate(f, 1000) == APR_SUCCESS);
    RS_CHECK(rs_data_size(path, &size, p) == APR_SUCCESS && size == 1000);
    RS_CHECK(rs_data_sync(f) == APR_SUCCESS);
    apr_file_close(f);
    RS_CHECK(rs_data_open(&f, path, 0, p) == APR_SUCCESS);  /* no trunc */
    RS_CHECK(rs_data_size(path, &size, p) == APR_SUCCESS && size == 1000);
    apr_file_close(f);
    RS_CHECK(rs_data_remove(path, p) == APR_SUCCESS);
    RS_CHECK(rs_data_remove(path, p) == APR_SUCCESS);
    RS_CHECK(access(path, F_OK) != 0);
}

/* ---- writer ------------------------------------------------------------- */

static void writer_run_wb(const char *dir, apr_size_t len, apr_size_t bufsize,
                          apr_size_t maxp, int writeback, apr_pool_t *p)
{
    const char *path = apr_psprintf(p, "%s/w%d.data", dir, (int)bufsize);
    apr_size_t done = 0, n;
    char *ref = random_bytes(p, len);
    apr_file_t *f;
    rs_writer_t *w;
    int ok = 1;

    RS_CHECK(rs_data_open(&f, path, 1, p) == APR_SUCCESS);
    RS_CHECK(rs_writer_create(&w, f, 0, bufsize, p) == APR_SUCCESS);
    rs_writer_writeback(w, writeback);
    while (done < len) {
        n = 1 + rnd() % maxp;
        n = n < len - done ? n : len - done;
        ok &= rs_writer_write(w, ref + done, n) == APR_SUCCESS;
        done += n;
        ok &= rs_writer_total(w) == (apr_off_t)done;
        ok &= rs_writer_flushed(w) <= (apr_off_t)done;
        ok &= rs_writer_flushed(w) + (apr_off_t)bufsize >= (apr_off_t)done;
    }
    RS_CHECK(ok);
    RS_CHECK(rs_writer_flush(w) == APR_SUCCESS);
    RS_CHECK(rs_writer_flush(w) == APR_SUCCESS);
    RS_CHECK(rs_writer_flushed(w) == (apr_off_t)len);
    RS_CHECK(rs_writer_total(w) == (apr_off_t)len);
    RS_CHECK(same_file(path, ref, len, p));
    apr_file_close(f);
}

static void writer_run(const char *dir, apr_size_t len, apr_size_t bufsize,
                       apr_size_t maxp, apr_pool_t *p)
{
    writer_run_wb(dir, len, bufsize, maxp, 0, p);
}

/* Pieces alternately from memory and from a pipe (as the glue hands a
 * spliced body over); `flags` opens the file (APR_FOPEN_APPEND: the
 * kernel refuses splice into it, the writer reads the pipe instead). */
static void writer_splice_run(const char *dir, apr_int32_t flags,
                              apr_pool_t *p)
{
    const char *path = apr_psprintf(p, "%s/splice%d.data", dir, (int)flags);
    apr_size_t len = 2 * 1024 * 1024 + 5, done = 0, n;
    char *ref = random_bytes(p, len);
    apr_file_t *f;
    rs_writer_t *w;
    int fd[2], ok = 1, i;

    RS_CHECK(pipe(fd) == 0);
    RS_CHECK(apr_file_open(&f, path, APR_FOPEN_CREATE | APR_FOPEN_WRITE
                           | APR_FOPEN_READ | flags, APR_FPROT_OS_DEFAULT,
                           p) == APR_SUCCESS);
    RS_CHECK(rs_writer_create(&w, f, 0, 65536, p) == APR_SUCCESS);
    for (i = 0; done < len; i++) {
        n = 1 + rnd() % 60000;          /* fits the pipe: write() returns */
        n = n < len - done ? n : len - done;
        if (i % 2) {
            ok &= write(fd[1], ref + done, n) == (ssize_t)n;
            ok &= rs_writer_splice(w, fd[0], n) == APR_SUCCESS;
            ok &= rs_writer_flushed(w) == (apr_off_t)(done + n);
        }
        else {
            ok &= rs_writer_write(w, ref + done, n) == APR_SUCCESS;
        }
        done += n;
        ok &= rs_writer_total(w) == (apr_off_t)done;
    }
    RS_CHECK(ok);
    RS_CHECK(rs_writer_flush(w) == APR_SUCCESS);
    RS_CHECK(same_file(path, ref, len, p));
    /* the pipe ends before the promised length: APR_EOF, and the writer
     * counts exactly what reached the file */
    RS_CHECK(write(fd[1], ref, 1000) == 1000);
    close(fd[1]);
    RS_CHECK(rs_writer_splice(w, fd[0], 2000) == APR_EOF);
    RS_CHECK(rs_writer_flushed(w) == (apr_off_t)(len + 1000));
    RS_CHECK(rs_writer_total(w) == (apr_off_t)(len + 1000));
    close(fd[0]);
    apr_file_close(f);
}

/* Chunks written at their final offsets, in random order. */
static void test_chunks(const char *dir, apr_pool_t *p)
{
    const char *path = apr_pstrcat(p, dir, "/chunks.data", NULL);
    apr_size_t len = 1024 * 1024 + 3, cut[9];
    char *ref = random_bytes(p, len);
    int order[8] = { 5, 2, 7, 0, 3, 6, 1, 4 }, i;
    apr_file_t *f;

    cut[0] = 0;
    cut[8] = len;
    for (i = 1; i < 8; i++) {
        cut[i] = cut[i - 1] + 1 + rnd() % (len / 8);
    }
    RS_CHECK(rs_data_open(&f, path, 1, p) == APR_SUCCESS);
    for (i = 0; i < 8; i++) {
        int c = order[i];
        rs_writer_t *w;
        apr_size_t off;

        rs_writer_create(&w, f, (apr_off_t)cut[c], 4096, p);
        for (off = cut[c]; off < cut[c + 1]; off += 1000) {
            apr_size_t n = cut[c + 1] - off < 1000 ? cut[c + 1] - off : 1000;

            rs_writer_write(w, ref + off, n);
        }
        RS_CHECK(rs_writer_flush(w) == APR_SUCCESS);
        RS_CHECK(rs_writer_flushed(w) == (apr_off_t)(cut[c + 1] - cut[c]));
    }
    RS_CHECK(same_file(path, ref, len, p));
    apr_file_close(f);
}

/* ---- copy --------------------------------------------------------------- */

static void copy_case(apr_file_t *dst, const char *dpath, char *model,
                      apr_file_t *src, const char *ref, apr_off_t doff,
                      apr_off_t soff, apr_off_t len, apr_pool_t *p)
{
    apr_size_t mlen = 0;
    char *cur = slurp(dpath, &mlen, p);

    RS_CHECK(rs_data_copy_range(dst, doff, src, soff, len) == APR_SUCCESS);
    memcpy(model, cur, mlen);
    if ((apr_size_t)(doff + len) > mlen) {
        memset(model + mlen, 0, (apr_size_t)(doff + len) - mlen);
        mlen = (apr_size_t)(doff + len);
    }
    memcpy(model + doff, ref + soff, (apr_size_t)len);
    RS_CHECK(same_file(dpath, model, mlen, p));
}

static void copy_suite(const char *sdir, const char *ddir, apr_pool_t *p)
{
    apr_size_t len = 3 * 1024 * 1024 + 5;
    char *ref = random_bytes(p, len), *model = apr_palloc(p, 2 * len);
    const char *spath = apr_pstrcat(p, sdir, "/copy-src", NULL);
    const char *dpath = apr_pstrcat(p, ddir, "/copy-dst", NULL);
    apr_file_t *src = file_with(spath, ref, len, p);
    apr_file_t *dst = file_with(dpath, "", 0, p);

    RS_CHECK(src && dst);
    copy_case(dst, dpath, model, src, ref, 8192, 40960, 409600, p);
    copy_case(dst, dpath, model, src, ref, 7, 123, 1000003, p);
    copy_case(dst, dpath, model, src, ref, 0, 0, (apr_off_t)len, p);
    copy_case(dst, dpath, model, src, ref, 100, 0, 0, p);
    RS_CHECK(rs_data_copy_range(dst, 0, src, (apr_off_t)len - 10, 11)
             == APR_EOF);
    apr_file_close(src);
    apr_file_close(dst);
    apr_file_remove(spath, p);
}

static void test_copy(const char *dir, apr_pool_t *p)
{
    struct stat a, b;
    const char *shm;

    copy_suite(dir, dir, p);
    /* Another file system: copy_file_range gives EXDEV, read/write path. */
    if (stat("/dev/shm", &a) == 0 && stat(dir, &b) == 0
        && a.st_dev != b.st_dev && access("/dev/shm", W_OK) == 0) {
        shm = apr_psprintf(p, "/dev/shm/rs-unit-%ld", (long)getpid());
        apr_dir_make(shm, APR_OS_DEFAULT, p);
        copy_suite(shm, dir, p);
        apr_dir_remove(shm, p);
    }
    else {
        printf("# data: no second file system, fallback copy not forced\n");
    }
}

/* ---- publish ------------------------------------------------------------ */

static const char *staged(const char *dir, const char *content, apr_pool_t *p)
{
    static int n;
    const char *path = apr_psprintf(p, "%s/.resumable/s%d.data", dir, ++n);

    apr_file_close(file_with(path, content, strlen(content), p));
    return path;
}


static void publish_is(const char *dir, const char *name, int keep,
                       const char *want, apr_pool_t *p)
{
    const char *src = staged(dir, want, p), *final = NULL;

    RS_CHECK(rs_data_publish(p, src, dir, name, keep, &final) == APR_SUCCESS);
    RS_CHECK_STR(final, apr_pstrcat(p, dir, "/", want, NULL));
    RS_CHECK(same_file(final, want, strlen(want), p));
    RS_CHECK((access(src, F_OK) == 0) == (keep != 0));
}

static void test_publish(const char *dir, apr_pool_t *p)
{
    const char *final = "unset", *src;
    struct stat a, b;

    rs_data_staging(p, dir, 1, &src);
    publish_is(dir, "a.txt", 0, "a.txt", p);
    publish_is(dir, "a.txt", 0, "a (1).txt", p);
    publish_is(dir, "a.txt", 0, "a (2).txt", p);
    RS_CHECK(same_file(apr_pstrcat(p, dir, "/a.txt", NULL), "a.txt", 5, p));
    publish_is(dir, "README", 0, "README", p);
    publish_is(dir, "README", 0, "README (1)", p);
    publish_is(dir, "x.tar.gz", 0, "x.tar.gz", p);
    publish_is(dir, "x.tar.gz", 0, "x.tar (1).gz", p);
    publish_is(dir, ".env", 0, ".env", p);
    publish_is(dir, ".env", 0, ".env (1)", p);
    publish_is(dir, "k.bin", 1, "k.bin", p);
    publish_is(dir, "k.bin", 1, "k (1).bin", p);
    src = staged(dir, "same", p);
    RS_CHECK(rs_data_publish(p, src, dir, "s.dat", 1, &final) == APR_SUCCESS);
    RS_CHECK(stat(src, &a) == 0 && stat(final, &b) == 0
             && a.st_ino == b.st_ino);           /* a link, not a copy */
    RS_CHECK(rs_data_publish(p, apr_pstrcat(p, dir, "/missing", NULL), dir,
                             "m.txt", 0, &final) == APR_ENOENT);
    RS_CHECK(final == NULL);
    RS_CHECK(access(apr_pstrcat(p, dir, "/m.txt", NULL), F_OK) != 0);
}

/* A NULL file is an error, never a dereference (issue 11: an append
 * reached rs_data through an upload that had no data file). */
static void test_null_file(const char *dir, apr_pool_t *p)
{
    rs_writer_t *w = NULL;
    apr_file_t *f;
    const char *path = apr_pstrcat(p, dir, "/null-src", NULL);

    RS_CHECK(APR_EBADF == rs_data_truncate(NULL, 0));
    RS_CHECK(APR_EBADF == rs_data_sync(NULL));
    RS_CHECK(APR_EBADF == rs_data_reserve(NULL, 0, 10));
    RS_CHECK(APR_EBADF == rs_writer_create(&w, NULL, 0, 4096, p));
    RS_CHECK(APR_SUCCESS == rs_data_open(&f, path, 1, p));
    RS_CHECK(APR_EBADF == rs_data_copy_range(NULL, 0, f, 0, 10));
    RS_CHECK(APR_EBADF == rs_data_copy_range(f, 0, NULL, 0, 10));
    apr_file_close(f);
}

/* "<id>.new" orphans of deferred creations: only unclaimed ones older
 * than the grace go; a claimed (written) one, a young one, "<id>.data"
 * and other names stay. */
static void test_sweep_new(const char *dir, apr_pool_t *p)
{
    const char *staging, *held, *orphan, *young, *data, *odd;
    const char *id1 = "AAAAAAAAAAAAAAAAAAAAAA", *id2 = "BBBBBBBBBBBBBBBBBBBBBB";
    const char *id3 = "CCCCCCCCCCCCCCCCCCCCCC";
    apr_file_t *f, *h, *h2;
    apr_time_t later = apr_time_now() + apr_time_from_sec(60);
    int n = 0;

    RS_CHECK(APR_SUCCESS == rs_data_staging(p, dir, 1, &staging));
    held = rs_data_new_path(p, dir, id1);
    orphan = rs_data_new_path(p, dir, id2);
    young = rs_data_new_path(p, dir, id3);
    data = rs_data_path(p, dir, id2);
    odd = apr_pstrcat(p, staging, "/x.new", NULL);
    RS_CHECK(APR_SUCCESS == rs_data_open(&h, held, 1, p));
    RS_CHECK(APR_SUCCESS == rs_data_claim(h));
    RS_CHECK(APR_SUCCESS == rs_data_open(&h2, held, 0, p));
    RS_CHECK(APR_EBUSY == rs_data_claim(h2));   /* one holder */
    apr_file_close(h2);
    RS_CHECK(APR_SUCCESS == rs_data_open(&f, orphan, 1, p));
    apr_file_close(f);
    RS_CHECK(APR_SUCCESS == rs_data_open(&f, young, 1, p));
    apr_file_close(f);
    RS_CHECK(APR_SUCCESS == rs_data_open(&f, data, 1, p));
    apr_file_close(f);
    RS_CHECK(APR_SUCCESS == rs_data_open(&f, odd, 1, p));
    apr_file_close(f);
    /* nothing is old enough yet */
    RS_CHECK(APR_SUCCESS == rs_data_sweep_new(p, dir, apr_time_from_sec(10),
                                              apr_time_now(), &n));
    RS_CHECK(0 == n);
    /* a minute later: the unclaimed ".new" files go, the held one stays */
    RS_CHECK(APR_SUCCESS == rs_data_sweep_new(p, dir, apr_time_from_sec(10),
                                              later, &n));
    RS_CHECK(2 == n);
    RS_CHECK(0 != access(orphan, F_OK) && 0 != access(young, F_OK));
    RS_CHECK(0 == access(held, F_OK) && 0 == access(data, F_OK)
             && 0 == access(odd, F_OK));
    apr_file_close(h);                      /* its writer died */
    n = 0;
    RS_CHECK(APR_SUCCESS == rs_data_sweep_new(p, dir, apr_time_from_sec(10),
                                              later, &n));
    RS_CHECK(1 == n && 0 != access(held, F_OK));
    /* no staging folder: nothing to do */
    RS_CHECK(APR_SUCCESS == rs_data_sweep_new(p, apr_pstrcat(p, dir, "/none",
                                                             NULL),
                                              0, later, &n));
    rs_data_remove(data, p);
    rs_data_remove(odd, p);
}

void suite_data(apr_pool_t *p)
{
    const char *dir = rs_test_tmpdir(p, "data");

    test_staging(dir, p);
    test_file_ops(dir, p);
    /* mixes coalesced and bypassing pieces */
    writer_run(dir, 3 * 1024 * 1024 + 17, 65536, 100000, p);
    writer_run(dir, 300 * 1024 + 1, 4096, 300, p);      /* small pieces */
    /* direct pieces (>= RS_WRITER_DIRECT) after buffered ones */
    writer_run(dir, 4 * 1024 * 1024 + 3, 512 * 1024, 300000, p);
    /* with early writeback (several 8 MiB steps) */
    writer_run_wb(dir, 20 * 1024 * 1024 + 1, 512 * 1024, 400000, 1, p);
    writer_run(dir, 5000, 1, 50, p);
    writer_run(dir, 1024 * 1024, 0, 70000, p);          /* unbuffered */
    writer_splice_run(dir, 0, p);
    writer_splice_run(dir, APR_FOPEN_APPEND, p);
    test_chunks(dir, p);
    test_copy(dir, p);
    test_publish(dir, p);
    test_null_file(dir, p);
    test_sweep_new(dir, p);
}
