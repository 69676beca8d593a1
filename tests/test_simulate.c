/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The simulator on jobs whose times can be worked out by hand: one peer adds up its work; a
 * pipeline of equal stages on free links approaches a micro-batch per stage-time; peers sharing
 * one core take all their work end to end; a slow link sets the pace; the trace has a span per
 * instruction run; a cluster's hosts share their cores and a slow link of its own slows the
 * pipeline; Fast N-split with staleness 1 runs at its slowest role's pace, and without
 * staleness slower, forwards waiting for the updates; a buffer of one still completes; peers
 * sharing a process's cores hold one each while they run; per-call
 * times measured at some row counts serve the others along the lines between them.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <CUnit/Basic.h>

#include "nsplit/error.h"
#include "nsplit/model.h"
#include "cunit_main.h"
#include "cost.h"
#include "simulate.h"

static struct nsl_cost_layer layers[4];
static struct nsl_cost cost = { .nlayers = 4, .layer = layers, .link_bw = 1e30, .link_lat = 0, .micro = 1, .slots = 1 };

static void set_layers(double f, double b, double act)
{
	for (int i = 0; i < 4; i++)
		layers[i] = (struct nsl_cost_layer){ .fwd_s = f, .bwd_s = b, .act_bytes = act };
}

static void test_one_peer(void)
{
	const int starts[2] = { 0, 4 };
	struct nsl_sim_conf c = { .cost = &cost, .npeers = 1, .starts = starts, .schedule = NSL_SCHED_NSPLIT, .batch = 10,
				  .micro = 1, .per_shard = 95, .rounds = 2 };
	struct nsl_sim_result r;

	set_layers(1e-3, 2e-3, 100);
	CU_ASSERT_EQUAL_FATAL(nsl_simulate(&c, &r), 0);
	/* 95 samples, 2 rounds, 4 layers of 3 ms each per sample */
	CU_ASSERT(fabs(r.total_s - 2 * 95 * 4 * 3e-3) < 1e-9);
	CU_ASSERT(fabs(r.utilisation - 1) < 1e-9);
}

static void test_pipeline(void)
{
	const int starts[5] = { 0, 1, 2, 3, 4 };
	struct nsl_sim_conf c = { .cost = &cost, .npeers = 4, .starts = starts, .schedule = NSL_SCHED_1F1B, .batch = 256,
				  .micro = 8, .per_shard = 2560, .rounds = 4 };
	struct nsl_sim_result r, shared;
	struct nsl_trace t[4];
	size_t spans = 0;

	set_layers(1e-4, 2e-4, 4096);
	for (int q = 0; q < 4; q++)
		CU_ASSERT_EQUAL_FATAL(nsl_trace_init(&t[q], q, 1 << 20), 0);
	c.traces = t;
	CU_ASSERT_EQUAL_FATAL(nsl_simulate(&c, &r), 0);
	/* Each stage takes 3e-4 s a sample; 32 micro-batches a batch keep the bubble small. */
	printf("\n  4 stages, free links: %.0f samples/s (a stage alone: %.0f), bubble %.3f ", r.samples_per_s, 1 / 3e-4,
	       r.bubble);
	CU_ASSERT(r.samples_per_s <= 1 / 3e-4 * 1.0001 && r.samples_per_s > 0.8 / 3e-4);
	for (int q = 0; q < 4; q++)
		spans += t[q].n;
	CU_ASSERT(spans > 4 * 4 * 10 * 32 * 2);
	c.traces = NULL;
	/* One core for all four: every sample's work end to end. */
	c.cores = 1;
	CU_ASSERT_EQUAL_FATAL(nsl_simulate(&c, &shared), 0);
	printf("one core: %.0f samples/s (all work on it: %.0f) ", shared.samples_per_s, 1 / (4 * 3e-4));
	CU_ASSERT(shared.samples_per_s <= 1 / (4 * 3e-4) * 1.0001 && shared.samples_per_s > 0.95 / (4 * 3e-4));
	/*
	 * Slow links: 4096 bytes a sample each way at 4 MB/s is 1 ms a sample, a bound no schedule
	 * passes. 1f1b gets about half: a micro-batch takes 6 link hops there and back (48 ms) and
	 * the first stage keeps 4 in flight, 32 samples every 48 ms, less the batch's drain.
	 */
	c.cores = 0;
	cost.link_bw = 4.096e6;
	CU_ASSERT_EQUAL_FATAL(nsl_simulate(&c, &r), 0);
	printf("slow links: %.0f samples/s ", r.samples_per_s);
	CU_ASSERT(r.samples_per_s <= 1000 * 1.0001 && r.samples_per_s > 450 && r.samples_per_s < 667);
	cost.link_bw = 1e30;
	/* A cluster: peers 0, 1 on one single-core host and 2, 3 on another; then the link between
	 * peers 1 and 2 alone slow (the rotation brings every cut onto it in turn). */
	{
		const int host[4] = { 0, 0, 1, 1 }, host_cores[4] = { 1, 1, 0, 0 };
		double bw[16] = { 0 };
		struct nsl_sim_result hosts, one_link;

		c.topo = (struct nsl_topology){ .host = host, .host_cores = host_cores };
		CU_ASSERT_EQUAL_FATAL(nsl_simulate(&c, &hosts), 0);
		bw[1 * 4 + 2] = bw[2 * 4 + 1] = 4.096e6;
		c.topo = (struct nsl_topology){ .link_bw = bw };
		CU_ASSERT_EQUAL_FATAL(nsl_simulate(&c, &one_link), 0);
		c.topo = (struct nsl_topology){ 0 };
		printf("two hosts of one core: %.0f samples/s (each host's work on its core: %.0f); one slow link: %.0f ",
		       hosts.samples_per_s, 1 / (2 * 3e-4), one_link.samples_per_s);
		CU_ASSERT(hosts.samples_per_s <= 1 / (2 * 3e-4) * 1.0001 && hosts.samples_per_s > 0.8 / (2 * 3e-4));
		CU_ASSERT(one_link.samples_per_s < 0.9 / 3e-4 && one_link.samples_per_s > r.samples_per_s);
	}
	for (int q = 0; q < 4; q++)
		nsl_trace_free(&t[q]);
}

