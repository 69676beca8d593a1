/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * `nsplit profile`: what the planner needs to know of this machine: each layer (profile.h) and
 * two peers joined by a net_ring pair in this process:
 * the link's bandwidth (4 MiB messages) and latency (half a 64-byte round trip). Writes a cost
 * file (cost.h) and prints a table.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nsplit/compute.h"
#include "nsplit/eal.h"
#include "nsplit/error.h"
#include "nsplit/link.h"
#include "nsplit/poll.h"
#include "nsplit/port.h"
#include "nsplit/rng.h"
#include "nsplit/stage.h"
#include "nsplit/wire.h"
#include "cli.h"
#include "commands.h"
#include "cost.h"
#include "profile.h"
#include "progress.h"


struct profile_opts {
	const char *model, *optimizer, *out;
	struct nsl_shape input;
	int batch, micro, threads;
};

static void usage(FILE *f)
{
	fputs("usage: nsplit profile [options]\n"
	      "Measure each layer of a model and a link between two peers on this machine, for\n"
	      "nsplit plan: writes a JSON cost file.\n"
	      "  --model M          as nsplit train's (default mlp:784-512-256-10)\n"
	      "  --input CxHxW      the sample shape (default 1x28x28, Fashion-MNIST)\n"
	      "  --batch B          the training batch (default 64)\n"
	      "  --micro-batch M    rows per micro-batch, as the layers will run (default batch / 8);\n"
	      "                     calls are also timed on 1, 2, 4, ... rows up to the batch\n"
	      "  --optimizer NAME   sgd, adam or adamw: its state counts in each layer's bytes (default sgd,\n"
	      "                     with momentum)\n"
	      "  --threads T        compute threads per peer (default 1)\n"
	      "  --out FILE         the cost file (default cost.json)\n",
	      f);
}

