/* Licensed under the Apache License, Version 2.0. */
/*
 * One request: request_rec -> rs_req_t, the front end, rs_req_t -> response.
 *
 * The body reader hands the engine bucket data without copying. On HTTP/1
 * it reads non-blocking and waits for the socket in short ticks, so a
 * writer whose client stalled notices a takeover request within a tick
 * instead of sleeping in a blocking read until Timeout. httpd's Timeout
 * still bounds the total idle time; mod_reqtimeout keeps working. Bodies
 * over 64 KiB (or of unknown length) are read from the socket
 * ResumableReadSize bytes at a time (mod_resumable_netread.c); when the
 * engine takes them as they are, in pipes (ResumableSplice).
 */

#include <apr_strings.h>
#include <apr_poll.h>

#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>
#include <util_filter.h>

#include "mod_resumable_private.h"
#include "mod_resumable_config.h"
#include "rs_util.h"
#include "rs_form.h"
#include "rs_stats.h"

#define READ_SIZE (256 * 1024)    /* asked of the filters per call */
#define NETREAD_ASK (1024 * 1024) /* with large reads: whole blocks, few
                                     splits */
#define IDLE_TICK apr_time_from_msec(200)
#define DRAIN_MAX (1024 * 1024)   /* unread body we drain for keep-alive */
#define NETREAD_MIN (64 * 1024) /* smaller bodies keep httpd's 8,000-byte
                                   reads (a few calls; the pipe would cost
                                   as many); larger ones, a 1 MiB upload
                                   too, splice or read in large blocks
                                   (a 1 MiB body: ~130 read() calls less;
                                   spliced bytes stay in kernel pages) */

typedef struct body_ctx {
    request_rec *r;
    apr_bucket_brigade *bb;
    apr_bucket *handed;          /* bucket whose data the engine holds */
    apr_socket_t *sock;          /* NULL: blocking reads (HTTP/2) */
    rs_netread_t *nr;            /* large reads, or NULL */
    int started;                 /* read() was called */
    apr_off_t ask;               /* bytes asked of the filters per call */
    apr_time_t idle_since;
    int eos;
    int in_flight;               /* counted in RS_STAT_IN_FLIGHT */
    int filter_status;           /* status of an error bucket read, or 0 */
} body_ctx;

/* ------------------------------------------------------------------------ */
/* body reader                                                               */

/* The body is read to its end, or the request is over. */
static apr_status_t body_done(void *data)
{
    body_ctx *c = data;

    if (c->in_flight) {
        c->in_flight = 0;
        rs_stats_in_flight_add(-1);
    }
    return APR_SUCCESS;
}

/* Next data bucket from the brigade: SUCCESS, EOF, or EAGAIN (empty). */
static apr_status_t next_bucket(rs_body_t *b, const char **data,
                                apr_size_t *len)
{
    body_ctx *c = b->ctx;
    apr_status_t rv;

    while (!APR_BRIGADE_EMPTY(c->bb)) {
        apr_bucket *e = APR_BRIGADE_FIRST(c->bb);

        if (APR_BUCKET_IS_EOS(e)) {
            c->eos = 1;
            body_done(c);
            apr_brigade_cleanup(c->bb);
            rs_httpd_netread_end(c->r);
            return APR_EOF;
        }
        if (AP_BUCKET_IS_ERROR(e)) {    /* an input filter's verdict, as
                                           ap_discard_request_body takes it */
            c->filter_status = ((ap_bucket_error *)e->data)->status;
            apr_bucket_delete(e);
            return APR_EGENERAL;
        }
        if (APR_BUCKET_IS_METADATA(e)) {
            apr_bucket_delete(e);
            continue;
        }
        if (b->take_pipe && rs_httpd_netread_pipe(e, &b->pipe_fd)) {
            *data = NULL;               /* the bytes wait in b->pipe_fd */
            *len = e->length;
            c->handed = e;
            return APR_SUCCESS;
        }
        rv = apr_bucket_read(e, data, len, APR_BLOCK_READ);
        if (APR_SUCCESS != rv) {
            return rv;
        }
        if (*len == 0) {
            apr_bucket_delete(e);
            continue;
        }
        c->handed = e;
        return APR_SUCCESS;
    }
    return c->eos ? APR_EOF : APR_EAGAIN;
}

