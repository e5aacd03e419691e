/* Licensed to the Apache Software Foundation (ASF) under one or more
 * contributor license agreements; and licensed under the Apache License,
 * Version 2.0 (the "License"); you may not use this file except in
 * compliance with the License. See http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * resumablectl - inspect and maintain mod_resumable's state database, like
 * htcacheclean for mod_cache_disk. Built beside the module from the same
 * APR-only core (rs_store, rs_upload, rs_engine, rs_ctl).
 *
 *   resumablectl [-d DB] [-t TYPE] list            uploads: state, size, age
 *   resumablectl [-d DB] [-t TYPE] show ID         every field of one upload
 *   resumablectl [-d DB] [-t TYPE] verify          records against files,
 *                                   ResumableMaxPending counts against uploads
 *   resumablectl [-d DB] [-t TYPE] expire          remove expired uploads now
 *   resumablectl [-d DB] [-t TYPE] repair          fix what verify finds
 *   resumablectl [-d DB] [-t TYPE] [-o OWNER] [-e SECONDS] rebuild DIR
 *                                   records for orphaned data files of DIR
 *   resumablectl [-d DB] [-t TYPE] events          pending hook events
 *   resumablectl [-d DB] [-t TYPE] replay ID|all   send again now
 *   resumablectl [-d DB] [-t TYPE] drop ID|all     forget (never sent)
 *
 *   resumablectl -d dbd:CONNINFO schema            create/migrate the schema
 *
 * DB is the ResumableStateDB path (default /var/lib/apache2/resumable/state),
 * TYPE its apr_dbm type (default sdbm). "dbd:CONNINFO" names a PostgreSQL
 * state database (ResumableStateDB dbd:) by the libpq conninfo of its
 * DBDParams line, e.g. -d 'dbd:host=db1 dbname=resumable user=rs'; no
 * .ctl.lock is taken there (PostgreSQL serialises the writers). Exit status: 0 ok, 1 verify found
 * problems, 2 usage or database error.
 *
 * Locking: resumablectl does not share httpd's global mutex (its mechanism
 * may be one another process can not attach to). It takes an flock on
 * "<DB>.ctl.lock" (exclusive for writing commands, shared for reading ones)
 * so two resumablectl never interleave. Reading commands (list, show,
 * verify) are safe while httpd runs. Writing commands (expire, repair,
 * rebuild) must be run with httpd stopped: a request could otherwise write
 * a record between resumablectl's read and write of it. replay and drop
 * (hook events, the outbox of rs_hook.h) write one outbox record each in
 * one transaction, which on sdbm holds its exclusive file lock: they may
 * run while httpd does (the deliverer's own update of a dropped event is
 * a no-op). replay makes an event due now: httpd's deliverer sends it
 * within a second. expire also takes
 * each upload's writer lock, as httpd's own sweep does.
 *
 * Recovery of a lost, unreadable or corrupted database (verify says
 * "cannot read the state database"; httpd logs RS03002/RS03009):
 *   1. stop httpd;
 *   2. move the database files (DB.pag and DB.dir for sdbm) aside;
 *   3. resumablectl -d DB rebuild DIR, for every upload area DIR: every
 *      "DIR/.resumable/<id>.data" becomes an anonymous upload of deferred
 *      length whose offset is the file size (-o OWNER for an area with
 *      authentication; -e 1d to let them expire), so a client that still
 *      has its upload URL resumes it (declaring Upload-Length on its next
 *      PATCH); what the data files can not tell (metadata, file name,
 *      checksums, concatenation) is lost, published files are untouched;
 *   4. give DB's files to the httpd user (chown) and start httpd.
 * When only some records are damaged, `repair` deletes them (and fixes
 * offsets ahead of their data files) and `rebuild` then adopts their data.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/file.h>

#include <apr_general.h>
#include <apr_getopt.h>
#include <apr_strings.h>
#include <apr_time.h>

#include "rs_store_pgsql.h"
#include "rs_ctl.h"
#include "rs_engine.h"
#include "rs_store.h"
#include "rs_util.h"
#include "rs_log.h"
#include "rs_hook.h"

#ifndef RS_DEFAULT_STATEDB
#define RS_DEFAULT_STATEDB "/var/lib/apache2/resumable/state"
#endif

typedef struct ctl_t {
    apr_pool_t *p;
    const char *db;
    const char *type;
    const char *owner;
    apr_interval_time_t expire;
    rs_store_t *store;
} ctl_t;

static int usage(void)
{
    fprintf(stderr,
            "usage: resumablectl [-d statedb] [-t dbmtype] COMMAND\n"
            "  list               uploads with state, size and age\n"
            "  show ID            one upload in detail\n"
            "  verify             check every record against its files\n"
            "  expire             remove expired uploads now\n"
            "  repair             fix what verify finds (httpd stopped)\n"
            "  rebuild DIR        [-o owner] [-e seconds] records for data\n"
            "                     files of the area DIR that have none\n"
            "  events             pending hook notifications\n"
            "  replay ID|all      make them due now (httpd sends them)\n"
            "  drop ID|all        forget them (they are never sent)\n"
            "  schema             (-d dbd:CONNINFO) create or migrate the\n"
            "                     PostgreSQL schema, print its version\n");
    return 2;
}

static int fail(apr_status_t rv, const char *what, const char *arg)
{
    char buf[256];

    fprintf(stderr, "resumablectl: %s %s: %s\n", what, arg,
            apr_strerror(rv, buf, sizeof(buf)));
    return 2;
}

/* flock on "<db>.ctl.lock": kept until the process exits. */
static int take_lock(ctl_t *c, int exclusive)
{
    const char *path = apr_pstrcat(c->p, c->db, ".ctl.lock", NULL);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

    if (fd < 0 && !exclusive) {
        return 0;               /* read-only place: readers need no lock */
    }
    if (fd < 0 || flock(fd, exclusive ? LOCK_EX : LOCK_SH)) {
        return fail(APR_FROM_OS_ERROR(errno), "cannot lock", path);
    }
    return 0;
}

