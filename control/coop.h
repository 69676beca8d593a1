/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Peers of one process sharing a thread per CPU (`--poll coop`), when they outnumber the CPUs.
 *
 * Each peer runs as a coroutine on its own stack, over one worker thread per CPU. A worker runs
 * any peer no other worker is running, so peers move between workers. A peer keeps its worker
 * until a poll of its link finds nothing to do (poll.h's coop mode); the worker then goes on to
 * the next peer. A worker that found every peer idle or taken in one round naps adaptively on
 * the workers' one bell, which every peer's partners ring. (Peers fixed to worker i mod W,
 * tried first, ran Fast N-split slower than threads did.)
 *
 * Why: four peers as four threads on two cores left the OS to share the cores, and a waiting
 * peer's spins, yields and naps took turns on the core of one that computes. Here a peer that
 * waits hands its core to its neighbour at once, and none competes with one that computes.
 */
#ifndef NSL_COOP_H
#define NSL_COOP_H

#include <stdbool.h>

struct peer;

struct nsl_coop;

/* Start fn(peer) for each of the n peers, as coroutines over `workers` threads (at most n),
 * into *out; with `timed`, each peer's CPU time is kept (nsl_coop_cpu). 0, or a negative errno
 * with a message when they cannot start (the job is then stopped, *out NULL). */
int nsl_coop_start(struct peer *peers, int n, int workers, void (*fn)(struct peer *p), bool timed,
		   struct nsl_coop **out);

/* Wait for every peer's fn to return, then free the stacks and threads. NULL: nothing. */
void nsl_coop_join(struct nsl_coop *c);

/* By a peer, once its idle is set up: its empty polls hand its worker to the next peer. */
void nsl_coop_attach(struct peer *p);

/* The CPU time the calling peer has had, in seconds: nsl_thread_cpu, less what the other
 * peers of its worker had (when started `timed`). */
double nsl_coop_cpu(const struct peer *p);

#endif
