/* Licensed under the Apache License, Version 2.0. */
/*
 * IETF "Resumable Uploads for HTTP" front end (draft-ietf-httpbis-
 * resumable-upload), interop versions 3 to 8 (drafts -01 to -11). A request
 * is ours when it carries Upload-Draft-Interop-Version; an unknown version
 * gets a 400 naming the versions we speak (never tus' 412).
 *
 * Every difference between the interop versions lives in the `versions`
 * table below and is read from there (protocols.md section 2):
 *
 *   ver draft    completion field     append media type  Upload-Limit
 *   3   -01      Upload-Incomplete    any                none
 *   4   -02      Upload-Complete      any                none
 *   5   -03      Upload-Complete      any                none
 *   6   -04/-05  Upload-Complete      partial-upload     "expires"
 *   7   -06..-08 Upload-Complete      partial-upload     "max-age"
 *   8   -09..-11 Upload-Complete      partial-upload     "max-age"
 *
 * Problem details (RFC 9457): mismatching-upload-offset and completed-upload
 * from 6 on, inconsistent-upload-length from 7 on; 8 follows -10/-11 for
 * appends to a completed upload (non-empty: inconsistent length; empty:
 * 410). Versions up to 6 refuse upload fields on HEAD/DELETE and answer
 * 404 for an inactive upload (-05); 7 and 8 answer 410.
 *
 * Creation: POST, PUT or PATCH on the collection with the completion field;
 * a 104 (Upload Resumption Supported) with Location (and Upload-Limit)
 * goes out before the body is read. Representation metadata: filename
 * from Content-Disposition (filename* first), type from Content-Type; tus
 * style Upload-Metadata (tus-js-client sends it in its IETF modes) is the
 * fallback. Digests (RFC 9530): Content-Digest is verified by the engine
 * before the bytes count; Repr-Digest (creation or completing request) is
 * verified while the completing request streams (rs_engine_digest.h) and
 * the finished upload records its digest.
 */

#include <string.h>
#include <apr_strings.h>
#include <stdlib.h>
#include <jansson.h>
#include <apr_lib.h>

#include "rs_proto.h"
#include "rs_sf.h"
#include "rs_meta.h"
#include "rs_hash.h"
#include "rs_util.h"
#include "rs_log.h"
#include "rs_data.h"
#include "rs_engine_digest.h"

#define INTEROP_HDR "Upload-Draft-Interop-Version"
#define PARTIAL_CT "application/partial-upload"
#define PROBLEM_NS "https://iana.org/assignments/http-problem-types#"
#define SUPPORTED "3, 4, 5, 6, 7, 8"

typedef struct ietf_ver_t {
    int num;
    int incomplete;        /* Upload-Incomplete (inverse boolean) */
    int strict;            /* HEAD/DELETE refuse upload fields; 404 inactive;
                              Upload-Complete optional on append (= ?1) */
    int partial_type;      /* append needs application/partial-upload */
    int limits;            /* 0 none, 1 with "expires", 2 with "max-age" */
    int problems;          /* 0 none, 1 offset+completed, 2 +length, 3 -10 */
    int ack_limit;         /* append acks carry Upload-Limit */
} ietf_ver_t;

static const ietf_ver_t versions[] = {
    { 3, 1, 1, 0, 0, 0, 0 },
    { 4, 0, 1, 0, 0, 0, 0 },
    { 5, 0, 1, 0, 0, 0, 0 },
    { 6, 0, 1, 1, 1, 1, 1 },
    { 7, 0, 0, 1, 2, 2, 0 },
    { 8, 0, 0, 1, 2, 3, 0 },
};

/* One request. */
typedef struct ietf_t {
    rs_req_t *req;
    const ietf_ver_t *v;
    int complete;                /* -1 absent, 0, 1 */
    apr_off_t offset;            /* -1 absent */
    apr_off_t length;            /* -1 absent */
    const char *repr_alg;        /* Repr-Digest of the request */
    const unsigned char *repr;
    apr_size_t repr_len;
    const char *want_alg;        /* Want-Repr-Digest choice */
    int created;                 /* this request created the upload */
} ietf_t;

static int ietf_match(rs_req_t *req)
{
    return apr_table_get(req->in, INTEROP_HDR) != NULL;
}

/* ------------------------------------------------------------------------ */
/* responses                                                                 */

static void set_off(ietf_t *x, const char *name, apr_off_t v)
{
    apr_table_setn(x->req->out, name, apr_off_t_toa(x->req->pool, v));
}

static void set_complete(ietf_t *x, int complete)
{
    if (x->v->incomplete) {
        apr_table_setn(x->req->out, "Upload-Incomplete", complete ? "?0"
                       : "?1");
    }
    else {
        apr_table_setn(x->req->out, "Upload-Complete", complete ? "?1" : "?0");
    }
}

