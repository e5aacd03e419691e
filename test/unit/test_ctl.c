/* Licensed under the Apache License, Version 2.0. */
/*
 * Unit tests of rs_ctl (resumablectl's core): load, check, repair and
 * adopt against a real sdbm store and data files in a temporary directory.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <apr_strings.h>
#include <apr_file_io.h>

#include "rs_test.h"
#include "rs_ctl.h"
#include "rs_store.h"
#include "rs_data.h"
#include "rs_upload.h"
#include "rs_engine.h"
#include "rs_engine_private.h"
#include "rs_error.h"

#define ID_OK    "AAAAAAAAAAAAAAAAAAAAAA"
#define ID_AHEAD "BBBBBBBBBBBBBBBBBBBBBB"
#define ID_NODAT "CCCCCCCCCCCCCCCCCCCCCC"
#define ID_NOPUB "DDDDDDDDDDDDDDDDDDDDDD"
#define ID_BAD   "EEEEEEEEEEEEEEEEEEEEEE"
#define ID_ORPH  "FFFFFFFFFFFFFFFFFFFFFF"

static void put_record(rs_store_t *s, rs_upload_t *u, apr_pool_t *p)
{
    char *buf;
    apr_size_t len;

    RS_CHECK(APR_SUCCESS == rs_upload_encode(u, p, &buf, &len));
    RS_CHECK(APR_SUCCESS == rs_store_put1(s, apr_pstrcat(p, "u:", u->id,
                                                         NULL), buf, len, p));
}

static void write_file(const char *path, apr_size_t n, apr_pool_t *p)
{
    apr_file_t *f;
    char buf[64];

    memset(buf, 'x', sizeof(buf));
    RS_CHECK(APR_SUCCESS == apr_file_open(&f, path, APR_FOPEN_WRITE
                                          | APR_FOPEN_CREATE
                                          | APR_FOPEN_TRUNCATE,
                                          APR_OS_DEFAULT, p));
    apr_file_write_full(f, buf, n, NULL);
    apr_file_close(f);
}

static rs_upload_t *active(apr_pool_t *p, const char *dir, const char *id,
                           apr_off_t offset, apr_off_t data)
{
    rs_upload_t *u = rs_upload_make(p, id);

    u->dir = dir;
    u->length = 64;
    u->offset = offset;
    u->owner = "";
    if (data >= 0) {
        write_file(rs_data_path(p, dir, id), (apr_size_t)data, p);
    }
    return u;
}

static void make_state(rs_store_t *s, const char *dir, apr_pool_t *p)
{
    const char *staging;
    rs_upload_t *u;

    RS_CHECK(APR_SUCCESS == rs_data_staging(p, dir, 1, &staging));
    put_record(s, active(p, dir, ID_OK, 10, 12), p);
    put_record(s, active(p, dir, ID_AHEAD, 40, 25), p);
    put_record(s, active(p, dir, ID_NODAT, 5, -1), p);
    u = active(p, dir, ID_NOPUB, 64, -1);
    u->state = RS_STATE_COMPLETE;
    u->flags |= RS_UF_PUBLISHED;
    u->path = apr_pstrcat(p, dir, "/gone.txt", NULL);
    put_record(s, u, p);
    RS_CHECK(APR_SUCCESS == rs_store_put1(s, "u:" ID_BAD, "\x01junk", 5, p));
    write_file(rs_data_path(p, dir, ID_ORPH), 33, p);
}

static void check_problems(rs_store_t *s, apr_pool_t *p)
{
    apr_array_header_t *items;

    RS_CHECK(APR_SUCCESS == rs_ctl_load(s, p, &items));
    RS_CHECK(5 == items->nelts);
    RS_CHECK(RS_CTL_OK == rs_ctl_check(rs_ctl_find(items, ID_OK), p));
    RS_CHECK(RS_CTL_AHEAD == rs_ctl_check(rs_ctl_find(items, ID_AHEAD), p));
    RS_CHECK(RS_CTL_NO_DATA == rs_ctl_check(rs_ctl_find(items, ID_NODAT), p));
    RS_CHECK(RS_CTL_NO_FILE == rs_ctl_check(rs_ctl_find(items, ID_NOPUB), p));
    RS_CHECK(RS_CTL_CORRUPT == rs_ctl_check(rs_ctl_find(items, ID_BAD), p));
    RS_CHECK(25 == rs_ctl_find(items, ID_AHEAD)->data_size);
}

static void repair_all(rs_store_t *s, apr_pool_t *p)
{
    apr_array_header_t *items;
    const char *action;
    char *val;
    apr_size_t len;
    int i;

    RS_CHECK(APR_SUCCESS == rs_ctl_load(s, p, &items));
    for (i = 0; i < items->nelts; i++) {
        rs_ctl_item_t *it = APR_ARRAY_IDX(items, i, rs_ctl_item_t *);
        rs_ctl_check(it, p);
        RS_CHECK(APR_SUCCESS == rs_ctl_repair(s, it, p, &action));
    }
    RS_CHECK(APR_SUCCESS == rs_ctl_load(s, p, &items));
    RS_CHECK(2 == items->nelts);
    for (i = 0; i < items->nelts; i++) {
        RS_CHECK(RS_CTL_OK == rs_ctl_check(APR_ARRAY_IDX(items, i,
                                                         rs_ctl_item_t *), p));
    }
    RS_CHECK(25 == rs_ctl_find(items, ID_AHEAD)->u->offset);
    /* removed uploads answer 410: tombstones; the corrupt one has none */
    RS_CHECK(APR_SUCCESS == rs_store_get1(s, "t:" ID_NODAT, p, &val, &len));
    RS_CHECK(APR_SUCCESS == rs_store_get1(s, "t:" ID_NOPUB, p, &val, &len));
    RS_CHECK(APR_ENOENT == rs_store_get1(s, "t:" ID_BAD, p, &val, &len));
}

