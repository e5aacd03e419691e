/* Licensed under the Apache License, Version 2.0. */
/*
 * mod_discard: httpd's ceiling for the benchmark suite. The handler
 * "discard" reads the request body with blocking reads of 256 KiB brigades
 * (as a module would) and throws it away; the answer is 204 with the byte
 * count in X-Discarded. Built with apxs by bench/run.py, never installed.
 */

#include <httpd.h>
#include <http_config.h>
#include <http_protocol.h>
#include <http_request.h>
#include <util_filter.h>
#include <apr_strings.h>

#define READ_SIZE (256 * 1024)

static apr_status_t drain(request_rec *r, apr_off_t *total)
{
    apr_bucket_brigade *bb = apr_brigade_create(r->pool,
                                                r->connection->bucket_alloc);
    apr_status_t rv;
    apr_off_t n;
    int eos = 0;

    *total = 0;
    while (!eos) {
        rv = ap_get_brigade(r->input_filters, bb, AP_MODE_READBYTES,
                            APR_BLOCK_READ, READ_SIZE);
        if (APR_SUCCESS != rv) {
            return rv;
        }
        eos = !APR_BRIGADE_EMPTY(bb)
              && APR_BUCKET_IS_EOS(APR_BRIGADE_LAST(bb));
        n = 0;
        apr_brigade_length(bb, 1, &n);
        *total += n;
        apr_brigade_cleanup(bb);
    }
    return APR_SUCCESS;
}

static int discard_handler(request_rec *r)
{
    apr_off_t total;

    if (!r->handler || strcmp(r->handler, "discard")) {
        return DECLINED;
    }
    if (APR_SUCCESS != drain(r, &total)) {
        return HTTP_BAD_REQUEST;
    }
    apr_table_setn(r->headers_out, "X-Discarded",
                   apr_off_t_toa(r->pool, total));
    return HTTP_NO_CONTENT;
}

static void register_hooks(apr_pool_t *p)
{
    ap_hook_handler(discard_handler, NULL, NULL, APR_HOOK_MIDDLE);
}

AP_DECLARE_MODULE(discard) = {
    STANDARD20_MODULE_STUFF, NULL, NULL, NULL, NULL, NULL, register_hooks
};
