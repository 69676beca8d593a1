/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "nsplit/error.h"
#include "plan.h"

/* Enumerate every order and split while there are at most this many plans to look at. */
#define EXHAUSTIVE_LIMIT 4000000.0

struct sums {
	int n;
	double *work, *fixed, *act;   /* prefix sums over layers: [i] = sum of layers < i */
};

static int sums_make(const struct nsl_cost *c, struct sums *s)
{
	s->n = c->nlayers;
	s->work = calloc((size_t)c->nlayers + 1, sizeof(double));
	s->fixed = calloc((size_t)c->nlayers + 1, sizeof(double));
	s->act = calloc((size_t)c->nlayers + 1, sizeof(double));
	if (s->work == NULL || s->fixed == NULL || s->act == NULL)
		return nsl_error_set(ENOMEM, "plan: out of memory");
	for (int i = 0; i < c->nlayers; i++) {
		s->work[i + 1] = s->work[i] + c->layer[i].fwd_s + c->layer[i].bwd_s;
		s->fixed[i + 1] = s->fixed[i] + c->layer[i].fixed_bytes;
		s->act[i + 1] = s->act[i] + c->layer[i].act_bytes;
	}
	return 0;
}

static void sums_free(struct sums *s)
{
	free(s->work);
	free(s->fixed);
	free(s->act);
}

static double stage_work(const struct sums *s, int j, int i)
{
	return s->work[i] - s->work[j];
}

static double stage_mem(const struct nsl_cost *c, const struct sums *s, int j, int i)
{
	return s->fixed[i] - s->fixed[j] + (double)c->micro * (double)(c->slots > 0 ? c->slots : 1) * (s->act[i] - s->act[j]);
}

/* Per sample, across a cut before layer i (i > 0): the activation forward, its gradient back. */
static double cut_cost(const struct nsl_cost *c, int i)
{
	return 2.0 * (c->link_lat / (double)(c->micro > 0 ? c->micro : 1) + c->layer[i - 1].act_bytes / c->link_bw);
}

static double speed_of(const struct nsl_plan_req *r, int p)
{
	return r->speed != NULL && r->speed[p] > 0 ? r->speed[p] : 1.0;
}

static double min_budget_of_peers(const struct nsl_plan_req *r, int *who)
{
	double b = INFINITY;

	*who = -1;
	for (int p = 0; r->budget != NULL && p < r->npeers; p++)
		if (r->budget[p] > 0 && r->budget[p] < b) {
			b = r->budget[p];
			*who = p;
		}
	return b;
}

static double evaluate(const struct nsl_plan_req *r, const struct sums *s, const int *starts, const int *order)
{
	const int n = r->npeers;
	int who;
	double limit = min_budget_of_peers(r, &who), epoch = 0, cut_max = 0, cut_sum = 0;

	for (int k = 0; k < n; k++) {
		if (starts[k] >= starts[k + 1] || stage_mem(r->cost, s, starts[k], starts[k + 1]) > limit)
			return INFINITY;
		if (k > 0) {
			double x = cut_cost(r->cost, starts[k]);

			cut_sum += x;
			cut_max = x > cut_max ? x : cut_max;
		}
	}
	for (int round = 0; round < n; round++) {
		double t = r->objective == NSL_PLAN_EPOCH ? cut_sum : cut_max, busy = cut_sum;

		for (int k = 0; k < n; k++) {
			double c = stage_work(s, starts[k], starts[k + 1]) / speed_of(r, order[(round + k) % n]);

			busy += c;
			if (r->objective == NSL_PLAN_EPOCH)
				t += c;
			else if (c > t)
				t = c;
		}
		/* Peers sharing a host's cores: the round takes at least all their work over the cores. */
		if (r->objective == NSL_PLAN_BOTTLENECK && r->cores > 0 && busy / r->cores > t)
			t = busy / r->cores;
		epoch += t * r->samples_per_shard;
	}
	return epoch;
}

double nsl_plan_evaluate(const struct nsl_plan_req *r, const int *starts, const int *order)
{
	struct sums s = { 0 };
	double v = sums_make(r->cost, &s) < 0 ? INFINITY : evaluate(r, &s, starts, order);

	sums_free(&s);
	return v;
}

/*
 * Dynamic programming over splits of layers [0, i) into k stages, each within `limit` bytes:
 * `sum` adds the stages' values (stage value: cut cost before it), else the largest counts
 * (stage value: the larger of its work / speed and its cut). Writes starts; returns the value.
 */
