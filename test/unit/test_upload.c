/* Licensed under the Apache License, Version 2.0. */
/* Unit tests of rs_upload: defaults, chunk map, the record codec. */

#include <stdlib.h>
#include <string.h>
#include <apr_strings.h>
#include "rs_test.h"
#include "rs_upload.h"

#define ID "AbCdEfGhIjKlMnOpQrStUv"

/* ---- hand-made records (tags as documented in rs_upload.c) ------------- */

typedef struct {
    unsigned char b[4096];
    apr_size_t n;
} rec_t;

static void rec_raw(rec_t *r, int tag, const void *v, apr_size_t len)
{
    r->b[r->n++] = (unsigned char)tag;
    r->b[r->n++] = (unsigned char)(len >> 24);
    r->b[r->n++] = (unsigned char)(len >> 16);
    r->b[r->n++] = (unsigned char)(len >> 8);
    r->b[r->n++] = (unsigned char)len;
    memcpy(r->b + r->n, v, len);
    r->n += len;
}

static void rec_int(rec_t *r, int tag, apr_int64_t v)
{
    unsigned char b[8];
    apr_uint64_t u = (apr_uint64_t)v;
    int i;

    for (i = 7; i >= 0; i--, u >>= 8) {
        b[i] = (unsigned char)u;
    }
    rec_raw(r, tag, b, 8);
}

static void rec_start(rec_t *r)
{
    r->b[0] = 1;
    r->n = 1;
}

static void rec_end(rec_t *r)
{
    rec_raw(r, 0x00, "", 0);
}

/* decode a copy in a buffer of exactly len bytes (valgrind sees overreads) */
static apr_status_t decode_exact(apr_pool_t *p, const char *id,
                                 const void *buf, apr_size_t len,
                                 rs_upload_t **u)
{
    char *copy = malloc(len ? len : 1);
    apr_status_t rv;

    memcpy(copy, buf, len);
    rv = rs_upload_decode(p, id, copy, len, u);
    free(copy);
    return rv;
}

static apr_status_t rec_decode(apr_pool_t *p, rec_t *r, rs_upload_t **u)
{
    return decode_exact(p, NULL, r->b, r->n, u);
}

/* ---- comparison -------------------------------------------------------- */

static int list_equal(const apr_array_header_t *a, const apr_array_header_t *b)
{
    int i;

    if (!a || !b) {
        return a == b;
    }
    if (a->nelts != b->nelts) {
        return 0;
    }
    for (i = 0; i < a->nelts; i++) {
        if (strcmp(APR_ARRAY_IDX(a, i, const char *),
                   APR_ARRAY_IDX(b, i, const char *))) {
            return 0;
        }
    }
    return 1;
}

static int map_equal(const rs_upload_t *a, const rs_upload_t *b)
{
    if (!a->chunk_map || !b->chunk_map) {
        return a->chunk_map == b->chunk_map;
    }
    return !memcmp(a->chunk_map, b->chunk_map,
                   ((apr_size_t)a->chunk_count + 7) / 8);
}

static void check_equal(const rs_upload_t *a, const rs_upload_t *b)
{
    RS_CHECK_STR(a->id, b->id);
    RS_CHECK(a->state == b->state);
    RS_CHECK(a->proto == b->proto);
    RS_CHECK(a->flags == b->flags);
    RS_CHECK(a->length == b->length);
    RS_CHECK(a->offset == b->offset);
    RS_CHECK(a->pending_from == b->pending_from);
    RS_CHECK(a->created == b->created);
    RS_CHECK(a->updated == b->updated);
    RS_CHECK(a->expires == b->expires);
    RS_CHECK_STR(a->owner, b->owner);
    RS_CHECK_STR(a->dir, b->dir);
    RS_CHECK_STR(a->metadata, b->metadata);
    RS_CHECK_STR(a->filename, b->filename);
    RS_CHECK_STR(a->filetype, b->filetype);
    RS_CHECK_STR(a->path, b->path);
    RS_CHECK_STR(a->concat, b->concat);
    RS_CHECK(list_equal(a->parts, b->parts));
    RS_CHECK(list_equal(a->waiters, b->waiters));
    RS_CHECK(a->chunk_size == b->chunk_size);
    RS_CHECK(a->chunk_count == b->chunk_count);
    RS_CHECK(map_equal(a, b));
    RS_CHECK_STR(a->client_key, b->client_key);
    RS_CHECK_STR(a->digest_alg, b->digest_alg);
    RS_CHECK_STR(a->digest, b->digest);
}

