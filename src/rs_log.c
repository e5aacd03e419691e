/* Licensed to the Apache Software Foundation (ASF) under one or more
 * contributor license agreements; and licensed under the Apache License,
 * Version 2.0 (the "License"); you may not use this file except in
 * compliance with the License. See http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * The logging seam of the APR-only core (see rs_log.h). The callback is
 * installed once before threads start and only read afterwards, so no lock
 * is needed. Without a callback, messages at or below the stderr threshold
 * are written as "[level] msg" plus " (rv: text)" when rv is not success.
 */

#include <stdio.h>
#include <stdarg.h>
#include <apr_strings.h>
#include "rs_log.h"

#define RS_LOG_FALLBACK_LEN 2048   /* line length when no pool is given */

static rs_log_cb *log_cb;
static rs_log_enabled_cb *log_enabled;
static void *log_baton;
static rs_log_level_t stderr_level = RS_LOG_WARNING;

static const char *const level_names[] = {
    "emerg", "alert", "crit", "error", "warn", "notice", "info", "debug",
    "trace1", "trace2", "trace3", "trace4"
};

void rs_log_set(rs_log_cb *cb, rs_log_enabled_cb *enabled, void *baton)
{
    log_cb = cb;
    log_enabled = enabled;
    log_baton = baton;
}

void rs_log_set_stderr_level(rs_log_level_t level)
{
    stderr_level = level;
}

int rs_log_is_enabled(rs_log_level_t level)
{
    if (log_cb) {
        return log_enabled ? log_enabled(log_baton, level) : 1;
    }
    return level <= stderr_level;
}

static const char *level_name(rs_log_level_t level)
{
    if ((int)level < 0
        || (size_t)level >= sizeof(level_names) / sizeof(level_names[0])) {
        return "log";
    }
    return level_names[level];
}

static void log_emit(const char *file, int line, rs_log_level_t level,
                     apr_status_t rv, const char *msg)
{
    char err[256];

    if (log_cb) {
        log_cb(log_baton, file, line, level, rv, msg);
    }
    else if (rv != APR_SUCCESS) {
        fprintf(stderr, "[%s] %s (%d: %s)\n", level_name(level), msg, rv,
                apr_strerror(rv, err, sizeof(err)));
    }
    else {
        fprintf(stderr, "[%s] %s\n", level_name(level), msg);
    }
}

void rs_log_perror(const char *file, int line, rs_log_level_t level,
                   apr_status_t rv, apr_pool_t *p, const char *fmt, ...)
{
    apr_pool_t *scratch = NULL;
    char fallback[RS_LOG_FALLBACK_LEN];
    const char *msg;
    va_list ap;

    if (!rs_log_is_enabled(level)) {
        return;
    }
    va_start(ap, fmt);
    if (p && apr_pool_create(&scratch, p) == APR_SUCCESS) {
        msg = apr_pvsprintf(scratch, fmt, ap);
    }
    else {
        /* no pool: a stack buffer (thread safe), long lines are cut */
        vsnprintf(fallback, sizeof(fallback), fmt, ap);
        msg = fallback;
    }
    va_end(ap);
    log_emit(file, line, level, rv, msg);
    if (scratch) {
        apr_pool_destroy(scratch);
    }
}
