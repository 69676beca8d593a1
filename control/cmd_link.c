/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * nsplit link: move messages between two peers over any DPDK port and check every byte. The
 * tests run it over memif (two processes) and af_packet (network namespaces); the dataplane
 * benchmark times it. Peer 0 sends, peer 1 receives; --ring runs both in this process over a
 * net_ring pair, one thread each.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rte_lcore.h>

#include "nsplit/eal.h"
#include "nsplit/error.h"
#include "nsplit/faults.h"
#include "nsplit/link.h"
#include "nsplit/port.h"
#include "nsplit/rng.h"
#include "cli.h"
#include "commands.h"

#define BURST 32
#define QUIET_S 0.5

static void usage(FILE *f)
{
	fputs(
"usage: nsplit link (--ring | --self 0|1 --port DEVARGS) [options] [-- EAL args]\n"
"Move messages from peer 0 to peer 1 over a DPDK port and check every byte.\n"
"\n"
"  --ring             both peers in this process over a net_ring pair (one thread each)\n"
"  --self ID          this peer: 0 sends, 1 receives\n"
"  --port DEVARGS     the port, e.g. net_memif0,role=server,socket=/tmp/n.sock or\n"
"                     net_af_packet0,iface=veth0 (see README: Ports)\n"
"  --peer-mac MAC     the other peer's MAC (default broadcast; fine point to point)\n"
"  --mtu N            IP MTU (default 1500)\n"
"  --count N          messages (default 64)\n"
"  --size BYTES       bytes per message, K/M/G suffixes (default 1M)\n"
"  --random-sizes     message k has 1..--size bytes, the same on both peers for a --seed\n"
"  --window N         messages in flight (default 16)\n"
"  --no-verify        skip the byte-for-byte check (the link's CRC32C still holds)\n"
"  --faults SPEC      drop=P,dup=P,reorder=W,corrupt=P,seed=S on receive (percent)\n"
"  --peer-timeout MS  a silent peer is dead after this (default 5000)\n"
"  --deadline S       give up after S seconds (default 600)\n"
"  --session ID       session id, the same on both peers (default 1)\n"
"  --seed S           message sizes and contents (default 1)\n"
"  --dp-mem MIB       DPDK heap in MiB (default: enough for the window)\n"
"  --json             one JSON line per peer at the end\n"
"  -h, --help         this text\n",
		f);
}

enum { O_RING = 256, O_SELF, O_PORT, O_MAC, O_MTU, O_COUNT, O_SIZE, O_RANDOM, O_WINDOW, O_NOVERIFY, O_FAULTS,
       O_TIMEOUT, O_DEADLINE, O_SESSION, O_SEED, O_MEM, O_JSON };

