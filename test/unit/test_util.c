/* Licensed under the Apache License, Version 2.0. */
/* Unit tests of rs_util (parsers, base64, names, HTTP helpers), and of the
 * two small modules without a suite of their own: rs_error and rs_log. */

#include <string.h>
#include <errno.h>
#include <apr_strings.h>
#include "rs_test.h"
#include "rs_util.h"
#include "rs_error.h"
#include "rs_log.h"

/* 1 if s is well-formed UTF-8 (a test oracle independent of rs_util.c) */
static int utf8_ok(const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    int n, i;

    while (*s) {
        n = *s < 0x80 ? 1 : *s >= 0xf0 ? 4 : *s >= 0xe0 ? 3
          : *s >= 0xc0 ? 2 : 0;
        if (n == 0) {
            return 0;
        }
        for (i = 1; i < n; i++) {
            if ((s[i] & 0xc0) != 0x80) {
                return 0;
            }
        }
        s += n;
    }
    return 1;
}

static char *repeat(apr_pool_t *p, const char *unit, int times)
{
    apr_size_t n = strlen(unit);
    char *out = apr_palloc(p, n * (apr_size_t)times + 1);
    int i;

    for (i = 0; i < times; i++) {
        memcpy(out + n * (apr_size_t)i, unit, n);
    }
    out[n * (apr_size_t)times] = '\0';
    return out;
}

static int ends_with(const char *s, const char *suffix)
{
    apr_size_t a = strlen(s), b = strlen(suffix);

    return a >= b && !strcmp(s + a - b, suffix);
}

/* ---- ids --------------------------------------------------------------- */

static void test_ids(apr_pool_t *p)
{
    const char *a = NULL, *b = NULL;

    RS_CHECK(rs_util_id_new(p, &a) == APR_SUCCESS);
    RS_CHECK(rs_util_id_new(p, &b) == APR_SUCCESS);
    RS_CHECK(a && strlen(a) == RS_ID_LEN);
    RS_CHECK(rs_util_id_valid(a));
    RS_CHECK(rs_util_id_valid(b));
    RS_CHECK(a && b && strcmp(a, b) != 0);
    RS_CHECK(rs_util_id_valid("AAAAAAAAAAAAAAAAAAAAAA"));
    RS_CHECK(rs_util_id_valid("abcdefghij-_0123456789"));
    RS_CHECK(!rs_util_id_valid(NULL));
    RS_CHECK(!rs_util_id_valid(""));
    RS_CHECK(!rs_util_id_valid("AAAAAAAAAAAAAAAAAAAAA"));      /* 21 */
    RS_CHECK(!rs_util_id_valid("AAAAAAAAAAAAAAAAAAAAAAA"));    /* 23 */
    RS_CHECK(!rs_util_id_valid("AAAAAAAAAAAAAAAAAAAAA+"));
    RS_CHECK(!rs_util_id_valid("AAAAAAAAAAAAAAAAAAAAA/"));
    RS_CHECK(!rs_util_id_valid("AAAAAAAAAAAAAAAAAAAA=="));
    RS_CHECK(!rs_util_id_valid("../AAAAAAAAAAAAAAAAAAA"));
    RS_CHECK(!rs_util_id_valid("AAAAAAAAAAAAAAAAAAAAA."));
}

/* ---- numbers ----------------------------------------------------------- */

static int off_is(const char *s, apr_off_t want)
{
    apr_off_t v = -42;

    return rs_util_parse_off(s, &v) == APR_SUCCESS && v == want;
}

static int off_bad(const char *s)
{
    apr_off_t v = -42;

    return rs_util_parse_off(s, &v) == APR_EINVAL && v == -42;
}

static void test_parse_off(void)
{
    RS_CHECK(off_is("0", 0));
    RS_CHECK(off_is("1", 1));
    RS_CHECK(off_is("007", 7));                      /* leading zeros ok */
    RS_CHECK(off_is("0000000000000000000", 0));      /* 19 digits */
    RS_CHECK(off_is("0000000000000000001", 1));
    RS_CHECK(off_is("1000000000000000000", APR_INT64_C(1000000000000000000)));
    RS_CHECK(off_is("9223372036854775807", APR_INT64_MAX));
    RS_CHECK(off_bad("9223372036854775808"));        /* INT64_MAX + 1 */
    RS_CHECK(off_bad("9999999999999999999"));
    RS_CHECK(off_bad("00000000000000000001"));       /* 20 digits */
    RS_CHECK(off_bad("18446744073709551616"));       /* 2^64 */
    RS_CHECK(off_bad("99999999999999999999999999"));
    RS_CHECK(off_bad(""));
    RS_CHECK(off_bad(NULL));
    RS_CHECK(off_bad("-1"));
    RS_CHECK(off_bad("-0"));
    RS_CHECK(off_bad("+1"));
    RS_CHECK(off_bad(" 1"));
    RS_CHECK(off_bad("1 "));
    RS_CHECK(off_bad("1\t"));
    RS_CHECK(off_bad("1a"));
    RS_CHECK(off_bad("0x10"));
    RS_CHECK(off_bad("1.5"));
    RS_CHECK(off_bad("1e3"));
    RS_CHECK(off_bad("1,000"));
    RS_CHECK(off_bad("1K"));
    RS_CHECK(off_bad("\xd9\xa1"));                   /* Arabic-Indic one */
}

