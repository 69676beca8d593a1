/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * `nsplit train --peers N`: N peers in one process, one thread each, joined in a ring of net_ring
 * port pairs (peer i reaches i - 1 and i + 1). peer.h says what each peer does.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nsplit/eal.h"
#include "nsplit/error.h"
#include "nsplit/port.h"
#include "coop.h"
#include "peer.h"
#include "progress.h"
#include "train_peers.h"

static atomic_int finished;

/* A peer's life, on its own thread or as a coroutine (coop.h). */
static void peer_run(struct peer *p)
{
	struct job *j = p->job;
	int rc = nsl_peer_setup(p);

	if (rc == 0) {
		p->t_ready = nsl_now();
		rc = nsl_peer_train(p);
		p->t_done = nsl_now();
	}
	if (rc < 0)
		nsl_peer_fail(p, rc);
	atomic_fetch_add(&finished, 1);
	/* Keep answering until every peer is done: a neighbour may still wait for an ack. */
	while (rc == 0 && atomic_load(&finished) < j->npeers && !atomic_load(&j->stop))
		if (p->link)
			nsl_idle_after(&p->idle, nsl_peer_poll(p));
}

static void *peer_main(void *arg)
{
	struct peer *p = arg;
	int rc = nsl_eal_thread_register();

	if (rc < 0) {
		nsl_peer_fail(p, rc);
		atomic_fetch_add(&finished, 1);
		return NULL;
	}
	peer_run(p);
	nsl_eal_thread_unregister();
	return NULL;
}

/* Fast N-split: any role may message any other, so every pair of peers gets a port pair. */
static int open_mesh(struct job *j, struct nsl_port **ports)
{
	const int n = j->npeers;

	for (int a = 0, i = 0; a < n; a++)
		for (int b = a + 1; b < n; b++, i++) {
			char name[32];
			struct peer *pa = &j->peers[a], *pb = &j->peers[b];
			int rc;

			snprintf(name, sizeof(name), "mesh%d-%d", a, b);
			if ((rc = nsl_port_ring_pair(name, &(struct nsl_port_conf){ 0 }, &ports[2 * i])) < 0)
				return rc;
			pa->port_to[b] = ports[2 * i];
			pb->port_to[a] = ports[2 * i + 1];
			nsl_port_mac(ports[2 * i + 1], pa->mac_to[b]);
			nsl_port_mac(ports[2 * i], pb->mac_to[a]);
			pa->mac_to_set[b] = pb->mac_to_set[a] = true;
		}
	return 0;
}

static int open_ports(struct job *j, struct nsl_port **ports)
{
	const int n = j->npeers, pairs = n == 2 ? 1 : n;

	if (j->fast)
		return open_mesh(j, ports);
	for (int i = 0; i < pairs; i++) {
		char name[32];
		struct peer *a = &j->peers[i], *b = &j->peers[(i + 1) % n];
		int rc;

		snprintf(name, sizeof(name), "peers%d", i);
		if ((rc = nsl_port_ring_pair(name, &(struct nsl_port_conf){ 0 }, &ports[2 * i])) < 0)
			return rc;
		a->port_next = ports[2 * i];
		b->port_prev = ports[2 * i + 1];
		nsl_port_mac(ports[2 * i + 1], a->mac_next);
		nsl_port_mac(ports[2 * i], b->mac_prev);
		a->mac_next_set = b->mac_prev_set = a->mac_prev_set = b->mac_next_set = true;
		if (n == 2) {
			b->port_next = b->port_prev;
			memcpy(b->mac_next, b->mac_prev, 6);
			a->port_prev = a->port_next;
			memcpy(a->mac_prev, a->mac_next, 6);
		}
	}
	return 0;
}

