/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "nsplit/error.h"
#include "nsplit/optim.h"
#include "nsplit/poll.h"
#include "nsplit/stage.h"
#include "nsplit/stash.h"
#include "cli.h"
#include "commands.h"
#include "dataset.h"
#include "schedule.h"
#include "cluster.h"
#include "train_cluster.h"
#include "train_peers.h"
#include "train.h"

static void usage(FILE *f)
{
	fputs(
"usage: nsplit train [options]\n"
"Train a model on Fashion-MNIST (or any IDX data set) and evaluate it after each epoch.\n"
"\n"
"Model and data\n"
"  --model M            layer list or mlp:IN-H-...-OUT (default mlp:784-512-256-10);\n"
"                       grammar: dense:N conv:CxKHxKW maxpool:K avgpool:K relu tanh sigmoid\n"
"                       gelu flatten dropout:P, comma-separated; layers numbered from 0\n"
"  --data DIR           IDX files (train-*-ubyte[.gz], t10k-*) or ready .nsl shards\n"
"                       (default /usr/share/datasets/fashion-mnist)\n"
"  --shards DIR         same as --data, for a folder of nsplit shard files\n"
"  --cache DIR          where shard files are made on first use (default $NSPLIT_CACHE,\n"
"                       $XDG_CACHE_HOME/nsplit or ~/.cache/nsplit)\n"
"  --limit-samples N    train on the first N training samples only (default all; with\n"
"                       N peers, the first N/peers of each peer's shard)\n"
"  --read-ahead N       shard reads in flight, 1-256 (default 8)\n"
"  --no-direct          buffered reads even where O_DIRECT works\n"
"\n"
"Peers and stages\n"
"  --peers N            peers taking part, all in this process over net_ring (default 1);\n"
"                       peer i owns shard i; the stages rotate one peer on each round\n"
"  --schedule S         nsplit (the paper's: one micro-batch in the pipeline at a time),\n"
"                       gpipe or 1f1b (micro-batches in flight; default 1f1b)\n"
"  --micro-batch M      rows per micro-batch (default 1 for nsplit, one sample at a time as\n"
"                       in the paper; else batch / (2 x peers)); with one peer, gradients\n"
"                       accumulate over micro-batches of M rows (default the whole batch)\n"
"  --dump-schedule      print every peer's instruction list for one batch, and exit\n"
"  --poll MODE          how waiting peers poll: auto, busy, adaptive, yield or coop (default\n"
"                       auto: busy with a core per peer; else coop, peers sharing a thread\n"
"                       per core and handing it over when they wait, or with --threads > 1\n"
"                       adaptive: spin, yield, then nap)\n"
"  --split I,J,...      cut the model into stages starting at layers I, J, ... (with N peers:\n"
"                       N - 1 cuts, or even: by parameter count, the default; with one peer the\n"
"                       stages run one after another, same weights as the uncut model);\n"
"                       auto: the planner's split for the schedule (see nsplit plan)\n"
"  --cost FILE          --split auto plans from this cost file (nsplit profile); without it\n"
"                       the layers are measured first (not with --cluster)\n"
"  --mem-limit SIZE     each peer's memory budget (512M, 2G): a job that does not fit\n"
"                       every stage the rotation brings a peer is refused before training\n"
"  --threads T          compute threads (default: every core this process may use)\n"
"  --replay-peers N     train one peer on exactly the sample sequence a job of N peers\n"
"                       sees (N shards, round r on shard r), to compare weights with it;\n"
"                       with --staleness S, on the weight versions Fast N-split uses\n"
"\n"
"Fast N-split (--schedule fast)\n"
"  --pools F:B          F forward and B backward peers, F + B = N (default: the planner's;\n"
"                       a third forward with a split given)\n"
"  --split-fwd I,...    the forward pool's cuts (F - 1 layer numbers, or even: by parameter\n"
"                       count); without either split, the planner's (from --cost FILE, or\n"
"                       from the model's multiply-adds), pools too unless --pools\n"
"  --split-bwd I,...    the backward pool's cuts (B - 1 layer numbers, or even)\n"
"  --fast-activations M boundary: ship each backward peer its input, it recomputes the\n"
"                       forward (default); all: ship every tensor its backward needs\n"
"  --buffer K           micro-batches each backward peer buffers; a forward peer that would\n"
"                       overflow it waits (default 4)\n"
"  --staleness S        forwards may run S batches ahead of the parameter updates (default\n"
"                       0: exact); backward uses the weights each micro-batch was made with\n"
"  --no-stash           backward on the newest weights instead (not the true gradient; for\n"
"                       comparison)\n"
"\n"
"Peers in several processes or hosts\n"
"  --cluster FILE       run one peer of the job FILE describes (INI: [job] options as\n"
"                       here without dashes, [peer0]..[peerN-1] ports; see examples/)\n"
"  --rank R             which peer (default SLURM_PROCID, OMPI_COMM_WORLD_RANK or PMI_RANK)\n"
"  --peer-timeout MS    a peer silent this long is lost and the job stops (default 750)\n"
"  --connect-timeout S  wait this long for the other peers to start (default 60)\n"
"  --huge               give DPDK hugepages (real NICs; default --no-huge)\n"
"  -- EAL-ARGS          anything after -- goes to DPDK's EAL as is\n"
"\n"
"Checkpoints (N-split jobs)\n"
"  --checkpoint DIR     write every stage's parameters and optimizer state there, with a\n"
"                       manifest, atomically: DIR/round-R/ (one folder all peers see)\n"
"  --checkpoint-every K  rounds between checkpoints (default 1)\n"
"  --resume DIR         continue from DIR's newest complete checkpoint (another split or\n"
"                       peer count of the same model loads too)\n"
"\n"
"Optimisation\n"
"  --epochs E           passes over the training set (default 10)\n"
"  --batch B            samples per optimizer step (default 64)\n"
"  --optimizer NAME     sgd, adam or adamw (default sgd)\n"
"  --lr X               peak learning rate (default 0.01 for sgd, 0.001 for adam/adamw)\n"
"  --lr-schedule S      constant, step or cosine, per optimizer step (default constant)\n"
"  --warmup N           linear warm-up over the first N steps (default 0)\n"
"  --lr-step E          step schedule: multiply by --lr-gamma every E epochs (default off)\n"
"  --lr-gamma G         step schedule factor (default 0.1)\n"
"  --min-lr X           cosine floor (default 0)\n"
"  --momentum M         sgd momentum (default 0.9)\n"
"  --weight-decay W     L2 for sgd/adam, decoupled for adamw (default 0; adamw 0.01)\n"
"  --seed S             initialisation, shuffling and dropout (default 1)\n"
"\n"
"Output\n"
"  --metrics FILE       JSON lines: one per epoch and a final one (loss, test_acc,\n"
"                       samples_per_s, wall_s, ...); N-split jobs add one per round\n"
"  --trace FILE         N-split jobs: every instruction of every peer as a span, a Chrome\n"
"                       trace (JSON) for Perfetto; with --cluster each peer writes FILE.R\n"
"  --save-weights FILE  safetensors with layer<i>.weight/bias in PyTorch layouts\n"
"  --no-eval            skip the test-set evaluation\n"
"  --no-progress        no progress line on the terminal\n"
"  -h, --help           this text\n",
		f);
}

