/* Licensed under the Apache License, Version 2.0. */
/*
 * Incremental multipart/form-data parser. See rs_multipart.h.
 *
 * The delimiter is "CRLF--boundary". While scanning part content, `m`
 * counts how many of its bytes matched so far; those bytes are held back
 * (they are known: a prefix of the delimiter) and released as content on
 * a mismatch. CR is the delimiter's only CR, so after a mismatch the
 * current byte can only restart a match at position 0. The preamble is
 * scanned the same way with m = 2 (the first delimiter may open the body
 * without a CRLF before it).
 */

#include <apr_strings.h>
#include <apr_lib.h>

#include "rs_multipart.h"

#define MP_MAX_LWSP 64

typedef enum {
    MP_PREAMBLE, MP_AFTER, MP_LWSP, MP_CR, MP_DASH, MP_HEADERS, MP_BODY,
    MP_DONE
} mp_state_t;

struct rs_mp_t {
    apr_pool_t *pool;               /* the caller's */
    apr_pool_t *part_pool;          /* cleared per part */
    const rs_mp_cb_t *cb;
    void *baton;
    char *delim;                    /* "\r\n--boundary" */
    apr_size_t dlen;
    apr_size_t m;                   /* delimiter bytes matched */
    mp_state_t state;
    apr_size_t count;               /* preamble bytes, LWSP run */
    char *hbuf;                     /* header block of the current part */
    apr_size_t hlen;
    int parts, max_parts;
};

/* ------------------------------------------------------------------------ */
/* boundary                                                                  */

static int bchar(int c)
{
    return apr_isalnum(c) || (c && strchr("'()+_,-./:=? ", c));
}

static apr_status_t boundary_ok(const char *b, apr_size_t n)
{
    apr_size_t i;

    if (n < 1 || n > RS_MP_MAX_BOUNDARY || b[n - 1] == ' ') {
        return APR_EINVAL;
    }
    for (i = 0; i < n; i++) {
        if (!bchar((unsigned char)b[i])) {
            return APR_EINVAL;
        }
    }
    return APR_SUCCESS;
}

/* Parameter value at s (token or quoted string) -> *val; *end after it. */
static apr_status_t param_value(apr_pool_t *p, const char *s,
                                const char **val, const char **end)
{
    char *out, *o;

    if (*s != '"') {
        const char *e = s;
        while (*e && *e != ';' && *e != ' ' && *e != '\t' && *e != '"') {
            e++;
        }
        if (e == s) {
            return APR_EINVAL;
        }
        *val = apr_pstrndup(p, s, e - s);
        *end = e;
        return APR_SUCCESS;
    }
    o = out = apr_palloc(p, strlen(s));
    for (s++; *s && *s != '"'; s++) {
        if (*s == '\\' && s[1]) {
            s++;
        }
        *o++ = *s;
    }
    if (*s != '"') {
        return APR_EINVAL;
    }
    *o = '\0';
    *val = out;
    *end = s + 1;
    return APR_SUCCESS;
}

static const char *skip_ws(const char *s)
{
    while (*s == ' ' || *s == '\t') {
        s++;
    }
    return s;
}

/* Walk "; key=value" parameters from s; cb gets each pair. */
typedef apr_status_t param_cb(void *baton, const char *key, const char *val);

static apr_status_t params(apr_pool_t *p, const char *s, param_cb *cb,
                           void *baton)
{
    const char *val, *key;
    apr_size_t klen;
    apr_status_t rv;

    for (s = skip_ws(s); *s; s = skip_ws(s)) {
        if (*s != ';') {
            return APR_EINVAL;
        }
        s = skip_ws(s + 1);
        if (!*s) {
            break;                          /* a trailing ';' */
        }
        for (key = s; apr_isalnum(*s) || *s == '-' || *s == '_'
             || *s == '*' || *s == '.'; s++) {
        }
        klen = s - key;
        if (0 == klen || *s != '=') {
            return APR_EINVAL;
        }
        rv = param_value(p, s + 1, &val, &s);
        if (APR_SUCCESS == rv) {
            rv = cb(baton, apr_pstrndup(p, key, klen), val);
        }
        if (APR_SUCCESS != rv) {
            return rv;
        }
    }
    return APR_SUCCESS;
}

static apr_status_t boundary_param(void *baton, const char *key,
                                   const char *val)
{
    const char **b = baton;

    if (!strcasecmp(key, "boundary")) {
        if (*b) {
            return APR_EINVAL;
        }
        *b = val;
    }
    return APR_SUCCESS;
}