static void test_off_add(void)
{
    apr_off_t s = -42;

    RS_CHECK(rs_util_off_add(1, 2, &s) && s == 3);
    RS_CHECK(rs_util_off_add(0, APR_INT64_MAX, &s) && s == APR_INT64_MAX);
    RS_CHECK(rs_util_off_add(APR_INT64_MAX - 4, 4, &s) && s == APR_INT64_MAX);
    RS_CHECK(!rs_util_off_add(APR_INT64_MAX - 3, 4, &s));
    RS_CHECK(!rs_util_off_add(APR_INT64_MAX, APR_INT64_MAX, &s));
    RS_CHECK(!rs_util_off_add(APR_INT64_MAX, 1, &s));
    RS_CHECK(rs_util_off_add(-1, APR_INT64_MAX, &s)
             && s == APR_INT64_MAX - 1);
    RS_CHECK(!rs_util_off_add(APR_INT64_MIN, -1, &s));
}

static int size_is(const char *s, apr_off_t want)
{
    apr_off_t v = -42;

    return rs_util_parse_size(s, &v) == APR_SUCCESS && v == want;
}

static int size_bad(const char *s)
{
    apr_off_t v = -42;

    return rs_util_parse_size(s, &v) == APR_EINVAL && v == -42;
}

static void test_parse_size(void)
{
    RS_CHECK(size_is("0", 0));
    RS_CHECK(size_is("0K", 0));
    RS_CHECK(size_is("123", 123));
    RS_CHECK(size_is("10K", 10240));
    RS_CHECK(size_is("10k", 10240));
    RS_CHECK(size_is("1M", 1048576));
    RS_CHECK(size_is("1m", 1048576));
    RS_CHECK(size_is("10G", APR_INT64_C(10) << 30));
    RS_CHECK(size_is("2t", APR_INT64_C(2) << 40));
    RS_CHECK(size_is("8388607T", APR_INT64_C(8388607) << 40));
    RS_CHECK(size_is("9223372036854775807", APR_INT64_MAX));
    RS_CHECK(size_is("9007199254740991K", APR_INT64_C(9007199254740991) << 10));
    RS_CHECK(size_bad("9007199254740992K"));         /* 2^63 */
    RS_CHECK(size_bad("8388608T"));                  /* 2^63 */
    RS_CHECK(size_bad("9223372036854775808"));
    RS_CHECK(size_bad("9999999999999999999T"));
    RS_CHECK(size_bad("00000000000000000001"));
    RS_CHECK(size_bad(""));
    RS_CHECK(size_bad(NULL));
    RS_CHECK(size_bad("K"));
    RS_CHECK(size_bad("-1"));
    RS_CHECK(size_bad("-1K"));
    RS_CHECK(size_bad("+1K"));
    RS_CHECK(size_bad("1KB"));
    RS_CHECK(size_bad("1KK"));
    RS_CHECK(size_bad("1P"));
    RS_CHECK(size_bad("1B"));
    RS_CHECK(size_bad("1 K"));
    RS_CHECK(size_bad(" 1K"));
    RS_CHECK(size_bad("1K "));
    RS_CHECK(size_bad("1.5G"));
    RS_CHECK(size_bad("ten"));
}

static int dur_is(const char *s, apr_interval_time_t want)
{
    apr_interval_time_t v = -42;

    return rs_util_parse_duration(s, &v) == APR_SUCCESS && v == want;
}

static int dur_bad(const char *s)
{
    apr_interval_time_t v = -42;

    return rs_util_parse_duration(s, &v) == APR_EINVAL && v == -42;
}

