/* Licensed under the Apache License, Version 2.0. */
/*
 * libFuzzer target: the incremental multipart/form-data parser. Input:
 * a Content-Type value up to the first '\n', then the body. The body is
 * parsed twice, in one piece and in pieces of 1..16 bytes chosen from the
 * body itself: callbacks must be well nested (begin, data*, end) and both
 * runs must agree on the result, the parts and every byte of their data.
 */
#include "fuzz_common.h"
#include "rs_multipart.h"

typedef struct {
    int in_part;
    int parts;
    unsigned long sum;           /* checksum of data bytes and part order */
    apr_size_t bytes;
} run_t;

static apr_status_t on_begin(void *baton, const char *name,
                             const char *filename, const char *ctype)
{
    run_t *r = baton;

    if (r->in_part || !name) {
        abort();
    }
    r->in_part = 1;
    r->parts++;
    r->sum = r->sum * 31 + strlen(name) + (filename ? 7 : 0);
    return APR_SUCCESS;
}

static apr_status_t on_data(void *baton, const char *data, apr_size_t len)
{
    run_t *r = baton;
    apr_size_t i;

    if (!r->in_part) {
        abort();
    }
    for (i = 0; i < len; i++) {
        r->sum = r->sum * 131 + (unsigned char)data[i];
    }
    r->bytes += len;
    return APR_SUCCESS;
}

static apr_status_t on_end(void *baton)
{
    run_t *r = baton;

    if (!r->in_part) {
        abort();
    }
    r->in_part = 0;
    r->sum = r->sum * 17 + 3;
    return APR_SUCCESS;
}

static const rs_mp_cb_t cbs = { on_begin, on_data, on_end };

static apr_status_t run(apr_pool_t *p, const char *boundary,
                        const uint8_t *body, size_t len, int split, run_t *r)
{
    rs_mp_t *mp;
    size_t pos = 0, n;
    apr_status_t rv = rs_mp_create(&mp, boundary, 16, &cbs, r, p);

    while (APR_SUCCESS == rv && pos < len) {
        n = split ? 1 + body[pos] % 16 : len;
        n = n > len - pos ? len - pos : n;
        rv = rs_mp_feed(mp, (const char *)body + pos, n);
        pos += n;
    }
    return APR_SUCCESS == rv ? rs_mp_finish(mp) : rv;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    const uint8_t *nl = memchr(data, '\n', size);
    const char *boundary;
    run_t a = { 0 }, b = { 0 };
    apr_status_t ra, rb;
    size_t hlen = nl ? (size_t)(nl - data) : size;

    if (nl && APR_SUCCESS == rs_mp_boundary(p, fuzz_cstr(p, data, hlen),
                                            &boundary)) {
        ra = run(p, boundary, nl + 1, size - hlen - 1, 0, &a);
        rb = run(p, boundary, nl + 1, size - hlen - 1, 1, &b);
        if ((APR_SUCCESS == ra) != (APR_SUCCESS == rb)
            || (APR_SUCCESS == ra && (a.parts != b.parts || a.sum != b.sum
                                      || a.bytes != b.bytes || a.in_part))) {
            abort();
        }
    }
    apr_pool_destroy(p);
    return 0;
}