/* The final weights, gathered from the peers into one chain (for evaluation and saving). */
static int gather(struct job *j, struct nsl_chain *c, struct nsl_compute *cc, struct nsl_job_totals *t)
{
	/* Fast N-split's model is the backward pool's: it holds the master parameters. */
	const int nstages = j->fast ? j->fl.bwd : j->npeers, role0 = j->fast ? j->fl.fwd : 0;
	int rc = nsl_chain_init(c, cc, j->model, j->starts, nstages, j->o->batch, j->o->seed, &j->oc, false);

	for (int i = 0; i < j->npeers; i++) {
		t->loss_sum += j->peers[i].loss_sum;
		t->correct += j->peers[i].correct;
		t->seen += j->peers[i].seen;
	}

	for (int s = 0; rc == 0 && s < nstages; s++) {
		/* The stages stay where the last round trained them (or where a resume put them). */
		const int last = j->first_round >= j->rounds ? j->first_round : j->rounds - 1;
		const struct nsl_stage *from = j->peers[nsl_job_rank_of(j, role0 + s, last)].stage;

		for (int k = 0; rc == 0 && k < nsl_stage_param_count(from); k++) {
			struct nsl_param_info pi;
			float *buf;

			nsl_stage_param_info(from, k, &pi);
			if ((buf = malloc((size_t)pi.numel * sizeof(float))) == NULL)
				return nsl_error_set(ENOMEM, "out of memory gathering %s", pi.name);
			rc = nsl_stage_param_export(from, k, buf);
			if (rc == 0)
				rc = nsl_stage_param_import(c->stages[s], k, buf);
			free(buf);
		}
	}
	return rc;
}

