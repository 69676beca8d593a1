/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * bench_dnnl_mlp: the ceiling for nsplit's single-peer MLP training, a bare loop of the oneDNN
 * primitives that such a trainer needs and nothing else (no nsplit code):
 *   forward:  inner product (forward_training) with a fused relu post-op on hidden layers;
 *             softmax cross-entropy in plain C on the logits
 *   backward: eltwise relu backward from dst (relu_use_dst_for_bwd), inner product backward
 *             data (not for the first layer) and backward weights (+ bias)
 *   update:   SGD with momentum (PyTorch's form: v = m v + g, w -= lr v) in a plain C loop
 * Weights use format_tag_any, reordered once at start; activations are plain nc. Batches are
 * gathered in a seeded shuffled order from Fashion-MNIST (u8 -> x/255), or from synthetic
 * pixels when the data set is missing (the cost does not depend on the values).
 *
 * usage: bench_dnnl_mlp [--dims 784,512,256,10] [--batch 64] [--threads 1] [--steps S]
 *                       [--warmup 20] [--data DIR] [--lr 0.02] [--momentum 0.9]
 *        bench_dnnl_mlp --clock   (the busy core clock in MHz, timed with dependent adds)
 * S defaults to one epoch (60000 / batch). Prints one JSON line. Run it with the same OpenMP
 * environment as nsplit (libgomp reads OMP_WAIT_POLICY when it loads).
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#include <zlib.h>

#define MAX_LAYERS 16
#define IMAGE_PIXELS 784
#define TRAIN_SAMPLES 60000
#define CLASSES_MAX 4096

struct layer {
	int64_t in, out;
	int relu; /* hidden layers: relu fused into the forward */
	dnnl_primitive_t fwd, bwd_data, bwd_weights, relu_bwd;
	dnnl_memory_t src;         /* layer input, nc (the previous layer's dst) */
	dnnl_memory_t dst;         /* output after relu, nc */
	dnnl_memory_t weights;     /* format chosen by the forward primitive */
	dnnl_memory_t bias;
	dnnl_memory_t diff_weights, diff_bias;
	dnnl_memory_t mom_weights, mom_bias; /* momentum, same formats */
	dnnl_memory_t diff_dst;    /* d loss / d dst (after relu); the next layer's diff_src */
	dnnl_memory_t diff_pre;    /* d loss / d (before relu); = diff_dst for the last layer */
};

static const char *prog = "bench_dnnl_mlp";

static void die(const char *what, const char *why)
{
	fprintf(stderr, "%s: %s: %s\n", prog, what, why);
	exit(1);
}

/* The one place that reads a dnnl_status_t. */
static void dnnl_ok(dnnl_status_t st, const char *what)
{
	static const char *names[] = {"success", "out_of_memory", "invalid_arguments",
		"unimplemented", "iterator_ends", "runtime_error", "not_required"};
	if (st != dnnl_success)
		die(what, (unsigned)st < sizeof(names) / sizeof(names[0]) ? names[st] : "dnnl error");
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* splitmix64: seeded, portable. */
static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static float rng_uniform(uint64_t *s, float lo, float hi)
{
	return lo + (hi - lo) * (float)((double)(rng_next(s) >> 11) * 0x1.0p-53);
}

static dnnl_memory_desc_t md_2d(int64_t a, int64_t b, dnnl_format_tag_t tag)
{
	dnnl_memory_desc_t md;
	dnnl_dims_t dims = {a, b};

	dnnl_ok(dnnl_memory_desc_init_by_tag(&md, 2, dims, dnnl_f32, tag), "memory desc 2d");
	return md;
}

static dnnl_memory_desc_t md_1d(int64_t a)
{
	dnnl_memory_desc_t md;
	dnnl_dims_t dims = {a};

	dnnl_ok(dnnl_memory_desc_init_by_tag(&md, 1, dims, dnnl_f32, dnnl_a), "memory desc 1d");
	return md;
}

static dnnl_memory_t mem_new(const dnnl_memory_desc_t *md, dnnl_engine_t eng)
{
	dnnl_memory_t m;

	dnnl_ok(dnnl_memory_create(&m, md, eng, DNNL_MEMORY_ALLOCATE), "memory create");
	return m;
}

static float *mem_ptr(dnnl_memory_t m)
{
	void *p;

	dnnl_ok(dnnl_memory_get_data_handle(m, &p), "memory handle");
	return p;
}

static size_t mem_floats(dnnl_memory_t m)
{
	const dnnl_memory_desc_t *md;

	dnnl_ok(dnnl_memory_get_memory_desc(m, &md), "memory desc");
	return dnnl_memory_desc_get_size(md) / sizeof(float);
}

static void exec(dnnl_primitive_t p, dnnl_stream_t s, int n, const dnnl_exec_arg_t *args,
	const char *what)
{
	dnnl_ok(dnnl_primitive_execute(p, s, n, args), what);
}

static dnnl_primitive_t prim_new(const_dnnl_op_desc_t desc, const_dnnl_primitive_attr_t attr,
	dnnl_engine_t eng, const_dnnl_primitive_desc_t hint, dnnl_primitive_desc_t *pd_out,
	const char *what)
{
	dnnl_primitive_desc_t pd;
	dnnl_primitive_t p;

	dnnl_ok(dnnl_primitive_desc_create(&pd, desc, attr, eng, hint), what);
	dnnl_ok(dnnl_primitive_create(&p, pd), what);
	if (pd_out)
		*pd_out = pd;
	else
		dnnl_primitive_desc_destroy(pd);
	return p;
}

static const char *impl_name(const_dnnl_primitive_desc_t pd)
{
	const char *name = "?";

	dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &name);
	return name;
}

/* Uniform(-1/sqrt(in), 1/sqrt(in)) in plain [out, in], reordered into the chosen format. */
static void init_weights(struct layer *l, dnnl_engine_t eng, dnnl_stream_t s, uint64_t *rng)
{
	dnnl_memory_desc_t plain_md = md_2d(l->out, l->in, dnnl_oi);
	dnnl_memory_t plain = mem_new(&plain_md, eng);
	const dnnl_memory_desc_t *wmd;
	dnnl_primitive_desc_t rpd;
	dnnl_primitive_t r;
	float bound = 1.0f / sqrtf((float)l->in);
	float *w = mem_ptr(plain), *b = mem_ptr(l->bias);

	for (int64_t i = 0; i < l->out * l->in; i++)
		w[i] = rng_uniform(rng, -bound, bound);
	for (int64_t i = 0; i < l->out; i++)
		b[i] = rng_uniform(rng, -bound, bound);
	dnnl_ok(dnnl_memory_get_memory_desc(l->weights, &wmd), "weights desc");
	dnnl_ok(dnnl_reorder_primitive_desc_create(&rpd, &plain_md, eng, wmd, eng, NULL),
		"reorder desc");
	dnnl_ok(dnnl_primitive_create(&r, rpd), "reorder");
	exec(r, s, 2, (dnnl_exec_arg_t[]){{DNNL_ARG_FROM, plain}, {DNNL_ARG_TO, l->weights}},
		"reorder");
	dnnl_ok(dnnl_stream_wait(s), "stream wait");
	dnnl_primitive_destroy(r);
	dnnl_primitive_desc_destroy(rpd);
	dnnl_memory_destroy(plain);
	memset(mem_ptr(l->mom_weights), 0, mem_floats(l->mom_weights) * sizeof(float));
	memset(mem_ptr(l->mom_bias), 0, mem_floats(l->mom_bias) * sizeof(float));
}

static void build_layer(struct layer *l, int index, int64_t batch, dnnl_memory_t src,
	dnnl_engine_t eng, int verbose)
{
	dnnl_memory_desc_t src_md = md_2d(batch, l->in, dnnl_nc);
	dnnl_memory_desc_t dst_md = md_2d(batch, l->out, dnnl_nc);
	dnnl_memory_desc_t any_w = md_2d(l->out, l->in, dnnl_format_tag_any);
	dnnl_memory_desc_t bias_md = md_1d(l->out);
	dnnl_inner_product_desc_t fd, bdd, bwd;
	dnnl_primitive_attr_t attr = NULL;
	dnnl_primitive_desc_t fpd, bwpd, bdpd = NULL;
	const dnnl_memory_desc_t *wmd;
	char what[64];

	snprintf(what, sizeof(what), "layer %d inner product forward", index);
	dnnl_ok(dnnl_inner_product_forward_desc_init(&fd, dnnl_forward_training, &src_md,
		&any_w, &bias_md, &dst_md), what);
	if (l->relu) {
		dnnl_post_ops_t po;

		dnnl_ok(dnnl_primitive_attr_create(&attr), "attr");
		dnnl_ok(dnnl_post_ops_create(&po), "post ops");
		dnnl_ok(dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, 0.f, 0.f),
			"relu post op");
		dnnl_ok(dnnl_primitive_attr_set_post_ops(attr, po), "set post ops");
		dnnl_post_ops_destroy(po);
	}
	l->fwd = prim_new(&fd, attr, eng, NULL, &fpd, what);
	dnnl_primitive_attr_destroy(attr);
	wmd = dnnl_primitive_desc_query_md(fpd, dnnl_query_weights_md, 0);

	l->src = src;
	l->dst = mem_new(&dst_md, eng);
	l->weights = mem_new(wmd, eng);
	l->bias = mem_new(&bias_md, eng);
	l->diff_weights = mem_new(wmd, eng);
	l->diff_bias = mem_new(&bias_md, eng);
	l->mom_weights = mem_new(wmd, eng);
	l->mom_bias = mem_new(&bias_md, eng);
	l->diff_dst = mem_new(&dst_md, eng);
	l->diff_pre = l->relu ? mem_new(&dst_md, eng) : l->diff_dst;

	/* Weight gradients in the weights' own format, so the update is one flat loop. */
	snprintf(what, sizeof(what), "layer %d inner product backward weights", index);
	dnnl_ok(dnnl_inner_product_backward_weights_desc_init(&bwd, &src_md, wmd, &bias_md,
		&dst_md), what);
	l->bwd_weights = prim_new(&bwd, NULL, eng, fpd, &bwpd, what);

	if (index > 0) {
		snprintf(what, sizeof(what), "layer %d inner product backward data", index);
		dnnl_ok(dnnl_inner_product_backward_data_desc_init(&bdd, &src_md, wmd, &dst_md),
			what);
		l->bwd_data = prim_new(&bdd, NULL, eng, fpd, &bdpd, what);
	}
	if (l->relu) {
		dnnl_eltwise_desc_t efd, ebd;
		dnnl_primitive_desc_t efpd;

		snprintf(what, sizeof(what), "layer %d relu backward", index);
		dnnl_ok(dnnl_eltwise_forward_desc_init(&efd, dnnl_forward_training,
			dnnl_eltwise_relu_use_dst_for_bwd, &dst_md, 0.f, 0.f), what);
		dnnl_ok(dnnl_primitive_desc_create(&efpd, &efd, NULL, eng, NULL), what);
		dnnl_ok(dnnl_eltwise_backward_desc_init(&ebd, dnnl_eltwise_relu_use_dst_for_bwd,
			&dst_md, &dst_md, 0.f, 0.f), what);
		l->relu_bwd = prim_new(&ebd, NULL, eng, efpd, NULL, what);
		dnnl_primitive_desc_destroy(efpd);
	}
	if (verbose)
		fprintf(stderr, "%s: layer %d %lldx%lld: fwd %s, bwd_w %s, bwd_d %s\n", prog,
			index, (long long)l->in, (long long)l->out, impl_name(fpd),
			impl_name(bwpd), bdpd ? impl_name(bdpd) : "-");
	dnnl_primitive_desc_destroy(fpd);
	dnnl_primitive_desc_destroy(bwpd);
	if (bdpd)
		dnnl_primitive_desc_destroy(bdpd);
}

