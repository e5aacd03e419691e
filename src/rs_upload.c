/* Licensed to the Apache Software Foundation (ASF) under one or more
 * contributor license agreements; and licensed under the Apache License,
 * Version 2.0 (the "License"); you may not use this file except in
 * compliance with the License. See http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * The upload record and its codec (see rs_upload.h).
 *
 * RECORD LAYOUT, format version 1
 * ===============================
 * All multi-byte integers are big-endian.
 *
 *   byte 0        format version, 0x01. Any other value: APR_ENOTIMPL.
 *   bytes 1..     fields, back to back, each one
 *                     1 byte    tag
 *                     4 bytes   L, length of the value (unsigned)
 *                     L bytes   value
 *   last field    end marker: tag 0x00 with L = 0. It must be present and
 *                 nothing may follow it, so a truncated record (cut at any
 *                 byte, also between two fields) is always APR_EINVAL.
 *
 * Minor revisions add tags. Tags 0x01-0x7f are optional: a decoder skips a
 * tag it does not know. Tags 0x80-0xff are critical: a decoder that does
 * not know one refuses the record with APR_ENOTIMPL (version 1 defines no
 * critical tag). A known tag may appear at most once (else APR_EINVAL);
 * fields may come in any order (the encoder writes them in tag order).
 *
 * Value kinds:
 *   int   exactly L = 8: a two's complement signed 64-bit integer.
 *   str   the L bytes of a C string without its terminator; NUL inside is
 *         APR_EINVAL. L = 0 is "", an absent field is NULL.
 *   list  an array of strings: zero or more items, each a 4-byte length N
 *         and N bytes (a str). L = 0 is an empty array, an absent field a
 *         NULL array; at most RS_UPLOAD_MAX_PARTS items.
 *   bits  the chunk map: exactly (chunk_count + 7) / 8 bytes; chunk i is
 *         bit (i % 8) (least significant first) of byte i / 8; bits past
 *         chunk_count must be zero. Written only when chunk_count > 0 and
 *         chunk_map is set; when it is absent chunk_map decodes as NULL.
 *
 * Tags of version 1 (field of rs_upload_t, kind, accepted range):
 *   0x01 id            str   equal to the id given to decode, if one is
 *   0x02 state         int   1..3 (rs_upload_state_t)
 *   0x03 proto         int   0..RS_PROTO__COUNT-1
 *   0x04 flags         int   0..UINT_MAX (unknown bits are kept)
 *   0x05 length        int   -1..max apr_off_t
 *   0x06 offset        int   0..max apr_off_t
 *   0x07 pending_from  int   -1..max apr_off_t
 *   0x08 created       int   any (apr_time_t, microseconds)
 *   0x09 updated       int   any
 *   0x0a expires       int   any (0: never)
 *   0x0b owner         str
 *   0x0c dir           str
 *   0x0d metadata      str
 *   0x0e filename      str
 *   0x0f filetype      str
 *   0x10 path          str
 *   0x11 concat        str
 *   0x12 parts         list
 *   0x13 waiters       list
 *   0x14 chunk_size    int   0..max apr_off_t
 *   0x15 chunk_count   int   0..RS_UPLOAD_MAX_CHUNKS
 *   0x16 chunk_map     bits
 *   0x17 client_key    str
 *   0x18 digest_alg    str
 *   0x19 digest        str
 *   0x1a epoch         int   0..max int64 (cluster writer lease)
 *   0x1b lease_owner   str
 *   0x1c lease_until   int   any
 *   0x1d stop_req      int   any
 *   0x1e segs          segs  cluster append mode: L = 24 * n, n at most
 *                            RS_UPLOAD_MAX_SEGS; each segment epoch,
 *                            start, len as three int64: epoch >= 1,
 *                            len >= 0, the first start 0 and each next
 *                            start the previous start + len
 *
 * Absent int fields take the defaults of a fresh record (state ACTIVE,
 * proto TUS, length -1, pending_from -1, everything else 0). The encoder
 * always writes every int field. The whole record is at most
 * RS_UPLOAD_MAX_RECORD bytes, on encode and decode.
 *
 * The encoder refuses (APR_EINVAL) a record the decoder would refuse.
 *
 * Example: a record with only state = ACTIVE, then the end marker
 * (spaces for reading only):
 *   01  02 00000008 0000000000000001  00 00000000
 */

#include <stddef.h>
#include <string.h>
#include <limits.h>
#include <apr_strings.h>
#include "rs_upload.h"

