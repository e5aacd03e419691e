/* Licensed under the Apache License, Version 2.0. */
/*
 * Application hooks, the httpd side (rs_hook.h for the design).
 *
 * - A request in an area with hooks leaves a context (its hooks, what the
 *   payload tells about the request, where the server itself listens) in
 *   r->pool's userdata; the engine's gate and record callbacks find it
 *   from the pool they are given. No hook in the area: nothing is left,
 *   and nothing is asked. No ResumableHook anywhere: the engine has no
 *   callbacks at all (one NULL test).
 * - Local targets ("/path") go to the server itself: a plain-HTTP
 *   listener (loopback when it listens on any address), with the
 *   request's Host, so httpd routes them like any request (ProxyPass,
 *   CGI, mod_lua; protect that path with "Require local").
 * - Blocking hooks (gate): 2xx goes on (pre-create may change metadata,
 *   the file name and a size limit, pre-finish the file name), 4xx/5xx refuse with the hook's
 *   status and text (RS_ERR_HOOK_REJECTED; no header of the answer is
 *   passed on), no answer in time fails closed (503, RS_ERR_HOOK_
 *   UNAVAILABLE) unless failopen=on, a malformed 2xx is 502.
 * - Notifications (record) go into the outbox inside the engine's
 *   transaction; a singleton watchdog ("_resumable_hooks_", every second)
 *   delivers them with exponential backoff, oldest first.
 */

#include <apr_strings.h>
#include <apr_optional.h>
#include <apr_thread_mutex.h>

#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_request.h>
#include <ap_listen.h>
#include <mod_watchdog.h>

#include "mod_resumable_private.h"
#include "mod_resumable_config.h"
#include "rs_hook.h"
#include "rs_store.h"
#include "rs_util.h"
#include "rs_data.h"
#include "rs_stats.h"

#define CTX_NOTE "rs_hook_ctx"
#define RS_HOOK_WATCHDOG "_resumable_hooks_"
#define DELIVER_EVERY apr_time_from_sec(1)
#define DELIVER_BATCH 100

typedef struct hook_ctx {
    const rs_hooks_t *hooks;
    rs_hook_req_t req;
    const char *host;               /* Host header for local targets */
} hook_ctx;

static const char *self_addr;       /* "127.0.0.1" */
static apr_port_t self_port;
static server_rec *main_server;

/* ------------------------------------------------------------------------ */
/* context                                                                   */

void rs_httpd_hook_request(request_rec *r)
{
    const rs_hooks_t *hooks = rs_conf_hooks(rs_conf_dir(r));
    hook_ctx *c;

    if (!hooks) {
        return;
    }
    c = apr_pcalloc(r->pool, sizeof(*c));
    c->hooks = hooks;
    c->req.method = r->method;
    c->req.uri = r->unparsed_uri;
    c->req.remote = r->useragent_ip;
    c->req.user = r->user;
    c->req.headers = r->headers_in;
    c->host = r->hostname ? r->hostname : r->server->server_hostname;
    apr_pool_userdata_setn(c, CTX_NOTE, NULL, r->pool);
}

static hook_ctx *find_ctx(apr_pool_t *p)
{
    void *c = NULL;

    for (; p && !c; p = apr_pool_parent_get(p)) {
        apr_pool_userdata_get(&c, CTX_NOTE, p);
    }
    return c;
}

/* Where a hook goes: URL for the outbox, host/port/path/Host to call. */
static const char *target_url(apr_pool_t *p, const rs_hook_t *h,
                              const char *host_hdr, const char **host)
{
    if (!h->local) {
        const char *name = strchr(h->host, ':')
                           ? apr_pstrcat(p, "[", h->host, "]", NULL) : h->host;
        *host = h->port == (h->tls ? 443 : 80) ? name
                : apr_psprintf(p, "%s:%u", name, (unsigned)h->port);
        return h->target;
    }
    *host = host_hdr ? host_hdr : main_server->server_hostname;
    return apr_psprintf(p, "http://%s:%u%s", strchr(self_addr, ':')
                        ? apr_pstrcat(p, "[", self_addr, "]", NULL)
                        : self_addr, (unsigned)self_port, h->path);
}

