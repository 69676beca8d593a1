/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Polling modes: parsing, auto's choice, the adaptive ladder (spin, yield, growing naps, back to
 * spinning on work), that an idle adaptive poller leaves the CPU to others, that a bell
 * rung ends a nap, and coop's hand-over at an empty poll.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <CUnit/Basic.h>

#include "nsplit/error.h"
#include "nsplit/poll.h"
#include "cunit_main.h"

static void test_parse(void)
{
	enum nsl_poll_mode m;

	CU_ASSERT_EQUAL(nsl_poll_mode_parse("busy", &m), 0);
	CU_ASSERT_EQUAL(m, NSL_POLL_BUSY);
	CU_ASSERT_EQUAL(nsl_poll_mode_parse("adaptive", &m), 0);
	CU_ASSERT_EQUAL(m, NSL_POLL_ADAPTIVE);
	CU_ASSERT_EQUAL(nsl_poll_mode_parse("auto", &m), 0);
	CU_ASSERT_EQUAL(m, NSL_POLL_AUTO);
	CU_ASSERT_EQUAL(nsl_poll_mode_parse("spin", &m), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(nsl_error_last(), "adaptive"));
	CU_ASSERT_EQUAL(nsl_poll_mode_parse(NULL, &m), -EINVAL);
	CU_ASSERT_STRING_EQUAL(nsl_poll_mode_name(NSL_POLL_ADAPTIVE), "adaptive");
	CU_ASSERT_EQUAL(nsl_poll_mode_parse("coop", &m), 0);
	CU_ASSERT_EQUAL(m, NSL_POLL_COOP);
}

static void test_resolve(void)
{
	CU_ASSERT_EQUAL(nsl_poll_mode_resolve(NSL_POLL_AUTO, 2, 2), NSL_POLL_BUSY);
	CU_ASSERT_EQUAL(nsl_poll_mode_resolve(NSL_POLL_AUTO, 4, 2), NSL_POLL_ADAPTIVE);
	CU_ASSERT_EQUAL(nsl_poll_mode_resolve(NSL_POLL_BUSY, 4, 2), NSL_POLL_BUSY);
	CU_ASSERT_EQUAL(nsl_poll_mode_resolve(NSL_POLL_ADAPTIVE, 1, 8), NSL_POLL_ADAPTIVE);
}

static void count_switch(struct nsl_idle *w, void *arg)
{
	(void)w;
	++*(int *)arg;
}

/* Coop: an empty poll hands the thread over at once (no spinning, no sleeping) and work is
 * noted for the scheduler; without a hook it polls as adaptive does. */
static void test_coop(void)
{
	struct nsl_idle w;
	struct nsl_bell bell = { 0 };
	int switches = 0;

	nsl_idle_init(&w, NSL_POLL_COOP);
	nsl_idle_set_switch(&w, count_switch, &switches);
	for (int i = 0; i < 5; i++)
		nsl_idle_after(&w, 0);
	CU_ASSERT_EQUAL(switches, 5);
	CU_ASSERT_FALSE(w.worked);
	CU_ASSERT_EQUAL(w.yields + w.naps, 0);
	nsl_idle_after(&w, 3);
	CU_ASSERT_EQUAL(switches, 5);
	CU_ASSERT_TRUE(w.worked);
	nsl_idle_init(&w, NSL_POLL_COOP);
	nsl_idle_set_bell(&w, &bell);
	CU_ASSERT_PTR_EQUAL(w.bell, &bell);   /* its naps wake when rung, as adaptive's do */
	for (int i = 0; i < NSL_IDLE_SPINS + NSL_IDLE_YIELDS + 1; i++)
		nsl_idle_after(&w, 0);
	CU_ASSERT_EQUAL(w.yields, NSL_IDLE_YIELDS);
	CU_ASSERT_EQUAL(w.naps, 1);
}