#define RS_UPLOAD_FORMAT 1
#define RS_UPLOAD_OFF_MAX ((apr_int64_t)((((apr_uint64_t)1) \
                           << (sizeof(apr_off_t) * 8 - 1)) - 1))

/* tag numbers are part of the stored format: never renumber or reuse */
enum {
    TAG_END          = 0x00,
    TAG_ID           = 0x01,
    TAG_STATE        = 0x02,
    TAG_PROTO        = 0x03,
    TAG_FLAGS        = 0x04,
    TAG_LENGTH       = 0x05,
    TAG_OFFSET       = 0x06,
    TAG_PENDING_FROM = 0x07,
    TAG_CREATED      = 0x08,
    TAG_UPDATED      = 0x09,
    TAG_EXPIRES      = 0x0a,
    TAG_OWNER        = 0x0b,
    TAG_DIR          = 0x0c,
    TAG_METADATA     = 0x0d,
    TAG_FILENAME     = 0x0e,
    TAG_FILETYPE     = 0x0f,
    TAG_PATH         = 0x10,
    TAG_CONCAT       = 0x11,
    TAG_PARTS        = 0x12,
    TAG_WAITERS      = 0x13,
    TAG_CHUNK_SIZE   = 0x14,
    TAG_CHUNK_COUNT  = 0x15,
    TAG_CHUNK_MAP    = 0x16,
    TAG_CLIENT_KEY   = 0x17,
    TAG_DIGEST_ALG   = 0x18,
    TAG_DIGEST       = 0x19,
    TAG_EPOCH        = 0x1a,
    TAG_LEASE_OWNER  = 0x1b,
    TAG_LEASE_UNTIL  = 0x1c,
    TAG_STOP_REQ     = 0x1d,
    TAG_SEGS         = 0x1e,
    TAG__LAST        = TAG_SEGS,
    TAG_CRITICAL     = 0x80          /* 0x80-0xff: must be understood */
};

/* the string fields: tag and place in rs_upload_t */
static const struct {
    unsigned char tag;
    apr_size_t off;
} str_fields[] = {
    { TAG_ID,         offsetof(rs_upload_t, id) },
    { TAG_OWNER,      offsetof(rs_upload_t, owner) },
    { TAG_DIR,        offsetof(rs_upload_t, dir) },
    { TAG_METADATA,   offsetof(rs_upload_t, metadata) },
    { TAG_FILENAME,   offsetof(rs_upload_t, filename) },
    { TAG_FILETYPE,   offsetof(rs_upload_t, filetype) },
    { TAG_PATH,       offsetof(rs_upload_t, path) },
    { TAG_CONCAT,     offsetof(rs_upload_t, concat) },
    { TAG_CLIENT_KEY, offsetof(rs_upload_t, client_key) },
    { TAG_DIGEST_ALG, offsetof(rs_upload_t, digest_alg) },
    { TAG_DIGEST,     offsetof(rs_upload_t, digest) },
    { TAG_LEASE_OWNER, offsetof(rs_upload_t, lease_owner) },
};

#define N_STR_FIELDS (sizeof(str_fields) / sizeof(str_fields[0]))
#define STR_FIELD(u, i) (*(const char **)((char *)(u) + str_fields[i].off))

static apr_size_t map_bytes(int count)
{
    return count > 0 ? ((apr_size_t)count + 7) / 8 : 0;
}

/* ---- records ----------------------------------------------------------- */

static rs_upload_t *upload_defaults(apr_pool_t *p)
{
    rs_upload_t *u = apr_pcalloc(p, sizeof(*u));

    u->state = RS_STATE_ACTIVE;
    u->proto = RS_PROTO_TUS;
    u->length = -1;
    u->pending_from = -1;
    return u;
}

rs_upload_t *rs_upload_make(apr_pool_t *p, const char *id)
{
    rs_upload_t *u = upload_defaults(p);

    u->id = id ? apr_pstrdup(p, id) : NULL;
    u->owner = "";
    u->created = apr_time_now();
    u->updated = u->created;
    return u;
}

const char *rs_upload_state_name(rs_upload_state_t s)
{
    switch (s) {
    case RS_STATE_ACTIVE:     return "active";
    case RS_STATE_ASSEMBLING: return "assembling";
    case RS_STATE_COMPLETE:   return "complete";
    }
    return "unknown";
}

/* ---- chunk map --------------------------------------------------------- */