static void test_parse_duration(void)
{
    RS_CHECK(dur_is("0", 0));
    RS_CHECK(dur_is("0d", 0));
    RS_CHECK(dur_is("30", apr_time_from_sec(30)));
    RS_CHECK(dur_is("30s", apr_time_from_sec(30)));
    RS_CHECK(dur_is("30S", apr_time_from_sec(30)));
    RS_CHECK(dur_is("5m", apr_time_from_sec(300)));
    RS_CHECK(dur_is("5M", apr_time_from_sec(300)));
    RS_CHECK(dur_is("2h", apr_time_from_sec(7200)));
    RS_CHECK(dur_is("1d", apr_time_from_sec(86400)));
    RS_CHECK(dur_is("7D", apr_time_from_sec(7 * 86400)));
    RS_CHECK(dur_is("007h", apr_time_from_sec(7 * 3600)));
    RS_CHECK(dur_is("9223372036854", APR_INT64_C(9223372036854) * 1000000));
    RS_CHECK(dur_bad("9223372036855"));               /* > INT64_MAX us */
    RS_CHECK(dur_is("106751991d", APR_INT64_C(106751991) * 86400 * 1000000));
    RS_CHECK(dur_bad("106751992d"));
    RS_CHECK(dur_bad("9999999999999999999d"));
    RS_CHECK(dur_bad("00000000000000000001s"));
    RS_CHECK(dur_bad(""));
    RS_CHECK(dur_bad(NULL));
    RS_CHECK(dur_bad("s"));
    RS_CHECK(dur_bad("-1s"));
    RS_CHECK(dur_bad("+1s"));
    RS_CHECK(dur_bad("1w"));
    RS_CHECK(dur_bad("1ms"));
    RS_CHECK(dur_bad("1ss"));
    RS_CHECK(dur_bad("1.5h"));
    RS_CHECK(dur_bad("1 h"));
    RS_CHECK(dur_bad("1h "));
    RS_CHECK(dur_bad(" 1h"));
}

/* ---- base64 / hex ------------------------------------------------------ */

static int b64_dec_is(apr_pool_t *p, const char *in, const char *want,
                      apr_size_t wantlen)
{
    unsigned char *out = NULL;
    apr_size_t len = 99;

    return rs_util_b64_decode(p, in, strlen(in), &out, &len) == APR_SUCCESS
        && len == wantlen && !memcmp(out, want, len) && out[len] == '\0';
}

static int b64_bad(apr_pool_t *p, const char *in, apr_size_t inlen)
{
    unsigned char *out = NULL;
    apr_size_t len = 99;

    return rs_util_b64_decode(p, in, inlen, &out, &len) == APR_EINVAL
        && out == NULL && len == 99;
}

#define B64_BAD(p, s) b64_bad(p, s, sizeof(s) - 1)

static void test_b64(apr_pool_t *p)
{
    static const char *const plain[] = {
        "", "f", "fo", "foo", "foob", "fooba", "foobar"
    };
    static const char *const coded[] = {
        "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"
    };
    unsigned char all[256], *out;
    const char *enc;
    apr_size_t len;
    int i;

    for (i = 0; i < 7; i++) {
        RS_CHECK_STR(rs_util_b64_encode(p, (const unsigned char *)plain[i],
                                        strlen(plain[i])), coded[i]);
        RS_CHECK(b64_dec_is(p, coded[i], plain[i], strlen(plain[i])));
    }
    for (i = 0; i < 256; i++) {
        all[i] = (unsigned char)i;
    }
    enc = rs_util_b64_encode(p, all, sizeof(all));
    RS_CHECK(rs_util_b64_decode(p, enc, strlen(enc), &out, &len) == APR_SUCCESS
             && len == 256 && !memcmp(out, all, 256));
    RS_CHECK(b64_dec_is(p, "AA==", "\0", 1));            /* NUL in output */
    RS_CHECK(b64_dec_is(p, "+/+/", "\xfb\xff\xbf", 3));
    RS_CHECK(rs_util_b64_decode(p, NULL, 0, &out, &len) == APR_SUCCESS
             && len == 0 && out[0] == '\0');
    /* strictness: padding required, no whitespace, standard alphabet */
    RS_CHECK(B64_BAD(p, "Zg"));
    RS_CHECK(B64_BAD(p, "Zg="));
    RS_CHECK(B64_BAD(p, "Zm9vY"));
    RS_CHECK(B64_BAD(p, "Z==="));
    RS_CHECK(B64_BAD(p, "===="));
    RS_CHECK(B64_BAD(p, "Zg=a"));
    RS_CHECK(B64_BAD(p, "Zg==Zg=="));                    /* padding inside */
    RS_CHECK(B64_BAD(p, "Zm9=Zm9v"));
    RS_CHECK(B64_BAD(p, "Zm9v "));
    RS_CHECK(B64_BAD(p, " Zm9v"));
    RS_CHECK(B64_BAD(p, "Zm 9v"));
    RS_CHECK(B64_BAD(p, "Zm9v\n"));
    RS_CHECK(B64_BAD(p, "Zm9v\r\n"));
    RS_CHECK(B64_BAD(p, "Zm-v"));                        /* base64url */
    RS_CHECK(B64_BAD(p, "Zm_v"));
    RS_CHECK(B64_BAD(p, "Zm9\xc3"));
    RS_CHECK(B64_BAD(p, "Zm\0v"));                       /* NUL inside */
    /* non-zero bits before the padding: not canonical, refused */
    RS_CHECK(B64_BAD(p, "Zh=="));
    RS_CHECK(B64_BAD(p, "Zm9="));
    RS_CHECK(B64_BAD(p, "AB=="));
    RS_CHECK(B64_BAD(p, "AAB="));
    RS_CHECK(b64_dec_is(p, "AAA=", "\0\0", 2));
    RS_CHECK(b64_bad(p, NULL, 4));

    RS_CHECK_STR(rs_util_hex(p, (const unsigned char *)"\x00\x01\xab\xff", 4),
                 "0001abff");
    RS_CHECK_STR(rs_util_hex(p, (const unsigned char *)"", 0), "");
}

