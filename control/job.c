/* SPDX-License-Identifier: BSD-3-Clause */
/* An N-split job's plan (shards, split, micro-batches, slots) and its ending (evaluation, records). */
#include <errno.h>
#include <sched.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nsplit/error.h"
#include "evaluate.h"
#include "peer.h"
#include "cli.h"
#include "cluster.h"
#include "cost.h"
#include "push.h"
#include "plan.h"
#include "profile.h"
#include "progress.h"

/* ---- the job ------------------------------------------------------------------------------ */

static void role_name(const struct job *j, int q, char *out, size_t cap)
{
	if (!j->fast)
		snprintf(out, cap, "stage %d", q + 1);
	else if (q < j->fl.fwd)
		snprintf(out, cap, "forward stage %d", q + 1);
	else
		snprintf(out, cap, "backward stage %d", q - j->fl.fwd + 1);
}

static void dump_schedule(const struct job *j, struct nsl_instr *prog)
{
	printf("schedule %s: %d peers, batch %d in micro-batches of %d; round 1 (every round the %s move one peer on)\n",
	       nsl_sched_name(j->o->schedule), j->npeers, j->o->batch, j->micro, j->fast ? "roles" : "stages");
	for (int s = 0; s < j->npeers; s++) {
		int n = nsl_job_compile(j, s, 0, prog);
		char name[32];

		role_name(j, s, name, sizeof(name));
		printf("peer %d, %s (layers %d-%d), %d micro-batch%s in flight:\n", nsl_job_rank_of(j, s, 0), name,
		       j->first[s], j->last[s] - 1, j->slots[s], j->slots[s] == 1 ? "" : "es");
		nsl_sched_print(stdout, prog, n);
	}
	printf("end of round: each peer sends its %s (parameters%s) to the next peer\n", j->fast ? "role" : "stage",
	       j->fast ? ", and a backward role's optimizer state" : " and optimizer state");
}

/* What every peer must agree on, one `key=value` per line. */
static int config_text(const struct job *j, float base_lr, char *out, size_t cap)
{
	const struct nsl_train_opts *o = j->o;
	int n = snprintf(out, cap, "model=%s\npeers=%d\nsplit=%s\n", j->model->text, j->npeers, j->split_text);

	if (n > 0 && (size_t)n < cap)
		n += snprintf(out + n, cap - (size_t)n,
			      "schedule=%s\nmicro-batch=%d\nbatch=%d\nepochs=%d\nsamples-per-shard=%u\noptimizer=%s\n"
			      "lr=%.9g\nlr-schedule=%d\nwarmup=%" PRId64 "\nlr-step=%.9g\nlr-gamma=%.9g\nmin-lr=%.9g\n"
			      "momentum=%.9g\nweight-decay=%.9g\nseed=%" PRIu64 "\n",
			      nsl_sched_name(o->schedule), j->micro, o->batch, o->epochs, j->per_shard, j->oc.ops->name,
			      base_lr, (int)o->lr_schedule, o->warmup_steps, o->lr_step_epochs, o->lr_gamma, o->min_lr,
			      j->oc.momentum, j->oc.weight_decay, o->seed);
	if (j->fast && n > 0 && (size_t)n < cap)
		n += snprintf(out + n, cap - (size_t)n, "fast-activations=%s\nbuffer=%d\nstaleness=%d\nstash=%s\n",
			      o->fast_all ? "all" : "boundary", j->slots[j->npeers - 1], j->fl.staleness,
			      o->no_stash ? "no" : "yes");
	if (n < 0 || (size_t)n >= cap)
		return nsl_error_set(EINVAL, "the job's configuration is longer than %zu bytes (a shorter --model?)", cap);
	return n;
}

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 14695981039346656037ull;

	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ull;
	return h;
}

