/* Licensed under the Apache License, Version 2.0. */
/* Unit tests of composition (rs_engine_compose.c): a final concatenation
 * completes composed of its partials' data files (rs_engine_concat,
 * rs_engine_parts), rs_engine_materialise publishes it once, a partial a
 * composed final uses is neither terminated nor expired before that final
 * is materialised, the sweep materialises what is left, and resumablectl's
 * check accepts a composed record but not one whose parts are gone.
 * Registration (issue 11): all or nothing, one record write per distinct
 * partial, duplicates and too many parts refused, at most
 * RS_ENGINE_MAX_WAITERS unpublished finals per partial, and a final leaves
 * its partials' waiter lists when it is materialised. */

#include <string.h>
#include <apr_strings.h>
#include <apr_file_io.h>
#include "rs_test.h"
#include "rs_engine.h"
#include "rs_engine_private.h"
#include "rs_store.h"
#include "rs_data.h"
#include "rs_ctl.h"
#include "rs_error.h"

static rs_engine_t eng;
static rs_area_t area;

static void setup(apr_pool_t *p)
{
    rs_test_engine(p, "compose", &eng, &area);
    area.sync = 1;
}

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

/* A complete partial holding s. */
static rs_upload_t *partial(apr_pool_t *p, const char *s)
{
    rs_upload_t *u = rs_upload_make(p, NULL);
    rs_body_t body = { mem_read, NULL, 0, NULL };
    rs_append_t ap;
    rs_append_result_t res;

    u->proto = RS_PROTO_TUS;
    u->flags = RS_UF_PARTIAL;
    u->length = (apr_off_t)strlen(s);
    RS_CHECK(NULL == rs_engine_create(&eng, &area, u, p));
    memset(&ap, 0, sizeof(ap));
    ap.declare_length = -1;
    body.length = u->length;
    body.ctx = (void *)s;
    RS_CHECK(NULL == rs_engine_append(&eng, &area, u, &ap, &body, p, &res));
    RS_CHECK(RS_STATE_COMPLETE == u->state);
    return u;
}

static rs_upload_t *final(apr_pool_t *p, rs_upload_t *a, rs_upload_t *b,
                          const char *name)
{
    rs_upload_t *u = rs_upload_make(p, NULL);

    u->proto = RS_PROTO_TUS;
    u->filename = name;
    u->parts = apr_array_make(p, 2, sizeof(const char *));
    APR_ARRAY_PUSH(u->parts, const char *) = a->id;
    APR_ARRAY_PUSH(u->parts, const char *) = b->id;
    RS_CHECK(NULL == rs_engine_concat(&eng, &area, u, 0, p));
    return u;
}

static int code(rs_error_t *err)
{
    return err ? (int)err->code : RS_ERR_NONE;
}

static rs_upload_t *reopen(apr_pool_t *p, const char *id)
{
    rs_upload_t *u = NULL;

    RS_CHECK(NULL == rs_engine_open(&eng, &area, id, "", p, &u));
    return u;
}