enum {
	OPT_PEERS = 256, OPT_MODEL, OPT_DATA, OPT_CACHE, OPT_SPLIT, OPT_EPOCHS, OPT_BATCH, OPT_OPTIM, OPT_LR,
	OPT_SCHED, OPT_WARMUP, OPT_LR_STEP, OPT_GAMMA, OPT_MIN_LR, OPT_MOMENTUM, OPT_WD, OPT_SEED, OPT_THREADS,
	OPT_LIMIT, OPT_REPLAY, OPT_SCHEDULE, OPT_MICRO, OPT_DUMP, OPT_POLL, OPT_METRICS, OPT_SAVE, OPT_NO_PROGRESS, OPT_NO_EVAL, OPT_READ_AHEAD, OPT_NO_DIRECT,
	OPT_POOLS, OPT_SPLIT_FWD, OPT_SPLIT_BWD, OPT_FAST_ACT, OPT_BUFFER, OPT_STALENESS, OPT_NO_STASH,
	OPT_MEM_LIMIT, OPT_COST, OPT_TRACE, OPT_CHECKPOINT, OPT_CKPT_EVERY, OPT_RESUME, OPT_CLUSTER, OPT_RANK, OPT_PEER_TIMEOUT, OPT_CONNECT_TIMEOUT, OPT_HUGE,
};

