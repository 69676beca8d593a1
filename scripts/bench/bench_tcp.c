/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The TCP half of scripts/bench/dataplane.sh: a plain loopback sender and receiver in one
 * process, two threads, each on a CPU of its own when the process may use two. No nsplit code.
 *
 *   bench_tcp stream --size BYTES --count N [--window W]
 *       the sender writes N messages of BYTES bytes, the receiver reads every byte of each into
 *       its own buffer; both cycle through W buffers of BYTES (default 16, nsplit link's
 *       default window), so both touch as much memory as nsplit link does. Timed from the
 *       sender's first write to the receiver's last byte.
 *   bench_tcp pingpong --size BYTES --count N
 *       TCP_NODELAY on both ends; one thread writes BYTES bytes, the other reads them all and
 *       writes them back; N timed round trips after 100 untimed ones.
 *
 * Sizes take K, M, G suffixes (KiB, MiB, GiB). Prints one JSON line: transport "tcp", mode,
 * msg_bytes, and gbit_s (stream) or rtt_us, rtt_p99_us, rtt_min_us (pingpong; median, 99th
 * percentile by nearest rank, least). Exit status 0, 1 when a call fails (named on stderr),
 * 2 on a usage error.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "bench_args.h"

#define WARMUP 100

struct opts {
	bool pingpong;
	uint64_t size, count;
	int window;
};

/* One end of the connection: its thread, socket, buffers and what went wrong. */
struct end {
	const struct opts *o;
	int fd, cpu, listen_fd;
	uint8_t **bufs;
	int nbufs;
	double t;                 /* stream: the sender's start, the receiver's end */
	double *rtt_us;           /* pingpong, the pinging end */
	char err[256];
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int fail(struct end *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct end *e, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(e->err, sizeof(e->err), fmt, ap);
	va_end(ap);
	/* Wake the other end, which may be blocked on this connection. */
	if (e->fd >= 0)
		shutdown(e->fd, SHUT_RDWR);
	return -1;
}

static int write_all(struct end *e, const uint8_t *p, uint64_t len)
{
	while (len > 0) {
		ssize_t n = send(e->fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return fail(e, "send of %" PRIu64 " bytes: %s", len, strerror(errno));
		p += n;
		len -= (uint64_t)n;
	}
	return 0;
}

static int read_all(struct end *e, uint8_t *p, uint64_t len)
{
	uint64_t want = len;

	while (len > 0) {
		ssize_t n = recv(e->fd, p, len, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return fail(e, "recv of %" PRIu64 " bytes: %s", len, strerror(errno));
		if (n == 0)
			return fail(e, "recv: the other end closed after %" PRIu64 " of %" PRIu64 " bytes", want - len,
				    want);
		p += n;
		len -= (uint64_t)n;
	}
	return 0;
}

/* The cpu-th CPU (counting from 0) this process may run on, or -1 when it may use fewer. */
static int allowed_cpu(int nth)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set) != 0)
		return -1;
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
		if (CPU_ISSET(cpu, &set) && nth-- == 0)
			return cpu;
	return -1;
}

static int pin(struct end *e)
{
	cpu_set_t one;
	int rc;

	if (e->cpu < 0)
		return 0;
	CPU_ZERO(&one);
	CPU_SET(e->cpu, &one);
	if ((rc = pthread_setaffinity_np(pthread_self(), sizeof(one), &one)) != 0)
		return fail(e, "pthread_setaffinity_np to CPU %d: %s", e->cpu, strerror(rc));
	return 0;
}

static int alloc_bufs(struct end *e, int n)
{
	if ((e->bufs = calloc((size_t)n, sizeof(*e->bufs))) == NULL)
		return fail(e, "calloc of %d buffer pointers: %s", n, strerror(errno));
	e->nbufs = n;
	for (int i = 0; i < n; i++) {
		if ((e->bufs[i] = aligned_alloc(4096, (e->o->size + 4095) / 4096 * 4096)) == NULL)
			return fail(e, "aligned_alloc of %" PRIu64 " bytes: %s", e->o->size, strerror(errno));
		/* Touched now, so that no page fault lands in the timed part. */
		memset(e->bufs[i], (int)(i + 1), e->o->size);
	}
	return 0;
}