static void test_concat(apr_pool_t *p)
{
    rs_upload_t *a = partial(p, "hello "), *b = partial(p, "world");
    rs_upload_t *f = final(p, a, b, "hw.txt"), *v;
    const apr_array_header_t *ids = rs_engine_composed(p);
    apr_array_header_t *parts;
    const rs_part_t *pt;

    RS_CHECK(RS_STATE_COMPLETE == f->state && (f->flags & RS_UF_COMPOSED));
    RS_CHECK(!(f->flags & RS_UF_PUBLISHED) && 11 == f->length
             && 11 == f->offset && 0 == f->expires);
    RS_CHECK_STR(f->path, "hw.txt");            /* the name it will get */
    RS_CHECK(ids && 1 == ids->nelts);
    RS_CHECK_STR(APR_ARRAY_IDX(ids, 0, const char *), f->id);
    RS_CHECK(NULL == rs_engine_parts(&eng, f, p, &parts) && 2 == parts->nelts);
    pt = &APR_ARRAY_IDX(parts, 0, rs_part_t);
    RS_CHECK_STR(pt->path, rs_data_path(p, area.dir, a->id));
    RS_CHECK(6 == pt->len && 5 == APR_ARRAY_IDX(parts, 1, rs_part_t).len);
    RS_CHECK(!rs_test_content(p, apr_pstrcat(p, area.dir, "/hw.txt", NULL)));
    v = reopen(p, a->id);                       /* the partial knows it */
    RS_CHECK(v->waiters && 1 == v->waiters->nelts);

    RS_CHECK(NULL == rs_engine_materialise(&eng, &area, f->id, p));
    RS_CHECK_STR(rs_test_content(p, apr_pstrcat(p, area.dir, "/hw.txt", NULL)),
                 "hello world");
    v = reopen(p, f->id);
    RS_CHECK((v->flags & RS_UF_PUBLISHED) && !(v->flags & RS_UF_COMPOSED)
             && (v->flags & RS_UF_UNINDEXED));
    RS_CHECK_STR(v->path, apr_pstrcat(p, area.dir, "/hw.txt", NULL));
    RS_CHECK(!rs_test_content(p, rs_data_path(p, area.dir, f->id)));
    RS_CHECK(NULL == rs_engine_materialise(&eng, &area, f->id, p)); /* no-op */
    RS_CHECK_STR(rs_test_content(p, rs_data_path(p, area.dir, a->id)), "hello ");
    RS_CHECK(NULL == rs_engine_terminate(&eng, &area, a, p));    /* free */
}

/* Materialising fails while "<id>.data" can not be opened (a directory
 * there): the final stays composed and its partials stay. */
static void test_partial_kept(apr_pool_t *p)
{
    rs_upload_t *a = partial(p, "abc"), *b = partial(p, "def");
    rs_upload_t *f = final(p, a, b, NULL), *v;
    const char *block = rs_data_path(p, area.dir, f->id);
    rs_ctl_item_t *it;
    int removed = -1;

    apr_dir_make(block, APR_OS_DEFAULT, p);
    RS_CHECK(RS_ERR_STORAGE == code(rs_engine_materialise(&eng, &area, f->id,
                                                          p)));
    RS_CHECK(reopen(p, f->id)->flags & RS_UF_COMPOSED);
    RS_CHECK(RS_ERR_LOCKED == code(rs_engine_terminate(&eng, &area, a, p)));
    RS_CHECK(RS_STATE_COMPLETE == reopen(p, a->id)->state);
    /* hours later: the partials expired, but are kept */
    RS_CHECK(APR_SUCCESS == rs_engine_sweep(&eng, apr_time_now()
                                            + apr_time_from_sec(7200), p,
                                            &removed));
    RS_CHECK(RS_STATE_COMPLETE == reopen(p, a->id)->state);
    RS_CHECK(RS_STATE_COMPLETE == reopen(p, b->id)->state);
    RS_CHECK(APR_SUCCESS == rs_ctl_load_one(eng.store, f->id, p, &it));
    RS_CHECK(RS_CTL_OK == rs_ctl_check(it, p));

    apr_dir_remove(block, p);                   /* the sweep does it now */
    RS_CHECK(APR_SUCCESS == rs_engine_sweep(&eng, apr_time_now(), p,
                                            &removed));
    v = reopen(p, f->id);
    RS_CHECK((v->flags & RS_UF_PUBLISHED) && !(v->flags & RS_UF_COMPOSED));
    RS_CHECK_STR(rs_test_content(p, v->path), "abcdef");
    RS_CHECK(NULL == rs_engine_terminate(&eng, &area, a, p));
    RS_CHECK(APR_SUCCESS == rs_engine_sweep(&eng, apr_time_now()
                                            + apr_time_from_sec(7200), p,
                                            &removed));
    RS_CHECK(1 == removed);                     /* b expired now */
    RS_CHECK_STR(rs_test_content(p, v->path), "abcdef");
}