static const char *size_str(apr_pool_t *p, const rs_upload_t *u)
{
    if (u->length < 0) {
        return apr_psprintf(p, "%" APR_OFF_T_FMT "/?", u->offset);
    }
    return apr_psprintf(p, "%" APR_OFF_T_FMT "/%" APR_OFF_T_FMT, u->offset,
                        u->length);
}

static void list_one(ctl_t *c, const rs_ctl_item_t *it, apr_time_t now)
{
    const rs_upload_t *u = it->u;

    if (!u) {
        printf("%-22s %-10s %-21s %8s %s\n", it->id, "corrupt", "-", "-",
               "-");
        return;
    }
    printf("%-22s %-10s %-21s %8ld %s\n", it->id,
           rs_upload_state_name(u->state), size_str(c->p, u),
           rs_ctl_age(u, now), u->filename ? u->filename : "-");
}

static apr_status_t load(ctl_t *c, apr_array_header_t **items)
{
    apr_status_t rv = rs_ctl_load(c->store, c->p, items);

    if (APR_STATUS_IS_ENOENT(rv)) {
        fail(rv, "no state database at", c->db);
    }
    else if (APR_SUCCESS != rv) {
        fail(rv, "cannot read the state database (corrupt or unreadable; "
             "see Recovery in resumablectl.c)", c->db);
    }
    return rv;
}

static int cmd_list(ctl_t *c)
{
    apr_array_header_t *items;
    apr_time_t now = apr_time_now();
    int i;

    if (APR_SUCCESS != load(c, &items)) {
        return 2;
    }
    printf("%-22s %-10s %-21s %8s %s\n", "ID", "STATE", "OFFSET/LENGTH",
           "AGE(s)", "NAME");
    for (i = 0; i < items->nelts; i++) {
        list_one(c, APR_ARRAY_IDX(items, i, rs_ctl_item_t *), now);
    }
    return 0;
}

static void show_str(const char *name, const char *v)
{
    printf("%-13s %s\n", name, v ? v : "-");
}

static void show_time(ctl_t *c, const char *name, apr_time_t t)
{
    show_str(name, t ? rs_util_http_date(c->p, t) : NULL);
}

static void show_list(const char *name, const apr_array_header_t *a)
{
    int i;

    printf("%-13s", name);
    for (i = 0; a && i < a->nelts; i++) {
        printf(" %s", APR_ARRAY_IDX(a, i, const char *));
    }
    printf("%s\n", a && a->nelts ? "" : " -");
}

