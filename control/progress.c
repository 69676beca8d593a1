/* SPDX-License-Identifier: BSD-3-Clause */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "progress.h"

double nsl_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int by_value(const void *a, const void *b)
{
	const double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

double nsl_median(double *v, size_t n)
{
	qsort(v, n, sizeof(*v), by_value);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void nsl_progress_init(struct nsl_progress *p, bool want, int64_t total)
{
	p->enabled = want && isatty(STDERR_FILENO);
	p->start = nsl_now();
	p->last_draw = 0;
	p->total = total;
}

static void fmt_eta(char *buf, size_t n, double s)
{
	if (s < 0 || s > 360000)
		snprintf(buf, n, "--");
	else if (s >= 3600)
		snprintf(buf, n, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
	else
		snprintf(buf, n, "%dm%02ds", (int)(s / 60), (int)s % 60);
}

void nsl_progress_update(struct nsl_progress *p, int epoch, int epochs, int64_t done, double rate, double loss)
{
	double now = nsl_now();
	char eta[32];

	if (!p->enabled || now - p->last_draw < 0.25)
		return;
	p->last_draw = now;
	fmt_eta(eta, sizeof(eta), rate > 0 ? (double)(p->total - done) / rate : -1);
	fputs("\r\033[K", stderr);
	if (p->rounds > 0)
		fprintf(stderr, "round %d/%d  ", p->round, p->rounds);
	fprintf(stderr, "epoch %d/%d  %5.1f%%  %.0f samples/s  loss %.4f  ETA %s", epoch, epochs,
		p->total ? 100.0 * (double)done / (double)p->total : 0.0, rate, loss, eta);
	fflush(stderr);
}

void nsl_progress_clear(struct nsl_progress *p)
{
	if (p->enabled) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
	}
}