/* ---- names ------------------------------------------------------------- */

static void test_sanitize_basic(apr_pool_t *p)
{
    RS_CHECK_STR(rs_util_sanitize_name(p, "report.pdf"), "report.pdf");
    RS_CHECK_STR(rs_util_sanitize_name(p, "a b (1).tar.gz"), "a b (1).tar.gz");
    RS_CHECK_STR(rs_util_sanitize_name(p, "../../etc/passwd"), "passwd");
    RS_CHECK_STR(rs_util_sanitize_name(p, "/etc/passwd"), "passwd");
    RS_CHECK_STR(rs_util_sanitize_name(p, "C:\\x\\y.txt"), "y.txt");
    RS_CHECK_STR(rs_util_sanitize_name(p, "..\\..\\boot.ini"), "boot.ini");
    RS_CHECK_STR(rs_util_sanitize_name(p, "dir/sub\\mixed/name.txt"),
                 "name.txt");
    RS_CHECK_STR(rs_util_sanitize_name(p, ".htaccess"), "htaccess");
    RS_CHECK_STR(rs_util_sanitize_name(p, "...hidden..."), "hidden");
    RS_CHECK_STR(rs_util_sanitize_name(p, "  . spaced .  "), "spaced");
    RS_CHECK_STR(rs_util_sanitize_name(p, "C:"), "C_");
    RS_CHECK(rs_util_sanitize_name(p, "..") == NULL);
    RS_CHECK(rs_util_sanitize_name(p, ".") == NULL);
    RS_CHECK(rs_util_sanitize_name(p, "...") == NULL);
    RS_CHECK(rs_util_sanitize_name(p, "") == NULL);
    RS_CHECK(rs_util_sanitize_name(p, "   ") == NULL);
    RS_CHECK(rs_util_sanitize_name(p, ". .") == NULL);
    RS_CHECK(rs_util_sanitize_name(p, NULL) == NULL);
    RS_CHECK(rs_util_sanitize_name(p, "a/") == NULL);    /* no base name */
    RS_CHECK(rs_util_sanitize_name(p, "a\\") == NULL);
    RS_CHECK(rs_util_sanitize_name(p, "/") == NULL);
    RS_CHECK(rs_util_sanitize_name(p, "x/..") == NULL);
    RS_CHECK(rs_util_sanitize_name(p, "\x01\x02\x1f\x7f") == NULL);
}

