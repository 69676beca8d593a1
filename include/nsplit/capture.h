/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Packet capture: every frame a port sends and receives, written to a classic libpcap file that
 * tcpdump, Wireshark and tshark read (with scripts/wireshark/nsplit.lua, field by field).
 *
 *   struct nsl_capture *c = nsl_capture_open(port, "/tmp/peer0.pcap");
 *   ... the link runs ...
 *   int rc = nsl_capture_close(c);   // 0, or why the file is incomplete (disk full, ...)
 *
 * The file: magic 0xa1b23c4d (nanosecond timestamps), version 2.4, LINKTYPE_ETHERNET, snaplen
 * 65535, one record per frame with the whole frame (header mbuf and the payload it points to in
 * tensor memory alike). Sent and received frames share the file in the order the port saw them;
 * classic pcap has no direction field: the frame's Ethernet source tells which way it went.
 * Timestamps are the TSC turned into wall-clock time (CLOCK_REALTIME read once, at open).
 *
 * What is recorded:
 * - Receive: frames as nsplit receives them, after any fault injector (nsl_faults_install puts
 *   its callback first in the port's list with rte_eth_add_first_rx_callback; the capture adds
 *   its own at the end with rte_eth_add_rx_callback), so dropped frames are missing, duplicated
 *   and corrupted ones appear as the link saw them, whichever of the two was installed first.
 *   A callback added later by someone else with rte_eth_add_rx_callback would run after the
 *   capture.
 * - Send: frames as they are handed to the port (rte_eth_add_tx_callback, which runs before the
 *   driver). A frame the port refuses at once (nsl_link_stats' tx_full) is offered again later;
 *   it is recorded once, at its first offer (an mbuf flag marks it), so the file holds each frame
 *   once even when the port was full.
 *
 * Cost: no allocation and no system call per frame. Records are copied into a 1 MiB buffer that
 * is written to the file when full and at close; a spinlock, taken once per burst, lets the
 * receive and transmit sides run on different threads. A write error (disk full, a broken
 * device) stops the capture: the error is remembered and nsl_capture_close returns it; frames
 * from then on, and those in the buffer that failed to be written, count as missed.
 */
#ifndef NSPLIT_CAPTURE_H
#define NSPLIT_CAPTURE_H

#include <stdint.h>

struct nsl_port;

#define NSL_CAPTURE_SNAPLEN 65535

struct nsl_capture_stats {
	uint64_t frames;          /* records written to the file, or waiting in the buffer */
	uint64_t bytes;           /* frame bytes in those records */
	uint64_t truncated;       /* frames longer than the snaplen, recorded cut (never with nsplit's MTUs) */
	uint64_t missed;          /* frames not recorded, after a write error */
};

struct nsl_capture;

/*
 * Create (or truncate) the file at `path` and record every frame `port` sends and receives on
 * its queue 0 from now on. NULL with a message naming the path or the port when the file cannot
 * be created, the port has a capture already (EBUSY: one per port) or DPDK refuses a callback.
 * Close with nsl_capture_close; the port must stay open until then.
 */
struct nsl_capture *nsl_capture_open(struct nsl_port *port, const char *path);

/*
 * Remove the callbacks, write what is buffered, close the file, free c. Only when no thread is
 * polling the port (DPDK's rule for removing callbacks: one may be running a burst). Returns 0,
 * or the first write error (-ENOSPC, -EIO, ...) with a message naming the file; the file then
 * holds the records written before it. NULL-safe (returns 0).
 */
int nsl_capture_close(struct nsl_capture *c);

/* Counters (a copy; from any thread, values may be a burst behind). */
void nsl_capture_get_stats(const struct nsl_capture *c, struct nsl_capture_stats *out);

#endif
