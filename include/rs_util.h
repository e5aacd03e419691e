/* Licensed under the Apache License, Version 2.0. */
#ifndef RS_UTIL_H
#define RS_UTIL_H

/*
 * Design: small strict parsers and helpers shared by every front end. All
 * parsers take untrusted client input, are bounded, never read past the NUL
 * terminator, and return APR_EINVAL for anything that is not exactly the
 * expected syntax (no leading '+', no spaces, no trailing garbage, no
 * overflow). Results are allocated from the pool passed in.
 */

#include <apr_pools.h>
#include <apr_errno.h>
#include <apr_time.h>
#include <apr_tables.h>

#define RS_ID_LEN 22            /* 128 random bits, base64url, no padding */
#define RS_NAME_MAX 200         /* max bytes of a sanitized file name */

/** New upload id: 16 bytes from apr_generate_random_bytes, base64url. */
apr_status_t rs_util_id_new(apr_pool_t *p, const char **id);
/** 1 if s is exactly RS_ID_LEN chars of [A-Za-z0-9_-], else 0. */
int rs_util_id_valid(const char *s);

/** Strict non-negative decimal (1..19 digits, <= INT64_MAX). */
apr_status_t rs_util_parse_off(const char *s, apr_off_t *v);
/** Size with optional suffix K, M, G, T (binary multiples), e.g. "10G". */
apr_status_t rs_util_parse_size(const char *s, apr_off_t *v);
/** Duration: number with optional suffix s, m, h, d (default seconds). */
apr_status_t rs_util_parse_duration(const char *s, apr_interval_time_t *v);

/** Strict RFC 4648 section 4 base64 (padding required, no whitespace).
 *  out is NUL terminated (not counted in *len). */
apr_status_t rs_util_b64_decode(apr_pool_t *p, const char *in, apr_size_t inlen,
                                unsigned char **out, apr_size_t *len);
/** Standard base64 with padding. */
const char *rs_util_b64_encode(apr_pool_t *p, const unsigned char *in,
                               apr_size_t len);
/** Lower-case hex. */
const char *rs_util_hex(apr_pool_t *p, const unsigned char *in, apr_size_t len);

/**
 * Sanitize a client-supplied file name for the local file system: take the
 * base name after the last '/' or '\\'; drop control characters (< 0x20,
 * 0x7f), NUL can not occur; replace characters outside a safe set with '_';
 * strip leading dots and spaces and trailing dots and spaces; refuse
 * (return NULL) when nothing remains or the result is "." or ".."; cut to
 * RS_NAME_MAX bytes without splitting a UTF-8 sequence, keeping the
 * extension when possible. UTF-8 letters are kept.
 */
const char *rs_util_sanitize_name(apr_pool_t *p, const char *name);

/**
 * Defuse a (sanitized) file name against a deny list of extensions that
 * would execute on the server ("php", "cgi", ...; case-insensitive, without
 * the dot): every dot that starts a denied extension - anywhere in the
 * name, since httpd maps "a.php.jpg" to PHP too - becomes '_'
 * ("shell.php" -> "shell_php", "a.PHP.jpg" -> "a_PHP.jpg"). Returns name
 * itself when nothing is denied (deny may be NULL).
 */
const char *rs_util_defuse_name(apr_pool_t *p, const char *name,
                                const apr_array_header_t *deny);

/** Extension of a name including the dot ("a.tar.gz" -> ".gz"), or "". */
const char *rs_util_name_ext(const char *name);

/** HTTP-date (IMF-fixdate) for t. */
const char *rs_util_http_date(apr_pool_t *p, apr_time_t t);

/** RFC 6266 / 8187 Content-Disposition value for a UTF-8 file name:
 *  `<disp>; filename="<ascii fallback>"; filename*=UTF-8''<pct-encoded>`. */
const char *rs_util_content_disposition(apr_pool_t *p, const char *disp,
                                        const char *name);

/**
 * Range as the seed 000 page sends it, "bytes=N" without the dash: the
 * same Range with "-" appended ("bytes=N-", from N to the end), or NULL
 * when range is anything else (left to httpd's byterange filter).
 */
const char *rs_util_range_open_ended(apr_pool_t *p, const char *range);

/** 1 if s is a safe HTTP header value (no CR, LF, NUL, other CTLs). */
int rs_util_header_safe(const char *s);

/** Checked sum of two offsets or lengths: 1 and *sum = a + b, or 0 when
 *  the sum does not fit an apr_off_t (sums of client numbers near 2^63
 *  must be refused, never wrap: signed overflow is undefined). */
int rs_util_off_add(apr_off_t a, apr_off_t b, apr_off_t *sum);

#endif /* RS_UTIL_H */
