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
 *
 * Pipelined digests (rs_hash_create_pipelined): updates are copied into
 * one of PIPE_NBUF buffers of PIPE_BUF_SIZE bytes; a full buffer goes to a
 * worker thread that digests it while the caller goes on reading and
 * writing the body. Free and full buffers move through two queues under
 * one mutex; the caller waits only when every buffer is full (the worker
 * is behind). rs_hash_final hands over the last partial buffer and joins
 * the worker. A pre-cleanup on the pool stops and joins the worker when
 * the caller gives up before rs_hash_final (an aborted upload), before the
 * thread's own pool goes.
 */

#include <string.h>
#include <openssl/evp.h>
#include <apr_strings.h>
#include <apr_thread_proc.h>
#include <apr_thread_mutex.h>
#include <apr_thread_cond.h>
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

#define PIPE_NBUF 4
#define PIPE_BUF_SIZE (256 * 1024)

typedef struct hash_pipe {
    apr_thread_t *thread;
    apr_thread_mutex_t *mu;
    apr_thread_cond_t *cv;
    char *buf[PIPE_NBUF];
    apr_size_t len[PIPE_NBUF];
    int full[PIPE_NBUF];              /* queue of full buffers (indexes) */
    int nfull, first;
    int free[PIPE_NBUF];              /* stack of free buffers */
    int nfree;
    int filling;                      /* the caller's buffer, or -1 */
    int stop;                         /* no more buffers will come */
    int joined;
} hash_pipe;

struct rs_hash_t {
    EVP_MD_CTX *ctx;
    int failed;                       /* an update failed */
    int finished;
    hash_pipe *pipe;                  /* NULL: digest in the caller */
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

/* ---- pipeline ----------------------------------------------------------- */

/* Worker: digest full buffers in order until stopped and drained. Only
 * this thread touches the EVP context while the pipe runs. */
static void *APR_THREAD_FUNC pipe_worker(apr_thread_t *t, void *data)
{
    rs_hash_t *h = data;
    hash_pipe *pp = h->pipe;
    int b;

    apr_thread_mutex_lock(pp->mu);
    for (;;) {
        while (!pp->nfull && !pp->stop) {
            apr_thread_cond_wait(pp->cv, pp->mu);
        }
        if (!pp->nfull) {
            break;
        }
        b = pp->full[pp->first];
        pp->first = (pp->first + 1) % PIPE_NBUF;
        pp->nfull--;
        apr_thread_mutex_unlock(pp->mu);
        if (!h->failed && !EVP_DigestUpdate(h->ctx, pp->buf[b], pp->len[b])) {
            h->failed = 1;
        }
        apr_thread_mutex_lock(pp->mu);
        pp->free[pp->nfree++] = b;
        apr_thread_cond_broadcast(pp->cv);
    }
    apr_thread_mutex_unlock(pp->mu);
    return NULL;
}

/* Queue the caller's buffer (if it holds data) for the worker. */
static void pipe_hand_over(hash_pipe *pp)
{
    int b = pp->filling;

    if (b < 0) {
        return;
    }
    apr_thread_mutex_lock(pp->mu);
    if (pp->len[b]) {
        pp->full[(pp->first + pp->nfull) % PIPE_NBUF] = b;
        pp->nfull++;
    }
    else {
        pp->free[pp->nfree++] = b;
    }
    pp->filling = -1;
    apr_thread_cond_broadcast(pp->cv);
    apr_thread_mutex_unlock(pp->mu);
}

/* Take a free buffer to fill, waiting for the worker if there is none. */
static void pipe_take(hash_pipe *pp)
{
    apr_thread_mutex_lock(pp->mu);
    while (!pp->nfree) {
        apr_thread_cond_wait(pp->cv, pp->mu);
    }
    pp->filling = pp->free[--pp->nfree];
    pp->len[pp->filling] = 0;
    apr_thread_mutex_unlock(pp->mu);
}

static void pipe_feed(hash_pipe *pp, const char *data, apr_size_t len)
{
    apr_size_t n;

    while (len) {
        if (pp->filling < 0) {
            pipe_take(pp);
        }
        n = PIPE_BUF_SIZE - pp->len[pp->filling];
        n = n < len ? n : len;
        memcpy(pp->buf[pp->filling] + pp->len[pp->filling], data, n);
        pp->len[pp->filling] += n;
        data += n;
        len -= n;
        if (pp->len[pp->filling] == PIPE_BUF_SIZE) {
            pipe_hand_over(pp);
        }
    }
}

/* Hand over what is left, let the worker drain the queue, join it. */
static void pipe_join(hash_pipe *pp)
{
    apr_status_t ignored;

    if (pp->joined) {
        return;
    }
    pipe_hand_over(pp);
    apr_thread_mutex_lock(pp->mu);
    pp->stop = 1;
    apr_thread_cond_broadcast(pp->cv);
    apr_thread_mutex_unlock(pp->mu);
    apr_thread_join(&ignored, pp->thread);
    pp->joined = 1;
}

static apr_status_t pipe_cleanup(void *data)
{
    pipe_join(((rs_hash_t *)data)->pipe);
    return APR_SUCCESS;
}

static apr_status_t pipe_start(rs_hash_t *h, apr_pool_t *p)
{
    hash_pipe *pp = apr_pcalloc(p, sizeof(*pp));
    apr_status_t rv;
    int i;

    for (i = 0; i < PIPE_NBUF; i++) {
        pp->buf[i] = apr_palloc(p, PIPE_BUF_SIZE);
        pp->free[pp->nfree++] = i;
    }
    pp->filling = -1;
    if (APR_SUCCESS != (rv = apr_thread_mutex_create(&pp->mu,
                                   APR_THREAD_MUTEX_DEFAULT, p))
        || APR_SUCCESS != (rv = apr_thread_cond_create(&pp->cv, p))) {
        return rv;
    }
    h->pipe = pp;
    rv = apr_thread_create(&pp->thread, NULL, pipe_worker, h, p);
    if (APR_SUCCESS != rv) {
        h->pipe = NULL;
        return rv;
    }
    apr_pool_pre_cleanup_register(p, h, pipe_cleanup);
    return APR_SUCCESS;
}

apr_status_t rs_hash_create_pipelined(rs_hash_t **h, const char *alg,
                                      apr_pool_t *p)
{
    apr_status_t rv = rs_hash_create(h, alg, p);

#if APR_HAS_THREADS
    if (APR_SUCCESS == rv && APR_SUCCESS != pipe_start(*h, p)) {
        (*h)->pipe = NULL;            /* no thread: digest in the caller */
    }
#endif
    return rv;
}

apr_status_t rs_hash_create_for(rs_hash_t **h, const char *alg,
                                apr_off_t expected, apr_pool_t *p)
{
    return (expected < 0 || expected >= RS_HASH_PIPE_MIN)
           ? rs_hash_create_pipelined(h, alg, p) : rs_hash_create(h, alg, p);
}

int rs_hash_is_pipelined(const rs_hash_t *h)
{
    return h->pipe != NULL;
}

/* ---- update / final ----------------------------------------------------- */

void rs_hash_update(rs_hash_t *h, const void *data, apr_size_t len)
{
    if (h->finished || len == 0) {
        return;
    }
    if (h->pipe) {                    /* `failed` is the worker's then */
        pipe_feed(h->pipe, data, len);
        return;
    }
    if (!h->failed && !EVP_DigestUpdate(h->ctx, data, len)) {
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
    if (h->pipe) {
        pipe_join(h->pipe);
    }
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