void nsl_job_plan_peers(const struct job *j, struct nsl_plan_req *r, double *speed, double *budget)
{
	const struct nsl_cluster *cl = j->cluster;

	for (int q = 0; q < r->npeers; q++) {
		const bool own = cl != NULL && q < cl->npeers && cl->peers[q].mem_limit;

		speed[q] = cl != NULL && q < cl->npeers ? cl->peers[q].speed : 1;
		budget[q] = (double)(own ? cl->peers[q].mem_limit : j->o->mem_limit);
	}
	r->speed = speed;
	r->budget = budget;
	if (cl != NULL) {
		r->topo = nsl_cluster_topology(cl);
		r->fixed_order = true;
	}
}

/*
 * --split auto: the planner's split (plan.h), from --cost FILE, or from this machine's layers
 * measured now with a link as fast as net_ring's in one process (nsplit profile measures it).
 * With --cluster, for the file's peers (nsl_job_plan_peers).
 */
static int auto_split(struct job *j, const struct nsl_train_opts *o)
{
	struct nsl_cost c = { .micro = j->micro, .link_bw = 1e10, .link_lat = 5e-6 };
	double budget[NSL_PLAN_MAX_PEERS], speed[NSL_PLAN_MAX_PEERS];
	struct nsl_plan p;
	int rc;

	if (o->peers > NSL_PLAN_MAX_PEERS)
		return nsl_error_set(EINVAL, "--split auto: at most %d peers", NSL_PLAN_MAX_PEERS);
	if (o->cost) {
		rc = nsl_cost_read(o->cost, j->model, &c);
		c.micro = j->micro;
	} else if (o->cluster) {
		rc = nsl_error_set(EINVAL, "--split auto with --cluster needs --cost FILE (made by nsplit profile): every "
				   "peer must plan from the same costs");
	} else if ((c.layer = calloc((size_t)j->model->nlayers, sizeof(*c.layer))) == NULL) {
		rc = nsl_error_set(ENOMEM, "out of memory");
	} else {
		c.nlayers = j->model->nlayers;
		printf("--split auto: measuring the model's layers on this machine (nsplit profile makes a cost file once)\n");
		fflush(stdout);
		rc = nsl_profile_layers(j->model, j->micro, o->batch, 1, &j->oc, &c, NULL);
	}
	if (rc == 0) {
		/* In one process every peer shares this process's cores. */
		cpu_set_t cpus;
		struct nsl_plan_req r = { .cost = &c, .npeers = o->peers, .budget = budget,
					  .objective = o->schedule == NSL_SCHED_NSPLIT ? NSL_PLAN_EPOCH : NSL_PLAN_BOTTLENECK,
					  .samples_per_shard = j->per_shard };

		if (!o->cluster && sched_getaffinity(0, sizeof(cpus), &cpus) == 0 && CPU_COUNT(&cpus) < o->peers)
			r.cores = CPU_COUNT(&cpus);

		c.slots = nsl_sched_most_in_flight(o->schedule, o->peers, (o->batch + j->micro - 1) / j->micro);
		nsl_job_plan_peers(j, &r, speed, budget);
		if ((rc = nsl_plan_solve(&r, &p)) == 0) {
			memcpy(j->starts, p.starts, sizeof(int) * (size_t)(o->peers + 1));
			printf("--split auto: the planner's split (at");
			for (int s = 1; s < o->peers; s++)
				printf("%s%d", s > 1 ? "," : " ", p.starts[s]);
			printf("%s), predicted %.0f samples/s (compute and links only)\n",
			       j->cluster ? "; the cluster file's peers in their order" : "", p.samples_per_s);
		}
	}
	free(c.layer);
	return rc < 0 ? nsl_error_prefix(rc, "--split auto") : 0;
}

