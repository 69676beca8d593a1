/* SPDX-License-Identifier: BSD-3-Clause */
/* The seeded receive-side fault injector (see nsplit/faults.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>

#include "nsplit/error.h"
#include "nsplit/faults.h"
#include "nsplit/rng.h"
#include "port_pvt.h"

#define MAX_HELD 256
#define REORDER_ONE_IN 8
#define POOL_SIZE 2047

struct held {
	struct rte_mbuf *m;
	uint64_t due;             /* released once `seen` reaches this */
};

struct nsl_fault_injector {
	struct nsl_faults f;
	uint64_t drop_t, dup_t, corrupt_t;   /* thresholds on a 2^32 scale */
	struct nsl_rng rng;
	const struct rte_eth_rxtx_callback *cb;
	uint16_t port_id;
	struct rte_mempool *pool;            /* corrupted copies */
	struct held held[MAX_HELD];
	uint32_t nheld;
	struct nsl_faults_stats st;
};

static int parse_pct(const char *key, const char *v, double *out)
{
	char *end;
	double d = strtod(v, &end);

	if (end == v || *end != '\0' || !(d >= 0 && d <= 100))
		return nsl_error_set(EINVAL, "--faults: %s=%s; give a percentage from 0 to 100", key, v);
	*out = d;
	return 0;
}

int nsl_faults_parse(const char *spec, struct nsl_faults *f)
{
	char buf[256], *save = NULL;
	int rc = 0;

	memset(f, 0, sizeof(*f));
	if (strlen(spec) >= sizeof(buf))
		return nsl_error_set(EINVAL, "--faults: spec longer than %zu characters", sizeof(buf) - 1);
	strcpy(buf, spec);
	for (char *kv = strtok_r(buf, ",", &save); kv != NULL && rc == 0; kv = strtok_r(NULL, ",", &save)) {
		char *v = strchr(kv, '='), *end;
		unsigned long long n;

		if (v == NULL)
			return nsl_error_set(EINVAL, "--faults: '%s' has no '='; use drop=P,dup=P,reorder=W,corrupt=P,seed=S",
					     kv);
		*v++ = '\0';
		if (strcmp(kv, "drop") == 0) {
			rc = parse_pct(kv, v, &f->drop);
		} else if (strcmp(kv, "dup") == 0) {
			rc = parse_pct(kv, v, &f->dup);
		} else if (strcmp(kv, "corrupt") == 0) {
			rc = parse_pct(kv, v, &f->corrupt);
		} else if (strcmp(kv, "reorder") == 0 || strcmp(kv, "seed") == 0) {
			errno = 0;
			n = strtoull(v, &end, 10);
			if (errno != 0 || end == v || *end != '\0' || (kv[0] == 'r' && n > MAX_HELD))
				return nsl_error_set(EINVAL, "--faults: %s=%s; give a whole number%s", kv, v,
						     kv[0] == 'r' ? " of frames up to 256" : "");
			if (kv[0] == 'r')
				f->reorder = (uint32_t)n;
			else
				f->seed = n;
		} else {
			return nsl_error_set(EINVAL, "--faults: unknown key '%s' (drop, dup, reorder, corrupt, seed)", kv);
		}
	}
	return rc;
}

static bool chance(struct nsl_fault_injector *fi, uint64_t threshold)
{
	return threshold != 0 && (nsl_rng_next(&fi->rng) >> 32) < threshold;
}

/* A linear copy of m with one bit flipped; m is freed. NULL (and m freed) if the pool is empty. */
static struct rte_mbuf *corrupt(struct nsl_fault_injector *fi, struct rte_mbuf *m)
{
	struct rte_mbuf *c = rte_pktmbuf_alloc(fi->pool);
	uint32_t len = rte_pktmbuf_pkt_len(m);
	uint8_t *d;

	if (c == NULL || len > rte_pktmbuf_tailroom(c)) {
		rte_pktmbuf_free(c);
		rte_pktmbuf_free(m);
		return NULL;
	}
	d = (uint8_t *)rte_pktmbuf_append(c, (uint16_t)len);
	if (rte_pktmbuf_read(m, 0, len, d) != d)
		memcpy(d, rte_pktmbuf_read(m, 0, len, d), len);
	rte_pktmbuf_free(m);
	d[nsl_rng_below(&fi->rng, len)] ^= (uint8_t)(1u << nsl_rng_below(&fi->rng, 8));
	return c;
}

/* Both references of a duplicate are freed separately: count one more on every segment. */
static void add_ref(struct rte_mbuf *m)
{
	for (; m != NULL; m = m->next)
		rte_mbuf_refcnt_update(m, 1);
}

