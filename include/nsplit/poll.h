/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What a polling thread does between polls that found nothing to do.
 *
 * Busy: spin. Right when every polling thread has a core of its own (a NIC testbed), where any
 * pause costs latency. Adaptive: spin a little, then yield, then take naps that grow to a cap.
 * Right when polling threads outnumber cores (four peers on a 2-core machine): a thread that
 * spins holds the core its neighbour needs, and on this machine spinning peers ran a pipeline
 * at 0.35-0.68x of the reference against 0.98x with spin-then-yield. Auto picks one of the two
 * from the number of polling threads and the CPUs the process may use. Coop: the caller runs
 * several pollers on one thread (nsplit's peers as coroutines, control/coop.h) and an empty
 * poll hands the thread to the next; a worker whose pollers all came back empty idles
 * adaptively. Without a switch set it acts as adaptive.
 *
 *   struct nsl_idle idle;
 *   nsl_idle_init(&idle, nsl_poll_mode_resolve(NSL_POLL_AUTO, threads, cpus));
 *   for (;;)
 *           nsl_idle_after(&idle, nsl_link_poll(link));
 */
#ifndef NSPLIT_POLL_H
#define NSPLIT_POLL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

enum nsl_poll_mode {
	NSL_POLL_AUTO = 0,
	NSL_POLL_BUSY,
	NSL_POLL_ADAPTIVE,
	NSL_POLL_YIELD,           /* spin, then yield the core for as long as it takes; never sleep */
	NSL_POLL_COOP,            /* hand the thread to the caller's scheduler (nsl_idle_set_switch) */
};

/* Adaptive: empty polls spun before yielding, yields before napping, and the naps. */
#define NSL_IDLE_SPINS 64
#define NSL_IDLE_YIELDS 64
#define NSL_IDLE_NAP_MIN_US 5
#define NSL_IDLE_NAP_MAX_US 200

/*
 * A doorbell, for polling threads of one process (peers over net_ring): a thread that gives a
 * napping one work rings its bell, and the nap ends. With a bell, naps wait on it (a futex) and
 * may grow longer: a nap that wakes to find nothing costs a context switch on a core another
 * thread computes on, and four peers on two cores napping 200 us at a time took 15-20% of the
 * computing threads' time (measured with threads that only nap beside threads that compute).
 */
struct nsl_bell {
	_Atomic uint32_t seq;     /* rung this many times */
	_Atomic uint32_t sleeping;   /* threads napping on it */
};

#define NSL_IDLE_BELL_NAP_MAX_US 2000

struct nsl_idle {
	enum nsl_poll_mode mode;  /* busy, adaptive or yield */
	uint32_t empty;           /* empty polls in a row */
	uint32_t nap_us;          /* the next nap */
	uint64_t yields, naps;    /* counters, for summaries */
	struct nsl_bell *bell;    /* NULL: naps are plain sleeps */
	uint32_t seen;            /* the bell's count before the last poll */
	/* Coop: called at each empty poll, to run something else on this thread and come back;
	 * worked says whether a poll found work since the last switch. */
	void (*switch_fn)(struct nsl_idle *w, void *arg);
	void *switch_arg;
	bool worked;
};

/* "auto", "busy", "adaptive", "yield" or "coop". 0, or -EINVAL with a message listing the modes. */
int nsl_poll_mode_parse(const char *s, enum nsl_poll_mode *out);
const char *nsl_poll_mode_name(enum nsl_poll_mode m);

/* Auto becomes busy when each of `threads` polling threads can have one of `cpus`, else adaptive. */
enum nsl_poll_mode nsl_poll_mode_resolve(enum nsl_poll_mode m, unsigned threads, unsigned cpus);

/* By the polling thread: adaptive mode also sets its timer slack to 1 us, so naps last as asked. */
void nsl_idle_init(struct nsl_idle *w, enum nsl_poll_mode m);

/* After each poll, with what it returned: work > 0 starts over; otherwise spin, yield or nap. */
void nsl_idle_after(struct nsl_idle *w, int work);

/* Coop mode from now on: at each empty poll, call fn(w, arg) (a scheduler that runs other work
 * on this thread, then returns here) instead of spinning or napping. */
void nsl_idle_set_switch(struct nsl_idle *w, void (*fn)(struct nsl_idle *w, void *arg), void *arg);

/* Nap on bell b (adaptive mode; the bell outlives the polling). */
void nsl_idle_set_bell(struct nsl_idle *w, struct nsl_bell *b);

/* Give b's thread work: its nap, if it naps, ends now. Any thread. */
void nsl_bell_ring(struct nsl_bell *b);

#endif