static int parse(int argc, char **argv, struct profile_opts *o)
{
	static const struct option opts[] = {
		{ "model", required_argument, NULL, 'm' }, { "input", required_argument, NULL, 'i' },
		{ "batch", required_argument, NULL, 'b' }, { "micro-batch", required_argument, NULL, 'u' },
		{ "optimizer", required_argument, NULL, 'o' }, { "threads", required_argument, NULL, 't' },
		{ "out", required_argument, NULL, 'f' }, { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	int c, rc = 0;

	optind = 0;
	while (rc == 0 && (c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'm': o->model = optarg; break;
		case 'i': rc = nsl_cli_shape("input", optarg, &o->input); break;
		case 'b': rc = nsl_cli_int("batch", optarg, 1, 1 << 20, &o->batch); break;
		case 'u': rc = nsl_cli_int("micro-batch", optarg, 1, 1 << 20, &o->micro); break;
		case 'o': o->optimizer = optarg; break;
		case 't': rc = nsl_cli_int("threads", optarg, 1, 1024, &o->threads); break;
		case 'f': o->out = optarg; break;
		case 'h': usage(stdout); return 1;
		default: usage(stderr); return 2;
		}
	}
	if (rc < 0)
		return nsl_cli_fail("profile") + 1;
	if (optind < argc) {
		fprintf(stderr, "nsplit profile: unexpected argument \"%s\"\n", argv[optind]);
		return 2;
	}
	return 0;
}

/* n messages of `bytes` from l[0] to l[1] (and back, with round_trip), one at a time, this thread
 * polling both ends as the link tests do: the seconds they took, or -1. */
static double exchange(struct nsl_link *l[2], void *src, void *dst, uint64_t bytes, int n, bool round_trip)
{
	double t0 = nsl_now();

	for (int k = 0; k < n; k++)
		for (int dir = 0; dir < (round_trip ? 2 : 1); dir++) {
			struct nsl_msg out = { .data = src, .len = bytes, .peer = (uint16_t)(1 - dir), .type = NSL_MSG_CONTROL };
			struct nsl_msg slot = { .data = dst, .len = bytes, .peer = (uint16_t)dir }, *got = NULL, *sent = NULL;

			if (nsl_link_post(l[1 - dir], &slot) < 0 || nsl_link_send(l[dir], &out) < 0)
				return -1;
			while (got == NULL || sent == NULL) {
				if (nsl_link_poll(l[0]) < 0 || nsl_link_poll(l[1]) < 0 || nsl_now() - t0 > 30)
					return -1;
				if (got == NULL)
					nsl_link_recv(l[1 - dir], &got, 1);
				if (sent == NULL)
					nsl_link_sent(l[dir], &sent, 1);
			}
			if (got->status < 0 || sent->status < 0)
				return -1;
		}
	return nsl_now() - t0;
}

/* The first two CPUs this process may run on (the same one twice when it has only one). */
static int two_cpus(int cpu[2])
{
	cpu_set_t cpus;
	int k = 0;

	cpu[0] = cpu[1] = -1;
	if (sched_getaffinity(0, sizeof(cpus), &cpus) != 0)
		return -1;
	for (int c = 0; c < CPU_SETSIZE && k < 2; c++)
		if (CPU_ISSET(c, &cpus))
			cpu[k++] = c;
	if (cpu[1] < 0)
		cpu[1] = cpu[0];
	return cpu[0] >= 0 ? 0 : -1;
}

/*
 * One end of a stream of messages between two threads on cores of their own, as peers' messages
 * cross between cores: the receiver copies out of frames another core wrote. Each end adds up
 * the time of its calls that did something (a send, a post, a poll that moved frames), what the
 * messages cost its core; empty polls are waiting, not work.
 */
struct streamer {
	struct nsl_link *l;
	int self, n, cpu, rc;
	uint64_t bytes;
	void *buf;
	atomic_int *posted;           /* messages the receiver has a slot posted for */
	double busy;
};

static void *stream_main(void *arg)
{
	struct streamer *g = arg;
	cpu_set_t one;
	double t0 = nsl_now();

	CPU_ZERO(&one);
	CPU_SET(g->cpu, &one);
	g->rc = nsl_eal_thread_register() == 0 && pthread_setaffinity_np(pthread_self(), sizeof(one), &one) == 0 ? 0 : -1;
	for (int k = 0; k < g->n && g->rc == 0; k++) {
		struct nsl_msg m = { .data = g->buf, .len = g->bytes, .peer = (uint16_t)(1 - g->self), .type = NSL_MSG_CONTROL };
		struct nsl_msg *done = NULL;
		double t = nsl_now();

		if (g->self == 0) {
			/* a message goes once its slot is posted: none arrives to be dropped */
			while (atomic_load(g->posted) <= k && nsl_now() - t0 < 30)
				;
			t = nsl_now();
			g->rc = nsl_link_send(g->l, &m) < 0 ? -1 : 0;
		} else {
			g->rc = nsl_link_post(g->l, &m) < 0 ? -1 : 0;
			atomic_store(g->posted, k + 1);
		}
		g->busy += nsl_now() - t;
		while (g->rc == 0 && done == NULL) {
			int work;

			t = nsl_now();
			work = nsl_link_poll(g->l);
			if (work >= 0)
				work += (int)(g->self == 0 ? nsl_link_sent(g->l, &done, 1) : nsl_link_recv(g->l, &done, 1));
			if (work > 0)
				g->busy += nsl_now() - t;
			if (work < 0 || nsl_now() - t0 > 30)
				g->rc = -1;
		}
		if (g->rc == 0 && done->status < 0)
			g->rc = -1;
	}
	nsl_eal_thread_unregister();
	return NULL;
}

/* What each end's core pays a byte of messages of `bytes` (best of 3 streams of n): rate[0] the
 * sender's, rate[1] the receiver's. 0 or -1. */
static int side_rates(struct nsl_link *l[2], void *buf[2], uint64_t bytes, int n, double rate[2])
{
	int cpu[2];

	if (two_cpus(cpu) < 0)
		return -1;
	rate[0] = rate[1] = 0;
	for (int run = 0; run < 3; run++) {
		atomic_int posted = 0;
		struct streamer g[2];
		pthread_t t[2];
		int started = 0;

		for (int i = 0; i < 2; i++)
			g[i] = (struct streamer){ .l = l[i], .self = i, .n = n, .cpu = cpu[i], .bytes = bytes, .buf = buf[i],
						  .posted = &posted };
		while (started < 2 && pthread_create(&t[started], NULL, stream_main, &g[started]) == 0)
			started++;
		for (int i = 0; i < started; i++)
			pthread_join(t[i], NULL);
		if (started < 2 || g[0].rc < 0 || g[1].rc < 0 || g[0].busy <= 0 || g[1].busy <= 0)
			return -1;
		for (int i = 0; i < 2; i++)
			rate[i] = fmax(rate[i], (double)bytes * n / g[i].busy);
	}
	return 0;
}

/* Two peers as nsplit train runs them when they outnumber the cores: a thread each, both on one
 * CPU that a third thread keeps busy computing, napping while they wait (adaptive polling, on
 * bells each rings when its poll did something). Half
 * a round trip is what a message costs there: mostly the wait for the receiver to get the core
 * back from the one computing. */
struct pinger {
	struct nsl_link *l;
	int self, n, rc;
	void *buf;
	int cpu;
	struct nsl_bell *bell, *partner;   /* as peers of one process nap and wake each other */
	double pause_s;                    /* > 0: pause before each send, so the receiver naps */
	double *delays;                    /* with a pause: each message's delay, sent to seen */
	int ndelays;
};

static int pinger_wait(struct pinger *g, struct nsl_idle *idle, bool recv)
{
	struct nsl_msg *m = NULL;
	double t0 = nsl_now();

	while (m == NULL) {
		int work = nsl_link_poll(g->l);

		if (work < 0 || nsl_now() - t0 > 10)
			return -1;
		if (work > 0)
			nsl_bell_ring(g->partner);
		work += (int)(recv ? nsl_link_recv(g->l, &m, 1) : nsl_link_sent(g->l, &m, 1));
		nsl_idle_after(idle, work);
	}
	return m->status;
}

static void *pinger_main(void *arg)
{
	struct pinger *g = arg;
	struct nsl_idle idle;
	cpu_set_t one;

	CPU_ZERO(&one);
	CPU_SET(g->cpu, &one);
	g->rc = nsl_eal_thread_register() == 0 && pthread_setaffinity_np(pthread_self(), sizeof(one), &one) == 0 ? 0 : -1;
	nsl_idle_init(&idle, NSL_POLL_ADAPTIVE);
	nsl_idle_set_bell(&idle, g->bell);
	for (int k = 0; k < g->n && g->rc == 0; k++)
		for (int turn = 0; turn < 2 && g->rc == 0; turn++) {
			struct nsl_msg out = { .data = g->buf, .len = 64, .peer = (uint16_t)(1 - g->self), .type = NSL_MSG_CONTROL };
			struct nsl_msg slot = { .data = (uint8_t *)g->buf + 64, .len = 64, .peer = (uint16_t)(1 - g->self) };

			if (turn == g->self) {
				if (g->pause_s > 0) {
					nanosleep(&(struct timespec){ .tv_nsec = (long)(g->pause_s * 1e9) }, NULL);
					*(double *)g->buf = nsl_now();
				}
				g->rc = nsl_link_send(g->l, &out) < 0 || pinger_wait(g, &idle, false) < 0 ? -1 : 0;
			} else {
				g->rc = nsl_link_post(g->l, &slot) < 0 || pinger_wait(g, &idle, true) < 0 ? -1 : 0;
				if (g->rc == 0 && g->delays != NULL)
					g->delays[g->ndelays++] = nsl_now() - *(const double *)slot.data;
			}
		}
	nsl_eal_thread_unregister();
	return NULL;
}

/* Run the two pingers g[0], g[1] to the end: 0, or -1 when one could not start or failed. */
static int ping_pong(struct pinger g[2])
{
	pthread_t t[2];
	int started = 0;

	while (started < 2 && pthread_create(&t[started], NULL, pinger_main, &g[started]) == 0)
		started++;
	for (int i = 0; i < started; i++)
		pthread_join(t[i], NULL);
	return started == 2 && g[0].rc == 0 && g[1].rc == 0 ? 0 : -1;
}

struct spinner {
	int cpu;
	atomic_int *stop;
};

static void *spin_main(void *arg)
{
	struct spinner *b = arg;
	cpu_set_t one;
	volatile double x = 1;

	CPU_ZERO(&one);
	CPU_SET(b->cpu, &one);
	pthread_setaffinity_np(pthread_self(), sizeof(one), &one);
	while (!atomic_load(b->stop))
		for (int i = 0; i < 10000; i++)
			x = x * 1.0000001 + 1e-9;
	return NULL;
}

static double shared_latency(struct nsl_link *l[2], void *buf[2])
{
	struct pinger g[2];
	struct nsl_bell bells[2] = { 0 };
	pthread_t spinner;
	atomic_int stop = 0;
	int cpus[2], cpu, n = 100, rc;
	double t0;

	if (two_cpus(cpus) < 0)
		return -1;
	cpu = cpus[0];
	struct spinner sp = { .cpu = cpu, .stop = &stop };

	if (pthread_create(&spinner, NULL, spin_main, &sp) != 0)
		return -1;
	for (int i = 0; i < 2; i++)
		g[i] = (struct pinger){ .l = l[i], .self = i, .n = n, .buf = buf[i], .cpu = cpu, .bell = &bells[i],
					.partner = &bells[1 - i] };
	t0 = nsl_now();
	rc = ping_pong(g);
	t0 = nsl_now() - t0;
	atomic_store(&stop, 1);
	pthread_join(spinner, NULL);
	return rc == 0 ? t0 / (2.0 * n) : -1;
}

/* What a receiver pays a byte on its own core: the CRC and the copy out of the frames (best of 8). */
static double copy_rate(void *src, void *dst, uint64_t bytes)
{
	double best = INFINITY;

	for (int i = 0; i < 8; i++) {
		const double t0 = nsl_now();

		nsl_crc32c_copy(0, dst, src, bytes);
		best = fmin(best, nsl_now() - t0);
	}
	return best > 0 ? (double)bytes / best : 0;
}

/* Two peers of one process on cores of their own, each pausing 1 ms before it sends so that the
 * other naps on its bell by then: the median time from a send to its receiver seeing it, what a
 * message costs a napping peer whose core is free. */
static double wake_latency(struct nsl_link *l[2], void *buf[2])
{
	enum { N = 40 };
	struct pinger g[2];
	struct nsl_bell bells[2] = { 0 };
	double delays[2][N], all[2 * N];
	int cpu[2], n = 0;

	if (two_cpus(cpu) < 0)
		return -1;
	for (int i = 0; i < 2; i++)
		g[i] = (struct pinger){ .l = l[i], .self = i, .n = N, .buf = buf[i], .cpu = cpu[i], .bell = &bells[i],
					.partner = &bells[1 - i], .pause_s = 1e-3, .delays = delays[i] };
	if (ping_pong(g) < 0)
		return -1;
	for (int i = 0; i < 2; i++)
		for (int d = 0; d < g[i].ndelays; d++)
			all[n++] = delays[i][d];
	return n ? nsl_median(all, (size_t)n) : -1;
}

static int profile_link(struct nsl_cost *c)
{
	struct nsl_port *ports[2] = { NULL, NULL };
	struct nsl_link *l[2] = { NULL, NULL };
	const uint64_t big = NSL_COPY_LARGE;
	void *src = NULL, *dst = NULL;
	double t;
	int rc = nsl_eal_init(&(struct nsl_eal_conf){ .mem_mb = 256 });

	if (rc == 0)
		rc = nsl_port_ring_pair("profile", &(struct nsl_port_conf){ 0 }, ports);
	for (int i = 0; i < 2 && rc == 0; i++) {
		uint8_t mac[6];

		if ((l[i] = nsl_link_create(&(struct nsl_link_conf){ .self = (uint16_t)i, .max_msg = big })) == NULL) {
			rc = -EINVAL;
			break;
		}
		nsl_port_mac(ports[1 - i], mac);
		rc = nsl_link_add_peer(l[i], (uint16_t)(1 - i), ports[i], mac, 0);
	}
	if (rc == 0 && ((src = nsl_dp_alloc(big, 64)) == NULL || (dst = nsl_dp_alloc(big, 64)) == NULL))
		rc = -ENOMEM;
	if (rc == 0) {
		double small[2] = { 0, 0 }, large[2] = { 0, 0 };

		const uint64_t mib4 = 4u << 20;

		exchange(l, src, dst, mib4, 2, false);   /* warm-up */
		t = exchange(l, src, dst, mib4, 16, false);
		c->link_bw = t > 0 ? 16.0 * (double)mib4 / t : 0;
		if (side_rates(l, (void *[2]){ src, dst }, NSL_COPY_SMALL, 64, small) < 0 ||
		    side_rates(l, (void *[2]){ src, dst }, NSL_COPY_LARGE, 4, large) < 0)
			c->link_bw = 0;
		c->send_bw = small[0];
		c->recv_bw = small[1];
		c->send_large_bw = large[0];
		c->recv_large_bw = large[1];
		t = exchange(l, src, dst, 64, 200, true);
		c->link_lat = t > 0 ? t / 400 : 0;
		c->shared_lat = shared_latency(l, (void *[2]){ src, dst });
		c->wake_lat = wake_latency(l, (void *[2]){ src, dst });
		c->copy_bw = copy_rate(src, dst, NSL_COPY_SMALL);
		c->copy_large_bw = copy_rate(src, dst, NSL_COPY_LARGE);   /* beyond the caches */
		if (c->link_bw <= 0 || c->link_lat <= 0 || c->shared_lat <= 0 || c->wake_lat <= 0 || c->copy_large_bw <= 0)
			rc = nsl_error_set(EIO, "profile: the net_ring link did not carry its messages");
	}
	nsl_dp_free(src);
	nsl_dp_free(dst);
	for (int i = 0; i < 2; i++)
		nsl_link_free(l[i]);
	for (int i = 0; i < 2; i++)
		nsl_port_close(ports[i]);
	nsl_eal_cleanup();
	return rc;
}

int nsl_cmd_profile(int argc, char **argv)
{
	struct profile_opts o = { .model = "mlp:784-512-256-10", .optimizer = "sgd", .out = "cost.json",
				  .input = { 1, 28, 28 }, .batch = 64, .threads = 1 };
	struct nsl_optim_config oc;
	struct nsl_model *m = NULL;
	struct nsl_cost c = { 0 };
	double *move = NULL, *state = NULL;
	char machine[128] = "";
	FILE *cpu;
	int rc = parse(argc, argv, &o);

	if (rc != 0)
		return rc == 1 ? 0 : rc;
	if (o.micro == 0)
		o.micro = o.batch / 8 > 0 ? o.batch / 8 : 1;
	if ((rc = nsl_optim_config_init(&oc, o.optimizer)) < 0 || (m = nsl_model_parse(o.model, o.input)) == NULL)
		return nsl_cli_fail("profile");
	if (oc.ops == &nsl_optim_sgd)
		oc.momentum = 0.9f;
	c.nlayers = m->nlayers;
	c.micro = o.micro;
	c.slots = 1;
	c.layer = calloc((size_t)m->nlayers, sizeof(*c.layer));
	move = calloc((size_t)m->nlayers, sizeof(double));
	state = calloc((size_t)m->nlayers, sizeof(double));
	if (c.layer == NULL || move == NULL || state == NULL) {
		rc = nsl_error_set(ENOMEM, "out of memory");
		goto out;
	}
	if ((cpu = fopen("/proc/cpuinfo", "r")) != NULL) {
		char line[256];

		while (fgets(line, sizeof(line), cpu))
			if (strncmp(line, "model name", 10) == 0 && strchr(line, ':')) {
				snprintf(machine, sizeof(machine), "%s", strchr(line, ':') + 2);
				machine[strcspn(machine, "\n")] = 0;
				break;
			}
		fclose(cpu);
	}
	printf("profiling %s: %d layers, micro-batch %d of batch %d, %d thread%s\n", m->text, m->nlayers, o.micro, o.batch,
	       o.threads, o.threads == 1 ? "" : "s");
	fflush(stdout);
	if ((rc = nsl_profile_layers(m, o.micro, o.batch, o.threads, &oc, &c, state)) < 0 || (rc = profile_link(&c)) < 0)
		goto out;
	{
		cpu_set_t cpus;

		if ((rc = nsl_profile_contention(m, o.micro, &oc,
						 sched_getaffinity(0, sizeof(cpus), &cpus) == 0 ? CPU_COUNT(&cpus) : 1,
						 &c.busy_factor)) < 0)
			goto out;
	}
	printf("%5s %-8s %12s %12s %12s %12s %10s %10s %10s\n", "layer", "kind", "fwd us/smp", "bwd us/smp", "fixed KiB",
	       "act B/smp", "move ms", "step ms", "make ms");
	for (int i = 0; i < m->nlayers; i++) {
		move[i] = state[i] / c.link_bw;
		printf("%5d %-8s %12.3f %12.3f %12.1f %12.0f %10.3f %10.3f %10.3f\n", i, nsl_layer_kind_name(m->layers[i].kind),
		       c.layer[i].fwd_s * 1e6, c.layer[i].bwd_s * 1e6, c.layer[i].fixed_bytes / 1024, c.layer[i].act_bytes,
		       move[i] * 1e3, c.layer[i].step_s * 1e3, c.layer[i].make_s * 1e3);
	}
	printf("with every core busy, the model computes %.2fx as long\n", c.busy_factor);
	printf("link (net_ring, one process): %.2f GB/s, latency %.1f us (%.1f us to a napping peer, %.1f us with both "
	       "peers on one core, napping while a third computes there); a core checks and copies %.2f GB/s of "
	       "messages in cache, %.2f GB/s beyond; streamed between two cores, the sender pays a byte at %.2f GB/s "
	       "(%.2f beyond the caches), the receiver at %.2f (%.2f)\n",
	       c.link_bw / 1e9, c.link_lat * 1e6, c.wake_lat * 1e6, c.shared_lat * 1e6, c.copy_bw / 1e9,
	       c.copy_large_bw / 1e9, c.send_bw / 1e9, c.send_large_bw / 1e9, c.recv_bw / 1e9, c.recv_large_bw / 1e9);
	rc = nsl_cost_write(o.out, &c, m,
			    &(struct nsl_cost_meta){ .batch = o.batch, .micro = o.micro, .threads = o.threads,
						     .machine = machine, .transport = "net_ring", .move_s = move });
	if (rc == 0)
		printf("cost file written to %s\n", o.out);
out:
	free(c.layer);
	free(move);
	free(state);
	nsl_model_free(m);
	return rc < 0 ? nsl_cli_fail("profile") : 0;
}
