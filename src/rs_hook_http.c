/* Licensed under the Apache License, Version 2.0. */
/*
 * A small HTTP/1.1 client for hooks: one POST per connection (Connection:
 * close), one overall deadline for connect, send and the answer. The answer
 * is bounded (RS_HOOK_MAX_ANSWER): a longer body is cut, which is enough to
 * decide (status) and to pass a short text on. Content-Length, chunked
 * coding and read-till-close are understood; anything else is malformed.
 *
 * https: OpenSSL on the connected socket's descriptor, which APR keeps
 * non-blocking (a socket timeout is set): every SSL call that wants to
 * read or write waits with apr_poll for what is left of the deadline, so
 * a silent server times the handshake out like any other step. A context
 * per request (a hook call is rare next to the upload it gates); the
 * thread's OpenSSL error queue is left empty (mod_ssl shares it).
 */

#include <stdlib.h>
#include <apr_strings.h>
#include <apr_lib.h>
#include <apr_network_io.h>
#include <apr_poll.h>
#include <apr_portable.h>
#include <apr_file_info.h>

#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "rs_hook.h"
#include "rs_util.h"

#define HEAD_MAX (16 * 1024)

typedef struct conn_t {
    apr_socket_t *s;
    SSL *ssl;                       /* https, or NULL */
    const char *error;              /* why TLS failed */
    apr_pool_t *p;
    apr_time_t deadline;
    char *buf;                      /* everything read so far */
    apr_size_t len, cap;
    int closed;
} conn_t;

static apr_status_t arm(conn_t *c)
{
    apr_interval_time_t left = c->deadline - apr_time_now();

    if (left <= 0) {
        return APR_TIMEUP;
    }
    return apr_socket_timeout_set(c->s, left);
}

/* ---- TLS ---------------------------------------------------------------- */

/* Wait until the socket can do what OpenSSL wants (err), within the
 * deadline. */
static apr_status_t tls_wait(conn_t *c, int err)
{
    apr_pollfd_t pfd = { 0 };
    apr_int32_t n = 0;
    apr_interval_time_t left = c->deadline - apr_time_now();

    if (left <= 0) {
        return APR_TIMEUP;
    }
    pfd.p = c->p;
    pfd.desc_type = APR_POLL_SOCKET;
    pfd.desc.s = c->s;
    pfd.reqevents = SSL_ERROR_WANT_WRITE == err ? APR_POLLOUT : APR_POLLIN;
    return apr_poll(&pfd, 1, &n, left);
}

/* After an SSL call returned ret: *again (after waiting) when it wants
 * I/O, APR_EOF at the end of the stream, else APR_EGENERAL (c->error). */
static apr_status_t tls_result(conn_t *c, int ret, int *again)
{
    int err = SSL_get_error(c->ssl, ret);
    unsigned long e = ERR_peek_last_error();
    long vr;

    *again = 0;
    if (SSL_ERROR_WANT_READ == err || SSL_ERROR_WANT_WRITE == err) {
        *again = 1;
        return tls_wait(c, err);
    }
    if (SSL_ERROR_ZERO_RETURN == err || (SSL_ERROR_SYSCALL == err && !e)) {
        ERR_clear_error();
        return APR_EOF;
    }
    vr = SSL_get_verify_result(c->ssl);
    c->error = X509_V_OK != vr
               ? apr_pstrcat(c->p, "certificate verify failed: ",
                             X509_verify_cert_error_string(vr), NULL)
               : e ? apr_pstrdup(c->p, ERR_reason_error_string(e)
                                 ? ERR_reason_error_string(e) : "TLS error")
               : "TLS error";
    ERR_clear_error();
    return APR_EGENERAL;
}

static SSL_CTX *tls_ctx(const char *ca_file)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)
        || !(ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
             : SSL_CTX_set_default_verify_paths(ctx))) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
    return ctx;
}

const char *rs_hook_ca_check(apr_pool_t *p, const char *file)
{
    apr_finfo_t fi;
    SSL_CTX *ctx;

    if (APR_SUCCESS != apr_stat(&fi, file, APR_FINFO_TYPE, p)
        || APR_REG != fi.filetype) {
        return "no such file";
    }
    ctx = tls_ctx(file);
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return ctx ? NULL : "no PEM certificate OpenSSL can load";
}

/* TLS on the connected socket: SNI and name check for a host name, an IP
 * address checked as such; the handshake within the deadline. */
static apr_status_t tls_open(conn_t *c, const char *host,
                             const rs_hook_tls_t *t)
{
    SSL_CTX *ctx = tls_ctx(t->ca_file);
    apr_os_sock_t fd;
    apr_status_t rv = APR_SUCCESS;
    int again = 1;

    c->ssl = ctx ? SSL_new(ctx) : NULL;
    SSL_CTX_free(ctx);                  /* the SSL holds a reference */
    if (!c->ssl || APR_SUCCESS != apr_os_sock_get(&fd, c->s)
        || !SSL_set_fd(c->ssl, fd)) {
        ERR_clear_error();
        c->error = t->ca_file ? "cannot load the CA file" : "TLS setup";
        return APR_EGENERAL;
    }
    if (!X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), host)) {
        if (!SSL_set_tlsext_host_name(c->ssl, host)
            || !SSL_set1_host(c->ssl, host)) {
            ERR_clear_error();
            c->error = "TLS setup (host name)";
            return APR_EGENERAL;
        }
        SSL_set_hostflags(c->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    }
    ERR_clear_error();
    while (APR_SUCCESS == rv && again) {
        int ret = SSL_connect(c->ssl);
        if (1 == ret) {
            return APR_SUCCESS;
        }
        rv = tls_result(c, ret, &again);
    }
    return APR_STATUS_IS_EOF(rv) ? APR_ECONNRESET : rv;
}