static const char *upload_url(ietf_t *x, const char *id)
{
    return apr_pstrcat(x->req->pool, x->req->base_url, "/", id, NULL);
}

/* Upload-Limit for area a (u NULL) or upload u; min-size=0 keeps it from
 * being empty. */
static const char *limits(rs_req_t *req, int style, const rs_upload_t *u)
{
    const rs_area_t *a = req->area;
    apr_pool_t *p = req->pool;
    const char *s = "min-size=0";
    apr_int64_t age = -1;

    if (a->max_size > 0) {
        s = apr_psprintf(p, "max-size=%" APR_OFF_T_FMT ", %s", a->max_size, s);
    }
    if (a->max_append > 0) {
        s = apr_psprintf(p, "%s, max-append-size=%" APR_OFF_T_FMT, s,
                         a->max_append);
    }
    if (!u && a->expire > 0) {
        age = apr_time_sec(a->expire);
    }
    else if (u && u->expires) {
        age = apr_time_sec(u->expires - apr_time_now() + APR_USEC_PER_SEC - 1);
        age = age < 0 ? 0 : age;
    }
    if (age >= 0) {
        s = apr_psprintf(p, "%s, %s=%" APR_INT64_T_FMT, s,
                         style == 1 ? "expires" : "max-age", age);
    }
    return s;
}

static void set_limits(ietf_t *x, const rs_upload_t *u)
{
    if (x->v->limits) {
        apr_table_setn(x->req->out, "Upload-Limit",
                       limits(x->req, x->v->limits, u));
    }
}

static void set_repr_digest(ietf_t *x, const rs_upload_t *u)
{
    const char *d;

    if (RS_STATE_COMPLETE == u->state
        && (d = rs_sf_repr_digest(x->req->pool, u->digest_alg, u->digest))) {
        apr_table_setn(x->req->out, "Repr-Digest", d);
    }
}

static void fail(ietf_t *x, rs_errcode_t code, const char *detail)
{
    rs_proto_error(x->req, rs_error_make(x->req->pool, code, 0, "%s", detail));
}

/* RFC 9457 body over the plain error response. */
static void problem(ietf_t *x, int status, const char *type,
                    const char *title, const char *extra)
{
    rs_req_t *req = x->req;

    req->status = status;
    req->error->status = status;
    req->content_type = "application/problem+json";
    req->text = apr_psprintf(req->pool, "{\"type\":\"" PROBLEM_NS "%s\","
                             "\"title\":\"%s\"%s}\n", type, title,
                             extra ? extra : "");
}

static void inconsistent(ietf_t *x, const char *detail)
{
    fail(x, RS_ERR_INCONSISTENT_LENGTH, detail);
    if (x->v->problems >= 2) {
        problem(x, 400, "inconsistent-upload-length",
                "Inconsistent Upload Length Values", NULL);
    }
}

static void mismatch(ietf_t *x, const rs_upload_t *u, const char *detail)
{
    apr_off_t have = RS_STATE_COMPLETE == u->state ? u->length : u->offset;

    fail(x, RS_ERR_MISMATCHED_OFFSET, detail);
    set_off(x, "Upload-Offset", have);
    set_complete(x, RS_STATE_COMPLETE == u->state);
    if (x->v->problems >= 1) {
        problem(x, 409, "mismatching-upload-offset", "Mismatching Upload "
                "Offset", apr_psprintf(x->req->pool, ",\"expected-offset\":%"
                                       APR_OFF_T_FMT ",\"provided-offset\":%"
                                       APR_OFF_T_FMT, have, x->offset));
    }
}

/* An append to a completed upload. */
static void completed(ietf_t *x)
{
    int empty = 0 == x->req->content_length;

    if (3 == x->v->problems && !empty) {
        inconsistent(x, "the upload is complete; it takes no more data");
        return;
    }
    fail(x, RS_ERR_BAD_REQUEST, "the upload is already complete");
    set_complete(x, 1);
    if (x->v->problems >= 1) {
        problem(x, 3 == x->v->problems ? 410 : 400, "completed-upload",
                "Upload Is Completed", NULL);
    }
}

/* An application's refusal (a hook) as RFC 9457 problem details. */
static const char *hook_problem(apr_pool_t *p, rs_error_t *err)
{
    json_t *o = json_pack("{s:s,s:s,s:i,s:s}", "type", "about:blank",
                          "title", RS_ERR_REJECTED == err->code
                          ? "Upload Refused" : "Refused by the Application",
                          "status", err->status, "detail",
                          err->detail ? err->detail : "");
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    const char *out = apr_pstrcat(p, s ? s : "{}", "\n", NULL);

    free(s);
    json_decref(o);
    return out;
}

