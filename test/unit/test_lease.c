/* Licensed under the Apache License, Version 2.0. */
/* Unit tests of cluster-mode writer leases (rs_engine_lease.c) on a dbm
 * store with e->lease_time set (the store's clock is then the local one):
 * epochs rise per acquisition, a clean hand-over continues the segment, a
 * takeover of an expired or dead holder's lease opens a new segment file
 * and never writes the old one, a live holder answers 423 and is asked to
 * yield, a holder whose epoch moved on is fenced (its saves change
 * nothing), completion joins the segments into the published file and
 * removes them, the record codec keeps and checks segments, and
 * resumablectl's check measures the segment files. */

#include <string.h>
#include <unistd.h>
#include <apr_strings.h>
#include <apr_file_io.h>
#include "rs_test.h"
#include "rs_engine.h"
#include "rs_engine_private.h"
#include "rs_store.h"
#include "rs_data.h"
#include "rs_ctl.h"
#include "rs_error.h"
#include "rs_hash.h"
#include <apr_base64.h>

static rs_engine_t eng;
static rs_area_t area;

static apr_status_t mem_read(rs_body_t *b, const char **data, apr_size_t *len)
{
    if (!b->ctx) {
        return APR_EOF;
    }
    *data = b->ctx;
    *len = strlen(b->ctx);
    b->ctx = NULL;
    return APR_SUCCESS;
}

static rs_error_t *append(apr_pool_t *p, rs_upload_t *u, const char *s)
{
    rs_body_t body = { mem_read, NULL, 0, NULL };
    rs_append_t ap;
    rs_append_result_t res;

    memset(&ap, 0, sizeof(ap));
    ap.offset = u->offset;
    ap.declare_length = -1;
    body.length = (apr_off_t)strlen(s);
    body.ctx = (void *)s;
    return rs_engine_append(&eng, &area, u, &ap, &body, p, &res);
}

static rs_upload_t *load(apr_pool_t *p, const char *id)
{
    rs_upload_t *u = NULL;

    RS_CHECK(NULL == rs_eng_lookup(&eng, id, p, &u));
    return u;
}

static void store(apr_pool_t *p, const rs_upload_t *u)
{
    rs_txn_t *txn;

    RS_CHECK(APR_SUCCESS == rs_store_begin(eng.store, 1, p, &txn));
    RS_CHECK(APR_SUCCESS == rs_eng_txn_save(txn, u, p));
    rs_store_end(txn);
}

static apr_off_t fsize(apr_pool_t *p, const char *path)
{
    apr_off_t n = -1;

    return APR_SUCCESS == rs_data_size(path, &n, p) ? n : -1;
}

static int code(rs_error_t *err)
{
    return err ? (int)err->code : -1;
}

static rs_upload_t *fresh_upload(apr_pool_t *p, apr_off_t len)
{
    rs_upload_t *u = rs_upload_make(p, NULL);

    u->proto = RS_PROTO_TUS;
    u->length = len;
    u->filename = "joined.bin";
    RS_CHECK(NULL == rs_engine_create(&eng, &area, u, p));
    return u;
}

