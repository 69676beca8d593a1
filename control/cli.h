/* SPDX-License-Identifier: BSD-3-Clause */
/* Strict parsing of command-line values, shared by every subcommand. */
#ifndef NSL_CLI_H
#define NSL_CLI_H

#include <stdbool.h>
#include <stdint.h>

/* Each returns 0, or -EINVAL with a message "--<opt>: ..." saying what a valid value is. */
int nsl_cli_int(const char *opt, const char *v, long min, long max, int *out);
int nsl_cli_i64(const char *opt, const char *v, int64_t min, int64_t max, int64_t *out);
int nsl_cli_u64(const char *opt, const char *v, uint64_t *out);
int nsl_cli_float(const char *opt, const char *v, double min, double max, float *out);
/* A sample shape CxHxW (1x28x28). */
struct nsl_shape;
int nsl_cli_shape(const char *opt, const char *v, struct nsl_shape *out);

/* --<opt> I,J,...: a split of model m into n stages (n <= NSL_CHAIN_MAX_STAGES), or `even` (or
 * v NULL: the even split by parameter count), into starts[0..n]. */
struct nsl_model;
int nsl_cli_split(const struct nsl_model *m, const char *opt, const char *v, int n, int *starts);

/* A size in bytes: 1048576, 512K, 2M, 1.5G, 4GiB (binary multiples). */
int nsl_cli_bytes(const char *opt, const char *v, uint64_t *out);

/* --pools F:B: two pool sizes of at least 1 each. */
int nsl_cli_pools(const char *v, int *fwd, int *bwd);

/* --fast-activations all|boundary. */
int nsl_cli_fast_activations(const char *v, bool *all);

/* Print "nsplit <cmd>: <last error>" to stderr; returns exit code 1. */
int nsl_cli_fail(const char *cmd);

#endif