/* A composed final whose partial's data file vanished: parts missing. */
static void test_parts_gone(apr_pool_t *p)
{
    rs_upload_t *a = partial(p, "12"), *b = partial(p, "345");
    rs_upload_t *f = final(p, a, b, NULL);
    apr_array_header_t *parts;
    rs_ctl_item_t *it;

    apr_file_remove(rs_data_path(p, area.dir, b->id), p);
    RS_CHECK(APR_SUCCESS == rs_ctl_load_one(eng.store, f->id, p, &it));
    RS_CHECK(RS_CTL_NO_PARTS == rs_ctl_check(it, p));
    RS_CHECK(NULL == rs_engine_parts(&eng, f, p, &parts));  /* records ok */
    RS_CHECK(RS_ERR_STORAGE == code(rs_engine_materialise(&eng, &area, f->id,
                                                          p)));
    RS_CHECK(reopen(p, f->id)->flags & RS_UF_COMPOSED);
}

/* The sweep reads records in batches (SWEEP_BATCH, 512): more than two
 * batches of expired uploads all go, then their tombstones. */
static void test_sweep_batches(apr_pool_t *p)
{
    enum { N = 1100 };
    const char *ids[N];
    apr_pool_t *sub;
    rs_upload_t *u;
    rs_error_t *err;
    int i, ok = 1, removed = -1;

    apr_pool_create(&sub, p);
    for (i = 0; i < N; i++) {
        u = rs_upload_make(p, NULL);
        u->proto = RS_PROTO_TUS;
        u->length = 10;
        ok &= NULL == rs_engine_create(&eng, &area, u, sub);
        ids[i] = apr_pstrdup(p, u->id);
        apr_pool_clear(sub);
    }
    RS_CHECK(ok);
    RS_CHECK(APR_SUCCESS == rs_engine_sweep(&eng, apr_time_now(), p,
                                            &removed));
    RS_CHECK(0 == removed);                    /* none expired yet */
    RS_CHECK(APR_SUCCESS == rs_engine_sweep(&eng, apr_time_now()
                                            + apr_time_from_sec(7200), p,
                                            &removed));
    RS_CHECK(N <= removed);                    /* (earlier tests' leftovers) */
    for (i = 0; i < N; i += 97) {
        err = rs_engine_open(&eng, &area, ids[i], "", sub, &u);
        ok &= err && RS_ERR_GONE == err->code;
        apr_pool_clear(sub);
    }
    RS_CHECK(ok);
    RS_CHECK(APR_SUCCESS == rs_engine_sweep(&eng, apr_time_now()
                                            + apr_time_from_sec(8 * 86400),
                                            p, &removed));
    for (i = 0; i < N; i += 97) {
        err = rs_engine_open(&eng, &area, ids[i], "", sub, &u);
        ok &= err && RS_ERR_NOT_FOUND == err->code;   /* tombstone gone */
        apr_pool_clear(sub);
    }
    RS_CHECK(ok);
    apr_pool_destroy(sub);
}

/* A final of the given partials (n ids), as a front end hands it over. */
static rs_upload_t *final_of(apr_pool_t *p, const char **ids, int n)
{
    rs_upload_t *u = rs_upload_make(p, NULL);
    int i;

    u->proto = RS_PROTO_TUS;
    u->parts = apr_array_make(p, n, sizeof(const char *));
    for (i = 0; i < n; i++) {
        APR_ARRAY_PUSH(u->parts, const char *) = ids[i];
    }
    return u;
}

static int waiters(apr_pool_t *p, const char *id)
{
    rs_upload_t *u = reopen(p, id);

    return u->waiters ? u->waiters->nelts : 0;
}

/* A partial listed twice, and more than RS_ENGINE_MAX_PARTS parts: 400,
 * and not one record written. */
static void test_duplicates_refused(apr_pool_t *p)
{
    rs_upload_t *a = partial(p, "dup"), *b = partial(p, "other"), *f;
    const char *twice[] = { a->id, b->id, a->id };
    const char **many = apr_pcalloc(p, sizeof(char *)
                                    * (RS_ENGINE_MAX_PARTS + 1));
    apr_uint32_t puts = rs_store_puts(eng.store);
    rs_error_t *err;
    int i;

    f = final_of(p, twice, 3);
    err = rs_engine_concat(&eng, &area, f, 1, p);
    RS_CHECK(RS_ERR_INVALID_CONCAT == code(err) && 400 == err->status);
    RS_CHECK(err && err->detail && strstr(err->detail, "twice"));
    for (i = 0; i <= RS_ENGINE_MAX_PARTS; i++) {
        many[i] = i % 2 ? a->id : apr_psprintf(p, "%022d", i);
    }
    f = final_of(p, many, RS_ENGINE_MAX_PARTS + 1);
    RS_CHECK(RS_ERR_INVALID_CONCAT == code(rs_engine_concat(&eng, &area, f, 1,
                                                            p)));
    RS_CHECK(puts == rs_store_puts(eng.store));
    RS_CHECK(0 == waiters(p, a->id) && 0 == waiters(p, b->id));
    RS_CHECK(NULL == rs_engine_terminate(&eng, &area, a, p));   /* not used */
}