static void test_ladder(void)
{
	struct nsl_idle w;

	nsl_idle_init(&w, NSL_POLL_ADAPTIVE);
	for (int i = 0; i < NSL_IDLE_SPINS; i++)
		nsl_idle_after(&w, 0);
	CU_ASSERT_EQUAL(w.yields, 0);
	CU_ASSERT_EQUAL(w.naps, 0);
	for (int i = 0; i < NSL_IDLE_YIELDS; i++)
		nsl_idle_after(&w, 0);
	CU_ASSERT_EQUAL(w.yields, NSL_IDLE_YIELDS);
	CU_ASSERT_EQUAL(w.naps, 0);
	for (int i = 0; i < 12; i++)
		nsl_idle_after(&w, 0);
	CU_ASSERT_EQUAL(w.naps, 12);
	CU_ASSERT_EQUAL(w.nap_us, NSL_IDLE_NAP_MAX_US);
	/* Work: back to spinning, naps from the shortest again. */
	nsl_idle_after(&w, 3);
	CU_ASSERT_EQUAL(w.empty, 0);
	CU_ASSERT_EQUAL(w.nap_us, NSL_IDLE_NAP_MIN_US);
	nsl_idle_after(&w, 0);
	CU_ASSERT_EQUAL(w.yields, NSL_IDLE_YIELDS);

	nsl_idle_init(&w, NSL_POLL_BUSY);
	for (int i = 0; i < 10000; i++)
		nsl_idle_after(&w, 0);
	CU_ASSERT_EQUAL(w.yields + w.naps, 0);
}

static double clock_s(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Idle for 0.3 s in adaptive mode: the thread must have slept most of it (CPU time, not speed). */
static void test_idle_cpu(void)
{
	struct nsl_idle w;
	double wall0 = clock_s(CLOCK_MONOTONIC), cpu0 = clock_s(CLOCK_THREAD_CPUTIME_ID), cpu;

	nsl_idle_init(&w, NSL_POLL_ADAPTIVE);
	while (clock_s(CLOCK_MONOTONIC) - wall0 < 0.3)
		nsl_idle_after(&w, 0);
	cpu = clock_s(CLOCK_THREAD_CPUTIME_ID) - cpu0;
	printf("\n    idle 0.3 s: %.1f ms of CPU, %llu yields, %llu naps\n", cpu * 1e3, (unsigned long long)w.yields,
	       (unsigned long long)w.naps);
	CU_ASSERT(cpu < 0.3 * 0.25);
	CU_ASSERT(w.naps > 100);
}

/* A bell: naps grow to the bell's longer cap; a ring since the last poll ends the next nap before
 * it starts (a nap of 0.9 s returns at once: a 100x margin, not a timing of speed); one not rung
 * lasts; busy pollers take no bell. */
static void test_bell(void)
{
	struct nsl_bell bell = { 0 };
	struct nsl_idle w;
	double t0;

	nsl_idle_init(&w, NSL_POLL_ADAPTIVE);
	nsl_idle_set_bell(&w, &bell);
	for (int i = 0; i < NSL_IDLE_SPINS + NSL_IDLE_YIELDS + 20; i++)
		nsl_idle_after(&w, 0);
	CU_ASSERT_EQUAL(w.nap_us, NSL_IDLE_BELL_NAP_MAX_US);
	w.nap_us = 900000;
	nsl_bell_ring(&bell);
	t0 = clock_s(CLOCK_MONOTONIC);
	nsl_idle_after(&w, 0);
	CU_ASSERT(clock_s(CLOCK_MONOTONIC) - t0 < 0.45);
	CU_ASSERT_EQUAL(atomic_load(&bell.sleeping), 0);
	w.nap_us = 100000;
	t0 = clock_s(CLOCK_MONOTONIC);
	nsl_idle_after(&w, 0);
	CU_ASSERT(clock_s(CLOCK_MONOTONIC) - t0 > 0.05);
	nsl_idle_init(&w, NSL_POLL_BUSY);
	nsl_idle_set_bell(&w, &bell);
	CU_ASSERT_PTR_NULL(w.bell);
}

int main(void)
{
	static const struct nsl_test_case cases[] = {
		{ "modes parse and print", test_parse },
		{ "auto: busy with a CPU per poller, else adaptive", test_resolve },
		{ "adaptive: spin, yield, growing naps; work starts over", test_ladder },
		{ "an idle adaptive poller sleeps", test_idle_cpu },
		{ "a bell ends a nap", test_bell },
		{ "coop: an empty poll switches, work is noted", test_coop },
		{ NULL, NULL },
	};

	return nsl_test_run("poll", cases);
}
