/* Licensed under the Apache License, Version 2.0. */
/*
 * "md5" front end: the MD5 handshake protocol of design document 002.
 * Both requests arrive through the form intake (rs_form.h); match() takes
 * only what is md5's but no form (wrong method, body or type) to refuse it:
 *
 *   handshake  JSON {fileId, ext, chunkIds} (the seed posts it to
 *              /api/upload/handshake as application/json).
 *              -> {code:0, msg:'', data:[chunk ids still needed]}, or
 *              data: the file's URL when the requesting user already
 *              stored content with MD5 fileId in the area (instant upload;
 *              see "URL of stored content" below).
 *   chunk      multipart: file part "file", fields "chunkId", "fileId"
 *              (the seed posts to /api/upload).
 *              -> {code:0, msg:'', data:[chunk ids still needed]}
 *
 * Ids: fileId is the file's MD5 (32 hex); the seed client's chunk ids are
 * the chunk's MD5 followed by the chunk's index ("<32 hex><index>"). Each
 * chunk's bytes must have the MD5 its id names, and its id must be the
 * one the handshake listed at that index; the whole file's MD5 is checked
 * against fileId before it is published as <fileId><ext>. The chunk list
 * is kept in the record's metadata field (32 hex per chunk, in order), so
 * at most MD5_MAX_CHUNKS chunks.
 *
 * Errors keep the seed's envelope {code, msg, data:null} with code = the
 * HTTP status, for every request recognisably md5's: a JSON object with
 * fileId or chunkIds, a form with fileId or chunkId, and anything (a form
 * that cannot be read, no form, a wrong method) sent to a URI whose last
 * segment is "handshake" or to an area where md5 is the only protocol
 * (seeds.conf's /api/upload). Each failure is logged (RS04020).
 *
 * URL of stored content (instant upload): the content index (per owner,
 * rs_engine_content_find) names the owner's upload with that MD5, and the
 * answer is that upload's URL in the area, "<area URL>/<id>" (the request
 * URI, less a last "handshake" segment, with the upload id appended, as
 * every front end builds upload URLs), which the area serves to its owner
 * only. It depends on nothing but the owner's own uploads (another user's
 * files never change it), is the same on every handshake (the index keeps
 * the first live upload of a content), and writes no file (a handshake
 * used to link "<fileId> (n)<ext>" each time). Where httpd serves the area's
 * directory itself (ResumableFilesURL, e.g. conf/seeds.conf's Alias
 * /upload/, where the seed client builds "/upload/<fileId><ext>" itself),
 * the answer is "<origin><ResumableFilesURL><published name>" instead.
 */

#include <stdlib.h>
#include <apr_strings.h>
#include <apr_lib.h>
#include <jansson.h>

#include "rs_proto.h"
#include "rs_form.h"
#include "rs_hash.h"
#include "rs_util.h"
#include "rs_log.h"

#define MD5_HEX 32
#define MD5_MAX_CHUNKS 10000
#define MD5_MAX_EXT 16
#define MD5_SHAKE "handshake"     /* the seed's handshake path segment */

/* ------------------------------------------------------------------------ */
/* answers                                                                   */

static void answer(rs_req_t *req, int status, int code, const char *msg,
                   json_t *data)
{
    json_t *o = json_pack("{s:i, s:s, s:o}", "code", code, "msg", msg,
                          "data", data ? data : json_null());
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;

    req->status = status;
    req->content_type = "application/json; charset=utf-8";
    req->text = s ? apr_pstrdup(req->pool, s) : "{}";
    free(s);
    json_decref(o);
}

static void fail_err(rs_req_t *req, rs_error_t *err)
{
    int status = RS_ERR_CHECKSUM_MISMATCH == err->code ? 400 : err->status;

    req->error = err;
    answer(req, status, status, err->detail ? err->detail : err->name, NULL);
}

static void fail(rs_req_t *req, rs_errcode_t code, const char *msg)
{
    fail_err(req, rs_error_make(req->pool, code, 0, "%s", msg));
}

