/* Licensed under the Apache License, Version 2.0. */
/*
 * Directives, create/merge, and the accessors that apply defaults.
 * See include/mod_resumable_config.h for the rules.
 */

#include <apr_strings.h>
#include <apr_dbm.h>
#include <apr_lib.h>

#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_request.h>

#include "mod_resumable_private.h"
#include "mod_resumable_config.h"
#include "rs_util.h"
#include "rs_data.h"

#define DEF_EXPIRE      apr_time_from_sec(7 * 86400)
#define DEF_SWEEP       apr_time_from_sec(60)
#define DEF_LOCK_WAIT   apr_time_from_sec(5)
#define DEF_STALL       apr_time_from_sec(2)
#define DEF_WRITE_BUF   (512 * 1024)
#define MIN_WRITE_BUF   (4 * 1024)
#define MAX_WRITE_BUF   (64 * 1024 * 1024)
#define DEF_READ_SIZE   (256 * 1024)
#define MAX_READ_SIZE   (2 * 1024 * 1024)

/* Types a browser may show inline: no script-capable type (no HTML, SVG,
 * XML), as tusd's allow-list. */
static const char *const default_inline[] = {
    "text/plain", "image/png", "image/jpeg", "image/gif", "image/bmp",
    "image/webp", "image/avif", "audio/wav", "audio/x-wav", "audio/webm",
    "audio/ogg", "audio/mpeg", "audio/mp4", "video/webm", "video/ogg",
    "video/mp4", NULL
};

/* Extensions httpd (or a handler mapped on the area) could execute: a
 * finished file never keeps one as a real extension (rs_util_defuse_name). */
static const char *const default_deny[] = {
    "php", "php3", "php4", "php5", "php7", "php8", "phtml", "pht", "phps",
    "phar", "cgi", "fcgi", "pl", "py", "rb", "sh", "shtml", "shtm", "stm",
    "asp", "aspx", "jsp", "jspx", "htaccess", "htpasswd", NULL
};

/* Every ResumableDir of the config (absolute, no trailing slash): a
 * request that maps into one outside its area is refused unless the files
 * are public (rs_conf_in_store). Rebuilt from pconf at every (re)start. */
static apr_array_header_t *store_dirs;

void rs_conf_reset(apr_pool_t *pconf)
{
    store_dirs = apr_array_make(pconf, 4, sizeof(const char *));
}

/* ------------------------------------------------------------------------ */
/* create / merge                                                            */

void *rs_conf_create_dir(apr_pool_t *p, char *dir)
{
    rs_dir_conf_t *d = apr_pcalloc(p, sizeof(*d));

    d->section = dir;
    d->max_size = d->ht_max_size = RS_UNSET;
    d->expire = d->ht_expire = RS_UNSET;
    d->protocols = d->ht_protocols = RS_UNSET;
    d->sync = d->trust_forwarded = RS_UNSET;
    d->lock_wait = d->stall_time = RS_UNSET;
    d->publish = RS_UNSET;
    return d;
}

#define MERGE(f) n->f = (add->f != RS_UNSET) ? add->f : base->f
#define MERGE_PTR(f) n->f = add->f ? add->f : base->f

/* The smaller of two "only lower" limits, either may be unset. */
static apr_int64_t lower(apr_int64_t a, apr_int64_t b)
{
    if (a == RS_UNSET) {
        return b;
    }
    return (b == RS_UNSET || a < b) ? a : b;
}

void *rs_conf_merge_dir(apr_pool_t *p, void *basev, void *addv)
{
    rs_dir_conf_t *base = basev, *add = addv;
    rs_dir_conf_t *n = apr_pcalloc(p, sizeof(*n));

    MERGE_PTR(section);
    MERGE_PTR(dir);
    MERGE(max_size);
    MERGE(expire);
    MERGE(sync);
    MERGE(trust_forwarded);
    MERGE(lock_wait);
    MERGE(stall_time);
    MERGE_PTR(cors);
    MERGE_PTR(inline_types);
    MERGE_PTR(deny_ext);
    MERGE_PTR(files_url);
    MERGE(publish);
    n->ht_max_size = lower(base->ht_max_size, add->ht_max_size);
    n->ht_expire = lower(base->ht_expire, add->ht_expire);
    MERGE(protocols);
    n->ht_protocols = (add->ht_protocols == RS_UNSET) ? base->ht_protocols
                      : (base->ht_protocols == RS_UNSET) ? add->ht_protocols
                      : (add->ht_protocols & base->ht_protocols);
    return n;
}