int rs_upload_chunk_has(const rs_upload_t *u, int index)
{
    if (!u->chunk_map || index < 0 || index >= u->chunk_count) {
        return 0;
    }
    return (u->chunk_map[index >> 3] >> (index & 7)) & 1;
}

/* The caller allocates chunk_map ((chunk_count + 7) / 8 zeroed bytes);
 * without one, or with an index out of range, nothing happens. */
void rs_upload_chunk_set(rs_upload_t *u, int index)
{
    if (u->chunk_map && index >= 0 && index < u->chunk_count) {
        u->chunk_map[index >> 3] |= (unsigned char)(1u << (index & 7));
    }
}

int rs_upload_chunks_missing(const rs_upload_t *u)
{
    int i, missing = 0;

    for (i = 0; i < u->chunk_count; i++) {
        missing += !rs_upload_chunk_has(u, i);
    }
    return missing;
}

/* ---- encoding ---------------------------------------------------------- */

/* A writer that only counts while buf is NULL: encode runs twice, once to
 * measure and once to write. */
typedef struct {
    unsigned char *buf;
    apr_size_t len;
} rs_writer_t;

static void put_bytes(rs_writer_t *w, const void *data, apr_size_t n)
{
    if (w->buf && n) {
        memcpy(w->buf + w->len, data, n);
    }
    w->len += n;
}

static void put_u32(rs_writer_t *w, apr_size_t v)
{
    unsigned char b[4];

    b[0] = (unsigned char)(v >> 24);
    b[1] = (unsigned char)(v >> 16);
    b[2] = (unsigned char)(v >> 8);
    b[3] = (unsigned char)v;
    put_bytes(w, b, 4);
}

static void put_head(rs_writer_t *w, int tag, apr_size_t len)
{
    unsigned char t = (unsigned char)tag;

    put_bytes(w, &t, 1);
    put_u32(w, len);
}

static void put_i64(rs_writer_t *w, apr_int64_t v);

static void put_int(rs_writer_t *w, int tag, apr_int64_t v)
{
    put_head(w, tag, 8);
    put_i64(w, v);
}

static void put_str(rs_writer_t *w, int tag, const char *s)
{
    apr_size_t n;

    if (s) {
        n = strlen(s);
        put_head(w, tag, n);
        put_bytes(w, s, n);
    }
}

static void put_list(rs_writer_t *w, int tag, const apr_array_header_t *arr)
{
    const char *const *s;
    apr_size_t total = 0;
    int i;

    if (!arr) {
        return;
    }
    s = (const char *const *)arr->elts;
    for (i = 0; i < arr->nelts; i++) {
        total += 4 + strlen(s[i]);
    }
    put_head(w, tag, total);
    for (i = 0; i < arr->nelts; i++) {
        put_u32(w, strlen(s[i]));
        put_bytes(w, s[i], strlen(s[i]));
    }
}

static void put_map(rs_writer_t *w, const rs_upload_t *u)
{
    apr_size_t n = map_bytes(u->chunk_count);
    unsigned char last;

    if (!u->chunk_map || n == 0) {
        return;
    }
    put_head(w, TAG_CHUNK_MAP, n);
    put_bytes(w, u->chunk_map, n - 1);
    last = u->chunk_map[n - 1];
    if (u->chunk_count % 8) {
        last &= (unsigned char)((1u << (u->chunk_count % 8)) - 1);
    }
    put_bytes(w, &last, 1);
}

static void put_i64(rs_writer_t *w, apr_int64_t v)
{
    apr_uint64_t u = (apr_uint64_t)v;
    unsigned char b[8];
    int i;

    for (i = 7; i >= 0; i--, u >>= 8) {
        b[i] = (unsigned char)u;
    }
    put_bytes(w, b, 8);
}

static void put_segs(rs_writer_t *w, const rs_upload_t *u)
{
    int i;

    if (u->nsegs <= 0 || !u->segs) {
        return;
    }
    put_head(w, TAG_SEGS, (apr_size_t)u->nsegs * 24);
    for (i = 0; i < u->nsegs; i++) {
        put_i64(w, u->segs[i].epoch);
        put_i64(w, u->segs[i].start);
        put_i64(w, u->segs[i].len);
    }
}