static apr_array_header_t *ids(apr_pool_t *p, int n, const char *first)
{
    apr_array_header_t *a = apr_array_make(p, n ? n : 1, sizeof(const char *));
    int i;

    for (i = 0; i < n; i++) {
        APR_ARRAY_PUSH(a, const char *) = i ? apr_psprintf(p, "part-%04d", i)
                                            : first;
    }
    return a;
}

/* a record with every field set to a non-default value */
static rs_upload_t *full_record(apr_pool_t *p)
{
    rs_upload_t *u = rs_upload_make(p, ID);

    u->state = RS_STATE_ASSEMBLING;
    u->proto = RS_PROTO_FLOW;
    u->flags = 0xffffffffu;
    u->length = APR_INT64_MAX;
    u->offset = APR_INT64_C(5000000000);
    u->pending_from = APR_INT64_C(4999999999);
    u->created = APR_INT64_C(1700000000123456);
    u->updated = APR_INT64_C(1700000001654321);
    u->expires = -1;
    u->owner = "alice";
    u->dir = "/srv/uploads/area one";
    u->metadata = "filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,"
                  "is_confidential";
    u->filename = "r\xc3\xa9sum\xc3\xa9 \"final\".pdf";
    u->filetype = "application/pdf";
    u->path = "/srv/uploads/area one/r\xc3\xa9sum\xc3\xa9.pdf";
    u->concat = "final;/files/a /files/b";
    u->parts = ids(p, 3, "");
    u->waiters = ids(p, 2, "w0");
    u->chunk_size = 1048576;
    u->chunk_count = 13;
    u->chunk_map = apr_pcalloc(p, 2);
    rs_upload_chunk_set(u, 0);
    rs_upload_chunk_set(u, 5);
    rs_upload_chunk_set(u, 12);
    u->client_key = "client-key/1";
    u->digest_alg = "sha256";
    u->digest = "ba7816bf8f01cfea414140de5dae2223"
                "b00361a396177a9cb410ff61f20015ad";
    return u;
}

/* ---- tests ------------------------------------------------------------- */

static void test_make(apr_pool_t *p)
{
    rs_upload_t *u = rs_upload_make(p, ID);

    RS_CHECK_STR(u->id, ID);
    RS_CHECK(u->state == RS_STATE_ACTIVE && u->proto == RS_PROTO_TUS);
    RS_CHECK(u->length == -1 && u->pending_from == -1 && u->offset == 0);
    RS_CHECK(u->flags == 0 && u->expires == 0);
    RS_CHECK(u->created > 0 && u->updated == u->created);
    RS_CHECK_STR(u->owner, "");
    RS_CHECK(!u->dir && !u->metadata && !u->filename && !u->filetype
             && !u->path && !u->concat && !u->parts && !u->waiters
             && !u->chunk_map && !u->client_key && !u->digest_alg
             && !u->digest && u->chunk_count == 0 && u->chunk_size == 0);
    RS_CHECK(rs_upload_make(p, NULL)->id == NULL);
    RS_CHECK_STR(rs_upload_state_name(RS_STATE_ACTIVE), "active");
    RS_CHECK_STR(rs_upload_state_name(RS_STATE_ASSEMBLING), "assembling");
    RS_CHECK_STR(rs_upload_state_name(RS_STATE_COMPLETE), "complete");
    RS_CHECK_STR(rs_upload_state_name((rs_upload_state_t)0), "unknown");
}

static void test_chunks(apr_pool_t *p)
{
    rs_upload_t *u = rs_upload_make(p, ID);

    u->chunk_count = 13;
    RS_CHECK(rs_upload_chunks_missing(u) == 13);       /* no map yet */
    RS_CHECK(!rs_upload_chunk_has(u, 0));
    rs_upload_chunk_set(u, 0);                         /* no map: no-op */
    u->chunk_map = apr_pcalloc(p, 2);
    rs_upload_chunk_set(u, 0);
    rs_upload_chunk_set(u, 12);
    rs_upload_chunk_set(u, 12);
    rs_upload_chunk_set(u, -1);
    rs_upload_chunk_set(u, 13);
    rs_upload_chunk_set(u, 1 << 30);
    RS_CHECK(rs_upload_chunk_has(u, 0) && rs_upload_chunk_has(u, 12));
    RS_CHECK(!rs_upload_chunk_has(u, 1) && !rs_upload_chunk_has(u, 13)
             && !rs_upload_chunk_has(u, -1));
    RS_CHECK(u->chunk_map[0] == 0x01 && u->chunk_map[1] == 0x10);
    RS_CHECK(rs_upload_chunks_missing(u) == 11);
}

