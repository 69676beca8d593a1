/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The optimal split: where to cut a model into N stages, and in which order the peers take them
 * in the rotation, for a cost model of its layers and of the links (measured by `nsplit
 * profile`), the peers' relative speeds and memory budgets.
 *
 * Costs of a plan (starts[], the split; order[], the rotation: in round r stage s runs on peer
 * order[(r + s) mod N]), for S samples per shard:
 *   compute of stage s on peer p, per sample    C_s / speed_p, C_s = sum of its layers' fwd + bwd
 *   transfer across the cut after stage s       X_s = 2 (latency / micro + bytes_s / bandwidth)
 *                                                (the activation forward, its gradient back)
 *   memory of stage s                           M_s = sum of its layers' fixed bytes (parameters,
 *                                                gradients, optimizer state) + micro x slots x
 *                                                their activation bytes per sample
 * Objectives, summed over the N rounds of an epoch:
 *   NSL_PLAN_EPOCH (the paper's N-split: one sample in the pipeline at a time)
 *       round time = S (sum_s C_s / speed + sum_s X_s)
 *   NSL_PLAN_BOTTLENECK (gpipe, 1f1b: the pipeline runs at its slowest part)
 *       round time = S max(max_s C_s / speed, max_s X_s, (sum_s C_s / speed + sum_s X_s) / cores)
 *       where the last term counts only when the peers share `cores` cores (one host); with
 *       hosts given, each host's peers' work and cuts over its cores, and each cut over the link
 *       between the two peers holding its stages that round
 *   NSL_PLAN_FAST (Fast N-split: F forward roles, then B backward roles, F + B = N)
 *       the bottleneck objective over the roles, a forward role of layers [a, b) costing the
 *       forward work of its layers, a backward role their backward work (plus the forward again
 *       when it recomputes: --fast-activations boundary); each cut inside a pool carries its
 *       tensor one way (X_s / 2), and the pools' junction the forward pool's output one way,
 *       standing for what the backward pool is shipped; the pools' sizes are chosen too
 *       unless given
 * Constraint: under rotation every stage visits every peer, so M_s must fit the smallest budget.
 */
#ifndef NSL_PLAN_H
#define NSL_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NSL_PLAN_MAX_PEERS 64
#define NSL_COST_MAX_ROWS 20
#define NSL_COPY_SMALL (256u << 10)   /* the message sizes copy_bw and copy_large_bw are measured at */
#define NSL_COPY_LARGE (32u << 20)

struct nsl_cost_layer {
	double fwd_s, bwd_s;          /* seconds per sample */
	double fixed_bytes;           /* parameters, gradients, optimizer state */
	double act_bytes;             /* its output, per sample (what crosses a cut after it) */
	double step_s;                /* an optimizer step, per batch (0: not measured) */
	double stash_step_s;          /* the same into a weight stash's oldest version (0: step_s) */
	double make_s;                /* making it on a peer a stage arrives at (0: not measured) */
	/*
	 * Seconds per call at nsl_cost.rows[k] rows: forward, and backward without the weight
	 * gradients, which wgrad_s takes for a whole batch of nsl_cost.wgrad_rows rows. A call on
	 * few rows is not a fraction of a call on many: it still streams all the layer's weights.
	 * Used by the simulator when the cost file has them (nrows > 0).
	 */
	double fwd_at[NSL_COST_MAX_ROWS], bwd_at[NSL_COST_MAX_ROWS];
	double wgrad_s;
};

struct nsl_cost {
	int nlayers;
	struct nsl_cost_layer *layer;
	double link_bw;               /* bytes/s between two peers */
	double link_lat;              /* seconds per message */
	double shared_lat;            /* seconds per message when the peers share cores and nap while
				         they wait (0: not measured; link_lat) */
	double busy_factor;           /* compute slows by this much with every core busy (0: 1) */
	double wake_lat;              /* seconds per message to a peer napping on its bell, its core free
				         (0: not measured; link_lat) */
	double copy_bw;               /* bytes/s a core checks and copies a message out of its frames,
				         as each end of a link pays on its own core (0: not measured) */
	double copy_large_bw;         /* the same for messages larger than the caches (0: copy_bw) */
	double send_bw, recv_bw;      /* bytes/s of messages the sending, the receiving end's core pays
				         for: framing, CRC, copies (0: not measured; copy_bw) */
	double send_large_bw, recv_large_bw;   /* the same for messages larger than the caches */
	int micro;                    /* rows per message */
	int nrows;                    /* the rows fwd_at and bwd_at were timed at, ascending */
	int rows[NSL_COST_MAX_ROWS];
	int wgrad_rows;
	int slots;                    /* micro-batches a stage keeps in flight (memory) */
};

/*
 * Peers that are not this machine (a cluster file's), for the planner and the simulator. All
 * NULL: one host (of the request's `cores`, or a core each) and every link the cost file's.
 */
struct nsl_topology {
	const int *host;              /* each peer's host, 0 .. */
	const int *host_cores;        /* each host's cores (0: a core per peer) */
	const double *link_bw;        /* npeers x npeers, bytes/s (0: the cost file's) */
	const double *link_lat;       /* npeers x npeers, seconds (0: the cost file's) */
};

static inline bool nsl_topo_uniform(const struct nsl_topology *t)
{
	return t->host == NULL && t->link_bw == NULL && t->link_lat == NULL;
}

static inline int nsl_topo_host(const struct nsl_topology *t, int peer)
{
	return t->host ? t->host[peer] : 0;
}

/* The link from peer a to peer b of n: its own bandwidth and latency, or the cost file's. */
static inline double nsl_topo_bw(const struct nsl_topology *t, const struct nsl_cost *c, int n, int a, int b)
{
	return t->link_bw && t->link_bw[a * n + b] > 0 ? t->link_bw[a * n + b] : c->link_bw;
}

static inline double nsl_topo_lat(const struct nsl_topology *t, const struct nsl_cost *c, int n, int a, int b)
{
	return t->link_lat && t->link_lat[a * n + b] > 0 ? t->link_lat[a * n + b] : c->link_lat;
}

enum nsl_plan_objective {
	NSL_PLAN_EPOCH,
	NSL_PLAN_BOTTLENECK,
	NSL_PLAN_FAST,
};

struct nsl_plan_req {
	const struct nsl_cost *cost;
	int npeers;
	const double *speed;          /* per peer, relative (NULL: all 1) */
	const double *budget;         /* per peer, bytes (NULL or 0: unlimited) */
	enum nsl_plan_objective objective;
	double samples_per_shard;
	int cores;                    /* > 0: every peer on one host of this many cores (0: a core each) */
	struct nsl_topology topo;     /* hosts and links of their own (all NULL: none) */
	int fwd;                      /* NSL_PLAN_FAST: forward roles (0: the best pool sizes) */
	int recompute;                /* NSL_PLAN_FAST: backward roles run their forward again */
	bool fixed_order;             /* the peers' own order (in round r stage s on peer (r + s) mod N,
					 as nsplit train places them): only splits are searched */
};

struct nsl_plan {
	int starts[NSL_PLAN_MAX_PEERS + 1];   /* NSL_PLAN_FAST: the forward pool's split, fwd + 1 */
	int fwd, bwd;                          /* NSL_PLAN_FAST: the pools */
	int bstarts[NSL_PLAN_MAX_PEERS + 1];  /* NSL_PLAN_FAST: the backward pool's split */
	int order[NSL_PLAN_MAX_PEERS];
	double epoch_s;               /* the objective: seconds per epoch */
	double stage_compute_s[NSL_PLAN_MAX_PEERS];   /* per sample, at speed 1 */
	double stage_bytes[NSL_PLAN_MAX_PEERS];
	double samples_per_s;
};

/* The objective of a given split and order; INFINITY when a stage does not fit a budget.
 * NSL_PLAN_FAST: starts has r->fwd + 1 entries, the forward split, then bstarts the backward's. */
double nsl_plan_evaluate(const struct nsl_plan_req *r, const int *starts, const int *order);
double nsl_plan_evaluate_fast(const struct nsl_plan_req *r, const int *starts, const int *bstarts, const int *order);

/*
 * The best plan. 0, or -ENOSPC (no split fits: the message names the smallest budget that would)
 * or -EINVAL with a message. Exact (ties allowed): splits by dynamic programming when the order
 * cannot matter and nothing is shared (equal speeds and a core each, or the N-split objective),
 * else every order with the first peer fixed and, for each, every split while those number at
 * most a few million; past that, the better of the split that balances the speed-normalised work
 * and the one that moves the fewest bytes, each with its best order.
 */
int nsl_plan_solve(const struct nsl_plan_req *r, struct nsl_plan *out);

/* The smallest per-peer budget under which some split into n stages fits. */
double nsl_plan_min_budget(const struct nsl_cost *c, int n);

#endif
