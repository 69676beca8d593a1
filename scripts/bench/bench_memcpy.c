/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The memcpy half of scripts/bench/dataplane.sh: one core's copy bandwidth, the ceiling for a
 * transport that copies each byte once. No nsplit code.
 *
 *   bench_memcpy --size BYTES --count N [--window W]
 *       copy N messages of BYTES bytes with glibc's memcpy, message k from source buffer k % W
 *       to destination buffer k % W (W default 16, nsplit link's default window), so the copy
 *       touches as much memory as a link moving the same messages: in cache for small messages,
 *       2 x 16 x 16 MiB = 512 MiB for 16 MiB ones, well beyond any cache.
 *
 * Runs on the first CPU the process may use. Sizes take K, M, G suffixes. Prints one JSON line:
 * transport "memcpy", msg_bytes, messages, seconds, gbit_s. Exit status 0, 1 when a call fails
 * (named on stderr), 2 on a usage error.
 */
#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_args.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int usage(void)
{
	fprintf(stderr, "usage: bench_memcpy --size BYTES --count N [--window W]\n");
	return 2;
}

/* Pin to the first allowed CPU, so that the copy does not move between caches mid-run. */
static int pin_first_cpu(void)
{
	cpu_set_t set, one;

	if (sched_getaffinity(0, sizeof(set), &set) != 0) {
		fprintf(stderr, "bench_memcpy: sched_getaffinity: %s\n", strerror(errno));
		return -1;
	}
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
		if (CPU_ISSET(cpu, &set)) {
			CPU_ZERO(&one);
			CPU_SET(cpu, &one);
			if (sched_setaffinity(0, sizeof(one), &one) != 0) {
				fprintf(stderr, "bench_memcpy: sched_setaffinity to CPU %d: %s\n", cpu, strerror(errno));
				return -1;
			}
			return cpu;
		}
	return -1;
}

int main(int argc, char **argv)
{
	uint64_t size = 0, count = 0, window = 16, arena, sink = 0;
	uint8_t *src, *dst;
	double t0, s;
	int cpu;

	for (int i = 1; i < argc; i += 2) {
		uint64_t *v = strcmp(argv[i], "--size") == 0 ? &size : strcmp(argv[i], "--count") == 0 ? &count
			: strcmp(argv[i], "--window") == 0 ? &window : NULL;

		if (v == NULL || i + 1 >= argc || parse_size(argv[i + 1], v) != 0) {
			fprintf(stderr, "bench_memcpy: bad option or value: %s %s\n", argv[i], i + 1 < argc ? argv[i + 1] : "");
			return usage();
		}
	}
	if (size == 0 || count == 0 || window > 1024 || size > UINT64_MAX / window)
		return usage();
	if ((cpu = pin_first_cpu()) < 0)
		return 1;
	arena = (size * window + 4095) / 4096 * 4096;
	src = aligned_alloc(4096, arena);
	dst = aligned_alloc(4096, arena);
	if (src == NULL || dst == NULL) {
		fprintf(stderr, "bench_memcpy: aligned_alloc of 2 x %" PRIu64 " bytes: %s\n", arena, strerror(errno));
		free(src);
		free(dst);
		return 1;
	}
	/* Every page touched before the clock starts. */
	memset(src, 0x5a, arena);
	memset(dst, 0, arena);
	t0 = now_s();
	for (uint64_t k = 0; k < count; k++) {
		uint64_t off = k % window * size;

		memcpy(dst + off, src + off, size);
		/* The copy is used, so no compiler may drop it. */
		__asm__ volatile("" : : "r"(dst + off) : "memory");
		sink += dst[off + size - 1];
	}
	s = now_s() - t0;
	printf("{\"transport\":\"memcpy\",\"msg_bytes\":%" PRIu64 ",\"messages\":%" PRIu64 ",\"bytes\":%.0f,\"seconds\":%.6f,"
	       "\"gbit_s\":%.4f,\"window\":%" PRIu64 ",\"cpu\":%d,\"check\":%" PRIu64 "}\n",
	       size, count, (double)size * (double)count, s, s > 0 ? (double)size * (double)count * 8 / s / 1e9 : 0,
	       window, cpu, sink);
	free(src);
	free(dst);
	return 0;
}
