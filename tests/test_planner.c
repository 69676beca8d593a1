/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The planner against brute force: on random models of up to 10 layers, random budgets and
 * speeds, up to 4 peers with a core each or sharing 1 to 3, the planner's plan is as good as the best of every split and every
 * rotation order, each costed by an evaluator written here, apart from the planner (ties
 * allowed), for both objectives; infeasible jobs are refused with the smallest budget that would
 * do; the same for Fast N-split's pools and two splits. One job in five places the peers on
 * hosts of their own core counts and gives some links their own bandwidth and latency. Also: a 1,000-layer model over 64 peers
 * is planned (its time is printed, not judged), under 1f1b and Fast N-split.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <CUnit/Basic.h>

#include "nsplit/error.h"
#include "nsplit/rng.h"
#include "cunit_main.h"
#include "plan.h"

#define CASES 400

/* ---- the reference evaluator: the formulas of plan.h, written out again ---- */

static int cores;   /* the jobs' shared cores (0: a core per peer) */
/* Some jobs: peers on hosts of their own core counts, links of their own (NULL: none). */
static const int *hosts, *host_cores;
static const double *link_bw, *link_lat;

/* The cut before layer `at` from peer a to peer b, both ways. */
static double ref_cut(const struct nsl_cost *c, int n, int at, int a, int b)
{
	double lat = link_lat && link_lat[a * n + b] > 0 ? link_lat[a * n + b] : c->link_lat;
	double bw = link_bw && link_bw[a * n + b] > 0 ? link_bw[a * n + b] : c->link_bw;

	return 2 * (lat / c->micro + c->layer[at - 1].act_bytes / bw);
}

static double ref_epoch(const struct nsl_cost *c, int n, const double *speed, const double *budget,
			enum nsl_plan_objective obj, double samples, const int *starts, const int *order)
{
	double smallest = INFINITY, total = 0;

	for (int p = 0; p < n; p++)
		if (budget[p] > 0 && budget[p] < smallest)
			smallest = budget[p];
	for (int k = 0; k < n; k++) {
		double mem = 0;

		for (int i = starts[k]; i < starts[k + 1]; i++)
			mem += c->layer[i].fixed_bytes + (double)c->micro * c->slots * c->layer[i].act_bytes;
		if (mem > smallest)
			return INFINITY;
	}
	for (int r = 0; r < n; r++) {
		double round = 0, all = 0, on[4] = { 0 };

		for (int k = 0; k < n; k++) {
			double work = 0, cut = 0;

			for (int i = starts[k]; i < starts[k + 1]; i++)
				work += c->layer[i].fwd_s + c->layer[i].bwd_s;
			work /= speed[order[(r + k) % n]];
			if (k > 0)
				cut = ref_cut(c, n, starts[k], order[(r + k - 1) % n], order[(r + k) % n]);
			all += work + cut;
			if (hosts)
				on[hosts[order[(r + k) % n]]] += work + cut;
			if (obj == NSL_PLAN_EPOCH)
				round += work + cut;
			else
				round = fmax(round, fmax(work, cut));
		}
		if (obj == NSL_PLAN_BOTTLENECK && cores > 0 && !hosts)
			round = fmax(round, all / cores);
		for (int h = 0; obj == NSL_PLAN_BOTTLENECK && hosts && h < n; h++)
			if (host_cores[h] > 0)
				round = fmax(round, on[h] / host_cores[h]);
		total += round * samples;
	}
	return total;
}

struct brute {
	const struct nsl_cost *c;
	int n;
	const double *speed, *budget;
	enum nsl_plan_objective obj;
	double best, min_mem;
	int starts[8], order[8];
	bool used[8];
	bool fixed;   /* the peers' own order only */
};

static void each_order(struct brute *b, int depth)
{
	if (depth == b->n) {
		double v = ref_epoch(b->c, b->n, b->speed, b->budget, b->obj, 100, b->starts, b->order);

		b->best = fmin(b->best, v);
		return;
	}
	for (int p = b->fixed ? depth : 0; p < (b->fixed ? depth + 1 : b->n); p++)
		if (!b->used[p]) {
			b->used[p] = true;
			b->order[depth] = p;
			each_order(b, depth + 1);
			b->used[p] = false;
		}
}

