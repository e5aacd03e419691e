/* Licensed under the Apache License, Version 2.0. */
/* Unit tests of rs_hash: EVP digests, file ranges, Upload-Checksum. */

#include <string.h>
#include <apr_strings.h>
#include <apr_file_io.h>
#include "rs_test.h"
#include "rs_hash.h"
#include "rs_hash_follow.h"
#include "rs_util.h"

/* base64 digest of data with alg, or NULL */
static const char *digest_b64(apr_pool_t *p, const char *alg, const void *data,
                              apr_size_t len)
{
    unsigned char out[RS_HASH_MAX];
    apr_size_t n = 0;
    rs_hash_t *h;

    if (rs_hash_create(&h, alg, p) != APR_SUCCESS) {
        return NULL;
    }
    rs_hash_update(h, data, len);
    if (rs_hash_final(h, out, &n) != APR_SUCCESS) {
        return NULL;
    }
    return rs_util_b64_encode(p, out, n);
}

static void test_vectors(apr_pool_t *p)
{
    RS_CHECK_STR(digest_b64(p, "md5", "abc", 3), "kAFQmDzST7DWlj99KOF/cg==");
    RS_CHECK_STR(digest_b64(p, "md5", "", 0), "1B2M2Y8AsgTpgAmY7PhCfg==");
    RS_CHECK_STR(digest_b64(p, "sha1", "abc", 3),
                 "qZk+NkcGgWq6PiVxeFDCbJzQ2J0=");
    RS_CHECK_STR(digest_b64(p, "sha1", "", 0), "2jmj7l5rSw0yVb/vlWAYkK/YBwk=");
    RS_CHECK_STR(digest_b64(p, "sha256", "abc", 3),
                 "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=");
    RS_CHECK_STR(digest_b64(p, "sha256", "", 0),
                 "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
    RS_CHECK_STR(digest_b64(p, "sha512", "abc", 3),
                 "3a81oZNherrMQXNJriBBMRLm+k6JqX6iCp7u5ktV05ohkpkqJ0/BqDa6PCO"
                 "j/uu9RU1EI2Q86A4qmslPpUyknw==");
    RS_CHECK_STR(digest_b64(p, "sha512", "", 0),
                 "z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNK"
                 "HfuwvY7kxvUdBeoGlODJ6+SfaPg==");
    /* RFC 9530 names are accepted by rs_hash_create */
    RS_CHECK_STR(digest_b64(p, "sha-256", "abc", 3),
                 "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=");
    RS_CHECK(digest_b64(p, "sha-512", "abc", 3) != NULL);
}

static void test_api(apr_pool_t *p)
{
    unsigned char out[RS_HASH_MAX];
    apr_size_t n = 0;
    rs_hash_t *h = NULL;
    const char *abc = "abc";
    int i;

    RS_CHECK(rs_hash_known("md5") && rs_hash_known("sha1")
             && rs_hash_known("sha256") && rs_hash_known("sha512"));
    RS_CHECK(!rs_hash_known("SHA1"));
    RS_CHECK(!rs_hash_known("sha-256"));
    RS_CHECK(!rs_hash_known("crc32"));
    RS_CHECK(!rs_hash_known(""));
    RS_CHECK(!rs_hash_known(NULL));
    RS_CHECK(rs_hash_create(&h, "crc32", p) == APR_ENOTIMPL && h == NULL);
    RS_CHECK(rs_hash_create(&h, "", p) == APR_ENOTIMPL);
    RS_CHECK(rs_hash_create(&h, NULL, p) == APR_ENOTIMPL);

    /* streaming byte by byte equals one update; empty updates are no-ops */
    RS_CHECK(rs_hash_create(&h, "sha1", p) == APR_SUCCESS);
    for (i = 0; i < 3; i++) {
        rs_hash_update(h, abc + i, 1);
        rs_hash_update(h, abc, 0);
    }
    RS_CHECK(rs_hash_final(h, out, &n) == APR_SUCCESS && n == 20);
    RS_CHECK_STR(rs_util_hex(p, out, n),
                 "a9993e364706816aba3e25717850c26c9cd0d89d");
    RS_CHECK(rs_hash_final(h, out, &n) == APR_EINVAL);   /* not reusable */
    rs_hash_update(h, "x", 1);                           /* ignored */
}

static apr_status_t write_file(apr_pool_t *p, const char *path,
                               const char *data, apr_size_t len)
{
    apr_file_t *f;
    apr_status_t rv = apr_file_open(&f, path, APR_FOPEN_WRITE
                                    | APR_FOPEN_CREATE | APR_FOPEN_TRUNCATE,
                                    APR_OS_DEFAULT, p);

    if (rv == APR_SUCCESS) {
        rv = apr_file_write_full(f, data, len, NULL);
        apr_file_close(f);
    }
    return rv;
}

static const char *range_b64(apr_pool_t *p, const char *alg, apr_file_t *f,
                             apr_off_t off, apr_off_t len, apr_status_t *rv)
{
    unsigned char out[RS_HASH_MAX];
    apr_size_t n = 0;

    *rv = rs_hash_file_range(alg, f, off, len, out, &n, p);
    return *rv == APR_SUCCESS ? rs_util_b64_encode(p, out, n) : NULL;
}

static void test_file_range(apr_pool_t *p)
{
    const apr_size_t size = 3 * 1024 * 1024 + 123;   /* > 3 pieces */
    const char *dir = rs_test_tmpdir(p, "hash");
    const char *path = apr_pstrcat(p, dir, "/data", NULL);
    char *data = apr_palloc(p, size);
    apr_file_t *f = NULL;
    apr_status_t rv;
    apr_size_t i;

    for (i = 0; i < size; i++) {
        data[i] = (char)(i * 7 + (i >> 11));
    }
    memcpy(data + 1000, "abc", 3);
    RS_CHECK(write_file(p, path, data, size) == APR_SUCCESS);
    RS_CHECK(apr_file_open(&f, path, APR_FOPEN_READ, APR_OS_DEFAULT, p)
             == APR_SUCCESS);
    if (!f) {
        return;
    }
    RS_CHECK_STR(range_b64(p, "sha1", f, 1000, 3, &rv),
                 "qZk+NkcGgWq6PiVxeFDCbJzQ2J0=");
    RS_CHECK_STR(range_b64(p, "sha256", f, 0, (apr_off_t)size, &rv),
                 digest_b64(p, "sha256", data, size));
    RS_CHECK_STR(range_b64(p, "md5", f, 17, (apr_off_t)size - 17, &rv),
                 digest_b64(p, "md5", data + 17, size - 17));
    RS_CHECK_STR(range_b64(p, "sha1", f, 5, 0, &rv),
                 "2jmj7l5rSw0yVb/vlWAYkK/YBwk=");
    RS_CHECK(range_b64(p, "sha1", f, 1, (apr_off_t)size, &rv) == NULL
             && rv == APR_EOF);
    RS_CHECK(range_b64(p, "sha1", f, -1, 3, &rv) == NULL && rv == APR_EINVAL);
    RS_CHECK(range_b64(p, "sha1", f, 0, -3, &rv) == NULL && rv == APR_EINVAL);
    RS_CHECK(range_b64(p, "crc32", f, 0, 3, &rv) == NULL
             && rv == APR_ENOTIMPL);
    apr_file_close(f);
    apr_file_remove(path, p);
    apr_dir_remove(dir, p);
}

static apr_status_t checksum(apr_pool_t *p, const char *hdr, const char **alg,
                             apr_size_t *len)
{
    const unsigned char *digest = NULL;
    apr_status_t rv;

    *alg = NULL;
    *len = 0;
    rv = rs_hash_parse_checksum(p, hdr, alg, &digest, len);
    if (rv == APR_SUCCESS && !digest) {
        rv = APR_EGENERAL;
    }
    return rv;
}

static void test_parse_checksum(apr_pool_t *p)
{
    const unsigned char *digest = NULL;
    const char *alg = NULL;
    apr_size_t len = 0;

    RS_CHECK(rs_hash_parse_checksum(p, "sha1 qZk+NkcGgWq6PiVxeFDCbJzQ2J0=",
                                    &alg, &digest, &len) == APR_SUCCESS);
    RS_CHECK_STR(alg, "sha1");
    RS_CHECK(len == 20 && digest
             && !strcmp(rs_util_hex(p, digest, len),
                        "a9993e364706816aba3e25717850c26c9cd0d89d"));
    RS_CHECK(checksum(p, "md5 kAFQmDzST7DWlj99KOF/cg==", &alg, &len)
             == APR_SUCCESS && len == 16);
    RS_CHECK(checksum(p, "sha256 ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=",
                      &alg, &len) == APR_SUCCESS && len == 32);
    RS_CHECK(checksum(p, "sha512 z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0"
                      "NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg==", &alg,
                      &len) == APR_SUCCESS && len == 64);
    /* well formed, unknown algorithm */
    RS_CHECK(checksum(p, "crc32 AAAAAA==", &alg, &len) == APR_ENOTIMPL);
    RS_CHECK(checksum(p, "SHA1 qZk+NkcGgWq6PiVxeFDCbJzQ2J0=", &alg, &len)
             == APR_ENOTIMPL);
    RS_CHECK(checksum(p, "sha-256 ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=",
                      &alg, &len) == APR_ENOTIMPL);
    /* wrong digest length for the algorithm */
    RS_CHECK(checksum(p, "sha1 kAFQmDzST7DWlj99KOF/cg==", &alg, &len)
             == APR_EINVAL && alg == NULL);
    RS_CHECK(checksum(p, "md5 qZk+NkcGgWq6PiVxeFDCbJzQ2J0=", &alg, &len)
             == APR_EINVAL);
    /* malformed */
    RS_CHECK(checksum(p, NULL, &alg, &len) == APR_EINVAL);
    RS_CHECK(checksum(p, "", &alg, &len) == APR_EINVAL);
    RS_CHECK(checksum(p, "sha1", &alg, &len) == APR_EINVAL);
    RS_CHECK(checksum(p, "sha1 ", &alg, &len) == APR_EINVAL);
    RS_CHECK(checksum(p, "sha1qZk+NkcGgWq6PiVxeFDCbJzQ2J0=", &alg, &len)
             == APR_EINVAL);
    RS_CHECK(checksum(p, "sha1  qZk+NkcGgWq6PiVxeFDCbJzQ2J0=", &alg, &len)
             == APR_EINVAL);
    RS_CHECK(checksum(p, " sha1 qZk+NkcGgWq6PiVxeFDCbJzQ2J0=", &alg, &len)
             == APR_EINVAL);
    RS_CHECK(checksum(p, "sha1 qZk+NkcGgWq6PiVxeFDCbJzQ2J0= ", &alg, &len)
             == APR_EINVAL);
    RS_CHECK(checksum(p, "sha1\tqZk+NkcGgWq6PiVxeFDCbJzQ2J0=", &alg, &len)
             == APR_EINVAL);
    RS_CHECK(checksum(p, "sha1 qZk+NkcGgWq6PiVxeFDCbJzQ2J0", &alg, &len)
             == APR_EINVAL);                              /* no padding */
    RS_CHECK(checksum(p, "sha1 qZk-NkcGgWq6PiVxeFDCbJzQ2J0=", &alg, &len)
             == APR_EINVAL);                              /* base64url */
    RS_CHECK(checksum(p, "sh@1 qZk+NkcGgWq6PiVxeFDCbJzQ2J0=", &alg, &len)
             == APR_EINVAL);
    RS_CHECK(checksum(p, "crc32 !!!!", &alg, &len) == APR_EINVAL);
    RS_CHECK(checksum(p, "sha1 a9993e364706816aba3e25717850c26c9cd0d89d",
                      &alg, &len) == APR_EINVAL);         /* hex, not b64 */
    RS_CHECK(checksum(p, "averyveryveryverylongalgorithmname12 AAAA", &alg,
                      &len) == APR_EINVAL);
}

/* Pipelined digest of data fed in pieces of 1..maxp bytes, base64. */
static const char *piped_b64(apr_pool_t *p, const char *alg, const char *data,
                             apr_size_t len, apr_size_t maxp, unsigned *seed)
{
    unsigned char out[RS_HASH_MAX];
    apr_size_t n = 0, done = 0, k;
    rs_hash_t *h;

    if (rs_hash_create_pipelined(&h, alg, p) != APR_SUCCESS
        || !rs_hash_is_pipelined(h)) {
        return NULL;
    }
    while (done < len) {
        *seed = *seed * 1103515245u + 12345u;
        k = 1 + (*seed >> 8) % maxp;
        k = k < len - done ? k : len - done;
        rs_hash_update(h, data + done, k);
        done += k;
    }
    if (rs_hash_final(h, out, &n) != APR_SUCCESS) {
        return NULL;
    }
    return rs_util_b64_encode(p, out, n);
}

static void test_pipelined(apr_pool_t *p)
{
    static const apr_size_t sizes[] = { 0, 1, 262143, 262144, 262145,
                                        3 * 1048576 + 7 };
    static const apr_size_t pieces[] = { 1000, 70000, 600000 };
    apr_size_t len = 3 * 1048576 + 7, i, j;
    char *data = apr_palloc(p, len);
    unsigned seed = 7;
    int ok = 1;

    for (i = 0; i < len; i++) {
        seed = seed * 1103515245u + 12345u;
        data[i] = (char)(seed >> 16);
    }
    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        for (j = 0; j < sizeof(pieces) / sizeof(pieces[0]); j++) {
            const char *want = digest_b64(p, "sha256", data, sizes[i]);
            const char *got = piped_b64(p, "sha256", data, sizes[i],
                                        pieces[j], &seed);
            ok &= want && got && !strcmp(want, got);
        }
    }
    RS_CHECK(ok);
    RS_CHECK(!strcmp(piped_b64(p, "md5", data, len, 100000, &seed),
                     digest_b64(p, "md5", data, len)));
    {   /* abandoned before final: the pool's cleanup joins the worker */
        apr_pool_t *sub;
        rs_hash_t *h;

        apr_pool_create(&sub, p);
        RS_CHECK(rs_hash_create_pipelined(&h, "sha512", sub) == APR_SUCCESS);
        rs_hash_update(h, data, len);
        apr_pool_destroy(sub);
        RS_CHECK(1);
    }
    {   /* final twice: refused, like a plain context */
        unsigned char out[RS_HASH_MAX];
        apr_size_t n;
        rs_hash_t *h;

        RS_CHECK(rs_hash_create_pipelined(&h, "sha1", p) == APR_SUCCESS);
        rs_hash_update(h, "abc", 3);
        RS_CHECK(rs_hash_final(h, out, &n) == APR_SUCCESS && n == 20);
        RS_CHECK(rs_hash_final(h, out, &n) == APR_EINVAL);
    }
}

