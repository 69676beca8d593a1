/* SPDX-License-Identifier: BSD-3-Clause */
/* `nsplit plan`: the optimal split of a model over N peers from a cost file (plan.h, cost.h). */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nsplit/error.h"
#include "nsplit/model.h"
#include "cli.h"
#include "cluster.h"
#include "commands.h"
#include "job_opts.h"
#include "cost.h"
#include "fast.h"
#include "plan.h"
#include "simulate.h"
#include "schedule.h"

struct plan_opts {
	struct nsl_job_opts j;
	const char *cluster;
	uint64_t mem_limit;
};

static void usage(FILE *f)
{
	fputs("usage: nsplit plan --cost FILE [options]\n"
	      "Print the split of a model over N peers, and the order of the peers in the rotation,\n"
	      "that trains an epoch fastest under the peers' memory budgets, with every peer's\n"
	      "predicted time and memory.\n"
	      "  --cost FILE        what nsplit profile measured\n"
	      "  --model M          the model (default mlp:784-512-256-10; must be the cost file's)\n"
	      "  --input CxHxW      the sample shape (default 1x28x28)\n"
	      "  --peers N          peers (default 4; a cluster file's count otherwise)\n"
	      "  --cluster FILE     peers with a speed, mem-limit, host and its cores each, and links\n"
	      "                     with a bandwidth and latency ([linkA-B]; control/cluster.h)\n"
	      "  --mem-limit SIZE   every peer's budget where the cluster file gives none\n"
	      "  --schedule S       nsplit (the shortest epoch of one sample at a time), gpipe, 1f1b\n"
	      "                     or fast (the smallest bottleneck); default 1f1b\n"
	      "  --pools F:B        fast: the pool sizes (default: the best)\n"
	      "  --fast-activations M  fast: boundary (backward recomputes; default) or all\n"
	      "  --batch B          default the cost file's\n"
	      "  --micro-batch M    default the cost file's\n"
	      "  --samples N        training samples in all (default 60000)\n"
	      "  --cores C          every peer on one host of C cores (as nsplit train --peers N runs\n"
	      "                     them; default: a core each)\n"
	      "  --json             one JSON object instead of the table\n",
	      f);
}