static void test_sanitize_chars(apr_pool_t *p)
{
    /* control characters are dropped, unsafe ASCII becomes '_' */
    RS_CHECK_STR(rs_util_sanitize_name(p, "a\x01" "b\x7f" "c\td\r\n.txt"),
                 "abcd.txt");
    RS_CHECK_STR(rs_util_sanitize_name(p, "a<b>c|d?e*f:g\"h.txt"),
                 "a_b_c_d_e_f_g_h.txt");
    RS_CHECK_STR(rs_util_sanitize_name(p, "$(rm -rf);`x`&y%z#'.sh"),
                 "_(rm -rf)__x__y_z__.sh");
    RS_CHECK_STR(rs_util_sanitize_name(p, "a+b=c,d@e~f[1].txt"),
                 "a+b=c,d@e~f[1].txt");
    /* UTF-8 letters are kept */
    RS_CHECK_STR(rs_util_sanitize_name(p, "r\xc3\xa9sum\xc3\xa9.pdf"),
                 "r\xc3\xa9sum\xc3\xa9.pdf");
    RS_CHECK_STR(rs_util_sanitize_name(p, "\xe6\x97\xa5\xe6\x9c\xac.txt"),
                 "\xe6\x97\xa5\xe6\x9c\xac.txt");
    RS_CHECK_STR(rs_util_sanitize_name(p, "\xf0\x9f\x98\x80.png"),
                 "\xf0\x9f\x98\x80.png");
    /* invalid UTF-8: one '_' per bad byte */
    RS_CHECK_STR(rs_util_sanitize_name(p, "a\xff\xfe" "b"), "a__b");
    RS_CHECK_STR(rs_util_sanitize_name(p, "a\xc0\xaf" "b"), "a__b");
    RS_CHECK_STR(rs_util_sanitize_name(p, "a\xe2\x82"), "a__");
    RS_CHECK_STR(rs_util_sanitize_name(p, "a\xed\xa0\x80" "b"), "a___b");
    RS_CHECK_STR(rs_util_sanitize_name(p, "a\xf4\x90\x80\x80" "b"), "a____b");
    RS_CHECK_STR(rs_util_sanitize_name(p, "\x80x"), "_x");
    RS_CHECK_STR(rs_util_sanitize_name(p, "\xc2\xa0x"), "\xc2\xa0x");
    RS_CHECK_STR(rs_util_sanitize_name(p, "\xc1\xbfx"), "__x");
    RS_CHECK_STR(rs_util_sanitize_name(p, "\xe0\xa0\x80x"), "\xe0\xa0\x80x");
    RS_CHECK_STR(rs_util_sanitize_name(p, "\xe0\x80\x80x"), "___x");
    RS_CHECK_STR(rs_util_sanitize_name(p, "\xf0\x90\x80\x80x"),
                 "\xf0\x90\x80\x80x");
    RS_CHECK_STR(rs_util_sanitize_name(p, "\xf0\x80\x80\x80x"), "____x");
    RS_CHECK_STR(rs_util_sanitize_name(p, "\xf4\x8f\xbf\xbfx"),
                 "\xf4\x8f\xbf\xbfx");
    RS_CHECK_STR(rs_util_sanitize_name(p, "\xf8\x88\x80\x80\x80x"), "_____x");
    /* invisible / bidi code points become one '_' each */
    RS_CHECK_STR(rs_util_sanitize_name(p, "a\xc2\x85" "b"), "a_b");
    RS_CHECK_STR(rs_util_sanitize_name(p, "invoice\xe2\x80\xae" "fdp.exe"),
                 "invoice_fdp.exe");
    RS_CHECK_STR(rs_util_sanitize_name(p, "\xef\xbb\xbf" "bom.txt"),
                 "_bom.txt");
    /* Windows device names */
    RS_CHECK_STR(rs_util_sanitize_name(p, "CON"), "_CON");
    RS_CHECK_STR(rs_util_sanitize_name(p, "nul.txt"), "_nul.txt");
    RS_CHECK_STR(rs_util_sanitize_name(p, "com1.tar.gz"), "_com1.tar.gz");
    RS_CHECK_STR(rs_util_sanitize_name(p, "LPT9"), "_LPT9");
    RS_CHECK_STR(rs_util_sanitize_name(p, "COM0"), "COM0");
    RS_CHECK_STR(rs_util_sanitize_name(p, "console.txt"), "console.txt");
    RS_CHECK_STR(rs_util_sanitize_name(p, "auxiliary"), "auxiliary");
}

static void test_sanitize_long(apr_pool_t *p)
{
    const char *r;

    r = rs_util_sanitize_name(p, apr_pstrcat(p, repeat(p, "a", 10240), ".pdf",
                                             NULL));
    RS_CHECK(r && strlen(r) == RS_NAME_MAX && ends_with(r, ".pdf")
             && r[0] == 'a');
    r = rs_util_sanitize_name(p, repeat(p, "b", RS_NAME_MAX));
    RS_CHECK(r && strlen(r) == RS_NAME_MAX);
    r = rs_util_sanitize_name(p, repeat(p, "b", RS_NAME_MAX + 1));
    RS_CHECK(r && strlen(r) == RS_NAME_MAX);
    /* 3-byte characters: 196 bytes of stem hold 65 of them */
    r = rs_util_sanitize_name(p, apr_pstrcat(p, repeat(p, "\xe2\x82\xac", 3000),
                                             ".txt", NULL));
    RS_CHECK(r && strlen(r) == 199 && ends_with(r, ".txt") && utf8_ok(r));
    /* 4-byte characters, no extension */
    r = rs_util_sanitize_name(p, repeat(p, "\xf0\x9f\x98\x80", 100));
    RS_CHECK(r && strlen(r) == 200 && utf8_ok(r));
    r = apr_pstrcat(p, "x", repeat(p, "\xf0\x9f\x98\x80", 100), NULL);
    r = rs_util_sanitize_name(p, r);
    RS_CHECK(r && strlen(r) == 197 && utf8_ok(r));
    /* an extension longer than 32 bytes is not kept */
    r = rs_util_sanitize_name(p, apr_pstrcat(p, repeat(p, "a", 300), ".",
                                             repeat(p, "e", 40), NULL));
    RS_CHECK(r && strlen(r) == RS_NAME_MAX && !strchr(r, '.'));
    /* the cut stem loses trailing dots and spaces */
    r = rs_util_sanitize_name(p, apr_pstrcat(p, "x", repeat(p, " ", 300),
                                             ".zip", NULL));
    RS_CHECK_STR(r, "x.zip");
    /* long path with a short base name: only the base counts */
    r = rs_util_sanitize_name(p, apr_pstrcat(p, repeat(p, "d/", 5000), "f.txt",
                                             NULL));
    RS_CHECK_STR(r, "f.txt");
}

