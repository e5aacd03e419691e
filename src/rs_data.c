/* Licensed to the Apache Software Foundation (ASF) under one or more
 * contributor license agreements; and licensed under the Apache License,
 * Version 2.0 (the "License"); you may not use this file except in
 * compliance with the License. See http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * rs_data.c - data files of uploads (design in rs_data.h).
 *
 * All file I/O on data files uses explicit offsets (pwrite, pread,
 * copy_file_range with offset pointers, FICLONERANGE), never the file
 * position, so one apr_file_t may serve several writers and readers.
 *
 * rs_data_reserve uses fallocate(FALLOC_FL_KEEP_SIZE): blocks are allocated
 * (ENOSPC early) but the file size is unchanged, so the size of a data file
 * still tells how many bytes were written.
 *
 * The writer counts bytes relative to its start offset: flushed() is what
 * reached the file, total() adds what is buffered. After a failed write
 * flushed() is exact (a short write advances it by what was written), the
 * unwritten rest stays buffered.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE     /* fallocate, copy_file_range, renameat2, splice */
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/fs.h>

#include <apr_file_info.h>
#include <apr_portable.h>
#include <apr_strings.h>

#include "rs_data.h"
#include "rs_lock.h"
#include "rs_log.h"
#include "rs_util.h"

#define DIR_PERMS   (APR_FPROT_UREAD | APR_FPROT_UWRITE | APR_FPROT_UEXECUTE \
                     | APR_FPROT_GREAD | APR_FPROT_GEXECUTE)
#define FILE_PERMS  (APR_FPROT_UREAD | APR_FPROT_UWRITE | APR_FPROT_GREAD)
#define COPY_BUF    (1024 * 1024)
#define COPY_CHUNK  ((apr_off_t)4 << 20)    /* per copy_file_range call,
                                               then its writeback starts */
#define PUBLISH_MAX 10000
#define WRITEBACK_STEP ((apr_off_t)1 * 1024 * 1024)

struct rs_writer_t {
    apr_file_t *file;
    int fd;
    char *buf;
    apr_size_t size;            /* buffer capacity, 0: unbuffered */
    apr_size_t used;
    apr_off_t off;              /* file offset of buf[0] */
    apr_off_t flushed;          /* bytes written since creation */
    int writeback;              /* start writeback every WRITEBACK_STEP */
    apr_off_t wb_from;          /* file offset writeback has not covered */
};

/* The descriptor of f; -1 for no file (a caller handed NULL: every user
 * then fails with APR_EBADF instead of dereferencing it). */
static int file_fd(apr_file_t *f)
{
    apr_os_file_t fd = -1;

    if (f) {
        apr_os_file_get(&fd, f);
    }
    return fd;
}

/* ---- paths and files ---------------------------------------------------- */

apr_status_t rs_data_staging(apr_pool_t *p, const char *dir, int create,
                             const char **staging)
{
    const char *path = apr_pstrcat(p, dir, "/" RS_STAGING_DIR, NULL);
    apr_finfo_t fi;
    apr_status_t rv;

    *staging = path;
    rv = apr_stat(&fi, path, APR_FINFO_TYPE, p);
    if (APR_STATUS_IS_ENOENT(rv) && create) {
        rv = apr_dir_make(path, DIR_PERMS, p);
        if (APR_STATUS_IS_EEXIST(rv)) {             /* lost a race */
            rv = apr_stat(&fi, path, APR_FINFO_TYPE, p);
        }
        else if (rv == APR_SUCCESS) {
            return APR_SUCCESS;
        }
    }
    if (rv == APR_SUCCESS && fi.filetype != APR_DIR) {
        rv = APR_ENOTDIR;
    }
    if (rv != APR_SUCCESS && (create || !APR_STATUS_IS_ENOENT(rv))) {
        rs_log_perror(RS_LOG_MARK, RS_LOG_ERR, rv, p,
                      RS_LOGNO(03100) "staging directory %s is not usable",
                      path);
    }
    return rv;
}

const char *rs_data_path(apr_pool_t *p, const char *dir, const char *id)
{
    return apr_pstrcat(p, dir, "/" RS_STAGING_DIR "/", id, ".data", NULL);
}

