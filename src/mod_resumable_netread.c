/* Licensed under the Apache License, Version 2.0. */
/*
 * Large socket reads for an upload body, and bodies moved in the kernel.
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
 * Splice (ResumableSplice On): when the engine writes a Content-Length
 * body to its file as it is (a tus checksum of 1 MiB or more is digested
 * from the file by a worker, rs_hash_follow.h) and only filters
 * that count bytes without reading them sit between the handler and the
 * socket (HTTP_IN, mod_reqtimeout, mod_logio), the reading bucket moves
 * the body from the socket into a kernel pipe (splice) and becomes a
 * RESUMABLE_PIPE bucket of known length; the engine moves those bytes
 * from the pipe into the data file (splice again). The body is then
 * copied once, into the page cache, instead of twice (socket to user,
 * user to page cache). Each pipe bucket owns its pipe (1 MiB), so pipe
 * buckets need no order among themselves; anything that reads one as
 * memory (a split, a copy, a filter) gets its bytes, read from the pipe.
 * The reader never takes more than the rest of the body, nor more than
 * the handler asked for in one call (less what the core filter already
 * holds), and splices once per call, so pipe buckets are not split and a
 * body uses one or two pipes. Where splice cannot move what the socket
 * holds (urgent data), the rest of the body is read into memory.
 *
 * The swap happens only when the bottom filter is core_in with the
 * connection's own socket bucket last in its brigade (HTTP/1.x; not on
 * HTTP/2 secondary connections); otherwise httpd's reads stay. The
 * socket bucket is put back when the body ends, or when the request's
 * pool goes, so later requests on the connection read as httpd does.
 *
 * Memory: a read allocates `size` bytes; a short read (under a quarter
 * of it, a slow client) is copied into a buffer of its own size, so a
 * bucket never pins more than 4x its data. A pipe holds references to
 * the socket's own pages, not copies.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE             /* splice, F_SETPIPE_SZ */
#endif
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <apr_strings.h>
#include <apr_buckets.h>
#include <apr_portable.h>
#include <apr_support.h>

#include <httpd.h>
#include <http_core.h>
#include <http_log.h>
#include <util_filter.h>

#include "mod_resumable_private.h"

#define PIPE_SIZE (1024 * 1024)   /* bytes per pipe and per splice: 256
                                     slots (fewer slots fill up with the
                                     socket's small page fragments and
                                     splice far less per call) */
#define PIPE_SPARE 1              /* empty pipes kept for reuse: a pipe's
                                     size counts against the user's pipe
                                     quota even when it is empty */

/* ---- pipes -------------------------------------------------------------- */

typedef struct rs_pipe_t {
    int rd, wr;
    struct rs_pipe_t *next;
} rs_pipe_t;

/* The pipes of one body: shared by the reader and its pipe buckets, freed
 * with the last of them (buckets may outlive the request's pool). */
typedef struct pipeset_t {
    server_rec *s;              /* for the log */
    int refs;
    int nspare;
    rs_pipe_t *spare;
    apr_bucket_alloc_t *list;
} pipeset_t;

static void pipe_close(rs_pipe_t *pp)
{
    close(pp->rd);
    close(pp->wr);
    apr_bucket_free(pp);
}

static pipeset_t *pipeset_ref(pipeset_t *ps)
{
    ps->refs++;
    return ps;
}

static void pipeset_unref(pipeset_t *ps)
{
    rs_pipe_t *pp;

    if (--ps->refs > 0) {
        return;
    }
    while ((pp = ps->spare)) {
        ps->spare = pp->next;
        pipe_close(pp);
    }
    apr_bucket_free(ps);
}

/* An empty pipe of PIPE_SIZE bytes, or NULL (the user's pipe quota,
 * fs.pipe-user-pages-soft, is spent: the body is read as memory). */
