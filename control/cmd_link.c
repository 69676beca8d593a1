/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * nsplit link: move messages between two peers over any DPDK port and check every byte. The
 * tests run it over memif (two processes) and af_packet (network namespaces); the dataplane
 * benchmark times it. Peer 0 sends, peer 1 receives; --ring runs both in this process over a
 * net_ring pair, one thread each. With --pingpong, peer 1 sends each message back as soon as it
 * has it whole, and peer 0 times the round trips.
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

#include <rte_cycles.h>
#include <rte_lcore.h>

#include "nsplit/eal.h"
#include "nsplit/error.h"
#include "nsplit/capture.h"
#include "nsplit/faults.h"
#include "nsplit/link.h"
#include "nsplit/poll.h"
#include "nsplit/port.h"
#include "nsplit/rng.h"
#include "cli.h"
#include "commands.h"
#include "progress.h"

#define BURST 32
#define QUIET_S 0.5
/* Untimed round trips before --pingpong's --count timed ones: first frames, mbuf caches, credits. */
#define WARMUP 100

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
"  --mtu N            IP MTU, 576 to 9000 (default: 9000 on --ring, else 1500)\n"
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
"  --pingpong         round trips instead: peer 1 sends each message back, peer 0 times\n"
"                     --count of them after 100 untimed ones (median, p99)\n"
"  --poll MODE        busy, adaptive (spin, yield, then short naps when idle) or auto:\n"
"                     busy when each polling thread has a CPU of its own (default auto)\n"
"  --capture FILE     record every frame this peer sends and receives as pcap (with --ring:\n"
"                     peer 0's port, which sees both directions); nsplit.lua decodes it\n"
"  --json             one JSON line per peer at the end\n"
"  -h, --help         this text\n",
		f);
}

enum { O_RING = 256, O_SELF, O_PORT, O_MAC, O_MTU, O_COUNT, O_SIZE, O_RANDOM, O_WINDOW, O_NOVERIFY, O_FAULTS,
       O_TIMEOUT, O_DEADLINE, O_SESSION, O_SEED, O_MEM, O_PINGPONG, O_POLL, O_CAPTURE, O_JSON };

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
	{ "pingpong", no_argument, NULL, O_PINGPONG },
	{ "poll", required_argument, NULL, O_POLL },
	{ "capture", required_argument, NULL, O_CAPTURE },
	{ "json", no_argument, NULL, O_JSON },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

struct link_opts {
	bool ring, random_sizes, verify, json, has_mac, pingpong;
	int self, window, mtu, timeout_ms, deadline_s, mem_mb;
	enum nsl_poll_mode poll;  /* resolved before the peers start: busy or adaptive */
	const char *port, *faults, *capture;
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
	struct nsl_capture *cap;
	uint8_t **bufs;
	struct nsl_msg *msgs;
	int nbufs;
	uint64_t msgs_done, bytes;
	double seconds;
	double *rtt_us;           /* --pingpong, peer 0: one per timed round trip */
	int rc;
	char err[512];
};

static volatile sig_atomic_t stop;
/* The CPUs this process could use before EAL pinned the main thread to one of them. */
static cpu_set_t cpus_before_eal;


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

/*
 * When --deadline runs out, in TSC cycles: the loops check it every poll, and reading the clock
 * (a vDSO call) there took 2-5% of a peer's time.
 */
static uint64_t deadline_tsc(int seconds)
{
	return rte_get_tsc_cycles() + (uint64_t)seconds * rte_get_tsc_hz();
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
	s->nbufs = n;
	for (int i = 0; i < n; i++)
		if ((s->bufs[i] = nsl_dp_alloc(bytes, 4096)) == NULL)
			return fail(s, "%s", nsl_error_last());
	return 0;
}

static void free_bufs(struct side *s)
{
	for (int i = 0; s->bufs != NULL && i < s->nbufs; i++)
		nsl_dp_free(s->bufs[i]);
	free(s->bufs);
	free(s->msgs);
}

