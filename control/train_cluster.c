/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * One peer per process: the same peer runtime as `--peers N` (peer.h), on the ports a cluster
 * file names. Around the training it adds what separate processes need:
 *   hello     each peer's first message to each neighbour: rank, configuration and its hash;
 *             a neighbour with another configuration is refused, naming what differs
 *   failure   heartbeats on the link; a peer that fails, or learns of a lost one, tells its
 *             neighbours (nsl_link_abort) so the whole ring stops at once, not hop by hop
 *   gather    the totals, then every final stage, travel along the ring to peer 0, which
 *             evaluates and writes the records; then a goodbye, so no peer leaves while a
 *             neighbour still waits for an ack
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nsplit/eal.h"
#include "nsplit/error.h"
#include "nsplit/port.h"
#include "peer.h"
#include "progress.h"
#include "train_cluster.h"

#define HELLO_MAGIC "nsplit-hello 1\n"
#define HELLO_MAX 4096
#define HEARTBEAT_MS 100
#define DEFAULT_PEER_TIMEOUT_MS 750
#define LINGER_S 0.3
/* Ports one process opens: a ring's two, or a mesh's one to every other peer. */
#define NPORTS (NSL_CLUSTER_MESH_MAX - 1)

static struct job *signalled;

static void on_signal(int sig)
{
	(void)sig;
	if (signalled != NULL)
		atomic_store(&signalled->stop, 2);
}

/* The value of `key` in key=value lines, as a pointer and a length; NULL when absent. */
static const char *lookup(const char *text, const char *key, size_t klen, size_t *vlen)
{
	for (const char *l = text; *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : l + strlen(l)) {
		const char *end = strchr(l, '\n');

		if (strncmp(l, key, klen) == 0 && l[klen] == '=') {
			*vlen = (size_t)((end ? end : l + strlen(l)) - (l + klen + 1));
			return l + klen + 1;
		}
	}
	return NULL;
}

/* A neighbour's hello: the rank it should have and the same configuration, or what differs. */
static int check_hello(int from, const char *mine, const char *msg, uint64_t len)
{
	char theirs[HELLO_MAX + 1], diff[1024];
	const char *cfg;
	size_t nd = 0;
	int rank;

	memcpy(theirs, msg, len);
	theirs[len] = 0;
	if (strncmp(theirs, HELLO_MAGIC, strlen(HELLO_MAGIC)) != 0 || strlen(theirs) != len ||
	    sscanf(theirs + strlen(HELLO_MAGIC), "rank=%d", &rank) != 1 || (cfg = strstr(theirs, "\nhash=")) == NULL ||
	    (cfg = strchr(cfg + 1, '\n')) == NULL)
		return nsl_error_set(EPROTO, "peer %d's hello is not one of this nsplit's (another version?)", from);
	if (rank != from)
		return nsl_error_set(EINVAL, "the peer where rank %d should be says it is rank %d: give each process its own "
				     "--rank", from, rank);
	cfg++;
	if (strcmp(cfg, mine) == 0)
		return 0;
	diff[0] = 0;
	for (const char *l = mine; *l && nd < sizeof(diff) - 1;) {
		const char *eq = strchr(l, '='), *end = strchr(l, '\n');
		size_t klen = (size_t)(eq - l), mlen = (size_t)(end - eq - 1), tlen = 0;
		const char *tv = lookup(cfg, l, klen, &tlen);

		if (tv == NULL || tlen != mlen || strncmp(tv, eq + 1, mlen) != 0)
			nd += (size_t)snprintf(diff + nd, sizeof(diff) - nd, "%s%.*s is %.*s here but %.*s on peer %d",
					       nd ? "; " : "", (int)klen, l, (int)mlen, eq + 1, tv ? (int)tlen : 6,
					       tv ? tv : "absent", from);
		l = end + 1;
	}
	return nsl_error_set(EINVAL, "peer %d has another configuration: %s", from,
			     nd ? diff : "the same values in another form (another nsplit version?)");
}