/* Plan the job: shards, split, micro-batches, slots. */
int nsl_job_plan(struct job *j, const struct nsl_train_opts *o, float *base_lr)
{
	struct nsl_instr *prog = malloc(NSL_SCHED_MAX_INSTR * sizeof(*prog));
	struct nsl_batcher probe;
	struct nsl_shard_reader_opts ro = { .depth = 1, .direct = false };
	int rc;

	j->o = o;
	j->npeers = o->peers;
	if (prog == NULL)
		return nsl_error_set(ENOMEM, "out of memory");
	if (o->peers > NSL_DATASET_MAX_PARTS || o->peers > NSL_CHAIN_MAX_STAGES) {
		rc = nsl_error_set(EINVAL, "--peers %d: at most %d in one process", o->peers, NSL_DATASET_MAX_PARTS);
		goto out;
	}
	rc = nsl_dataset_prepare(o->data_dir, o->cache_dir ? o->cache_dir : nsl_default_cache_dir(), o->peers,
				 &j->files);
	if (rc < 0 || (rc = nsl_train_shard_limit(o, o->peers, &j->shard_limit)) < 0)
		goto out;
	if ((rc = nsl_batcher_open(&probe, j->files.train[0], &ro, j->shard_limit)) < 0)
		goto out;
	j->per_shard = probe.limit;
	j->model = nsl_model_parse(o->model, probe.shape);
	nsl_batcher_close(&probe);
	if (j->model == NULL) {
		rc = nsl_error_prefix(EINVAL, "%s", j->files.train[0]);
		goto out;
	}
	if ((rc = nsl_train_setup_optim(o, &j->oc, base_lr)) < 0)
		goto out;
	j->batches = (int)((j->per_shard + (uint32_t)o->batch - 1) / (uint32_t)o->batch);
	j->rounds = o->epochs * o->peers;
	j->micro = o->micro_batch > 0 ? o->micro_batch
		 : o->schedule == NSL_SCHED_NSPLIT ? 1 : (o->batch / (2 * o->peers) > 0 ? o->batch / (2 * o->peers) : 1);
	if (j->micro > o->batch)
		j->micro = o->batch;
	if (o->schedule == NSL_SCHED_FAST) {
		if (o->split && *o->split)
			rc = nsl_error_set(EINVAL, "--schedule fast takes --split-fwd and --split-bwd, one per pool, not --split "
					   "(without them it plans both, as --split auto would)");
		else
			rc = nsl_fast_plan(j, o);
	} else if (o->split_fwd || o->split_bwd || o->pools_fwd || o->staleness || o->fast_all || o->buffer ||
		   o->no_stash) {
		rc = nsl_error_set(EINVAL, "--pools, --split-fwd, --split-bwd, --fast-activations, --buffer, --staleness "
				   "and --no-stash are Fast N-split's: add --schedule fast");
	} else if (o->split && strcmp(o->split, "auto") == 0) {
		rc = auto_split(j, o);
	} else {
		rc = nsl_cli_split(j->model, "split", o->split && *o->split ? o->split : NULL, o->peers, j->starts);
	}
	if (rc < 0)
		goto out;
	if ((o->batch + j->micro - 1) / j->micro > NSL_SCHED_MAX_MICRO) {
		rc = nsl_error_set(EINVAL, "--micro-batch %d: batch %d would make more than %d micro-batches", j->micro,
				   o->batch, NSL_SCHED_MAX_MICRO);
		goto out;
	}
	for (int s = 0; s < o->peers && !j->fast; s++) {
		j->first[s] = j->starts[s];
		j->last[s] = j->starts[s + 1];
	}
	for (int s = 0; s < o->peers; s++) {
		int n = nsl_job_compile(j, s, 0, prog);

		if (n < 0) {
			rc = n;
			goto out;
		}
		if (!j->fast)
			j->slots[s] = nsl_sched_in_flight(prog, n);
		if (j->slots[s] > NSL_STAGE_MAX_CONTEXTS) {
			rc = nsl_error_set(EINVAL, "%s with %d micro-batches keeps %d in flight; at most %d (use larger micro-batches)",
					   nsl_sched_name(o->schedule), (o->batch + j->micro - 1) / j->micro, j->slots[s],
					   NSL_STAGE_MAX_CONTEXTS);
			goto out;
		}
		j->kmax = j->slots[s] > j->kmax ? j->slots[s] : j->kmax;
	}
	nsl_train_lr_schedule(o, *base_lr, (int64_t)j->batches * o->peers, &j->sched);
	if (o->dump_schedule)
		dump_schedule(j, prog);
	for (int s = 1, n = 0; s < o->peers && !j->fast; s++)
		n += snprintf(j->split_text + n, sizeof(j->split_text) - (size_t)n, "%s%d", s > 1 ? "," : "", j->starts[s]);
	if (j->fast && (rc = nsl_fast_split_text(j->fl.fwd, j->fstarts, j->fl.bwd, j->starts, j->split_text, sizeof(j->split_text))) < 0)
		goto out;
	if ((rc = config_text(j, *base_lr, j->config, sizeof(j->config))) < 0)
		goto out;
	j->config_hash = fnv1a(j->config);
	rc = 0;
out:
	free(prog);
	return rc;
}