static rs_pipe_t *pipe_take(pipeset_t *ps)
{
    rs_pipe_t *pp = ps->spare;
    int fd[2];

    if (pp) {
        ps->spare = pp->next;
        ps->nspare--;
        return pp;
    }
    if (pipe2(fd, O_CLOEXEC | O_NONBLOCK) < 0) {   /* an empty pipe is
                                                       never waited on */
        return NULL;
    }
    if (fcntl(fd[1], F_SETPIPE_SZ, PIPE_SIZE) < PIPE_SIZE) {
        close(fd[0]);
        close(fd[1]);
        return NULL;
    }
    pp = apr_bucket_alloc(sizeof(*pp), ps->list);
    pp->rd = fd[0];
    pp->wr = fd[1];
    return pp;
}

/* Keep an empty pipe for reuse; close one that may still hold bytes. */
static void pipe_give(pipeset_t *ps, rs_pipe_t *pp, int empty)
{
    if (!empty || ps->nspare >= PIPE_SPARE) {
        pipe_close(pp);
        return;
    }
    pp->next = ps->spare;
    ps->spare = pp;
    ps->nspare++;
}

static int pipe_empty(rs_pipe_t *pp)
{
    int n = -1;

    return ioctl(pp->rd, FIONREAD, &n) == 0 && n == 0;
}

/* ---- the pipe bucket: body bytes waiting in a pipe ---------------------- */

typedef struct held_t {
    pipeset_t *ps;
    rs_pipe_t *pipe;
    int handed;                 /* given to a taker, who may have drained it */
    int drained;                /* the taker took every byte */
} held_t;

static const apr_bucket_type_t held_type;

static void held_destroy(void *data)
{
    held_t *h = data;

    pipe_give(h->ps, h->pipe, h->drained
                              || (h->handed && pipe_empty(h->pipe)));
    pipeset_unref(h->ps);
    apr_bucket_free(h);
}

/* Someone wants the bytes in memory: read them out of the pipe and become
 * a heap bucket. */
static apr_status_t held_read(apr_bucket *b, const char **str,
                              apr_size_t *len, apr_read_type_e block)
{
    held_t *h = b->data;
    char *buf = apr_bucket_alloc(b->length, b->list);
    apr_size_t got = 0;
    server_rec *s;
    ssize_t n;

    while (got < b->length) {
        n = read(h->pipe->rd, buf + got, b->length - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {               /* EAGAIN: fewer bytes than promised */
            apr_bucket_free(buf);
            return APR_EGENERAL;
        }
        got += (apr_size_t)n;
    }
    h->drained = 1;
    s = h->ps->s;
    held_destroy(h);
    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s, RS_LOGNO(04053)
                 "a spliced piece of %" APR_SIZE_T_FMT " bytes was read into "
                 "memory (split, copied or read by a filter)", got);
    apr_bucket_heap_make(b, buf, got, apr_bucket_free);
    *str = buf;
    *len = got;
    return APR_SUCCESS;
}

static apr_status_t held_to_heap(apr_bucket *b)
{
    const char *str;
    apr_size_t len;

    return held_read(b, &str, &len, APR_BLOCK_READ);
}

static apr_status_t held_setaside(apr_bucket *b, apr_pool_t *p)
{
    return held_to_heap(b);
}

static apr_status_t held_split(apr_bucket *b, apr_size_t point)
{
    apr_status_t rv = held_to_heap(b);

    return APR_SUCCESS == rv ? apr_bucket_split(b, point) : rv;
}

static apr_status_t held_copy(apr_bucket *b, apr_bucket **c)
{
    apr_status_t rv = held_to_heap(b);

    return APR_SUCCESS == rv ? apr_bucket_copy(b, c) : rv;
}

static const apr_bucket_type_t held_type = {
    "RESUMABLE_PIPE", 5, APR_BUCKET_DATA,
    held_destroy,
    held_read,
    held_setaside,
    held_split,
    held_copy
};

int rs_httpd_netread_pipe(apr_bucket *b, int *fd)
{
    held_t *h = b->data;

    if (b->type != &held_type) {
        return 0;
    }
    h->handed = 1;
    *fd = h->pipe->rd;
    return 1;
}