/*
 * The peers this one greets and says goodbye to: its ring neighbours, or under Fast N-split every
 * other peer, since any two may share a connection there (a mesh's memif pair) and neither may
 * hang up while the other still polls it.
 */
static int partners(const struct peer *p, int who[NSL_FAST_MAX_ROLES])
{
	const int n = p->job->npeers;
	int nb = 0;

	if (p->job->fast) {
		for (int q = 0; q < n; q++)
			if (q != p->rank)
				who[nb++] = q;
		return nb;
	}
	who[nb++] = (p->rank + 1) % n;
	if ((p->rank + n - 1) % n != who[0])
		who[nb++] = (p->rank + n - 1) % n;
	return nb;
}

/* Each partner's first message in each direction is its hello. */
static int hello(struct peer *p, double timeout_s)
{
	struct job *j = p->job;
	int who[NSL_FAST_MAX_ROLES];
	const int nb = partners(p, who);
	char *buf = nsl_dp_alloc(HELLO_MAX * (size_t)(nb + 1), 64);
	struct nsl_msg slot[NSL_FAST_MAX_ROLES], out[NSL_FAST_MAX_ROLES], *done[4];
	int got = 0, sent = 0, rc = 0, len;
	double t0 = nsl_now();

	if (buf == NULL)
		return -ENOMEM;
	const char *config = j->config;

	len = snprintf(buf, HELLO_MAX, HELLO_MAGIC "rank=%d\nhash=%016" PRIx64 "\n%s", p->rank, j->config_hash, config);
	for (int i = 0; i < nb && rc == 0; i++) {
		slot[i] = (struct nsl_msg){ .data = buf + HELLO_MAX * (i + 1), .len = HELLO_MAX, .peer = (uint16_t)who[i] };
		out[i] = (struct nsl_msg){ .data = buf, .len = (uint64_t)len, .peer = (uint16_t)who[i],
					   .type = NSL_MSG_CONTROL };
		if ((rc = nsl_link_post(p->link, &slot[i])) == 0)
			rc = nsl_link_send(p->link, &out[i]);
	}
	while (rc == 0 && (got < nb || sent < nb)) {
		unsigned k;

		if (atomic_load(&j->stop)) {
			rc = nsl_error_set(ECANCELED, "interrupted while waiting for the other peers");
			break;
		}
		if (nsl_now() - t0 > timeout_s) {
			int silent = 0;

			/* Name a peer whose hello has not come, or that has not taken ours. */
			while (silent < nb - 1 && slot[silent].status == 1 && out[silent].status == 1)
				silent++;
			rc = nsl_error_set(ETIMEDOUT, "no hello from peer %d within %.0f s: is it running, with the same "
					   "cluster file, and can its port reach this one's? (--connect-timeout)",
					   who[silent], timeout_s);
			break;
		}
		if ((rc = nsl_link_poll(p->link)) < 0)
			break;
		rc = 0;
		k = nsl_link_recv(p->link, done, 4);
		for (unsigned i = 0; i < k && rc == 0; i++, got++) {
			rc = done[i]->status < 0 ? nsl_error_set(done[i]->status, "peer %u's hello: %s", done[i]->peer,
								 strerror(-done[i]->status))
						 : check_hello(done[i]->peer, config, done[i]->data, done[i]->len);
			done[i]->status = 1;    /* marks it come, for the timeout's message */
		}
		k = nsl_link_sent(p->link, done, 4);
		for (unsigned i = 0; i < k && rc == 0; i++, sent++) {
			if (done[i]->status < 0)
				rc = nsl_error_set(done[i]->status, "hello to peer %u: %s", done[i]->peer,
						   strerror(-done[i]->status));
			done[i]->status = 1;
		}
		nsl_idle_after(&p->idle, (int)k);
	}
	if (rc < 0 && nsl_link_aborted(p->link, NULL))
		rc = nsl_peer_pump(p);    /* the neighbour's own word says more */
	nsl_dp_free(buf);
	return rc;
}

