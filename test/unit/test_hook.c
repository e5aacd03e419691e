/* Licensed under the Apache License, Version 2.0. */
/*
 * Unit tests of hooks (rs_hook.h): the directive's arguments, URLs, the
 * payload (parsed back), answers of blocking hooks (strict), rejection
 * texts, the outbox in a real store, the HTTP client against a loopback
 * server thread (Content-Length, chunked, till close, timeout, refused),
 * and the engine's gate/record callbacks (pre-create refusal, pre-finish
 * refusal marks the upload rejected, notifications in the transaction).
 */

#include <string.h>
#include <apr_strings.h>
#include <apr_thread_proc.h>
#include <apr_network_io.h>
#include <jansson.h>

#include "rs_test.h"
#include "rs_hook.h"
#include "rs_store.h"
#include "rs_engine.h"
#include "rs_data.h"
#include "rs_util.h"
#include "rs_meta.h"

static int exists(apr_pool_t *p, const char *path)
{
    apr_finfo_t fi;

    return APR_SUCCESS == apr_stat(&fi, path, APR_FINFO_TYPE, p);
}

static void test_parse(apr_pool_t *p)
{
    rs_hook_t *h;
    int ev;
    const char *opts[] = { "timeout=3", "failopen=on" };
    const char *bad1[] = { "timeout=0" };
    const char *bad2[] = { "timeout=301" };
    const char *bad3[] = { "retries=2" };
    const char *bad4[] = { "failopen=yes" };
    const char *bad5[] = { "ca=/nonexistent/ca.pem" };
    const char *bad6[] = { "ca=relative.pem" };
    const char *bad7[] = { "ca=/dev/null" };     /* not a regular file */
    const char *bad8[] = { "ca=/etc/hostname" }; /* http: no TLS */

    RS_CHECK(!rs_hook_parse(p, "pre-create", "/hooks/a", 2, opts, &ev, &h));
    RS_CHECK(h && h->local && RS_HOOK_PRE_CREATE == ev && h->failopen
             && h->timeout == apr_time_from_sec(3));
    RS_CHECK_STR(h->path, "/hooks/a");
    RS_CHECK(!rs_hook_parse(p, "POST-FINISH", "http://127.0.0.1:8080/x?y=1",
                            0, NULL, &ev, &h));
    RS_CHECK(h && !h->local && h->port == 8080 && !h->failopen
             && h->timeout == RS_HOOK_DEF_TIMEOUT);
    RS_CHECK_STR(h->host, "127.0.0.1");
    RS_CHECK_STR(h->path, "/x?y=1");
    RS_CHECK(!rs_hook_parse(p, "post-receive", "/r", 0, NULL, &ev, &h));
    RS_CHECK(h && RS_HOOK_POST_RECEIVE == ev);
    RS_CHECK(!rs_hook_parse(p, "post-expire", "none", 0, NULL, &ev, &h));
    RS_CHECK(!h && RS_HOOK_POST_EXPIRE == ev);
    RS_CHECK(rs_hook_parse(p, "post-expire", "none", 1, opts, &ev, &h));
    RS_CHECK(rs_hook_parse(p, "pre-upload", "/x", 0, NULL, &ev, &h));
    RS_CHECK(!rs_hook_parse(p, "pre-create", "https://h/x", 0, NULL, &ev, &h));
    RS_CHECK(h && h->tls && h->port == 443 && !h->ca_file);
    RS_CHECK(rs_hook_parse(p, "pre-create", "https://h/x", 1, bad5, &ev, &h));
    RS_CHECK(rs_hook_parse(p, "pre-create", "https://h/x", 1, bad6, &ev, &h));
    RS_CHECK(rs_hook_parse(p, "pre-create", "https://h/x", 1, bad7, &ev, &h));
    RS_CHECK(rs_hook_parse(p, "pre-create", "http://h/x", 1, bad8, &ev, &h));
    RS_CHECK(rs_hook_parse(p, "pre-create", "/x", 1, bad8, &ev, &h));
    RS_CHECK(rs_hook_parse(p, "pre-create", "//h/x", 0, NULL, &ev, &h));
    RS_CHECK(rs_hook_parse(p, "pre-create", "x", 0, NULL, &ev, &h));
    RS_CHECK(rs_hook_parse(p, "pre-create", "/a b", 0, NULL, &ev, &h));
    RS_CHECK(rs_hook_parse(p, "pre-create", "/x", 1, bad1, &ev, &h));
    RS_CHECK(rs_hook_parse(p, "pre-create", "/x", 1, bad2, &ev, &h));
    RS_CHECK(rs_hook_parse(p, "pre-create", "/x", 1, bad3, &ev, &h));
    RS_CHECK(rs_hook_parse(p, "pre-create", "/x", 1, bad4, &ev, &h));
    RS_CHECK(rs_hook_blocking(RS_HOOK_PRE_FINISH)
             && !rs_hook_blocking(RS_HOOK_POST_FINISH));
    RS_CHECK_STR(rs_hook_event_name(RS_HOOK_POST_TERMINATE), "post-terminate");
}