static uint16_t on_rx(uint16_t port_id, uint16_t queue, struct rte_mbuf *pkts[], uint16_t nb, uint16_t max,
		      void *arg)
{
	struct nsl_fault_injector *fi = arg;
	struct rte_mbuf *in[nb > 0 ? nb : 1];
	uint16_t out = 0;

	(void)port_id;
	(void)queue;
	memcpy(in, pkts, nb * sizeof(pkts[0]));
	for (uint16_t i = 0; i < nb; i++) {
		struct rte_mbuf *m = in[i];

		fi->st.seen++;
		if (chance(fi, fi->drop_t)) {
			fi->st.dropped++;
			rte_pktmbuf_free(m);
			continue;
		}
		if (chance(fi, fi->corrupt_t)) {
			fi->st.corrupted++;
			if ((m = corrupt(fi, m)) == NULL)
				continue;
		}
		bool dup = chance(fi, fi->dup_t);

		if (dup)
			add_ref(m);
		for (int k = dup ? 2 : 1; k > 0; k--) {
			if (fi->f.reorder && fi->nheld < MAX_HELD && nsl_rng_below(&fi->rng, REORDER_ONE_IN) == 0) {
				fi->held[fi->nheld++] = (struct held){ m, fi->st.seen + 1 + nsl_rng_below(&fi->rng, fi->f.reorder) };
				fi->st.reordered++;
			} else if (out < max) {
				pkts[out++] = m;
			} else {
				rte_pktmbuf_free(m);	/* no room to hand it on: a drop like any other */
				fi->st.dropped++;
			}
		}
		fi->st.duplicated += dup;
	}
	/* Let held frames go when their turn comes, or one at a time when the port is idle. */
	for (uint32_t i = 0; i < fi->nheld && out < max;) {
		if (fi->held[i].due <= fi->st.seen || (nb == 0 && i == 0)) {
			pkts[out++] = fi->held[i].m;
			fi->held[i] = fi->held[--fi->nheld];
			if (nb == 0)
				break;
		} else {
			i++;
		}
	}
	return out;
}

struct nsl_fault_injector *nsl_faults_install(struct nsl_port *port, const struct nsl_faults *f)
{
	struct nsl_fault_injector *fi = calloc(1, sizeof(*fi));
	char name[RTE_MEMPOOL_NAMESIZE];

	if (fi == NULL) {
		nsl_error_set(ENOMEM, "faults: out of memory");
		return NULL;
	}
	fi->f = *f;
	fi->drop_t = (uint64_t)(f->drop / 100.0 * 4294967296.0);
	fi->dup_t = (uint64_t)(f->dup / 100.0 * 4294967296.0);
	fi->corrupt_t = (uint64_t)(f->corrupt / 100.0 * 4294967296.0);
	nsl_rng_seed(&fi->rng, f->seed, port->id);
	fi->port_id = port->id;
	snprintf(name, sizeof(name), "nsl%u_faults", port->id);
	fi->pool = rte_pktmbuf_pool_create(name, POOL_SIZE, 64, 0,
					   (uint16_t)(RTE_PKTMBUF_HEADROOM + NSL_PORT_HDR_ROOM(port->mtu)),
					   (int)rte_socket_id());
	if (fi->pool == NULL) {
		nsl_error_set(ENOMEM, "faults on port %s: cannot make a pool for corrupted copies: %s", port->name,
			      rte_strerror(rte_errno));
		free(fi);
		return NULL;
	}
	/* First in the port's list: the faults happen "on the wire", before any other callback (a capture) looks. */
	fi->cb = rte_eth_add_first_rx_callback(port->id, 0, on_rx, fi);
	if (fi->cb == NULL) {
		nsl_error_set(rte_errno ? rte_errno : ENOTSUP, "faults on port %s: rte_eth_add_first_rx_callback: %s "
			      "(is DPDK built with RTE_ETHDEV_RXTX_CALLBACKS?)", port->name, rte_strerror(rte_errno));
		rte_mempool_free(fi->pool);
		free(fi);
		return NULL;
	}
	return fi;
}

void nsl_faults_remove(struct nsl_fault_injector *fi)
{
	if (fi == NULL)
		return;
	nsl_port_drop_rx_callback(fi->port_id, fi->cb);
	for (uint32_t i = 0; i < fi->nheld; i++)
		rte_pktmbuf_free(fi->held[i].m);
	rte_mempool_free(fi->pool);
	free(fi);
}

void nsl_faults_get_stats(const struct nsl_fault_injector *fi, struct nsl_faults_stats *out)
{
	*out = fi->st;
}