static int post(struct peer *p, struct rxbuf *r, int from)
{
	int rc;

	while ((rc = nsl_peer_try_post(p, r, from)) == 0)
		if ((rc = nsl_peer_pump(p)) < 0)
			return rc;
	return rc < 0 ? rc : 0;
}

static int recv_from(struct peer *p, int from, uint8_t type)
{
	int rc = post(p, &p->swap_rx, from);

	if (rc == 0)
		rc = nsl_peer_wait_rx(p, &p->swap_rx);
	p->swap_rx.full = false;
	if (rc == 0 && p->swap_rx.msg.type != type)
		rc = nsl_error_set(EPROTO, "peer %d sent message type %u where type %u was due", from, p->swap_rx.msg.type,
				   type);
	return rc;
}

static int send_wait(struct peer *p, int to, uint8_t type, const void *data, uint64_t len, int stage)
{
	int rc = nsl_peer_send(p, &p->tx_swap, to, type, data, len, stage, 0, p->job->rounds, 0);

	return rc < 0 ? rc : nsl_peer_wait_tx(p, &p->tx_swap);
}

/* The totals along the ring 1 -> 2 -> ... -> N-1 -> 0, each peer adding its own. */
static int gather_totals(struct peer *p, struct nsl_job_totals *t)
{
	struct job *j = p->job;
	const int n = j->npeers, next = (p->rank + 1) % n, prev = (p->rank + n - 1) % n;
	const uint64_t bytes = ((uint64_t)j->rounds + 1) * sizeof(struct nsl_round_stat);
	struct nsl_round_stat *mem = nsl_dp_alloc(2 * bytes, 64), *w = mem, *in = mem + j->rounds + 1;
	struct rxbuf rb = { .data = in, .cap = bytes };
	struct txmsg tm = { 0 };
	int rc = mem == NULL ? -ENOMEM : 0;

	if (rc < 0)
		return rc;
	/* Round r's entry is filled on the peer that held the last stage in it; times as seconds
	 * into each peer's own training, since clocks of other hosts do not compare. */
	for (int r = 0; r < j->rounds; r++) {
		w[r] = j->round_stats[r];
		if (w[r].seen)
			w[r].t_end -= j->t_train;
	}
	w[j->rounds] = (struct nsl_round_stat){ p->loss_sum, p->correct, p->seen, 0 };
	if (p->rank != 1) {
		if ((rc = post(p, &rb, prev)) == 0 && (rc = nsl_peer_wait_rx(p, &rb)) == 0 && rb.msg.len != bytes)
			rc = nsl_error_set(EPROTO, "peer %d's totals are %" PRIu64 " bytes, not %" PRIu64, prev, rb.msg.len,
					   bytes);
		for (int r = 0; rc == 0 && r <= j->rounds; r++) {
			w[r].loss_sum += in[r].loss_sum;
			w[r].correct += in[r].correct;
			w[r].seen += in[r].seen;
			w[r].t_end = in[r].t_end > w[r].t_end ? in[r].t_end : w[r].t_end;
		}
	}
	if (rc == 0 && p->rank == 0) {
		*t = (struct nsl_job_totals){ w[j->rounds].loss_sum, w[j->rounds].correct, w[j->rounds].seen };
		for (int r = 0; r < j->rounds; r++)
			j->round_stats[r] = (struct nsl_round_stat){ w[r].loss_sum, w[r].correct, w[r].seen,
								     w[r].t_end + j->t_train };
	} else if (rc == 0) {
		rc = nsl_peer_send(p, &tm, next, NSL_MSG_CONTROL, w, bytes, 0, 0, j->rounds, 0);
		if (rc == 0)
			rc = nsl_peer_wait_tx(p, &tm);
	}
	nsl_dp_free(mem);
	return rc;
}

/*
 * The final stages along the same ring to peer 0: peer r sends its own, then passes on the r - 1
 * that reach it, so peer 0 receives the other N - 1 (each tagged with its stage).
 */