static int dead(struct side *s)
{
	return fail(s, "peer %d stopped answering (%s)", nsl_link_dead_peer(s->link),
		    nsl_error_last());
}

/* One poll of the link, then spin, yield or nap (--poll). Frames handled, or -1 with s->rc set. */
static int poll_once(struct side *s, struct nsl_idle *idle)
{
	int rc = nsl_link_poll(s->link);

	if (rc < 0)
		return -fail(s, "%s", nsl_error_last());
	nsl_idle_after(idle, rc);
	return rc;
}

/* Give data, a buffer of --size bytes, as the slot for the other peer's next message. */
static int post(struct side *s, struct nsl_msg *m, void *data)
{
	*m = (struct nsl_msg){ .data = data, .len = s->o->size, .peer = (uint16_t)(1 - s->self) };
	if (nsl_link_post(s->link, m) < 0)
		return fail(s, "%s", nsl_error_last());
	return 0;
}

/* A message nsl_link_sent gave back: 0 when it arrived whole, else 1 with the reason. */
static int check_sent(struct side *s, const struct nsl_msg *m)
{
	if (m->status == 0)
		return 0;
	return m->status == -EHOSTDOWN ? dead(s) : fail(s, "message %u failed: %s", m->step, strerror(-m->status));
}

/* The k-th message received: 0 when it is the one expected (and, with verify, intact), else 1. */
static int check_received(struct side *s, const struct nsl_msg *m, uint64_t k)
{
	const struct link_opts *o = s->o;
	uint64_t want = msg_len(o, k);
	int64_t bad;

	if (m->status != 0)
		return m->status == -EHOSTDOWN ? dead(s) : fail(s, "message %" PRIu64 ": %s", k, strerror(-m->status));
	if (m->len != want || m->step != (uint32_t)k)
		return fail(s, "message %" PRIu64 ": %" PRIu64 " bytes, step %u; expected %" PRIu64 " bytes, step %u", k,
			    m->len, m->step, want, (uint32_t)k);
	if (o->verify && (bad = check(o, k, m->data, m->len)) >= 0)
		return fail(s, "message %" PRIu64 " of %" PRIu64 " bytes differs at byte %" PRId64, k, m->len, bad);
	return 0;
}

/* Stay a little, so the other peer hears the last acks (or the answers to its probes). */
static void linger(struct side *s)
{
	for (double quiet = now_s(); !stop && now_s() - quiet < QUIET_S;)
		if (nsl_link_poll(s->link) > 0)
			quiet = now_s();
}

static int run_sender(struct side *s)
{
	const struct link_opts *o = s->o;
	int w = o->window;
	uint64_t next = 0;
	/* The clock starts with the first frame out, as the receiver's with the first frame in: not
	 * with either side's set-up (buffers, the receiver's first slots). */
	double t0 = 0;
	uint64_t t_end = deadline_tsc(o->deadline_s);
	struct nsl_idle idle;
	struct nsl_link_peer_stats ps;

	nsl_idle_init(&idle, s->o->poll);
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
		if (poll_once(s, &idle) < 0)
			return 1;
		if (t0 == 0 && nsl_link_peer_stats(s->link, 1, &ps) == 0 && ps.frames_tx > 0)
			t0 = now_s();
		while ((n = nsl_link_sent(s->link, done, BURST)) > 0)
			for (unsigned j = 0; j < n; j++) {
				if (check_sent(s, done[j]) != 0)
					return 1;
				s->msgs_done++;
				s->bytes += done[j]->len;
			}
		if (rte_get_tsc_cycles() > t_end)
			return fail(s, "deadline: %" PRIu64 " of %" PRIu64 " messages sent in %d s", s->msgs_done, o->count,
				    o->deadline_s);
	}
	s->seconds = t0 ? now_s() - t0 : 0;
	return s->rc;
}

