/* Licensed under the Apache License, Version 2.0. */
/* Unit tests of rs_meta: the strict tus Upload-Metadata parser. */

#include <string.h>
#include <apr_strings.h>
#include "rs_test.h"
#include "rs_meta.h"

static const rs_meta_pair_t *pair_at(const apr_array_header_t *a, int i)
{
    return &((const rs_meta_pair_t *)a->elts)[i];
}

static int meta_bad(apr_pool_t *p, const char *hdr)
{
    apr_array_header_t *pairs = NULL;

    return rs_meta_parse(p, hdr, &pairs) == APR_EINVAL && pairs == NULL;
}

/* number of pairs of a valid header, -1 when refused */
static int meta_count(apr_pool_t *p, const char *hdr)
{
    apr_array_header_t *pairs = NULL;

    if (rs_meta_parse(p, hdr, &pairs) != APR_SUCCESS || !pairs) {
        return -1;
    }
    return pairs->nelts;
}

static void test_tus_example(apr_pool_t *p)
{
    apr_array_header_t *pairs = NULL;
    const rs_meta_pair_t *a;

    RS_CHECK(rs_meta_parse(p, "filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,"
                           "is_confidential", &pairs) == APR_SUCCESS);
    if (!pairs || pairs->nelts != 2) {
        RS_CHECK(!"two pairs");
        return;
    }
    a = pair_at(pairs, 0);
    RS_CHECK_STR(a->key, "filename");
    RS_CHECK(a->value_len == 25);
    RS_CHECK_STR((const char *)a->value, "world_domination_plan.pdf");
    a = pair_at(pairs, 1);
    RS_CHECK_STR(a->key, "is_confidential");
    RS_CHECK(a->value_len == 0 && a->value && a->value[0] == '\0');
    RS_CHECK_STR(rs_meta_get(pairs, "filename"), "world_domination_plan.pdf");
    RS_CHECK_STR(rs_meta_get(pairs, "is_confidential"), "");
    RS_CHECK(rs_meta_get(pairs, "missing") == NULL);
    RS_CHECK(rs_meta_get(pairs, "FILENAME") == NULL);
    RS_CHECK(rs_meta_get(pairs, NULL) == NULL);
    RS_CHECK(rs_meta_get(NULL, "filename") == NULL);
}

static void test_whitespace(apr_pool_t *p)
{
    RS_CHECK(meta_count(p, "a YQ==") == 1);
    RS_CHECK(meta_count(p, "a YQ==,b Yg==") == 2);
    RS_CHECK(meta_count(p, "a YQ==, b Yg==") == 2);
    RS_CHECK(meta_count(p, "a YQ== ,b Yg==") == 2);
    RS_CHECK(meta_count(p, "a YQ==  ,   b Yg==") == 2);
    RS_CHECK(meta_count(p, "a YQ==\t,\tb Yg==") == 2);
    RS_CHECK(meta_count(p, "a YQ== \t, \tb Yg==") == 2);
    RS_CHECK(meta_count(p, "a , b") == 2);
    /* empty base64 after the space: the empty value (tus-js-client) */
    RS_CHECK(meta_count(p, "a ") == 1);
    RS_CHECK(meta_count(p, "a ,b Yg==") == 2);
    /* whitespace anywhere else */
    RS_CHECK(meta_bad(p, " a YQ=="));
    RS_CHECK(meta_bad(p, "\ta YQ=="));
    RS_CHECK(meta_bad(p, "a YQ== "));
    RS_CHECK(meta_bad(p, "a YQ==\t"));
    RS_CHECK(meta_bad(p, "a  YQ=="));             /* double space */
    RS_CHECK(meta_bad(p, "a\tYQ=="));
    RS_CHECK(meta_bad(p, "a YQ =="));
    RS_CHECK(meta_bad(p, "a Y Q=="));
    RS_CHECK(meta_bad(p, "a YQ==, b  Yg=="));
    RS_CHECK(meta_bad(p, "a  "));
    RS_CHECK(meta_bad(p, "a\r\n YQ=="));
}