static int gather_stages(struct peer *p, struct nsl_chain *c)
{
	struct job *j = p->job;
	const int n = j->npeers, next = (p->rank + 1) % n, prev = (p->rank + n - 1) % n;
	bool have[NSL_CHAIN_MAX_STAGES] = { false };
	uint64_t len;
	char what[64];
	int rc = nsl_peer_pack_stage(p, p->rounds_done, &len);

	if (rc < 0)
		return rc;
	if (p->rank != 0) {
		if ((rc = send_wait(p, next, NSL_MSG_STAGE, p->swap_tx_buf, len, p->stage_idx)) < 0)
			return rc;
		for (int g = 1; g < p->rank; g++)
			if ((rc = recv_from(p, prev, NSL_MSG_STAGE)) < 0 ||
			    (rc = send_wait(p, next, NSL_MSG_STAGE, p->swap_rx.data, p->swap_rx.msg.len,
					    p->swap_rx.msg.stage)) < 0)
				return rc;
		return 0;
	}
	/* Fast N-split's model is the backward roles' (fwd on): the forward roles' records pass by. */
	const int first = j->fast ? j->fl.fwd : 0, nstages = n - first;

	if ((rc = nsl_chain_init(c, p->cc, j->model, j->starts, nstages, j->o->batch, j->o->seed, &j->oc, false)) < 0)
		return rc;
	if (p->stage_idx >= first &&
	    (rc = nsl_peer_unpack_stage(j, c->stages[p->stage_idx - first], p->swap_tx_buf, len, "this peer's final "
					"stage")) < 0)
		return rc;
	have[p->stage_idx] = true;
	for (int g = 1; g < n; g++) {
		int s;

		if ((rc = recv_from(p, prev, NSL_MSG_STAGE)) < 0)
			return rc;
		s = p->swap_rx.msg.stage;
		if (s >= n || have[s])
			return nsl_error_set(EPROTO, "peer %d passed on stage %d, which is %s", prev, s,
					     s >= n ? "not a stage of this job" : "here already");
		snprintf(what, sizeof(what), "final stage %d from peer %d", s + 1, prev);
		if (s >= first &&
		    (rc = nsl_peer_unpack_stage(j, c->stages[s - first], p->swap_rx.data, p->swap_rx.msg.len, what)) < 0)
			return rc;
		have[s] = true;
	}
	return 0;
}

/*
 * Goodbye: one last message each way with every partner. Once a partner's has come, it sent
 * everything; lingering a little answers its probes if our ack of its goodbye was lost.
 */
static int goodbye(struct peer *p)
{
	int who[NSL_FAST_MAX_ROLES];
	const int nb = partners(p, who);
	uint8_t *mem = nsl_dp_alloc(64 * (size_t)(nb + 1), 64);
	struct rxbuf in[NSL_FAST_MAX_ROLES];
	struct txmsg out[NSL_FAST_MAX_ROLES];
	int rc = mem == NULL ? -ENOMEM : 0;
	double t0;

	memset(in, 0, sizeof(in));
	memset(out, 0, sizeof(out));
	for (int i = 0; i < nb && rc == 0; i++) {
		in[i].data = mem + 64 * (i + 1);
		in[i].cap = 64;
		rc = post(p, &in[i], who[i]);
	}
	for (int i = 0; i < nb && rc == 0; i++)
		rc = nsl_peer_send(p, &out[i], who[i], NSL_MSG_CONTROL, mem, 1, 0, 0, p->job->rounds, 0);
	for (int i = 0; i < nb && rc == 0; i++)
		if ((rc = nsl_peer_wait_rx(p, &in[i])) == 0)
			rc = nsl_peer_wait_tx(p, &out[i]);
	for (t0 = nsl_now(); rc == 0 && nsl_now() - t0 < LINGER_S;)
		nsl_idle_after(&p->idle, nsl_link_poll(p->link));
	nsl_dp_free(mem);
	return rc;
}