static void test_url(apr_pool_t *p)
{
    const char *host, *path;
    apr_port_t port;
    int tls;

    RS_CHECK(APR_SUCCESS == rs_hook_parse_url(p, "http://h", &tls, &host, &port,
                                              &path));
    RS_CHECK(port == 80 && !tls);
    RS_CHECK_STR(path, "/");
    RS_CHECK(APR_SUCCESS == rs_hook_parse_url(p, "https://h/x", &tls, &host,
                                              &port, &path));
    RS_CHECK(port == 443 && tls);
    RS_CHECK_STR(host, "h");
    RS_CHECK(APR_SUCCESS == rs_hook_parse_url(p, "HTTPS://[::1]:8443", &tls,
                                              &host, &port, &path));
    RS_CHECK(port == 8443 && tls);
    RS_CHECK(APR_EINVAL == rs_hook_parse_url(p, "httpss://h/", &tls, &host,
                                             &port, &path));
    RS_CHECK(APR_EINVAL == rs_hook_parse_url(p, "https:/h/", &tls, &host,
                                             &port, &path));
    RS_CHECK(APR_SUCCESS == rs_hook_parse_url(p, "http://h:1/?q", &tls, &host,
                                              &port, &path));
    RS_CHECK_STR(path, "/?q");
    RS_CHECK(APR_SUCCESS == rs_hook_parse_url(p, "http://[::1]:81/x", &tls, &host,
                                              &port, &path));
    RS_CHECK_STR(host, "::1");
    RS_CHECK(port == 81);
    RS_CHECK(APR_SUCCESS == rs_hook_parse_url(p, "http://[::1]/x", &tls, &host,
                                              &port, &path) && port == 80);
    RS_CHECK(APR_EINVAL == rs_hook_parse_url(p, "http://[::1/x", &tls, &host, &port,
                                             &path));
    RS_CHECK(APR_EINVAL == rs_hook_parse_url(p, "http://[]/x", &tls, &host, &port,
                                             &path));
    RS_CHECK(APR_EINVAL == rs_hook_parse_url(p, "http://[::1]x/", &tls, &host,
                                             &port, &path));
    RS_CHECK(APR_EINVAL == rs_hook_parse_url(p, "http://u@h/", &tls, &host, &port,
                                             &path));
    RS_CHECK(APR_EINVAL == rs_hook_parse_url(p, "http://h:0/", &tls, &host, &port,
                                             &path));
    RS_CHECK(APR_EINVAL == rs_hook_parse_url(p, "http://h:65536/", &tls, &host,
                                             &port, &path));
    RS_CHECK(APR_EINVAL == rs_hook_parse_url(p, "http://:80/", &tls, &host, &port,
                                             &path));
    RS_CHECK(APR_EINVAL == rs_hook_parse_url(p, "http://h:8x/", &tls, &host, &port,
                                             &path));
    RS_CHECK(APR_EINVAL == rs_hook_parse_url(p, "http://h/\r\nX: y", &tls, &host,
                                             &port, &path));
}

