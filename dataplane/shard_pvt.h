/* SPDX-License-Identifier: BSD-3-Clause */
/* What the shard writer and reader share about the on-disk header. */
#ifndef NSL_SHARD_PVT_H
#define NSL_SHARD_PVT_H

#include <stdint.h>

#include "nsplit/shard.h"

#define NSL_SHARD_ALIGN 4096u
#define NSL_SHARD_CRC_OFFSET 56

static inline uint64_t nsl_align_up(uint64_t x, uint64_t a)
{
	return (x + a - 1) / a * a;
}

/* Bytes per sample element and per label for the header's type codes (0 when unknown). */
uint32_t nsl_shard_dtype_bytes(uint32_t dtype);
uint32_t nsl_shard_label_bytes(uint32_t label_type);

/* Serialise info into a zeroed NSL_SHARD_HEADER_BYTES block, checksum included. */
void nsl_shard_header_encode(const struct nsl_shard_info *info, uint8_t *block);

/*
 * Parse and validate a header block; file_bytes is the file's size (truncation check).
 * 0 or -EINVAL/-EIO with a message naming path.
 */
int nsl_shard_header_decode(const uint8_t *block, uint64_t file_bytes, const char *path,
			    struct nsl_shard_info *out);

#endif