/* Percent-encode a path segment (RFC 3986 unreserved kept). */
static const char *escape_segment(apr_pool_t *p, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = apr_palloc(p, 3 * strlen(s) + 1), *o = out;

    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (apr_isalnum(c) || strchr("-._~", c)) {
            *o++ = (char)c;
        }
        else {
            *o++ = '%';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    *o = '\0';
    return out;
}

/* "scheme://host" of the request (base_url without its path). */
static const char *origin(rs_req_t *req)
{
    const char *u = req->base_url, *host = strstr(u, "://");
    const char *slash = host ? strchr(host + 3, '/') : NULL;

    return slash ? apr_pstrndup(req->pool, u, slash - u) : u;
}

static int at_handshake(const rs_req_t *req);

/* URL of the area the request reached: the request URI (no trailing
 * slash), without a last "handshake" segment: the seed posts its
 * handshake to <x>/handshake and its chunks to <x>, so <x> is the area. */
static const char *area_url(rs_req_t *req)
{
    apr_size_t n = strlen(req->base_url);

    return at_handshake(req) ? apr_pstrndup(req->pool, req->base_url,
                                            n - strlen("/" MD5_SHAKE))
           : req->base_url;
}

/* The URL at which the owner fetches stored upload u (see the design
 * note): ResumableFilesURL + its published name, else its upload URL. */
static const char *stored_url(rs_req_t *req, const rs_upload_t *u)
{
    const char *name = strrchr(u->path, '/');

    if (req->area->files_url) {
        return apr_pstrcat(req->pool, origin(req), req->area->files_url,
                           escape_segment(req->pool,
                                          name ? name + 1 : u->path), NULL);
    }
    return apr_pstrcat(req->pool, area_url(req), "/", u->id, NULL);
}

/* ------------------------------------------------------------------------ */
/* ids                                                                       */

static int is_md5(const char *s)
{
    int i;

    for (i = 0; i < MD5_HEX; i++) {
        if (!s[i] || !apr_isxdigit(s[i]) || apr_isupper(s[i])) {
            return 0;
        }
    }
    return 1;
}

static int file_id_ok(const char *s)
{
    return s && strlen(s) == MD5_HEX && is_md5(s);
}

/* "<32 hex><decimal index>" -> index, or -1. */
static int chunk_index(const char *id)
{
    const char *d;
    int n = 0;

    if (!id || strlen(id) < MD5_HEX + 1 || strlen(id) > MD5_HEX + 6
        || !is_md5(id)) {
        return -1;
    }
    for (d = id + MD5_HEX; *d; d++) {
        if (!apr_isdigit(*d) || (d == id + MD5_HEX && *d == '0' && d[1])) {
            return -1;
        }
        n = n * 10 + (*d - '0');
    }
    return n;
}

static int ext_ok(const char *ext)
{
    const char *c;

    if (!ext || !*ext) {
        return ext != NULL;
    }
    if (*ext != '.' || strlen(ext) > MD5_MAX_EXT || !ext[1]) {
        return 0;
    }
    for (c = ext + 1; *c; c++) {
        if (!apr_isalnum(*c)) {
            return 0;
        }
    }
    return 1;
}

static const char *client_key(apr_pool_t *p, const char *file_id)
{
    return apr_pstrcat(p, "md5:", file_id, NULL);
}

/* The ids still needed by u: "<md5 of chunk i><i>" for each missing i. */
static json_t *needed(const rs_upload_t *u)
{
    json_t *a = json_array();
    int i, n = u->metadata ? (int)(strlen(u->metadata) / MD5_HEX) : 0;
    char id[MD5_HEX + 16];

    for (i = 0; a && i < n; i++) {
        if (RS_STATE_COMPLETE != u->state && !rs_upload_chunk_has(u, i)) {
            apr_snprintf(id, sizeof(id), "%.*s%d", MD5_HEX,
                         u->metadata + (apr_size_t)i * MD5_HEX, i);
            json_array_append_new(a, json_string(id));
        }
    }
    return a;
}

/* ------------------------------------------------------------------------ */
/* handshake                                                                 */

/* chunkIds -> the concatenated chunk MD5s, or NULL when malformed. */
static const char *chunk_list(apr_pool_t *p, json_t *ids)
{
    size_t i, n = json_array_size(ids);
    char *list;

    if (!json_is_array(ids) || n < 1 || n > MD5_MAX_CHUNKS) {
        return NULL;
    }
    list = apr_palloc(p, n * MD5_HEX + 1);
    for (i = 0; i < n; i++) {
        const char *id = json_string_value(json_array_get(ids, i));
        if (chunk_index(id) != (int)i) {
            return NULL;
        }
        memcpy(list + i * MD5_HEX, id, MD5_HEX);
    }
    list[n * MD5_HEX] = '\0';
    return list;
}

/* Content the owner already stored: answer its URL. Nothing is written:
 * the same URL on every handshake, whatever other users hold. */
static int instant(rs_req_t *req, const char *file_id)
{
    rs_upload_t *u;

    if (rs_engine_content_find(req->engine, req->area, req->user, file_id,
                               req->pool, &u)) {
        return 0;
    }
    answer(req, 200, 0, "", json_string(stored_url(req, u)));
    return 1;
}

static rs_error_t *create(rs_req_t *req, const char *file_id, const char *ext,
                          const char *list, rs_upload_t **pu)
{
    rs_upload_t *u = rs_upload_make(req->pool, NULL);
    int n = (int)(strlen(list) / MD5_HEX);

    u->proto = RS_PROTO_MD5;
    u->flags = RS_UF_CHUNKED;
    u->owner = req->user;
    u->client_key = client_key(req->pool, file_id);
    u->filename = apr_pstrcat(req->pool, file_id, ext, NULL);
    u->metadata = list;
    u->chunk_count = n + 1;             /* a declared count: see rs_engine */
    u->chunk_map = apr_pcalloc(req->pool, (n + 1 + 7) / 8);
    *pu = u;
    return rs_engine_create(req->engine, req->area, u, req->pool);
}

static void handshake(rs_req_t *req, json_t *j)
{
    const char *file_id = json_string_value(json_object_get(j, "fileId"));
    const char *ext = json_string_value(json_object_get(j, "ext"));
    const char *list = chunk_list(req->pool, json_object_get(j, "chunkIds"));
    rs_upload_t *u;
    rs_error_t *err;

    if (!file_id_ok(file_id) || !ext_ok(ext) || !list) {
        fail(req, RS_ERR_BAD_REQUEST, "fileId (an MD5), ext and chunkIds "
             "(chunk MD5 + index) are required");
        return;
    }
    if (instant(req, file_id)) {
        return;
    }
    err = rs_engine_find_key(req->engine, req->area, req->user,
                             RS_PROTO_MD5, client_key(req->pool, file_id),
                             req->pool, &u);
    if (!err && RS_STATE_ACTIVE == u->state
        && (!u->metadata || strcmp(u->metadata, list))) {
        /* the client cut the file differently: start over */
        rs_engine_terminate(req->engine, req->area, u, req->pool);
    }
    if (!err && (RS_STATE_ACTIVE != u->state || !u->metadata
                 || strcmp(u->metadata, list))) {
        err = rs_error_make(req->pool, RS_ERR_NOT_FOUND, 0, NULL);
    }
    if (err && RS_ERR_NOT_FOUND == err->code) {
        err = create(req, file_id, ext, list, &u);
    }
    if (err) {
        fail_err(req, err);
        return;
    }
    answer(req, 200, 0, "", needed(u));
}

/* ------------------------------------------------------------------------ */
/* chunk                                                                     */

static int spool_md5_ok(rs_req_t *req, const rs_form_t *f, const char *id)
{
    unsigned char d[RS_HASH_MAX];
    apr_size_t n = 0;
    apr_file_t *fd;
    apr_status_t rv = apr_file_open(&fd, f->file_path, APR_FOPEN_READ
                                    | APR_FOPEN_BINARY, 0, req->pool);

    if (APR_SUCCESS == rv) {
        rv = rs_hash_file_range("md5", fd, 0, f->file_size, d, &n, req->pool);
        apr_file_close(fd);
    }
    return APR_SUCCESS == rv
           && !strncmp(rs_util_hex(req->pool, d, n), id, MD5_HEX);
}

static rs_error_t *check_chunk(rs_req_t *req, const rs_form_t *f,
                               const rs_upload_t *u, const char *chunk_id,
                               int index)
{
    int n = u->metadata ? (int)(strlen(u->metadata) / MD5_HEX) : 0;

    if (index < 0 || index >= n
        || strncmp(u->metadata + (apr_size_t)index * MD5_HEX, chunk_id,
                   MD5_HEX)) {
        return rs_error_make(req->pool, RS_ERR_BAD_REQUEST, 0, "chunkId %s "
                             "is not one of this file's chunks", chunk_id);
    }
    if (!spool_md5_ok(req, f, chunk_id)) {
        return rs_error_make(req->pool, RS_ERR_CHECKSUM_MISMATCH, 0, "the "
                             "chunk's MD5 does not match its chunkId");
    }
    return NULL;
}

static void chunk(rs_req_t *req, rs_form_t *f)
{
    const char *file_id = f->fields ? apr_table_get(f->fields, "fileId")
                          : NULL;
    const char *chunk_id = f->fields ? apr_table_get(f->fields, "chunkId")
                           : NULL;
    int index = chunk_index(chunk_id);
    rs_chunk_t c = { 0, 0, NULL, NULL };
    rs_upload_t *u = NULL;
    rs_error_t *err;

    if (!file_id_ok(file_id) || index < 0 || !f->file_path
        || !f->file_field || strcmp(f->file_field, "file")) {
        fail(req, RS_ERR_BAD_REQUEST, "a file part \"file\", fileId (an "
             "MD5) and chunkId (chunk MD5 + index) are required");
        return;
    }
    err = rs_engine_find_key(req->engine, req->area, req->user,
                             RS_PROTO_MD5, client_key(req->pool, file_id),
                             req->pool, &u);
    if (!err && RS_STATE_COMPLETE != u->state) {
        err = check_chunk(req, f, u, chunk_id, index);
    }
    if (!err) {
        c.index = index;
        c.spool = f->file_path;
        c.file_md5 = file_id;
        err = rs_engine_chunk_put(req->engine, req->area, u, &c, req->pool);
        f->file_path = NULL;
        if (err && RS_ERR_CHECKSUM_MISMATCH == err->code) {
            /* every chunk verified, the whole does not: fileId is wrong */
            rs_engine_terminate(req->engine, req->area, u, req->pool);
        }
    }
    if (err) {
        fail_err(req, err);
        return;
    }
    answer(req, 200, 0, "", needed(u));
}

/* ------------------------------------------------------------------------ */
/* front end                                                                 */

/* The URI's last segment is the seed's handshake path. */
static int at_handshake(const rs_req_t *req)
{
    const char *last = req->id || req->at_base ? NULL
                       : strrchr(req->base_path, '/');

    return last && !strcmp(last + 1, MD5_SHAKE);
}

/* md5 is the area's only protocol (seeds.conf's /api/upload). */
static int md5_only(const rs_req_t *req)
{
    return req->area->protocols
           == (req->area->protocols & (1u << RS_PROTO_MD5));
}

/* Any request here is md5's (see the design note). */
static int md5_place(const rs_req_t *req)
{
    return at_handshake(req) || md5_only(req);
}

/* Requests of md5's place that are not forms: POSTs the form intake does
 * not take (no body, another type), other methods at the handshake path
 * (elsewhere a GET is a download). */
static int md5_match(rs_req_t *req)
{
    if (!md5_place(req)) {
        return 0;
    }
    if (!strcmp(req->method, "POST")) {
        return !rs_form_wanted(req);
    }
    return strcmp(req->method, "OPTIONS") && at_handshake(req);
}

static void md5_handle(rs_req_t *req)
{
    if (strcmp(req->method, "POST")) {
        apr_table_setn(req->out, "Allow", "POST");
        fail(req, RS_ERR_METHOD, "the md5 protocol takes POST requests");
    }
    else if (!req->content_length) {
        fail(req, RS_ERR_BAD_REQUEST, "empty body: expected a JSON "
             "handshake or a multipart/form-data chunk");
    }
    else {
        fail(req, RS_ERR_UNSUPPORTED_TYPE, "expected a JSON handshake "
             "(application/json) or a multipart/form-data chunk");
    }
}

static int md5_match_form(rs_req_t *req, const rs_form_t *f)
{
    if (f->json) {
        return md5_place(req)
               || (json_is_object(f->json)
                   && (json_object_get(f->json, "fileId")
                       || json_object_get(f->json, "chunkIds")));
    }
    return md5_place(req)
           || (f->fields && (apr_table_get(f->fields, "chunkId")
                             || apr_table_get(f->fields, "fileId"))
               && !(apr_table_get(f->fields, "index")
                    && apr_table_get(f->fields, "name")));
}

static int md5_form_error(rs_req_t *req, const rs_form_t *f, rs_error_t *err)
{
    if (!md5_place(req) && !(f->fields && apr_table_get(f->fields,
                                                         "chunkId"))) {
        return 0;
    }
    fail_err(req, err);
    return 1;
}

static void md5_handle_form(rs_req_t *req, rs_form_t *f)
{
    if (f->json) {
        if (!json_is_object(f->json)) {
            fail(req, RS_ERR_BAD_REQUEST, "the handshake is a JSON object "
                 "{fileId, ext, chunkIds}");
            return;
        }
        handshake(req, f->json);
    }
    else {
        chunk(req, f);
    }
}

/* Forms through the form intake; match() only for what is not a form. */
const rs_proto_t rs_proto_md5 = {
    "md5", RS_PROTO_MD5, md5_match, md5_handle, NULL, 1,
    md5_match_form, md5_handle_form, md5_form_error
};