/* The state work of a final is one write per distinct partial, its own
 * record, and its composition; each partial lists it once. */
static void test_work_bounded(apr_pool_t *p)
{
    rs_upload_t *a = partial(p, "x"), *b = partial(p, "y"),
                *c = partial(p, "z"), *f;
    const char *ids[] = { a->id, b->id, c->id };
    apr_uint32_t puts = rs_store_puts(eng.store);

    f = final_of(p, ids, 3);
    RS_CHECK(NULL == rs_engine_concat(&eng, &area, f, 1, p));
    RS_CHECK(f->flags & RS_UF_COMPOSED);
    RS_CHECK(3 + 1 + 1 == rs_store_puts(eng.store) - puts);
    RS_CHECK(1 == waiters(p, a->id) && 1 == waiters(p, b->id)
             && 1 == waiters(p, c->id));
    /* materialised: it leaves the lists (one more write per partial) */
    puts = rs_store_puts(eng.store);
    RS_CHECK(NULL == rs_engine_materialise(&eng, &area, f->id, p));
    RS_CHECK(1 + 3 == rs_store_puts(eng.store) - puts);
    RS_CHECK(0 == waiters(p, a->id) && 0 == waiters(p, b->id)
             && 0 == waiters(p, c->id));
    RS_CHECK(NULL == rs_engine_terminate(&eng, &area, b, p));   /* free */
    RS_CHECK_STR(rs_test_content(p, reopen(p, f->id)->path), "xyz");
}

/* RS_ENGINE_MAX_WAITERS unpublished finals use a partial: the next one is
 * refused (423) and nothing is stored, the partial stays protected; once
 * one is published, or one is removed unpublished, there is room again. */
static void test_waiter_limit(apr_pool_t *p)
{
    rs_upload_t *a = partial(p, "A"), *b = partial(p, "B"), *f = NULL;
    const char *ids[] = { a->id, b->id };
    const char *first = NULL, *second = NULL;
    apr_pool_t *sub;
    apr_uint32_t puts;
    rs_error_t *err;
    int i, ok = 1;

    apr_pool_create(&sub, p);
    for (i = 0; i < RS_ENGINE_MAX_WAITERS; i++) {
        f = final_of(sub, ids, 2);
        ok &= NULL == rs_engine_concat(&eng, &area, f, 1, sub);
        first = first ? first : apr_pstrdup(p, f->id);
        second = 1 == i ? apr_pstrdup(p, f->id) : second;
        apr_pool_clear(sub);
    }
    RS_CHECK(ok);
    RS_CHECK(RS_ENGINE_MAX_WAITERS == waiters(p, a->id));
    puts = rs_store_puts(eng.store);
    f = final_of(p, ids, 2);
    err = rs_engine_concat(&eng, &area, f, 1, p);
    RS_CHECK(RS_ERR_LOCKED == code(err) && 423 == err->status);
    RS_CHECK(puts == rs_store_puts(eng.store));             /* nothing */
    RS_CHECK(RS_ERR_NOT_FOUND == code(rs_engine_open(&eng, &area, f->id, "",
                                                     p, &f)));
    RS_CHECK(RS_ENGINE_MAX_WAITERS == waiters(p, a->id)
             && RS_ENGINE_MAX_WAITERS == waiters(p, b->id));
    /* one published: it left the lists */
    RS_CHECK(NULL == rs_engine_materialise(&eng, &area, first, p));
    RS_CHECK(RS_ENGINE_MAX_WAITERS - 1 == waiters(p, a->id));
    f = final_of(p, ids, 2);
    RS_CHECK(NULL == rs_engine_concat(&eng, &area, f, 1, p));
    RS_CHECK_STR(rs_test_content(p, rs_data_path(p, area.dir, a->id)), "A");
    /* full again; one removed unpublished: the full list is pruned */
    RS_CHECK(NULL == rs_engine_terminate(&eng, &area, reopen(p, second), p));
    RS_CHECK(RS_ENGINE_MAX_WAITERS == waiters(p, a->id));
    f = final_of(p, ids, 2);
    RS_CHECK(NULL == rs_engine_concat(&eng, &area, f, 1, p));
    RS_CHECK(RS_ENGINE_MAX_WAITERS == waiters(p, a->id));
    /* full again; a waiting final refused by a pre-finish hook uses
     * nothing (check_unused): the full list is pruned of it too */
    {
        rs_upload_t *refused = reopen(p, f->id);

        refused->flags |= RS_UF_REJECTED;
        RS_CHECK(APR_SUCCESS == rs_eng_save_progress(&eng, refused, p, NULL));
        f = final_of(p, ids, 2);
        RS_CHECK(NULL == rs_engine_concat(&eng, &area, f, 1, p));
        RS_CHECK(RS_ENGINE_MAX_WAITERS == waiters(p, a->id));
    }
    /* removing the partial publishes its finals first: their bytes stay */
    RS_CHECK(NULL == rs_engine_terminate(&eng, &area, a, p));
    RS_CHECK_STR(rs_test_content(p, reopen(p, f->id)->path), "AB");
    RS_CHECK(0 == waiters(p, b->id));
    apr_pool_destroy(sub);
}