void *rs_conf_create_srv(apr_pool_t *p, server_rec *s)
{
    rs_srv_conf_t *c = apr_pcalloc(p, sizeof(*c));

    c->sweep = RS_UNSET;
    c->write_buffer = RS_UNSET;
    c->read_size = RS_UNSET;
    c->splice = RS_UNSET;
    return c;
}

void *rs_conf_merge_srv(apr_pool_t *p, void *basev, void *addv)
{
    rs_srv_conf_t *base = basev, *add = addv;
    rs_srv_conf_t *n = apr_pcalloc(p, sizeof(*n));

    MERGE_PTR(statedb_type);
    MERGE_PTR(statedb_path);
    MERGE(sweep);
    MERGE(write_buffer);
    MERGE(read_size);
    MERGE(splice);
    return n;
}

/* ------------------------------------------------------------------------ */
/* directive helpers                                                         */

/* A directive read from a .htaccess file (overrides without ACCESS_CONF). */
static int from_htaccess(cmd_parms *cmd)
{
    return cmd->path && !(cmd->override & ACCESS_CONF);
}

static const char *bad(cmd_parms *cmd, const char *arg, const char *what)
{
    return apr_psprintf(cmd->pool, "%s: invalid value '%s': %s",
                        cmd->cmd->name, arg, what);
}

static const char *global_only(cmd_parms *cmd)
{
    return ap_check_cmd_context(cmd, GLOBAL_ONLY);
}

static rs_srv_conf_t *srv_conf(cmd_parms *cmd)
{
    return ap_get_module_config(cmd->server->module_config, &resumable_module);
}