static void test_payload(apr_pool_t *p)
{
    rs_upload_t *u = rs_upload_make(p, "AAAAAAAAAAAAAAAAAAAAAA");
    rs_hook_req_t req = { "POST", "/files/?a=1", "127.0.0.1", "alice", NULL };
    const char *js;
    json_t *o, *up;
    apr_array_header_t *parts;
    rs_part_t pt = { "/c0", 9 };

    u->proto = RS_PROTO_TUS;
    u->length = 10;
    u->offset = 4;
    u->owner = "alice";
    u->metadata = "filename YS50eHQ=,bin /w==,empty";
    u->filename = "a.txt";
    u->flags = RS_UF_FINAL;
    u->parts = apr_array_make(p, 1, sizeof(const char *));
    APR_ARRAY_PUSH(u->parts, const char *) = "BBBBBBBBBBBBBBBBBBBBBB";
    u->path = "/x/a.txt";                   /* not published: not shown */
    req.headers = apr_table_make(p, 4);
    apr_table_set(req.headers, "User-Agent", "t");
    apr_table_set(req.headers, "Authorization", "Basic secret");
    apr_table_set(req.headers, "Cookie", "s=1");
    js = rs_hook_payload(p, RS_HOOK_PRE_CREATE, "EV", u, &req, NULL, NULL);
    o = json_loads(js, 0, NULL);
    RS_CHECK(o != NULL);
    up = json_object_get(o, "upload");
    RS_CHECK_STR(json_string_value(json_object_get(o, "event")), "pre-create");
    RS_CHECK_STR(json_string_value(json_object_get(o, "id")), "EV");
    RS_CHECK_STR(json_string_value(json_object_get(up, "protocol")), "tus");
    RS_CHECK(json_integer_value(json_object_get(up, "size")) == 10);
    RS_CHECK(json_integer_value(json_object_get(up, "offset")) == 4);
    RS_CHECK_STR(json_string_value(json_object_get(
        json_object_get(up, "metadata"), "filename")), "a.txt");
    RS_CHECK(json_is_null(json_object_get(json_object_get(up, "metadata"),
                                          "bin")));      /* not UTF-8 */
    RS_CHECK_STR(json_string_value(json_object_get(
        json_object_get(up, "metadata"), "empty")), "");
    RS_CHECK(json_is_true(json_object_get(up, "final")));
    RS_CHECK(json_array_size(json_object_get(up, "parts")) == 1);
    RS_CHECK(json_is_null(json_object_get(up, "path")));
    RS_CHECK(!json_object_get(up, "data_path"));
    RS_CHECK_STR(json_string_value(json_object_get(json_object_get(
        o, "request"), "user")), "alice");
    RS_CHECK_STR(json_string_value(json_object_get(json_object_get(
        json_object_get(o, "request"), "headers"), "User-Agent")), "t");
    RS_CHECK(!strstr(js, "secret") && !strstr(js, "s=1"));
    json_decref(o);

    u->flags = RS_UF_PUBLISHED;
    u->length = -1;
    parts = apr_array_make(p, 2, sizeof(rs_part_t));
    APR_ARRAY_PUSH(parts, rs_part_t) = pt;
    js = rs_hook_payload(p, RS_HOOK_POST_EXPIRE, "E2", u, NULL, "/d", parts);
    o = json_loads(js, 0, NULL);
    up = json_object_get(o, "upload");
    RS_CHECK(json_is_null(json_object_get(o, "request")));
    RS_CHECK(json_is_null(json_object_get(up, "size")));
    RS_CHECK_STR(json_string_value(json_object_get(up, "path")), "/x/a.txt");
    RS_CHECK_STR(json_string_value(json_object_get(up, "data_path")), "/d");
    RS_CHECK(json_integer_value(json_object_get(json_array_get(
        json_object_get(up, "data_parts"), 0), "length")) == 9);
    json_decref(o);
}

static const char *answer(apr_pool_t *p, const char *body,
                          rs_hook_change_t *c)
{
    return rs_hook_answer(p, body, strlen(body), c);
}

