/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * nsplit shard files and their io_uring reader.
 *
 * A shard is the part of a training set one peer owns. On disk it is a 4096-byte header block
 * followed by fixed-size records packed back to back (not padded per record), the file padded
 * with zeros to a multiple of 4096 bytes so the reader can fetch whole aligned blocks with
 * O_DIRECT. A record is its label (label type bytes) followed by the sample.
 *
 * Header layout (little-endian; the rest of the 4096-byte block is zero):
 *
 *   offset size field
 *   0      8    magic "NSLSHARD"
 *   8      4    format version (1)
 *   12     4    data offset (4096)
 *   16     12   sample shape c, h, w (u32 each)
 *   28     4    sample dtype (1 = u8)
 *   32     4    label type (1 = u8)
 *   36     4    classes
 *   40     8    record count
 *   48     4    record size = label bytes + c*h*w * dtype bytes
 *   52     4    reserved (0)
 *   56     4    CRC-32 (zlib) of bytes 0..55
 *
 * The reader streams a shard in an order that is a pure function of (seed, epoch): see
 * nsl_shard_epoch_order. Reads go through io_uring into two registered window buffers, one
 * being consumed while the next is read, with `depth` block reads in flight.
 */
#ifndef NSPLIT_SHARD_H
#define NSPLIT_SHARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nsplit/model.h"

#define NSL_SHARD_MAGIC "NSLSHARD"
#define NSL_SHARD_VERSION 1
#define NSL_SHARD_HEADER_BYTES 4096
#define NSL_SHARD_DTYPE_U8 1
#define NSL_SHARD_LABEL_U8 1

struct nsl_shard_info {
	uint32_t version;
	struct nsl_shape shape;
	uint32_t dtype;
	uint32_t label_type;
	uint32_t classes;
	uint64_t count;
	uint32_t record_size;
	uint32_t data_offset;
};

/* ---- format ---- */

/*
 * Read and validate the header of `path`. Returns 0, or a negative errno with a message naming
 * the file and the problem: -ENOENT/-EACCES (cannot open), -EINVAL wrong magic, unsupported
 * version, bad header checksum, impossible fields (zero shape, record size that does not match
 * shape and types); -EIO truncated (shorter than header + count x record size).
 */
int nsl_shard_read_info(const char *path, struct nsl_shard_info *out);

/* -EINVAL with "<path>: samples are CxHxW, the model wants ..." unless the shapes match. */
int nsl_shard_check_shape(const struct nsl_shard_info *info, struct nsl_shape expect, const char *path);

/*
 * The order in which records of epoch `epoch` are read: order[0..count) receives a permutation
 * of 0..count-1. Unshuffled: identity. Shuffled: the records are cut into windows of
 * window_records consecutive records (0 = one window holding all); the windows are visited in a
 * permutation drawn from nsl_rng_seed(seed, stream(epoch)), and each window's records in a
 * permutation of their own stream. Returns 0 or -EINVAL.
 */
int nsl_shard_epoch_order(uint64_t seed, uint64_t epoch, uint32_t count, uint32_t window_records, bool shuffle,
			  uint32_t *order);

/* ---- writer ---- */

struct nsl_shard_writer;

/*
 * Start writing `path` (through a temporary file beside it) with info's shape, dtype, label type
 * and classes (count, record size and data offset are filled in). NULL with a message on error.
 */
struct nsl_shard_writer *nsl_shard_writer_open(const char *path, const struct nsl_shard_info *info);

/* Append one record; label must be < classes. 0 or a negative errno. */
int nsl_shard_writer_append(struct nsl_shard_writer *w, const uint8_t *sample, uint32_t label);

/* Finish: pad, write the header, fsync, rename into place, free w. 0 or a negative errno. */
int nsl_shard_writer_close(struct nsl_shard_writer *w);

/* Drop the temporary file and free w (NULL-safe). */
void nsl_shard_writer_abort(struct nsl_shard_writer *w);

/* ---- reader ---- */

struct nsl_shard_reader_opts {
	int depth;                /* block reads in flight, 1..256 (0 = 8) */
	size_t block_bytes;       /* bytes per read, a multiple of 4096 (0 = 1 MiB) */
	bool direct;              /* try O_DIRECT; falls back to buffered where refused */
	bool shuffle;
	uint64_t seed;
	uint32_t window_records;  /* shuffle window (0 = whole shard); see nsl_shard_epoch_order */
};

struct nsl_record {
	const uint8_t *sample;
	uint32_t label;
	uint32_t index;           /* record number in the shard */
};

struct nsl_shard_reader;

/* Open and validate `path`; NULL with a message naming the file on error. */
struct nsl_shard_reader *nsl_shard_reader_open(const char *path, const struct nsl_shard_reader_opts *o);

/* NULL-safe. */
void nsl_shard_reader_free(struct nsl_shard_reader *r);

const struct nsl_shard_info *nsl_shard_reader_info(const struct nsl_shard_reader *r);

/* Whether reads bypass the page cache (O_DIRECT was accepted by the filesystem). */
bool nsl_shard_reader_is_direct(const struct nsl_shard_reader *r);

/* Start epoch `epoch` (abandoning the rest of the current one) and begin reading ahead. */
int nsl_shard_reader_begin_epoch(struct nsl_shard_reader *r, uint64_t epoch);

/*
 * Up to `max` next records of the epoch, in nsl_shard_epoch_order's order. Returns the number
 * filled, 0 after the epoch's last record, or a negative errno (I/O error, file truncated after
 * open: the message names the file and offset). The records' sample pointers point into the
 * reader's window buffer and stay valid until the next call of next or begin_epoch. A call never
 * returns records of two windows, so it may return fewer than max before the end.
 */
int nsl_shard_reader_next(struct nsl_shard_reader *r, struct nsl_record *out, int max);

/* ---- making shards from a data set ---- */

/* A whole data set in memory: count samples of shape, u8 pixels, u8 labels. */
struct nsl_dataset {
	uint32_t count;
	struct nsl_shape shape;
	uint8_t *samples;
	uint8_t *labels;
	uint32_t classes;
};

/*
 * Write d as `parts` shards of equal size, "<dir>/<stem>-<i>-of-<parts>.nsl": the first
 * floor(count/parts)*parts samples in file order, cut into consecutive parts (the remainder is
 * dropped so every peer has the same count). parts == 1 writes "<dir>/<stem>.nsl" when
 * single_name is true. Returns 0 or a negative errno.
 */
int nsl_shard_write_parts(const struct nsl_dataset *d, const char *dir, const char *stem, int parts,
			  bool single_name);

#endif
