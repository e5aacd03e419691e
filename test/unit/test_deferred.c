/* Licensed under the Apache License, Version 2.0. */
/*
 * Unit tests of the deferred creation (rs_engine_create_append, issue 15):
 * one state write and no read for a creation with its body, no in-flight
 * file left, a cut body stored with its bytes, refusals before the body
 * (ResumableMaxPending, a body over the length) as rs_engine_create +
 * rs_engine_append leave them, and the fallback for a client key.
 */

#include <string.h>
#include <unistd.h>

#include <apr_strings.h>

#include "rs_test.h"
#include "rs_engine.h"
#include "rs_store.h"
#include "rs_data.h"
#include "rs_error.h"

static rs_engine_t eng;
static rs_area_t area;

/* Hands out ctx (a string) in one piece; then EOF, or with cut set a
 * failed read (the client went away). */
typedef struct {
    const char *s;
    int cut;
} piece_t;

static apr_status_t piece_read(rs_body_t *b, const char **data,
                               apr_size_t *len)
{
    piece_t *pc = b->ctx;

    if (!pc->s) {
        return pc->cut ? APR_ECONNABORTED : APR_EOF;
    }
    *data = pc->s;
    *len = strlen(pc->s);
    pc->s = NULL;
    return APR_SUCCESS;
}

static rs_error_t *run(apr_pool_t *p, rs_upload_t *u, const char *s,
                       apr_off_t clen, int cut, int *stored,
                       apr_uint32_t *w, apr_uint32_t *r)
{
    piece_t pc = { s, cut };
    rs_body_t body = { piece_read, NULL, clen, &pc };
    rs_append_t ap;
    rs_append_result_t res;
    apr_uint32_t w0, r0;
    rs_error_t *err;

    memset(&ap, 0, sizeof(ap));
    ap.declare_length = -1;
    rs_store_thread_txns(&w0, &r0);
    err = rs_engine_create_append(&eng, &area, u, &ap, &body, p, &res,
                                  stored);
    rs_store_thread_txns(w, r);
    *w -= w0;
    *r -= r0;
    return err;
}

static rs_upload_t *fresh(apr_pool_t *p, apr_off_t length)
{
    rs_upload_t *u = rs_upload_make(p, NULL);

    u->proto = RS_PROTO_TUS;
    u->length = length;
    return u;
}

static int new_left(apr_pool_t *p, const rs_upload_t *u)
{
    return u->id && 0 == access(rs_data_new_path(p, area.dir, u->id), F_OK);
}

static void test_complete(apr_pool_t *p)
{
    rs_upload_t *u = fresh(p, 5), *o;
    apr_uint32_t w, r;
    int stored = 0;

    u->filename = "hello.txt";
    RS_CHECK(NULL == run(p, u, "hello", 5, 0, &stored, &w, &r));
    RS_CHECK(1 == stored && 1 == w && 0 == r);
    RS_CHECK(RS_STATE_COMPLETE == u->state && 5 == u->offset);
    RS_CHECK(!new_left(p, u));
    RS_CHECK_STR(rs_test_content(p, u->path), "hello");
    RS_CHECK(NULL == rs_engine_open(&eng, &area, u->id, "", p, &o));
    RS_CHECK(RS_STATE_COMPLETE == o->state && 5 == o->offset);
}

static void test_partial_and_cut(apr_pool_t *p)
{
    rs_upload_t *u = fresh(p, 10), *o;
    apr_uint32_t w, r;
    int stored = 0;
    rs_error_t *err;

    RS_CHECK(NULL == run(p, u, "abcd", 4, 0, &stored, &w, &r));
    RS_CHECK(1 == stored && 1 == w && 0 == r && 4 == u->offset);
    RS_CHECK(NULL == rs_engine_open(&eng, &area, u->id, "", p, &o));
    RS_CHECK(RS_STATE_ACTIVE == o->state && 4 == o->offset);
    RS_CHECK_STR(rs_test_content(p, rs_data_path(p, area.dir, u->id)),
                 "abcd");
    u = fresh(p, 10);
    err = run(p, u, "abc", 10, 1, &stored, &w, &r);
    RS_CHECK(err && RS_ERR_BODY_READ == err->code);
    RS_CHECK(1 == stored && 1 == w && !new_left(p, u));
    RS_CHECK(NULL == rs_engine_open(&eng, &area, u->id, "", p, &o));
    RS_CHECK(3 == o->offset);
}

static void test_refusals(apr_pool_t *p)
{
    rs_upload_t *u = fresh(p, 2), *o;
    apr_uint32_t w, r;
    int stored = 0;
    rs_error_t *err;

    /* over the length: refused before the body, the record stays at 0 */
    err = run(p, u, "12345", 5, 0, &stored, &w, &r);
    RS_CHECK(err && RS_ERR_SIZE_EXCEEDED == err->code);
    RS_CHECK(1 == stored && 1 == w && !new_left(p, u));
    RS_CHECK(NULL == rs_engine_open(&eng, &area, u->id, "", p, &o));
    RS_CHECK(0 == o->offset);
    /* ResumableMaxPending: counted before the body (one read), nothing
     * made when refused */
    area.max_pending = 1;
    RS_CHECK(NULL == rs_engine_create(&eng, &area, fresh(p, 10), p));
    u = fresh(p, 10);
    err = run(p, u, "x", 1, 0, &stored, &w, &r);
    RS_CHECK(err && RS_ERR_TOO_MANY_PENDING == err->code);
    RS_CHECK(0 == stored && 0 == w && 1 == r && !new_left(p, u));
    area.max_pending = 0;
}

static void test_client_key_not_deferred(apr_pool_t *p)
{
    rs_upload_t *u = fresh(p, 3);
    apr_uint32_t w, r;
    int stored = 0;

    u->client_key = "my-file";
    RS_CHECK(NULL == run(p, u, "xyz", 3, 0, &stored, &w, &r));
    RS_CHECK(1 == stored && w >= 2);        /* created, then appended */
    RS_CHECK(RS_STATE_COMPLETE == u->state);
}

void suite_deferred(apr_pool_t *p)
{
    rs_test_engine(p, "deferred", &eng, &area);
    area.sync = 1;
    test_complete(p);
    test_partial_and_cut(p);
    test_refusals(p);
    test_client_key_not_deferred(p);
}