/* Wait up to one tick for the socket to become readable. */
static apr_status_t wait_readable(body_ctx *c)
{
    apr_pollfd_t pfd = { 0 };
    apr_int32_t n = 0;
    apr_status_t rv;

    /* checked before polling too: a socket that polls readable while
     * reads bring nothing must not keep a thread busy past Timeout */
    if (apr_time_now() - c->idle_since > c->r->server->timeout) {
        return APR_TIMEUP;
    }
    pfd.p = c->r->pool;
    pfd.desc_type = APR_POLL_SOCKET;
    pfd.reqevents = APR_POLLIN;
    pfd.desc.s = c->sock;
    rv = apr_poll(&pfd, 1, &n, IDLE_TICK);
    if (APR_STATUS_IS_TIMEUP(rv) || (APR_SUCCESS == rv && 0 == n)) {
        return APR_EAGAIN;
    }
    return APR_STATUS_IS_EINTR(rv) ? APR_EAGAIN : APR_SUCCESS;
}

/* HTTP_IN sends "100 Continue" only before a blocking read, and the body
 * is read non-blocking: send it here, once the handler wants the body
 * (a client that waits for it would otherwise wait until its own
 * timeout, as curl does for a second, or forever). */
static void send_continue(request_rec *r)
{
    int status = r->status;
    const char *line = r->status_line;

    if (!r->expecting_100 || r->proto_num < HTTP_VERSION(1, 1)
        || !ap_is_HTTP_SUCCESS(r->status) || r->eos_sent || r->bytes_sent) {
        return;
    }
    r->status = HTTP_CONTINUE;
    r->status_line = NULL;
    ap_send_interim_response(r, 0);
    r->status = status;
    r->status_line = line;
}

static apr_status_t body_read(rs_body_t *b, const char **data, apr_size_t *len)
{
    body_ctx *c = b->ctx;
    apr_read_type_e mode = c->sock ? APR_NONBLOCK_READ : APR_BLOCK_READ;
    apr_status_t rv;
    int tries;

    if (c->handed) {
        rs_httpd_netread_drained(c->handed);    /* read() is called again:
                                                   the engine took it all */
        apr_bucket_delete(c->handed);
        c->handed = NULL;
    }
    if (!c->started) {              /* the engine's first read: it has
                                       said whether it takes pipes */
        c->started = 1;
        c->in_flight = 1;
        rs_stats_in_flight_add(1);
        apr_pool_cleanup_register(c->r->pool, c, body_done,
                                  apr_pool_cleanup_null);
        send_continue(c->r);
        if (b->take_pipe && rs_conf_server(c->r->server)->splice) {
            rs_httpd_netread_splice(c->r, c->nr, b->length);
        }
    }
    for (tries = 0; tries < 64; tries++) {
        rv = next_bucket(b, data, len);
        if (APR_SUCCESS == rv) {
            rs_stats_add(RS_STAT_BYTES, (apr_int64_t)*len);
        }
        if (!APR_STATUS_IS_EAGAIN(rv)) {
            return rv;
        }
        rs_httpd_netread_ask(c->nr, (apr_size_t)c->ask);
        rv = ap_get_brigade(c->r->input_filters, c->bb, AP_MODE_READBYTES,
                            mode, c->ask);
        if (APR_SUCCESS == rv && !APR_BRIGADE_EMPTY(c->bb)) {
            c->idle_since = apr_time_now();
            continue;
        }
        if (APR_SUCCESS != rv && !APR_STATUS_IS_EAGAIN(rv)) {
            return rv;
        }
        if (!c->sock || APR_SUCCESS != (rv = wait_readable(c))) {
            return c->sock ? rv : APR_EGENERAL;
        }
    }
    return APR_EAGAIN;
}

static const char *body_trailer(rs_body_t *b, const char *name)
{
    body_ctx *c = b->ctx;

    return c->eos ? apr_table_get(c->r->trailers_in, name) : NULL;
}

static apr_off_t request_length(request_rec *r)
{
    const char *te = apr_table_get(r->headers_in, "Transfer-Encoding");
    const char *cl = apr_table_get(r->headers_in, "Content-Length");
    apr_off_t n;

    if (te) {
        return -1;
    }
    if (cl) {
        return APR_SUCCESS == rs_util_parse_off(cl, &n) ? n : -1;
    }
    return (r->proto_num >= 2000 && r->read_chunked) ? -1 : 0;
}

static rs_body_t *make_body(request_rec *r)
{
    rs_body_t *b = apr_pcalloc(r->pool, sizeof(*b));
    body_ctx *c = apr_pcalloc(r->pool, sizeof(*c));

    c->r = r;
    c->bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    c->sock = r->connection->master ? NULL : ap_get_conn_socket(r->connection);
    c->idle_since = apr_time_now();
    b->read = body_read;
    b->trailer = body_trailer;
    b->length = request_length(r);
    b->ctx = c;
    c->ask = READ_SIZE;
    if (c->sock && (b->length < 0 || b->length > NETREAD_MIN)
        && APR_SUCCESS == rs_httpd_netread_begin(r, (apr_size_t)rs_conf_server(
                                                 r->server)->read_size,
                                                 &c->nr)) {
        c->ask = NETREAD_ASK;
    }
    return b;
}

