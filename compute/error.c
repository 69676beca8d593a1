/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nsplit/error.h"

#define NSL_ERROR_MAX 1024

static _Thread_local char last_msg[NSL_ERROR_MAX];

static int neg_errno(int err)
{
	if (err == 0)
		return -EINVAL;
	return err < 0 ? err : -err;
}

int nsl_error_set(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_msg, sizeof(last_msg), fmt, ap);
	va_end(ap);
	return neg_errno(err);
}

int nsl_error_prefix(int err, const char *fmt, ...)
{
	char old[NSL_ERROR_MAX];
	int n;
	va_list ap;

	memcpy(old, last_msg, sizeof(old));
	va_start(ap, fmt);
	n = vsnprintf(last_msg, sizeof(last_msg), fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < sizeof(last_msg))
		snprintf(last_msg + n, sizeof(last_msg) - (size_t)n, ": %s", old);
	return neg_errno(err);
}

const char *nsl_error_last(void)
{
	return last_msg;
}

void nsl_error_clear(void)
{
	last_msg[0] = '\0';
}
