/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nsplit/error.h"
#include "nsplit/model.h"
#include "chain.h"
#include "cli.h"

int nsl_cli_i64(const char *opt, const char *v, int64_t min, int64_t max, int64_t *out)
{
	char *e;
	long long x;

	errno = 0;
	x = strtoll(v, &e, 10);
	if (errno || e == v || *e || x < min || x > max)
		return nsl_error_set(EINVAL, "--%s: \"%s\" is not a whole number in [%" PRId64 ", %" PRId64 "]", opt, v,
				     min, max);
	*out = x;
	return 0;
}

int nsl_cli_int(const char *opt, const char *v, long min, long max, int *out)
{
	int64_t x;
	int rc = nsl_cli_i64(opt, v, min, max, &x);

	if (rc == 0)
		*out = (int)x;
	return rc;
}

int nsl_cli_pools(const char *v, int *fwd, int *bwd)
{
	char *e, *e2;
	long f, b;

	errno = 0;
	f = strtol(v, &e, 10);
	if (errno == 0 && e != v && *e == ':') {
		b = strtol(e + 1, &e2, 10);
		if (errno == 0 && e2 != e + 1 && *e2 == 0 && f >= 1 && b >= 1 && f < 64 && b < 64) {
			*fwd = (int)f;
			*bwd = (int)b;
			return 0;
		}
	}
	return nsl_error_set(EINVAL, "--pools: \"%s\" is not F:B, forward and backward peers, 1 or more each (1:3)", v);
}

int nsl_cli_fast_activations(const char *v, bool *all)
{
	if (strcmp(v, "all") != 0 && strcmp(v, "boundary") != 0)
		return nsl_error_set(EINVAL, "--fast-activations %s: give all or boundary", v);
	*all = strcmp(v, "all") == 0;
	return 0;
}

int nsl_cli_u64(const char *opt, const char *v, uint64_t *out)
{
	char *e;

	errno = 0;
	if (*v == '-')
		return nsl_error_set(EINVAL, "--%s: \"%s\" must not be negative", opt, v);
	*out = strtoull(v, &e, 0);
	if (errno || e == v || *e)
		return nsl_error_set(EINVAL, "--%s: \"%s\" is not an unsigned 64-bit number", opt, v);
	return 0;
}

int nsl_cli_float(const char *opt, const char *v, double min, double max, float *out)
{
	char *e;
	double x;

	errno = 0;
	x = strtod(v, &e);
	if (errno || e == v || *e || !isfinite(x) || x < min || x > max)
		return nsl_error_set(EINVAL, "--%s: \"%s\" is not a number in [%g, %g]", opt, v, min, max);
	*out = (float)x;
	return 0;
}

int nsl_cli_bytes(const char *opt, const char *v, uint64_t *out)
{
	static const char units[] = "KMGT";
	char *e;
	double x;
	int shift = 0;

	errno = 0;
	x = strtod(v, &e);
	if (!errno && e != v && *e) {
		for (int i = 0; units[i]; i++)
			if ((*e | 0x20) == (units[i] | 0x20))
				shift = 10 * (i + 1);
		if (shift)
			e++;
		if (shift && *e == 'i')
			e++;
		if (*e == 'B' || *e == 'b')
			e++;
	}
	if (errno || e == v || *e || !isfinite(x) || x <= 0 || x * (double)(1ull << shift) >= 0x1p64)
		return nsl_error_set(EINVAL, "--%s: \"%s\" is not a size (a positive number of bytes, or with K, M, G or T: 512M, 2GiB)",
				     opt, v);
	*out = (uint64_t)(x * (double)(1ull << shift));
	return 0;
}

int nsl_cli_shape(const char *opt, const char *v, struct nsl_shape *out)
{
	struct nsl_shape s;
	char tail;

	if (sscanf(v, "%dx%dx%d%c", &s.c, &s.h, &s.w, &tail) != 3 || s.c < 1 || s.h < 1 || s.w < 1)
		return nsl_error_set(EINVAL, "--%s %s: give CxHxW, such as 1x28x28", opt, v);
	*out = s;
	return 0;
}

int nsl_cli_split(const struct nsl_model *m, const char *opt, const char *v, int n, int *starts)
{
	int rc;

	if (v == NULL || strcmp(v, "even") == 0)
		return nsl_model_even_split(m, n, starts) < 0 ? -EINVAL : 0;
	rc = nsl_model_parse_split(m, v, starts, NSL_CHAIN_MAX_STAGES);
	if (rc >= 0 && rc != n)
		return nsl_error_set(EINVAL, "--%s %s makes %d stages where %d are wanted: give %d layer numbers", opt, v, rc,
				     n, n - 1);
	return rc < 0 ? rc : 0;
}

int nsl_cli_fail(const char *cmd)
{
	fflush(stdout);
	fprintf(stderr, "nsplit %s: %s\n", cmd, nsl_error_last());
	return 1;
}