/* DPDK heap for each peer's stage, slots and swap buffers, and the ports' mbufs. */
size_t nsl_job_dp_mem_mb(const struct job *j, int peers_here)
{
	uint64_t params = 0, widest = 0;
	struct nsl_job_buffers b;
	/* A port's pools take some 24 MiB: two ports a peer in a ring, one to every other peer in a mesh. */
	const size_t ports = j->fast && j->npeers - 1 > 2 ? (size_t)j->npeers - 1 : 2;

	for (int i = 0; i < j->model->nlayers; i++) {
		params += (uint64_t)nsl_model_layer_params(j->model, i);
		if ((uint64_t)nsl_shape_size(j->model->shapes[i + 1]) > widest)
			widest = (uint64_t)nsl_shape_size(j->model->shapes[i + 1]);
	}
	nsl_job_buffers(j, &b);
	/* per peer: the biggest stage can be the whole model (params, grads, state, two swap copies,
	 * stashed versions), each layer's outputs per slot, and the buffers */
	uint64_t per_peer = params * 4 * (2 + 2 * 3 + (j->fast ? (uint64_t)j->fl.staleness + 2 : 0)) +
			    (uint64_t)j->kmax * (uint64_t)j->micro * widest * 4 * (uint64_t)(j->model->nlayers + 4) +
			    b.total;
	return (size_t)((per_peer * (uint64_t)peers_here) >> 20) + 128 + 32 * ports * (size_t)peers_here;
}

void nsl_job_stage_config(const struct job *j, int role, struct nsl_stage_config *cfg)
{
	const bool fwd = nsl_job_is_forward_role(j, role);

	/* Forward roles keep every tensor (no fusing) so any backward split can be shipped its own. */
	*cfg = (struct nsl_stage_config){ .model = j->model, .first = j->first[role], .last = j->last[role],
					  .max_batch = j->micro, .contexts = j->slots[role], .seed = j->o->seed,
					  .optim = *nsl_job_optim(j, role), .defer_rows = fwd ? 0 : j->o->batch,
					  .no_fuse = fwd };
}

