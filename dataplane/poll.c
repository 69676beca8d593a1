/* SPDX-License-Identifier: BSD-3-Clause */
/* Busy and adaptive polling (see nsplit/poll.h for when each is right). */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <sys/prctl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <immintrin.h>

#include "nsplit/error.h"
#include "nsplit/poll.h"

static const char *const names[] = {
	[NSL_POLL_AUTO] = "auto",
	[NSL_POLL_BUSY] = "busy",
	[NSL_POLL_YIELD] = "yield",
	[NSL_POLL_ADAPTIVE] = "adaptive",
	[NSL_POLL_COOP] = "coop",
};

int nsl_poll_mode_parse(const char *s, enum nsl_poll_mode *out)
{
	for (unsigned m = 0; m < sizeof(names) / sizeof(names[0]); m++)
		if (s != NULL && strcmp(s, names[m]) == 0) {
			*out = (enum nsl_poll_mode)m;
			return 0;
		}
	return nsl_error_set(EINVAL, "polling mode '%s': give auto, busy, adaptive, yield or coop", s ? s : "");
}

const char *nsl_poll_mode_name(enum nsl_poll_mode m)
{
	return (unsigned)m < sizeof(names) / sizeof(names[0]) ? names[m] : "unknown";
}

enum nsl_poll_mode nsl_poll_mode_resolve(enum nsl_poll_mode m, unsigned threads, unsigned cpus)
{
	if (m != NSL_POLL_AUTO)
		return m;
	return threads <= cpus ? NSL_POLL_BUSY : NSL_POLL_ADAPTIVE;
}

void nsl_idle_init(struct nsl_idle *w, enum nsl_poll_mode m)
{
	/* Linux stretches a sleep by the thread's timer slack, 50 us by default: keep naps as asked. */
	if (m != NSL_POLL_BUSY)
		prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
	*w = (struct nsl_idle){
		/* coop polls as adaptive until a switch is set (nsl_idle_set_switch) */
		.mode = m == NSL_POLL_BUSY || m == NSL_POLL_YIELD ? m : NSL_POLL_ADAPTIVE,
		.nap_us = NSL_IDLE_NAP_MIN_US,
	};
}

void nsl_idle_set_switch(struct nsl_idle *w, void (*fn)(struct nsl_idle *w, void *arg), void *arg)
{
	w->mode = NSL_POLL_COOP;
	w->switch_fn = fn;
	w->switch_arg = arg;
}

void nsl_idle_set_bell(struct nsl_idle *w, struct nsl_bell *b)
{
	w->bell = w->mode == NSL_POLL_ADAPTIVE ? b : NULL;
	if (w->bell)
		w->seen = atomic_load(&b->seq);
}

void nsl_bell_ring(struct nsl_bell *b)
{
	atomic_fetch_add(&b->seq, 1);
	if (atomic_load(&b->sleeping))
		syscall(SYS_futex, &b->seq, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

/* Sleep `ts`, or less when the bell rings: a ring since the last poll (its count moved past
 * `seen`) ends the nap before it starts. Sleeping is set before the futex compares the count,
 * and a ring adds before it looks at sleeping, so no ring goes unheard. */
static void nap(struct nsl_idle *w, const struct timespec *ts)
{
	if (w->bell == NULL) {
		nanosleep(ts, NULL);
		return;
	}
	atomic_fetch_add(&w->bell->sleeping, 1);
	syscall(SYS_futex, &w->bell->seq, FUTEX_WAIT_PRIVATE, w->seen, ts, NULL, 0);
	atomic_fetch_sub(&w->bell->sleeping, 1);
}

static void idle_step(struct nsl_idle *w, int work)
{
	const uint32_t cap = w->bell ? NSL_IDLE_BELL_NAP_MAX_US : NSL_IDLE_NAP_MAX_US;
	struct timespec ts;

	if (work > 0) {
		w->empty = 0;
		w->nap_us = NSL_IDLE_NAP_MIN_US;
		w->worked = true;
		return;
	}
	if (w->mode == NSL_POLL_COOP) {
		w->switch_fn(w, w->switch_arg);
		return;
	}
	if (w->mode == NSL_POLL_BUSY || ++w->empty <= NSL_IDLE_SPINS) {
		/* Tells the core a spin loop runs (its SMT sibling gets the pipeline). */
		_mm_pause();
		return;
	}
	if (w->mode == NSL_POLL_YIELD || w->empty <= NSL_IDLE_SPINS + NSL_IDLE_YIELDS) {
		w->yields++;
		sched_yield();
		return;
	}
	/* Still nothing: nap, twice as long each time, so an idle peer costs next to no CPU. */
	w->naps++;
	ts.tv_sec = 0;
	ts.tv_nsec = (long)w->nap_us * 1000;
	nap(w, &ts);
	if (w->nap_us < cap)
		w->nap_us = w->nap_us * 2 < cap ? w->nap_us * 2 : cap;
}

void nsl_idle_after(struct nsl_idle *w, int work)
{
	idle_step(w, work);
	if (w->bell)
		w->seen = atomic_load(&w->bell->seq);   /* before the next poll */
}