/* ------------------------------------------------------------------------ */
/* blocking hooks                                                            */

static apr_status_t call(apr_pool_t *p, const hook_ctx *c, const rs_hook_t *h,
                         const char *event_id, const char *json,
                         rs_hook_resp_t *resp)
{
    const char *hosthdr, *url = target_url(p, h, c->host, &hosthdr), *host,
               *path, *extra;
    apr_port_t port;
    int tls;
    rs_hook_tls_t t = { h->ca_file };
    apr_status_t rv = rs_hook_parse_url(p, url, &tls, &host, &port, &path);

    if (APR_SUCCESS != rv) {
        return rv;
    }
    extra = apr_psprintf(p, "X-Resumable-Event: %s\r\n"
                         "X-Resumable-Event-Id: %s\r\n",
                         rs_hook_event_name(h->event), event_id);
    return rs_hook_post(p, host, port, tls ? &t : NULL, hosthdr, path, extra,
                        json, h->timeout, resp);
}

static rs_error_t *apply(apr_pool_t *p, const rs_hook_t *h, rs_upload_t *u,
                         const rs_hook_resp_t *resp)
{
    rs_hook_change_t chg;
    const char *msg = rs_hook_answer(p, resp->body, resp->len, &chg);

    if (msg) {
        rs_log_perror(RS_LOG_MARK, RS_LOG_ERR, 0, p, RS_LOGNO(09703)
                      "upload %s: %s hook %s: %s", u->id,
                      rs_hook_event_name(h->event), h->target, msg);
        return h->failopen ? NULL : rs_error_make(p, RS_ERR_HOOK_FAILED, 0,
                                                  NULL);
    }
    if (RS_HOOK_PRE_CREATE != h->event) {
        if (chg.filename) {
            u->filename = chg.filename;     /* pre-finish: the published
                                               name, nothing else */
        }
        return NULL;
    }
    if (chg.size_limit >= 0 && u->length > chg.size_limit) {
        return rs_error_make(p, RS_ERR_MAX_SIZE, 0, "upload length %"
                             APR_OFF_T_FMT " exceeds the application's "
                             "limit of %" APR_OFF_T_FMT, u->length,
                             chg.size_limit);
    }
    if (chg.size_limit >= 0 && u->length < 0) {
        return rs_error_make(p, RS_ERR_MAX_SIZE, 0, "the application limits "
                             "this upload to %" APR_OFF_T_FMT " bytes: "
                             "declare its length", chg.size_limit);
    }
    if (chg.metadata) {
        u->metadata = *chg.metadata ? chg.metadata : NULL;    /* {}: none */
    }
    if (chg.filename) {
        u->filename = chg.filename;
    }
    return NULL;
}

/* pre-finish: the file that holds all of u's bytes (append mode, chunks
 * assembled to verify an MD5), else the parts that make them up (a
 * concatenation, merged chunks), for the application to check. */
static const char *data_of(apr_pool_t *p, int event, const rs_upload_t *u,
                           const apr_array_header_t **parts)
{
    const char *path = rs_data_path(p, u->dir, u->id);
    apr_array_header_t *pa;
    apr_finfo_t fi;

    *parts = NULL;
    if (RS_HOOK_PRE_FINISH != event) {
        return NULL;
    }
    if (APR_SUCCESS == apr_stat(&fi, path, APR_FINFO_SIZE, p)
        && fi.size == u->length) {
        return path;
    }
    path = rs_data_new_path(p, u->dir, u->id);  /* a deferred creation */
    if (APR_SUCCESS == apr_stat(&fi, path, APR_FINFO_SIZE, p)
        && fi.size == u->length) {
        return path;
    }
    if ((u->flags & (RS_UF_CHUNKED | RS_UF_FINAL)) && rs_httpd_engine()
        && !rs_engine_parts(rs_httpd_engine(), u, p, &pa)) {
        *parts = pa;
    }
    return NULL;
}

