/* SPDX-License-Identifier: BSD-3-Clause */
/* Packet capture to a classic pcap file from a port's receive and transmit callbacks (see nsplit/capture.h). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>
#include <rte_spinlock.h>

#include "nsplit/capture.h"
#include "nsplit/error.h"
#include "port_pvt.h"

#define BUF_SIZE (1u << 20)
#define PCAP_MAGIC_NS 0xa1b23c4du
#define PCAP_LINKTYPE_ETHERNET 1
#define PCAP_FILE_HDR_LEN 24
#define PCAP_REC_HDR_LEN 16
#define NS_PER_SEC 1000000000ull

struct nsl_capture {
	rte_spinlock_t lock;      /* the receive and transmit callbacks may run on two threads */
	int fd;
	int err;                  /* 0, or the negative errno that stopped the capture */
	uint64_t err_at;          /* records written before it */
	uint16_t port_id;
	bool claimed;             /* port_busy[port_id] is ours */
	uint64_t sent_flag;       /* mbuf dynflag: this frame was recorded at an earlier offer */
	const struct rte_eth_rxtx_callback *rx_cb, *tx_cb;
	uint64_t base_ns, base_tsc, hz;
	uint8_t *buf;
	uint32_t used;
	uint64_t buf_frames, buf_bytes;   /* records in buf, not yet in the file */
	struct nsl_capture_stats st;
	char path[];
};

/* One capture per port: the mark on sent frames is shared, so a second would skip every frame. */
static rte_spinlock_t ports_lock = RTE_SPINLOCK_INITIALIZER;
static bool port_busy[RTE_MAX_ETHPORTS];

static bool port_claim(uint16_t id, bool claim)
{
	bool ok;

	rte_spinlock_lock(&ports_lock);
	ok = !claim || !port_busy[id];
	if (ok)
		port_busy[id] = claim;
	rte_spinlock_unlock(&ports_lock);
	return ok;
}

/* Write the buffer out. A failure stops the capture: what the buffer held counts as missed. */
static int flush(struct nsl_capture *c)
{
	uint32_t off = 0;

	if (c->err != 0)
		return c->err;
	while (off < c->used) {
		ssize_t n = write(c->fd, c->buf + off, c->used - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			c->err = n < 0 ? -errno : -EIO;
			c->err_at = c->st.frames - c->buf_frames;
			c->st.frames -= c->buf_frames;
			c->st.bytes -= c->buf_bytes;
			c->st.missed += c->buf_frames;
			break;
		}
		off += (uint32_t)n;
	}
	c->used = 0;
	c->buf_frames = c->buf_bytes = 0;
	return c->err;
}

/* pcap files are in the writer's byte order; the magic tells readers which. */
static void put16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, 2);
}

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static void record(struct nsl_capture *c, const struct rte_mbuf *m, uint64_t ns)
{
	uint32_t len = rte_pktmbuf_pkt_len(m), cap = len < NSL_CAPTURE_SNAPLEN ? len : NSL_CAPTURE_SNAPLEN;
	uint8_t *d;

	if (c->err != 0 || (c->used + PCAP_REC_HDR_LEN + cap > BUF_SIZE && flush(c) != 0)) {
		c->st.missed++;
		return;
	}
	d = c->buf + c->used;
	put32(d, (uint32_t)(ns / NS_PER_SEC));
	put32(d + 4, (uint32_t)(ns % NS_PER_SEC));
	put32(d + 8, cap);
	put32(d + 12, len);
	d += PCAP_REC_HDR_LEN;
	/* Segment by segment: a sent frame is a header mbuf chained to one that points into a tensor. */
	for (uint32_t left = cap; m != NULL && left > 0; m = m->next) {
		uint32_t n = m->data_len < left ? m->data_len : left;

		memcpy(d, rte_pktmbuf_mtod(m, const uint8_t *), n);
		d += n;
		left -= n;
	}
	c->used += PCAP_REC_HDR_LEN + cap;
	c->st.frames++;
	c->st.bytes += cap;
	c->buf_frames++;
	c->buf_bytes += cap;
	c->st.truncated += cap < len;
}

/* Wall-clock nanoseconds from the TSC, without a system call. */
static uint64_t now_ns(const struct nsl_capture *c)
{
	uint64_t d = rte_get_tsc_cycles() - c->base_tsc;

	return c->base_ns + d / c->hz * NS_PER_SEC + d % c->hz * NS_PER_SEC / c->hz;
}

static uint16_t on_rx(uint16_t port_id, uint16_t queue, struct rte_mbuf *pkts[], uint16_t nb, uint16_t max, void *arg)
{
	struct nsl_capture *c = arg;
	uint64_t ns;

	(void)port_id;
	(void)queue;
	(void)max;
	if (nb == 0)
		return 0;
	ns = now_ns(c);
	rte_spinlock_lock(&c->lock);
	for (uint16_t i = 0; i < nb; i++)
		record(c, pkts[i], ns);
	rte_spinlock_unlock(&c->lock);
	return nb;
}