static const struct option long_opts[] = {
	{ "ring", no_argument, NULL, O_RING },
	{ "self", required_argument, NULL, O_SELF },
	{ "port", required_argument, NULL, O_PORT },
	{ "peer-mac", required_argument, NULL, O_MAC },
	{ "mtu", required_argument, NULL, O_MTU },
	{ "count", required_argument, NULL, O_COUNT },
	{ "size", required_argument, NULL, O_SIZE },
	{ "random-sizes", no_argument, NULL, O_RANDOM },
	{ "window", required_argument, NULL, O_WINDOW },
	{ "no-verify", no_argument, NULL, O_NOVERIFY },
	{ "faults", required_argument, NULL, O_FAULTS },
	{ "peer-timeout", required_argument, NULL, O_TIMEOUT },
	{ "deadline", required_argument, NULL, O_DEADLINE },
	{ "session", required_argument, NULL, O_SESSION },
	{ "seed", required_argument, NULL, O_SEED },
	{ "dp-mem", required_argument, NULL, O_MEM },
	{ "json", no_argument, NULL, O_JSON },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

struct link_opts {
	bool ring, random_sizes, verify, json, has_mac;
	int self, window, mtu, timeout_ms, deadline_s, mem_mb;
	const char *port, *faults;
	uint8_t mac[6];
	uint64_t count, size, seed, session;
};

/* One peer's run. */
struct side {
	const struct link_opts *o;
	int self;
	struct nsl_port *port;
	struct nsl_link *link;
	struct nsl_fault_injector *fi;
	uint8_t **bufs;
	struct nsl_msg *msgs;
	uint64_t msgs_done, bytes;
	double seconds;
	int rc;
	char err[512];
};

static volatile sig_atomic_t stop;
/* The CPUs this process could use before EAL pinned the main thread to one of them. */
static cpu_set_t cpus_before_eal;

/*
 * Spin while there is work; once idle for a while, yield, so that two peers' threads sharing a
 * core (as on a 2-core machine running more lcores than cores) let each other run.
 */
static void idle_backoff(int work, unsigned *idle)
{
	if (work > 0) {
		*idle = 0;
		return;
	}
	if (++*idle > 256)
		sched_yield();
}

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t msg_len(const struct link_opts *o, uint64_t k)
{
	return o->random_sizes ? 1 + nsl_hash2(o->seed, k) % o->size : o->size;
}

/* Message k's bytes: a function of (seed, k, position), so the receiver can check without a copy. */
static uint64_t pattern(const struct link_opts *o, uint64_t k, uint64_t word)
{
	return nsl_hash2(o->seed ^ (k * 0x9e3779b97f4a7c15ULL), word);
}

static void fill(const struct link_opts *o, uint64_t k, uint8_t *p, uint64_t len)
{
	uint64_t w = 0, v;

	for (; (w + 1) * 8 <= len; w++) {
		v = pattern(o, k, w);
		memcpy(p + w * 8, &v, 8);
	}
	v = pattern(o, k, w);
	memcpy(p + w * 8, &v, len - w * 8);
}

/* The first differing byte, or -1. */
static int64_t check(const struct link_opts *o, uint64_t k, const uint8_t *p, uint64_t len)
{
	uint64_t w = 0, v;

	for (; w * 8 < len; w++) {
		uint64_t n = len - w * 8 < 8 ? len - w * 8 : 8;

		v = pattern(o, k, w);
		if (memcmp(p + w * 8, &v, n) != 0)
			for (uint64_t i = 0; i < n; i++)
				if (p[w * 8 + i] != ((uint8_t *)&v)[i])
					return (int64_t)(w * 8 + i);
	}
	return -1;
}

static int fail(struct side *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct side *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->err, sizeof(s->err), fmt, ap);
	va_end(ap);
	s->rc = 1;
	return 1;
}

static int alloc_bufs(struct side *s, int n, uint64_t bytes)
{
	s->bufs = calloc((size_t)n, sizeof(*s->bufs));
	s->msgs = calloc((size_t)n, sizeof(*s->msgs));
	if (s->bufs == NULL || s->msgs == NULL)
		return fail(s, "out of memory");
	for (int i = 0; i < n; i++)
		if ((s->bufs[i] = nsl_dp_alloc(bytes, 4096)) == NULL)
			return fail(s, "%s", nsl_error_last());
	return 0;
}

static void free_bufs(struct side *s, int n)
{
	for (int i = 0; s->bufs != NULL && i < n; i++)
		nsl_dp_free(s->bufs[i]);
	free(s->bufs);
	free(s->msgs);
}

static int dead(struct side *s)
{
	return fail(s, "peer %d: peer %d stopped answering (%s)", s->self, nsl_link_dead_peer(s->link),
		    nsl_error_last());
}