/* Append data to f in pieces, advancing a follower after each; digest. */
static const char *follow_b64(apr_pool_t *p, const char *alg, apr_file_t *f,
                              apr_off_t off, const char *data, apr_size_t len,
                              apr_size_t piece)
{
    unsigned char out[RS_HASH_MAX];
    apr_size_t n = 0, done = 0, k, w;
    rs_hash_follow_t *hf;

    if (rs_hash_follow_start(&hf, alg, f, off, p) != APR_SUCCESS) {
        return NULL;
    }
    while (done < len) {
        apr_off_t at = off + (apr_off_t)done;

        k = piece < len - done ? piece : len - done;
        if (apr_file_seek(f, APR_SET, &at) != APR_SUCCESS
            || apr_file_write_full(f, data + done, k, &w) != APR_SUCCESS) {
            return NULL;
        }
        done += k;
        rs_hash_follow_advance(hf, (apr_off_t)done);
    }
    if (rs_hash_follow_final(hf, (apr_off_t)len, out, &n) != APR_SUCCESS) {
        return NULL;
    }
    return rs_util_b64_encode(p, out, n);
}

static void test_follow(apr_pool_t *p)
{
    const apr_size_t size = 3 * 1024 * 1024 + 77;
    const char *dir = rs_test_tmpdir(p, "follow");
    const char *path = apr_pstrcat(p, dir, "/data", NULL);
    char *data = apr_palloc(p, size);
    apr_file_t *f = NULL;
    rs_hash_follow_t *hf;
    unsigned char out[RS_HASH_MAX];
    apr_size_t i, n;

    for (i = 0; i < size; i++) {
        data[i] = (char)(i * 13 + (i >> 9));
    }
    RS_CHECK(apr_file_open(&f, path, APR_FOPEN_READ | APR_FOPEN_WRITE
                           | APR_FOPEN_CREATE | APR_FOPEN_TRUNCATE,
                           APR_OS_DEFAULT, p) == APR_SUCCESS);
    if (!f) {
        return;
    }
    RS_CHECK_STR(follow_b64(p, "sha256", f, 0, data, size, 1000000),
                 digest_b64(p, "sha256", data, size));
    RS_CHECK_STR(follow_b64(p, "md5", f, 5, data, size, 4097),
                 digest_b64(p, "md5", data, size));
    RS_CHECK_STR(follow_b64(p, "sha1", f, 9, data, 0, 1),
                 "2jmj7l5rSw0yVb/vlWAYkK/YBwk=");
    RS_CHECK(rs_hash_follow_start(&hf, "crc32", f, 0, p) == APR_ENOTIMPL);
    RS_CHECK(rs_hash_follow_start(&hf, "sha1", NULL, 0, p) == APR_EBADF);
    /* a range that is not (or no longer) in the file fails the digest */
    RS_CHECK(rs_hash_follow_start(&hf, "sha512", f, 0, p) == APR_SUCCESS);
    rs_hash_follow_advance(hf, 1000);
    RS_CHECK(rs_hash_follow_final(hf, (apr_off_t)size + 10, out, &n)
             == APR_EGENERAL);
    RS_CHECK(rs_hash_follow_final(hf, 1000, out, &n) == APR_EINVAL);
    {   /* abandoned before final, file closed: the pool joins the worker */
        apr_pool_t *sub;

        apr_pool_create(&sub, p);
        RS_CHECK(rs_hash_follow_start(&hf, "sha256", f, 0, sub)
                 == APR_SUCCESS);
        rs_hash_follow_advance(hf, (apr_off_t)size);
        apr_pool_destroy(sub);
        RS_CHECK(1);
    }
    apr_file_close(f);
    apr_file_remove(path, p);
    apr_dir_remove(dir, p);
}

void suite_hash(apr_pool_t *p)
{
    test_vectors(p);
    test_pipelined(p);
    test_follow(p);
    test_api(p);
    test_file_range(p);
    test_parse_checksum(p);
}
