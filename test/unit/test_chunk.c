/* Licensed under the Apache License, Version 2.0. */
/* Unit tests of the engine's chunk mode, client keys and content index
 * (rs_engine_chunk_put/merge, rs_engine_find_key, rs_engine_content_find)
 * against a real store and data directory. A merge without an MD5 is
 * composed; materialise() does what the glue does after the response. */

#include <string.h>
#include <apr_strings.h>
#include <apr_file_io.h>
#include "rs_test.h"
#include "rs_engine.h"
#include "rs_store.h"
#include "rs_data.h"
#include "rs_hash.h"
#include "rs_util.h"

static rs_engine_t eng;
static rs_area_t area;
static int spools;

static void setup(apr_pool_t *p)
{
    rs_test_engine(p, "chunk", &eng, &area);
    area.max_size = 100000;
}

/* A spool file holding s, as the form intake leaves it. */
static const char *spool(apr_pool_t *p, const char *s)
{
    const char *path = apr_psprintf(p, "%s/" RS_STAGING_DIR "/sp-%d",
                                    area.dir, ++spools);
    apr_file_t *f;
    apr_size_t n = strlen(s);

    apr_file_open(&f, path, APR_FOPEN_CREATE | APR_FOPEN_WRITE
                  | APR_FOPEN_TRUNCATE, APR_OS_DEFAULT, p);
    apr_file_write_full(f, s, n, NULL);
    apr_file_close(f);
    return path;
}

static int exists(apr_pool_t *p, const char *path)
{
    apr_finfo_t fi;

    return APR_SUCCESS == apr_stat(&fi, path, APR_FINFO_TYPE, p);
}

static rs_upload_t *make(apr_pool_t *p, const char *key, const char *name)
{
    rs_upload_t *u = rs_upload_make(p, NULL);

    u->proto = RS_PROTO_SLICE;
    u->flags = RS_UF_CHUNKED | RS_UF_DEFER_LENGTH;
    u->client_key = key;
    u->filename = name;
    RS_CHECK(NULL == rs_engine_create(&eng, &area, u, p));
    return u;
}

/* u is composed of n chunks (the request pool p noted it); materialise
 * it as the glue does after the response: published, chunks gone. */
static void materialise(apr_pool_t *p, rs_upload_t *u, int n)
{
    const apr_array_header_t *ids = rs_engine_composed(p);
    apr_array_header_t *parts;
    rs_upload_t *v;

    RS_CHECK(RS_STATE_COMPLETE == u->state && (u->flags & RS_UF_COMPOSED));
    RS_CHECK(ids && !strcmp(APR_ARRAY_IDX(ids, ids->nelts - 1, const char *),
                            u->id));
    RS_CHECK(NULL == rs_engine_parts(&eng, u, p, &parts) && n == parts->nelts);
    RS_CHECK(NULL == rs_engine_materialise(&eng, &area, u->id, p));
    RS_CHECK(NULL == rs_engine_open(&eng, &area, u->id, "", p, &v));
    RS_CHECK((v->flags & RS_UF_PUBLISHED) && !(v->flags & RS_UF_COMPOSED));
    RS_CHECK(!exists(p, apr_psprintf(p, "%s/" RS_STAGING_DIR "/%s.c1",
                                     area.dir, u->id)));
    RS_CHECK(NULL == rs_engine_materialise(&eng, &area, u->id, p)); /* no-op */
}

static rs_error_t *put(apr_pool_t *p, rs_upload_t *u, int index, int total,
                       const char *s, const char *md5)
{
    rs_chunk_t c;

    c.index = index;
    c.total = total;
    c.spool = spool(p, s);
    c.file_md5 = md5;
    return rs_engine_chunk_put(&eng, &area, u, &c, p);
}

static int code(rs_error_t *err)
{
    return err ? (int)err->code : RS_ERR_NONE;
}