static rs_error_t *gate(void *baton, int event, rs_upload_t *u,
                        apr_pool_t *p)
{
    hook_ctx *c = find_ctx(p);
    const rs_hook_t *h = c ? c->hooks->on[event] : NULL;
    rs_hook_resp_t resp;
    rs_error_t *err;
    const char *id, *path;
    const apr_array_header_t *parts;
    apr_status_t rv;

    if (!h) {
        return NULL;
    }
    if (APR_SUCCESS != (rv = rs_util_id_new(p, &id))) {
        return rs_error_make(p, RS_ERR_STORAGE, rv, "no random id");
    }
    path = data_of(p, event, u, &parts);
    rv = call(p, c, h, id, rs_hook_payload(p, event, id, u, &c->req, path,
                                           parts), &resp);
    if (APR_SUCCESS != rv) {
        rs_log_perror(RS_LOG_MARK, h->failopen ? RS_LOG_WARNING : RS_LOG_ERR,
                      rv, p, RS_LOGNO(09701) "upload %s: %s hook %s %s%s%s",
                      u->id, rs_hook_event_name(event), h->target,
                      APR_STATUS_IS_TIMEUP(rv) ? "timed out" : "unreachable",
                      resp.error ? apr_pstrcat(p, " (", resp.error, ")",
                                               NULL) : "",
                      h->failopen ? " (failopen: going on)" : "");
        return h->failopen ? NULL : rs_error_make(p, RS_ERR_HOOK_UNAVAILABLE,
                                                  rv, NULL);
    }
    if (resp.status >= 200 && resp.status < 300) {
        return apply(p, h, u, &resp);
    }
    if (resp.status < 400) {
        rs_log_perror(RS_LOG_MARK, RS_LOG_ERR, 0, p, RS_LOGNO(09704)
                      "upload %s: %s hook %s answered %d", u->id,
                      rs_hook_event_name(event), h->target, resp.status);
        return h->failopen ? NULL : rs_error_make(p, RS_ERR_HOOK_FAILED, 0,
                                                  NULL);
    }
    err = rs_error_make(p, RS_ERR_HOOK_REJECTED, 0, "%s",
                        rs_hook_text(p, resp.body, resp.len));
    err->status = resp.status;
    rs_log_perror(RS_LOG_MARK, RS_LOG_INFO, 0, p, RS_LOGNO(09702)
                  "upload %s: %s hook %s refused it (%d)", u->id,
                  rs_hook_event_name(event), h->target, resp.status);
    return err;
}

/* ------------------------------------------------------------------------ */
/* notifications                                                             */

/* post-receive: at most one a second per upload (per child; slots by a
 * hash of the id, a collision at worst lets one more through). */
#define RECEIVE_SLOTS 1024
#define RECEIVE_EVERY apr_time_from_sec(1)
static struct { char id[RS_ID_LEN + 1]; apr_time_t at; } receive[RECEIVE_SLOTS];
static apr_thread_mutex_t *receive_lock;

static int receive_due(const char *id)
{
    unsigned int h = 0;
    const char *c;
    apr_time_t now = apr_time_now();
    int due;

    for (c = id; *c; c++) {
        h = h * 31 + (unsigned char)*c;
    }
    h %= RECEIVE_SLOTS;
    if (receive_lock) {
        apr_thread_mutex_lock(receive_lock);
    }
    due = strcmp(receive[h].id, id) || now - receive[h].at >= RECEIVE_EVERY;
    if (due) {
        apr_cpystrn(receive[h].id, id, sizeof(receive[h].id));
        receive[h].at = now;
    }
    if (receive_lock) {
        apr_thread_mutex_unlock(receive_lock);
    }
    return due;
}

