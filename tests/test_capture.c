/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Capture over a net_ring pair: messages of 1 B, one frame, one frame + 1 B and 100,000 B each
 * way while peer 0's port is captured. The file is read back: one record per frame the port sent
 * or received (the link's counters say how many of each), every record a valid nsplit frame,
 * every data frame's payload equal to the message's bytes at its offset. Also: a frame refused by
 * a full port is recorded once; with a fault injector installed after the capture, the capture
 * still shows what the link saw; a full disk stops the capture without harm and is reported at
 * close; a path that cannot be created, or a second capture of one port, is refused.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cunit_main.h"
#include "link_pair.h"
#include "nsplit/capture.h"
#include "nsplit/eal.h"
#include "nsplit/error.h"
#include "nsplit/faults.h"
#include "nsplit/link.h"
#include "nsplit/port.h"
#include "nsplit/rng.h"
#include "nsplit/wire.h"

#define MTU 1500
#define FRAG (MTU - NSL_WIRE_IP_LEN - NSL_WIRE_UDP_LEN - NSL_WIRE_HDR_LEN)
#define SESSION 0xcab
#define DEADLINE_S 60
#define MAX_MSGS 8

/* Messages sent by each side, in order: message k of side s has id k on the wire. */
struct traffic {
	unsigned int n;
	uint64_t len[MAX_MSGS];
	uint8_t *src[2][MAX_MSGS];
};

static char tmpdir[] = "/tmp/nsl_capture_XXXXXX";

static void pair_open(struct pair *pr, uint16_t rx_desc)
{
	pair_open_with(pr, "cap", &(struct nsl_port_conf){ .mtu = MTU, .rx_desc = rx_desc, .tx_desc = rx_desc },
		       &(struct nsl_link_conf){ .session = SESSION, .rto_us = 1000 }, (const uint16_t[2]){ 0, 1 }, NULL);
}

static uint64_t wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void traffic_make(struct traffic *t, const uint64_t *lens, unsigned int n)
{
	struct nsl_rng r;

	t->n = n;
	nsl_rng_seed(&r, 77, 0);
	for (unsigned int k = 0; k < n; k++) {
		t->len[k] = lens[k];
		for (int s = 0; s < 2; s++) {
			t->src[s][k] = nsl_dp_alloc(lens[k], 0);
			CU_ASSERT_FATAL(t->src[s][k] != NULL);
			for (uint64_t i = 0; i < lens[k]; i++)
				t->src[s][k][i] = (uint8_t)nsl_rng_next(&r);
		}
	}
}

static void traffic_free(struct traffic *t)
{
	for (unsigned int k = 0; k < t->n; k++)
		for (int s = 0; s < 2; s++)
			nsl_dp_free(t->src[s][k]);
}

/*
 * Both sides send every message of t to each other at once. `solo_polls`: side 0 polls that many
 * times alone first (after side 1 gave credit), so a small port fills and refuses frames.
 */
static void exchange(struct pair *pr, const struct traffic *t, int solo_polls)
{
	struct nsl_msg out[2][MAX_MSGS], slot[2][MAX_MSGS];
	uint8_t *dst[2][MAX_MSGS];
	unsigned int sent[2] = { 0 }, got[2] = { 0 };
	double t0 = now_s();

	for (int s = 0; s < 2; s++)
		for (unsigned int k = 0; k < t->n; k++) {
			dst[s][k] = nsl_dp_alloc(t->len[k], 0);
			CU_ASSERT_FATAL(dst[s][k] != NULL);
			slot[s][k] = (struct nsl_msg){ .data = dst[s][k], .len = t->len[k], .peer = (uint16_t)(1 - s) };
			CU_ASSERT_FATAL(nsl_link_post(pr->link[s], &slot[s][k]) == 0);
		}
	CU_ASSERT_FATAL(nsl_link_poll(pr->link[1]) >= 0);	/* its credit reaches side 0 */
	for (int s = 0; s < 2; s++)
		for (unsigned int k = 0; k < t->n; k++) {
			out[s][k] = (struct nsl_msg){ .data = t->src[s][k], .len = t->len[k], .peer = (uint16_t)(1 - s),
						      .type = NSL_MSG_ACTIVATION, .step = k };
			CU_ASSERT_FATAL(nsl_link_send(pr->link[s], &out[s][k]) == 0);
		}
	for (int i = 0; i < solo_polls; i++)
		CU_ASSERT_FATAL(nsl_link_poll(pr->link[0]) >= 0);
	while ((sent[0] + sent[1] + got[0] + got[1] < 4 * t->n) && now_s() - t0 < DEADLINE_S) {
		for (int s = 0; s < 2; s++) {
			struct nsl_msg *m[MAX_MSGS];
			unsigned int n;

			CU_ASSERT_FATAL(nsl_link_poll(pr->link[s]) >= 0);
			n = nsl_link_sent(pr->link[s], m, MAX_MSGS);
			for (unsigned int j = 0; j < n; j++)
				CU_ASSERT(m[j] == &out[s][sent[s]++] && m[j]->status == 0);
			n = nsl_link_recv(pr->link[s], m, MAX_MSGS);
			for (unsigned int j = 0; j < n; j++) {
				unsigned int k = got[s]++;

				CU_ASSERT(m[j] == &slot[s][k] && m[j]->status == 0);
				CU_ASSERT(memcmp(dst[s][k], t->src[1 - s][k], t->len[k]) == 0);
			}
		}
	}
	/* A few more polls: the last acks reach their side, so the counters below are final. */
	for (int i = 0; i < 4; i++)
		for (int s = 0; s < 2; s++)
			CU_ASSERT_FATAL(nsl_link_poll(pr->link[s]) >= 0);
	for (int s = 0; s < 2; s++) {
		CU_ASSERT_EQUAL(sent[s], t->n);
		CU_ASSERT_EQUAL(got[s], t->n);
		for (unsigned int k = 0; k < t->n; k++)
			nsl_dp_free(dst[s][k]);
	}
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

struct counts {
	uint64_t records, data_tx, data_rx, acks_tx, acks_rx;
};

/*
 * Read the capture of side 0's port: every record a whole, valid nsplit frame; data frames carry
 * the message's bytes at their offset.
 */
static void check_file(const char *path, const struct traffic *t, uint64_t t_open, uint64_t t_close,
		       struct counts *cn)
{
	FILE *f = fopen(path, "rb");
	uint8_t fh[24], rh[16];
	static uint8_t frame[65536];
	uint64_t last_ns = 0;

	memset(cn, 0, sizeof(*cn));
	CU_ASSERT_FATAL(f != NULL);
	CU_ASSERT_FATAL(fread(fh, 1, sizeof(fh), f) == sizeof(fh));
	CU_ASSERT_EQUAL(get32(fh), 0xa1b23c4du);
	CU_ASSERT(fh[4] == 2 && fh[6] == 4);
	CU_ASSERT_EQUAL(get32(fh + 16), NSL_CAPTURE_SNAPLEN);
	CU_ASSERT_EQUAL(get32(fh + 20), 1);	/* LINKTYPE_ETHERNET */
	while (fread(rh, 1, sizeof(rh), f) == sizeof(rh)) {
		uint32_t incl = get32(rh + 8), orig = get32(rh + 12);
		uint64_t ns = (uint64_t)get32(rh) * 1000000000ull + get32(rh + 4);
		struct nsl_wire_frame wf;
		enum nsl_drop d;

		CU_ASSERT(get32(rh + 4) < 1000000000u);
		CU_ASSERT(ns >= last_ns && ns + 1000000000ull >= t_open && ns <= t_close + 1000000000ull);
		last_ns = ns;
		CU_ASSERT_FATAL(incl == orig && incl <= sizeof(frame));
		CU_ASSERT_FATAL(fread(frame, 1, incl, f) == incl);
		cn->records++;
		d = nsl_wire_parse(frame, incl, NSL_WIRE_UDP_PORT, &wf);
		CU_ASSERT_EQUAL(d, NSL_DROP_NONE);
		if (d != NSL_DROP_NONE)
			continue;
		CU_ASSERT(wf.hdr.session == SESSION && wf.hdr.src + wf.hdr.dst == 1);
		if (wf.hdr.type == NSL_MSG_ACK) {
			*(wf.hdr.src == 0 ? &cn->acks_tx : &cn->acks_rx) += 1;
			continue;
		}
		*(wf.hdr.src == 0 ? &cn->data_tx : &cn->data_rx) += 1;
		CU_ASSERT_FATAL(wf.hdr.msg_id < t->n);
		CU_ASSERT_EQUAL(wf.hdr.total_len, t->len[wf.hdr.msg_id]);
		CU_ASSERT(wf.hdr.offset + wf.payload_len <= t->len[wf.hdr.msg_id]);
		CU_ASSERT(memcmp(frame + wf.payload_off, t->src[wf.hdr.src][wf.hdr.msg_id] + wf.hdr.offset,
				 wf.payload_len) == 0);
	}
	CU_ASSERT(feof(f));
	fclose(f);
}

/* tshark, when installed, reads the file too and finds as many frames. */
static void check_tshark(const char *path, uint64_t records)
{
	char cmd[512];
	FILE *p;
	uint64_t n = 0;
	char line[256];

	if (access("/usr/bin/tshark", X_OK) != 0) {
		printf("\n(tshark not installed: file not cross-checked)\n");
		return;
	}
	snprintf(cmd, sizeof(cmd), "/usr/bin/tshark -n -r '%s' -T fields -e frame.len 2>/dev/null", path);
	CU_ASSERT_FATAL((p = popen(cmd, "r")) != NULL);
	while (fgets(line, sizeof(line), p) != NULL)
		n++;
	CU_ASSERT_EQUAL(pclose(p), 0);
	CU_ASSERT_EQUAL(n, records);
}

/*
 * The identity: side 0's port sent its data frames and acks, and received side 1's. Every frame
 * received ends as a data frame or ack counted, or a drop by reason (a message failing its
 * CRC32C is a drop on top of its frames, so not a frame of its own).
 */
static void check_counts(struct pair *pr, const struct counts *cn, const struct nsl_capture_stats *cs)
{
	struct nsl_link_peer_stats ps;
	struct nsl_link_stats ls;
	uint64_t drops = 0;

	CU_ASSERT_FATAL(nsl_link_peer_stats(pr->link[0], 1, &ps) == 0);
	nsl_link_stats(pr->link[0], &ls);
	for (int d = NSL_DROP_NONE + 1; d < NSL_DROP_MAX; d++)
		if (d != NSL_DROP_MSG_CRC)
			drops += ls.drops[d];
	printf("\ncapture: %" PRIu64 " records: sent %" PRIu64 " data + %" PRIu64 " acks, received %" PRIu64
	       " data + %" PRIu64 " acks; link: frames %" PRIu64 "/%" PRIu64 ", acks %" PRIu64 "/%" PRIu64
	       ", drops %" PRIu64 ", port full %" PRIu64 "\n", cn->records, cn->data_tx, cn->acks_tx, cn->data_rx,
	       cn->acks_rx, ps.frames_tx, ps.frames_rx, ps.acks_tx, ps.acks_rx, drops, ls.tx_full);
	CU_ASSERT_EQUAL(cn->records, ps.frames_tx + ps.acks_tx + ps.frames_rx + ps.acks_rx + drops);
	CU_ASSERT_EQUAL(cn->data_tx, ps.frames_tx);
	CU_ASSERT_EQUAL(cn->acks_tx, ps.acks_tx);
	CU_ASSERT_EQUAL(cn->data_rx + cn->acks_rx, ps.frames_rx + ps.acks_rx + drops);
	CU_ASSERT_EQUAL(cs->frames, cn->records);
	CU_ASSERT_EQUAL(cs->missed, 0);
	CU_ASSERT_EQUAL(cs->truncated, 0);
}

static const uint64_t sizes[] = { 1, FRAG, FRAG + 1, 100000 };
#define NSIZES (sizeof(sizes) / sizeof(sizes[0]))

/*
 * rx_desc: 0 for the default port, or small so the port fills; faults: a spec installed after;
 * tshark: cross-check the file (once is enough: tshark takes seconds to start).
 */
static void run(const char *file, uint16_t rx_desc, int solo_polls, const char *faults, bool tshark)
{
	char path[256];
	struct pair pr;
	struct traffic t;
	struct nsl_capture *c;
	struct nsl_capture_stats cs;
	struct nsl_fault_injector *fi = NULL;
	struct counts cn;
	uint64_t t_open, t_close;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, file);
	pair_open(&pr, rx_desc);
	traffic_make(&t, sizes, NSIZES);
	t_open = wall_ns();
	c = nsl_capture_open(pr.port[0], path);
	CU_ASSERT_FATAL(c != NULL);
	if (faults != NULL) {
		struct nsl_faults f;

		CU_ASSERT_FATAL(nsl_faults_parse(faults, &f) == 0);
		fi = nsl_faults_install(pr.port[0], &f);
		CU_ASSERT_FATAL(fi != NULL);
	}
	exchange(&pr, &t, solo_polls);
	if (fi != NULL) {
		struct nsl_faults_stats fs;

		nsl_faults_get_stats(fi, &fs);
		printf("\nfaults on receive: %" PRIu64 " of %" PRIu64 " frames dropped, %" PRIu64 " duplicated, %" PRIu64
		       " reordered", fs.dropped, fs.seen, fs.duplicated, fs.reordered);
		CU_ASSERT(fs.dropped > 0 && fs.duplicated > 0);
		nsl_faults_remove(fi);
	}
	nsl_capture_get_stats(c, &cs);
	CU_ASSERT_EQUAL(nsl_capture_close(c), 0);
	t_close = wall_ns();
	check_file(path, &t, t_open, t_close, &cn);
	check_counts(&pr, &cn, &cs);
	if (solo_polls > 0) {
		struct nsl_link_stats ls;

		nsl_link_stats(pr.link[0], &ls);
		CU_ASSERT(ls.tx_full > 0);	/* the case under test did happen */
	}
	if (tshark)
		check_tshark(path, cn.records);
	traffic_free(&t);
	pair_close(&pr);
	unlink(path);
}

static void test_both_ways(void)
{
	run("both.pcap", 0, 0, NULL, true);
}

static void test_port_full(void)
{
	run("full.pcap", 64, 8, NULL, false);
}

static void test_after_faults(void)
{
	run("faults.pcap", 0, 0, "drop=10,dup=10,reorder=8,seed=3", false);
}

/* /dev/full: the first write in a receive or transmit callback fails; nothing breaks. */
static void test_disk_full(void)
{
	const uint64_t big[] = { 3u << 20 };
	struct pair pr;
	struct traffic t;
	struct nsl_capture *c;
	struct nsl_capture_stats cs;

	pair_open(&pr, 0);
	traffic_make(&t, big, 1);
	c = nsl_capture_open(pr.port[0], "/dev/full");
	CU_ASSERT_FATAL(c != NULL);
	exchange(&pr, &t, 0);
	nsl_capture_get_stats(c, &cs);
	CU_ASSERT(cs.missed > 0);
	CU_ASSERT(cs.frames < cs.missed);
	CU_ASSERT_EQUAL(nsl_capture_close(c), -ENOSPC);
	CU_ASSERT(strstr(nsl_error_last(), "/dev/full") != NULL);
	printf("\n%s\n", nsl_error_last());
	traffic_free(&t);
	pair_close(&pr);
}

static void test_bad_path(void)
{
	struct nsl_capture *c;
	char path[256];
	struct pair pr;

	pair_open(&pr, 0);
	CU_ASSERT(nsl_capture_open(pr.port[0], "/nonexistent/dir/x.pcap") == NULL);
	CU_ASSERT(strstr(nsl_error_last(), "/nonexistent/dir/x.pcap") != NULL);
	CU_ASSERT_EQUAL(nsl_capture_close(NULL), 0);
	/* One capture per port; the port is free again once it is closed. */
	snprintf(path, sizeof(path), "%s/twice.pcap", tmpdir);
	CU_ASSERT_FATAL((c = nsl_capture_open(pr.port[0], path)) != NULL);
	CU_ASSERT(nsl_capture_open(pr.port[0], path) == NULL);
	CU_ASSERT(strstr(nsl_error_last(), "already") != NULL);
	CU_ASSERT_EQUAL(nsl_capture_close(c), 0);
	CU_ASSERT_FATAL((c = nsl_capture_open(pr.port[0], path)) != NULL);
	CU_ASSERT_EQUAL(nsl_capture_close(c), 0);
	unlink(path);
	pair_close(&pr);
}

int main(void)
{
	static const struct nsl_test_case cases[] = {
		{ "messages both ways: one record per frame, payloads intact", test_both_ways },
		{ "frames refused by a full port are recorded once", test_port_full },
		{ "faults installed after the capture still act before it", test_after_faults },
		{ "disk full: capture stops, close reports it", test_disk_full },
		{ "path that cannot be created, second capture of a port: refused", test_bad_path },
		{ NULL, NULL },
	};
	int rc;

	if (mkdtemp(tmpdir) == NULL) {
		perror("test_capture: mkdtemp");
		return 1;
	}
	if (nsl_eal_init(&(struct nsl_eal_conf){ .mem_mb = 512 }) < 0) {
		fprintf(stderr, "test_capture: %s\n", nsl_error_last());
		rmdir(tmpdir);
		return 1;
	}
	rc = nsl_test_run("capture", cases);
	nsl_eal_cleanup();
	rmdir(tmpdir);
	return rc;
}