void rs_httpd_netread_drained(apr_bucket *b)
{
    if (b->type == &held_type) {
        ((held_t *)b->data)->drained = 1;
    }
}

/* ---- the reading bucket -------------------------------------------------- */

struct rs_netread_t {
    apr_socket_t *sock;
    apr_bucket_brigade *bb;     /* the core input filter's */
    int fd;
    apr_size_t size;
    apr_off_t taken;            /* bytes read from the socket so far */
    apr_off_t body_end;         /* value of taken at the body's end, or -1 */
    apr_size_t ask;             /* bytes left of the handler's request */
    pipeset_t *ps;              /* splicing, or NULL */
};

static const apr_bucket_type_t netread_type;

static apr_bucket *netread_create(rs_netread_t *nr, apr_bucket_alloc_t *list)
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
    (void)data;                 /* rs_netread_t lives in the request pool */
}

/* recv up to nr->size bytes into a fresh buffer; short reads shrink it */
static apr_status_t netread_recv(rs_netread_t *nr, apr_bucket_alloc_t *list,
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

/* Bytes the next splice may take: the rest of the body, at most what the
 * handler asked for and one pipe; 0: read into memory. */
static apr_size_t splice_want(const rs_netread_t *nr)
{
    apr_off_t left = nr->ps && nr->body_end > nr->taken
                     ? nr->body_end - nr->taken : 0;

    left = left < PIPE_SIZE ? left : PIPE_SIZE;
    left = left < (apr_off_t)nr->ask ? left : (apr_off_t)nr->ask;
    return (apr_size_t)left;
}

static void splice_stop(rs_netread_t *nr)
{
    if (nr->ps) {
        pipeset_unref(nr->ps);
        nr->ps = NULL;
    }
}

/* Nothing to splice because the socket is at urgent (out-of-band) data:
 * splice stops in front of it for good, where recv() skips it. (Asking
 * whether the socket holds bytes instead would race with their arrival.)
 * Any other socket that polls readable but yields nothing is bounded by
 * the body loop's Timeout. */
static int splice_stuck(const rs_netread_t *nr)
{
    int mark = 0;

    return ioctl(nr->fd, SIOCATMARK, &mark) == 0 && mark;
}

/* splice up to want bytes from the socket into pp; waits for the socket
 * (up to its timeout) on a blocking read. *n 0: end of stream. EINVAL:
 * the socket cannot be spliced (now): read it into memory. */
static apr_status_t splice_in(rs_netread_t *nr, rs_pipe_t *pp,
                              apr_size_t want, apr_read_type_e block,
                              apr_size_t *n)
{
    apr_status_t rv;
    ssize_t got;

    for (;;) {
        got = splice(nr->fd, NULL, pp->wr, NULL, want,
                     SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (got >= 0) {
            *n = (apr_size_t)got;
            return APR_SUCCESS;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN && splice_stuck(nr)) {
            return APR_FROM_OS_ERROR(EINVAL);
        }
        if (errno != EAGAIN || APR_NONBLOCK_READ == block) {
            return APR_FROM_OS_ERROR(errno);
        }
        if (APR_SUCCESS != (rv = apr_wait_for_io_or_timeout(NULL, nr->sock,
                                                            1))) {
            return rv;
        }
    }
}

/* Become a pipe bucket of what one splice moved, followed by a new reading
 * bucket. APR_ENOTIMPL: splicing is not possible, read into memory. */
static apr_status_t netread_splice(apr_bucket *a, apr_size_t want,
                                   apr_read_type_e block, apr_size_t *len)
{
    rs_netread_t *nr = a->data;
    rs_pipe_t *pp = pipe_take(nr->ps);
    held_t *h;
    apr_status_t rv;

    if (!pp) {
        ap_log_error(APLOG_MARK, APLOG_DEBUG, errno, nr->ps->s,
                     RS_LOGNO(04054) "no %d-byte pipe (fs.pipe-user-pages-"
                     "soft spent?): reading the body into memory", PIPE_SIZE);
        splice_stop(nr);
        return APR_ENOTIMPL;
    }
    rv = splice_in(nr, pp, want, block, len);
    if (APR_SUCCESS != rv || 0 == *len) {
        pipe_give(nr->ps, pp, 1);
        if (APR_SUCCESS != rv && !APR_STATUS_IS_EAGAIN(rv)
            && !APR_STATUS_IS_TIMEUP(rv)) {
            splice_stop(nr);    /* EINVAL (urgent data), a denied splice
                                   or a socket error, which recv reports */
            return APR_ENOTIMPL;
        }
        return rv;
    }
    h = apr_bucket_alloc(sizeof(*h), a->list);
    h->ps = pipeset_ref(nr->ps);
    h->pipe = pp;
    h->handed = 0;
    h->drained = 0;
    APR_BUCKET_INSERT_AFTER(a, netread_create(nr, a->list));
    a->type = &held_type;
    a->data = h;
    a->start = 0;
    a->length = *len;
    return APR_SUCCESS;
}

/* Like APR's socket bucket: become a heap bucket holding what one read
 * returned (or a pipe bucket, splicing), followed by a new reading
 * bucket; at EOF an empty bucket. A pipe bucket's bytes are not in
 * memory: *str is NULL. Only the core input filter reads this bucket,
 * and in READBYTES mode, the only one splicing allows, it counts *len. */
static apr_status_t netread_read(apr_bucket *a, const char **str,
                                 apr_size_t *len, apr_read_type_e block)
{
    rs_netread_t *nr = a->data;
    apr_size_t want = splice_want(nr);
    apr_status_t rv = APR_ENOTIMPL;
    char *buf;

    *str = NULL;
    if (want > 0) {
        rv = netread_splice(a, want, block, len);
        if (APR_SUCCESS == rv && *len > 0) {
            nr->taken += *len;
            nr->ask = 0;        /* one splice, one pipe per request */
            return rv;
        }
    }
    else if (nr->ps && nr->body_end > nr->taken
             && APR_NONBLOCK_READ == block) {
        return APR_EAGAIN;      /* the handler's request is filled */
    }
    if (APR_STATUS_IS_ENOTIMPL(rv)) {
        rv = netread_recv(nr, a->list, block, &buf, len);
        if (APR_SUCCESS != rv) {
            return rv;
        }
        if (*len > 0) {
            nr->taken += *len;
            apr_bucket_heap_make(a, buf, *len, apr_bucket_free);
            *str = buf;
            APR_BUCKET_INSERT_AFTER(a, netread_create(nr, a->list));
            return APR_SUCCESS;
        }
        apr_bucket_free(buf);
    }
    else if (APR_SUCCESS != rv) {
        return rv;
    }
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

/* ---- installing and removing the reader --------------------------------- */

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
        return ((rs_netread_t *)e->data)->sock == sock ? e : NULL;
    }
    return e->data == sock ? e : NULL;
}

/* Bytes already read from the socket and waiting before the reader. */
static apr_off_t read_ahead(apr_bucket_brigade *bb, apr_bucket *reader)
{
    apr_off_t n = 0;
    apr_bucket *e;

    for (e = APR_BRIGADE_FIRST(bb); e != reader; e = APR_BUCKET_NEXT(e)) {
        n += e->length == (apr_size_t)-1 ? 0 : (apr_off_t)e->length;
    }
    return n;
}

static apr_status_t netread_cleanup(void *data)
{
    rs_httpd_netread_end(data);
    return APR_SUCCESS;
}

apr_status_t rs_httpd_netread_begin(request_rec *r, apr_size_t size,
                                    rs_netread_t **pnr)
{
    apr_socket_t *sock = NULL;
    apr_bucket_brigade *bb;
    apr_bucket *old;
    rs_netread_t *nr;
    apr_os_sock_t fd = -1;

    *pnr = NULL;
    if (r->connection->master || size <= APR_BUCKET_BUFF_SIZE
        || !(bb = core_brigade(r, &sock))
        || !(old = tail_reader(bb, &apr_bucket_type_socket, sock))
        || APR_SUCCESS != apr_os_sock_get(&fd, sock)) {
        return APR_ENOTIMPL;
    }
    nr = apr_pcalloc(r->pool, sizeof(*nr));
    nr->sock = sock;
    nr->bb = bb;
    nr->fd = fd;
    nr->size = size;
    nr->body_end = -1;
    nr->taken = read_ahead(bb, old);   /* body bytes already read */
    APR_BUCKET_INSERT_BEFORE(old, netread_create(nr, bb->bucket_alloc));
    apr_bucket_delete(old);
    apr_pool_cleanup_register(r->pool, r, netread_cleanup,
                              apr_pool_cleanup_null);
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, RS_LOGNO(04050)
                  "reading the body %" APR_SIZE_T_FMT " bytes at a time",
                  size);
    *pnr = nr;
    return APR_SUCCESS;
}