static apr_status_t record(void *baton, rs_txn_t *txn, int event,
                           const rs_upload_t *u, apr_pool_t *p)
{
    hook_ctx *c = find_ctx(p);
    const rs_hooks_t *hooks = c ? c->hooks : NULL;

    if (!c && RS_HOOK_POST_EXPIRE == event) {   /* the sweep: no request */
        hooks = rs_conf_hooks_of_dir(main_server, u->dir, p);
    }
    const rs_hook_t *h;
    rs_outbox_ev_t ev = { 0 };
    apr_status_t rv;

    if (!(h = hooks ? hooks->on[event] : NULL)
        || (RS_HOOK_POST_RECEIVE == event && !receive_due(u->id))) {
        return APR_SUCCESS;
    }
    if (APR_SUCCESS != (rv = rs_util_id_new(p, &ev.id))) {
        return rv;
    }
    ev.event = rs_hook_event_name(event);
    ev.url = target_url(p, h, c ? c->host : NULL, &ev.host);
    ev.timeout = h->timeout;
    ev.ca_file = h->ca_file;
    ev.payload = rs_hook_payload(p, event, ev.id, u, c ? &c->req : NULL,
                                 NULL, NULL);
    return rs_outbox_add(txn, &ev, p);
}

/* Send ev once; 1 when it is done (delivered), else it is stored again
 * with its next attempt. */
static int deliver_one(rs_store_t *s, rs_outbox_ev_t *ev, apr_pool_t *p)
{
    int status;
    const char *err;
    apr_status_t rv = rs_outbox_send(ev, p, &status, &err);

    if (APR_SUCCESS == rv) {
        rs_outbox_drop(s, ev->key, p);
        rs_stats_add(RS_STAT_HOOK_DELIVERED, 1);
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, main_server, RS_LOGNO(09710)
                     "hook event %s (%s) delivered to %s after %d retries",
                     ev->id, ev->event, ev->url, ev->attempts);
        return 1;
    }
    ev->last_error = status ? apr_psprintf(p, "answered %d", status)
                     : err ? apr_pstrdup(p, err) : apr_psprintf(p, "%pm", &rv);
    ev->next = apr_time_now() + rs_outbox_backoff(ev->attempts);
    ev->attempts++;
    rs_stats_add(RS_STAT_HOOK_FAILED, 1);
    ap_log_error(APLOG_MARK, APLOG_INFO, status ? 0 : rv, main_server,
                 RS_LOGNO(09711) "hook event %s (%s) to %s: %s; attempt %d, "
                 "next in %" APR_TIME_T_FMT " s", ev->id, ev->event, ev->url,
                 ev->last_error, ev->attempts,
                 apr_time_sec(ev->next - apr_time_now()));
    rs_outbox_update(s, ev, p);
    return 0;
}

/* The pending count of mod_status (RS_STAT_HOOK_PENDING) without a scan
 * of its own: set by each round that scans (what it found less what it
 * delivered), 0 when the marker says the outbox is empty, and by one
 * count-only scan when this deliverer starts with events not yet due (an
 * httpd start: the counters begin at 0). */
static int counted;

/* One round: only when the outbox marker says a scan can find something
 * due (no scan of the store otherwise), oldest first. */
static apr_status_t deliver_round(rs_engine_t *e, int state, void *data,
                                  apr_pool_t *ptemp);

/* The engine is held for the round: a cluster child's exit waits for it
 * before mod_dbd's connections go (rs_httpd_engine_hold). */
static apr_status_t deliver(int state, void *data, apr_pool_t *ptemp)
{
    rs_engine_t *e = rs_httpd_engine_hold();
    apr_status_t rv;

    if (!e) {
        return APR_SUCCESS;
    }
    rv = deliver_round(e, state, data, ptemp);
    rs_httpd_engine_release();
    return rv;
}