static void test_answer(apr_pool_t *p)
{
    rs_hook_change_t c;
    apr_array_header_t *pairs;

    RS_CHECK(!answer(p, "", &c) && !c.metadata && !c.filename
             && c.size_limit == -1);
    RS_CHECK(!answer(p, " \n", &c));
    RS_CHECK(!answer(p, "{}", &c));
    RS_CHECK(!answer(p, "{\"metadata\":{\"a\":\"b\",\"n\":\"\"},"
                     "\"filename\":\"x.txt\",\"size_limit\":5}", &c));
    RS_CHECK(c.metadata && APR_SUCCESS == rs_meta_parse(p, c.metadata,
                                                        &pairs));
    RS_CHECK(c.metadata && !strcmp(rs_meta_get(pairs, "a"), "b"));
    RS_CHECK_STR(c.filename, "x.txt");
    RS_CHECK(c.size_limit == 5);
    RS_CHECK(answer(p, "nope", &c) != NULL);
    RS_CHECK(answer(p, "[]", &c) != NULL);
    RS_CHECK(answer(p, "{\"Location\":\"x\"}", &c) != NULL);
    RS_CHECK(answer(p, "{\"metadata\":[]}", &c) != NULL);
    RS_CHECK(answer(p, "{\"metadata\":{\"a\":1}}", &c) != NULL);
    RS_CHECK(answer(p, "{\"metadata\":{\"a b\":\"c\"}}", &c) != NULL);
    RS_CHECK(answer(p, "{\"metadata\":{\"a,b\":\"c\"}}", &c) != NULL);
    RS_CHECK(answer(p, "{\"metadata\":{\"k\u00e9\":\"c\"}}", &c) != NULL);
    RS_CHECK(!answer(p, "{\"metadata\":{}}", &c) && c.metadata
             && !*c.metadata);                  /* cleared */
    RS_CHECK(answer(p, "{\"filename\":\"\"}", &c) != NULL);
    RS_CHECK(answer(p, "{\"filename\":\"..\"}", &c) != NULL);
    RS_CHECK(answer(p, "{\"filename\":\"a\\u0000b\"}", &c) != NULL);
    RS_CHECK(answer(p, "{\"filename\":7}", &c) != NULL);
    RS_CHECK(answer(p, "{\"size_limit\":-1}", &c) != NULL);
    RS_CHECK(answer(p, "{\"size_limit\":\"5\"}", &c) != NULL);
    RS_CHECK(answer(p, "{\"size_limit\":1,\"size_limit\":2}", &c) != NULL);

    RS_CHECK_STR(rs_hook_text(p, "no\r\nway\x01\n\n", 11), "no \nway");
    RS_CHECK(strlen(rs_hook_text(p, apr_pstrcat(p, "x", apr_psprintf(
        p, "%02000d", 0), NULL), 2001)) == RS_HOOK_MAX_TEXT);
    RS_CHECK_STR(rs_hook_text(p, "caf\xc3\xa9", 5), "caf\xc3\xa9");
    RS_CHECK_STR(rs_hook_text(p, "caf\xc3", 4), "caf?");
}

/* ---- a loopback server thread ------------------------------------------ */

typedef struct srv_t {
    apr_socket_t *ls;
    const char *answer;             /* sent after the request, or NULL:
                                       never answer (timeout) */
    char got[8192];
    apr_size_t got_len;
} srv_t;

static void *APR_THREAD_FUNC serve(apr_thread_t *t, void *data)
{
    srv_t *s = data;
    apr_socket_t *c;
    apr_pool_t *p;
    apr_size_t n;

    apr_pool_create(&p, NULL);
    if (APR_SUCCESS == apr_socket_accept(&c, s->ls, p)) {
        apr_socket_timeout_set(c, apr_time_from_sec(3));
        s->got_len = 0;
        while (!strstr(s->got, "\r\n\r\n{") || s->got[s->got_len - 1] != '}') {
            n = sizeof(s->got) - 1 - s->got_len;
            if (APR_SUCCESS != apr_socket_recv(c, s->got + s->got_len, &n)
                || !n) {
                break;
            }
            s->got_len += n;
            s->got[s->got_len] = '\0';
        }
        if (s->answer) {
            n = strlen(s->answer);
            apr_socket_send(c, s->answer, &n);
        }
        else {
            apr_sleep(apr_time_from_msec(1500));
        }
        apr_socket_close(c);
    }
    apr_pool_destroy(p);
    apr_thread_exit(t, APR_SUCCESS);
    return NULL;
}

