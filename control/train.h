/* SPDX-License-Identifier: BSD-3-Clause */
/* Options of `nsplit train` and the single-peer reference trainer that runs them. */
#ifndef NSL_TRAIN_H
#define NSL_TRAIN_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "nsplit/optim.h"

struct nsl_train_opts {
	int peers;
	int replay_peers;            /* > 1: train on the sample sequence of a job of this many peers */
	int schedule;                /* enum nsl_sched_kind (schedule.h) */
	int micro_batch;             /* rows per micro-batch (0: 1 for nsplit, else batch / (2 peers)) */
	bool dump_schedule;
	int poll;                    /* enum nsl_poll_mode */
	const char *model;
	const char *data_dir;
	const char *cache_dir;       /* where shard files are made on first use */
	const char *split;           /* "I,J,...": run the model as stages one after another; "auto": planned */
	const char *cost;            /* --split auto: the cost file (NULL: measure the layers now) */
	int epochs;
	int batch;
	const char *optimizer;
	float lr;                    /* < 0: the optimizer's default */
	enum nsl_lr_kind lr_schedule;
	int64_t warmup_steps;
	float lr_step_epochs;        /* step schedule: decay every this many epochs */
	float lr_gamma;
	float min_lr;
	float momentum;              /* < 0: default (0.9 for sgd) */
	float weight_decay;          /* < 0: the optimizer's default */
	uint64_t seed;
	int threads;
	uint32_t limit_samples;      /* 0 = all; with N shards, the first limit/N of each */
	const char *metrics;
	const char *save_weights;
	bool progress;
	bool eval;
	int read_ahead;
	bool direct;
	/* one peer of a job in several processes (--cluster) */
	const char *cluster;
	const char *rank;            /* NULL: from the launcher's environment */
	uint32_t peer_timeout_ms;    /* a peer silent this long is lost (0: 750 with --cluster) */
	uint32_t connect_timeout_s;  /* waiting for the neighbours' hello (default 60) */
	bool huge;                   /* EAL with hugepages (real NICs) */
	const char *trace;           /* Chrome trace of every instruction (NULL: none) */
	const char *checkpoint;      /* folder for checkpoints (NULL: none) */
	int checkpoint_every;        /* rounds between checkpoints */
	const char *resume;          /* folder to resume from (its newest complete checkpoint) */
	/* Fast N-split (--schedule fast) */
	int pools_fwd, pools_bwd;    /* --pools F:B (0: the planner's) */
	const char *split_fwd;       /* --split-fwd / --split-bwd: each pool's cuts (NULL: the planner's) */
	const char *split_bwd;
	bool fast_all;               /* --fast-activations all (else boundary: backward recomputes) */
	int buffer;                  /* --buffer K: micro-batches a backward role holds (0: default) */
	int staleness;               /* --staleness S: forwards run up to S batches ahead of the updates */
	bool no_stash;               /* backward on the newest weights, not the ones that made the forward */
	uint64_t mem_limit;          /* every peer's budget in bytes (0 = none; a cluster file's win) */
	int eal_argc;                /* after `--`: passed to EAL */
	char **eal_argv;
};

/* Fill the defaults documented in `nsplit train --help`. */
void nsl_train_opts_default(struct nsl_train_opts *o);

/* Train and evaluate; prints progress and results. 0 or a negative errno (message set). */
int nsl_train_reference(const struct nsl_train_opts *o);

/* The optimizer from --optimizer, --momentum, --weight-decay; *lr the base learning rate. */
int nsl_train_setup_optim(const struct nsl_train_opts *o, struct nsl_optim_config *oc, float *lr);

/* The learning-rate schedule of --lr-schedule and friends over epochs of steps_per_epoch steps. */
void nsl_train_lr_schedule(const struct nsl_train_opts *o, float base, int64_t steps_per_epoch,
			   struct nsl_lr_schedule *out);

/* One --metrics line (JSON). ev may be NULL when have_eval is false. */
struct nsl_eval_result;
void nsl_train_metrics_line(FILE *f, const char *event, int epoch, int64_t step, double loss, double train_acc,
			    const struct nsl_eval_result *ev, bool have_eval, float lr, double rate, double wall);

/* The records used per shard when the training set is cut into `parts`: 0 = all. */
int nsl_train_shard_limit(const struct nsl_train_opts *o, int parts, uint32_t *out);

/* The default shard cache: $NSPLIT_CACHE, else $XDG_CACHE_HOME/nsplit, else ~/.cache/nsplit. */
const char *nsl_default_cache_dir(void);

#endif
