/* Licensed under the Apache License, Version 2.0. */
/*
 * libFuzzer target: the form intake of the chunk protocols (rs_form_handle:
 * multipart field parsing and spooling, the JSON handling with its size,
 * depth and duplicate-key limits) and the slice, md5 and flow front ends
 * behind it, through the public API: an in-memory rs_body_t and a real
 * engine on a scratch directory with an sdbm state database.
 *
 * Input: byte 0 selects the Content-Type (multipart/form-data with the
 * boundary "xYz123", text/plain or application/json) and the size of the
 * pieces the body arrives in (1..64 bytes); the rest is the body. Every
 * answer must be a 2xx or 4xx: the scratch area never fails, so a 5xx is a
 * bug. The area and database start afresh every FRESH_EVERY inputs so
 * published files do not pile up.
 */
#include <ftw.h>
#include <stdio.h>
#include <unistd.h>
#include "fuzz_common.h"
#include <apr_strings.h>
#include <apr_file_io.h>
#include "rs_form.h"
#include "rs_store.h"

#define FRESH_EVERY 256

typedef struct mem_body {
    const char *data;
    apr_size_t len, at, step;
} mem_body;

static rs_engine_t eng;
static rs_area_t area;
static apr_pool_t *scratch;
static char scratch_dir[64];
static unsigned int runs;

static apr_status_t mem_read(rs_body_t *b, const char **data,
                             apr_size_t *len)
{
    mem_body *m = b->ctx;

    if (m->at >= m->len) {
        return APR_EOF;
    }
    *data = m->data + m->at;
    *len = m->len - m->at < m->step ? m->len - m->at : m->step;
    m->at += *len;
    return APR_SUCCESS;
}

static int rm_entry(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    remove(path);
    return 0;
}

static void remove_scratch(void)
{
    if (scratch) {
        apr_pool_destroy(scratch);      /* closes the store's kept handles */
        scratch = NULL;
    }
    nftw(scratch_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A new scratch area and state database (the old ones removed). */
static void fresh(void)
{
    if (!scratch) {
        atexit(remove_scratch);
    }
    else {
        apr_pool_destroy(scratch);          /* closes the store */
        nftw(scratch_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
    apr_pool_create(&scratch, fuzz_root);
    snprintf(scratch_dir, sizeof(scratch_dir), "/tmp/rs-fuzz-form-%ld",
             (long)getpid());
    nftw(scratch_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    memset(&eng, 0, sizeof(eng));
    memset(&area, 0, sizeof(area));
    area.dir = apr_pstrcat(scratch, scratch_dir, "/files", NULL);
    apr_dir_make_recursive(area.dir, APR_OS_DEFAULT, scratch);
    if (APR_SUCCESS != rs_store_create(&eng.store, "sdbm",
                                       apr_pstrcat(scratch, scratch_dir,
                                                   "/state", NULL),
                                       NULL, scratch)) {
        abort();
    }
    eng.write_buffer = 4096;
    area.max_size = 1 << 16;
    area.lock_wait = apr_time_from_msec(10);
    area.stall_time = apr_time_from_sec(1);
    area.protocols = (1u << RS_PROTO_SLICE) | (1u << RS_PROTO_MD5)
                     | (1u << RS_PROTO_FLOW);
}

static rs_req_t *request(apr_pool_t *p, const uint8_t *data, size_t size)
{
    static const char *const types[] = {
        "multipart/form-data; boundary=xYz123", "text/plain;charset=UTF-8",
        "application/json"
    };
    rs_req_t *req = apr_pcalloc(p, sizeof(*req));
    rs_body_t *b = apr_pcalloc(p, sizeof(*b));
    mem_body *m = apr_pcalloc(p, sizeof(*m));

    req->pool = p;
    req->method = "POST";
    req->in = apr_table_make(p, 4);
    req->out = apr_table_make(p, 4);
    req->base_url = "http://h/up";
    req->base_path = "/up";
    req->at_base = 1;
    req->user = "";
    apr_table_setn(req->in, "Content-Type", types[data[0] % 3]);
    m->data = (const char *)data + 1;
    m->len = size - 1;
    m->step = 1 + (data[0] >> 2);
    b->read = mem_read;
    b->length = m->len;
    b->ctx = m;
    req->body = b;
    req->content_length = m->len;
    req->area = &area;
    req->engine = &eng;
    return req;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    rs_req_t *req;

    if (size < 1) {
        return 0;
    }
    p = fuzz_pool();
    if (0 == runs++ % FRESH_EVERY) {
        fresh();
    }
    req = request(p, data, size);
    if (rs_form_wanted(req)) {
        rs_form_handle(req);
        if (req->status < 200 || req->status >= 500) {
            fprintf(stderr, "status %d\n", req->status);
            abort();
        }
    }
    apr_pool_destroy(p);
    return 0;
}
