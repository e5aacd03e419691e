/* Licensed under the Apache License, Version 2.0. */
/* Runs every unit-test suite of the APR-only core (see rs_test.h). */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <apr_general.h>
#include <apr_strings.h>
#include <apr_file_io.h>
#include "rs_test.h"
#include "rs_log.h"
#include "rs_engine.h"
#include "rs_store.h"
#include "rs_data.h"

int rs_test_passed, rs_test_failed;
const char *rs_test_suite = "";

/* Suites are weak so the runner links while a suite is being written. */
#define SUITES(X) X(util) X(meta) X(hash) X(upload) X(store) X(lock) \
                  X(sf) X(ietf) X(multipart) X(form) X(chunk) X(ctl) \
                  X(data) X(engine) X(tus) X(compose) X(stats) X(hook) X(provider) \
                  X(fscheck) X(lease) X(deferred)
#define DECL(n) void suite_##n(apr_pool_t *p) __attribute__((weak));
SUITES(DECL)

static int rm_entry(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw)
{
    return remove(path);
}

const char *rs_test_tmpdir(apr_pool_t *p, const char *name)
{
    const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char *dir = apr_psprintf(p, "%s/rs-unit-%ld-%s", base, (long)getpid(), name);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    apr_dir_make_recursive(dir, APR_OS_DEFAULT, p);
    return dir;
}

const char *rs_test_content(apr_pool_t *p, const char *path)
{
    char *buf = apr_pcalloc(p, 1024);
    apr_file_t *f;
    apr_size_t n = 1023;

    if (APR_SUCCESS != apr_file_open(&f, path, APR_FOPEN_READ, 0, p)) {
        return NULL;
    }
    apr_file_read(f, buf, &n);
    apr_file_close(f);
    return buf;
}

void rs_test_engine(apr_pool_t *p, const char *name, rs_engine_t *e,
                    rs_area_t *a)
{
    const char *dir = rs_test_tmpdir(p, name), *st;

    memset(e, 0, sizeof(*e));
    memset(a, 0, sizeof(*a));
    rs_store_create(&e->store, "sdbm", apr_pstrcat(p, dir, "/state", NULL),
                    NULL, p);
    e->write_buffer = 4096;
    a->dir = apr_pstrcat(p, dir, "/files", NULL);
    apr_dir_make_recursive(a->dir, APR_OS_DEFAULT, p);
    rs_data_staging(p, a->dir, 1, &st);
    a->expire = apr_time_from_sec(3600);
    a->lock_wait = apr_time_from_msec(100);
    a->stall_time = apr_time_from_sec(1);
    a->protocols = ~0u;
}

int main(int argc, const char *const *argv)
{
    apr_pool_t *p;
    int i, ran = 0;
    struct { const char *name; void (*fn)(apr_pool_t *); } suites[] = {
#define ENTRY(n) { #n, suite_##n },
        SUITES(ENTRY)
    };

    apr_app_initialize(&argc, &argv, NULL);
    rs_log_set_stderr_level(RS_LOG_EMERG); /* tests provoke errors on purpose */
    for (i = 0; i < (int)(sizeof(suites) / sizeof(suites[0])); i++) {
        int before_f = rs_test_failed, before_p = rs_test_passed;
        if (!suites[i].fn || (argc > 1 && strcmp(argv[1], suites[i].name))) {
            continue;
        }
        apr_pool_create(&p, NULL);
        rs_test_suite = suites[i].name;
        suites[i].fn(p);
        apr_pool_destroy(p);
        printf("%s %s: %d checks\n", rs_test_failed > before_f ? "FAIL" : "ok  ",
               suites[i].name, rs_test_passed + rs_test_failed - before_p - before_f);
        ran++;
    }
    printf("unit: %d passed, %d failed\n", rs_test_passed, rs_test_failed);
    apr_terminate();
    return (rs_test_failed || !ran) ? 1 : 0;
}
