/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Links over a net_ring pair in one process (no hugepages, no NIC): messages of 1 B, one frame,
 * one frame + 1 B, 1 MiB and 64 MiB arrive bitwise intact with no payload copied on send; 1,000
 * messages of random sizes arrive exactly once, in order and intact under seeded drops,
 * duplicates, reordering and corruption; a message too big for its slot fails on both sides; a
 * peer that stops polling is reported dead; memory outside DPDK's heap is refused.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cunit_main.h"
#include "link_pair.h"
#include "nsplit/eal.h"
#include "nsplit/error.h"
#include "nsplit/faults.h"
#include "nsplit/link.h"
#include "nsplit/port.h"
#include "nsplit/rng.h"
#include "nsplit/wire.h"

#define MTU 1500
#define FRAG (MTU - NSL_WIRE_IP_LEN - NSL_WIRE_UDP_LEN - NSL_WIRE_HDR_LEN)
#define SESSION 0x5eed
/* Generous: a 64 MiB message over a ring on a loaded 2-core machine, or 1,000 under faults. */
#define DEADLINE_S 120

static void pair_open(struct pair *pr, const struct nsl_link_conf *base, const char *faults)
{
	struct nsl_link_conf c = *base;

	c.session = SESSION;
	pair_open_with(pr, "lt", &(struct nsl_port_conf){ .mtu = MTU }, &c, (const uint16_t[2]){ 0, 1 }, faults);
}

static void fill(uint8_t *p, uint64_t n, uint64_t seed)
{
	struct nsl_rng r;
	uint64_t i = 0;

	nsl_rng_seed(&r, seed, 0);
	for (; i + 8 <= n; i += 8) {
		uint64_t v = nsl_rng_next(&r);

		memcpy(p + i, &v, 8);
	}
	for (; i < n; i++)
		p[i] = (uint8_t)nsl_rng_next(&r);
}

/* Send one message 0 -> 1 into a slot of `cap` bytes and poll both links until both come back. */
static void send_one(struct pair *pr, uint64_t len, uint64_t cap, int want_status)
{
	uint8_t *src = nsl_dp_alloc(len, 0), *dst = nsl_dp_alloc(cap, 0);
	struct nsl_msg out = { .data = src, .len = len, .peer = 1, .type = NSL_MSG_ACTIVATION, .stage = 3,
			       .micro = 2, .round = 7, .step = 11 };
	struct nsl_msg slot = { .data = dst, .len = cap, .peer = 0 };

	CU_ASSERT_FATAL(src != NULL && dst != NULL);
	fill(src, len, len);
	pair_exchange(pr, &out, &slot, DEADLINE_S);
	CU_ASSERT_EQUAL(out.status, want_status);
	CU_ASSERT_EQUAL(slot.status, want_status);
	if (want_status == 0) {
		CU_ASSERT_EQUAL(slot.len, len);
		CU_ASSERT(memcmp(src, dst, len) == 0);
		CU_ASSERT_EQUAL(slot.type, NSL_MSG_ACTIVATION);
		CU_ASSERT(slot.stage == 3 && slot.micro == 2 && slot.round == 7 && slot.step == 11);
		CU_ASSERT_EQUAL(slot.crc, out.crc);
	}
	nsl_dp_free(src);
	nsl_dp_free(dst);
}

static void test_sizes(void)
{
	const uint64_t sizes[] = { 1, FRAG, FRAG + 1, 1u << 20, 64u << 20 };
	struct pair pr;
	struct nsl_link_stats st;
	uint64_t total = 0;

	pair_open(&pr, &(struct nsl_link_conf){ 0 }, NULL);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		send_one(&pr, sizes[i], sizes[i], 0);
		total += sizes[i];
	}
	nsl_link_stats(pr.link[0], &st);
	CU_ASSERT_EQUAL(st.tx_copy_bytes, 0);
	nsl_link_stats(pr.link[1], &st);
	CU_ASSERT_EQUAL(st.rx_copy_bytes, total);
	for (int d = 1; d < NSL_DROP_MAX; d++)
		CU_ASSERT_EQUAL(st.drops[d], 0);
	printf("\n");
	nsl_link_print_stats(pr.link[0], stdout);
	nsl_link_print_stats(pr.link[1], stdout);
	pair_close(&pr);
}