void nsl_job_buffers(const struct job *j, struct nsl_job_buffers *b)
{
	int64_t widest_in = 1, widest_out = 1;
	const uint64_t micro = (uint64_t)j->micro;

	memset(b, 0, sizeof(*b));
	for (int s = 0; s < j->npeers; s++) {
		int64_t in = nsl_shape_size(j->model->shapes[j->first[s]]);
		int64_t out = nsl_shape_size(j->model->shapes[j->last[s]]);

		widest_in = in > widest_in ? in : widest_in;
		widest_out = out > widest_out ? out : widest_out;
		if (nsl_job_swap_bytes(j, s) > b->swap_cap)
			b->swap_cap = nsl_job_swap_bytes(j, s);
	}
	b->rx_cap[RX_ACT] = micro * (uint64_t)widest_in * sizeof(float);
	b->rx_cap[RX_LABELS] = micro * sizeof(int32_t);
	b->rx_cap[RX_GRAD] = micro * (uint64_t)widest_out * sizeof(float);
	for (int q = RX_ACT; q <= RX_GRAD; q++)
		b->rx_slots[q] = j->kmax;
	for (int f = 0; j->fast && f < j->fl.fwd; f++)
		for (int q = 0; q < j->fl.bwd; q++) {
			uint64_t bytes = micro * (uint64_t)j->ship[q].row[f] * sizeof(float);

			b->rx_cap[RX_SAVED + f] = bytes > b->rx_cap[RX_SAVED + f] ? bytes : b->rx_cap[RX_SAVED + f];
			b->saved_cap = bytes > b->saved_cap ? bytes : b->saved_cap;
			b->rx_slots[RX_SAVED + f] = j->kmax;
		}
	for (int q = 0; j->fast && q < j->fl.bwd; q++)
		for (int f = 0; f < j->fl.fwd; f++) {
			int lo = j->starts[q] > j->fstarts[f] ? j->starts[q] : j->fstarts[f];
			int hi = j->starts[q + 1] < j->fstarts[f + 1] ? j->starts[q + 1] : j->fstarts[f + 1];
			uint64_t bytes = lo < hi ? nsl_push_cap(j->model, lo, hi) : 0;

			if (bytes == 0)
				continue;
			b->rx_cap[RX_PARAMS + q] = bytes > b->rx_cap[RX_PARAMS + q] ? bytes : b->rx_cap[RX_PARAMS + q];
			b->params_cap = bytes > b->params_cap ? bytes : b->params_cap;
			b->rx_slots[RX_PARAMS + q] = j->fl.staleness + 1;
		}
	b->batch_x = (uint64_t)j->o->batch * (uint64_t)nsl_shape_size(j->model->input) * sizeof(float);
	b->batch_labels = (uint64_t)j->o->batch * sizeof(int32_t);
	b->dlogits = (uint64_t)j->kmax * micro * (uint64_t)j->model->classes * sizeof(float);
	for (int q = 0; q < RX_KINDS; q++)
		b->total += (uint64_t)b->rx_slots[q] * b->rx_cap[q];
	if (j->fast)
		b->total += (uint64_t)j->fl.bwd * FAST_TX_SLOTS * b->saved_cap + (uint64_t)j->fl.fwd * b->params_cap;
	b->total += 2 * b->swap_cap + b->batch_x + b->batch_labels + b->dlogits;
}

const char *nsl_job_bytes(uint64_t b, char *buf, size_t cap)
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)b;
	int u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	snprintf(buf, cap, u ? "%.1f %s" : "%.0f %s", v, unit[u]);
	return buf;
}

void nsl_job_print_peaks(const struct peer *peers, int n)
{
	char t[2][24];

	printf("peak memory (largest stage held, as made, and buffers):");
	for (int i = 0; i < n; i++) {
		printf("%s peer %d %s", i ? "," : "", peers[i].rank, nsl_job_bytes(peers[i].peak, t[0], 24));
		if (peers[i].budget)
			printf(" of %s", nsl_job_bytes(peers[i].budget, t[1], 24));
	}
	printf("\n");
}

int nsl_job_check_memory(struct job *j, const uint64_t *budgets, const char *source)
{
	struct nsl_job_buffers b;
	char t[8][24];

	nsl_job_buffers(j, &b);
	for (int s = 0; s < j->npeers; s++) {
		struct nsl_stage_config cfg;
		struct nsl_stage_memory m;
		int rc;
		uint64_t need;
		char name[32];

		nsl_job_stage_config(j, s, &cfg);
		if ((rc = nsl_stage_memory_plan(&cfg, j->micro, &m)) < 0)
			return rc;
		/* A backward role that stashes keeps S + 1 versions of its weights: S beside its own. */
		if (j->fast && s >= j->fl.fwd && j->fl.staleness > 0 && !j->o->no_stash)
			m.params += m.params * (uint64_t)j->fl.staleness;
		m.total = m.params + m.grads + m.optim_state + m.activations + m.scratch;
		need = m.total + b.total;
		role_name(j, s, name, sizeof(name));
		j->stage_plan[s] = m.total;
		for (int i = 0; i < j->npeers; i++) {
			bool visits = false;

			/* Under rotation every peer holds every stage once per epoch; check, not assume. */
			for (int r = 0; r < j->rounds && !visits; r++)
				visits = nsl_job_stage_of(j, i, r) == s;
			if (!visits || budgets[i] == 0 || need <= budgets[i])
				continue;
			return nsl_error_set(ENOMEM,
					     "peer %d cannot hold %s (layers %d-%d): it needs %s (parameters %s, "
					     "gradients %s, optimizer state %s, activations %s, scratch %s, buffers %s) "
					     "and its budget is %s (%s); give it more, or cut the model into smaller "
					     "stages (%s)",
					     i, name, j->first[s], j->last[s] - 1, nsl_job_bytes(need, t[0], 24),
					     nsl_job_bytes(m.params, t[1], 24), nsl_job_bytes(m.grads, t[2], 24),
					     nsl_job_bytes(m.optim_state, t[3], 24), nsl_job_bytes(m.activations, t[4], 24),
					     nsl_job_bytes(m.scratch, t[5], 24), nsl_job_bytes(b.total, t[6], 24),
					     nsl_job_bytes(budgets[i], t[7], 24), source,
					     j->fast ? "--pools, --split-fwd, --split-bwd" : "--split");
		}
	}
	return 0;
}