static int run_receiver(struct side *s)
{
	const struct link_opts *o = s->o;
	int w = o->window;
	uint64_t posted = 0;
	double t0 = 0;
	uint64_t t_end = deadline_tsc(o->deadline_s);
	struct nsl_idle idle;
	struct nsl_link_peer_stats ps;

	nsl_idle_init(&idle, s->o->poll);

	if (alloc_bufs(s, w, o->size) != 0)
		return 1;
	for (int i = 0; i < w && posted < o->count; i++, posted++)
		if (post(s, &s->msgs[i], s->bufs[i]) != 0)
			return 1;
	while (s->msgs_done < o->count && !stop) {
		struct nsl_msg *got[BURST];
		unsigned n;
		int rc = poll_once(s, &idle);

		if (rc < 0)
			return 1;
		/* From the first data frame in: posting slots and waiting for the sender are set-up. */
		if (t0 == 0 && rc > 0 && nsl_link_peer_stats(s->link, 0, &ps) == 0 && ps.frames_rx > 0)
			t0 = now_s();
		while ((n = nsl_link_recv(s->link, got, BURST)) > 0)
			for (unsigned j = 0; j < n; j++) {
				struct nsl_msg *m = got[j];

				if (check_received(s, m, s->msgs_done) != 0)
					return 1;
				s->msgs_done++;
				s->bytes += m->len;
				if (posted < o->count) {
					if (post(s, m, m->data) != 0)
						return 1;
					posted++;
				}
			}
		if (rte_get_tsc_cycles() > t_end)
			return fail(s, "deadline: %" PRIu64 " of %" PRIu64 " messages received in %d s", s->msgs_done,
				    o->count, o->deadline_s);
	}
	s->seconds = t0 ? now_s() - t0 : 0;
	linger(s);
	return s->rc;
}

/*
 * --pingpong, peer 0: send message k, wait until it comes back (and until its own send is
 * acknowledged, so that its buffer is free again), WARMUP + count times; the last count round
 * trips are timed, from just before nsl_link_send to the moment nsl_link_recv hands the echo
 * over. One message is in flight at a time; --window slots stay posted for the echoes, so credit
 * for the next echo is always out before it is needed.
 */
static int run_ping(struct side *s)
{
	const struct link_opts *o = s->o;
	int w = o->window;
	uint64_t total = o->count + WARMUP, posted = 0;
	double t_first = 0;
	uint64_t t_end = deadline_tsc(o->deadline_s);
	struct nsl_idle idle;
	struct nsl_msg *out;

	nsl_idle_init(&idle, s->o->poll);

	/* w slots for the echoes, then one buffer to send from. */
	if (alloc_bufs(s, w + 1, o->size) != 0)
		return 1;
	if ((s->rtt_us = malloc(o->count * sizeof(*s->rtt_us))) == NULL)
		return fail(s, "out of memory for %" PRIu64 " round-trip times", o->count);
	for (; posted < (uint64_t)w && posted < total; posted++)
		if (post(s, &s->msgs[posted], s->bufs[posted]) != 0)
			return 1;
	out = &s->msgs[w];
	for (uint64_t k = 0; k < total && !stop; k++) {
		bool sent = false, back = false;
		double t0, rtt = 0;

		*out = (struct nsl_msg){ .data = s->bufs[w], .len = msg_len(o, k), .peer = 1,
					 .type = NSL_MSG_ACTIVATION, .step = (uint32_t)k };
		if (o->verify)
			fill(o, k, out->data, out->len);
		if (k == WARMUP)
			t_first = now_s();
		t0 = now_s();
		if (nsl_link_send(s->link, out) < 0)
			return fail(s, "%s", nsl_error_last());
		while (!(sent && back) && !stop) {
			struct nsl_msg *m;

			if (poll_once(s, &idle) < 0)
				return 1;
			if (!back && nsl_link_recv(s->link, &m, 1) == 1) {
				rtt = now_s() - t0;
				if (check_received(s, m, k) != 0)
					return 1;
				back = true;
				if (posted < total) {
					if (post(s, m, m->data) != 0)
						return 1;
					posted++;
				}
			}
			if (!sent && nsl_link_sent(s->link, &m, 1) == 1) {
				if (check_sent(s, m) != 0)
					return 1;
				sent = true;
			}
			if (rte_get_tsc_cycles() > t_end)
				return fail(s, "deadline: %" PRIu64 " of %" PRIu64 " round trips in %d s", k, total,
					    o->deadline_s);
		}
		if (sent && back && k >= WARMUP) {
			s->rtt_us[s->msgs_done++] = rtt * 1e6;
			s->bytes += out->len;
		}
	}
	s->seconds = t_first ? now_s() - t_first : 0;
	linger(s);
	return s->rc;
}