static apr_status_t tls_send(conn_t *c, const char *data, apr_size_t *len)
{
    apr_status_t rv = APR_SUCCESS;
    int again = 1, n = *len > (1 << 30) ? (1 << 30) : (int)*len;

    *len = 0;
    while (APR_SUCCESS == rv && again) {
        int ret;
        ERR_clear_error();
        if ((ret = SSL_write(c->ssl, data, n)) > 0) {
            *len = (apr_size_t)ret;
            return APR_SUCCESS;
        }
        rv = tls_result(c, ret, &again);
    }
    return APR_STATUS_IS_EOF(rv) ? APR_ECONNRESET : rv;
}

static apr_status_t tls_recv(conn_t *c, char *buf, apr_size_t *len)
{
    apr_status_t rv = APR_SUCCESS;
    int again = 1, n = *len > (1 << 30) ? (1 << 30) : (int)*len;

    *len = 0;
    while (APR_SUCCESS == rv && again) {
        int ret;
        ERR_clear_error();
        if ((ret = SSL_read(c->ssl, buf, n)) > 0) {
            *len = (apr_size_t)ret;
            return APR_SUCCESS;
        }
        rv = tls_result(c, ret, &again);
    }
    return rv;
}

/* ---- HTTP ---------------------------------------------------------------- */

static apr_status_t send_all(conn_t *c, const char *data, apr_size_t len)
{
    apr_status_t rv = APR_SUCCESS;

    while (len && APR_SUCCESS == rv && APR_SUCCESS == (rv = arm(c))) {
        apr_size_t n = len;
        rv = c->ssl ? tls_send(c, data, &n) : apr_socket_send(c->s, data, &n);
        data += n;
        len -= n;
    }
    return rv;
}

/* Read more into c->buf (up to cap); sets closed at EOF. */
static apr_status_t fill(conn_t *c)
{
    apr_size_t n = c->cap - c->len;
    apr_status_t rv;

    if (c->closed || !n) {
        return c->closed ? APR_EOF : APR_ENOSPC;
    }
    if (APR_SUCCESS != (rv = arm(c))) {
        return rv;
    }
    rv = c->ssl ? tls_recv(c, c->buf + c->len, &n)
         : apr_socket_recv(c->s, c->buf + c->len, &n);
    c->len += n;
    if (APR_STATUS_IS_EOF(rv)) {
        c->closed = 1;
        return n ? APR_SUCCESS : APR_EOF;
    }
    return rv;
}

static const char *find_crlf2(const char *b, apr_size_t len)
{
    apr_size_t i;

    for (i = 0; i + 3 < len; i++) {
        if (!memcmp(b + i, "\r\n\r\n", 4)) {
            return b + i;
        }
    }
    return NULL;
}

/* Value of header name in the head [h, end), or NULL. */
static const char *head_get(apr_pool_t *p, const char *h, const char *end,
                            const char *name)
{
    apr_size_t n = strlen(name);

    while (h < end) {
        const char *eol = h;
        while (eol < end && *eol != '\r') {
            eol++;
        }
        if ((apr_size_t)(eol - h) > n && h[n] == ':'
            && !strncasecmp(h, name, n)) {
            const char *v = h + n + 1;
            while (v < eol && (*v == ' ' || *v == '\t')) {
                v++;
            }
            return apr_pstrndup(p, v, eol - v);
        }
        h = eol + 2;
    }
    return NULL;
}

/* Decode a chunked body in place: [b, b+*len) -> *len bytes. */
static apr_status_t dechunk(char *b, apr_size_t *len, int complete)
{
    apr_size_t in = 0, out = 0;

    while (in < *len) {
        char *stop;
        apr_int64_t n;
        const char *eol = memchr(b + in, '\n', *len - in);

        if (!eol || !apr_isxdigit(b[in])) {
            return complete ? APR_EGENERAL : APR_SUCCESS;
        }
        n = apr_strtoi64(b + in, &stop, 16);
        if (n < 0 || n > RS_HOOK_MAX_ANSWER) {
            return APR_EGENERAL;
        }
        in = (eol - b) + 1;
        if (0 == n) {
            break;
        }
        n = (apr_int64_t)(*len - in) < n ? (apr_int64_t)(*len - in) : n;
        memmove(b + out, b + in, (apr_size_t)n);
        out += (apr_size_t)n;
        in += (apr_size_t)n + 2;
    }
    *len = out;
    return APR_SUCCESS;
}