static void test_merge(apr_pool_t *p)
{
    rs_upload_t *u = make(p, "slice:m.txt", "m.txt");
    const char *sp;
    rs_chunk_t c;

    RS_CHECK(NULL == put(p, u, 2, 0, "cc", NULL));
    RS_CHECK(NULL == put(p, u, 0, 0, "aaa", NULL));
    RS_CHECK(RS_ERR_INCOMPLETE == code(rs_engine_chunk_merge(&eng, &area, u,
                                                             3, p)));
    RS_CHECK(NULL == put(p, u, 1, 0, "bbb", NULL));
    RS_CHECK(NULL == put(p, u, 1, 0, "bbb", NULL));         /* re-send */
    c.index = 1;
    c.total = 0;
    c.spool = sp = spool(p, "BBB");
    c.file_md5 = NULL;
    RS_CHECK(RS_ERR_CHUNK_CONFLICT == code(rs_engine_chunk_put(&eng, &area,
                                                               u, &c, p)));
    RS_CHECK(!exists(p, sp));                   /* the spool is consumed */
    RS_CHECK(RS_ERR_INCONSISTENT_LENGTH
             == code(rs_engine_chunk_merge(&eng, &area, u, 2, p)));
    RS_CHECK(RS_STATE_ACTIVE == u->state);
    RS_CHECK(NULL == rs_engine_chunk_merge(&eng, &area, u, 3, p));
    RS_CHECK(RS_STATE_COMPLETE == u->state && 8 == u->length);
    RS_CHECK(!exists(p, apr_pstrcat(p, area.dir, "/m.txt", NULL)));
    RS_CHECK(exists(p, apr_psprintf(p, "%s/" RS_STAGING_DIR "/%s.c0",
                                    area.dir, u->id)));
    RS_CHECK(NULL == rs_engine_chunk_merge(&eng, &area, u, 3, p)); /* again */
    materialise(p, u, 3);
    RS_CHECK_STR(rs_test_content(p, apr_pstrcat(p, area.dir, "/m.txt", NULL)),
                 "aaabbbcc");
    RS_CHECK(!exists(p, apr_psprintf(p, "%s/" RS_STAGING_DIR "/%s.c0",
                                     area.dir, u->id)));
    RS_CHECK(NULL == rs_engine_chunk_merge(&eng, &area, u, 3, p));
    RS_CHECK(NULL == put(p, u, 0, 0, "late", NULL));    /* after: a no-op */
}

static void test_declared(apr_pool_t *p)
{
    rs_upload_t *u = make(p, "slice:d.txt", "d.txt");
    int n;

    RS_CHECK(NULL == put(p, u, 3, 3, "3", NULL));           /* 1-based */
    RS_CHECK(RS_ERR_BAD_REQUEST == code(put(p, u, 0, 3, "0", NULL)));
    RS_CHECK(RS_ERR_BAD_REQUEST == code(put(p, u, 4, 3, "4", NULL)));
    RS_CHECK(RS_ERR_INCONSISTENT_LENGTH == code(put(p, u, 1, 4, "1", NULL)));
    RS_CHECK(NULL == put(p, u, 1, 3, "1", NULL));
    RS_CHECK(RS_STATE_ACTIVE == u->state);
    RS_CHECK(NULL == put(p, u, 2, 0, "2", NULL));
    materialise(p, u, 3);
    RS_CHECK_STR(rs_test_content(p, apr_pstrcat(p, area.dir, "/d.txt", NULL)), "123");

    u = make(p, "slice:z.txt", "z.txt");                    /* 0-based */
    RS_CHECK(NULL == put(p, u, 0, 3, "x", NULL));
    RS_CHECK(RS_ERR_BAD_REQUEST == code(put(p, u, 3, 3, "!", NULL)));
    RS_CHECK(NULL == put(p, u, 2, 3, "z", NULL));
    RS_CHECK(RS_STATE_ACTIVE == u->state);
    RS_CHECK(NULL == put(p, u, 1, 3, "y", NULL));
    RS_CHECK(RS_STATE_COMPLETE == u->state);
    /* composed, not materialised: the sweep does it (a killed child) */
    RS_CHECK(!exists(p, apr_pstrcat(p, area.dir, "/z.txt", NULL)));
    RS_CHECK(APR_SUCCESS == rs_engine_sweep(&eng, apr_time_now(), p, &n));
    RS_CHECK_STR(rs_test_content(p, apr_pstrcat(p, area.dir, "/z.txt", NULL)), "xyz");
    RS_CHECK(RS_ERR_BAD_REQUEST == code(put(p, make(p, "slice:r", "r"),
                                            RS_UPLOAD_MAX_CHUNKS, 0, "r",
                                            NULL)));
}

