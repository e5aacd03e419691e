/* Licensed under the Apache License, Version 2.0. */
#ifndef RS_PROTO_H
#define RS_PROTO_H

/*
 * Design: the front-end interface. The glue turns a request_rec into an
 * APR-only request view (rs_req_t), asks each enabled front end in turn
 * whether the request is its own (match), and lets the first that says yes
 * handle it. A front end never sees request_rec or buckets: it reads
 * headers from `in`, the body through rs_body_t, calls the engine, and
 * fills status, `out` headers and an optional short body. Requests no front
 * end claims fall through to httpd's normal handling (downloads of finished
 * uploads are served by the glue with httpd's own machinery).
 *
 * One file per protocol: rs_proto_tus.c, ... Differences between versions
 * of one protocol stay inside its file.
 */

#include <apr_pools.h>
#include <apr_tables.h>
#include "rs_engine.h"

typedef struct rs_req_t rs_req_t;
struct rs_form_t;
struct rs_req_t {
    apr_pool_t *pool;
    const char *method;             /* as received */
    apr_table_t *in;                /* request headers */
    apr_table_t *out;               /* response headers, filled by the front end */
    const char *base_url;           /* absolute URL of the collection, no
                                       trailing slash: "http://h:8080/files" */
    const char *base_path;          /* its path: "/files" */
    const char *id;                 /* upload id named by the URI, or NULL */
    int at_base;                    /* URI is the collection itself */
    const char *user;               /* authenticated user or "" */
    const char *args;               /* query string (undecoded) or NULL */
    apr_off_t content_length;       /* -1 when chunked, 0 when no body */
    rs_body_t *body;
    const rs_area_t *area;
    rs_engine_t *engine;
    /**
     * Send an interim (1xx) response now, e.g. 104 Upload Resumption
     * Supported, with the given headers; the glue keeps the final response's
     * headers apart and sends "100 Continue" first when the client asked
     * for it. Does nothing on HTTP/1.0. May be NULL (unit tests).
     */
    void (*interim)(struct rs_req_t *req, int status, const char *line,
                    apr_table_t *headers);
    void *glue;                     /* host data for interim() */
    /* response */
    int status;
    const char *content_type;
    const char *text;               /* response body or NULL */
    rs_error_t *error;              /* set when the request failed */
};

typedef struct rs_proto_t {
    const char *name;               /* as in ResumableProtocols */
    rs_proto_id_t id;
    /** 1 if the request belongs to this front end. Must not touch the body.
     *  NULL for a front end reached only through match_form. */
    int (*match)(rs_req_t *req);
    /** Handle it: set req->status (and out, text). */
    void (*handle)(rs_req_t *req);
    /** Add discovery headers to an OPTIONS answer made by another front end
     *  or to a CORS preflight (may be NULL). */
    void (*discover)(rs_req_t *req);
    /** 1: match() may claim plain GET requests (status queries, test
     *  chunks); else a GET is never offered and stays a download. */
    int claims_get;
    /**
     * Requests whose protocol shows only in the body: a multipart/form-data
     * POST, or a small JSON POST (sent as application/json or text/plain).
     * No front end's match() claimed it, so rs_form (rs_form.h) reads the
     * body once and offers it here, in dispatch order: 1 if the form is this
     * front end's (must not consume it). May be NULL.
     */
    int (*match_form)(rs_req_t *req, const struct rs_form_t *form);
    /** Handle a form match_form() accepted. */
    void (*handle_form)(rs_req_t *req, struct rs_form_t *form);
    /**
     * The intake failed with err (a body that cannot be read or parsed, or
     * a form no match_form() accepted; form holds what was read): 1 if the
     * request is recognisably this front end's and it answered err in its
     * own format (and set req->error), 0 to leave it to the shared
     * text/plain answer. Offered in dispatch order. May be NULL.
     */
    int (*form_error)(rs_req_t *req, const struct rs_form_t *form,
                      rs_error_t *err);
} rs_proto_t;

extern const rs_proto_t rs_proto_tus;
extern const rs_proto_t rs_proto_ietf;
extern const rs_proto_t rs_proto_offset;
extern const rs_proto_t rs_proto_slice;
extern const rs_proto_t rs_proto_md5;
extern const rs_proto_t rs_proto_flow;

/** Names of all front ends, comma separated (for messages). */
const char *rs_proto_names(apr_pool_t *p);

/** All front ends of this build, in dispatch order; NULL terminated. */
extern const rs_proto_t *const rs_protos[];

/** Front end by name, or NULL. */
const rs_proto_t *rs_proto_find(const char *name);

/** Fill status/text from err (text/plain "ERR_CODE: detail\n"). */
void rs_proto_error(rs_req_t *req, rs_error_t *err);

/** Headers a browser may need to read (CORS Access-Control-Expose-Headers);
 *  ETag, Last-Modified, Accept-Ranges and Content-Range let a page resume
 *  a download (Range with If-Range). */
#define RS_PROTO_EXPOSE_HEADERS \
    "Location, Upload-Offset, Upload-Length, Upload-Metadata, " \
    "Upload-Defer-Length, Upload-Concat, Upload-Expires, Upload-Complete, " \
    "Upload-Limit, Upload-Draft-Interop-Version, Tus-Version, " \
    "Tus-Resumable, Tus-Max-Size, Tus-Extension, Tus-Checksum-Algorithm, " \
    "Content-Disposition, Content-Range, Repr-Digest, Accept-Patch, " \
    "Upload-Incomplete, ETag, Last-Modified, Accept-Ranges"
/** Request headers a browser may send (CORS Access-Control-Allow-Headers). */
#define RS_PROTO_ALLOW_HEADERS \
    "Authorization, Content-Type, Content-Disposition, Tus-Resumable, " \
    "Upload-Length, Upload-Offset, Upload-Metadata, Upload-Defer-Length, " \
    "Upload-Concat, Upload-Checksum, Upload-Complete, " \
    "Upload-Draft-Interop-Version, X-HTTP-Method-Override, X-Requested-With, " \
    "X-Request-ID, Range, If-Range, If-Match, If-None-Match, X-File-Id, " \
    "X-Start-Byte, X-File-Size, " \
    "Upload-Incomplete, Content-Digest, Repr-Digest, Want-Repr-Digest"
#define RS_PROTO_ALLOW_METHODS "GET, HEAD, POST, PATCH, PUT, DELETE, OPTIONS"

#endif /* RS_PROTO_H */
