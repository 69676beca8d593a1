/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The shard reader: a window of records is read with io_uring into one registered buffer while the
 * caller consumes the previous window from the other. Windows follow nsl_shard_epoch_order, so a
 * shuffled epoch still reads the file in big aligned blocks.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include <liburing.h>

#include "nsplit/error.h"
#include "shard_pvt.h"

#define DEFAULT_DEPTH 8
#define MAX_DEPTH 256
#define DEFAULT_BLOCK (1u << 20)
#define MAX_BLOCK (64u << 20)
/*
 * Window buffers in turn: while the caller works through one window, the reads of the next ones
 * go on. A caller that touches every record (as the trainer does) can leave the disk idle once
 * the windows ahead are in: with two 16 MiB windows a direct read measured 4.0-4.5 GiB/s here,
 * with four of half a read-ahead depth each 4.8-5.6 (scripts/bench/shards.sh, one noisy VM).
 * Shuffled windows are the caller's size, so they get two.
 */
#define MAX_BUFS 4
#define SHUFFLED_BUFS 2
/* Unshuffled windows only bound memory, within these limits. */
#define MIN_SEQ_WINDOW (4ull << 20)
#define MAX_SEQ_WINDOW (64ull << 20)
/*
 * Buffered reads copy out of the page cache into the window, and windows that fit the caches
 * take that copy faster: from a warm cache, 2 MiB windows streamed at a median 20.6 GiB/s and
 * 4 MiB ones at 17.7 (fio 19.2). A cold read keeps the disk busy through the hints below, not
 * through the number of our reads in flight.
 */
#define MIN_BUFFERED_WINDOW (2ull << 20)
/*
 * Buffered, the disk sees only the kernel's read-ahead: 256 KiB requests with FADV_SEQUENTIAL,
 * started as our reads reach them. WILLNEED over the bytes ahead has it read them at once, in
 * requests of up to 2 MiB: from a dropped cache, 1.83-2.41 GiB/s against 0.67-2.07 without, in
 * nine paired runs (fio 0.64-1.12). Hints go through io_uring, so the kernel's worker, not the
 * caller, waits while the disk queue is full; HINT_MIN keeps them few and big.
 */
#define HINT_AHEAD (16ull << 20)
#define HINT_MIN (8ull << 20)
/* Records ahead whose first line is fetched while labels are read. */
#define PREFETCH_AHEAD 16
/* Transparent huge page size on x86-64. */
#define HUGE_BYTES (2u << 20)
/* The kernel refuses to register a buffer above 1 GiB; larger windows use plain reads. */
#define MAX_REGISTERED (1ull << 30)

struct window_buf {
	uint8_t *mem;
	size_t cap;
	int index;                /* registered buffer index */
	bool active;
	uint32_t pos;             /* first slot of this window in order[] (unshuffled: first record) */
	uint32_t len;             /* records in the window */
	uint32_t consumed;        /* records handed out */
	uint64_t span_start;      /* aligned file offset of mem[0] */
	uint64_t span_bytes;      /* aligned bytes to read */
	uint64_t need_end;        /* file offset where the window's last record ends */
	uint64_t submitted;       /* bytes of the span given to io_uring */
	uint64_t completed;       /* bytes of the span read */
};

struct read_req {
	struct window_buf *wb;
	uint64_t buf_off;         /* offset of the block in the span */
	uint32_t len;
	uint32_t done;
};

struct nsl_shard_reader {
	struct nsl_shard_info info;
	int fd;
	bool direct;
	bool fixed;               /* buffers registered with the ring */
	bool ring_ready;
	int depth;
	uint32_t block;
	bool shuffle;
	uint64_t seed;
	uint32_t order_window;    /* window size given to nsl_shard_epoch_order */
	uint32_t win;             /* records per read window */
	struct io_uring ring;
	uint32_t *order;
	uint32_t next_pos;        /* first slot in order[] of the next window to schedule */
	struct window_buf bufs[MAX_BUFS];
	int nbufs;
	int head;                 /* buffer of the window being consumed; the others follow in turn */
	struct read_req *reqs;
	struct read_req **free_reqs;
	int nfree;
	int inflight;             /* reads and read-ahead hints */
	uint64_t hinted_end;      /* buffered, unshuffled: file offset the hints have reached */
	int err;                  /* sticky until the next begin_epoch */
	bool begun;
	char path[PATH_MAX];
};

