/* Licensed under the Apache License, Version 2.0. */
/*
 * Large socket reads for an upload body.
 *
 * httpd's core input filter reads the client socket through APR's socket
 * bucket, which reads APR_BUCKET_BUFF_SIZE (8000) bytes per read(): about
 * 137,000 system calls and as many buckets per GiB of body (nginx: ~1,400
 * reads of ~770 KiB). For the duration of one upload body this file swaps
 * the socket bucket at the tail of the core input filter's brigade
 * (core_ctx_t, public in http_core.h since 2.4.1) for a bucket of its own
 * that reads up to ResumableReadSize bytes per read(). Everything above
 * the core filter (mod_reqtimeout, HTTP_IN's Content-Length and chunk
 * accounting, mod_ssl) is unchanged: they still see heap buckets and ask
 * for the bytes they want; what a read returns beyond the body (a
 * pipelined request) stays in the core filter's brigade as before.
 *
 * The swap happens only when the bottom filter is core_in with the
 * connection's own socket bucket last in its brigade (HTTP/1.x; not on
 * HTTP/2 secondary connections); otherwise httpd's reads stay. The
 * socket bucket is put back when the body ends, or when the request's
 * pool goes, so later requests on the connection read as httpd does.
 *
 * Memory: a read allocates `size` bytes; a short read (under a quarter
 * of it, a slow client) is copied into a buffer of its own size, so a
 * bucket never pins more than 4x its data.
 */

#include <apr_strings.h>
#include <apr_buckets.h>

#include <httpd.h>
#include <http_core.h>
#include <http_log.h>
#include <util_filter.h>

#include "mod_resumable_private.h"

typedef struct netread_t {
    apr_socket_t *sock;
    apr_size_t size;
} netread_t;

static const apr_bucket_type_t netread_type;

static apr_bucket *netread_create(netread_t *nr, apr_bucket_alloc_t *list)
{
    apr_bucket *b = apr_bucket_alloc(sizeof(*b), list);

    APR_BUCKET_INIT(b);
    b->free = apr_bucket_free;
    b->list = list;
    b->type = &netread_type;
    b->length = (apr_size_t)-1;
    b->start = -1;
    b->data = nr;
    return b;
}

static void netread_destroy(void *data)
{
    apr_bucket_free(data);
}

/* recv up to nr->size bytes into a fresh buffer; short reads shrink it */
static apr_status_t netread_recv(netread_t *nr, apr_bucket_alloc_t *list,
                                 apr_read_type_e block, char **buf,
                                 apr_size_t *len)
{
    apr_interval_time_t timeout = 0;
    apr_status_t rv;
    char *small;

    if (APR_NONBLOCK_READ == block) {
        apr_socket_timeout_get(nr->sock, &timeout);
        apr_socket_timeout_set(nr->sock, 0);
    }
    *len = nr->size;
    *buf = apr_bucket_alloc(*len, list);
    rv = apr_socket_recv(nr->sock, *buf, len);
    if (APR_NONBLOCK_READ == block) {
        apr_socket_timeout_set(nr->sock, timeout);
    }
    if (APR_SUCCESS != rv && !APR_STATUS_IS_EOF(rv)) {
        apr_bucket_free(*buf);
        return rv;
    }
    if (*len > 0 && *len < nr->size / 4) {
        small = apr_bucket_alloc(*len, list);
        memcpy(small, *buf, *len);
        apr_bucket_free(*buf);
        *buf = small;
    }
    return APR_SUCCESS;
}

/* Like APR's socket bucket: become a heap bucket holding what one read
 * returned, followed by a new reading bucket; at EOF an empty bucket. */
static apr_status_t netread_read(apr_bucket *a, const char **str,
                                 apr_size_t *len, apr_read_type_e block)
{
    netread_t *nr = a->data;
    char *buf;
    apr_status_t rv = netread_recv(nr, a->list, block, &buf, len);

    *str = NULL;
    if (APR_SUCCESS != rv) {
        return rv;
    }
    if (*len > 0) {
        apr_bucket *next = netread_create(nr, a->list);

        apr_bucket_heap_make(a, buf, *len, apr_bucket_free);
        *str = buf;
        APR_BUCKET_INSERT_AFTER(a, next);
        return APR_SUCCESS;
    }
    apr_bucket_free(buf);
    netread_destroy(nr);
    a = apr_bucket_immortal_make(a, "", 0);
    *str = a->data;
    return APR_SUCCESS;
}

static const apr_bucket_type_t netread_type = {
    "RESUMABLE_SOCKET", 5, APR_BUCKET_DATA,
    netread_destroy,
    netread_read,
    apr_bucket_setaside_notimpl,
    apr_bucket_split_notimpl,
    apr_bucket_copy_notimpl
};

/* The core input filter's brigade on r's connection, or NULL. */
static apr_bucket_brigade *core_brigade(request_rec *r, apr_socket_t **sock)
{
    ap_filter_t *f = r->input_filters;
    core_net_rec *net;

    while (f && f->next) {
        f = f->next;
    }
    if (!f || strcasecmp(f->frec->name, "core_in") || !(net = f->ctx)
        || net->c != r->connection || !net->in_ctx || !net->in_ctx->b
        || net->client_socket != ap_get_conn_socket(r->connection)) {
        return NULL;
    }
    *sock = net->client_socket;
    return net->in_ctx->b;
}

/* The brigade's last bucket, when it is of type t reading socket sock. */
static apr_bucket *tail_reader(apr_bucket_brigade *bb,
                               const apr_bucket_type_t *t, apr_socket_t *sock)
{
    apr_bucket *e;

    if (APR_BRIGADE_EMPTY(bb)) {
        return NULL;
    }
    e = APR_BRIGADE_LAST(bb);
    if (e->type != t) {
        return NULL;
    }
    if (t == &netread_type) {
        return ((netread_t *)e->data)->sock == sock ? e : NULL;
    }
    return e->data == sock ? e : NULL;
}

static apr_status_t netread_cleanup(void *data)
{
    rs_httpd_netread_end(data);
    return APR_SUCCESS;
}

apr_status_t rs_httpd_netread_begin(request_rec *r, apr_size_t size)
{
    apr_socket_t *sock = NULL;
    apr_bucket_brigade *bb;
    apr_bucket *old;
    netread_t *nr;

    if (r->connection->master || size <= APR_BUCKET_BUFF_SIZE
        || !(bb = core_brigade(r, &sock))
        || !(old = tail_reader(bb, &apr_bucket_type_socket, sock))) {
        return APR_ENOTIMPL;
    }
    nr = apr_bucket_alloc(sizeof(*nr), bb->bucket_alloc);
    nr->sock = sock;
    nr->size = size;
    APR_BUCKET_INSERT_BEFORE(old, netread_create(nr, bb->bucket_alloc));
    apr_bucket_delete(old);
    apr_pool_cleanup_register(r->pool, r, netread_cleanup,
                              apr_pool_cleanup_null);
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, RS_LOGNO(04050)
                  "reading the body %" APR_SIZE_T_FMT " bytes at a time",
                  size);
    return APR_SUCCESS;
}

void rs_httpd_netread_end(request_rec *r)
{
    apr_socket_t *sock = NULL;
    apr_bucket_brigade *bb = core_brigade(r, &sock);
    apr_bucket *ours = bb ? tail_reader(bb, &netread_type, sock) : NULL;

    if (ours) {
        APR_BUCKET_INSERT_BEFORE(ours, apr_bucket_socket_create(
                                     sock, bb->bucket_alloc));
        apr_bucket_delete(ours);
    }
}