static void each_split(struct brute *b, int k)
{
	if (k == b->n) {
		double largest = 0;

		b->starts[b->n] = b->c->nlayers;
		for (int s = 0; s < b->n; s++) {
			double mem = 0;

			for (int i = b->starts[s]; i < b->starts[s + 1]; i++)
				mem += b->c->layer[i].fixed_bytes + (double)b->c->micro * b->c->slots * b->c->layer[i].act_bytes;
			largest = fmax(largest, mem);
		}
		b->min_mem = fmin(b->min_mem, largest);
		each_order(b, 0);
		return;
	}
	for (int i = b->starts[k - 1] + 1; i <= b->c->nlayers - (b->n - k); i++) {
		b->starts[k] = i;
		each_split(b, k + 1);
	}
}

/* ---- random jobs ---- */

static double uniform(struct nsl_rng *g, double lo, double hi)
{
	return lo + (hi - lo) * nsl_rng_uniform(g);
}

static void random_cost(struct nsl_rng *g, struct nsl_cost *c, struct nsl_cost_layer *layers)
{
	c->nlayers = 1 + (int)(nsl_rng_next(g) % 10);
	c->layer = layers;
	for (int i = 0; i < c->nlayers; i++) {
		bool weights = nsl_rng_next(g) % 3 != 0;

		layers[i] = (struct nsl_cost_layer){
			.fwd_s = uniform(g, 1e-6, 1e-4),
			.bwd_s = uniform(g, 1e-6, 2e-4),
			.fixed_bytes = weights ? uniform(g, 1e3, 1e7) : 0,
			.act_bytes = uniform(g, 16, 1e5),
		};
	}
	c->link_bw = uniform(g, 1e8, 1e10);
	c->link_lat = uniform(g, 1e-6, 1e-4);
	c->micro = 1 + (int)(nsl_rng_next(g) % 32);
	c->slots = 1 + (int)(nsl_rng_next(g) % 4);
}

/* Job t of a random series: its cost, peers (at least min_n), speeds, budgets and shared cores. */
static int random_job(struct nsl_rng *g, int t, int min_n, struct nsl_cost *c, struct nsl_cost_layer *layers,
		      double *speed, double *budget)
{
	int n, most;

	random_cost(g, c, layers);
	cores = t % 4 == 1 ? 1 + (int)(nsl_rng_next(g) % 3) : 0;
	most = min_n == 1 && c->nlayers < 4 ? c->nlayers : 4;
	n = min_n + (int)(nsl_rng_next(g) % (unsigned)(most - min_n + 1));
	for (int p = 0; p < n; p++) {
		speed[p] = t % 3 == 0 ? 1.0 : uniform(g, 0.25, 4);
		budget[p] = nsl_rng_next(g) % 4 == 0 ? 0 : uniform(g, 1e6, 1e8);
	}
	/* One job in five: a cluster file's hosts (1 or 2 peers each, 0-2 cores) and some links. */
	hosts = host_cores = NULL;
	link_bw = link_lat = NULL;
	if (t % 5 == 2) {
		static int h[4], hc[4];
		static double bw[16], lat[16];

		for (int p = 0; p < n; p++) {
			h[p] = p / 2;
			hc[p] = (int)(nsl_rng_next(g) % 3);
		}
		for (int q = 0; q < 16; q++) {
			bw[q] = nsl_rng_next(g) % 2 ? uniform(g, 1e7, 1e10) : 0;
			lat[q] = nsl_rng_next(g) % 2 ? uniform(g, 1e-6, 1e-3) : 0;
		}
		hosts = h;
		host_cores = hc;
		link_bw = bw;
		link_lat = lat;
	}
	return n;
}

/* The request for a job random_job made. */
static void with_cluster(struct nsl_plan_req *r)
{
	r->topo = (struct nsl_topology){ .host = hosts, .host_cores = host_cores, .link_bw = link_bw,
					 .link_lat = link_lat };
}

