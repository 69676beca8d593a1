/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Port bring-up, in l2fwd's order: pools, configure, queues, MTU, start. One queue each way: a
 * peer's dataplane is one lcore.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rte_dev.h>
#include <rte_errno.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_kvargs.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>

#include "nsplit/error.h"
#include "nsplit/wire.h"
#include "eal_pvt.h"
#include "port_pvt.h"

#define DEFAULT_DESC 1024
#define DEFAULT_MTU 1500
/* A ring pair has no wire: big frames cost nothing and cut the per-frame work six times. */
#define RING_DEFAULT_MTU 9000
/* Frames smaller than this leave too little room for payload after 98 bytes of headers. */
#define MIN_MTU 576
#define POOL_CACHE 256
/* How long a memif client waits for its server to hang up first when closing. */
#define MEMIF_HANGUP_WAIT_MS 2000

static int dpdk_error(int rc, const char *dev, const char *what)
{
	int e = rc < 0 ? -rc : (rte_errno ? rte_errno : EIO);

	return nsl_error_set(e, "port %s: %s failed: %s", dev, what, rte_strerror(e));
}

static struct rte_mempool *make_pool(struct nsl_port *p, const char *kind, uint32_t n, uint32_t room)
{
	char name[RTE_MEMPOOL_NAMESIZE];
	struct rte_mempool *mp;

	snprintf(name, sizeof(name), "nsl%u_%s", p->id, kind);
	mp = rte_pktmbuf_pool_create(name, n, POOL_CACHE, 0, (uint16_t)room, (int)rte_socket_id());
	if (mp == NULL)
		nsl_error_set(rte_errno ? rte_errno : ENOMEM, "port %s: cannot make a pool of %u %s mbufs of %u "
			      "bytes: %s (give DPDK more memory: -m / --dp-mem)", p->name, n, kind, room,
			      rte_strerror(rte_errno));
	return mp;
}

/*
 * What nsplit needs of a memif port's devargs: zero-copy, the client role, and the ring's slots.
 * memif sizes its rings from its own rsize (log2 slots, default 10) and ignores the queue setup's
 * descriptor counts; its zero-copy receive refills every free slot from our pool in one
 * all-or-nothing allocation, so a pool smaller than the ring never refills it and nothing
 * arrives: the pools are sized from the ring. memif's probe has accepted these devargs already.
 */
static int memif_options(struct nsl_port *p, const char *devargs, bool *zero_copy, uint16_t *slots)
{
	const char *comma = strchr(devargs, ','), *v;
	struct rte_kvargs *kv = rte_kvargs_parse(comma != NULL ? comma + 1 : "", NULL);
	long log2;

	if (kv == NULL)
		return nsl_error_set(EINVAL, "port %s: cannot read its devargs '%s' as key=value pairs", p->name, devargs);
	*zero_copy = (v = rte_kvargs_get(kv, "zero-copy")) != NULL && strcmp(v, "yes") == 0;
	p->memif_client = (v = rte_kvargs_get(kv, "role")) != NULL && strcmp(v, "client") == 0;
	log2 = (v = rte_kvargs_get(kv, "rsize")) != NULL ? strtol(v, NULL, 10) : 10;
	*slots = (uint16_t)(1u << (log2 >= 1 && log2 <= 14 ? log2 : 10));
	rte_kvargs_free(kv);
	return 0;
}