static double split_dp(const struct nsl_cost *c, const struct sums *s, int n, double limit, bool sum, double speed,
		       int *starts)
{
	const int L = c->nlayers;
	double *best = malloc(sizeof(double) * (size_t)(n + 1) * (size_t)(L + 1));
	int *from = malloc(sizeof(int) * (size_t)(n + 1) * (size_t)(L + 1));
	double v;

	if (best == NULL || from == NULL) {
		free(best);
		free(from);
		return NAN;
	}
	for (int k = 0; k <= n; k++)
		for (int i = 0; i <= L; i++)
			best[k * (L + 1) + i] = INFINITY;
	best[0] = 0;
	for (int k = 1; k <= n; k++)
		for (int i = k; i <= L - (n - k); i++)
			for (int j = k - 1; j < i; j++) {
				double prev = best[(k - 1) * (L + 1) + j], here, cand;

				if (isinf(prev) || stage_mem(c, s, j, i) > limit)
					continue;
				here = j > 0 ? cut_cost(c, j) : 0;
				if (sum) {
					cand = prev + here;
				} else {
					double w = stage_work(s, j, i) / speed;

					cand = prev > here ? prev : here;
					cand = cand > w ? cand : w;
				}
				if (cand < best[k * (L + 1) + i]) {
					best[k * (L + 1) + i] = cand;
					from[k * (L + 1) + i] = j;
				}
			}
	v = best[n * (L + 1) + L];
	if (!isinf(v)) {
		starts[n] = L;
		for (int k = n, i = L; k > 0; k--) {
			i = from[k * (L + 1) + i];
			starts[k - 1] = i;
		}
	}
	free(best);
	free(from);
	return v;
}

double nsl_plan_min_budget(const struct nsl_cost *c, int n)
{
	const int L = c->nlayers;
	struct sums s = { 0 };
	double *best = NULL, v = INFINITY;

	if (n < 1 || n > L || sums_make(c, &s) < 0 || (best = malloc(sizeof(double) * (size_t)(n + 1) * (size_t)(L + 1))) == NULL)
		goto out;
	/* The split whose largest stage is smallest, in bytes. */
	for (int k = 0; k <= n; k++)
		for (int i = 0; i <= L; i++)
			best[k * (L + 1) + i] = k == 0 && i == 0 ? 0 : INFINITY;
	for (int k = 1; k <= n; k++)
		for (int i = k; i <= L - (n - k); i++)
			for (int j = k - 1; j < i; j++) {
				double m = stage_mem(c, &s, j, i), prev = best[(k - 1) * (L + 1) + j];
				double cand = prev > m ? prev : m;

				if (cand < best[k * (L + 1) + i])
					best[k * (L + 1) + i] = cand;
			}
	v = best[n * (L + 1) + L];
out:
	free(best);
	sums_free(&s);
	return v;
}

/* Every split of L layers into n stages, in order; false after the last. */
static bool next_split(int *starts, int n, int L)
{
	for (int k = n - 1; k >= 1; k--)
		if (starts[k] < L - (n - k)) {
			starts[k]++;
			for (int q = k + 1; q < n; q++)
				starts[q] = starts[q - 1] + 1;
			return true;
		}
	return false;
}

/* Every order of peers 1..n-1 after peer 0 (rotations of an order give the same epoch). */
static bool next_order(int *order, int n)
{
	int i = n - 2, j = n - 1;

	while (i >= 1 && order[i] > order[i + 1])
		i--;
	if (i < 1)
		return false;
	while (order[j] < order[i])
		j--;
	int t = order[i];
	order[i] = order[j];
	order[j] = t;
	for (int a = i + 1, b = n - 1; a < b; a++, b--) {
		t = order[a];
		order[a] = order[b];
		order[b] = t;
	}
	return true;
}

static double binomial(int a, int b)
{
	double v = 1;

	for (int k = 1; k <= b; k++)
		v = v * (double)(a - b + k) / (double)k;
	return v;
}

static double factorial(int a)
{
	double v = 1;

	for (int k = 2; k <= a; k++)
		v *= k;
	return v;
}