static int parse(int argc, char **argv, struct plan_opts *o)
{
	static const struct option opts[] = {
		NSL_JOB_OPTIONS,
		{ "cluster", required_argument, NULL, 'k' }, { "mem-limit", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	int c, rc = 0;

	optind = 0;
	while (rc == 0 && (c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (nsl_job_opt(c, optarg, &o->j, &rc))
			continue;
		switch (c) {
		case 'k': o->cluster = optarg; break;
		case 'l': rc = nsl_cli_bytes("mem-limit", optarg, &o->mem_limit); break;
		case 'h': usage(stdout); return 1;
		default: usage(stderr); return 2;
		}
	}
	return nsl_job_opts_done("plan", rc, argc, argv, &o->j);
}

/* Role k's name and layers: a stage, or one of Fast N-split's pool roles. */
static void role(const struct nsl_plan *p, int k, char *name, size_t cap, int *first, int *last)
{
	if (p->fwd == 0) {
		snprintf(name, cap, "stage %d", k + 1);
		*first = p->starts[k];
		*last = p->starts[k + 1] - 1;
	} else if (k < p->fwd) {
		snprintf(name, cap, "forward %d", k + 1);
		*first = p->starts[k];
		*last = p->starts[k + 1] - 1;
	} else {
		snprintf(name, cap, "backward %d", k - p->fwd + 1);
		*first = p->bstarts[k - p->fwd];
		*last = p->bstarts[k - p->fwd + 1] - 1;
	}
}

static void print_cuts(const int *starts, int n, const char *sep)
{
	for (int s = 1; s < n; s++)
		printf("%s%d", s > 1 ? sep : "", starts[s]);
}

static void print_table(const struct plan_opts *o, const struct nsl_model *m, const struct nsl_plan_req *r,
			const struct nsl_plan *p)
{
	const int n = r->npeers;

	printf("plan for %s over %d peers, %s schedule (%s), cost file %s\n", m->text, n, nsl_sched_name(o->j.schedule),
	       r->objective == NSL_PLAN_EPOCH ? "one sample at a time: the shortest epoch"
					      : "pipelined: the slowest stage or cut sets the pace",
	       o->j.cost);
	if (p->fwd) {
		printf("pools: --pools %d:%d --split-fwd ", p->fwd, p->bwd);
		print_cuts(p->starts, p->fwd, ",");
		printf("%s --split-bwd ", p->fwd == 1 ? "(one stage)" : "");
		print_cuts(p->bstarts, p->bwd, ",");
		printf("%s\n\n%12s %8s %16s %12s\n", p->bwd == 1 ? "(one stage)" : "", "role", "layers", "compute us/smp",
		       "memory MiB");
	} else {
		printf("split: --split ");
		print_cuts(p->starts, n, ",");
		printf("%s\n\n%12s %8s %16s %12s\n", n == 1 ? "(one stage)" : "", "stage", "layers", "compute us/smp",
		       "memory MiB");
	}
	for (int s = 0; s < n; s++) {
		char name[32];
		int first, last;

		role(p, s, name, sizeof(name), &first, &last);
		printf("%12s %4d-%-3d %16.2f %12.1f\n", name, first, last, p->stage_compute_s[s] * 1e6,
		       p->stage_bytes[s] / 1048576.0);
	}
	printf("\n%6s %8s %16s %12s %12s\n", "peer", "speed", "compute s/epoch", "peak MiB", "budget MiB");
	for (int q = 0; q < n; q++) {
		double busy = 0, peak = 0;

		/* Over an epoch the peer holds every stage once: in round r stage s is on order[(r + s) mod n]. */
		for (int s = 0; s < n; s++) {
			busy += p->stage_compute_s[s] * r->samples_per_shard / (r->speed ? r->speed[q] : 1);
			peak = p->stage_bytes[s] > peak ? p->stage_bytes[s] : peak;
		}
		char b[32] = "-";

		if (r->budget && r->budget[q] > 0)
			snprintf(b, sizeof(b), "%.1f", r->budget[q] / 1048576.0);
		printf("%6d %8.2f %16.3f %12.1f %12s\n", q, r->speed ? r->speed[q] : 1, busy, peak / 1048576.0, b);
	}
	printf("\nrotation order:");
	for (int q = 0; q < n; q++)
		printf(" %d", p->order[q]);
	printf("\npredicted: %.3f s per epoch, %.0f samples/s\n", p->epoch_s, p->samples_per_s);
}

static void print_json(const struct plan_opts *o, const struct nsl_model *m, const struct nsl_plan_req *r,
		       const struct nsl_plan *p)
{
	const int n = r->npeers;

	printf("{\"model\":\"%s\",\"peers\":%d,\"schedule\":\"%s\",", m->text, n, nsl_sched_name(o->j.schedule));
	if (p->fwd) {
		printf("\"pools\":[%d,%d],\"split_fwd\":[", p->fwd, p->bwd);
		print_cuts(p->starts, p->fwd, ",");
		printf("],\"split_bwd\":[");
		print_cuts(p->bstarts, p->bwd, ",");
	} else {
		printf("\"split\":[");
		print_cuts(p->starts, n, ",");
	}
	printf("],\"order\":[");
	for (int q = 0; q < n; q++)
		printf("%s%d", q ? "," : "", p->order[q]);
	printf("],\"epoch_s\":%.6g,\"samples_per_s\":%.6g,\"stages\":[", p->epoch_s, p->samples_per_s);
	for (int s = 0; s < n; s++) {
		char name[32];
		int first, last;

		role(p, s, name, sizeof(name), &first, &last);
		printf("%s{\"role\":\"%s\",\"first\":%d,\"last\":%d,\"compute_s_per_sample\":%.6g,\"bytes\":%.0f}",
		       s ? "," : "", name, first, last, p->stage_compute_s[s], p->stage_bytes[s]);
	}
	printf("]}\n");
}

int nsl_cmd_plan(int argc, char **argv)
{
	struct plan_opts o = { .j = { .model = "mlp:784-512-256-10", .input = { 1, 28, 28 }, .samples = 60000,
				      .schedule = NSL_SCHED_1F1B } };
	struct nsl_cluster cl = { 0 };
	struct nsl_model *m = NULL;
	struct nsl_cost c = { 0 };
	struct nsl_plan p;
	double speed[NSL_PLAN_MAX_PEERS], budget[NSL_PLAN_MAX_PEERS];
	int rc = parse(argc, argv, &o);

	if (rc != 0)
		return rc == 1 ? 0 : rc;
	if (o.cluster && (rc = nsl_cluster_load(o.cluster, &cl)) < 0)
		return nsl_cli_fail("plan");
	if (o.j.peers == 0)
		o.j.peers = o.cluster ? cl.npeers : 4;
	if (o.cluster && o.j.peers != cl.npeers) {
		rc = nsl_error_set(EINVAL, "--peers %d, but %s describes %d peers", o.j.peers, o.cluster, cl.npeers);
		goto out;
	}
	if (o.j.peers > NSL_PLAN_MAX_PEERS) {
		rc = nsl_error_set(EINVAL, "--peers %d: at most %d", o.j.peers, NSL_PLAN_MAX_PEERS);
		goto out;
	}
	if ((m = nsl_model_parse(o.j.model, o.j.input)) == NULL || (rc = nsl_cost_read(o.j.cost, m, &c)) < 0) {
		rc = -EINVAL;
		goto out;
	}
	if (o.j.micro > 0)
		c.micro = o.j.micro;
	if (o.j.batch == 0)
		o.j.batch = c.micro * 8;
	/* Fast N-split: a backward role buffers NSL_FAST_BUFFER micro-batches by default (--buffer). */
	c.slots = o.j.schedule == NSL_SCHED_FAST ? NSL_FAST_BUFFER
		: nsl_sched_most_in_flight(o.j.schedule, o.j.peers, (o.j.batch + c.micro - 1) / c.micro);
	for (int q = 0; q < o.j.peers; q++) {
		speed[q] = o.cluster ? cl.peers[q].speed : 1;
		budget[q] = (double)(o.cluster && cl.peers[q].mem_limit ? cl.peers[q].mem_limit : o.mem_limit);
	}
	{
		struct nsl_plan_req r = { .cost = &c, .npeers = o.j.peers, .speed = speed, .budget = budget,
					  .objective = o.j.schedule == NSL_SCHED_NSPLIT ? NSL_PLAN_EPOCH
						     : o.j.schedule == NSL_SCHED_FAST ? NSL_PLAN_FAST : NSL_PLAN_BOTTLENECK,
					  .samples_per_shard = (double)o.j.samples / o.j.peers, .cores = o.j.cores,
					  .fwd = o.j.pools_fwd, .recompute = !o.j.fast_all };

		if (o.cluster)   /* its hosts and links, for peers that are not this machine */
			r.topo = nsl_cluster_topology(&cl);

		if (o.j.pools_fwd && o.j.pools_fwd + o.j.pools_bwd != o.j.peers) {
			rc = nsl_error_set(EINVAL, "--pools %d:%d for %d peers: the pools must add up to --peers", o.j.pools_fwd,
					   o.j.pools_bwd, o.j.peers);
			goto out;
		}

		const struct nsl_sim_fast sf = { .model = m, .batch = o.j.batch, .micro = c.micro,
						 .per_shard = o.j.samples / o.j.peers, .fast_all = o.j.fast_all,
						 .staleness = o.j.staleness, .buffer = c.slots };

		rc = o.j.schedule == NSL_SCHED_FAST ? nsl_sim_fast_plan(&r, &sf, &p) : nsl_plan_solve(&r, &p);
		if (rc == 0) {
			if (o.j.json)
				print_json(&o, m, &r, &p);
			else
				print_table(&o, m, &r, &p);
		}
	}
out:
	free(c.layer);
	nsl_model_free(m);
	nsl_cluster_free(&cl);
	return rc < 0 ? nsl_cli_fail("plan") : 0;
}
