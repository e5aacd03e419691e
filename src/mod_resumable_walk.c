/* Licensed under the Apache License, Version 2.0. */
/*
 * ResumableMapToStorage Off: upload URLs skip httpd's directory walk.
 *
 * An upload URL ("/files/<id>") has no meaning in the filesystem, yet core's
 * map_to_storage (ap_directory_walk + ap_file_walk) stats every component
 * of DocumentRoot + URI for every POST, PATCH, HEAD and GET of it (about 9
 * syscalls of a creation-with-upload). mod_proxy avoids it for proxied URLs
 * the same way: translate_name marks the request, map_to_storage returns OK
 * for it before core's hook runs.
 *
 * Order in ap_process_request_internal: location walk -> translate_name ->
 * per_dir_config reset to the server's -> map_to_storage -> location walk
 * again -> access, authn, authz -> fixups (core applies SetHandler) ->
 * handler. So at translate_name r->per_dir_config is what the <Location>
 * (and <If>) sections give; a request is marked when they name this
 * module's handler (SetHandler resumable), ResumableMapToStorage is Off and
 * the area's ResumableDir comes from a <Location> (rs_conf_skip_walk): no
 * <Directory> section or .htaccess could then change the area, only its
 * other settings, which is the documented trade-off. The second location
 * walk, access control, authentication, fixups and logging all stay.
 *
 * Not marked: TRACE (core answers it in map_to_storage), and a URL that an
 * earlier translate_name hook mapped (mod_alias, mod_rewrite, mod_proxy
 * return OK before this hook runs): there the filesystem has a say.
 * r->filename stays core's DocumentRoot + URI, r->finfo stays empty: the
 * area comes from ResumableDir, a download opens and stats its own file
 * (rs_httpd_download), the staging and state-db guards compare names.
 */

#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_request.h>
#include <ap_expr.h>

#include "mod_resumable_private.h"
#include "mod_resumable_config.h"

#define NOTE_SKIP "resumable-skip-walk"

/* Does SetHandler of r's sections so far name this module's handler? */
static int sets_resumable(request_rec *r)
{
    core_dir_config *c = ap_get_core_module_config(r->per_dir_config);
    const char *err = NULL, *h;

    if (!c || !c->expr_handler) {
        return 0;
    }
    h = ap_expr_str_exec(r, c->expr_handler, &err);
    return !err && h && !strcmp(h, "resumable");
}

int rs_httpd_walk_translate(request_rec *r)
{
    if (M_TRACE != r->method_number && rs_conf_skip_walk(rs_conf_dir(r))
        && sets_resumable(r)) {
        apr_table_setn(r->notes, NOTE_SKIP, "1");
    }
    return DECLINED;                    /* core still sets r->filename */
}

int rs_httpd_walk_map(request_rec *r)
{
    if (!apr_table_get(r->notes, NOTE_SKIP)) {
        return DECLINED;
    }
    ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r, RS_LOGNO(09970)
                  "%s %s: no directory walk (ResumableMapToStorage Off)",
                  r->method, r->uri);
    return OK;
}
