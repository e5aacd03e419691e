/* Licensed under the Apache License, Version 2.0. */
/*
 * "slice" front end: the chunked form uploads of design documents 000 and
 * 003. Both arrive through the form intake (rs_form.h):
 *
 *   chunk  multipart POST: file part "chunk" (seed 000) or "data"
 *          (seed 003), fields "index", "name", optional "total".
 *          Chunks come in any order and concurrently. Answer: 200
 *          text/plain "成功" (the seed server's body; the clients only
 *          check the status).
 *   merge  JSON {"name": ..., "size": <chunk size>} (seed 000, sent by
 *          fetch with a string body, i.e. text/plain). Assembles the
 *          chunks 0 (or 1) .. highest, all of which must be present, each
 *          but the last exactly `size` bytes. Answer: 200 "ok".
 *
 * With "total" (seed 003) the file is assembled as soon as the last chunk
 * lands. Seed 000 numbers chunks from 0, seed 003's server from 1 to
 * total: both are accepted (rs_engine_chunk_put). The upload is found by
 * the file name the client sends (the seeds have no other id), scoped to
 * area and user; a name whose upload finished starts a new upload, which
 * is published under a new name (" (1)"), never over the old file.
 */

#include <apr_strings.h>
#include <jansson.h>

#include "rs_proto.h"
#include "rs_form.h"
#include "rs_util.h"

#define SLICE_OK "\xe6\x88\x90\xe5\x8a\x9f"     /* "成功" */
#define SLICE_MAX_NAME 1024

static const char *client_key(apr_pool_t *p, const char *name)
{
    return apr_pstrcat(p, "slice:", name, NULL);
}

static const char *chunk_field(const rs_form_t *f)
{
    if (!f->file_field) {
        return NULL;
    }
    return strcmp(f->file_field, "chunk") && strcmp(f->file_field, "data")
           ? NULL : f->file_field;
}

static int is_merge(const rs_form_t *f)
{
    return json_is_object(f->json) && json_object_get(f->json, "name")
           && json_object_get(f->json, "size")
           && !json_object_get(f->json, "fileId");
}

static int slice_match_form(rs_req_t *req, const rs_form_t *f)
{
    if (f->json) {
        return is_merge(f);
    }
    return chunk_field(f) && apr_table_get(f->fields, "index")
           && apr_table_get(f->fields, "name");
}

static void reply(rs_req_t *req, const char *text)
{
    req->status = 200;
    req->content_type = "text/plain; charset=utf-8";
    req->text = text;
}

static void fail(rs_req_t *req, rs_errcode_t code, const char *detail)
{
    rs_proto_error(req, rs_error_make(req->pool, code, 0, "%s", detail));
}

static int name_ok(const char *name)
{
    apr_size_t n = name ? strlen(name) : 0;

    return n > 0 && n <= SLICE_MAX_NAME;
}

/* ------------------------------------------------------------------------ */
/* chunk                                                                     */

static void slice_chunk(rs_req_t *req, rs_form_t *f)
{
    const char *name = apr_table_get(f->fields, "name");
    apr_int64_t index = 0, total = 0;
    rs_chunk_t c = { 0, 0, NULL, NULL };
    rs_upload_t *u;
    rs_error_t *err;

    if (1 != rs_form_int(f, "index", RS_UPLOAD_MAX_CHUNKS, &index)
        || rs_form_int(f, "total", RS_UPLOAD_MAX_CHUNKS, &total) < 0) {
        fail(req, RS_ERR_BAD_REQUEST, "invalid chunk index or total");
        return;
    }
    if (!name_ok(name) || !rs_util_sanitize_name(req->pool, name)) {
        fail(req, RS_ERR_INVALID_NAME, "invalid file name");
        return;
    }
    if ((err = rs_form_upload_of(req, client_key(req->pool, name),
                                 RS_PROTO_SLICE, name, &u))) {
        rs_proto_error(req, err);
        return;
    }
    c.index = (int)index;
    c.total = (int)total;
    c.spool = f->file_path;
    err = rs_engine_chunk_put(req->engine, req->area, u, &c, req->pool);
    f->file_path = NULL;                /* the engine took (or removed) it */
    if (err) {
        rs_proto_error(req, err);
        return;
    }
    reply(req, SLICE_OK);
}

/* ------------------------------------------------------------------------ */
/* merge                                                                     */

static void slice_merge(rs_req_t *req, rs_form_t *f)
{
    json_t *jn = json_object_get(f->json, "name");
    json_t *js = json_object_get(f->json, "size");
    const char *name = json_string_value(jn);
    rs_upload_t *u;
    rs_error_t *err;

    if (!name_ok(name) || !json_is_integer(js) || json_integer_value(js) < 1
        || json_integer_value(js) > rs_form_max_file(req->area)) {
        fail(req, RS_ERR_BAD_REQUEST, "merge needs a name and a chunk size");
        return;
    }
    err = rs_engine_find_key(req->engine, req->area, req->user,
                             RS_PROTO_SLICE, client_key(req->pool, name),
                             req->pool, &u);
    if (!err) {
        err = rs_engine_chunk_merge(req->engine, req->area, u,
                                    (apr_off_t)json_integer_value(js),
                                    req->pool);
    }
    if (err) {
        rs_proto_error(req, err);
        return;
    }
    reply(req, "ok");
}

static void slice_handle_form(rs_req_t *req, rs_form_t *f)
{
    if (f->json) {
        slice_merge(req, f);
    }
    else {
        slice_chunk(req, f);
    }
}

/* Only through the form intake: no match() of its own. */
const rs_proto_t rs_proto_slice = {
    "slice", RS_PROTO_SLICE, NULL, NULL, NULL, 0,
    slice_match_form, slice_handle_form
};
