/* Licensed under the Apache License, Version 2.0. */
#ifndef RS_HOOK_H
#define RS_HOOK_H

/*
 * Design: application hooks (ResumableHook EVENT TARGET [timeout=S]
 * [failopen=on] [ca=FILE]), the APR-only part: events, targets, the JSON payload,
 * the answer of a blocking hook, a small HTTP/1.1 client and the durable
 * outbox of notifications.
 *
 * - Events: pre-create and pre-finish block (the engine asks the glue
 *   through rs_engine_hooks_t.gate before it stores a new upload and
 *   before it publishes a finished one); post-* are notifications the
 *   engine appends to the outbox ("o:<seq>" records of rs_store) in the
 *   same store transaction as the change they report. post-receive is
 *   offered with every stored progress of an unfinished append-mode
 *   upload; the glue keeps at most one a second per upload.
 * - Targets: an absolute "http(s)://host[:port]/path" URL, or a local path
 *   "/path" that the glue sends to the server's own listener, so httpd
 *   routes it (ProxyPass, CGI, mod_lua) with its own TLS, timeouts, logs.
 *   A loopback request (not a subrequest) is used because notifications
 *   are delivered from the watchdog thread, where there is no request to
 *   hang a subrequest on, and because a subrequest cannot carry a POST
 *   body to mod_proxy/mod_cgid without faking the input filters.
 * - https targets: TLS (OpenSSL) over the connected socket, within the
 *   hook's one deadline (handshake included), TLS 1.2 at least, SNI for a
 *   host name, the server's certificate verified against the system CA
 *   store (or only the hook's ca=FILE, checked at config time) and its
 *   name or IP address checked. Any TLS failure is "unreachable": fail
 *   closed unless failopen=on; notifications are retried.
 * - Payload: {"event","id","time","upload":{...},"request":{...}}; the
 *   request part is NULL for events the sweep causes (post-expire).
 * - Answer of a blocking hook: 2xx goes on; its JSON body may change
 *   "metadata" (object of strings), "filename" (string) and "size_limit"
 *   (integer bytes) - a pre-finish answer only "filename", the published
 *   name; anything else in it is refused (strict). Non-2xx
 *   rejects: the status and a bounded, sanitized text body go to the
 *   client in the protocol's form; no header of the answer is passed on.
 */

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>
#include <apr_network_io.h>
#include "rs_upload.h"
#include "rs_error.h"

struct rs_txn_t;
struct rs_store_t;

typedef enum {
    RS_HOOK_PRE_CREATE = 0,
    RS_HOOK_POST_CREATE,
    RS_HOOK_PRE_FINISH,
    RS_HOOK_POST_FINISH,
    RS_HOOK_POST_TERMINATE,
    RS_HOOK_POST_EXPIRE,
    RS_HOOK_POST_RECEIVE,           /* progress: an append stored bytes */
    RS_HOOK__COUNT
} rs_hook_event_t;

#define RS_HOOK_DEF_TIMEOUT apr_time_from_sec(10)
#define RS_HOOK_MAX_TIMEOUT apr_time_from_sec(300)
#define RS_HOOK_MAX_ANSWER  (64 * 1024)   /* answer bytes read at most */
#define RS_HOOK_MAX_TEXT    1024          /* rejection text passed on */

/** One configured hook. */
typedef struct rs_hook_t {
    rs_hook_event_t event;
    const char *target;             /* as configured */
    int local;                      /* "/path": the server itself */
    int tls;                        /* https:// */
    const char *host;               /* absolute URL: host, port */
    apr_port_t port;
    const char *ca_file;            /* ca=FILE: trust only these CAs */
    const char *path;               /* path and query */
    apr_interval_time_t timeout;
    int failopen;
} rs_hook_t;

/** Hooks of an area, by event (NULL: none). "none" targets are NULL. */
typedef struct rs_hooks_t {
    const rs_hook_t *on[RS_HOOK__COUNT];
} rs_hooks_t;

/** Event name ("pre-create"); event by name (-1 unknown). */
const char *rs_hook_event_name(rs_hook_event_t ev);
int rs_hook_event_find(const char *name);
/** 1 for the blocking events. */
int rs_hook_blocking(rs_hook_event_t ev);

/**
 * Parse the arguments of one ResumableHook directive. *hook is NULL for
 * target "none" (removes an inherited hook). Returns NULL or a message.
 */
const char *rs_hook_parse(apr_pool_t *p, const char *event,
                          const char *target, int nopts,
                          const char *const *opts, int *ev,
                          rs_hook_t **hook);

/** Parse "http(s)://host[:port]/path" (no userinfo, no fragment); *tls
 *  is set for https (default port 443). */
apr_status_t rs_hook_parse_url(apr_pool_t *p, const char *url, int *tls,
                               const char **host, apr_port_t *port,
                               const char **path);

/** Can file serve as ca=FILE (PEM certificates OpenSSL loads)? NULL or a
 *  message. */
const char *rs_hook_ca_check(apr_pool_t *p, const char *file);

/** What a payload tells about the request (NULL fields are left out). */
typedef struct rs_hook_req_t {
    const char *method;
    const char *uri;
    const char *remote;
    const char *user;
    apr_table_t *headers;           /* the selected ones, or NULL */
} rs_hook_req_t;

/** Request headers a payload carries (never credentials or cookies). */
extern const char *const rs_hook_headers[];