const char *rs_data_new_path(apr_pool_t *p, const char *dir, const char *id)
{
    return apr_pstrcat(p, dir, "/" RS_STAGING_DIR "/", id, ".new", NULL);
}

apr_status_t rs_data_claim(apr_file_t *f)
{
    int fd = file_fd(f);

    if (fd < 0) {
        return APR_EBADF;
    }
    if (0 == rs_lock_ofd(fd, 0, 0, F_WRLCK)) {      /* the whole file */
        return APR_SUCCESS;
    }
    return EAGAIN == errno || EACCES == errno ? APR_EBUSY
           : APR_FROM_OS_ERROR(errno);
}

/* "<id>.new" with a valid id? */
static int new_name(const char *name)
{
    apr_size_t n = strlen(name);
    char id[RS_ID_LEN + 1];

    if (n != RS_ID_LEN + 4 || strcmp(name + RS_ID_LEN, ".new")) {
        return 0;
    }
    memcpy(id, name, RS_ID_LEN);
    id[RS_ID_LEN] = '\0';
    return rs_util_id_valid(id);
}

/* Remove orphan path when nobody claims it (its writer died). A file
 * the server cannot open is none of its creations: left alone, and not
 * logged (the sweep would log it at every pass). */
static int sweep_one_new(apr_pool_t *p, const char *path)
{
    apr_file_t *f;
    int gone = 0;

    if (APR_SUCCESS != apr_file_open(&f, path, APR_FOPEN_READ
                                     | APR_FOPEN_WRITE, APR_FPROT_OS_DEFAULT,
                                     p)) {
        return 0;
    }
    if (APR_SUCCESS == rs_data_claim(f)) {
        gone = 0 == unlink(path);
    }
    apr_file_close(f);
    return gone;
}

apr_status_t rs_data_sweep_new(apr_pool_t *p, const char *dir,
                               apr_interval_time_t grace, apr_time_t now,
                               int *removed)
{
    const char *staging = apr_pstrcat(p, dir, "/" RS_STAGING_DIR, NULL);
    apr_dir_t *d;
    apr_finfo_t fi;
    apr_status_t rv = apr_dir_open(&d, staging, p);

    if (APR_SUCCESS != rv) {
        return APR_STATUS_IS_ENOENT(rv) ? APR_SUCCESS : rv;
    }
    while (APR_SUCCESS == apr_dir_read(&fi, APR_FINFO_TYPE | APR_FINFO_NAME
                                       | APR_FINFO_MTIME, d)) {
        if (APR_REG == fi.filetype && new_name(fi.name)
            && fi.mtime + grace < now
            && sweep_one_new(p, apr_pstrcat(p, staging, "/", fi.name,
                                            NULL))) {
            rs_log_perror(RS_LOG_MARK, RS_LOG_INFO, 0, p, RS_LOGNO(09940)
                          "removed %s/%s: the body of a creation whose "
                          "request died before its record was stored",
                          staging, fi.name);
            (*removed)++;
        }
    }
    apr_dir_close(d);
    return APR_SUCCESS;
}

apr_status_t rs_data_open(apr_file_t **f, const char *path, int create,
                          apr_pool_t *p)
{
    apr_int32_t flags = APR_FOPEN_READ | APR_FOPEN_WRITE | APR_FOPEN_BINARY;
    apr_status_t rv;

    rv = apr_file_open(f, path, flags | (create ? APR_FOPEN_CREATE : 0),
                       FILE_PERMS, p);
    if (rv != APR_SUCCESS && (create || !APR_STATUS_IS_ENOENT(rv))) {
        rs_log_perror(RS_LOG_MARK, RS_LOG_ERR, rv, p,
                      RS_LOGNO(03101) "cannot open data file %s", path);
    }
    return rv;
}

apr_status_t rs_data_open_staged(apr_file_t **f, const char *dir,
                                 const char *path, apr_pool_t *p)
{
    const char *staging;
    apr_status_t rv = apr_file_open(f, path, APR_FOPEN_READ | APR_FOPEN_WRITE
                                    | APR_FOPEN_BINARY | APR_FOPEN_CREATE,
                                    FILE_PERMS, p);

    if (APR_STATUS_IS_ENOENT(rv)
        && APR_SUCCESS == (rv = rs_data_staging(p, dir, 1, &staging))) {
        return rs_data_open(f, path, 1, p);
    }
    if (APR_SUCCESS != rv) {
        rs_log_perror(RS_LOG_MARK, RS_LOG_ERR, rv, p,
                      RS_LOGNO(03101) "cannot open data file %s", path);
    }
    return rv;
}

