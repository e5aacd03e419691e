/* Licensed under the Apache License, Version 2.0. */
#ifndef RS_META_H
#define RS_META_H

/*
 * Design: strict parser for tus `Upload-Metadata`:
 *   key SP base64value *( "," key SP base64value ), or a key alone
 * (empty value, e.g. `is_confidential`). Whitespace is allowed only around
 * commas (a single SP or HTAB run). Keys are 1..RS_META_KEY_MAX bytes of
 * visible ASCII except ',' and must be unique. Values are strict base64
 * (rs_util_b64_decode). At most RS_META_MAX_PAIRS pairs and RS_META_MAX_LEN
 * bytes in all. Anything else is APR_EINVAL: the whole header is refused,
 * never silently trimmed (unlike tusd).
 */

#include <apr_pools.h>
#include <apr_tables.h>

#define RS_META_MAX_LEN   (64 * 1024)
#define RS_META_MAX_PAIRS 64
#define RS_META_KEY_MAX   128

typedef struct rs_meta_pair_t {
    const char *key;
    const unsigned char *value;   /* decoded, NUL terminated */
    apr_size_t value_len;         /* may contain NULs */
} rs_meta_pair_t;

/**
 * Parse hdr. On success *pairs is an array of rs_meta_pair_t in the order
 * given. APR_EINVAL: malformed, duplicate key, too long, too many pairs.
 */
apr_status_t rs_meta_parse(apr_pool_t *p, const char *hdr,
                           apr_array_header_t **pairs);

/** Decoded value of key as a C string if it holds no NUL, else NULL. */
const char *rs_meta_get(const apr_array_header_t *pairs, const char *key);

#endif /* RS_META_H */
