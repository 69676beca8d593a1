/* SPDX-License-Identifier: BSD-3-Clause */
/* Command-line helpers shared by the reference benchmark programs (no nsplit code in them). */
#ifndef NSL_BENCH_ARGS_H
#define NSL_BENCH_ARGS_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

/* "4096", "4K", "16M", "1G" into *out (at least 1). 0, or -1 when v is not such a size. */
static inline int parse_size(const char *v, uint64_t *out)
{
	char *end;
	uint64_t n, mul = 1;

	errno = 0;
	n = strtoull(v, &end, 10);
	if (errno != 0 || end == v)
		return -1;
	if (*end == 'K' || *end == 'k')
		mul = 1u << 10;
	else if (*end == 'M' || *end == 'm')
		mul = 1u << 20;
	else if (*end == 'G' || *end == 'g')
		mul = 1u << 30;
	if (mul > 1)
		end++;
	if (*end != '\0' || n == 0 || n > UINT64_MAX / mul)
		return -1;
	*out = n * mul;
	return 0;
}

#endif