static const char *md5hex(apr_pool_t *p, const char *s)
{
    unsigned char d[RS_HASH_MAX];
    apr_size_t n = 0;
    rs_hash_t *h;

    rs_hash_create(&h, "md5", p);
    rs_hash_update(h, s, strlen(s));
    rs_hash_final(h, d, &n);
    return rs_util_hex(p, d, n);
}

static void test_md5(apr_pool_t *p)
{
    rs_upload_t *u = make(p, "md5:x", "bad.txt"), *again, *found;
    int removed;

    RS_CHECK(NULL == put(p, u, 0, 2, "he", md5hex(p, "hello")));
    RS_CHECK(RS_ERR_CHECKSUM_MISMATCH
             == code(put(p, u, 1, 2, "LLO", md5hex(p, "hello"))));
    RS_CHECK(!exists(p, apr_pstrcat(p, area.dir, "/bad.txt", NULL)));
    u = make(p, "md5:y", "good.txt");
    RS_CHECK(NULL == put(p, u, 1, 2, "llo", md5hex(p, "hello")));
    RS_CHECK(NULL == put(p, u, 0, 2, "he", md5hex(p, "hello")));
    RS_CHECK(RS_STATE_COMPLETE == u->state);
    RS_CHECK(NULL == rs_engine_content_find(&eng, &area, "", md5hex(p, "hello"),
                                            p, &found));
    RS_CHECK_STR(found->id, u->id);
    RS_CHECK_STR(found->path, apr_pstrcat(p, area.dir, "/good.txt", NULL));
    /* another owner's content is never found */
    RS_CHECK(RS_ERR_NOT_FOUND == code(rs_engine_content_find(&eng, &area,
             "alice", md5hex(p, "hello"), p, &found)));
    /* the same content again: the index keeps naming the first upload */
    again = make(p, "md5:y2", "again.txt");
    RS_CHECK(NULL == put(p, again, 0, 1, "hello", md5hex(p, "hello")));
    RS_CHECK(NULL == rs_engine_content_find(&eng, &area, "", md5hex(p, "hello"),
                                            p, &found));
    RS_CHECK_STR(found->id, u->id);
    /* the slice upload above is indexed by the sweep, not on completion */
    RS_CHECK(RS_ERR_NOT_FOUND == code(rs_engine_content_find(&eng, &area, "",
             md5hex(p, "xyz"), p, &found)));
    RS_CHECK(APR_SUCCESS == rs_engine_sweep(&eng, apr_time_now(), p, &removed));
    RS_CHECK(NULL == rs_engine_content_find(&eng, &area, "", md5hex(p, "xyz"), p,
                                            &found));
    RS_CHECK(RS_ERR_NOT_FOUND == code(rs_engine_content_find(&eng, &area, "",
             md5hex(p, "nothing"), p, &found)));
    /* the first one's file goes away: the entry is dropped, and the next
     * upload of the content is indexed again */
    apr_file_remove(apr_pstrcat(p, area.dir, "/good.txt", NULL), p);
    RS_CHECK(RS_ERR_NOT_FOUND == code(rs_engine_content_find(&eng, &area, "",
             md5hex(p, "hello"), p, &found)));
    again = make(p, "md5:y3", "third.txt");
    RS_CHECK(NULL == put(p, again, 0, 1, "hello", md5hex(p, "hello")));
    RS_CHECK(NULL == rs_engine_content_find(&eng, &area, "", md5hex(p, "hello"),
                                            p, &found));
    RS_CHECK_STR(found->id, again->id);
}

static rs_error_t *find(apr_pool_t *p, const rs_area_t *a, const char *owner,
                        const char *key, rs_upload_t **v)
{
    return rs_engine_find_key(&eng, a, owner, RS_PROTO_SLICE, key, p, v);
}