/* The final's own record can not be written (too large): the partials
 * written before it are put back, nothing is kept. */
static void test_all_or_nothing(apr_pool_t *p)
{
    rs_upload_t *a = partial(p, "keep"), *b = partial(p, "me"), *f, *v;
    const char *ids[] = { a->id, b->id };
    char *huge = apr_palloc(p, RS_UPLOAD_MAX_RECORD + 2);

    memset(huge, 'm', RS_UPLOAD_MAX_RECORD + 1);
    huge[RS_UPLOAD_MAX_RECORD + 1] = '\0';
    f = final_of(p, ids, 2);
    f->metadata = huge;
    RS_CHECK(RS_ERR_STATE == code(rs_engine_concat(&eng, &area, f, 1, p)));
    RS_CHECK(RS_ERR_NOT_FOUND == code(rs_engine_open(&eng, &area, f->id, "",
                                                     p, &v)));
    RS_CHECK(0 == waiters(p, a->id) && 0 == waiters(p, b->id));
    RS_CHECK(NULL == rs_engine_terminate(&eng, &area, a, p));
}

/* Lengths that add up beyond apr_off_t: refused as too large (413), not a
 * signed overflow. */
static void test_length_overflow(apr_pool_t *p)
{
    rs_upload_t *a = rs_upload_make(p, NULL), *b = rs_upload_make(p, NULL);
    const char *ids[2];
    rs_error_t *err;

    a->proto = b->proto = RS_PROTO_TUS;
    a->flags = b->flags = RS_UF_PARTIAL;
    a->length = b->length = (apr_off_t)APR_INT64_MAX;
    RS_CHECK(NULL == rs_engine_create(&eng, &area, a, p));
    RS_CHECK(NULL == rs_engine_create(&eng, &area, b, p));
    ids[0] = a->id;
    ids[1] = b->id;
    err = rs_engine_concat(&eng, &area, final_of(p, ids, 2), 1, p);
    RS_CHECK(RS_ERR_MAX_SIZE == code(err) && 413 == err->status);
    RS_CHECK(0 == waiters(p, a->id));
}

/* Publishing succeeds but the record saying so can not be written (with
 * the full path it would exceed RS_UPLOAD_MAX_RECORD): the published file
 * is removed again, the upload stays composed, its parts still its data. */