/* Softmax cross-entropy over a [n, c] logits batch: returns the mean loss and writes
 * d mean-loss / d logits = (softmax - onehot) / n. */
static float softmax_xent(const float *logits, const int *labels, int64_t n, int64_t c,
	float *grad)
{
	double loss = 0;

	for (int64_t i = 0; i < n; i++) {
		const float *z = logits + i * c;
		float *g = grad + i * c;
		float mx = z[0], sum = 0;

		for (int64_t j = 1; j < c; j++)
			mx = z[j] > mx ? z[j] : mx;
		for (int64_t j = 0; j < c; j++) {
			g[j] = expf(z[j] - mx);
			sum += g[j];
		}
		loss += (double)(logf(sum) + mx - z[labels[i]]);
		for (int64_t j = 0; j < c; j++)
			g[j] = g[j] / sum / (float)n;
		g[labels[i]] -= 1.0f / (float)n;
	}
	return (float)(loss / (double)n);
}

static void sgd_momentum(dnnl_memory_t w, dnnl_memory_t g, dnnl_memory_t v, float lr, float mom)
{
	float *pw = mem_ptr(w), *pg = mem_ptr(g), *pv = mem_ptr(v);
	int64_t n = (int64_t)mem_floats(w);

#pragma omp parallel for simd schedule(static)
	for (int64_t i = 0; i < n; i++) {
		pv[i] = mom * pv[i] + pg[i];
		pw[i] -= lr * pv[i];
	}
}

