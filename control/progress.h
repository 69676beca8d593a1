/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The one progress line of a long job, redrawn in place on a terminal at most four times a
 * second; silent when stderr is not a terminal (logs and CI stay clean), where the per-epoch
 * summary lines carry the same figures.
 */
#ifndef NSL_PROGRESS_H
#define NSL_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct nsl_progress {
	bool enabled;
	double start, last_draw;
	int64_t total;           /* samples in the whole job */
	int round, rounds;       /* N-split jobs: the round under way (1-based) and how many; 0: none */
};

/* Monotonic seconds. */
double nsl_now(void);

/* The median of n > 0 timings, sorting them in place (so the rest can be read off them too). */
double nsl_median(double *v, size_t n);

void nsl_progress_init(struct nsl_progress *p, bool want, int64_t total);

/* done: samples so far in the job; rate in samples/s; loss the running mean. */
void nsl_progress_update(struct nsl_progress *p, int epoch, int epochs, int64_t done, double rate, double loss);

/* Erase the line (before printing anything else to stderr/stdout). */
void nsl_progress_clear(struct nsl_progress *p);

#endif