/* devargs NULL: one of a net_ring pair, which passes chained mbufs along as they are. */
static int setup(struct nsl_port *p, const struct nsl_port_conf *c, const char *devargs)
{
	bool ring = devargs == NULL;
	struct rte_eth_conf conf = { 0 };
	struct rte_eth_dev_info info;
	uint16_t rxd = c->rx_desc ? c->rx_desc : DEFAULT_DESC, txd = c->tx_desc ? c->tx_desc : DEFAULT_DESC;
	uint16_t mtu = c->mtu ? c->mtu : ring ? RING_DEFAULT_MTU : DEFAULT_MTU;
	uint32_t n, rx_room;
	uint16_t memif_slots = 0;
	struct rte_ether_addr mac;
	bool zero_copy = false;
	int rc;

	if (mtu < MIN_MTU)
		return nsl_error_set(EINVAL, "port %s: MTU %u is below %u", p->name, mtu, MIN_MTU);
	if ((rc = rte_eth_dev_info_get(p->id, &info)) != 0)
		return dpdk_error(rc, p->name, "rte_eth_dev_info_get");
	if (info.max_mtu != 0 && mtu > info.max_mtu) {
		/* A jumbo MTU the port cannot take: fall back to what it can, and say so once. */
		fprintf(stderr, "nsplit: port %s takes at most MTU %u; using that instead of %u\n", p->name,
			info.max_mtu, mtu);
		mtu = info.max_mtu;
	}
	p->multi_seg = ring || (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MULTI_SEGS) != 0;
	if (!ring && strcmp(info.driver_name, "net_memif") == 0 &&
	    (rc = memif_options(p, devargs, &zero_copy, &memif_slots)) < 0)
		return rc;
	/*
	 * DPDK 22.11's memif zero-copy transmit unrolls its loop four frames at a time after checking
	 * for four free descriptors, as if every frame took one; our frames take two, so a longer
	 * burst into a nearly full ring overwrites descriptors the server has not read yet (garbled
	 * frames, and mbufs never freed, so a stalled link). Bursts of at most four never unroll.
	 */
	if (zero_copy)
		p->tx_max_burst = 4;
	if (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MULTI_SEGS)
		conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_MULTI_SEGS;
	/* Never RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE: a frame's mbufs come from two pools, one with extbufs. */
	if (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_IPV4_CKSUM) {
		conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_IPV4_CKSUM;
		p->tx_ip_cksum = true;
	}
	if (info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_SCATTER)
		conf.rxmode.offloads |= RTE_ETH_RX_OFFLOAD_SCATTER;
	if ((rc = rte_eth_dev_configure(p->id, 1, 1, &conf)) != 0)
		return dpdk_error(rc, p->name, "rte_eth_dev_configure");
	if ((rc = rte_eth_dev_adjust_nb_rx_tx_desc(p->id, &rxd, &txd)) != 0)
		return dpdk_error(rc, p->name, "rte_eth_dev_adjust_nb_rx_tx_desc");
	/* memif's rings are what its rsize says (memif_options). */
	rxd = RTE_MAX(rxd, memif_slots);
	txd = RTE_MAX(txd, memif_slots);
	n = c->mbufs ? c->mbufs : 2u * (rxd + txd) + 4096;
	/* Chained frames keep only headers (or an ack) here; otherwise the whole frame is copied in. */
	p->hdr_pool = make_pool(p, "hdr", n,
				RTE_PKTMBUF_HEADROOM + (p->multi_seg ? NSL_PORT_HDR_ROOM_CHAINED : NSL_PORT_HDR_ROOM(mtu)));
	p->ext_pool = make_pool(p, "ext", n, 0);
	/*
	 * af_packet wants its whole ring frame (2 KiB by default) to fit one receive mbuf. A ring
	 * hands over the sender's own mbufs, so its receive pool stays unused: the smallest will do.
	 */
	rx_room = ring ? 0 : RTE_PKTMBUF_HEADROOM + NSL_PORT_HDR_ROOM(mtu);
	if (rx_room < RTE_MBUF_DEFAULT_BUF_SIZE)
		rx_room = RTE_MBUF_DEFAULT_BUF_SIZE;
	p->rx_pool = make_pool(p, "rx", rxd + 2u * POOL_CACHE + 1024, rx_room);
	if (p->hdr_pool == NULL || p->ext_pool == NULL || p->rx_pool == NULL)
		return -ENOMEM;
	if ((rc = rte_eth_rx_queue_setup(p->id, 0, rxd, (unsigned)rte_eth_dev_socket_id(p->id), NULL, p->rx_pool)) != 0)
		return dpdk_error(rc, p->name, "rte_eth_rx_queue_setup");
	if ((rc = rte_eth_tx_queue_setup(p->id, 0, txd, (unsigned)rte_eth_dev_socket_id(p->id), NULL)) != 0)
		return dpdk_error(rc, p->name, "rte_eth_tx_queue_setup");
	/* Some PMDs (net_ring, net_null) have no MTU to set: keep ours, it only sizes frames. */
	rc = rte_eth_dev_set_mtu(p->id, mtu);
	if (rc != 0 && rc != -ENOTSUP)
		return dpdk_error(rc, p->name, "rte_eth_dev_set_mtu");
	p->mtu = mtu;
	/* A memif client cannot start before its server listens; peers of a ring start in any order. */
	for (uint32_t waited = 0; (rc = rte_eth_dev_start(p->id)) != 0 && p->memif_client && waited < c->connect_wait_ms;
	     waited += 50)
		usleep(50000);
	if (rc != 0)
		return dpdk_error(rc, p->name, p->memif_client ? "rte_eth_dev_start (is the memif server up, on the same socket?)"
							       : "rte_eth_dev_start");
	p->started = true;
	/* Peers address each other by MAC; a port on a bridge must still see its frames. */
	rte_eth_promiscuous_enable(p->id);
	if ((rc = rte_eth_macaddr_get(p->id, &mac)) != 0)
		return dpdk_error(rc, p->name, "rte_eth_macaddr_get");
	memcpy(p->mac, mac.addr_bytes, 6);
	return 0;
}