/* cluster records: the writer lease and the segment files */
static void show_lease(ctl_t *c, const rs_upload_t *u)
{
    int i;

    if (!u->epoch && !u->nsegs) {
        return;
    }
    printf("%-13s %" APR_INT64_T_FMT "\n", "epoch:", u->epoch);
    if (u->lease_owner) {
        printf("%-13s %s until %" APR_TIME_T_FMT "%s\n", "lease:",
               u->lease_owner, u->lease_until,
               u->stop_req ? " (asked to yield)" : "");
    }
    else {
        printf("%-13s free\n", "lease:");
    }
    for (i = 0; i < u->nsegs; i++) {
        printf("%-13s e%" APR_INT64_T_FMT " start=%" APR_OFF_T_FMT " len=%"
               APR_OFF_T_FMT "\n", "segment:", u->segs[i].epoch,
               u->segs[i].start, u->segs[i].len);
    }
}

static void show_upload(ctl_t *c, const rs_ctl_item_t *it)
{
    const rs_upload_t *u = it->u;

    show_str("id:", it->id);
    show_str("state:", rs_upload_state_name(u->state));
    printf("%-13s %d\n%-13s 0x%x\n", "proto:", (int)u->proto, "flags:",
           u->flags);
    printf("%-13s %s\n%-13s %" APR_OFF_T_FMT "\n", "offset/length:",
           size_str(c->p, u), "data file:", it->data_size);
    show_time(c, "created:", u->created);
    show_time(c, "updated:", u->updated);
    show_time(c, "expires:", u->expires);
    show_str("owner:", u->owner && *u->owner ? u->owner : "(anonymous)");
    show_str("dir:", u->dir);
    show_str("filename:", u->filename);
    show_str("filetype:", u->filetype);
    show_str("metadata:", u->metadata);
    show_str("path:", u->path);
    show_str("concat:", u->concat);
    show_list("parts:", u->parts);
    show_list("waiters:", u->waiters);
    if (u->flags & RS_UF_CHUNKED) {
        printf("%-13s %d of %d missing\n", "chunks:",
               rs_upload_chunks_missing(u), u->chunk_count);
    }
    show_str("digest:", u->digest ? apr_pstrcat(c->p, u->digest_alg, ":",
                                                u->digest, NULL) : NULL);
    show_lease(c, u);
}

static int cmd_show(ctl_t *c, const char *id)
{
    rs_ctl_item_t *it;
    apr_status_t rv = rs_ctl_load_one(c->store, id, c->p, &it);

    if (APR_SUCCESS != rv) {
        return fail(rv, "no upload", id);
    }
    if (!it->u) {
        return fail(it->rv, "corrupt record of upload", id);
    }
    show_upload(c, it);
    return 0;
}

/* ResumableMaxPending's counts (after the records: a repaired record
 * releases its count): one line per problem; their number. */
static int verify_pending(ctl_t *c, int repair, int *fixed)
{
    apr_array_header_t *probs;
    apr_status_t rv = rs_ctl_pending(c->store, repair, c->p, &probs);
    int i;

    for (i = 0; i < probs->nelts; i++) {
        printf("%s\n", APR_ARRAY_IDX(probs, i, const char *));
    }
    if (APR_SUCCESS != rv) {
        fail(rv, "checking the pending counts of", "the database");
        return probs->nelts + 1;
    }
    *fixed += repair ? probs->nelts : 0;
    return probs->nelts;
}

/* verify (repair = 0) or repair (1): one line per problem, then a summary */
static int cmd_verify(ctl_t *c, int repair)
{
    apr_array_header_t *items;
    const char *action;
    apr_size_t segs = 0;
    int i, bad = 0, fixed = 0;

    if (APR_SUCCESS != load(c, &items)) {
        return 2;
    }
    for (i = 0; i < items->nelts; i++) {
        rs_ctl_item_t *it = APR_ARRAY_IDX(items, i, rs_ctl_item_t *);
        if (RS_CTL_OK == rs_ctl_check(it, c->p)) {
            continue;
        }
        bad++;
        printf("%s: %s\n", it->id, it->what);
        if (repair && APR_SUCCESS == rs_ctl_repair(c->store, it, c->p,
                                                   &action)) {
            printf("%s: repaired: %s\n", it->id, action);
            fixed++;
        }
    }
    bad += verify_pending(c, repair, &fixed);
    if (repair && APR_SUCCESS == rs_ctl_gc(c->store, c->p, &segs)) {
        printf("repair: %lu orphaned segments removed\n",
               (unsigned long)segs);
    }
    printf("%s: %d records, %d problems%s\n", repair ? "repair" : "verify",
           items->nelts, bad, repair ? apr_psprintf(c->p, ", %d repaired",
                                                    fixed) : "");
    return (bad > fixed) ? 1 : 0;
}