static apr_status_t read_answer(conn_t *c, apr_pool_t *p,
                                rs_hook_resp_t *resp)
{
    const char *end = NULL, *te, *cl;
    apr_size_t hlen, want = 0;
    apr_status_t rv = APR_SUCCESS;
    apr_off_t n = -1;
    char *body;

    while (!(end = find_crlf2(c->buf, c->len))) {
        if (c->len >= HEAD_MAX || APR_SUCCESS != (rv = fill(c))) {
            return APR_STATUS_IS_TIMEUP(rv) ? rv : APR_EGENERAL;
        }
    }
    if (c->len < 12 || strncmp(c->buf, "HTTP/1.", 7) || c->buf[8] != ' '
        || !apr_isdigit(c->buf[9]) || !apr_isdigit(c->buf[10])
        || !apr_isdigit(c->buf[11])) {
        return APR_EGENERAL;
    }
    resp->status = atoi(c->buf + 9);
    if (resp->status < 200 || resp->status > 599) {
        return APR_EGENERAL;           /* 1xx are not expected: we do not
                                          ask for 100-continue */
    }
    hlen = (end - c->buf) + 4;
    te = head_get(p, strchr(c->buf, '\n') + 1, end + 2, "Transfer-Encoding");
    cl = head_get(p, strchr(c->buf, '\n') + 1, end + 2, "Content-Length");
    if (cl && (te || APR_SUCCESS != rs_util_parse_off(cl, &n))) {
        return APR_EGENERAL;
    }
    if (te && strcasecmp(te, "chunked")) {
        return APR_EGENERAL;
    }
    if (204 == resp->status || 304 == resp->status) {
        n = 0;                          /* no body, whatever it says */
        te = NULL;
    }
    if (n >= 0) {
        want = hlen + (apr_size_t)(n < RS_HOOK_MAX_ANSWER ? n
                                   : RS_HOOK_MAX_ANSWER);
    }
    while (APR_SUCCESS == rv && c->len < c->cap && (n < 0 || c->len < want)) {
        if (te && c->len > hlen + 4
            && !memcmp(c->buf + c->len - 5, "0\r\n\r\n", 5)) {
            break;
        }
        rv = fill(c);
    }
    if (!APR_STATUS_IS_EOF(rv) && APR_SUCCESS != rv
        && !APR_STATUS_IS_ENOSPC(rv)) {
        return rv;
    }
    resp->len = c->len - hlen;
    if (n >= 0 && resp->len > (apr_size_t)n) {
        resp->len = (apr_size_t)n;
    }
    body = apr_pstrmemdup(p, c->buf + hlen, resp->len);
    if (te && APR_SUCCESS != dechunk(body, &resp->len,
                                     !APR_STATUS_IS_ENOSPC(rv))) {
        return APR_EGENERAL;
    }
    body[resp->len] = '\0';
    resp->body = body;
    return APR_SUCCESS;
}

apr_status_t rs_hook_post(apr_pool_t *p, const char *host, apr_port_t port,
                          const rs_hook_tls_t *tls, const char *host_hdr, const char *path,
                          const char *extra_headers, const char *json,
                          apr_interval_time_t timeout, rs_hook_resp_t *resp)
{
    apr_sockaddr_t *sa;
    conn_t c = { 0 };
    const char *head;
    apr_status_t rv;

    memset(resp, 0, sizeof(*resp));
    c.p = p;
    c.deadline = apr_time_now() + timeout;
    rv = apr_sockaddr_info_get(&sa, host, APR_UNSPEC, port, 0, p);
    if (APR_SUCCESS == rv) {
        rv = apr_socket_create(&c.s, sa->family, SOCK_STREAM, APR_PROTO_TCP, p);
    }
    if (APR_SUCCESS == rv && APR_SUCCESS == (rv = arm(&c))) {
        rv = apr_socket_connect(c.s, sa);
    }
    if (APR_SUCCESS == rv) {
        apr_socket_opt_set(c.s, APR_TCP_NODELAY, 1);
        rv = tls ? tls_open(&c, host, tls) : APR_SUCCESS;
    }
    if (APR_SUCCESS == rv) {
        head = apr_psprintf(p, "POST %s HTTP/1.1\r\nHost: %s\r\n"
                            "Content-Type: application/json\r\n"
                            "Content-Length: %" APR_SIZE_T_FMT "\r\n"
                            "Accept: application/json, text/plain\r\n"
                            "User-Agent: mod_resumable-hook\r\n%s"
                            "Connection: close\r\n\r\n", path, host_hdr,
                            strlen(json), extra_headers ? extra_headers : "");
        rv = send_all(&c, head, strlen(head));
    }
    if (APR_SUCCESS == rv) {
        rv = send_all(&c, json, strlen(json));
    }
    if (APR_SUCCESS == rv) {
        c.cap = HEAD_MAX + RS_HOOK_MAX_ANSWER;
        c.buf = apr_palloc(p, c.cap);
        rv = read_answer(&c, p, resp);
    }
    resp->error = c.error;
    if (c.ssl) {
        SSL_free(c.ssl);
        ERR_clear_error();
    }
    if (c.s) {
        apr_socket_close(c.s);
    }
    return rv;
}
