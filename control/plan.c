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

/* The cut before layer i between peers a and b: the cost file's link, or the cluster's. */
static double link_cut(const struct nsl_plan_req *r, int i, int a, int b)
{
	const struct nsl_cost *c = r->cost;
	const int n = r->npeers;
	const double lat = nsl_topo_lat(&r->topo, c, n, a, b), bw = nsl_topo_bw(&r->topo, c, n, a, b);

	return 2.0 * (lat / (double)(c->micro > 0 ? c->micro : 1) + c->layer[i - 1].act_bytes / bw);
}

static double evaluate(const struct nsl_plan_req *r, const struct sums *s, const int *starts, const int *order)
{
	const int n = r->npeers;
	int who;
	double limit = min_budget_of_peers(r, &who), epoch = 0;

	for (int k = 0; k < n; k++)
		if (starts[k] >= starts[k + 1] || stage_mem(r->cost, s, starts[k], starts[k + 1]) > limit)
			return INFINITY;
	for (int round = 0; round < n; round++) {
		double t = 0, busy = 0, cut_max = 0, host_busy[NSL_PLAN_MAX_PEERS] = { 0 };

		for (int k = 0; k < n; k++) {
			const int p = order[(round + k) % n];
			double c = stage_work(s, starts[k], starts[k + 1]) / speed_of(r, p);
			double x = k > 0 ? link_cut(r, starts[k], order[(round + k - 1) % n], p) : 0;

			busy += c + x;
			host_busy[nsl_topo_host(&r->topo, p)] += c + x;   /* a cut counts where it lands */
			cut_max = x > cut_max ? x : cut_max;
			if (r->objective == NSL_PLAN_EPOCH)
				t += c + x;
			else if (c > t)
				t = c;
		}
		if (r->objective != NSL_PLAN_EPOCH && cut_max > t)
			t = cut_max;
		/* Peers sharing a host's cores: the round takes at least all their work over the cores. */
		if (r->objective == NSL_PLAN_BOTTLENECK && !r->topo.host && r->cores > 0 && busy / r->cores > t)
			t = busy / r->cores;
		for (int h = 0; r->objective == NSL_PLAN_BOTTLENECK && r->topo.host && h < n; h++)
			if (r->topo.host_cores[h] > 0 && host_busy[h] / r->topo.host_cores[h] > t)
				t = host_busy[h] / r->topo.host_cores[h];
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
 * Dynamic programming over splits of layers [lo, i) into k stages, each within `limit` bytes:
 * `sum` adds the stages' values (stage value: cut cost before it), else the largest counts
 * (stage value: the larger of its work / speed and its cut). Writes starts[0..n] (layer
 * numbers, lo to hi); returns the value.
 */
static double split_dp_range(const struct nsl_cost *c, const struct sums *s, int lo, int hi, int n, double limit,
			     bool sum, double speed, int *starts)
{
	const int L = hi - lo;
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
			/* Longest stage last: its work and memory only grow as j falls, so once either is past
			 * the best found (minimax) or the budget, no shorter j can do better. */
			for (int j = i - 1; j >= k - 1; j--) {
				double prev = best[(k - 1) * (L + 1) + j], here, cand, w = stage_work(s, lo + j, lo + i) / speed;

				if (stage_mem(c, s, lo + j, lo + i) > limit || (!sum && w >= best[k * (L + 1) + i]))
					break;
				if (isinf(prev))
					continue;
				here = j > 0 ? cut_cost(c, lo + j) : 0;
				if (sum) {
					cand = prev + here;
				} else {
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
		starts[n] = hi;
		for (int k = n, i = L; k > 0; k--) {
			i = from[k * (L + 1) + i];
			starts[k - 1] = lo + i;
		}
	}
	free(best);
	free(from);
	return v;
}

static double split_dp(const struct nsl_cost *c, const struct sums *s, int n, double limit, bool sum, double speed,
		       int *starts)
{
	return split_dp_range(c, s, 0, c->nlayers, n, limit, sum, speed, starts);
}

/* The smallest largest stage, in bytes, of the splits of layers [lo, hi) into n stages. */
static double min_budget_range(const struct nsl_cost *c, const struct sums *s, int lo, int hi, int n)
{
	const int L = hi - lo;
	double *best, v;

	if (n < 1 || n > L || (best = malloc(sizeof(double) * (size_t)(n + 1) * (size_t)(L + 1))) == NULL)
		return INFINITY;
	for (int k = 0; k <= n; k++)
		for (int i = 0; i <= L; i++)
			best[k * (L + 1) + i] = k == 0 && i == 0 ? 0 : INFINITY;
	for (int k = 1; k <= n; k++)
		for (int i = k; i <= L - (n - k); i++)
			for (int j = i - 1; j >= k - 1; j--) {   /* a longer stage only holds more */
				double m = stage_mem(c, s, lo + j, lo + i), prev = best[(k - 1) * (L + 1) + j];
				double cand = prev > m ? prev : m;

				if (m >= best[k * (L + 1) + i])
					break;
				if (cand < best[k * (L + 1) + i])
					best[k * (L + 1) + i] = cand;
			}
	v = best[n * (L + 1) + L];
	free(best);
	return v;
}

double nsl_plan_min_budget(const struct nsl_cost *c, int n)
{
	struct sums s = { 0 };
	double v = sums_make(c, &s) < 0 ? INFINITY : min_budget_range(c, &s, 0, c->nlayers, n);

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

/* The best order for a given split (every order when there are few, else the peers' own). */
static double best_order(const struct nsl_plan_req *r, const struct sums *s, const int *starts, int *order)
{
	const int n = r->npeers;
	int cur[NSL_PLAN_MAX_PEERS];
	double best = INFINITY;

	for (int p = 0; p < n; p++)
		cur[p] = order[p] = p;
	if (r->fixed_order || factorial(n - 1) > EXHAUSTIVE_LIMIT)
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

/*
 * Fast N-split as a pipeline of 2L virtual layers: the forward pool's layers with their forward
 * work, then the backward pool's with their backward work (and forward, when recomputing). Each
 * cut carries its tensor one way (half the two-way figure cut_cost counts); the pools' junction
 * carries the forward pool's output, as the backward pool's inputs stand for. Forward roles are charged their
 * layers' whole fixed bytes: an upper bound, as they hold no gradients or optimizer state.
 */
static int fast_virtual(const struct nsl_plan_req *r, struct nsl_cost *v, struct nsl_plan_req *vr)
{
	const struct nsl_cost *c = r->cost;
	const int L = c->nlayers;

	const size_t links = r->topo.link_bw || r->topo.link_lat ? (size_t)r->npeers * (size_t)r->npeers : 0;
	double *bw, *lat;

	*v = *c;
	v->nlayers = 2 * L;
	/* one way: half of cut_cost's two-way latency and transfer, on the cluster's links too (kept
	 * after the layers, in the one block v->layer owns) */
	v->link_lat = c->link_lat / 2;
	v->link_bw = c->link_bw * 2;
	if ((v->layer = calloc(1, (size_t)(2 * L) * sizeof(*v->layer) + 2 * links * sizeof(double))) == NULL)
		return nsl_error_set(ENOMEM, "plan: out of memory");
	for (int i = 0; i < L; i++) {
		v->layer[i] = c->layer[i];
		v->layer[i].bwd_s = 0;
		v->layer[L + i] = c->layer[i];
		v->layer[L + i].fwd_s = r->recompute ? c->layer[i].fwd_s : 0;
	}
	bw = (double *)(void *)(v->layer + 2 * L);
	lat = bw + links;
	for (size_t q = 0; q < links; q++) {
		bw[q] = r->topo.link_bw && r->topo.link_bw[q] > 0 ? 2 * r->topo.link_bw[q] : 0;
		lat[q] = r->topo.link_lat && r->topo.link_lat[q] > 0 ? r->topo.link_lat[q] / 2 : 0;
	}
	*vr = *r;
	vr->cost = v;
	vr->objective = NSL_PLAN_BOTTLENECK;
	vr->topo.link_bw = links ? bw : NULL;
	vr->topo.link_lat = links ? lat : NULL;
	return 0;
}

double nsl_plan_evaluate_fast(const struct nsl_plan_req *r, const int *starts, const int *bstarts, const int *order)
{
	struct nsl_cost v;
	struct nsl_plan_req vr;
	int all[NSL_PLAN_MAX_PEERS + 1];
	double out;

	if (r->fwd < 1 || r->fwd >= r->npeers || fast_virtual(r, &v, &vr) < 0)
		return INFINITY;
	for (int k = 0; k <= r->fwd; k++)
		all[k] = starts[k];
	for (int b = 1; b <= r->npeers - r->fwd; b++)
		all[r->fwd + b] = r->cost->nlayers + bstarts[b];
	out = nsl_plan_evaluate(&vr, all, order);
	free(v.layer);
	return out;
}

/*
 * Fast N-split on shared cores: all the work over the cores often decides alone, and then
 * many splits of a pool size tie. Of those, the most even one (the least sum of squared stage
 * work): a role with more work than the others paces the pipeline however the cores are
 * shared (measured, the wide MLP over pools 2:2 on 2 cores: forward roles of 1 and 8 layers ran
 * at 0.69 of the reference, of 3 and 6 at 0.75).
 */
static bool better_split(const struct sums *s, const int *starts, int n, double w, double best, double *best_spread)
{
	double spread = 0;

	for (int k = 0; k < n; k++)
		spread += stage_work(s, starts[k], starts[k + 1]) * stage_work(s, starts[k], starts[k + 1]);
	if (w < best * (1 - 1e-9) || (w <= best * (1 + 1e-9) && spread < *best_spread)) {
		*best_spread = spread;
		return true;
	}
	return false;
}

/* The best plan for F forward roles (virtual layers as fast_virtual makes them), into out. */
static double fast_pools(const struct nsl_plan_req *vr, const struct sums *s, int F, int L, double limit, bool equal,
			 double hmean, struct nsl_plan *out)
{
	const int n = vr->npeers, B = n - F;
	const struct nsl_cost *v = vr->cost;
	double best = INFINITY, best_spread = INFINITY;

	for (int p = 0; p < n; p++)
		out->order[p] = p;
	if (equal && vr->cores <= 0) {
		/* Each pool's largest stage alone decides: a minimax split of each. */
		if (isnan(split_dp_range(v, s, 0, L, F, limit, false, 1.0, out->starts)) ||
		    isnan(split_dp_range(v, s, L, 2 * L, B, limit, false, 1.0, out->starts + F)))
			return NAN;
		out->starts[F] = L;
		return evaluate(vr, s, out->starts, out->order);
	}
	if (binomial(L - 1, F - 1) * binomial(L - 1, B - 1) * (vr->fixed_order ? 1 : factorial(n - 1)) <=
	    EXHAUSTIVE_LIMIT) {
		int st[NSL_PLAN_MAX_PEERS + 1], order[NSL_PLAN_MAX_PEERS], f[NSL_PLAN_MAX_PEERS + 1], b[NSL_PLAN_MAX_PEERS + 1];

		for (int k = 0; k < F; k++)
			f[k] = k;
		f[F] = L;
		do {
			for (int k = 0; k < B; k++)
				b[k] = k;
			b[B] = L;
			do {
				double w;

				memcpy(st, f, sizeof(int) * (size_t)(F + 1));
				for (int k = 1; k <= B; k++)
					st[F + k] = L + b[k];
				w = best_order(vr, s, st, order);
				if (better_split(s, st, n, w, best, &best_spread)) {
					best = fmin(best, w);
					memcpy(out->starts, st, sizeof(int) * (size_t)(n + 1));
					memcpy(out->order, order, sizeof(int) * (size_t)n);
				}
			} while (next_split(b, B, L));
		} while (next_split(f, F, L));
		return best;
	}
	if (isnan(split_dp_range(v, s, 0, L, F, limit, false, hmean, out->starts)) ||
	    isnan(split_dp_range(v, s, L, 2 * L, B, limit, false, hmean, out->starts + F)))
		return NAN;
	out->starts[F] = L;
	return best_order(vr, s, out->starts, out->order);
}

/*
 * Many peers: the forward pool's slowest stage only falls as it grows and the backward pool's only
 * rises, so the best pool sizes are where they cross; a binary search finds it, and the sizes
 * either side of it are tried too ([*lo, *hi]).
 */
static int pools_near_balance(const struct nsl_cost *v, const struct sums *s, int n, int L, double limit,
			      double speed, int *lo, int *hi)
{
	int a = 1, b = n - 1, st[NSL_PLAN_MAX_PEERS + 1];

	while (a < b) {
		const int F = (a + b) / 2;
		double f = F <= L ? split_dp_range(v, s, 0, L, F, limit, false, speed, st) : NAN;
		double g = n - F <= L ? split_dp_range(v, s, L, 2 * L, n - F, limit, false, speed, st) : INFINITY;

		if (isnan(f) && F <= L)
			return nsl_error_set(ENOMEM, "plan: out of memory");
		if (F > L)
			b = F - 1;   /* a forward role per layer at most */
		else if (f > g)
			a = F + 1;   /* the forward pool is the slower: give it more */
		else
			b = F;
	}
	*lo = a > 1 ? a - 1 : 1;
	*hi = a < n - 1 ? a + 1 : n - 1;
	return 0;
}

static int plan_fast(const struct nsl_plan_req *r, struct nsl_plan *out)
{
	const int n = r->npeers, L = r->cost->nlayers;
	struct nsl_cost v;
	struct nsl_plan_req vr;
	struct nsl_plan cand;
	struct sums s = { 0 };
	bool equal = true;
	double limit, hmean = 0, best = INFINITY, need = INFINITY;
	int who, rc, lo, hi;

	if (n < 2 || n > NSL_PLAN_MAX_PEERS || r->fwd < 0 || r->fwd >= n)
		return nsl_error_set(EINVAL, "plan: Fast N-split needs 2 to %d peers and pools of at least one each (%d:%d)",
				     NSL_PLAN_MAX_PEERS, r->fwd, n - r->fwd);
	if ((rc = fast_virtual(r, &v, &vr)) < 0)
		return rc;
	if ((rc = sums_make(&v, &s)) < 0)
		goto done;
	limit = min_budget_of_peers(r, &who);
	for (int p = 0; p < n; p++) {
		equal &= speed_of(r, p) == speed_of(r, 0);
		hmean += 1.0 / speed_of(r, p);
	}
	hmean = n / hmean;
	/* Links or hosts of their own make the order matter, as unequal speeds do. */
	equal &= nsl_topo_uniform(&r->topo);
	lo = r->fwd ? r->fwd : 1;
	hi = r->fwd ? r->fwd : n - 1;
	if (!r->fwd && n > 8 && (rc = pools_near_balance(&v, &s, n, L, limit, hmean, &lo, &hi)) < 0)
		goto done;
	for (int F = lo; F <= hi; F++) {
		double w;

		if (F > L || n - F > L)
			continue;
		memset(&cand, 0, sizeof(cand));
		w = fast_pools(&vr, &s, F, L, limit, equal, hmean, &cand);
		if (isnan(w)) {
			rc = nsl_error_set(ENOMEM, "plan: out of memory");
			goto done;
		}
		if (w < best) {
			best = w;
			*out = cand;
			out->fwd = F;
			out->bwd = n - F;
		}
	}
	/* Refused: the smallest budget some pool sizes and splits would fit. */
	for (int F = 1; isinf(best) && F < n; F++)
		if (F <= L && n - F <= L)
			need = fmin(need, fmax(min_budget_range(&v, &s, 0, L, F), min_budget_range(&v, &s, L, 2 * L, n - F)));
	if (isinf(best)) {
		if (isinf(need))
			rc = nsl_error_set(EINVAL, "plan: no Fast N-split of a %d-layer model over %d peers (a role needs a "
					   "layer)", L, n);
		else
			rc = nsl_error_set(ENOSPC, "no Fast N-split fits peer %d's budget of %.0f bytes; the smallest budget "
					   "every peer needs is %.0f bytes", who, limit, need);
		goto done;
	}
	out->epoch_s = best;
	for (int k = 0; k < n; k++) {
		out->stage_compute_s[k] = stage_work(&s, out->starts[k], out->starts[k + 1]);
		out->stage_bytes[k] = stage_mem(&v, &s, out->starts[k], out->starts[k + 1]);
	}
	for (int b = 0; b <= out->bwd; b++)
		out->bstarts[b] = out->starts[out->fwd + b] - L;
	out->samples_per_s = best > 0 ? (double)n * r->samples_per_shard / best : 0;
	rc = 0;
done:
	sums_free(&s);
	free(v.layer);
	return rc;
}

int nsl_plan_solve(const struct nsl_plan_req *r, struct nsl_plan *out)
{
	const struct nsl_cost *c = r->cost;
	const int n = r->npeers, L = c->nlayers;
	struct sums s = { 0 };
	bool equal = true;
	const bool uniform = nsl_topo_uniform(&r->topo);
	double limit, hmean = 0, v;
	int who, rc;

	memset(out, 0, sizeof(*out));
	if (r->objective == NSL_PLAN_FAST)
		return plan_fast(r, out);
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
	if (uniform && (r->objective == NSL_PLAN_EPOCH || (equal && r->cores <= 0))) {
		/* The order cannot matter: every stage meets every peer once an epoch, and the
		 * N-split's sum of stage work over a round is the same whoever holds what. */
		v = split_dp(c, &s, n, limit, r->objective == NSL_PLAN_EPOCH, speed_of(r, 0), out->starts);
	} else if (binomial(L - 1, n - 1) * (r->fixed_order ? 1 : factorial(n - 1)) <= EXHAUSTIVE_LIMIT) {
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
