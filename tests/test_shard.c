/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The shard format: writer/reader round trip, every malformed-file case and its message, the
 * per-epoch order, cutting a data set into equal parts, and IDX loading (raw and gzip).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <sys/stat.h>

#include <zlib.h>

#include "nsplit/idx.h"
#include "cunit_main.h"
#include "shard_fixture.h"

static char dir[64];

static void path_in(char *out, const char *name)
{
	snprintf(out, PATH_MAX, "%s/%s", dir, name);
}

static void patch(const char *path, off_t at, const void *bytes, size_t n)
{
	int fd = open(path, O_WRONLY);

	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(pwrite(fd, bytes, n, at), (ssize_t)n);
	close(fd);
}

static void fix_crc(const char *path)
{
	uint8_t h[56];
	uint32_t crc;
	int fd = open(path, O_RDONLY);

	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(pread(fd, h, sizeof(h), 0), (ssize_t)sizeof(h));
	close(fd);
	crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), h, sizeof(h));
	uint8_t le[4] = { (uint8_t)crc, (uint8_t)(crc >> 8), (uint8_t)(crc >> 16), (uint8_t)(crc >> 24) };
	patch(path, 56, le, 4);
}

/* `path` is refused with -err and a message holding the path and `what`. */
static void expect_bad(const char *path, int err, const char *what)
{
	struct nsl_shard_info info;
	struct nsl_shard_reader_opts o = { 0 };
	int rc = nsl_shard_read_info(path, &info);

	CU_ASSERT_EQUAL(rc, -err);
	CU_ASSERT_PTR_NOT_NULL(strstr(nsl_error_last(), path));
	CU_ASSERT_PTR_NOT_NULL(strstr(nsl_error_last(), what));
	if (strstr(nsl_error_last(), what) == NULL)
		fprintf(stderr, "\n  message \"%s\" lacks \"%s\"\n", nsl_error_last(), what);
	CU_ASSERT_PTR_NULL(nsl_shard_reader_open(path, &o));
	CU_ASSERT_PTR_NOT_NULL(strstr(nsl_error_last(), what));
}

