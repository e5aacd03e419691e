/* Licensed under the Apache License, Version 2.0. */
/*
 * tus 1.0.0 front end: core protocol plus every extension (creation,
 * creation-with-upload, creation-defer-length, expiration, checksum,
 * checksum-trailer, termination, concatenation, concatenation-unfinished).
 * Where the spec is loose we follow the recommendations of
 * protocols.md section 1.6 (409 mismatch, 415 content type, 412 with
 * Tus-Version, 410 for terminated/expired, 413 beyond the length).
 */

#define _GNU_SOURCE 1
#include <string.h>
#include <apr_strings.h>
#include <apr_lib.h>

#include "rs_proto.h"
#include "rs_meta.h"
#include "rs_hash.h"
#include "rs_util.h"
#include "rs_log.h"

#define TUS_VERSION "1.0.0"
#define TUS_CT "application/offset+octet-stream"
#define TUS_EXT_BASE "creation,creation-with-upload,creation-defer-length," \
    "checksum,checksum-trailer,termination,concatenation," \
    "concatenation-unfinished"

static const char *const tus_headers[] = {
    "Upload-Length", "Upload-Offset", "Upload-Defer-Length",
    "Upload-Metadata", "Upload-Concat", "Upload-Checksum", NULL
};

static int tus_match(rs_req_t *req)
{
    int i;

    if (apr_table_get(req->in, "Tus-Resumable")
        || !strcmp(req->method, "OPTIONS")) {
        return 1;
    }
    for (i = 0; tus_headers[i]; i++) {
        if (apr_table_get(req->in, tus_headers[i])) {
            return 1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* helpers                                                                   */

static void set_off(rs_req_t *req, const char *name, apr_off_t v)
{
    apr_table_setn(req->out, name, apr_off_t_toa(req->pool, v));
}

static void set_expires(rs_req_t *req, const rs_upload_t *u)
{
    if (u->expires && (RS_STATE_COMPLETE != u->state
                       || (u->flags & RS_UF_PARTIAL))) {
        apr_table_setn(req->out, "Upload-Expires",
                       rs_util_http_date(req->pool, u->expires));
    }
}

static void fail(rs_req_t *req, rs_errcode_t code, const char *detail)
{
    rs_proto_error(req, rs_error_make(req->pool, code, 0, "%s", detail));
}

/* Media type of the body equals TUS_CT (parameters ignored). */
static int content_type_ok(rs_req_t *req)
{
    const char *ct = apr_table_get(req->in, "Content-Type");
    apr_size_t n = strlen(TUS_CT);

    return ct && !strncasecmp(ct, TUS_CT, n)
           && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
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

static const char *upload_url(rs_req_t *req, const char *id)
{
    return apr_pstrcat(req->pool, req->base_url, "/", id, NULL);
}

/* ------------------------------------------------------------------------ */
/* OPTIONS                                                                   */

static void tus_discover(rs_req_t *req)
{
    const rs_area_t *a = req->area;

    apr_table_setn(req->out, "Tus-Version", TUS_VERSION);
    apr_table_setn(req->out, "Tus-Resumable", TUS_VERSION);
    apr_table_setn(req->out, "Tus-Extension", a->expire > 0
                   ? TUS_EXT_BASE ",expiration" : TUS_EXT_BASE);
    apr_table_setn(req->out, "Tus-Checksum-Algorithm", RS_HASH_TUS_ALGORITHMS);
    if (a->max_size > 0) {
        set_off(req, "Tus-Max-Size", a->max_size);
    }
}

static void tus_options(rs_req_t *req)
{
    tus_discover(req);
    req->status = 200;
}

/* ------------------------------------------------------------------------ */
/* creation                                                                  */

/* Upload-Length / Upload-Defer-Length: exactly one of them. */
static int parse_length(rs_req_t *req, rs_upload_t *u)
{
    const char *defer = apr_table_get(req->in, "Upload-Defer-Length");
    apr_off_t len;
    int has = header_off(req, "Upload-Length", &len);

    if (has < 0) {
        fail(req, RS_ERR_INVALID_LENGTH, "invalid Upload-Length");
        return 0;
    }
    if (defer && strcmp(defer, "1")) {
        fail(req, RS_ERR_INVALID_LENGTH, "Upload-Defer-Length must be 1");
        return 0;
    }
    if ((has > 0) == (defer != NULL)) {
        fail(req, RS_ERR_AMBIGUOUS_LENGTH, "send either Upload-Length or "
             "Upload-Defer-Length: 1");
        return 0;
    }
    u->length = has > 0 ? len : -1;
    u->flags |= defer ? RS_UF_DEFER_LENGTH : 0;
    return 1;
}

static const char *meta_any(const apr_array_header_t *m, const char *a,
                            const char *b)
{
    const char *v = rs_meta_get(m, a);

    return v ? v : rs_meta_get(m, b);
}

/* A media type we are willing to serve back: token "/" token. */
static int media_type_ok(const char *t)
{
    const char *slash = t ? strchr(t, '/') : NULL;
    const char *c;

    if (!slash || slash == t || !slash[1] || strlen(t) > 127) {
        return 0;
    }
    for (c = t; *c && *c != ';'; c++) {
        if (!apr_isalnum(*c) && !strchr("/!#$&^_.+-", *c)) {
            return 0;
        }
    }
    return 1;
}

static int parse_metadata(rs_req_t *req, rs_upload_t *u)
{
    const char *hdr = apr_table_get(req->in, "Upload-Metadata");
    apr_array_header_t *m;
    const char *type;

    if (!hdr || !*hdr) {
        return 1;                   /* absent or empty: no metadata */
    }
    if (APR_SUCCESS != rs_meta_parse(req->pool, hdr, &m)
        || !rs_util_header_safe(hdr)) {
        fail(req, RS_ERR_INVALID_METADATA, "malformed Upload-Metadata");
        return 0;
    }
    u->metadata = hdr;
    u->filename = meta_any(m, "filename", "name");
    type = meta_any(m, "filetype", "type");
    u->filetype = media_type_ok(type) ? type : NULL;
    return 1;
}

/* One URL of Upload-Concat: absolute or absolute-path, in this collection. */
static const char *concat_id(rs_req_t *req, const char *url)
{
    const char *path = url, *slash;

    if (!strncasecmp(url, "http://", 7) || !strncasecmp(url, "https://", 8)) {
        path = strchr(strstr(url, "//") + 2, '/');
        if (!path) {
            return NULL;
        }
    }
    slash = strrchr(path, '/');
    if (!slash || strncmp(path, req->base_path, slash - path)
        || strlen(req->base_path) != (apr_size_t)(slash - path)
        || !rs_util_id_valid(slash + 1)) {
        return NULL;
    }
    return slash + 1;
}

/* The URLs of a final: each in this collection, at most
 * RS_ENGINE_MAX_PARTS (the engine refuses duplicates). 0: refused. */
static int parse_final(rs_req_t *req, rs_upload_t *u, const char *list)
{
    char *copy = apr_pstrdup(req->pool, list), *tok, *last;

    u->parts = apr_array_make(req->pool, 4, sizeof(const char *));
    for (tok = apr_strtok(copy, " ", &last); tok;
         tok = apr_strtok(NULL, " ", &last)) {
        const char *id = concat_id(req, tok);
        if (!id) {
            fail(req, RS_ERR_INVALID_CONCAT, "Upload-Concat names an upload "
                 "outside this collection");
            return 0;
        }
        if (u->parts->nelts >= RS_ENGINE_MAX_PARTS) {
            fail(req, RS_ERR_INVALID_CONCAT, apr_psprintf(req->pool,
                 "Upload-Concat lists more than %d uploads",
                 RS_ENGINE_MAX_PARTS));
            return 0;
        }
        APR_ARRAY_PUSH(u->parts, const char *) = id;
    }
    if (u->parts->nelts < 1) {
        fail(req, RS_ERR_INVALID_CONCAT, "Upload-Concat final lists no upload");
        return 0;
    }
    return 1;
}

/* Upload-Concat: 0 refused (response set), 1 ok. */
static int parse_concat(rs_req_t *req, rs_upload_t *u)
{
    const char *c = apr_table_get(req->in, "Upload-Concat");

    if (!c) {
        return 1;
    }
    if (!strcmp(c, "partial")) {
        u->flags |= RS_UF_PARTIAL;
        return 1;
    }
    if (strncmp(c, "final;", 6)) {
        fail(req, RS_ERR_INVALID_CONCAT, "Upload-Concat must be partial or "
             "final;<urls>");
        return 0;
    }
    u->flags |= RS_UF_FINAL;
    u->concat = c;
    return parse_final(req, u, c + 6);
}

static void created(rs_req_t *req, const rs_upload_t *u, int with_offset)
{
    req->status = 201;
    apr_table_setn(req->out, "Location", upload_url(req, u->id));
    if (with_offset) {
        set_off(req, "Upload-Offset", u->offset);
    }
    set_expires(req, u);
}

static void create_final(rs_req_t *req, rs_upload_t *u)
{
    rs_error_t *err;

    if (apr_table_get(req->in, "Upload-Length")
        || apr_table_get(req->in, "Upload-Defer-Length")) {
        fail(req, RS_ERR_INVALID_CONCAT, "a final upload takes no length");
        return;
    }
    if (req->content_length) {
        fail(req, RS_ERR_MODIFY_FINAL, "a final upload takes no body");
        return;
    }
    if ((err = rs_engine_concat(req->engine, req->area, u, 1, req->pool))) {
        rs_proto_error(req, err);
        return;
    }
    created(req, u, 0);
}

static int parse_checksum(rs_req_t *req, rs_append_t *ap);

/* Append the request body to u (checksum from header or trailer).
 * 1 on success; else the error response is set. */
static int append_body(rs_req_t *req, rs_upload_t *u, rs_append_t *ap)
{
    rs_append_result_t res;
    rs_error_t *err;

    if (!parse_checksum(req, ap)) {
        return 0;
    }
    err = rs_engine_append(req->engine, req->area, u, ap, req->body,
                           req->pool, &res);
    if (err) {
        rs_proto_error(req, err);
    }
    return err == NULL;
}

/* creation-with-upload: the POST body is the first append, stored with
 * the record in one write where the engine can (rs_engine_create_append).
 * A bad checksum header refuses the append of a created upload, as
 * before. */
static void create_with_body(rs_req_t *req, rs_upload_t *u)
{
    rs_append_t ap = { 0, -1 };
    rs_append_result_t res;
    rs_error_t *err;
    int stored;

    if (!parse_checksum(req, &ap)) {
        if ((err = rs_engine_create(req->engine, req->area, u, req->pool))) {
            rs_proto_error(req, err);
            return;
        }
        apr_table_setn(req->out, "Location", upload_url(req, u->id));
        return;
    }
    err = rs_engine_create_append(req->engine, req->area, u, &ap, req->body,
                                  req->pool, &res, &stored);
    if (err) {
        rs_proto_error(req, err);
        if (stored) {
            apr_table_setn(req->out, "Location", upload_url(req, u->id));
        }
        return;
    }
    created(req, u, 1);
}

static void tus_create(rs_req_t *req)
{
    rs_upload_t *u = rs_upload_make(req->pool, NULL);
    rs_error_t *err;

    u->proto = RS_PROTO_TUS;
    u->owner = req->user;
    if (!parse_concat(req, u) || !parse_metadata(req, u)) {
        return;
    }
    if (u->flags & RS_UF_FINAL) {
        create_final(req, u);
        return;
    }
    if (!parse_length(req, u)) {
        return;
    }
    if (req->content_length && !content_type_ok(req)) {
        fail(req, RS_ERR_UNSUPPORTED_TYPE, "a creation body needs "
             "Content-Type: " TUS_CT);
        return;
    }
    if (req->content_length) {
        create_with_body(req, u);
        return;
    }
    if ((err = rs_engine_create(req->engine, req->area, u, req->pool))) {
        rs_proto_error(req, err);
        return;
    }
    created(req, u, 0);
}

/* ------------------------------------------------------------------------ */
/* HEAD                                                                      */

static void tus_head(rs_req_t *req, rs_upload_t *u)
{
    int final = (u->flags & RS_UF_FINAL) != 0;

    req->status = 200;
    if (!final || RS_STATE_COMPLETE == u->state) {
        set_off(req, "Upload-Offset", RS_STATE_COMPLETE == u->state
                ? u->length : u->offset);
    }
    if (u->length >= 0) {
        set_off(req, "Upload-Length", u->length);
    }
    else if (!final) {
        apr_table_setn(req->out, "Upload-Defer-Length", "1");
    }
    if (u->metadata) {
        apr_table_setn(req->out, "Upload-Metadata", u->metadata);
    }
    if (final && u->concat) {
        apr_table_setn(req->out, "Upload-Concat", u->concat);
    }
    else if (u->flags & RS_UF_PARTIAL) {
        apr_table_setn(req->out, "Upload-Concat", "partial");
    }
    set_expires(req, u);
}

/* ------------------------------------------------------------------------ */
/* PATCH                                                                     */

static int trailer_announced(rs_req_t *req)
{
    const char *t = apr_table_get(req->in, "Trailer");

    return t && strcasestr(t, "Upload-Checksum") != NULL;
}

/* Upload-Checksum header, or the announcement of it as a trailer. */
static int parse_checksum(rs_req_t *req, rs_append_t *ap)
{
    const char *hdr = apr_table_get(req->in, "Upload-Checksum");
    apr_status_t rv;

    if (!hdr) {
        ap->checksum_trailer = trailer_announced(req);
        ap->trailer_name = "Upload-Checksum";
        return 1;
    }
    rv = rs_hash_parse_checksum(req->pool, hdr, &ap->checksum_alg,
                                &ap->checksum, &ap->checksum_len);
    if (APR_STATUS_IS_ENOTIMPL(rv)) {
        fail(req, RS_ERR_CHECKSUM_ALGORITHM, "unsupported checksum algorithm");
        return 0;
    }
    if (APR_SUCCESS != rv) {
        fail(req, RS_ERR_INVALID_CHECKSUM, "malformed Upload-Checksum");
        return 0;
    }
    return 1;
}

static void tus_patch(rs_req_t *req, rs_upload_t *u)
{
    rs_append_t ap = { 0, -1 };

    if (!content_type_ok(req)) {
        fail(req, RS_ERR_UNSUPPORTED_TYPE, "PATCH needs Content-Type: " TUS_CT);
        return;
    }
    if (header_off(req, "Upload-Offset", &ap.offset) <= 0) {
        fail(req, RS_ERR_INVALID_OFFSET, "missing or invalid Upload-Offset");
        return;
    }
    if (header_off(req, "Upload-Length", &ap.declare_length) < 0) {
        fail(req, RS_ERR_INVALID_LENGTH, "invalid Upload-Length");
        return;
    }
    if (!append_body(req, u, &ap)) {
        return;
    }
    req->status = 204;
    set_off(req, "Upload-Offset", RS_STATE_COMPLETE == u->state
            ? u->length : u->offset);
    set_expires(req, u);
}

/* ------------------------------------------------------------------------ */
/* dispatch                                                                  */

static const char *effective_method(rs_req_t *req)
{
    const char *o = apr_table_get(req->in, "X-HTTP-Method-Override");

    if (o && !strcmp(req->method, "POST")
        && (!strcmp(o, "PATCH") || !strcmp(o, "DELETE")
            || !strcmp(o, "HEAD"))) {
        return o;
    }
    return req->method;
}

static void on_upload(rs_req_t *req, const char *method)
{
    rs_upload_t *u;
    rs_error_t *err;

    if (strcmp(method, "HEAD") && strcmp(method, "PATCH")
        && strcmp(method, "DELETE")) {
        fail(req, RS_ERR_METHOD, "method not allowed on an upload");
        apr_table_setn(req->out, "Allow", "HEAD, PATCH, DELETE, GET, OPTIONS");
        return;
    }
    err = rs_engine_open(req->engine, req->area, req->id, req->user,
                         req->pool, &u);
    if (!err && RS_PROTO_TUS != u->proto) {
        err = rs_error_make(req->pool, RS_ERR_WRONG_PROTOCOL, 0, "upload %s "
                            "was not created with tus; use its own protocol",
                            u->id);
    }
    if (err) {
        rs_proto_error(req, err);
    }
    else if (!strcmp(method, "HEAD")) {
        tus_head(req, u);
    }
    else if (!strcmp(method, "PATCH")) {
        tus_patch(req, u);
    }
    else if ((err = rs_engine_terminate(req->engine, req->area, u,
                                        req->pool))) {
        rs_proto_error(req, err);
    }
    else {
        req->status = 204;
    }
}

static int version_ok(rs_req_t *req, const char *method)
{
    const char *v = apr_table_get(req->in, "Tus-Resumable");

    if ((v && !strcmp(v, TUS_VERSION)) || !strcmp(method, "OPTIONS")) {
        return 1;
    }
    rs_log_perror(RS_LOG_MARK, RS_LOG_DEBUG, 0, req->pool, RS_LOGNO(05001)
                  "tus: unsupported Tus-Resumable '%s'", v ? v : "(none)");
    rs_proto_error(req, rs_error_make(req->pool, RS_ERR_PRECONDITION, 0,
                   "Tus-Resumable must be " TUS_VERSION));
    apr_table_setn(req->out, "Tus-Version", TUS_VERSION);
    return 0;
}

static void tus_handle(rs_req_t *req)
{
    const char *method = effective_method(req);

    apr_table_setn(req->out, "Tus-Resumable", TUS_VERSION);
    apr_table_setn(req->out, "Cache-Control", "no-store");
    if (!version_ok(req, method)) {
        return;
    }
    if (!strcmp(method, "OPTIONS")) {
        tus_options(req);
    }
    else if (req->id) {
        on_upload(req, method);
    }
    else if (req->at_base && !strcmp(method, "POST")) {
        tus_create(req);
    }
    else if (req->at_base) {
        fail(req, RS_ERR_METHOD, "create uploads with POST");
        apr_table_setn(req->out, "Allow", "POST, OPTIONS");
    }
    else {
        fail(req, RS_ERR_NOT_FOUND, "no upload at this URL");
    }
}

const rs_proto_t rs_proto_tus = {
    "tus", RS_PROTO_TUS, tus_match, tus_handle, tus_discover
};
