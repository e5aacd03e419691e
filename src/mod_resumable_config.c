/* Licensed under the Apache License, Version 2.0. */
/*
 * Directives, create/merge, and the accessors that apply defaults.
 * See include/mod_resumable_config.h for the rules.
 */

#include <apr_strings.h>
#include <apr_dbm.h>
#include <apr_lib.h>

#include <stdlib.h>
#include <strings.h>
#include <sys/stat.h>

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
#define DEF_PENDING     1000            /* per user and area */
#define DEF_PENDING_AREA 100000
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

const apr_array_header_t *rs_conf_store_dirs(void)
{
    return store_dirs;
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
    d->map_storage = RS_UNSET;
    d->max_pending = d->ht_max_pending = RS_UNSET;
    d->max_pending_area = d->ht_max_pending_area = RS_UNSET;
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

/* Per event: the more specific section's hook (or "none") if it set one. */
static rs_hooks_t *merge_hooks(apr_pool_t *p, const rs_dir_conf_t *base,
                               const rs_dir_conf_t *add, unsigned int *set)
{
    rs_hooks_t *h;
    int i, any = 0;

    *set = base->hooks_set | add->hooks_set;
    if (!add->hooks_set) {
        return base->hooks;
    }
    if (!base->hooks_set) {
        return add->hooks;
    }
    h = apr_pcalloc(p, sizeof(*h));
    for (i = 0; i < RS_HOOK__COUNT; i++) {
        const rs_hooks_t *from = (add->hooks_set & (1u << i)) ? add->hooks
                                 : base->hooks;
        h->on[i] = from ? from->on[i] : NULL;
        any |= h->on[i] != NULL;
    }
    return any ? h : NULL;
}

void *rs_conf_merge_dir(apr_pool_t *p, void *basev, void *addv)
{
    rs_dir_conf_t *base = basev, *add = addv;
    rs_dir_conf_t *n = apr_pcalloc(p, sizeof(*n));

    MERGE_PTR(section);
    MERGE_PTR(dir);
    n->dir_in_location = add->dir ? add->dir_in_location
                         : base->dir_in_location;
    MERGE(map_storage);
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
    n->hooks = merge_hooks(p, base, add, &n->hooks_set);
    n->ht_max_size = lower(base->ht_max_size, add->ht_max_size);
    n->ht_expire = lower(base->ht_expire, add->ht_expire);
    MERGE(max_pending);
    MERGE(max_pending_area);
    n->ht_max_pending = lower(base->ht_max_pending, add->ht_max_pending);
    n->ht_max_pending_area = lower(base->ht_max_pending_area,
                                   add->ht_max_pending_area);
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
    c->lease_time = RS_UNSET;
    c->checkpoint = RS_UNSET;
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
    MERGE(lease_time);
    MERGE(checkpoint);
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
    d->dir_in_location = NULL != ap_check_cmd_context(cmd, NOT_IN_LOCATION);
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

/* "ResumableMaxPending USER [AREA]": counts, 0 for no limit. */
static const char *set_max_pending(cmd_parms *cmd, void *dc, const char *u,
                                   const char *a)
{
    rs_dir_conf_t *d = dc;
    apr_off_t v[2] = { 0, RS_UNSET };
    const char *arg[2];
    int i;

    arg[0] = u;
    arg[1] = a;
    for (i = 0; i < 2 && arg[i]; i++) {
        if (APR_SUCCESS != rs_util_parse_off(arg[i], &v[i])
            || v[i] > 1000000000) {
            return bad(cmd, arg[i], "expected a count (at most 10^9), 0 "
                       "for no limit");
        }
    }
    if (from_htaccess(cmd)) {
        d->ht_max_pending = v[0] ? v[0] : RS_UNSET;  /* 0 lifts nothing */
        if (v[1] != RS_UNSET) {
            d->ht_max_pending_area = v[1] ? v[1] : RS_UNSET;
        }
    }
    else {
        d->max_pending = v[0];
        if (v[1] != RS_UNSET) {
            d->max_pending_area = v[1];
        }
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

/* ResumableMapToStorage decides before httpd reads <Directory> sections
 * and .htaccess files (translate_name): set there it would never apply. */
static const char *set_map_storage(cmd_parms *cmd, void *dc, int on)
{
    rs_dir_conf_t *d = dc;
    const char *err = ap_check_cmd_context(cmd, NOT_IN_DIRECTORY
                                           | NOT_IN_FILES | NOT_IN_HTACCESS);

    if (err) {
        return apr_pstrcat(cmd->pool, err, ": it is decided before "
                           "<Directory>, <Files> and .htaccess are read; set "
                           "it in a <Location> or the server config", NULL);
    }
    d->map_storage = on;
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

static const char *set_lease_time(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = global_only(cmd);
    apr_interval_time_t v;

    if (!err) {
        err = parse_duration(cmd, arg, 0, &v);
    }
    if (!err && (v < apr_time_from_sec(1) || v > apr_time_from_sec(600))) {
        err = bad(cmd, arg, "expected a duration from 1s to 10m");
    }
    if (!err) {
        srv_conf(cmd)->lease_time = v;
    }
    return err;
}

static const char *set_checkpoint(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = global_only(cmd);
    apr_off_t v;

    if (err) {
        return err;
    }
    if (APR_SUCCESS != rs_util_parse_size(arg, &v) || v < 64 * 1024
        || v > APR_INT64_C(1) << 40) {
        return bad(cmd, arg, "expected a size from 64K to 1T");
    }
    srv_conf(cmd)->checkpoint = v;
    return NULL;
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

static int any_hooks;

/* ResumableHook EVENT TARGET [timeout=SECONDS] [failopen=on] */
static const char *set_hook(cmd_parms *cmd, void *dc, int argc,
                            char *const argv[])
{
    rs_dir_conf_t *d = dc;
    rs_hook_t *h;
    const char *msg;
    int ev, i, any = 0;

    if (argc < 2) {
        return "ResumableHook: expected EVENT TARGET [timeout=SECONDS] "
               "[failopen=on]";
    }
    msg = rs_hook_parse(cmd->pool, argv[0], argv[1], argc - 2,
                        (const char *const *)argv + 2, &ev, &h);
    if (msg) {
        return apr_pstrcat(cmd->pool, "ResumableHook: ", msg, NULL);
    }
    if (d->hooks_set & (1u << ev)) {
        return apr_psprintf(cmd->pool, "ResumableHook: %s is set twice in "
                            "this section", argv[0]);
    }
    if (!d->hooks) {
        d->hooks = apr_pcalloc(cmd->pool, sizeof(*d->hooks));
    }
    d->hooks->on[ev] = h;
    d->hooks_set |= 1u << ev;
    for (i = 0; i < RS_HOOK__COUNT; i++) {
        any |= d->hooks->on[i] != NULL;
    }
    if (!any) {
        d->hooks = NULL;                /* only "none": nothing to call */
    }
    any_hooks |= h != NULL;
    return NULL;
}

int rs_conf_any_hooks(void)
{
    return any_hooks;
}

void rs_conf_reset_hooks(void)
{
    any_hooks = 0;
}

static const char *no_slash(apr_pool_t *p, const char *path);

const rs_hooks_t *rs_conf_hooks(const rs_dir_conf_t *d)
{
    return d->hooks;
}

const rs_hooks_t *rs_conf_hooks_of_dir(server_rec *s, const char *dir,
                                       apr_pool_t *p)
{
    for (; s; s = s->next) {
        core_server_config *sc = ap_get_core_module_config(s->module_config);
        rs_dir_conf_t *top = ap_get_module_config(s->lookup_defaults,
                                                  &resumable_module);
        apr_array_header_t *secs[2] = { sc->sec_dir, sc->sec_url };
        int i, k;

        for (k = 0; k < 2; k++) {
            for (i = 0; secs[k] && i < secs[k]->nelts; i++) {
                rs_dir_conf_t *d = ap_get_module_config(
                    APR_ARRAY_IDX(secs[k], i, ap_conf_vector_t *),
                    &resumable_module);
                const char *ddir = d ? (d->dir ? d->dir : (k ? NULL
                                                           : d->section))
                                     : NULL;
                if (ddir && !strcmp(no_slash(p, ddir), dir)) {
                    rs_dir_conf_t *m = top ? rs_conf_merge_dir(p, top, d) : d;
                    return m->hooks;
                }
            }
        }
    }
    return NULL;
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
    AP_INIT_TAKE12("ResumableMaxPending", set_max_pending, NULL, HT_OK,
                   "unfinished uploads holding no data: per user [and per "
                   "area] (0: no limit)"),
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
    AP_INIT_TAKE1("ResumableLeaseTime", set_lease_time, NULL, RSRC_CONF,
                  "cluster (ResumableStateDB dbd:): how long a writer's "
                  "lease lasts without a checkpoint"),
    AP_INIT_TAKE1("ResumableCheckpoint", set_checkpoint, NULL, RSRC_CONF,
                  "cluster: bytes a writer receives between checkpoints"),
    AP_INIT_TAKE1("ResumableWriteBuffer", set_write_buffer, NULL, RSRC_CONF,
                  "bytes coalesced per data file write"),
    AP_INIT_TAKE1("ResumableReadSize", set_read_size, NULL, RSRC_CONF,
                  "bytes per socket read of an upload body (Off: httpd's)"),
    AP_INIT_FLAG("ResumableSplice", set_splice, NULL, RSRC_CONF,
                 "On: move plain upload bodies socket to file in the kernel"),
    AP_INIT_FLAG("ResumableMapToStorage", set_map_storage, NULL, DIR_ONLY,
                 "Off: upload URLs skip httpd's directory walk (server, "
                 "<Location> only)"),
    AP_INIT_TAKE_ARGV("ResumableHook", set_hook, NULL, DIR_ONLY,
                      "EVENT TARGET [timeout=SECONDS] [failopen=on]: ask or "
                      "tell the application (not in .htaccess)"),
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
        if (c->lease_time == RS_UNSET) {
            c->lease_time = apr_time_from_sec(10);
        }
        if (c->checkpoint == RS_UNSET) {
            c->checkpoint = 256 * 1024 * 1024;
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
    a->max_pending = effective(d->max_pending, d->ht_max_pending,
                               DEF_PENDING);
    a->max_pending_area = effective(d->max_pending_area,
                                    d->ht_max_pending_area,
                                    DEF_PENDING_AREA);
    a->client = r->useragent_ip;
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

/* ------------------------------------------------------------------------ */
/* the store by identity                                                     */

/* A path that reaches a ResumableDir by another spelling (a symlink to it
 * or to a parent of it, a bind mount) escapes the comparison of names:
 * an Alias through a symlink served another user's finished files. So the
 * directories are also known by device and inode (found in each process
 * on first use, as they may not exist at start-up), and an existing
 * file's directory (and for the staging folder its parent) is compared by
 * them: one stat for a request the names did not match. */
typedef struct {
    dev_t dev;
    ino_t ino;
    int known;
} dir_id_t;

static dir_id_t *store_ids;         /* per store_dirs entry */
static int store_ids_n;

void rs_conf_store_ids_init(apr_pool_t *pconf)
{
    store_ids_n = store_dirs ? store_dirs->nelts : 0;
    store_ids = apr_pcalloc(pconf, (store_ids_n ? store_ids_n : 1)
                                   * sizeof(*store_ids));
}

static int same_dir(const struct stat *st)
{
    int i;

    if (!store_ids || store_ids_n != (store_dirs ? store_dirs->nelts : 0)) {
        return 0;
    }
    for (i = 0; i < store_ids_n; i++) {
        dir_id_t *id = &store_ids[i];
        struct stat ds;

        if (!__atomic_load_n(&id->known, __ATOMIC_ACQUIRE)
            && 0 == stat(APR_ARRAY_IDX(store_dirs, i, const char *), &ds)) {
            id->dev = ds.st_dev;        /* threads write the same values */
            id->ino = ds.st_ino;
            __atomic_store_n(&id->known, 1, __ATOMIC_RELEASE);
        }
        if (__atomic_load_n(&id->known, __ATOMIC_ACQUIRE)
            && id->dev == st->st_dev && id->ino == st->st_ino) {
            return 1;
        }
    }
    return 0;
}

static int is_staging_name(const char *name, apr_size_t n)
{
    return n == strlen(RS_STAGING_DIR)
           && !strncasecmp(name, RS_STAGING_DIR, n);
}

/* path exists (or its directory does): is it a ResumableDir, in one, or
 * in a staging folder of one, by identity? */
static int in_store_by_id(const char *path, int *staging)
{
    char *dir = strdup(path), *slash, *name;
    struct stat st;
    int in = 0;

    if (!dir) {
        return 0;
    }
    while ((slash = strrchr(dir, '/')) && slash > dir && !slash[1]) {
        *slash = '\0';                 /* "dir/" -> "dir" */
    }
    if (0 == stat(dir, &st) && S_ISDIR(st.st_mode) && same_dir(&st)) {
        in = 1;                         /* the directory itself */
    }
    else if ((slash = strrchr(dir, '/')) && slash > dir) {
        name = slash + 1;
        *slash = '\0';                 /* its directory */
        if (0 == stat(dir, &st) && same_dir(&st)) {
            in = 1;
            *staging = is_staging_name(name, strlen(name));
        }
        else if ((slash = strrchr(dir, '/')) && slash > dir
                 && is_staging_name(slash + 1, strlen(slash + 1))) {
            *slash = '\0';             /* a staging folder's parent */
            in = *staging = 0 == stat(dir, &st) && same_dir(&st);
        }
    }
    free(dir);
    return in;
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
    return path && '/' == *path && store_dirs && store_dirs->nelts
           && in_store_by_id(path, staging);
}

int rs_conf_skip_walk(const rs_dir_conf_t *d)
{
    return d && 0 == d->map_storage && d->dir && d->dir_in_location;
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
