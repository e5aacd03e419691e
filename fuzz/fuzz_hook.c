/* Licensed under the Apache License, Version 2.0. */
/* libFuzzer target: what a hook target answers and what the outbox holds:
 * rs_hook_answer (a 2xx body), rs_hook_text (a refusal's text),
 * rs_outbox_decode (a stored event), rs_hook_parse_url. */
#include "fuzz_common.h"
#include "rs_hook.h"
#include "rs_meta.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    rs_hook_change_t chg;
    rs_outbox_ev_t *ev;
    apr_array_header_t *pairs;
    const char *text, *host, *path;
    apr_port_t port;
    int tls;

    if (!rs_hook_answer(p, (const char *)data, size, &chg)) {
        /* an accepted answer changes only what it may, validly */
        if (chg.metadata && *chg.metadata
            && APR_SUCCESS != rs_meta_parse(p, chg.metadata,
                                                         &pairs)) {
            abort();
        }
        if (chg.filename && !*chg.filename) {
            abort();
        }
    }
    text = rs_hook_text(p, (const char *)data, size);
    if (strlen(text) > RS_HOOK_MAX_TEXT || strpbrk(text, "\r\x01\x7f")) {
        abort();
    }
    if (APR_SUCCESS == rs_outbox_decode(p, "o:x", (const char *)data, size,
                                        &ev)
        && (!ev->id || !ev->event || !ev->url || !ev->payload)) {
        abort();
    }
    if (APR_SUCCESS == rs_hook_parse_url(p, fuzz_cstr(p, data, size), &tls, &host,
                                         &port, &path)
        && (!*host || !port || path[0] != '/')) {
        abort();
    }
    apr_pool_destroy(p);
    return 0;
}