static int uring_error(struct nsl_shard_reader *r, int res, const char *what)
{
	return nsl_error_set(-res, "%s: %s: %s", r->path, what, strerror(-res));
}

/* O_DIRECT is refused at open by some filesystems (tmpfs) and at read by others; probe both. */
static int open_file(struct nsl_shard_reader *r, bool want_direct)
{
	void *probe;

	if (want_direct) {
		r->fd = open(r->path, O_RDONLY | O_CLOEXEC | O_DIRECT);
		if (r->fd >= 0 && posix_memalign(&probe, NSL_SHARD_ALIGN, NSL_SHARD_ALIGN) == 0) {
			ssize_t n = pread(r->fd, probe, NSL_SHARD_ALIGN, 0);

			free(probe);
			if (n == NSL_SHARD_ALIGN) {
				r->direct = true;
				return 0;
			}
		}
		if (r->fd >= 0)
			close(r->fd);
	}
	r->direct = false;
	r->fd = open(r->path, O_RDONLY | O_CLOEXEC);
	if (r->fd < 0)
		return nsl_error_set(errno, "%s: cannot open shard: %s", r->path, strerror(errno));
	/* Every read is a long ascending run (a window): a doubled kernel read-ahead keeps up with it. */
	posix_fadvise(r->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	return 0;
}

static int setup_ring(struct nsl_shard_reader *r)
{
	struct iovec iov[MAX_BUFS];
	int rc;

	/* Room for a hint per window besides the reads. */
	rc = io_uring_queue_init((unsigned)(r->depth + MAX_BUFS), &r->ring, 0);
	if (rc < 0)
		return nsl_error_set(-rc, "%s: io_uring_queue_init(%d): %s (is io_uring disabled by "
				     "kernel.io_uring_disabled?)", r->path, r->depth, strerror(-rc));
	r->ring_ready = true;
	if ((rc = io_uring_register_files(&r->ring, &r->fd, 1)) < 0)
		return uring_error(r, rc, "io_uring_register_files");
	for (int i = 0; i < r->nbufs; i++)
		iov[i] = (struct iovec){ .iov_base = r->bufs[i].mem, .iov_len = r->bufs[i].cap };
	/* Registered buffers save the kernel a page walk per read; without them reads still work. */
	r->fixed = r->bufs[0].cap <= MAX_REGISTERED && io_uring_register_buffers(&r->ring, iov, (unsigned)r->nbufs) == 0;
	return 0;
}

static int check_opts(const char *path, const struct nsl_shard_reader_opts *o)
{
	if (o->depth < 0 || o->depth > MAX_DEPTH)
		return nsl_error_set(EINVAL, "%s: read-ahead depth %d out of range (1 to %d)", path, o->depth,
				     MAX_DEPTH);
	if (o->block_bytes % NSL_SHARD_ALIGN != 0 || o->block_bytes > MAX_BLOCK)
		return nsl_error_set(EINVAL, "%s: read block of %zu bytes; use a multiple of %u up to %u", path,
				     o->block_bytes, NSL_SHARD_ALIGN, MAX_BLOCK);
	return 0;
}

static uint32_t pick_window(const struct nsl_shard_reader *r)
{
	uint64_t bytes;

	if (r->shuffle)
		return r->order_window;
	/* Four buffers of half a depth each keep a depth of reads queued behind the window in use. */
	bytes = (uint64_t)r->depth * r->block / 2;
	bytes = bytes < MIN_SEQ_WINDOW ? MIN_SEQ_WINDOW : bytes > MAX_SEQ_WINDOW ? MAX_SEQ_WINDOW : bytes;
	if (!r->direct && bytes / 2 >= MIN_BUFFERED_WINDOW)
		bytes /= 2;
	/*
	 * A window buffer is its records rounded up to pages plus one page: keep it to whole huge pages,
	 * or its tail falls back to 4 KiB pages, io_uring keeps the whole registration as 4 KiB pieces
	 * and every 1 MiB read needs 256 of them, above the disk's 254 (measured: each read split in two).
	 */
	bytes = (bytes - NSL_SHARD_ALIGN) / r->info.record_size;
	if (bytes == 0)
		bytes = 1;
	return bytes < r->info.count ? (uint32_t)bytes : (uint32_t)r->info.count;
}

struct nsl_shard_reader *nsl_shard_reader_open(const char *path, const struct nsl_shard_reader_opts *o)
{
	struct nsl_shard_reader *r;
	uint32_t nwin;

	if (check_opts(path, o) < 0)
		return NULL;
	r = calloc(1, sizeof(*r));
	if (r == NULL) {
		nsl_error_set(ENOMEM, "%s: out of memory for the shard reader", path);
		return NULL;
	}
	r->fd = -1;
	snprintf(r->path, sizeof(r->path), "%s", path);
	if (nsl_shard_read_info(path, &r->info) < 0)
		goto fail;
	r->depth = o->depth ? o->depth : DEFAULT_DEPTH;
	r->block = o->block_bytes ? (uint32_t)o->block_bytes : DEFAULT_BLOCK;
	r->shuffle = o->shuffle;
	r->seed = o->seed;
	r->order_window = (o->window_records == 0 || o->window_records > r->info.count) ? (uint32_t)r->info.count
											 : o->window_records;
	if (open_file(r, o->direct) < 0)
		goto fail;
	r->win = pick_window(r);
	nwin = (uint32_t)((r->info.count + r->win - 1) / r->win);
	r->nbufs = (int)(nwin < (r->shuffle ? SHUFFLED_BUFS : MAX_BUFS) ? nwin : (r->shuffle ? SHUFFLED_BUFS : MAX_BUFS));
	/* Unshuffled, record i is the i-th of the epoch: no order to keep. */
	r->order = r->shuffle ? malloc(r->info.count * sizeof(*r->order)) : NULL;
	r->reqs = calloc((size_t)r->depth, sizeof(*r->reqs));
	r->free_reqs = calloc((size_t)r->depth, sizeof(*r->free_reqs));
	if ((r->shuffle && r->order == NULL) || r->reqs == NULL || r->free_reqs == NULL) {
		nsl_error_set(ENOMEM, "%s: out of memory for the epoch order (%llu records)", path,
			      (unsigned long long)r->info.count);
		goto fail;
	}
	for (int i = 0; i < r->nbufs; i++) {
		struct window_buf *wb = &r->bufs[i];

		wb->index = i;
		wb->cap = nsl_align_up((uint64_t)r->win * r->info.record_size, NSL_SHARD_ALIGN) + NSL_SHARD_ALIGN;
		if (posix_memalign((void **)&wb->mem, wb->cap >= HUGE_BYTES ? HUGE_BYTES : NSL_SHARD_ALIGN, wb->cap) != 0) {
			wb->mem = NULL;
			nsl_error_set(ENOMEM, "%s: cannot allocate a %zu-byte read window; use a smaller shuffle "
				      "window", path, wb->cap);
			goto fail;
		}
		/*
		 * Shuffled records are read from anywhere in the window: with 4 KiB pages nearly every
		 * record costs a TLB miss (measured: 4% of a 1-thread MLP epoch). Advice only; no error.
		 */
		if (wb->cap >= HUGE_BYTES)
			madvise(wb->mem, wb->cap, MADV_HUGEPAGE);
	}
	if (setup_ring(r) < 0)
		goto fail;
	for (int i = 0; i < r->depth; i++)
		r->free_reqs[i] = &r->reqs[i];
	r->nfree = r->depth;
	return r;
fail:
	nsl_shard_reader_free(r);
	return NULL;
}

static void release(struct nsl_shard_reader *r, struct read_req *q)
{
	r->free_reqs[r->nfree++] = q;
}

/*
 * A free submission entry. The queue fills only with entries queued but not yet submitted (it has
 * room for every read and hint in flight): push them out first.
 */
static struct io_uring_sqe *get_sqe(struct nsl_shard_reader *r)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);

	if (sqe == NULL) {
		io_uring_submit(&r->ring);
		sqe = io_uring_get_sqe(&r->ring);
	}
	return sqe;
}

