/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The simulator: the very batch programs the runtime executes (schedule.h), run as discrete
 * events with durations from a cost model (plan.h) instead of on stages and links.
 *   - A peer runs one instruction at a time. fwd and bwd take their stage's per-sample costs
 *     times the micro-batch's rows over the peer's speed (a backward's measured cost is split
 *     evenly between bwd, the input gradient, and wgrad, the weights' at the end of the batch);
 *     load and loss take no time.
 *   - Peers of one process outnumbering its C cores share them as the runtime's coop mode
 *     does (coop.h): a peer with work holds a core until it waits, and one with work but no
 *     core waits for one. Peers on a cluster's host share its cores: while k of them compute
 *     on C < k cores each runs at C/k.
 *   - A send takes no time of its sender; the message leaves when the link from sender to
 *     receiver is free (one queue per direction), takes bytes / bandwidth on it and arrives a
 *     latency later; a receive waits for it, messages of a pair arriving in order. A cluster's
 *     peers outnumbering their host's cores nap while they wait, and see it at the end of a
 *     nap.
 *   - An optimizer step takes its layers' measured step time; a swap costs the sender a pass
 *     over its stage (packing) and the making of the incoming one, the receiver a pass
 *     unpacking it.
 *   - After each round every peer sends its stage (parameters and optimizer state) to the next
 *     and starts the next round once the previous peer's has come.
 * In round r stage s runs on peer (r + s) mod N, as the runtime places it.
 * Fast N-split (schedule fast): roles in place of stages, forward ones costing their layers'
 * forward, backward ones their backward (and forward again, recomputing); shipped tensors and
 * parameter pushes are messages like any other, a push also costing its sender and receiver a
 * pass over the parameters at the link's bandwidth (packing and loading); a forward role waits
 * while the backward role it ships to holds `buffer` micro-batches not yet taken.
 */
#ifndef NSL_SIMULATE_H
#define NSL_SIMULATE_H

#include <stdbool.h>
#include <stdint.h>

#include "plan.h"
#include "schedule.h"
#include "trace.h"

struct nsl_sim_conf {
	const struct nsl_cost *cost;
	int npeers;
	const int *starts;            /* npeers + 1 layer numbers */
	const double *speed;          /* per peer (NULL: 1) */
	int cores;                    /* > 0: the peers share this many cores */
	struct nsl_topology topo;     /* hosts and links of their own (plan.h; all NULL: none) */
	enum nsl_sched_kind schedule;
	int batch, micro;
	int64_t per_shard;            /* samples each round trains on */
	int rounds;
	struct nsl_trace *traces;     /* npeers tracks to fill (NULL: none) */
	/* Fast N-split: starts is the backward pool's split */
	const struct nsl_model *model;    /* the tensors shipped (needed for fast) */
	int fwd;                      /* forward roles */
	const int *fstarts;           /* fwd + 1 layer numbers */
	bool fast_all;                /* every tensor shipped, no recompute */
	int staleness, buffer;
	double param_share;           /* of a layer's fixed bytes, the parameters (0: 1/3, sgd momentum) */
};

struct nsl_sim_result {
	double total_s;               /* all rounds */
	double round_s;               /* mean */
	double samples_per_s;
	double busy_s[NSL_PLAN_MAX_PEERS];   /* computing, per peer */
	double utilisation;           /* busy over peers x total */
	double bubble;                /* 1 - utilisation (a core each) or 1 - busy / (cores x total) */
	uint64_t events;
};

/* 0, or a negative errno with a message (bad configuration, a schedule that deadlocks). */
int nsl_simulate(const struct nsl_sim_conf *c, struct nsl_sim_result *out);

/* What a Fast N-split epoch is simulated with, besides a plan. */
struct nsl_sim_fast {
	const struct nsl_model *model;
	int batch, micro;
	int64_t per_shard;
	bool fast_all;
	int staleness, buffer;
	double param_share;           /* as in nsl_sim_conf */
};

/*
 * A Fast N-split plan (r->objective NSL_PLAN_FAST): the planner's; and when the peers share one
 * host's r->cores cores and the pools are not given (r->fwd 0), the planner's best plan of each
 * pool size simulated for an epoch, the fastest taken. There the planner's objective (all the
 * work over the cores, or the slowest role) ties many pool sizes, and how the cores are shared
 * decides. 0, or an errno with a message (the planner's refusal, a simulation that failed).
 */
int nsl_sim_fast_plan(const struct nsl_plan_req *r, const struct nsl_sim_fast *f, struct nsl_plan *out);

#endif