void nsl_job_manifest(const struct job *j, int round, char *out, size_t cap)
{
	int n = snprintf(out, cap,
			 "{\n  \"format\": \"nsplit-checkpoint 1\",\n  \"model\": \"%s\",\n  \"input\": \"%dx%dx%d\",\n"
			 "  \"split\": \"%s\",\n  \"peers\": %d,\n  \"round\": %d,\n  \"rounds_per_epoch\": %d,\n"
			 "  \"epoch\": %d,\n  \"next_round\": %d,\n  \"steps\": %" PRId64 ",\n  \"seed\": %" PRIu64 ",\n"
			 "  \"config_hash\": \"%016" PRIx64 "\",\n  \"rng\": \"shuffles from (seed, epoch), dropout from "
			 "(seed, step): nothing else to keep\",\n  \"files\": [",
			 j->model->text, j->model->input.c, j->model->input.h, j->model->input.w, j->split_text, j->npeers,
			 round, j->npeers, round / j->npeers, round, (int64_t)round * j->batches, j->o->seed, j->config_hash);

	for (int s = 0; s < (j->fast ? j->fl.bwd : j->npeers) && n > 0 && (size_t)n < cap; s++)
		n += snprintf(out + n, cap - (size_t)n, "%s\"stage-%d.safetensors\"", s ? ", " : "", s);
	if (n > 0 && (size_t)n < cap)
		snprintf(out + n, cap - (size_t)n, "]\n}\n");
}

int nsl_job_records_open(struct job *j, bool metrics)
{
	j->round_stats = calloc((size_t)j->rounds, sizeof(*j->round_stats));
	j->round_ready = calloc((size_t)j->rounds, sizeof(*j->round_ready));
	if (j->round_stats == NULL || j->round_ready == NULL)
		return nsl_error_set(ENOMEM, "out of memory for %d rounds' records", j->rounds);
	if (metrics && j->o->metrics && (j->metrics = fopen(j->o->metrics, "w")) == NULL)
		return nsl_error_set(errno, "--metrics %s: %s", j->o->metrics, strerror(errno));
	return 0;
}

static void metrics_line(struct job *j, const char *event, int epoch, int round, const struct nsl_round_stat *s,
			 double seconds)
{
	const int64_t step = (int64_t)(round + 1) * j->batches;

	fprintf(j->metrics, "{\"event\":\"%s\",\"epoch\":%d,", event, epoch);
	if (round >= 0 && strcmp(event, "round") == 0)
		fprintf(j->metrics, "\"round\":%d,", round + 1);
	fprintf(j->metrics, "\"step\":%" PRId64 ",\"loss\":%.6f,\"train_acc\":%.6f,\"test_loss\":null,"
		"\"test_acc\":null,\"lr\":%.8g,\"samples_per_s\":%.2f,\"wall_s\":%.3f}\n",
		step, s->seen ? s->loss_sum / (double)s->seen : 0, s->seen ? (double)s->correct / (double)s->seen : 0,
		(double)nsl_lr_at(&j->sched, step - 1), seconds > 0 ? (double)s->seen / seconds : 0, s->t_end - j->t_train);
	fflush(j->metrics);
}