/* appends, clean hand-over, takeover, completion */
static void test_segments(apr_pool_t *p)
{
    rs_upload_t *u = fresh_upload(p, 100), *s;
    const char *a = "0123456789012345678901234567890123456789";   /* 40 */
    const char *e1;

    RS_CHECK(NULL == append(p, u, a));
    s = load(p, u->id);
    RS_CHECK(s->offset == 40 && s->epoch == 1 && !s->lease_owner);
    RS_CHECK(s->nsegs == 1 && s->segs[0].epoch == 1
             && s->segs[0].start == 0 && s->segs[0].len == 40);
    e1 = rs_eng_seg_path(p, s, &s->segs[0]);
    RS_CHECK(fsize(p, e1) == 40);
    /* "<id>.data" (made at creation) takes no byte in cluster mode */
    RS_CHECK(fsize(p, rs_data_path(p, u->dir, u->id)) == 0);

    /* an uncounted tail (a writer that died after its checkpoint) is cut
     * by the next clean holder */
    {
        apr_file_t *f;
        apr_size_t n = 5;
        RS_CHECK(APR_SUCCESS == rs_data_open(&f, e1, 0, p));
        RS_CHECK(APR_SUCCESS == apr_file_seek(f, APR_END, &(apr_off_t){0}));
        apr_file_write(f, "XXXXX", &n);
        apr_file_close(f);
    }
    RS_CHECK(NULL == append(p, u, "ABCDEFGHIJKLMNOPQRST"));     /* 60 */
    s = load(p, u->id);
    RS_CHECK(s->epoch == 2 && s->nsegs == 1 && s->segs[0].len == 60);
    RS_CHECK(fsize(p, e1) == 60);

    /* a holder of another machine whose lease runs: 423 at once */
    s->lease_owner = "another-boot:1:1";
    s->lease_until = apr_time_now() + apr_time_from_sec(30);
    store(p, s);
    area.lock_wait = 0;
    RS_CHECK(RS_ERR_LOCKED == code(append(p, u, "x")));
    /* with a wait: asked to yield (stop_req), still 423 */
    area.lock_wait = apr_time_from_msec(250);
    RS_CHECK(RS_ERR_LOCKED == code(append(p, u, "x")));
    RS_CHECK(load(p, u->id)->stop_req > 0);
    RS_CHECK(load(p, u->id)->offset == 60);

    /* ... whose lease passed: taken over, a new segment file */
    s = load(p, u->id);
    s->lease_until = apr_time_now() - 1;
    store(p, s);
    RS_CHECK(NULL == append(p, u, "abcdefghij"));               /* 70 */
    s = load(p, u->id);
    RS_CHECK(s->epoch == 3 && s->nsegs == 2);
    RS_CHECK(s->segs[1].epoch == 3 && s->segs[1].start == 60
             && s->segs[1].len == 10);
    RS_CHECK(fsize(p, e1) == 60);           /* the old file untouched */
    RS_CHECK(fsize(p, rs_eng_seg_path(p, s, &s->segs[1])) == 10);

    /* a live holder of this kernel (this very process): not dead */
    {
        const char *me = rs_eng_lease_me(p), *last = strrchr(me, ':');
        RS_CHECK(last && last[1] >= '0' && last[1] <= '9'
                 && strspn(last + 1, "0123456789") == strlen(last + 1));
        s = load(p, u->id);
        s->lease_owner = me;
        s->lease_until = apr_time_now() + apr_time_from_sec(30);
        store(p, s);
        area.lock_wait = 0;
        RS_CHECK(RS_ERR_LOCKED == code(append(p, u, "x")));
        s = load(p, u->id);
    }
    /* a dead holder of this kernel: taken at once, without waiting */
    s->lease_owner = apr_psprintf(p, "%s", rs_eng_lease_me(p));
    s->lease_owner = apr_pstrcat(p, apr_pstrndup(p, s->lease_owner,
                                 strchr(s->lease_owner, ':') - s->lease_owner),
                                 ":999999999:1", NULL);
    s->lease_until = apr_time_now() + apr_time_from_sec(30);
    store(p, s);
    area.lock_wait = 0;
    RS_CHECK(NULL == append(p, u, "KLMNOPQRSTUVWXYZ0123"));     /* 90 */
    s = load(p, u->id);
    RS_CHECK(s->epoch == 4 && s->nsegs == 3 && s->offset == 90);

    RS_CHECK(NULL == append(p, u, "!!!!!!!!!!"));               /* 100 */
    s = load(p, u->id);
    RS_CHECK(RS_STATE_COMPLETE == s->state && s->path);
    RS_CHECK_STR(rs_test_content(p, s->path),
                 "0123456789012345678901234567890123456789"
                 "ABCDEFGHIJKLMNOPQRST" "abcdefghij"
                 "KLMNOPQRSTUVWXYZ0123" "!!!!!!!!!!");
    RS_CHECK(fsize(p, e1) < 0);             /* segments removed */
    RS_CHECK(fsize(p, rs_data_path(p, u->dir, u->id)) < 0);
    RS_CHECK(fsize(p, apr_psprintf(p, "%s/.resumable/%s.j4", u->dir,
                                   u->id)) < 0);
    RS_CHECK(fsize(p, rs_eng_seg_path(p, s, &s->segs[2])) < 0);
    RS_CHECK(!s->lease_owner);
}

/* a holder that lost its lease changes nothing */
static void test_fencing(apr_pool_t *p)
{
    rs_upload_t *u = fresh_upload(p, 50), *s, *mine;
    rs_hold_t *zombie;
    apr_status_t rv;

    RS_CHECK(NULL == append(p, u, "0123456789"));
    RS_CHECK(NULL == rs_eng_hold(&eng, u->dir, u->id, 0, p, &zombie));
    RS_CHECK(rs_eng_hold_epoch(zombie) == 2);
    mine = load(p, u->id);
    /* frozen past its lease: another writer takes over and appends */
    s = load(p, u->id);
    s->lease_until = apr_time_now() - 1;
    store(p, s);
    RS_CHECK(NULL == append(p, u, "abcdefghij"));
    s = load(p, u->id);
    RS_CHECK(s->epoch == 3 && s->offset == 20 && s->nsegs == 2);
    /* the zombie wakes up: its checkpoint is refused */
    mine->offset = 15;
    rv = rs_eng_save_held(&eng, zombie, mine, -1, p, NULL);
    RS_CHECK(RS_EFENCED == rv);
    s = load(p, u->id);
    RS_CHECK(s->offset == 20 && s->segs[0].len == 10 && s->segs[1].len == 10);
    /* a save by whoever read the record before the takeover, too */
    RS_CHECK(RS_EFENCED == rs_eng_save_held(&eng, NULL, mine, -1, p, NULL));
    RS_CHECK(RS_ERR_FENCED == code(rs_eng_state_error(p, RS_EFENCED, "x",
                                                      u->id)));
    /* its release does not free the new holder's lease */
    rs_eng_unhold(zombie);
    RS_CHECK(load(p, u->id)->epoch == 3);
    /* nor does it remove the upload: DELETE under a stale hold */
    RS_CHECK(NULL == append(p, u, "ABCDEFGHIJ"));
    RS_CHECK(load(p, u->id)->offset == 30);
}

