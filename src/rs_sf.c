/* Licensed under the Apache License, Version 2.0. */
/*
 * RFC 9651 Structured Field Values: the parsing algorithms of section 4.2,
 * one small function per rule. See rs_sf.h.
 */

#include <string.h>
#include <apr_strings.h>
#include <apr_lib.h>

#include "rs_sf.h"
#include "rs_util.h"

typedef struct sf_in {
    apr_pool_t *p;
    const char *s;               /* current position (NUL terminated) */
} sf_in;

#define SF_FAIL APR_EINVAL

static int is_lcalpha(char c)
{
    return c >= 'a' && c <= 'z';
}

static int is_tchar(char c)
{
    return apr_isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static void skip_sp(sf_in *in)
{
    while (*in->s == ' ') {
        in->s++;
    }
}

static void skip_ows(sf_in *in)
{
    while (*in->s == ' ' || *in->s == '\t') {
        in->s++;
    }
}

static apr_array_header_t *members_make(apr_pool_t *p)
{
    return apr_array_make(p, 4, sizeof(rs_sf_member_t));
}

/* ------------------------------------------------------------------------ */
/* bare items                                                                */

/* Integer or Decimal (RFC 9651 4.2.4). */
static apr_status_t parse_number(sf_in *in, rs_sf_item_t *it)
{
    apr_int64_t v = 0, frac = 0;
    int neg = 0, digits = 0, fdigits = 0;

    if (*in->s == '-') {
        neg = 1;
        in->s++;
    }
    if (!apr_isdigit(*in->s)) {
        return SF_FAIL;
    }
    for (; apr_isdigit(*in->s); in->s++) {
        if (++digits > 15) {
            return SF_FAIL;
        }
        v = v * 10 + (*in->s - '0');
    }
    it->type = RS_SF_INTEGER;
    if (*in->s == '.') {
        if (digits > 12) {
            return SF_FAIL;
        }
        for (in->s++; apr_isdigit(*in->s); in->s++) {
            if (++fdigits > 3) {
                return SF_FAIL;
            }
            frac = frac * 10 + (*in->s - '0');
        }
        if (!fdigits) {
            return SF_FAIL;
        }
        for (; fdigits < 3; fdigits++) {
            frac *= 10;
        }
        v = v * 1000 + frac;
        it->type = RS_SF_DECIMAL;
    }
    it->num = neg ? -v : v;
    return APR_SUCCESS;
}

/* String (4.2.5): printable ASCII, only \" and \\ escapes. */
static apr_status_t parse_string(sf_in *in, rs_sf_item_t *it)
{
    char *out = apr_palloc(in->p, strlen(in->s) + 1), *o = out;

    for (in->s++; *in->s != '"'; in->s++) {
        char c = *in->s;
        if (c == '\\') {
            c = *++in->s;
            if (c != '"' && c != '\\') {
                return SF_FAIL;
            }
        }
        else if (c < 0x20 || c > 0x7e) {
            return SF_FAIL;          /* also the NUL of an open string */
        }
        *o++ = c;
    }
    in->s++;
    *o = '\0';
    it->type = RS_SF_STRING;
    it->str = out;
    it->len = o - out;
    return APR_SUCCESS;
}

/* Token (4.2.6). */
static apr_status_t parse_token(sf_in *in, rs_sf_item_t *it)
{
    const char *start = in->s;

    if (!apr_isalpha(*in->s) && *in->s != '*') {
        return SF_FAIL;
    }
    for (in->s++; is_tchar(*in->s) || *in->s == ':' || *in->s == '/';
         in->s++) {
    }
    it->type = RS_SF_TOKEN;
    it->str = apr_pstrmemdup(in->p, start, in->s - start);
    it->len = in->s - start;
    return APR_SUCCESS;
}

/* Byte Sequence (4.2.7). Missing '=' padding is accepted, as the RFC asks. */
static apr_status_t parse_bytes(sf_in *in, rs_sf_item_t *it)
{
    const char *start = ++in->s, *end = strchr(start, ':');
    apr_size_t n, i;
    unsigned char *out;
    char *b64;

    if (!end) {
        return SF_FAIL;
    }
    n = end - start;
    for (i = 0; i < n; i++) {
        if (!apr_isalnum(start[i]) && !strchr("+/=", start[i])) {
            return SF_FAIL;
        }
    }
    b64 = apr_palloc(in->p, n + 4);
    memcpy(b64, start, n);
    for (; n % 4; n++) {
        b64[n] = '=';
    }
    b64[n] = '\0';
    if (n && APR_SUCCESS != rs_util_b64_decode(in->p, b64, n, &out, &i)) {
        return SF_FAIL;
    }
    it->type = RS_SF_BYTES;
    it->str = n ? (const char *)out : "";
    it->len = n ? i : 0;
    in->s = end + 1;
    return APR_SUCCESS;
}

/* Boolean (4.2.8). */
static apr_status_t parse_boolean(sf_in *in, rs_sf_item_t *it)
{
    char c = in->s[1];

    if (c != '0' && c != '1') {
        return SF_FAIL;
    }
    it->type = RS_SF_BOOLEAN;
    it->num = c == '1';
    in->s += 2;
    return APR_SUCCESS;
}

/* Date (RFC 9651 4.2.9): '@' Integer. */
static apr_status_t parse_date(sf_in *in, rs_sf_item_t *it)
{
    in->s++;
    if (APR_SUCCESS != parse_number(in, it) || RS_SF_INTEGER != it->type) {
        return SF_FAIL;
    }
    it->type = RS_SF_DATE;
    return APR_SUCCESS;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0. */
static int utf8_len(const unsigned char *s, apr_size_t left)
{
    int n, i;
    unsigned int cp;

    if (s[0] < 0x80) {
        return 1;
    }
    n = (s[0] & 0xe0) == 0xc0 ? 2 : (s[0] & 0xf0) == 0xe0 ? 3
        : (s[0] & 0xf8) == 0xf0 ? 4 : 0;
    if (!n || (apr_size_t)n > left) {
        return 0;
    }
    cp = s[0] & (0x7f >> n);
    for (i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800)
        || (n == 4 && cp < 0x10000) || cp > 0x10ffff
        || (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }
    return n;
}

static int utf8_valid(const unsigned char *s, apr_size_t len)
{
    apr_size_t i = 0;
    int n;

    while (i < len) {
        if (!(n = utf8_len(s + i, len - i))) {
            return 0;
        }
        i += n;
    }
    return 1;
}

/* Display String (RFC 9651 4.2.10): %"..." with lower-case %hh escapes. */
static apr_status_t parse_display(sf_in *in, rs_sf_item_t *it)
{
    unsigned char *out = apr_palloc(in->p, strlen(in->s) + 1), *o = out;

    if (in->s[1] != '"') {
        return SF_FAIL;
    }
    for (in->s += 2; *in->s != '"'; in->s++) {
        char c = *in->s;
        if (c < 0x20 || c > 0x7e) {
            return SF_FAIL;
        }
        if (c == '%') {
            int h = hexval(in->s[1]), l = h < 0 ? -1 : hexval(in->s[2]);
            if (l < 0) {
                return SF_FAIL;
            }
            c = (char)(h * 16 + l);
            in->s += 2;
        }
        *o++ = (unsigned char)c;
    }
    in->s++;
    *o = '\0';
    if (!utf8_valid(out, o - out)) {
        return SF_FAIL;
    }
    it->type = RS_SF_DISPLAY;
    it->str = (const char *)out;
    it->len = o - out;
    return APR_SUCCESS;
}

static apr_status_t parse_bare(sf_in *in, rs_sf_item_t *it)
{
    char c = *in->s;

    if (c == '-' || apr_isdigit(c)) {
        return parse_number(in, it);
    }
    switch (c) {
    case '"': return parse_string(in, it);
    case ':': return parse_bytes(in, it);
    case '?': return parse_boolean(in, it);
    case '@': return parse_date(in, it);
    case '%': return parse_display(in, it);
    default:  return parse_token(in, it);
    }
}

/* ------------------------------------------------------------------------ */
/* keys, parameters, items                                                   */

static apr_status_t parse_key(sf_in *in, const char **key)
{
    const char *start = in->s;

    if (!is_lcalpha(*in->s) && *in->s != '*') {
        return SF_FAIL;
    }
    for (in->s++; is_lcalpha(*in->s) || apr_isdigit(*in->s)
         || (*in->s && strchr("_-.*", *in->s)); in->s++) {
    }
    *key = apr_pstrmemdup(in->p, start, in->s - start);
    return APR_SUCCESS;
}

/* Add or replace (last wins, first position) a member. */
static void member_set(apr_array_header_t *a, const char *key,
                       const rs_sf_item_t *it)
{
    rs_sf_member_t *m;
    int i;

    for (i = 0; key && i < a->nelts; i++) {
        m = &APR_ARRAY_IDX(a, i, rs_sf_member_t);
        if (!strcmp(m->key, key)) {
            m->item = *it;
            return;
        }
    }
    m = apr_array_push(a);
    m->key = key;
    m->item = *it;
}

static void boolean_true(apr_pool_t *p, rs_sf_item_t *it)
{
    memset(it, 0, sizeof(*it));
    it->type = RS_SF_BOOLEAN;
    it->num = 1;
    it->params = members_make(p);
}

/* Parameters (4.2.3.2). */
static apr_status_t parse_params(sf_in *in, apr_array_header_t **params)
{
    apr_status_t rv;

    *params = members_make(in->p);
    while (*in->s == ';') {
        const char *key;
        rs_sf_item_t v;
        in->s++;
        skip_sp(in);
        if (APR_SUCCESS != (rv = parse_key(in, &key))) {
            return rv;
        }
        boolean_true(in->p, &v);
        if (*in->s == '=') {
            in->s++;
            if (APR_SUCCESS != (rv = parse_bare(in, &v))) {
                return rv;
            }
        }
        v.params = NULL;
        member_set(*params, key, &v);
    }
    return APR_SUCCESS;
}

static apr_status_t parse_item(sf_in *in, rs_sf_item_t *it)
{
    apr_status_t rv;

    memset(it, 0, sizeof(*it));
    if (APR_SUCCESS != (rv = parse_bare(in, it))) {
        return rv;
    }
    return parse_params(in, &it->params);
}

/* Inner List (4.2.1.2). */
static apr_status_t parse_inner(sf_in *in, rs_sf_item_t *it)
{
    apr_status_t rv;

    memset(it, 0, sizeof(*it));
    it->type = RS_SF_INNER_LIST;
    it->inner = apr_array_make(in->p, 4, sizeof(rs_sf_item_t));
    for (in->s++;;) {
        skip_sp(in);
        if (*in->s == ')') {
            in->s++;
            return parse_params(in, &it->params);
        }
        rv = parse_item(in, apr_array_push(it->inner));
        if (APR_SUCCESS != rv) {
            return rv;
        }
        if (*in->s != ' ' && *in->s != ')') {
            return SF_FAIL;
        }
    }
}

static apr_status_t parse_member_value(sf_in *in, rs_sf_item_t *it)
{
    return *in->s == '(' ? parse_inner(in, it) : parse_item(in, it);
}

/* After a List or Dictionary member: end, or a comma and another member. */
static apr_status_t next_member(sf_in *in, int *more)
{
    skip_ows(in);
    *more = 0;
    if (!*in->s) {
        return APR_SUCCESS;
    }
    if (*in->s != ',') {
        return SF_FAIL;
    }
    in->s++;
    skip_ows(in);
    if (!*in->s) {
        return SF_FAIL;              /* trailing comma */
    }
    *more = 1;
    return APR_SUCCESS;
}

/* ------------------------------------------------------------------------ */
/* top level                                                                 */

static apr_status_t parse_list(sf_in *in, apr_array_header_t *a)
{
    apr_status_t rv;
    int more = *in->s != '\0';

    while (more) {
        rs_sf_item_t it;
        if (APR_SUCCESS != (rv = parse_member_value(in, &it))) {
            return rv;
        }
        member_set(a, NULL, &it);
        if (APR_SUCCESS != (rv = next_member(in, &more))) {
            return rv;
        }
    }
    return APR_SUCCESS;
}

static apr_status_t parse_dict(sf_in *in, apr_array_header_t *a)
{
    apr_status_t rv;
    int more = *in->s != '\0';

    while (more) {
        const char *key;
        rs_sf_item_t it;
        if (APR_SUCCESS != (rv = parse_key(in, &key))) {
            return rv;
        }
        if (*in->s == '=') {
            in->s++;
            rv = parse_member_value(in, &it);
        }
        else {
            boolean_true(in->p, &it);
            rv = parse_params(in, &it.params);
        }
        if (APR_SUCCESS != rv) {
            return rv;
        }
        member_set(a, key, &it);
        if (APR_SUCCESS != (rv = next_member(in, &more))) {
            return rv;
        }
    }
    return APR_SUCCESS;
}

apr_status_t rs_sf_parse(apr_pool_t *p, const char *value, rs_sf_kind_t kind,
                         rs_sf_item_t **item, apr_array_header_t **members)
{
    sf_in in = { p, value };
    apr_status_t rv;

    if (!value || strlen(value) > RS_SF_MAX_LEN) {
        return SF_FAIL;
    }
    skip_sp(&in);
    if (RS_SF_ITEM == kind) {
        *item = apr_pcalloc(p, sizeof(**item));
        rv = parse_item(&in, *item);
    }
    else {
        *members = members_make(p);
        rv = RS_SF_LIST == kind ? parse_list(&in, *members)
                                : parse_dict(&in, *members);
    }
    if (APR_SUCCESS == rv) {
        skip_sp(&in);
        rv = *in.s ? SF_FAIL : APR_SUCCESS;
    }
    return rv;
}

/* value as one bare item of the given type (parameters allowed). */
static apr_status_t item_of(apr_pool_t *p, const char *value,
                            rs_sf_type_t type, apr_int64_t *num)
{
    rs_sf_item_t *it;
    apr_status_t rv = rs_sf_parse(p, value, RS_SF_ITEM, &it, NULL);

    if (APR_SUCCESS == rv && type != it->type) {
        rv = SF_FAIL;
    }
    if (APR_SUCCESS == rv) {
        *num = it->num;
    }
    return rv;
}

apr_status_t rs_sf_integer(apr_pool_t *p, const char *value, apr_int64_t *v)
{
    return item_of(p, value, RS_SF_INTEGER, v);
}

apr_status_t rs_sf_boolean(apr_pool_t *p, const char *value, int *v)
{
    apr_int64_t num = 0;
    apr_status_t rv = item_of(p, value, RS_SF_BOOLEAN, &num);

    if (APR_SUCCESS == rv) {
        *v = (int)num;
    }
    return rv;
}

const rs_sf_item_t *rs_sf_get(const apr_array_header_t *members,
                              const char *key)
{
    int i;

    for (i = 0; members && i < members->nelts; i++) {
        const rs_sf_member_t *m = &APR_ARRAY_IDX(members, i, rs_sf_member_t);
        if (m->key && !strcmp(m->key, key)) {
            return &m->item;
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* serializing                                                               */

const char *rs_sf_bytes(apr_pool_t *p, const unsigned char *data,
                        apr_size_t len)
{
    return apr_pstrcat(p, ":", rs_util_b64_encode(p, data, len), ":", NULL);
}

const char *rs_sf_repr_digest(apr_pool_t *p, const char *alg, const char *hex)
{
    unsigned char bin[64];
    apr_size_t n, i, want;
    const char *name;

    if (!alg || !hex) {
        return NULL;
    }
    name = !strcmp(alg, "sha256") ? "sha-256"
           : !strcmp(alg, "sha512") ? "sha-512" : NULL;
    want = !strcmp(alg, "sha256") ? 32 : 64;
    n = strlen(hex);
    if (!name || n != 2 * want) {
        return NULL;
    }
    for (i = 0; i < want; i++) {
        int h = hexval(hex[2 * i]), l = hexval(hex[2 * i + 1]);
        if (h < 0 || l < 0) {
            return NULL;
        }
        bin[i] = (unsigned char)(h * 16 + l);
    }
    return apr_pstrcat(p, name, "=", rs_sf_bytes(p, bin, want), NULL);
}