static void put_record(rs_writer_t *w, const rs_upload_t *u)
{
    unsigned char version = RS_UPLOAD_FORMAT;
    apr_size_t i;

    put_bytes(w, &version, 1);
    put_int(w, TAG_STATE, u->state);
    put_int(w, TAG_PROTO, u->proto);
    put_int(w, TAG_FLAGS, u->flags);
    put_int(w, TAG_LENGTH, u->length);
    put_int(w, TAG_OFFSET, u->offset);
    put_int(w, TAG_PENDING_FROM, u->pending_from);
    put_int(w, TAG_CREATED, u->created);
    put_int(w, TAG_UPDATED, u->updated);
    put_int(w, TAG_EXPIRES, u->expires);
    for (i = 0; i < N_STR_FIELDS; i++) {
        put_str(w, str_fields[i].tag, STR_FIELD(u, i));
    }
    put_list(w, TAG_PARTS, u->parts);
    put_list(w, TAG_WAITERS, u->waiters);
    put_int(w, TAG_CHUNK_SIZE, u->chunk_size);
    put_int(w, TAG_CHUNK_COUNT, u->chunk_count);
    put_map(w, u);
    if (u->epoch) {
        put_int(w, TAG_EPOCH, u->epoch);
    }
    if (u->lease_until) {
        put_int(w, TAG_LEASE_UNTIL, u->lease_until);
    }
    if (u->stop_req) {
        put_int(w, TAG_STOP_REQ, u->stop_req);
    }
    put_segs(w, u);
    put_head(w, TAG_END, 0);
}

static int list_valid(const apr_array_header_t *arr)
{
    const char *const *s;
    int i;

    if (!arr) {
        return 1;
    }
    if (arr->nelts > RS_UPLOAD_MAX_PARTS) {
        return 0;
    }
    s = (const char *const *)arr->elts;
    for (i = 0; i < arr->nelts; i++) {
        if (!s[i]) {
            return 0;
        }
    }
    return 1;
}

static int segs_valid(const rs_segment_t *s, int n)
{
    apr_off_t next = 0;
    int i;

    if (n < 0 || n > RS_UPLOAD_MAX_SEGS || (n > 0 && !s)) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        if (s[i].epoch < 1 || s[i].start != next || s[i].len < 0
            || s[i].len > RS_UPLOAD_OFF_MAX - s[i].start) {
            return 0;
        }
        next = s[i].start + s[i].len;
    }
    return 1;
}

/* the ranges decode accepts (see the layout above) */
static int encodable(const rs_upload_t *u)
{
    return u->epoch >= 0 && segs_valid(u->segs, u->nsegs)
        && u->state >= RS_STATE_ACTIVE && u->state <= RS_STATE_COMPLETE
        && (int)u->proto >= 0 && u->proto < RS_PROTO__COUNT
        && u->length >= -1 && u->offset >= 0 && u->pending_from >= -1
        && u->chunk_size >= 0 && u->chunk_count >= 0
        && u->chunk_count <= RS_UPLOAD_MAX_CHUNKS
        && list_valid(u->parts) && list_valid(u->waiters);
}

apr_status_t rs_upload_encode(const rs_upload_t *u, apr_pool_t *p,
                              char **buf, apr_size_t *len)
{
    rs_writer_t w = { NULL, 0 };

    if (!encodable(u)) {
        return APR_EINVAL;
    }
    put_record(&w, u);
    if (w.len > RS_UPLOAD_MAX_RECORD) {
        return APR_EINVAL;
    }
    w.buf = apr_palloc(p, w.len);
    w.len = 0;
    put_record(&w, u);
    *buf = (char *)w.buf;
    *len = w.len;
    return APR_SUCCESS;
}

/* ---- decoding ---------------------------------------------------------- */

typedef struct {
    const unsigned char *p;
    apr_size_t left;
} rs_reader_t;

/* n bytes from r, or 0 when fewer are left */
static int get_bytes(rs_reader_t *r, apr_size_t n, const unsigned char **out)
{
    if (n > r->left) {
        return 0;
    }
    *out = r->p;
    r->p += n;
    r->left -= n;
    return 1;
}

static int get_u32(rs_reader_t *r, apr_size_t *v)
{
    const unsigned char *b;

    if (!get_bytes(r, 4, &b)) {
        return 0;
    }
    *v = ((apr_size_t)b[0] << 24) | ((apr_size_t)b[1] << 16)
         | ((apr_size_t)b[2] << 8) | b[3];
    return 1;
}

/* str value: a copy, or NULL when it holds a NUL */
static const char *get_str(apr_pool_t *p, const unsigned char *v, apr_size_t n)
{
    if (memchr(v, 0, n)) {
        return NULL;
    }
    return apr_pstrmemdup(p, (const char *)v, n);
}

