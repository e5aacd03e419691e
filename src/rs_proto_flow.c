/* Licensed under the Apache License, Version 2.0. */
/*
 * "flow" front end: the Flow.js / Resumable.js chunk protocol
 * (protocols.md section 5), parameters prefixed "flow" or "resumable".
 *
 *   test   GET ?<params>: 200 when the chunk (or the whole file) is
 *          stored ("have it": a success status for both libraries), 204
 *          when it is not ("send it": neither success nor permanent error;
 *          never 404, which fails the file in Flow.js). Invalid
 *          parameters: 400.
 *   chunk  multipart POST (the libraries' default method): the params as
 *          text fields, the bytes in part "file". 200 "partly_done", or
 *          "done" when it completed the file (the libraries need no
 *          commit: the file is assembled and published when chunks 1..N
 *          are all stored, exactly once).
 *
 * Each chunk is checked against the geometry (protocols.md 5.2): number in
 * 1..N, N = floor(total/chunkSize) (or ceil, forceChunkSize), at least 1;
 * every chunk but the last exactly chunkSize bytes, the last the rest;
 * the body length equals *CurrentChunkSize; the same count on every
 * chunk. The identifier (not unique across users: "<size>-<name>") is
 * scoped by the engine to area and user. Not supported: the 'octet'
 * upload method and Resumable.js' parameterNamespace option.
 */

#include <apr_strings.h>
#include <apr_escape.h>

#include "rs_proto.h"
#include "rs_form.h"
#include "rs_util.h"

#define FLOW_MAX_QUERY 8192
#define FLOW_MAX_ID 512

typedef struct flow_t {
    const char *pre;                /* "flow" or "resumable" */
    apr_table_t *t;
    int number, total;
    apr_off_t chunk_size, current, size;
    const char *id, *filename;
} flow_t;

static const char *param(const flow_t *f, const char *name)
{
    return apr_table_get(f->t, apr_pstrcat(apr_table_elts(f->t)->pool,
                                           f->pre, name, NULL));
}

/* The parameter prefix used in t, or NULL when t has no chunk number. */
static const char *prefix_of(apr_table_t *t)
{
    if (apr_table_get(t, "flowChunkNumber")) {
        return "flow";
    }
    return apr_table_get(t, "resumableChunkNumber") ? "resumable" : NULL;
}

/* The decoded query string as a table (bounded), or NULL: too long, or
 * a name or value with a bad %-escape (apr_punescape_url answers NULL,
 * which must never become a table key). */
static apr_table_t *query(rs_req_t *req)
{
    apr_table_t *t = apr_table_make(req->pool, 12);
    char *args, *pair, *last, *eq;
    const char *k, *v;

    if (!req->args || strlen(req->args) > FLOW_MAX_QUERY) {
        return NULL;
    }
    args = apr_pstrdup(req->pool, req->args);
    for (pair = apr_strtok(args, "&", &last); pair;
         pair = apr_strtok(NULL, "&", &last)) {
        if ((eq = strchr(pair, '='))) {
            *eq++ = '\0';
        }
        k = apr_punescape_url(req->pool, pair, NULL, NULL, 1);
        v = eq ? apr_punescape_url(req->pool, eq, NULL, NULL, 1) : "";
        if (!k || !v) {
            return NULL;
        }
        apr_table_setn(t, k, v);
    }
    return t;
}

static int num(const flow_t *f, const char *name, apr_off_t *v)
{
    const char *s = param(f, name);

    return s && APR_SUCCESS == rs_util_parse_off(s, v);
}

/* Chunk count from the geometry: floor, or ceil with forceChunkSize. */
static int geometry_ok(const flow_t *f)
{
    apr_off_t lo = f->size / f->chunk_size;
    apr_off_t hi = lo + (0 != f->size % f->chunk_size);   /* no overflow */

    lo = lo < 1 ? 1 : lo;
    hi = hi < 1 ? 1 : hi;
    return f->total == lo || f->total == hi;
}

static apr_off_t expected_size(const flow_t *f)
{
    return f->number < f->total ? f->chunk_size
           : f->size - (apr_off_t)(f->total - 1) * f->chunk_size;
}

