/* Licensed to the Apache Software Foundation (ASF) under one or more
 * contributor license agreements; and licensed under the Apache License,
 * Version 2.0 (the "License"); you may not use this file except in
 * compliance with the License. See http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * Streaming digests over OpenSSL EVP (see rs_hash.h). Names: the tus
 * checksum names md5, sha1, sha256, sha512 (rs_hash_known) and, for
 * rs_hash_create only, the RFC 9530 names sha-256 and sha-512. An update
 * that fails inside OpenSSL is remembered and reported by rs_hash_final.
 */

#include <string.h>
#include <openssl/evp.h>
#include <apr_strings.h>
#include "rs_hash.h"
#include "rs_util.h"

#define RS_HASH_PIECE (1024 * 1024)   /* read size of rs_hash_file_range */
#define RS_HASH_ALG_MAX 32            /* longest algorithm name parsed */

typedef struct {
    const char *name;
    const EVP_MD *(*md)(void);
    apr_size_t len;
    int tus;                          /* one of the tus checksum names */
} rs_hash_alg_t;

static const rs_hash_alg_t rs_hash_algs[] = {
    { "md5",     EVP_md5,    16, 1 },
    { "sha1",    EVP_sha1,   20, 1 },
    { "sha256",  EVP_sha256, 32, 1 },
    { "sha512",  EVP_sha512, 64, 1 },
    { "sha-256", EVP_sha256, 32, 0 },
    { "sha-512", EVP_sha512, 64, 0 },
    { NULL, NULL, 0, 0 }
};

struct rs_hash_t {
    EVP_MD_CTX *ctx;
    int failed;                       /* an update failed */
    int finished;
};

static const rs_hash_alg_t *alg_find(const char *name)
{
    const rs_hash_alg_t *a;

    for (a = rs_hash_algs; name && a->name; a++) {
        if (!strcmp(a->name, name)) {
            return a;
        }
    }
    return NULL;
}

int rs_hash_known(const char *alg)
{
    const rs_hash_alg_t *a = alg_find(alg);

    return a && a->tus;
}

static apr_status_t hash_cleanup(void *data)
{
    rs_hash_t *h = data;

    EVP_MD_CTX_free(h->ctx);
    h->ctx = NULL;
    return APR_SUCCESS;
}

apr_status_t rs_hash_create(rs_hash_t **h, const char *alg, apr_pool_t *p)
{
    const rs_hash_alg_t *a = alg_find(alg);
    rs_hash_t *hash;

    if (!a) {
        return APR_ENOTIMPL;
    }
    hash = apr_pcalloc(p, sizeof(*hash));
    hash->ctx = EVP_MD_CTX_new();
    if (!hash->ctx) {
        return APR_ENOMEM;
    }
    apr_pool_cleanup_register(p, hash, hash_cleanup, apr_pool_cleanup_null);
    if (!EVP_DigestInit_ex(hash->ctx, a->md(), NULL)) {
        return APR_ENOTIMPL;          /* e.g. md5 in a FIPS-only build */
    }
    *h = hash;
    return APR_SUCCESS;
}

void rs_hash_update(rs_hash_t *h, const void *data, apr_size_t len)
{
    if (h->finished || h->failed || len == 0) {
        return;
    }
    if (!EVP_DigestUpdate(h->ctx, data, len)) {
        h->failed = 1;
    }
}

apr_status_t rs_hash_final(rs_hash_t *h, unsigned char *out, apr_size_t *outlen)
{
    unsigned int n = 0;

    if (h->finished) {
        return APR_EINVAL;
    }
    h->finished = 1;
    if (h->failed || !EVP_DigestFinal_ex(h->ctx, out, &n)) {
        return APR_EGENERAL;
    }
    *outlen = n;
    return APR_SUCCESS;
}

static apr_status_t hash_file(rs_hash_t *h, apr_file_t *f, apr_off_t off,
                              apr_off_t len, apr_pool_t *p)
{
    char *buf = apr_palloc(p, RS_HASH_PIECE);
    apr_status_t rv = apr_file_seek(f, APR_SET, &off);
    apr_size_t want, got;

    while (rv == APR_SUCCESS && len > 0) {
        want = len < RS_HASH_PIECE ? (apr_size_t)len : RS_HASH_PIECE;
        rv = apr_file_read_full(f, buf, want, &got);
        rs_hash_update(h, buf, got);
        len -= (apr_off_t)got;
    }
    return rv;
}

apr_status_t rs_hash_file_range(const char *alg, apr_file_t *f, apr_off_t off,
                                apr_off_t len, unsigned char *out,
                                apr_size_t *outlen, apr_pool_t *p)
{
    apr_pool_t *sub;
    rs_hash_t *h;
    apr_status_t rv;

    if (off < 0 || len < 0) {
        return APR_EINVAL;
    }
    rv = apr_pool_create(&sub, p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    rv = rs_hash_create(&h, alg, sub);
    if (rv == APR_SUCCESS) {
        rv = hash_file(h, f, off, len, sub);
    }
    if (rv == APR_SUCCESS) {
        rv = rs_hash_final(h, out, outlen);
    }
    apr_pool_destroy(sub);
    return rv;
}

static int alg_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
        || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
}

apr_status_t rs_hash_parse_checksum(apr_pool_t *p, const char *hdr,
                                    const char **alg,
                                    const unsigned char **digest,
                                    apr_size_t *len)
{
    const rs_hash_alg_t *a;
    const char *sp = hdr ? strchr(hdr, ' ') : NULL;
    apr_size_t n = sp ? (apr_size_t)(sp - hdr) : 0, dlen, i;
    unsigned char *d;
    char *name;

    if (n == 0 || n > RS_HASH_ALG_MAX
        || rs_util_b64_decode(p, sp + 1, strlen(sp + 1), &d, &dlen)
           != APR_SUCCESS || dlen == 0) {
        return APR_EINVAL;
    }
    for (i = 0; i < n; i++) {
        if (!alg_char(hdr[i])) {
            return APR_EINVAL;
        }
    }
    name = apr_pstrmemdup(p, hdr, n);
    a = alg_find(name);
    if (!a || !a->tus) {
        return APR_ENOTIMPL;
    }
    if (dlen != a->len) {
        return APR_EINVAL;
    }
    *alg = name;
    *digest = d;
    *len = dlen;
    return APR_SUCCESS;
}