apr_status_t rs_mp_boundary(apr_pool_t *p, const char *content_type,
                            const char **boundary)
{
    static const char type[] = "multipart/form-data";
    const char *b = NULL;
    apr_status_t rv;

    if (!content_type) {
        return APR_EINVAL;
    }
    content_type = skip_ws(content_type);
    if (strncasecmp(content_type, type, sizeof(type) - 1)) {
        return APR_EINVAL;
    }
    rv = params(p, content_type + sizeof(type) - 1, boundary_param, &b);
    if (APR_SUCCESS != rv || !b) {
        return APR_EINVAL;
    }
    if (APR_SUCCESS != boundary_ok(b, strlen(b))) {
        return APR_EINVAL;
    }
    *boundary = b;
    return APR_SUCCESS;
}

/* ------------------------------------------------------------------------ */
/* part headers                                                              */

typedef struct part_t {
    const char *name;
    const char *filename;
    const char *ctype;
    int disposition;
} part_t;

static apr_status_t disp_param(void *baton, const char *key, const char *val)
{
    part_t *pt = baton;

    if (!strcasecmp(key, "name")) {
        if (pt->name) {
            return APR_EINVAL;
        }
        pt->name = val;
    }
    else if (!strcasecmp(key, "filename")) {
        if (pt->filename) {
            return APR_EINVAL;
        }
        pt->filename = val;
    }
    return APR_SUCCESS;                     /* filename* and others: unused */
}

static apr_status_t disposition(apr_pool_t *p, const char *v, part_t *pt)
{
    static const char fd[] = "form-data";

    if (pt->disposition++) {
        return APR_EINVAL;
    }
    v = skip_ws(v);
    if (strncasecmp(v, fd, sizeof(fd) - 1)) {
        return APR_EINVAL;
    }
    v += sizeof(fd) - 1;
    if (*v && *v != ';' && *v != ' ' && *v != '\t') {
        return APR_EINVAL;
    }
    return params(p, v, disp_param, pt);
}

/* One header line (no CRLF). */
static apr_status_t header_line(apr_pool_t *p, char *line, part_t *pt)
{
    char *colon = strchr(line, ':'), *v, *e;
    const char *c;

    if (!colon || colon == line) {
        return APR_EINVAL;               /* also folded lines (leading WS) */
    }
    for (c = line; c < colon; c++) {
        if (!apr_isalnum(*c) && !strchr("!#$%&'*+-.^_`|~", *c)) {
            return APR_EINVAL;
        }
    }
    *colon = '\0';
    v = (char *)skip_ws(colon + 1);
    for (e = v + strlen(v); e > v && (e[-1] == ' ' || e[-1] == '\t'); e--) {
    }
    *e = '\0';
    if (!strcasecmp(line, "Content-Disposition")) {
        return disposition(p, v, pt);
    }
    if (!strcasecmp(line, "Content-Type")) {
        if (pt->ctype) {
            return APR_EINVAL;
        }
        pt->ctype = v;
    }
    return APR_SUCCESS;
}

/* The header block is complete (hbuf ends with the empty line). */
static apr_status_t headers_done(rs_mp_t *mp)
{
    part_t pt = { NULL, NULL, NULL, 0 };
    char *line = mp->hbuf, *crlf;
    apr_status_t rv;

    mp->hbuf[mp->hlen - 2] = '\0';          /* drop the empty line's CRLF */
    while (*line) {
        crlf = strstr(line, "\r\n");
        if (crlf) {
            *crlf = '\0';
        }
        rv = header_line(mp->part_pool, line, &pt);
        if (APR_SUCCESS != rv) {
            return rv;
        }
        line = crlf ? crlf + 2 : line + strlen(line);
    }
    if (!pt.disposition || !pt.name) {
        return APR_EINVAL;
    }
    mp->state = MP_BODY;
    mp->m = 0;
    return mp->cb->begin(mp->baton, pt.name, pt.filename, pt.ctype);
}

static apr_status_t header_byte(rs_mp_t *mp, char c)
{
    char prev = mp->hlen ? mp->hbuf[mp->hlen - 1] : 0;

    if (mp->hlen >= RS_MP_MAX_HEADER || c == '\0'
        || (c == '\n' && prev != '\r') || (prev == '\r' && c != '\n')) {
        return APR_EINVAL;
    }
    mp->hbuf[mp->hlen++] = c;
    if (c == '\n' && (2 == mp->hlen || (mp->hlen >= 4
                      && !memcmp(mp->hbuf + mp->hlen - 4, "\r\n\r\n", 4)))) {
        return headers_done(mp);
    }
    return APR_SUCCESS;
}

/* ------------------------------------------------------------------------ */
/* content                                                                   */

static apr_status_t emit(rs_mp_t *mp, const char *d, apr_size_t n)
{
    if (0 == n) {
        return APR_SUCCESS;
    }
    if (MP_PREAMBLE == mp->state) {
        mp->count += n;
        return mp->count > RS_MP_MAX_PREAMBLE ? APR_EINVAL : APR_SUCCESS;
    }
    return mp->cb->data(mp->baton, d, n);
}

