/* Licensed under the Apache License, Version 2.0. */
/* Unit tests of rs_multipart: boundaries, parts fed in every split,
 * delimiter look-alikes in content, and the strictness rules. */

#include <string.h>
#include <apr_strings.h>
#include "rs_test.h"
#include "rs_multipart.h"

typedef struct rec_t {
    apr_pool_t *p;
    char log[4096];                 /* "<name|file|type>=content;" */
    apr_size_t len;
    int ends;
} rec_t;

static void add(rec_t *r, const char *s, apr_size_t n)
{
    if (r->len + n < sizeof(r->log)) {
        memcpy(r->log + r->len, s, n);
        r->len += n;
        r->log[r->len] = '\0';
    }
}

static apr_status_t on_begin(void *b, const char *name, const char *filename,
                             const char *ctype)
{
    rec_t *r = b;
    const char *s = apr_psprintf(r->p, "<%s|%s|%s>=", name,
                                 filename ? filename : "-",
                                 ctype ? ctype : "-");
    add(r, s, strlen(s));
    return APR_SUCCESS;
}

static apr_status_t on_data(void *b, const char *d, apr_size_t n)
{
    add(b, d, n);
    return APR_SUCCESS;
}

static apr_status_t on_end(void *b)
{
    rec_t *r = b;
    r->ends++;
    add(r, ";", 1);
    return APR_SUCCESS;
}

static const rs_mp_cb_t cbs = { on_begin, on_data, on_end };

/* Parse body fed in pieces of `step` bytes (0: all at once). */
static apr_status_t parse(apr_pool_t *p, const char *boundary,
                          const char *body, apr_size_t len, apr_size_t step,
                          rec_t *r)
{
    rs_mp_t *mp;
    apr_size_t i, n;
    apr_status_t rv;

    memset(r, 0, sizeof(*r));
    r->p = p;
    if (APR_SUCCESS != (rv = rs_mp_create(&mp, boundary, 8, &cbs, r, p))) {
        return rv;
    }
    for (i = 0; i < len; i += n) {
        n = step && len - i > step ? step : len - i;
        if (APR_SUCCESS != (rv = rs_mp_feed(mp, body + i, n))) {
            return rv;
        }
    }
    return rs_mp_finish(mp);
}

#define B "----WebKitFormBoundaryAbC123"
static const char good[] =
    "--" B "\r\n"
    "Content-Disposition: form-data; name=\"chunk\"; filename=\"blob\"\r\n"
    "Content-Type: application/octet-stream\r\n"
    "\r\n"
    "ab\r\n--" "----WebKitFormBoundaryAbC12x\r\r\n-\r\n--" "\r\n"
    "--" B "\r\n"
    "Content-Disposition: form-data; name=\"index\"\r\n"
    "\r\n"
    "3\r\n"
    "--" B "\r\n"
    "content-disposition: FORM-DATA;name=name;filename=\"a \\\"q\\\".mp4\"\r\n"
    "\r\n"
    "\r\n"
    "--" B "--\r\nepilogue";
static const char good_log[] =
    "<chunk|blob|application/octet-stream>=ab\r\n--"
    "----WebKitFormBoundaryAbC12x\r\r\n-\r\n--;"
    "<index|-|->=3;"
    "<name|a \"q\".mp4|->=;";

static void test_boundary(apr_pool_t *p)
{
    const char *b;

    RS_CHECK(APR_SUCCESS == rs_mp_boundary(p, "multipart/form-data; boundary="
                                           B, &b));
    RS_CHECK_STR(b, B);
    RS_CHECK(APR_SUCCESS == rs_mp_boundary(p, "Multipart/Form-Data;"
                                           "boundary=\"a b:c\"", &b));
    RS_CHECK_STR(b, "a b:c");
    RS_CHECK(APR_SUCCESS != rs_mp_boundary(p, "multipart/form-data", &b));
    RS_CHECK(APR_SUCCESS != rs_mp_boundary(p, "multipart/mixed; boundary=x",
                                           &b));
    RS_CHECK(APR_SUCCESS != rs_mp_boundary(p, "multipart/form-data; "
                                           "boundary=\"ends \"", &b));
    RS_CHECK(APR_SUCCESS != rs_mp_boundary(p, "multipart/form-data; "
                                           "boundary=a{b", &b));
    RS_CHECK(APR_SUCCESS != rs_mp_boundary(p, "multipart/form-data; "
                                           "boundary=x; boundary=y", &b));
    RS_CHECK(APR_SUCCESS != rs_mp_boundary(p, apr_pstrcat(p,
             "multipart/form-data; boundary=", B B B, NULL), &b));
    RS_CHECK(APR_SUCCESS != rs_mp_boundary(p, NULL, &b));
}

static void test_splits(apr_pool_t *p)
{
    rec_t r;
    apr_size_t step;
    int all = 1;

    for (step = 0; step <= 80; step++) {
        apr_status_t rv = parse(p, B, good, sizeof(good) - 1, step, &r);
        all = all && APR_SUCCESS == rv && !strcmp(r.log, good_log)
              && 3 == r.ends;
    }
    RS_CHECK(all);
    RS_CHECK_STR(r.log, good_log);
}

