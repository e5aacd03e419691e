/* Licensed under the Apache License, Version 2.0. */
/*
 * GET/HEAD of a finished upload, served through httpd's own machinery the
 * way the default handler serves a file: Last-Modified and ETag from the
 * file, ap_meets_conditions for If-* (304/412), a file bucket (sendfile)
 * and the byterange filter for Range, If-Range and multiple ranges (206,
 * multipart/byteranges). The name and type come from the upload's
 * metadata; only types on the area's inline list are shown inline, every
 * other type is an attachment, nosniff stops browsers from guessing, and a
 * sandboxing Content-Security-Policy keeps any script of a document that
 * is opened anyway from running with the site's origin.
 *
 * Validators of finished content come from its record, not from the file:
 * Last-Modified is the last write, the ETag (strong) is id, length and
 * that time. They are the same while the upload is composed and after its
 * single file is written, so a download resumed with If-Range across the
 * materialisation gets 206. Only a published file whose size is no longer
 * the record's (changed by hand) gets httpd's file validators.
 *
 * The area's directory itself is nobody's to browse: a request that maps
 * into it and is no front end's (a finished file by its published name,
 * the staging folder .resumable/, the directory) gets 404 whether the
 * file exists or not, unless ResumablePublish Public; the staging folder
 * always. rs_httpd_store_guard does the same for URLs outside the areas
 * that map into a ResumableDir (an Alias, a DocumentRoot around it).
 *
 * A composed upload (RS_UF_COMPOSED: complete, not materialised yet) is
 * served from its parts, a file bucket per part in order, through the same
 * filters; its validators come from the record: Last-Modified from the
 * last write, a strong ETag from id, length and that time. A part that
 * vanished (materialised meanwhile, chunk files removed) makes it look
 * the upload up again and serve the published file.
 */

#include <apr_strings.h>
#include <apr_lib.h>

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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
#include "rs_sf.h"
#include "rs_data.h"

static const char *display_name(request_rec *r, const rs_upload_t *u)
{
    const char *slash;

    if (u->filename && *u->filename) {
        return u->filename;
    }
    slash = strrchr(u->path, '/');
    return slash ? slash + 1 : u->path;
}

#define SANDBOX_CSP "sandbox; default-src 'none'"

void rs_httpd_safe_headers(request_rec *r, const char *type,
                           const char *disposition_name)
{
    apr_size_t n = type ? strcspn(type, ";") : 0;
    int show;

    while (n && apr_isspace(type[n - 1])) {
        n--;                            /* "text/plain ; charset=..." */
    }
    show = n && rs_conf_inline(rs_conf_dir(r), apr_pstrndup(r->pool, type,
                                                              n));
    apr_table_setn(r->headers_out, "Content-Disposition",
                   rs_util_content_disposition(r->pool, show ? "inline"
                                               : "attachment",
                                               disposition_name));
    apr_table_setn(r->headers_out, "X-Content-Type-Options", "nosniff");
    apr_table_setn(r->headers_out, "Content-Security-Policy", SANDBOX_CSP);
}

static void describe(request_rec *r, const rs_upload_t *u)
{
    const char *type = u->filetype ? u->filetype : "application/octet-stream";
    const char *digest;

    ap_set_content_type(r, type);
    rs_httpd_safe_headers(r, type, display_name(r, u));
    if ((digest = rs_sf_repr_digest(r->pool, u->digest_alg, u->digest))) {
        apr_table_setn(r->headers_out, "Repr-Digest", digest);  /* RFC 9530 */
    }
}

/* Last-Modified and a strong ETag of finished u, from its record. */
static void record_validators(request_rec *r, const rs_upload_t *u)
{
    ap_update_mtime(r, u->updated);
    ap_set_last_modified(r);
    apr_table_setn(r->headers_out, "ETag", apr_psprintf(r->pool,
                   "\"%s-%" APR_UINT64_T_HEX_FMT "-%" APR_UINT64_T_HEX_FMT
                   "\"", u->id, (apr_uint64_t)u->length,
                   (apr_uint64_t)u->updated));
}

