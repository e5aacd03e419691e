/* Licensed under the Apache License, Version 2.0. */
#ifndef RS_TEST_H
#define RS_TEST_H

/*
 * A tiny TAP-style harness for the APR-only core. Each suite is a function
 * `void suite_<name>(apr_pool_t *p)` in test/unit/test_<name>.c, listed in
 * main.c. RS_CHECK records one assertion; a failing one prints the
 * expression and location. main prints "N passed, N failed" at the end and
 * exits non-zero on any failure.
 */

#include <stdio.h>
#include <apr_pools.h>

extern int rs_test_passed, rs_test_failed;
extern const char *rs_test_suite;

#define RS_CHECK(cond) do { \
        if (cond) { rs_test_passed++; } \
        else { rs_test_failed++; \
               printf("not ok - %s: %s (%s:%d)\n", rs_test_suite, #cond, \
                      __FILE__, __LINE__); } \
    } while (0)

#define RS_CHECK_STR(a, b) do { \
        const char *a_ = (a), *b_ = (b); \
        int ok_ = (a_ && b_ && !strcmp(a_, b_)) || (!a_ && !b_); \
        if (ok_) { rs_test_passed++; } \
        else { rs_test_failed++; \
               printf("not ok - %s: %s == %s: \"%s\" != \"%s\" (%s:%d)\n", \
                      rs_test_suite, #a, #b, a_ ? a_ : "(null)", \
                      b_ ? b_ : "(null)", __FILE__, __LINE__); } \
    } while (0)

/** A fresh empty temp directory below $TMPDIR for this suite. */
const char *rs_test_tmpdir(apr_pool_t *p, const char *name);

/** The first KiB of a small file as a string, NULL when it cannot be read. */
const char *rs_test_content(apr_pool_t *p, const char *path);

struct rs_engine_t;
struct rs_area_t;
/** An engine on a fresh sdbm store and an area with its staging folder in
 *  rs_test_tmpdir(name): 4 KiB writes, expiry 1 h, lock wait 100 ms, stall
 *  1 s, every protocol, no size limit, sync off. Suites adjust the rest. */
void rs_test_engine(apr_pool_t *p, const char *name, struct rs_engine_t *e,
                    struct rs_area_t *a);

#endif
