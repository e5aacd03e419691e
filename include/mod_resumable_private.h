/* Licensed under the Apache License, Version 2.0. */
#ifndef MOD_RESUMABLE_PRIVATE_H
#define MOD_RESUMABLE_PRIVATE_H

/*
 * Design: what the glue files (mod_resumable.c, src/mod_resumable_*.c)
 * share: the module declaration for APLOG_USE_MODULE, the process-wide
 * engine and the entry points each glue file offers the others. The glue
 * is thin: it turns httpd's request into the APR-only request view and
 * back; all upload logic is in the rs_* core.
 */

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include "rs_engine.h"
#include "rs_proto.h"
#include "rs_log.h"

extern module AP_MODULE_DECLARE_DATA resumable_module;
APLOG_USE_MODULE(resumable);

#define RS_MUTEX_TYPE "resumable-statedb"

/* mod_resumable_state.c: state database, mutex, log seam (pre/post/child) */
void rs_httpd_state_pre_config(apr_pool_t *pconf);
int rs_httpd_state_post_config(apr_pool_t *pconf, apr_pool_t *ptemp,
                               server_rec *s);
void rs_httpd_state_child_init(apr_pool_t *p, server_rec *s);
/** PATH of the state database (its files are PATH and PATH.*), or NULL
 *  before post_config. */
const char *rs_httpd_statedb_path(void);
/** Is the state in PostgreSQL (ResumableStateDB dbd:)? */
int rs_httpd_cluster(void);
/** The process-wide engine (NULL before post_config). */
rs_engine_t *rs_httpd_engine(void);
/** The engine for a background job (the sweep), NULL while the child
 *  exits; rs_httpd_engine_release() when done (the child's exit waits). */
rs_engine_t *rs_httpd_engine_hold(void);
void rs_httpd_engine_release(void);

/* mod_resumable_gc.c: the expiry sweep on mod_watchdog */
int rs_httpd_gc_post_config(apr_pool_t *pconf, server_rec *s);

/* mod_resumable_hook.c: application hooks (rs_hook.h) */
/** Engine callbacks and the deliverer, when any ResumableHook is set. */
int rs_httpd_hook_post_config(apr_pool_t *pconf, server_rec *s);
/** Leave r's hook context for the engine when r's area has hooks. */
void rs_httpd_hook_request(request_rec *r);

/* mod_resumable_request.c: one request through a front end */
int rs_httpd_handle(request_rec *r);

/** Add CORS response headers to out when the request's Origin is allowed. */
void rs_httpd_cors(request_rec *r, apr_table_t *out);

/* mod_resumable_netread.c: large socket reads for an upload body */
typedef struct rs_netread_t rs_netread_t;
/** Let the connection's core input filter read up to `size` bytes per
 *  read() from now on (HTTP/1.x without a secondary connection only);
 *  undone by rs_httpd_netread_end or when r's pool goes. APR_ENOTIMPL:
 *  the connection is not one it can change (httpd's reads stay). */
apr_status_t rs_httpd_netread_begin(request_rec *r, apr_size_t size,
                                    rs_netread_t **nr);
/** From now on move the rest of a body of `length` bytes from the socket
 *  into pipe buckets (splice), when only byte-counting filters are in the
 *  way; else nothing changes. */
void rs_httpd_netread_splice(request_rec *r, rs_netread_t *nr,
                             apr_off_t length);
/** The handler asks for `bytes` with its next ap_get_brigade: the reader
 *  splices no more than that (no pipe bucket is split). */
void rs_httpd_netread_ask(rs_netread_t *nr, apr_size_t bytes);
/** b is a pipe bucket: *fd is its pipe, holding all of b's bytes, for
 *  the caller to take (splice) before b is deleted. */
int rs_httpd_netread_pipe(apr_bucket *b, int *fd);
/** The taker of pipe bucket b took all of its bytes (its pipe is reused
 *  without asking the kernel). */
void rs_httpd_netread_drained(apr_bucket *b);
/** Give the connection back its own socket bucket (idempotent). */
void rs_httpd_netread_end(request_rec *r);