static void test_too_big(void)
{
	struct pair pr;

	struct nsl_link_stats st;

	pair_open(&pr, &(struct nsl_link_conf){ 0 }, NULL);
	send_one(&pr, 10000, 4096, -EMSGSIZE);
	/* The pair goes on working after the refusal. */
	send_one(&pr, 5000, 5000, 0);
	/* Every frame of the refused message that reached the receiver is counted as too big. */
	nsl_link_stats(pr.link[1], &st);
	CU_ASSERT(st.drops[NSL_DROP_TOO_BIG] >= 1);
	CU_ASSERT_EQUAL(st.drops[NSL_DROP_DUPLICATE], 0);
	pair_close(&pr);
}

#define MANY 1000
#define MANY_MAX (64u << 10)

/* 1,000 messages of random sizes each way under faults; all exactly once, in order, intact. */
static void test_faults(void)
{
	struct pair pr;
	static struct nsl_msg out[2][MANY], slot[2][MANY];
	uint8_t *src[2], *dst[2];
	unsigned posted[2] = { 0 }, sent_n[2] = { 0 }, done[2] = { 0 }, got[2] = { 0 };
	uint64_t off[MANY + 1];
	struct nsl_rng r;
	double t0 = now_s();

	nsl_rng_seed(&r, 42, 0);
	off[0] = 0;
	for (int i = 0; i < MANY; i++)
		off[i + 1] = off[i] + 1 + nsl_rng_below(&r, MANY_MAX);
	pair_open(&pr, &(struct nsl_link_conf){ .slots = 16, .rto_us = 1000 }, "drop=5,dup=2,reorder=32,corrupt=1,seed=9");
	for (int i = 0; i < 2; i++) {
		src[i] = nsl_dp_alloc(off[MANY], 0);
		dst[i] = nsl_dp_alloc(off[MANY], 0);
		CU_ASSERT_FATAL(src[i] != NULL && dst[i] != NULL);
		fill(src[i], off[MANY], 100 + (uint64_t)i);
	}
	while ((got[0] < MANY || got[1] < MANY || done[0] < MANY || done[1] < MANY) && now_s() - t0 < DEADLINE_S) {
		for (int i = 0; i < 2; i++) {
			struct nsl_msg *m[16];
			unsigned n;

			/* Keep a few slots posted and a few messages queued, as a training step would. */
			while (posted[i] < MANY && posted[i] - got[i] < 16) {
				unsigned k = posted[i];

				slot[i][k] = (struct nsl_msg){ .data = dst[i] + off[k], .len = off[k + 1] - off[k],
							       .peer = (uint16_t)(1 - i) };
				CU_ASSERT_FATAL(nsl_link_post(pr.link[i], &slot[i][k]) == 0);
				posted[i]++;
			}
			while (sent_n[i] < MANY && sent_n[i] - done[i] < 16) {
				unsigned k = sent_n[i];

				out[i][k] = (struct nsl_msg){ .data = src[i] + off[k], .len = off[k + 1] - off[k],
							      .peer = (uint16_t)(1 - i), .type = NSL_MSG_GRADIENT,
							      .step = k };
				CU_ASSERT_FATAL(nsl_link_send(pr.link[i], &out[i][k]) == 0);
				sent_n[i]++;
			}
			CU_ASSERT_FATAL(nsl_link_poll(pr.link[i]) >= 0);
			while ((n = nsl_link_sent(pr.link[i], m, 16)) > 0)
				for (unsigned j = 0; j < n; j++) {
					CU_ASSERT(m[j] == &out[i][done[i]]);
					CU_ASSERT_EQUAL(m[j]->status, 0);
					done[i]++;
				}
			while ((n = nsl_link_recv(pr.link[i], m, 16)) > 0)
				for (unsigned j = 0; j < n; j++) {
					unsigned k = got[i]++;

					CU_ASSERT(m[j] == &slot[i][k]);
					CU_ASSERT_EQUAL(m[j]->status, 0);
					CU_ASSERT_EQUAL(m[j]->step, k);
					CU_ASSERT_EQUAL(m[j]->len, off[k + 1] - off[k]);
				}
		}
	}
	CU_ASSERT_EQUAL(got[0], MANY);
	CU_ASSERT_EQUAL(got[1], MANY);
	CU_ASSERT_EQUAL(done[0], MANY);
	CU_ASSERT_EQUAL(done[1], MANY);
	for (int i = 0; i < 2; i++) {
		struct nsl_link_peer_stats ps;
		struct nsl_faults_stats fs;

		/* Peer i received what peer 1-i sent. */
		CU_ASSERT(memcmp(dst[i], src[1 - i], off[MANY]) == 0);
		nsl_link_peer_stats(pr.link[i], (uint16_t)(1 - i), &ps);
		nsl_faults_get_stats(pr.faults[i], &fs);
		printf("\npeer %d: %" PRIu64 " retransmissions (%" PRIu64 " probes), %" PRIu64 " CRC failures; injected "
		       "on receive: %" PRIu64 " of %" PRIu64 " frames dropped, %" PRIu64 " duplicated, %" PRIu64
		       " reordered, %" PRIu64 " corrupted\n", i, ps.retransmits, ps.probes, ps.crc_failures, fs.dropped,
		       fs.seen, fs.duplicated, fs.reordered, fs.corrupted);
		CU_ASSERT(fs.dropped > 0 && fs.duplicated > 0 && fs.reordered > 0 && fs.corrupted > 0);
		CU_ASSERT(ps.retransmits > 0);
		nsl_link_print_stats(pr.link[i], stdout);
	}
	for (int i = 0; i < 2; i++) {
		nsl_dp_free(src[i]);
		nsl_dp_free(dst[i]);
	}
	pair_close(&pr);
}

