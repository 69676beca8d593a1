/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nsplit/compute.h"
#include "nsplit/error.h"
#include "nsplit/model.h"
#include "nsplit/safetensors.h"
#include "batcher.h"
#include "chain.h"
#include "cli.h"
#include "commands.h"
#include "dataset.h"
#include "evaluate.h"
#include "train.h"

static void usage(FILE *f)
{
	fputs(
"usage: nsplit eval --weights FILE [options]\n"
"Evaluate saved weights on the test set and print the accuracy.\n"
"\n"
"  --weights FILE       safetensors written by nsplit train --save-weights (required)\n"
"  --model M            the model (default: the one recorded in the weights file)\n"
"  --data DIR           IDX files or .nsl shards (default /usr/share/datasets/fashion-mnist)\n"
"  --cache DIR          shard cache (as for train)\n"
"  --batch B            inference batch (default 256)\n"
"  --threads T          compute threads (default: every core this process may use)\n"
"  --dump-logits FILE   write the logits of the first --limit test samples as raw\n"
"                       little-endian f32 [N, classes]\n"
"  --limit N            rows for --dump-logits (default 100)\n"
"  -h, --help           this text\n",
		f);
}

static const struct option long_opts[] = {
	{ "weights", required_argument, NULL, 'w' },
	{ "model", required_argument, NULL, 'm' },
	{ "data", required_argument, NULL, 'd' },
	{ "shards", required_argument, NULL, 'd' },
	{ "cache", required_argument, NULL, 'c' },
	{ "batch", required_argument, NULL, 'b' },
	{ "threads", required_argument, NULL, 't' },
	{ "dump-logits", required_argument, NULL, 'L' },
	{ "limit", required_argument, NULL, 'n' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

struct eval_opts {
	const char *weights, *model, *data, *cache, *dump;
	int batch, threads;
	int64_t limit;
};

static int run(const struct eval_opts *o)
{
	struct nsl_dataset_files files;
	struct nsl_shard_reader_opts ro = { .depth = 8, .direct = true, .shuffle = false };
	struct nsl_batcher test = { 0 };
	struct nsl_optim_config oc;
	struct nsl_chain chain = { 0 };
	struct nsl_compute *cc = NULL;
	struct nsl_model *m = NULL;
	struct nsl_eval_result ev;
	char *model_text = NULL;
	float *x = NULL;
	int32_t *labels = NULL;
	FILE *dump = NULL;
	int starts[2], rc;
	bool chain_ok = false;

	if (o->model) {
		model_text = strdup(o->model);
	} else {
		struct nsl_st_file *f = nsl_st_open(o->weights);
		const char *meta = f ? nsl_st_meta(f, "model") : NULL;

		if (f && meta == NULL)
			nsl_error_set(EINVAL, "%s records no model; pass --model", o->weights);
		model_text = meta ? strdup(meta) : NULL;
		nsl_st_close(f);
		if (model_text == NULL)
			return -EINVAL;
	}
	if ((rc = nsl_dataset_prepare(o->data, o->cache ? o->cache : nsl_default_cache_dir(), 1, &files)) < 0)
		goto out;
	if ((rc = nsl_batcher_open(&test, files.test, &ro, 0)) < 0)
		goto out;
	if ((m = nsl_model_parse(model_text, test.shape)) == NULL) {
		rc = nsl_error_prefix(EINVAL, "%s", files.test);
		goto out;
	}
	rc = -EINVAL;
	if ((cc = nsl_compute_create(o->threads)) == NULL)
		goto out;
	nsl_optim_config_init(&oc, "sgd");
	starts[0] = 0;
	starts[1] = m->nlayers;
	if ((rc = nsl_chain_init(&chain, cc, m, starts, 1, o->batch, 0, &oc, false)) < 0)
		goto out;
	chain_ok = true;
	if ((rc = nsl_chain_load(&chain, o->weights)) < 0)
		goto out;
	x = malloc((size_t)o->batch * (size_t)nsl_shape_size(test.shape) * sizeof(float));
	labels = malloc((size_t)o->batch * sizeof(int32_t));
	if (x == NULL || labels == NULL) {
		rc = nsl_error_set(ENOMEM, "out of memory for a batch of %d", o->batch);
		goto out;
	}
	if (o->dump && (dump = fopen(o->dump, "wb")) == NULL) {
		rc = nsl_error_set(errno, "--dump-logits %s: %s", o->dump, strerror(errno));
		goto out;
	}
	if ((rc = nsl_evaluate(&chain, &test, o->batch, x, labels, dump, o->limit, &ev)) < 0)
		goto out;
	printf("test loss: %.4f\n", ev.loss);
	printf("test accuracy: %.4f (%" PRId64 "/%" PRId64 ")\n", ev.accuracy, ev.correct, ev.total);
out:
	if (dump && fclose(dump) != 0 && rc == 0)
		rc = nsl_error_set(EIO, "--dump-logits %s: write failed", o->dump);
	free(x);
	free(labels);
	if (chain_ok)
		nsl_chain_fini(&chain);
	nsl_batcher_close(&test);
	nsl_model_free(m);
	nsl_compute_free(cc);
	free(model_text);
	return rc;
}

int nsl_cmd_eval(int argc, char **argv)
{
	struct eval_opts o = { .data = "/usr/share/datasets/fashion-mnist", .batch = 256, .limit = 100 };
	int c, rc = 0;

	while (rc == 0 && (c = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
		switch (c) {
		case 'w': o.weights = optarg; break;
		case 'm': o.model = optarg; break;
		case 'd': o.data = optarg; break;
		case 'c': o.cache = optarg; break;
		case 'b': rc = nsl_cli_int("batch", optarg, 1, 1 << 20, &o.batch); break;
		case 't': rc = nsl_cli_int("threads", optarg, 0, 1024, &o.threads); break;
		case 'L': o.dump = optarg; break;
		case 'n': rc = nsl_cli_i64("limit", optarg, 1, INT64_MAX, &o.limit); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (rc < 0) {
		nsl_cli_fail("eval");
		return 2;
	}
	if (o.weights == NULL || optind < argc) {
		fprintf(stderr, "nsplit eval: %s\n", o.weights ? "unexpected argument" : "--weights FILE is required");
		usage(stderr);
		return 2;
	}
	return run(&o) < 0 ? nsl_cli_fail("eval") : 0;
}