static void adopt(rs_store_t *s, const char *dir, apr_pool_t *p)
{
    apr_array_header_t *ids;
    rs_ctl_item_t *it;

    RS_CHECK(APR_SUCCESS == rs_ctl_adopt(s, dir, "", 0, p, &ids));
    RS_CHECK(1 == ids->nelts);
    RS_CHECK_STR(ID_ORPH, APR_ARRAY_IDX(ids, 0, const char *));
    RS_CHECK(APR_SUCCESS == rs_ctl_load_one(s, ID_ORPH, p, &it));
    RS_CHECK(it->u && 33 == it->u->offset && -1 == it->u->length);
    RS_CHECK(it->u && (it->u->flags & RS_UF_DEFER_LENGTH));
    RS_CHECK(RS_CTL_OK == rs_ctl_check(it, p));
    /* a second run adopts nothing: every data file has a record now */
    RS_CHECK(APR_SUCCESS == rs_ctl_adopt(s, dir, "", 0, p, &ids));
    RS_CHECK(0 == ids->nelts);
}

/* A final waiting for parts that are all complete: reported, not fixed. */
static void stuck_final(const char *tmp, const char *dir, apr_pool_t *p)
{
    apr_array_header_t *items;
    rs_upload_t *part = active(p, dir, ID_ORPH, 33, -1);
    rs_upload_t *fin = active(p, dir, ID_OK, 0, 40);
    const char *action;
    rs_store_t *s;

    RS_CHECK(APR_SUCCESS == rs_store_create(&s, "sdbm", apr_pstrcat(
                 p, tmp, "/stuck", NULL), NULL, p));
    part->state = RS_STATE_COMPLETE;
    part->flags = RS_UF_PARTIAL;
    put_record(s, part, p);
    fin->state = RS_STATE_ASSEMBLING;
    fin->flags = RS_UF_FINAL;
    fin->parts = apr_array_make(p, 1, sizeof(const char *));
    APR_ARRAY_PUSH(fin->parts, const char *) = ID_ORPH;
    put_record(s, fin, p);
    RS_CHECK(APR_SUCCESS == rs_ctl_load(s, p, &items));
    RS_CHECK(RS_CTL_STUCK == rs_ctl_check(rs_ctl_find(items, ID_OK), p));
    RS_CHECK(RS_CTL_OK == rs_ctl_check(rs_ctl_find(items, ID_ORPH), p));
    RS_CHECK(APR_ENOTIMPL == rs_ctl_repair(s, rs_ctl_find(items, ID_OK), p,
                                           &action));
    /* a part still active: the final waits rightly */
    part->state = RS_STATE_ACTIVE;
    put_record(s, part, p);
    RS_CHECK(APR_SUCCESS == rs_ctl_load(s, p, &items));
    RS_CHECK(RS_CTL_OK == rs_ctl_check(rs_ctl_find(items, ID_OK), p));
}