static void test_roundtrip(apr_pool_t *p)
{
    rs_upload_t *u = full_record(p), *v = NULL;
    char *buf = NULL, *buf2 = NULL;
    apr_size_t len = 0, len2 = 0;

    RS_CHECK(rs_upload_encode(u, p, &buf, &len) == APR_SUCCESS);
    RS_CHECK(buf && len > 1 && (unsigned char)buf[0] == 1);
    RS_CHECK(decode_exact(p, ID, buf, len, &v) == APR_SUCCESS);
    if (v) {
        check_equal(u, v);
        RS_CHECK(v->chunk_map != u->chunk_map);            /* a copy */
        RS_CHECK(rs_upload_chunks_missing(v) == 10);
        RS_CHECK(rs_upload_encode(v, p, &buf2, &len2) == APR_SUCCESS
                 && len2 == len && !memcmp(buf, buf2, len));
    }
    v = NULL;
    RS_CHECK(decode_exact(p, NULL, buf, len, &v) == APR_SUCCESS);
    RS_CHECK(v && !strcmp(v->id, ID));                     /* stored id */
    v = NULL;
    RS_CHECK(decode_exact(p, "OtherIdOtherIdOtherId0", buf, len, &v)
             == APR_EINVAL && v == NULL);
}

/* NULL strings stay NULL, empty strings stay empty, arrays likewise */
static void test_roundtrip_empty(apr_pool_t *p)
{
    rs_upload_t *u = rs_upload_make(p, NULL), *v = NULL;
    char *buf;
    apr_size_t len;

    u->owner = NULL;
    u->dir = "";
    u->filename = "";
    u->digest = "";
    u->waiters = apr_array_make(p, 1, sizeof(const char *));
    u->length = 0;
    u->created = 0;
    u->updated = 0;
    u->expires = APR_INT64_MIN;
    u->chunk_count = 0;
    u->chunk_map = apr_pcalloc(p, 1);              /* ignored: no chunks */
    RS_CHECK(rs_upload_encode(u, p, &buf, &len) == APR_SUCCESS);
    RS_CHECK(decode_exact(p, NULL, buf, len, &v) == APR_SUCCESS);
    if (v) {
        RS_CHECK(v->id == NULL);
        RS_CHECK(v->owner == NULL && v->metadata == NULL && v->path == NULL);
        RS_CHECK_STR(v->dir, "");
        RS_CHECK_STR(v->filename, "");
        RS_CHECK_STR(v->digest, "");
        RS_CHECK(v->parts == NULL);
        RS_CHECK(v->waiters && v->waiters->nelts == 0);
        RS_CHECK(v->chunk_map == NULL);
        RS_CHECK(v->expires == APR_INT64_MIN && v->length == 0);
    }
    /* an id given to decode fills a record stored without one */
    v = NULL;
    RS_CHECK(decode_exact(p, ID, buf, len, &v) == APR_SUCCESS);
    RS_CHECK(v && v->id && !strcmp(v->id, ID));
    /* every chunk count round-trips its map, padding bits masked */
    u->chunk_count = 9;
    u->chunk_map = apr_palloc(p, 2);
    u->chunk_map[0] = 0xff;
    u->chunk_map[1] = 0xff;                        /* 7 stray padding bits */
    RS_CHECK(rs_upload_encode(u, p, &buf, &len) == APR_SUCCESS);
    v = NULL;
    RS_CHECK(decode_exact(p, NULL, buf, len, &v) == APR_SUCCESS);
    RS_CHECK(v && v->chunk_map && v->chunk_map[1] == 0x01
             && rs_upload_chunks_missing(v) == 0);
}

