/* Licensed under the Apache License, Version 2.0. */
#ifndef RS_DATA_H
#define RS_DATA_H

/*
 * Design: the data side of an upload. An area's directory holds a hidden
 * staging folder ".resumable/" with "<id>.data" per unfinished upload (and
 * the lock files of rs_lock). Finished uploads are published into the area
 * directory under their sanitized original name: hard link (atomic, never
 * overwrites: a taken name gets " (1)", " (2)"... before the extension),
 * then the staging name is removed.
 *
 * Writes go through a writer that coalesces small pieces (buckets of a few
 * KiB) into one large pwrite, so a GiB costs a few thousand syscalls;
 * large pieces (the glue reads the socket in large blocks) are written
 * where they are, without a copy. Bytes
 * are written at an explicit offset: append mode and chunk mode (chunks at
 * their final position, so assembly copies nothing) share one path.
 * Concatenation copies ranges in the kernel: FICLONERANGE (reflink) where
 * the file system has it, else copy_file_range, else read/write.
 *
 * Every function taking an apr_file_t * answers APR_EBADF for a NULL file
 * (a caller's mistake, e.g. an engine path reached for an upload that has
 * no data file) instead of dereferencing it.
 */

#include <apr_pools.h>
#include <apr_file_io.h>
#include <apr_time.h>

#define RS_STAGING_DIR ".resumable"

/** "<dir>/.resumable", created (0750) when missing. */
apr_status_t rs_data_staging(apr_pool_t *p, const char *dir, int create,
                             const char **staging);
/** "<dir>/.resumable/<id>.data" */
const char *rs_data_path(apr_pool_t *p, const char *dir, const char *id);

/**
 * In-flight data of a deferred creation (rs_engine_create_append): the
 * body of a new upload streams into "<dir>/.resumable/<id>.new" before any
 * record names the id; the file becomes "<id>.data" (or is published) just
 * before the record is stored. The writer holds an OFD write lock on it
 * (rs_data_claim) until it closes the file, so a ".new" file nobody holds
 * is an orphan (its child was killed): rs_data_sweep_new removes those
 * older than a grace period. resumablectl neither reports nor adopts them
 * (they are no "<id>.data").
 */
const char *rs_data_new_path(apr_pool_t *p, const char *dir, const char *id);
/** Hold an OFD write lock on all of f (released when f is closed or the
 *  process dies). APR_EBUSY: another holds it. */
apr_status_t rs_data_claim(apr_file_t *f);
/** Remove the unclaimed "<id>.new" files of dir's staging folder last
 *  modified before now - grace; *removed counts them. */
apr_status_t rs_data_sweep_new(apr_pool_t *p, const char *dir,
                               apr_interval_time_t grace, apr_time_t now,
                               int *removed);

/** Open (create when `create`) the data file read-write, no truncation. */
apr_status_t rs_data_open(apr_file_t **f, const char *path, int create,
                          apr_pool_t *p);

/** Create (or open) path inside dir's staging folder, making the folder
 * only when the open finds it missing: no stat of the folder per call. */
apr_status_t rs_data_open_staged(apr_file_t **f, const char *dir,
                                 const char *path, apr_pool_t *p);
/** Size of path; APR_ENOENT when absent. */
apr_status_t rs_data_size(const char *path, apr_off_t *size, apr_pool_t *p);
apr_status_t rs_data_truncate(apr_file_t *f, apr_off_t size);
/** fdatasync */
apr_status_t rs_data_sync(apr_file_t *f);
/** Start the disk's writeback of [off, off + len) of f without waiting
 *  (sync_file_range WRITE; nothing where there is none): a later
 *  rs_data_sync then finds little left to write. */
void rs_data_writeback(apr_file_t *f, apr_off_t off, apr_off_t len);
/** Reserve len bytes at off (fallocate; ENOSPC early). Ignores ENOTSUP. */
apr_status_t rs_data_reserve(apr_file_t *f, apr_off_t off, apr_off_t len);

typedef struct rs_writer_t rs_writer_t;
/** Writer at offset off with a bufsize coalescing buffer from p. */
apr_status_t rs_writer_create(rs_writer_t **w, apr_file_t *f, apr_off_t off,
                              apr_size_t bufsize, apr_pool_t *p);
/** Pieces from this size on are written without being copied. */
#define RS_WRITER_DIRECT (64 * 1024)

/** Copy data into the buffer; pwrite when full. A piece of at least
 *  RS_WRITER_DIRECT bytes (or the buffer's size) is written directly,
 *  after what is buffered. */
apr_status_t rs_writer_write(rs_writer_t *w, const char *data, apr_size_t len);
/** Move len bytes waiting in pipe fd (its read end) into the file after
 *  what is buffered, in the kernel (splice: the bytes are not copied
 *  through user space); through memory where the file system cannot
 *  splice. APR_EOF: the pipe held fewer than len bytes. */
apr_status_t rs_writer_splice(rs_writer_t *w, int fd, apr_size_t len);
/** pwrite what is buffered. */
apr_status_t rs_writer_flush(rs_writer_t *w);
/** on: start the disk's writeback of written bytes every 1 MiB
 *  (sync_file_range, not waiting), for writers whose bytes are fdatasync'ed
 *  before they are acknowledged: the sync then finds little left to do. */
void rs_writer_writeback(rs_writer_t *w, int on);
/** Bytes written to the file so far (excludes the buffer). */
apr_off_t rs_writer_flushed(const rs_writer_t *w);
/** Bytes accepted so far (flushed + buffered). */
apr_off_t rs_writer_total(const rs_writer_t *w);

/** Copy len bytes from src@soff to dst@doff in the kernel where possible;
 *  starts the writeback of the copy as it goes (every caller syncs it). */
apr_status_t rs_data_copy_range(apr_file_t *dst, apr_off_t doff,
                                apr_file_t *src, apr_off_t soff, apr_off_t len);

/**
 * Publish staging file src as dir/name (name already sanitized), choosing
 * a free variant of name; *final is the path used. src is removed after the
 * link succeeded. keep_src: link only (src stays, e.g. concat partials).
 */
apr_status_t rs_data_publish(apr_pool_t *p, const char *src, const char *dir,
                             const char *name, int keep_src,
                             const char **final);

/** Remove a file; APR_SUCCESS when already absent. */
apr_status_t rs_data_remove(const char *path, apr_pool_t *p);

#endif /* RS_DATA_H */
