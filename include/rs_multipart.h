/* Licensed under the Apache License, Version 2.0. */
#ifndef RS_MULTIPART_H
#define RS_MULTIPART_H

/*
 * Design: a strict, incremental multipart/form-data parser (RFC 7578 over
 * RFC 2046). The caller feeds the body in pieces of any size (rs_mp_feed)
 * and gets callbacks per part: begin (name, filename, type), data (any
 * number of pieces, never buffered here), end. Memory is bounded: only the
 * header block of the current part is kept (at most RS_MP_MAX_HEADER
 * bytes), data is passed through as it arrives; the delimiter is found
 * with a single matched-prefix counter (CR occurs only at its start, so no
 * back-tracking and nothing is held beyond the delimiter's length).
 *
 * Strictness: the boundary must follow RFC 2046 (1-70 bchars, not ending
 * in a space); every part needs Content-Disposition: form-data with a
 * name; header lines end in CRLF, folded lines are refused; the number of
 * parts is bounded (max_parts); the preamble is bounded; the body must end
 * with the close delimiter (rs_mp_finish). Any violation is APR_EINVAL; a
 * callback's error stops the parser and is returned as is.
 *
 * No I/O and no httpd: fuzzable on its own.
 */

#include <apr_pools.h>
#include <apr_errno.h>

#define RS_MP_MAX_BOUNDARY 70
#define RS_MP_MAX_HEADER 8192      /* header block of one part */
#define RS_MP_MAX_PREAMBLE 4096

typedef struct rs_mp_cb_t {
    /** A part starts. filename is NULL for a plain field; ctype may be
     *  NULL. Strings live in the parser's pool until the part ends. */
    apr_status_t (*begin)(void *baton, const char *name, const char *filename,
                          const char *ctype);
    /** Part content, in pieces. */
    apr_status_t (*data)(void *baton, const char *data, apr_size_t len);
    /** The part ended (its closing delimiter was seen). */
    apr_status_t (*end)(void *baton);
} rs_mp_cb_t;

typedef struct rs_mp_t rs_mp_t;

/**
 * Boundary of a Content-Type "multipart/form-data; boundary=..." value
 * (token or quoted string). APR_EINVAL when the type is not
 * multipart/form-data or the boundary is missing or not RFC 2046.
 */
apr_status_t rs_mp_boundary(apr_pool_t *p, const char *content_type,
                            const char **boundary);

/** A parser for boundary (as returned by rs_mp_boundary). */
apr_status_t rs_mp_create(rs_mp_t **mp, const char *boundary, int max_parts,
                          const rs_mp_cb_t *cb, void *baton, apr_pool_t *p);

/** Parse the next piece of the body. */
apr_status_t rs_mp_feed(rs_mp_t *mp, const char *data, apr_size_t len);

/** End of body: APR_SUCCESS only when the close delimiter was seen,
 *  APR_INCOMPLETE when the body ended early. */
apr_status_t rs_mp_finish(rs_mp_t *mp);

/** Parts begun so far. */
int rs_mp_parts(const rs_mp_t *mp);

#endif /* RS_MULTIPART_H */