/* Peer 1 never polls: peer 0's message fails with -EHOSTDOWN after the timeout, naming peer 1. */
static void test_dead_peer(void)
{
	struct pair pr;
	uint8_t *src;
	struct nsl_msg out, *sent = NULL;
	double t0 = now_s();

	pair_open(&pr, &(struct nsl_link_conf){ .peer_timeout_ms = 200, .rto_us = 1000 }, NULL);
	src = nsl_dp_alloc(4096, 0);
	out = (struct nsl_msg){ .data = src, .len = 4096, .peer = 1, .type = NSL_MSG_CONTROL };
	CU_ASSERT_FATAL(nsl_link_send(pr.link[0], &out) == 0);
	while (sent == NULL && now_s() - t0 < 10) {
		CU_ASSERT_FATAL(nsl_link_poll(pr.link[0]) >= 0);
		nsl_link_sent(pr.link[0], &sent, 1);
	}
	CU_ASSERT_FATAL(sent == &out);
	CU_ASSERT_EQUAL(out.status, -EHOSTDOWN);
	CU_ASSERT_EQUAL(nsl_link_dead_peer(pr.link[0]), 1);
	CU_ASSERT(now_s() - t0 >= 0.2);
	nsl_dp_free(src);
	pair_close(&pr);
}

/*
 * Heartbeats: peer 0 only waits on a slot (no work, so without heartbeats it would wait forever).
 * While peer 1 polls it stays alive; once peer 1 falls silent it is declared dead.
 */
static void test_heartbeat(void)
{
	struct pair pr;
	struct nsl_msg slot, *got = NULL;
	double t0;

	pair_open(&pr, &(struct nsl_link_conf){ .peer_timeout_ms = 300, .heartbeat_ms = 50 }, NULL);
	slot = (struct nsl_msg){ .data = nsl_dp_alloc(64, 0), .len = 64, .peer = 1 };
	CU_ASSERT_FATAL(nsl_link_post(pr.link[0], &slot) == 0);
	for (t0 = now_s(); now_s() - t0 < 0.8;) {
		CU_ASSERT_FATAL(nsl_link_poll(pr.link[0]) >= 0);
		CU_ASSERT_FATAL(nsl_link_poll(pr.link[1]) >= 0);
	}
	CU_ASSERT_EQUAL(nsl_link_dead_peer(pr.link[0]), -1);
	for (t0 = now_s(); got == NULL && now_s() - t0 < 5;) {
		CU_ASSERT_FATAL(nsl_link_poll(pr.link[0]) >= 0);
		nsl_link_recv(pr.link[0], &got, 1);
	}
	CU_ASSERT_FATAL(got == &slot);
	CU_ASSERT_EQUAL(slot.status, -EHOSTDOWN);
	CU_ASSERT_EQUAL(nsl_link_dead_peer(pr.link[0]), 1);
	CU_ASSERT(now_s() - t0 >= 0.25 && now_s() - t0 < 2);
	nsl_dp_free(slot.data);
	pair_close(&pr);
}