static apr_status_t get_list(apr_pool_t *p, const unsigned char *v,
                             apr_size_t n, apr_array_header_t **arr)
{
    rs_reader_t r = { v, n };
    const unsigned char *item;
    const char *s;
    apr_size_t ilen;

    *arr = apr_array_make(p, 4, sizeof(const char *));
    while (r.left > 0) {
        if ((*arr)->nelts >= RS_UPLOAD_MAX_PARTS || !get_u32(&r, &ilen)
            || !get_bytes(&r, ilen, &item)
            || !(s = get_str(p, item, ilen))) {
            return APR_EINVAL;
        }
        *(const char **)apr_array_push(*arr) = s;
    }
    return APR_SUCCESS;
}

static apr_int64_t get_i64(const unsigned char *v)
{
    apr_uint64_t u = 0;
    int i;

    for (i = 0; i < 8; i++) {
        u = (u << 8) | v[i];
    }
    /* two's complement without implementation-defined conversion */
    return u > (apr_uint64_t)APR_INT64_MAX
           ? -(apr_int64_t)(~u) - 1 : (apr_int64_t)u;
}

static int in_range(apr_int64_t v, apr_int64_t lo, apr_int64_t hi)
{
    return v >= lo && v <= hi;
}

/* the apr_off_t and apr_time_t fields (see set_int) */
static int set_time_or_off(rs_upload_t *u, int tag, apr_int64_t v)
{
    apr_off_t *off = NULL;
    apr_int64_t lo = 0;

    switch (tag) {
    case TAG_CREATED: u->created = v; return 1;
    case TAG_UPDATED: u->updated = v; return 1;
    case TAG_EXPIRES: u->expires = v; return 1;
    case TAG_LEASE_UNTIL: u->lease_until = v; return 1;
    case TAG_STOP_REQ: u->stop_req = v; return 1;
    case TAG_LENGTH: off = &u->length; lo = -1; break;
    case TAG_OFFSET: off = &u->offset; break;
    case TAG_PENDING_FROM: off = &u->pending_from; lo = -1; break;
    case TAG_CHUNK_SIZE: off = &u->chunk_size; break;
    default: return -1;
    }
    if (!in_range(v, lo, RS_UPLOAD_OFF_MAX)) {
        return 0;
    }
    *off = (apr_off_t)v;
    return 1;
}

/* Store int field `tag`: 1 done, 0 v out of range, -1 tag is no int */
static int set_int(rs_upload_t *u, int tag, apr_int64_t v)
{
    switch (tag) {
    case TAG_STATE:
        if (!in_range(v, RS_STATE_ACTIVE, RS_STATE_COMPLETE)) {
            return 0;
        }
        u->state = (rs_upload_state_t)v;
        return 1;
    case TAG_PROTO:
        if (!in_range(v, 0, RS_PROTO__COUNT - 1)) {
            return 0;
        }
        u->proto = (rs_proto_id_t)v;
        return 1;
    case TAG_FLAGS:
        if (!in_range(v, 0, UINT_MAX)) {
            return 0;
        }
        u->flags = (unsigned int)v;
        return 1;
    case TAG_CHUNK_COUNT:
        if (!in_range(v, 0, RS_UPLOAD_MAX_CHUNKS)) {
            return 0;
        }
        u->chunk_count = (int)v;
        return 1;
    case TAG_EPOCH:
        if (v < 0) {
            return 0;
        }
        u->epoch = v;
        return 1;
    }
    return set_time_or_off(u, tag, v);
}

static int set_str(apr_pool_t *p, rs_upload_t *u, int tag,
                   const unsigned char *v, apr_size_t n)
{
    apr_size_t i;

    for (i = 0; i < N_STR_FIELDS; i++) {
        if (str_fields[i].tag == tag) {
            STR_FIELD(u, i) = get_str(p, v, n);
            return STR_FIELD(u, i) != NULL;
        }
    }
    return -1;
}

static apr_status_t get_segs(apr_pool_t *p, const unsigned char *v,
                             apr_size_t n, rs_upload_t *u)
{
    int i, count;

    if (n % 24 || n / 24 > RS_UPLOAD_MAX_SEGS) {
        return APR_EINVAL;
    }
    count = (int)(n / 24);
    u->segs = apr_pcalloc(p, sizeof(*u->segs) * (count ? count : 1));
    for (i = 0; i < count; i++, v += 24) {
        u->segs[i].epoch = get_i64(v);
        u->segs[i].start = (apr_off_t)get_i64(v + 8);
        u->segs[i].len = (apr_off_t)get_i64(v + 16);
    }
    u->nsegs = count;
    return segs_valid(u->segs, count) ? APR_SUCCESS : APR_EINVAL;
}

