/* Licensed under the Apache License, Version 2.0. */
/*
 * Counters and the per-request report (design in rs_stats.h).
 */

#include <string.h>
#include <apr_strings.h>

#include "rs_stats.h"

#define REPORT_NOTE "rs_report"

rs_stats_t *rs_stats_slots;

void rs_stats_attach(rs_stats_t *s)
{
    rs_stats_slots = s;
}

rs_stats_t *rs_stats_get(void)
{
    return rs_stats_slots;
}

rs_stats_proc_t *rs_stats_proc;

void rs_stats_claim(apr_uint64_t pid)
{
    int i;

    rs_stats_proc = NULL;
    for (i = 0; rs_stats_slots && i < RS_STATS_PROCS; i++) {
        rs_stats_proc_t *e = &rs_stats_slots->procs[i];
        apr_uint64_t free_ = 0;

        if (__atomic_compare_exchange_n(&e->pid, &free_, pid, 0,
                                        __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
            __atomic_store_n(&e->in_flight, 0, __ATOMIC_RELAXED);
            rs_stats_proc = e;
            return;
        }
    }
}

void rs_stats_release(apr_uint64_t pid)
{
    int i;

    for (i = 0; pid && rs_stats_slots && i < RS_STATS_PROCS; i++) {
        rs_stats_proc_t *e = &rs_stats_slots->procs[i];

        if (__atomic_load_n(&e->pid, __ATOMIC_ACQUIRE) == pid) {
            __atomic_store_n(&e->in_flight, 0, __ATOMIC_RELAXED);
            __atomic_store_n(&e->pid, 0, __ATOMIC_RELEASE);
        }
    }
}

apr_uint64_t rs_stats_in_flight(const rs_stats_t *s)
{
    apr_uint64_t n = __atomic_load_n(&s->v[RS_STAT_IN_FLIGHT],
                                     __ATOMIC_RELAXED);
    int i;

    for (i = 0; i < RS_STATS_PROCS; i++) {
        if (__atomic_load_n(&s->procs[i].pid, __ATOMIC_ACQUIRE)) {
            n += __atomic_load_n(&s->procs[i].in_flight, __ATOMIC_RELAXED);
        }
    }
    return n;
}

rs_report_t *rs_report_find(apr_pool_t *p)
{
    void *r = NULL;

    apr_pool_userdata_get(&r, REPORT_NOTE, p);
    return r;
}

rs_report_t *rs_report(apr_pool_t *p)
{
    rs_report_t *r = rs_report_find(p);

    if (!r) {
        r = apr_pcalloc(p, sizeof(*r));
        r->proto = -1;
        r->offset_before = r->offset = -1;
        apr_pool_userdata_setn(r, REPORT_NOTE, NULL, p);
    }
    return r;
}

void rs_report_upload(apr_pool_t *p, const rs_upload_t *u)
{
    rs_report_t *r = rs_report(p);

    if (!r->id || strcmp(r->id, u->id)) {   /* a new upload: start over */
        r->id = apr_pstrdup(p, u->id);
        r->offset_before = u->offset;
        r->bytes = 0;
    }
    r->proto = u->proto;
    r->offset = u->offset;
    r->complete = RS_STATE_COMPLETE == u->state;
}