static void test_against_brute_force(void)
{
	struct nsl_rng g;
	int exact = 0, refused = 0;

	nsl_rng_seed(&g, 42, 0);
	for (int t = 0; t < CASES; t++) {
		struct nsl_cost_layer layers[10];
		struct nsl_cost c;
		double speed[4], budget[4];
		const int n = random_job(&g, t, 1, &c, layers, speed, budget);

		/* The two objectives, then the pipelines' in the peers' own order (as nsplit train runs). */
		for (int o = 0; o < 3; o++) {
			const enum nsl_plan_objective obj = o ? NSL_PLAN_BOTTLENECK : NSL_PLAN_EPOCH;
			struct brute b = { .c = &c, .n = n, .speed = speed, .budget = budget, .obj = obj, .best = INFINITY,
					   .min_mem = INFINITY, .fixed = o == 2 };
			struct nsl_plan_req r = { .cost = &c, .npeers = n, .speed = speed, .budget = budget, .objective = obj,
						  .samples_per_shard = 100, .cores = cores, .fixed_order = o == 2 };
			struct nsl_plan plan;
			int rc;

			b.starts[0] = 0;
			with_cluster(&r);
			each_split(&b, 1);
			rc = nsl_plan_solve(&r, &plan);
			if (isinf(b.best)) {
				CU_ASSERT_EQUAL(rc, -ENOSPC);
				CU_ASSERT(fabs(nsl_plan_min_budget(&c, n) - b.min_mem) <= 1e-9 * b.min_mem);
				refused++;
				continue;
			}
			CU_ASSERT_EQUAL_FATAL(rc, 0);
			for (int p = 0; p < n && r.fixed_order; p++)
				CU_ASSERT_EQUAL(plan.order[p], p);
			/* The planner's plan, costed by this file's evaluator, is the best there is. */
			{
				double mine = ref_epoch(&c, n, speed, budget, obj, 100, plan.starts, plan.order);

				CU_ASSERT(fabs(mine - b.best) <= 1e-9 * b.best);
				CU_ASSERT(fabs(plan.epoch_s - mine) <= 1e-9 * mine);
				if (fabs(mine - b.best) > 1e-9 * b.best)
					printf("\n  case %d, %d layers, %d peers, objective %d: planner %.9g, best %.9g", t,
					       c.nlayers, n, o, mine, b.best);
				exact += fabs(mine - b.best) <= 1e-9 * b.best;
			}
		}
	}
	printf("\n  %d plans as good as brute force, %d infeasible jobs refused ", exact, refused);
	CU_ASSERT(exact > CASES / 2 && refused > 0);
}

/* ---- Fast N-split: the formulas of plan.h for two pools, written out again ---- */

static double role_mem(const struct nsl_cost *c, int a, int b)
{
	double mem = 0;

	for (int i = a; i < b; i++)
		mem += c->layer[i].fixed_bytes + (double)c->micro * c->slots * c->layer[i].act_bytes;
	return mem;
}

/* One way, from peer a to peer b (the cluster's link if it has one). */
static double one_way_link(const struct nsl_cost *c, int n, int before, int a, int b)
{
	return ref_cut(c, n, before, a, b) / 2;
}

static double ref_fast(const struct nsl_cost *c, int n, int F, const double *speed, const double *budget,
		       bool recompute, const int *fs, const int *bs, const int *order)
{
	const int B = n - F, L = c->nlayers;
	double smallest = INFINITY, total = 0;

	for (int p = 0; p < n; p++)
		if (budget[p] > 0 && budget[p] < smallest)
			smallest = budget[p];
	for (int f = 0; f < F; f++)
		if (role_mem(c, fs[f], fs[f + 1]) > smallest)
			return INFINITY;
	for (int b = 0; b < B; b++)
		if (role_mem(c, bs[b], bs[b + 1]) > smallest)
			return INFINITY;
	for (int r = 0; r < n; r++) {
		double round = 0, all = 0, on[4] = { 0 };

		for (int k = 0; k < n; k++) {
			const bool fwd = k < F;
			const int a = fwd ? fs[k] : bs[k - F], z = fwd ? fs[k + 1] : bs[k - F + 1];
			const int p = order[(r + k) % n], from = order[(r + k + n - 1) % n];
			double work = 0, cut = 0;

			for (int i = a; i < z; i++)
				work += fwd ? c->layer[i].fwd_s : c->layer[i].bwd_s + (recompute ? c->layer[i].fwd_s : 0);
			work /= speed[p];
			if (a > 0)
				cut = one_way_link(c, n, a, from, p);
			else if (!fwd)
				cut = one_way_link(c, n, L, from, p);   /* the pools' junction */
			all += work + cut;
			if (hosts)
				on[hosts[p]] += work + cut;
			round = fmax(round, fmax(work, cut));
		}
		if (cores > 0 && !hosts)
			round = fmax(round, all / cores);
		for (int h = 0; hosts && h < n; h++)
			if (host_cores[h] > 0)
				round = fmax(round, on[h] / host_cores[h]);
		total += round * 100;
	}
	return total;
}