apr_status_t rs_data_size(const char *path, apr_off_t *size, apr_pool_t *p)
{
    apr_finfo_t fi;
    apr_status_t rv = apr_stat(&fi, path, APR_FINFO_SIZE, p);

    *size = rv == APR_SUCCESS ? fi.size : 0;
    return APR_STATUS_IS_ENOENT(rv) ? APR_ENOENT : rv;
}

static const char *file_name(apr_file_t *f)
{
    const char *name = NULL;

    apr_file_name_get(&name, f);
    return name ? name : "(unnamed)";
}

static apr_status_t file_error(apr_file_t *f, apr_status_t rv,
                               const char *what)
{
    rs_log_perror(RS_LOG_MARK, RS_LOG_ERR, rv, apr_file_pool_get(f),
                  RS_LOGNO(03102) "data file %s: %s failed", file_name(f),
                  what);
    return rv;
}

apr_status_t rs_data_truncate(apr_file_t *f, apr_off_t size)
{
    apr_status_t rv;

    if (!f) {
        return APR_EBADF;
    }
    rv = apr_file_trunc(f, size);

    return rv == APR_SUCCESS ? rv : file_error(f, rv, "truncate");
}

apr_status_t rs_data_sync(apr_file_t *f)
{
    apr_status_t rv;

    if (!f) {
        return APR_EBADF;
    }
    rv = apr_file_datasync(f);

    return rv == APR_SUCCESS ? rv : file_error(f, rv, "fdatasync");
}

apr_status_t rs_data_reserve(apr_file_t *f, apr_off_t off, apr_off_t len)
{
    int rc;

    if (len <= 0) {
        return APR_SUCCESS;
    }
    if (file_fd(f) < 0) {
        return APR_EBADF;
    }
    do {
        rc = fallocate(file_fd(f), FALLOC_FL_KEEP_SIZE, off, len);
    } while (rc < 0 && errno == EINTR);
    if (rc == 0 || errno == EOPNOTSUPP || errno == ENOSYS
        || errno == EINVAL) {
        return APR_SUCCESS;
    }
    if (errno == ENOSPC || errno == EDQUOT) {
        return APR_FROM_OS_ERROR(errno);    /* expected; the caller reports */
    }
    return file_error(f, APR_FROM_OS_ERROR(errno), "fallocate");
}

apr_status_t rs_data_remove(const char *path, apr_pool_t *p)
{
    apr_status_t rv = apr_file_remove(path, p);

    if (rv == APR_SUCCESS || APR_STATUS_IS_ENOENT(rv)) {
        return APR_SUCCESS;
    }
    rs_log_perror(RS_LOG_MARK, RS_LOG_ERR, rv, p,
                  RS_LOGNO(03103) "cannot remove %s", path);
    return rv;
}

/* ---- positioned I/O ----------------------------------------------------- */

/* pwrite all of buf at off; *done: bytes written, also on error. */
static apr_status_t pwrite_all(int fd, const char *buf, apr_size_t len,
                               apr_off_t off, apr_size_t *done)
{
    ssize_t n;

    *done = 0;
    while (*done < len) {
        n = pwrite(fd, buf + *done, len - *done, off + (apr_off_t)*done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return n < 0 ? APR_FROM_OS_ERROR(errno) : APR_EGENERAL;
        }
        *done += (apr_size_t)n;
    }
    return APR_SUCCESS;
}

/* pread exactly len bytes; APR_EOF when the file ends first. */
static apr_status_t pread_all(int fd, char *buf, apr_size_t len, apr_off_t off)
{
    apr_size_t got = 0;
    ssize_t n;

    while (got < len) {
        n = pread(fd, buf + got, len - got, off + (apr_off_t)got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return n < 0 ? APR_FROM_OS_ERROR(errno) : APR_EOF;
        }
        got += (apr_size_t)n;
    }
    return APR_SUCCESS;
}

/* ---- writer ------------------------------------------------------------- */

