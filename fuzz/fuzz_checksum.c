/* Licensed under the Apache License, Version 2.0. */
/* libFuzzer target: tus Upload-Checksum (rs_hash_parse_checksum). */
#include "fuzz_common.h"
#include "rs_hash.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    const char *alg = NULL;
    const unsigned char *digest = NULL;
    apr_size_t len = 0;

    if (APR_SUCCESS == rs_hash_parse_checksum(p, fuzz_cstr(p, data, size),
                                              &alg, &digest, &len)) {
        /* a parsed checksum names a known algorithm and fits its digest */
        if (!alg || !rs_hash_known(alg) || !digest || 0 == len
            || len > RS_HASH_MAX) {
            abort();
        }
    }
    apr_pool_destroy(p);
    return 0;
}
