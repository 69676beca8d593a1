/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Ports: any DPDK ethdev, opened and started with one receive and one transmit queue.
 *
 * A port is named by its devargs, as EAL's --vdev or a PCI address takes them:
 *   "net_memif0,role=server,socket=/run/nsl.sock"    processes on one host
 *   "net_af_packet0,iface=veth0"                     a kernel interface (namespaces, real NICs)
 *   "net_null0", "net_pcap0,rx_pcap=in.pcap"     benchmarks, replays (no tx_*: sends dropped)
 *   "0000:3b:00.0"                                    a PCI NIC (EAL started with pci = true)
 * or made as a crossed pair of rings in this process (nsl_port_ring_pair), which is how the
 * embedded default runs every peer in one process.
 *
 * Each port owns its mbuf pools: header mbufs (nsplit builds every frame's headers there),
 * attach mbufs (no data room; they point into a tensor's memory) and receive mbufs.
 */
#ifndef NSPLIT_PORT_H
#define NSPLIT_PORT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct nsl_port_conf {
	uint16_t rx_desc;         /* receive descriptors (0 = 1024) */
	uint16_t tx_desc;         /* transmit descriptors (0 = 1024) */
	uint16_t mtu;             /* IP MTU (0 = 1500, 9000 for a ring pair; up to what the port allows) */
	uint32_t mbufs;           /* mbufs per pool (0 = from the descriptor counts) */
	uint32_t connect_wait_ms; /* memif client: keep trying this long for its server (0: once) */
};

struct nsl_port;

/*
 * Probe the device named by `devargs` (a vdev string or a PCI address), configure and start it.
 * NULL with a message naming the device and what it refused. Free with nsl_port_close.
 */
struct nsl_port *nsl_port_open(const char *devargs, const struct nsl_port_conf *c);

/*
 * Two net_ring ports joined back to back: what one sends, the other receives. `name` must be
 * unique in the process. 0 or a negative errno; close both with nsl_port_close.
 */
int nsl_port_ring_pair(const char *name, const struct nsl_port_conf *c, struct nsl_port *out[2]);

/* Stop and close the device, free its pools (NULL-safe). Frames still in flight are dropped. */
void nsl_port_close(struct nsl_port *p);

uint16_t nsl_port_id(const struct nsl_port *p);
const char *nsl_port_name(const struct nsl_port *p);
void nsl_port_mac(const struct nsl_port *p, uint8_t mac[6]);
/* IP MTU in effect. */
uint16_t nsl_port_mtu(const struct nsl_port *p);
/*
 * Wait until the port's link is up (a memif pair connected, an interface up): 0, or -ETIMEDOUT
 * with a message naming the port. A memif client is connected again while it waits.
 */
int nsl_port_wait_up(struct nsl_port *p, uint32_t timeout_ms);

/* Whether the port is a memif client (it must hang up after its server; see nsl_port_close). */
bool nsl_port_is_memif_client(const struct nsl_port *p);

/* The port's non-zero extended statistics (rte_eth_xstats), named as the PMD names them. */
void nsl_port_print_xstats(const struct nsl_port *p, FILE *f);

/* Whether the port sends chained mbufs (else nsplit copies payload into one mbuf, and counts it). */
bool nsl_port_multi_seg(const struct nsl_port *p);

#endif