/**
 * The payload of event ev about u (JSON text from p). event_id: a fresh
 * id (rs_util_id_new) the receiver may deduplicate with; req may be NULL.
 * For pre-finish, where the application may check the content: data_path,
 * the file holding all bytes (upload.data_path), or data_parts, the files
 * whose leading bytes make it up in order (rs_part_t, upload.data_parts:
 * [{"path","length"}], a concatenation or merged chunks); else NULL.
 */
const char *rs_hook_payload(apr_pool_t *p, rs_hook_event_t ev,
                            const char *event_id, const rs_upload_t *u,
                            const rs_hook_req_t *req, const char *data_path,
                            const apr_array_header_t *data_parts);

/** What a 2xx answer changes (NULL / -1: nothing). */
typedef struct rs_hook_change_t {
    const char *metadata;           /* tus Upload-Metadata form ("": an
                                       empty object, no metadata) */
    const char *filename;
    apr_off_t size_limit;
} rs_hook_change_t;

/** Parse a 2xx answer body (may be empty). NULL or a message. */
const char *rs_hook_answer(apr_pool_t *p, const char *body, apr_size_t len,
                           rs_hook_change_t *chg);

/** A rejection's text: printable, one line per line, bounded. */
const char *rs_hook_text(apr_pool_t *p, const char *body, apr_size_t len);

/* ---- HTTP client ------------------------------------------------------ */

typedef struct rs_hook_resp_t {
    int status;
    const char *body;
    apr_size_t len;
    const char *error;              /* why TLS failed, or NULL */
} rs_hook_resp_t;

/** TLS of a request (rs_hook_post): verified against ca_file, or the
 *  system CA store when NULL; name checked against host. */
typedef struct rs_hook_tls_t {
    const char *ca_file;
} rs_hook_tls_t;

/**
 * POST json to http(s)://host:port/path (Host: host_hdr) with Connection:
 * close, within timeout in all (TLS handshake included; tls NULL: plain
 * HTTP). Reads at most RS_HOOK_MAX_ANSWER bytes of body (Content-Length,
 * chunked or till close). APR_TIMEUP on timeout, a connect error as is,
 * APR_EGENERAL for a malformed answer or a TLS failure (resp->error).
 */
apr_status_t rs_hook_post(apr_pool_t *p, const char *host, apr_port_t port,
                          const rs_hook_tls_t *tls,
                          const char *host_hdr, const char *path,
                          const char *extra_headers, const char *json,
                          apr_interval_time_t timeout, rs_hook_resp_t *resp);

/* ---- outbox ------------------------------------------------------------ */

/** A pending notification ("o:<seq>" in the store). */
typedef struct rs_outbox_ev_t {
    const char *key;                /* store key */
    const char *id;                 /* event id */
    const char *event;              /* name */
    const char *url;                /* http(s)://addr:port/path */
    const char *host;               /* Host header */
    const char *ca_file;            /* https: ca=FILE, or NULL */
    apr_interval_time_t timeout;
    int attempts;
    apr_time_t next;                /* next attempt not before */
    const char *last_error;
    const char *payload;
} rs_outbox_ev_t;

/** Append ev (key and id are made here) inside an open write txn. */
apr_status_t rs_outbox_add(struct rs_txn_t *txn, rs_outbox_ev_t *ev,
                           apr_pool_t *p);
/** Every pending event (ordered oldest first), at most max; *total (if
 *  not NULL) how many are pending in all. */
apr_status_t rs_outbox_list(struct rs_store_t *s, apr_pool_t *p, int max,
                            apr_array_header_t **evs, int *total);
/** Decode a stored record. */
apr_status_t rs_outbox_decode(apr_pool_t *p, const char *key,
                              const char *val, apr_size_t len,
                              rs_outbox_ev_t **ev);
/** Store ev again (after an attempt), or drop it. */
apr_status_t rs_outbox_update(struct rs_store_t *s, const rs_outbox_ev_t *ev,
                              apr_pool_t *p);
apr_status_t rs_outbox_drop(struct rs_store_t *s, const char *key,
                            apr_pool_t *p);
/**
 * Is a round of the deliverer due (a scan could find a due event)?
 * APR_SUCCESS with *gen (the marker's generation) if so, APR_EAGAIN when
 * the earliest retry is later, APR_ENOENT when the outbox is empty.
 */
apr_status_t rs_outbox_due(struct rs_store_t *s, apr_pool_t *p,
                           apr_time_t now, apr_uint64_t *gen);
/** After a round that began at generation gen: left events remain, the
 *  earliest due at next (ignored when a new event came meanwhile). */
apr_status_t rs_outbox_settle(struct rs_store_t *s, apr_pool_t *p,
                              apr_uint64_t gen, int left, apr_time_t next);
/** Make the deliverer scan now (after replaying events). */
apr_status_t rs_outbox_wake(struct rs_store_t *s, apr_pool_t *p);
/** Backoff before attempt n+1 (1 s doubling, at most 10 min). */
apr_interval_time_t rs_outbox_backoff(int attempts);
/** Deliver ev once: APR_SUCCESS on a 2xx answer; *status the answer's
 *  (0: none), *error why TLS failed (or NULL). */
apr_status_t rs_outbox_send(const rs_outbox_ev_t *ev, apr_pool_t *p,
                            int *status, const char **error);

#endif /* RS_HOOK_H */