static apr_status_t post_to(apr_pool_t *p, const char *answer,
                            apr_interval_time_t timeout, rs_hook_resp_t *r,
                            srv_t *s)
{
    apr_sockaddr_t *sa;
    apr_thread_t *t;
    apr_status_t rv, trv;

    memset(s, 0, sizeof(*s));
    s->answer = answer;
    apr_sockaddr_info_get(&sa, "127.0.0.1", APR_INET, 0, 0, p);
    apr_socket_create(&s->ls, APR_INET, SOCK_STREAM, APR_PROTO_TCP, p);
    apr_socket_opt_set(s->ls, APR_SO_REUSEADDR, 1);
    apr_socket_bind(s->ls, sa);
    apr_socket_listen(s->ls, 1);
    apr_socket_addr_get(&sa, APR_LOCAL, s->ls);
    apr_thread_create(&t, NULL, serve, s, p);
    rv = rs_hook_post(p, "127.0.0.1", sa->port, NULL, "app.example", "/h?x=1",
                      "X-Resumable-Event: pre-create\r\n", "{\"a\":1}",
                      timeout, r);
    apr_thread_join(&trv, t);
    apr_socket_close(s->ls);
    return rv;
}

static void test_http(apr_pool_t *p)
{
    rs_hook_resp_t r;
    srv_t s;
    apr_sockaddr_t *sa;
    apr_socket_t *ls;
    apr_time_t t0;

    RS_CHECK(APR_SUCCESS == post_to(p, "HTTP/1.1 200 OK\r\nContent-Length: 2"
                                    "\r\n\r\n{}", apr_time_from_sec(2), &r,
                                    &s));
    RS_CHECK(r.status == 200 && r.len == 2);
    RS_CHECK_STR(r.body, "{}");
    RS_CHECK(strstr(s.got, "POST /h?x=1 HTTP/1.1\r\n") == s.got);
    RS_CHECK(strstr(s.got, "\r\nHost: app.example\r\n"));
    RS_CHECK(strstr(s.got, "\r\nContent-Length: 7\r\n"));
    RS_CHECK(strstr(s.got, "\r\nX-Resumable-Event: pre-create\r\n"));

    RS_CHECK(APR_SUCCESS == post_to(p, "HTTP/1.1 403 No\r\nTransfer-Encoding:"
                                    " chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n"
                                    "0\r\n\r\n", apr_time_from_sec(2), &r,
                                    &s));
    RS_CHECK(r.status == 403);
    RS_CHECK_STR(r.body, "abcde");
    RS_CHECK(APR_SUCCESS == post_to(p, "HTTP/1.0 422 X\r\n\r\ntill close",
                                    apr_time_from_sec(2), &r, &s));
    RS_CHECK(r.status == 422);
    RS_CHECK_STR(r.body, "till close");
    RS_CHECK(APR_SUCCESS == post_to(p, "HTTP/1.1 204 No Content\r\n"
                                    "Transfer-Encoding: chunked\r\n\r\n",
                                    apr_time_from_sec(2), &r, &s));
    RS_CHECK(r.status == 204 && r.len == 0);
    RS_CHECK(APR_EGENERAL == post_to(p, "garbage\r\n\r\n",
                                     apr_time_from_sec(2), &r, &s));
    RS_CHECK(APR_EGENERAL == post_to(p, "HTTP/1.1 200 OK\r\nContent-Length: "
                                     "x\r\n\r\n", apr_time_from_sec(2), &r,
                                     &s));
    RS_CHECK(APR_EGENERAL == post_to(p, "HTTP/1.1 100 Continue\r\n\r\n",
                                     apr_time_from_sec(2), &r, &s));
    t0 = apr_time_now();
    RS_CHECK(APR_STATUS_IS_TIMEUP(post_to(p, NULL, apr_time_from_msec(300),
                                          &r, &s)));
    RS_CHECK(apr_time_now() - t0 < apr_time_from_sec(2));

    /* refused: a port nobody listens on (bound, closed) */
    apr_sockaddr_info_get(&sa, "127.0.0.1", APR_INET, 0, 0, p);
    apr_socket_create(&ls, APR_INET, SOCK_STREAM, APR_PROTO_TCP, p);
    apr_socket_bind(ls, sa);
    apr_socket_addr_get(&sa, APR_LOCAL, ls);
    apr_socket_close(ls);
    RS_CHECK(APR_SUCCESS != rs_hook_post(p, "127.0.0.1", sa->port, NULL, "h", "/",
                                         NULL, "{}", apr_time_from_sec(1),
                                         &r));
}

