/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Schedules as data. A schedule compiles, for each stage of a pipeline of N stages, into the list
 * of instructions that stage runs for one batch of M micro-batches. The runtime executes the
 * lists; the tests execute them symbolically (every receive finds its send, nothing deadlocks);
 * the dump and the trace print them. So all of them agree by construction.
 *
 *   nsplit  the paper's N-split: one micro-batch in flight in the whole pipeline (forward to the
 *           last stage, loss, backward to the first, then the next micro-batch); with micro-batch
 *           size 1 that is one sample at a time, as in the paper
 *   gpipe   every micro-batch's forward, then every backward (all of them in flight)
 *   1f1b    N - s - 1 forwards to fill the pipeline, then one forward and one backward in turn,
 *           then the remaining backwards: at most N - s micro-batches in flight on stage s
 *
 *   fast    Fast N-split: a forward pool of F roles runs only forwards, with copies of the
 *           parameters, and ships what backward needs to a backward pool of B roles, which
 *           recomputes or restores those forwards, runs the backwards, holds the master
 *           parameters and optimizer state, steps, and pushes the new parameters to the forward
 *           roles holding those layers (nsl_sched_compile_fast; roles take the place of stages)
 *
 * All give the gradient of the whole batch (micro-batch gradients add up before the step).
 * Between rounds, outside these lists, every stage (role) moves one peer on (swap out, swap in).
 */
#ifndef NSL_SCHEDULE_H
#define NSL_SCHEDULE_H

#include <stdint.h>
#include <stdio.h>

enum nsl_sched_kind {
	NSL_SCHED_NSPLIT,
	NSL_SCHED_GPIPE,
	NSL_SCHED_1F1B,
	NSL_SCHED_FAST,
};

enum nsl_op {
	NSL_OP_LOAD,          /* stage 0: read the batch from the owner's shard */
	NSL_OP_RECV_ACT,      /* the previous stage's output for micro-batch m */
	NSL_OP_RECV_LABELS,   /* last stage: labels of micro-batch m from stage 0 */
	NSL_OP_FWD,
	NSL_OP_SEND_ACT,      /* to the next stage */
	NSL_OP_SEND_LABELS,   /* stage 0, to the last stage */
	NSL_OP_LOSS,          /* last stage: softmax cross-entropy, the gradient of the logits */
	NSL_OP_RECV_GRAD,     /* the next stage's input gradient */
	NSL_OP_BWD,
	NSL_OP_SEND_GRAD,     /* to the previous stage */
	NSL_OP_WGRAD,         /* the weight gradients of every micro-batch, as one batch-sized op */
	NSL_OP_STEP,          /* optimizer step with the batch's accumulated gradients */
	/* Fast N-split */
	NSL_OP_SEND_SAVED,    /* forward role: what backward role `peer` needs of micro-batch m */
	NSL_OP_RECV_SAVED,    /* backward role: that, from forward role `peer` */
	NSL_OP_REFWD,         /* backward role: the forward again (or restored) from what was saved */
	NSL_OP_SEND_PARAMS,   /* backward role: the new parameters of the layers forward role `peer` runs */
	NSL_OP_RECV_PARAMS,   /* forward role: those, pushed after batch `micro` of the round */
	NSL_OP_COUNT,
};

struct nsl_instr {
	uint8_t op;           /* enum nsl_op */
	uint8_t peer;         /* the stage (role) a message goes to or comes from; NSL_NO_PEER */
	uint16_t micro;       /* micro-batch (0 for LOAD and STEP; the batch for parameter pushes) */
};

#define NSL_NO_PEER 0xff

/* Instructions of one stage's batch program, at most (for NSL_SCHED_MAX_MICRO micro-batches). */
#define NSL_SCHED_MAX_MICRO 4096
#define NSL_SCHED_MAX_INSTR (3 + 8 * NSL_SCHED_MAX_MICRO)

/* Fast N-split's roles: forward roles 0..fwd-1 (forward stages), backward roles fwd..fwd+bwd-1. */
#define NSL_FAST_MAX_ROLES 64
struct nsl_fast_layout {
	int fwd, bwd;                          /* the pools, F + B = N */
	int staleness;                         /* forward of batch b runs on the weights after batch b - S - 1 */
	uint64_t saved_to[NSL_FAST_MAX_ROLES]; /* forward role f ships backward role b (bit b) tensors */
	uint64_t params_to[NSL_FAST_MAX_ROLES];/* backward role b pushes forward role f (bit f) layers */
};

/*
 * Role `role`'s program for batch `batch` of `batches` in a round, nmicro micro-batches. A
 * forward role takes the parameter pushes of batch b - S - 1 before batch b, and the last batch
 * takes the remaining ones after it, so every round ends with the pools in step. Returns the
 * instruction count or a negative errno with a message.
 */
int nsl_sched_compile_fast(const struct nsl_fast_layout *l, int role, int batch, int batches, int nmicro,
			   struct nsl_instr *out, int cap);

/*
 * The rotation and the batching every runner and the simulator share: in round r stage s runs on
 * peer (r + s) mod N; a shard of S samples makes ceil(S / batch) batches, the last one short;
 * micro-batch m of a batch of `rows` takes the rows from m x micro on.
 */
static inline int nsl_sched_stage_of(int npeers, int rank, int round)
{
	return ((rank - round) % npeers + npeers) % npeers;
}

static inline int nsl_sched_batch_rows(int64_t per_shard, int batch, int batches, int b)
{
	int rem = (int)(per_shard % batch);

	return b == batches - 1 && rem ? rem : batch;
}

static inline int nsl_sched_micro_rows(int rows, int micro, int m)
{
	int left = rows - m * micro;

	return left < micro ? left : micro;
}

/* "nsplit", "gpipe", "1f1b" or "fast". 0, or -EINVAL with a message listing them. */
int nsl_sched_parse(const char *s, enum nsl_sched_kind *out);
const char *nsl_sched_name(enum nsl_sched_kind k);
const char *nsl_op_name(enum nsl_op op);

/*
 * The batch program of stage `stage` (0-based) of `nstages`, for `nmicro` micro-batches, into
 * out (room for `cap`). Returns the instruction count, or -EINVAL with a message. (Not fast.)
 */
int nsl_sched_compile(enum nsl_sched_kind k, int nstages, int stage, int nmicro, struct nsl_instr *out, int cap);

/* Whether an instruction sends a message (its peer field says to which stage or role). */
static inline int nsl_op_sends(enum nsl_op op)
{
	return op == NSL_OP_SEND_ACT || op == NSL_OP_SEND_LABELS || op == NSL_OP_SEND_GRAD || op == NSL_OP_SEND_SAVED ||
	       op == NSL_OP_SEND_PARAMS;
}

/* Micro-batches whose forward awaits its backward at once, at most, in a program. */
int nsl_sched_in_flight(const struct nsl_instr *prog, int n);

/* The most micro-batches any stage keeps in flight, for nmicro a batch (memory plans). */
int nsl_sched_most_in_flight(enum nsl_sched_kind k, int nstages, int nmicro);

/* One line per instruction group, for --dump-schedule. */
void nsl_sched_print(FILE *f, const struct nsl_instr *prog, int n);

#endif