/* state of one decode: the record and what must be checked at the end */
typedef struct {
    apr_pool_t *p;
    rs_upload_t *u;
    const unsigned char *map;
    apr_size_t map_len;
    unsigned char seen[TAG__LAST + 1];
} rs_decoder_t;

static apr_status_t decode_field(rs_decoder_t *d, int tag,
                                 const unsigned char *v, apr_size_t n)
{
    int ok;

    if (tag > TAG__LAST) {
        return tag >= TAG_CRITICAL ? APR_ENOTIMPL : APR_SUCCESS;
    }
    if (d->seen[tag]++) {
        return APR_EINVAL;
    }
    if (tag == TAG_PARTS) {
        return get_list(d->p, v, n, &d->u->parts);
    }
    if (tag == TAG_WAITERS) {
        return get_list(d->p, v, n, &d->u->waiters);
    }
    if (tag == TAG_SEGS) {
        return get_segs(d->p, v, n, d->u);
    }
    if (tag == TAG_CHUNK_MAP) {
        d->map = v;
        d->map_len = n;
        return APR_SUCCESS;
    }
    ok = set_str(d->p, d->u, tag, v, n);
    if (ok < 0) {
        ok = n == 8 && set_int(d->u, tag, get_i64(v)) > 0;
    }
    return ok ? APR_SUCCESS : APR_EINVAL;
}

/* The chunk map must fit chunk_count exactly, with zero padding bits. */
static apr_status_t decode_map(rs_decoder_t *d)
{
    rs_upload_t *u = d->u;
    int rest = u->chunk_count % 8;

    if (!d->seen[TAG_CHUNK_MAP]) {
        return APR_SUCCESS;
    }
    if (d->map_len != map_bytes(u->chunk_count)) {
        return APR_EINVAL;
    }
    if (d->map_len == 0) {
        return APR_SUCCESS;
    }
    if (rest && (d->map[d->map_len - 1] >> rest)) {
        return APR_EINVAL;
    }
    u->chunk_map = apr_pmemdup(d->p, d->map, d->map_len);
    return APR_SUCCESS;
}

static apr_status_t decode_fields(rs_decoder_t *d, rs_reader_t *r)
{
    const unsigned char *tag, *v;
    apr_size_t n;
    apr_status_t rv;

    for (;;) {
        if (!get_bytes(r, 1, &tag) || !get_u32(r, &n) || !get_bytes(r, n, &v)) {
            return APR_EINVAL;
        }
        if (*tag == TAG_END) {
            return (n == 0 && r->left == 0) ? APR_SUCCESS : APR_EINVAL;
        }
        rv = decode_field(d, *tag, v, n);
        if (rv != APR_SUCCESS) {
            return rv;
        }
    }
}

apr_status_t rs_upload_decode(apr_pool_t *p, const char *id, const char *buf,
                              apr_size_t len, rs_upload_t **u)
{
    rs_reader_t r;
    rs_decoder_t d;
    apr_status_t rv;

    if (!buf || len < 1 || len > RS_UPLOAD_MAX_RECORD) {
        return APR_EINVAL;
    }
    if ((unsigned char)buf[0] != RS_UPLOAD_FORMAT) {
        return APR_ENOTIMPL;
    }
    memset(&d, 0, sizeof(d));
    d.p = p;
    d.u = upload_defaults(p);
    r.p = (const unsigned char *)buf + 1;
    r.left = len - 1;
    rv = decode_fields(&d, &r);
    if (rv == APR_SUCCESS) {
        rv = decode_map(&d);
    }
    if (rv == APR_SUCCESS && id) {
        if (d.u->id && strcmp(d.u->id, id)) {
            return APR_EINVAL;          /* stored under the wrong key */
        }
        d.u->id = apr_pstrdup(p, id);
    }
    if (rv == APR_SUCCESS) {
        *u = d.u;
    }
    return rv;
}

int rs_upload_append_mode(const rs_upload_t *u)
{
    return RS_STATE_ACTIVE == u->state
           && !(u->flags & (RS_UF_CHUNKED | RS_UF_FINAL));
}