static int by_time(const void *a, const void *b)
{
	const double *x = a, *y = b;

	return x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : x[1] < y[1] ? -1 : x[1] > y[1];
}

/*
 * Peers outnumbering the cores of one process share a worker per core (coop.h): a compute
 * span runs at full pace on the core it holds, so it lasts its work, and never more spans
 * than cores run at once. Under 1f1b with 4 peers on 2 cores every core stays busy but for the
 * fill and drain.
 */
static void test_coop(void)
{
	const int starts[5] = { 0, 1, 2, 3, 4 };
	struct nsl_sim_conf c = { .cost = &cost, .npeers = 4, .starts = starts, .schedule = NSL_SCHED_1F1B, .batch = 256,
				  .micro = 8, .per_shard = 2560, .rounds = 4, .cores = 2 };
	struct nsl_sim_result r;
	struct nsl_trace t[4];
	double *ev;
	size_t nev = 0, bad = 0;
	int most = 0, now = 0;

	set_layers(1e-4, 2e-4, 4096);
	for (int q = 0; q < 4; q++)
		CU_ASSERT_EQUAL_FATAL(nsl_trace_init(&t[q], q, 1 << 20), 0);
	c.traces = t;
	CU_ASSERT_EQUAL_FATAL(nsl_simulate(&c, &r), 0);
	ev = malloc(sizeof(double) * 2 * 2 * 4 * (1 << 20));
	CU_ASSERT_FATAL(ev != NULL);
	for (int q = 0; q < 4; q++)
		for (size_t i = 0; i < t[q].n; i++) {
			const struct nsl_trace_span *sp = &t[q].s[i];

			if (sp->op != NSL_OP_FWD && sp->op != NSL_OP_BWD && sp->op != NSL_OP_WGRAD)
				continue;
			bad += fabs((sp->t1 - sp->t0) - sp->cpu) > 1e-12;
			ev[2 * nev] = sp->t0, ev[2 * nev + 1] = 1, nev++;
			ev[2 * nev] = sp->t1, ev[2 * nev + 1] = -1, nev++;
		}
	/* at one instant, ends before starts */
	qsort(ev, nev, 2 * sizeof(double), by_time);
	for (size_t i = 0; i < nev; i++) {
		now += (int)ev[2 * i + 1];
		most = now > most ? now : most;
	}
	printf("\n  4 peers on 2 cores, coop: %.0f samples/s (all work on 2 cores: %.0f), at most %d computing, "
	       "%zu spans slower than their work ", r.samples_per_s, 2 / (4 * 3e-4), most, bad);
	CU_ASSERT_EQUAL(most, 2);
	CU_ASSERT_EQUAL(bad, 0);
	CU_ASSERT(r.samples_per_s <= 2 / (4 * 3e-4) * 1.0001 && r.samples_per_s > 0.9 * 2 / (4 * 3e-4));
	free(ev);
	for (int q = 0; q < 4; q++)
		nsl_trace_free(&t[q]);
}

