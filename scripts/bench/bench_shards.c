/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The shard reader's half of scripts/bench/shards.sh.
 *
 *   bench_shards make DIR PARTS RECORDS   write DIR/train-<i>-of-<PARTS>.nsl, 1x28x28 u8 samples
 *                                         of seeded pseudo-random bytes (the reader's cost does
 *                                         not depend on the values)
 *   bench_shards read [--buffered] [--depth N] [--block BYTES] FILE...
 *                                         stream every record of each file in file order and
 *                                         print one JSON line: bytes, GiB/s while streaming
 *                                         (begin_epoch to the last record, as fio counts its
 *                                         runtime without set-up), GiB/s with each reader's
 *                                         open and free included, whether O_DIRECT was taken
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "nsplit/error.h"
#include "nsplit/rng.h"
#include "nsplit/shard.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int fail(const char *what)
{
	fprintf(stderr, "bench_shards: %s: %s\n", what, nsl_error_last());
	return 1;
}

static int make(const char *dir, int parts, long records)
{
	struct nsl_shard_info info = { .shape = { 1, 28, 28 }, .dtype = NSL_SHARD_DTYPE_U8,
				       .label_type = NSL_SHARD_LABEL_U8, .classes = 10 };
	uint64_t sample[784 / 8];
	struct nsl_rng rng;

	nsl_rng_seed(&rng, 1, 0);
	for (int p = 0; p < parts; p++) {
		char path[4096];
		struct nsl_shard_writer *w;

		snprintf(path, sizeof(path), "%s/train-%d-of-%d.nsl", dir, p, parts);
		if ((w = nsl_shard_writer_open(path, &info)) == NULL)
			return fail(path);
		for (long i = 0; i < records; i++) {
			for (size_t j = 0; j < sizeof(sample) / 8; j++)
				sample[j] = nsl_rng_next(&rng);
			if (nsl_shard_writer_append(w, (const uint8_t *)sample, (uint32_t)(sample[0] % 10)) < 0) {
				nsl_shard_writer_abort(w);
				return fail(path);
			}
		}
		if (nsl_shard_writer_close(w) < 0)
			return fail(path);
	}
	return 0;
}

static int read_files(int argc, char **argv)
{
	struct nsl_shard_reader_opts o = { .depth = 8, .block_bytes = 1 << 20, .direct = true };
	struct nsl_record recs[256];
	uint64_t bytes = 0, sum = 0;
	bool direct = true;
	double t0, streaming = 0;
	int i = 0;

	for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
		if (strcmp(argv[i], "--buffered") == 0)
			o.direct = false;
		else if (strcmp(argv[i], "--depth") == 0 && i + 1 < argc)
			o.depth = atoi(argv[++i]);
		else if (strcmp(argv[i], "--block") == 0 && i + 1 < argc)
			o.block_bytes = strtoul(argv[++i], NULL, 0);
		else {
			fprintf(stderr, "bench_shards read: unknown option %s\n", argv[i]);
			return 2;
		}
	}
	t0 = now();
	for (; i < argc; i++) {
		struct nsl_shard_reader *r = nsl_shard_reader_open(argv[i], &o);
		struct stat st;
		int n;

		if (r == NULL)
			return fail(argv[i]);
		direct = direct && nsl_shard_reader_is_direct(r);
		double t1 = now();

		if (nsl_shard_reader_begin_epoch(r, 0) < 0) {
			nsl_shard_reader_free(r);
			return fail(argv[i]);
		}
		/* Touch every record so the work is real: the label and one sample byte. */
		while ((n = nsl_shard_reader_next(r, recs, 256)) > 0)
			for (int k = 0; k < n; k++)
				sum += recs[k].label + recs[k].sample[783];
		streaming += now() - t1;
		nsl_shard_reader_free(r);
		if (n < 0)
			return fail(argv[i]);
		/* The whole file, as fio counts it (header and padding included). */
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
	if (argc >= 5 && strcmp(argv[1], "make") == 0)
		return make(argv[2], atoi(argv[3]), atol(argv[4]));
	if (argc >= 3 && strcmp(argv[1], "read") == 0)
		return read_files(argc - 2, argv + 2);
	fprintf(stderr, "usage: bench_shards make DIR PARTS RECORDS\n"
			"       bench_shards read [--buffered] [--depth N] [--block BYTES] FILE...\n");
	return 2;
}
