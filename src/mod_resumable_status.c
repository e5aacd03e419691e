/* Licensed under the Apache License, Version 2.0. */
/*
 * Operations: the counters in shared memory, the mod_status section and
 * the RESUMABLE_* variables of each request (design of the counters in
 * rs_stats.h, the variable names in mod_resumable_private.h).
 *
 * The counters live in anonymous shared memory created once by httpd's
 * parent in its process pool and found again through ap_retained_data on
 * every restart, graceful or not: children forked before and after a
 * restart add to the same slots (relaxed atomic adds, no lock). They start
 * at zero only when httpd itself starts.
 */

#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_shm.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <http_protocol.h>
#include <mod_status.h>
#include <ap_mpm.h>
#include <unistd.h>

#include "mod_resumable_private.h"
#include "rs_stats.h"
#include "rs_store.h"

#define RETAINED_KEY "mod_resumable_stats_v1"

typedef struct retained_t {
    apr_shm_t *shm;
    apr_size_t size;
} retained_t;

int rs_httpd_status_post_config(apr_pool_t *pconf, server_rec *s)
{
    retained_t *keep = ap_retained_data_get(RETAINED_KEY);
    apr_status_t rv;

    if (!keep) {
        keep = ap_retained_data_create(RETAINED_KEY, sizeof(*keep));
    }
    if (!keep->shm || keep->size != sizeof(rs_stats_t)) {
        rv = apr_shm_create(&keep->shm, sizeof(rs_stats_t), NULL,
                            s->process->pool);
        if (APR_SUCCESS != rv) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, RS_LOGNO(09600)
                         "cannot create the shared memory of the status "
                         "counters (%" APR_SIZE_T_FMT " bytes)",
                         sizeof(rs_stats_t));
            keep->shm = NULL;
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        keep->size = sizeof(rs_stats_t);
        memset(apr_shm_baseaddr_get(keep->shm), 0, sizeof(rs_stats_t));
    }
    rs_stats_attach(apr_shm_baseaddr_get(keep->shm));
    return OK;
}

/* ------------------------------------------------------------------------ */
/* per-request accounting and variables                                      */

static const char *proto_name(int id)
{
    int i;

    for (i = 0; id >= 0 && rs_protos[i]; i++) {
        if ((int)rs_protos[i]->id == id) {
            return rs_protos[i]->name;
        }
    }
    return NULL;
}

static void export(request_rec *r, const char *name, const char *value)
{
    apr_table_setn(r->subprocess_env, name, value);
    apr_table_setn(r->notes, name, value);
}

static void export_off(request_rec *r, const char *name, apr_off_t v)
{
    if (v >= 0) {
        export(r, name, apr_off_t_toa(r->pool, v));
    }
}

static void export_report(request_rec *r, const rs_report_t *rep,
                          const rs_error_t *err)
{
    const char *name = rep ? proto_name(rep->proto) : NULL;

    if (name) {
        export(r, RS_ENV_PROTOCOL, name);
    }
    if (rep && rep->id) {
        export(r, RS_ENV_ID, rep->id);
        export_off(r, RS_ENV_OFFSET_BEFORE, rep->offset_before);
        export_off(r, RS_ENV_OFFSET, rep->offset);
        export_off(r, RS_ENV_BYTES, rep->bytes);
        export(r, RS_ENV_COMPLETE, rep->complete ? "1" : "0");
        if (rep->created) {
            export(r, RS_ENV_CREATED, "1");
        }
        if (rep->terminated) {
            export(r, RS_ENV_TERMINATED, "1");
        }
    }
    if (err) {
        export(r, RS_ENV_ERROR, err->name);
    }
}

#define TXN_NOTE "rs_txn_mark"

void rs_httpd_txn_mark(request_rec *r)
{
    apr_uint32_t *mark = apr_palloc(r->pool, 2 * sizeof(*mark));

    rs_store_thread_txns(&mark[0], &mark[1]);
    apr_pool_userdata_setn(mark, TXN_NOTE, NULL, r->pool);
}