static void copy_file(const char *from, const char *to)
{
	char cmd[2 * PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", from, to);
	CU_ASSERT_EQUAL_FATAL(system(cmd), 0);
}

static void test_round_trip(void)
{
	char p[PATH_MAX];
	struct nsl_shape shape = { 3, 5, 7 };
	struct nsl_shard_info info;
	struct nsl_shard_reader_opts o = { .depth = 4, .block_bytes = 4096 };
	struct nsl_shard_reader *r;
	struct nsl_record recs[64];
	struct stat st;
	uint32_t next = 0;
	int n;

	path_in(p, "rt.nsl");
	fix_write(p, shape, 1001);
	CU_ASSERT_EQUAL_FATAL(nsl_shard_read_info(p, &info), 0);
	CU_ASSERT_EQUAL(info.version, NSL_SHARD_VERSION);
	CU_ASSERT_EQUAL(info.count, 1001);
	CU_ASSERT_EQUAL(info.record_size, 1 + 3 * 5 * 7);
	CU_ASSERT_EQUAL(info.classes, FIX_CLASSES);
	CU_ASSERT(info.shape.c == 3 && info.shape.h == 5 && info.shape.w == 7);
	CU_ASSERT_EQUAL(info.data_offset % 4096, 0);
	/* Padded to whole blocks, and not one record more. */
	CU_ASSERT_EQUAL_FATAL(stat(p, &st), 0);
	CU_ASSERT_EQUAL(st.st_size % 4096, 0);
	CU_ASSERT(st.st_size < info.data_offset + 1001 * 106 + 4096);
	CU_ASSERT_EQUAL(nsl_shard_check_shape(&info, shape, p), 0);
	CU_ASSERT_EQUAL(nsl_shard_check_shape(&info, (struct nsl_shape){ 1, 28, 28 }, p), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(nsl_error_last(), "3x5x7, the model wants 1x28x28"));

	r = nsl_shard_reader_open(p, &o);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	CU_ASSERT_EQUAL(nsl_shard_reader_begin_epoch(r, 0), 0);
	while ((n = nsl_shard_reader_next(r, recs, 64)) > 0)
		for (int i = 0; i < n; i++) {
			CU_ASSERT_EQUAL(recs[i].index, next);
			CU_ASSERT(fix_record_ok(&recs[i], 105));
			next++;
		}
	CU_ASSERT_EQUAL(n, 0);
	CU_ASSERT_EQUAL(next, 1001);
	nsl_shard_reader_free(r);
	/* No temporary file is left beside the shard. */
	path_in(p, "rt.nsl.tmp");
	CU_ASSERT_NOT_EQUAL(access(p, F_OK), 0);
}

static void test_malformed(void)
{
	char good[PATH_MAX], p[PATH_MAX];
	struct nsl_shard_info info;

	path_in(good, "good.nsl");
	fix_write(good, (struct nsl_shape){ 1, 28, 28 }, 100);

	path_in(p, "missing.nsl");
	expect_bad(p, ENOENT, "cannot open");

	path_in(p, "magic.nsl");
	copy_file(good, p);
	patch(p, 0, "NOTSHARD", 8);
	expect_bad(p, EINVAL, "wrong magic");

	path_in(p, "version.nsl");
	copy_file(good, p);
	patch(p, 8, "\x02\0\0\0", 4);
	fix_crc(p);
	expect_bad(p, EINVAL, "version 2");

	path_in(p, "crc.nsl");
	copy_file(good, p);
	patch(p, 40, "\x63", 1);	/* count 100 -> 99 without a new checksum */
	expect_bad(p, EINVAL, "bad header checksum");

	path_in(p, "recsize.nsl");
	copy_file(good, p);
	patch(p, 48, "\x10\x03\0\0", 4);
	fix_crc(p);
	expect_bad(p, EINVAL, "record size 784");

	path_in(p, "shape.nsl");
	copy_file(good, p);
	patch(p, 16, "\0\0\0\0", 4);
	fix_crc(p);
	expect_bad(p, EINVAL, "impossible sample shape");

	path_in(p, "cut.nsl");
	copy_file(good, p);
	CU_ASSERT_EQUAL(truncate(p, 4096 + 50 * 785), 0);
	expect_bad(p, EIO, "truncated");

	path_in(p, "header-cut.nsl");
	copy_file(good, p);
	CU_ASSERT_EQUAL(truncate(p, 100), 0);
	expect_bad(p, EIO, "truncated");

	path_in(p, "empty.nsl");
	copy_file(good, p);
	CU_ASSERT_EQUAL(truncate(p, 0), 0);
	expect_bad(p, EINVAL, "not an nsplit shard");

	/* The untouched file still reads. */
	CU_ASSERT_EQUAL(nsl_shard_read_info(good, &info), 0);
}

static void test_writer_errors(void)
{
	char p[PATH_MAX];
	struct nsl_shard_info info = { .shape = { 1, 2, 2 }, .dtype = NSL_SHARD_DTYPE_U8,
				       .label_type = NSL_SHARD_LABEL_U8, .classes = 4 };
	uint8_t s[4] = { 1, 2, 3, 4 };
	struct nsl_shard_writer *w;

	path_in(p, "w.nsl");
	w = nsl_shard_writer_open(p, &info);
	CU_ASSERT_PTR_NOT_NULL_FATAL(w);
	CU_ASSERT_EQUAL(nsl_shard_writer_append(w, s, 4), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(nsl_error_last(), "label 4"));
	CU_ASSERT_EQUAL(nsl_shard_writer_append(w, s, 3), 0);
	nsl_shard_writer_abort(w);
	CU_ASSERT_NOT_EQUAL(access(p, F_OK), 0);
	/* Nothing appended: refused, and nothing left behind. */
	w = nsl_shard_writer_open(p, &info);
	CU_ASSERT_PTR_NOT_NULL_FATAL(w);
	CU_ASSERT_EQUAL(nsl_shard_writer_close(w), -EINVAL);
	CU_ASSERT_NOT_EQUAL(access(p, F_OK), 0);
	info.classes = 1;
	CU_ASSERT_PTR_NULL(nsl_shard_writer_open(p, &info));
	nsl_shard_writer_abort(NULL);
	/* A folder that does not exist is named. */
	info.classes = 4;
	CU_ASSERT_PTR_NULL(nsl_shard_writer_open("/nonexistent-nsl-dir/x.nsl", &info));
	CU_ASSERT_PTR_NOT_NULL(strstr(nsl_error_last(), "/nonexistent-nsl-dir/x.nsl"));
}

static int is_permutation(const uint32_t *o, uint32_t n)
{
	uint8_t *seen = calloc(n, 1);
	int ok = 1;

	for (uint32_t i = 0; i < n; i++) {
		if (o[i] >= n || seen[o[i]])
			ok = 0;
		else
			seen[o[i]] = 1;
	}
	free(seen);
	return ok;
}

static void test_epoch_order(void)
{
	static const uint32_t counts[] = { 1, 2, 17, 1000, 1001 };
	static const uint32_t windows[] = { 0, 1, 7, 100, 5000 };

	for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
		uint32_t n = counts[c];
		uint32_t *a = malloc(n * 4), *b = malloc(n * 4);

		CU_ASSERT_EQUAL(nsl_shard_epoch_order(1, 0, n, 0, false, a), 0);
		for (uint32_t i = 0; i < n; i++)
			CU_ASSERT_EQUAL(a[i], i);
		for (size_t k = 0; k < sizeof(windows) / sizeof(windows[0]); k++) {
			uint32_t w = windows[k] == 0 || windows[k] > n ? n : windows[k];

			CU_ASSERT_EQUAL(nsl_shard_epoch_order(7, 3, n, windows[k], true, a), 0);
			CU_ASSERT(is_permutation(a, n));
			/* Same seed and epoch, same order. */
			CU_ASSERT_EQUAL(nsl_shard_epoch_order(7, 3, n, windows[k], true, b), 0);
			CU_ASSERT_EQUAL(memcmp(a, b, n * 4), 0);
			/* A window's records come together, so the reader fetches each window once. */
			for (uint32_t i = 0; i < n;) {
				uint32_t win = a[i] / w, len = (win + 1) * w > n ? n - win * w : w;

				for (uint32_t j = i; j < i + len; j++)
					CU_ASSERT_EQUAL(a[j] / w, win);
				i += len;
			}
			if (n >= 17) {
				/* Another epoch or seed reorders. */
				CU_ASSERT_EQUAL(nsl_shard_epoch_order(7, 4, n, windows[k], true, b), 0);
				CU_ASSERT_NOT_EQUAL(memcmp(a, b, n * 4), 0);
				CU_ASSERT_EQUAL(nsl_shard_epoch_order(8, 3, n, windows[k], true, b), 0);
				CU_ASSERT_NOT_EQUAL(memcmp(a, b, n * 4), 0);
			}
		}
		free(a);
		free(b);
	}
	CU_ASSERT_EQUAL(nsl_shard_epoch_order(1, 0, 0, 0, true, NULL), -EINVAL);
}