/* Tell the neighbours why this peer stops, and make the message name the lost peer and the round. */
static int give_up(struct peer *p, int rc)
{
	struct nsl_link_abort a;
	int blame = p->rank, dead;
	uint32_t last = (uint32_t)p->rounds_done;

	if (p->link != NULL) {
		dead = nsl_link_dead_peer(p->link);
		if (nsl_link_aborted(p->link, &a)) {
			blame = a.blame;
			last = a.info < last ? a.info : last;
		} else if (dead >= 0) {
			blame = dead;
		}
		/* A few times over: one frame each, and the wire may lose it. */
		for (int k = 0; k < 3; k++) {
			double t0 = nsl_now();

			nsl_link_abort(p->link, (uint16_t)blame, last, p->rc ? -p->rc : -rc);
			while (nsl_now() - t0 < 0.02)
				nsl_link_poll(p->link);
		}
	}
	return nsl_error_set(rc, "%s; the last round completed was %u of %d", p->err, last, p->job->rounds);
}

static int open_ports(struct peer *p, const struct nsl_cluster *cl, struct nsl_port *ports[NPORTS])
{
	const int n = cl->npeers, next = (p->rank + 1) % n, prev = (p->rank + n - 1) % n;
	const struct nsl_cluster_peer *me = &cl->peers[p->rank];
	const struct nsl_port_conf pc = { .connect_wait_ms = p->job->o->connect_timeout_s * 1000 };

	if (p->job->fast && !*me->port && !me->mesh)
		return nsl_error_set(EINVAL, "[peer%d]: Fast N-split has every peer message every other: give each peer "
				     "one port reaching all (a bridge, a switch: port = ...) or a port to every other "
				     "(port-to-Q), not port-next/port-prev", p->rank);
	if (*me->port) {
		if ((ports[0] = nsl_port_open(me->port, &pc)) == NULL)
			return -EINVAL;
		p->port_next = p->port_prev = ports[0];
		for (int q = 0; q < n && p->job->fast; q++)
			p->port_to[q] = ports[0];
	} else if (me->mesh) {
		/* ports[] holds the mesh's ports in peer order, this peer skipped. */
		for (int q = 0, k = 0; q < n; q++) {
			if (q == p->rank)
				continue;
			if ((ports[k] = nsl_port_open(me->port_to[q], &pc)) == NULL)
				return -EINVAL;
			p->port_to[q] = ports[k++];
		}
		p->port_next = p->port_to[next];
		p->port_prev = p->port_to[prev];
	} else {
		if ((ports[0] = nsl_port_open(me->port_next, &pc)) == NULL)
			return -EINVAL;
		p->port_next = p->port_prev = ports[0];
		if (next != prev) {
			if (!*me->port_prev)
				return nsl_error_set(EINVAL, "[peer%d] has port-next but no port-prev; with %d peers each "
						     "needs both (or one port reaching all)", p->rank, n);
			if ((ports[1] = nsl_port_open(me->port_prev, &pc)) == NULL)
				return -EINVAL;
			p->port_prev = ports[1];
		}
	}
	for (int q = 0; q < n && p->job->fast; q++) {
		if ((p->mac_to_set[q] = cl->peers[q].has_mac))
			memcpy(p->mac_to[q], cl->peers[q].mac, 6);
		p->ip_to[q] = cl->peers[q].ip;
	}
	if ((p->mac_next_set = cl->peers[next].has_mac))
		memcpy(p->mac_next, cl->peers[next].mac, 6);
	if ((p->mac_prev_set = cl->peers[prev].has_mac))
		memcpy(p->mac_prev, cl->peers[prev].mac, 6);
	p->ip_next = cl->peers[next].ip;
	p->ip_prev = cl->peers[prev].ip;
	p->ip_self = me->ip;
	/* Clients first: a server comes up only when its client, in another process, connects. */
	for (int pass = 0; pass < 2; pass++)
		for (int i = 0; i < NPORTS; i++)
			if (ports[i] != NULL && nsl_port_is_memif_client(ports[i]) == (pass == 0)) {
				int rc = nsl_port_wait_up(ports[i], p->job->o->connect_timeout_s * 1000);

				if (rc < 0)
					return rc;
			}
	return 0;
}