static int run_sender(struct side *s)
{
	const struct link_opts *o = s->o;
	int w = o->window;
	uint64_t next = 0;
	double t0 = now_s(), t_end = t0 + o->deadline_s;
	unsigned idle = 0;
	int rc;

	if (alloc_bufs(s, w, o->size) != 0)
		return 1;
	while (s->msgs_done < o->count && !stop && s->rc == 0) {
		struct nsl_msg *done[BURST];
		unsigned n;

		/* Messages come back in the order they were sent, so buffer next % w is free again once
		 * message next - w is back. */
		while (next < o->count && next - s->msgs_done < (uint64_t)w) {
			int i = (int)(next % (uint64_t)w);
			struct nsl_msg *m = &s->msgs[i];

			*m = (struct nsl_msg){ .data = s->bufs[i], .len = msg_len(o, next), .peer = 1,
					       .type = NSL_MSG_ACTIVATION, .step = (uint32_t)next };
			if (o->verify)
				fill(o, next, s->bufs[i], m->len);
			if (nsl_link_send(s->link, m) < 0)
				return fail(s, "%s", nsl_error_last());
			next++;
		}
		if ((rc = nsl_link_poll(s->link)) < 0)
			return fail(s, "%s", nsl_error_last());
		idle_backoff(rc, &idle);
		while ((n = nsl_link_sent(s->link, done, BURST)) > 0)
			for (unsigned j = 0; j < n; j++) {
				if (done[j]->status != 0)
					return done[j]->status == -EHOSTDOWN ? dead(s)
						: fail(s, "message %u failed: %s", done[j]->step, strerror(-done[j]->status));
				s->msgs_done++;
				s->bytes += done[j]->len;
			}
		if (now_s() > t_end)
			return fail(s, "deadline: %" PRIu64 " of %" PRIu64 " messages sent in %d s", s->msgs_done, o->count,
				    o->deadline_s);
	}
	s->seconds = now_s() - t0;
	return s->rc;
}

static int run_receiver(struct side *s)
{
	const struct link_opts *o = s->o;
	int w = o->window;
	uint64_t posted = 0;
	double t0 = 0, t_end = now_s() + o->deadline_s, quiet;
	unsigned idle = 0;

	if (alloc_bufs(s, w, o->size) != 0)
		return 1;
	for (int i = 0; i < w && posted < o->count; i++, posted++) {
		s->msgs[i] = (struct nsl_msg){ .data = s->bufs[i], .len = o->size, .peer = 0 };
		if (nsl_link_post(s->link, &s->msgs[i]) < 0)
			return fail(s, "%s", nsl_error_last());
	}
	while (s->msgs_done < o->count && !stop) {
		struct nsl_msg *got[BURST];
		unsigned n;
		int rc = nsl_link_poll(s->link);

		if (rc < 0)
			return fail(s, "%s", nsl_error_last());
		idle_backoff(rc, &idle);
		if (rc > 0 && t0 == 0)
			t0 = now_s();
		while ((n = nsl_link_recv(s->link, got, BURST)) > 0)
			for (unsigned j = 0; j < n; j++) {
				struct nsl_msg *m = got[j];
				uint64_t k = s->msgs_done, want = msg_len(o, k);
				int64_t bad;

				if (m->status != 0)
					return m->status == -EHOSTDOWN ? dead(s)
						: fail(s, "message %" PRIu64 ": %s", k, strerror(-m->status));
				if (m->len != want || m->step != (uint32_t)k)
					return fail(s, "message %" PRIu64 ": %" PRIu64 " bytes, step %u; expected %" PRIu64
						    " bytes, step %u", k, m->len, m->step, want, (uint32_t)k);
				if (o->verify && (bad = check(o, k, m->data, m->len)) >= 0)
					return fail(s, "message %" PRIu64 " of %" PRIu64 " bytes differs at byte %" PRId64, k,
						    m->len, bad);
				s->msgs_done++;
				s->bytes += m->len;
				if (posted < o->count) {
					m->len = o->size;
					if (nsl_link_post(s->link, m) < 0)
						return fail(s, "%s", nsl_error_last());
					posted++;
				}
			}
		if (now_s() > t_end)
			return fail(s, "deadline: %" PRIu64 " of %" PRIu64 " messages received in %d s", s->msgs_done,
				    o->count, o->deadline_s);
	}
	s->seconds = t0 ? now_s() - t0 : 0;
	/* Stay a little, so the sender hears the last acks (or the answers to its probes). */
	for (quiet = now_s(); !stop && now_s() - quiet < QUIET_S;)
		if (nsl_link_poll(s->link) > 0)
			quiet = now_s();
	return s->rc;
}