/* The best order for a given split (every order when there are few, else by speed). */
static double best_order(const struct nsl_plan_req *r, const struct sums *s, const int *starts, int *order)
{
	const int n = r->npeers;
	int cur[NSL_PLAN_MAX_PEERS];
	double best = INFINITY;

	for (int p = 0; p < n; p++)
		cur[p] = order[p] = p;
	if (factorial(n - 1) > EXHAUSTIVE_LIMIT)
		return evaluate(r, s, starts, order);
	do {
		double v = evaluate(r, s, starts, cur);

		if (v < best) {
			best = v;
			memcpy(order, cur, sizeof(int) * (size_t)n);
		}
	} while (next_order(cur, n));
	return best;
}

int nsl_plan_solve(const struct nsl_plan_req *r, struct nsl_plan *out)
{
	const struct nsl_cost *c = r->cost;
	const int n = r->npeers, L = c->nlayers;
	struct sums s = { 0 };
	bool equal = true;
	double limit, hmean = 0, v;
	int who, rc;

	memset(out, 0, sizeof(*out));
	if (n < 1 || n > NSL_PLAN_MAX_PEERS || n > L)
		return nsl_error_set(EINVAL, "plan: %d peers for a %d-layer model (1 to %d, at most one per layer)", n, L,
				     NSL_PLAN_MAX_PEERS);
	if (c->link_bw <= 0 || r->samples_per_shard <= 0)
		return nsl_error_set(EINVAL, "plan: link bandwidth and samples per shard must be positive");
	if ((rc = sums_make(c, &s)) < 0)
		goto done;
	limit = min_budget_of_peers(r, &who);
	for (int p = 0; p < n; p++) {
		equal &= speed_of(r, p) == speed_of(r, 0);
		hmean += 1.0 / speed_of(r, p);
		out->order[p] = p;
	}
	hmean = n / hmean;
	if (r->objective == NSL_PLAN_EPOCH || (equal && r->cores <= 0)) {
		/* The order cannot matter: every stage meets every peer once an epoch, and the
		 * N-split's sum of stage work over a round is the same whoever holds what. */
		v = split_dp(c, &s, n, limit, r->objective == NSL_PLAN_EPOCH, speed_of(r, 0), out->starts);
	} else if (binomial(L - 1, n - 1) * factorial(n - 1) <= EXHAUSTIVE_LIMIT) {
		int starts[NSL_PLAN_MAX_PEERS + 1], order[NSL_PLAN_MAX_PEERS];

		v = INFINITY;
		for (int k = 0; k < n; k++)
			starts[k] = k;
		starts[n] = L;
		do {
			double w = best_order(r, &s, starts, order);

			if (w < v) {
				v = w;
				memcpy(out->starts, starts, sizeof(int) * (size_t)(n + 1));
				memcpy(out->order, order, sizeof(int) * (size_t)n);
			}
		} while (next_split(starts, n, L));
	} else {
		/* Too many to look at: the split balancing the work at the peers' harmonic-mean speed,
		 * or the one moving the fewest bytes (what shared cores favour), each in its best order. */
		int other[NSL_PLAN_MAX_PEERS + 1], order[NSL_PLAN_MAX_PEERS];

		v = split_dp(c, &s, n, limit, false, hmean, out->starts);
		if (!isinf(v) && !isnan(v)) {
			v = best_order(r, &s, out->starts, out->order);
			if (r->cores > 0 && !isnan(split_dp(c, &s, n, limit, true, hmean, other))) {
				double w = best_order(r, &s, other, order);

				if (w < v) {
					v = w;
					memcpy(out->starts, other, sizeof(int) * (size_t)(n + 1));
					memcpy(out->order, order, sizeof(int) * (size_t)n);
				}
			}
		}
	}
	if (isnan(v)) {
		rc = nsl_error_set(ENOMEM, "plan: out of memory");
		goto done;
	}
	if (isinf(v)) {
		rc = nsl_error_set(ENOSPC, "no split into %d stages fits peer %d's budget of %.0f bytes; the smallest budget "
				   "every peer needs is %.0f bytes", n, who, limit, nsl_plan_min_budget(c, n));
		goto done;
	}
	out->epoch_s = evaluate(r, &s, out->starts, out->order);
	for (int k = 0; k < n; k++) {
		out->stage_compute_s[k] = stage_work(&s, out->starts[k], out->starts[k + 1]);
		out->stage_bytes[k] = stage_mem(c, &s, out->starts[k], out->starts[k + 1]);
	}
	out->samples_per_s = out->epoch_s > 0 ? (double)n * r->samples_per_shard / out->epoch_s : 0;
	rc = 0;
done:
	sums_free(&s);
	return rc;
}