/*
 * memif hang-ups are handled on EAL's interrupt thread, which unmaps the rings: no side may still
 * poll when its partner hangs up. Every peer stops polling, waits until its neighbours have too
 * (they finish within moments of each other: the goodbye ended for all at once), then servers
 * hang up first and clients, which wait for that in nsl_port_close, after.
 */
static void close_ports(struct nsl_port *ports[NPORTS])
{
	usleep(200000);
	for (int pass = 0; pass < 2; pass++)
		for (int i = 0; i < NPORTS; i++)
			if (ports[i] != NULL && nsl_port_is_memif_client(ports[i]) == (pass == 1)) {
				nsl_port_close(ports[i]);
				ports[i] = NULL;
			}
}

struct run {
	struct peer *p;
	struct nsl_chain chain;
	struct nsl_job_totals totals;
	double train_time;
	atomic_int done;
	int rc;
	char err[1200];       /* the thread's message (messages are per thread) */
};

static void *peer_thread(void *arg)
{
	struct run *r = arg;
	struct peer *p = r->p;
	double t0;
	int rc = nsl_eal_thread_register();

	if (rc == 0 && (rc = nsl_peer_setup(p)) == 0 &&
	    (rc = hello(p, (double)p->job->o->connect_timeout_s)) == 0) {
		t0 = nsl_now();
		rc = nsl_peer_train(p);
		r->train_time = nsl_now() - t0;
		if (rc == 0 && (rc = gather_totals(p, &r->totals)) == 0 && (rc = gather_stages(p, &r->chain)) == 0)
			rc = goodbye(p);
	}
	if (rc < 0) {
		nsl_peer_fail(p, rc);
		rc = give_up(p, p->rc);
	}
	r->rc = rc;
	if (rc < 0)
		snprintf(r->err, sizeof(r->err), "%s", nsl_error_last());
	nsl_eal_thread_unregister();
	atomic_store(&r->done, 1);
	return NULL;
}

static void print_counters(const struct peer *p, struct nsl_port *ports[NPORTS])
{
	if (p->link == NULL)
		return;
	nsl_link_print_stats(p->link, stdout);
	for (int i = 0; i < NPORTS; i++)
		if (ports[i] != NULL)
			nsl_port_print_xstats(ports[i], stdout);
}

/* Each process writes its own track, FILE.R, on the host's monotonic clock: tracks of one host merge. */
static int write_trace(const struct peer *p)
{
	char path[4096];
	const struct nsl_trace *t = &p->trace;
	int rc;

	snprintf(path, sizeof(path), "%s.%d", p->job->o->trace, p->rank);
	if ((rc = nsl_trace_write(path, &t, 1, 0)) == 0)
		printf("peer %d: trace written to %s\n", p->rank, path);
	return rc;
}

static bool is_pci(const char *devargs)
{
	return *devargs && strncmp(devargs, "net_", 4) != 0;
}

