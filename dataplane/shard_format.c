/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "nsplit/error.h"
#include "nsplit/rng.h"
#include "shard_pvt.h"

/* Keeps the window permutation's stream apart from every window's own (window numbers < 2^32). */
#define WINDOW_ORDER_STREAM (~0ull)

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

uint32_t nsl_shard_dtype_bytes(uint32_t dtype)
{
	return dtype == NSL_SHARD_DTYPE_U8 ? 1 : 0;
}

uint32_t nsl_shard_label_bytes(uint32_t label_type)
{
	return label_type == NSL_SHARD_LABEL_U8 ? 1 : 0;
}

static uint32_t header_crc(const uint8_t *block)
{
	return (uint32_t)crc32(crc32(0L, Z_NULL, 0), block, NSL_SHARD_CRC_OFFSET);
}

void nsl_shard_header_encode(const struct nsl_shard_info *info, uint8_t *block)
{
	memset(block, 0, NSL_SHARD_HEADER_BYTES);
	memcpy(block, NSL_SHARD_MAGIC, 8);
	put32(block + 8, info->version);
	put32(block + 12, info->data_offset);
	put32(block + 16, (uint32_t)info->shape.c);
	put32(block + 20, (uint32_t)info->shape.h);
	put32(block + 24, (uint32_t)info->shape.w);
	put32(block + 28, info->dtype);
	put32(block + 32, info->label_type);
	put32(block + 36, info->classes);
	put64(block + 40, info->count);
	put32(block + 48, info->record_size);
	put32(block + NSL_SHARD_CRC_OFFSET, header_crc(block));
}

int nsl_shard_header_decode(const uint8_t *block, uint64_t file_bytes, const char *path,
			    struct nsl_shard_info *out)
{
	struct nsl_shard_info i;
	uint64_t elems, need;
	uint32_t c, h, w;

	if (memcmp(block, NSL_SHARD_MAGIC, 8) != 0)
		return nsl_error_set(EINVAL, "%s: not an nsplit shard (wrong magic); make one with `nsplit shard`",
				     path);
	i.version = get32(block + 8);
	if (i.version != NSL_SHARD_VERSION)
		return nsl_error_set(EINVAL, "%s: shard format version %u, this nsplit reads version %u; "
				     "remake it with this nsplit's `nsplit shard`", path, i.version, NSL_SHARD_VERSION);
	if (get32(block + NSL_SHARD_CRC_OFFSET) != header_crc(block))
		return nsl_error_set(EINVAL, "%s: bad header checksum (0x%08x, computed 0x%08x): the header is "
				     "corrupt", path, get32(block + NSL_SHARD_CRC_OFFSET), header_crc(block));
	i.data_offset = get32(block + 12);
	c = get32(block + 16);
	h = get32(block + 20);
	w = get32(block + 24);
	i.dtype = get32(block + 28);
	i.label_type = get32(block + 32);
	i.classes = get32(block + 36);
	i.count = get64(block + 40);
	i.record_size = get32(block + 48);
	elems = (uint64_t)c * h * w;
	if (c == 0 || h == 0 || w == 0 || c > 65535 || h > 65535 || w > 65535)
		return nsl_error_set(EINVAL, "%s: impossible sample shape %ux%ux%u", path, c, h, w);
	if (nsl_shard_dtype_bytes(i.dtype) == 0 || nsl_shard_label_bytes(i.label_type) == 0)
		return nsl_error_set(EINVAL, "%s: unknown sample dtype %u or label type %u", path, i.dtype,
				     i.label_type);
	if (i.record_size != nsl_shard_label_bytes(i.label_type) + elems * nsl_shard_dtype_bytes(i.dtype))
		return nsl_error_set(EINVAL, "%s: record size %u does not match the %ux%ux%u samples", path,
				     i.record_size, c, h, w);
	if (i.data_offset < NSL_SHARD_HEADER_BYTES || i.data_offset % NSL_SHARD_ALIGN != 0)
		return nsl_error_set(EINVAL, "%s: data offset %u is not a multiple of %u after the header", path,
				     i.data_offset, NSL_SHARD_ALIGN);
	if (i.classes < 2 || i.classes > 256)
		return nsl_error_set(EINVAL, "%s: %u classes; u8 labels allow 2 to 256", path, i.classes);
	if (i.count == 0 || i.count > UINT32_MAX)
		return nsl_error_set(EINVAL, "%s: record count %llu out of range (1 to %u)", path,
				     (unsigned long long)i.count, UINT32_MAX);
	need = i.data_offset + i.count * i.record_size;
	if (file_bytes < need)
		return nsl_error_set(EIO, "%s: truncated: %llu bytes, the header promises %llu records of %u bytes "
				     "(%llu bytes)", path, (unsigned long long)file_bytes, (unsigned long long)i.count,
				     i.record_size, (unsigned long long)need);
	i.shape = (struct nsl_shape){ .c = (int)c, .h = (int)h, .w = (int)w };
	*out = i;
	return 0;
}