/*
 * --pingpong, peer 1: send every message back from the slot it arrived in, as soon as it is
 * whole; the slot is posted again once the echo is acknowledged.
 */
static int run_echo(struct side *s)
{
	const struct link_opts *o = s->o;
	int w = o->window;
	uint64_t total = o->count + WARMUP, posted = 0, got = 0, echoed = 0;
	double t0 = 0;
	uint64_t t_end = deadline_tsc(o->deadline_s);
	struct nsl_idle idle;

	nsl_idle_init(&idle, s->o->poll);

	if (alloc_bufs(s, w, o->size) != 0)
		return 1;
	for (; posted < (uint64_t)w && posted < total; posted++)
		if (post(s, &s->msgs[posted], s->bufs[posted]) != 0)
			return 1;
	while (echoed < total && !stop) {
		struct nsl_msg *ms[BURST];
		unsigned n;

		if (poll_once(s, &idle) < 0)
			return 1;
		while ((n = nsl_link_recv(s->link, ms, BURST)) > 0)
			for (unsigned j = 0; j < n; j++) {
				if (check_received(s, ms[j], got) != 0)
					return 1;
				if (got++ == WARMUP)
					t0 = now_s();
				ms[j]->peer = (uint16_t)(1 - s->self);
				ms[j]->type = NSL_MSG_GRADIENT;
				if (nsl_link_send(s->link, ms[j]) < 0)
					return fail(s, "%s", nsl_error_last());
			}
		while ((n = nsl_link_sent(s->link, ms, BURST)) > 0)
			for (unsigned j = 0; j < n; j++) {
				if (check_sent(s, ms[j]) != 0)
					return 1;
				if (echoed++ >= WARMUP) {
					s->msgs_done++;
					s->bytes += ms[j]->len;
				}
				if (posted < total) {
					if (post(s, ms[j], ms[j]->data) != 0)
						return 1;
					posted++;
				}
			}
		if (rte_get_tsc_cycles() > t_end)
			return fail(s, "deadline: %" PRIu64 " of %" PRIu64 " messages echoed in %d s", echoed, total,
				    o->deadline_s);
	}
	s->seconds = t0 ? now_s() - t0 : 0;
	linger(s);
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
	if (o->capture != NULL && (!o->ring || self == 0) && (s->cap = nsl_capture_open(port, o->capture)) == NULL)
		return fail(s, "%s", nsl_error_last());
	return 0;
}

/* --pingpong, peer 0: median, 99th percentile (nearest rank) and least round trip in µs; none: untouched. */
static void rtt_summary(struct side *s, double *med, double *p99, double *min)
{
	uint64_t n = s->msgs_done, r99 = (n * 99 + 99) / 100;

	if (n == 0)
		return;
	*med = nsl_median(s->rtt_us, n);
	*p99 = s->rtt_us[r99 - 1];
	*min = s->rtt_us[0];
}