static int run(struct job *j, const struct nsl_cluster *cl, int rank, double t_start)
{
	struct peer p = { .job = j, .rank = rank, .budget = cl->peers[rank].mem_limit ? cl->peers[rank].mem_limit
											       : j->o->mem_limit };
	struct nsl_port *ports[NPORTS] = { NULL };
	struct run r = { .p = &p };
	struct nsl_job_watch watch;
	struct nsl_eal_conf ec = { .mem_mb = nsl_job_dp_mem_mb(j, 1), .huge = j->o->huge,
				   .extra_argc = j->o->eal_argc, .extra_argv = j->o->eal_argv };
	struct sigaction sa = { .sa_handler = on_signal };
	pthread_t th;
	int rc;

	/* Virtual devices are named net_...; anything else is a NIC's PCI address (0000:3b:00.0). */
	ec.pci = is_pci(cl->peers[rank].port) || is_pci(cl->peers[rank].port_next) || is_pci(cl->peers[rank].port_prev);
	for (int q = 0; q < cl->npeers && cl->peers[rank].mesh; q++)
		ec.pci = ec.pci || is_pci(cl->peers[rank].port_to[q]);
	if ((rc = nsl_eal_init(&ec)) < 0)
		return rc;
	j->peers = &p;
	signalled = j;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	rc = open_ports(&p, cl, ports);
	if (rc == 0) {
		printf("peer %d of %d: model %s, split at", rank, j->npeers, j->model->text);
		for (int s = 1; s < j->npeers; s++)
			printf("%s%d", s > 1 ? "," : " ", j->starts[s]);
		printf("; %s schedule, micro-batch %d of batch %d; %u samples in shard %d; %d rounds\n",
		       nsl_sched_name(j->o->schedule), j->micro, j->o->batch, j->per_shard, rank, j->rounds);
		fflush(stdout);
		nsl_job_watch_start(j, &watch);
		if ((rc = -pthread_create(&th, NULL, peer_thread, &r)) < 0)
			nsl_error_set(rc, "cannot start the peer's thread");
	}
	if (rc == 0) {
		while (!atomic_load(&r.done)) {
			/* The rounds' metrics come together at the end (peer 0 gathers them). */
			nsl_job_watch_tick(j, &watch);
			usleep(100000);
		}
		pthread_join(th, NULL);
		nsl_job_watch_end(j, &watch);
		print_counters(&p, ports);
		nsl_job_print_peaks(&p, 1);
		if ((rc = r.rc) < 0)
			nsl_error_set(rc, "%s", r.err);
		if (rc == 0 && rank == 0)
			nsl_job_metrics_rounds(j, &watch.next_round, true);
		if (rc == 0 && j->o->trace)
			rc = write_trace(&p);
		if (rc == 0 && rank == 0)
			rc = nsl_job_finish(j, &r.chain, &r.totals, r.train_time, t_start);
		else if (rc == 0)
			printf("peer %d: done after %.1f s; peer 0 reports the results\n", rank, r.train_time);
	}
	signalled = NULL;
	if (r.chain.m != NULL)
		nsl_chain_fini(&r.chain);
	nsl_peer_free(&p);
	close_ports(ports);
	nsl_eal_cleanup();
	return rc;
}

int nsl_train_cluster(const struct nsl_train_opts *o, const struct nsl_cluster *cl, int rank)
{
	struct job j = { .cluster = cl };
	float base_lr;
	double t_start = nsl_now();
	int rc;

	if (o->batch < 1 || o->epochs < 1)
		return nsl_error_set(EINVAL, "--batch and --epochs must be at least 1 (got %d and %d)", o->batch, o->epochs);
	uint64_t budgets[NSL_DATASET_MAX_PARTS] = { 0 };

	for (int i = 0; i < cl->npeers && i < NSL_DATASET_MAX_PARTS; i++)
		budgets[i] = cl->peers[i].mem_limit ? cl->peers[i].mem_limit : o->mem_limit;
	if ((rc = nsl_job_plan(&j, o, &base_lr)) == 0 && !o->dump_schedule &&
	    (rc = nsl_job_check_memory(&j, budgets, "mem-limit in the cluster file, or --mem-limit")) == 0 &&
	    (o->resume == NULL || (rc = nsl_job_resume(&j)) == 0) && (rc = nsl_job_records_open(&j, rank == 0)) == 0) {
		j.peer_timeout_ms = o->peer_timeout_ms ? o->peer_timeout_ms : DEFAULT_PEER_TIMEOUT_MS;
		j.heartbeat_ms = HEARTBEAT_MS < j.peer_timeout_ms / 4 ? HEARTBEAT_MS : j.peer_timeout_ms / 4;
		j.count_every_batch = true;
		rc = run(&j, cl, rank, t_start);
	}
	nsl_job_end(&j);
	return rc < 0 ? rc : 0;
}