static int cmd_expire(ctl_t *c)
{
    rs_engine_t e = { c->store, 64 * 1024 };
    int removed = 0;
    apr_status_t rv = rs_engine_sweep(&e, apr_time_now(), c->p, &removed);

    if (APR_SUCCESS != rv) {
        return fail(rv, "expire failed on", c->db);
    }
    printf("expire: %d uploads removed\n", removed);
    return 0;
}

static int cmd_rebuild(ctl_t *c, const char *dir)
{
    apr_array_header_t *ids;
    apr_status_t rv = rs_ctl_adopt(c->store, dir, c->owner, c->expire, c->p,
                                   &ids);
    int i;

    if (APR_SUCCESS != rv) {
        return fail(rv, "rebuild failed for", dir);
    }
    for (i = 0; i < ids->nelts; i++) {
        printf("%s: adopted\n", APR_ARRAY_IDX(ids, i, const char *));
    }
    printf("rebuild: %d records rebuilt\n", ids->nelts);
    return 0;
}

/* ---- hook events (the outbox) ------------------------------------------ */

static int cmd_events(ctl_t *c)
{
    apr_array_header_t *evs;
    apr_status_t rv = rs_outbox_list(c->store, c->p, 1 << 20, &evs, NULL);
    apr_time_t now = apr_time_now();
    int i;

    if (APR_SUCCESS != rv) {
        return fail(rv, "cannot read the state database", c->db);
    }
    for (i = 0; i < evs->nelts; i++) {
        rs_outbox_ev_t *e = APR_ARRAY_IDX(evs, i, rs_outbox_ev_t *);
        printf("%s %-14s attempts=%d next=%lds %s%s%s\n", e->id, e->event,
               e->attempts, e->next > now ? (long)apr_time_sec(e->next - now)
               : 0L, e->url, e->last_error ? " last: " : "",
               e->last_error ? e->last_error : "");
    }
    printf("events: %d pending\n", evs->nelts);
    return 0;
}

/* replay (make due now) or drop the event id, or all of them. */
static int cmd_event_op(ctl_t *c, int drop, const char *id)
{
    apr_array_header_t *evs;
    apr_status_t rv = rs_outbox_list(c->store, c->p, 1 << 20, &evs, NULL);
    int i, n = 0;

    for (i = 0; APR_SUCCESS == rv && i < evs->nelts; i++) {
        rs_outbox_ev_t *e = APR_ARRAY_IDX(evs, i, rs_outbox_ev_t *);
        if (strcmp(id, "all") && strcmp(id, e->id)) {
            continue;
        }
        e->next = 0;
        rv = drop ? rs_outbox_drop(c->store, e->key, c->p)
             : rs_outbox_update(c->store, e, c->p);
        if (APR_SUCCESS == rv) {
            printf("%s: %s\n", e->id, drop ? "dropped" : "due now");
            n++;
        }
    }
    if (APR_SUCCESS == rv && n) {
        rv = rs_outbox_wake(c->store, c->p);    /* the deliverer looks now
                                                   (and counts again) */
    }
    if (APR_SUCCESS != rv) {
        return fail(rv, "cannot write the state database", c->db);
    }
    if (!n && strcmp(id, "all")) {
        fprintf(stderr, "resumablectl: no pending event %s\n", id);
        return 1;
    }
    printf("%s: %d event(s)\n", drop ? "drop" : "replay", n);
    return 0;
}

