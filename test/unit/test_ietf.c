/* Licensed under the Apache License, Version 2.0. */
/* The IETF front end (rs_proto_ietf.c) on synthetic requests: header tables
 * in, status and header tables out, against a real engine and store in a
 * temp directory. No httpd. */

#include <stdarg.h>
#include <string.h>
#include <apr_strings.h>
#include <apr_file_io.h>

#include "rs_test.h"
#include "rs_proto.h"
#include "rs_store.h"
#include "rs_upload.h"

typedef struct mem_body {
    const char *data;
    apr_size_t len;
    int done;
} mem_body;

typedef struct fixture {
    apr_pool_t *p;
    rs_engine_t engine;
    rs_area_t area;
    int interims;                /* 104s sent */
    const char *interim_loc;
} fixture;

static fixture fx;

static apr_status_t mem_read(rs_body_t *b, const char **data, apr_size_t *len)
{
    mem_body *m = b->ctx;

    if (m->done || !m->len) {
        return APR_EOF;
    }
    m->done = 1;
    *data = m->data;
    *len = m->len;
    return APR_SUCCESS;
}

static void interim(rs_req_t *req, int status, const char *line,
                    apr_table_t *h)
{
    if (104 == status) {
        fx.interims++;
        fx.interim_loc = apr_pstrdup(fx.p, apr_table_get(h, "Location"));
    }
}

/* A request; headers as "Name", "value" pairs, NULL terminated. */
static rs_req_t *req_make(const char *method, const char *id, const char *body,
                          ...)
{
    rs_req_t *req = apr_pcalloc(fx.p, sizeof(*req));
    rs_body_t *b = apr_pcalloc(fx.p, sizeof(*b));
    mem_body *m = apr_pcalloc(fx.p, sizeof(*m));
    const char *k;
    va_list ap;

    req->pool = fx.p;
    req->method = method;
    req->in = apr_table_make(fx.p, 8);
    req->out = apr_table_make(fx.p, 8);
    req->base_url = "http://h/files";
    req->base_path = "/files";
    req->id = id;
    req->at_base = id == NULL;
    req->user = "";
    m->data = body ? body : "";
    m->len = strlen(m->data);
    b->read = mem_read;
    b->length = m->len;
    b->ctx = m;
    req->body = b;
    req->content_length = m->len;
    req->area = &fx.area;
    req->engine = &fx.engine;
    req->interim = interim;
    va_start(ap, body);
    while ((k = va_arg(ap, const char *))) {
        apr_table_setn(req->in, k, va_arg(ap, const char *));
    }
    va_end(ap);
    return req;
}

static rs_req_t *run(rs_req_t *req)
{
    RS_CHECK(rs_proto_ietf.match(req));
    rs_proto_ietf.handle(req);
    return req;
}

static const char *out(rs_req_t *req, const char *name)
{
    return apr_table_get(req->out, name);
}

static const char *id_of(rs_req_t *req)
{
    const char *loc = out(req, "Location");

    return loc ? strrchr(loc, '/') + 1 : "";
}

static void setup(apr_pool_t *p)
{
    const char *dir = rs_test_tmpdir(p, "ietf");

    memset(&fx, 0, sizeof(fx));
    fx.p = p;
    rs_store_create(&fx.engine.store, "sdbm", apr_pstrcat(p, dir, "/state",
                                                          NULL), NULL, p);
    fx.engine.write_buffer = 4096;
    fx.area.dir = apr_pstrcat(p, dir, "/files", NULL);
    apr_dir_make_recursive(fx.area.dir, APR_OS_DEFAULT, p);
    fx.area.max_size = 1000;
    fx.area.max_append = 500;
    fx.area.expire = apr_time_from_sec(3600);
    fx.area.lock_wait = apr_time_from_msec(100);
    fx.area.stall_time = apr_time_from_sec(1);
    fx.area.protocols = ~0u;
}

static void test_versions(void)
{
    rs_req_t *r;

    r = req_make("POST", NULL, "", "Upload-Complete", "?0", NULL);
    RS_CHECK(!rs_proto_ietf.match(r));               /* no interop header */
    r = run(req_make("POST", NULL, "", "Upload-Draft-Interop-Version", "9",
                     "Upload-Complete", "?0", NULL));
    RS_CHECK(400 == r->status && strstr(r->text, "3, 4, 5, 6, 7, 8"));
    r = run(req_make("POST", NULL, "", "Upload-Draft-Interop-Version", "7;a",
                     "Upload-Complete", "?0", NULL));
    RS_CHECK(201 == r->status);                      /* parameters ignored */
    RS_CHECK_STR(out(r, "Upload-Draft-Interop-Version"), "7");
}

