/* Licensed under the Apache License, Version 2.0. */
#ifndef MOD_RESUMABLE_CONFIG_H
#define MOD_RESUMABLE_CONFIG_H

/*
 * Design: three tiers as in mod_tls. Global settings (state database, sweep
 * interval, write buffer, body read size) live in the main server's config
 * and are read through rs_conf_server(); area settings are per-dir. Every
 * field starts "unset" (-1 / NULL) and merges as "the more specific one if
 * set, else the parent's", except that values from .htaccess may only
 * tighten a limit (max size, expiry, pending uploads) and never name a
 * directory. Defaults
 * are applied in the accessor rs_conf_area(), so "unset" survives nested
 * merges.
 */

#include <httpd.h>
#include <http_config.h>
#include "rs_engine.h"
#include "rs_hook.h"

#define RS_UNSET (-1)

typedef struct rs_srv_conf_t {
    const char *statedb_type;       /* apr_dbm type or NULL */
    const char *statedb_path;       /* NULL: default */
    apr_interval_time_t sweep;      /* -1 unset */
    apr_off_t write_buffer;         /* -1 unset */
    apr_off_t read_size;            /* -1 unset, 0 httpd's own reads */
    int splice;                     /* -1 unset */
    apr_interval_time_t lease_time; /* -1 unset (cluster mode only) */
    apr_off_t checkpoint;           /* -1 unset (cluster mode only) */
} rs_srv_conf_t;

typedef struct rs_dir_conf_t {
    const char *section;            /* <Directory>/<Location> path */
    const char *dir;                /* ResumableDir */
    int dir_in_location;            /* ResumableDir came from a <Location> */
    int map_storage;                /* ResumableMapToStorage: -1 unset */
    apr_off_t max_size;             /* -1 unset, 0 unlimited */
    apr_off_t ht_max_size;          /* from .htaccess: only lowers */
    apr_interval_time_t expire;     /* -1 unset, 0 off */
    apr_interval_time_t ht_expire;  /* from .htaccess: only lowers */
    int protocols;                  /* -1 unset, else mask */
    int ht_protocols;               /* from .htaccess: only narrows */
    int sync;                       /* -1 unset */
    int trust_forwarded;            /* -1 unset */
    apr_array_header_t *cors;       /* origins; NULL unset */
    apr_interval_time_t lock_wait;  /* -1 unset */
    apr_interval_time_t stall_time; /* -1 unset */
    apr_array_header_t *inline_types; /* NULL unset */
    apr_array_header_t *deny_ext;   /* NULL unset; empty: None */
    const char *files_url;          /* ResumableFilesURL; NULL unset */
    int publish;                    /* -1 unset, RS_PUBLISH_* */
    apr_int64_t max_pending;        /* per user; -1 unset, 0 unlimited */
    apr_int64_t ht_max_pending;     /* from .htaccess: only lowers */
    apr_int64_t max_pending_area;   /* per area; -1 unset, 0 unlimited */
    apr_int64_t ht_max_pending_area;
    rs_hooks_t *hooks;              /* NULL: no ResumableHook here */
    unsigned int hooks_set;         /* events set here (1 << event), also
                                       by "none" */
} rs_dir_conf_t;

/* ResumablePublish: who may read the files in an area's directory by their
 * name (not through an upload URL). PRIVATE (the default): nobody, the
 * owner reads a finished upload at its upload URL; PUBLIC: httpd serves
 * them as it serves any file, with the download's safety headers. */
#define RS_PUBLISH_PRIVATE 0
#define RS_PUBLISH_PUBLIC  1

extern const command_rec rs_conf_cmds[];

void *rs_conf_create_dir(apr_pool_t *p, char *dir);
void *rs_conf_merge_dir(apr_pool_t *p, void *base, void *add);
void *rs_conf_create_srv(apr_pool_t *p, server_rec *s);
void *rs_conf_merge_srv(apr_pool_t *p, void *base, void *add);

/** Fill unset global settings of every server (post_config). */
void rs_conf_server_defaults(server_rec *s);
/** Global settings (defaults applied after post_config). */
const rs_srv_conf_t *rs_conf_server(server_rec *s);
apr_interval_time_t rs_conf_sweep_interval(server_rec *s);

/**
 * The area of request r with defaults applied, or NULL (and a logged
 * reason) when the area has no usable directory. Allocated from r->pool.
 */
rs_area_t *rs_conf_area(request_rec *r);

const rs_dir_conf_t *rs_conf_dir(request_rec *r);
int rs_conf_trust_forwarded(const rs_dir_conf_t *d);
/**
 * ResumableMapToStorage Off: may a request whose location walk gave d skip
 * httpd's directory and file walk? Only when the ResumableDir of d comes
 * from a <Location>: no <Directory> section can then change the area.
 */
int rs_conf_skip_walk(const rs_dir_conf_t *d);
/** Are the files of the area's directory public (ResumablePublish)? */
int rs_conf_public(const rs_dir_conf_t *d);
/**
 * Is `path` (absolute, as httpd mapped it) `dir` itself or below it? 0 when
 * either is NULL. `*staging` is set when it is the hidden staging folder
 * (.resumable) or below it.
 */
int rs_conf_path_in(const char *path, const char *dir, int *staging);
/** Does `path` lie in the directory of any area the config names with
 *  ResumableDir (see rs_conf_path_in)? */
int rs_conf_in_store(const char *path, int *staging);
/** post_config: room to know every ResumableDir by device and inode
 *  (rs_conf_in_store also matches paths that reach one by another
 *  spelling: a symlink, a bind mount). */
void rs_conf_store_ids_init(apr_pool_t *pconf);
/** Every ResumableDir of the config (const char *, may repeat), or NULL. */
const apr_array_header_t *rs_conf_store_dirs(void);
/** Forget the ResumableDir list (pre_config: the config is read anew). */
void rs_conf_reset(apr_pool_t *pconf);
/** Is media type `type` on the inline list of the area? */
int rs_conf_inline(const rs_dir_conf_t *d, const char *type);

/** The area's hooks, NULL when it has none (the request path then costs
 *  nothing more). */
const rs_hooks_t *rs_conf_hooks(const rs_dir_conf_t *d);
/** 1 when any ResumableHook was read in this configuration. */
int rs_conf_any_hooks(void);
/** A new configuration is about to be read (pre_config). */
void rs_conf_reset_hooks(void);
/** Per section (sec_dir/sec_url of every server): its ResumableDir (or
 *  <Directory> path) and its hooks, merged over the server's: for events
 *  without a request (post-expire). */
const rs_hooks_t *rs_conf_hooks_of_dir(server_rec *s, const char *dir,
                                       apr_pool_t *p);
#endif
