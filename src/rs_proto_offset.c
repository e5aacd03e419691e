/* Licensed under the Apache License, Version 2.0. */
/*
 * "offset" front end: the X-File-Id protocol of design document 001
 * (javascript.info's resumable upload, class Uploader).
 *
 *   GET  + X-File-Id                  -> 200 text/plain "<bytes stored>"
 *                                        ("0" when the id is unknown)
 *   POST + X-File-Id, X-Start-Byte    -> raw body appended at that byte;
 *        [X-File-Size]                   200, "Success <n>" once complete
 *
 * A start byte other than the stored count answers 400 with the stored
 * count as the body (the seed's "Wrong start byte"). The file id is the
 * client's own and untrusted: the engine keeps it hashed, scoped to area
 * and user (rs_engine_find_key). Without X-File-Size the upload stays open
 * (deferred length) and resumable until a request declares the size.
 *
 * The published name: the seed client builds its id as
 * "<name>-<size>-<lastModified>"; when the id has that shape (size being
 * X-File-Size) the file is published as <name>, else under the id itself,
 * always through the engine's name sanitizer. The media type is the
 * request's Content-Type (XHR sends the Blob's type), when it is one.
 */

#include <apr_strings.h>
#include <apr_lib.h>

#include "rs_proto.h"
#include "rs_util.h"
#include "rs_log.h"

#define OFFSET_ID "X-File-Id"
#define OFFSET_START "X-Start-Byte"
#define OFFSET_SIZE "X-File-Size"
#define OFFSET_MAX_TYPE 200

static int offset_match(rs_req_t *req)
{
    int get = !strcmp(req->method, "GET");

    if (!get && strcmp(req->method, "POST")) {
        return 0;
    }
    return apr_table_get(req->in, OFFSET_ID)
           || (!get && apr_table_get(req->in, OFFSET_START));
}

static void reply(rs_req_t *req, int status, const char *text)
{
    req->status = status;
    req->content_type = "text/plain; charset=utf-8";
    req->text = text;
}

static void fail(rs_req_t *req, rs_errcode_t code, const char *detail)
{
    rs_proto_error(req, rs_error_make(req->pool, code, 0, "%s", detail));
}

/* What a status query reports: stored bytes (the length once complete). */
static apr_off_t stored(const rs_upload_t *u)
{
    return RS_STATE_COMPLETE == u->state ? u->length : u->offset;
}

static void offset_status(rs_req_t *req, const char *fid)
{
    rs_upload_t *u;
    rs_error_t *err = rs_engine_find_key(req->engine, req->area, req->user,
                                         RS_PROTO_OFFSET, fid, req->pool,
                                         &u);

    if (err && RS_ERR_NOT_FOUND == err->code) {
        reply(req, 200, "0");
    }
    else if (err) {
        rs_proto_error(req, err);
    }
    else {
        reply(req, 200, apr_off_t_toa(req->pool, stored(u)));
    }
}

/* ------------------------------------------------------------------------ */
/* POST                                                                      */

/* "<name>-<size>-<digits>" -> name; else the id itself. */
static const char *name_from_id(apr_pool_t *p, const char *fid,
                                apr_off_t size)
{
    const char *end = fid + strlen(fid), *q = end, *suffix;

    while (q > fid && apr_isdigit(q[-1])) {
        q--;
    }
    if (q == end || q - fid < 2 || q[-1] != '-' || size < 0) {
        return fid;
    }
    suffix = apr_psprintf(p, "-%" APR_OFF_T_FMT "-", size);
    q -= strlen(suffix);
    if (q <= fid || strncmp(q, suffix, strlen(suffix))) {
        return fid;
    }
    return apr_pstrndup(p, fid, q - fid);
}

/* The request's media type when it names the file's type, else NULL. */
static const char *file_type(rs_req_t *req)
{
    const char *ct = apr_table_get(req->in, "Content-Type");

    if (!ct || !*ct || strlen(ct) > OFFSET_MAX_TYPE || !strchr(ct, '/')
        || !rs_util_header_safe(ct)
        || !strncasecmp(ct, "multipart/", 10)
        || !strncasecmp(ct, "application/x-www-form-urlencoded", 33)) {
        return NULL;
    }
    return ct;
}