static void test_fast(void)
{
	struct nsl_model *m = nsl_model_parse("mlp:16-8-8-4", (struct nsl_shape){ 1, 1, 16 });
	struct nsl_cost_layer l5[5];
	struct nsl_cost c5 = { .nlayers = 5, .layer = l5, .link_bw = 1e30, .link_lat = 0, .micro = 8, .slots = 4 };
	const int fstarts[2] = { 0, 5 }, bstarts[3] = { 0, 3, 5 };
	struct nsl_sim_conf c = { .cost = &c5, .npeers = 3, .starts = bstarts, .schedule = NSL_SCHED_FAST, .batch = 64,
				  .micro = 8, .per_shard = 6400, .rounds = 3, .model = m, .fwd = 1, .fstarts = fstarts,
				  .fast_all = true, .staleness = 1, .buffer = 8 };
	struct nsl_sim_result stale, sync, tight;

	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	for (int i = 0; i < 5; i++)
		l5[i] = (struct nsl_cost_layer){ .fwd_s = 1e-4, .bwd_s = 2e-4, .act_bytes = 64 };
	CU_ASSERT_EQUAL_FATAL(nsl_simulate(&c, &stale), 0);
	c.staleness = 0;
	CU_ASSERT_EQUAL_FATAL(nsl_simulate(&c, &sync), 0);
	c.buffer = 1;
	CU_ASSERT_EQUAL_FATAL(nsl_simulate(&c, &tight), 0);
	/* forward role 5e-4 s a sample, backward roles 6e-4 and 4e-4 */
	printf("\n  fast 1:2: staleness 1 %.0f samples/s, 0 %.0f, buffer 1 %.0f (slowest role alone %.0f) ",
	       stale.samples_per_s, sync.samples_per_s, tight.samples_per_s, 1 / 6e-4);
	CU_ASSERT(stale.samples_per_s <= 1 / 6e-4 * 1.0001 && stale.samples_per_s > 0.8 / 6e-4);
	CU_ASSERT(sync.samples_per_s < stale.samples_per_s);
	CU_ASSERT(tight.samples_per_s > 0 && tight.samples_per_s <= sync.samples_per_s * 1.0001);
	nsl_model_free(m);
}

static double sim_fast_sps(const struct nsl_sim_conf *base, const struct nsl_plan *p)
{
	struct nsl_sim_conf c = *base;
	struct nsl_sim_result r;

	c.fwd = p->fwd;
	c.fstarts = p->starts;
	c.starts = p->bstarts;
	return nsl_simulate(&c, &r) == 0 ? r.samples_per_s : -1;
}

/* On shared cores the pools are the fastest simulated of each pool size's plan; on a core each,
 * or with the pools given, the planner's plan as it is. The costs: the wide MLP as profiled on 2
 * cores (micro-batch 128), where the planner alone ties pools 1:3 with 2:2 and takes 1:3, and the
 * simulator (as the runtime measured) prefers 2:2. */