static void test_outbox(apr_pool_t *p)
{
    const char *dir = rs_test_tmpdir(p, "hook-outbox");
    rs_store_t *s;
    rs_txn_t *txn;
    apr_array_header_t *evs;
    rs_outbox_ev_t a = { 0 }, b = { 0 }, *e;
    int n;

    RS_CHECK(APR_SUCCESS == rs_store_create(&s, "sdbm", apr_pstrcat(
        p, dir, "/state", NULL), NULL, p));
    a.event = "post-finish";
    a.url = "http://127.0.0.1:9/x";
    a.host = "h";
    a.timeout = apr_time_from_sec(2);
    a.payload = "{\"big\":\"" ;
    a.payload = apr_pstrcat(p, a.payload, apr_psprintf(p, "%03000d", 7),
                            "\"}", NULL);       /* > one sdbm pair */
    b = a;
    b.event = "post-create";
    RS_CHECK(APR_SUCCESS == rs_store_begin(s, 1, p, &txn));
    RS_CHECK(APR_SUCCESS == rs_outbox_add(txn, &a, p));
    apr_sleep(2);
    RS_CHECK(APR_SUCCESS == rs_outbox_add(txn, &b, p));
    rs_store_end(txn);
    RS_CHECK(a.id && b.id && strcmp(a.id, b.id));
    RS_CHECK(APR_SUCCESS == rs_outbox_list(s, p, 10, &evs, NULL));
    RS_CHECK(evs->nelts == 2);
    if (evs->nelts != 2) {
        return;
    }
    e = APR_ARRAY_IDX(evs, 0, rs_outbox_ev_t *);
    RS_CHECK_STR(e->id, a.id);                  /* oldest first */
    RS_CHECK_STR(e->payload, a.payload);
    RS_CHECK(e->timeout == a.timeout && e->attempts == 0);
    e->attempts = 3;
    e->next = 12345;
    e->last_error = "refused";
    RS_CHECK(APR_SUCCESS == rs_outbox_update(s, e, p));
    RS_CHECK(APR_SUCCESS == rs_outbox_list(s, p, 1, &evs, &n));
    RS_CHECK(evs->nelts == 1 && n == 2);
    e = APR_ARRAY_IDX(evs, 0, rs_outbox_ev_t *);
    RS_CHECK(e->attempts == 3 && e->next == 12345);
    RS_CHECK_STR(e->last_error, "refused");
    RS_CHECK(!e->ca_file);
    e->ca_file = "/etc/ca.pem";                 /* an https hook's ca= */
    RS_CHECK(APR_SUCCESS == rs_outbox_update(s, e, p));
    RS_CHECK(APR_SUCCESS == rs_outbox_list(s, p, 1, &evs, NULL));
    e = APR_ARRAY_IDX(evs, 0, rs_outbox_ev_t *);
    RS_CHECK(e->ca_file && !strcmp(e->ca_file, "/etc/ca.pem"));
    RS_CHECK(APR_SUCCESS == rs_outbox_list(s, p, 0, &evs, &n));
    RS_CHECK(evs->nelts == 0 && n == 2);
    RS_CHECK(APR_SUCCESS == rs_outbox_drop(s, e->key, p));
    RS_CHECK(APR_SUCCESS == rs_outbox_update(s, e, p));  /* dropped: stays */
    RS_CHECK(APR_SUCCESS == rs_outbox_list(s, p, 10, &evs, NULL));
    RS_CHECK(evs->nelts == 1);
    RS_CHECK(APR_EINVAL == rs_outbox_drop(s, "u:x", p));
    RS_CHECK(rs_outbox_backoff(0) == apr_time_from_sec(1));
    RS_CHECK(rs_outbox_backoff(3) == apr_time_from_sec(8));
    RS_CHECK(rs_outbox_backoff(40) == apr_time_from_sec(600));
}

