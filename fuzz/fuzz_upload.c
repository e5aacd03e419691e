/* Licensed under the Apache License, Version 2.0. */
/*
 * libFuzzer target: the dbm record codec (rs_upload_decode). A record that
 * decodes must encode again and decode to the same encoding (round trip).
 */
#include "fuzz_common.h"
#include "rs_upload.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    rs_upload_t *u = NULL, *u2 = NULL;
    char *buf, *buf2;
    apr_size_t len, len2;

    if (APR_SUCCESS == rs_upload_decode(p, NULL, (const char *)data, size,
                                        &u)) {
        rs_upload_chunks_missing(u);
        rs_upload_state_name(u->state);
        if (APR_SUCCESS != rs_upload_encode(u, p, &buf, &len)
            || APR_SUCCESS != rs_upload_decode(p, u->id, buf, len, &u2)
            || APR_SUCCESS != rs_upload_encode(u2, p, &buf2, &len2)
            || len != len2 || memcmp(buf, buf2, len)) {
            abort();
        }
    }
    apr_pool_destroy(p);
    return 0;
}
