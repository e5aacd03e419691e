/* Licensed to the Apache Software Foundation (ASF) under one or more
 * contributor license agreements; and licensed under the Apache License,
 * Version 2.0 (the "License"); you may not use this file except in
 * compliance with the License. See http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * The engine's error table (see rs_error.h): one row per rs_errcode_t with
 * the default HTTP status, the stable machine name and a default message
 * that is safe to send to a client. Rows are placed by designated
 * initializers, so the order of the enum can never drift from the table.
 */

#include <errno.h>
#include <stdarg.h>
#include <apr_strings.h>
#include "rs_error.h"

typedef struct {
    int status;
    const char *name;
    const char *message;
} rs_error_row_t;

#define ROW(code, status, message) \
    [RS_ERR_##code] = { status, "ERR_" #code, message }

static const rs_error_row_t rs_error_table[RS_ERR__COUNT] = {
    ROW(NONE,               200, "no error"),
    ROW(BAD_REQUEST,        400, "malformed request"),
    ROW(INVALID_OFFSET,     400, "missing or invalid upload offset"),
    ROW(INVALID_LENGTH,     400, "invalid upload length"),
    ROW(AMBIGUOUS_LENGTH,   400, "upload length must be given or deferred, "
                                 "not both or neither"),
    ROW(INVALID_METADATA,   400, "malformed upload metadata"),
    ROW(INVALID_CONCAT,     400, "malformed upload concatenation"),
    ROW(INCONSISTENT_LENGTH, 400, "length indications disagree"),
    ROW(LENGTH_ALREADY_SET, 400, "upload length is already set"),
    ROW(CHECKSUM_ALGORITHM, 400, "unsupported checksum algorithm"),
    ROW(INVALID_CHECKSUM,   400, "malformed checksum"),
    ROW(NOT_FINISHED,       400, "a partial upload is not finished"),
    ROW(INVALID_NAME,       400, "file name refused"),
    ROW(FORBIDDEN,          403, "forbidden"),
    ROW(MODIFY_FINAL,       403, "a final concatenation can not be modified"),
    ROW(NOT_FOUND,          404, "upload not found"),
    ROW(METHOD,             405, "method not allowed"),
    ROW(MISMATCHED_OFFSET,  409, "upload offset does not match the stored "
                                 "offset"),
    ROW(INCOMPLETE,         409, "upload is not complete"),
    ROW(GONE,               410, "upload expired or terminated"),
    ROW(MAX_SIZE,           413, "upload length exceeds the maximum size"),
    ROW(SIZE_EXCEEDED,      413, "data exceeds the declared upload length"),
    ROW(UNSUPPORTED_TYPE,   415, "unsupported content type"),
    ROW(PRECONDITION,       412, "unsupported protocol version"),
    ROW(LOCKED,             423, "upload is locked by another request"),
    ROW(CHECKSUM_MISMATCH,  460, "checksum mismatch"),
    ROW(INTERRUPTED,        400, "request interrupted by another request"),
    ROW(BODY_READ,          400, "reading the request body failed"),
    ROW(TIMEOUT,            408, "reading the request body timed out"),
    ROW(STORAGE,            500, "storage error"),
    ROW(STATE,              500, "state database error"),
    ROW(STORAGE_FULL,       507, "insufficient storage"),
    ROW(WRONG_PROTOCOL,     400, "the upload was created with another protocol"),
    ROW(CHUNK_CONFLICT,     409, "the chunk differs from the one stored"),
    ROW(TOO_MANY_PENDING,   429, "too many unfinished uploads that hold no "
                                 "data yet"),
    ROW(HOOK_REJECTED,      403, "refused by the application"),
    ROW(HOOK_UNAVAILABLE,   503, "the application's hook is unavailable"),
    ROW(HOOK_FAILED,        502, "the application's hook answered badly"),
    ROW(REJECTED,           403, "the application refused this upload"),
    ROW(STATE_UNAVAILABLE,  503, "state database unavailable, retry later"),
    ROW(FENCED,             409, "another request took this upload over; "
                                 "resume from its current offset"),
};

#undef ROW

static const rs_error_row_t rs_error_unknown = {
    500, "ERR_UNKNOWN", "internal error"
};

static const rs_error_row_t *error_row(rs_errcode_t code)
{
    if ((int)code < 0 || code >= RS_ERR__COUNT
        || !rs_error_table[code].name) {
        return &rs_error_unknown;
    }
    return &rs_error_table[code];
}

int rs_error_status(rs_errcode_t code)
{
    return error_row(code)->status;
}

const char *rs_error_name(rs_errcode_t code)
{
    return error_row(code)->name;
}

const char *rs_error_message(rs_errcode_t code)
{
    return error_row(code)->message;
}

rs_error_t *rs_error_make(apr_pool_t *p, rs_errcode_t code, apr_status_t cause,
                          const char *fmt, ...)
{
    const rs_error_row_t *row = error_row(code);
    rs_error_t *e = apr_palloc(p, sizeof(*e));
    va_list ap;

    e->code = code;
    e->status = row->status;
    e->name = row->name;
    e->cause = cause;
    if (fmt) {
        va_start(ap, fmt);
        e->detail = apr_pvsprintf(p, fmt, ap);
        va_end(ap);
    }
    else {
        e->detail = row->message;
    }
    return e;
}

rs_errcode_t rs_error_from_io(apr_status_t rv, rs_errcode_t other)
{
    if (APR_STATUS_IS_ENOSPC(rv)) {
        return RS_ERR_STORAGE_FULL;
    }
#ifdef EDQUOT
    if (rv == APR_FROM_OS_ERROR(EDQUOT)) {
        return RS_ERR_STORAGE_FULL;
    }
#endif
    return other;
}