/* Queue the rest of q; the caller submits. */
static void prep(struct nsl_shard_reader *r, struct read_req *q)
{
	struct io_uring_sqe *sqe = get_sqe(r);
	uint8_t *dst = q->wb->mem + q->buf_off + q->done;
	uint64_t at = q->wb->span_start + q->buf_off + q->done;
	unsigned len = q->len - q->done;

	if (r->fixed)
		io_uring_prep_read_fixed(sqe, 0, dst, len, at, q->wb->index);
	else
		io_uring_prep_read(sqe, 0, dst, len, at);
	sqe->flags |= IOSQE_FIXED_FILE;
	io_uring_sqe_set_data(sqe, q);
	r->inflight++;
}

static void set_read_error(struct nsl_shard_reader *r, int rc)
{
	if (r->err == 0)
		r->err = rc;
}

static void complete(struct nsl_shard_reader *r, struct read_req *q, int res)
{
	struct window_buf *wb = q->wb;
	uint64_t at = wb->span_start + q->buf_off + q->done;

	if (res == -EAGAIN || res == -EINTR) {
		prep(r, q);
		return;
	}
	if (res < 0) {
		set_read_error(r, nsl_error_set(-res, "%s: read of %u bytes at offset %llu failed: %s", r->path,
						q->len - q->done, (unsigned long long)at, strerror(-res)));
		release(r, q);
		return;
	}
	q->done += (uint32_t)res;
	at += (uint64_t)res;
	if (q->done < q->len && at < wb->need_end) {
		/* A buffered read may stop short and be resumed; a short direct read or none at all is EOF. */
		if (res > 0 && !r->direct) {
			prep(r, q);
			return;
		}
		set_read_error(r, nsl_error_set(EIO, "%s: truncated at offset %llu, records run to offset %llu: was "
						"the file rewritten while it was read?", r->path,
						(unsigned long long)at, (unsigned long long)wb->need_end));
		release(r, q);
		return;
	}
	/* Past need_end lies only the zero padding, which a file made elsewhere may lack. */
	wb->completed += q->len;
	release(r, q);
}

