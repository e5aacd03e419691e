/* Licensed under the Apache License, Version 2.0. */
#ifndef RS_FORM_H
#define RS_FORM_H

/*
 * Design: the shared intake of the chunk protocols (slice, md5, flow),
 * whose requests can only be told apart by their body: multipart fields
 * that may come after the file part (the seed clients append the Blob
 * first), or a small JSON document that browsers send as text/plain.
 *
 * rs_form_handle() reads the body once:
 *   - multipart/form-data (rs_multipart, streaming): the one file part (a
 *     part with a filename parameter) is spooled as it arrives into a temp
 *     file in the area's staging folder (".resumable/form-XXXXXX", at most
 *     max_file bytes, never in memory); small text fields are collected
 *     (each at most RS_FORM_MAX_FIELD bytes, RS_FORM_MAX_PARTS parts,
 *     duplicate names refused);
 *   - otherwise at most RS_FORM_MAX_JSON bytes parsed by jansson (nesting
 *     at most RS_FORM_MAX_DEPTH, duplicate keys refused);
 * then offers the result to each enabled front end's match_form() in
 * dispatch order and lets the first that accepts it handle it. The front
 * end decides where the spooled bytes go (the engine links the spool file
 * as a chunk: no copy); whatever is left is removed with the request pool.
 *
 * Errors: malformed body 400, body too large 413, storage 500/507, a form
 * no front end recognizes 400.
 */

#include <apr_pools.h>
#include <apr_tables.h>
#include "rs_proto.h"

#define RS_FORM_MAX_PARTS 16
#define RS_FORM_MAX_FIELD 4096
#define RS_FORM_MAX_JSON (256 * 1024)
#define RS_FORM_MAX_DEPTH 8
/** Largest file part (one chunk) when the area sets no smaller limit. */
#define RS_FORM_MAX_FILE ((apr_off_t)256 * 1024 * 1024)

struct json_t;

typedef struct rs_form_t {
    apr_table_t *fields;            /* text fields (multipart) */
    const char *file_field;         /* name of the file part, or NULL */
    const char *file_name;          /* its filename parameter */
    const char *file_type;          /* its Content-Type, or NULL */
    const char *file_path;          /* spool file, or NULL; a front end
                                       that consumed it sets NULL */
    apr_off_t file_size;
    struct json_t *json;            /* a JSON body instead, or NULL */
} rs_form_t;

/** 1 if req should go through the intake: a POST with a body that some
 *  enabled front end may recognize (multipart/form-data; text/plain or
 *  application/json for JSON). Other POSTs fall through to httpd. */
int rs_form_wanted(const rs_req_t *req);

/** Read the body, dispatch to the front end that recognizes it, fill the
 *  response (see the design note). */
void rs_form_handle(rs_req_t *req);

/**
 * The active chunked upload of the requesting user under client key `key`
 * (already scoped/hashed by the front end), created (deferred length,
 * chunk mode, proto, filename) when there is none or the last one is
 * finished. Shared by the slice and flow front ends.
 */
rs_error_t *rs_form_upload_of(rs_req_t *req, const char *key,
                              rs_proto_id_t proto, const char *filename,
                              rs_upload_t **pu);

/** Strict decimal field (0 .. max): 1 ok, 0 absent, -1 invalid. */
int rs_form_int(const rs_form_t *f, const char *name, apr_int64_t max,
                apr_int64_t *v);

/** Largest file part for area a. */
apr_off_t rs_form_max_file(const rs_area_t *a);

#endif /* RS_FORM_H */