static void test_name_ext(void)
{
    RS_CHECK_STR(rs_util_name_ext("a.tar.gz"), ".gz");
    RS_CHECK_STR(rs_util_name_ext("report.pdf"), ".pdf");
    RS_CHECK_STR(rs_util_name_ext("noext"), "");
    RS_CHECK_STR(rs_util_name_ext(".bashrc"), "");
    RS_CHECK_STR(rs_util_name_ext("a."), "");
    RS_CHECK_STR(rs_util_name_ext(""), "");
    RS_CHECK_STR(rs_util_name_ext(NULL), "");
    RS_CHECK_STR(rs_util_name_ext("dir.d/file"), "");
    RS_CHECK_STR(rs_util_name_ext("dir.d\\.hidden"), "");
    RS_CHECK_STR(rs_util_name_ext("x/y.z"), ".z");
}

/* ---- HTTP helpers ------------------------------------------------------ */

static void test_http(apr_pool_t *p)
{
    const char *cd;

    RS_CHECK_STR(rs_util_http_date(p, apr_time_from_sec(784111777)),
                 "Sun, 06 Nov 1994 08:49:37 GMT");
    RS_CHECK_STR(rs_util_http_date(p, 0), "Thu, 01 Jan 1970 00:00:00 GMT");

    RS_CHECK_STR(rs_util_content_disposition(p, "attachment", "a.txt"),
                 "attachment; filename=\"a.txt\"; filename*=UTF-8''a.txt");
    RS_CHECK_STR(rs_util_content_disposition(p, "inline",
                                             "r\xc3\xa9sum\xc3\xa9.pdf"),
                 "inline; filename=\"r_sum_.pdf\"; "
                 "filename*=UTF-8''r%C3%A9sum%C3%A9.pdf");
    RS_CHECK_STR(rs_util_content_disposition(p, NULL, "\xe2\x82\xac 5.txt"),
                 "attachment; filename=\"_ 5.txt\"; "
                 "filename*=UTF-8''%E2%82%AC%205.txt");
    RS_CHECK_STR(rs_util_content_disposition(p, "attachment",
                                             "a\"b\\c d;e'f%g.txt"),
                 "attachment; filename=\"a_b_c d;e'f%g.txt\"; "
                 "filename*=UTF-8''a%22b%5Cc%20d%3Be%27f%25g.txt");
    RS_CHECK_STR(rs_util_content_disposition(p, "attachment",
                                             "!#$&+-.^_`|~09AZaz"),
                 "attachment; filename=\"!#$&+-.^_`|~09AZaz\"; "
                 "filename*=UTF-8''!#$&+-.^_`|~09AZaz");
    cd = rs_util_content_disposition(p, "attachment", "a\r\nSet-Cookie: x");
    RS_CHECK_STR(cd, "attachment; filename=\"a__Set-Cookie: x\"; "
                     "filename*=UTF-8''a%0D%0ASet-Cookie%3A%20x");
    RS_CHECK(rs_util_header_safe(cd));
    RS_CHECK_STR(rs_util_content_disposition(p, "attachment", NULL),
                 "attachment");
    RS_CHECK_STR(rs_util_content_disposition(p, "inline", ""), "inline");

    RS_CHECK(rs_util_header_safe(""));
    RS_CHECK(rs_util_header_safe("plain value"));
    RS_CHECK(rs_util_header_safe("tab\there"));
    RS_CHECK(rs_util_header_safe("obs-text \xc3\xa9\xff"));
    RS_CHECK(!rs_util_header_safe(NULL));
    RS_CHECK(!rs_util_header_safe("a\rb"));
    RS_CHECK(!rs_util_header_safe("a\nb"));
    RS_CHECK(!rs_util_header_safe("a\r\nX-Evil: 1"));
    RS_CHECK(!rs_util_header_safe("\x01"));
    RS_CHECK(!rs_util_header_safe("a\x1f"));
    RS_CHECK(!rs_util_header_safe("del\x7f"));
}

/* ---- rs_error ---------------------------------------------------------- */

