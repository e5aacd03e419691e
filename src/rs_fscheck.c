/* Licensed under the Apache License, Version 2.0. */
/* Start-up self-test of a shared directory (see rs_fscheck.h). */

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <apr_errno.h>
#include <apr_file_io.h>
#include <apr_file_info.h>
#include <apr_general.h>
#include <apr_strings.h>

#include "rs_fscheck.h"
#include "rs_data.h"

#define PROBE_SIZE  4096
#define PROBE_PERMS (APR_FPROT_UREAD | APR_FPROT_UWRITE)
#define DIR_PERMS   (APR_FPROT_UREAD | APR_FPROT_UWRITE | APR_FPROT_UEXECUTE \
                     | APR_FPROT_GREAD | APR_FPROT_GEXECUTE)
#define EXCL_FLAGS  (APR_FOPEN_WRITE | APR_FOPEN_CREATE | APR_FOPEN_EXCL \
                     | APR_FOPEN_BINARY)

typedef struct {
    const char *a, *b, *c;      /* probe, its hard link, the renamed link */
    apr_pool_t *p;
    const char **why;
} probe_t;

/* "what (op: strerror)" into *why; returns rv (never APR_SUCCESS). */
static apr_status_t fail(probe_t *pr, apr_status_t rv, const char *what,
                         const char *op)
{
    char buf[120];

    if (rv == APR_SUCCESS) {
        rv = APR_EGENERAL;
    }
    *pr->why = apr_psprintf(pr->p, "%s (%s: %s)", what, op,
                            apr_strerror(rv, buf, sizeof(buf)));
    return rv;
}

static apr_status_t fail_plain(probe_t *pr, const char *what)
{
    *pr->why = what;
    return APR_EGENERAL;
}

/* Unique names, so nodes that start together never meet. */
static apr_status_t probe_names(probe_t *pr, const char *dir)
{
    unsigned char r[8];
    char hex[17];
    const char *base;
    apr_status_t rv = apr_generate_random_bytes(r, sizeof(r));
    int i;

    if (rv != APR_SUCCESS) {
        return fail(pr, rv, "no random name for the probe", "random");
    }
    for (i = 0; i < 8; i++) {
        apr_snprintf(hex + 2 * i, 3, "%02x", r[i]);
    }
    base = apr_psprintf(pr->p, "%s/.rs-fscheck-%ld-%s", dir,
                        (long)getpid(), hex);
    pr->a = apr_pstrcat(pr->p, base, ".a", NULL);
    pr->b = apr_pstrcat(pr->p, base, ".b", NULL);
    pr->c = apr_pstrcat(pr->p, base, ".c", NULL);
    return APR_SUCCESS;
}

static apr_status_t is_dir(probe_t *pr, const char *dir)
{
    apr_finfo_t fi;
    apr_status_t rv = apr_stat(&fi, dir, APR_FINFO_TYPE, pr->p);

    if (rv != APR_SUCCESS) {
        return fail(pr, rv, "cannot be read", "stat");
    }
    if (fi.filetype != APR_DIR) {
        return fail(pr, APR_ENOTDIR, "is not a directory", "stat");
    }
    return APR_SUCCESS;
}

/* An exclusive create, a second one that must fail with EEXIST, PROBE_SIZE
 * bytes written and fdatasync'ed. */
static apr_status_t create_probe(probe_t *pr)
{
    char buf[PROBE_SIZE];
    apr_file_t *f, *f2;
    apr_status_t rv;

    rv = apr_file_open(&f, pr->a, EXCL_FLAGS, PROBE_PERMS, pr->p);
    if (rv == APR_FROM_OS_ERROR(EROFS)) {
        return fail(pr, rv, "is on a read-only file system",
                    "open O_CREAT|O_EXCL");
    }
    if (APR_STATUS_IS_EACCES(rv) || rv == APR_FROM_OS_ERROR(EPERM)) {
        return fail(pr, rv, "is not writable by the httpd User",
                    "open O_CREAT|O_EXCL");
    }
    if (rv != APR_SUCCESS) {
        return fail(pr, rv, "cannot create a file", "open O_CREAT|O_EXCL");
    }
    memset(buf, 'r', sizeof(buf));
    rv = apr_file_write_full(f, buf, sizeof(buf), NULL);
    if (rv != APR_SUCCESS) {
        apr_file_close(f);
        return fail(pr, rv, "cannot write a file", "write");
    }
    rv = apr_file_datasync(f);
    apr_file_close(f);
    if (rv != APR_SUCCESS) {
        return fail(pr, rv, "cannot sync a file", "fdatasync");
    }
    rv = apr_file_open(&f2, pr->a, EXCL_FLAGS, PROBE_PERMS, pr->p);
    if (rv == APR_SUCCESS) {
        apr_file_close(f2);
        return fail_plain(pr, "exclusive create is not atomic (a second "
                          "O_CREAT|O_EXCL open of an existing name "
                          "succeeded)");
    }
    if (!APR_STATUS_IS_EEXIST(rv)) {
        return fail(pr, rv, "exclusive create of an existing name did not "
                    "fail with EEXIST", "open O_CREAT|O_EXCL");
    }
    return APR_SUCCESS;
}

