/* Licensed under the Apache License, Version 2.0. */
/*
 * The outbox of notifications (post-* hooks). A record per pending event
 * in the state store, key "o:<time, 16 hex digits><event id>" so keys
 * sort oldest first, value a JSON object:
 *   {"id","event","url","host","timeout","attempts","next","error",
 *    "payload"[,"ca"]}   ("ca": an https hook's ca=FILE)
 * The engine adds a record inside the same write transaction that stores
 * the change it reports (rs_outbox_add), so the event exists exactly when
 * the change does. A deliverer (the glue's watchdog) sends due records,
 * then drops them after a 2xx or stores them again with attempts+1 and a
 * later `next` (exponential backoff). A deliverer killed between the send
 * and the drop sends the event again: delivery is at least once, and the
 * event id lets the receiver deduplicate.
 *
 * Finding events costs a scan of every key (the store has no ordered
 * index), about a second per million records: the deliverer must not do
 * that every second. A marker record, MARK = "<generation> <not before>",
 * says whether a scan can find anything due: rs_outbox_add (in the same
 * transaction) and rs_outbox_wake bump the generation and make it due now;
 * the deliverer scans only when it is due (rs_outbox_due), then settles it
 * (rs_outbox_settle): removed when nothing is left, else due at the
 * earliest retry - unless the generation moved meanwhile (a new event).
 */

#include <stdlib.h>
#include <apr_strings.h>
#include <jansson.h>

#include "rs_hook.h"
#include "rs_store.h"
#include "rs_util.h"

#define PREFIX "o:"
#define MARK "O:outbox"

static apr_status_t mark_get(rs_txn_t *txn, apr_pool_t *p, apr_uint64_t *gen,
                             apr_time_t *not_before)
{
    char *val, *end;
    apr_size_t len;
    apr_status_t rv = rs_store_get(txn, MARK, p, &val, &len);

    *gen = 0;
    *not_before = 0;
    if (APR_SUCCESS == rv) {
        *gen = (apr_uint64_t)apr_strtoi64(val, &end, 10);
        *not_before = (apr_time_t)apr_strtoi64(end, NULL, 10);
    }
    return rv;
}

static apr_status_t mark_put(rs_txn_t *txn, apr_pool_t *p, apr_uint64_t gen,
                             apr_time_t not_before)
{
    const char *v = apr_psprintf(p, "%" APR_UINT64_T_FMT " %" APR_TIME_T_FMT,
                                 gen, not_before);

    return rs_store_put(txn, MARK, v, strlen(v));
}

/* A new or replayed event: due now, new generation. */
static apr_status_t mark_bump(rs_txn_t *txn, apr_pool_t *p)
{
    apr_uint64_t gen;
    apr_time_t nb;
    apr_status_t rv = mark_get(txn, p, &gen, &nb);

    if (APR_SUCCESS != rv && !APR_STATUS_IS_ENOENT(rv)) {
        return rv;
    }
    return mark_put(txn, p, gen + 1, 0);
}

apr_status_t rs_outbox_wake(rs_store_t *s, apr_pool_t *p)
{
    rs_txn_t *txn;
    apr_status_t rv = rs_store_begin(s, 1, p, &txn);

    if (APR_SUCCESS == rv) {
        rv = mark_bump(txn, p);
        rs_store_end(txn);
    }
    return rv;
}

apr_status_t rs_outbox_due(rs_store_t *s, apr_pool_t *p, apr_time_t now,
                           apr_uint64_t *gen)
{
    rs_txn_t *txn;
    apr_time_t nb;
    apr_status_t rv = rs_store_begin(s, 0, p, &txn);

    if (APR_SUCCESS != rv) {
        return rv;
    }
    rv = mark_get(txn, p, gen, &nb);
    rs_store_end(txn);
    return APR_SUCCESS == rv && nb > now ? APR_EAGAIN : rv;
}

