/* Licensed under the Apache License, Version 2.0. */
/*
 * Unit tests of rs_fscheck: a temp directory passes and keeps no probe
 * file; the staging folder is created and probed; a regular file, a
 * missing path and (when not root) a read-only directory fail with the
 * reason, the operation and errno's text.
 */

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <apr_file_io.h>
#include <apr_file_info.h>
#include <apr_strings.h>

#include "rs_test.h"
#include "rs_fscheck.h"

/* Number of entries of dir, "." and ".." aside. */
static int entries(const char *dir, apr_pool_t *p)
{
    apr_dir_t *d;
    apr_finfo_t fi;
    int n = 0;

    if (APR_SUCCESS != apr_dir_open(&d, dir, p)) {
        return -1;
    }
    while (APR_SUCCESS == apr_dir_read(&fi, APR_FINFO_NAME, d)) {
        if (strcmp(fi.name, ".") && strcmp(fi.name, "..")) {
            n++;
        }
    }
    apr_dir_close(d);
    return n;
}

static void test_ok(apr_pool_t *p)
{
    const char *dir = rs_test_tmpdir(p, "fscheck-ok");
    const char *why = "unset", *failed = NULL;
    const char *staging = apr_pstrcat(p, dir, "/.resumable", NULL);

    RS_CHECK(APR_SUCCESS == rs_fscheck_dir(dir, p, &why));
    RS_CHECK(why == NULL);
    RS_CHECK(entries(dir, p) == 0);             /* no probe left */
    RS_CHECK(APR_SUCCESS == rs_fscheck_area(dir, p, &failed, &why));
    RS_CHECK(entries(dir, p) == 1);             /* .resumable only */
    RS_CHECK(entries(staging, p) == 0);
    RS_CHECK(APR_SUCCESS == rs_fscheck_area(dir, p, &failed, &why));
    RS_CHECK(entries(staging, p) == 0);         /* an existing one too */
}

static void test_not_a_dir(apr_pool_t *p)
{
    const char *dir = rs_test_tmpdir(p, "fscheck-file");
    const char *file = apr_pstrcat(p, dir, "/plain", NULL);
    const char *why = NULL, *failed = NULL;
    apr_file_t *f;

    RS_CHECK(APR_SUCCESS == apr_file_open(&f, file, APR_FOPEN_WRITE
                                          | APR_FOPEN_CREATE,
                                          APR_OS_DEFAULT, p));
    apr_file_close(f);
    RS_CHECK(APR_STATUS_IS_ENOTDIR(rs_fscheck_dir(file, p, &why)));
    RS_CHECK_STR(why, "is not a directory (stat: Not a directory)");
    RS_CHECK(APR_SUCCESS != rs_fscheck_area(file, p, &failed, &why));
    RS_CHECK_STR(failed, file);
    RS_CHECK(APR_STATUS_IS_ENOENT(rs_fscheck_dir(
        apr_pstrcat(p, dir, "/missing", NULL), p, &why)));
    RS_CHECK_STR(why, "cannot be read (stat: No such file or directory)");
    /* a staging "folder" that is a file fails as the staging folder */
    RS_CHECK(APR_SUCCESS == apr_file_open(&f, apr_pstrcat(p, dir,
                                          "/.resumable", NULL),
                                          APR_FOPEN_WRITE | APR_FOPEN_CREATE,
                                          APR_OS_DEFAULT, p));
    apr_file_close(f);
    RS_CHECK(APR_SUCCESS != rs_fscheck_area(dir, p, &failed, &why));
    RS_CHECK_STR(failed, apr_pstrcat(p, dir, "/.resumable", NULL));
    RS_CHECK_STR(why, "is not a directory (stat: Not a directory)");
    RS_CHECK(entries(dir, p) == 2);             /* no probe left */
}

/* Root writes anywhere: the read-only case needs another user (the pytest
 * suite covers it for root with a read-only bind mount and www-data). */
static void test_read_only(apr_pool_t *p)
{
    const char *dir = rs_test_tmpdir(p, "fscheck-ro");
    const char *why = NULL;

    if (geteuid() == 0) {
        return;
    }
    chmod(dir, 0555);
    RS_CHECK(APR_STATUS_IS_EACCES(rs_fscheck_dir(dir, p, &why)));
    RS_CHECK(why && !strncmp(why, "is not writable", 15)
             && strstr(why, "(open O_CREAT|O_EXCL: Permission denied)"));
    chmod(dir, 0755);
    RS_CHECK(entries(dir, p) == 0);
}

void suite_fscheck(apr_pool_t *p)
{
    test_ok(p);
    test_not_a_dir(p);
    test_read_only(p);
}
