/* Licensed under the Apache License, Version 2.0. */
/* Unit tests of the form intake (rs_form): multipart bodies streamed in
 * small pieces with the file part first, spooling and its cleanup, limits,
 * JSON bodies, and dispatch to the front end that recognizes the body. */

#include <string.h>
#include <apr_strings.h>
#include <apr_file_io.h>
#include "rs_test.h"
#include "rs_form.h"
#include "rs_store.h"
#include "rs_data.h"

typedef struct piece_body {
    const char *data;
    apr_size_t len, at, step;
} piece_body;

static rs_engine_t eng;
static rs_area_t area;

static apr_status_t piece_read(rs_body_t *b, const char **data,
                               apr_size_t *len)
{
    piece_body *m = b->ctx;

    if (m->at >= m->len) {
        return APR_EOF;
    }
    *data = m->data + m->at;
    *len = m->len - m->at < m->step ? m->len - m->at : m->step;
    m->at += *len;
    return APR_SUCCESS;
}

static rs_req_t *request(apr_pool_t *p, const char *ctype, const char *body,
                         apr_size_t len)
{
    rs_req_t *req = apr_pcalloc(p, sizeof(*req));
    rs_body_t *b = apr_pcalloc(p, sizeof(*b));
    piece_body *m = apr_pcalloc(p, sizeof(*m));

    req->pool = p;
    req->method = "POST";
    req->in = apr_table_make(p, 4);
    req->out = apr_table_make(p, 4);
    req->base_url = "http://h/sliceUpload";
    req->user = "";
    apr_table_setn(req->in, "Content-Type", ctype);
    m->data = body;
    m->len = len;
    m->step = 7;
    b->read = piece_read;
    b->length = len;
    b->ctx = m;
    req->body = b;
    req->content_length = len;
    req->area = &area;
    req->engine = &eng;
    return req;
}

#define B "xYz123"
#define MP "multipart/form-data; boundary=" B

static const char *part_file(apr_pool_t *p, const char *name,
                             const char *data)
{
    return apr_psprintf(p, "--" B "\r\nContent-Disposition: form-data; "
                        "name=\"%s\"; filename=\"blob\"\r\nContent-Type: "
                        "application/octet-stream\r\n\r\n%s\r\n", name, data);
}

static const char *part_field(apr_pool_t *p, const char *name,
                              const char *value)
{
    return apr_psprintf(p, "--" B "\r\nContent-Disposition: form-data; "
                        "name=\"%s\"\r\n\r\n%s\r\n", name, value);
}

static rs_req_t *run(apr_pool_t *p, const char *ctype, const char *body)
{
    rs_req_t *req = request(p, ctype, body, strlen(body));

    RS_CHECK(rs_form_wanted(req));
    rs_form_handle(req);
    return req;
}

/* No spool file is left in the staging folder. */
static int no_spool(apr_pool_t *p)
{
    const char *st;
    apr_dir_t *d;
    apr_finfo_t fi;
    int found = 0;

    rs_data_staging(p, area.dir, 1, &st);
    if (APR_SUCCESS != apr_dir_open(&d, st, p)) {
        return 1;
    }
    while (APR_SUCCESS == apr_dir_read(&fi, APR_FINFO_NAME, d)) {
        found += !strncmp(fi.name, "form-", 5);
    }
    apr_dir_close(d);
    return !found;
}

static void setup(apr_pool_t *p)
{
    rs_test_engine(p, "form", &eng, &area);
    area.max_size = 1000;
    area.expire = 0;
    area.protocols = 1u << RS_PROTO_SLICE;
}

static void test_wanted(apr_pool_t *p)
{
    rs_req_t *req = request(p, "application/octet-stream", "x", 1);

    RS_CHECK(!rs_form_wanted(req));
    apr_table_setn(req->in, "Content-Type", "text/plain;charset=UTF-8");
    RS_CHECK(rs_form_wanted(req));
    req->method = "PUT";
    RS_CHECK(!rs_form_wanted(req));
    req->method = "POST";
    area.protocols = 1u << RS_PROTO_TUS;
    RS_CHECK(!rs_form_wanted(req));
    area.protocols = 1u << RS_PROTO_SLICE;
}