/* Parse and check the parameters; NULL or the reason they are refused. */
static const char *parse(apr_pool_t *p, apr_table_t *t, flow_t *f)
{
    apr_off_t number, total;

    f->t = t;
    if (!(f->pre = prefix_of(t))) {
        return "no chunk number";
    }
    f->id = param(f, "Identifier");
    f->filename = param(f, "Filename");
    if (!f->id || !*f->id || strlen(f->id) > FLOW_MAX_ID || !f->filename
        || !rs_util_sanitize_name(p, f->filename)) {
        return "invalid identifier or file name";
    }
    if (!num(f, "ChunkNumber", &number) || !num(f, "TotalChunks", &total)
        || !num(f, "ChunkSize", &f->chunk_size)
        || !num(f, "TotalSize", &f->size)
        || !num(f, "CurrentChunkSize", &f->current)) {
        return "missing or invalid chunk parameters";
    }
    if (total < 1 || total >= RS_UPLOAD_MAX_CHUNKS - 1 || number < 1
        || number > total || f->chunk_size < 1) {
        return "chunk number out of range";
    }
    f->number = (int)number;
    f->total = (int)total;
    if (!geometry_ok(f) || f->current != expected_size(f)) {
        return "chunk size does not fit the file's geometry";
    }
    return NULL;
}

static const char *client_key(apr_pool_t *p, const flow_t *f)
{
    return apr_pstrcat(p, "flow:", f->id, NULL);
}

static void reply(rs_req_t *req, int status, const char *text)
{
    req->status = status;
    req->content_type = "text/plain; charset=utf-8";
    req->text = text;
}

static void fail(rs_req_t *req, const char *why)
{
    rs_proto_error(req, rs_error_make(req->pool, RS_ERR_BAD_REQUEST, 0, "%s",
                                      why));
}

/* ------------------------------------------------------------------------ */
/* test GET                                                                  */

static int flow_match(rs_req_t *req)
{
    apr_table_t *t;

    if (strcmp(req->method, "GET") || !req->args
        || (!strstr(req->args, "flowChunkNumber=")
            && !strstr(req->args, "resumableChunkNumber="))) {
        return 0;
    }
    t = query(req);
    return !t || prefix_of(t);      /* a bad query of flow's: flow's 400 */
}

static void flow_test(rs_req_t *req)
{
    apr_table_t *t = query(req);
    flow_t f;
    rs_upload_t *u;
    const char *why = t ? parse(req->pool, t, &f) : "invalid query";
    rs_error_t *err;

    if (why) {
        fail(req, why);
        return;
    }
    err = rs_engine_find_key(req->engine, req->area, req->user,
                             RS_PROTO_FLOW, client_key(req->pool, &f),
                             req->pool, &u);
    if (err && RS_ERR_NOT_FOUND != err->code) {
        rs_proto_error(req, err);
        return;
    }
    if (!err && (RS_STATE_COMPLETE == u->state
                 || rs_upload_chunk_has(u, f.number))) {
        reply(req, 200, "found");
        return;
    }
    reply(req, 204, NULL);
}

/* ------------------------------------------------------------------------ */
/* chunk POST                                                                */

static int flow_match_form(rs_req_t *req, const rs_form_t *f)
{
    const char *pre = f->fields ? prefix_of(f->fields) : NULL;

    return pre && f->file_field && !strcmp(f->file_field, "file")
           && apr_table_get(f->fields, apr_pstrcat(req->pool, pre,
                                                   "Identifier", NULL));
}

static void flow_handle_form(rs_req_t *req, rs_form_t *form)
{
    flow_t f;
    rs_chunk_t c = { 0, 0, NULL, NULL };
    rs_upload_t *u;
    rs_error_t *err;
    const char *why = parse(req->pool, form->fields, &f);

    if (!why && form->file_size != f.current) {
        why = "the chunk's length differs from its CurrentChunkSize";
    }
    if (!why && req->area->max_size > 0 && f.size > req->area->max_size) {
        rs_proto_error(req, rs_error_make(req->pool, RS_ERR_MAX_SIZE, 0,
                                          NULL));
        return;
    }
    if (why) {
        fail(req, why);
        return;
    }
    if (!(err = rs_form_upload_of(req, client_key(req->pool, &f),
                                  RS_PROTO_FLOW, f.filename, &u))) {
        c.index = f.number;
        c.total = f.total;
        c.spool = form->file_path;
        err = rs_engine_chunk_put(req->engine, req->area, u, &c, req->pool);
        form->file_path = NULL;
    }
    if (err) {
        rs_proto_error(req, err);
        return;
    }
    reply(req, 200, RS_STATE_COMPLETE == u->state ? "done" : "partly_done");
}

const rs_proto_t rs_proto_flow = {
    "flow", RS_PROTO_FLOW, flow_match, flow_test, NULL, 1,
    flow_match_form, flow_handle_form
};