static void side_report(struct side *s)
{
	static const char *const roles[2][2] = { { "send", "receive" }, { "ping", "echo" } };
	const struct link_opts *o = s->o;
	double gbit = s->seconds > 0 ? (double)s->bytes * 8 / s->seconds / 1e9 : 0, med = 0, p99 = 0, min = 0;
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
	if (!o->pingpong)
		printf("peer %d %s %" PRIu64 " messages, %" PRIu64 " bytes in %.3f s: %.2f Gbit/s, %" PRIu64
		       " retransmissions, %" PRIu64 " payload bytes copied on send, %" PRIu64 " on receive%s\n",
		       s->self, s->self == 0 ? "sent" : "received", s->msgs_done, s->bytes, s->seconds, gbit,
		       ps.retransmits, st.tx_copy_bytes, st.rx_copy_bytes, o->verify ? ", every byte checked" : "");
	else if (s->self == 0) {
		rtt_summary(s, &med, &p99, &min);
		printf("peer 0 timed %" PRIu64 " round trips of %s%" PRIu64 " bytes in %.3f s after %d untimed: median "
		       "%.2f us, p99 %.2f us, min %.2f us, %" PRIu64 " retransmissions%s\n",
		       s->msgs_done, o->random_sizes ? "up to " : "", o->size, s->seconds, WARMUP, med, p99, min,
		       ps.retransmits, o->verify ? ", every byte checked" : "");
	} else
		printf("peer 1 echoed %" PRIu64 " messages, %" PRIu64 " bytes in %.3f s after %d untimed, %" PRIu64
		       " retransmissions%s\n", s->msgs_done, s->bytes, s->seconds, WARMUP, ps.retransmits,
		       o->verify ? ", every byte checked" : "");
	if (o->json) {
		printf("{\"peer\":%d,\"role\":\"%s\",\"port\":\"%s\",\"messages\":%" PRIu64 ",\"bytes\":%" PRIu64
		       ",\"seconds\":%.6f,", s->self, roles[o->pingpong][s->self], nsl_port_name(s->port), s->msgs_done,
		       s->bytes, s->seconds);
		if (!o->pingpong)
			printf("\"gbit_s\":%.4f,", gbit);
		else if (s->self == 0)
			printf("\"rtt_us\":%.3f,\"rtt_p99_us\":%.3f,\"rtt_min_us\":%.3f,", med, p99, min);
		printf("\"retransmits\":%" PRIu64 ",\"tx_copy_bytes\":%" PRIu64 ",\"rx_copy_bytes\":%" PRIu64
		       ",\"verified\":%s}\n", ps.retransmits, st.tx_copy_bytes, st.rx_copy_bytes,
		       o->verify ? "true" : "false");
	}
	fflush(stdout);
}

static void side_free(struct side *s)
{
	struct nsl_capture_stats cs;

	if (s->cap != NULL) {
		nsl_capture_get_stats(s->cap, &cs);
		if (nsl_capture_close(s->cap) < 0)
			s->rc = fail(s, "%s", nsl_error_last());
		else
			printf("peer %d: captured %" PRIu64 " frames (%" PRIu64 " bytes) to %s\n", s->self, cs.frames,
			       cs.bytes, s->o->capture);
	}
	free_bufs(s);
	free(s->rtt_us);
	nsl_faults_remove(s->fi);
	nsl_link_free(s->link);
}

static int run_side(struct side *s)
{
	if (s->o->pingpong)
		return s->self == 0 ? run_ping(s) : run_echo(s);
	return s->self == 0 ? run_sender(s) : run_receiver(s);
}

static void *ring_thread(void *arg)
{
	struct side *s = arg;

	int n = CPU_COUNT(&cpus_before_eal), k = 0;

	/* A core of its own when there are enough, else share (--poll adaptive yields and naps). */
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
		case O_POLL: rc = nsl_poll_mode_parse(optarg, &o->poll); break;
		case O_CAPTURE: o->capture = optarg; break;
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
		case O_PINGPONG: o->pingpong = true; break;
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
	struct link_opts o = { .self = -1, .window = 16, .mtu = 0, .timeout_ms = 5000, .deadline_s = 600,
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
	o.poll = nsl_poll_mode_resolve(o.poll, o.ring ? 2 : 1, (unsigned)CPU_COUNT(&cpus_before_eal));
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
