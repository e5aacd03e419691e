/* Licensed under the Apache License, Version 2.0. */
/*
 * Hooks, APR-only: events, the directive's arguments, the payload, the
 * answer of a blocking hook (see rs_hook.h).
 */

#include <apr_strings.h>
#include <apr_lib.h>
#include <jansson.h>

#include "rs_hook.h"
#include "rs_engine.h"
#include "rs_meta.h"
#include "rs_util.h"

static const char *const event_names[RS_HOOK__COUNT] = {
    [RS_HOOK_PRE_CREATE] = "pre-create",
    [RS_HOOK_POST_CREATE] = "post-create",
    [RS_HOOK_PRE_FINISH] = "pre-finish",
    [RS_HOOK_POST_FINISH] = "post-finish",
    [RS_HOOK_POST_TERMINATE] = "post-terminate",
    [RS_HOOK_POST_EXPIRE] = "post-expire",
    [RS_HOOK_POST_RECEIVE] = "post-receive",
};

static const char *const proto_names[RS_PROTO__COUNT] = {
    [RS_PROTO_TUS] = "tus", [RS_PROTO_IETF] = "ietf",
    [RS_PROTO_OFFSET] = "offset", [RS_PROTO_SLICE] = "slice",
    [RS_PROTO_MD5] = "md5", [RS_PROTO_FLOW] = "flow",
};

const char *const rs_hook_headers[] = {
    "User-Agent", "Origin", "Referer", "Content-Type", "Content-Length",
    "X-Request-ID", "X-Forwarded-For", "Tus-Resumable",
    "Upload-Draft-Interop-Version", NULL
};

const char *rs_hook_event_name(rs_hook_event_t ev)
{
    return (int)ev >= 0 && ev < RS_HOOK__COUNT ? event_names[ev] : "unknown";
}

int rs_hook_event_find(const char *name)
{
    int i;

    for (i = 0; i < RS_HOOK__COUNT; i++) {
        if (!strcasecmp(event_names[i], name)) {
            return i;
        }
    }
    return -1;
}

int rs_hook_blocking(rs_hook_event_t ev)
{
    return RS_HOOK_PRE_CREATE == ev || RS_HOOK_PRE_FINISH == ev;
}

/* ------------------------------------------------------------------------ */
/* directive                                                                 */

apr_status_t rs_hook_parse_url(apr_pool_t *p, const char *url, int *tls,
                               const char **host, apr_port_t *port,
                               const char **path)
{
    const char *h, *end, *colon;
    apr_int64_t n;
    char *stop;

    *tls = !strncasecmp(url, "https://", 8);
    if ((!*tls && strncasecmp(url, "http://", 7)) || !rs_util_header_safe(url)
        || strpbrk(url, " #@\\")) {
        return APR_EINVAL;
    }
    h = url + (*tls ? 8 : 7);
    end = h + strcspn(h, "/?");
    colon = memchr(h, ':', end - h);
    if (*h == '[') {                    /* [IPv6] */
        const char *close = memchr(h, ']', end - h);
        if (!close || close == h + 1) {
            return APR_EINVAL;
        }
        colon = close + 1 < end ? close + 1 : NULL;
        if (colon && *colon != ':') {
            return APR_EINVAL;
        }
        *host = apr_pstrndup(p, h + 1, close - h - 1);
    }
    if ((colon ? colon : end) == h || (end - h) > 255) {
        return APR_EINVAL;
    }
    if (*h != '[') {
        *host = apr_pstrndup(p, h, (colon ? colon : end) - h);
    }
    *port = *tls ? 443 : 80;
    if (colon) {
        if (colon + 1 == end || !apr_isdigit(colon[1])) {
            return APR_EINVAL;
        }
        n = apr_strtoi64(colon + 1, &stop, 10);
        if (stop != end || n < 1 || n > 65535) {
            return APR_EINVAL;
        }
        *port = (apr_port_t)n;
    }
    *path = *end == '/' ? end : apr_pstrcat(p, "/", end, NULL);
    return APR_SUCCESS;
}