void nsl_job_metrics_rounds(struct job *j, int *next, bool all_complete)
{
	for (; *next < j->rounds && (all_complete || atomic_load(&j->round_ready[*next])); (*next)++) {
		const int r = *next, n = j->npeers;
		const struct nsl_round_stat *s = &j->round_stats[r];
		double before = r > j->first_round ? j->round_stats[r - 1].t_end : j->t_train;

		if (j->metrics == NULL || r < j->first_round || s->seen == 0)
			continue;
		metrics_line(j, "round", r / n + 1, r, s, s->t_end - before);
		if ((r + 1) % n == 0 && r + 1 - n >= j->first_round) {
			struct nsl_round_stat e = { .t_end = s->t_end };
			double start = r + 1 - n > j->first_round ? j->round_stats[r - n].t_end : j->t_train;

			for (int k = r + 1 - n; k <= r; k++) {
				e.loss_sum += j->round_stats[k].loss_sum;
				e.correct += j->round_stats[k].correct;
				e.seen += j->round_stats[k].seen;
			}
			metrics_line(j, "epoch", r / n + 1, r, &e, e.t_end - start);
		}
	}
}

void nsl_job_watch_start(struct job *j, struct nsl_job_watch *w)
{
	memset(w, 0, sizeof(*w));
	w->next_round = j->first_round;
	w->done0 = atomic_load(&j->samples);
	j->t_train = nsl_now();
	nsl_progress_init(&w->prog, j->o->progress, (int64_t)j->per_shard * j->rounds);
	w->prog.rounds = j->rounds;
}

void nsl_job_watch_tick(struct job *j, struct nsl_job_watch *w)
{
	const int64_t done = atomic_load(&j->samples);
	const double el = nsl_now() - j->t_train;
	const int64_t per_round = (int64_t)j->per_shard;

	nsl_job_metrics_rounds(j, &w->next_round, false);
	if (w->next_round > j->first_round && j->round_stats[w->next_round - 1].seen)
		w->loss = j->round_stats[w->next_round - 1].loss_sum / (double)j->round_stats[w->next_round - 1].seen;
	w->prog.round = (int)(done / per_round) + 1 > j->rounds ? j->rounds : (int)(done / per_round) + 1;
	nsl_progress_update(&w->prog, (int)(done / (per_round * j->npeers)) + 1 > j->o->epochs
				      ? j->o->epochs : (int)(done / (per_round * j->npeers)) + 1,
			    j->o->epochs, done, el > 0 ? (double)(done - w->done0) / el : 0, w->loss);
}

void nsl_job_watch_end(struct job *j, struct nsl_job_watch *w)
{
	nsl_progress_clear(&w->prog);
	nsl_job_metrics_rounds(j, &w->next_round, false);
}

void nsl_job_end(struct job *j)
{
	free(j->round_stats);
	free(j->round_ready);
	j->round_stats = NULL;
	j->round_ready = NULL;
	if (j->metrics != NULL)
		fclose(j->metrics);
	j->metrics = NULL;
	if (j->resume != NULL) {
		nsl_ckpt_close(j->resume);
		free(j->resume);
		j->resume = NULL;
	}
	nsl_model_free(j->model);
	j->model = NULL;
	free(j->ship);
	j->ship = NULL;
}

int nsl_job_resume(struct job *j)
{
	struct nsl_ckpt *c = calloc(1, sizeof(*c));
	int rc = c == NULL ? nsl_error_set(ENOMEM, "out of memory") : nsl_ckpt_open_latest(j->o->resume, j->model, c);
	char hash[20];

	if (rc < 0) {
		free(c);
		return rc;
	}
	j->resume = c;
	snprintf(hash, sizeof(hash), "%016" PRIx64, j->config_hash);
	if (c->peers == j->npeers) {
		j->first_round = (int)c->round;
	} else {
		/* Another peer count cuts the data into other shards: start at the epoch's beginning. */
		j->first_round = (int)(c->round / c->peers) * j->npeers;
		if (c->round % c->peers)
			printf("note: %s was taken %" PRId64 " rounds into an epoch of %d peers; %d peers start that epoch "
			       "again\n", c->path, c->round % c->peers, c->peers, j->npeers);
	}
	if (j->first_round > j->rounds)
		j->first_round = j->rounds;
	atomic_store(&j->samples, (int64_t)j->first_round * j->per_shard);
	printf("resuming from %s: %" PRId64 " rounds of %d peers (split %s) done; this job starts at round %d of %d%s\n",
	       c->path, c->round, c->peers, c->split && *c->split ? c->split : "-", j->first_round + 1, j->rounds,
	       c->config && strcmp(c->config, hash) != 0 ? " (other training options than the checkpoint's)" : "");
	return 0;
}

