/* Licensed under the Apache License, Version 2.0. */
#ifndef RS_STATS_H
#define RS_STATS_H

/*
 * Design: what the module counts (for mod_status) and what it did for one
 * request (for the access log), reported by the APR-only core without
 * knowing httpd.
 *
 * Counters: one array of 64-bit slots (rs_stats_t). The glue
 * (mod_resumable_status.c) places it in anonymous shared memory owned by
 * httpd's parent process and kept across restarts (ap_retained_data), and
 * attaches it with rs_stats_attach before the children fork: every child,
 * old and new, adds to the same slots. Adding is one relaxed atomic add
 * (no lock, no system call); until something is attached (unit tests,
 * resumablectl) it does nothing. Counters only grow, but IN_FLIGHT (up and
 * down), SWEEP_LAST_USEC and HOOK_PENDING (set).
 *
 * IN_FLIGHT is a gauge of bodies being read by live processes: each child
 * claims an entry of procs[] for its pid at child init (rs_stats_claim)
 * and counts its own bodies there; when a child exits, however it ends
 * (SIGKILL, a crash: its request pools' cleanups never run), httpd's parent
 * learns it (the child_status hook) and frees the entry with its count
 * (rs_stats_release). The gauge reads v[IN_FLIGHT] (processes without an
 * entry: more children than RS_STATS_PROCS, the unit tests) plus every
 * entry. Before, a child killed mid-body left the gauge one high for good
 * (the slots are kept across restarts).
 *
 * Report: the engine notes, in the request pool's userdata, the upload a
 * request touched (id, protocol, offset before and after, bytes stored by
 * this request, completion). The glue turns it into environment variables
 * (RESUMABLE_* in mod_resumable_private.h) once the request is answered.
 */

#include <apr_pools.h>
#include "rs_upload.h"

typedef enum {
    RS_STAT_CREATED = 0,        /* uploads created */
    RS_STAT_COMPLETED,          /* uploads that reached their length
                                   (partials and composed finals too) */
    RS_STAT_TERMINATED,         /* uploads deleted by their client */
    RS_STAT_EXPIRED,            /* uploads removed for being untouched */
    RS_STAT_FAILED,             /* requests carrying upload data that were
                                   answered 4xx/5xx */
    RS_STAT_BYTES,              /* request body bytes read by upload requests */
    RS_STAT_IN_FLIGHT,          /* request bodies being read now */
    RS_STAT_TAKEOVERS,          /* stalled writers that yielded an upload */
    RS_STAT_SWEEPS,             /* expiry sweep runs */
    RS_STAT_SWEEP_USEC,         /* their total duration */
    RS_STAT_SWEEP_LAST_USEC,    /* the last one's duration (set) */
    RS_STAT_REQUESTS,           /* requests answered by the module */
    RS_STAT_DOWNLOADS,          /* downloads of finished uploads */
    RS_STAT_PROTO,              /* requests by protocol: + rs_proto_id_t */
    RS_STAT_STATUS = RS_STAT_PROTO + 8,  /* answers 400..599: + status-400 */
    RS_STAT_ERROR = RS_STAT_STATUS + 200, /* failures by rs_errcode_t */
    RS_STAT_HOOK_PENDING = RS_STAT_ERROR + 64, /* hook notifications in the
                                   outbox, as the deliverer last counted
                                   them (set each round it scans) */
    RS_STAT_HOOK_DELIVERED,     /* notifications delivered (2xx) */
    RS_STAT_HOOK_FAILED,        /* delivery attempts that failed */
    RS_STAT__COUNT
} rs_stat_t;

#define RS_STATS_PROCS 1024

typedef struct rs_stats_proc_t {
    apr_uint64_t pid;           /* 0: free */
    apr_uint64_t in_flight;     /* that process's bodies being read */
} rs_stats_proc_t;

typedef struct rs_stats_t {
    apr_uint64_t v[RS_STAT__COUNT];
    rs_stats_proc_t procs[RS_STATS_PROCS];
} rs_stats_t;

/** This process's entry in procs[] (rs_stats_claim), or NULL. */
extern rs_stats_proc_t *rs_stats_proc;

/** Child init: take a free entry of procs[] for pid (none free: counts
 *  go to v[IN_FLIGHT] as before). */
void rs_stats_claim(apr_uint64_t pid);
/** httpd's parent, when child pid exited: free its entry and count. */
void rs_stats_release(apr_uint64_t pid);
/** The IN_FLIGHT gauge of s: v[IN_FLIGHT] plus every entry. */
apr_uint64_t rs_stats_in_flight(const rs_stats_t *s);

/** Count into s from now on (NULL: stop counting). */
void rs_stats_attach(rs_stats_t *s);
/** The attached counters or NULL. */
rs_stats_t *rs_stats_get(void);

extern rs_stats_t *rs_stats_slots;

/** Add n to slot i (lock-free; a no-op when nothing is attached). */
static inline void rs_stats_add(rs_stat_t i, apr_int64_t n)
{
    if (rs_stats_slots) {
        __atomic_add_fetch(&rs_stats_slots->v[i], (apr_uint64_t)n,
                           __ATOMIC_RELAXED);
    }
}

/** Set slot i to n. */
static inline void rs_stats_set(rs_stat_t i, apr_uint64_t n)
{
    if (rs_stats_slots) {
        __atomic_store_n(&rs_stats_slots->v[i], n, __ATOMIC_RELAXED);
    }
}

/** One more (n = 1) or one less (-1) body being read by this process. */
static inline void rs_stats_in_flight_add(apr_int64_t n)
{
    if (rs_stats_slots && rs_stats_proc) {
        __atomic_add_fetch(&rs_stats_proc->in_flight, (apr_uint64_t)n,
                           __ATOMIC_RELAXED);
    }
    else {
        rs_stats_add(RS_STAT_IN_FLIGHT, n);
    }
}

/** Read slot i of s (IN_FLIGHT: rs_stats_in_flight). */
static inline apr_uint64_t rs_stats_read(const rs_stats_t *s, rs_stat_t i)
{
    return RS_STAT_IN_FLIGHT == i ? rs_stats_in_flight(s)
           : __atomic_load_n(&s->v[i], __ATOMIC_RELAXED);
}

/** What the engine did for one request. */
typedef struct rs_report_t {
    const char *id;             /* the upload, or NULL */
    int proto;                  /* rs_proto_id_t of the upload (or of the
                                   front end that answered), -1 unknown */
    apr_off_t offset_before;    /* offset when the request first saw it,
                                   -1 unknown */
    apr_off_t offset;           /* offset after the request, -1 unknown */
    apr_off_t bytes;            /* bytes this request added to the upload */
    int complete;               /* the upload is complete afterwards */
    int created;                /* this request created it */
    int terminated;             /* this request deleted it */
} rs_report_t;

/** The report of the request whose pool is p (made on first use). */
rs_report_t *rs_report(apr_pool_t *p);
/** The report of pool p, or NULL when the engine noted nothing. */
rs_report_t *rs_report_find(apr_pool_t *p);
/** Note u as the request's upload: id, protocol, offset (the first
 *  offset seen is kept as offset_before), completion. */
void rs_report_upload(apr_pool_t *p, const rs_upload_t *u);

#endif /* RS_STATS_H */