static void test_fast_pools(void)
{
	static const double prof[9][5] = {
		{ 7.231e-06, 1.138e-05, 9646080, 4096, 1.764e-04 }, { 7.896e-08, 2.414e-07, 0, 4096, 4.885e-09 },
		{ 9.677e-06, 2.616e-05, 12595200, 4096, 2.297e-04 }, { 8.243e-08, 2.294e-07, 0, 4096, 4.758e-09 },
		{ 9.102e-06, 2.391e-05, 12595200, 4096, 1.605e-04 }, { 5.872e-08, 2.405e-07, 0, 4096, 2.561e-09 },
		{ 9.636e-06, 2.085e-05, 12595200, 4096, 2.069e-04 }, { 6.104e-08, 2.305e-07, 0, 4096, 2.567e-09 },
		{ 1.893e-07, 6.467e-07, 196728, 40, 2.789e-06 },
	};
	struct nsl_model *m = nsl_model_parse("mlp:784-1024-1024-1024-1024-10", (struct nsl_shape){ 1, 28, 28 });
	struct nsl_cost_layer l9[9];
	struct nsl_cost c9 = { .nlayers = 9, .layer = l9, .link_bw = 1.44e10, .link_lat = 1.15e-6, .shared_lat = 2.15e-3,
			       .wake_lat = 4.7e-5, .copy_bw = 4.1e10, .busy_factor = 1.07, .micro = 128, .slots = 4 };
	struct nsl_plan_req r = { .cost = &c9, .npeers = 4, .objective = NSL_PLAN_FAST, .samples_per_shard = 7680,
				  .cores = 2 };
	const struct nsl_sim_fast f = { .model = m, .batch = 256, .micro = 128, .per_shard = 7680, .fast_all = true,
					.staleness = 1, .buffer = 4 };
	struct nsl_sim_conf base = { .cost = &c9, .npeers = 4, .cores = 2, .schedule = NSL_SCHED_FAST, .batch = 256,
				     .micro = 128, .per_shard = 7680, .rounds = 4, .model = m, .fast_all = true,
				     .staleness = 1, .buffer = 4 };
	struct nsl_plan chosen, each, plain;
	double best = 0, mine;

	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	for (int i = 0; i < 9; i++)
		l9[i] = (struct nsl_cost_layer){ .fwd_s = prof[i][0], .bwd_s = prof[i][1], .fixed_bytes = prof[i][2],
						 .act_bytes = prof[i][3], .step_s = prof[i][4] };
	CU_ASSERT_EQUAL_FATAL(nsl_sim_fast_plan(&r, &f, &chosen), 0);
	CU_ASSERT_EQUAL_FATAL(nsl_plan_solve(&r, &plain), 0);
	mine = sim_fast_sps(&base, &chosen);
	for (int F = 1; F < 4; F++) {
		struct nsl_plan_req rf = r;

		rf.fwd = F;
		CU_ASSERT_EQUAL_FATAL(nsl_plan_solve(&rf, &each), 0);
		best = fmax(best, sim_fast_sps(&base, &each));
	}
	printf("\n  pools %d:%d simulated at %.0f samples/s (the planner's alone: %d:%d, %.0f), the best pool size's plan "
	       "at %.0f ", chosen.fwd, chosen.bwd, mine, plain.fwd, plain.bwd, sim_fast_sps(&base, &plain), best);
	CU_ASSERT_DOUBLE_EQUAL(mine, best, best * 1e-9);
	CU_ASSERT(mine > sim_fast_sps(&base, &plain));
	r.cores = 0;
	CU_ASSERT_EQUAL(nsl_sim_fast_plan(&r, &f, &chosen), 0);
	CU_ASSERT_EQUAL(nsl_plan_solve(&r, &plain), 0);
	CU_ASSERT_EQUAL(chosen.fwd, plain.fwd);
	CU_ASSERT_EQUAL(memcmp(chosen.starts, plain.starts, sizeof(plain.starts)), 0);
	r.cores = 2;
	r.fwd = 3;
	CU_ASSERT_EQUAL(nsl_sim_fast_plan(&r, &f, &chosen), 0);
	CU_ASSERT_EQUAL(chosen.fwd, 3);
	nsl_model_free(m);
}

/* A cost with per-call times: a call between two row counts measured costs what the line between
 * them says; weight gradients are paid once a batch. */
static void test_per_call(void)
{
	const int starts[2] = { 0, 4 };
	struct nsl_cost_layer l4[4];
	struct nsl_cost c4 = { .nlayers = 4, .layer = l4, .link_bw = 1e30, .micro = 5, .slots = 1, .nrows = 2,
			       .rows = { 1, 10 }, .wgrad_rows = 10 };
	struct nsl_sim_conf c = { .cost = &c4, .npeers = 1, .starts = starts, .schedule = NSL_SCHED_NSPLIT, .batch = 10,
				  .micro = 5, .per_shard = 20, .rounds = 1 };
	struct nsl_sim_result r;
	const double fwd5 = 1e-3 + 1e-3 * 4 / 9, bwd5 = 2e-3 + 1e-3 * 4 / 9;

	for (int i = 0; i < 4; i++)
		l4[i] = (struct nsl_cost_layer){ .fwd_s = 1, .bwd_s = 1, .fwd_at = { 1e-3, 2e-3 }, .bwd_at = { 2e-3, 3e-3 },
						 .wgrad_s = 5e-3 };
	CU_ASSERT_EQUAL_FATAL(nsl_simulate(&c, &r), 0);
	/* 2 batches of 2 micro-batches of 5 rows, 4 layers; the per-sample times are not used */
	CU_ASSERT(fabs(r.total_s - 2 * 4 * (2 * (fwd5 + bwd5) + 5e-3)) < 1e-9);
	/* micro-batches of 10 rows: the times measured there */
	c.micro = 10;
	CU_ASSERT_EQUAL_FATAL(nsl_simulate(&c, &r), 0);
	CU_ASSERT(fabs(r.total_s - 2 * 4 * (2e-3 + 3e-3 + 5e-3)) < 1e-9);
}