static void test_slice_chunk(apr_pool_t *p)
{
    const char *body = apr_pstrcat(p, part_file(p, "chunk", "hello"),
                                   part_field(p, "index", "0"),
                                   part_field(p, "name", "f.txt"),
                                   "--" B "--\r\n", NULL);
    rs_req_t *req = run(p, MP, body);

    RS_CHECK(200 == req->status);
    RS_CHECK(no_spool(p));
    body = "{\"name\": \"f.txt\", \"size\": 5}";
    req = run(p, "text/plain;charset=UTF-8", body);
    RS_CHECK(200 == req->status);
    RS_CHECK_STR(req->text, "ok");
}

static void test_refused(apr_pool_t *p)
{
    static const struct { const char *what; int status; } cases[] = {
        { "unknown fields", 400 }, { "two files", 400 },
        { "field too long", 400 }, { "truncated", 400 },
        { "file too large", 413 }, { "repeated field", 400 },
    };
    char *longv = apr_pcalloc(p, RS_FORM_MAX_FIELD + 2);
    char *big = apr_pcalloc(p, 1100);
    const char *bodies[6];
    int i;

    memset(longv, 'v', RS_FORM_MAX_FIELD + 1);
    memset(big, 'b', 1099);
    bodies[0] = apr_pstrcat(p, part_field(p, "a", "1"), "--" B "--", NULL);
    bodies[1] = apr_pstrcat(p, part_file(p, "chunk", "1"),
                            part_file(p, "data", "2"), "--" B "--", NULL);
    bodies[2] = apr_pstrcat(p, part_field(p, "name", longv), "--" B "--",
                            NULL);
    bodies[3] = apr_pstrcat(p, part_file(p, "chunk", "1"), "--" B, NULL);
    bodies[4] = apr_pstrcat(p, part_file(p, "chunk", big),
                            part_field(p, "index", "0"),
                            part_field(p, "name", "big"), "--" B "--", NULL);
    bodies[5] = apr_pstrcat(p, part_field(p, "name", "a"),
                            part_field(p, "name", "b"), "--" B "--", NULL);
    for (i = 0; i < 6; i++) {
        rs_req_t *req = run(p, MP, bodies[i]);
        if (req->status != cases[i].status) {
            printf("# form case '%s': %d\n", cases[i].what, req->status);
        }
        RS_CHECK(req->status == cases[i].status);
        RS_CHECK(no_spool(p));
    }
}

static void test_json(apr_pool_t *p)
{
    char *deep = apr_pcalloc(p, 64);
    char *huge = apr_pcalloc(p, RS_FORM_MAX_JSON + 10);
    rs_req_t *req;

    memset(deep, '[', 20);
    memset(deep + 20, ']', 20);
    RS_CHECK(400 == run(p, "application/json", deep)->status);
    RS_CHECK(400 == run(p, "application/json", "{\"a\":")->status);
    RS_CHECK(400 == run(p, "application/json",
                        "{\"name\": \"a\", \"name\": \"b\", \"size\": 1}")
             ->status);
    RS_CHECK(400 == run(p, "application/json", "{\"other\": 1}")->status);
    memset(huge, ' ', RS_FORM_MAX_JSON + 9);
    huge[0] = '{';
    huge[RS_FORM_MAX_JSON + 8] = '}';
    req = request(p, "application/json", huge, strlen(huge));
    req->content_length = -1;                  /* chunked: found reading */
    rs_form_handle(req);
    RS_CHECK(413 == req->status);
    req = run(p, "application/json", huge);
    RS_CHECK(413 == req->status);
}

void suite_form(apr_pool_t *p)
{
    setup(p);
    test_wanted(p);
    test_slice_chunk(p);
    test_refused(p);
    test_json(p);
}