/* Collect completions, waiting for the first one when `wait`. 0, or a negative errno when the ring fails. */
static int reap(struct nsl_shard_reader *r, bool wait)
{
	struct io_uring_cqe *cqe;

	while (r->inflight > 0) {
		int rc = wait ? io_uring_wait_cqe(&r->ring, &cqe) : io_uring_peek_cqe(&r->ring, &cqe);

		if (rc == -EINTR)
			continue;
		if (rc == -EAGAIN && !wait)
			return 0;
		if (rc < 0)
			return uring_error(r, rc, "waiting for reads");
		struct read_req *q = io_uring_cqe_get_data(cqe);
		int res = cqe->res;

		io_uring_cqe_seen(&r->ring, cqe);
		r->inflight--;
		if (q == NULL)	/* a hint: advice, whatever became of it */
			continue;
		complete(r, q, res);
		wait = false;
	}
	return 0;
}

static struct window_buf *unsubmitted(struct window_buf *wb)
{
	return wb != NULL && wb->active && wb->submitted < wb->span_bytes ? wb : NULL;
}

/* Keep `depth` reads in flight, in window order: the current window's first. */
static int pump(struct nsl_shard_reader *r)
{
	int k = 0;

	while (r->nfree > 0) {
		struct window_buf *wb = NULL;
		struct read_req *q;

		for (; k < r->nbufs && wb == NULL; k++)
			wb = unsubmitted(&r->bufs[(r->head + k) % r->nbufs]);
		if (wb == NULL)
			break;
		k--;	/* the same window may have more blocks */
		q = r->free_reqs[--r->nfree];
		q->wb = wb;
		q->buf_off = wb->submitted;
		uint64_t left = wb->span_bytes - wb->submitted;
		uint64_t at = wb->span_start + wb->submitted;
		/* Reads end on multiples of the block size in the file, as a sequential reader's do. */
		uint64_t len = r->block - at % r->block;

		/* A window rarely ends on a block boundary: fold a short tail into the last read rather
		 * than paying a whole extra I/O for a few pages. */
		if (left < len + r->block / 4)
			len = left;
		q->len = (uint32_t)len;
		q->done = 0;
		wb->submitted += q->len;
		prep(r, q);
	}
	if (io_uring_sq_ready(&r->ring) > 0) {
		int rc = io_uring_submit(&r->ring);

		if (rc < 0)
			return uring_error(r, rc, "io_uring_submit");
	}
	return 0;
}

