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
#include "commands.h"
#include "cost.h"
#include "plan.h"
#include "simulate.h"

struct sim_opts {
	const char *model, *cost, *split, *trace;
	struct nsl_shape input;
	int peers, batch, micro, epochs, cores;
	int64_t samples;
	enum nsl_sched_kind schedule;
	bool json;
};

static void usage(FILE *f)
{
	fputs("usage: nsplit simulate --cost FILE [options]\n"
	      "Predict an N-split job from a cost file (nsplit profile): the instruction lists nsplit\n"
	      "train runs, as discrete events. Prints round and epoch time, samples/s, every peer's\n"
	      "utilisation and the bubble fraction.\n"
	      "  --cost FILE        what nsplit profile measured (its link: the peers' links)\n"
	      "  --model M          (default mlp:784-512-256-10; the cost file's)\n"
	      "  --input CxHxW      the sample shape (default 1x28x28)\n"
	      "  --peers N          (default 4)\n"
	      "  --split I,J,...    the cut (default: the planner's for the schedule; `even` for nsplit\n"
	      "                     train's default)\n"
	      "  --schedule S       nsplit, gpipe or 1f1b (default 1f1b)\n"
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
		{ "cost", required_argument, NULL, 'c' }, { "model", required_argument, NULL, 'm' },
		{ "input", required_argument, NULL, 'i' }, { "peers", required_argument, NULL, 'p' },
		{ "split", required_argument, NULL, 'S' }, { "schedule", required_argument, NULL, 's' },
		{ "batch", required_argument, NULL, 'b' }, { "micro-batch", required_argument, NULL, 'u' },
		{ "samples", required_argument, NULL, 'n' }, { "epochs", required_argument, NULL, 'e' },
		{ "cores", required_argument, NULL, 'r' }, { "trace", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' }, { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	int c, rc = 0;

	optind = 0;
	while (rc == 0 && (c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': o->cost = optarg; break;
		case 'm': o->model = optarg; break;
		case 'i': rc = nsl_cli_shape("input", optarg, &o->input); break;
		case 'p': rc = nsl_cli_int("peers", optarg, 1, NSL_PLAN_MAX_PEERS, &o->peers); break;
		case 'S': o->split = optarg; break;
		case 's': {
			enum nsl_sched_kind k;

			rc = nsl_sched_parse(optarg, &k);
			o->schedule = k;
			break;
		}
		case 'b': rc = nsl_cli_int("batch", optarg, 1, 1 << 20, &o->batch); break;
		case 'u': rc = nsl_cli_int("micro-batch", optarg, 1, 1 << 20, &o->micro); break;
		case 'n': rc = nsl_cli_i64("samples", optarg, 1, INT64_MAX / 2, &o->samples); break;
		case 'e': rc = nsl_cli_int("epochs", optarg, 1, 1000000, &o->epochs); break;
		case 'r': rc = nsl_cli_int("cores", optarg, 0, 4096, &o->cores); break;
		case 't': o->trace = optarg; break;
		case 'j': o->json = true; break;
		case 'h': usage(stdout); return 1;
		default: usage(stderr); return 2;
		}
	}
	if (rc < 0)
		return nsl_cli_fail("simulate") + 1;
	if (optind < argc || o->cost == NULL) {
		fprintf(stderr, "nsplit simulate: %s (see nsplit simulate --help)\n",
			o->cost == NULL ? "give --cost FILE (made by nsplit profile)" : "unexpected argument");
		return 2;
	}
	return 0;
}

/* The split: given, the default (`even`), or the planner's. */
static int choose_split(const struct sim_opts *o, const struct nsl_model *m, struct nsl_cost *c, int *starts)
{
	struct nsl_plan p;
	int rc;

	if (o->split && strcmp(o->split, "even") == 0)
		return nsl_model_even_split(m, o->peers, starts) < 0 ? -EINVAL : 0;
	if (o->split) {
		rc = nsl_model_parse_split(m, o->split, starts, NSL_PLAN_MAX_PEERS);
		if (rc >= 0 && rc != o->peers)
			rc = nsl_error_set(EINVAL, "--split %s makes %d stages for %d peers", o->split, rc, o->peers);
		return rc < 0 ? rc : 0;
	}
	{
		struct nsl_plan_req r = { .cost = c, .npeers = o->peers,
					  .objective = o->schedule == NSL_SCHED_NSPLIT ? NSL_PLAN_EPOCH : NSL_PLAN_BOTTLENECK,
					  .samples_per_shard = (double)o->samples / o->peers, .cores = o->cores };

		if ((rc = nsl_plan_solve(&r, &p)) < 0)
			return rc;
	}
	memcpy(starts, p.starts, sizeof(int) * (size_t)(o->peers + 1));
	return 0;
}

int nsl_cmd_simulate(int argc, char **argv)
{
	struct sim_opts o = { .model = "mlp:784-512-256-10", .input = { 1, 28, 28 }, .peers = 4, .batch = 64,
			      .epochs = 1, .samples = 60000, .schedule = NSL_SCHED_1F1B, .cores = -1 };
	struct nsl_model *m = NULL;
	struct nsl_cost c = { 0 };
	struct nsl_trace tracks[NSL_PLAN_MAX_PEERS];
	struct nsl_sim_result res;
	int starts[NSL_PLAN_MAX_PEERS + 1], ntracks = 0;
	int rc = parse(argc, argv, &o);

	if (rc != 0)
		return rc == 1 ? 0 : rc;
	memset(tracks, 0, sizeof(tracks));
	if (o.cores < 0) {
		cpu_set_t cpus;

		o.cores = sched_getaffinity(0, sizeof(cpus), &cpus) == 0 && CPU_COUNT(&cpus) < o.peers ? CPU_COUNT(&cpus) : 0;
	}
	if (o.micro == 0)
		o.micro = o.schedule == NSL_SCHED_NSPLIT ? 1 : (o.batch / (2 * o.peers) > 0 ? o.batch / (2 * o.peers) : 1);
	if ((m = nsl_model_parse(o.model, o.input)) == NULL || (rc = nsl_cost_read(o.cost, m, &c)) < 0) {
		rc = -EINVAL;
		goto out;
	}
	c.micro = o.micro;
	c.slots = nsl_sched_most_in_flight(o.schedule, o.peers, (o.batch + o.micro - 1) / o.micro);
	if ((rc = choose_split(&o, m, &c, starts)) < 0)
		goto out;
	for (; o.trace && ntracks < o.peers; ntracks++)
		if ((rc = nsl_trace_init(&tracks[ntracks], ntracks, 1u << 20)) < 0)
			goto out;
	{
		struct nsl_sim_conf sc = { .cost = &c, .npeers = o.peers, .starts = starts, .cores = o.cores,
					   .schedule = o.schedule, .batch = o.batch, .micro = o.micro,
					   .per_shard = o.samples / o.peers, .rounds = o.epochs * o.peers,
					   .traces = o.trace ? tracks : NULL };

		if ((rc = nsl_simulate(&sc, &res)) < 0)
			goto out;
	}
	if (o.json) {
		printf("{\"model\":\"%s\",\"peers\":%d,\"schedule\":\"%s\",\"micro_batch\":%d,\"batch\":%d,\"cores\":%d,"
		       "\"round_s\":%.6g,\"epoch_s\":%.6g,\"samples_per_s\":%.6g,\"utilisation\":%.4f,\"bubble\":%.4f}\n",
		       m->text, o.peers, nsl_sched_name(o.schedule), o.micro, o.batch, o.cores, res.round_s,
		       res.round_s * o.peers, res.samples_per_s, res.utilisation, res.bubble);
	} else {
		printf("simulated %s over %d peers (split", m->text, o.peers);
		for (int s = 1; s < o.peers; s++)
			printf("%s%d", s > 1 ? "," : " ", starts[s]);
		printf("), %s, micro-batch %d of batch %d, %s, %lld samples x %d epoch%s\n", nsl_sched_name(o.schedule),
		       o.micro, o.batch, o.cores ? "sharing cores" : "a core each", (long long)o.samples, o.epochs,
		       o.epochs == 1 ? "" : "s");
		if (o.cores)
			printf("(the peers share %d cores)\n", o.cores);
		printf("round %.3f s, epoch %.3f s, %.0f samples/s; utilisation %.2f, bubble %.2f; %llu events\n", res.round_s,
		       res.round_s * o.peers, res.samples_per_s, res.utilisation, res.bubble, (unsigned long long)res.events);
		for (int q = 0; q < o.peers; q++)
			printf("  peer %d: busy %.3f s (%.0f%%)\n", q, res.busy_s[q],
			       res.total_s > 0 ? 100 * res.busy_s[q] / res.total_s : 0);
	}
	if (o.trace) {
		const struct nsl_trace *t[NSL_PLAN_MAX_PEERS];

		for (int q = 0; q < o.peers; q++)
			t[q] = &tracks[q];
		if ((rc = nsl_trace_write(o.trace, t, o.peers, 0)) == 0 && !o.json)
			printf("trace written to %s\n", o.trace);
	}
out:
	for (int q = 0; q < ntracks; q++)
		nsl_trace_free(&tracks[q]);
	free(c.layer);
	nsl_model_free(m);
	return rc < 0 ? nsl_cli_fail("simulate") : 0;
}