apr_status_t rs_writer_create(rs_writer_t **pw, apr_file_t *f, apr_off_t off,
                              apr_size_t bufsize, apr_pool_t *p)
{
    rs_writer_t *w = apr_pcalloc(p, sizeof(*w));

    w->file = f;
    w->fd = file_fd(f);
    w->size = bufsize;
    w->buf = bufsize ? apr_palloc(p, bufsize) : NULL;
    w->off = off;
    *pw = w;
    return w->fd < 0 ? APR_EBADF : APR_SUCCESS;
}

void rs_data_writeback(apr_file_t *f, apr_off_t off, apr_off_t len)
{
#ifdef SYNC_FILE_RANGE_WRITE
    if (len > 0 && file_fd(f) >= 0) {
        sync_file_range(file_fd(f), off, len, SYNC_FILE_RANGE_WRITE);
    }
#endif
}

void rs_writer_writeback(rs_writer_t *w, int on)
{
    w->writeback = on;
    w->wb_from = w->off;
}

/* Let the disk start on what was written (without waiting for it), so the
 * fdatasync that acknowledges the bytes finds little left to write. */
static void writer_start_writeback(rs_writer_t *w)
{
#ifdef SYNC_FILE_RANGE_WRITE
    if (w->writeback && w->off - w->wb_from >= WRITEBACK_STEP) {
        rs_data_writeback(w->file, w->wb_from, w->off - w->wb_from);
        w->wb_from = w->off;
    }
#endif
}

/* Write len bytes of data at the writer's offset, past the buffer. */
static apr_status_t writer_put(rs_writer_t *w, const char *data,
                               apr_size_t len)
{
    apr_size_t done;
    apr_status_t rv = pwrite_all(w->fd, data, len, w->off, &done);

    w->off += done;
    w->flushed += done;
    writer_start_writeback(w);
    return rv == APR_SUCCESS ? rv : file_error(w->file, rv, "write");
}

apr_status_t rs_writer_flush(rs_writer_t *w)
{
    apr_size_t used = w->used;
    apr_off_t before = w->flushed;
    apr_status_t rv;

    if (!used) {
        return APR_SUCCESS;
    }
    rv = writer_put(w, w->buf, used);
    w->used = used - (apr_size_t)(w->flushed - before);
    if (w->used) {                      /* keep what was not written */
        memmove(w->buf, w->buf + (used - w->used), w->used);
    }
    return rv;
}

/* A piece this large is written as it is (after what is buffered): copying
 * it would not save a system call worth its memcpy. */
static int writer_direct(const rs_writer_t *w, apr_size_t len)
{
    return len >= (w->size < RS_WRITER_DIRECT ? w->size : RS_WRITER_DIRECT);
}

apr_status_t rs_writer_write(rs_writer_t *w, const char *data, apr_size_t len)
{
    apr_status_t rv = APR_SUCCESS;
    apr_size_t n;

    if (writer_direct(w, len)) {
        rv = rs_writer_flush(w);
        return APR_SUCCESS == rv ? writer_put(w, data, len) : rv;
    }
    while (len && rv == APR_SUCCESS) {
        n = w->size - w->used < len ? w->size - w->used : len;
        memcpy(w->buf + w->used, data, n);
        w->used += n;
        data += n;
        len -= n;
        if (w->used == w->size) {
            rv = rs_writer_flush(w);
        }
    }
    return rv;
}

/* Move len bytes out of pipe fd into the file at the writer's offset
 * (kernel splice, no copy through user space). APR_ENOTIMPL: splice
 * failed (a file system that cannot splice: EINVAL); *done bytes were
 * moved and the rest goes through memory, which reports a real error. */