static void free_bufs(struct end *e)
{
	for (int i = 0; e->bufs != NULL && i < e->nbufs; i++)
		free(e->bufs[i]);
	free(e->bufs);
}

static int nodelay(struct end *e)
{
	int one = 1;

	if (setsockopt(e->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
		return fail(e, "setsockopt TCP_NODELAY: %s", strerror(errno));
	return 0;
}

/* The connecting end: stream sender, or the end that pings and times. */
static int run_client(struct end *e)
{
	const struct opts *o = e->o;

	if (o->pingpong) {
		uint64_t total = o->count + WARMUP;

		for (uint64_t k = 0; k < total; k++) {
			double t0 = now_s();

			if (write_all(e, e->bufs[0], o->size) < 0 || read_all(e, e->bufs[1], o->size) < 0)
				return -1;
			if (k >= WARMUP)
				e->rtt_us[k - WARMUP] = (now_s() - t0) * 1e6;
		}
		return 0;
	}
	e->t = now_s();
	for (uint64_t k = 0; k < o->count; k++)
		if (write_all(e, e->bufs[k % (uint64_t)e->nbufs], o->size) < 0)
			return -1;
	return 0;
}

/* The accepting end: stream receiver, or the echo. */
static int run_server(struct end *e)
{
	const struct opts *o = e->o;

	if (o->pingpong) {
		for (uint64_t k = 0; k < o->count + WARMUP; k++)
			if (read_all(e, e->bufs[0], o->size) < 0 || write_all(e, e->bufs[0], o->size) < 0)
				return -1;
		return 0;
	}
	for (uint64_t k = 0; k < o->count; k++)
		if (read_all(e, e->bufs[k % (uint64_t)e->nbufs], o->size) < 0)
			return -1;
	e->t = now_s();
	return 0;
}

/*
 * The accepting end. Its buffers are made after accept and before the one-byte go it sends, so
 * that the sender's clock starts only when the receiver is ready; any failure closes the
 * connection, so that the sender cannot wait forever.
 */
static void *server_thread(void *arg)
{
	struct end *e = arg;
	const struct opts *o = e->o;
	uint8_t go = 1;

	if ((e->fd = accept(e->listen_fd, NULL, NULL)) < 0) {
		fail(e, "accept on 127.0.0.1: %s", strerror(errno));
		/* Resets a connection still waiting in the backlog. */
		shutdown(e->listen_fd, SHUT_RDWR);
		return NULL;
	}
	if (pin(e) == 0 && alloc_bufs(e, o->pingpong ? 1 : o->window) == 0 && (!o->pingpong || nodelay(e) == 0) &&
	    write_all(e, &go, 1) == 0)
		run_server(e);
	return NULL;
}

/* The connecting end, on this thread; 0 or -1 with e->err set. */
static int client(struct end *e, const struct sockaddr_in *addr)
{
	const struct opts *o = e->o;
	uint8_t go;

	if (pin(e) != 0 || alloc_bufs(e, o->pingpong ? 2 : o->window) != 0)
		return -1;
	if (o->pingpong && (e->rtt_us = malloc(o->count * sizeof(*e->rtt_us))) == NULL)
		return fail(e, "malloc of %" PRIu64 " round-trip times: %s", o->count, strerror(errno));
	if ((e->fd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
		return fail(e, "socket: %s", strerror(errno));
	if (connect(e->fd, (const struct sockaddr *)addr, sizeof(*addr)) != 0)
		return fail(e, "connect to 127.0.0.1:%u: %s", ntohs(addr->sin_port), strerror(errno));
	if ((o->pingpong && nodelay(e) != 0) || read_all(e, &go, 1) != 0)
		return -1;
	return run_client(e);
}

static int usage(void)
{
	fprintf(stderr, "usage: bench_tcp stream --size BYTES --count N [--window W]\n"
			"       bench_tcp pingpong --size BYTES --count N\n");
	return 2;
}

static double percentile(const double *sorted, uint64_t n, unsigned pct)
{
	uint64_t rank = (n * pct + 99) / 100;

	return sorted[rank ? rank - 1 : 0];
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(const double *sorted, uint64_t n)
{
	return n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
}

int main(int argc, char **argv)
{
	struct opts o = { .window = 16 };
	struct end snd = { .o = &o, .fd = -1, .listen_fd = -1 }, rcv = { .o = &o, .fd = -1 };
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(addr);
	pthread_t th;
	int rc, lfd, status = 1;

	if (argc < 2 || (strcmp(argv[1], "stream") != 0 && strcmp(argv[1], "pingpong") != 0))
		return usage();
	o.pingpong = strcmp(argv[1], "pingpong") == 0;
	for (int i = 2; i < argc; i += 2) {
		uint64_t w;

		if (i + 1 >= argc)
			return usage();
		if (strcmp(argv[i], "--size") == 0 && parse_size(argv[i + 1], &o.size) == 0)
			continue;
		if (strcmp(argv[i], "--count") == 0 && parse_size(argv[i + 1], &o.count) == 0)
			continue;
		if (strcmp(argv[i], "--window") == 0 && !o.pingpong && parse_size(argv[i + 1], &w) == 0 && w <= 1024) {
			o.window = (int)w;
			continue;
		}
		fprintf(stderr, "bench_tcp: bad option or value: %s %s\n", argv[i], argv[i + 1]);
		return usage();
	}
	if (o.size == 0 || o.count == 0)
		return usage();

	/* The sender (or pinging end) on the first CPU, the other end on the second; no pinning on one CPU. */
	snd.cpu = allowed_cpu(1) >= 0 ? allowed_cpu(0) : -1;
	rcv.cpu = allowed_cpu(1);
	if ((lfd = socket(AF_INET, SOCK_STREAM, 0)) < 0) {
		fprintf(stderr, "bench_tcp: socket: %s\n", strerror(errno));
		return 1;
	}
	if (bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) != 0 || listen(lfd, 1) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&addr, &alen) != 0) {
		fprintf(stderr, "bench_tcp: listening on 127.0.0.1: %s\n", strerror(errno));
		close(lfd);
		return 1;
	}
	rcv.listen_fd = lfd;
	if ((rc = pthread_create(&th, NULL, server_thread, &rcv)) != 0) {
		fprintf(stderr, "bench_tcp: pthread_create: %s\n", strerror(rc));
		close(lfd);
		return 1;
	}
	if (client(&snd, &addr) != 0 && snd.fd < 0)
		shutdown(lfd, SHUT_RDWR);  /* never connected: wake the accept */
	pthread_join(th, NULL);
	if (snd.err[0] != '\0' || rcv.err[0] != '\0') {
		if (snd.err[0] != '\0')
			fprintf(stderr, "bench_tcp: %s: %s\n", o.pingpong ? "pinging end" : "sender", snd.err);
		if (rcv.err[0] != '\0')
			fprintf(stderr, "bench_tcp: %s: %s\n", o.pingpong ? "echoing end" : "receiver", rcv.err);
	} else if (o.pingpong) {
		qsort(snd.rtt_us, o.count, sizeof(*snd.rtt_us), cmp_double);
		printf("{\"transport\":\"tcp\",\"mode\":\"pingpong\",\"msg_bytes\":%" PRIu64 ",\"round_trips\":%" PRIu64
		       ",\"rtt_us\":%.3f,\"rtt_p99_us\":%.3f,\"rtt_min_us\":%.3f,\"cpus\":[%d,%d]}\n",
		       o.size, o.count, median(snd.rtt_us, o.count), percentile(snd.rtt_us, o.count, 99), snd.rtt_us[0],
		       snd.cpu, rcv.cpu);
		status = 0;
	} else {
		double s = rcv.t - snd.t, bytes = (double)o.size * (double)o.count;

		printf("{\"transport\":\"tcp\",\"mode\":\"stream\",\"msg_bytes\":%" PRIu64 ",\"messages\":%" PRIu64
		       ",\"bytes\":%.0f,\"seconds\":%.6f,\"gbit_s\":%.4f,\"window\":%d,\"cpus\":[%d,%d]}\n",
		       o.size, o.count, bytes, s, s > 0 ? bytes * 8 / s / 1e9 : 0, o.window, snd.cpu, rcv.cpu);
		status = 0;
	}
	if (snd.fd >= 0)
		close(snd.fd);
	if (rcv.fd >= 0)
		close(rcv.fd);
	close(lfd);
	free_bufs(&snd);
	free_bufs(&rcv);
	free(snd.rtt_us);
	return status;
}
