/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The shard reader's half of scripts/bench/shards.sh.
 *
 *   bench_shards make DIR PARTS RECORDS
 *       write DIR/train-<i>-of-<PARTS>.nsl, RECORDS records each of 1x28x28 u8 samples of seeded
 *       pseudo-random bytes and labels below 10 (the reader's cost does not depend on the values)
 *   bench_shards read [--direct|--buffered] [--depth N] [--block BYTES] FILE...
 *       stream every record of each file in file order (unshuffled), touching each record's
 *       label and last sample byte, and print one JSON line: bytes (whole files, as fio reads
 *       them), seconds and GiB/s while streaming (begin_epoch to the last record, as fio counts
 *       its runtime without set-up), the same with each reader's open and free included,
 *       whether O_DIRECT was in effect for every file, and a checksum of the touched bytes.
 *
 * Exit status 0, 1 on an nsplit error (its message on stderr), 2 on a usage error.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "nsplit/error.h"
#include "nsplit/rng.h"
#include "nsplit/shard.h"

#define SAMPLE_BYTES (28 * 28)
#define CLASSES 10
#define BURST 256

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* nsplit's messages name the file already. */
static int fail(void)
{
	fprintf(stderr, "bench_shards: %s\n", nsl_error_last());
	return 1;
}

static int usage(void)
{
	fprintf(stderr, "usage: bench_shards make DIR PARTS RECORDS\n"
			"       bench_shards read [--direct|--buffered] [--depth N] [--block BYTES] FILE...\n");
	return 2;
}

/* A whole decimal number in [lo, hi], or -1. */
static long long parse_num(const char *s, long long lo, long long hi)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
		return -1;
	return v;
}

static int make(const char *dir, int parts, uint32_t records)
{
	struct nsl_shard_info info = { .shape = { 1, 28, 28 }, .dtype = NSL_SHARD_DTYPE_U8,
				       .label_type = NSL_SHARD_LABEL_U8, .classes = CLASSES };
	uint64_t sample[SAMPLE_BYTES / 8];
	struct nsl_rng rng;

	nsl_rng_seed(&rng, 1, 0);
	for (int p = 0; p < parts; p++) {
		char path[PATH_MAX];
		struct nsl_shard_writer *w;

		snprintf(path, sizeof(path), "%s/train-%d-of-%d.nsl", dir, p, parts);
		if ((w = nsl_shard_writer_open(path, &info)) == NULL)
			return fail();
		for (uint32_t i = 0; i < records; i++) {
			for (size_t j = 0; j < sizeof(sample) / 8; j++)
				sample[j] = nsl_rng_next(&rng);
			if (nsl_shard_writer_append(w, (const uint8_t *)sample, (uint32_t)(sample[0] % CLASSES)) < 0) {
				nsl_shard_writer_abort(w);
				return fail();
			}
		}
		if (nsl_shard_writer_close(w) < 0)
			return fail();
	}
	return 0;
}

static int read_files(int argc, char **argv)
{
	struct nsl_shard_reader_opts o = { .depth = 8, .block_bytes = 1 << 20, .direct = true };
	struct nsl_record recs[BURST];
	uint64_t bytes = 0, sum = 0;
	bool direct = true;
	double t0, streaming = 0;
	int i = 0;

	for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
		long long v;

		if (strcmp(argv[i], "--direct") == 0) {
			o.direct = true;
		} else if (strcmp(argv[i], "--buffered") == 0) {
			o.direct = false;
		} else if (strcmp(argv[i], "--depth") == 0 && i + 1 < argc) {
			if ((v = parse_num(argv[++i], 1, 256)) < 0)
				return usage();
			o.depth = (int)v;
		} else if (strcmp(argv[i], "--block") == 0 && i + 1 < argc) {
			/* The reader checks alignment and its own limit, with a message. */
			if ((v = parse_num(argv[++i], 1, UINT32_MAX)) < 0)
				return usage();
			o.block_bytes = (size_t)v;
		} else {
			fprintf(stderr, "bench_shards read: unknown option %s\n", argv[i]);
			return usage();
		}
	}
	if (i == argc)
		return usage();
	t0 = now();
	for (; i < argc; i++) {
		struct nsl_shard_reader *r = nsl_shard_reader_open(argv[i], &o);
		struct stat st;
		double t1;
		int n;

		if (r == NULL)
			return fail();
		direct = direct && nsl_shard_reader_is_direct(r);
		t1 = now();
		if (nsl_shard_reader_begin_epoch(r, 0) < 0) {
			nsl_shard_reader_free(r);
			return fail();
		}
		/* Touch every record so the work is real: its label and its last sample byte. */
		while ((n = nsl_shard_reader_next(r, recs, BURST)) > 0)
			for (int k = 0; k < n; k++)
				sum += recs[k].label + recs[k].sample[SAMPLE_BYTES - 1];
		streaming += now() - t1;
		if (n < 0) {
			fail();
			nsl_shard_reader_free(r);
			return 1;
		}
		nsl_shard_reader_free(r);
		/* The whole file, as fio reads it (header and padding included). */
		if (stat(argv[i], &st) == 0)
			bytes += (uint64_t)st.st_size;
	}
	double s = now() - t0;

	printf("{\"bench\":\"shard_reader\",\"bytes\":%llu,\"seconds\":%.4f,\"streaming_s\":%.4f,"
	       "\"gib_s\":%.4f,\"gib_s_with_open\":%.4f,\"direct\":%s,\"depth\":%d,\"block\":%zu,"
	       "\"checksum\":%llu}\n",
	       (unsigned long long)bytes, s, streaming, (double)bytes / streaming / (1u << 30),
	       (double)bytes / s / (1u << 30), direct ? "true" : "false", o.depth, o.block_bytes,
	       (unsigned long long)sum);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 5 && strcmp(argv[1], "make") == 0) {
		long long parts = parse_num(argv[3], 1, 100000);
		long long records = parse_num(argv[4], 1, UINT32_MAX);

		if (parts < 0 || records < 0)
			return usage();
		return make(argv[2], (int)parts, (uint32_t)records);
	}
	if (argc >= 3 && strcmp(argv[1], "read") == 0)
		return read_files(argc - 2, argv + 2);
	return usage();
}
