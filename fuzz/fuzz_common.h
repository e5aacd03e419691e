/* Licensed under the Apache License, Version 2.0. */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

/*
 * Design: shared boilerplate of the libFuzzer targets in fuzz/. Each target
 * exercises one parser of untrusted input in the APR-only core. APR is
 * initialized once; every input gets a fresh pool (destroyed afterwards, so
 * ASan sees use-after-free of pool memory only as far as APR allows) and a
 * NUL-terminated copy of the bytes for the C-string parsers. Core logging is
 * silenced: corrupt input is the normal case here.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <apr_general.h>
#include <apr_pools.h>
#include "rs_log.h"

static apr_pool_t *fuzz_root;

static apr_pool_t *fuzz_pool(void)
{
    apr_pool_t *p;

    if (!fuzz_root) {
        apr_initialize();
        rs_log_set_stderr_level(RS_LOG_EMERG);
        apr_pool_create(&fuzz_root, NULL);
    }
    apr_pool_create(&p, fuzz_root);
    return p;
}

/* A NUL-terminated copy of the input (an embedded NUL ends the string,
 * as it would in a header value). */
static __attribute__((unused))
char *fuzz_cstr(apr_pool_t *p, const uint8_t *data, size_t size)
{
    char *s = apr_palloc(p, size + 1);

    memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

#endif /* FUZZ_COMMON_H */
