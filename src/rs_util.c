/* Licensed to the Apache Software Foundation (ASF) under one or more
 * contributor license agreements; and licensed under the Apache License,
 * Version 2.0 (the "License"); you may not use this file except in
 * compliance with the License. See http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * Strict parsers and helpers shared by every front end (see rs_util.h).
 *
 * Decisions:
 * - Decimal numbers (offsets, sizes, durations): 1 to 19 ASCII digits,
 *   leading zeros accepted ("007" is 7) but never more than 19 digits in
 *   all, value <= the largest apr_off_t / apr_interval_time_t. No sign, no
 *   spaces, nothing after the number (except the one suffix letter sizes
 *   and durations allow).
 * - Base64 decoding is canonical RFC 4648 section 4: length a multiple of
 *   4, padding required, '=' only as the last one or two characters, no
 *   whitespace, and the unused bits before the padding must be zero
 *   (RFC 4648 section 3.5), so every byte string has exactly one accepted
 *   encoding.
 * - File names: see rs_util_sanitize_name() below.
 */

#include <string.h>
#include <apr_general.h>
#include <apr_strings.h>
#include <apr_lib.h>
#include <apr_cstr.h>
#include "rs_util.h"

#define RS_DEC_MAX_DIGITS 19
#define RS_OFF_MAX ((apr_off_t)((((apr_uint64_t)1) \
                                 << (sizeof(apr_off_t) * 8 - 1)) - 1))
#define RS_INT64_MAX APR_INT64_MAX
#define RS_EXT_KEEP_MAX 32        /* longest extension kept when cutting */

static const char b64_std[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64_url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* ---- base64 ------------------------------------------------------------ */

static char *b64_encode(apr_pool_t *p, const unsigned char *in, apr_size_t len,
                        const char *alphabet, int pad)
{
    char *out = apr_palloc(p, (len + 2) / 3 * 4 + 1);
    char *o = out;
    apr_size_t i;

    for (i = 0; i + 2 < len; i += 3) {
        *o++ = alphabet[in[i] >> 2];
        *o++ = alphabet[((in[i] & 0x03) << 4) | (in[i + 1] >> 4)];
        *o++ = alphabet[((in[i + 1] & 0x0f) << 2) | (in[i + 2] >> 6)];
        *o++ = alphabet[in[i + 2] & 0x3f];
    }
    if (len - i == 1) {
        *o++ = alphabet[in[i] >> 2];
        *o++ = alphabet[(in[i] & 0x03) << 4];
        if (pad) {
            *o++ = '=';
            *o++ = '=';
        }
    }
    else if (len - i == 2) {
        *o++ = alphabet[in[i] >> 2];
        *o++ = alphabet[((in[i] & 0x03) << 4) | (in[i + 1] >> 4)];
        *o++ = alphabet[(in[i + 1] & 0x0f) << 2];
        if (pad) {
            *o++ = '=';
        }
    }
    *o = '\0';
    return out;
}

const char *rs_util_b64_encode(apr_pool_t *p, const unsigned char *in,
                               apr_size_t len)
{
    return b64_encode(p, in, len, b64_std, 1);
}

/* value of a standard base64 character, or -1 */
static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '+') {
        return 62;
    }
    return c == '/' ? 63 : -1;
}

/* Decode one quad; `last` allows padding. Returns bytes written or -1. */
static int b64_quad(const unsigned char *q, int last, unsigned char *out)
{
    int v[4], i, pad = 0;

    for (i = 0; i < 4; i++) {
        v[i] = b64_value(q[i]);
        if (v[i] < 0 && !(last && q[i] == '=' && i >= 2)) {
            return -1;
        }
    }
    if (q[2] == '=') {
        pad = (q[3] == '=') ? 2 : -1;
    }
    else if (q[3] == '=') {
        pad = 1;
    }
    if (pad < 0 || (pad == 2 && (v[1] & 0x0f)) || (pad == 1 && (v[2] & 0x03))) {
        return -1;          /* "xx=y", or non-zero bits before padding */
    }
    out[0] = (unsigned char)((v[0] << 2) | (v[1] >> 4));
    if (pad < 2) {
        out[1] = (unsigned char)(((v[1] & 0x0f) << 4) | (v[2] >> 2));
    }
    if (pad < 1) {
        out[2] = (unsigned char)(((v[2] & 0x03) << 6) | v[3]);
    }
    return 3 - pad;
}