/* RESUMABLE_STATE_WRITES/READS: the transactions since rs_httpd_txn_mark */
static void export_txns(request_rec *r)
{
    apr_uint32_t *mark = NULL, w, rd;

    apr_pool_userdata_get((void **)&mark, TXN_NOTE, r->pool);
    if (mark) {
        rs_store_thread_txns(&w, &rd);
        export(r, RS_ENV_STATE_WRITES, apr_itoa(r->pool, (int)(w - mark[0])));
        export(r, RS_ENV_STATE_READS, apr_itoa(r->pool, (int)(rd - mark[1])));
    }
}

void rs_httpd_account(request_rec *r, const rs_req_t *req, int status)
{
    const rs_report_t *rep = rs_report_find(r->pool);

    rs_stats_add(RS_STAT_REQUESTS, 1);
    if (rep && rep->proto >= 0 && rep->proto < 8) {
        rs_stats_add(RS_STAT_PROTO + rep->proto, 1);
    }
    if (status >= 400 && status < 600) {
        rs_stats_add(RS_STAT_STATUS + (status - 400), 1);
        if (req->error && req->error->code > 0 && req->error->code < 64) {
            rs_stats_add(RS_STAT_ERROR + req->error->code, 1);
        }
        if (0 != req->content_length) {
            rs_stats_add(RS_STAT_FAILED, 1);
        }
    }
    export_report(r, rep, status >= 400 ? req->error : NULL);
    export_txns(r);
}

/* ------------------------------------------------------------------------ */
/* mod_status                                                                */

typedef struct row_t {
    rs_stat_t slot;
    const char *key;            /* ?auto name after "Resumable" */
    const char *label;          /* HTML */
} row_t;

static const row_t rows[] = {
    { RS_STAT_CREATED, "UploadsCreated", "uploads created" },
    { RS_STAT_COMPLETED, "UploadsCompleted", "uploads completed" },
    { RS_STAT_TERMINATED, "UploadsTerminated", "uploads terminated" },
    { RS_STAT_EXPIRED, "UploadsExpired", "uploads expired" },
    { RS_STAT_FAILED, "UploadsFailed",
      "upload requests failed (data sent, 4xx/5xx answered)" },
    { RS_STAT_IN_FLIGHT, "UploadsInFlight", "request bodies being read now" },
    { RS_STAT_BYTES, "BytesReceived", "bytes received" },
    { RS_STAT_TAKEOVERS, "LockTakeovers",
      "lock takeovers (a stalled writer yielded)" },
    { RS_STAT_REQUESTS, "Requests", "requests answered" },
    { RS_STAT_DOWNLOADS, "Downloads", "downloads served" },
    { RS_STAT_SWEEPS, "Sweeps", "expiry sweeps run" },
    { RS_STAT_SWEEP_USEC, "SweepMicroseconds", "time spent sweeping (us)" },
    { RS_STAT_SWEEP_LAST_USEC, "SweepLastMicroseconds",
      "last sweep's duration (us)" },
};

static const row_t hook_rows[] = {
    { RS_STAT_HOOK_PENDING, "HookEventsPending",
      "hook notifications pending (as the deliverer last counted)" },
    { RS_STAT_HOOK_DELIVERED, "HookEventsDelivered",
      "hook notifications delivered" },
    { RS_STAT_HOOK_FAILED, "HookAttemptsFailed",
      "hook delivery attempts failed (retried later)" },
};

/* "ERR_MISMATCHED_OFFSET" -> "MismatchedOffset" */
static const char *camel(apr_pool_t *p, const char *name)
{
    char *out = apr_pstrdup(p, strncmp(name, "ERR_", 4) ? name : name + 4);
    char *w = out;
    const char *c;
    int up = 1;

    for (c = out; *c; c++) {
        if ('_' == *c) {
            up = 1;
            continue;
        }
        *w++ = up ? apr_toupper(*c) : apr_tolower(*c);
        up = 0;
    }
    *w = '\0';
    return out;
}

