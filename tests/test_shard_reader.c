/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The io_uring shard reader: every record exactly once per epoch, in nsl_shard_epoch_order's
 * order, at read-ahead depth 1 and 32, buffered and O_DIRECT, shuffled or not, with windows
 * and blocks that do not line up with records; restarts mid-epoch; a file cut after open.
 */
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <stdint.h>

#include "cunit_main.h"
#include "shard_fixture.h"

#define COUNT 5003u            /* prime: no window or block size divides it */
#define SAMPLE 784u

static char dir[64], path[PATH_MAX];

/* What the reader should find: O_DIRECT accepted at open and for an aligned read. */
static bool fs_takes_direct(const char *p)
{
	void *buf = NULL;
	int fd = open(p, O_RDONLY | O_DIRECT);
	bool ok = false;

	if (fd >= 0 && posix_memalign(&buf, 4096, 4096) == 0)
		ok = pread(fd, buf, 4096, 0) == 4096;
	free(buf);
	if (fd >= 0)
		close(fd);
	return ok;
}

/*
 * One epoch must match nsl_shard_epoch_order exactly, each call staying inside one window.
 * Returns records seen.
 */
static uint32_t check_epoch(struct nsl_shard_reader *r, const struct nsl_shard_reader_opts *o, uint64_t epoch,
			    int max)
{
	static uint32_t want[COUNT];
	struct nsl_record recs[97];
	uint32_t seen = 0, bad = 0, w = o->window_records ? o->window_records : COUNT;
	int n;

	CU_ASSERT_EQUAL_FATAL(nsl_shard_epoch_order(o->seed, epoch, COUNT, o->window_records, o->shuffle, want), 0);
	CU_ASSERT_EQUAL_FATAL(nsl_shard_reader_begin_epoch(r, epoch), 0);
	while ((n = nsl_shard_reader_next(r, recs, max)) > 0) {
		for (int i = 0; i < n; i++) {
			if (seen >= COUNT || recs[i].index != want[seen] || !fix_record_ok(&recs[i], SAMPLE))
				bad++;
			if (o->shuffle && recs[i].index / w != recs[0].index / w)
				bad++;
			seen++;
		}
	}
	CU_ASSERT_EQUAL(n, 0);
	CU_ASSERT_EQUAL(bad, 0);
	/* Past the end stays at the end. */
	CU_ASSERT_EQUAL(nsl_shard_reader_next(r, recs, max), 0);
	return seen;
}

static void run_matrix(bool direct)
{
	static const int depths[] = { 1, 32 };
	static const size_t blocks[] = { 4096, 1 << 20 };
	static const uint32_t windows[] = { 0, 1000 };

	for (size_t d = 0; d < 2; d++)
		for (size_t b = 0; b < 2; b++)
			for (int shuffle = 0; shuffle < 2; shuffle++)
				for (size_t w = 0; w < 2; w++) {
					struct nsl_shard_reader_opts o = {
						.depth = depths[d], .block_bytes = blocks[b], .direct = direct,
						.shuffle = shuffle, .seed = 42, .window_records = windows[w],
					};
					struct nsl_shard_reader *r = nsl_shard_reader_open(path, &o);

					CU_ASSERT_PTR_NOT_NULL_FATAL(r);
					CU_ASSERT_EQUAL(nsl_shard_reader_is_direct(r), direct && fs_takes_direct(path));
					for (uint64_t e = 0; e < 2; e++)
						CU_ASSERT_EQUAL(check_epoch(r, &o, e, e ? 97 : 13), COUNT);
					nsl_shard_reader_free(r);
				}
}

static void test_make(void)
{
	fix_write(path, (struct nsl_shape){ 1, 28, 28 }, COUNT);
}

static void test_buffered(void)
{
	run_matrix(false);
}

static void test_direct(void)
{
	run_matrix(true);
}

/*
 * tmpfs refused O_DIRECT before Linux 6.6: there the reader must fall back to buffered reads; on
 * newer kernels it takes it. Either way the records are the same.
 */
static void test_direct_tmpfs(void)
{
	char shm[PATH_MAX];
	struct nsl_shard_reader_opts o = { .depth = 8, .direct = true, .shuffle = true, .seed = 3 };
	struct nsl_shard_reader *r;

	if (access("/dev/shm", W_OK) != 0) {
		fprintf(stderr, "\n  /dev/shm is not writable here; tmpfs case not exercised\n");
		return;
	}
	snprintf(shm, sizeof(shm), "/dev/shm/nsl-reader-%d.nsl", (int)getpid());
	fix_write(shm, (struct nsl_shape){ 1, 28, 28 }, COUNT);
	r = nsl_shard_reader_open(shm, &o);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	CU_ASSERT_EQUAL(nsl_shard_reader_is_direct(r), fs_takes_direct(shm));
	CU_ASSERT_EQUAL(check_epoch(r, &o, 0, 64), COUNT);
	nsl_shard_reader_free(r);
	unlink(shm);
}

