/* Licensed under the Apache License, Version 2.0. */
/*
 * libFuzzer target: RFC 9651 Structured Field Values (rs_sf_parse and the
 * typed helpers). The first byte selects item, list, dictionary, integer
 * or boolean parsing; the rest is the field value.
 */
#include "fuzz_common.h"
#include "rs_sf.h"

static void walk_members(const apr_array_header_t *m);

static void walk_item(const rs_sf_item_t *it)
{
    int i;

    if (RS_SF_INNER_LIST == it->type) {
        if (!it->inner) {
            abort();
        }
        for (i = 0; i < it->inner->nelts; i++) {   /* rs_sf_item_t */
            walk_item(&APR_ARRAY_IDX(it->inner, i, rs_sf_item_t));
        }
    }
    if ((RS_SF_STRING == it->type || RS_SF_TOKEN == it->type
         || RS_SF_DISPLAY == it->type || RS_SF_BYTES == it->type)
        && !it->str) {
        abort();
    }
    if (it->params) {
        walk_members(it->params);
    }
}

static void walk_members(const apr_array_header_t *m)
{
    int i;

    for (i = 0; i < m->nelts; i++) {
        walk_item(&APR_ARRAY_IDX(m, i, rs_sf_member_t).item);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    const char *s;
    rs_sf_item_t *item = NULL;
    apr_array_header_t *members = NULL;
    apr_int64_t v;
    int b;

    if (size < 1) {
        return 0;
    }
    p = fuzz_pool();
    s = fuzz_cstr(p, data + 1, size - 1);
    switch (data[0] % 5) {
    case 0:
        if (APR_SUCCESS == rs_sf_parse(p, s, RS_SF_ITEM, &item, &members)) {
            walk_item(item);
        }
        break;
    case 1:
    case 2:
        if (APR_SUCCESS == rs_sf_parse(p, s, 1 == data[0] % 5 ? RS_SF_LIST
                                       : RS_SF_DICT, &item, &members)) {
            walk_members(members);
            rs_sf_get(members, "sha-256");
        }
        break;
    case 3:
        rs_sf_integer(p, s, &v);
        break;
    default:
        if (APR_SUCCESS == rs_sf_boolean(p, s, &b) && b != 0 && b != 1) {
            abort();
        }
        break;
    }
    apr_pool_destroy(p);
    return 0;
}