static int side_setup(struct side *s, const struct link_opts *o, int self, struct nsl_port *port,
		      const uint8_t *peer_mac)
{
	struct nsl_link_conf c = { .session = (uint32_t)o->session, .self = (uint16_t)self,
				   .max_msg = o->size, .peer_timeout_ms = (uint32_t)o->timeout_ms };

	s->o = o;
	s->self = self;
	s->port = port;
	if ((s->link = nsl_link_create(&c)) == NULL || nsl_link_add_peer(s->link, (uint16_t)(1 - self), port, peer_mac, 0) < 0)
		return fail(s, "%s", nsl_error_last());
	if (o->faults != NULL) {
		struct nsl_faults f;

		if (nsl_faults_parse(o->faults, &f) < 0)
			return fail(s, "%s", nsl_error_last());
		f.seed += (uint64_t)self;
		if ((s->fi = nsl_faults_install(port, &f)) == NULL)
			return fail(s, "%s", nsl_error_last());
	}
	return 0;
}

static void side_report(struct side *s)
{
	const struct link_opts *o = s->o;
	double gbit = s->seconds > 0 ? (double)s->bytes * 8 / s->seconds / 1e9 : 0;
	struct nsl_link_peer_stats ps = { 0 };
	struct nsl_link_stats st = { 0 };

	if (s->link != NULL) {
		nsl_link_peer_stats(s->link, (uint16_t)(1 - s->self), &ps);
		nsl_link_stats(s->link, &st);
		nsl_link_print_stats(s->link, stderr);
	}
	if (s->fi != NULL) {
		struct nsl_faults_stats fs;

		nsl_faults_get_stats(s->fi, &fs);
		fprintf(stderr, "  faults injected on receive: %" PRIu64 " of %" PRIu64 " frames dropped, %" PRIu64
			" duplicated, %" PRIu64 " reordered, %" PRIu64 " corrupted\n", fs.dropped, fs.seen, fs.duplicated,
			fs.reordered, fs.corrupted);
	}
	if (s->rc != 0) {
		fprintf(stderr, "nsplit link: peer %d: %s\n", s->self, s->err);
		return;
	}
	printf("peer %d %s %" PRIu64 " messages, %" PRIu64 " bytes in %.3f s: %.2f Gbit/s, %" PRIu64
	       " retransmissions, %" PRIu64 " payload bytes copied on send, %" PRIu64 " on receive%s\n",
	       s->self, s->self == 0 ? "sent" : "received", s->msgs_done, s->bytes, s->seconds, gbit, ps.retransmits,
	       st.tx_copy_bytes, st.rx_copy_bytes, o->verify ? ", every byte checked" : "");
	if (o->json)
		printf("{\"peer\":%d,\"role\":\"%s\",\"port\":\"%s\",\"messages\":%" PRIu64 ",\"bytes\":%" PRIu64
		       ",\"seconds\":%.6f,\"gbit_s\":%.4f,\"retransmits\":%" PRIu64 ",\"tx_copy_bytes\":%" PRIu64
		       ",\"rx_copy_bytes\":%" PRIu64 ",\"verified\":%s}\n",
		       s->self, s->self == 0 ? "send" : "receive", nsl_port_name(s->port), s->msgs_done, s->bytes,
		       s->seconds, gbit, ps.retransmits, st.tx_copy_bytes, st.rx_copy_bytes, o->verify ? "true" : "false");
	fflush(stdout);
}

static void side_free(struct side *s)
{
	free_bufs(s, s->o->window);
	nsl_faults_remove(s->fi);
	nsl_link_free(s->link);
}