static void test_keys(apr_pool_t *p)
{
    rs_upload_t *u = make(p, "key-1", "k.txt"), *v, *w;
    char *big = apr_pcalloc(p, RS_ENGINE_MAX_KEY + 2);
    rs_area_t other = area;

    RS_CHECK(NULL == find(p, &area, "", "key-1", &v));
    RS_CHECK_STR(v->id, u->id);
    RS_CHECK(RS_ERR_NOT_FOUND == code(find(p, &area, "bob", "key-1", &v)));
    other.dir = apr_pstrcat(p, area.dir, "/sub", NULL);
    RS_CHECK(RS_ERR_NOT_FOUND == code(find(p, &other, "", "key-1", &v)));
    RS_CHECK(RS_ERR_NOT_FOUND == code(find(p, &area, "", "key-2", &v)));
    /* the same key of another protocol names nothing (issue 11) */
    RS_CHECK(RS_ERR_NOT_FOUND == code(rs_engine_find_key(&eng, &area, "",
             RS_PROTO_OFFSET, "key-1", p, &v)));
    RS_CHECK(RS_ERR_NOT_FOUND == code(rs_engine_find_key(&eng, &area, "",
             RS_PROTO_MD5, "key-1", p, &v)));
    memset(big, 'k', RS_ENGINE_MAX_KEY + 1);
    RS_CHECK(RS_ERR_BAD_REQUEST == code(find(p, &area, "", big, &v)));
    w = make(p, "key-1", "k2.txt");             /* a concurrent create */
    RS_CHECK_STR(w->id, u->id);
    RS_CHECK(NULL == rs_engine_terminate(&eng, &area, u, p));
    RS_CHECK(RS_ERR_NOT_FOUND == code(find(p, &area, "", "key-1", &v)));
}

/* "k:" + sha256 hex of dir NUL owner NUL key: a client key stored before
 * keys had a protocol. */
static const char *old_key(apr_pool_t *p, const char *owner, const char *key)
{
    unsigned char d[RS_HASH_MAX];
    apr_size_t n = 0;
    rs_hash_t *h;

    RS_CHECK(APR_SUCCESS == rs_hash_create(&h, "sha256", p));
    rs_hash_update(h, area.dir, strlen(area.dir) + 1);
    rs_hash_update(h, owner, strlen(owner) + 1);
    rs_hash_update(h, key, strlen(key));
    rs_hash_final(h, d, &n);
    return apr_pstrcat(p, "k:", rs_util_hex(p, d, n), NULL);
}

/* An upload whose key was stored in the first form is still found by its
 * own protocol, never by another; its entry goes with it. */
static void test_old_keys(apr_pool_t *p)
{
    rs_upload_t *u = rs_upload_make(p, NULL), *v;
    const char *k = old_key(p, "", "slice:old.bin");
    rs_txn_t *txn;
    char *val;
    apr_size_t len;

    u->proto = RS_PROTO_SLICE;
    u->flags = RS_UF_CHUNKED | RS_UF_DEFER_LENGTH;
    u->filename = "old.bin";
    RS_CHECK(NULL == rs_engine_create(&eng, &area, u, p));  /* no key */
    u->client_key = "slice:old.bin";            /* as a 0.1 record has it */
    RS_CHECK(APR_SUCCESS == rs_store_begin(eng.store, 1, p, &txn));
    RS_CHECK(APR_SUCCESS == rs_store_put(txn, k, u->id, strlen(u->id)));
    rs_store_end(txn);
    RS_CHECK(NULL == find(p, &area, "", "slice:old.bin", &v));
    RS_CHECK_STR(v->id, u->id);
    RS_CHECK(RS_ERR_NOT_FOUND == code(rs_engine_find_key(&eng, &area, "",
             RS_PROTO_OFFSET, "slice:old.bin", p, &v)));
    RS_CHECK(NULL == rs_engine_terminate(&eng, &area, u, p));
    RS_CHECK(APR_STATUS_IS_ENOENT(rs_store_get1(eng.store, k, p, &val,
                                                &len)));
}

static apr_status_t one_read(rs_body_t *b, const char **data,
                             apr_size_t *len)
{
    if (!b->ctx) {
        return APR_EOF;
    }
    *data = b->ctx;
    *len = strlen(b->ctx);
    b->ctx = NULL;
    return APR_SUCCESS;
}