static void test_write_parts(void)
{
	struct nsl_dataset d = { .count = 31, .shape = { 1, 2, 3 }, .classes = 10 };
	char p[PATH_MAX];
	struct nsl_shard_info info;
	struct nsl_shard_reader_opts o = { .depth = 1 };
	struct nsl_record recs[16];

	d.samples = malloc(31 * 6);
	d.labels = malloc(31);
	for (uint32_t i = 0; i < 31; i++) {
		d.labels[i] = (uint8_t)(i % 10);
		for (int j = 0; j < 6; j++)
			d.samples[i * 6 + j] = (uint8_t)(i * 6 + j);
	}
	CU_ASSERT_EQUAL_FATAL(nsl_shard_write_parts(&d, dir, "part", 3, false), 0);
	for (int k = 0; k < 3; k++) {
		struct nsl_shard_reader *r;
		int n;

		snprintf(p, sizeof(p), "%s/part-%d-of-3.nsl", dir, k);
		CU_ASSERT_EQUAL_FATAL(nsl_shard_read_info(p, &info), 0);
		CU_ASSERT_EQUAL(info.count, 10);
		r = nsl_shard_reader_open(p, &o);
		CU_ASSERT_PTR_NOT_NULL_FATAL(r);
		CU_ASSERT_EQUAL(nsl_shard_reader_begin_epoch(r, 0), 0);
		n = nsl_shard_reader_next(r, recs, 16);
		CU_ASSERT_EQUAL(n, 10);
		/* Consecutive slices of the set, in file order. */
		for (int i = 0; i < n; i++) {
			uint32_t src = (uint32_t)(k * 10 + i);

			CU_ASSERT_EQUAL(recs[i].label, src % 10);
			CU_ASSERT_EQUAL(memcmp(recs[i].sample, d.samples + src * 6, 6), 0);
		}
		nsl_shard_reader_free(r);
	}
	CU_ASSERT_EQUAL_FATAL(nsl_shard_write_parts(&d, dir, "whole", 1, true), 0);
	snprintf(p, sizeof(p), "%s/whole.nsl", dir);
	CU_ASSERT_EQUAL(nsl_shard_read_info(p, &info), 0);
	CU_ASSERT_EQUAL(info.count, 31);
	CU_ASSERT_EQUAL(nsl_shard_write_parts(&d, dir, "many", 32, false), -EINVAL);
	nsl_dataset_free(&d);
	nsl_dataset_free(NULL);
}

