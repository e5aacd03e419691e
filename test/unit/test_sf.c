/* Licensed under the Apache License, Version 2.0. */
/* RFC 9651 structured fields: the parser of rs_sf.c, including the edge
 * cases of the RFC's parsing algorithms and the httpwg test-suite shapes. */

#include <string.h>
#include <apr_strings.h>

#include "rs_test.h"
#include "rs_sf.h"

static int item_ok(apr_pool_t *p, const char *s, rs_sf_item_t **it)
{
    return APR_SUCCESS == rs_sf_parse(p, s, RS_SF_ITEM, it, NULL);
}

static int item_fails(apr_pool_t *p, const char *s)
{
    rs_sf_item_t *it;

    return APR_EINVAL == rs_sf_parse(p, s, RS_SF_ITEM, &it, NULL);
}

static int dict_fails(apr_pool_t *p, const char *s)
{
    apr_array_header_t *m;

    return APR_EINVAL == rs_sf_parse(p, s, RS_SF_DICT, NULL, &m);
}

static int list_fails(apr_pool_t *p, const char *s)
{
    apr_array_header_t *m;

    return APR_EINVAL == rs_sf_parse(p, s, RS_SF_LIST, NULL, &m);
}

static void test_integers(apr_pool_t *p)
{
    apr_int64_t v = -1;
    rs_sf_item_t *it;

    RS_CHECK(APR_SUCCESS == rs_sf_integer(p, "42", &v) && v == 42);
    RS_CHECK(APR_SUCCESS == rs_sf_integer(p, "0", &v) && v == 0);
    RS_CHECK(APR_SUCCESS == rs_sf_integer(p, "-7", &v) && v == -7);
    RS_CHECK(APR_SUCCESS == rs_sf_integer(p, "  25000000 ", &v)
             && v == 25000000);
    RS_CHECK(APR_SUCCESS == rs_sf_integer(p, "999999999999999", &v)
             && v == APR_INT64_C(999999999999999));
    RS_CHECK(APR_SUCCESS == rs_sf_integer(p, "-999999999999999", &v));
    RS_CHECK(APR_SUCCESS == rs_sf_integer(p, "007", &v) && v == 7);
    RS_CHECK(APR_SUCCESS == rs_sf_integer(p, "100;x;y=2", &v) && v == 100);
    RS_CHECK(APR_EINVAL == rs_sf_integer(p, "1000000000000000", &v));
    RS_CHECK(APR_EINVAL == rs_sf_integer(p, "+1", &v));
    RS_CHECK(APR_EINVAL == rs_sf_integer(p, "-", &v));
    RS_CHECK(APR_EINVAL == rs_sf_integer(p, "1 2", &v));
    RS_CHECK(APR_EINVAL == rs_sf_integer(p, "12abc", &v));
    RS_CHECK(APR_EINVAL == rs_sf_integer(p, "0x10", &v));
    RS_CHECK(APR_EINVAL == rs_sf_integer(p, "", &v));
    RS_CHECK(APR_EINVAL == rs_sf_integer(p, "\t1", &v));
    RS_CHECK(APR_EINVAL == rs_sf_integer(p, "1, 2", &v));
    RS_CHECK(APR_EINVAL == rs_sf_integer(p, "1.5", &v));   /* a Decimal */
    RS_CHECK(APR_EINVAL == rs_sf_integer(p, "?1", &v));
    RS_CHECK(item_ok(p, "1.5", &it) && RS_SF_DECIMAL == it->type
             && it->num == 1500);
    RS_CHECK(item_ok(p, "-0.125", &it) && it->num == -125);
    RS_CHECK(item_ok(p, "123456789012.123", &it));
    RS_CHECK(item_fails(p, "1234567890123.1"));
    RS_CHECK(item_fails(p, "1.1234"));
    RS_CHECK(item_fails(p, "1."));
}

static void test_booleans(apr_pool_t *p)
{
    int b = -1;

    RS_CHECK(APR_SUCCESS == rs_sf_boolean(p, "?1", &b) && b == 1);
    RS_CHECK(APR_SUCCESS == rs_sf_boolean(p, "?0", &b) && b == 0);
    RS_CHECK(APR_SUCCESS == rs_sf_boolean(p, "?1;foo=bar", &b) && b == 1);
    RS_CHECK(APR_EINVAL == rs_sf_boolean(p, "?", &b));
    RS_CHECK(APR_EINVAL == rs_sf_boolean(p, "?2", &b));
    RS_CHECK(APR_EINVAL == rs_sf_boolean(p, "true", &b));
    RS_CHECK(APR_EINVAL == rs_sf_boolean(p, "1", &b));
    RS_CHECK(APR_EINVAL == rs_sf_boolean(p, "?10", &b));
    RS_CHECK(APR_EINVAL == rs_sf_boolean(p, "?1, ?0", &b));
}

