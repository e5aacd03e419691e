/* Licensed under the Apache License, Version 2.0. */
/*
 * The engine's side of application hooks (rs_engine_hooks_t in
 * rs_engine.h): where it asks, where it records, and what a refused
 * finished upload becomes. Without hooks (e->hooks NULL) every function
 * here returns at its first test.
 *
 * A pre-finish refusal (RS_ERR_HOOK_REJECTED) marks the record
 * RS_UF_REJECTED and removes its data (and chunk files): it is never
 * published, and rs_engine_open answers RS_ERR_REJECTED for it from then
 * on, to every client and protocol, until the expiry sweep removes it.
 * Any other gate failure (the target unreachable) leaves the upload as it
 * is: all bytes in, not complete; the next request that opens it asks
 * again (rs_engine_open completes uploads whose bytes are all in).
 */

#include "rs_engine.h"
#include "rs_engine_private.h"
#include "rs_hook.h"
#include "rs_data.h"
#include "rs_log.h"

rs_error_t *rs_eng_gate(rs_engine_t *e, int event, rs_upload_t *u,
                        apr_pool_t *p)
{
    if (!e->hooks || !e->hooks->gate) {
        return NULL;
    }
    return e->hooks->gate(e->hooks->baton, event, u, p);
}

apr_status_t rs_eng_record(rs_engine_t *e, struct rs_txn_t *txn, int event,
                           const rs_upload_t *u, apr_pool_t *p)
{
    if (!e->hooks || !e->hooks->record) {
        return APR_SUCCESS;
    }
    return e->hooks->record(e->hooks->baton, txn, event, u, p);
}

rs_error_t *rs_eng_finish_gate(rs_engine_t *e, rs_upload_t *u, apr_pool_t *p)
{
    rs_error_t *err;

    if (!e->hooks || (u->flags & RS_UF_PARTIAL)
        || !(err = rs_eng_gate(e, RS_HOOK_PRE_FINISH, u, p))) {
        return NULL;
    }
    if (RS_ERR_HOOK_REJECTED != err->code) {
        return err;                     /* asked again next time */
    }
    u->flags |= RS_UF_REJECTED;
    u->expires = u->expires ? u->expires : apr_time_now()
                                           + apr_time_from_sec(86400);
    if (APR_SUCCESS != rs_eng_save_progress(e, u, p, NULL)) {
        return rs_eng_state_error(p, APR_EGENERAL, "write", u->id);
    }
    rs_data_remove(rs_data_path(p, u->dir, u->id), p);
    if (u->flags & RS_UF_CHUNKED) {
        rs_eng_remove_chunks(u, p);
    }
    rs_log_perror(RS_LOG_MARK, RS_LOG_INFO, 0, p, RS_LOGNO(09700)
                  "upload %s: refused by the pre-finish hook (%d), not "
                  "published", u->id, err->status);
    return err;
}