apr_status_t rs_util_b64_decode(apr_pool_t *p, const char *in, apr_size_t inlen,
                                unsigned char **out, apr_size_t *len)
{
    const unsigned char *s = (const unsigned char *)in;
    unsigned char *buf;
    apr_size_t i, n = 0;
    int got;

    if ((!in && inlen) || inlen % 4) {
        return APR_EINVAL;
    }
    buf = apr_palloc(p, inlen / 4 * 3 + 1);
    for (i = 0; i < inlen; i += 4) {
        got = b64_quad(s + i, i + 4 == inlen, buf + n);
        if (got < 0) {
            return APR_EINVAL;
        }
        n += (apr_size_t)got;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return APR_SUCCESS;
}

const char *rs_util_hex(apr_pool_t *p, const unsigned char *in, apr_size_t len)
{
    static const char digits[] = "0123456789abcdef";
    char *out = apr_palloc(p, len * 2 + 1);
    apr_size_t i;

    for (i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0x0f];
    }
    out[2 * len] = '\0';
    return out;
}

/* ---- ids --------------------------------------------------------------- */

apr_status_t rs_util_id_new(apr_pool_t *p, const char **id)
{
    unsigned char raw[16];
    apr_status_t rv = apr_generate_random_bytes(raw, sizeof(raw));

    if (rv == APR_SUCCESS) {
        *id = b64_encode(p, raw, sizeof(raw), b64_url, 0);
    }
    return rv;
}

int rs_util_id_valid(const char *s)
{
    int i;

    if (!s) {
        return 0;
    }
    for (i = 0; i < RS_ID_LEN; i++) {
        if (!apr_isalnum(s[i]) && s[i] != '-' && s[i] != '_') {
            return 0;   /* also stops at the NUL of a short string */
        }
    }
    return s[RS_ID_LEN] == '\0';
}

/* ---- numbers ----------------------------------------------------------- */

/* Leading decimal digits of s (1..19) into *v; *end after the last one. */
static apr_status_t parse_digits(const char *s, apr_uint64_t *v,
                                 const char **end)
{
    apr_uint64_t n = 0;
    int i;

    if (!s) {
        return APR_EINVAL;
    }
    for (i = 0; apr_isdigit(s[i]); i++) {
        if (i == RS_DEC_MAX_DIGITS) {
            return APR_EINVAL;
        }
        n = n * 10 + (apr_uint64_t)(s[i] - '0');   /* < 10^19 < 2^64 */
    }
    if (i == 0) {
        return APR_EINVAL;
    }
    *v = n;
    *end = s + i;
    return APR_SUCCESS;
}

apr_status_t rs_util_parse_off(const char *s, apr_off_t *v)
{
    apr_uint64_t n;
    const char *end;

    if (parse_digits(s, &n, &end) != APR_SUCCESS || *end
        || n > (apr_uint64_t)RS_OFF_MAX) {
        return APR_EINVAL;
    }
    *v = (apr_off_t)n;
    return APR_SUCCESS;
}

/* n * mult unless that exceeds max */
static apr_status_t scale(apr_uint64_t n, apr_uint64_t mult, apr_uint64_t max,
                          apr_uint64_t *out)
{
    if (n > max / mult) {
        return APR_EINVAL;
    }
    *out = n * mult;
    return APR_SUCCESS;
}