static void test_publish_record_fails(apr_pool_t *p)
{
    rs_upload_t *a = partial(p, "pub"), *b = partial(p, "lish"), *f, *v;
    const char *ids[] = { a->id, b->id };
    apr_array_header_t *parts;
    apr_size_t len;
    char *buf, *meta;
    long k;

    f = final_of(p, ids, 2);
    f->metadata = "m";
    RS_CHECK(NULL == rs_engine_concat(&eng, &area, f, 1, p));
    RS_CHECK(APR_SUCCESS == rs_upload_encode(reopen(p, f->id), p, &buf, &len));
    /* the same final with metadata making its composed record 2 bytes
     * short of the maximum; publishing adds the directory to its path */
    k = (long)(RS_UPLOAD_MAX_RECORD - len) - 1;
    meta = apr_palloc(p, k + 1);
    memset(meta, 'm', k);
    meta[k] = '\0';
    f = final_of(p, ids, 2);
    f->metadata = meta;
    RS_CHECK(NULL == rs_engine_concat(&eng, &area, f, 1, p));
    RS_CHECK(f->flags & RS_UF_COMPOSED);
    RS_CHECK(NULL != rs_engine_materialise(&eng, &area, f->id, p));
    v = reopen(p, f->id);
    RS_CHECK((v->flags & RS_UF_COMPOSED) && !(v->flags & RS_UF_PUBLISHED));
    RS_CHECK(!rs_test_content(p, apr_pstrcat(p, area.dir, "/", f->id, NULL)));
    RS_CHECK(!rs_test_content(p, rs_data_path(p, area.dir, f->id)));
    RS_CHECK(NULL == rs_engine_parts(&eng, v, p, &parts) && 2 == parts->nelts);
    RS_CHECK(RS_ERR_LOCKED == code(rs_engine_terminate(&eng, &area, a, p)));
}

/* Completion publishes, but the record saying so can not be written
 * (with its path it would exceed RS_UPLOAD_MAX_RECORD): the bytes go back
 * into the data file, where the still active record looks for them. */
static void test_complete_record_fails(apr_pool_t *p)
{
    rs_upload_t *u = rs_upload_make(p, NULL), *v;
    rs_body_t body = { mem_read, NULL, 5, "hello" };
    rs_append_t ap;
    rs_append_result_t res;
    apr_size_t len;
    char *buf, *meta;
    long k;

    u->proto = RS_PROTO_TUS;
    u->length = 5;
    u->metadata = "m";
    RS_CHECK(NULL == rs_engine_create(&eng, &area, u, p));
    RS_CHECK(APR_SUCCESS == rs_upload_encode(reopen(p, u->id), p, &buf, &len));
    k = (long)(RS_UPLOAD_MAX_RECORD - len) - 2;    /* 3 bytes to spare */
    meta = apr_palloc(p, k + 1);
    memset(meta, 'm', k);
    meta[k] = '\0';
    u = rs_upload_make(p, NULL);
    u->proto = RS_PROTO_TUS;
    u->length = 5;
    u->metadata = meta;
    RS_CHECK(NULL == rs_engine_create(&eng, &area, u, p));
    memset(&ap, 0, sizeof(ap));
    ap.declare_length = -1;
    RS_CHECK(RS_ERR_STATE == code(rs_engine_append(&eng, &area, u, &ap, &body,
                                                   p, &res)));
    RS_CHECK_STR(rs_test_content(p, rs_data_path(p, area.dir, u->id)),
                 "hello");
    RS_CHECK(!rs_test_content(p, apr_pstrcat(p, area.dir, "/", u->id, NULL)));
    v = reopen(p, u->id);
    RS_CHECK(RS_STATE_ACTIVE == v->state && 5 == v->offset);
}

/* The original defect: a partial's record can not take the new waiter
 * (it would exceed RS_UPLOAD_MAX_RECORD). The final was stored anyway (the
 * final's save overwrote that error) and answered 201 unregistered; now
 * it is refused, the partial written before it is put back, nothing kept. */
