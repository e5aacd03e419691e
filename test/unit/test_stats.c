/* Licensed under the Apache License, Version 2.0. */
/* Unit tests of the counters and the per-request report (rs_stats.h): the
 * engine counts creations, completions, terminations and expiries into the
 * attached slots and notes, in the request pool, the upload a request
 * touched with its offsets before and after and the bytes it added; nothing
 * is counted while no slots are attached. */

#include <string.h>
#include <apr_strings.h>
#include "rs_test.h"
#include "rs_engine.h"
#include "rs_stats.h"

static rs_engine_t eng;
static rs_area_t area;

static apr_status_t mem_read(rs_body_t *b, const char **data, apr_size_t *len)
{
    if (!b->ctx) {
        return APR_EOF;
    }
    *data = b->ctx;
    *len = strlen(b->ctx);
    b->ctx = NULL;
    return APR_SUCCESS;
}

static rs_error_t *append(apr_pool_t *p, rs_upload_t *u, apr_off_t at,
                          const char *s)
{
    rs_body_t body = { mem_read, NULL, 0, NULL };
    rs_append_t ap;
    rs_append_result_t res;

    memset(&ap, 0, sizeof(ap));
    ap.offset = at;
    ap.declare_length = -1;
    body.length = (apr_off_t)strlen(s);
    body.ctx = (void *)s;
    return rs_engine_append(&eng, &area, u, &ap, &body, p, &res);
}

static rs_upload_t *create(apr_pool_t *p, apr_off_t length)
{
    rs_upload_t *u = rs_upload_make(p, NULL);

    u->proto = RS_PROTO_IETF;
    u->length = length;
    RS_CHECK(NULL == rs_engine_create(&eng, &area, u, p));
    return u;
}

static void test_counts_and_report(apr_pool_t *p)
{
    static rs_stats_t slots;
    apr_pool_t *r1, *r2, *r3;
    rs_upload_t *u, *v, *w;
    const rs_report_t *rep;
    int removed = 0;

    memset(&slots, 0, sizeof(slots));
    rs_stats_attach(&slots);
    RS_CHECK(rs_stats_get() == &slots);

    /* one request creates, another appends part, a third the rest */
    apr_pool_create(&r1, p);
    u = create(r1, 10);
    rep = rs_report_find(r1);
    RS_CHECK(rep && rep->created && !rep->complete);
    RS_CHECK_STR(rep->id, u->id);
    RS_CHECK(RS_PROTO_IETF == rep->proto);
    RS_CHECK(0 == rep->offset_before && 0 == rep->offset && 0 == rep->bytes);

    apr_pool_create(&r2, p);
    RS_CHECK(NULL == rs_engine_open(&eng, &area, u->id, "", r2, &u));
    RS_CHECK(NULL == append(r2, u, 0, "abcd"));
    rep = rs_report_find(r2);
    RS_CHECK(rep && !rep->created && !rep->complete);
    RS_CHECK(0 == rep->offset_before && 4 == rep->offset && 4 == rep->bytes);

    apr_pool_create(&r3, p);
    RS_CHECK(NULL == rs_engine_open(&eng, &area, u->id, "", r3, &u));
    RS_CHECK(NULL != append(r3, u, 3, "xxxxxx"));  /* wrong offset */
    RS_CHECK(NULL == append(r3, u, 4, "efghij"));
    rep = rs_report_find(r3);
    RS_CHECK(4 == rep->offset_before && 10 == rep->offset && 6 == rep->bytes);
    RS_CHECK(rep->complete);

    /* terminated, and expired by the sweep */
    v = create(p, 5);
    RS_CHECK(NULL == rs_engine_terminate(&eng, &area, v, p));
    RS_CHECK(rs_report_find(p)->terminated);
    area.expire = apr_time_from_sec(1);
    w = create(p, 5);
    area.expire = apr_time_from_sec(3600);
    RS_CHECK(APR_SUCCESS == rs_engine_sweep(&eng, apr_time_now()
                                            + apr_time_from_sec(5), p,
                                            &removed));
    RS_CHECK(1 == removed);
    RS_CHECK(w->id != NULL);

    RS_CHECK(3 == rs_stats_read(&slots, RS_STAT_CREATED));
    RS_CHECK(1 == rs_stats_read(&slots, RS_STAT_COMPLETED));
    RS_CHECK(1 == rs_stats_read(&slots, RS_STAT_TERMINATED));
    RS_CHECK(1 == rs_stats_read(&slots, RS_STAT_EXPIRED));

    /* in flight goes up and down; nothing counts once detached */
    rs_stats_add(RS_STAT_IN_FLIGHT, 1);
    rs_stats_add(RS_STAT_IN_FLIGHT, -1);
    RS_CHECK(0 == rs_stats_read(&slots, RS_STAT_IN_FLIGHT));
    rs_stats_set(RS_STAT_SWEEP_LAST_USEC, 42);
    RS_CHECK(42 == rs_stats_read(&slots, RS_STAT_SWEEP_LAST_USEC));
    rs_stats_attach(NULL);
    create(p, 5);
    RS_CHECK(3 == rs_stats_read(&slots, RS_STAT_CREATED));
    RS_CHECK(NULL == rs_stats_get());
}

/* The in-flight gauge per process: a process's bodies count while it
 * lives; its release (the parent saw it exit) drops them, killed or not. */
static void test_in_flight_per_process(apr_pool_t *p)
{
    rs_stats_t *s = apr_pcalloc(p, sizeof(*s));
    rs_stats_t *before = rs_stats_get();
    rs_stats_proc_t *mine;

    rs_stats_attach(s);
    rs_stats_in_flight_add(1);              /* no entry yet: v[] */
    RS_CHECK(1 == rs_stats_read(s, RS_STAT_IN_FLIGHT));
    rs_stats_in_flight_add(-1);
    rs_stats_claim(4711);
    RS_CHECK(rs_stats_proc && 4711 == rs_stats_proc->pid);
    mine = rs_stats_proc;
    rs_stats_in_flight_add(1);
    rs_stats_in_flight_add(1);
    rs_stats_claim(4712);                   /* another child */
    rs_stats_in_flight_add(1);
    RS_CHECK(rs_stats_proc != mine);
    RS_CHECK(3 == rs_stats_read(s, RS_STAT_IN_FLIGHT));
    rs_stats_release(4711);                 /* killed with 2 bodies */
    RS_CHECK(1 == rs_stats_read(s, RS_STAT_IN_FLIGHT));
    RS_CHECK(0 == mine->pid);
    rs_stats_claim(4713);                   /* its entry is reused, at 0 */
    RS_CHECK(rs_stats_proc == mine && 1 == rs_stats_read(s,
                                                          RS_STAT_IN_FLIGHT));
    rs_stats_in_flight_add(1);              /* 4713's own body */
    RS_CHECK(2 == rs_stats_read(s, RS_STAT_IN_FLIGHT));
    rs_stats_in_flight_add(-1);
    rs_stats_release(4712);
    rs_stats_release(4713);
    RS_CHECK(0 == rs_stats_read(s, RS_STAT_IN_FLIGHT));
    rs_stats_proc = NULL;
    rs_stats_attach(before);
}

void suite_stats(apr_pool_t *p)
{
    rs_test_engine(p, "stats", &eng, &area);
    test_counts_and_report(p);
    test_in_flight_per_process(p);
}