/* Every split of L layers into k parts after prefix starts[0..i). */
static bool next_cut(int *st, int k, int L)
{
	for (int q = k - 1; q >= 1; q--)
		if (st[q] < L - (k - q)) {
			st[q]++;
			for (int u = q + 1; u < k; u++)
				st[u] = st[u - 1] + 1;
			return true;
		}
	return false;
}

static bool next_perm(int *a, int n)
{
	int i = n - 2, j = n - 1;

	while (i >= 0 && a[i] > a[i + 1])
		i--;
	if (i < 0)
		return false;
	while (a[j] < a[i])
		j--;
	int t = a[i];
	a[i] = a[j];
	a[j] = t;
	for (int x = i + 1, y = n - 1; x < y; x++, y--) {
		t = a[x];
		a[x] = a[y];
		a[y] = t;
	}
	return true;
}

/* The best of every pool size, both splits and every order; *need the smallest feasible budget. */
static double brute_fast(const struct nsl_cost *c, int n, const double *speed, const double *budget, bool recompute,
			 double *need)
{
	const int L = c->nlayers;
	double best = INFINITY;

	*need = INFINITY;
	for (int F = 1; F < n; F++) {
		const int B = n - F;
		int fs[8], bs[8];
		double fmem = INFINITY, bmem = INFINITY;

		if (F > L || B > L)
			continue;
		for (int k = 0; k < F; k++)
			fs[k] = k;
		fs[F] = L;
		do {
			double big = 0;

			for (int k = 0; k < F; k++)
				big = fmax(big, role_mem(c, fs[k], fs[k + 1]));
			fmem = fmin(fmem, big);
			for (int k = 0; k < B; k++)
				bs[k] = k;
			bs[B] = L;
			do {
				int order[8];

				big = 0;
				for (int k = 0; k < B; k++)
					big = fmax(big, role_mem(c, bs[k], bs[k + 1]));
				bmem = fmin(bmem, big);
				for (int p = 0; p < n; p++)
					order[p] = p;
				do
					best = fmin(best, ref_fast(c, n, F, speed, budget, recompute, fs, bs, order));
				while (next_perm(order, n));
			} while (next_cut(bs, B, L));
		} while (next_cut(fs, F, L));
		*need = fmin(*need, fmax(fmem, bmem));
	}
	return best;
}

static void test_fast_against_brute_force(void)
{
	struct nsl_rng g;
	int exact = 0, refused = 0;

	nsl_rng_seed(&g, 43, 0);
	for (int t = 0; t < CASES; t++) {
		struct nsl_cost_layer layers[10];
		struct nsl_cost c;
		double speed[4], budget[4], need;
		const int n = random_job(&g, t, 2, &c, layers, speed, budget);

		for (int re = 0; re < 2; re++) {
			struct nsl_plan_req r = { .cost = &c, .npeers = n, .speed = speed, .budget = budget,
						  .objective = NSL_PLAN_FAST, .samples_per_shard = 100, .cores = cores,
						  .recompute = re };
			struct nsl_plan plan;
			double best = brute_fast(&c, n, speed, budget, re, &need), mine;
			int rc = (with_cluster(&r), nsl_plan_solve(&r, &plan));
			const char *e;

			if (isinf(need)) {   /* a pool would have no layer */
				CU_ASSERT_EQUAL(rc, -EINVAL);
				continue;
			}
			if (isinf(best)) {
				CU_ASSERT_EQUAL(rc, -ENOSPC);
				e = strstr(nsl_error_last(), "needs is ");
				CU_ASSERT_FATAL(e != NULL);
				CU_ASSERT(fabs(strtod(e + 9, NULL) - need) <= 1 + 1e-9 * need);
				refused++;
				continue;
			}
			CU_ASSERT_EQUAL_FATAL(rc, 0);
			CU_ASSERT_EQUAL(plan.fwd + plan.bwd, n);
			mine = ref_fast(&c, n, plan.fwd, speed, budget, re, plan.starts, plan.bstarts, plan.order);
			CU_ASSERT(fabs(mine - best) <= 1e-9 * best);
			CU_ASSERT(fabs(plan.epoch_s - mine) <= 1e-9 * mine);
			if (fabs(mine - best) > 1e-9 * best)
				printf("\n  fast case %d, %d layers, %d peers (%d:%d), recompute %d: planner %.9g, best %.9g", t,
				       c.nlayers, n, plan.fwd, plan.bwd, re, mine, best);
			exact += fabs(mine - best) <= 1e-9 * best;
		}
	}
	printf("\n  %d Fast N-split plans as good as brute force, %d infeasible jobs refused ", exact, refused);
	CU_ASSERT(exact > CASES / 2 && refused > 0);
}