static int run_peers(struct job *j, double t_start)
{
	const int n = j->npeers;
	struct nsl_port **ports = calloc((size_t)(n * n), sizeof(*ports));
	struct nsl_job_watch watch;
	double t0;
	struct nsl_coop *coop = NULL;
	int rc, started = 0, ncpus;
	cpu_set_t cpus;

	j->peers = calloc((size_t)n, sizeof(*j->peers));
	if (j->peers == NULL || ports == NULL) {
		free(ports);
		free(j->peers);
		return nsl_error_set(ENOMEM, "out of memory");
	}
	sched_getaffinity(0, sizeof(cpus), &cpus);
	ncpus = CPU_COUNT(&cpus);
	j->poll = nsl_poll_mode_resolve((enum nsl_poll_mode)j->o->poll, (unsigned)n, (unsigned)ncpus);
	/* More peers than CPUs, each on one compute thread: they share a thread per CPU. */
	if (j->o->poll == NSL_POLL_AUTO && n > ncpus && j->o->threads <= 1)
		j->poll = NSL_POLL_COOP;
	if (j->poll == NSL_POLL_COOP && j->o->threads > 1) {
		rc = nsl_error_set(EINVAL, "--poll coop runs each peer on one compute thread, and --threads is %d: "
				   "give --threads 1 or another polling mode", j->o->threads);
		goto out;
	}
	rc = nsl_eal_init(&(struct nsl_eal_conf){ .mem_mb = nsl_job_dp_mem_mb(j, n) });
	if (rc < 0)
		goto out;
	for (int i = 0; i < n; i++) {
		j->peers[i].job = j;
		j->peers[i].rank = i;
		j->peers[i].budget = j->o->mem_limit;
		j->peers[i].bells = true;
		j->peers[i].ring = &j->peers[i].bell;
	}
	if ((rc = open_ports(j, ports)) < 0)
		goto out;
	if (j->fast) {
		printf("model %s: %d layers, Fast N-split pools %d:%d (split %s), %s activations, buffer %d, staleness %d%s",
		       j->model->text, j->model->nlayers, j->fl.fwd, j->fl.bwd, j->split_text,
		       j->o->fast_all ? "all" : "boundary", j->slots[n - 1], j->fl.staleness,
		       j->o->no_stash ? " without stashing" : "");
	} else {
		printf("model %s: %d layers in %d stages (split at", j->model->text, j->model->nlayers, n);
		for (int s = 1; s < n; s++)
			printf("%s%d", s > 1 ? "," : " ", j->starts[s]);
		printf(")");
	}
	printf("; %d peers, %u samples each, %s schedule, micro-batch %d of batch %d; %s, %d round%s\n", n, j->per_shard,
	       nsl_sched_name(j->o->schedule), j->micro, j->o->batch, j->oc.ops->name, j->rounds,
	       j->rounds == 1 ? "" : "s");
	fflush(stdout);
	atomic_store(&finished, 0);
	nsl_job_watch_start(j, &watch);
	t0 = j->t_train;
	if (j->poll == NSL_POLL_COOP && (rc = nsl_coop_start(j->peers, n, ncpus, peer_run, j->o->trace != NULL, &coop)) == 0)
		started = n;
	for (; j->poll != NSL_POLL_COOP && started < n; started++)
		if ((rc = -pthread_create(&j->peers[started].thread, NULL, peer_main, &j->peers[started])) < 0) {
			nsl_error_set(rc, "cannot start peer %d's thread", started);
			atomic_store(&j->stop, 1);
			break;
		}
	while (atomic_load(&finished) < started) {
		nsl_job_watch_tick(j, &watch);
		usleep(100000);
	}
	for (int i = 0; coop == NULL && i < started; i++)
		pthread_join(j->peers[i].thread, NULL);
	nsl_coop_join(coop);
	nsl_job_watch_end(j, &watch);
	if (rc == 0 && j->o->trace) {
		const struct nsl_trace *tracks[NSL_DATASET_MAX_PARTS];

		for (int i = 0; i < n; i++)
			tracks[i] = &j->peers[i].trace;
		if ((rc = nsl_trace_write(j->o->trace, tracks, n, t0)) == 0)
			printf("trace of every instruction written to %s (open it in https://ui.perfetto.dev)\n", j->o->trace);
	}
	/* Report the peer that failed first, not those that stopped because of it. */
	for (int pass = 0; pass < 2 && rc == 0; pass++)
		for (int i = 0; i < n && rc == 0; i++)
			if (j->peers[i].rc < 0 && (pass == 1 || j->peers[i].rc != -ECANCELED))
				rc = nsl_error_set(j->peers[i].rc, "%s", j->peers[i].err);
	if (rc == 0) {
		/* Training proper: from the last peer ready (stages made) to the last one done. */
		double ready = t0, done = t0, train_time;

		for (int i = 0; i < n; i++) {
			ready = j->peers[i].t_ready > ready ? j->peers[i].t_ready : ready;
			done = j->peers[i].t_done > done ? j->peers[i].t_done : done;
		}
		train_time = done - ready;

		nsl_job_print_peaks(j->peers, n);
		struct nsl_compute *cc = nsl_compute_create(j->o->threads);
		struct nsl_chain c = { 0 };
		struct nsl_job_totals t = { 0 };

		rc = cc == NULL ? -EINVAL : gather(j, &c, cc, &t);
		if (rc == 0)
			rc = nsl_job_finish(j, &c, &t, train_time, t_start);
		if (c.m != NULL)
			nsl_chain_fini(&c);
		nsl_compute_free(cc);
	}
out:
	for (int i = 0; i < n; i++)
		nsl_peer_free(&j->peers[i]);
	for (int i = n * n - 1; i >= 0; i--)
		nsl_port_close(ports[i]);
	free(ports);
	free(j->peers);
	nsl_eal_cleanup();
	return rc;
}

int nsl_train_peers(const struct nsl_train_opts *o)
{
	struct job j = { 0 };
	float base_lr;
	double t_start = nsl_now();
	int rc;

	if (o->peers < 2)
		return nsl_error_set(EINVAL, "--peers %d: the N-split trainer needs at least 2", o->peers);
	if (o->batch < 1 || o->epochs < 1)
		return nsl_error_set(EINVAL, "--batch and --epochs must be at least 1 (got %d and %d)", o->batch, o->epochs);
	uint64_t budgets[NSL_DATASET_MAX_PARTS];

	rc = nsl_job_plan(&j, o, &base_lr);
	for (int i = 0; i < o->peers && i < NSL_DATASET_MAX_PARTS; i++)
		budgets[i] = o->mem_limit;
	if (rc == 0 && !o->dump_schedule && (rc = nsl_job_check_memory(&j, budgets, "--mem-limit")) == 0 &&
	    (o->resume == NULL || (rc = nsl_job_resume(&j)) == 0) && (rc = nsl_job_records_open(&j, true)) == 0)
		rc = run_peers(&j, t_start);
	nsl_job_end(&j);
	return rc;
}