/* Buffered: ask the kernel to read wb's span, and unshuffled HINT_AHEAD beyond it, into the cache. */
static void hint(struct nsl_shard_reader *r, const struct window_buf *wb)
{
	uint64_t end = wb->span_start + wb->span_bytes, from = wb->span_start, to = end;
	uint64_t file_end = r->info.data_offset + r->info.count * r->info.record_size;
	struct io_uring_sqe *sqe;
	uint8_t probe;

	if (r->direct)
		return;
	if (!r->shuffle) {
		/* Windows come in file order: hint only what earlier hints left, and in big pieces. */
		from = r->hinted_end > from ? r->hinted_end : from;
		to = end + HINT_AHEAD < file_end ? end + HINT_AHEAD : file_end;
		if (to <= from || (from >= end && to - from < HINT_MIN && to < file_end))
			return;
	}
	r->hinted_end = to;
	/*
	 * A file in the cache needs no hint, and walking the cache for one cost a warm read 10-20%
	 * (median 18.0 GiB/s with this probe, 15.2 before hints, fio 15.8): when the span's last
	 * byte is there already, the rest most likely is too (not its first: the header is read at
	 * open, and our own reads and the kernel's read-ahead run just behind the hints).
	 */
	if (preadv2(r->fd, &(struct iovec){ .iov_base = &probe, .iov_len = 1 }, 1, (off_t)(to - 1), RWF_NOWAIT) == 1)
		return;
	if ((sqe = get_sqe(r)) == NULL)
		return;
	io_uring_prep_fadvise(sqe, 0, from, (off_t)(to - from), POSIX_FADV_WILLNEED);
	sqe->flags |= IOSQE_FIXED_FILE;
	io_uring_sqe_set_data(sqe, NULL);
	r->inflight++;
}

static void schedule(struct nsl_shard_reader *r, struct window_buf *wb)
{
	const struct nsl_shard_info *in = &r->info;
	uint32_t first = r->shuffle ? r->order[r->next_pos] / r->win * r->win : r->next_pos;
	uint64_t start;

	wb->active = true;
	wb->pos = r->next_pos;
	wb->len = (uint32_t)(in->count - first < r->win ? in->count - first : r->win);
	wb->consumed = 0;
	start = in->data_offset + (uint64_t)first * in->record_size;
	wb->span_start = start / NSL_SHARD_ALIGN * NSL_SHARD_ALIGN;
	wb->need_end = start + (uint64_t)wb->len * in->record_size;
	wb->span_bytes = nsl_align_up(wb->need_end, NSL_SHARD_ALIGN) - wb->span_start;
	wb->submitted = wb->completed = 0;
	r->next_pos += wb->len;
	hint(r, wb);
}

/* Wait out every read in flight, so buffers can be reused or freed. */
static int drain(struct nsl_shard_reader *r)
{
	int rc = 0;

	/* complete() may queue a retry, so submit inside the loop. */
	while (r->inflight > 0 && rc == 0) {
		if (io_uring_sq_ready(&r->ring) > 0)
			io_uring_submit(&r->ring);
		rc = reap(r, true);
	}
	return rc;
}

int nsl_shard_reader_begin_epoch(struct nsl_shard_reader *r, uint64_t epoch)
{
	int rc;

	r->begun = false;
	if ((rc = drain(r)) < 0)
		return rc;
	r->err = 0;
	if (r->shuffle) {
		rc = nsl_shard_epoch_order(r->seed, epoch, (uint32_t)r->info.count, r->order_window, true, r->order);
		if (rc < 0)
			return nsl_error_prefix(rc, "%s", r->path);
	}
	r->next_pos = 0;
	r->head = 0;
	r->hinted_end = 0;
	for (int i = 0; i < r->nbufs; i++) {
		r->bufs[i].active = false;
		if (r->next_pos < r->info.count)
			schedule(r, &r->bufs[i]);
	}
	r->begun = true;
	return pump(r);
}