/* Engine errors in this protocol's terms. */
static void map_error(ietf_t *x, rs_error_t *err, const rs_upload_t *u)
{
    rs_req_t *req = x->req;

    switch (err->code) {
    case RS_ERR_MISMATCHED_OFFSET:
        mismatch(x, u, err->detail);
        return;
    case RS_ERR_LENGTH_ALREADY_SET:
    case RS_ERR_INCONSISTENT_LENGTH:
        inconsistent(x, err->detail);
        return;
    case RS_ERR_SIZE_EXCEEDED:
        if (u && RS_STATE_COMPLETE == u->state) {
            completed(x);
            return;
        }
        if (u && u->length >= 0) {
            inconsistent(x, err->detail);
            return;
        }
        break;
    case RS_ERR_HOOK_REJECTED:
    case RS_ERR_REJECTED:
        rs_proto_error(req, err);
        req->content_type = "application/problem+json";
        req->text = hook_problem(req->pool, err);
        return;
    default:
        break;
    }
    rs_proto_error(req, err);
    if (RS_ERR_CHECKSUM_MISMATCH == err->code) {
        req->status = err->status = 400;       /* 460 is tus' own */
    }
    else if (RS_ERR_GONE == err->code && x->v->strict) {
        req->status = err->status = 404;       /* -05: inactive -> 404 */
    }
    else if (413 == req->status) {
        set_limits(x, u);
    }
}

/* ------------------------------------------------------------------------ */
/* request fields                                                            */

/* SF Integer >= 0: 0 absent, 1 ok, -1 invalid. */
static int field_off(ietf_t *x, const char *name, apr_off_t *v)
{
    const char *s = apr_table_get(x->req->in, name);
    apr_int64_t n;

    *v = -1;
    if (!s) {
        return 0;
    }
    if (APR_SUCCESS != rs_sf_integer(x->req->pool, s, &n) || n < 0) {
        return -1;
    }
    *v = (apr_off_t)n;
    return 1;
}

/* Completion field of the version: 1 ok (x->complete -1 when absent). */
static int field_complete(ietf_t *x)
{
    const char *name = x->v->incomplete ? "Upload-Incomplete"
                                        : "Upload-Complete";
    const char *s = apr_table_get(x->req->in, name);
    int b;

    x->complete = -1;
    if (!s) {
        return 1;
    }
    if (APR_SUCCESS != rs_sf_boolean(x->req->pool, s, &b)) {
        fail(x, RS_ERR_BAD_REQUEST, apr_pstrcat(x->req->pool, "malformed ",
                                                name, NULL));
        return 0;
    }
    x->complete = x->v->incomplete ? !b : b;
    return 1;
}

static int fields(ietf_t *x)
{
    if (!field_complete(x)) {
        return 0;
    }
    if (field_off(x, "Upload-Offset", &x->offset) < 0) {
        fail(x, RS_ERR_INVALID_OFFSET, "Upload-Offset must be a non-negative "
             "sf-integer");
        return 0;
    }
    if (field_off(x, "Upload-Length", &x->length) < 0) {
        fail(x, RS_ERR_INVALID_LENGTH, "Upload-Length must be a non-negative "
             "sf-integer");
        return 0;
    }
    return 1;
}