static void test_limits(apr_pool_t *p)
{
    rs_upload_t *u = rs_upload_make(p, ID), *v = NULL;
    char *buf, *big;
    apr_size_t len;

    u->parts = ids(p, RS_UPLOAD_MAX_PARTS, "p0");
    RS_CHECK(rs_upload_encode(u, p, &buf, &len) == APR_SUCCESS);
    RS_CHECK(decode_exact(p, ID, buf, len, &v) == APR_SUCCESS
             && v && v->parts->nelts == RS_UPLOAD_MAX_PARTS);
    u->parts = ids(p, RS_UPLOAD_MAX_PARTS + 1, "p0");
    RS_CHECK(rs_upload_encode(u, p, &buf, &len) == APR_EINVAL);
    u->parts = NULL;
    u->waiters = ids(p, RS_UPLOAD_MAX_PARTS + 1, "w0");
    RS_CHECK(rs_upload_encode(u, p, &buf, &len) == APR_EINVAL);
    u->waiters = NULL;

    u->chunk_count = RS_UPLOAD_MAX_CHUNKS;
    u->chunk_map = apr_pcalloc(p, (RS_UPLOAD_MAX_CHUNKS + 7) / 8);
    rs_upload_chunk_set(u, RS_UPLOAD_MAX_CHUNKS - 1);
    RS_CHECK(rs_upload_encode(u, p, &buf, &len) == APR_SUCCESS);
    v = NULL;
    RS_CHECK(decode_exact(p, ID, buf, len, &v) == APR_SUCCESS && v
             && rs_upload_chunks_missing(v) == RS_UPLOAD_MAX_CHUNKS - 1
             && rs_upload_chunk_has(v, RS_UPLOAD_MAX_CHUNKS - 1));
    u->chunk_count = RS_UPLOAD_MAX_CHUNKS + 1;
    RS_CHECK(rs_upload_encode(u, p, &buf, &len) == APR_EINVAL);
    u->chunk_count = -1;
    RS_CHECK(rs_upload_encode(u, p, &buf, &len) == APR_EINVAL);
    u->chunk_count = 0;
    u->chunk_map = NULL;

    /* records the decoder would refuse are not written */
    u->state = (rs_upload_state_t)0;
    RS_CHECK(rs_upload_encode(u, p, &buf, &len) == APR_EINVAL);
    u->state = RS_STATE_COMPLETE;
    u->proto = RS_PROTO__COUNT;
    RS_CHECK(rs_upload_encode(u, p, &buf, &len) == APR_EINVAL);
    u->proto = RS_PROTO_SLICE;
    u->length = -2;
    RS_CHECK(rs_upload_encode(u, p, &buf, &len) == APR_EINVAL);
    u->length = 10;
    u->offset = -1;
    RS_CHECK(rs_upload_encode(u, p, &buf, &len) == APR_EINVAL);
    u->offset = 10;

    /* size cap */
    big = apr_palloc(p, RS_UPLOAD_MAX_RECORD + 1);
    memset(big, 'm', RS_UPLOAD_MAX_RECORD);
    big[RS_UPLOAD_MAX_RECORD] = '\0';
    u->metadata = big;
    RS_CHECK(rs_upload_encode(u, p, &buf, &len) == APR_EINVAL);
    u->metadata = NULL;
    RS_CHECK(rs_upload_encode(u, p, &buf, &len) == APR_SUCCESS);
    RS_CHECK(rs_upload_decode(p, ID, buf, RS_UPLOAD_MAX_RECORD + 1, &v)
             == APR_EINVAL);
    RS_CHECK(rs_upload_decode(p, ID, NULL, 10, &v) == APR_EINVAL);
    RS_CHECK(rs_upload_decode(p, ID, buf, 0, &v) == APR_EINVAL);
}

/* every strict prefix of a valid encoding fails cleanly */
static void test_truncation(apr_pool_t *p)
{
    rs_upload_t *v;
    char *buf;
    apr_size_t len = 0, i;
    int all = 1;

    RS_CHECK(rs_upload_encode(full_record(p), p, &buf, &len) == APR_SUCCESS);
    for (i = 0; i < len; i++) {
        v = NULL;
        if (decode_exact(p, ID, buf, i, &v) != APR_EINVAL || v) {
            all = 0;
            printf("# prefix of %lu bytes not refused\n", (unsigned long)i);
        }
    }
    RS_CHECK(all);
    RS_CHECK(len > 200);
    /* a byte after the end marker */
    v = NULL;
    buf = apr_pstrcat(p, apr_pstrmemdup(p, buf, len), "x", NULL);
    RS_CHECK(decode_exact(p, ID, buf, len + 1, &v) == APR_EINVAL && !v);
}