apr_status_t rs_outbox_settle(rs_store_t *s, apr_pool_t *p, apr_uint64_t gen,
                              int left, apr_time_t next)
{
    rs_txn_t *txn;
    apr_uint64_t cur;
    apr_time_t nb;
    apr_status_t rv = rs_store_begin(s, 1, p, &txn);

    if (APR_SUCCESS != rv) {
        return rv;
    }
    rv = mark_get(txn, p, &cur, &nb);
    if (APR_SUCCESS == rv && cur == gen) {      /* nothing new meanwhile */
        rv = left ? mark_put(txn, p, gen, next) : rs_store_delete(txn, MARK);
    }
    rs_store_end(txn);
    return APR_STATUS_IS_ENOENT(rv) ? APR_SUCCESS : rv;
}

/* The stored form of ev (free()), or NULL. "ca" only when there is one:
 * records of older versions read as before. */
static char *encode(const rs_outbox_ev_t *ev)
{
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:I,s:i,s:I,s:s,s:s}",
                          "id", ev->id, "event", ev->event, "url", ev->url,
                          "host", ev->host, "timeout", (json_int_t)ev->timeout,
                          "attempts", ev->attempts,
                          "next", (json_int_t)ev->next,
                          "error", ev->last_error ? ev->last_error : "",
                          "payload", ev->payload);
    char *s = NULL;

    if (o && (!ev->ca_file
              || !json_object_set_new(o, "ca", json_string(ev->ca_file)))) {
        s = json_dumps(o, JSON_COMPACT);
    }
    json_decref(o);
    return s;
}

apr_status_t rs_outbox_add(rs_txn_t *txn, rs_outbox_ev_t *ev, apr_pool_t *p)
{
    char *s;
    apr_status_t rv;

    if (!ev->id && APR_SUCCESS != (rv = rs_util_id_new(p, &ev->id))) {
        return rv;
    }
    ev->key = apr_psprintf(p, PREFIX "%016" APR_UINT64_T_HEX_FMT "%s",
                           (apr_uint64_t)apr_time_now(), ev->id);
    if (!(s = encode(ev))) {
        return APR_EINVAL;
    }
    rv = rs_store_put(txn, ev->key, s, strlen(s));
    free(s);
    return APR_SUCCESS == rv ? mark_bump(txn, p) : rv;
}

apr_status_t rs_outbox_decode(apr_pool_t *p, const char *key,
                              const char *val, apr_size_t len,
                              rs_outbox_ev_t **pev)
{
    rs_outbox_ev_t *ev = apr_pcalloc(p, sizeof(*ev));
    json_t *o = json_loadb(val, len, 0, NULL);
    const char *id, *event, *url, *host, *error = NULL, *payload, *ca = NULL;
    json_int_t timeout, next;
    int attempts;

    if (!o || json_unpack(o, "{s:s,s:s,s:s,s:s,s:I,s:i,s:I,s:s,s:s,s?s}",
                          "id", &id, "event", &event, "url", &url,
                          "host", &host, "timeout", &timeout,
                          "attempts", &attempts, "next", &next,
                          "error", &error, "payload", &payload, "ca", &ca)) {
        json_decref(o);
        return APR_EINVAL;
    }
    ev->key = apr_pstrdup(p, key);
    ev->id = apr_pstrdup(p, id);
    ev->event = apr_pstrdup(p, event);
    ev->url = apr_pstrdup(p, url);
    ev->host = apr_pstrdup(p, host);
    ev->timeout = timeout;
    ev->attempts = attempts;
    ev->next = next;
    ev->last_error = error && *error ? apr_pstrdup(p, error) : NULL;
    ev->payload = apr_pstrdup(p, payload);
    ev->ca_file = ca ? apr_pstrdup(p, ca) : NULL;
    json_decref(o);
    *pev = ev;
    return APR_SUCCESS;
}

typedef struct keys_t {
    apr_pool_t *p;
    apr_array_header_t *keys;
} keys_t;

static int collect(void *baton, const char *key)
{
    keys_t *k = baton;

    APR_ARRAY_PUSH(k->keys, const char *) = apr_pstrdup(k->p, key);
    return 0;
}