static const char *parse_duration(cmd_parms *cmd, const char *arg, int off_ok,
                                  apr_interval_time_t *v)
{
    if (off_ok && !strcasecmp(arg, "off")) {
        *v = 0;
        return NULL;
    }
    if (APR_SUCCESS != rs_util_parse_duration(arg, v)
        || (!off_ok && *v <= 0)) {
        return bad(cmd, arg, off_ok ? "expected a duration like 90, 30m, 12h,"
                   " 7d or Off" : "expected a positive duration like 5, 2s "
                   "or 1m");
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* directives                                                                */

static const char *set_dir(cmd_parms *cmd, void *dc, const char *arg)
{
    rs_dir_conf_t *d = dc;
    const char *path;

    if (!*arg) {
        return bad(cmd, arg, "expected a directory path");
    }
    path = ap_server_root_relative(cmd->pool, arg);
    if (!path || !ap_os_is_path_absolute(cmd->pool, path)
        || strstr(path, "/../") || strstr(path, "/./")) {
        return bad(cmd, arg, "expected an absolute, canonical directory path");
    }
    while (strlen(path) > 1 && path[strlen(path) - 1] == '/') {
        path = apr_pstrndup(cmd->pool, path, strlen(path) - 1);
    }
    d->dir = path;
    if (store_dirs) {
        APR_ARRAY_PUSH(store_dirs, const char *) = path;
    }
    return NULL;
}

static const char *known_dbm(cmd_parms *cmd, const char *type)
{
    const char *f1, *f2;
    apr_status_t rv = apr_dbm_get_usednames_ex(cmd->temp_pool, type, "probe",
                                               &f1, &f2);

    if (APR_SUCCESS != rv) {
        return apr_psprintf(cmd->pool, "%s: apr_dbm has no driver '%s' "
                            "here (try sdbm, gdbm or db)", cmd->cmd->name, type);
    }
    return NULL;
}

static const char *set_statedb(cmd_parms *cmd, void *dc, const char *arg)
{
    rs_srv_conf_t *c = srv_conf(cmd);
    const char *err = global_only(cmd), *colon = strchr(arg, ':');

    if (err) {
        return err;
    }
    if (!strncasecmp(arg, "dbd:", 4)) {     /* the pgsql provider via mod_dbd */
        c->statedb_type = "dbd";
        c->statedb_path = "dbd:";
        return arg[4] ? bad(cmd, arg, "expected nothing after dbd: (the "
                            "database is mod_dbd's DBDParams)") : NULL;
    }
    if (colon && colon != arg && !strchr(apr_pstrndup(cmd->pool, arg,
                                                      colon - arg), '/')) {
        c->statedb_type = apr_pstrndup(cmd->pool, arg, colon - arg);
        if ((err = known_dbm(cmd, c->statedb_type))) {
            return err;
        }
        arg = colon + 1;
    }
    if (!*arg || !(c->statedb_path = ap_server_root_relative(cmd->pool, arg))) {
        return bad(cmd, arg, "expected [TYPE:]PATH");
    }
    return NULL;
}

static const char *set_max_size(cmd_parms *cmd, void *dc, const char *arg)
{
    rs_dir_conf_t *d = dc;
    apr_off_t v;

    if (APR_SUCCESS != rs_util_parse_size(arg, &v)) {
        return bad(cmd, arg, "expected a size like 0 (no limit), 500M or 10G");
    }
    if (from_htaccess(cmd)) {
        d->ht_max_size = v ? v : RS_UNSET;  /* 0 can not lift a limit */
    }
    else {
        d->max_size = v;
    }
    return NULL;
}

static const char *set_expire(cmd_parms *cmd, void *dc, const char *arg)
{
    rs_dir_conf_t *d = dc;
    apr_interval_time_t v;
    const char *err = parse_duration(cmd, arg, 1, &v);

    if (err) {
        return err;
    }
    if (from_htaccess(cmd)) {
        d->ht_expire = v ? v : RS_UNSET;    /* Off can not lift a limit */
    }
    else {
        d->expire = v;
    }
    return NULL;
}

static const char *set_protocols(cmd_parms *cmd, void *dc, const char *arg)
{
    rs_dir_conf_t *d = dc;
    const rs_proto_t *proto = rs_proto_find(arg);
    int bits;

    if (!strcasecmp(arg, "all")) {
        bits = (1 << RS_PROTO__COUNT) - 1;
    }
    else if (proto) {
        bits = 1 << proto->id;
    }
    else {
        return bad(cmd, arg, apr_pstrcat(cmd->pool, "unknown protocol "
                                         "(known: ", rs_proto_names(cmd->pool),
                                         ")", NULL));
    }
    if (from_htaccess(cmd)) {       /* may only narrow the parent's set */
        d->ht_protocols = (d->ht_protocols == RS_UNSET ? 0
                           : d->ht_protocols) | bits;
    }
    else {
        d->protocols = (d->protocols == RS_UNSET ? 0 : d->protocols) | bits;
    }
    return NULL;
}

static const char *set_flag(cmd_parms *cmd, void *dc, int on)
{
    char *base = dc;
    int offset = (int)(apr_uintptr_t)cmd->info;

    *(int *)(base + offset) = on;
    return NULL;
}

static const char *set_interval(cmd_parms *cmd, void *dc, const char *arg)
{
    char *base = dc;
    int offset = (int)(apr_uintptr_t)cmd->info;

    return parse_duration(cmd, arg, 0,
                          (apr_interval_time_t *)(base + offset));
}

static int origin_ok(const char *o)
{
    if (!strcmp(o, "*")) {
        return 1;
    }
    return (!strncmp(o, "http://", 7) || !strncmp(o, "https://", 8))
           && rs_util_header_safe(o) && !strchr(o, ' ')
           && o[strlen(o) - 1] != '/';
}

static const char *set_cors(cmd_parms *cmd, void *dc, const char *arg)
{
    rs_dir_conf_t *d = dc;

    if (!origin_ok(arg)) {
        return bad(cmd, arg, "expected * or origins like https://app.example");
    }
    if (!d->cors) {
        d->cors = apr_array_make(cmd->pool, 2, sizeof(const char *));
    }
    APR_ARRAY_PUSH(d->cors, const char *) = arg;
    return NULL;
}

static const char *set_inline(cmd_parms *cmd, void *dc, const char *arg)
{
    rs_dir_conf_t *d = dc;

    if (!strchr(arg, '/') || !rs_util_header_safe(arg)) {
        return bad(cmd, arg, "expected a media type like image/png");
    }
    if (!d->inline_types) {
        d->inline_types = apr_array_make(cmd->pool, 8, sizeof(const char *));
    }
    APR_ARRAY_PUSH(d->inline_types, const char *) = apr_pstrdup(cmd->pool, arg);
    return NULL;
}

static const char *set_deny(cmd_parms *cmd, void *dc, const char *arg)
{
    rs_dir_conf_t *d = dc;
    const char *c;

    if (!d->deny_ext) {
        d->deny_ext = apr_array_make(cmd->pool, 8, sizeof(const char *));
    }
    if (!strcasecmp(arg, "none")) {
        return d->deny_ext->nelts ? bad(cmd, arg, "None stands alone") : NULL;
    }
    arg = (*arg == '.') ? arg + 1 : arg;
    for (c = arg; *c; c++) {
        if (!apr_isalnum(*c) && *c != '_' && *c != '-') {
            break;
        }
    }
    if (!*arg || *c || strlen(arg) > 32) {
        return bad(cmd, arg, "expected extensions like php cgi, or None");
    }
    APR_ARRAY_PUSH(d->deny_ext, const char *) = apr_pstrdup(cmd->pool, arg);
    return NULL;
}

/* ResumableFilesURL: the URL path at which httpd itself serves the area's
 * directory (an Alias), for the md5 handshake's file URLs. An absolute
 * path ending in '/', of URI path characters only (escapes well formed),
 * no empty, "." or ".." segment. */
static const char *set_files_url(cmd_parms *cmd, void *dc, const char *arg)
{
    rs_dir_conf_t *d = dc;
    const char *c;
    apr_size_t n = strlen(arg);

    if (n < 1 || n > 1024 || arg[0] != '/' || arg[n - 1] != '/'
        || (n > 1 && (strstr(arg, "//") || strstr(arg, "/./")
                      || strstr(arg, "/../")))) {
        return bad(cmd, arg, "expected a URL path like /upload/");
    }
    for (c = arg; *c; c++) {
        if (*c == '%' ? !(apr_isxdigit(c[1]) && apr_isxdigit(c[2]))
            : !(apr_isalnum(*c) || strchr("/-._~!$&'()*+,;=:@", *c))) {
            return bad(cmd, arg, "expected a URL path like /upload/");
        }
    }
    d->files_url = apr_pstrdup(cmd->pool, arg);
    return NULL;
}

static const char *set_publish(cmd_parms *cmd, void *dc, const char *arg)
{
    rs_dir_conf_t *d = dc;

    if (!strcasecmp(arg, "private")) {
        d->publish = RS_PUBLISH_PRIVATE;
    }
    else if (!strcasecmp(arg, "public")) {
        d->publish = RS_PUBLISH_PUBLIC;
    }
    else {
        return bad(cmd, arg, "expected Private (finished files only at their "
                   "upload URL, for their owner) or Public");
    }
    return NULL;
}

static const char *set_sweep(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = global_only(cmd);

    return err ? err : parse_duration(cmd, arg, 0, &srv_conf(cmd)->sweep);
}

static const char *set_write_buffer(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = global_only(cmd);
    apr_off_t v;

    if (err) {
        return err;
    }
    if (APR_SUCCESS != rs_util_parse_size(arg, &v) || v < MIN_WRITE_BUF
        || v > MAX_WRITE_BUF) {
        return bad(cmd, arg, "expected a size from 4K to 64M");
    }
    srv_conf(cmd)->write_buffer = v;
    return NULL;
}

/* 0 or Off: httpd's own socket reads; else 16K to 2M per read() (larger
 * buffers outgrow what httpd's allocators keep, MaxMemFree 2M by default,
 * and are mapped and unmapped on every read) */
static const char *set_read_size(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = global_only(cmd);
    apr_off_t v = 0;

    if (err) {
        return err;
    }
    if (strcasecmp(arg, "off") && (APR_SUCCESS != rs_util_parse_size(arg, &v)
        || (v != 0 && (v < 16 * 1024 || v > MAX_READ_SIZE)))) {
        return bad(cmd, arg, "expected Off, 0 or a size from 16K to 2M");
    }
    srv_conf(cmd)->read_size = v;
    return NULL;
}

static const char *set_splice(cmd_parms *cmd, void *dc, int on)
{
    const char *err = global_only(cmd);

    if (!err) {
        srv_conf(cmd)->splice = on;
    }
    return err;
}

#define DIR_ONLY (RSRC_CONF | ACCESS_CONF)
#define HT_OK (RSRC_CONF | ACCESS_CONF | OR_FILEINFO)
#define OFF(f) (void *)APR_OFFSETOF(rs_dir_conf_t, f)

const command_rec rs_conf_cmds[] = {
    AP_INIT_TAKE1("ResumableDir", set_dir, NULL, DIR_ONLY,
                  "directory for the area's uploads (not in .htaccess)"),
    AP_INIT_TAKE1("ResumableStateDB", set_statedb, NULL, RSRC_CONF,
                  "[TYPE:]PATH of the apr_dbm state database"),
    AP_INIT_TAKE1("ResumableMaxSize", set_max_size, NULL, HT_OK,
                  "largest upload in bytes (K, M, G, T suffixes; 0: none)"),
    AP_INIT_TAKE1("ResumableExpire", set_expire, NULL, HT_OK,
                  "untouched incomplete uploads expire after this (or Off)"),
    AP_INIT_ITERATE("ResumableProtocols", set_protocols, NULL, HT_OK,
                    "protocols the area speaks: tus ... or all"),
    AP_INIT_FLAG("ResumableSync", set_flag, OFF(sync), DIR_ONLY,
                 "On: fdatasync before an offset is acknowledged"),
    AP_INIT_FLAG("ResumableTrustForwarded", set_flag, OFF(trust_forwarded),
                 DIR_ONLY, "build Location from X-Forwarded-*/Forwarded"),
    AP_INIT_ITERATE("ResumableCORSOrigins", set_cors, NULL, HT_OK,
                    "origins allowed to upload from a browser, or *"),
    AP_INIT_TAKE1("ResumableLockWait", set_interval, OFF(lock_wait), DIR_ONLY,
                  "how long a request waits for a stalled writer"),
    AP_INIT_TAKE1("ResumableStallTime", set_interval, OFF(stall_time),
                  DIR_ONLY, "idle time after which a writer yields"),
    AP_INIT_ITERATE("ResumableInlineTypes", set_inline, NULL, DIR_ONLY,
                    "media types downloads may show inline"),
    AP_INIT_ITERATE("ResumableDenyExtensions", set_deny, NULL, DIR_ONLY,
                    "extensions a finished file name may not end in or "
                    "carry (they are defused), or None"),
    AP_INIT_TAKE1("ResumableFilesURL", set_files_url, NULL, DIR_ONLY,
                  "URL path at which httpd serves the area's directory "
                  "(md5 handshake file URLs)"),
    AP_INIT_TAKE1("ResumablePublish", set_publish, NULL, DIR_ONLY,
                  "Private: files of the area's directory are not served by "
                  "name; Public: httpd serves them to anyone"),
    AP_INIT_TAKE1("ResumableSweepInterval", set_sweep, NULL, RSRC_CONF,
                  "how often expired uploads are removed"),
    AP_INIT_TAKE1("ResumableWriteBuffer", set_write_buffer, NULL, RSRC_CONF,
                  "bytes coalesced per data file write"),
    AP_INIT_TAKE1("ResumableReadSize", set_read_size, NULL, RSRC_CONF,
                  "bytes per socket read of an upload body (Off: httpd's)"),
    AP_INIT_FLAG("ResumableSplice", set_splice, NULL, RSRC_CONF,
                 "On: move plain upload bodies socket to file in the kernel"),
    { NULL }
};

/* ------------------------------------------------------------------------ */
/* accessors                                                                 */

void rs_conf_server_defaults(server_rec *s)
{
    for (; s; s = s->next) {
        rs_srv_conf_t *c = ap_get_module_config(s->module_config,
                                                &resumable_module);
        if (c->sweep == RS_UNSET) {
            c->sweep = DEF_SWEEP;
        }
        if (c->write_buffer == RS_UNSET) {
            c->write_buffer = DEF_WRITE_BUF;
        }
        if (c->read_size == RS_UNSET) {
            c->read_size = DEF_READ_SIZE;
        }
        if (c->splice == RS_UNSET) {
            c->splice = 1;
        }
    }
}

const rs_srv_conf_t *rs_conf_server(server_rec *s)
{
    return ap_get_module_config(s->module_config, &resumable_module);
}

apr_interval_time_t rs_conf_sweep_interval(server_rec *s)
{
    return rs_conf_server(s)->sweep;
}

const rs_dir_conf_t *rs_conf_dir(request_rec *r)
{
    return ap_get_module_config(r->per_dir_config, &resumable_module);
}

static int is_dir(request_rec *r, const char *path)
{
    apr_finfo_t fi;

    return APR_SUCCESS == apr_stat(&fi, path, APR_FINFO_TYPE, r->pool)
           && APR_DIR == fi.filetype;
}

static const char *no_slash(apr_pool_t *p, const char *path)
{
    apr_size_t n = strlen(path);

    return (n > 1 && path[n - 1] == '/') ? apr_pstrndup(p, path, n - 1) : path;
}

/* The directory the request maps to: the file's directory, or the
 * directory itself for a collection URL. */
static const char *mapped_dir(request_rec *r)
{
    const char *slash;

    if (!r->filename || !ap_os_is_path_absolute(r->pool, r->filename)) {
        return NULL;
    }
    if (APR_DIR == r->finfo.filetype) {
        return no_slash(r->pool, r->filename);
    }
    slash = strrchr(r->filename, '/');
    return slash && slash != r->filename
           ? apr_pstrndup(r->pool, r->filename, slash - r->filename) : NULL;
}

/* dir without its staging folder: a request that maps into
 * "<area>/.resumable/..." belongs to <area>, it does not make the staging
 * folder an area of its own (uploads into it, its files served by name). */
static const char *outside_staging(apr_pool_t *p, const char *dir)
{
    const char *s = dir;
    apr_size_t n = strlen(RS_STAGING_DIR);

    while ((s = strstr(s, "/" RS_STAGING_DIR))) {
        if (!s[n + 1] || s[n + 1] == '/') {
            return s == dir ? NULL : apr_pstrndup(p, dir, s - dir);
        }
        s++;
    }
    return dir;
}

/* ResumableDir; else the <Directory> section of the area (when one of its
 * directives made this module's config there); else (SetHandler alone, in
 * a <Directory> or .htaccess) the directory the request maps to, outside
 * the staging folder. */
static const char *area_dir(request_rec *r, const rs_dir_conf_t *d)
{
    const char *dir;
    apr_size_t n;

    if (d->dir) {
        return d->dir;
    }
    n = d->section ? strlen(d->section) : 0;
    if (n > 1 && r->filename && !strncmp(r->filename, d->section, n)
        && is_dir(r, d->section)) {
        return no_slash(r->pool, d->section);
    }
    dir = mapped_dir(r);
    dir = dir ? outside_staging(r->pool, dir) : NULL;
    return dir && is_dir(r, dir) ? dir : NULL;
}

static apr_int64_t effective(apr_int64_t v, apr_int64_t ht, apr_int64_t def)
{
    if (v == RS_UNSET) {
        v = def;
    }
    if (ht != RS_UNSET && (v == 0 || ht < v)) {
        v = ht;
    }
    return v;
}

static const apr_array_header_t *default_deny_list(apr_pool_t *p)
{
    apr_array_header_t *l = apr_array_make(p, 32, sizeof(const char *));
    int i;

    for (i = 0; default_deny[i]; i++) {
        APR_ARRAY_PUSH(l, const char *) = default_deny[i];
    }
    return l;
}

rs_area_t *rs_conf_area(request_rec *r)
{
    const rs_dir_conf_t *d = rs_conf_dir(r);
    rs_area_t *a = apr_pcalloc(r->pool, sizeof(*a));

    if (!(a->dir = area_dir(r, d))) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, RS_LOGNO(04001)
                      "no ResumableDir for the upload area of %s", r->uri);
        return NULL;
    }
    a->max_size = effective(d->max_size, d->ht_max_size, 0);
    a->max_append = ap_get_limit_req_body(r);
    a->expire = effective(d->expire, d->ht_expire, DEF_EXPIRE);
    a->sync = d->sync != 0 || rs_httpd_cluster();   /* Off refused there */
    a->lock_wait = d->lock_wait == RS_UNSET ? DEF_LOCK_WAIT : d->lock_wait;
    a->stall_time = d->stall_time == RS_UNSET ? DEF_STALL : d->stall_time;
    a->protocols = d->protocols == RS_UNSET ? ~0u : (unsigned)d->protocols;
    if (d->ht_protocols != RS_UNSET) {
        a->protocols &= (unsigned)d->ht_protocols;
    }
    a->deny_ext = d->deny_ext ? d->deny_ext : default_deny_list(r->pool);
    a->files_url = d->files_url;
    return a;
}