static void test_structure(apr_pool_t *p)
{
    RS_CHECK(meta_bad(p, NULL));
    RS_CHECK(meta_bad(p, ""));
    RS_CHECK(meta_bad(p, " "));
    RS_CHECK(meta_bad(p, ","));
    RS_CHECK(meta_bad(p, " , "));
    RS_CHECK(meta_bad(p, "a YQ==,"));
    RS_CHECK(meta_bad(p, "a YQ==, "));
    RS_CHECK(meta_bad(p, ",a YQ=="));
    RS_CHECK(meta_bad(p, "a YQ==,,b Yg=="));
    RS_CHECK(meta_bad(p, "a YQ==, ,b Yg=="));
    RS_CHECK(meta_bad(p, " YQ=="));               /* empty key */
    RS_CHECK(meta_bad(p, "a YQ==;b Yg=="));       /* ';' is part of base64 */
    /* duplicates (keys are case sensitive) */
    RS_CHECK(meta_bad(p, "a YQ==,a Yg=="));
    RS_CHECK(meta_bad(p, "a,a"));
    RS_CHECK(meta_bad(p, "a YQ==,b,a"));
    RS_CHECK(meta_count(p, "a YQ==,A Yg==") == 2);
    /* keys: visible ASCII */
    RS_CHECK(meta_count(p, "a=b:c;d/e\"f YQ==") == 1);
    RS_CHECK(meta_bad(p, "k\xc3\xa9y YQ=="));
    RS_CHECK(meta_bad(p, "k\x01y YQ=="));
    RS_CHECK(meta_bad(p, "k\x7fy YQ=="));
    /* values: strict base64 */
    RS_CHECK(meta_bad(p, "a YQ"));
    RS_CHECK(meta_bad(p, "a YQ="));
    RS_CHECK(meta_bad(p, "a Y!=="));
    RS_CHECK(meta_bad(p, "a YR=="));               /* bits after padding */
    RS_CHECK(meta_bad(p, "a YQ==YQ=="));
    RS_CHECK(meta_bad(p, "a _-8="));                /* base64url */
}

static void test_limits(apr_pool_t *p)
{
    apr_array_header_t *pairs = NULL;
    const rs_meta_pair_t *a;
    char key[RS_META_KEY_MAX + 2];
    char *hdr, *big;
    int i;

    memset(key, 'k', sizeof(key) - 1);
    key[RS_META_KEY_MAX] = '\0';
    RS_CHECK(meta_count(p, apr_pstrcat(p, key, " YQ==", NULL)) == 1);
    key[RS_META_KEY_MAX] = 'k';
    key[RS_META_KEY_MAX + 1] = '\0';
    RS_CHECK(meta_bad(p, apr_pstrcat(p, key, " YQ==", NULL)));

    hdr = "k0 YQ==";
    for (i = 1; i < RS_META_MAX_PAIRS; i++) {
        hdr = apr_psprintf(p, "%s,k%d YQ==", hdr, i);
    }
    RS_CHECK(meta_count(p, hdr) == RS_META_MAX_PAIRS);
    RS_CHECK(meta_bad(p, apr_pstrcat(p, hdr, ",one_more", NULL)));

    /* "abc " + 65532 base64 characters = RS_META_MAX_LEN bytes */
    big = apr_palloc(p, RS_META_MAX_LEN + 2);
    memcpy(big, "abc ", 4);
    memset(big + 4, 'A', RS_META_MAX_LEN - 4);
    big[RS_META_MAX_LEN] = '\0';
    RS_CHECK(meta_count(p, big) == 1);
    memcpy(big, "abcd ", 5);
    memset(big + 5, 'A', RS_META_MAX_LEN - 4);
    big[RS_META_MAX_LEN + 1] = '\0';
    RS_CHECK(meta_bad(p, big));

    /* values may hold NUL: kept, but rs_meta_get refuses them */
    RS_CHECK(rs_meta_parse(p, "bin AGIA,txt dGV4dA==", &pairs) == APR_SUCCESS);
    a = pairs ? pair_at(pairs, 0) : NULL;
    RS_CHECK(a && a->value_len == 3 && !memcmp(a->value, "\0b\0", 3)
             && a->value[3] == '\0');
    RS_CHECK(rs_meta_get(pairs, "bin") == NULL);
    RS_CHECK_STR(rs_meta_get(pairs, "txt"), "text");
}

static void test_order(apr_pool_t *p)
{
    apr_array_header_t *pairs = NULL;

    RS_CHECK(rs_meta_parse(p, "z eg==,a YQ==,m bQ==,e", &pairs)
             == APR_SUCCESS);
    RS_CHECK(pairs && pairs->nelts == 4);
    if (pairs && pairs->nelts == 4) {
        RS_CHECK_STR(pair_at(pairs, 0)->key, "z");
        RS_CHECK_STR(pair_at(pairs, 1)->key, "a");
        RS_CHECK_STR(pair_at(pairs, 2)->key, "m");
        RS_CHECK_STR(pair_at(pairs, 3)->key, "e");
        RS_CHECK_STR((const char *)pair_at(pairs, 2)->value, "m");
    }
    RS_CHECK(rs_meta_parse(p, "filename cnDDqXN1bcOpLnBkZg==", &pairs)
             == APR_SUCCESS);
    RS_CHECK_STR(rs_meta_get(pairs, "filename"), "rp\xc3\xa9sum\xc3\xa9.pdf");
}

void suite_meta(apr_pool_t *p)
{
    test_tus_example(p);
    test_whitespace(p);
    test_structure(p);
    test_limits(p);
    test_order(p);
}