static void test_strings_tokens_bytes(apr_pool_t *p)
{
    rs_sf_item_t *it;

    RS_CHECK(item_ok(p, "\"a \\\"q\\\" \\\\ b\"", &it)
             && RS_SF_STRING == it->type);
    RS_CHECK_STR(it->str, "a \"q\" \\ b");
    RS_CHECK(item_fails(p, "\"open"));
    RS_CHECK(item_fails(p, "\"bad \\n escape\""));
    RS_CHECK(item_fails(p, "\"tab\there\""));
    RS_CHECK(item_fails(p, "\"caf\xc3\xa9\""));
    RS_CHECK(item_ok(p, "foo123/456:x*", &it) && RS_SF_TOKEN == it->type);
    RS_CHECK_STR(it->str, "foo123/456:x*");
    RS_CHECK(item_ok(p, "*star", &it) && RS_SF_TOKEN == it->type);
    RS_CHECK(item_fails(p, "1abc"));
    RS_CHECK(item_fails(p, "a,b"));
    RS_CHECK(item_ok(p, ":aGVsbG8=:", &it) && RS_SF_BYTES == it->type
             && it->len == 5 && !memcmp(it->str, "hello", 5));
    RS_CHECK(item_ok(p, ":aGVsbG8:", &it) && it->len == 5);   /* no pad */
    RS_CHECK(item_ok(p, "::", &it) && it->len == 0);
    RS_CHECK(item_fails(p, ":aGVsbG8"));
    RS_CHECK(item_fails(p, ":aGV sbG8=:"));
    RS_CHECK(item_fails(p, ":aGVs*G8=:"));
}

static void test_other_items(apr_pool_t *p)
{
    rs_sf_item_t *it;

    RS_CHECK(item_ok(p, "@1659578233", &it) && RS_SF_DATE == it->type
             && it->num == 1659578233);
    RS_CHECK(item_fails(p, "@1.5"));
    RS_CHECK(item_fails(p, "@"));
    RS_CHECK(item_ok(p, "%\"f%c3%bc%c3%bc\"", &it)
             && RS_SF_DISPLAY == it->type);
    RS_CHECK_STR(it->str, "f\xc3\xbc\xc3\xbc");
    RS_CHECK(item_fails(p, "%\"f%C3%BC\""));        /* upper-case hex */
    RS_CHECK(item_fails(p, "%\"%c3\""));            /* broken UTF-8 */
    RS_CHECK(item_fails(p, "%\"%ed%a0%80\""));      /* surrogate */
    RS_CHECK(item_fails(p, "%\"%c0%af\""));         /* overlong */
    RS_CHECK(item_fails(p, "%abc"));
    RS_CHECK(item_fails(p, "(1 2)"));               /* lists are no items */
}

static void test_inner_lists(apr_pool_t *p)
{
    apr_array_header_t *l;
    const rs_sf_item_t *it;

    RS_CHECK(APR_SUCCESS == rs_sf_parse(p, "(1 2 \"x\");a=1", RS_SF_LIST,
                                        NULL, &l) && l->nelts == 1);
    it = &APR_ARRAY_IDX(l, 0, rs_sf_member_t).item;
    RS_CHECK(RS_SF_INNER_LIST == it->type && it->inner->nelts == 3
             && it->params->nelts == 1);
    RS_CHECK(APR_SUCCESS == rs_sf_parse(p, "( )", RS_SF_LIST, NULL, &l)
             && APR_ARRAY_IDX(l, 0, rs_sf_member_t).item.inner->nelts == 0);
    RS_CHECK(list_fails(p, "(1 2"));
    RS_CHECK(list_fails(p, "(1,2)"));
    RS_CHECK(list_fails(p, "((1))"));
}

static void test_parameters(apr_pool_t *p)
{
    rs_sf_item_t *it;
    const rs_sf_item_t *v;

    RS_CHECK(item_ok(p, "1; a=2;b; c=\"s\";a=3", &it));
    RS_CHECK(it->params->nelts == 3);
    RS_CHECK((v = rs_sf_get(it->params, "a")) && v->num == 3);
    RS_CHECK((v = rs_sf_get(it->params, "b")) && RS_SF_BOOLEAN == v->type
             && v->num == 1);
    RS_CHECK(!strcmp(APR_ARRAY_IDX(it->params, 0, rs_sf_member_t).key, "a"));
    RS_CHECK(item_fails(p, "1;A=2"));
    RS_CHECK(item_fails(p, "1;a=(1)"));
    RS_CHECK(item_fails(p, "1;"));
    RS_CHECK(item_fails(p, "1 ;a"));
}