/* The device name of a devargs string: up to the first comma. */
static void dev_name(const char *devargs, char *out, size_t cap)
{
	size_t n = strcspn(devargs, ",");

	if (n >= cap)
		n = cap - 1;
	memcpy(out, devargs, n);
	out[n] = '\0';
}

struct nsl_port *nsl_port_open(const char *devargs, const struct nsl_port_conf *c)
{
	struct nsl_port *p = calloc(1, sizeof(*p));
	int rc;

	if (p == NULL) {
		nsl_error_set(ENOMEM, "port %s: out of memory", devargs);
		return NULL;
	}
	dev_name(devargs, p->name, sizeof(p->name));
	if (rte_eth_dev_get_port_by_name(p->name, &p->id) != 0) {
		if ((rc = rte_dev_probe(devargs)) < 0) {
			nsl_error_set(-rc, "port %s: cannot probe '%s': %s (is the PMD's name right, and for a PCI "
				      "NIC was EAL started with PCI and the device bound to vfio-pci?)",
				      p->name, devargs, rte_strerror(-rc));
			free(p);
			return NULL;
		}
		p->vdev = true;
		if (rte_eth_dev_get_port_by_name(p->name, &p->id) != 0) {
			nsl_error_set(ENODEV, "port %s: probed, but no ethdev of that name appeared", p->name);
			nsl_port_close(p);
			return NULL;
		}
	}
	if (setup(p, c, devargs) < 0) {
		nsl_port_close(p);
		return NULL;
	}
	return p;
}

int nsl_port_ring_pair(const char *name, const struct nsl_port_conf *c, struct nsl_port *out[2])
{
	uint16_t rxd = c->rx_desc ? c->rx_desc : DEFAULT_DESC;
	struct rte_ring *r[2] = { NULL, NULL };
	int rc = 0;

	out[0] = out[1] = NULL;
	for (int i = 0; i < 2; i++) {
		char rn[RTE_RING_NAMESIZE];

		snprintf(rn, sizeof(rn), "%s_r%d", name, i);
		/* One lcore sends into each ring and one receives from it. */
		r[i] = rte_ring_create(rn, rte_align32pow2(rxd), (int)rte_socket_id(), RING_F_SP_ENQ | RING_F_SC_DEQ);
		if (r[i] == NULL) {
			rc = nsl_error_set(rte_errno ? rte_errno : ENOMEM, "ring pair %s: cannot make ring %s: %s",
					   name, rn, rte_strerror(rte_errno));
			goto fail;
		}
	}
	for (int i = 0; i < 2; i++) {
		struct nsl_port *p = calloc(1, sizeof(*p));
		int id;

		if (p == NULL) {
			rc = nsl_error_set(ENOMEM, "ring pair %s: out of memory", name);
			goto fail;
		}
		snprintf(p->name, sizeof(p->name), "net_ring_%s%d", name, i);
		/* Port i receives what port 1-i sends. */
		id = rte_eth_from_rings(p->name, &r[i], 1, &r[1 - i], 1, rte_socket_id());
		if (id < 0) {
			rc = nsl_error_set(rte_errno ? rte_errno : EIO, "ring pair %s: rte_eth_from_rings: %s", name,
					   rte_strerror(rte_errno));
			free(p);
			goto fail;
		}
		p->id = (uint16_t)id;
		p->vdev = true;
		out[i] = p;
		if ((rc = setup(p, c, NULL)) < 0)
			goto fail;
	}
	out[0]->rings[0] = r[0];
	out[0]->rings[1] = r[1];
	return 0;
fail:
	nsl_port_close(out[0]);
	nsl_port_close(out[1]);
	for (int i = 0; i < 2; i++)
		rte_ring_free(r[i]);
	out[0] = out[1] = NULL;
	return rc;
}