int nsl_job_finish(struct job *j, struct nsl_chain *c, const struct nsl_job_totals *t, double train_time,
		   double t_start)
{
	const struct nsl_train_opts *o = j->o;
	struct nsl_eval_result ev = { 0 };
	struct nsl_batcher test;
	struct nsl_shard_reader_opts ro = { .depth = o->read_ahead, .direct = o->direct };
	double loss = t->loss_sum;
	int64_t correct = t->correct, seen = t->seen;
	const int64_t step = (int64_t)j->rounds * j->batches;
	const double rate = (double)j->per_shard * (j->rounds - j->first_round) / train_time;
	float *x = NULL;
	int32_t *labels = NULL;
	bool have_eval = false;
	FILE *mf = NULL;
	int rc = 0;

	/* As the reference reports: the training loss and accuracy of the last epoch. */
	if (j->round_stats != NULL && j->rounds - j->first_round >= j->npeers) {
		loss = 0;
		correct = seen = 0;
		for (int r = j->rounds - j->npeers; r < j->rounds; r++) {
			loss += j->round_stats[r].loss_sum;
			correct += j->round_stats[r].correct;
			seen += j->round_stats[r].seen;
		}
	}
	if (o->eval) {
		x = malloc((size_t)o->batch * (size_t)nsl_shape_size(j->model->input) * sizeof(float));
		labels = malloc((size_t)o->batch * sizeof(int32_t));
		if (x == NULL || labels == NULL) {
			rc = nsl_error_set(ENOMEM, "out of memory for evaluation");
			goto out;
		}
		if ((rc = nsl_batcher_open(&test, j->files.test, &ro, 0)) < 0)
			goto out;
		rc = nsl_shard_check_shape(nsl_shard_reader_info(test.r), j->model->input, j->files.test);
		if (rc == 0)
			rc = nsl_evaluate(c, &test, o->batch, x, labels, NULL, 0, &ev);
		nsl_batcher_close(&test);
		if (rc < 0)
			goto out;
		have_eval = true;
	}
	printf("epoch %d/%d  loss %.4f  train_acc %.4f", o->epochs, o->epochs, seen ? loss / (double)seen : 0,
	       seen ? (double)correct / (double)seen : 0);
	if (have_eval)
		printf("  test_loss %.4f  test_acc %.4f", ev.loss, ev.accuracy);
	printf("  %.0f samples/s  %.1f s\n", rate, nsl_now() - t_start);
	if (o->metrics) {
		if ((mf = j->metrics) == NULL && (mf = j->metrics = fopen(o->metrics, "w")) == NULL) {
			rc = nsl_error_set(errno, "--metrics %s: %s", o->metrics, strerror(errno));
			goto out;
		}
		nsl_train_metrics_line(mf, "final", o->epochs, step, seen ? loss / (double)seen : 0,
				       seen ? (double)correct / (double)seen : 0, &ev, have_eval,
				       nsl_lr_at(&j->sched, step - 1), rate, nsl_now() - t_start);
	}
	if (o->save_weights) {
		if ((rc = nsl_chain_save(c, o->save_weights)) < 0)
			goto out;
		printf("weights saved to %s\n", o->save_weights);
	}
	if (have_eval)
		printf("test accuracy: %.4f (%" PRId64 "/%" PRId64 ")\n", ev.accuracy, ev.correct, ev.total);
	printf("training: %.0f samples/s over %.1f s\n", rate, train_time);
out:
	free(x);
	free(labels);
	return rc;
}

