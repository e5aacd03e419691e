/* Licensed under the Apache License, Version 2.0. */
#ifndef RS_ENGINE_H
#define RS_ENGINE_H

/*
 * Design: the upload engine every protocol front end shares. It owns the
 * rules that keep acknowledged bytes safe; front ends only translate their
 * wire format into these calls.
 *
 * - State: one record per upload in rs_store (key "u:<id>"), tombstones
 *   ("t:<id>") for terminated/expired uploads so they answer 410, and
 *   "k:<hash>" entries mapping a client-chosen file id to an upload.
 * - Data: "<area dir>/.resumable/<id>.data", written in place at explicit
 *   offsets (append mode and chunk mode share rs_data's writer). A
 *   deferred creation (rs_engine_create_append) streams into "<id>.new"
 *   before its record exists; the sweep removes such files orphaned by a
 *   killed child (RS_ENGINE_NEW_GRACE).
 * - Truth: the data file. rs_engine_open() reconciles the record with the
 *   file: the reported offset never claims bytes that are not on disk, and
 *   bytes a killed writer left behind are adopted, unless they belonged to
 *   an unverified (checksummed) append, which is rolled back.
 * - Writers: one per upload (rs_lock). A new request takes over from a
 *   stalled one (idle >= stall_time) within lock_wait, else RS_ERR_LOCKED.
 * - The global mutex (inside rs_store) is held only for record reads and
 *   writes, never while a body streams.
 * - Completion publishes the file into the area directory under its
 *   sanitized original name (rs_data_publish) and records the path.
 * - Composition (zero-copy completion): a final concatenation and a chunk
 *   merge without an MD5 to verify complete at once with RS_UF_COMPOSED;
 *   their parts (already durable) are the data, served in order
 *   (rs_engine_parts). rs_engine_materialise copies them into the
 *   published file later: the glue calls it after the response went out
 *   for the ids rs_engine_composed lists, the sweep for any left over
 *   (a killed child). A partial a composed final uses is not removed
 *   (DELETE, expiry) before that final is materialised.
 *
 * - Hooks (rs_engine_hooks_t, rs_hook.h): when the host gives callbacks,
 *   the engine asks before it stores a new upload (pre-create) and before
 *   it publishes a finished one (pre-finish; a refusal marks the record
 *   RS_UF_REJECTED, see rs_engine_hook.c), and records notifications in
 *   the transactions that store what they report.
 *
 * Threading: every function may be called from any request thread; the
 * sweep is called from the watchdog thread of one process.
 */

#include <apr_pools.h>
#include <apr_tables.h>
#include "rs_error.h"
#include "rs_upload.h"

struct rs_store_t;
struct rs_txn_t;

/**
 * Application hooks (rs_hook.h), implemented by the host; NULL in
 * rs_engine_t when no hook is configured anywhere (the engine then only
 * tests that pointer). event is an rs_hook_event_t; p is the pool the
 * engine call was given (the host finds its request there).
 * gate(): a blocking event (pre-create before the record is stored, with
 *   its id; pre-finish before a finished upload is published). NULL goes
 *   on (u's metadata, filename may have been changed); an error stops.
 * record(): a notification, inside the write transaction that stores the
 *   change it reports (post-create, -finish, -terminate, -expire).
 */
typedef struct rs_engine_hooks_t {
    rs_error_t *(*gate)(void *baton, int event, rs_upload_t *u,
                        apr_pool_t *p);
    apr_status_t (*record)(void *baton, struct rs_txn_t *txn, int event,
                           const rs_upload_t *u, apr_pool_t *p);
    void *baton;
} rs_engine_hooks_t;

typedef struct rs_engine_t {
    struct rs_store_t *store;
    apr_size_t write_buffer;        /* coalescing buffer per writer */
    const rs_engine_hooks_t *hooks; /* NULL: no hooks */
    /* cluster mode (state in PostgreSQL, data on a shared file system):
     * writers hold leases with epochs instead of OFD locks, offsets come
     * from the records, data goes to per-epoch segment files
     * (rs_engine_lease.c). 0: one node. */
    apr_interval_time_t lease_time; /* ResumableLeaseTime */
    apr_off_t checkpoint;           /* ResumableCheckpoint: bytes between
                                       fenced checkpoints of a writer */
    const apr_array_header_t *dirs; /* area directories (const char *) the
                                       sweep looks at for orphaned
                                       deferred creations besides those
                                       of the records, or NULL */
} rs_engine_t;