static apr_status_t splice_all(rs_writer_t *w, int fd, apr_size_t len,
                               apr_size_t *done)
{
    ssize_t n = 0;
    loff_t off;

    *done = 0;
    while (*done < len) {
        off = w->off + (apr_off_t)*done;
        n = splice(fd, NULL, w->fd, &off, len - *done,
                   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        *done += (apr_size_t)n;
    }
    if (*done == len) {
        return APR_SUCCESS;
    }
    if (n == 0 || errno == EAGAIN) {
        return APR_EOF;                 /* the pipe held less than len */
    }
    return APR_ENOTIMPL;    /* EINVAL, ENOSYS, a filter denying it...: the
                               copy through memory reports a real error */
}

/* The rest of a splice through memory: read from the pipe, pwrite. */
static apr_status_t pipe_copy(rs_writer_t *w, int fd, apr_size_t len,
                              apr_off_t at, apr_size_t *done)
{
    char buf[16384];
    apr_size_t wrote;
    apr_status_t rv;
    ssize_t n;

    *done = 0;
    while (*done < len) {
        n = read(fd, buf, len - *done < sizeof(buf) ? len - *done
                                                     : sizeof(buf));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n == 0 || (n < 0 && errno == EAGAIN)) {
            return APR_EOF;             /* the pipe held less than len */
        }
        if (n < 0) {
            return APR_FROM_OS_ERROR(errno);
        }
        rv = pwrite_all(w->fd, buf, (apr_size_t)n, at + (apr_off_t)*done,
                        &wrote);
        *done += wrote;
        if (APR_SUCCESS != rv) {
            return rv;
        }
    }
    return APR_SUCCESS;
}

apr_status_t rs_writer_splice(rs_writer_t *w, int fd, apr_size_t len)
{
    apr_size_t done = 0, more = 0;
    apr_status_t rv = rs_writer_flush(w);

    if (APR_SUCCESS == rv) {
        rv = splice_all(w, fd, len, &done);
        if (APR_STATUS_IS_ENOTIMPL(rv)) {
            rv = pipe_copy(w, fd, len - done, w->off + (apr_off_t)done,
                           &more);
        }
    }
    w->off += (apr_off_t)(done + more);
    w->flushed += (apr_off_t)(done + more);
    writer_start_writeback(w);
    return rv == APR_SUCCESS ? rv : file_error(w->file, rv, "splice");
}

apr_off_t rs_writer_flushed(const rs_writer_t *w)
{
    return w->flushed;
}

apr_off_t rs_writer_total(const rs_writer_t *w)
{
    return w->flushed + (apr_off_t)w->used;
}

/* ---- copy --------------------------------------------------------------- */

/* Reflink: all or nothing; only tried on block-aligned ranges. */
static int copy_clone(int dfd, apr_off_t doff, int sfd, apr_off_t soff,
                      apr_off_t len)
{
    struct file_clone_range r;
    struct stat st;
    apr_off_t bs;

    if (fstat(dfd, &st) < 0 || st.st_blksize <= 0) {
        return 0;
    }
    bs = st.st_blksize;
    if (soff % bs || doff % bs || len % bs) {
        return 0;
    }
    r.src_fd = sfd;
    r.src_offset = (apr_uint64_t)soff;
    r.src_length = (apr_uint64_t)len;
    r.dest_offset = (apr_uint64_t)doff;
    return ioctl(dfd, FICLONERANGE, &r) == 0;
}

/* Userspace copy through a 1 MiB buffer. */
static apr_status_t copy_rw(int dfd, apr_off_t doff, int sfd, apr_off_t soff,
                            apr_off_t len)
{
    char *buf = malloc(COPY_BUF);
    apr_status_t rv = buf ? APR_SUCCESS : APR_ENOMEM;
    apr_size_t n, done;

    while (len > 0 && rv == APR_SUCCESS) {
        n = len < COPY_BUF ? (apr_size_t)len : COPY_BUF;
        if ((rv = pread_all(sfd, buf, n, soff)) == APR_SUCCESS) {
            rv = pwrite_all(dfd, buf, n, doff, &done);
        }
        soff += n;
        doff += n;
        len -= n;
    }
    free(buf);
    return rv;
}

static int copy_unsupported(int err)
{
    return err == EXDEV || err == ENOSYS || err == EINVAL
           || err == EOPNOTSUPP;
}

/* copy_file_range loop; falls back to copy_rw for the rest when the kernel
 * or file system can not (or a source ends early: copy_rw reports EOF).
 * Every COPY_CHUNK copied starts its writeback: each caller syncs the copy
 * next, which then finds little left to write. */
