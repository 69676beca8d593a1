/* SPDX-License-Identifier: BSD-3-Clause */
/* `nsplit simulate`: a job as nsplit train would run it, predicted by the simulator (simulate.h). */
#include <errno.h>
#include <getopt.h>
#include <sched.h>
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
#include "plan_file.h"
#include "simulate.h"

struct sim_opts {
	struct nsl_job_opts j;
	const char *split, *trace, *plan, *split_fwd, *split_bwd, *cluster;
	int epochs, buffer;
};

static void usage(FILE *f)
{
	fputs("usage: nsplit simulate --cost FILE [options]\n"
	      "Predict an N-split job from a cost file (nsplit profile): the instruction lists nsplit\n"
	      "train runs, as discrete events. Prints round and epoch time, samples/s, every peer's\n"
	      "utilisation and the bubble fraction.\n"
	      "  --cost FILE        what nsplit profile measured (its link: the peers' links)\n"
	      "  --plan FILE        the job nsplit plan --json chose: model, peers, schedule, split(s)\n"
	      "  --model M          (default mlp:784-512-256-10, or the plan's; the cost file's)\n"
	      "  --input CxHxW      the sample shape (default 1x28x28)\n"
	      "  --peers N          (default 4; a cluster file's count otherwise)\n"
	      "  --cluster FILE     peers of their own speeds, on hosts of their own cores, joined by\n"
	      "                     links of their own bandwidth and latency (control/cluster.h)\n"
	      "  --split I,J,...    the cut (default: the planner's for the schedule; `even` for nsplit\n"
	      "                     train's default)\n"
	      "  --schedule S       nsplit, gpipe, 1f1b or fast (default 1f1b)\n"
	      "  --pools F:B, --split-fwd I,..., --split-bwd I,..., --fast-activations M,\n"
	      "  --staleness S, --buffer K   Fast N-split, as nsplit train takes them (default pools\n"
	      "                     and splits: the planner's)\n"
	      "  --batch B          (default 64)\n"
	      "  --micro-batch M    (default 1 for nsplit, else batch / (2 x peers), as nsplit train)\n"
	      "  --samples N        training samples in all (default 60000)\n"
	      "  --epochs E         (default 1)\n"
	      "  --cores C          the peers share C cores, as in one process (default: the CPUs this\n"
	      "                     process may use, when fewer than the peers; 0: a core each)\n"
	      "  --trace FILE       a Chrome trace, as nsplit train --trace writes\n"
	      "  --json             one JSON object instead of the text\n",
	      f);
}

