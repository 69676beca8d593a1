/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Error reporting for every nsplit module.
 *
 * A function that can fail returns 0 or a negative errno (constructors return NULL) and leaves
 * one message in a thread-local buffer saying what failed and how to fix it. Callers that add
 * context (the file, the peer, the layer) prefix it; the top level prints nsl_error_last().
 */
#ifndef NSPLIT_ERROR_H
#define NSPLIT_ERROR_H

#include <stdarg.h>

/*
 * Record a message for the calling thread and return -abs(err) (-EINVAL if err is 0), so a
 * failing function can write `return nsl_error_set(EINVAL, "...")`.
 */
int nsl_error_set(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Put "<context>: " in front of the current message; returns -abs(err) like nsl_error_set. */
int nsl_error_prefix(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The calling thread's last message ("" when none); valid until the next nsl_error_* call. */
const char *nsl_error_last(void);

/* Forget the calling thread's message. */
void nsl_error_clear(void);

#endif
