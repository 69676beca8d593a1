/* SPDX-License-Identifier: BSD-3-Clause */
/* Peers as coroutines over a thread per CPU (coop.h says why). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define ASAN_FIBERS 1
#endif

#include "nsplit/eal.h"
#include "nsplit/error.h"
#include "nsplit/poll.h"
#include "coop.h"
#include "peer.h"
#include "trace.h"

/* A thread's default stack: oneDNN and DPDK run on it as they would on a peer's own thread.
 * Reserved, not committed: pages count only once touched. */
#define STACK_BYTES (8ul << 20)

struct worker;

struct fiber {
	ucontext_t ctx;
	void *map;                    /* the stack, a guard page below it */
	struct worker *w;             /* the worker running it now */
	struct peer *p;
	atomic_bool taken;            /* a worker runs it */
	bool done;
	double cpu, resumed;          /* CPU time of the turns before this one; when this one began */
#ifdef ASAN_FIBERS
	void *fake;
#endif
};

struct worker {
	ucontext_t sched;
	pthread_t thread;
	bool started;
	int index;
	struct nsl_coop *c;
	struct nsl_idle idle;
#ifdef ASAN_FIBERS
	void *fake;
	const void *stack;
	size_t stack_len;
#endif
};

struct nsl_coop {
	int nworkers, nfibers;
	struct worker *w;
	struct fiber *f;
	struct nsl_bell bell;         /* the peers' partners ring it; idle workers nap on it */
	void (*fn)(struct peer *p);
	bool timed;                   /* count each peer's CPU time (for traces) */
	atomic_int live;              /* fibers not yet done */
};

static void to_fiber(struct worker *w, struct fiber *f)
{
#ifdef ASAN_FIBERS
	__sanitizer_start_switch_fiber(&w->fake, (char *)f->map + getpagesize(), STACK_BYTES);
#endif
	swapcontext(&w->sched, &f->ctx);
#ifdef ASAN_FIBERS
	__sanitizer_finish_switch_fiber(w->fake, NULL, NULL);
#endif
}

/* Back to the worker running f; `last`: f is done and never runs again. f may come back on
 * another worker: f->w is read anew. */
static void to_worker(struct fiber *f, bool last)
{
#ifdef ASAN_FIBERS
	__sanitizer_start_switch_fiber(last ? NULL : &f->fake, f->w->stack, f->w->stack_len);
#endif
	if (last) {
		setcontext(&f->w->sched);
		return;
	}
	swapcontext(&f->ctx, &f->w->sched);
#ifdef ASAN_FIBERS
	__sanitizer_finish_switch_fiber(f->fake, &f->w->stack, &f->w->stack_len);
#endif
}

/* poll.h's coop hook: an empty poll hands the thread back to the worker. */
static void yield(struct nsl_idle *idle, void *arg)
{
	(void)idle;
	to_worker(arg, false);
}

/* makecontext passes ints: the fiber's address in two halves. */
static void entry(unsigned lo, unsigned hi)
{
	struct fiber *f = (struct fiber *)(uintptr_t)(((uint64_t)hi << 32) | lo);

#ifdef ASAN_FIBERS
	__sanitizer_finish_switch_fiber(NULL, &f->w->stack, &f->w->stack_len);
#endif
	f->w->c->fn(f->p);
	f->done = true;
	to_worker(f, true);
}

/* Run what is ready of fiber f, if no other worker runs it. Whether it did any work. */
static bool turn(struct worker *w, struct fiber *f)
{
	bool worked;

	/* Taking it orders this worker after the last one to run it (done, cc, its context). */
	if (atomic_exchange(&f->taken, true))
		return false;
	if (f->done) {
		atomic_store(&f->taken, false);
		return false;
	}
	if (f->w != w && f->p->cc != NULL)
		nsl_compute_bind_thread(f->p->cc);   /* OpenMP's thread count is per thread */
	f->w = w;
	f->p->idle.worked = false;
	if (w->c->timed)
		f->resumed = nsl_thread_cpu();
	to_fiber(w, f);
	if (w->c->timed)
		f->cpu += nsl_thread_cpu() - f->resumed;
	worked = f->p->idle.worked || f->done;
	if (f->done)
		atomic_fetch_sub(&w->c->live, 1);
	atomic_store(&f->taken, false);
	return worked;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct nsl_coop *c = w->c;
	/* DPDK serves threads it has not registered too, without per-lcore mempool caches. */
	const bool registered = nsl_eal_thread_register() == 0;

	nsl_error_clear();
	nsl_idle_init(&w->idle, NSL_POLL_ADAPTIVE);
	nsl_idle_set_bell(&w->idle, &c->bell);
	while (atomic_load(&c->live) > 0) {
		bool worked = false;

		/* Workers start their rounds at different fibers, so each has its own first choice. */
		for (int i = 0; i < c->nfibers; i++)
			worked |= turn(w, &c->f[(i + w->index) % c->nfibers]);
		nsl_idle_after(&w->idle, worked);
	}
	if (registered)
		nsl_eal_thread_unregister();
	return NULL;
}