/** Settings of the area (per-dir config, resolved by the glue). */
typedef struct rs_area_t {
    const char *dir;                /* absolute upload directory */
    apr_off_t max_size;             /* 0: unlimited */
    apr_off_t max_append;           /* LimitRequestBody; 0: unlimited */
    apr_interval_time_t expire;     /* 0: uploads never expire */
    int sync;                       /* fdatasync before acknowledging */
    apr_interval_time_t lock_wait;  /* how long to wait for a writer */
    apr_interval_time_t stall_time; /* idle writer yields after this */
    unsigned int protocols;         /* mask of 1 << rs_proto_id_t */
    const apr_array_header_t *deny_ext; /* extensions defused in published
                                           names (rs_util_defuse_name) */
    const char *files_url;          /* ResumableFilesURL: URL path ("/x/")
                                       at which httpd serves dir, or NULL */
    apr_int64_t max_pending;        /* unfinished uploads holding no data,
                                       per user; 0: unlimited */
    apr_int64_t max_pending_area;   /* the same for the whole area */
    const char *client;             /* the request's client address: an
                                       anonymous client's pending uploads
                                       count per address; NULL: as one */
} rs_area_t;

/**
 * A request body, implemented by the host (the httpd glue or a test).
 * read(): next piece (valid until the next call). APR_EOF at the end;
 * APR_EAGAIN when nothing arrived for a short while (an idle tick: the
 * engine checks for takeover requests and calls again); any other status is
 * a failed read (client gone, timeout) and ends the request.
 */
typedef struct rs_body_t rs_body_t;
struct rs_body_t {
    apr_status_t (*read)(rs_body_t *b, const char **data, apr_size_t *len);
    /** A trailer field after APR_EOF, or NULL. */
    const char *(*trailer)(rs_body_t *b, const char *name);
    apr_off_t length;               /* Content-Length, -1 when chunked */
    void *ctx;
    /* Set by a reader that writes the bytes to a file as they are (no
     * hashing in memory; a digest that follows the file is fine): read()
     * may then hand over a piece that is still in a
     * kernel pipe, as *data NULL, *len bytes waiting in pipe_fd; the
     * reader must take all of them (rs_writer_splice) before the next
     * read(). Never set: read() always returns bytes in memory. */
    int take_pipe;
    int pipe_fd;
};

/** What an append must verify or declare. */
typedef struct rs_append_t {
    apr_off_t offset;               /* where the client says it writes */
    apr_off_t declare_length;       /* -1, or length declared with it */
    const char *checksum_alg;       /* verify the body (tus) or NULL */
    const unsigned char *checksum;  /* expected digest */
    apr_size_t checksum_len;
    int checksum_trailer;           /* expect Upload-Checksum as trailer */
    const char *trailer_name;       /* trailer field to read */
    int complete;                   /* IETF: this append completes */
} rs_append_t;

/** Result of an append. */
typedef struct rs_append_result_t {
    apr_off_t received;             /* body bytes consumed */
    apr_off_t stored;               /* bytes that now count (offset delta) */
    int interrupted;                /* stopped early (client, takeover) */
} rs_append_result_t;

/**
 * Create an upload from the prepared record u (proto, flags, length,
 * metadata, filename, filetype, owner, concat/parts set by the caller).
 * Assigns id, dir, times; creates the data file; stores the record. An
 * upload of length 0 (not partial) completes at once.
 */
rs_error_t *rs_engine_create(rs_engine_t *e, const rs_area_t *a,
                             rs_upload_t *u, apr_pool_t *p);

/**
 * Look up upload id for owner ("" anonymous). RS_ERR_NOT_FOUND when unknown,
 * in another area or owned by someone else; RS_ERR_GONE when terminated or
 * expired (an expired one is removed here too). The record's offset is
 * reconciled with the data file (read-only: nothing is written). A final
 * concatenation left waiting although all its partials are complete (the
 * request that completed the last one was killed) is assembled here, and
 * an upload whose bytes are all on disk but whose writer was killed before
 * completing it is completed here.
 */
rs_error_t *rs_engine_open(rs_engine_t *e, const rs_area_t *a, const char *id,
                           const char *owner, apr_pool_t *p, rs_upload_t **u);

/**
 * Append body at ap->offset to upload u (opened with rs_engine_open). Takes
 * the writer lock, re-reads and reconciles the record under it, checks the
 * offset (RS_ERR_MISMATCHED_OFFSET), length (RS_ERR_SIZE_EXCEEDED), state,
 * streams, verifies, persists the new offset and completes the upload when
 * the length is reached. On a failed body read the bytes received are kept
 * (unless a checksum was to be verified) and the error is returned. u is
 * updated to the stored state.
 */
rs_error_t *rs_engine_append(rs_engine_t *e, const rs_area_t *a,
                             rs_upload_t *u, const rs_append_t *ap,
                             rs_body_t *body, apr_pool_t *p,
                             rs_append_result_t *res);