/* A peer that gives up says so: the other learns who it blames and why at once, and its slot fails. */
static void test_abort(void)
{
	struct pair pr;
	struct nsl_msg slot, *got = NULL;
	struct nsl_link_abort a;
	double t0 = now_s();

	pair_open(&pr, &(struct nsl_link_conf){ 0 }, NULL);
	slot = (struct nsl_msg){ .data = nsl_dp_alloc(64, 0), .len = 64, .peer = 0 };
	CU_ASSERT_FATAL(nsl_link_post(pr.link[1], &slot) == 0);
	CU_ASSERT_FALSE(nsl_link_aborted(pr.link[1], &a));
	CU_ASSERT_FATAL(nsl_link_poll(pr.link[1]) >= 0);
	nsl_link_abort(pr.link[0], 7, 41, ETIMEDOUT);
	while (got == NULL && now_s() - t0 < 5) {
		CU_ASSERT_FATAL(nsl_link_poll(pr.link[1]) >= 0);
		nsl_link_recv(pr.link[1], &got, 1);
	}
	CU_ASSERT_FATAL(got == &slot);
	CU_ASSERT_EQUAL(slot.status, -ECONNABORTED);
	CU_ASSERT_FATAL(nsl_link_aborted(pr.link[1], &a));
	CU_ASSERT(a.from == 0 && a.blame == 7 && a.info == 41 && a.err == ETIMEDOUT);
	CU_ASSERT(now_s() - t0 < 1);
	nsl_dp_free(slot.data);
	pair_close(&pr);
}

static void test_refuses(void)
{
	struct pair pr;
	static uint8_t plain[64];
	struct nsl_msg m = { .data = plain, .len = sizeof(plain), .peer = 1, .type = NSL_MSG_CONTROL };

	pair_open(&pr, &(struct nsl_link_conf){ 0 }, NULL);
	CU_ASSERT_EQUAL(nsl_link_send(pr.link[0], &m), -EINVAL);
	CU_ASSERT(strstr(nsl_error_last(), "nsl_dp_alloc") != NULL);
	m.data = nsl_dp_alloc(64, 0);
	m.peer = 5;
	CU_ASSERT_EQUAL(nsl_link_send(pr.link[0], &m), -EINVAL);
	m.peer = 1;
	m.type = NSL_MSG_ACK;
	CU_ASSERT_EQUAL(nsl_link_send(pr.link[0], &m), -EINVAL);
	m.type = NSL_MSG_CONTROL;
	m.len = 0;
	CU_ASSERT_EQUAL(nsl_link_send(pr.link[0], &m), -EINVAL);
	nsl_dp_free(m.data);
	pair_close(&pr);
}

static void test_faults_parse(void)
{
	struct nsl_faults f;

	CU_ASSERT_EQUAL(nsl_faults_parse("drop=5,dup=2,reorder=32,corrupt=1,seed=7", &f), 0);
	CU_ASSERT(f.drop == 5 && f.dup == 2 && f.reorder == 32 && f.corrupt == 1 && f.seed == 7);
	CU_ASSERT_EQUAL(nsl_faults_parse("drop=0.5", &f), 0);
	CU_ASSERT(f.drop == 0.5 && f.dup == 0);
	CU_ASSERT_EQUAL(nsl_faults_parse("drop=101", &f), -EINVAL);
	CU_ASSERT_EQUAL(nsl_faults_parse("loss=1", &f), -EINVAL);
	CU_ASSERT(strstr(nsl_error_last(), "loss") != NULL);
	CU_ASSERT_EQUAL(nsl_faults_parse("reorder=x", &f), -EINVAL);
	CU_ASSERT_EQUAL(nsl_faults_parse("drop", &f), -EINVAL);
}

int main(void)
{
	static const struct nsl_test_case cases[] = {
		{ "faults spec parsing", test_faults_parse },
		{ "1 B, 1 frame, 1 frame + 1 B, 1 MiB, 64 MiB intact, no copy on send", test_sizes },
		{ "message bigger than its slot fails on both sides", test_too_big },
		{ "1,000 messages each way under drop, dup, reorder, corrupt", test_faults },
		{ "silent peer reported dead", test_dead_peer },
		{ "heartbeats keep a waiting peer alive, their silence kills it", test_heartbeat },
		{ "a peer that gives up says why", test_abort },
		{ "bad messages refused", test_refuses },
		{ NULL, NULL },
	};
	int rc;

	if (nsl_eal_init(&(struct nsl_eal_conf){ .mem_mb = 1024 }) < 0) {
		fprintf(stderr, "test_link: %s\n", nsl_error_last());
		return 1;
	}
	rc = nsl_test_run("link", cases);
	nsl_eal_cleanup();
	return rc;
}