/* Media type of the body is application/partial-upload. */
static int partial_type_ok(rs_req_t *req)
{
    const char *ct = apr_table_get(req->in, "Content-Type");
    apr_size_t n = strlen(PARTIAL_CT);

    return ct && !strncasecmp(ct, PARTIAL_CT, n)
           && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/* ------------------------------------------------------------------------ */
/* digests (RFC 9530)                                                        */

/* sha-512 or sha-256 member of a digest dictionary: 1 found, 0 none (or
 * only other algorithms), -1 malformed. */
static int digest_field(ietf_t *x, const char *name, const char **alg,
                        const unsigned char **d, apr_size_t *len)
{
    static const char *const algs[][2] = {
        { "sha-512", "sha512" }, { "sha-256", "sha256" }
    };
    const char *s = apr_table_get(x->req->in, name);
    apr_array_header_t *dict;
    int i;

    if (!s) {
        return 0;
    }
    if (APR_SUCCESS != rs_sf_parse(x->req->pool, s, RS_SF_DICT, NULL, &dict)) {
        return -1;
    }
    for (i = 0; i < 2; i++) {
        const rs_sf_item_t *it = rs_sf_get(dict, algs[i][0]);
        if (!it) {
            continue;
        }
        if (RS_SF_BYTES != it->type || it->len != (i ? 32u : 64u)) {
            return -1;
        }
        *alg = algs[i][1];
        *d = (const unsigned char *)it->str;
        *len = it->len;
        return 1;
    }
    return 0;
}

/* Want-Repr-Digest: the supported algorithm with the highest weight > 0. */
static const char *want_digest(ietf_t *x)
{
    const char *s = apr_table_get(x->req->in, "Want-Repr-Digest");
    apr_array_header_t *dict;
    const rs_sf_item_t *a, *b;
    apr_int64_t wa, wb;

    if (!s || APR_SUCCESS != rs_sf_parse(x->req->pool, s, RS_SF_DICT, NULL,
                                         &dict)) {
        return NULL;                 /* a preference: ignore when broken */
    }
    a = rs_sf_get(dict, "sha-256");
    b = rs_sf_get(dict, "sha-512");
    wa = a && RS_SF_INTEGER == a->type ? a->num : 0;
    wb = b && RS_SF_INTEGER == b->type ? b->num : 0;
    if (wa <= 0 && wb <= 0) {
        return NULL;
    }
    return wb > wa ? "sha512" : "sha256";
}

/* Content-Digest: the engine verifies the request content with it. */
static int content_digest(ietf_t *x, rs_append_t *ap)
{
    if (digest_field(x, "Content-Digest", &ap->checksum_alg, &ap->checksum,
                     &ap->checksum_len) < 0) {
        fail(x, RS_ERR_INVALID_CHECKSUM, "malformed Content-Digest");
        return 0;
    }
    return 1;
}

/* Both digest fields are checked before anything is stored: a malformed
 * Content-Digest must not leave a created upload behind. */
static int digest_fields(ietf_t *x)
{
    rs_append_t ap;

    if (digest_field(x, "Repr-Digest", &x->repr_alg, &x->repr,
                     &x->repr_len) < 0) {
        fail(x, RS_ERR_INVALID_CHECKSUM, "malformed Repr-Digest");
        return 0;
    }
    memset(&ap, 0, sizeof(ap));
    if (!content_digest(x, &ap)) {
        return 0;
    }
    x->want_alg = want_digest(x);
    return 1;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}

/* The digest the record expects (set at creation), as bytes. */
static const unsigned char *stored_expect(ietf_t *x, const rs_upload_t *u,
                                          apr_size_t *len)
{
    apr_size_t n = u->digest ? strlen(u->digest) / 2 : 0, i;
    unsigned char *d = apr_palloc(x->req->pool, n + 1);

    for (i = 0; i < n; i++) {
        int h = hexval(u->digest[2 * i]), l = hexval(u->digest[2 * i + 1]);
        if (h < 0 || l < 0) {
            return NULL;
        }
        d[i] = (unsigned char)(h * 16 + l);
    }
    *len = n;
    return n ? d : NULL;
}

/* Wrap the body when this request may complete the upload and a digest is
 * expected, wanted, or free (the whole upload streams through it). */
static rs_body_t *digest_body(ietf_t *x, rs_upload_t *u, const rs_append_t *ap,
                              rs_digest_body_t **pdb)
{
    apr_off_t len = u->length >= 0 ? u->length : ap->declare_length;
    apr_off_t cl = x->req->content_length, end;
    const char *alg = x->repr_alg ? x->repr_alg : x->want_alg;
    const unsigned char *expect = x->repr;
    apr_size_t elen = x->repr_len;

    *pdb = NULL;
    if (1 != x->complete
        && (len < 0 || (cl >= 0 && (!rs_util_off_add(ap->offset, cl, &end)
                                    || end != len)))) {
        return x->req->body;         /* can not complete: nothing to hash */
    }
    if (!expect && u->digest_alg && (expect = stored_expect(x, u, &elen))) {
        alg = u->digest_alg;
    }
    if (!alg) {
        alg = u->digest_alg ? u->digest_alg : 0 == ap->offset ? "sha256" : NULL;
    }
    if (!alg || APR_SUCCESS != rs_digest_body_make(x->req->pool, x->req->body,
                   alg, u, ap->offset,
                   1 == x->complete && len < 0 ? -1 : len, pdb)) {
        return x->req->body;
    }
    (*pdb)->expect = expect;
    (*pdb)->expect_len = elen;
    return &(*pdb)->body;
}

/* After the append: record the digest of a completed upload. */
static void digest_done(ietf_t *x, rs_upload_t *u, rs_digest_body_t *db)
{
    const char *hex;
    apr_status_t rv;

    if (!db || !db->done || db->mismatch || RS_STATE_COMPLETE != u->state) {
        return;
    }
    hex = rs_util_hex(x->req->pool, db->digest, db->digest_len);
    if (u->digest && u->digest_alg && !strcmp(u->digest, hex)
        && !strcmp(u->digest_alg, db->alg)) {
        return;
    }
    rv = rs_engine_digest_set(x->req->engine, u->id, db->alg, hex,
                              x->req->pool);
    if (APR_SUCCESS != rv) {
        rs_log_perror(RS_LOG_MARK, RS_LOG_WARNING, rv, x->req->pool,
                      RS_LOGNO(06002) "upload %s: storing its digest failed",
                      u->id);
        return;
    }
    u->digest_alg = db->alg;
    u->digest = hex;
}

/* Repr-Digest did not verify: the upload is failed and cancelled. */
static void digest_failed(ietf_t *x, rs_upload_t *u)
{
    rs_log_perror(RS_LOG_MARK, RS_LOG_INFO, 0, x->req->pool, RS_LOGNO(06003)
                  "upload %s: Repr-Digest mismatch, upload cancelled", u->id);
    rs_engine_terminate(x->req->engine, x->req->area, u, x->req->pool);
    fail(x, RS_ERR_CHECKSUM_MISMATCH, "the representation does not match "
         "Repr-Digest; the upload was cancelled");
    x->req->status = x->req->error->status = 400;
}

/* ------------------------------------------------------------------------ */
/* representation metadata                                                   */

/* Value of parameter `name` of a Content-Disposition value (token or
 * quoted-string), or NULL. */
static const char *cd_param(apr_pool_t *p, const char *cd, const char *name)
{
    const char *s = strchr(cd, ';');
    apr_size_t n = strlen(name);

    while (s && *s == ';') {
        const char *start;
        int match;
        for (s++; *s == ' ' || *s == '\t'; s++) {
        }
        match = !strncasecmp(s, name, n) && s[n] == '=';
        if (!(s = strchr(s, '='))) {
            return NULL;
        }
        s++;
        if (*s == '"') {
            char *out = apr_palloc(p, strlen(s)), *o = out;
            for (s++; *s && *s != '"'; s++) {
                if (*s == '\\' && s[1]) {
                    s++;
                }
                *o++ = *s;
            }
            if (*s != '"') {
                return NULL;
            }
            *o = '\0';
            s = strchr(s, ';');
            if (match) {
                return out;
            }
            continue;
        }
        start = s;
        s = strchr(s, ';');
        if (match) {
            return apr_pstrndup(p, start, s ? (apr_size_t)(s - start)
                                : strlen(start));
        }
    }
    return NULL;
}

/* RFC 8187 ext-value "UTF-8'lang'pct" (or ISO-8859-1) -> UTF-8. */
static const char *ext_value(apr_pool_t *p, const char *v)
{
    const char *q1 = strchr(v, '\''), *q2 = q1 ? strchr(q1 + 1, '\'') : NULL;
    int latin1 = q1 && !strncasecmp(v, "ISO-8859-1'", 11);
    char *out, *o;

    if (!q2 || (!latin1 && strncasecmp(v, "UTF-8'", 6))) {
        return NULL;
    }
    out = o = apr_palloc(p, 2 * strlen(q2) + 1);
    for (v = q2 + 1; *v; v++) {
        unsigned char c = (unsigned char)*v;
        if (c == '%') {
            int h = hexval(apr_tolower(v[1])), l = h < 0 ? -1
                    : hexval(apr_tolower(v[2]));
            if (l < 0) {
                return NULL;
            }
            c = (unsigned char)(h * 16 + l);
            v += 2;
        }
        if (latin1 && c >= 0x80) {
            *o++ = (char)(0xc0 | (c >> 6));
            c = 0x80 | (c & 0x3f);
        }
        *o++ = (char)c;
    }
    *o = '\0';
    return out;
}

static const char *disposition_name(rs_req_t *req)
{
    const char *cd = apr_table_get(req->in, "Content-Disposition");
    const char *ext, *name;

    if (!cd) {
        return NULL;
    }
    ext = cd_param(req->pool, cd, "filename*");
    name = ext ? ext_value(req->pool, ext) : NULL;
    if (!name) {
        name = cd_param(req->pool, cd, "filename");
    }
    return name && *name && rs_util_header_safe(name) ? name : NULL;
}

/* Content-Type as the file's type: type/subtype, parameters dropped; the
 * protocol's own media type is no file type. */
static const char *content_type(rs_req_t *req)
{
    const char *ct = apr_table_get(req->in, "Content-Type"), *c;
    apr_size_t n;

    if (!ct || partial_type_ok(req)) {
        return NULL;
    }
    n = strcspn(ct, "; \t");
    for (c = ct; c < ct + n; c++) {
        if (!apr_isalnum(*c) && !strchr("/!#$&^_.+-", *c)) {
            return NULL;
        }
    }
    c = memchr(ct, '/', n);
    return c && c != ct && c < ct + n - 1 && n < 128
           ? apr_pstrmemdup(req->pool, ct, n) : NULL;
}

static int metadata(ietf_t *x, rs_upload_t *u)
{
    const char *hdr = apr_table_get(x->req->in, "Upload-Metadata");
    apr_array_header_t *m;

    u->filename = disposition_name(x->req);
    u->filetype = content_type(x->req);
    if (!hdr || !*hdr) {
        return 1;
    }
    if (APR_SUCCESS != rs_meta_parse(x->req->pool, hdr, &m)) {
        fail(x, RS_ERR_INVALID_METADATA, "malformed Upload-Metadata");
        return 0;
    }
    if (!u->filename) {
        u->filename = rs_meta_get(m, "filename");
        u->filename = u->filename ? u->filename : rs_meta_get(m, "name");
    }
    if (!u->filetype) {
        u->filetype = rs_meta_get(m, "filetype");
        u->filetype = u->filetype && rs_util_header_safe(u->filetype)
                      && strchr(u->filetype, '/') ? u->filetype : NULL;
    }
    if (u->filename && !rs_util_header_safe(u->filename)) {
        u->filename = NULL;
    }
    return 1;
}

/* ------------------------------------------------------------------------ */
/* append                                                                    */

/* Append the body at offset; 1 when it went through, else the response is
 * set. u is updated to the stored state. */
static int append(ietf_t *x, rs_upload_t *u, apr_off_t offset)
{
    rs_append_t ap = { offset, -1 };
    rs_append_result_t res;
    rs_digest_body_t *db;
    rs_body_t *body;
    rs_error_t *err;

    ap.declare_length = x->created ? -1 : x->length;
    ap.complete = 1 == x->complete;
    if (!content_digest(x, &ap)) {
        return 0;
    }
    body = digest_body(x, u, &ap, &db);
    err = rs_engine_append(x->req->engine, x->req->area, u, &ap, body,
                           x->req->pool, &res);
    if (db && db->mismatch) {
        digest_failed(x, u);
        return 0;
    }
    if (err) {
        map_error(x, err, u);
        return 0;
    }
    digest_done(x, u, db);
    if (1 == x->complete && RS_STATE_COMPLETE != u->state) {
        inconsistent(x, "Upload-Complete: ?1, but the content ends before "
                     "the upload length");
        return 0;
    }
    return 1;
}

/* The response of a request that completed the upload. */
static void finished(ietf_t *x, const rs_upload_t *u, int status)
{
    x->req->status = status;
    set_complete(x, 1);
    set_off(x, "Upload-Offset", u->length);
    set_repr_digest(x, u);
}

static void acked(ietf_t *x, const rs_upload_t *u)
{
    if (RS_STATE_COMPLETE == u->state) {
        finished(x, u, 200);
        return;
    }
    x->req->status = 204;
    set_complete(x, 0);
    set_off(x, "Upload-Offset", u->offset);
    if (x->v->ack_limit) {
        set_limits(x, u);
    }
}

/* Length indications of an append that can be judged before the body. */
static int append_lengths_ok(ietf_t *x, const rs_upload_t *u)
{
    apr_off_t len = u->length >= 0 ? u->length : x->length;
    apr_off_t cl = x->req->content_length, end;

    if (x->length >= 0 && u->length >= 0 && x->length != u->length) {
        inconsistent(x, "Upload-Length differs from the upload's length");
        return 0;
    }
    if (len < 0 || cl < 0 || x->offset != u->offset) {
        return 1;
    }
    if (!rs_util_off_add(x->offset, cl, &end) || end > len
        || (1 == x->complete && end != len)) {
        inconsistent(x, "the content does not fit the upload length");
        return 0;
    }
    return 1;
}

static void ietf_append(ietf_t *x, rs_upload_t *u)
{
    rs_req_t *req = x->req;

    if (x->v->partial_type && !partial_type_ok(req)) {
        fail(x, RS_ERR_UNSUPPORTED_TYPE, "an append needs Content-Type: "
             PARTIAL_CT);
        apr_table_setn(req->out, "Accept-Patch", PARTIAL_CT);
        return;
    }
    if (x->offset < 0) {
        fail(x, RS_ERR_INVALID_OFFSET, "an append needs Upload-Offset");
        return;
    }
    if (x->complete < 0 && !x->v->strict) {
        fail(x, RS_ERR_BAD_REQUEST, "an append needs Upload-Complete");
        return;
    }
    x->complete = x->complete < 0 ? 1 : x->complete;   /* -01..-03 */
    if (RS_STATE_COMPLETE == u->state) {
        if (1 == x->complete && 0 == req->content_length
            && x->offset == u->length) {
            finished(x, u, 200);     /* a repeated finish: same answer */
            return;
        }
        completed(x);
        return;
    }
    if (append_lengths_ok(x, u) && append(x, u, x->offset)) {
        acked(x, u);
    }
}

/* ------------------------------------------------------------------------ */
/* creation                                                                  */

static int creation_length(ietf_t *x, rs_upload_t *u)
{
    apr_off_t cl = x->req->content_length;

    if (x->offset > 0) {
        fail(x, RS_ERR_INVALID_OFFSET, "a creation starts at Upload-Offset 0");
        return 0;
    }
    if ((1 == x->complete && cl >= 0 && x->length >= 0 && x->length != cl)
        || (x->length >= 0 && cl > x->length)) {
        inconsistent(x, "Upload-Length and the content length disagree");
        return 0;
    }
    u->length = 1 == x->complete && cl >= 0 ? cl : x->length;
    if (u->length < 0) {
        u->flags |= RS_UF_DEFER_LENGTH;
    }
    return 1;
}

/* Repr-Digest / Want-Repr-Digest of the creation, kept in the record until
 * the upload completes (digest "" = wanted, no expected value). */
static void creation_digest(ietf_t *x, rs_upload_t *u)
{
    if (x->repr_alg) {
        u->digest_alg = x->repr_alg;
        u->digest = rs_util_hex(x->req->pool, x->repr, x->repr_len);
    }
    else if (x->want_alg) {
        u->digest_alg = x->want_alg;
        u->digest = "";
    }
}

/* 104 Upload Resumption Supported: the upload URL before the body. */
static void send_104(ietf_t *x, const rs_upload_t *u)
{
    rs_req_t *req = x->req;
    apr_table_t *h = apr_table_make(req->pool, 4);

    if (!req->interim) {
        return;
    }
    apr_table_setn(h, "Location", upload_url(x, u->id));
    apr_table_setn(h, INTEROP_HDR, apr_itoa(req->pool, x->v->num));
    if (x->v->limits) {
        apr_table_setn(h, "Upload-Limit", limits(req, x->v->limits, u));
    }
    req->interim(req, 104, "104 Upload Resumption Supported", h);
}

static void created(ietf_t *x, const rs_upload_t *u)
{
    int done = RS_STATE_COMPLETE == u->state;

    x->req->status = 201;
    apr_table_setn(x->req->out, "Location", upload_url(x, u->id));
    set_complete(x, done);
    set_off(x, "Upload-Offset", done ? u->length : u->offset);
    if (done) {
        set_repr_digest(x, u);
    }
    else {
        set_limits(x, u);
    }
}

static void ietf_create(ietf_t *x)
{
    rs_req_t *req = x->req;
    rs_upload_t *u = rs_upload_make(req->pool, NULL);
    rs_error_t *err;

    u->proto = RS_PROTO_IETF;
    u->owner = req->user;
    x->created = 1;
    if (!creation_length(x, u) || !metadata(x, u)) {
        return;
    }
    creation_digest(x, u);
    if ((err = rs_engine_create(req->engine, req->area, u, req->pool))) {
        map_error(x, err, NULL);
        return;
    }
    if (RS_STATE_COMPLETE != u->state) {
        send_104(x, u);
    }
    if (req->content_length && RS_STATE_COMPLETE != u->state
        && !append(x, u, 0)) {
        apr_table_setn(req->out, "Location", upload_url(x, u->id));
        return;
    }
    created(x, u);
}

/* ------------------------------------------------------------------------ */
/* HEAD, DELETE, OPTIONS                                                     */

/* -01..-05: offset retrieval and cancellation carry no upload fields. */
static int no_upload_fields(ietf_t *x)
{
    if (x->v->strict && (x->complete >= 0 || x->offset >= 0
                         || x->length >= 0)) {
        fail(x, RS_ERR_BAD_REQUEST, "this request takes no Upload-Offset, "
             "Upload-Complete or Upload-Length");
        return 0;
    }
    return 1;
}

static void ietf_head(ietf_t *x, const rs_upload_t *u)
{
    int done = RS_STATE_COMPLETE == u->state;

    if (!no_upload_fields(x)) {
        return;
    }
    x->req->status = 204;
    set_off(x, "Upload-Offset", done ? u->length : u->offset);
    set_complete(x, done);
    if (u->length >= 0) {
        set_off(x, "Upload-Length", u->length);
    }
    set_limits(x, u);
    set_repr_digest(x, u);
}

static void ietf_delete(ietf_t *x, rs_upload_t *u)
{
    rs_error_t *err;

    if (!no_upload_fields(x)) {
        return;
    }
    if ((err = rs_engine_terminate(x->req->engine, x->req->area, u,
                                   x->req->pool))) {
        map_error(x, err, u);
        return;
    }
    x->req->status = 204;
}

static void ietf_discover(rs_req_t *req)
{
    apr_table_setn(req->out, "Upload-Limit", limits(req, 2, NULL));
    apr_table_setn(req->out, "Accept-Patch", PARTIAL_CT);
}

static void ietf_options(ietf_t *x)
{
    x->req->status = 200;
    apr_table_setn(x->req->out, "Allow", RS_PROTO_ALLOW_METHODS);
    if (x->v->limits) {
        set_limits(x, NULL);
        apr_table_setn(x->req->out, "Accept-Patch", PARTIAL_CT);
    }
}

/* ------------------------------------------------------------------------ */
/* dispatch                                                                  */

static const char *proto_name(rs_proto_id_t id)
{
    int i;

    for (i = 0; rs_protos[i]; i++) {
        if (rs_protos[i]->id == id) {
            return rs_protos[i]->name;
        }
    }
    return "another";
}

static void on_upload(ietf_t *x)
{
    rs_req_t *req = x->req;
    const char *m = req->method;
    rs_upload_t *u;
    rs_error_t *err;

    if (strcmp(m, "HEAD") && strcmp(m, "PATCH") && strcmp(m, "DELETE")) {
        fail(x, RS_ERR_METHOD, "method not allowed on an upload");
        apr_table_setn(req->out, "Allow", "HEAD, PATCH, DELETE, GET, OPTIONS");
        return;
    }
    if ((err = rs_engine_open(req->engine, req->area, req->id, req->user,
                              req->pool, &u))) {
        map_error(x, err, NULL);
    }
    else if (RS_PROTO_IETF != u->proto) {
        fail(x, RS_ERR_BAD_REQUEST, apr_pstrcat(req->pool, "this upload was "
             "created with the ", proto_name(u->proto), " protocol", NULL));
    }
    else if (!strcmp(m, "HEAD")) {
        ietf_head(x, u);
    }
    else if (!strcmp(m, "PATCH")) {
        ietf_append(x, u);
    }
    else {
        ietf_delete(x, u);
    }
}

static void on_collection(ietf_t *x)
{
    const char *m = x->req->method;

    if (strcmp(m, "POST") && strcmp(m, "PUT") && strcmp(m, "PATCH")) {
        fail(x, RS_ERR_METHOD, "create uploads with POST, PUT or PATCH");
        apr_table_setn(x->req->out, "Allow", "POST, PUT, PATCH, OPTIONS");
    }
    else if (x->complete < 0) {
        fail(x, RS_ERR_BAD_REQUEST, x->v->incomplete ? "a creation needs "
             "Upload-Incomplete" : "a creation needs Upload-Complete");
    }
    else if (digest_fields(x)) {
        ietf_create(x);
    }
}

/* The interop version, or NULL with the 400 response set. */
static const ietf_ver_t *version_of(rs_req_t *req)
{
    const char *s = apr_table_get(req->in, INTEROP_HDR);
    apr_int64_t n = 0;
    apr_size_t i;

    if (APR_SUCCESS == rs_sf_integer(req->pool, s, &n)) {
        for (i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
            if (versions[i].num == n) {
                return &versions[i];
            }
        }
    }
    rs_log_perror(RS_LOG_MARK, RS_LOG_DEBUG, 0, req->pool, RS_LOGNO(06001)
                  "ietf: unsupported " INTEROP_HDR " '%s'", s);
    rs_proto_error(req, rs_error_make(req->pool, RS_ERR_BAD_REQUEST, 0,
                   INTEROP_HDR " %s is not supported; this server speaks "
                   "interop versions " SUPPORTED " (draft-ietf-httpbis-"
                   "resumable-upload-01 to -11)", s));
    return NULL;
}

static void ietf_handle(rs_req_t *req)
{
    ietf_t x = { req };

    apr_table_setn(req->out, "Cache-Control", "no-store");
    if (!(x.v = version_of(req))) {
        return;
    }
    apr_table_setn(req->out, INTEROP_HDR, apr_itoa(req->pool, x.v->num));
    if (!fields(&x)) {
        return;
    }
    if (!strcmp(req->method, "OPTIONS")) {
        ietf_options(&x);
    }
    else if (req->id) {
        if (digest_fields(&x)) {
            on_upload(&x);
        }
    }
    else if (req->at_base) {
        on_collection(&x);
    }
    else {
        fail(&x, RS_ERR_NOT_FOUND, "no upload at this URL");
    }
}

const rs_proto_t rs_proto_ietf = {
    "ietf", RS_PROTO_IETF, ietf_match, ietf_handle, ietf_discover
};