static void test_dictionaries(apr_pool_t *p)
{
    apr_array_header_t *d;
    const rs_sf_item_t *v;

    RS_CHECK(APR_SUCCESS == rs_sf_parse(p, "max-size=1234567890, max-age=3600",
                                        RS_SF_DICT, NULL, &d));
    RS_CHECK(d->nelts == 2 && (v = rs_sf_get(d, "max-size"))
             && v->num == 1234567890);
    RS_CHECK(APR_SUCCESS == rs_sf_parse(p, "a=1,\tb, c=?0;x, a=4", RS_SF_DICT,
                                        NULL, &d));
    RS_CHECK(d->nelts == 3 && rs_sf_get(d, "a")->num == 4);
    RS_CHECK(RS_SF_BOOLEAN == rs_sf_get(d, "b")->type
             && rs_sf_get(d, "b")->num == 1);
    RS_CHECK(rs_sf_get(d, "c")->params->nelts == 1);
    RS_CHECK(APR_SUCCESS == rs_sf_parse(p, "sha-256=:AAAA:, x=(1 2)",
                                        RS_SF_DICT, NULL, &d));
    RS_CHECK(RS_SF_BYTES == rs_sf_get(d, "sha-256")->type);
    RS_CHECK(APR_SUCCESS == rs_sf_parse(p, "", RS_SF_DICT, NULL, &d)
             && d->nelts == 0);
    RS_CHECK(!rs_sf_get(d, "a"));
    RS_CHECK(dict_fails(p, "a=1,"));
    RS_CHECK(dict_fails(p, "a=1,,b=2"));
    RS_CHECK(dict_fails(p, "A=1"));
    RS_CHECK(dict_fails(p, "a=1 b=2"));
    RS_CHECK(dict_fails(p, "1=a"));
    RS_CHECK(dict_fails(p, "a=\"x"));
}

static void test_lists(apr_pool_t *p)
{
    apr_array_header_t *l;

    RS_CHECK(APR_SUCCESS == rs_sf_parse(p, "1, \"two\", (3 4);p, tok",
                                        RS_SF_LIST, NULL, &l));
    RS_CHECK(l->nelts == 4);
    RS_CHECK(RS_SF_INNER_LIST
             == APR_ARRAY_IDX(l, 2, rs_sf_member_t).item.type);
    RS_CHECK(list_fails(p, "1,"));
    RS_CHECK(list_fails(p, ",1"));
    RS_CHECK(list_fails(p, "1 2"));
}

static void test_limits_and_output(apr_pool_t *p)
{
    char *big = apr_palloc(p, RS_SF_MAX_LEN + 2);
    const unsigned char d[3] = { 0xff, 0x00, 0x10 };
    char hex[129];
    int i;

    memset(big, 'a', RS_SF_MAX_LEN + 1);
    big[RS_SF_MAX_LEN + 1] = '\0';
    RS_CHECK(item_fails(p, big));
    RS_CHECK(item_fails(p, NULL));
    RS_CHECK_STR(rs_sf_bytes(p, d, 3), ":/wAQ:");
    for (i = 0; i < 64; i++) {
        hex[2 * i] = '0';
        hex[2 * i + 1] = 'a';
    }
    hex[64] = '\0';
    RS_CHECK_STR(rs_sf_repr_digest(p, "sha256", hex),
                 "sha-256=:CgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgo=:");
    hex[64] = '0';
    hex[128] = '\0';
    RS_CHECK(rs_sf_repr_digest(p, "sha512", hex) != NULL);
    RS_CHECK(!rs_sf_repr_digest(p, "sha256", hex));        /* wrong size */
    RS_CHECK(!rs_sf_repr_digest(p, "md5", "00"));
    RS_CHECK(!rs_sf_repr_digest(p, NULL, hex));
    hex[5] = 'G';
    RS_CHECK(!rs_sf_repr_digest(p, "sha512", hex));
}

void suite_sf(apr_pool_t *p)
{
    test_integers(p);
    test_booleans(p);
    test_strings_tokens_bytes(p);
    test_other_items(p);
    test_inner_lists(p);
    test_parameters(p);
    test_dictionaries(p);
    test_lists(p);
    test_limits_and_output(p);
}
