/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nsplit/compute.h"
#include "nsplit/error.h"
#include "nsplit/model.h"
#include "batcher.h"
#include "chain.h"
#include "dataset.h"
#include "evaluate.h"
#include "progress.h"
#include "schedule.h"
#include "train.h"

void nsl_train_opts_default(struct nsl_train_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->peers = 1;
	o->model = "mlp:784-512-256-10";
	o->data_dir = "/usr/share/datasets/fashion-mnist";
	o->epochs = 10;
	o->batch = 64;
	o->optimizer = "sgd";
	o->lr = -1;
	o->lr_schedule = NSL_LR_CONSTANT;
	o->lr_gamma = 0.1f;
	o->momentum = -1;
	o->weight_decay = -1;
	o->seed = 1;
	o->progress = true;
	o->eval = true;
	o->read_ahead = 8;
	o->direct = true;
	o->schedule = NSL_SCHED_1F1B;
	o->connect_timeout_s = 60;
	o->checkpoint_every = 1;
}

void nsl_train_lr_schedule(const struct nsl_train_opts *o, float base, int64_t steps_per_epoch,
			   struct nsl_lr_schedule *out)
{
	out->kind = o->lr_schedule;
	out->base = base;
	out->total_steps = (int64_t)steps_per_epoch * o->epochs;
	out->warmup_steps = o->warmup_steps;
	out->step_every = (int64_t)lroundf(o->lr_step_epochs * (float)steps_per_epoch);
	out->gamma = o->lr_gamma;
	out->min_lr = o->min_lr;
}

int nsl_train_shard_limit(const struct nsl_train_opts *o, int parts, uint32_t *out)
{
	if (o->limit_samples && o->limit_samples < (uint32_t)parts)
		return nsl_error_set(EINVAL, "--limit-samples %u: fewer samples than the %d shards", o->limit_samples,
				     parts);
	*out = o->limit_samples / (uint32_t)parts;
	return 0;
}

const char *nsl_default_cache_dir(void)
{
	static char buf[PATH_MAX];
	const char *e = getenv("NSPLIT_CACHE");

	if (e && *e)
		return e;
	e = getenv("XDG_CACHE_HOME");
	if (e && *e) {
		snprintf(buf, sizeof(buf), "%s/nsplit", e);
		return buf;
	}
	e = getenv("HOME");
	snprintf(buf, sizeof(buf), "%s/.cache/nsplit", e && *e ? e : "/tmp");
	return buf;
}

/* Everything one run holds; freed in one place whatever failed. */
struct run {
	struct nsl_compute *cc;
	struct nsl_model *model;
	struct nsl_chain chain;
	bool chain_ok;
	int nparts;                     /* shards opened: 1, or the peers of --replay-peers */
	struct nsl_batcher train[NSL_DATASET_MAX_PARTS], test;
	bool test_ok;
	float *x;
	int32_t *labels;
	FILE *metrics;
	struct nsl_stash stash[NSL_CHAIN_MAX_STAGES];   /* --staleness: weight versions per stage */
};

static void run_free(struct run *r)
{
	for (int i = 0; i < NSL_CHAIN_MAX_STAGES; i++) {
		if (r->chain_ok && i < r->chain.nstages)
			nsl_stash_restore(&r->stash[i], r->chain.stages[i]);   /* the stages free their own */
		nsl_stash_fini(&r->stash[i]);
	}
	if (r->chain_ok)
		nsl_chain_fini(&r->chain);
	for (int i = 0; i < r->nparts; i++)
		nsl_batcher_close(&r->train[i]);
	if (r->test_ok)
		nsl_batcher_close(&r->test);
	nsl_model_free(r->model);
	nsl_compute_free(r->cc);
	free(r->x);
	free(r->labels);
	if (r->metrics)
		fclose(r->metrics);
}

/*
 * --staleness S, as Fast N-split runs it: batch b of a round trains on the weights of batch
 * max(0, b - S) of that round (stashed), and its gradient updates the newest ones. Rounds start
 * in step: there the pipeline drains, for the roles to rotate.
 */