/* ResumableMaxPending's counts: consistent ones are no problem; a count
 * stuck high, a count nothing holds, an entry whose upload is gone and one
 * whose upload holds data are found, repair recounts. */
static void pending_counts(const char *tmp, const char *dir, apr_pool_t *p)
{
    apr_array_header_t *probs;
    rs_upload_t *u;
    rs_store_t *s;
    char *val;
    apr_size_t len;

    RS_CHECK(APR_SUCCESS == rs_store_create(&s, "sdbm", apr_pstrcat(
                 p, tmp, "/pending", NULL), NULL, p));
    RS_CHECK(APR_SUCCESS == rs_ctl_pending(s, 0, p, &probs)); /* no db */
    RS_CHECK(0 == probs->nelts);
    u = active(p, dir, ID_OK, 0, 0);
    u->flags |= RS_UF_PENDING;
    put_record(s, u, p);
    RS_CHECK(APR_SUCCESS == rs_store_put1(s, "q:" ID_OK, "n:U n:A", 7, p));
    RS_CHECK(APR_SUCCESS == rs_store_put1(s, "n:U", "1", 1, p));
    RS_CHECK(APR_SUCCESS == rs_store_put1(s, "n:A", "1", 1, p));
    RS_CHECK(APR_SUCCESS == rs_ctl_pending(s, 0, p, &probs));
    RS_CHECK(0 == probs->nelts);
    /* drift: what a kill or a full disk between two writes leaves */
    RS_CHECK(APR_SUCCESS == rs_store_put1(s, "n:U", "3", 1, p));
    RS_CHECK(APR_SUCCESS == rs_store_put1(s, "n:X", "2", 1, p));
    RS_CHECK(APR_SUCCESS == rs_store_put1(s, "q:" ID_NODAT, "n:U n:A", 7,
                                          p));
    u = active(p, dir, ID_AHEAD, 10, 10);           /* holds data */
    put_record(s, u, p);
    RS_CHECK(APR_SUCCESS == rs_store_put1(s, "q:" ID_AHEAD, "n:U n:A", 7,
                                          p));
    RS_CHECK(APR_SUCCESS == rs_ctl_pending(s, 0, p, &probs));
    RS_CHECK(4 == probs->nelts);
    RS_CHECK(APR_SUCCESS == rs_store_get1(s, "n:U", p, &val, &len));
    RS_CHECK(!strcmp(val, "3"));                    /* verify writes nothing */
    RS_CHECK(APR_SUCCESS == rs_ctl_pending(s, 1, p, &probs));
    RS_CHECK(4 == probs->nelts);
    RS_CHECK(APR_SUCCESS == rs_ctl_pending(s, 0, p, &probs));
    RS_CHECK(0 == probs->nelts);
    RS_CHECK(APR_SUCCESS == rs_store_get1(s, "n:U", p, &val, &len));
    RS_CHECK(!strcmp(val, "1"));
    RS_CHECK(APR_SUCCESS == rs_store_get1(s, "n:A", p, &val, &len));
    RS_CHECK(!strcmp(val, "1"));
    RS_CHECK(APR_ENOENT == rs_store_get1(s, "n:X", p, &val, &len));
    RS_CHECK(APR_ENOENT == rs_store_get1(s, "q:" ID_NODAT, p, &val, &len));
    RS_CHECK(APR_ENOENT == rs_store_get1(s, "q:" ID_AHEAD, p, &val, &len));
    RS_CHECK(APR_SUCCESS == rs_store_get1(s, "q:" ID_OK, p, &val, &len));
}