/**
 * Create an upload (as rs_engine_create) whose first append (as
 * rs_engine_append, ap->offset 0) is the body of the same request: tus
 * creation-with-upload. *stored: a record exists now (also on an error:
 * the client gets its URL with the error), 0 when the creation failed.
 *
 * Deferred creation (issue 15): when no other request can reach the new
 * upload before the answer (one node, no client key, no concatenation
 * or chunk mode, a non-zero length),
 * every check and the pre-create gate run before the body as in
 * rs_engine_create, but no record exists while the body streams into
 * "<id>.new" (rs_data.h; opened once, claimed, no writer lock, no read
 * transaction but ResumableMaxPending's check of the counts): a request
 * for the id meanwhile gets RS_ERR_NOT_FOUND.
 * After the body (synced first with ResumableSync On) one write
 * transaction stores the record as the body left it, with the
 * post-create event, then post-receive or (completed, published straight
 * from "<id>.new") post-finish. What gets stored after a cut or refused
 * body is what rs_engine_create + rs_engine_append store. Otherwise it
 * is exactly those two calls.
 */
rs_error_t *rs_engine_create_append(rs_engine_t *e, const rs_area_t *a,
                                    rs_upload_t *u, const rs_append_t *ap,
                                    rs_body_t *body, apr_pool_t *p,
                                    rs_append_result_t *res, int *stored);

/** A chunk list declared at creation (RS_UF_CHUNKED without
 *  RS_UF_DEFER_LENGTH, chunk_count = n + 1) may have at most one chunk per
 *  this many bytes of the area's maximum size (RS_ERR_MAX_SIZE beyond);
 *  without a maximum, RS_UPLOAD_MAX_CHUNKS. */
#define RS_ENGINE_MIN_CHUNK 1024

/** Longest client key (a client-chosen file id) in bytes. */
#define RS_ENGINE_MAX_KEY 1024

/**
 * Look up the upload a client of protocol proto created under its own id
 * client_key (set as u->client_key at rs_engine_create, u->proto being
 * proto) in area a for owner. The key is scoped to area, owner and
 * protocol and stored hashed: a key never finds another protocol's upload.
 * RS_ERR_NOT_FOUND when none
 * (also when it was terminated or expired), RS_ERR_BAD_REQUEST when the
 * key is empty or longer than RS_ENGINE_MAX_KEY. Opens like rs_engine_open.
 * rs_engine_create with a client key that already names an active upload
 * (a concurrent create) returns that upload in u instead of a new one; a
 * key of a complete upload moves to the new upload.
 */
rs_error_t *rs_engine_find_key(rs_engine_t *e, const rs_area_t *a,
                               const char *owner, rs_proto_id_t proto,
                               const char *client_key, apr_pool_t *p,
                               rs_upload_t **u);

/** One chunk for a chunk-mode upload (RS_UF_CHUNKED). */
typedef struct rs_chunk_t {
    int index;                      /* as the client numbers it: 0- or
                                       1-based, below RS_UPLOAD_MAX_CHUNKS-1 */
    int total;                      /* chunk count when the client says it,
                                       else 0 */
    const char *spool;              /* a file in the area's staging folder
                                       holding the bytes; consumed */
    const char *file_md5;           /* the whole file's MD5 (lower-case
                                       hex) to verify before it is
                                       published, or NULL */
} rs_chunk_t;

/**
 * Store chunk c of chunk-mode upload u (created with RS_UF_CHUNKED |
 * RS_UF_DEFER_LENGTH, chunk_count 0). The chunk keeps its own file in the
 * staging folder until assembly. With a maximum size, the staged chunks
 * (u->offset counts their bytes) and the place of each chunk (index times
 * its size) must fit it: else RS_ERR_MAX_SIZE, at every chunk. Re-sending
 * the same bytes succeeds and changes nothing; different bytes for a
 * stored index are RS_ERR_CHUNK_
 * CONFLICT; an index beyond the declared count or mixing 0- and 1-based
 * numbering is RS_ERR_BAD_REQUEST. The first chunk bringing a total
 * declares the count; when all chunks of a declared count are present
 * the upload completes: composed, or, with c->file_md5, assembled (kernel
 * copy), verified and published at once. u is updated.
 */
rs_error_t *rs_engine_chunk_put(rs_engine_t *e, const rs_area_t *a,
                                rs_upload_t *u, const rs_chunk_t *c,
                                apr_pool_t *p);

/**
 * Complete chunk-mode upload u now, composed (an explicit merge): the
 * chunks from 0 (or 1) to the highest present, all of which must be there
 * (else RS_ERR_INCOMPLETE). chunk_size > 0: every chunk but the last must
 * have exactly that size, the last at most (else
 * RS_ERR_INCONSISTENT_LENGTH). A complete upload is a no-op.
 */
rs_error_t *rs_engine_chunk_merge(rs_engine_t *e, const rs_area_t *a,
                                  rs_upload_t *u, apr_off_t chunk_size,
                                  apr_pool_t *p);

