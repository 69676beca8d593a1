/* SPDX-License-Identifier: BSD-3-Clause */
#include <stdint.h>

#include "nsplit/rng.h"

static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

void nsl_rng_seed(struct nsl_rng *r, uint64_t seed, uint64_t stream)
{
	uint64_t x = nsl_hash2(seed, stream);

	for (int i = 0; i < 4; i++) {
		x += 0x9e3779b97f4a7c15ULL;
		r->s[i] = nsl_hash64(x);
	}
}

uint64_t nsl_rng_next(struct nsl_rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

float nsl_rng_uniform(struct nsl_rng *r)
{
	return (float)(nsl_rng_next(r) >> 40) * (1.0f / 16777216.0f);
}

uint64_t nsl_rng_below(struct nsl_rng *r, uint64_t n)
{
	/* Rejection keeps every value equally likely, so shuffles are unbiased. */
	uint64_t limit = UINT64_MAX - UINT64_MAX % n;
	uint64_t x;

	do {
		x = nsl_rng_next(r);
	} while (x >= limit);
	return x % n;
}

void nsl_rng_shuffle_u32(struct nsl_rng *r, uint32_t *idx, size_t n)
{
	for (size_t i = n; i > 1; i--) {
		size_t j = (size_t)nsl_rng_below(r, i);
		uint32_t t = idx[i - 1];

		idx[i - 1] = idx[j];
		idx[j] = t;
	}
}