/* Big-endian IDX files through zlib (gzip) or plain stdio. */
static void write_idx(const char *path, bool gz, uint32_t magic, const uint32_t *dims, int ndims,
		      const uint8_t *data, size_t n)
{
	uint8_t hdr[16];

	for (int i = 0; i <= ndims; i++) {
		uint32_t v = i == 0 ? magic : dims[i - 1];

		hdr[4 * i] = (uint8_t)(v >> 24);
		hdr[4 * i + 1] = (uint8_t)(v >> 16);
		hdr[4 * i + 2] = (uint8_t)(v >> 8);
		hdr[4 * i + 3] = (uint8_t)v;
	}
	if (gz) {
		gzFile f = gzopen(path, "wb");

		CU_ASSERT_PTR_NOT_NULL_FATAL(f);
		CU_ASSERT_EQUAL(gzwrite(f, hdr, 4 * (unsigned)(ndims + 1)), 4 * (ndims + 1));
		if (n)
			CU_ASSERT_EQUAL(gzwrite(f, data, (unsigned)n), (int)n);
		gzclose(f);
	} else {
		FILE *f = fopen(path, "wb");

		CU_ASSERT_PTR_NOT_NULL_FATAL(f);
		CU_ASSERT_EQUAL(fwrite(hdr, 1, 4 * (size_t)(ndims + 1), f), 4 * (size_t)(ndims + 1));
		CU_ASSERT_EQUAL(fwrite(data, 1, n, f), n);
		fclose(f);
	}
}

static void test_idx(void)
{
	uint8_t px[5 * 4 * 3], lab[5] = { 0, 3, 1, 2, 1 };
	uint32_t idims[3] = { 5, 4, 3 }, ldims[1] = { 5 }, ldims_bad[1] = { 4 };
	char im[PATH_MAX], lb[PATH_MAX];
	struct nsl_dataset d;

	for (size_t i = 0; i < sizeof(px); i++)
		px[i] = (uint8_t)(i * 7);
	for (int gz = 0; gz < 2; gz++) {
		path_in(im, gz ? "im.gz" : "im");
		path_in(lb, gz ? "lb.gz" : "lb");
		write_idx(im, gz, 0x803, idims, 3, px, sizeof(px));
		write_idx(lb, gz, 0x801, ldims, 1, lab, sizeof(lab));
		CU_ASSERT_EQUAL_FATAL(nsl_idx_load(im, lb, &d), 0);
		CU_ASSERT_EQUAL(d.count, 5);
		CU_ASSERT(d.shape.c == 1 && d.shape.h == 4 && d.shape.w == 3);
		CU_ASSERT_EQUAL(d.classes, 4);
		CU_ASSERT_EQUAL(memcmp(d.samples, px, sizeof(px)), 0);
		CU_ASSERT_EQUAL(memcmp(d.labels, lab, sizeof(lab)), 0);
		nsl_dataset_free(&d);
		CU_ASSERT_PTR_NULL(d.samples);
	}
	/* Images and labels swapped: the magic is named. */
	CU_ASSERT_EQUAL(nsl_idx_load(lb, im, &d), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(nsl_error_last(), "magic"));
	/* Counts that differ. */
	write_idx(lb, true, 0x801, ldims_bad, 1, lab, 4);
	CU_ASSERT_EQUAL(nsl_idx_load(im, lb, &d), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(nsl_error_last(), "4 labels"));
	/* Truncated images. */
	write_idx(im, true, 0x803, idims, 3, px, sizeof(px) - 5);
	write_idx(lb, true, 0x801, ldims, 1, lab, sizeof(lab));
	CU_ASSERT_EQUAL(nsl_idx_load(im, lb, &d), -EIO);
	CU_ASSERT_PTR_NOT_NULL(strstr(nsl_error_last(), "truncated"));
	CU_ASSERT_PTR_NOT_NULL(strstr(nsl_error_last(), im));
	/* Missing file. */
	path_in(im, "none.gz");
	CU_ASSERT_EQUAL(nsl_idx_load(im, lb, &d), -ENOENT);
	CU_ASSERT_PTR_NOT_NULL(strstr(nsl_error_last(), im));
}

int main(void)
{
	static const struct nsl_test_case cases[] = {
		{ "round trip", test_round_trip },
		{ "malformed files", test_malformed },
		{ "writer errors", test_writer_errors },
		{ "epoch order", test_epoch_order },
		{ "write parts", test_write_parts },
		{ "idx", test_idx },
		{ NULL, NULL },
	};
	int rc;

	if (fix_tmpdir(dir, sizeof(dir), "shard-test") < 0)
		return 1;
	rc = nsl_test_run("shard", cases);
	fix_rmdir(dir);
	return rc;
}
