/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Deterministic random numbers. Everything random in nsplit (initialisation, dropout masks,
 * shuffles) derives from the job's seed through these functions, so that two runs with one seed,
 * and one model cut into any number of stages, see the same numbers.
 *
 * nsl_rng is xoshiro256** seeded through splitmix64; nsl_hash64 is a stateless counter-based
 * mix for places (dropout) where a value must depend only on its coordinates.
 */
#ifndef NSPLIT_RNG_H
#define NSPLIT_RNG_H

#include <stddef.h>
#include <stdint.h>

struct nsl_rng {
	uint64_t s[4];
};

/* The splitmix64 finaliser: a bijective 64-bit mix. */
static inline uint64_t nsl_hash64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* Mix two words into one (order matters). */
static inline uint64_t nsl_hash2(uint64_t a, uint64_t b)
{
	return nsl_hash64(nsl_hash64(a) ^ (b + 0x632be59bd9b4e019ULL));
}

/* Seed a generator; distinct streams of one seed are independent. */
void nsl_rng_seed(struct nsl_rng *r, uint64_t seed, uint64_t stream);

uint64_t nsl_rng_next(struct nsl_rng *r);

/* Uniform in [0, 1) with 24 bits of precision (exactly representable as float). */
float nsl_rng_uniform(struct nsl_rng *r);

/* Uniform integer in [0, n), without modulo bias; n > 0. */
uint64_t nsl_rng_below(struct nsl_rng *r, uint64_t n);

/* Fisher-Yates shuffle of idx[0..n). */
void nsl_rng_shuffle_u32(struct nsl_rng *r, uint32_t *idx, size_t n);

#endif
