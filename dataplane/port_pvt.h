/* SPDX-License-Identifier: BSD-3-Clause */
/* What the link needs to know of a port. */
#ifndef NSL_PORT_PVT_H
#define NSL_PORT_PVT_H

#include <stdbool.h>
#include <stdint.h>

#include <rte_ethdev.h>
#include <rte_malloc.h>
#include <rte_mempool.h>
#include <rte_ring.h>

#include "nsplit/port.h"
#include "nsplit/wire.h"

struct nsl_port {
	uint16_t id;
	uint16_t mtu;
	bool multi_seg;
	bool started;
	bool vdev;                /* probed by us: removed on close */
	uint16_t tx_max_burst;    /* frames per rte_eth_tx_burst call (0 = any number) */
	bool tx_ip_cksum;         /* the port fills in IPv4 header checksums */
	bool memif_client;        /* closes after its server hangs up (see nsl_port_close) */
	uint8_t mac[6];
	char name[128];
	struct rte_mempool *hdr_pool;   /* frame headers (and whole frames when copying) */
	struct rte_mempool *ext_pool;   /* no data room: attached to tensor memory */
	struct rte_mempool *rx_pool;
	struct rte_ring *rings[2];      /* net_ring pair: rings we made */
};

/* Room in a header mbuf: the whole frame, so a port without multi-segment sends can be served. */
#define NSL_PORT_HDR_ROOM(mtu) ((uint32_t)(mtu) + 14u + 64u)
/* With chained frames a header mbuf holds the headers, or a whole ack (up to 64 ranges). */
#define NSL_PORT_HDR_ROOM_CHAINED ((uint32_t)NSL_WIRE_FRAME_HDR + NSL_WIRE_ACK_LEN + 8u * NSL_WIRE_ACK_MAX_RANGES)

/*
 * Take a callback off queue 0 of port `id` and free it. Only while no thread polls the port:
 * DPDK frees nothing itself, since a poller could still be running the callback.
 */
static inline void nsl_port_drop_rx_callback(uint16_t id, const struct rte_eth_rxtx_callback *cb)
{
	if (cb != NULL && rte_eth_remove_rx_callback(id, 0, cb) == 0)
		rte_free((void *)(uintptr_t)cb);
}

static inline void nsl_port_drop_tx_callback(uint16_t id, const struct rte_eth_rxtx_callback *cb)
{
	if (cb != NULL && rte_eth_remove_tx_callback(id, 0, cb) == 0)
		rte_free((void *)(uintptr_t)cb);
}

#endif