apr_status_t rs_util_parse_size(const char *s, apr_off_t *v)
{
    apr_uint64_t n, mult = 1;
    const char *end;

    if (parse_digits(s, &n, &end) != APR_SUCCESS) {
        return APR_EINVAL;
    }
    if (*end) {
        const char *units = "KMGT", *u = strchr(units, apr_toupper(*end));
        if (!u || end[1]) {
            return APR_EINVAL;
        }
        mult = (apr_uint64_t)1 << (10 * (u - units + 1));
    }
    if (scale(n, mult, (apr_uint64_t)RS_OFF_MAX, &n) != APR_SUCCESS) {
        return APR_EINVAL;
    }
    *v = (apr_off_t)n;
    return APR_SUCCESS;
}

apr_status_t rs_util_parse_duration(const char *s, apr_interval_time_t *v)
{
    apr_uint64_t n, mult = 1;
    const char *end;

    if (parse_digits(s, &n, &end) != APR_SUCCESS) {
        return APR_EINVAL;
    }
    if (*end) {
        if (end[1]) {
            return APR_EINVAL;
        }
        switch (apr_tolower(*end)) {
        case 's': mult = 1;     break;
        case 'm': mult = 60;    break;
        case 'h': mult = 3600;  break;
        case 'd': mult = 86400; break;
        default:  return APR_EINVAL;
        }
    }
    mult *= APR_USEC_PER_SEC;
    if (scale(n, mult, (apr_uint64_t)RS_INT64_MAX, &n) != APR_SUCCESS) {
        return APR_EINVAL;
    }
    *v = (apr_interval_time_t)n;
    return APR_SUCCESS;
}

/* ---- UTF-8 ------------------------------------------------------------- */

/*
 * Length of the well-formed UTF-8 sequence at s (1..4), or 0 when s does
 * not start one (stray continuation, overlong form, surrogate, > U+10FFFF,
 * truncated). *cp receives the code point. s is NUL terminated, and NUL is
 * never a continuation byte, so this never reads past the terminator.
 */
