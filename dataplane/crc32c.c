/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * CRC32C (Castagnoli) with the SSE4.2 crc32 instruction, three streams at once.
 *
 * One crc32 instruction has a latency of three cycles and a throughput of one per cycle, so a
 * single chain of them runs at a third of what the core can do; every message is checked once
 * on each side, so that third showed up beside memcpy in the link's profile. Here a block is
 * cut into three lanes run side by side, and the lanes' registers are joined with "shift by n
 * zero bytes" operators: the CRC register is linear, so the register after A followed by B is
 * shift_|B|(register after A) xor (register of B started from 0). The operators are 32x32 bit
 * matrices, kept as byte-indexed tables and built once at load time from the instruction itself.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <nmmintrin.h>

#include "nsplit/wire.h"

/* Bytes per lane: long lanes for big buffers, short ones so a 1.4 KiB frame still gains. */
#define LANE_LONG 2048
#define LANE_SHORT 128

/* t[k][b]: the register after n zero bytes, starting from byte b at position k (others 0). */
#define shift_op nsl_crc32c_shift

static struct shift_op shift_long, shift_short;

static uint32_t zeros(uint32_t reg, uint64_t n)
{
	uint64_t c = reg;

	for (uint64_t i = 0; i < n / 8; i++)
		c = _mm_crc32_u64(c, 0);
	for (uint64_t i = 0; i < n % 8; i++)
		c = _mm_crc32_u8((uint32_t)c, 0);
	return (uint32_t)c;
}

static void build(struct shift_op *op, uint64_t n)
{
	uint32_t basis[32];

	for (int j = 0; j < 32; j++)
		basis[j] = zeros(1u << j, n);
	for (int k = 0; k < 4; k++)
		for (int b = 0; b < 256; b++) {
			uint32_t v = 0;

			for (int bit = 0; bit < 8; bit++)
				if (b >> bit & 1)
					v ^= basis[8 * k + bit];
			op->t[k][b] = v;
		}
}

/* Before main, so no caller (of any thread) can see the tables half built. */
__attribute__((constructor)) static void crc32c_init(void)
{
	build(&shift_long, LANE_LONG);
	build(&shift_short, LANE_SHORT);
}

static inline uint32_t shift(const struct shift_op *op, uint32_t reg)
{
	return op->t[0][reg & 0xff] ^ op->t[1][(reg >> 8) & 0xff] ^ op->t[2][(reg >> 16) & 0xff] ^ op->t[3][reg >> 24];
}

static inline uint64_t load64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

/* The register after 3 * lane bytes at p, starting from reg. */
static inline uint32_t three_lanes(uint32_t reg, const uint8_t *p, size_t lane, const struct shift_op *op)
{
	uint64_t c0 = reg, c1 = 0, c2 = 0;

	for (size_t i = 0; i < lane; i += 8) {
		c0 = _mm_crc32_u64(c0, load64(p + i));
		c1 = _mm_crc32_u64(c1, load64(p + lane + i));
		c2 = _mm_crc32_u64(c2, load64(p + 2 * lane + i));
	}
	return shift(op, shift(op, (uint32_t)c0) ^ (uint32_t)c1) ^ (uint32_t)c2;
}

uint32_t nsl_crc32c(uint32_t crc, const void *data, uint64_t len)
{
	const uint8_t *p = data;
	uint32_t reg = ~crc;
	uint64_t c;

	for (; len >= 3 * LANE_LONG; len -= 3 * LANE_LONG, p += 3 * LANE_LONG)
		reg = three_lanes(reg, p, LANE_LONG, &shift_long);
	for (; len >= 3 * LANE_SHORT; len -= 3 * LANE_SHORT, p += 3 * LANE_SHORT)
		reg = three_lanes(reg, p, LANE_SHORT, &shift_short);
	c = reg;
	for (; len >= 8; len -= 8, p += 8)
		c = _mm_crc32_u64(c, load64(p));
	for (; len > 0; len--, p++)
		c = _mm_crc32_u8((uint32_t)c, *p);
	return ~(uint32_t)c;
}

void nsl_crc32c_shift_init(struct nsl_crc32c_shift *op, uint64_t len_b)
{
	build(op, len_b);
}

/*
 * With register arithmetic, crc(A.B) = ~(shift(~crc(A)) ^ reg0(B)) and crc(B) = ~(shift(~0) ^
 * reg0(B)), where reg0(B) is B's register started from 0; shift being linear, the inversions
 * cancel: crc(A.B) = shift(crc(A)) ^ crc(B).
 */
uint32_t nsl_crc32c_combine_with(const struct nsl_crc32c_shift *op, uint32_t crc_a, uint32_t crc_b)
{
	return shift(op, crc_a) ^ crc_b;
}

uint32_t nsl_crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b)
{
	return zeros(crc_a, len_b) ^ crc_b;
}

uint32_t nsl_crc32c_copy(uint32_t crc, void *dst, const void *src, uint64_t len)
{
	uint8_t *d = dst;
	const uint8_t *s = src;
	uint64_t c = ~crc;

	for (; len >= 3 * LANE_SHORT; len -= 3 * LANE_SHORT, d += 3 * LANE_SHORT, s += 3 * LANE_SHORT) {
		uint64_t c1 = 0, c2 = 0;

		for (size_t i = 0; i < LANE_SHORT; i += 8) {
			uint64_t v0 = load64(s + i), v1 = load64(s + LANE_SHORT + i), v2 = load64(s + 2 * LANE_SHORT + i);

			c = _mm_crc32_u64(c, v0);
			c1 = _mm_crc32_u64(c1, v1);
			c2 = _mm_crc32_u64(c2, v2);
			memcpy(d + i, &v0, 8);
			memcpy(d + LANE_SHORT + i, &v1, 8);
			memcpy(d + 2 * LANE_SHORT + i, &v2, 8);
		}
		c = shift(&shift_short, shift(&shift_short, (uint32_t)c) ^ (uint32_t)c1) ^ (uint32_t)c2;
	}
	for (; len >= 8; len -= 8, d += 8, s += 8) {
		uint64_t v = load64(s);

		c = _mm_crc32_u64(c, v);
		memcpy(d, &v, 8);
	}
	for (; len > 0; len--, d++, s++) {
		*d = *s;
		c = _mm_crc32_u8((uint32_t)c, *s);
	}
	return ~(uint32_t)c;
}