static void test_create_append(void)
{
    rs_req_t *r;
    const char *id;
    int before = fx.interims;

    r = run(req_make("POST", NULL, "hello", "Upload-Draft-Interop-Version",
                     "8", "Upload-Complete", "?0", "Upload-Length", "11",
                     "Content-Disposition", "inline; filename=\"a b.txt\"",
                     "Content-Type", "text/plain; charset=utf-8", NULL));
    RS_CHECK(201 == r->status);
    RS_CHECK(fx.interims == before + 1);
    RS_CHECK_STR(fx.interim_loc, out(r, "Location"));
    RS_CHECK_STR(out(r, "Upload-Offset"), "5");
    RS_CHECK_STR(out(r, "Upload-Complete"), "?0");
    RS_CHECK_STR(out(r, "Upload-Limit"), "max-size=1000, min-size=0, "
                 "max-append-size=500, max-age=3600");
    id = id_of(r);
    r = run(req_make("HEAD", id, NULL, "Upload-Draft-Interop-Version", "8",
                     NULL));
    RS_CHECK(204 == r->status);
    RS_CHECK_STR(out(r, "Upload-Offset"), "5");
    RS_CHECK_STR(out(r, "Upload-Length"), "11");
    r = run(req_make("PATCH", id, " world", "Upload-Draft-Interop-Version",
                     "8", "Upload-Complete", "?1", "Upload-Offset", "5",
                     "Content-Type", "application/partial-upload", NULL));
    RS_CHECK(200 == r->status);
    RS_CHECK_STR(out(r, "Upload-Complete"), "?1");
    RS_CHECK_STR(out(r, "Upload-Offset"), "11");
    RS_CHECK(out(r, "Repr-Digest") == NULL);         /* resumed, not asked */
}

static void test_problems(void)
{
    rs_req_t *r;
    const char *id;

    r = run(req_make("POST", NULL, "abc", "Upload-Draft-Interop-Version",
                     "6", "Upload-Complete", "?0", NULL));
    id = id_of(r);
    r = run(req_make("PATCH", id, "x", "Upload-Draft-Interop-Version", "6",
                     "Upload-Complete", "?0", "Upload-Offset", "1",
                     "Content-Type", "application/partial-upload", NULL));
    RS_CHECK(409 == r->status);
    RS_CHECK_STR(r->content_type, "application/problem+json");
    RS_CHECK(strstr(r->text, "#mismatching-upload-offset")
             && strstr(r->text, "\"expected-offset\":3")
             && strstr(r->text, "\"provided-offset\":1"));
    RS_CHECK_STR(out(r, "Upload-Offset"), "3");
    r = run(req_make("PATCH", id, "x", "Upload-Draft-Interop-Version", "6",
                     "Upload-Complete", "?0", "Upload-Offset", "3", NULL));
    RS_CHECK(415 == r->status);
    RS_CHECK_STR(out(r, "Accept-Patch"), "application/partial-upload");
    r = run(req_make("PATCH", id, "x", "Upload-Draft-Interop-Version", "5",
                     "Upload-Complete", "?0", "Upload-Offset", "3", NULL));
    RS_CHECK(204 == r->status);                      /* 5: any media type */
    r = run(req_make("PATCH", id, "", "Upload-Draft-Interop-Version", "7",
                     "Upload-Complete", "?1", "Upload-Offset", "4",
                     "Upload-Length", "9",
                     "Content-Type", "application/partial-upload", NULL));
    RS_CHECK(400 == r->status
             && strstr(r->text, "#inconsistent-upload-length"));
    r = run(req_make("PATCH", id, "", "Upload-Draft-Interop-Version", "7",
                     "Upload-Complete", "?1", "Upload-Offset", "4",
                     "Content-Type", "application/partial-upload", NULL));
    RS_CHECK(200 == r->status);
    r = run(req_make("PATCH", id, "y", "Upload-Draft-Interop-Version", "7",
                     "Upload-Complete", "?1", "Upload-Offset", "4",
                     "Content-Type", "application/partial-upload", NULL));
    RS_CHECK(400 == r->status && strstr(r->text, "#completed-upload"));
}