int rs_conf_trust_forwarded(const rs_dir_conf_t *d)
{
    return d->trust_forwarded == 1;
}

int rs_conf_public(const rs_dir_conf_t *d)
{
    return d->publish == RS_PUBLISH_PUBLIC;
}

int rs_conf_path_in(const char *path, const char *dir, int *staging)
{
    apr_size_t n = dir ? strlen(dir) : 0, s = strlen(RS_STAGING_DIR);

    *staging = 0;
    if (!path || !n || strncmp(path, dir, n)) {
        return 0;
    }
    if (dir[n - 1] != '/') {            /* "/" itself ends in a slash */
        if (path[n] && path[n] != '/') {
            return 0;                   /* /srv/up2 is not in /srv/up */
        }
        path += n + (path[n] == '/');
    }
    else {
        path += n;
    }
    *staging = !strncasecmp(path, RS_STAGING_DIR, s)  /* also where the */
               && (!path[s] || path[s] == '/');       /* fs ignores case */
    return 1;
}

int rs_conf_in_store(const char *path, int *staging)
{
    int i;

    for (i = 0; store_dirs && i < store_dirs->nelts; i++) {
        if (rs_conf_path_in(path, APR_ARRAY_IDX(store_dirs, i, const char *),
                            staging)) {
            return 1;
        }
    }
    *staging = 0;
    return 0;
}

int rs_conf_inline(const rs_dir_conf_t *d, const char *type)
{
    int i;

    if (!d->inline_types) {
        for (i = 0; default_inline[i]; i++) {
            if (!strcasecmp(default_inline[i], type)) {
                return 1;
            }
        }
        return 0;
    }
    for (i = 0; i < d->inline_types->nelts; i++) {
        if (!strcasecmp(APR_ARRAY_IDX(d->inline_types, i, const char *), type)) {
            return 1;
        }
    }
    return 0;
}
