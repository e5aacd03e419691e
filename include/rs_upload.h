/* Licensed under the Apache License, Version 2.0. */
#ifndef RS_UPLOAD_H
#define RS_UPLOAD_H

/*
 * Design: the upload record, the unit of state every front end shares.
 * Two data models live in one record:
 *   - append mode (tus, IETF, offset): bytes [0, offset) are stored and new
 *     bytes are only written at `offset`;
 *   - chunk mode (slice, md5, flow): the file is cut in `chunk_count`
 *     chunks of `chunk_size` bytes (the last one may differ) written at
 *     their final position; `chunk_map` says which ones arrived.
 * A record is serialized by rs_upload_encode() into a versioned binary form
 * (layout documented in rs_upload.c) and stored by rs_store. The data file
 * is the truth for append offsets: rs_engine reconciles the record against
 * it whenever an upload is opened.
 *
 * Life cycle (rs_upload_state_t):
 *   ACTIVE --(offset == length | all chunks)--> COMPLETE (published file)
 *   ACTIVE --(expiry sweep | DELETE)--> removed, tombstone kept (410)
 *   final concatenation: ASSEMBLING until every partial is complete.
 * A final whose partials are complete, and a chunk-mode upload merged
 * without a whole-file MD5 to verify, become COMPLETE with RS_UF_COMPOSED
 * at once: the data is still its parts, in order (the partials' data files,
 * or the chunk files), and `path` holds the name it will be published
 * under. The engine copies the parts into the published file off the
 * request path (rs_engine_materialise), then sets RS_UF_PUBLISHED instead.
 */

#include <apr_pools.h>
#include <apr_tables.h>

typedef enum {
    RS_STATE_ACTIVE = 1,
    RS_STATE_ASSEMBLING = 2,     /* final concat waiting for partials */
    RS_STATE_COMPLETE = 3
} rs_upload_state_t;

/* which front end created the upload (also the bit in a protocol mask) */
typedef enum {
    RS_PROTO_TUS = 0,
    RS_PROTO_IETF,
    RS_PROTO_OFFSET,
    RS_PROTO_SLICE,
    RS_PROTO_MD5,
    RS_PROTO_FLOW,
    RS_PROTO__COUNT
} rs_proto_id_t;

#define RS_UF_DEFER_LENGTH  0x0001   /* length not known yet */
#define RS_UF_PARTIAL       0x0002   /* tus concat partial */
#define RS_UF_FINAL         0x0004   /* tus concat final */
#define RS_UF_CHUNKED       0x0008   /* chunk mode */
#define RS_UF_PUBLISHED     0x0010   /* visible file exists at `path` */
#define RS_UF_UNINDEXED     0x0020   /* content digest still to be indexed
                                        (done by the sweep, off the request) */
#define RS_UF_COMPOSED      0x0040   /* complete, but the data is still the
                                        parts in order (not yet published) */
#define RS_UF_PENDING       0x0200   /* counted among the pending uploads
                                        (created, no data yet): its "q:<id>"
                                        entry names the counters */
#define RS_UF_CHUNKS_LEFT   0x1000   /* complete md5 upload whose chunk
                                        files are removed after the answer;
                                        the sweep removes what a kill left
                                        and clears the bit (read only on a
                                        COMPLETE record) */
#define RS_UF_REJECTED      0x4000   /* the application's pre-finish hook
                                        refused it: never published, every
                                        request for it fails (RS_ERR_REJECTED) */

typedef struct rs_upload_t {
    const char *id;
    rs_upload_state_t state;
    rs_proto_id_t proto;
    unsigned int flags;          /* RS_UF_* */
    apr_off_t length;            /* total bytes, -1 while unknown */
    apr_off_t offset;            /* append mode: bytes stored; chunk
                                    mode: bytes of the chunks staged */
    apr_off_t pending_from;      /* -1, or start of an unverified append:
                                    bytes past it are dropped on reconcile */
    apr_time_t created;
    apr_time_t updated;          /* last successful write */
    apr_time_t expires;          /* 0: never */
    const char *owner;           /* authenticated user, "" anonymous */
    const char *dir;             /* absolute upload directory of the area */
    const char *metadata;        /* tus Upload-Metadata as received, or NULL */
    const char *filename;        /* original file name (UTF-8), or NULL */
    const char *filetype;        /* media type, or NULL */
    const char *path;            /* published file, when RS_UF_PUBLISHED;
                                    with RS_UF_COMPOSED the file name it
                                    will be published under */
    const char *concat;          /* final: Upload-Concat value as received */
    apr_array_header_t *parts;   /* final: partial ids (const char *) */
    apr_array_header_t *waiters; /* partial: finals using it, waiting or
                                    composed (const char *) */
    apr_off_t chunk_size;        /* chunk mode */
    int chunk_count;
    unsigned char *chunk_map;    /* (chunk_count + 7) / 8 bytes */
    const char *client_key;      /* chunk/offset protocols: client's own id */
    const char *digest_alg;      /* e.g. "sha256" when digest is set */
    const char *digest;          /* lower-case hex digest of the content */
    /* cluster mode (rs_engine_lease.c): the writer lease and the segments
     * of an append-mode upload; 0 / NULL on a single node */
    apr_int64_t epoch;           /* fencing token: +1 per acquisition */
    const char *lease_owner;     /* holder "<boot id>:<pid>:<start>", NULL
                                    when free (released cleanly) */
    apr_time_t lease_until;      /* by the state store's clock */
    apr_time_t stop_req;         /* a newcomer asked the holder to yield */
    int nsegs;                   /* committed data: segment files */
    struct rs_segment_t *segs;
} rs_upload_t;

/* One segment file "<id>.e<epoch>" of an append-mode upload in cluster
 * mode: bytes [start, start + len) of the upload, committed (fsynced and
 * counted). Segments are contiguous from 0: offset = sum of len. */
typedef struct rs_segment_t {
    apr_int64_t epoch;           /* names the file; its writer's epoch */
    apr_off_t start;
    apr_off_t len;
} rs_segment_t;

#define RS_UPLOAD_MAX_SEGS 1000

#define RS_UPLOAD_MAX_CHUNKS 100000
#define RS_UPLOAD_MAX_PARTS  1000
#define RS_UPLOAD_MAX_RECORD (1024 * 1024)

/** A fresh record with defaults (length -1, pending_from -1, ACTIVE). */
rs_upload_t *rs_upload_make(apr_pool_t *p, const char *id);

/** Serialize; *buf is allocated from p. */
apr_status_t rs_upload_encode(const rs_upload_t *u, apr_pool_t *p,
                              char **buf, apr_size_t *len);
/**
 * Parse a serialized record (untrusted: bounds-checked, fuzzable).
 * APR_EINVAL: corrupt or truncated; APR_ENOTIMPL: unknown version.
 */
apr_status_t rs_upload_decode(apr_pool_t *p, const char *id, const char *buf,
                              apr_size_t len, rs_upload_t **u);

/** Chunk bitmap helpers (index 0-based). */
int rs_upload_chunk_has(const rs_upload_t *u, int index);
void rs_upload_chunk_set(rs_upload_t *u, int index);
int rs_upload_chunks_missing(const rs_upload_t *u);

const char *rs_upload_state_name(rs_upload_state_t s);

/** 1 if u takes bytes by appending at its offset: active, not chunk mode,
 *  not a concatenation final (the data file is then the offset's truth). */
int rs_upload_append_mode(const rs_upload_t *u);

#endif /* RS_UPLOAD_H */