static int utf8_seq(const unsigned char *s, apr_uint32_t *cp)
{
    apr_uint32_t c = s[0], min;
    int n, i;

    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        min = 0x80;
    }
    else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        min = 0x800;
    }
    else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        min = 0x10000;
    }
    else {
        return 0;
    }
    c &= 0x7fu >> n;                    /* payload bits of the lead byte */
    for (i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
        c = (c << 6) | (s[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) {
        return 0;
    }
    *cp = c;
    return n;
}

/* Invisible or line-breaking code points that have no place in a name:
 * C1 controls, line/paragraph separators, bidi overrides and isolates,
 * the byte order mark. */
static int unicode_unsafe(apr_uint32_t cp)
{
    return (cp >= 0x80 && cp <= 0x9f)
        || cp == 0x2028 || cp == 0x2029
        || (cp >= 0x202a && cp <= 0x202e)
        || (cp >= 0x2066 && cp <= 0x2069)
        || cp == 0xfeff;
}

/* ---- file names -------------------------------------------------------- */

/* ASCII characters kept as they are in a sanitized name */
static int name_char_safe(unsigned char c)
{
    return apr_isalnum(c) || (c && strchr(" ._-+()[],@=~", c));
}

/* Map the base name: drop CTLs, keep safe ASCII and valid UTF-8 letters,
 * everything else becomes '_'. Output is never longer than the input. */
static apr_size_t name_map(const unsigned char *s, char *out)
{
    apr_size_t n = 0;
    apr_uint32_t cp;
    int len;

    while (*s) {
        len = utf8_seq(s, &cp);
        if (*s < 0x20 || *s == 0x7f) {
            len = 1;                            /* dropped */
        }
        else if (len > 1 && !unicode_unsafe(cp)) {
            memcpy(out + n, s, (apr_size_t)len);
            n += (apr_size_t)len;
        }
        else {
            out[n++] = (len == 1 && name_char_safe(*s)) ? (char)*s : '_';
            len = len ? len : 1;
        }
        s += len;
    }
    out[n] = '\0';
    return n;
}

static int is_trim(char c)
{
    return c == '.' || c == ' ';
}

/* Largest cut <= max that does not split a UTF-8 sequence of s[0..len) */
static apr_size_t utf8_cut(const char *s, apr_size_t len, apr_size_t max)
{
    if (len <= max) {
        return len;
    }
    while (max > 0 && ((unsigned char)s[max] & 0xc0) == 0x80) {
        max--;
    }
    return max;
}

/* Cut name (mapped and trimmed, len > RS_NAME_MAX) to RS_NAME_MAX bytes,
 * keeping a short extension. */
static char *name_cut(apr_pool_t *p, char *name, apr_size_t len)
{
    const char *ext = rs_util_name_ext(name);
    apr_size_t extlen = strlen(ext), stem;

    if (extlen > RS_EXT_KEEP_MAX) {
        extlen = 0;
        ext = "";
    }
    stem = utf8_cut(name, len - extlen, RS_NAME_MAX - extlen);
    while (stem > 0 && is_trim(name[stem - 1])) {
        stem--;
    }
    return apr_pstrcat(p, apr_pstrmemdup(p, name, stem), ext, NULL);
}

/* Device names Windows resolves in every directory: prefix them with '_' */
static int name_reserved(const char *name)
{
    static const char *const devices[] = {
        "CON", "PRN", "AUX", "NUL", "COM", "LPT", NULL
    };
    apr_size_t stem = strcspn(name, ".");
    int i;

    for (i = 0; devices[i]; i++) {
        if (apr_cstr_casecmpn(name, devices[i], 3) != 0) {
            continue;
        }
        if (stem == 3 && i < 4) {
            return 1;
        }
        if (stem == 4 && i >= 4 && name[3] >= '1' && name[3] <= '9') {
            return 1;
        }
    }
    return 0;
}

/*
 * Sanitize a client-supplied file name. Steps: base name after the last '/'
 * or '\\' ("a/" has an empty base name and is refused); map characters
 * (name_map); trim leading and trailing dots and spaces (".htaccess" ->
 * "htaccess", ".." -> refused); refuse an empty result; put '_' in front of
 * Windows device names ("CON", "com1.txt") so the result is portable; cut
 * to RS_NAME_MAX bytes on a UTF-8 boundary keeping an extension of up to
 * RS_EXT_KEEP_MAX bytes.
 */
const char *rs_util_sanitize_name(apr_pool_t *p, const char *name)
{
    const char *base, *sep;
    char *start;
    apr_size_t len;

    if (!name) {
        return NULL;
    }
    base = name;
    for (sep = name; *sep; sep++) {
        if (*sep == '/' || *sep == '\\') {
            base = sep + 1;
        }
    }
    start = apr_palloc(p, strlen(base) + 1);
    len = name_map((const unsigned char *)base, start);
    while (len > 0 && is_trim(start[len - 1])) {
        start[--len] = '\0';
    }
    while (is_trim(*start)) {
        start++;
        len--;
    }
    if (len == 0) {
        return NULL;
    }
    if (name_reserved(start)) {
        start = apr_pstrcat(p, "_", start, NULL);
        len++;
    }
    return len > RS_NAME_MAX ? name_cut(p, start, len) : start;
}

static int denied(const char *ext, apr_size_t len,
                  const apr_array_header_t *deny)
{
    int i;

    for (i = 0; i < deny->nelts; i++) {
        const char *d = APR_ARRAY_IDX(deny, i, const char *);
        if (strlen(d) == len && !strncasecmp(ext, d, len)) {
            return 1;
        }
    }
    return 0;
}

const char *rs_util_defuse_name(apr_pool_t *p, const char *name,
                                const apr_array_header_t *deny)
{
    char *out = NULL, *dot;
    const char *s = name;

    if (!name || !deny || !deny->nelts) {
        return name;
    }
    while ((dot = strchr(s, '.'))) {
        apr_size_t len = strcspn(dot + 1, ".");
        if (dot != name && denied(dot + 1, len, deny)) {
            out = out ? out : apr_pstrdup(p, name);
            out[dot - name] = '_';
        }
        s = dot + 1;
    }
    return out ? out : name;
}

const char *rs_util_name_ext(const char *name)
{
    const char *dot = NULL, *s;

    if (!name) {
        return "";
    }
    for (s = name; *s; s++) {
        if (*s == '/' || *s == '\\') {
            dot = NULL;
            name = s + 1;
        }
        else if (*s == '.') {
            dot = s;
        }
    }
    /* ".bashrc" has no extension, neither has "a." */
    if (!dot || dot == name || dot[1] == '\0') {
        return "";
    }
    return dot;
}

/* ---- HTTP helpers ------------------------------------------------------ */

const char *rs_util_http_date(apr_pool_t *p, apr_time_t t)
{
    char *buf = apr_palloc(p, APR_RFC822_DATE_LEN);

    if (apr_rfc822_date(buf, t) != APR_SUCCESS) {
        return NULL;
    }
    return buf;
}

/* RFC 8187 attr-char */
static int attr_char(unsigned char c)
{
    return apr_isalnum(c) || (c && strchr("!#$&+-.^_`|~", c));
}

/* filename="..." fallback: one '_' per non-ASCII character, and for '"',
 * '\\' and control characters */
static char *ascii_fallback(apr_pool_t *p, const unsigned char *s)
{
    char *out = apr_palloc(p, strlen((const char *)s) + 1), *o = out;

    for (; *s; s++) {
        if ((*s & 0xc0) == 0x80) {
            continue;           /* continuation byte: counted at its lead */
        }
        if (*s >= 0x80 || *s < 0x20 || *s == 0x7f || *s == '"' || *s == '\\') {
            *o++ = '_';
        }
        else {
            *o++ = (char)*s;
        }
    }
    *o = '\0';
    return out;
}

static char *pct_encode(apr_pool_t *p, const unsigned char *s)
{
    static const char digits[] = "0123456789ABCDEF";
    char *out = apr_palloc(p, strlen((const char *)s) * 3 + 1), *o = out;

    for (; *s; s++) {
        if (attr_char(*s)) {
            *o++ = (char)*s;
        }
        else {
            *o++ = '%';
            *o++ = digits[*s >> 4];
            *o++ = digits[*s & 0x0f];
        }
    }
    *o = '\0';
    return out;
}

const char *rs_util_content_disposition(apr_pool_t *p, const char *disp,
                                        const char *name)
{
    const unsigned char *n = (const unsigned char *)name;

    if (!disp) {
        disp = "attachment";
    }
    if (!name || !*name) {
        return apr_pstrdup(p, disp);
    }
    return apr_pstrcat(p, disp, "; filename=\"", ascii_fallback(p, n),
                       "\"; filename*=UTF-8''", pct_encode(p, n), NULL);
}

int rs_util_header_safe(const char *s)
{
    const unsigned char *c = (const unsigned char *)s;

    if (!s) {
        return 0;
    }
    for (; *c; c++) {
        if ((*c < 0x20 && *c != '\t') || *c == 0x7f) {
            return 0;
        }
    }
    return 1;
}

const char *rs_util_range_open_ended(apr_pool_t *p, const char *range)
{
    const char *v;

    if (!range || strncasecmp(range, "bytes=", 6)) {
        return NULL;
    }
    for (v = range + 6; *v >= '0' && *v <= '9'; v++) {
    }
    if (*v || v == range + 6 || v - range > 6 + 18) {
        return NULL;
    }
    return apr_pstrcat(p, range, "-", NULL);
}

int rs_util_off_add(apr_off_t a, apr_off_t b, apr_off_t *sum)
{
    return !__builtin_add_overflow(a, b, sum);
}