/* Both names of one inode: link count 2, same device, inode and size. */
static apr_status_t same_inode(probe_t *pr, const char *x, const char *y)
{
    apr_int32_t want = APR_FINFO_NLINK | APR_FINFO_INODE | APR_FINFO_DEV
                       | APR_FINFO_SIZE;
    apr_finfo_t f1, f2;
    apr_status_t rv;

    if ((rv = apr_stat(&f1, x, want, pr->p)) != APR_SUCCESS
        || (rv = apr_stat(&f2, y, want, pr->p)) != APR_SUCCESS) {
        return fail(pr, rv, "a hard-linked file cannot be read", "stat");
    }
    if (f1.nlink != 2 || f2.nlink != 2 || f1.inode != f2.inode
        || f1.device != f2.device || f1.size != PROBE_SIZE
        || f2.size != PROBE_SIZE) {
        return fail_plain(pr, apr_psprintf(pr->p, "hard links are not "
                          "coherent (stat: link counts %d/%d, inodes %s, "
                          "sizes %" APR_OFF_T_FMT "/%" APR_OFF_T_FMT
                          ", want 2/2, one inode, %d)", (int)f1.nlink,
                          (int)f2.nlink, f1.inode == f2.inode ? "equal"
                          : "differ", f1.size, f2.size, PROBE_SIZE));
    }
    return APR_SUCCESS;
}

/* link() to a new name; a second link() onto it must fail with EEXIST. */
static apr_status_t link_probe(probe_t *pr)
{
    apr_status_t rv = apr_file_link(pr->a, pr->b);

    if (rv != APR_SUCCESS) {
        return fail(pr, rv, "hard links are not supported", "link");
    }
    rv = apr_file_link(pr->a, pr->b);
    if (rv == APR_SUCCESS) {
        return fail_plain(pr, "link() replaced an existing name");
    }
    if (!APR_STATUS_IS_EEXIST(rv)) {
        return fail(pr, rv, "link() onto an existing name did not fail "
                    "with EEXIST", "link");
    }
    return same_inode(pr, pr->a, pr->b);
}

static apr_status_t rename_probe(probe_t *pr)
{
    apr_status_t rv = apr_file_rename(pr->b, pr->c, pr->p);

    if (rv != APR_SUCCESS) {
        return fail(pr, rv, "cannot rename a file", "rename");
    }
    return same_inode(pr, pr->a, pr->c);
}

static apr_status_t unlink_probe(probe_t *pr)
{
    apr_status_t rv = apr_file_remove(pr->c, pr->p);
    apr_finfo_t fi;

    if (rv != APR_SUCCESS) {
        return fail(pr, rv, "cannot remove a file", "unlink");
    }
    rv = apr_stat(&fi, pr->a, APR_FINFO_NLINK, pr->p);
    if (rv != APR_SUCCESS) {
        return fail(pr, rv, "a file vanished with its other name", "stat");
    }
    if (fi.nlink != 1) {
        return fail_plain(pr, apr_psprintf(pr->p, "link counts are wrong "
                          "(stat: %d after unlink, want 1)", (int)fi.nlink));
    }
    rv = apr_file_remove(pr->a, pr->p);
    if (rv != APR_SUCCESS) {
        return fail(pr, rv, "cannot remove a file", "unlink");
    }
    return APR_SUCCESS;
}

apr_status_t rs_fscheck_dir(const char *dir, apr_pool_t *p, const char **why)
{
    probe_t pr = { NULL, NULL, NULL, p, why };
    apr_status_t rv;

    *why = NULL;
    if ((rv = is_dir(&pr, dir)) != APR_SUCCESS
        || (rv = probe_names(&pr, dir)) != APR_SUCCESS) {
        return rv;
    }
    if ((rv = create_probe(&pr)) == APR_SUCCESS
        && (rv = link_probe(&pr)) == APR_SUCCESS
        && (rv = rename_probe(&pr)) == APR_SUCCESS) {
        rv = unlink_probe(&pr);
    }
    if (rv != APR_SUCCESS) {         /* leave nothing behind */
        apr_file_remove(pr.c, p);
        apr_file_remove(pr.b, p);
        apr_file_remove(pr.a, p);
    }
    return rv;
}

apr_status_t rs_fscheck_area(const char *dir, apr_pool_t *p,
                             const char **failed, const char **why)
{
    const char *staging = apr_pstrcat(p, dir, "/" RS_STAGING_DIR, NULL);
    apr_finfo_t fi;
    apr_status_t rv;

    *failed = dir;
    if ((rv = rs_fscheck_dir(dir, p, why)) != APR_SUCCESS) {
        return rv;
    }
    *failed = staging;
    rv = apr_stat(&fi, staging, APR_FINFO_TYPE, p);
    if (APR_STATUS_IS_ENOENT(rv)) {
        rv = apr_dir_make(staging, DIR_PERMS, p);
        if (rv != APR_SUCCESS && !APR_STATUS_IS_EEXIST(rv)) {
            *why = apr_psprintf(p, "cannot be created (mkdir: %pm)", &rv);
            return rv;
        }
    }
    return rs_fscheck_dir(staging, p, why);
}
