/* Licensed under the Apache License, Version 2.0. */
#ifndef RS_SF_H
#define RS_SF_H

/*
 * Design: a strict parser for RFC 9651 Structured Field Values, the syntax
 * of every field of the IETF resumable-upload draft (Upload-Offset,
 * Upload-Complete, Upload-Length, Upload-Limit, Upload-Draft-Interop-Version)
 * and of RFC 9530 digests (Repr-Digest, Content-Digest, Want-Repr-Digest).
 *
 * It follows the parsing algorithms of RFC 9651 section 4.2 to the letter:
 * anything that is not exactly the grammar fails the whole field
 * (APR_EINVAL), never a silent trim. Leading and trailing SP are discarded;
 * repeated field lines must be joined with ", " by the caller (apr_table
 * does). All bare item types are parsed: Integer (15 digits at most),
 * Decimal (kept in thousandths), String, Token, Byte Sequence, Boolean,
 * Date and Display String; Inner Lists and Parameters as well. Duplicate
 * Dictionary or Parameter keys: the last value wins at the first one's
 * position (RFC 9651 4.2.2). Input is untrusted: bounded, no recursion
 * beyond one Inner List level, never reads past the NUL; fuzzable through
 * rs_sf_parse().
 */

#include <apr_pools.h>
#include <apr_tables.h>

typedef enum {
    RS_SF_INTEGER = 1,
    RS_SF_DECIMAL,               /* value in thousandths */
    RS_SF_STRING,
    RS_SF_TOKEN,
    RS_SF_BYTES,
    RS_SF_BOOLEAN,
    RS_SF_DATE,                  /* seconds since the epoch */
    RS_SF_DISPLAY,               /* UTF-8, validated */
    RS_SF_INNER_LIST
} rs_sf_type_t;

typedef enum {
    RS_SF_ITEM = 1,
    RS_SF_LIST,
    RS_SF_DICT
} rs_sf_kind_t;

typedef struct rs_sf_item_t rs_sf_item_t;
struct rs_sf_item_t {
    rs_sf_type_t type;
    apr_int64_t num;             /* INTEGER, DECIMAL, BOOLEAN (0/1), DATE */
    const char *str;             /* STRING, TOKEN, DISPLAY (NUL terminated)
                                    and BYTES (decoded, may hold NULs) */
    apr_size_t len;              /* bytes of str */
    apr_array_header_t *inner;   /* INNER_LIST: rs_sf_item_t */
    apr_array_header_t *params;  /* rs_sf_member_t; NULL in a parameter */
};

/** A Dictionary or Parameter member (key), or a List member (key NULL). */
typedef struct rs_sf_member_t {
    const char *key;
    rs_sf_item_t item;
} rs_sf_member_t;

#define RS_SF_MAX_LEN 16384      /* longer field values are refused */

/**
 * Parse a field value of the given kind. ITEM: *item is set. LIST and
 * DICT: *members is an array of rs_sf_member_t (may be empty). Results are
 * allocated from p. APR_EINVAL for any syntax error.
 */
apr_status_t rs_sf_parse(apr_pool_t *p, const char *value, rs_sf_kind_t kind,
                         rs_sf_item_t **item, apr_array_header_t **members);

/** Item field that must be an Integer (parameters allowed, ignored). */
apr_status_t rs_sf_integer(apr_pool_t *p, const char *value, apr_int64_t *v);
/** Item field that must be a Boolean (parameters allowed, ignored). */
apr_status_t rs_sf_boolean(apr_pool_t *p, const char *value, int *v);

/** The member of a Dictionary (or Parameters) with key, or NULL. */
const rs_sf_item_t *rs_sf_get(const apr_array_header_t *members,
                              const char *key);

/** Serialize a Byte Sequence: ":<base64>:". */
const char *rs_sf_bytes(apr_pool_t *p, const unsigned char *data,
                        apr_size_t len);

/**
 * RFC 9530 Repr-Digest value for a stored digest: alg "sha256" or "sha512"
 * (as in rs_upload_t.digest_alg) and its lower-case hex. NULL for any other
 * algorithm or a malformed hex string.
 */
const char *rs_sf_repr_digest(apr_pool_t *p, const char *alg, const char *hex);

#endif /* RS_SF_H */