/* A cost file keeps its per-call times; one whose row counts do not ascend is refused. */
static void test_cost_file(void)
{
	struct nsl_model *m = nsl_model_parse("mlp:4-3-2", (struct nsl_shape){ 1, 1, 4 });
	struct nsl_cost_layer l3[3] = { 0 };
	struct nsl_cost c = { .nlayers = 3, .layer = l3, .link_bw = 1e9, .nrows = 3, .rows = { 1, 4, 8 }, .wgrad_rows = 8 },
			back;
	char path[] = "/tmp/nsl-test-cost.XXXXXX", bad[64], line[4096], *text = NULL;
	size_t len = 0;
	FILE *f;
	int fd = mkstemp(path);

	CU_ASSERT_FATAL(m != NULL && fd >= 0);
	close(fd);
	for (int i = 0; i < 3; i++)
		for (int k = 0; k < 3; k++) {
			l3[i].fwd_at[k] = (i + 1) * 1e-4 * (k + 1);
			l3[i].bwd_at[k] = (i + 1) * 2e-4 * (k + 1);
			l3[i].wgrad_s = 1e-3 * (i + 1);
		}
	CU_ASSERT_EQUAL_FATAL(nsl_cost_write(path, &c, m, &(struct nsl_cost_meta){ .batch = 8, .micro = 4 }), 0);
	CU_ASSERT_EQUAL_FATAL(nsl_cost_read(path, m, &back), 0);
	CU_ASSERT_EQUAL(back.nrows, 3);
	CU_ASSERT_EQUAL(back.wgrad_rows, 8);
	CU_ASSERT(memcmp(back.rows, c.rows, sizeof(int) * 3) == 0);
	for (int i = 0; i < 3; i++)
		for (int k = 0; k < 3; k++)
			CU_ASSERT(fabs(back.layer[i].fwd_at[k] - l3[i].fwd_at[k]) < 1e-9 &&
				  fabs(back.layer[i].bwd_at[k] - l3[i].bwd_at[k]) < 1e-9 &&
				  fabs(back.layer[i].wgrad_s - l3[i].wgrad_s) < 1e-9);
	free(back.layer);
	/* the same file with its row counts out of order */
	f = fopen(path, "r");
	CU_ASSERT_FATAL(f != NULL);
	while (fgets(line, sizeof(line), f)) {
		char *at = strstr(line, "\"rows\": [1, 4, 8]");
		size_t n = strlen(line);

		if (at != NULL)
			memcpy(at, "\"rows\": [1, 8, 4]", strlen("\"rows\": [1, 8, 4]"));
		text = realloc(text, len + n + 1);
		memcpy(text + len, line, n + 1);
		len += n;
	}
	fclose(f);
	snprintf(bad, sizeof(bad), "%s.bad", path);
	f = fopen(bad, "w");
	CU_ASSERT_FATAL(f != NULL && text != NULL);
	fputs(text, f);
	fclose(f);
	CU_ASSERT_EQUAL(nsl_cost_read(bad, m, &back), -EINVAL);
	CU_ASSERT(strstr(nsl_error_last(), "\"rows\"[2]") != NULL);
	unlink(bad);
	unlink(path);
	free(text);
	nsl_model_free(m);
}

static void test_refuses(void)
{
	const int starts[2] = { 0, 4 };
	struct nsl_sim_conf c = { .cost = &cost, .npeers = 1, .starts = starts, .schedule = NSL_SCHED_NSPLIT, .batch = 0,
				  .micro = 1, .per_shard = 95, .rounds = 2 };
	struct nsl_sim_result r;

	CU_ASSERT_EQUAL(nsl_simulate(&c, &r), -EINVAL);
}

int main(void)
{
	static const struct nsl_test_case cases[] = {
		{ "one peer adds up its work", test_one_peer },
		{ "pipelines: free links, one core, a slow link", test_pipeline },
		{ "Fast N-split: the slowest role's pace, staleness, buffers", test_fast },
		{ "Fast N-split on shared cores: the fastest simulated pools", test_fast_pools },
		{ "coop: a core per running peer, at its full pace", test_coop },
		{ "per-call times between the row counts measured", test_per_call },
		{ "cost files keep per-call times, refuse disordered rows", test_cost_file },
		{ "bad configurations refused", test_refuses },
		{ NULL, NULL },
	};

	return nsl_test_run("simulate", cases);
}