/* Input filters that only count the bytes of a READBYTES brigade
 * (apr_brigade_length without reading): pipe buckets pass them whole. */
static int filters_allow_pipes(request_rec *r)
{
    static const char *const counting[] = {
        "http_in", "reqtimeout", "log_input_output", "core_in", NULL
    };
    ap_filter_t *f;
    int i;

    for (f = r->input_filters; f; f = f->next) {
        for (i = 0; counting[i] && strcasecmp(f->frec->name, counting[i]);
             i++) {
        }
        if (!counting[i]) {
            ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, RS_LOGNO(04052)
                          "not splicing the body: input filter %s reads it",
                          f->frec->name);
            return 0;
        }
    }
    return 1;
}

static apr_status_t splice_cleanup(void *data)
{
    splice_stop(data);
    return APR_SUCCESS;
}

void rs_httpd_netread_splice(request_rec *r, rs_netread_t *nr,
                             apr_off_t length)
{
    pipeset_t *ps;

    if (!nr || nr->ps || nr->body_end >= 0 || length <= 0
        || !filters_allow_pipes(r)) {
        return;
    }
    ps = apr_bucket_alloc(sizeof(*ps), r->connection->bucket_alloc);
    ps->refs = 1;
    ps->s = r->server;
    ps->nspare = 0;
    ps->spare = NULL;
    ps->list = r->connection->bucket_alloc;
    nr->ps = ps;
    nr->body_end = length;
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, RS_LOGNO(04051)
                  "moving the body into the file in the kernel (splice), "
                  "%" APR_OFF_T_FMT " of %" APR_OFF_T_FMT " bytes left",
                  length - nr->taken, length);
    apr_pool_cleanup_register(r->pool, nr, splice_cleanup,
                              apr_pool_cleanup_null);
}

void rs_httpd_netread_ask(rs_netread_t *nr, apr_size_t bytes)
{
    apr_bucket *reader = nr ? tail_reader(nr->bb, &netread_type, nr->sock)
                            : NULL;
    apr_off_t ahead;

    if (reader) {               /* the core filter returns these first */
        ahead = read_ahead(nr->bb, reader);
        nr->ask = ahead < (apr_off_t)bytes ? bytes - (apr_size_t)ahead : 0;
    }
}

void rs_httpd_netread_end(request_rec *r)
{
    apr_socket_t *sock = NULL;
    apr_bucket_brigade *bb = core_brigade(r, &sock);
    apr_bucket *ours = bb ? tail_reader(bb, &netread_type, sock) : NULL;

    if (ours) {
        splice_stop(ours->data);
        APR_BUCKET_INSERT_BEFORE(ours, apr_bucket_socket_create(
                                     sock, bb->bucket_alloc));
        apr_bucket_delete(ours);
    }
}