/**
 * The content index of area a (the md5 front end's instant upload): the
 * complete, published upload of owner ("" anonymous) whose MD5 is md5hex
 * (lower-case hex), or RS_ERR_NOT_FOUND. Every upload published in the
 * area (by any front end) is indexed per owner: at once when the front end
 * verified its MD5, otherwise by the sweep (RS_UF_UNINDEXED), off the
 * request path. The first live upload of a content stays its entry (one
 * answer for the content while it lives). Never another owner's upload;
 * entries whose upload or file is gone are dropped here.
 */
rs_error_t *rs_engine_content_find(rs_engine_t *e, const rs_area_t *a,
                                   const char *owner,
                                   const char *md5hex, apr_pool_t *p,
                                   rs_upload_t **u);

/** Delete upload u (lock with takeover), its data and published file;
 *  leave a tombstone. */
rs_error_t *rs_engine_terminate(rs_engine_t *e, const rs_area_t *a,
                                rs_upload_t *u, apr_pool_t *p);

/** Most partials one final concatenation lists (each distinct). Bounds
 *  the state work of one request: one record write per partial. */
#define RS_ENGINE_MAX_PARTS 100
/** Most finals not yet published (waiting or composed) that may use one
 *  partial at a time: bounds the partial's record (its waiter list). */
#define RS_ENGINE_MAX_WAITERS 100

/**
 * Create a final concatenation of u->parts (ids, already resolved by the
 * front end). Each part must exist, belong to owner, be a partial, and be
 * listed once (RS_ERR_INVALID_CONCAT); 1 to RS_ENGINE_MAX_PARTS parts. A
 * partial already used by RS_ENGINE_MAX_WAITERS unpublished finals refuses
 * another (RS_ERR_LOCKED, until some are published). The final and the
 * waiter lists of its partials are stored in one transaction, all or
 * nothing: on any error nothing is kept. When all are complete the final
 * is composed now (complete, nothing copied); else it waits
 * (RS_STATE_ASSEMBLING) and is composed when the last partial completes.
 * allow_unfinished = 0 refuses unfinished partials.
 */
rs_error_t *rs_engine_concat(rs_engine_t *e, const rs_area_t *a,
                             rs_upload_t *u, int allow_unfinished,
                             apr_pool_t *p);

/** One part of a composed upload: len bytes at the start of file path. */
typedef struct rs_part_t {
    const char *path;
    apr_off_t len;
} rs_part_t;

/**
 * The parts of composed upload u in order (array of rs_part_t, from p):
 * the partials' data files of a final, the chunk files of a chunk-mode
 * upload. Their lengths add up to u->length. RS_ERR_STATE when a partial's
 * record is gone, RS_ERR_STORAGE when a chunk file is (it may just have
 * been materialised: look the upload up again).
 */
rs_error_t *rs_engine_parts(rs_engine_t *e, const rs_upload_t *u,
                            apr_pool_t *p, apr_array_header_t **parts);

/**
 * Copy the parts of composed upload id into its data file, sync, publish
 * it and clear RS_UF_COMPOSED (one store transaction, which also takes a
 * final off its partials' waiter lists); then remove its chunk files. A
 * failure removes the copy and the published file: the upload stays
 * composed and is still served from its parts. A no-op (NULL) when id is
 * not composed (any more). Takes the writer lock, waiting a->lock_wait (a
 * NULL: no wait, as the sweep does): RS_ERR_LOCKED when another request
 * holds it. A kill at any point
 * leaves the composed record valid (the data file is rewritten next time).
 * Logs success (info) and failure (warning) itself.
 */
rs_error_t *rs_engine_materialise(rs_engine_t *e, const rs_area_t *a,
                                  const char *id, apr_pool_t *p);

/**
 * Ids of the uploads composed by engine calls made with pool p (array of
 * const char *, owned by p), or NULL: what the glue materialises once the
 * response has been sent. Request thread only.
 */
const apr_array_header_t *rs_engine_composed(apr_pool_t *p);

/** A deferred creation's "<id>.new" (rs_engine_create_append) that no
 *  writer claims and that was not written for this long is an orphan. */
#define RS_ENGINE_NEW_GRACE apr_time_from_sec(10)

/** Remove expired incomplete uploads and old tombstones, materialise
 *  composed uploads left over, remove the orphaned "<id>.new" files
 *  (RS_ENGINE_NEW_GRACE) of the records' directories and e->dirs.
 *  *removed counts uploads removed. Safe to run concurrently with
 *  requests. */
apr_status_t rs_engine_sweep(rs_engine_t *e, apr_time_t now, apr_pool_t *p,
                             int *removed);

/** Expiry moment of u in area a (0 when it does not expire). */
apr_time_t rs_engine_expires(const rs_area_t *a, const rs_upload_t *u);

#endif /* RS_ENGINE_H */
