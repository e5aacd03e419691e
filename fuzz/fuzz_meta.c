/* Licensed under the Apache License, Version 2.0. */
/* libFuzzer target: tus Upload-Metadata (rs_meta_parse, rs_meta_get). */
#include "fuzz_common.h"
#include "rs_meta.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    apr_array_header_t *pairs = NULL;
    int i;

    if (APR_SUCCESS == rs_meta_parse(p, fuzz_cstr(p, data, size), &pairs)) {
        for (i = 0; i < pairs->nelts; i++) {
            const rs_meta_pair_t *mp = &APR_ARRAY_IDX(pairs, i, rs_meta_pair_t);
            const char *v = rs_meta_get(pairs, mp->key);
            /* decoded values are NUL terminated; a value without NUL is
             * returned by rs_meta_get */
            if (!mp->key || !mp->value || '\0' != mp->value[mp->value_len]
                || (!v && !memchr(mp->value, 0, mp->value_len))) {
                abort();
            }
        }
    }
    apr_pool_destroy(p);
    return 0;
}
