/* Licensed to the Apache Software Foundation (ASF) under one or more
 * contributor license agreements; and licensed under the Apache License,
 * Version 2.0 (the "License"); you may not use this file except in
 * compliance with the License. See http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * Strict tus Upload-Metadata parser (see rs_meta.h).
 *
 * The header is split at every ',' (neither keys nor base64 values can hold
 * one). A run of SP/HTAB is allowed right after a comma and right before
 * one, nowhere else: not at the start or end of the header, not twice
 * between key and value. Each element is then `key` or `key SP base64`;
 * "key " (an empty base64 value, as tus-js-client sends for "") is the
 * empty value too. An empty header, an empty element (",,", trailing ',')
 * and everything else outside this grammar is APR_EINVAL.
 */

#include <string.h>
#include <apr_strings.h>
#include "rs_meta.h"
#include "rs_util.h"

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static int key_valid(const char *k, apr_size_t len)
{
    apr_size_t i;

    if (len == 0 || len > RS_META_KEY_MAX) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)k[i];
        if (c < 0x21 || c > 0x7e) {
            return 0;
        }
    }
    return 1;
}

static int key_seen(const apr_array_header_t *arr, const char *k,
                    apr_size_t len)
{
    const rs_meta_pair_t *pair = (const rs_meta_pair_t *)arr->elts;
    int i;

    for (i = 0; i < arr->nelts; i++) {
        if (strlen(pair[i].key) == len && !memcmp(pair[i].key, k, len)) {
            return 1;
        }
    }
    return 0;
}

/* One element [b, e): `key` or `key SP base64`. */
static apr_status_t parse_pair(apr_pool_t *p, const char *b, const char *e,
                               apr_array_header_t *arr)
{
    const char *sp = memchr(b, ' ', (apr_size_t)(e - b));
    apr_size_t klen = (apr_size_t)((sp ? sp : e) - b);
    rs_meta_pair_t *pair;
    unsigned char *val = (unsigned char *)"";
    apr_size_t vlen = 0;

    if (!key_valid(b, klen) || key_seen(arr, b, klen)
        || arr->nelts >= RS_META_MAX_PAIRS) {
        return APR_EINVAL;
    }
    if (sp && rs_util_b64_decode(p, sp + 1, (apr_size_t)(e - sp - 1), &val,
                                 &vlen) != APR_SUCCESS) {
        return APR_EINVAL;
    }
    pair = apr_array_push(arr);
    pair->key = apr_pstrmemdup(p, b, klen);
    pair->value = val;
    pair->value_len = vlen;
    return APR_SUCCESS;
}

apr_status_t rs_meta_parse(apr_pool_t *p, const char *hdr,
                           apr_array_header_t **pairs)
{
    apr_array_header_t *arr;
    const char *s, *b, *e, *comma;
    apr_size_t len;

    len = hdr ? strnlen(hdr, RS_META_MAX_LEN + 1) : 0;
    if (len == 0 || len > RS_META_MAX_LEN) {
        return APR_EINVAL;
    }
    arr = apr_array_make(p, 8, sizeof(rs_meta_pair_t));
    for (s = hdr; ; s = comma + 1) {
        comma = s + strcspn(s, ",");
        b = s;
        e = comma;
        while (s != hdr && b < e && is_ows(*b)) {
            b++;                        /* OWS after a comma */
        }
        while (*comma && e > b && is_ows(e[-1])) {
            e--;                        /* OWS before a comma */
        }
        if (parse_pair(p, b, e, arr) != APR_SUCCESS) {
            return APR_EINVAL;
        }
        if (!*comma) {
            break;
        }
    }
    *pairs = arr;
    return APR_SUCCESS;
}

const char *rs_meta_get(const apr_array_header_t *pairs, const char *key)
{
    const rs_meta_pair_t *pair;
    int i;

    if (!pairs || !key) {
        return NULL;
    }
    pair = (const rs_meta_pair_t *)pairs->elts;
    for (i = 0; i < pairs->nelts; i++) {
        if (!strcmp(pair[i].key, key)) {
            return memchr(pair[i].value, 0, pair[i].value_len)
                   ? NULL : (const char *)pair[i].value;
        }
    }
    return NULL;
}