static const struct option long_opts[] = {
	{ "peers", required_argument, NULL, OPT_PEERS },
	{ "model", required_argument, NULL, OPT_MODEL },
	{ "data", required_argument, NULL, OPT_DATA },
	{ "shards", required_argument, NULL, OPT_DATA },
	{ "cache", required_argument, NULL, OPT_CACHE },
	{ "split", required_argument, NULL, OPT_SPLIT },
	{ "epochs", required_argument, NULL, OPT_EPOCHS },
	{ "batch", required_argument, NULL, OPT_BATCH },
	{ "optimizer", required_argument, NULL, OPT_OPTIM },
	{ "lr", required_argument, NULL, OPT_LR },
	{ "lr-schedule", required_argument, NULL, OPT_SCHED },
	{ "warmup", required_argument, NULL, OPT_WARMUP },
	{ "lr-step", required_argument, NULL, OPT_LR_STEP },
	{ "lr-gamma", required_argument, NULL, OPT_GAMMA },
	{ "min-lr", required_argument, NULL, OPT_MIN_LR },
	{ "momentum", required_argument, NULL, OPT_MOMENTUM },
	{ "weight-decay", required_argument, NULL, OPT_WD },
	{ "seed", required_argument, NULL, OPT_SEED },
	{ "threads", required_argument, NULL, OPT_THREADS },
	{ "limit-samples", required_argument, NULL, OPT_LIMIT },
	{ "replay-peers", required_argument, NULL, OPT_REPLAY },
	{ "schedule", required_argument, NULL, OPT_SCHEDULE },
	{ "micro-batch", required_argument, NULL, OPT_MICRO },
	{ "dump-schedule", no_argument, NULL, OPT_DUMP },
	{ "poll", required_argument, NULL, OPT_POLL },
	{ "metrics", required_argument, NULL, OPT_METRICS },
	{ "save-weights", required_argument, NULL, OPT_SAVE },
	{ "no-progress", no_argument, NULL, OPT_NO_PROGRESS },
	{ "no-eval", no_argument, NULL, OPT_NO_EVAL },
	{ "read-ahead", required_argument, NULL, OPT_READ_AHEAD },
	{ "no-direct", no_argument, NULL, OPT_NO_DIRECT },
	{ "mem-limit", required_argument, NULL, OPT_MEM_LIMIT },
	{ "trace", required_argument, NULL, OPT_TRACE },
	{ "cost", required_argument, NULL, OPT_COST },
	{ "checkpoint", required_argument, NULL, OPT_CHECKPOINT },
	{ "checkpoint-every", required_argument, NULL, OPT_CKPT_EVERY },
	{ "resume", required_argument, NULL, OPT_RESUME },
	{ "cluster", required_argument, NULL, OPT_CLUSTER },
	{ "rank", required_argument, NULL, OPT_RANK },
	{ "peer-timeout", required_argument, NULL, OPT_PEER_TIMEOUT },
	{ "connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT },
	{ "huge", no_argument, NULL, OPT_HUGE },
	{ "pools", required_argument, NULL, OPT_POOLS },
	{ "split-fwd", required_argument, NULL, OPT_SPLIT_FWD },
	{ "split-bwd", required_argument, NULL, OPT_SPLIT_BWD },
	{ "fast-activations", required_argument, NULL, OPT_FAST_ACT },
	{ "buffer", required_argument, NULL, OPT_BUFFER },
	{ "staleness", required_argument, NULL, OPT_STALENESS },
	{ "no-stash", no_argument, NULL, OPT_NO_STASH },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int parse(int argc, char **argv, struct nsl_train_opts *o)
{
	int c, rc = 0;
	int64_t v64;

	optind = 0;	/* GNU getopt starts afresh: the cluster file's [job] may have been parsed first */
	while (rc == 0 && (c = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
		switch (c) {
		case OPT_PEERS: rc = nsl_cli_int("peers", optarg, 1, 1024, &o->peers); break;
		case OPT_MODEL: o->model = optarg; break;
		case OPT_DATA: o->data_dir = optarg; break;
		case OPT_CACHE: o->cache_dir = optarg; break;
		case OPT_SPLIT: o->split = optarg; break;
		case OPT_EPOCHS: rc = nsl_cli_int("epochs", optarg, 1, 1000000, &o->epochs); break;
		case OPT_BATCH: rc = nsl_cli_int("batch", optarg, 1, 1 << 20, &o->batch); break;
		case OPT_OPTIM: o->optimizer = optarg; break;
		case OPT_LR: rc = nsl_cli_float("lr", optarg, 1e-12, 1e6, &o->lr); break;
		case OPT_SCHED: rc = nsl_lr_parse_kind(optarg, &o->lr_schedule); break;
		case OPT_WARMUP: rc = nsl_cli_i64("warmup", optarg, 0, INT64_MAX / 2, &o->warmup_steps); break;
		case OPT_LR_STEP: rc = nsl_cli_float("lr-step", optarg, 0, 1e9, &o->lr_step_epochs); break;
		case OPT_GAMMA: rc = nsl_cli_float("lr-gamma", optarg, 0, 1e6, &o->lr_gamma); break;
		case OPT_MIN_LR: rc = nsl_cli_float("min-lr", optarg, 0, 1e6, &o->min_lr); break;
		case OPT_MOMENTUM: rc = nsl_cli_float("momentum", optarg, 0, 0.999999, &o->momentum); break;
		case OPT_WD: rc = nsl_cli_float("weight-decay", optarg, 0, 1e3, &o->weight_decay); break;
		case OPT_SEED: rc = nsl_cli_u64("seed", optarg, &o->seed); break;
		case OPT_THREADS: rc = nsl_cli_int("threads", optarg, 0, 1024, &o->threads); break;
		case OPT_LIMIT:
			rc = nsl_cli_i64("limit-samples", optarg, 1, UINT32_MAX, &v64);
			o->limit_samples = (uint32_t)v64;
			break;
		case OPT_REPLAY: rc = nsl_cli_int("replay-peers", optarg, 1, NSL_DATASET_MAX_PARTS, &o->replay_peers); break;
		case OPT_SCHEDULE: {
			enum nsl_sched_kind k;

			rc = nsl_sched_parse(optarg, &k);
			o->schedule = (int)k;
			break;
		}
		case OPT_MICRO: rc = nsl_cli_int("micro-batch", optarg, 1, 1 << 20, &o->micro_batch); break;
		case OPT_DUMP: o->dump_schedule = true; break;
		case OPT_POLL: {
			enum nsl_poll_mode m;

			rc = nsl_poll_mode_parse(optarg, &m);
			o->poll = (int)m;
			break;
		}
		case OPT_METRICS: o->metrics = optarg; break;
		case OPT_SAVE: o->save_weights = optarg; break;
		case OPT_NO_PROGRESS: o->progress = false; break;
		case OPT_NO_EVAL: o->eval = false; break;
		case OPT_READ_AHEAD: rc = nsl_cli_int("read-ahead", optarg, 1, 256, &o->read_ahead); break;
		case OPT_NO_DIRECT: o->direct = false; break;
		case OPT_MEM_LIMIT: rc = nsl_cli_bytes("mem-limit", optarg, &o->mem_limit); break;
		case OPT_TRACE: o->trace = optarg; break;
		case OPT_COST: o->cost = optarg; break;
		case OPT_CHECKPOINT: o->checkpoint = optarg; break;
		case OPT_CKPT_EVERY: rc = nsl_cli_int("checkpoint-every", optarg, 1, 1 << 30, &o->checkpoint_every); break;
		case OPT_RESUME: o->resume = optarg; break;
		case OPT_CLUSTER: o->cluster = optarg; break;
		case OPT_RANK: o->rank = optarg; break;
		case OPT_PEER_TIMEOUT:
			rc = nsl_cli_i64("peer-timeout", optarg, 10, 3600000, &v64);
			o->peer_timeout_ms = (uint32_t)v64;
			break;
		case OPT_CONNECT_TIMEOUT:
			rc = nsl_cli_i64("connect-timeout", optarg, 1, 86400, &v64);
			o->connect_timeout_s = (uint32_t)v64;
			break;
		case OPT_HUGE: o->huge = true; break;
		case OPT_POOLS: rc = nsl_cli_pools(optarg, &o->pools_fwd, &o->pools_bwd); break;
		case OPT_SPLIT_FWD: o->split_fwd = optarg; break;
		case OPT_SPLIT_BWD: o->split_bwd = optarg; break;
		case OPT_FAST_ACT: rc = nsl_cli_fast_activations(optarg, &o->fast_all); break;
		case OPT_BUFFER: rc = nsl_cli_int("buffer", optarg, 1, NSL_STAGE_MAX_CONTEXTS, &o->buffer); break;
		case OPT_STALENESS: rc = nsl_cli_int("staleness", optarg, 0, NSL_STASH_MAX - 1, &o->staleness); break;
		case OPT_NO_STASH: o->no_stash = true; break;
		case 'h': usage(stdout); return 1;
		default: usage(stderr); return 2;
		}
	}
	if (rc < 0)
		return nsl_cli_fail("train") + 1;
	if (optind < argc) {
		fprintf(stderr, "nsplit train: unexpected argument \"%s\" (see nsplit train --help)\n", argv[optind]);
		return 2;
	}
	return 0;
}

/* The file after --cluster, if any, before `--`. */
static const char *find_cluster(int argc, char **argv)
{
	for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
		if (strcmp(argv[i], "--cluster") == 0 && i + 1 < argc)
			return argv[i + 1];
		if (strncmp(argv[i], "--cluster=", 10) == 0)
			return argv[i] + 10;
	}
	return NULL;
}

int nsl_cmd_train(int argc, char **argv)
{
	struct nsl_train_opts o;
	struct nsl_cluster cl = { 0 };
	const char *cluster = find_cluster(argc, argv);
	int rc, own = argc;

	nsl_train_opts_default(&o);
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--") == 0) {
			own = i;
			o.eal_argc = argc - i - 1;
			o.eal_argv = argv + i + 1;
			break;
		}
	if (cluster != NULL) {
		if (nsl_cluster_load(cluster, &cl) < 0)
			return nsl_cli_fail("train");
		rc = parse(cl.job_argc, cl.job_argv, &o);
		if (rc != 0) {
			fprintf(stderr, "nsplit train: in [job] of %s\n", cluster);
			nsl_cluster_free(&cl);
			return rc == 1 ? 0 : rc;
		}
		o.peers = cl.npeers;
	}
	rc = parse(own, argv, &o);
	if (rc == 0 && cluster != NULL && o.peers != cl.npeers) {
		fprintf(stderr, "nsplit train: --peers %d, but %s describes %d peers\n", o.peers, cluster, cl.npeers);
		rc = 2;
	}
	if (rc != 0) {
		nsl_cluster_free(&cl);
		return rc == 1 ? 0 : rc;
	}
	if (cluster != NULL) {
		int rank;

		rc = nsl_cluster_rank(o.rank, cl.npeers, &rank);
		if (rc == 0)
			rc = nsl_train_cluster(&o, &cl, rank);
		nsl_cluster_free(&cl);
		return rc < 0 ? nsl_cli_fail("train") : 0;
	}
	if (o.peers < 2 && (o.checkpoint || o.resume || o.trace)) {
		fprintf(stderr, "nsplit train: --checkpoint, --resume and --trace are for N-split jobs (--peers 2 or more, or "
				"--cluster)\n");
		return 2;
	}
	if (o.peers > 1 && o.replay_peers > 0) {
		fprintf(stderr, "nsplit train: --replay-peers is for one peer (it replays an N-peer job's samples)\n");
		return 2;
	}
	if ((o.peers > 1 ? nsl_train_peers(&o) : nsl_train_reference(&o)) < 0)
		return nsl_cli_fail("train");
	return 0;
}