/* the documented example, versions, tag rules */
static void test_layout(apr_pool_t *p)
{
    static const unsigned char example[] = {
        0x01, 0x02, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1, 0x00, 0, 0, 0, 0
    };
    unsigned char bad[sizeof(example)];
    rs_upload_t *v = NULL;
    rec_t r;

    RS_CHECK(decode_exact(p, ID, example, sizeof(example), &v) == APR_SUCCESS);
    RS_CHECK(v && v->state == RS_STATE_ACTIVE && v->length == -1
             && v->pending_from == -1 && v->owner == NULL
             && !strcmp(v->id, ID));
    memcpy(bad, example, sizeof(bad));
    bad[0] = 2;
    RS_CHECK(decode_exact(p, ID, bad, sizeof(bad), &v) == APR_ENOTIMPL);
    bad[0] = 0;
    RS_CHECK(decode_exact(p, ID, bad, sizeof(bad), &v) == APR_ENOTIMPL);
    bad[0] = 0xff;
    RS_CHECK(decode_exact(p, ID, bad, 1, &v) == APR_ENOTIMPL);
    RS_CHECK(decode_exact(p, ID, example, 1, &v) == APR_EINVAL);
    memcpy(bad, example, sizeof(bad));
    bad[sizeof(bad) - 1] = 1;                      /* end marker with L=1 */
    RS_CHECK(decode_exact(p, ID, bad, sizeof(bad), &v) == APR_EINVAL);

    /* unknown optional tags are skipped, unknown critical ones refused */
    rec_start(&r);
    rec_raw(&r, 0x7e, "future", 6);
    rec_int(&r, 0x05, 42);
    rec_raw(&r, 0x40, "", 0);
    rec_end(&r);
    v = NULL;
    RS_CHECK(rec_decode(p, &r, &v) == APR_SUCCESS && v && v->length == 42);
    rec_start(&r);
    rec_raw(&r, 0x80, "must", 4);
    rec_end(&r);
    RS_CHECK(rec_decode(p, &r, &v) == APR_ENOTIMPL);
    rec_start(&r);
    rec_raw(&r, 0xff, "", 0);
    rec_end(&r);
    RS_CHECK(rec_decode(p, &r, &v) == APR_ENOTIMPL);
    /* fields in any order, each at most once */
    rec_start(&r);
    rec_raw(&r, 0x0e, "b.txt", 5);
    rec_int(&r, 0x02, 3);
    rec_end(&r);
    v = NULL;
    RS_CHECK(rec_decode(p, &r, &v) == APR_SUCCESS && v
             && v->state == RS_STATE_COMPLETE && !strcmp(v->filename, "b.txt"));
    rec_start(&r);
    rec_int(&r, 0x02, 1);
    rec_int(&r, 0x02, 1);
    rec_end(&r);
    RS_CHECK(rec_decode(p, &r, &v) == APR_EINVAL);
    rec_start(&r);
    rec_raw(&r, 0x0b, "a", 1);
    rec_raw(&r, 0x0b, "a", 1);
    rec_end(&r);
    RS_CHECK(rec_decode(p, &r, &v) == APR_EINVAL);
}

static int one_int_refused(apr_pool_t *p, int tag, apr_int64_t val)
{
    rs_upload_t *v = NULL;
    rec_t r;

    rec_start(&r);
    rec_int(&r, tag, val);
    rec_end(&r);
    return rec_decode(p, &r, &v) == APR_EINVAL && v == NULL;
}

static int one_int_ok(apr_pool_t *p, int tag, apr_int64_t val)
{
    rs_upload_t *v = NULL;
    rec_t r;

    rec_start(&r);
    rec_int(&r, tag, val);
    rec_end(&r);
    return rec_decode(p, &r, &v) == APR_SUCCESS && v != NULL;
}