static apr_status_t deliver_round(rs_engine_t *e, int state, void *data,
                                  apr_pool_t *ptemp)
{
    apr_array_header_t *evs;
    apr_time_t now = apr_time_now(), next = 0;
    apr_uint64_t gen;
    apr_pool_t *iter;
    apr_status_t rv;
    int i, left = 0, total = 0, sent = 0;

    if (AP_WATCHDOG_STATE_RUNNING != state || !e) {
        return APR_SUCCESS;
    }
    rv = rs_outbox_due(e->store, ptemp, now, &gen);
    if (APR_STATUS_IS_ENOENT(rv)) {
        rs_stats_set(RS_STAT_HOOK_PENDING, 0);
        counted = 1;
    }
    else if (APR_SUCCESS != rv && !counted
             && APR_SUCCESS == rs_outbox_list(e->store, ptemp, 0, &evs,
                                              &total)) {
        rs_stats_set(RS_STAT_HOOK_PENDING, (apr_uint64_t)total);
        counted = 1;
    }
    if (APR_SUCCESS != rv
        || APR_SUCCESS != rs_outbox_list(e->store, ptemp, DELIVER_BATCH,
                                         &evs, &total)) {
        return APR_SUCCESS;
    }
    apr_pool_create(&iter, ptemp);
    for (i = 0; i < evs->nelts; i++) {
        rs_outbox_ev_t *ev = APR_ARRAY_IDX(evs, i, rs_outbox_ev_t *);
        if (ev->next > now || !deliver_one(e->store, ev, iter)) {
            next = (!left || ev->next < next) ? ev->next : next;
            left++;
        }
        else {
            sent++;
        }
        apr_pool_clear(iter);
    }
    apr_pool_destroy(iter);
    rs_stats_set(RS_STAT_HOOK_PENDING, (apr_uint64_t)(total - sent));
    counted = 1;
    if (evs->nelts == DELIVER_BATCH) {
        left++, next = 0;               /* more than a batch: again soon */
    }
    rs_outbox_settle(e->store, ptemp, gen, left, next);
    return APR_SUCCESS;
}

/* ------------------------------------------------------------------------ */
/* setup                                                                     */

static const rs_engine_hooks_t engine_hooks = { gate, record, NULL };

/* A plain-HTTP listener of this server, loopback for a wildcard one. */
static void find_self(apr_pool_t *p, server_rec *s)
{
    ap_listen_rec *lr, *pick = NULL;
    char *ip = NULL;

    for (lr = ap_listeners; lr; lr = lr->next) {
        if (!pick || (lr->protocol && !strcasecmp(lr->protocol, "http")
                      && !(pick->protocol
                           && !strcasecmp(pick->protocol, "http")))) {
            pick = lr;
        }
    }
    self_addr = "127.0.0.1";
    self_port = 80;
    if (pick && pick->bind_addr) {
        self_port = pick->bind_addr->port;
        apr_sockaddr_ip_get(&ip, pick->bind_addr);
        if (ip && strcmp(ip, "0.0.0.0") && strcmp(ip, "::")) {
            self_addr = apr_pstrdup(p, ip);
        }
        else if (ip && !strcmp(ip, "::")) {
            self_addr = "::1";
        }
    }
    if (pick && pick->protocol && !strcasecmp(pick->protocol, "https")) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, RS_LOGNO(09713)
                     "local ResumableHook targets are sent over plain HTTP "
                     "to %s:%u, which speaks https: add a plain listener "
                     "(e.g. Listen 127.0.0.1:8080) or use http:// URLs",
                     self_addr, (unsigned)self_port);
    }
}

int rs_httpd_hook_post_config(apr_pool_t *pconf, server_rec *s)
{
    APR_OPTIONAL_FN_TYPE(ap_watchdog_get_instance) *get;
    APR_OPTIONAL_FN_TYPE(ap_watchdog_register_callback) *reg;
    rs_engine_t *e = rs_httpd_engine();
    ap_watchdog_t *wd;
    apr_status_t rv;

    main_server = s;
    if (e) {
        e->hooks = rs_conf_any_hooks() ? &engine_hooks : NULL;
    }
    if (!rs_conf_any_hooks()) {
        return OK;
    }
    find_self(pconf, s);
    apr_thread_mutex_create(&receive_lock, APR_THREAD_MUTEX_DEFAULT, pconf);
    get = APR_RETRIEVE_OPTIONAL_FN(ap_watchdog_get_instance);
    reg = APR_RETRIEVE_OPTIONAL_FN(ap_watchdog_register_callback);
    rv = get && reg ? get(&wd, RS_HOOK_WATCHDOG, 0, 1, pconf) : APR_ENOTIMPL;
    if (APR_SUCCESS == rv) {
        rv = reg(wd, DELIVER_EVERY, s, deliver);
    }
    if (APR_SUCCESS != rv) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, RS_LOGNO(09712)
                     "cannot register the hook deliverer with mod_watchdog");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return OK;
}