/* Driver for test_963_07: with RS_UNIT_PENDING_DIR set, only the engine's
 * writes of ResumableMaxPending (create two pending uploads, give one its
 * first byte, terminate the other, a creation refused at the limit) on
 * the store "<dir>/state", run under strace killing it at the n-th write
 * of the database; resumablectl verify then judges what a kill left. It
 * prints "created <id>" once an upload is acknowledged (it must survive
 * every later kill) and "removing <id>" before a termination. */
static void pending_writes(const char *dir, apr_pool_t *p)
{
    rs_engine_t e = { 0 };
    rs_area_t a = { 0 };
    rs_upload_t *u1 = rs_upload_make(p, NULL), *u2 = rs_upload_make(p, NULL);
    rs_upload_t *u3 = rs_upload_make(p, NULL);
    const char *st;
    rs_error_t *err;

    RS_CHECK(APR_SUCCESS == rs_store_create(&e.store, "sdbm", apr_pstrcat(
                 p, dir, "/state", NULL), NULL, p));
    e.write_buffer = 4096;
    a.dir = apr_pstrcat(p, dir, "/files", NULL);
    apr_dir_make_recursive(a.dir, APR_OS_DEFAULT, p);
    rs_data_staging(p, a.dir, 1, &st);
    a.expire = apr_time_from_sec(3600);
    a.lock_wait = apr_time_from_msec(100);
    a.stall_time = apr_time_from_sec(1);
    a.protocols = ~0u;
    a.max_pending = 2;
    a.client = "127.0.0.1";
    u1->length = u2->length = u3->length = 10;
    RS_CHECK(NULL == rs_engine_create(&e, &a, u1, p));
    printf("created %s\n", u1->id);    /* acknowledged: must stay */
    fflush(stdout);
    RS_CHECK(NULL == rs_engine_create(&e, &a, u2, p));
    printf("created %s\n", u2->id);
    fflush(stdout);
    err = rs_engine_create(&e, &a, u3, p);
    RS_CHECK(err && RS_ERR_TOO_MANY_PENDING == err->code);
    write_file(rs_data_path(p, a.dir, u1->id), 4, p);
    u1->offset = 4;
    RS_CHECK(APR_SUCCESS == rs_eng_save_progress(&e, u1, p, NULL));
    printf("removing %s\n", u2->id);
    fflush(stdout);
    RS_CHECK(NULL == rs_engine_terminate(&e, &a, u2, p));
}

void suite_ctl(apr_pool_t *p)
{
    const char *tmp = rs_test_tmpdir(p, "ctl");
    const char *dir = apr_pstrcat(p, tmp, "/area", NULL);
    apr_array_header_t *items;
    rs_store_t *s;

    if (getenv("RS_UNIT_PENDING_DIR")) {
        pending_writes(getenv("RS_UNIT_PENDING_DIR"), p);
        return;
    }
    apr_dir_make(dir, APR_OS_DEFAULT, p);
    RS_CHECK(APR_SUCCESS == rs_store_create(&s, "sdbm", apr_pstrcat(
                 p, tmp, "/missing", NULL), NULL, p));
    RS_CHECK(APR_ENOENT == rs_ctl_load(s, p, &items));
    RS_CHECK(APR_SUCCESS == rs_store_create(&s, "sdbm", apr_pstrcat(
                 p, tmp, "/state", NULL), NULL, p));
    make_state(s, dir, p);
    check_problems(s, p);
    repair_all(s, p);
    adopt(s, dir, p);
    stuck_final(tmp, dir, p);
    pending_counts(tmp, dir, p);
}