/* The core clock while busy, from a chain of dependent adds (one cycle each on every x86 core
 * of the last decade); the best of a few tries. 0 where there is no such chain to time. */
static double measure_clock_mhz(void)
{
#if defined(__x86_64__)
	double best = 0;

	for (int t = 0; t < 5; t++) {
		uint64_t x = 0;
		const long iters = 2000000;
		double t0 = now_s();

		for (long i = 0; i < iters; i++)
			__asm__ volatile(
				"add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
				"add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
				"add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
				"add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
				"add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
				"add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
				"add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
				"add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
				: "+r"(x));
		double mhz = 32.0 * (double)iters / (now_s() - t0) / 1e6;

		best = mhz > best ? mhz : best;
	}
	return best;
#else
	return 0;
#endif
}

/* Reads one gzip IDX file whole; NULL if absent. */
static uint8_t *read_idx(const char *dir, const char *stem, size_t want, size_t header)
{
	char path[4096];
	uint8_t *buf = malloc(header + want);
	gzFile f;
	int n;

	if (!buf)
		die("malloc", strerror(ENOMEM));
	snprintf(path, sizeof(path), "%s/%s.gz", dir, stem);
	f = gzopen(path, "rb");
	if (!f) {
		free(buf);
		return NULL;
	}
	n = gzread(f, buf, (unsigned)(header + want));
	gzclose(f);
	if (n != (int)(header + want))
		die(path, "short IDX file");
	memmove(buf, buf + header, want);
	return buf;
}