static int cmp_key(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

apr_status_t rs_outbox_list(rs_store_t *s, apr_pool_t *p, int max,
                            apr_array_header_t **evs, int *total)
{
    keys_t k = { p, apr_array_make(p, 16, sizeof(const char *)) };
    rs_txn_t *txn;
    rs_outbox_ev_t *ev;
    char *val;
    apr_size_t len;
    apr_status_t rv;
    int i;

    *evs = apr_array_make(p, 16, sizeof(rs_outbox_ev_t *));
    if (total) {
        *total = 0;
    }
    if (APR_SUCCESS != (rv = rs_store_begin(s, 0, p, &txn))) {
        return APR_STATUS_IS_ENOENT(rv) ? APR_SUCCESS : rv;
    }
    rv = rs_store_keys(txn, PREFIX, collect, &k);
    qsort(k.keys->elts, k.keys->nelts, sizeof(const char *), cmp_key);
    if (total) {
        *total = k.keys->nelts;
    }
    for (i = 0; APR_SUCCESS == rv && i < k.keys->nelts
         && (*evs)->nelts < max; i++) {
        const char *key = APR_ARRAY_IDX(k.keys, i, const char *);
        if (APR_SUCCESS == rs_store_get(txn, key, p, &val, &len)
            && APR_SUCCESS == rs_outbox_decode(p, key, val, len, &ev)) {
            APR_ARRAY_PUSH(*evs, rs_outbox_ev_t *) = ev;
        }
    }
    rs_store_end(txn);
    return rv;
}

apr_status_t rs_outbox_update(rs_store_t *s, const rs_outbox_ev_t *ev,
                              apr_pool_t *p)
{
    rs_txn_t *txn;
    char *val, *js = encode(ev);
    apr_size_t len;
    apr_status_t rv = js ? rs_store_begin(s, 1, p, &txn) : APR_ENOMEM;

    if (APR_SUCCESS == rv) {
        /* only while it is still pending (not dropped meanwhile) */
        rv = rs_store_get(txn, ev->key, p, &val, &len);
        if (APR_SUCCESS == rv) {
            rv = rs_store_put(txn, ev->key, js, strlen(js));
        }
        rs_store_end(txn);
    }
    free(js);
    return APR_STATUS_IS_ENOENT(rv) ? APR_SUCCESS : rv;
}

apr_status_t rs_outbox_drop(rs_store_t *s, const char *key, apr_pool_t *p)
{
    return strncmp(key, PREFIX, 2) ? APR_EINVAL
           : rs_store_delete1(s, key, p);
}

apr_interval_time_t rs_outbox_backoff(int attempts)
{
    apr_interval_time_t t = apr_time_from_sec(1);

    while (attempts-- > 0 && t < apr_time_from_sec(600)) {
        t *= 2;
    }
    return t < apr_time_from_sec(600) ? t : apr_time_from_sec(600);
}

apr_status_t rs_outbox_send(const rs_outbox_ev_t *ev, apr_pool_t *p,
                            int *status, const char **error)
{
    const char *host, *path, *extra;
    apr_port_t port;
    int tls;
    rs_hook_tls_t t = { ev->ca_file };
    rs_hook_resp_t resp;
    apr_status_t rv = rs_hook_parse_url(p, ev->url, &tls, &host, &port,
                                        &path);

    *status = 0;
    *error = NULL;
    if (APR_SUCCESS != rv) {
        return rv;
    }
    extra = apr_psprintf(p, "X-Resumable-Event: %s\r\n"
                         "X-Resumable-Event-Id: %s\r\n", ev->event, ev->id);
    rv = rs_hook_post(p, host, port, tls ? &t : NULL, ev->host, path, extra,
                      ev->payload, ev->timeout, &resp);
    *status = resp.status;
    *error = resp.error;
    if (APR_SUCCESS == rv && (resp.status < 200 || resp.status > 299)) {
        rv = APR_EGENERAL;
    }
    return rv;
}