static void test_partial_write_fails(apr_pool_t *p)
{
    rs_upload_t *a = partial(p, "first"), *big = rs_upload_make(p, NULL), *f;
    rs_body_t body = { mem_read, NULL, 3, "big" };
    const char *ids[2];
    rs_append_t ap;
    rs_append_result_t res;
    apr_size_t len;
    char *buf, *meta;
    long k;

    big->proto = RS_PROTO_TUS;
    big->flags = RS_UF_PARTIAL;
    big->length = 3;
    big->metadata = "m";
    RS_CHECK(APR_SUCCESS == rs_upload_encode(big, p, &buf, &len));
    k = (long)(RS_UPLOAD_MAX_RECORD - len) - 200;   /* room for ids, times */
    meta = apr_palloc(p, k + 1);
    memset(meta, 'm', k);
    meta[k] = '\0';
    big->metadata = meta;
    RS_CHECK(NULL == rs_engine_create(&eng, &area, big, p));
    memset(&ap, 0, sizeof(ap));
    ap.declare_length = -1;
    RS_CHECK(NULL == rs_engine_append(&eng, &area, big, &ap, &body, p, &res));
    RS_CHECK(RS_STATE_COMPLETE == big->state);
    /* fill the record to 10 bytes short of the maximum: no room for a
     * waiter entry (4 + 22 bytes) */
    RS_CHECK(APR_SUCCESS == rs_upload_encode(reopen(p, big->id), p, &buf,
                                             &len));
    RS_CHECK(len < RS_UPLOAD_MAX_RECORD - 10);
    k += (long)(RS_UPLOAD_MAX_RECORD - 10 - len);
    meta = apr_palloc(p, k + 1);
    memset(meta, 'm', k);
    meta[k] = '\0';
    big = reopen(p, big->id);
    big->metadata = meta;
    RS_CHECK(APR_SUCCESS == rs_upload_encode(big, p, &buf, &len)
             && RS_UPLOAD_MAX_RECORD - 10 == len);
    RS_CHECK(APR_SUCCESS == rs_store_put1(eng.store, apr_pstrcat(p, "u:",
                                          big->id, NULL), buf, len, p));
    ids[0] = a->id;
    ids[1] = big->id;
    f = final_of(p, ids, 2);
    RS_CHECK(RS_ERR_STATE == code(rs_engine_concat(&eng, &area, f, 1, p)));
    RS_CHECK(RS_ERR_NOT_FOUND == code(rs_engine_open(&eng, &area, f->id, "",
                                                     p, &f)));
    RS_CHECK(0 == waiters(p, a->id) && 0 == waiters(p, big->id));
    RS_CHECK(NULL == rs_engine_terminate(&eng, &area, a, p));
}

/* A materialisation killed after it linked the copy into the area and
 * before it recorded that: the next one records that file (no second
 * copy under "name (1)", no orphan), and the data file's name goes. */
static void test_killed_after_link(apr_pool_t *p)
{
    rs_upload_t *a = partial(p, "li"), *b = partial(p, "nk"), *f, *v;
    const char *src, *pub;
    apr_file_t *fd;
    apr_size_t n = 4;

    f = final(p, a, b, "linked.txt");
    src = rs_data_path(p, area.dir, f->id);
    pub = apr_pstrcat(p, area.dir, "/linked.txt", NULL);
    RS_CHECK(APR_SUCCESS == apr_file_open(&fd, src, APR_FOPEN_WRITE
                                          | APR_FOPEN_CREATE, 0644, p));
    RS_CHECK(APR_SUCCESS == apr_file_write(fd, "link", &n) && 4 == n);
    apr_file_close(fd);
    RS_CHECK(APR_SUCCESS == apr_file_link(src, pub));
    RS_CHECK(NULL == rs_engine_materialise(&eng, &area, f->id, p));
    v = reopen(p, f->id);
    RS_CHECK((v->flags & RS_UF_PUBLISHED) && !(v->flags & RS_UF_COMPOSED));
    RS_CHECK_STR(v->path, pub);
    RS_CHECK_STR(rs_test_content(p, pub), "link");
    RS_CHECK(!rs_test_content(p, apr_pstrcat(p, area.dir, "/linked (1).txt",
                                             NULL)));
    RS_CHECK(!rs_test_content(p, src));
}

void suite_compose(apr_pool_t *p)
{
    setup(p);
    test_concat(p);
    test_partial_kept(p);
    test_parts_gone(p);
    test_sweep_batches(p);
    test_duplicates_refused(p);
    test_work_bounded(p);
    test_waiter_limit(p);
    test_all_or_nothing(p);
    test_partial_write_fails(p);
    test_length_overflow(p);
    test_publish_record_fails(p);
    test_complete_record_fails(p);
    test_killed_after_link(p);
}