static rs_error_t *create(rs_req_t *req, const char *fid, apr_off_t size,
                          rs_upload_t **pu)
{
    rs_upload_t *u = rs_upload_make(req->pool, NULL);

    u->proto = RS_PROTO_OFFSET;
    u->owner = req->user;
    u->client_key = fid;
    u->length = size;
    if (size < 0) {
        u->flags |= RS_UF_DEFER_LENGTH;
    }
    u->filename = name_from_id(req->pool, fid, size);
    u->filetype = file_type(req);
    *pu = u;
    return rs_engine_create(req->engine, req->area, u, req->pool);
}

/* The upload of fid, created when the client starts at byte 0. */
static rs_error_t *find_or_create(rs_req_t *req, const char *fid,
                                 apr_off_t start, apr_off_t size,
                                 rs_upload_t **u)
{
    rs_error_t *err = rs_engine_find_key(req->engine, req->area, req->user,
                                         RS_PROTO_OFFSET, fid, req->pool, u);

    if (!err || RS_ERR_NOT_FOUND != err->code) {
        return err;
    }
    if (0 != start) {
        reply(req, 400, "0");
        return NULL;
    }
    return create(req, fid, size, u);
}

static void mismatch(rs_req_t *req, const rs_upload_t *u)
{
    reply(req, 400, apr_off_t_toa(req->pool, stored(u)));
}

static void append(rs_req_t *req, rs_upload_t *u, apr_off_t start,
                   apr_off_t size)
{
    rs_append_t ap;
    rs_append_result_t res;
    rs_error_t *err;

    memset(&ap, 0, sizeof(ap));
    ap.offset = start;
    ap.declare_length = size;
    if (RS_STATE_COMPLETE == u->state && start == u->length) {
        ap.offset = u->offset;          /* a finished file: nothing to do */
    }
    err = rs_engine_append(req->engine, req->area, u, &ap, req->body,
                           req->pool, &res);
    if (err && RS_ERR_MISMATCHED_OFFSET == err->code) {
        mismatch(req, u);
    }
    else if (err) {
        rs_proto_error(req, err);
    }
    else if (RS_STATE_COMPLETE == u->state) {
        reply(req, 200, apr_psprintf(req->pool, "Success %" APR_OFF_T_FMT,
                                     u->length));
    }
    else {
        reply(req, 200, "");
    }
}

/* Optional strict decimal header: 0 absent, 1 ok, -1 invalid. */
static int header_off(rs_req_t *req, const char *name, apr_off_t *v)
{
    const char *s = apr_table_get(req->in, name);

    if (!s) {
        return 0;
    }
    return APR_SUCCESS == rs_util_parse_off(s, v) ? 1 : -1;
}

static void offset_upload(rs_req_t *req, const char *fid)
{
    apr_off_t start = -1, size = -1;
    rs_upload_t *u = NULL;
    rs_error_t *err;

    if (!fid || !*fid) {
        fail(req, RS_ERR_BAD_REQUEST, "X-File-Id is missing");
        return;
    }
    if (1 != header_off(req, OFFSET_START, &start)) {
        fail(req, RS_ERR_INVALID_OFFSET, "X-Start-Byte is missing or "
             "invalid");
        return;
    }
    if (header_off(req, OFFSET_SIZE, &size) < 0) {
        fail(req, RS_ERR_INVALID_LENGTH, "X-File-Size is invalid");
        return;
    }
    if (size >= 0 && req->content_length > 0
        && req->content_length > size - start) {
        /* refused before an upload is created for it */
        fail(req, RS_ERR_SIZE_EXCEEDED, "the body goes past X-File-Size");
        return;
    }
    if ((err = find_or_create(req, fid, start, size, &u))) {
        rs_proto_error(req, err);
    }
    else if (u && start != stored(u)) {
        mismatch(req, u);
    }
    else if (u) {
        append(req, u, start, size);
    }
}

static void offset_handle(rs_req_t *req)
{
    const char *fid = apr_table_get(req->in, OFFSET_ID);

    if (!strcmp(req->method, "GET")) {
        offset_status(req, fid);
    }
    else {
        offset_upload(req, fid);
    }
}

const rs_proto_t rs_proto_offset = {
    "offset", RS_PROTO_OFFSET, offset_match, offset_handle, NULL, 1
};