static void test_error(apr_pool_t *p)
{
    rs_error_t *e;
    int i, complete = 1;

    for (i = 0; i < RS_ERR__COUNT; i++) {
        const char *name = rs_error_name((rs_errcode_t)i);
        int status = rs_error_status((rs_errcode_t)i);
        if (strncmp(name, "ERR_", 4) || !strcmp(name, "ERR_UNKNOWN")
            || !*rs_error_message((rs_errcode_t)i)
            || status < 200 || status > 599) {
            complete = 0;
            printf("# incomplete error row %d\n", i);
        }
    }
    RS_CHECK(complete);
    RS_CHECK(rs_error_status(RS_ERR_BAD_REQUEST) == 400);
    RS_CHECK(rs_error_status(RS_ERR_NOT_FOUND) == 404);
    RS_CHECK(rs_error_status(RS_ERR_MISMATCHED_OFFSET) == 409);
    RS_CHECK(rs_error_status(RS_ERR_GONE) == 410);
    RS_CHECK(rs_error_status(RS_ERR_PRECONDITION) == 412);
    RS_CHECK(rs_error_status(RS_ERR_MAX_SIZE) == 413);
    RS_CHECK(rs_error_status(RS_ERR_UNSUPPORTED_TYPE) == 415);
    RS_CHECK(rs_error_status(RS_ERR_BODY_READ) == 400);   /* client's fault */
    RS_CHECK(rs_error_status(RS_ERR_TIMEOUT) == 408);
    RS_CHECK(rs_error_status(RS_ERR_LOCKED) == 423);
    RS_CHECK(rs_error_status(RS_ERR_CHECKSUM_MISMATCH) == 460);
    RS_CHECK(rs_error_status(RS_ERR_TIMEOUT) == 408);
    RS_CHECK(rs_error_status(RS_ERR_STORAGE_FULL) == 507);
    RS_CHECK(rs_error_status(RS_ERR_WRONG_PROTOCOL) == 400);
    RS_CHECK(rs_error_status(RS_ERR_MODIFY_FINAL) == 403);
    RS_CHECK(rs_error_status(RS_ERR_METHOD) == 405);
    RS_CHECK(rs_error_status(RS_ERR_INTERRUPTED) == 400);
    RS_CHECK_STR(rs_error_name(RS_ERR_MISMATCHED_OFFSET),
                 "ERR_MISMATCHED_OFFSET");
    RS_CHECK_STR(rs_error_name(RS_ERR_STORAGE_FULL), "ERR_STORAGE_FULL");
    RS_CHECK_STR(rs_error_name(RS_ERR__COUNT), "ERR_UNKNOWN");
    RS_CHECK_STR(rs_error_name((rs_errcode_t)-1), "ERR_UNKNOWN");
    RS_CHECK(rs_error_status(RS_ERR__COUNT) == 500);

    e = rs_error_make(p, RS_ERR_NOT_FOUND, APR_ENOENT, NULL);
    RS_CHECK(e->code == RS_ERR_NOT_FOUND && e->status == 404
             && e->cause == APR_ENOENT);
    RS_CHECK_STR(e->name, "ERR_NOT_FOUND");
    RS_CHECK_STR(e->detail, rs_error_message(RS_ERR_NOT_FOUND));
    e = rs_error_make(p, RS_ERR_MISMATCHED_OFFSET, APR_SUCCESS,
                      "offset %d, expected %s", 5, "7");
    RS_CHECK(e->status == 409 && e->cause == APR_SUCCESS);
    RS_CHECK_STR(e->detail, "offset 5, expected 7");

    RS_CHECK(rs_error_from_io(APR_ENOSPC, RS_ERR_STORAGE)
             == RS_ERR_STORAGE_FULL);
    RS_CHECK(rs_error_from_io(APR_FROM_OS_ERROR(ENOSPC), RS_ERR_STATE)
             == RS_ERR_STORAGE_FULL);
#ifdef EDQUOT
    RS_CHECK(rs_error_from_io(APR_FROM_OS_ERROR(EDQUOT), RS_ERR_STORAGE)
             == RS_ERR_STORAGE_FULL);
#endif
    RS_CHECK(rs_error_from_io(APR_FROM_OS_ERROR(EIO), RS_ERR_STORAGE)
             == RS_ERR_STORAGE);
    RS_CHECK(rs_error_from_io(APR_EACCES, RS_ERR_STATE) == RS_ERR_STATE);
}

/* ---- rs_log ------------------------------------------------------------ */

static struct {
    int calls;
    rs_log_level_t level;
    apr_status_t rv;
    int line;
    char msg[64];
} seen;

static void log_cb(void *baton, const char *file, int line,
                   rs_log_level_t level, apr_status_t rv, const char *msg)
{
    seen.calls++;
    seen.level = level;
    seen.rv = rv;
    seen.line = line;
    apr_cpystrn(seen.msg, msg, sizeof(seen.msg));
}