static void test_refusals(void)
{
	struct nsl_cost_layer layers[3] = {
		{ .fwd_s = 1e-5, .bwd_s = 2e-5, .fixed_bytes = 1e6, .act_bytes = 100 },
		{ .fwd_s = 1e-5, .bwd_s = 2e-5, .fixed_bytes = 0, .act_bytes = 100 },
		{ .fwd_s = 1e-5, .bwd_s = 2e-5, .fixed_bytes = 1e6, .act_bytes = 10 },
	};
	struct nsl_cost c = { .nlayers = 3, .layer = layers, .link_bw = 1e9, .link_lat = 1e-5, .micro = 1, .slots = 1 };
	double budget[2] = { 5e5, 2e6 };
	struct nsl_plan_req r = { .cost = &c, .npeers = 2, .budget = budget, .objective = NSL_PLAN_BOTTLENECK,
				  .samples_per_shard = 10 };
	struct nsl_plan plan;

	CU_ASSERT_EQUAL(nsl_plan_solve(&r, &plan), -ENOSPC);
	CU_ASSERT(strstr(nsl_error_last(), "peer 0's budget of 500000 bytes") != NULL);
	CU_ASSERT(strstr(nsl_error_last(), "1000110 bytes") != NULL);
	budget[0] = 2e6;
	CU_ASSERT_EQUAL(nsl_plan_solve(&r, &plan), 0);
	r.npeers = 4;
	CU_ASSERT_EQUAL(nsl_plan_solve(&r, &plan), -EINVAL);
}

static void test_large(void)
{
	enum { L = 1000, N = 64 };
	struct nsl_cost_layer *layers = calloc(L, sizeof(*layers));
	struct nsl_cost c = { .nlayers = L, .layer = layers, .link_bw = 1e9, .link_lat = 1e-5, .micro = 8, .slots = 2 };
	double speed[N];
	struct nsl_plan_req r = { .cost = &c, .npeers = N, .speed = speed, .objective = NSL_PLAN_BOTTLENECK,
				  .samples_per_shard = 1000 };
	struct nsl_plan plan;
	struct nsl_rng g;
	struct timespec a, b;

	CU_ASSERT_PTR_NOT_NULL_FATAL(layers);
	nsl_rng_seed(&g, 7, 0);
	for (int i = 0; i < L; i++)
		layers[i] = (struct nsl_cost_layer){ .fwd_s = uniform(&g, 1e-6, 1e-4), .bwd_s = uniform(&g, 1e-6, 2e-4),
						     .fixed_bytes = uniform(&g, 0, 1e6), .act_bytes = uniform(&g, 16, 1e4) };
	for (int p = 0; p < N; p++)
		speed[p] = uniform(&g, 0.5, 2);
	clock_gettime(CLOCK_MONOTONIC, &a);
	CU_ASSERT_EQUAL(nsl_plan_solve(&r, &plan), 0);
	clock_gettime(CLOCK_MONOTONIC, &b);
	CU_ASSERT(isfinite(plan.epoch_s) && plan.starts[N] == L);
	printf("\n  1000 layers over 64 peers planned in %.3f s ",
	       (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec));
	r.objective = NSL_PLAN_FAST;
	clock_gettime(CLOCK_MONOTONIC, &a);
	CU_ASSERT_EQUAL(nsl_plan_solve(&r, &plan), 0);
	clock_gettime(CLOCK_MONOTONIC, &b);
	CU_ASSERT(isfinite(plan.epoch_s) && plan.fwd + plan.bwd == N && plan.bstarts[plan.bwd] == L);
	printf("(1f1b); Fast N-split, pools %d:%d, in %.3f s ", plan.fwd, plan.bwd,
	       (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec));
	free(layers);
}

int main(void)
{
	static const struct nsl_test_case cases[] = {
		{ "plans as good as brute force, infeasible jobs refused", test_against_brute_force },
		{ "Fast N-split plans as good as brute force", test_fast_against_brute_force },
		{ "refusals name the budget needed", test_refusals },
		{ "1,000 layers over 64 peers", test_large },
		{ NULL, NULL },
	};

	return nsl_test_run("planner", cases);
}