/* The marker: no scan unless something can be due. */
static void test_outbox_mark(apr_pool_t *p)
{
    const char *dir = rs_test_tmpdir(p, "hook-mark");
    rs_store_t *s;
    rs_txn_t *txn;
    rs_outbox_ev_t a = { 0 };
    apr_uint64_t gen, gen2;
    apr_time_t now = apr_time_now();

    rs_store_create(&s, "sdbm", apr_pstrcat(p, dir, "/state", NULL), NULL, p);
    RS_CHECK(APR_STATUS_IS_ENOENT(rs_outbox_due(s, p, now, &gen)));
    a.event = "post-create";
    a.url = "http://127.0.0.1:9/";
    a.host = "h";
    a.payload = "{}";
    rs_store_begin(s, 1, p, &txn);
    RS_CHECK(APR_SUCCESS == rs_outbox_add(txn, &a, p));
    rs_store_end(txn);
    RS_CHECK(APR_SUCCESS == rs_outbox_due(s, p, now, &gen));
    /* a round found it failing: due again in a minute */
    RS_CHECK(APR_SUCCESS == rs_outbox_settle(s, p, gen, 1, now
                                             + apr_time_from_sec(60)));
    RS_CHECK(APR_STATUS_IS_EAGAIN(rs_outbox_due(s, p, now, &gen2)));
    RS_CHECK(APR_SUCCESS == rs_outbox_due(s, p, now + apr_time_from_sec(61),
                                          &gen2) && gen2 == gen);
    /* replay: due now */
    RS_CHECK(APR_SUCCESS == rs_outbox_wake(s, p));
    RS_CHECK(APR_SUCCESS == rs_outbox_due(s, p, now, &gen2) && gen2 > gen);
    /* a round that began before a new event does not hide it */
    RS_CHECK(APR_SUCCESS == rs_outbox_settle(s, p, gen, 0, 0));
    RS_CHECK(APR_SUCCESS == rs_outbox_due(s, p, now, &gen));
    RS_CHECK(gen == gen2);
    RS_CHECK(APR_SUCCESS == rs_outbox_settle(s, p, gen, 0, 0));
    RS_CHECK(APR_STATUS_IS_ENOENT(rs_outbox_due(s, p, now, &gen)));
}

/* ---- the engine's callbacks --------------------------------------------- */

typedef struct cb_t {
    int calls[RS_HOOK__COUNT];
    int refuse;                     /* event to refuse, or -1 */
    rs_store_t *store;
} cb_t;

static rs_error_t *gate(void *baton, int ev, rs_upload_t *u, apr_pool_t *p)
{
    cb_t *c = baton;
    rs_error_t *err;

    c->calls[ev]++;
    if (ev == c->refuse) {
        err = rs_error_make(p, RS_ERR_HOOK_REJECTED, 0, "no");
        err->status = 422;
        return err;
    }
    if (RS_HOOK_PRE_CREATE == ev) {
        u->filename = "changed.txt";
    }
    return NULL;
}

static apr_status_t record(void *baton, rs_txn_t *txn, int ev,
                           const rs_upload_t *u, apr_pool_t *p)
{
    cb_t *c = baton;
    rs_outbox_ev_t o = { 0 };

    c->calls[ev]++;
    o.event = rs_hook_event_name(ev);
    o.url = "http://127.0.0.1:9/";
    o.host = "h";
    o.payload = rs_hook_payload(p, ev, "x", u, NULL, NULL, NULL);
    return rs_outbox_add(txn, &o, p);
}

static apr_size_t pending(rs_store_t *s, apr_pool_t *p, const char *event)
{
    apr_array_header_t *evs;
    apr_size_t n = 0;
    int i;

    rs_outbox_list(s, p, 1000, &evs, NULL);
    for (i = 0; i < evs->nelts; i++) {
        n += !strcmp(APR_ARRAY_IDX(evs, i, rs_outbox_ev_t *)->event, event);
    }
    return n;
}

static rs_error_t *append_all(rs_engine_t *e, rs_area_t *a, rs_upload_t *u,
                              const char *data, apr_pool_t *p);