void nsl_coop_attach(struct peer *p)
{
	if (p->fiber != NULL)
		nsl_idle_set_switch(&p->idle, yield, p->fiber);
}

double nsl_coop_cpu(const struct peer *p)
{
	const struct fiber *f = p->fiber;

	return f != NULL ? f->cpu + nsl_thread_cpu() - f->resumed : nsl_thread_cpu();
}

void nsl_coop_join(struct nsl_coop *c)
{
	if (c == NULL)
		return;
	for (int i = 0; i < c->nworkers; i++)
		if (c->w[i].started)
			pthread_join(c->w[i].thread, NULL);
	for (int i = 0; i < c->nfibers; i++) {
		struct peer *p = c->f[i].p;

		if (c->f[i].map != NULL)
			munmap(c->f[i].map, STACK_BYTES + (size_t)getpagesize());
		/* fibers not yet made when making one failed have no peer */
		if (p != NULL) {
			p->fiber = NULL;
			p->ring = &p->bell;
		}
	}
	free(c->w);
	free(c->f);
	free(c);
}

static int make_fiber(struct fiber *f)
{
	const size_t page = (size_t)getpagesize();

	f->map = mmap(NULL, STACK_BYTES + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK,
		      -1, 0);
	if (f->map == MAP_FAILED) {
		f->map = NULL;
		return nsl_error_set(errno, "coop: a %lu MiB stack for peer %d: %s", STACK_BYTES >> 20, f->p->rank,
				     strerror(errno));
	}
	/* An overflow faults on the guard page instead of running into other memory. */
	mprotect(f->map, page, PROT_NONE);
	if (getcontext(&f->ctx) < 0)
		return nsl_error_set(errno, "coop: getcontext: %s", strerror(errno));
	f->ctx.uc_stack.ss_sp = (char *)f->map + page;
	f->ctx.uc_stack.ss_size = STACK_BYTES;
	f->ctx.uc_link = NULL;   /* entry never returns: it switches to its worker */
	makecontext(&f->ctx, (void (*)(void))entry, 2, (unsigned)(uintptr_t)f, (unsigned)((uintptr_t)f >> 32));
	return 0;
}

int nsl_coop_start(struct peer *peers, int n, int workers, void (*fn)(struct peer *p), bool timed,
		   struct nsl_coop **out)
{
	struct nsl_coop *c = calloc(1, sizeof(*c));
	int rc = 0;

	*out = NULL;
	if (workers < 1 || workers > n)
		workers = n;
	if (c == NULL || (c->w = calloc((size_t)workers, sizeof(*c->w))) == NULL ||
	    (c->f = calloc((size_t)n, sizeof(*c->f))) == NULL) {
		nsl_coop_join(c);
		return nsl_error_set(ENOMEM, "coop: out of memory");
	}
	c->nworkers = workers;
	c->nfibers = n;
	c->fn = fn;
	c->timed = timed;
	atomic_store(&c->live, n);
	for (int i = 0; i < workers; i++)
		c->w[i] = (struct worker){ .index = i, .c = c };
	for (int q = 0; q < n && rc == 0; q++) {
		struct fiber *f = &c->f[q];

		*f = (struct fiber){ .w = &c->w[0], .p = &peers[q] };
		peers[q].fiber = f;
		peers[q].ring = &c->bell;
		rc = make_fiber(f);
	}
	for (int i = 0; i < workers && rc == 0; i++) {
		if ((rc = -pthread_create(&c->w[i].thread, NULL, worker_main, &c->w[i])) < 0)
			nsl_error_set(-rc, "coop: cannot start worker thread %d: %s", i, strerror(-rc));
		else
			c->w[i].started = true;
	}
	if (rc < 0) {
		/* Workers already running stop as the job stops. */
		for (int q = 0; q < n; q++)
			atomic_store(&peers[q].job->stop, 1);
		nsl_coop_join(c);
		return rc;
	}
	*out = c;
	return 0;
}