static int wait_window(struct nsl_shard_reader *r, struct window_buf *wb)
{
	int rc;

	while (wb->completed < wb->span_bytes && r->err == 0) {
		if ((rc = pump(r)) < 0)
			return rc;
		if (r->inflight == 0)	/* nothing left to submit, yet the window is short: a bug, not a hang */
			return nsl_error_set(EIO, "%s: reader stalled with %llu of %llu window bytes read", r->path,
					     (unsigned long long)wb->completed, (unsigned long long)wb->span_bytes);
		if ((rc = reap(r, true)) < 0)
			return rc;
	}
	return r->err;
}

static void fill_shuffled(const struct nsl_shard_reader *r, const struct window_buf *wb, struct nsl_record *out,
			  int n)
{
	const uint32_t *ord = r->order + wb->pos + wb->consumed;
	/* File offset of record 0 relative to the buffer; every record of the window lies at or after it. */
	const uint64_t base = r->info.data_offset - wb->span_start;
	const uint64_t rs = r->info.record_size;

	for (int i = 0; i < n; i++) {
		const uint8_t *rec = wb->mem + (base + ord[i] * rs);

		/* Shuffled records sit anywhere in a window far bigger than the caches: fetch ahead. */
		if (i + PREFETCH_AHEAD < n)
			__builtin_prefetch(wb->mem + (base + ord[i + PREFETCH_AHEAD] * rs));
		out[i] = (struct nsl_record){ .sample = rec + 1, .label = rec[0], .index = ord[i] };
	}
}

static void fill_sequential(const struct nsl_shard_reader *r, const struct window_buf *wb, struct nsl_record *out,
			    int n)
{
	uint32_t first = wb->pos + wb->consumed;
	uint32_t rs = r->info.record_size;
	const uint8_t *rec = wb->mem + r->info.data_offset + (uint64_t)first * rs - wb->span_start;

	for (int i = 0; i < n; i++, rec += rs)
		out[i] = (struct nsl_record){ .sample = rec + 1, .label = rec[0], .index = first + (uint32_t)i };
}

int nsl_shard_reader_next(struct nsl_shard_reader *r, struct nsl_record *out, int max)
{
	const struct nsl_shard_info *in = &r->info;
	struct window_buf *wb = &r->bufs[r->head];
	int rc, n;

	if (!r->begun)
		return nsl_error_set(EINVAL, "%s: call nsl_shard_reader_begin_epoch before reading", r->path);
	if (r->err < 0)
		return r->err;
	if (wb->active && wb->consumed == wb->len) {
		/* The caller is done with this window's records: its buffer takes the next window in line. */
		wb->active = false;
		if (r->next_pos < in->count)
			schedule(r, wb);
		r->head = (r->head + 1) % r->nbufs;
		wb = &r->bufs[r->head];
	}
	if (!wb->active)
		return 0;	/* windows are taken in turn, so an idle next buffer means the epoch is over */
	if ((rc = wait_window(r, wb)) < 0)
		return rc;
	n = (int)(wb->len - wb->consumed) < max ? (int)(wb->len - wb->consumed) : max;
	if (r->shuffle)
		fill_shuffled(r, wb, out, n);
	else
		fill_sequential(r, wb, out, n);
	wb->consumed += (uint32_t)n;
	/* Keep the next window's reads moving while the caller works. */
	if ((rc = reap(r, false)) < 0 || (rc = pump(r)) < 0)
		return rc;
	return n;
}

void nsl_shard_reader_free(struct nsl_shard_reader *r)
{
	if (r == NULL)
		return;
	if (r->ring_ready) {
		drain(r);
		io_uring_queue_exit(&r->ring);
	}
	if (r->fd >= 0)
		close(r->fd);
	for (int i = 0; i < MAX_BUFS; i++)
		free(r->bufs[i].mem);
	free(r->order);
	free(r->reqs);
	free(r->free_reqs);
	free(r);
}

const struct nsl_shard_info *nsl_shard_reader_info(const struct nsl_shard_reader *r)
{
	return &r->info;
}

bool nsl_shard_reader_is_direct(const struct nsl_shard_reader *r)
{
	return r->direct;
}
