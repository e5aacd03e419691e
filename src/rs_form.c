/* Licensed under the Apache License, Version 2.0. */
/*
 * The body intake of the chunk protocols: multipart spooling, small JSON,
 * dispatch by content. See rs_form.h.
 */

#include <unistd.h>
#include <apr_strings.h>
#include <apr_lib.h>
#include <jansson.h>

#include "rs_form.h"
#include "rs_multipart.h"
#include "rs_data.h"
#include "rs_util.h"
#include "rs_log.h"

typedef struct intake_t {
    rs_req_t *req;
    rs_form_t *form;
    apr_off_t max_file;
    rs_writer_t *w;                 /* the file part being spooled */
    apr_file_t *spool;
    char *field;                    /* the text field being collected */
    const char *field_name;
    apr_size_t field_len;
    rs_error_t *err;                /* why a callback stopped the parser */
} intake_t;

static int type_is(const char *ct, const char *type)
{
    apr_size_t n = strlen(type);

    ct = ct ? ct : "";
    while (*ct == ' ') {
        ct++;
    }
    return !strncasecmp(ct, type, n)
           && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

static int any_form_proto(const rs_req_t *req)
{
    int i;

    for (i = 0; rs_protos[i]; i++) {
        if ((req->area->protocols & (1u << rs_protos[i]->id))
            && rs_protos[i]->match_form) {
            return 1;
        }
    }
    return 0;
}

int rs_form_wanted(const rs_req_t *req)
{
    const char *ct = apr_table_get(req->in, "Content-Type");

    if (strcmp(req->method, "POST") || 0 == req->content_length
        || !any_form_proto(req)) {
        return 0;
    }
    return type_is(ct, "multipart/form-data") || type_is(ct, "text/plain")
           || type_is(ct, "application/json");
}

apr_off_t rs_form_max_file(const rs_area_t *a)
{
    return a->max_size > 0 && a->max_size < RS_FORM_MAX_FILE ? a->max_size
           : RS_FORM_MAX_FILE;
}

int rs_form_int(const rs_form_t *f, const char *name, apr_int64_t max,
                apr_int64_t *v)
{
    const char *s = f->fields ? apr_table_get(f->fields, name) : NULL;
    apr_off_t o;

    if (!s) {
        return 0;
    }
    if (APR_SUCCESS != rs_util_parse_off(s, &o) || o > max) {
        return -1;
    }
    *v = o;
    return 1;
}

/* ------------------------------------------------------------------------ */
/* multipart callbacks                                                       */

/* Pool cleanup: remove the spool file unless a front end took it (and
 * cleared file_path), so a name reused later is never touched. */
static apr_status_t remove_spool(void *data)
{
    rs_form_t *f = data;

    if (f->file_path) {
        unlink(f->file_path);
    }
    return APR_SUCCESS;
}

static apr_status_t stop(intake_t *in, rs_errcode_t code, apr_status_t rv,
                         const char *detail)
{
    in->err = rs_error_make(in->req->pool, code, rv, "%s", detail);
    return APR_EGENERAL;
}

static apr_status_t open_spool(intake_t *in)
{
    rs_req_t *req = in->req;
    const char *staging;
    char *tmpl;
    apr_status_t rv = rs_data_staging(req->pool, req->area->dir, 1, &staging);

    if (APR_SUCCESS == rv) {
        tmpl = apr_pstrcat(req->pool, staging, "/form-XXXXXX", NULL);
        rv = apr_file_mktemp(&in->spool, tmpl, APR_FOPEN_CREATE
                             | APR_FOPEN_READ | APR_FOPEN_WRITE
                             | APR_FOPEN_EXCL | APR_FOPEN_BINARY, req->pool);
        if (APR_SUCCESS == rv) {
            in->form->file_path = tmpl;
            apr_pool_cleanup_register(req->pool, in->form, remove_spool,
                                      apr_pool_cleanup_null);
            rv = rs_writer_create(&in->w, in->spool, 0,
                                  req->engine->write_buffer, req->pool);
            if (APR_SUCCESS == rv) {
                rs_writer_writeback(in->w, req->area->sync);
            }
        }
    }
    if (APR_SUCCESS != rv) {
        rs_log_perror(RS_LOG_MARK, RS_LOG_ERR, rv, req->pool, RS_LOGNO(07001)
                      "form intake: creating a spool file in %s failed",
                      req->area->dir);
        return stop(in, rs_error_from_io(rv, RS_ERR_STORAGE), rv, "spool");
    }
    return APR_SUCCESS;
}

static apr_status_t on_begin(void *baton, const char *name,
                             const char *filename, const char *ctype)
{
    intake_t *in = baton;
    rs_form_t *f = in->form;

    if (filename) {
        if (f->file_field) {
            return stop(in, RS_ERR_BAD_REQUEST, 0, "more than one file part");
        }
        f->file_field = apr_pstrdup(in->req->pool, name);
        f->file_name = apr_pstrdup(in->req->pool, filename);
        f->file_type = ctype ? apr_pstrdup(in->req->pool, ctype) : NULL;
        return open_spool(in);
    }
    if (apr_table_get(f->fields, name)) {
        return stop(in, RS_ERR_BAD_REQUEST, 0, "a form field is repeated");
    }
    in->field_name = apr_pstrdup(in->req->pool, name);
    in->field_len = 0;
    return APR_SUCCESS;
}

static apr_status_t on_data(void *baton, const char *data, apr_size_t len)
{
    intake_t *in = baton;
    apr_status_t rv;

    if (!in->w) {
        if (in->field_len + len > RS_FORM_MAX_FIELD) {
            return stop(in, RS_ERR_BAD_REQUEST, 0, "a form field is too long");
        }
        memcpy(in->field + in->field_len, data, len);
        in->field_len += len;
        return APR_SUCCESS;
    }
    if (rs_writer_total(in->w) + (apr_off_t)len > in->max_file) {
        return stop(in, RS_ERR_SIZE_EXCEEDED, 0, apr_psprintf(in->req->pool,
                    "the file part exceeds %" APR_OFF_T_FMT " bytes",
                    in->max_file));
    }
    if (APR_SUCCESS != (rv = rs_writer_write(in->w, data, len))) {
        return stop(in, rs_error_from_io(rv, RS_ERR_STORAGE), rv, "spool");
    }
    return APR_SUCCESS;
}

static apr_status_t on_end(void *baton)
{
    intake_t *in = baton;
    apr_status_t rv;

    if (!in->w) {
        apr_table_setn(in->form->fields, in->field_name,
                       apr_pstrmemdup(in->req->pool, in->field,
                                      in->field_len));
        return APR_SUCCESS;
    }
    rv = rs_writer_flush(in->w);
    if (APR_SUCCESS == rv && in->req->area->sync) {
        rv = rs_data_sync(in->spool);   /* durable before a chunk is
                                           acknowledged, not at the merge */
    }
    in->form->file_size = rs_writer_total(in->w);
    apr_file_close(in->spool);
    in->w = NULL;
    return APR_SUCCESS == rv ? APR_SUCCESS
           : stop(in, rs_error_from_io(rv, RS_ERR_STORAGE), rv, "spool");
}

static const rs_mp_cb_t intake_cbs = { on_begin, on_data, on_end };

/* ------------------------------------------------------------------------ */
/* reading                                                                   */

typedef apr_status_t feed_fn(void *ctx, const char *data, apr_size_t len);

/* Pump the body into feed; an error of feed is the caller's to explain. */
static rs_error_t *pump(rs_req_t *req, feed_fn *feed, void *ctx,
                        apr_status_t *frv)
{
    const char *data;
    apr_size_t len;
    apr_status_t rv;

    *frv = APR_SUCCESS;
    for (;;) {
        rv = req->body->read(req->body, &data, &len);
        if (APR_STATUS_IS_EOF(rv)) {
            return NULL;
        }
        if (APR_STATUS_IS_EAGAIN(rv)) {
            continue;                   /* idle tick: the glue times out */
        }
        if (APR_SUCCESS != rv) {
            return rs_error_make(req->pool, APR_STATUS_IS_TIMEUP(rv)
                                 ? RS_ERR_TIMEOUT : RS_ERR_BODY_READ, rv,
                                 NULL);
        }
        if (len && APR_SUCCESS != (*frv = feed(ctx, data, len))) {
            return NULL;
        }
    }
}

static apr_status_t mp_feed(void *ctx, const char *data, apr_size_t len)
{
    return rs_mp_feed(ctx, data, len);
}

static rs_error_t *read_multipart(rs_req_t *req, rs_form_t *f)
{
    intake_t in;
    const char *boundary;
    rs_mp_t *mp;
    rs_error_t *err;
    apr_status_t rv;

    memset(&in, 0, sizeof(in));
    in.req = req;
    in.form = f;
    in.max_file = rs_form_max_file(req->area);
    in.field = apr_palloc(req->pool, RS_FORM_MAX_FIELD);
    f->fields = apr_table_make(req->pool, 8);
    if (APR_SUCCESS != rs_mp_boundary(req->pool, apr_table_get(req->in,
                                      "Content-Type"), &boundary)
        || APR_SUCCESS != rs_mp_create(&mp, boundary, RS_FORM_MAX_PARTS,
                                       &intake_cbs, &in, req->pool)) {
        return rs_error_make(req->pool, RS_ERR_BAD_REQUEST, 0,
                             "invalid multipart boundary");
    }
    if ((err = pump(req, mp_feed, mp, &rv))) {
        return err;
    }
    if (APR_SUCCESS == rv) {
        rv = rs_mp_finish(mp);
    }
    if (in.err) {
        return in.err;
    }
    return APR_SUCCESS == rv ? NULL : rs_error_make(req->pool,
           RS_ERR_BAD_REQUEST, rv, APR_INCOMPLETE == rv
           ? "the multipart body is truncated" : "malformed multipart body");
}

typedef struct jbuf_t {
    char *data;
    apr_size_t len;
} jbuf_t;

static apr_status_t json_feed(void *ctx, const char *data, apr_size_t len)
{
    jbuf_t *b = ctx;

    if (b->len + len > RS_FORM_MAX_JSON) {
        return APR_ENOSPC;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return APR_SUCCESS;
}

static int json_depth(json_t *j, int depth)
{
    const char *key;
    json_t *v;
    size_t i;
    int d, max = depth;

    if (depth > RS_FORM_MAX_DEPTH) {
        return depth;
    }
    if (json_is_array(j)) {
        json_array_foreach(j, i, v) {
            d = json_depth(v, depth + 1);
            max = d > max ? d : max;
        }
    }
    else if (json_is_object(j)) {
        json_object_foreach(j, key, v) {
            d = json_depth(v, depth + 1);
            max = d > max ? d : max;
        }
    }
    return max;
}

static apr_status_t json_free(void *j)
{
    json_decref(j);
    return APR_SUCCESS;
}

static rs_error_t *read_json(rs_req_t *req, rs_form_t *f)
{
    jbuf_t b = { NULL, 0 };
    json_error_t je;
    json_t *j;
    rs_error_t *err;
    apr_status_t rv;

    if (req->content_length > RS_FORM_MAX_JSON) {
        return rs_error_make(req->pool, RS_ERR_SIZE_EXCEEDED, 0,
                             "request body too large");
    }
    b.data = apr_palloc(req->pool, RS_FORM_MAX_JSON);
    if ((err = pump(req, json_feed, &b, &rv))) {
        return err;
    }
    if (APR_SUCCESS != rv) {
        return rs_error_make(req->pool, RS_ERR_SIZE_EXCEEDED, 0,
                             "request body too large");
    }
    j = json_loadb(b.data, b.len, JSON_REJECT_DUPLICATES, &je);
    if (!j) {
        return rs_error_make(req->pool, RS_ERR_BAD_REQUEST, 0,
                             "the body is not valid JSON");
    }
    apr_pool_cleanup_register(req->pool, j, json_free, apr_pool_cleanup_null);
    if (json_depth(j, 1) > RS_FORM_MAX_DEPTH) {
        return rs_error_make(req->pool, RS_ERR_BAD_REQUEST, 0,
                             "the JSON body is nested too deeply");
    }
    f->json = j;
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* dispatch                                                                  */

/* err in the format of the front end the request is recognisably for
 * (form_error), else the shared text/plain answer. */
static void form_failed(rs_req_t *req, const rs_form_t *f, rs_error_t *err)
{
    int i;

    for (i = 0; rs_protos[i]; i++) {
        const rs_proto_t *fe = rs_protos[i];
        if ((req->area->protocols & (1u << fe->id)) && fe->form_error
            && fe->form_error(req, f, err)) {
            return;
        }
    }
    rs_proto_error(req, err);
}

void rs_form_handle(rs_req_t *req)
{
    rs_form_t *f = apr_pcalloc(req->pool, sizeof(*f));
    const char *ct = apr_table_get(req->in, "Content-Type");
    rs_error_t *err;
    int i;

    err = type_is(ct, "multipart/form-data") ? read_multipart(req, f)
          : read_json(req, f);
    for (i = 0; !err && rs_protos[i]; i++) {
        const rs_proto_t *fe = rs_protos[i];
        if ((req->area->protocols & (1u << fe->id)) && fe->match_form
            && fe->match_form(req, f)) {
            fe->handle_form(req, f);
            break;
        }
    }
    if (!err && !rs_protos[i]) {
        err = rs_error_make(req->pool, RS_ERR_BAD_REQUEST, 0,
                            "not an upload request of this area");
    }
    if (err) {
        form_failed(req, f, err);
    }
    remove_spool(f);                    /* before the answer goes out */
    f->file_path = NULL;
}

rs_error_t *rs_form_upload_of(rs_req_t *req, const char *key,
                              rs_proto_id_t proto, const char *filename,
                              rs_upload_t **pu)
{
    rs_upload_t *u;
    rs_error_t *err = rs_engine_find_key(req->engine, req->area, req->user,
                                         proto, key, req->pool, pu);

    if (!err && RS_STATE_ACTIVE == (*pu)->state) {
        return NULL;
    }
    if (err && RS_ERR_NOT_FOUND != err->code) {
        return err;
    }
    u = rs_upload_make(req->pool, NULL);
    u->proto = proto;
    u->flags = RS_UF_CHUNKED | RS_UF_DEFER_LENGTH;
    u->owner = req->user;
    u->client_key = key;
    u->filename = filename;
    *pu = u;
    return rs_engine_create(req->engine, req->area, u, req->pool);
}