static int run_side(struct side *s)
{
	return s->self == 0 ? run_sender(s) : run_receiver(s);
}

static void *ring_thread(void *arg)
{
	struct side *s = arg;

	int n = CPU_COUNT(&cpus_before_eal), k = 0;

	/* A core of its own when there are enough, else share (idle_backoff yields). */
	for (int cpu = 0; cpu < CPU_SETSIZE && n > 1; cpu++)
		if (CPU_ISSET(cpu, &cpus_before_eal) && k++ == s->self % n) {
			cpu_set_t one;

			CPU_ZERO(&one);
			CPU_SET(cpu, &one);
			pthread_setaffinity_np(pthread_self(), sizeof(one), &one);
			break;
		}
	/* An lcore id gives this thread its own mempool caches. */
	rte_thread_register();
	run_side(s);
	rte_thread_unregister();
	return NULL;
}

static int run_ring(const struct link_opts *o)
{
	struct nsl_port *ports[2];
	struct side sides[2] = { 0 };
	pthread_t th[2];
	uint8_t mac[2][6];
	int rc = 0;

	if (nsl_port_ring_pair("link", &(struct nsl_port_conf){ .mtu = (uint16_t)o->mtu }, ports) < 0)
		return nsl_cli_fail("link");
	nsl_port_mac(ports[0], mac[0]);
	nsl_port_mac(ports[1], mac[1]);
	for (int i = 0; i < 2; i++)
		side_setup(&sides[i], o, i, ports[i], mac[1 - i]);
	if (sides[0].rc == 0 && sides[1].rc == 0) {
		for (int i = 0; i < 2; i++)
			pthread_create(&th[i], NULL, ring_thread, &sides[i]);
		for (int i = 0; i < 2; i++)
			pthread_join(th[i], NULL);
	}
	for (int i = 0; i < 2; i++) {
		side_report(&sides[i]);
		rc |= sides[i].rc;
		side_free(&sides[i]);
	}
	nsl_port_close(ports[1]);
	nsl_port_close(ports[0]);
	return rc;
}

static int run_port(const struct link_opts *o)
{
	struct side s = { .o = o };
	struct nsl_port *port = nsl_port_open(o->port, &(struct nsl_port_conf){ .mtu = (uint16_t)o->mtu });
	int rc;

	if (port == NULL)
		return nsl_cli_fail("link");
	if (side_setup(&s, o, o->self, port, o->has_mac ? o->mac : NULL) == 0)
		run_side(&s);
	side_report(&s);
	rc = s.rc;
	side_free(&s);
	nsl_port_close(port);
	return rc;
}

static int parse_size(const char *v, uint64_t *out)
{
	char *e;
	uint64_t n;

	errno = 0;
	n = strtoull(v, &e, 10);
	if (errno == 0 && e != v) {
		uint64_t mul = *e == 'K' || *e == 'k' ? 1u << 10 : *e == 'M' || *e == 'm' ? 1u << 20
			: *e == 'G' || *e == 'g' ? 1u << 30 : 1;

		if (mul > 1)
			e++;
		if (*e == '\0' && n > 0 && n <= (NSL_WIRE_MAX_MSG / mul)) {
			*out = n * mul;
			return 0;
		}
	}
	return nsl_error_set(EINVAL, "--size: \"%s\"; give bytes from 1, with K, M or G for KiB, MiB, GiB", v);
}