static void line(request_rec *r, int flags, const char *key,
                 const char *label, apr_int64_t v)
{
    if (flags & AP_STATUS_SHORT) {
        ap_rprintf(r, "Resumable%s: %" APR_INT64_T_FMT "\n", key, v);
    }
    else if (flags & AP_STATUS_NOTABLE) {
        ap_rprintf(r, "%s (Resumable%s): %" APR_INT64_T_FMT "<br>\n",
                   ap_escape_html(r->pool, label), key, v);
    }
    else {
        ap_rprintf(r, "<tr><td>%s</td><td>%s</td>"
                   "<td align=\"right\">%" APR_INT64_T_FMT "</td></tr>\n",
                   ap_escape_html(r->pool, label), key, v);
    }
}

static void section(request_rec *r, int flags, const char *title)
{
    if (flags & AP_STATUS_SHORT) {
        return;
    }
    ap_rprintf(r, (flags & AP_STATUS_NOTABLE) ? "<h3>%s</h3>\n"
               : "<tr><th colspan=\"3\" align=\"left\">%s</th></tr>\n",
               title);
}

static int status_hook(request_rec *r, int flags)
{
    const rs_stats_t *s = rs_stats_get();
    apr_size_t i;
    int n;

    if (!s) {
        return OK;
    }
    if (!(flags & AP_STATUS_SHORT)) {
        ap_rputs("<hr>\n<h2 id=\"resumable\">mod_resumable</h2>\n", r);
    }
    if (!(flags & (AP_STATUS_SHORT | AP_STATUS_NOTABLE))) {
        ap_rputs("<table class=\"resumable\" border=\"1\" cellpadding=\"3\">\n"
                 "<tr><th>what</th><th>?auto name (Resumable...)</th>"
                 "<th>count</th></tr>\n", r);
    }
    section(r, flags, "uploads");
    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        line(r, flags, rows[i].key, rows[i].label,
             (apr_int64_t)rs_stats_read(s, rows[i].slot));
    }
    section(r, flags, "hook notifications");
    for (i = 0; i < sizeof(hook_rows) / sizeof(hook_rows[0]); i++) {
        line(r, flags, hook_rows[i].key, hook_rows[i].label,
             (apr_int64_t)rs_stats_read(s, hook_rows[i].slot));
    }
    section(r, flags, "requests by protocol");
    for (i = 0; rs_protos[i]; i++) {
        char *key = apr_pstrcat(r->pool, "Requests",
                                camel(r->pool, rs_protos[i]->name), NULL);
        line(r, flags, key, rs_protos[i]->name, (apr_int64_t)rs_stats_read(
                 s, RS_STAT_PROTO + rs_protos[i]->id));
    }
    section(r, flags, "answers 4xx/5xx by status");
    for (n = 0; n < 200; n++) {
        apr_uint64_t v = rs_stats_read(s, RS_STAT_STATUS + n);
        if (v) {
            line(r, flags, apr_psprintf(r->pool, "Status%d", 400 + n),
                 apr_psprintf(r->pool, "%d", 400 + n), (apr_int64_t)v);
        }
    }
    section(r, flags, "failures by error code");
    for (n = 1; n < RS_ERR__COUNT && n < 64; n++) {
        const char *name = rs_error_name((rs_errcode_t)n);
        line(r, flags, apr_pstrcat(r->pool, "Error", camel(r->pool, name),
                                   NULL),
             name, (apr_int64_t)rs_stats_read(s, RS_STAT_ERROR + n));
    }
    if (!(flags & (AP_STATUS_SHORT | AP_STATUS_NOTABLE))) {
        ap_rputs("</table>\n", r);
    }
    return OK;
}

/* The in-flight gauge per process (rs_stats.h): a child counts its own
 * bodies; the parent forgets them when the child is gone, killed or not. */
static void status_child_init(apr_pool_t *p, server_rec *s)
{
    rs_stats_claim((apr_uint64_t)getpid());
}

static void status_child_exit(server_rec *s, pid_t pid, ap_generation_t gen,
                              int slot, mpm_child_status state)
{
    if (MPM_CHILD_EXITED == state) {
        rs_stats_release((apr_uint64_t)pid);
    }
}

void rs_httpd_status_register(void)
{
    APR_OPTIONAL_HOOK(ap, status_hook, status_hook, NULL, NULL,
                      APR_HOOK_MIDDLE);
    ap_hook_child_init(status_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_status(status_child_exit, NULL, NULL, APR_HOOK_MIDDLE);
}