static void test_bad(apr_pool_t *p)
{
    static const char *const bad[] = {
        /* no name */
        "--" B "\r\nContent-Disposition: form-data\r\n\r\nx\r\n--" B "--",
        /* not form-data */
        "--" B "\r\nContent-Disposition: attachment; name=a\r\n\r\nx\r\n--"
        B "--",
        /* no disposition */
        "--" B "\r\nContent-Type: text/plain\r\n\r\nx\r\n--" B "--",
        /* bare LF */
        "--" B "\r\nContent-Disposition: form-data; name=a\n\r\nx\r\n--" B
        "--",
        /* folded header */
        "--" B "\r\nContent-Disposition: form-data;\r\n name=a\r\n\r\nx\r\n--"
        B "--",
        /* two dispositions */
        "--" B "\r\nContent-Disposition: form-data; name=a\r\n"
        "Content-Disposition: form-data; name=b\r\n\r\nx\r\n--" B "--",
        /* duplicate name parameter */
        "--" B "\r\nContent-Disposition: form-data; name=a; name=b\r\n\r\n"
        "x\r\n--" B "--",
        /* unterminated quote */
        "--" B "\r\nContent-Disposition: form-data; name=\"a\r\n\r\nx\r\n--"
        B "--",
        /* garbage after the delimiter */
        "--" B "x\r\nContent-Disposition: form-data; name=a\r\n\r\nx\r\n--"
        B "--",
        NULL
    };
    rec_t r;
    int i;

    for (i = 0; bad[i]; i++) {
        RS_CHECK(APR_SUCCESS != parse(p, B, bad[i], strlen(bad[i]), 0, &r));
    }
    /* truncated: no close delimiter */
    RS_CHECK(APR_INCOMPLETE == parse(p, B, good, 60, 0, &r));
    RS_CHECK(APR_INCOMPLETE == parse(p, B, "", 0, 0, &r));
}

static void test_limits(apr_pool_t *p)
{
    char *big, *body;
    rec_t r;
    int i;

    /* too many parts (the parser allows 8) */
    body = "";
    for (i = 0; i < 9; i++) {
        body = apr_pstrcat(p, body, "--" B "\r\nContent-Disposition: "
                           "form-data; name=f\r\n\r\nv\r\n", NULL);
    }
    body = apr_pstrcat(p, body, "--" B "--", NULL);
    RS_CHECK(APR_EINVAL == parse(p, B, body, strlen(body), 7, &r));
    /* a header block beyond RS_MP_MAX_HEADER */
    big = apr_palloc(p, RS_MP_MAX_HEADER + 1);
    memset(big, 'a', RS_MP_MAX_HEADER);
    big[RS_MP_MAX_HEADER] = '\0';
    body = apr_pstrcat(p, "--" B "\r\nContent-Disposition: form-data; name=f"
                       "\r\nX-Long: ", big, "\r\n\r\nv\r\n--" B "--", NULL);
    RS_CHECK(APR_EINVAL == parse(p, B, body, strlen(body), 100, &r));
    /* a preamble beyond RS_MP_MAX_PREAMBLE */
    big = apr_palloc(p, RS_MP_MAX_PREAMBLE + 10);
    memset(big, 'p', RS_MP_MAX_PREAMBLE + 9);
    big[RS_MP_MAX_PREAMBLE + 9] = '\0';
    body = apr_pstrcat(p, big, "\r\n--" B "--", NULL);
    RS_CHECK(APR_EINVAL == parse(p, B, body, strlen(body), 0, &r));
    /* a short preamble is fine */
    body = apr_pstrcat(p, "pre\r\n", good, NULL);
    RS_CHECK(APR_SUCCESS == parse(p, B, body, strlen(body), 5, &r));
    RS_CHECK_STR(r.log, good_log);
}

/* Binary content with NULs and CRs of every kind passes unchanged. */
static void test_binary(apr_pool_t *p)
{
    char content[3000], *body;
    apr_size_t head, n;
    rec_t r;
    int i;

    for (i = 0; i < (int)sizeof(content); i++) {
        content[i] = (char)(i % 7 == 0 ? '\r' : i % 11 == 0 ? '\n'
                            : i % 13 == 0 ? '-' : i * 31);
    }
    body = apr_pstrcat(p, "--" B "\r\nContent-Disposition: form-data; "
                       "name=file; filename=x\r\n\r\n", NULL);
    head = strlen(body);
    n = head + sizeof(content) + strlen("\r\n--" B "--");
    body = memcpy(apr_palloc(p, n), body, head);
    memcpy(body + head, content, sizeof(content));
    memcpy(body + head + sizeof(content), "\r\n--" B "--",
           strlen("\r\n--" B "--"));
    RS_CHECK(APR_SUCCESS == parse(p, B, body, n, 13, &r));
    RS_CHECK(r.len == strlen("<file|x|->=") + sizeof(content) + 1);
    RS_CHECK(0 == memcmp(r.log + strlen("<file|x|->="), content,
                         sizeof(content)));
}

void suite_multipart(apr_pool_t *p)
{
    test_boundary(p);
    test_splits(p);
    test_bad(p);
    test_limits(p);
    test_binary(p);
}