static apr_status_t copy_kernel(apr_file_t *dst, int dfd, apr_off_t doff,
                                int sfd, apr_off_t soff, apr_off_t len)
{
    loff_t so = soff, dof = doff;
    ssize_t n;

    while (len > 0) {
        n = copy_file_range(sfd, &so, dfd, &dof,
                            (size_t)(len < COPY_CHUNK ? len : COPY_CHUNK), 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && !copy_unsupported(errno)) {
            return APR_FROM_OS_ERROR(errno);
        }
        if (n <= 0) {
            return copy_rw(dfd, dof, sfd, so, len);
        }
        rs_data_writeback(dst, dof - n, n);
        len -= n;
    }
    return APR_SUCCESS;
}

apr_status_t rs_data_copy_range(apr_file_t *dst, apr_off_t doff,
                                apr_file_t *src, apr_off_t soff, apr_off_t len)
{
    int dfd = file_fd(dst), sfd = file_fd(src);
    apr_status_t rv;

    if (dfd < 0 || sfd < 0) {
        return APR_EBADF;
    }
    if (len <= 0 || copy_clone(dfd, doff, sfd, soff, len)) {
        return APR_SUCCESS;
    }
    rv = copy_kernel(dst, dfd, doff, sfd, soff, len);
    if (rv != APR_SUCCESS) {
        rs_log_perror(RS_LOG_MARK, RS_LOG_ERR, rv, apr_file_pool_get(dst),
                      RS_LOGNO(03104) "copy of %" APR_OFF_T_FMT " bytes from "
                      "%s@%" APR_OFF_T_FMT " to %s@%" APR_OFF_T_FMT " failed",
                      len, file_name(src), soff, file_name(dst), doff);
    }
    return rv;
}

/* ---- publish ------------------------------------------------------------ */

/* "stem (n).ext"; the extension starts at the last dot that is not the
 * first character ("a.tar.gz" -> "a.tar (1).gz", ".env" -> ".env (1)"). */
static const char *variant_name(apr_pool_t *p, const char *name, int n)
{
    const char *dot = strrchr(name, '.');

    if (n == 0) {
        return name;
    }
    if (!dot || dot == name) {
        return apr_psprintf(p, "%s (%d)", name, n);
    }
    return apr_psprintf(p, "%.*s (%d)%s", (int)(dot - name), name, n, dot);
}

/*
 * Create path as a new name of src, never replacing a file: link(2), or for
 * a move where the file system has no hard links, renameat2(NOREPLACE).
 * Returns errno (0: done, EEXIST: name taken).
 */
static int place(const char *src, const char *path, int keep_src)
{
    int err;

    if (link(src, path) == 0) {
        return 0;
    }
    err = errno;
    if (keep_src || (err != EPERM && err != EOPNOTSUPP && err != EMLINK)) {
        return err;
    }
    if (renameat2(AT_FDCWD, src, AT_FDCWD, path, RENAME_NOREPLACE) == 0) {
        return 0;
    }
    return errno == EINVAL || errno == ENOSYS ? err : errno;
}

static apr_status_t publish_at(apr_pool_t *p, const char *src, const char *dir,
                               const char *name, int keep_src,
                               const char **final)
{
    const char *path;
    int n, err = EEXIST;

    for (n = 0; n <= PUBLISH_MAX && err == EEXIST; n++) {
        path = apr_pstrcat(p, dir, "/", variant_name(p, name, n), NULL);
        err = place(src, path, keep_src);
    }
    if (err) {
        rs_log_perror(RS_LOG_MARK, RS_LOG_ERR, APR_FROM_OS_ERROR(err), p,
                      RS_LOGNO(03105) "cannot publish %s as %s/%s%s", src,
                      dir, name, err == EEXIST ? " (no free name)" : "");
        return APR_FROM_OS_ERROR(err);
    }
    *final = path;
    return APR_SUCCESS;
}

apr_status_t rs_data_publish(apr_pool_t *p, const char *src, const char *dir,
                             const char *name, int keep_src,
                             const char **final)
{
    apr_status_t rv;

    *final = NULL;
    if ((rv = publish_at(p, src, dir, name, keep_src, final)) != APR_SUCCESS) {
        return rv;
    }
    if (!keep_src && unlink(src) < 0 && errno != ENOENT) {
        /* Published; the staging name is only a second link to it. */
        rs_log_perror(RS_LOG_MARK, RS_LOG_WARNING, APR_FROM_OS_ERROR(errno),
                      p, RS_LOGNO(03106) "published %s but cannot remove %s",
                      *final, src);
    }
    return APR_SUCCESS;
}