static void test_v3_and_strict(void)
{
    rs_req_t *r;
    const char *id;

    r = run(req_make("PUT", NULL, "ab", "Upload-Draft-Interop-Version", "3",
                     "Upload-Incomplete", "?1", NULL));
    RS_CHECK(201 == r->status);
    RS_CHECK_STR(out(r, "Upload-Incomplete"), "?1");
    RS_CHECK(!out(r, "Upload-Complete") && !out(r, "Upload-Limit"));
    id = id_of(r);
    r = run(req_make("HEAD", id, NULL, "Upload-Draft-Interop-Version", "3",
                     "Upload-Offset", "2", NULL));
    RS_CHECK(400 == r->status);
    r = run(req_make("PATCH", id, "c", "Upload-Draft-Interop-Version", "3",
                     "Upload-Offset", "2", NULL));
    RS_CHECK(200 == r->status);                      /* absent: last part */
    RS_CHECK_STR(out(r, "Upload-Incomplete"), "?0");
    r = run(req_make("DELETE", id, NULL, "Upload-Draft-Interop-Version", "3",
                     NULL));
    RS_CHECK(204 == r->status);
    r = run(req_make("HEAD", id, NULL, "Upload-Draft-Interop-Version", "3",
                     NULL));
    RS_CHECK(404 == r->status);
    r = run(req_make("HEAD", id, NULL, "Upload-Draft-Interop-Version", "8",
                     NULL));
    RS_CHECK(410 == r->status);
}

static void test_limits_and_metadata(void)
{
    rs_req_t *r;
    rs_upload_t *u = NULL;

    r = run(req_make("POST", NULL, "", "Upload-Draft-Interop-Version", "6",
                     "Upload-Complete", "?0", "Upload-Length", "1001", NULL));
    RS_CHECK(413 == r->status && out(r, "Upload-Limit"));
    r = run(req_make("OPTIONS", NULL, NULL, "Upload-Draft-Interop-Version",
                     "6", NULL));
    RS_CHECK(200 == r->status);
    RS_CHECK(strstr(out(r, "Upload-Limit"), "expires=3600") != NULL);
    r = run(req_make("OPTIONS", NULL, NULL, "Upload-Draft-Interop-Version",
                     "4", NULL));
    RS_CHECK(200 == r->status && !out(r, "Upload-Limit"));
    r = run(req_make("POST", NULL, "data", "Upload-Draft-Interop-Version",
                     "8", "Upload-Complete", "?1", "Content-Disposition",
                     "attachment; filename=x.bin; "
                     "filename*=UTF-8''%E2%82%AC.txt",
                     "Content-Type", "application/partial-upload", NULL));
    RS_CHECK(201 == r->status);
    RS_CHECK_STR(out(r, "Upload-Complete"), "?1");
    RS_CHECK(out(r, "Repr-Digest") != NULL);          /* streamed whole */
    RS_CHECK(!rs_engine_open(&fx.engine, &fx.area, id_of(r), "", fx.p, &u));
    RS_CHECK(u && u->filename && !strcmp(u->filename, "\xe2\x82\xac.txt"));
    RS_CHECK(u && !u->filetype);                     /* protocol type */
    RS_CHECK(u && u->digest_alg && !strcmp(u->digest_alg, "sha256"));
}

static void test_repr_digest(void)
{
    /* sha-256 of "abcdef" */
    static const char *good =
        "sha-256=:vvV+x/U6bUC+tkCngKY5yDvCmsipgW8fxsXG3Nk8RyE=:";
    rs_req_t *r;
    const char *id;

    r = run(req_make("POST", NULL, "abc", "Upload-Draft-Interop-Version",
                     "8", "Upload-Complete", "?0", "Upload-Length", "6",
                     "Repr-Digest", good, NULL));
    RS_CHECK(201 == r->status);
    id = id_of(r);
    r = run(req_make("PATCH", id, "def", "Upload-Draft-Interop-Version", "8",
                     "Upload-Complete", "?1", "Upload-Offset", "3",
                     "Content-Type", "application/partial-upload", NULL));
    RS_CHECK(200 == r->status);
    RS_CHECK_STR(out(r, "Repr-Digest"), good);
    r = run(req_make("POST", NULL, "abc", "Upload-Draft-Interop-Version",
                     "8", "Upload-Complete", "?0", "Upload-Length", "6",
                     "Repr-Digest", good, NULL));
    id = id_of(r);
    r = run(req_make("PATCH", id, "xyz", "Upload-Draft-Interop-Version", "8",
                     "Upload-Complete", "?1", "Upload-Offset", "3",
                     "Content-Type", "application/partial-upload", NULL));
    RS_CHECK(400 == r->status && strstr(r->text, "Repr-Digest"));
    r = run(req_make("HEAD", id, NULL, "Upload-Draft-Interop-Version", "8",
                     NULL));
    RS_CHECK(410 == r->status);                      /* cancelled */
    r = run(req_make("POST", NULL, "abc", "Upload-Draft-Interop-Version",
                     "8", "Upload-Complete", "?1",
                     "Repr-Digest", "sha-256=:AAAA:", NULL));
    RS_CHECK(400 == r->status);                      /* wrong size */
}

void suite_ietf(apr_pool_t *p)
{
    setup(p);
    test_versions();
    test_create_append();
    test_problems();
    test_v3_and_strict();
    test_limits_and_metadata();
    test_repr_digest();
}