/* a holder is asked to yield; a free lease is taken without a takeover */
static void test_stop_request(apr_pool_t *p)
{
    rs_upload_t *u = fresh_upload(p, 10);
    rs_hold_t *h, *other;

    RS_CHECK(NULL == rs_eng_hold(&eng, u->dir, u->id, 0, p, &h));
    RS_CHECK(!rs_eng_hold_takeover(h));
    RS_CHECK(!rs_eng_hold_stop_requested(h));
    RS_CHECK(RS_ERR_LOCKED == code(rs_eng_hold(&eng, u->dir, u->id,
                                               apr_time_from_msec(200), p,
                                               &other)));
    apr_sleep(apr_time_from_msec(300));
    RS_CHECK(rs_eng_hold_stop_requested(h));
    rs_eng_unhold(h);
    RS_CHECK(NULL == rs_eng_hold(&eng, u->dir, u->id, 0, p, &other));
    RS_CHECK(!rs_eng_hold_takeover(other));
    rs_eng_unhold(other);
    /* unknown upload */
    RS_CHECK(RS_ERR_NOT_FOUND == code(rs_eng_hold(&eng, u->dir, "nope", 0, p,
                                                  &other)));
}

/* the record codec keeps segments and refuses broken ones */
static void test_codec(apr_pool_t *p)
{
    rs_upload_t *u = rs_upload_make(p, "abc"), *d;
    rs_segment_t segs[2] = { { 1, 0, 5 }, { 3, 5, 7 } };
    char *buf;
    apr_size_t len;

    u->epoch = 3;
    u->lease_owner = "b:1:2";
    u->lease_until = 123;
    u->stop_req = 45;
    u->segs = segs;
    u->nsegs = 2;
    u->offset = 12;
    RS_CHECK(APR_SUCCESS == rs_upload_encode(u, p, &buf, &len));
    RS_CHECK(APR_SUCCESS == rs_upload_decode(p, "abc", buf, len, &d));
    RS_CHECK(d->epoch == 3 && d->lease_until == 123 && d->stop_req == 45);
    RS_CHECK_STR(d->lease_owner, "b:1:2");
    RS_CHECK(d->nsegs == 2 && d->segs[1].epoch == 3 && d->segs[1].start == 5
             && d->segs[1].len == 7);
    segs[1].start = 6;                      /* a gap */
    RS_CHECK(APR_EINVAL == rs_upload_encode(u, p, &buf, &len));
    segs[1].start = 5;
    segs[0].epoch = 0;                      /* no epoch */
    RS_CHECK(APR_EINVAL == rs_upload_encode(u, p, &buf, &len));
    segs[0].epoch = 1;
    u->epoch = -1;
    RS_CHECK(APR_EINVAL == rs_upload_encode(u, p, &buf, &len));
}

/* resumablectl's check measures the segments */
static void test_ctl(apr_pool_t *p)
{
    rs_upload_t *u = fresh_upload(p, 100), *s;
    rs_ctl_item_t *it;

    RS_CHECK(NULL == append(p, u, "0123456789"));
    s = load(p, u->id);
    s->lease_until = apr_time_now() - 1;
    s->lease_owner = "another-boot:1:1";
    store(p, s);
    RS_CHECK(NULL == append(p, u, "abcde"));
    RS_CHECK(APR_SUCCESS == rs_ctl_load_one(eng.store, u->id, p, &it));
    RS_CHECK(it->data_size == 15);
    RS_CHECK(RS_CTL_OK == rs_ctl_check(it, p));
    s = load(p, u->id);
    rs_data_remove(rs_eng_seg_path(p, s, &s->segs[1]), p);
    RS_CHECK(APR_SUCCESS == rs_ctl_load_one(eng.store, u->id, p, &it));
    RS_CHECK(it->data_size == 10);
    RS_CHECK(RS_CTL_AHEAD == rs_ctl_check(it, p));
}

/* a body of len bytes at buf, in pieces of 64 KiB, with a trailer */
typedef struct {
    const char *buf;
    apr_size_t len, at;
    const char *trailer;
} bin_body;