static int parse_args(ctl_t *c, int argc, const char *const *argv, int *next)
{
    apr_getopt_t *opt;
    const char *arg;
    char ch;
    apr_status_t rv;

    apr_getopt_init(&opt, c->p, argc, argv);
    while (APR_SUCCESS == (rv = apr_getopt(opt, "d:t:o:e:", &ch, &arg))) {
        if ('d' == ch) {
            c->db = arg;
        }
        else if ('t' == ch) {
            c->type = arg;
        }
        else if ('o' == ch) {
            c->owner = arg;
        }
        else if (APR_SUCCESS != rs_util_parse_duration(arg, &c->expire)) {
            return usage();
        }
    }
    if (APR_EOF != rv || opt->ind >= argc) {
        return usage();
    }
    *next = opt->ind;
    return 0;
}

static int dispatch(ctl_t *c, const char *cmd, const char *arg)
{
    if (!strcmp(cmd, "list")) {
        return cmd_list(c);
    }
    if (!strcmp(cmd, "show")) {
        return cmd_show(c, arg);
    }
    if (!strcmp(cmd, "verify") || !strcmp(cmd, "repair")) {
        return cmd_verify(c, 'r' == cmd[0]);
    }
    if (!strcmp(cmd, "expire")) {
        return cmd_expire(c);
    }
    if (!strcmp(cmd, "events")) {
        return cmd_events(c);
    }
    if (!strcmp(cmd, "replay") || !strcmp(cmd, "drop")) {
        return cmd_event_op(c, 'd' == cmd[0], arg);
    }
    return cmd_rebuild(c, arg);
}

/* -d dbd:CONNINFO: the pgsql provider on a connection of our own. */
static int open_store(ctl_t *c)
{
    apr_status_t rv;

    if (strncmp(c->db, "dbd:", 4)) {
        rv = rs_store_create(&c->store, c->type, c->db, NULL, c->p);
        return APR_SUCCESS == rv ? 0 : fail(rv, "unusable state database",
                                            c->db);
    }
    rv = rs_store_pgsql_direct(&c->store, c->db + 4, c->p);
    return APR_SUCCESS == rv ? 0 : fail(rv, "unusable state database",
                                        "dbd:");
}

static int cmd_schema(ctl_t *c)
{
    int version = 0;
    apr_status_t rv;

    if (!rs_store_is_pgsql(c->store)) {
        fprintf(stderr, "resumablectl: schema needs -d dbd:CONNINFO\n");
        return 2;
    }
    rv = rs_store_pgsql_schema(c->store, 1, c->p, &version);
    if (APR_SUCCESS != rv) {
        return fail(rv, "schema creation failed on", "dbd:");
    }
    printf("schema: version %d (was %d)\n", RS_PGSQL_SCHEMA_VERSION,
           version);
    return 0;
}

static int run(ctl_t *c, int argc, const char *const *argv, int i)
{
    const char *cmd = argv[i];
    int writes = !strcmp(cmd, "expire") || !strcmp(cmd, "repair")
                 || !strcmp(cmd, "rebuild");
    int events = !strcmp(cmd, "replay") || !strcmp(cmd, "drop");
    int with_arg = !strcmp(cmd, "show") || !strcmp(cmd, "rebuild") || events;
    int schema = !strcmp(cmd, "schema");

    if (!writes && !with_arg && !schema && strcmp(cmd, "list")
        && strcmp(cmd, "verify") && strcmp(cmd, "events")) {
        return usage();
    }
    if (argc != i + 1 + with_arg) {
        return usage();
    }
    if (open_store(c)) {
        return 2;
    }
    if (schema) {
        return cmd_schema(c);
    }
    if (!rs_store_is_pgsql(c->store) && take_lock(c, writes || events)) {
        return 2;
    }
    return dispatch(c, cmd, with_arg ? argv[i + 1] : NULL);
}

int main(int argc, const char *const *argv)
{
    ctl_t c = { NULL, RS_DEFAULT_STATEDB, "sdbm", "", 0, NULL };
    int i = 0, rc;

    apr_app_initialize(&argc, &argv, NULL);
    apr_pool_create(&c.p, NULL);
    rs_log_set_stderr_level(RS_LOG_WARNING);
    rc = parse_args(&c, argc, argv, &i);
    if (0 == rc) {
        rc = run(&c, argc, argv, i);
    }
    apr_pool_destroy(c.p);
    apr_terminate();
    return rc;
}