static int open_published(request_rec *r, const rs_upload_t *u,
                          apr_file_t **fd)
{
    apr_status_t rv = apr_file_open(fd, u->path, APR_FOPEN_READ
                                    | APR_FOPEN_BINARY
                                    | APR_FOPEN_SENDFILE_ENABLED, 0, r->pool);

    if (APR_SUCCESS == rv) {
        rv = apr_file_info_get(&r->finfo, APR_FINFO_NORM, *fd);
    }
    if (APR_SUCCESS != rv) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, r, RS_LOGNO(04030)
                      "upload %s: its file %s is gone", u->id, u->path);
        return APR_STATUS_IS_ENOENT(rv) ? HTTP_NOT_FOUND
               : HTTP_INTERNAL_SERVER_ERROR;
    }
    r->filename = apr_pstrdup(r->pool, u->path);
    return OK;
}

/* The parts of composed u as file buckets in bb; 0 when one is gone. */
static int open_parts(request_rec *r, const rs_upload_t *u,
                      apr_bucket_brigade *bb)
{
    apr_array_header_t *parts;
    apr_file_t *fd;
    int i;

    if (rs_engine_parts(rs_httpd_engine(), u, r->pool, &parts)) {
        return 0;
    }
    for (i = 0; i < parts->nelts; i++) {
        const rs_part_t *part = &APR_ARRAY_IDX(parts, i, rs_part_t);

        if (APR_SUCCESS != apr_file_open(&fd, part->path, APR_FOPEN_READ
                                         | APR_FOPEN_BINARY
                                         | APR_FOPEN_SENDFILE_ENABLED, 0,
                                         r->pool)) {
            return 0;
        }
        if (part->len > 0) {
            apr_brigade_insert_file(bb, fd, 0, part->len, r->pool);
        }
    }
    return 1;
}

static int download_composed(request_rec *r, const rs_upload_t *u)
{
    apr_bucket_brigade *bb = apr_brigade_create(r->pool,
                                                r->connection->bucket_alloc);
    rs_upload_t *now;
    int status;

    if (!open_parts(r, u, bb)) {
        if (!rs_engine_open(rs_httpd_engine(), rs_conf_area(r), u->id,
                            u->owner, r->pool, &now)
            && (now->flags & RS_UF_PUBLISHED)) {
            return rs_httpd_download(r, now);   /* materialised meanwhile */
        }
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, RS_LOGNO(04031)
                      "upload %s: a part of its data is gone", u->id);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    describe(r, u);
    record_validators(r, u);
    ap_set_accept_ranges(r);
    ap_set_content_length(r, u->length);
    if (OK != (status = ap_meets_conditions(r))) {
        return status;
    }
    if (r->header_only) {
        apr_brigade_cleanup(bb);
    }
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(bb->bucket_alloc));
    return ap_pass_brigade_fchk(r, bb, "resumable: download of %s", u->id);
}

int rs_httpd_download(request_rec *r, const rs_upload_t *u)
{
    apr_bucket_brigade *bb;
    apr_file_t *fd;
    int status;

    if (u->flags & RS_UF_COMPOSED) {
        return download_composed(r, u);
    }
    if (OK != (status = open_published(r, u, &fd))) {
        return status;
    }
    describe(r, u);
    if (r->finfo.size == u->length && u->updated > 0) {
        record_validators(r, u);
    }
    else {                              /* the file is not what was stored */
        ap_update_mtime(r, r->finfo.mtime);
        ap_set_last_modified(r);
        ap_set_etag(r);
    }
    ap_set_accept_ranges(r);
    ap_set_content_length(r, r->finfo.size);
    if (OK != (status = ap_meets_conditions(r))) {
        return status;
    }
    bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    if (!r->header_only && r->finfo.size > 0) {
        apr_brigade_insert_file(bb, fd, 0, r->finfo.size, r->pool);
    }
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(bb->bucket_alloc));
    return ap_pass_brigade_fchk(r, bb, "resumable: download of %s", u->id);
}