static int64_t parse_i64(const char *s, const char *opt)
{
	char *end;
	long long v = strtoll(s, &end, 10);

	if (*end || v <= 0)
		die(opt, "wants a positive integer");
	return v;
}

int main(int argc, char **argv)
{
	int64_t dims[MAX_LAYERS + 1] = {784, 512, 256, 10}, batch = 64, steps = 0, warmup = 20;
	int nlayers = 3, threads = 1, verbose = 0;
	const char *data_dir = "/usr/share/datasets/fashion-mnist";
	float lr = 0.02f, mom = 0.9f;
	struct layer layers[MAX_LAYERS];
	dnnl_engine_t eng;
	dnnl_stream_t strm;
	uint64_t rng = 1;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--verbose")) {
			verbose = 1;
			continue;
		}
		if (!strcmp(a, "--clock")) {
			printf("{\"clock_mhz\":%.0f}\n", measure_clock_mhz());
			return 0;
		}
		if (!v)
			die(a, "needs a value (see the comment at the top of bench_dnnl_mlp.c)");
		i++;
		if (!strcmp(a, "--dims")) {
			char *copy = strdup(v), *save = NULL;
			int n = 0;

			for (char *t = strtok_r(copy, ",-", &save); t; t = strtok_r(NULL, ",-", &save)) {
				if (n > MAX_LAYERS)
					die(a, "too many layers");
				dims[n++] = parse_i64(t, a);
			}
			free(copy);
			if (n < 2)
				die(a, "wants at least an input and an output size");
			nlayers = n - 1;
		} else if (!strcmp(a, "--batch")) {
			batch = parse_i64(v, a);
		} else if (!strcmp(a, "--threads")) {
			threads = (int)parse_i64(v, a);
		} else if (!strcmp(a, "--steps")) {
			steps = parse_i64(v, a);
		} else if (!strcmp(a, "--warmup")) {
			warmup = atoll(v);
		} else if (!strcmp(a, "--data")) {
			data_dir = v;
		} else if (!strcmp(a, "--lr")) {
			lr = strtof(v, NULL);
		} else if (!strcmp(a, "--momentum")) {
			mom = strtof(v, NULL);
		} else {
			die(a, "unknown option");
		}
	}
	if (!steps)
		steps = TRAIN_SAMPLES / batch;
	if (dims[0] != IMAGE_PIXELS || dims[nlayers] > CLASSES_MAX)
		die("--dims", "the input must be 784 pixels and the output at most 4096 classes");
	omp_set_num_threads(threads);

	/* Data: u8 pixels and labels, shuffled per epoch with a seeded Fisher-Yates. */
	uint8_t *pixels = read_idx(data_dir, "train-images-idx3-ubyte",
		(size_t)TRAIN_SAMPLES * IMAGE_PIXELS, 16);
	uint8_t *labels8 = read_idx(data_dir, "train-labels-idx1-ubyte", TRAIN_SAMPLES, 8);
	int synthetic = !pixels || !labels8;

	if (synthetic) {
		free(pixels);
		free(labels8);
		pixels = malloc((size_t)TRAIN_SAMPLES * IMAGE_PIXELS);
		labels8 = malloc(TRAIN_SAMPLES);
		if (!pixels || !labels8)
			die("malloc", strerror(ENOMEM));
		for (size_t i = 0; i < (size_t)TRAIN_SAMPLES * IMAGE_PIXELS; i++)
			pixels[i] = (uint8_t)rng_next(&rng);
		for (size_t i = 0; i < TRAIN_SAMPLES; i++)
			labels8[i] = (uint8_t)(rng_next(&rng) % (uint64_t)dims[nlayers]);
	}
	int32_t *order = malloc(TRAIN_SAMPLES * sizeof(*order));
	int *labels = malloc((size_t)batch * sizeof(*labels));

	if (!order || !labels)
		die("malloc", strerror(ENOMEM));
	for (int i = 0; i < TRAIN_SAMPLES; i++)
		order[i] = i;

	dnnl_ok(dnnl_engine_create(&eng, dnnl_cpu, 0), "engine");
	dnnl_ok(dnnl_stream_create(&strm, eng, dnnl_stream_default_flags), "stream");

	dnnl_memory_desc_t in_md = md_2d(batch, dims[0], dnnl_nc);
	dnnl_memory_t input = mem_new(&in_md, eng);
	dnnl_memory_t src = input;

	for (int l = 0; l < nlayers; l++) {
		layers[l] = (struct layer){.in = dims[l], .out = dims[l + 1], .relu = l + 1 < nlayers};
		build_layer(&layers[l], l, batch, src, eng, verbose);
		init_weights(&layers[l], eng, strm, &rng);
		src = layers[l].dst;
	}
	struct layer *last = &layers[nlayers - 1];
	const int64_t classes = dims[nlayers];
	const int64_t per_epoch = TRAIN_SAMPLES / batch;
	int64_t cursor = per_epoch; /* forces a shuffle before the first step */
	float loss_first = 0, loss_last = 0;
	double t0 = 0;

	for (int64_t step = 0; step < warmup + steps; step++) {
		if (step == warmup) {
			dnnl_ok(dnnl_stream_wait(strm), "stream wait");
			t0 = now_s();
		}
		if (cursor == per_epoch) {
			for (int i = TRAIN_SAMPLES - 1; i > 0; i--) {
				int j = (int)(rng_next(&rng) % (uint64_t)(i + 1));
				int32_t t = order[i];

				order[i] = order[j];
				order[j] = t;
			}
			cursor = 0;
		}
		/* Gather the batch. */
		float *x = mem_ptr(input);
		const int32_t *idx = order + cursor * batch;

		for (int64_t i = 0; i < batch; i++) {
			const uint8_t *p = pixels + (size_t)idx[i] * IMAGE_PIXELS;

			for (int k = 0; k < IMAGE_PIXELS; k++)
				x[i * IMAGE_PIXELS + k] = (float)p[k] * (1.0f / 255.0f);
			labels[i] = labels8[idx[i]];
		}
		cursor++;

		for (int l = 0; l < nlayers; l++) {
			struct layer *L = &layers[l];

			exec(L->fwd, strm, 4, (dnnl_exec_arg_t[]){{DNNL_ARG_SRC, L->src},
				{DNNL_ARG_WEIGHTS, L->weights}, {DNNL_ARG_BIAS, L->bias},
				{DNNL_ARG_DST, L->dst}}, "forward");
		}
		float loss = softmax_xent(mem_ptr(last->dst), labels, batch, classes,
			mem_ptr(last->diff_dst));

		if (step == warmup)
			loss_first = loss;
		loss_last = loss;
		for (int l = nlayers - 1; l >= 0; l--) {
			struct layer *L = &layers[l];

			if (L->relu)
				exec(L->relu_bwd, strm, 3, (dnnl_exec_arg_t[]){{DNNL_ARG_DST, L->dst},
					{DNNL_ARG_DIFF_DST, L->diff_dst},
					{DNNL_ARG_DIFF_SRC, L->diff_pre}}, "relu backward");
			if (L->bwd_data)
				exec(L->bwd_data, strm, 3, (dnnl_exec_arg_t[]){
					{DNNL_ARG_DIFF_DST, L->diff_pre}, {DNNL_ARG_WEIGHTS, L->weights},
					{DNNL_ARG_DIFF_SRC, layers[l - 1].diff_dst}}, "backward data");
			exec(L->bwd_weights, strm, 4, (dnnl_exec_arg_t[]){{DNNL_ARG_SRC, L->src},
				{DNNL_ARG_DIFF_DST, L->diff_pre},
				{DNNL_ARG_DIFF_WEIGHTS, L->diff_weights},
				{DNNL_ARG_DIFF_BIAS, L->diff_bias}}, "backward weights");
		}
		for (int l = 0; l < nlayers; l++) {
			struct layer *L = &layers[l];

			sgd_momentum(L->weights, L->diff_weights, L->mom_weights, lr, mom);
			sgd_momentum(L->bias, L->diff_bias, L->mom_bias, lr, mom);
		}
	}
	dnnl_ok(dnnl_stream_wait(strm), "stream wait");
	double wall = now_s() - t0;

	printf("{\"bench\":\"dnnl_mlp\",\"dims\":\"");
	for (int l = 0; l <= nlayers; l++)
		printf("%s%lld", l ? "-" : "", (long long)dims[l]);
	printf("\",\"batch\":%lld,\"threads\":%d,\"steps\":%lld,\"warmup\":%lld,"
		"\"wall_s\":%.4f,\"samples_per_s\":%.1f,\"loss_first\":%.4f,\"loss_last\":%.4f,"
		"\"data\":\"%s\"}\n",
		(long long)batch, threads, (long long)steps, (long long)warmup, wall,
		(double)(steps * batch) / wall, loss_first, loss_last,
		synthetic ? "synthetic" : "fashion-mnist");

	for (int l = 0; l < nlayers; l++) {
		struct layer *L = &layers[l];

		dnnl_primitive_destroy(L->fwd);
		dnnl_primitive_destroy(L->bwd_weights);
		if (L->bwd_data)
			dnnl_primitive_destroy(L->bwd_data);
		if (L->relu_bwd)
			dnnl_primitive_destroy(L->relu_bwd);
		dnnl_memory_destroy(L->dst);
		dnnl_memory_destroy(L->weights);
		dnnl_memory_destroy(L->bias);
		dnnl_memory_destroy(L->diff_weights);
		dnnl_memory_destroy(L->diff_bias);
		dnnl_memory_destroy(L->mom_weights);
		dnnl_memory_destroy(L->mom_bias);
		dnnl_memory_destroy(L->diff_dst);
		if (L->relu)
			dnnl_memory_destroy(L->diff_pre);
	}
	dnnl_memory_destroy(input);
	dnnl_stream_destroy(strm);
	dnnl_engine_destroy(eng);
	free(order);
	free(labels);
	free(pixels);
	free(labels8);
	return 0;
}