static void test_ranges(apr_pool_t *p)
{
    rs_upload_t *v = NULL;
    rec_t r;

    RS_CHECK(one_int_refused(p, 0x02, 0));             /* state */
    RS_CHECK(one_int_refused(p, 0x02, 4));
    RS_CHECK(one_int_ok(p, 0x02, 2));
    RS_CHECK(one_int_refused(p, 0x03, -1));            /* proto */
    RS_CHECK(one_int_refused(p, 0x03, RS_PROTO__COUNT));
    RS_CHECK(one_int_ok(p, 0x03, RS_PROTO__COUNT - 1));
    RS_CHECK(one_int_refused(p, 0x04, -1));            /* flags */
    RS_CHECK(one_int_refused(p, 0x04, APR_INT64_C(0x100000000)));
    RS_CHECK(one_int_ok(p, 0x04, APR_INT64_C(0xffffffff)));
    RS_CHECK(one_int_refused(p, 0x05, -2));            /* length */
    RS_CHECK(one_int_refused(p, 0x05, APR_INT64_MIN));
    RS_CHECK(one_int_ok(p, 0x05, APR_INT64_MAX));
    RS_CHECK(one_int_refused(p, 0x06, -1));            /* offset */
    RS_CHECK(one_int_refused(p, 0x07, -2));            /* pending_from */
    RS_CHECK(one_int_ok(p, 0x08, APR_INT64_MIN));      /* created */
    RS_CHECK(one_int_refused(p, 0x14, -1));            /* chunk_size */
    RS_CHECK(one_int_refused(p, 0x15, -1));            /* chunk_count */
    RS_CHECK(one_int_refused(p, 0x15, RS_UPLOAD_MAX_CHUNKS + 1));
    RS_CHECK(one_int_refused(p, 0x15, APR_INT64_C(0x100000001)));
    RS_CHECK(one_int_ok(p, 0x15, RS_UPLOAD_MAX_CHUNKS));

    /* ints must be exactly 8 bytes */
    rec_start(&r);
    rec_raw(&r, 0x05, "\0\0\0\1", 4);
    rec_end(&r);
    RS_CHECK(rec_decode(p, &r, &v) == APR_EINVAL);
    rec_start(&r);
    rec_raw(&r, 0x05, "\0\0\0\0\0\0\0\0\1", 9);
    rec_end(&r);
    RS_CHECK(rec_decode(p, &r, &v) == APR_EINVAL);
    /* strings must not hold NUL */
    rec_start(&r);
    rec_raw(&r, 0x0e, "a\0b", 3);
    rec_end(&r);
    RS_CHECK(rec_decode(p, &r, &v) == APR_EINVAL);
    /* a length beyond the buffer */
    rec_start(&r);
    rec_raw(&r, 0x0e, "abc", 3);
    r.b[r.n - 4] = 0xff;                         /* L = 0xff000003 */
    r.b[r.n - 3 - 4] = 0xff;
    rec_end(&r);
    RS_CHECK(rec_decode(p, &r, &v) == APR_EINVAL);
}