/* mod_resumable_status.c: counters in shared memory (rs_stats.h), the
 * mod_status section, and the variables of each upload request.
 *
 * Variables: once a front end answered, the request's subprocess_env
 * (for LogFormat "%{NAME}e", CGI, mod_rewrite, mod_headers) and r->notes
 * (for "%{NAME}n" and other modules) carry what it did to its upload.
 * Unset when not known (OPTIONS, a request that named no upload). */
#define RS_ENV_ID            "RESUMABLE_ID"        /* the upload id */
#define RS_ENV_PROTOCOL      "RESUMABLE_PROTOCOL"  /* tus, ietf, offset,
                                                      slice, md5, flow */
#define RS_ENV_OFFSET_BEFORE "RESUMABLE_OFFSET_BEFORE" /* bytes stored
                                                      before this request */
#define RS_ENV_OFFSET        "RESUMABLE_OFFSET"    /* ... and after it */
#define RS_ENV_BYTES         "RESUMABLE_BYTES"     /* bytes this request
                                                      added (a chunk's size
                                                      for chunk protocols) */
#define RS_ENV_COMPLETE      "RESUMABLE_COMPLETE"  /* 1: the upload is
                                                      complete, else 0 */
#define RS_ENV_CREATED       "RESUMABLE_CREATED"   /* 1: created by this
                                                      request */
#define RS_ENV_TERMINATED    "RESUMABLE_TERMINATED" /* 1: deleted by it */
#define RS_ENV_ERROR         "RESUMABLE_ERROR"     /* ERR_... of a 4xx/5xx */
#define RS_ENV_STATE_WRITES  "RESUMABLE_STATE_WRITES" /* state database
                                                      write transactions of
                                                      the request (set on
                                                      every request the
                                                      module answers) */
#define RS_ENV_STATE_READS   "RESUMABLE_STATE_READS" /* ... read ones */
/** Note the state transactions so far at the start of a request (for
 *  RESUMABLE_STATE_WRITES/READS, counted by rs_httpd_account). */
void rs_httpd_txn_mark(request_rec *r);
/** Create (first start) or find again (restarts) the counters' shared
 *  memory and count into it from now on. */
int rs_httpd_status_post_config(apr_pool_t *pconf, server_rec *s);
/** Register the mod_status hook. */
void rs_httpd_status_register(void);
/** Count an answered front-end request (status sent) and export its
 *  variables. */
void rs_httpd_account(request_rec *r, const rs_req_t *req, int status);

/* mod_resumable_walk.c: ResumableMapToStorage Off */
/** translate_name (after mod_alias, before core): mark a request of an
 *  area that may skip the directory walk (rs_conf_skip_walk). DECLINED. */
int rs_httpd_walk_translate(request_rec *r);
/** map_to_storage (first): OK for a marked request, so core's directory
 *  and file walk do not run (as mod_proxy does); else DECLINED. */
int rs_httpd_walk_map(request_rec *r);

/* mod_resumable_download.c: GET/HEAD of a finished upload */
int rs_httpd_download(request_rec *r, const rs_upload_t *u);
/** Headers that keep a browser from running what it downloads: nosniff,
 *  a sandboxing Content-Security-Policy, and Content-Disposition:
 *  attachment unless `type` is on the area's inline list. */
void rs_httpd_safe_headers(request_rec *r, const char *type,
                           const char *disposition_name);
/** A request that maps into an upload area's directory (`staging`: into
 *  its .resumable folder) and that no front end took: 404 unless the
 *  files are public there (ResumablePublish), then DECLINED with the
 *  safety headers set, for httpd to serve the file. */
int rs_httpd_store_request(request_rec *r, int staging);
/** Fixup: the same for requests outside any area (another URL mapping
 *  into a ResumableDir: an Alias, the DocumentRoot). */
int rs_httpd_store_guard(request_rec *r);
/** Fixup: "Range: bytes=N" (no dash, sent by design document 000's page)
 *  becomes "bytes=N-" for every GET, before the byterange filter. */
int rs_httpd_range_fixup(request_rec *r);

#endif