int nsl_shard_read_info(const char *path, struct nsl_shard_info *out)
{
	uint8_t block[NSL_SHARD_HEADER_BYTES];
	struct stat st;
	ssize_t n;
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return nsl_error_set(errno, "%s: cannot open shard: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0) {
		rc = nsl_error_set(errno, "%s: cannot stat: %s", path, strerror(errno));
		goto out;
	}
	n = pread(fd, block, sizeof(block), 0);
	if (n < 0) {
		rc = nsl_error_set(errno, "%s: cannot read the header: %s", path, strerror(errno));
		goto out;
	}
	if (n < (ssize_t)sizeof(block)) {
		/* A short file with the right magic was cut; anything else is not a shard at all. */
		if (n >= 8 && memcmp(block, NSL_SHARD_MAGIC, 8) == 0)
			rc = nsl_error_set(EIO, "%s: truncated: %zd bytes, shorter than the %u-byte header", path, n,
					   NSL_SHARD_HEADER_BYTES);
		else
			rc = nsl_error_set(EINVAL, "%s: not an nsplit shard (%zd bytes, no shard header)", path, n);
		goto out;
	}
	rc = nsl_shard_header_decode(block, (uint64_t)st.st_size, path, out);
out:
	close(fd);
	return rc;
}

int nsl_shard_check_shape(const struct nsl_shard_info *info, struct nsl_shape expect, const char *path)
{
	if (info->shape.c == expect.c && info->shape.h == expect.h && info->shape.w == expect.w)
		return 0;
	return nsl_error_set(EINVAL, "%s: samples are %dx%dx%d, the model wants %dx%dx%d", path, info->shape.c,
			     info->shape.h, info->shape.w, expect.c, expect.h, expect.w);
}

int nsl_shard_epoch_order(uint64_t seed, uint64_t epoch, uint32_t count, uint32_t window_records, bool shuffle,
			  uint32_t *order)
{
	struct nsl_rng rng;
	uint32_t w, nwin, pos = 0;

	if (count == 0)
		return nsl_error_set(EINVAL, "epoch order of an empty shard");
	if (!shuffle) {
		for (uint32_t i = 0; i < count; i++)
			order[i] = i;
		return 0;
	}
	w = (window_records == 0 || window_records > count) ? count : window_records;
	nwin = (uint32_t)(((uint64_t)count + w - 1) / w);
	/*
	 * The window permutation lives in order[]'s tail while the records are written from the front:
	 * after k+1 windows at most count - (nwin - k - 1) slots are written (every later window holds a
	 * record), so writing never passes the slot of the window being read.
	 */
	uint32_t *wins = order + (count - nwin);

	for (uint32_t k = 0; k < nwin; k++)
		wins[k] = k;
	nsl_rng_seed(&rng, seed, nsl_hash2(epoch, WINDOW_ORDER_STREAM));
	nsl_rng_shuffle_u32(&rng, wins, nwin);
	for (uint32_t k = 0; k < nwin; k++) {
		uint32_t first = wins[k] * w;
		uint32_t len = (count - first < w) ? count - first : w;
		uint32_t *dst = order + pos;

		/* Each window's stream is its own, so a window's inner order does not depend on where it lands. */
		nsl_rng_seed(&rng, seed, nsl_hash2(epoch, first / w));
		for (uint32_t i = 0; i < len; i++)
			dst[i] = first + i;
		nsl_rng_shuffle_u32(&rng, dst, len);
		pos += len;
	}
	return 0;
}