/* ------------------------------------------------------------------------ */
/* URLs                                                                      */

/* First element of a comma-separated forwarding header. */
static const char *first_token(apr_pool_t *p, const char *v)
{
    const char *comma = v ? strchr(v, ',') : NULL;

    v = comma ? apr_pstrndup(p, v, comma - v) : v;
    while (v && *v == ' ') {
        v++;
    }
    return v && *v && rs_util_header_safe(v) && !strpbrk(v, " /\\@") ? v : NULL;
}

/* scheme://host of the request, honouring X-Forwarded-* when trusted. */
static const char *origin_of(request_rec *r, const rs_dir_conf_t *d)
{
    const char *proto = NULL, *host = NULL;

    if (rs_conf_trust_forwarded(d)) {
        proto = first_token(r->pool, apr_table_get(r->headers_in,
                                                   "X-Forwarded-Proto"));
        host = first_token(r->pool, apr_table_get(r->headers_in,
                                                  "X-Forwarded-Host"));
        if (proto && strcasecmp(proto, "http") && strcasecmp(proto, "https")) {
            proto = NULL;
        }
    }
    if (!proto && !host) {
        return ap_construct_url(r->pool, "", r);
    }
    return apr_pstrcat(r->pool, proto ? proto : ap_http_scheme(r), "://",
                       host ? host : ap_construct_url(r->pool, "", r)
                       + strlen(ap_http_scheme(r)) + 3, NULL);
}

/* Split r->uri into collection path and upload id. */
static void split_uri(request_rec *r, rs_req_t *req)
{
    const char *uri = r->uri, *slash = strrchr(uri, '/');
    apr_size_t n = strlen(uri);

    if (n && uri[n - 1] == '/') {
        req->at_base = 1;
        req->base_path = apr_pstrndup(r->pool, uri, n - 1);
    }
    else if (slash && rs_util_id_valid(slash + 1)) {
        req->id = slash + 1;
        req->base_path = apr_pstrndup(r->pool, uri, slash - uri);
    }
    else {
        req->base_path = uri;
    }
}

/* ------------------------------------------------------------------------ */
/* CORS                                                                      */

static const char *cors_origin(request_rec *r, const rs_dir_conf_t *d)
{
    const char *origin = apr_table_get(r->headers_in, "Origin");
    int i;

    for (i = 0; origin && d->cors && i < d->cors->nelts; i++) {
        const char *o = APR_ARRAY_IDX(d->cors, i, const char *);
        if (!strcmp(o, "*") || !strcmp(o, origin)) {
            return o;
        }
    }
    return NULL;
}

void rs_httpd_cors(request_rec *r, apr_table_t *out)
{
    const char *o = cors_origin(r, rs_conf_dir(r));

    if (o) {
        apr_table_setn(out, "Access-Control-Allow-Origin", o);
        apr_table_setn(out, "Access-Control-Expose-Headers",
                       RS_PROTO_EXPOSE_HEADERS);
        if (strcmp(o, "*")) {
            apr_table_mergen(out, "Vary", "Origin");
        }
    }
}

static int is_preflight(request_rec *r)
{
    return r->method_number == M_OPTIONS
           && apr_table_get(r->headers_in, "Origin")
           && apr_table_get(r->headers_in, "Access-Control-Request-Method")
           && cors_origin(r, rs_conf_dir(r));
}

