/* Licensed to the Apache Software Foundation (ASF) under one or more
 * contributor license agreements; and licensed under the Apache License,
 * Version 2.0 (the "License"); you may not use this file except in
 * compliance with the License. See http://www.apache.org/licenses/LICENSE-2.0
 */
#ifndef RS_LOG_H
#define RS_LOG_H

/*
 * Design: the APR-only core never calls httpd's logger. It logs through this
 * seam: a level enum that mirrors httpd's APLOG_* values and a callback the
 * glue installs once (mod_resumable.c forwards to ap_log_error). Without a
 * callback (unit tests, resumablectl) messages at or above the threshold go
 * to stderr.
 *
 * Every message at debug level and above starts with a stable tag made by
 * RS_LOGNO(nnnnn), e.g. "RS01004: ". The next free number is kept in the
 * file `next-number` at the top of the tree; numbers are never reused.
 */

#include <apr_pools.h>
#include <apr_errno.h>

typedef enum {
    RS_LOG_EMERG = 0,
    RS_LOG_ALERT,
    RS_LOG_CRIT,
    RS_LOG_ERR,
    RS_LOG_WARNING,
    RS_LOG_NOTICE,
    RS_LOG_INFO,
    RS_LOG_DEBUG,
    RS_LOG_TRACE1,
    RS_LOG_TRACE2,
    RS_LOG_TRACE3,
    RS_LOG_TRACE4
} rs_log_level_t;

#define RS_LOG_MARK __FILE__, __LINE__
#define RS_LOGNO(n) "RS" #n ": "

/** Callback the host installs; msg is a complete, formatted line. */
typedef void rs_log_cb(void *baton, const char *file, int line,
                       rs_log_level_t level, apr_status_t rv, const char *msg);
/** Is the level enabled? Lets callers skip formatting expensive messages. */
typedef int rs_log_enabled_cb(void *baton, rs_log_level_t level);

/** Install the logger (process wide, call before threads start). */
void rs_log_set(rs_log_cb *cb, rs_log_enabled_cb *enabled, void *baton);

/** Threshold used when no callback is installed (default RS_LOG_WARNING). */
void rs_log_set_stderr_level(rs_log_level_t level);

int rs_log_is_enabled(rs_log_level_t level);

/** Format with apr_pvsprintf in a scratch pool and hand to the callback. */
void rs_log_perror(const char *file, int line, rs_log_level_t level,
                   apr_status_t rv, apr_pool_t *p, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

#endif /* RS_LOG_H */