static int log_enabled(void *baton, rs_log_level_t level)
{
    return level <= *(rs_log_level_t *)baton;
}

static void test_log(apr_pool_t *p)
{
    rs_log_level_t max = RS_LOG_INFO;
    int line;

    rs_log_set(log_cb, log_enabled, &max);
    RS_CHECK(rs_log_is_enabled(RS_LOG_ERR));
    RS_CHECK(rs_log_is_enabled(RS_LOG_INFO));
    RS_CHECK(!rs_log_is_enabled(RS_LOG_DEBUG));
    line = __LINE__ + 1;
    rs_log_perror(RS_LOG_MARK, RS_LOG_ERR, APR_ENOENT, p, RS_LOGNO(02001)
                  "x=%d %s", 42, "y");
    RS_CHECK(seen.calls == 1 && seen.level == RS_LOG_ERR
             && seen.rv == APR_ENOENT && seen.line == line);
    RS_CHECK_STR(seen.msg, "RS02001: x=42 y");
    rs_log_perror(RS_LOG_MARK, RS_LOG_DEBUG, APR_SUCCESS, p, "skipped");
    RS_CHECK(seen.calls == 1);
    rs_log_perror(RS_LOG_MARK, RS_LOG_WARNING, APR_SUCCESS, NULL,
                  "no pool %s", "ok");
    RS_CHECK(seen.calls == 2);
    RS_CHECK_STR(seen.msg, "no pool ok");

    rs_log_set(log_cb, NULL, NULL);                /* no enabled callback */
    RS_CHECK(rs_log_is_enabled(RS_LOG_TRACE4));

    rs_log_set(NULL, NULL, NULL);                  /* back to stderr */
    rs_log_set_stderr_level(RS_LOG_WARNING);
    RS_CHECK(rs_log_is_enabled(RS_LOG_WARNING));
    RS_CHECK(!rs_log_is_enabled(RS_LOG_NOTICE));
    rs_log_set_stderr_level(RS_LOG_EMERG);
    RS_CHECK(!rs_log_is_enabled(RS_LOG_ALERT));
    rs_log_perror(RS_LOG_MARK, RS_LOG_ERR, APR_FROM_OS_ERROR(EIO), p,
                  "not shown");
    RS_CHECK(seen.calls == 2);
}

static void test_range(apr_pool_t *p)
{
    RS_CHECK_STR(rs_util_range_open_ended(p, "bytes=100"), "bytes=100-");
    RS_CHECK_STR(rs_util_range_open_ended(p, "bytes=0"), "bytes=0-");
    RS_CHECK(!rs_util_range_open_ended(p, "bytes=1-2"));
    RS_CHECK(!rs_util_range_open_ended(p, "bytes="));
    RS_CHECK(!rs_util_range_open_ended(p, "bytes=-5"));
    RS_CHECK(!rs_util_range_open_ended(p, "items=5"));
    RS_CHECK(!rs_util_range_open_ended(p, "bytes=1234567890123456789"));
    RS_CHECK(!rs_util_range_open_ended(p, NULL));
}

static void test_defuse(apr_pool_t *p)
{
    apr_array_header_t *deny = apr_array_make(p, 2, sizeof(const char *));

    APR_ARRAY_PUSH(deny, const char *) = "php";
    APR_ARRAY_PUSH(deny, const char *) = "cgi";
    RS_CHECK_STR(rs_util_defuse_name(p, "shell.php", deny), "shell_php");
    RS_CHECK_STR(rs_util_defuse_name(p, "a.PHP.jpg", deny), "a_PHP.jpg");
    RS_CHECK_STR(rs_util_defuse_name(p, "x.cgi.php", deny), "x_cgi_php");
    RS_CHECK_STR(rs_util_defuse_name(p, "photo.jpg", deny), "photo.jpg");
    RS_CHECK_STR(rs_util_defuse_name(p, "a.phpx", deny), "a.phpx");
    RS_CHECK_STR(rs_util_defuse_name(p, "php", deny), "php");
    RS_CHECK_STR(rs_util_defuse_name(p, "a..php", deny), "a._php");
    RS_CHECK_STR(rs_util_defuse_name(p, "a.php", NULL), "a.php");
}

void suite_util(apr_pool_t *p)
{
    test_defuse(p);
    test_range(p);
    test_ids(p);
    test_parse_off();
    test_off_add();
    test_parse_size();
    test_parse_duration();
    test_b64(p);
    test_sanitize_basic(p);
    test_sanitize_chars(p);
    test_sanitize_long(p);
    test_name_ext();
    test_http(p);
    test_error(p);
    test_log(p);
}