/* Unshuffled windows are sized by depth x block (at least 4 MiB): a big file spans many buffers. */
static void test_many_windows(void)
{
	char big[PATH_MAX];
	const uint32_t count = 30011;

	snprintf(big, sizeof(big), "%s/big.nsl", dir);
	fix_write(big, (struct nsl_shape){ 1, 28, 28 }, count);
	for (int direct = 0; direct < 2; direct++)
		for (int depth = 1; depth <= 32; depth += 31) {
			struct nsl_shard_reader_opts o = { .depth = depth, .block_bytes = 65536, .direct = direct };
			struct nsl_shard_reader *r = nsl_shard_reader_open(big, &o);
			struct nsl_record recs[256];
			uint32_t next = 0, bad = 0;
			int n;

			CU_ASSERT_PTR_NOT_NULL_FATAL(r);
			for (uint64_t e = 0; e < 2; e++, next = 0) {
				CU_ASSERT_EQUAL_FATAL(nsl_shard_reader_begin_epoch(r, e), 0);
				while ((n = nsl_shard_reader_next(r, recs, 256)) > 0)
					for (int i = 0; i < n; i++, next++)
						bad += recs[i].index != next || !fix_record_ok(&recs[i], SAMPLE);
				CU_ASSERT_EQUAL(n, 0);
				CU_ASSERT_EQUAL(next, count);
				CU_ASSERT_EQUAL(bad, 0);
			}
			nsl_shard_reader_free(r);
		}
	unlink(big);
}

static void test_restart(void)
{
	struct nsl_shard_reader_opts o = { .depth = 4, .block_bytes = 8192, .shuffle = true, .seed = 9,
					   .window_records = 700 };
	struct nsl_shard_reader *r = nsl_shard_reader_open(path, &o);
	struct nsl_record recs[50];

	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	/* Reading before an epoch begins is a usage error, not a crash. */
	CU_ASSERT(nsl_shard_reader_next(r, recs, 50) < 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(nsl_error_last(), "begin_epoch"));
	CU_ASSERT_EQUAL(nsl_shard_reader_begin_epoch(r, 5), 0);
	for (int i = 0; i < 30; i++)
		CU_ASSERT(nsl_shard_reader_next(r, recs, 50) > 0);
	/* Abandoning an epoch half-way starts the next one cleanly. */
	CU_ASSERT_EQUAL(check_epoch(r, &o, 6, 50), COUNT);
	CU_ASSERT_EQUAL(check_epoch(r, &o, 5, 50), COUNT);
	nsl_shard_reader_free(r);
}

static void test_bad_options(void)
{
	struct nsl_shard_reader_opts o = { .depth = 300 };

	CU_ASSERT_PTR_NULL(nsl_shard_reader_open(path, &o));
	CU_ASSERT_PTR_NOT_NULL(strstr(nsl_error_last(), "depth 300"));
	o = (struct nsl_shard_reader_opts){ .block_bytes = 1000 };
	CU_ASSERT_PTR_NULL(nsl_shard_reader_open(path, &o));
	CU_ASSERT_PTR_NOT_NULL(strstr(nsl_error_last(), "multiple of 4096"));
	nsl_shard_reader_free(NULL);
}

/* A file cut while a reader has it open: an error naming the file and offset, for both modes. */
static void test_truncated_after_open(void)
{
	char cut[PATH_MAX];

	snprintf(cut, sizeof(cut), "%s/cut.nsl", dir);
	for (int direct = 0; direct < 2; direct++) {
		struct nsl_shard_reader_opts o = { .depth = 2, .block_bytes = 65536, .direct = direct };
		struct nsl_shard_reader *r;
		struct nsl_record recs[64];
		int n;

		fix_write(cut, (struct nsl_shape){ 1, 28, 28 }, COUNT);
		r = nsl_shard_reader_open(cut, &o);
		CU_ASSERT_PTR_NOT_NULL_FATAL(r);
		CU_ASSERT_EQUAL_FATAL(truncate(cut, 4096 + 1000 * 785 + 100), 0);
		CU_ASSERT_EQUAL(nsl_shard_reader_begin_epoch(r, 0), 0);
		while ((n = nsl_shard_reader_next(r, recs, 64)) > 0)
			;
		CU_ASSERT_EQUAL(n, -EIO);
		CU_ASSERT_PTR_NOT_NULL(strstr(nsl_error_last(), cut));
		CU_ASSERT_PTR_NOT_NULL(strstr(nsl_error_last(), "truncated at offset"));
		/* Errors stay until the next epoch, which fails the same way. */
		CU_ASSERT_EQUAL(nsl_shard_reader_next(r, recs, 64), -EIO);
		nsl_shard_reader_free(r);
	}
}

int main(void)
{
	static const struct nsl_test_case cases[] = {
		{ "make the shard", test_make },
		{ "buffered: depth 1/32, shuffled or not", test_buffered },
		{ "direct: depth 1/32, shuffled or not", test_direct },
		{ "direct on tmpfs, or its fallback", test_direct_tmpfs },
		{ "unshuffled across many windows", test_many_windows },
		{ "restart mid-epoch", test_restart },
		{ "bad options", test_bad_options },
		{ "file truncated after open", test_truncated_after_open },
		{ NULL, NULL },
	};
	int rc;

	if (fix_tmpdir(dir, sizeof(dir), "reader-test") < 0)
		return 1;
	snprintf(path, sizeof(path), "%s/s.nsl", dir);
	rc = nsl_test_run("shard reader", cases);
	fix_rmdir(dir);
	return rc;
}