static apr_status_t bin_read(rs_body_t *b, const char **data, apr_size_t *len)
{
    bin_body *bb = b->ctx;
    apr_size_t n = bb->len - bb->at;

    if (!n) {
        return APR_EOF;
    }
    n = n > 65536 ? 65536 : n;
    *data = bb->buf + bb->at;
    *len = n;
    bb->at += n;
    return APR_SUCCESS;
}

static const char *bin_trailer(rs_body_t *b, const char *name)
{
    return ((bin_body *)b->ctx)->trailer;
}

static rs_error_t *append_checked(apr_pool_t *p, rs_upload_t *u,
                                  const char *buf, apr_size_t len,
                                  int good, int trailer)
{
    bin_body bb = { buf, len, 0, NULL };
    rs_body_t body = { bin_read, bin_trailer, 0, NULL };
    unsigned char d[RS_HASH_MAX];
    apr_size_t dlen = 0;
    rs_hash_t *h;
    rs_append_t ap;
    rs_append_result_t res;
    char *b64;

    rs_hash_create(&h, "sha256", p);
    rs_hash_update(h, buf, len);
    rs_hash_final(h, d, &dlen);
    if (!good) {
        d[0] ^= 1;
    }
    memset(&ap, 0, sizeof(ap));
    ap.offset = u->offset;
    ap.declare_length = -1;
    if (trailer) {
        b64 = apr_palloc(p, apr_base64_encode_len((int)dlen));
        apr_base64_encode(b64, (const char *)d, (int)dlen);
        bb.trailer = apr_pstrcat(p, "sha256 ", b64, NULL);
        ap.checksum_trailer = 1;
        ap.trailer_name = "Upload-Checksum";
    }
    else {
        ap.checksum_alg = "sha256";
        ap.checksum = apr_pmemdup(p, d, dlen);
        ap.checksum_len = dlen;
    }
    body.length = (apr_off_t)len;
    body.ctx = &bb;
    return rs_engine_append(&eng, &area, u, &ap, &body, p, &res);
}

static void take_over(apr_pool_t *p, const char *id)
{
    rs_upload_t *s = load(p, id);

    s->lease_owner = "another-boot:1:1";
    s->lease_until = apr_time_now() - 1;
    store(p, s);
}

/* checksums over a segment that does not start at 0 (after a takeover):
 * header (in memory and, from 1 MiB, digested from the file) and trailer */
static void test_checksum_after_takeover(apr_pool_t *p)
{
    apr_size_t big = 1536 * 1024, i;
    char *buf = apr_palloc(p, big);
    rs_upload_t *u = fresh_upload(p, 10 + (apr_off_t)big + 200), *s;
    apr_file_t *f;
    apr_size_t n;
    char *all;

    for (i = 0; i < big; i++) {
        buf[i] = (char)(i * 7 + i / 4096);
    }
    RS_CHECK(NULL == append(p, u, "0123456789"));
    take_over(p, u->id);
    RS_CHECK(NULL == append_checked(p, u, buf, big, 1, 0));
    RS_CHECK(load(p, u->id)->offset == 10 + (apr_off_t)big);
    take_over(p, u->id);
    RS_CHECK(RS_ERR_CHECKSUM_MISMATCH == code(append_checked(p, u, buf, 100,
                                                             0, 0)));
    s = load(p, u->id);
    RS_CHECK(s->offset == 10 + (apr_off_t)big && s->nsegs == 3);
    RS_CHECK(RS_ERR_CHECKSUM_MISMATCH == code(append_checked(p, u, buf, 100,
                                                             0, 1)));
    RS_CHECK(NULL == append_checked(p, u, buf, 100, 1, 1));
    take_over(p, u->id);
    RS_CHECK(NULL == append_checked(p, u, buf + 100, 100, 1, 0));
    s = load(p, u->id);
    RS_CHECK(RS_STATE_COMPLETE == s->state && s->path);
    all = apr_palloc(p, 10 + big + 200);
    RS_CHECK(APR_SUCCESS == apr_file_open(&f, s->path, APR_FOPEN_READ, 0, p));
    n = 10 + big + 200;
    RS_CHECK(APR_SUCCESS == apr_file_read_full(f, all, n, &n));
    apr_file_close(f);
    RS_CHECK(n == 10 + big + 200 && !memcmp(all, "0123456789", 10)
             && !memcmp(all + 10, buf, big) && !memcmp(all + 10 + big, buf, 200));
}

void suite_lease(apr_pool_t *p)
{
    rs_test_engine(p, "lease", &eng, &area);
    eng.lease_time = apr_time_from_sec(5);
    eng.checkpoint = 64 * 1024;
    area.sync = 1;
    test_segments(p);
    test_fencing(p);
    test_stop_request(p);
    test_codec(p);
    test_ctl(p);
    test_checksum_after_takeover(p);
}