/* Each entry point refuses an upload of the other mode with a 4xx
 * (issue 11: an append through a chunk upload crashed the child). */
static void test_wrong_mode(apr_pool_t *p)
{
    rs_upload_t *c = make(p, "mode-1", "mode.bin"), *a = rs_upload_make(p,
                                                                       NULL);
    rs_body_t body = { one_read, NULL, 4, (void *)"ZZZZ" };
    rs_chunk_t ch = { 0, 0, NULL, NULL };
    rs_append_t ap;
    rs_append_result_t res;

    ch.spool = spool(p, "AAAA");
    RS_CHECK(NULL == rs_engine_chunk_put(&eng, &area, c, &ch, p));
    memset(&ap, 0, sizeof(ap));
    ap.declare_length = -1;
    RS_CHECK(RS_ERR_WRONG_PROTOCOL == code(rs_engine_append(&eng, &area, c,
                                                            &ap, &body, p,
                                                            &res)));
    RS_CHECK(0 == res.stored && rs_upload_chunk_has(c, 0));
    a->proto = RS_PROTO_OFFSET;
    a->length = 8;
    RS_CHECK(NULL == rs_engine_create(&eng, &area, a, p));
    ch.spool = spool(p, "BBBB");
    RS_CHECK(RS_ERR_WRONG_PROTOCOL == code(rs_engine_chunk_put(&eng, &area, a,
                                                               &ch, p)));
    RS_CHECK(RS_ERR_WRONG_PROTOCOL == code(rs_engine_chunk_merge(&eng, &area,
                                                                 a, 0, p)));
    a->flags |= RS_UF_CHUNKED;      /* a forged record: still refused */
    RS_CHECK(RS_ERR_WRONG_PROTOCOL == code(rs_engine_chunk_merge(&eng, &area,
                                                                 a, 0, p)));
    RS_CHECK(NULL == rs_engine_terminate(&eng, &area, c, p));
    RS_CHECK(NULL == rs_engine_terminate(&eng, &area, a, p));
}

/* ResumableMaxPending: uploads without data count until they get a chunk
 * or go; the count lives in the store, not in a scan. */
static void test_pending(apr_pool_t *p)
{
    rs_upload_t *u[3], *x = rs_upload_make(p, NULL);
    rs_chunk_t ch = { 0, 0, NULL, NULL };
    int i;

    area.max_pending = 2;
    for (i = 0; i < 2; i++) {
        u[i] = make(p, apr_psprintf(p, "pend-%d", i), "p.bin");
        RS_CHECK(u[i]->flags & RS_UF_PENDING);
    }
    x->proto = RS_PROTO_SLICE;
    x->flags = RS_UF_CHUNKED | RS_UF_DEFER_LENGTH;
    x->client_key = "pend-2";
    RS_CHECK(RS_ERR_TOO_MANY_PENDING == code(rs_engine_create(&eng, &area, x,
                                                              p)));
    ch.spool = spool(p, "data");
    RS_CHECK(NULL == rs_engine_chunk_put(&eng, &area, u[0], &ch, p));
    RS_CHECK(!(u[0]->flags & RS_UF_PENDING));
    u[2] = make(p, "pend-2", "p.bin");          /* room again */
    RS_CHECK(NULL == rs_engine_terminate(&eng, &area, u[1], p));
    u[1] = make(p, "pend-3", "p.bin");          /* and again */
    x = rs_upload_make(p, NULL);
    x->proto = RS_PROTO_SLICE;
    x->flags = RS_UF_CHUNKED | RS_UF_DEFER_LENGTH;
    x->client_key = "pend-4";
    RS_CHECK(RS_ERR_TOO_MANY_PENDING == code(rs_engine_create(&eng, &area, x,
                                                              p)));
    for (i = 0; i < 3; i++) {
        RS_CHECK(NULL == rs_engine_terminate(&eng, &area, u[i], p));
    }
    area.max_pending = 0;
}

void suite_chunk(apr_pool_t *p)
{
    setup(p);
    test_merge(p);
    test_declared(p);
    test_md5(p);
    test_keys(p);
    test_old_keys(p);
    test_wrong_mode(p);
    test_pending(p);
}