static uint16_t on_tx(uint16_t port_id, uint16_t queue, struct rte_mbuf *pkts[], uint16_t nb, void *arg)
{
	struct nsl_capture *c = arg;
	uint64_t ns;

	(void)port_id;
	(void)queue;
	if (nb == 0)
		return 0;
	ns = now_ns(c);
	rte_spinlock_lock(&c->lock);
	for (uint16_t i = 0; i < nb; i++) {
		/* Offered again after the port refused it: recorded already. Allocation clears the flag. */
		if (pkts[i]->ol_flags & c->sent_flag)
			continue;
		pkts[i]->ol_flags |= c->sent_flag;
		record(c, pkts[i], ns);
	}
	rte_spinlock_unlock(&c->lock);
	return nb;
}

static void free_capture(struct nsl_capture *c)
{
	if (c->fd >= 0)
		close(c->fd);
	if (c->claimed)
		port_claim(c->port_id, false);
	free(c->buf);
	free(c);
}

struct nsl_capture *nsl_capture_open(struct nsl_port *port, const char *path)
{
	static const struct rte_mbuf_dynflag flag = { .name = "nsl_dynflag_captured" };
	size_t plen = strlen(path);
	struct nsl_capture *c = calloc(1, sizeof(*c) + plen + 1);
	struct timespec ts;
	int bit;

	if (c == NULL || (c->buf = malloc(BUF_SIZE)) == NULL) {
		free(c);
		nsl_error_set(ENOMEM, "capture %s: out of memory", path);
		return NULL;
	}
	memcpy(c->path, path, plen + 1);
	c->fd = -1;
	rte_spinlock_init(&c->lock);
	c->port_id = port->id;
	if (!port_claim(port->id, true)) {
		nsl_error_set(EBUSY, "capture %s: port %s is being captured already", path, port->name);
		free_capture(c);
		return NULL;
	}
	c->claimed = true;
	c->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (c->fd < 0) {
		int e = errno;

		nsl_error_set(e, "capture: cannot create %s: %s", path, strerror(e));
		free_capture(c);
		return NULL;
	}
	if ((bit = rte_mbuf_dynflag_register(&flag)) < 0) {
		nsl_error_set(rte_errno ? rte_errno : ENOSPC, "capture %s: no mbuf flag left to mark frames: %s", path,
			      rte_strerror(rte_errno));
		free_capture(c);
		return NULL;
	}
	c->sent_flag = 1ull << bit;
	/* The TSC and the wall clock, paired once; records then cost no system call. */
	c->hz = rte_get_tsc_hz();
	clock_gettime(CLOCK_REALTIME, &ts);
	c->base_tsc = rte_get_tsc_cycles();
	c->base_ns = (uint64_t)ts.tv_sec * NS_PER_SEC + (uint64_t)ts.tv_nsec;
	put32(c->buf, PCAP_MAGIC_NS);
	put16(c->buf + 4, 2);	/* version 2.4 */
	put16(c->buf + 6, 4);
	put32(c->buf + 8, 0);	/* thiszone */
	put32(c->buf + 12, 0);	/* sigfigs */
	put32(c->buf + 16, NSL_CAPTURE_SNAPLEN);
	put32(c->buf + 20, PCAP_LINKTYPE_ETHERNET);
	c->used = PCAP_FILE_HDR_LEN;
	/*
	 * At the end of the receive list, so a fault injector (which puts itself first) has done its
	 * work before the capture sees a frame.
	 */
	c->rx_cb = rte_eth_add_rx_callback(port->id, 0, on_rx, c);
	c->tx_cb = c->rx_cb != NULL ? rte_eth_add_tx_callback(port->id, 0, on_tx, c) : NULL;
	if (c->tx_cb == NULL) {
		nsl_error_set(rte_errno ? rte_errno : ENOTSUP, "capture %s on port %s: cannot add a %s callback: %s "
			      "(is DPDK built with RTE_ETHDEV_RXTX_CALLBACKS?)", path, port->name,
			      c->rx_cb == NULL ? "receive" : "transmit", rte_strerror(rte_errno));
		nsl_port_drop_rx_callback(port->id, c->rx_cb);
		free_capture(c);
		return NULL;
	}
	return c;
}

int nsl_capture_close(struct nsl_capture *c)
{
	int rc;

	if (c == NULL)
		return 0;
	/* No thread runs them now (the caller's promise), so their memory can go back at once. */
	nsl_port_drop_rx_callback(c->port_id, c->rx_cb);
	nsl_port_drop_tx_callback(c->port_id, c->tx_cb);
	flush(c);
	if (close(c->fd) != 0 && c->err == 0) {
		c->err = -errno;
		c->err_at = c->st.frames;
	}
	c->fd = -1;
	rc = c->err;
	if (rc != 0)
		nsl_error_set(-rc, "capture %s: writing failed after %" PRIu64 " frames (%s); the file holds what was "
			      "written before, %" PRIu64 " frames were not recorded", c->path, c->err_at, strerror(-rc),
			      c->st.missed);
	free_capture(c);
	return rc;
}

void nsl_capture_get_stats(const struct nsl_capture *c, struct nsl_capture_stats *out)
{
	*out = c->st;
}