static apr_status_t delimiter_found(rs_mp_t *mp)
{
    apr_status_t rv = APR_SUCCESS;

    if (MP_BODY == mp->state) {
        rv = mp->cb->end(mp->baton);
        apr_pool_clear(mp->part_pool);
    }
    mp->state = MP_AFTER;
    mp->m = 0;
    mp->count = 0;
    return rv;
}

/* Scan content; *used: bytes consumed (up to the delimiter's end). */
static apr_status_t scan(rs_mp_t *mp, const char *d, apr_size_t n,
                         apr_size_t *used)
{
    apr_size_t i = 0, run = 0;
    const char *cr;
    apr_status_t rv;

    while (i < n) {
        if (0 == mp->m) {
            if (!(cr = memchr(d + i, '\r', n - i))) {
                i = n;
                break;
            }
            i = cr - d;
        }
        if (d[i] == mp->delim[mp->m]) {
            if (0 == mp->m && APR_SUCCESS != (rv = emit(mp, d + run, i - run))) {
                return rv;
            }
            mp->m++;
            run = ++i;
            if (mp->m == mp->dlen) {
                *used = i;
                return delimiter_found(mp);
            }
            continue;
        }
        /* mismatch: the held prefix was content after all */
        if (APR_SUCCESS != (rv = emit(mp, mp->delim, mp->m))) {
            return rv;
        }
        mp->m = 0;
        run = i;
    }
    *used = n;
    return emit(mp, d + run, n - run);
}

/* ------------------------------------------------------------------------ */
/* between parts                                                             */

static apr_status_t after_byte(rs_mp_t *mp, char c)
{
    switch (mp->state) {
    case MP_AFTER:
        if (c == '-') {
            mp->state = MP_DASH;
            return APR_SUCCESS;
        }
        /* fall through */
    case MP_LWSP:
        if ((c == ' ' || c == '\t') && ++mp->count <= MP_MAX_LWSP) {
            mp->state = MP_LWSP;
            return APR_SUCCESS;
        }
        if (c == '\r') {
            mp->state = MP_CR;
            return APR_SUCCESS;
        }
        return APR_EINVAL;
    case MP_CR:
        if (c != '\n' || mp->parts >= mp->max_parts) {
            return APR_EINVAL;
        }
        mp->parts++;
        mp->hlen = 0;
        mp->state = MP_HEADERS;
        return APR_SUCCESS;
    case MP_DASH:
        if (c != '-') {
            return APR_EINVAL;
        }
        mp->state = MP_DONE;
        return APR_SUCCESS;
    default:
        return APR_EINVAL;
    }
}

/* ------------------------------------------------------------------------ */
/* API                                                                       */

apr_status_t rs_mp_create(rs_mp_t **pmp, const char *boundary, int max_parts,
                          const rs_mp_cb_t *cb, void *baton, apr_pool_t *p)
{
    rs_mp_t *mp;

    if (!boundary || APR_SUCCESS != boundary_ok(boundary, strlen(boundary))
        || max_parts < 1) {
        return APR_EINVAL;
    }
    mp = apr_pcalloc(p, sizeof(*mp));
    mp->pool = p;
    apr_pool_create(&mp->part_pool, p);
    mp->cb = cb;
    mp->baton = baton;
    mp->delim = apr_pstrcat(p, "\r\n--", boundary, NULL);
    mp->dlen = strlen(mp->delim);
    mp->m = 2;                              /* body may open with "--" */
    mp->state = MP_PREAMBLE;
    mp->hbuf = apr_palloc(p, RS_MP_MAX_HEADER);
    mp->max_parts = max_parts;
    *pmp = mp;
    return APR_SUCCESS;
}

apr_status_t rs_mp_feed(rs_mp_t *mp, const char *data, apr_size_t len)
{
    apr_size_t i = 0, used = 0;
    apr_status_t rv = APR_SUCCESS;

    while (APR_SUCCESS == rv && i < len) {
        switch (mp->state) {
        case MP_PREAMBLE:
        case MP_BODY:
            rv = scan(mp, data + i, len - i, &used);
            i += used;
            break;
        case MP_HEADERS:
            rv = header_byte(mp, data[i++]);
            break;
        case MP_DONE:
            return APR_SUCCESS;             /* the epilogue is ignored */
        default:
            rv = after_byte(mp, data[i++]);
            break;
        }
    }
    return rv;
}

apr_status_t rs_mp_finish(rs_mp_t *mp)
{
    return MP_DONE == mp->state ? APR_SUCCESS : APR_INCOMPLETE;
}

int rs_mp_parts(const rs_mp_t *mp)
{
    return mp->parts;
}