static void preflight(rs_req_t *req)
{
    int i;

    req->status = 200;
    apr_table_setn(req->out, "Access-Control-Allow-Methods",
                   RS_PROTO_ALLOW_METHODS);
    apr_table_setn(req->out, "Access-Control-Allow-Headers",
                   RS_PROTO_ALLOW_HEADERS);
    apr_table_setn(req->out, "Access-Control-Max-Age", "86400");
    for (i = 0; rs_protos[i]; i++) {
        if ((req->area->protocols & (1u << rs_protos[i]->id))
            && rs_protos[i]->discover) {
            rs_protos[i]->discover(req);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* response                                                                  */

/* The client went away mid-body: a reset or a broken pipe (no answer
 * can reach it), or an end of stream before the body's end (a premature
 * EOF, HTTP_IN's APR_INCOMPLETE). */
static int client_gone(apr_status_t rv)
{
    return APR_STATUS_IS_ECONNRESET(rv) || APR_STATUS_IS_ECONNABORTED(rv)
           || APR_STATUS_IS_EPIPE(rv) || APR_STATUS_IS_EOF(rv)
           || APR_STATUS_IS_INCOMPLETE(rv);
}

/* Status for a failed body read, as httpd's own handlers map it
 * (ap_map_http_request_error with 400 as the default): an input filter's
 * error bucket's status, AP_FILTER_ERROR when a filter answered already
 * (an ap_http_error bucket sent down the output filters), 408 on a
 * timeout, 413 past LimitRequestBody, 400 for a malformed chunk line or
 * trailer and for a client that went away; never a 5xx, which would
 * count a client's fault as the server's in the access log. A client
 * gone is not kept alive, and one that reset the connection is marked
 * aborted (nothing is sent to it). */
static int body_status(request_rec *r, rs_req_t *req)
{
    rs_error_t *err = req->error;
    int status;

    if (!err || (RS_ERR_BODY_READ != err->code
                 && RS_ERR_TIMEOUT != err->code)) {
        return req->status;
    }
    status = ((body_ctx *)req->body->ctx)->filter_status;
    if (status < 400) {                /* else the filter's own verdict */
        status = ap_map_http_request_error(err->cause, err->status);
        if (AP_FILTER_ERROR != status && (status < 400 || status >= 500)) {
            status = HTTP_BAD_REQUEST; /* e.g. 501 for ENOTIMPL */
        }
    }
    if (client_gone(err->cause)) {
        r->connection->keepalive = AP_CONN_CLOSE;
        if (!APR_STATUS_IS_EOF(err->cause)
            && !APR_STATUS_IS_INCOMPLETE(err->cause)) {
            r->connection->aborted = 1;
        }
    }
    return status;
}

/* Don't make the connection swallow a large unread body after an error. */
static void limit_drain(request_rec *r, rs_req_t *req)
{
    body_ctx *c = req->body->ctx;

    if (req->status >= 400 && !c->eos && (req->content_length < 0
                                          || req->content_length > DRAIN_MAX)) {
        r->connection->keepalive = AP_CONN_CLOSE;
    }
}

static void log_failure(request_rec *r, rs_req_t *req, int status)
{
    rs_error_t *err = req->error;
    int level = status >= 500 ? APLOG_ERR : APLOG_INFO;

    if (err && (RS_ERR_BODY_READ == err->code || RS_ERR_TIMEOUT == err->code
                || RS_ERR_INTERRUPTED == err->code)) {
        level = APLOG_INFO;            /* the client went away: not our fault */
    }

    if (err) {
        ap_log_rerror(APLOG_MARK, level, err->cause, r, RS_LOGNO(04020)
                      "%s %s: %d %s: %s", r->method, r->uri, status,
                      err->name, err->detail ? err->detail : "");
    }
}

static int render(request_rec *r, rs_req_t *req)
{
    int status = body_status(r, req);

    rs_httpd_account(r, req, AP_FILTER_ERROR != status ? status
                     : req->error ? req->error->status : HTTP_BAD_REQUEST);
    if (AP_FILTER_ERROR == status) {
        return status;                 /* a filter answered already */
    }
    log_failure(r, req, status);
    limit_drain(r, req);
    rs_httpd_cors(r, req->out);
    apr_table_overlap(r->headers_out, req->out, APR_OVERLAP_TABLES_SET);
    r->status = status;
    if (460 == status) {             /* tus checksum; httpd has no phrase */
        r->status_line = "460 Checksum Mismatch";
    }
    if (req->text && status != 204 && status != 304) {
        ap_set_content_type(r, req->content_type ? req->content_type
                            : "text/plain; charset=utf-8");
        ap_set_content_length(r, strlen(req->text));
        if (!r->header_only) {
            ap_rputs(req->text, r);
        }
    }
    else if (status != 204 && status != 304) {
        ap_set_content_length(r, 0);
    }
    return OK;
}

/* ------------------------------------------------------------------------ */
/* interim responses                                                         */

/* 1xx now. httpd clears r->headers_out after an interim response, so the
 * final response's headers live in req->out until render(). When the client
 * sent Expect: 100-continue, "100 Continue" goes first: older httpd 2.4
 * clears expecting_100 after any interim response and would never send it. */
static void send_interim(rs_req_t *req, int status, const char *line,
                         apr_table_t *headers)
{
    request_rec *r = req->glue;
    apr_table_t *saved = r->headers_out;

    if (r->proto_num < HTTP_VERSION(1, 1)) {
        return;
    }
    if (r->expecting_100) {
        r->status = HTTP_CONTINUE;
        r->status_line = NULL;
        ap_send_interim_response(r, 0);
    }
    r->headers_out = apr_table_copy(r->pool, headers);
    r->status = status;
    r->status_line = line;
    ap_send_interim_response(r, 1);
    r->headers_out = saved;
    r->status = HTTP_OK;
    r->status_line = NULL;
}

/* ------------------------------------------------------------------------ */
/* dispatch                                                                  */

static rs_req_t *make_req(request_rec *r, rs_engine_t *e, rs_area_t *a)
{
    rs_req_t *req = apr_pcalloc(r->pool, sizeof(*req));

    req->pool = r->pool;
    req->method = r->method;
    req->in = r->headers_in;
    req->out = apr_table_make(r->pool, 8);
    req->user = r->user ? r->user : "";
    req->args = r->args;
    req->area = a;
    req->engine = e;
    req->interim = send_interim;
    req->glue = r;
    req->body = make_body(r);
    req->content_length = req->body->length;
    split_uri(r, req);
    req->base_url = apr_pstrcat(r->pool, origin_of(r, rs_conf_dir(r)),
                                ap_escape_uri(r->pool, req->base_path), NULL);
    return req;
}

/* The front end of req; a plain GET (get = 1) is offered only to those
 * that claim GET requests (else it is a download). */
static const rs_proto_t *pick(rs_req_t *req, int get)
{
    int i;

    for (i = 0; rs_protos[i]; i++) {
        if ((req->area->protocols & (1u << rs_protos[i]->id))
            && (!get || rs_protos[i]->claims_get) && rs_protos[i]->match
            && rs_protos[i]->match(req)) {
            return rs_protos[i];
        }
    }
    return NULL;
}

/* A request of the area that no front end took and that is no download
 * of this user's upload: httpd's normal handling (a page next to the
 * endpoint, an unknown path), except for what lies in the area's
 * directory, or in any other area's (rs_httpd_store_guard). */
static int fall_through(request_rec *r, const rs_area_t *a)
{
    int staging;

    if (!rs_conf_path_in(r->filename, a->dir, &staging)
        && !rs_conf_in_store(r->filename, &staging)) {
        return DECLINED;
    }
    return rs_httpd_store_request(r, staging);
}

/* GET/HEAD of an upload URL no front end claimed: a download. */
static int download(request_rec *r, rs_req_t *req)
{
    rs_upload_t *u;
    rs_error_t *err;

    if ((r->method_number != M_GET) || !req->id) {
        return fall_through(r, req->area);
    }
    err = rs_engine_open(req->engine, req->area, req->id, req->user, r->pool,
                         &u);
    if (err && RS_ERR_NOT_FOUND == err->code) {
        return fall_through(r, req->area);  /* not this user's upload */
    }
    if (!err && RS_STATE_COMPLETE == u->state
        && (u->flags & (RS_UF_PUBLISHED | RS_UF_COMPOSED))) {
        rs_httpd_cors(r, r->headers_out);
        rs_stats_add(RS_STAT_DOWNLOADS, 1);
        return rs_httpd_download(r, u);
    }
    rs_proto_error(req, err ? err : rs_error_make(r->pool, RS_ERR_INCOMPLETE,
                                                  0, NULL));
    return render(r, req);
}

int rs_httpd_handle(request_rec *r)
{
    rs_engine_t *e;
    rs_area_t *a;
    rs_req_t *req;
    const rs_proto_t *proto;
    int staging;

    if (!r->handler || strcmp(r->handler, "resumable")) {
        return DECLINED;
    }
    if (!(e = rs_httpd_engine())) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, RS_LOGNO(04021)
                      "the state database is not available");
        return HTTP_SERVICE_UNAVAILABLE;
    }
    if (!(a = rs_conf_area(r))) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (rs_conf_path_in(r->filename, a->dir, &staging) && staging) {
        return rs_httpd_store_request(r, 1);    /* no upload URL is there */
    }
    rs_httpd_txn_mark(r);
    req = make_req(r, e, a);
    if (e->hooks) {
        rs_httpd_hook_request(r);
    }
    if (is_preflight(r)) {
        preflight(req);
        return render(r, req);
    }
    if (!(proto = pick(req, M_GET == r->method_number && !r->header_only))) {
        if (rs_form_wanted(req)) {     /* known by its body: rs_form.h */
            rs_form_handle(req);
            return render(r, req);
        }
        return download(r, req);       /* an unclaimed GET is a download */
    }
    rs_report(r->pool)->proto = proto->id;
    proto->handle(req);
    return render(r, req);
}
