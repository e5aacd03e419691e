/* Licensed under the Apache License, Version 2.0. */
/*
 * libFuzzer target: the strict parsers of rs_util (numbers, sizes,
 * durations, base64, id check) and rs_util_sanitize_name. The first byte
 * selects the function, the rest is the input.
 */
#include "fuzz_common.h"
#include "rs_util.h"

static void check_name(apr_pool_t *p, const char *in)
{
    const char *n = rs_util_sanitize_name(p, in);

    if (n && (!*n || strlen(n) > RS_NAME_MAX || strchr(n, '/')
              || strchr(n, '\\') || !strcmp(n, ".") || !strcmp(n, "..")
              || '.' == n[0])) {
        abort();
    }
    if (n) {
        rs_util_name_ext(n);
        rs_util_content_disposition(p, "attachment", n);
    }
}

static void check_b64(apr_pool_t *p, const char *in)
{
    unsigned char *out;
    apr_size_t len;
    const char *again;

    if (APR_SUCCESS == rs_util_b64_decode(p, in, strlen(in), &out, &len)) {
        /* strict base64 is canonical: encoding gives the input back */
        again = rs_util_b64_encode(p, out, len);
        if (strcmp(again, in)) {
            abort();
        }
    }
}

/* Range normalisation: only "bytes=<digits>" changes, by one trailing '-'. */
static void check_range(apr_pool_t *p, const char *s)
{
    const char *r = rs_util_range_open_ended(p, s);

    if (r && (strlen(r) != strlen(s) + 1 || strncmp(r, s, strlen(s))
              || r[strlen(s)] != '-')) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    const char *s;
    apr_off_t off;
    apr_interval_time_t t;

    if (size < 1) {
        return 0;
    }
    p = fuzz_pool();
    s = fuzz_cstr(p, data + 1, size - 1);
    switch (data[0] % 6) {
    case 0:
        if (APR_SUCCESS == rs_util_parse_off(s, &off) && off < 0) {
            abort();
        }
        break;
    case 1:
        if (APR_SUCCESS == rs_util_parse_size(s, &off) && off < 0) {
            abort();
        }
        break;
    case 2:
        if (APR_SUCCESS == rs_util_parse_duration(s, &t) && t < 0) {
            abort();
        }
        break;
    case 3:
        check_b64(p, s);
        break;
    case 4:
        check_name(p, s);
        break;
    default:
        rs_util_id_valid(s);
        rs_util_header_safe(s);
        check_range(p, s);
        break;
    }
    apr_pool_destroy(p);
    return 0;
}