static int parse(int argc, char **argv, struct sim_opts *o)
{
	static const struct option opts[] = {
		NSL_JOB_OPTIONS,
		{ "split", required_argument, NULL, 'S' }, { "epochs", required_argument, NULL, 'e' },
		{ "plan", required_argument, NULL, 'P' }, { "split-fwd", required_argument, NULL, 'f' },
		{ "split-bwd", required_argument, NULL, 'b' }, { "buffer", required_argument, NULL, 'B' },
		{ "cluster", required_argument, NULL, 'k' },
		{ "trace", required_argument, NULL, 't' }, { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	int c, rc = 0;

	optind = 0;
	while (rc == 0 && (c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (nsl_job_opt(c, optarg, &o->j, &rc))
			continue;
		switch (c) {
		case 'S': o->split = optarg; break;
		case 'P': o->plan = optarg; break;
		case 'k': o->cluster = optarg; break;
		case 'f': o->split_fwd = optarg; break;
		case 'b': o->split_bwd = optarg; break;
		case 'B': rc = nsl_cli_int("buffer", optarg, 1, 256, &o->buffer); break;
		case 'e': rc = nsl_cli_int("epochs", optarg, 1, 1000000, &o->epochs); break;
		case 't': o->trace = optarg; break;
		case 'h': usage(stdout); return 1;
		default: usage(stderr); return 2;
		}
	}
	return nsl_job_opts_done("simulate", rc, argc, argv, &o->j);
}

/* The split(s): from --plan, given, the default (`even`), or the planner's. Fast: *fwd forward
 * roles over fstarts, the backward ones over starts. */
static int choose_split(struct sim_opts *o, const struct nsl_plan_file *pf, const struct nsl_model *m,
			struct nsl_cost *c, int *starts, int *fstarts, int *fwd, const struct nsl_cluster *cl,
			const double *speed)
{
	const bool fast = o->j.schedule == NSL_SCHED_FAST;
	struct nsl_plan p;
	int rc;

	if (pf != NULL) {
		memcpy(starts, pf->starts, sizeof(pf->starts));
		memcpy(fstarts, pf->fstarts, sizeof(pf->fstarts));
		*fwd = pf->fwd;
		return 0;
	}
	if (fast && o->split_fwd && o->split_bwd) {
		*fwd = o->j.pools_fwd ? o->j.pools_fwd : nsl_fast_default_fwd(o->j.peers);
		if ((rc = nsl_cli_split(m, "split-fwd", o->split_fwd, *fwd, fstarts)) < 0)
			return rc;
		return nsl_cli_split(m, "split-bwd", o->split_bwd, o->j.peers - *fwd, starts);
	}
	if (!fast && o->split)
		return nsl_cli_split(m, "split", o->split, o->j.peers, starts);
	{
		struct nsl_plan_req r = { .cost = c, .npeers = o->j.peers,
					  .objective = o->j.schedule == NSL_SCHED_NSPLIT ? NSL_PLAN_EPOCH
						     : fast ? NSL_PLAN_FAST : NSL_PLAN_BOTTLENECK,
					  .samples_per_shard = (double)o->j.samples / o->j.peers, .cores = o->j.cores,
					  .fwd = o->j.pools_fwd, .recompute = !o->j.fast_all };

		const struct nsl_sim_fast sf = { .model = m, .batch = o->j.batch, .micro = c->micro,
						 .per_shard = o->j.samples / o->j.peers, .fast_all = o->j.fast_all,
						 .staleness = o->j.staleness, .buffer = o->buffer };

		if (cl->npeers) {
			r.speed = speed;
			r.topo = nsl_cluster_topology(cl);
		}
		if ((rc = fast ? nsl_sim_fast_plan(&r, &sf, &p) : nsl_plan_solve(&r, &p)) < 0)
			return rc;
	}
	if (fast) {
		*fwd = p.fwd;
		memcpy(fstarts, p.starts, sizeof(int) * (size_t)(p.fwd + 1));
		memcpy(starts, p.bstarts, sizeof(int) * (size_t)(p.bwd + 1));
	} else {
		memcpy(starts, p.starts, sizeof(int) * (size_t)(o->j.peers + 1));
	}
	return 0;
}

int nsl_cmd_simulate(int argc, char **argv)
{
	struct sim_opts o = { .j = { .input = { 1, 28, 28 }, .peers = 4, .batch = 64, .samples = 60000,
				     .schedule = NSL_SCHED_1F1B, .cores = -1 },
			      .epochs = 1, .buffer = NSL_FAST_BUFFER };
	struct nsl_plan_file pf;
	struct nsl_cluster cl = { 0 };
	double speed[NSL_PLAN_MAX_PEERS];
	struct nsl_model *m = NULL;
	struct nsl_cost c = { 0 };
	struct nsl_trace tracks[NSL_PLAN_MAX_PEERS];
	struct nsl_sim_result res;
	int starts[NSL_PLAN_MAX_PEERS + 1], fstarts[NSL_PLAN_MAX_PEERS + 1], fwd = 0, ntracks = 0;
	int rc = parse(argc, argv, &o);

	if (rc != 0)
		return rc == 1 ? 0 : rc;
	memset(tracks, 0, sizeof(tracks));
	if (o.plan) {
		if (o.split || o.split_fwd || o.split_bwd || o.j.pools_fwd) {
			fprintf(stderr, "nsplit simulate: --plan gives the split: no --split, --split-fwd, --split-bwd or --pools\n");
			return 2;
		}
		if (nsl_plan_file_read(o.plan, &pf) < 0)
			return nsl_cli_fail("simulate");
		if (o.j.model == NULL)
			o.j.model = pf.model;
		o.j.peers = pf.peers;
		o.j.schedule = pf.schedule;
	}
	if (o.j.model == NULL)
		o.j.model = "mlp:784-512-256-10";
	if (o.cluster) {
		if (nsl_cluster_load(o.cluster, &cl) < 0)
			return nsl_cli_fail("simulate");
		if (o.plan && pf.peers != cl.npeers) {
			nsl_error_set(EINVAL, "%s plans %d peers; %s has %d", o.plan, pf.peers, o.cluster, cl.npeers);
			nsl_cluster_free(&cl);
			return nsl_cli_fail("simulate");
		}
		o.j.peers = cl.npeers;
		for (int q = 0; q < cl.npeers; q++)
			speed[q] = cl.peers[q].speed;
	}
	if (o.j.cores < 0 && o.cluster)
		o.j.cores = 0;   /* the cluster's hosts say who shares which cores */
	if (o.j.cores < 0) {
		cpu_set_t cpus;

		o.j.cores = sched_getaffinity(0, sizeof(cpus), &cpus) == 0 && CPU_COUNT(&cpus) < o.j.peers ? CPU_COUNT(&cpus) : 0;
	}
	if (o.j.micro == 0)
		o.j.micro = o.j.schedule == NSL_SCHED_NSPLIT ? 1 : (o.j.batch / (2 * o.j.peers) > 0 ? o.j.batch / (2 * o.j.peers) : 1);
	if ((m = nsl_model_parse(o.j.model, o.j.input)) == NULL ||
	    (o.plan && nsl_plan_file_check(o.plan, &pf, m) < 0) || (rc = nsl_cost_read(o.j.cost, m, &c)) < 0) {
		rc = -EINVAL;
		goto out;
	}
	c.micro = o.j.micro;
	c.slots = o.j.schedule == NSL_SCHED_FAST ? o.buffer
		: nsl_sched_most_in_flight(o.j.schedule, o.j.peers, (o.j.batch + o.j.micro - 1) / o.j.micro);
	if ((rc = choose_split(&o, o.plan ? &pf : NULL, m, &c, starts, fstarts, &fwd, &cl, speed)) < 0)
		goto out;
	for (; o.trace && ntracks < o.j.peers; ntracks++)
		if ((rc = nsl_trace_init(&tracks[ntracks], ntracks, 1u << 20)) < 0)
			goto out;
	{
		struct nsl_sim_conf sc = { .cost = &c, .npeers = o.j.peers, .starts = starts, .cores = o.j.cores,
					   .schedule = o.j.schedule, .batch = o.j.batch, .micro = o.j.micro,
					   .per_shard = o.j.samples / o.j.peers, .rounds = o.epochs * o.j.peers,
					   .traces = o.trace ? tracks : NULL, .model = m, .fwd = fwd, .fstarts = fstarts,
					   .fast_all = o.j.fast_all, .staleness = o.j.staleness, .buffer = o.buffer };

		if (o.cluster) {
			sc.speed = speed;
			sc.topo = nsl_cluster_topology(&cl);
		}

		if ((rc = nsl_simulate(&sc, &res)) < 0)
			goto out;
	}
	if (o.j.json) {
		printf("{\"model\":\"%s\",\"peers\":%d,\"schedule\":\"%s\",\"micro_batch\":%d,\"batch\":%d,\"cores\":%d,"
		       "\"round_s\":%.6g,\"epoch_s\":%.6g,\"samples_per_s\":%.6g,\"utilisation\":%.4f,\"bubble\":%.4f}\n",
		       m->text, o.j.peers, nsl_sched_name(o.j.schedule), o.j.micro, o.j.batch, o.j.cores, res.round_s,
		       res.round_s * o.j.peers, res.samples_per_s, res.utilisation, res.bubble);
	} else {
		char text[256] = "";

		if (fwd)
			nsl_fast_split_text(fwd, fstarts, o.j.peers - fwd, starts, text, sizeof(text));
		for (int s = 1, n = 0; !fwd && s < o.j.peers; s++)
			n += snprintf(text + n, sizeof(text) - (size_t)n, "%s%d", s > 1 ? "," : "", starts[s]);
		printf("simulated %s over %d peers (split %s%s), %s, micro-batch %d of batch %d, %s, %lld samples x %d epoch%s\n",
		       m->text, o.j.peers, text, fwd ? (o.j.fast_all ? ", all tensors shipped" : ", recomputing") : "",
		       nsl_sched_name(o.j.schedule), o.j.micro, o.j.batch,
		       o.cluster ? "the cluster file's hosts and links" : o.j.cores ? "sharing cores" : "a core each",
		       (long long)o.j.samples, o.epochs, o.epochs == 1 ? "" : "s");
		if (o.j.cores)
			printf("(the peers share %d cores)\n", o.j.cores);
		printf("round %.3f s, epoch %.3f s, %.0f samples/s; utilisation %.2f, bubble %.2f; %llu events\n", res.round_s,
		       res.round_s * o.j.peers, res.samples_per_s, res.utilisation, res.bubble, (unsigned long long)res.events);
		for (int q = 0; q < o.j.peers; q++)
			printf("  peer %d: busy %.3f s (%.0f%%)\n", q, res.busy_s[q],
			       res.total_s > 0 ? 100 * res.busy_s[q] / res.total_s : 0);
	}
	if (o.trace) {
		const struct nsl_trace *t[NSL_PLAN_MAX_PEERS];

		for (int q = 0; q < o.j.peers; q++)
			t[q] = &tracks[q];
		if ((rc = nsl_trace_write(o.trace, t, o.j.peers, 0)) == 0 && !o.j.json)
			printf("trace written to %s\n", o.trace);
	}
out:
	for (int q = 0; q < ntracks; q++)
		nsl_trace_free(&tracks[q]);
	free(c.layer);
	nsl_model_free(m);
	nsl_cluster_free(&cl);
	return rc < 0 ? nsl_cli_fail("simulate") : 0;
}
