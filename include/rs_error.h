/* Licensed under the Apache License, Version 2.0. */
#ifndef RS_ERROR_H
#define RS_ERROR_H

/*
 * Design: one table maps every engine error to an HTTP status, a stable
 * machine code (ERR_*) and a default message (style of tusd's error list,
 * chained cause like mod_dav's dav_error). Engine operations that end in an
 * HTTP response return `rs_error_t *` (NULL = success); lower layers return
 * apr_status_t and the engine wraps the cause. Front ends may re-map a code
 * to a protocol-specific status in their own file (e.g. tus 460), never by
 * editing this table.
 */

#include <apr_pools.h>
#include <apr_errno.h>

typedef enum {
    RS_ERR_NONE = 0,
    RS_ERR_BAD_REQUEST,          /* 400 generic malformed request */
    RS_ERR_INVALID_OFFSET,       /* 400 missing/invalid Upload-Offset */
    RS_ERR_INVALID_LENGTH,       /* 400 invalid Upload-Length */
    RS_ERR_AMBIGUOUS_LENGTH,     /* 400 both length and defer, or neither */
    RS_ERR_INVALID_METADATA,     /* 400 Upload-Metadata malformed */
    RS_ERR_INVALID_CONCAT,       /* 400 Upload-Concat malformed */
    RS_ERR_INCONSISTENT_LENGTH,  /* 400 length indications disagree */
    RS_ERR_LENGTH_ALREADY_SET,   /* 400 deferred length declared twice */
    RS_ERR_CHECKSUM_ALGORITHM,   /* 400 unknown checksum algorithm */
    RS_ERR_INVALID_CHECKSUM,     /* 400 Upload-Checksum malformed */
    RS_ERR_NOT_FINISHED,         /* 400 concat of an unfinished partial */
    RS_ERR_INVALID_NAME,         /* 400 client-supplied name refused */
    RS_ERR_FORBIDDEN,            /* 403 generic */
    RS_ERR_MODIFY_FINAL,         /* 403 PATCH on a final concatenation */
    RS_ERR_NOT_FOUND,            /* 404 unknown upload (or another user's) */
    RS_ERR_METHOD,               /* 405 method not allowed */
    RS_ERR_MISMATCHED_OFFSET,    /* 409 Upload-Offset != stored offset */
    RS_ERR_INCOMPLETE,           /* 409 download of an unfinished upload */
    RS_ERR_GONE,                 /* 410 expired or terminated */
    RS_ERR_MAX_SIZE,             /* 413 length above ResumableMaxSize */
    RS_ERR_SIZE_EXCEEDED,        /* 413 body beyond the declared length */
    RS_ERR_UNSUPPORTED_TYPE,     /* 415 wrong Content-Type */
    RS_ERR_PRECONDITION,         /* 412 unsupported protocol version */
    RS_ERR_LOCKED,               /* 423 another request writes this upload */
    RS_ERR_CHECKSUM_MISMATCH,    /* 460 checksum did not verify */
    RS_ERR_INTERRUPTED,          /* 400 request stopped: another took over */
    RS_ERR_BODY_READ,            /* 400 body read failed / client went away
                                    (a client's fault; the glue maps the
                                    cause as httpd does) */
    RS_ERR_TIMEOUT,              /* 408 body read timed out */
    RS_ERR_STORAGE,              /* 500 data file error */
    RS_ERR_STATE,                /* 500 state database error */
    RS_ERR_STORAGE_FULL,         /* 507 no space left */
    RS_ERR_WRONG_PROTOCOL,       /* 400 upload made by another protocol */
    RS_ERR_CHUNK_CONFLICT,       /* 409 re-sent chunk differs from the stored */
    RS_ERR_TOO_MANY_PENDING,     /* 429 too many uploads holding no data */
    RS_ERR_HOOK_REJECTED,        /* 4xx/5xx: a blocking hook said no (the
                                    hook's status and text) */
    RS_ERR_HOOK_UNAVAILABLE,     /* 503 hook target unreachable/timed out */
    RS_ERR_HOOK_FAILED,          /* 502 hook answered 2xx with a bad body */
    RS_ERR_REJECTED,             /* 403 upload refused by pre-finish */
    RS_ERR_STATE_UNAVAILABLE,    /* 503 state database unreachable (dbd:) */
    RS_ERR_FENCED,               /* 409 cluster: the writer's lease passed
                                    to another request (its epoch is
                                    stale): nothing more of it counts */
    RS_ERR__COUNT
} rs_errcode_t;

typedef struct rs_error_t {
    rs_errcode_t code;
    int status;                  /* HTTP status (may be re-mapped) */
    const char *name;            /* stable code string, "ERR_..." */
    const char *detail;          /* human readable, safe to send */
    apr_status_t cause;          /* underlying APR status or APR_SUCCESS */
} rs_error_t;

/** Default HTTP status of a code. */
int rs_error_status(rs_errcode_t code);
/** Stable name ("ERR_MISMATCHED_OFFSET") of a code. */
const char *rs_error_name(rs_errcode_t code);
/** Default message of a code. */
const char *rs_error_message(rs_errcode_t code);

/** Make an error in pool p; fmt may be NULL for the default message. */
rs_error_t *rs_error_make(apr_pool_t *p, rs_errcode_t code, apr_status_t cause,
                          const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/** Map a storage apr_status_t to STORAGE_FULL (ENOSPC/EDQUOT) or `other`. */
rs_errcode_t rs_error_from_io(apr_status_t rv, rs_errcode_t other);

#endif /* RS_ERROR_H */