static void test_lists_and_maps(apr_pool_t *p)
{
    rs_upload_t *v = NULL;
    rec_t r;
    int i;

    /* list: (4-byte length, bytes) items */
    rec_start(&r);
    rec_raw(&r, 0x12, "\0\0\0\1a\0\0\0\0\0\0\0\2bc", 15);
    rec_end(&r);
    RS_CHECK(rec_decode(p, &r, &v) == APR_SUCCESS && v && v->parts
             && v->parts->nelts == 3
             && !strcmp(APR_ARRAY_IDX(v->parts, 0, const char *), "a")
             && !strcmp(APR_ARRAY_IDX(v->parts, 1, const char *), "")
             && !strcmp(APR_ARRAY_IDX(v->parts, 2, const char *), "bc"));
    rec_start(&r);
    rec_raw(&r, 0x13, "\0\0\0\2a", 5);            /* item past the field */
    rec_end(&r);
    RS_CHECK(rec_decode(p, &r, &v) == APR_EINVAL);
    rec_start(&r);
    rec_raw(&r, 0x13, "\0\0\0", 3);               /* cut item length */
    rec_end(&r);
    RS_CHECK(rec_decode(p, &r, &v) == APR_EINVAL);
    rec_start(&r);
    rec_raw(&r, 0x12, "\0\0\0\2a\0", 6);          /* NUL in an item */
    rec_end(&r);
    RS_CHECK(rec_decode(p, &r, &v) == APR_EINVAL);
    /* too many items: 1001 empty ones */
    {
        static unsigned char items[(RS_UPLOAD_MAX_PARTS + 1) * 4];
        static rec_t big;
        rec_start(&big);
        rec_raw(&big, 0x12, items, sizeof(items) - 4);
        rec_end(&big);
        v = NULL;
        RS_CHECK(rec_decode(p, &big, &v) == APR_SUCCESS && v
                 && v->parts->nelts == RS_UPLOAD_MAX_PARTS);
        rec_start(&big);
        rec_raw(&big, 0x12, items, sizeof(items));
        rec_end(&big);
        RS_CHECK(rec_decode(p, &big, &v) == APR_EINVAL);
    }

    /* chunk map length must be (chunk_count + 7) / 8 */
    for (i = 0; i < 4; i++) {
        static const apr_size_t lens[] = { 1, 3, 0, 2 };
        rec_start(&r);
        rec_int(&r, 0x15, 9);
        rec_raw(&r, 0x16, "\x01\x01\x00", lens[i]);
        rec_end(&r);
        v = NULL;
        RS_CHECK((rec_decode(p, &r, &v) == APR_SUCCESS) == (lens[i] == 2));
    }
    RS_CHECK(v && rs_upload_chunk_has(v, 0) && rs_upload_chunk_has(v, 8)
             && rs_upload_chunks_missing(v) == 7);
    /* map before the count is fine, padding bits are not */
    rec_start(&r);
    rec_raw(&r, 0x16, "\x01\x03", 2);
    rec_int(&r, 0x15, 9);
    rec_end(&r);
    RS_CHECK(rec_decode(p, &r, &v) == APR_EINVAL);
    rec_start(&r);
    rec_raw(&r, 0x16, "\xff", 1);
    rec_int(&r, 0x15, 8);
    rec_end(&r);
    v = NULL;
    RS_CHECK(rec_decode(p, &r, &v) == APR_SUCCESS && v
             && rs_upload_chunks_missing(v) == 0);
    rec_start(&r);
    rec_raw(&r, 0x16, "\x01", 1);                 /* map without count */
    rec_end(&r);
    RS_CHECK(rec_decode(p, &r, &v) == APR_EINVAL);
    rec_start(&r);
    rec_raw(&r, 0x16, "", 0);                     /* empty map, no chunks */
    rec_end(&r);
    v = NULL;
    RS_CHECK(rec_decode(p, &r, &v) == APR_SUCCESS && v && !v->chunk_map);
}

/* random byte flips never crash; whatever decodes re-encodes */
static void test_fuzz(apr_pool_t *p)
{
    apr_uint32_t seed = 0x9e3779b9u;
    apr_pool_t *sub;
    rs_upload_t *v;
    char *buf, *copy;
    apr_size_t len, at;
    apr_status_t rv;
    int i, k, flips, bad = 0, decoded = 0;

    RS_CHECK(rs_upload_encode(full_record(p), p, &buf, &len) == APR_SUCCESS);
    apr_pool_create(&sub, p);
    for (i = 0; i < 3000; i++) {
        copy = malloc(len);
        memcpy(copy, buf, len);
        flips = 1 + i % 3;
        for (k = 0; k < flips; k++) {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            at = i < 256 ? (apr_size_t)i % len : seed % len;
            copy[at] ^= (char)(i < 256 ? 0xff : 1 + (seed >> 24) % 255);
        }
        v = NULL;
        rv = rs_upload_decode(sub, ID, copy, len, &v);
        if (rv == APR_SUCCESS) {
            char *b2;
            apr_size_t l2;
            decoded++;
            if (!v || rs_upload_encode(v, sub, &b2, &l2) != APR_SUCCESS) {
                bad++;
            }
        }
        else if (rv != APR_EINVAL && rv != APR_ENOTIMPL) {
            bad++;
        }
        free(copy);
        apr_pool_clear(sub);
    }
    apr_pool_destroy(sub);
    RS_CHECK(bad == 0);
    RS_CHECK(decoded > 0);          /* some flips only change values */
}

void suite_upload(apr_pool_t *p)
{
    test_make(p);
    test_chunks(p);
    test_roundtrip(p);
    test_roundtrip_empty(p);
    test_limits(p);
    test_truncation(p);
    test_layout(p);
    test_ranges(p);
    test_lists_and_maps(p);
    test_fuzz(p);
}