static void test_engine(apr_pool_t *p)
{
    rs_engine_t e;
    rs_area_t a;
    cb_t c = { { 0 }, -1, NULL };
    rs_engine_hooks_t hooks = { gate, record, &c };
    rs_upload_t *u, *v;
    rs_error_t *err;

    rs_test_engine(p, "hook-engine", &e, &a);
    e.hooks = &hooks;
    c.store = e.store;

    u = rs_upload_make(p, NULL);
    u->proto = RS_PROTO_TUS;
    u->length = 5;
    u->filename = "orig.txt";
    RS_CHECK(!rs_engine_create(&e, &a, u, p));
    RS_CHECK(c.calls[RS_HOOK_PRE_CREATE] == 1);
    RS_CHECK(pending(e.store, p, "post-create") == 1);
    RS_CHECK(!rs_engine_open(&e, &a, u->id, "", p, &v));
    RS_CHECK_STR(v->filename, "changed.txt");
    RS_CHECK(!append_all(&e, &a, v, "hel", p));        /* progress */
    RS_CHECK(pending(e.store, p, "post-receive") == 1);
    RS_CHECK(!append_all(&e, &a, v, "lo", p));         /* the end: finish */
    RS_CHECK(pending(e.store, p, "post-receive") == 1);
    RS_CHECK(c.calls[RS_HOOK_PRE_FINISH] == 1);
    RS_CHECK(pending(e.store, p, "post-finish") == 1);
    RS_CHECK(v->path && strstr(v->path, "changed.txt"));
    RS_CHECK(!rs_engine_terminate(&e, &a, v, p));
    RS_CHECK(pending(e.store, p, "post-terminate") == 1);

    /* pre-create refuses: nothing stored, no notification */
    c.refuse = RS_HOOK_PRE_CREATE;
    u = rs_upload_make(p, NULL);
    u->length = 5;
    err = rs_engine_create(&e, &a, u, p);
    RS_CHECK(err && RS_ERR_HOOK_REJECTED == err->code && 422 == err->status);
    RS_CHECK(pending(e.store, p, "post-create") == 1);
    RS_CHECK(rs_engine_open(&e, &a, u->id, "", p, &v) != NULL);

    /* pre-finish refuses: never published, rejected from then on */
    c.refuse = RS_HOOK_PRE_FINISH;
    u = rs_upload_make(p, NULL);
    u->length = 5;
    u->filename = "bad.txt";
    RS_CHECK(!rs_engine_create(&e, &a, u, p));
    err = append_all(&e, &a, u, "VIRUS", p);
    RS_CHECK(err && RS_ERR_HOOK_REJECTED == err->code);
    RS_CHECK(pending(e.store, p, "post-finish") == 1);
    err = rs_engine_open(&e, &a, u->id, "", p, &v);
    RS_CHECK(err && RS_ERR_REJECTED == err->code && 403 == err->status);
    RS_CHECK(!exists(p, rs_data_path(p, a.dir, u->id)));
    RS_CHECK(!exists(p, apr_pstrcat(p, a.dir, "/bad.txt",
                                                  NULL)));

    /* no hooks: no calls */
    e.hooks = NULL;
    memset(c.calls, 0, sizeof(c.calls));
    c.refuse = -1;
    u = rs_upload_make(p, NULL);
    u->length = 1;
    RS_CHECK(!rs_engine_create(&e, &a, u, p));
    RS_CHECK(!append_all(&e, &a, u, "x", p));
    RS_CHECK(c.calls[RS_HOOK_PRE_CREATE] == 0 && c.calls[RS_HOOK_PRE_FINISH]
             == 0 && c.calls[RS_HOOK_POST_FINISH] == 0);
}

/* ---- a body from memory -------------------------------------------------- */

typedef struct mem_body { const char *data; int done; } mem_body;

static apr_status_t mem_read(rs_body_t *b, const char **data, apr_size_t *len)
{
    mem_body *m = b->ctx;

    if (m->done) {
        return APR_EOF;
    }
    m->done = 1;
    *data = m->data;
    *len = strlen(m->data);
    return APR_SUCCESS;
}

static rs_error_t *append_all(rs_engine_t *e, rs_area_t *a, rs_upload_t *u,
                              const char *data, apr_pool_t *p)
{
    mem_body m = { data, 0 };
    rs_body_t b = { mem_read, NULL, (apr_off_t)strlen(data), &m, 0, -1 };
    rs_append_t ap = { 0, -1, NULL, NULL, 0, 0, NULL, 0 };
    rs_append_result_t res;

    ap.offset = u->offset;
    return rs_engine_append(e, a, u, &ap, &b, p, &res);
}

void suite_hook(apr_pool_t *p)
{
    test_parse(p);
    test_url(p);
    test_payload(p);
    test_answer(p);
    test_http(p);
    test_outbox(p);
    test_outbox_mark(p);
    test_engine(p);
}