void nsl_port_close(struct nsl_port *p)
{
	if (p == NULL)
		return;
	/*
	 * DPDK 22.11's memif is not safe against a hang-up racing its own thread: the peer's
	 * hang-up is handled on the interrupt thread, which unmaps the rings while this thread may
	 * still be polling them or hanging up too (both crashed, about one run in twenty). So one
	 * side hangs up and the other waits for it without polling: the client waits, for at most
	 * MEMIF_HANGUP_WAIT_MS, for the server (usually the side that lingers to answer the last
	 * probes) to go first; and the interrupt thread is let finish before the device is freed.
	 */
	if (p->started && p->memif_client) {
		struct rte_eth_link link;

		for (int i = 0; i < MEMIF_HANGUP_WAIT_MS; i++) {
			if (rte_eth_link_get_nowait(p->id, &link) != 0 || link.link_status == RTE_ETH_LINK_DOWN)
				break;
			usleep(1000);
		}
		/* The link goes down at the start of the hang-up; the handler goes on after. */
		nsl_eal_quiesce_interrupts();
	}
	if (p->started)
		rte_eth_dev_stop(p->id);
	if (p->started && p->vdev)
		nsl_eal_quiesce_interrupts();
	if (p->vdev) {
		struct rte_eth_dev_info info;
		struct rte_device *dev = rte_eth_dev_info_get(p->id, &info) == 0 ? info.device : NULL;

		rte_eth_dev_close(p->id);
		/* Probed vdevs are removed so their names can be used again in this process. */
		if (dev != NULL)
			rte_dev_remove(dev);
	}
	rte_mempool_free(p->hdr_pool);
	rte_mempool_free(p->ext_pool);
	rte_mempool_free(p->rx_pool);
	rte_ring_free(p->rings[0]);
	rte_ring_free(p->rings[1]);
	free(p);
}

uint16_t nsl_port_id(const struct nsl_port *p)
{
	return p->id;
}

const char *nsl_port_name(const struct nsl_port *p)
{
	return p->name;
}

void nsl_port_mac(const struct nsl_port *p, uint8_t mac[6])
{
	memcpy(mac, p->mac, 6);
}

uint16_t nsl_port_mtu(const struct nsl_port *p)
{
	return p->mtu;
}

bool nsl_port_multi_seg(const struct nsl_port *p)
{
	return p->multi_seg;
}

void nsl_port_print_xstats(const struct nsl_port *p, FILE *f)
{
	int n = rte_eth_xstats_get(p->id, NULL, 0);
	struct rte_eth_xstat *xs;
	struct rte_eth_xstat_name *names;
	int shown = 0;

	if (n <= 0) {
		fprintf(f, "port %s: no extended statistics\n", p->name);
		return;
	}
	xs = calloc((size_t)n, sizeof(*xs));
	names = calloc((size_t)n, sizeof(*names));
	if (xs != NULL && names != NULL && rte_eth_xstats_get(p->id, xs, (unsigned)n) == n &&
	    rte_eth_xstats_get_names(p->id, names, (unsigned)n) == n) {
		fprintf(f, "port %s:", p->name);
		/* Zero counters are most of them on a NIC; they say nothing. */
		for (int i = 0; i < n; i++)
			if (xs[i].value != 0 && xs[i].id < (uint64_t)n)
				fprintf(f, "%s%s %" PRIu64, shown++ % 6 ? "  " : "\n  ", names[xs[i].id].name, xs[i].value);
		fprintf(f, "%s\n", shown ? "" : " every extended counter is 0");
	}
	free(xs);
	free(names);
}

int nsl_port_wait_up(struct nsl_port *p, uint32_t timeout_ms)
{
	struct rte_eth_link link;
	uint32_t waited = 0, since_kick = 0;

	for (;;) {
		if (rte_eth_link_get_nowait(p->id, &link) == 0 && link.link_status == RTE_ETH_LINK_UP)
			return 0;
		if (waited >= timeout_ms)
			return nsl_error_set(ETIMEDOUT, "port %s: link still down after %u ms%s", p->name, timeout_ms,
					     p->memif_client ? " (is the memif server up, on the same socket?)"
							     : " (is the interface up, and the other side started?)");
		/*
		 * A memif client that connected while its server was probed but not yet started is
		 * turned away and, in DPDK 22.11, never tries again: connect it again.
		 */
		if (p->memif_client && since_kick >= 500) {
			rte_eth_dev_stop(p->id);
			nsl_eal_quiesce_interrupts();
			rte_eth_dev_start(p->id);
			since_kick = 0;
		}
		usleep(10000);
		waited += 10;
		since_kick += 10;
	}
}

bool nsl_port_is_memif_client(const struct nsl_port *p)
{
	return p->memif_client;
}