static int parse_mac(const char *v, uint8_t mac[6])
{
	unsigned b[6];

	if (sscanf(v, "%2x:%2x:%2x:%2x:%2x:%2x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]) != 6)
		return nsl_error_set(EINVAL, "--peer-mac: \"%s\" is not a MAC address like 02:00:00:00:00:01", v);
	for (int i = 0; i < 6; i++)
		mac[i] = (uint8_t)b[i];
	return 0;
}

static int parse(int argc, char **argv, struct link_opts *o)
{
	int c, rc = 0;

	while (rc == 0 && (c = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
		switch (c) {
		case O_RING: o->ring = true; break;
		case O_SELF: rc = nsl_cli_int("self", optarg, 0, 1, &o->self); break;
		case O_PORT: o->port = optarg; break;
		case O_MAC: rc = parse_mac(optarg, o->mac); o->has_mac = true; break;
		case O_MTU: rc = nsl_cli_int("mtu", optarg, 576, 9000, &o->mtu); break;
		case O_COUNT: rc = nsl_cli_u64("count", optarg, &o->count); break;
		case O_SIZE: rc = parse_size(optarg, &o->size); break;
		case O_RANDOM: o->random_sizes = true; break;
		case O_WINDOW: rc = nsl_cli_int("window", optarg, 1, 1024, &o->window); break;
		case O_NOVERIFY: o->verify = false; break;
		case O_FAULTS: o->faults = optarg; break;
		case O_TIMEOUT: rc = nsl_cli_int("peer-timeout", optarg, 10, 3600000, &o->timeout_ms); break;
		case O_DEADLINE: rc = nsl_cli_int("deadline", optarg, 1, 86400, &o->deadline_s); break;
		case O_SESSION: rc = nsl_cli_u64("session", optarg, &o->session); break;
		case O_SEED: rc = nsl_cli_u64("seed", optarg, &o->seed); break;
		case O_MEM: rc = nsl_cli_int("dp-mem", optarg, 64, 1 << 20, &o->mem_mb); break;
		case O_JSON: o->json = true; break;
		case 'h': usage(stdout); return 1;
		default: usage(stderr); return 2;
		}
	}
	if (rc < 0) {
		nsl_cli_fail("link");
		return 2;
	}
	if (o->ring == (o->port != NULL) || (!o->ring && o->self < 0) || o->count == 0 || o->session > UINT32_MAX) {
		fprintf(stderr, "nsplit link: %s\n",
			o->ring && o->port ? "--ring and --port exclude each other"
			: !o->ring && o->port == NULL ? "give --ring, or --self and --port"
			: o->self < 0 ? "--self 0 (sender) or 1 (receiver) goes with --port"
			: o->count == 0 ? "--count must be at least 1" : "--session is a 32-bit number");
		usage(stderr);
		return 2;
	}
	if (o->window > 0 && (uint64_t)o->window > o->count)
		o->window = (int)o->count;
	return 0;
}

int nsl_cmd_link(int argc, char **argv)
{
	struct link_opts o = { .self = -1, .window = 16, .mtu = 1500, .timeout_ms = 5000, .deadline_s = 600,
			       .count = 64, .size = 1u << 20, .seed = 1, .session = 1, .verify = true };
	int rc, dashdash = argc;
	uint64_t need_mb;

	/* Everything after "--" goes to EAL. */
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--") == 0) {
			dashdash = i;
			break;
		}
	if ((rc = parse(dashdash, argv, &o)) != 0)
		return rc == 1 ? 0 : rc;
	/* Both peers' windows when in one process, plus pools and slack. */
	need_mb = (o.size * (uint64_t)o.window * (o.ring ? 4 : 2) >> 20) + 256;
	sched_getaffinity(0, sizeof(cpus_before_eal), &cpus_before_eal);
	if (o.mem_mb == 0)
		o.mem_mb = (int)(need_mb < (1u << 20) ? need_mb : (1u << 20));
	if (nsl_eal_init(&(struct nsl_eal_conf){ .mem_mb = (size_t)o.mem_mb, .extra_argc = argc - dashdash - (dashdash < argc),
						  .extra_argv = argv + dashdash + (dashdash < argc) }) < 0)
		return nsl_cli_fail("link");
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	rc = o.ring ? run_ring(&o) : run_port(&o);
	nsl_eal_cleanup();
	return rc ? 1 : 0;
}
