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
 *
 * Where the core has AVX-512 carry-less multiply (Zen 4 and 5 do), buffers of 256 bytes and more
 * are folded instead, 64 bytes per multiply, which leaves the three-lane code only short pieces
 * and tails; see fold.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <immintrin.h>
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

#if defined(__AVX512F__) && defined(__VPCLMULQDQ__)
#define HAVE_FOLD 1
#else
#define HAVE_FOLD 0
#endif

/* Shorter buffers go to the lanes: folding starts with four 64-byte accumulators. */
#define FOLD_MIN 256

/* fold_k[j]: the constants that move a 16-byte lane on by 64 * (j + 1) bytes (see fold). */
static uint64_t fold_k[4][2];

/* x^e mod P, reflected as the crc32 instruction keeps its register: bit 31 - i holds x^i. */
static uint32_t xpow(uint32_t e)
{
	uint32_t v = 0x80000000u;

	while (e-- > 0)
		v = v & 1 ? (v >> 1) ^ 0x82F63B78u : v >> 1;
	return v;
}

/* Before main, so no caller (of any thread) can see the tables half built. */
__attribute__((constructor)) static void crc32c_init(void)
{
	build(&shift_long, LANE_LONG);
	build(&shift_short, LANE_SHORT);
	for (uint32_t j = 0; j < 4; j++) {
		fold_k[j][0] = xpow(8 * 64 * (j + 1) + 31);
		fold_k[j][1] = xpow(8 * 64 * (j + 1) - 33);
	}
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

#if HAVE_FOLD
/*
 * Loaded little-endian, 16 bytes of data are a polynomial U of degree < 128 whose first bit is
 * x^127, and the CRC is (message * x^32) mod P, so a lane followed by F more bytes may be replaced
 * by anything congruent to U * x^(8F) mod P placed F bytes on. With U = L * x^64 + H (L the low
 * qword, read first), the carry-less product of a qword and a reflected 32-bit constant r(K) is
 * the reflected 95-bit product, which read as a 16-byte lane is (qword * K * x^33); hence
 * clmul(L, r(x^(8F + 31))) ^ clmul(H, r(x^(8F - 33))), xored into the data found there. The
 * 64 bytes left at the end are fed to the crc32 instruction as ordinary data.
 */
static inline __m512i fold_by(__m512i acc, uint32_t j, __m512i data)
{
	const __m512i k = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)fold_k[j]));

	return _mm512_ternarylogic_epi64(_mm512_clmulepi64_epi128(acc, k, 0x00), _mm512_clmulepi64_epi128(acc, k, 0x11),
					 data, 0x96);
}

static inline __m512i take(uint8_t *dst, const uint8_t *p, uint64_t off)
{
	__m512i v = _mm512_loadu_si512(p + off);

	if (dst != NULL)
		_mm512_storeu_si512(dst + off, v);
	return v;
}

/*
 * The register after the first len - len % 64 bytes at p (len >= FOLD_MIN), copied to dst unless
 * it is NULL.
 */
static inline uint32_t fold(uint32_t reg, uint8_t *dst, const uint8_t *p, uint64_t len)
{
	__m512i a0 = take(dst, p, 0), a1 = take(dst, p, 64);
	__m512i a2 = take(dst, p, 128), a3 = take(dst, p, 192);
	uint64_t off = 256, q[8], c = 0;

	/* The register stands for reg * x^(8 len): the same as xoring it into the first four bytes. */
	a0 = _mm512_xor_si512(a0, _mm512_zextsi128_si512(_mm_cvtsi32_si128((int)reg)));
	for (; off + 256 <= len; off += 256) {
		a0 = fold_by(a0, 3, take(dst, p, off));
		a1 = fold_by(a1, 3, take(dst, p, off + 64));
		a2 = fold_by(a2, 3, take(dst, p, off + 128));
		a3 = fold_by(a3, 3, take(dst, p, off + 192));
	}
	a3 = fold_by(a0, 2, fold_by(a1, 1, fold_by(a2, 0, a3)));
	for (; off + 64 <= len; off += 64)
		a3 = fold_by(a3, 0, take(dst, p, off));
	_mm512_storeu_si512(q, a3);
	for (int i = 0; i < 8; i++)
		c = _mm_crc32_u64(c, q[i]);
	return (uint32_t)c;
}
#endif

uint32_t nsl_crc32c(uint32_t crc, const void *data, uint64_t len)
{
	const uint8_t *p = data;
	uint32_t reg = ~crc;
	uint64_t c;

#if HAVE_FOLD
	if (len >= FOLD_MIN) {
		reg = fold(reg, NULL, p, len);
		p += len - len % 64;
		len %= 64;
	}
#endif
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

/* Copy and CRC byte-sized and word-sized pieces: heads and tails of the faster loops. */
static uint64_t copy_words(uint64_t c, uint8_t *d, const uint8_t *s, uint64_t len)
{
	for (; len >= 8; len -= 8, d += 8, s += 8) {
		uint64_t v = load64(s);

		c = _mm_crc32_u64(c, v);
		memcpy(d, &v, 8);
	}
	for (; len > 0; len--, d++, s++) {
		*d = *s;
		c = _mm_crc32_u8((uint32_t)c, *s);
	}
	return c;
}

uint32_t nsl_crc32c_copy(uint32_t crc, void *dst, const void *src, uint64_t len)
{
	uint8_t *d = dst;
	const uint8_t *s = src;
	uint64_t c = ~crc;

#if HAVE_FOLD
	if (len >= FOLD_MIN + 64) {
		/* Whole-line stores: a store across two cache lines costs two. */
		uint64_t head = -(uintptr_t)d % 64;

		c = copy_words(c, d, s, head);
		d += head, s += head, len -= head;
		c = fold((uint32_t)c, d, s, len);
		d += len - len % 64, s += len - len % 64;
		len %= 64;
	}
#endif
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
	return ~(uint32_t)copy_words(c, d, s, len);
}