/* staging: the state database or a staging folder, never public */
int rs_httpd_store_request(request_rec *r, int staging)
{
    const rs_dir_conf_t *d = rs_conf_dir(r);

    if (staging || !rs_conf_public(d)) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, RS_LOGNO(09400)
                      "%s %s: 404, %s is not served by name", r->method,
                      r->uri, staging ? "the state database or an upload "
                      "area's staging folder" : "an upload area's directory "
                      "(ResumablePublish Private)");
        return HTTP_NOT_FOUND;
    }
    rs_httpd_safe_headers(r, r->content_type, NULL);
    return DECLINED;
}

/* An area's own request into its staging folder: no upload URL maps
 * there. Refused here, before other fixups answer for the folder (mod_dir
 * redirects "/area/.resumable" to "/area/.resumable/"). */
static int area_staging(request_rec *r)
{
    const rs_area_t *a;
    int staging = 0;

    if (r->filename && strstr(r->filename, "/" RS_STAGING_DIR)
        && (a = rs_conf_area(r))) {
        rs_conf_path_in(r->filename, a->dir, &staging);
    }
    return staging;
}

/* Does directory dir (its first n bytes) have the identity of st? */
static int same_file(const char *dir, apr_size_t n, const struct stat *st)
{
    char *d = strndup(dir, n ? n : 1);
    struct stat ds;
    int same;

    if (!d) {
        return 0;
    }
    same = 0 == stat(n ? d : "/", &ds) && ds.st_dev == st->st_dev
           && ds.st_ino == st->st_ino;
    free(d);
    return same;
}

/* Is path one of the state database's files (PATH, PATH.dir, PATH.pag...)?
 * Never served, whatever serves the directory around it: also when the
 * path reaches the database's directory by another spelling (a symlink to
 * it, as for the areas' directories in rs_conf_in_store). */
static int statedb_file(const char *path)
{
    const char *db = rs_httpd_statedb_path();
    const char *dbslash = db ? strrchr(db, '/') : NULL;
    const char *slash = path ? strrchr(path, '/') : NULL;
    apr_size_t n = db ? strlen(db) : 0;
    struct stat st;
    char *dir;
    int same;

    if (!n || !path) {
        return 0;
    }
    if (!strncmp(path, db, n) && !strchr(path + n, '/')) {
        return 1;
    }
    if (!dbslash || !slash || strncmp(slash, dbslash, strlen(dbslash))
        || !(dir = strndup(path, (apr_size_t)(slash - path) ? (apr_size_t)
                           (slash - path) : 1))) {
        return 0;                       /* not the database's file name */
    }
    same = 0 == stat(dir, &st)
           && same_file(db, (apr_size_t)(dbslash - db), &st);
    free(dir);
    return same;
}

int rs_httpd_store_guard(request_rec *r)
{
    int staging;

    if (statedb_file(r->filename)) {
        return rs_httpd_store_request(r, 1);
    }
    if (r->handler && !strcmp(r->handler, "resumable")) {
        /* the rest of an area's own requests: the handler */
        return area_staging(r) ? rs_httpd_store_request(r, 1) : DECLINED;
    }
    if (!rs_conf_in_store(r->filename, &staging)) {
        return DECLINED;
    }
    return rs_httpd_store_request(r, staging);
}

/* "bytes=N" -> "bytes=N-": a Range without a dash is invalid, so httpd
 * would ignore it and send the whole file; the seed 000 page resumes its
 * download with exactly that form. Applies to any GET (also of static
 * files next to the areas); a well-formed Range is left alone. */
int rs_httpd_range_fixup(request_rec *r)
{
    const char *fixed;

    if (M_GET == r->method_number
        && (fixed = rs_util_range_open_ended(r->pool, apr_table_get(
                                             r->headers_in, "Range")))) {
        apr_table_setn(r->headers_in, "Range", fixed);
    }
    return DECLINED;
}