static int stale_weights(struct run *r, int staleness, int64_t step, int b)
{
	int64_t v = step - (b < staleness ? b : staleness);
	int rc;

	for (int i = 0; i < r->chain.nstages && staleness > 0; i++) {
		if (r->stash[i].buf == NULL && (rc = nsl_stash_init(&r->stash[i], r->chain.stages[i], staleness + 1, NULL)) < 0)
			return rc;
		if (b == 0)
			nsl_stash_keep(&r->stash[i], r->chain.stages[i], step);
		if (v != step && (rc = nsl_stash_use(&r->stash[i], r->chain.stages[i], v)) < 0)
			return rc;
	}
	return 0;
}

int nsl_train_setup_optim(const struct nsl_train_opts *o, struct nsl_optim_config *oc, float *lr)
{
	int rc = nsl_optim_config_init(oc, o->optimizer);

	if (rc < 0)
		return rc;
	if (oc->ops == &nsl_optim_sgd)
		oc->momentum = o->momentum >= 0 ? o->momentum : 0.9f;
	else if (o->momentum >= 0)
		return nsl_error_set(EINVAL, "--momentum applies to sgd only; %s uses betas", o->optimizer);
	if (o->weight_decay >= 0)
		oc->weight_decay = o->weight_decay;
	*lr = o->lr > 0 ? o->lr : (oc->ops == &nsl_optim_sgd ? 0.01f : 0.001f);
	return 0;
}

static int setup_split(const struct nsl_train_opts *o, const struct nsl_model *m, int *starts)
{
	if (o->split == NULL || !*o->split) {
		starts[0] = 0;
		starts[1] = m->nlayers;
		return 1;
	}
	return nsl_model_parse_split(m, o->split, starts, NSL_CHAIN_MAX_STAGES);
}

void nsl_train_metrics_line(FILE *f, const char *event, int epoch, int64_t step, double loss, double train_acc,
			 const struct nsl_eval_result *ev, bool have_eval, float lr, double rate, double wall)
{
	if (f == NULL)
		return;
	fprintf(f, "{\"event\":\"%s\",\"epoch\":%d,\"step\":%" PRId64 ",\"loss\":%.6f,\"train_acc\":%.6f,", event,
		epoch, step, loss, train_acc);
	if (have_eval)
		fprintf(f, "\"test_loss\":%.6f,\"test_acc\":%.6f,", ev->loss, ev->accuracy);
	else
		fprintf(f, "\"test_loss\":null,\"test_acc\":null,");
	fprintf(f, "\"lr\":%.8g,\"samples_per_s\":%.2f,\"wall_s\":%.3f}\n", (double)lr, rate, wall);
	fflush(f);
}