static const char *parse_option(apr_pool_t *p, rs_hook_t *h, const char *o)
{
    apr_interval_time_t t;

    if (!strncasecmp(o, "timeout=", 8)) {
        if (APR_SUCCESS != rs_util_parse_duration(o + 8, &t) || t <= 0
            || t > RS_HOOK_MAX_TIMEOUT) {
            return apr_psprintf(p, "bad option '%s': timeout is a duration "
                                "from 1s to 300s", o);
        }
        h->timeout = t;
        return NULL;
    }
    if (!strcasecmp(o, "failopen=on") || !strcasecmp(o, "failopen=off")) {
        h->failopen = !strcasecmp(o, "failopen=on");
        return NULL;
    }
    if (!strncasecmp(o, "ca=", 3)) {
        const char *msg = !h->tls ? "for https:// targets only"
                          : o[3] != '/' ? "an absolute path"
                          : rs_hook_ca_check(p, o + 3);
        if (msg) {
            return apr_psprintf(p, "bad option '%s': %s", o, msg);
        }
        h->ca_file = apr_pstrdup(p, o + 3);
        return NULL;
    }
    return apr_psprintf(p, "unknown option '%s' (timeout=SECONDS, "
                        "failopen=on|off or ca=FILE)", o);
}

const char *rs_hook_parse(apr_pool_t *p, const char *event,
                          const char *target, int nopts,
                          const char *const *opts, int *ev,
                          rs_hook_t **hook)
{
    rs_hook_t *h;
    const char *msg;
    int i;

    *hook = NULL;
    if ((*ev = rs_hook_event_find(event)) < 0) {
        return apr_psprintf(p, "unknown event '%s' (pre-create, post-create,"
                            " pre-finish, post-finish, post-terminate, "
                            "post-expire, post-receive)", event);
    }
    if (!strcasecmp(target, "none")) {
        return nopts ? "no options after 'none'" : NULL;
    }
    h = apr_pcalloc(p, sizeof(*h));
    h->event = *ev;
    h->target = apr_pstrdup(p, target);
    h->timeout = RS_HOOK_DEF_TIMEOUT;
    if (target[0] == '/' && target[1] != '/') {
        if (!rs_util_header_safe(target) || strpbrk(target, " #\\")) {
            return apr_psprintf(p, "bad target '%s': a local path has no "
                                "spaces, controls or fragments", target);
        }
        h->local = 1;
        h->path = h->target;
    }
    else if (APR_SUCCESS != rs_hook_parse_url(p, target, &h->tls, &h->host,
                                              &h->port, &h->path)) {
        return apr_psprintf(p, "bad target '%s': expected a local path "
                            "(/hooks/x), an http(s)://host[:port]/path URL "
                            "or none", target);
    }
    for (i = 0; i < nopts; i++) {
        if ((msg = parse_option(p, h, opts[i]))) {
            return msg;
        }
    }
    *hook = h;
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* payload                                                                   */

static void set_str(json_t *o, const char *k, const char *v)
{
    json_t *s = v ? json_string(v) : NULL;

    json_object_set_new(o, k, s ? s : json_null());
}

static json_t *metadata_json(apr_pool_t *p, const char *hdr)
{
    apr_array_header_t *pairs;
    json_t *o = json_object();
    int i;

    if (!hdr || APR_SUCCESS != rs_meta_parse(p, hdr, &pairs)) {
        return o;
    }
    for (i = 0; i < pairs->nelts; i++) {
        rs_meta_pair_t *m = &APR_ARRAY_IDX(pairs, i, rs_meta_pair_t);
        json_t *v = json_stringn((const char *)m->value, m->value_len);

        json_object_set_new(o, m->key, v ? v : json_null());  /* not UTF-8 */
    }
    return o;
}

static json_t *upload_json(apr_pool_t *p, const rs_upload_t *u)
{
    json_t *o = json_object(), *parts;
    int i;

    set_str(o, "id", u->id);
    set_str(o, "protocol", (int)u->proto >= 0 && u->proto < RS_PROTO__COUNT
                           ? proto_names[u->proto] : NULL);
    json_object_set_new(o, "size", u->length >= 0
                        ? json_integer(u->length) : json_null());
    json_object_set_new(o, "offset", json_integer(
                            RS_STATE_COMPLETE == u->state && u->length >= 0
                            ? u->length : u->offset));
    json_object_set_new(o, "metadata", metadata_json(p, u->metadata));
    set_str(o, "filename", u->filename);
    set_str(o, "type", u->filetype);
    if (u->digest && u->digest_alg) {
        json_object_set_new(o, "digest", json_pack("{s:s,s:s}", "algorithm",
                                                   u->digest_alg, "value",
                                                   u->digest));
    }
    json_object_set_new(o, "partial", json_boolean(u->flags & RS_UF_PARTIAL));
    json_object_set_new(o, "final", json_boolean(u->flags & RS_UF_FINAL));
    if (u->parts) {
        parts = json_array();
        for (i = 0; i < u->parts->nelts; i++) {
            json_array_append_new(parts, json_string(
                APR_ARRAY_IDX(u->parts, i, const char *)));
        }
        json_object_set_new(o, "parts", parts);
    }
    set_str(o, "owner", u->owner && *u->owner ? u->owner : NULL);
    set_str(o, "path", (u->flags & (RS_UF_PUBLISHED | RS_UF_COMPOSED))
                       ? u->path : NULL);
    return o;
}

static json_t *request_json(const rs_hook_req_t *req)
{
    json_t *o = json_object(), *h = json_object();
    const char *v;
    int i;

    set_str(o, "method", req->method);
    set_str(o, "uri", req->uri);
    set_str(o, "remote_addr", req->remote);
    set_str(o, "user", req->user && *req->user ? req->user : NULL);
    for (i = 0; req->headers && rs_hook_headers[i]; i++) {
        if ((v = apr_table_get(req->headers, rs_hook_headers[i]))) {
            json_t *s = json_string(v);
            if (s) {
                json_object_set_new(h, rs_hook_headers[i], s);
            }
        }
    }
    json_object_set_new(o, "headers", h);
    return o;
}

const char *rs_hook_payload(apr_pool_t *p, rs_hook_event_t ev,
                            const char *event_id, const rs_upload_t *u,
                            const rs_hook_req_t *req, const char *data_path,
                            const apr_array_header_t *data_parts)
{
    json_t *o = json_object(), *arr;
    int i;
    char *s, *out;

    set_str(o, "event", rs_hook_event_name(ev));
    set_str(o, "id", event_id);
    json_object_set_new(o, "time", json_string(rs_util_http_date(
                                                   p, apr_time_now())));
    json_object_set_new(o, "upload", upload_json(p, u));
    if (data_path) {
        set_str(json_object_get(o, "upload"), "data_path", data_path);
    }
    if (data_parts) {
        arr = json_array();
        for (i = 0; i < data_parts->nelts; i++) {
            const rs_part_t *pt = &APR_ARRAY_IDX(data_parts, i, rs_part_t);
            json_array_append_new(arr, json_pack("{s:s,s:I}", "path",
                                                 pt->path, "length",
                                                 (json_int_t)pt->len));
        }
        json_object_set_new(json_object_get(o, "upload"), "data_parts", arr);
    }
    json_object_set_new(o, "request", req ? request_json(req) : json_null());
    s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    out = apr_pstrdup(p, s ? s : "{}");
    free(s);
    return out;
}

/* ------------------------------------------------------------------------ */
/* answers                                                                   */

/* A key rs_meta_parse accepts: 1..RS_META_KEY_MAX visible ASCII, no ','. */
static int meta_key_ok(const char *k)
{
    apr_size_t n = 0;

    for (; k[n]; n++) {
        if ((unsigned char)k[n] <= 0x20 || (unsigned char)k[n] >= 0x7f
            || k[n] == ',') {
            return 0;
        }
    }
    return n > 0 && n <= RS_META_KEY_MAX;
}

/* Metadata object -> tus Upload-Metadata form. */
static const char *answer_metadata(apr_pool_t *p, json_t *m,
                                   const char **hdr)
{
    const char *k, *out = "";
    json_t *v;
    int n = 0;

    if (!json_is_object(m)) {
        return "\"metadata\" is not an object";
    }
    json_object_foreach(m, k, v) {
        const char *s = json_string_value(v);

        if (!s || !meta_key_ok(k) || ++n > RS_META_MAX_PAIRS) {
            return "\"metadata\" must map up to 64 plain keys to strings";
        }
        out = apr_pstrcat(p, out, *out ? "," : "", k, " ",
                          rs_util_b64_encode(p, (const unsigned char *)s,
                                             json_string_length(v)), NULL);
    }
    if (strlen(out) > RS_META_MAX_LEN) {
        return "\"metadata\" is too long";
    }
    *hdr = out;
    return NULL;
}

const char *rs_hook_answer(apr_pool_t *p, const char *body, apr_size_t len,
                           rs_hook_change_t *chg)
{
    json_error_t jerr;
    json_t *o, *v;
    const char *k, *msg = NULL;

    chg->metadata = chg->filename = NULL;
    chg->size_limit = -1;
    while (len && apr_isspace(*body)) {
        body++, len--;
    }
    if (!len) {
        return NULL;                    /* go on, nothing changed */
    }
    if (!(o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr))) {
        return "the answer is not JSON";
    }
    if (!json_is_object(o)) {
        json_decref(o);
        return "the answer is not a JSON object";
    }
    json_object_foreach(o, k, v) {
        if (!strcmp(k, "metadata")) {
            msg = answer_metadata(p, v, &chg->metadata);
        }
        else if (!strcmp(k, "filename")) {
            const char *s = json_string_value(v);
            if (!s || !*s || json_string_length(v) > RS_NAME_MAX
                || strlen(s) != json_string_length(v)
                || !rs_util_sanitize_name(p, s)) {
                msg = "\"filename\" is not a usable file name";
            }
            chg->filename = s ? apr_pstrdup(p, s) : NULL;
        }
        else if (!strcmp(k, "size_limit")) {
            if (!json_is_integer(v) || json_integer_value(v) < 0) {
                msg = "\"size_limit\" is not a non-negative integer";
            }
            chg->size_limit = json_is_integer(v) ? json_integer_value(v) : -1;
        }
        else {
            msg = apr_psprintf(p, "unknown member \"%.40s\" in the answer", k);
        }
        if (msg) {
            break;
        }
    }
    json_decref(o);
    return msg;
}

const char *rs_hook_text(apr_pool_t *p, const char *body, apr_size_t len)
{
    char *out;
    apr_size_t i, n = len > RS_HOOK_MAX_TEXT ? RS_HOOK_MAX_TEXT : len;

    out = apr_palloc(p, n + 1);
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)body[i];
        out[i] = (c < 0x20 && c != '\n' && c != '\t') || c == 0x7f ? ' '
                 : (char)c;
    }
    out[n] = '\0';
    while (n && (out[n - 1] == '\n' || out[n - 1] == ' ')) {
        out[--n] = '\0';
    }
    for (i = 0; i < n; i++) {           /* not UTF-8 (or cut in a
                                           sequence): ASCII only */
        json_t *s = json_stringn(out, n);
        if (s) {
            json_decref(s);
            break;
        }
        for (; i < n; i++) {
            out[i] = (unsigned char)out[i] >= 0x80 ? '?' : out[i];
        }
    }
    return out;
}