int nsl_train_reference(const struct nsl_train_opts *o)
{
	struct run r = { 0 };
	struct nsl_dataset_files files;
	struct nsl_shard_reader_opts ro = { 0 };
	struct nsl_optim_config oc;
	struct nsl_lr_schedule sched = { 0 };
	struct nsl_eval_result ev = { 0 };
	struct nsl_progress prog = { 0 };
	int starts[NSL_CHAIN_MAX_STAGES + 1];
	int nstages, rc, steps_per_epoch;
	uint32_t shard_limit;
	int64_t step = 0, n_train;
	double train_time = 0, t_start = nsl_now(), last_loss = 0, last_acc = 0;
	float lr = 0, base_lr = 0;
	bool have_eval = false;

	if (o->peers != 1)
		return nsl_error_set(EINVAL, "the single-peer trainer runs --peers 1 (got %d)", o->peers);
	if (o->pools_fwd || o->split_fwd || o->split_bwd || o->fast_all || o->buffer || o->no_stash)
		return nsl_error_set(EINVAL, "--pools, --split-fwd, --split-bwd, --fast-activations, --buffer and --no-stash "
				     "are Fast N-split's (--peers 2 or more); one peer takes --staleness alone, to replay it");
	if (o->batch < 1 || o->epochs < 1)
		return nsl_error_set(EINVAL, "--batch and --epochs must be at least 1 (got %d and %d)", o->batch, o->epochs);
	rc = nsl_dataset_prepare(o->data_dir, o->cache_dir ? o->cache_dir : nsl_default_cache_dir(),
				 o->replay_peers > 0 ? o->replay_peers : 1, &files);
	if (rc < 0)
		return rc;

	ro.depth = o->read_ahead;
	ro.direct = o->direct;
	ro.shuffle = true;
	ro.seed = o->seed;
	if ((rc = nsl_train_shard_limit(o, r.nparts = files.parts, &shard_limit)) < 0)
		goto out;
	for (int i = 0; i < files.parts; i++)
		if ((rc = nsl_batcher_open(&r.train[i], files.train[i], &ro, shard_limit)) < 0) {
			r.nparts = i;
			goto out;
		}
	ro.shuffle = false;
	if (o->eval) {
		if ((rc = nsl_batcher_open(&r.test, files.test, &ro, 0)) < 0)
			goto out;
		r.test_ok = true;
		/* Batches are sized for the training samples: a test set of another shape would overrun them. */
		if ((rc = nsl_shard_check_shape(nsl_shard_reader_info(r.test.r), r.train[0].shape, files.test)) < 0)
			goto out;
	}
	r.model = nsl_model_parse(o->model, r.train[0].shape);
	if (r.model == NULL) {
		rc = nsl_error_prefix(EINVAL, "%s", files.train[0]);
		goto out;
	}
	if ((uint32_t)r.model->classes < r.train[0].classes) {
		rc = nsl_error_set(EINVAL, "model \"%s\" has %d outputs but the data has %u classes", o->model,
				   r.model->classes, r.train[0].classes);
		goto out;
	}
	if ((rc = nsl_train_setup_optim(o, &oc, &base_lr)) < 0)
		goto out;
	if ((nstages = setup_split(o, r.model, starts)) < 0) {
		rc = nstages;
		goto out;
	}
	r.cc = nsl_compute_create(o->threads);
	if (r.cc == NULL) {
		rc = -EINVAL;
		goto out;
	}
	if ((rc = nsl_chain_init(&r.chain, r.cc, r.model, starts, nstages, o->batch, o->seed, &oc, true)) < 0)
		goto out;
	r.chain_ok = true;

	/* Every batch size the loop will see is built now: full batches, each shard's last train
	 * batch, the last test batch. */
	n_train = 0;
	steps_per_epoch = 0;
	rc = nsl_chain_prepare(&r.chain, o->batch);
	for (int i = 0; rc == 0 && i < r.nparts; i++) {
		n_train += r.train[i].limit;
		steps_per_epoch += (int)((r.train[i].limit + (uint32_t)o->batch - 1) / (uint32_t)o->batch);
		if (r.train[i].limit % (uint32_t)o->batch)
			rc = nsl_chain_prepare(&r.chain, (int)(r.train[i].limit % (uint32_t)o->batch));
	}
	if (rc < 0 || (r.test_ok && r.test.limit % o->batch &&
		       (rc = nsl_chain_prepare(&r.chain, (int)(r.test.limit % o->batch))) < 0))
		goto out;

	nsl_train_lr_schedule(o, base_lr, steps_per_epoch, &sched);

	r.x = malloc((size_t)o->batch * (size_t)nsl_shape_size(r.train[0].shape) * sizeof(float));
	r.labels = malloc((size_t)o->batch * sizeof(int32_t));
	if (r.x == NULL || r.labels == NULL) {
		rc = nsl_error_set(ENOMEM, "out of memory for a batch of %d", o->batch);
		goto out;
	}
	if (o->metrics && (r.metrics = fopen(o->metrics, "w")) == NULL) {
		rc = nsl_error_set(errno, "--metrics %s: %s", o->metrics, strerror(errno));
		goto out;
	}
	printf("model %s: %d layers, %d stage%s, %d classes; %" PRId64 " training samples from %s%s; %s, lr %g, batch %d, %d thread%s\n",
	       r.model->text, r.model->nlayers, nstages, nstages == 1 ? "" : "s", r.model->classes, n_train,
	       files.train[0], r.nparts > 1 ? " and the other shards, in the order of an N-peer job" : "", oc.ops->name, (double)base_lr, o->batch, nsl_compute_threads(r.cc),
	       nsl_compute_threads(r.cc) == 1 ? "" : "s");
	fflush(stdout);

	nsl_progress_init(&prog, o->progress, n_train * o->epochs);
	for (int e = 0; e < o->epochs; e++) {
		double loss_sum = 0, t0 = nsl_now();
		int correct = 0;
		int64_t seen = 0;

		/* Round p trains on shard p, as the N-peer job's rotation does: it hands stage 1 to
		 * the owner of shard p for round p of each epoch. */
		for (int p = 0; p < r.nparts; p++) {
			int b = 0;

			if ((rc = nsl_batcher_begin_epoch(&r.train[p], (uint64_t)e)) < 0)
				goto out;
			for (;;) {
				int n = nsl_batcher_next(&r.train[p], o->batch, r.x, r.labels);

				if (n <= 0) {
					rc = n;
					if (n < 0)
						goto out;
					break;
				}
				lr = nsl_lr_at(&sched, step);
				if ((rc = stale_weights(&r, o->staleness, step, b++)) < 0)
					goto out;
				rc = nsl_chain_train_batch(&r.chain, n, o->micro_batch, r.x, r.labels, (uint64_t)step, lr, &loss_sum,
							   &correct, o->staleness > 0 ? r.stash : NULL);
				if (rc < 0)
					goto out;
				if (!isfinite(loss_sum)) {
					rc = nsl_error_set(ERANGE,
							   "epoch %d step %" PRId64 ": the loss is not finite (lr %g too high?)",
							   e + 1, step, (double)lr);
					goto out;
				}
				step++;
				seen += n;
				nsl_progress_update(&prog, e + 1, o->epochs, (int64_t)e * n_train + seen,
						    (double)(e * n_train + seen) / (train_time + nsl_now() - t0),
						    loss_sum / (double)seen);
			}
		}
		double epoch_time = nsl_now() - t0;

		train_time += epoch_time;
		last_loss = seen ? loss_sum / (double)seen : 0;
		last_acc = seen ? (double)correct / (double)seen : 0;
		if (r.test_ok) {
			if ((rc = nsl_evaluate(&r.chain, &r.test, o->batch, r.x, r.labels, NULL, 0, &ev)) < 0)
				goto out;
			have_eval = true;
		}
		nsl_progress_clear(&prog);
		printf("epoch %d/%d  loss %.4f  train_acc %.4f", e + 1, o->epochs, last_loss, last_acc);
		if (have_eval)
			printf("  test_loss %.4f  test_acc %.4f", ev.loss, ev.accuracy);
		printf("  %.0f samples/s  %.1f s\n", (double)seen / epoch_time, nsl_now() - t_start);
		fflush(stdout);
		nsl_train_metrics_line(r.metrics, "epoch", e + 1, step, last_loss, last_acc, &ev,
			     have_eval, lr, (double)n_train * (e + 1) / train_time, nsl_now() - t_start);
	}
	nsl_train_metrics_line(r.metrics, "final", o->epochs, step, last_loss, last_acc, &ev, have_eval, lr,
		     (double)n_train * o->epochs / train_time, nsl_now() - t_start);
	if (o->save_weights) {
		if ((rc = nsl_chain_save(&r.chain, o->save_weights)) < 0)
			goto out;
		printf("weights saved to %s\n", o->save_weights);
	}
	if (have_eval)
		printf("test accuracy: %.4f (%" PRId64 "/%" PRId64 ")\n", ev.accuracy, ev.correct, ev.total);
	printf("training: %.0f samples/s over %.1f s\n", (double)n_train * o->epochs / train_time, train_time);
	rc = 0;
out:
	nsl_progress_clear(&prog);
	run_free(&r);
	return rc;
}
