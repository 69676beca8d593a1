/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Schedules: every stage's program, run symbolically against the others, finishes (each receive
 * finds the matching send, in order, with no deadlock); every micro-batch is forwarded before it
 * is backwarded, once each; the in-flight counts are the schedule's (1 for nsplit, all for gpipe,
 * N - s for 1f1b); bad arguments are refused.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "nsplit/error.h"
#include "cunit_main.h"
#include "schedule.h"

#define MAX_STAGES 6
#define MAX_MICRO 9

/* Messages in flight from one stage to another, by kind: FIFO of micro-batch numbers. */
struct chan {
	int q[3 * MAX_MICRO];
	int head, tail;
};

static int kind_of(enum nsl_op op)
{
	switch (op) {
	case NSL_OP_SEND_ACT: case NSL_OP_RECV_ACT: return 0;
	case NSL_OP_SEND_GRAD: case NSL_OP_RECV_GRAD: return 1;
	default: return 2;
	}
}

static bool is_send(enum nsl_op op)
{
	return nsl_op_sends(op);
}

static bool is_recv(enum nsl_op op)
{
	return op == NSL_OP_RECV_ACT || op == NSL_OP_RECV_GRAD || op == NSL_OP_RECV_LABELS;
}

/* Run the N programs of one batch round-robin; fail on deadlock or out-of-order delivery. */
static void run_batch(enum nsl_sched_kind k, int n, int nmicro)
{
	static struct nsl_instr prog[MAX_STAGES][NSL_SCHED_MAX_INSTR];
	static struct chan ch[MAX_STAGES][MAX_STAGES][3];
	int len[MAX_STAGES], pc[MAX_STAGES] = { 0 };
	int fwd[MAX_STAGES][MAX_MICRO], bwd[MAX_STAGES][MAX_MICRO];
	bool moved = true;
	int done = 0;

	memset(ch, 0, sizeof(ch));
	memset(fwd, 0, sizeof(fwd));
	memset(bwd, 0, sizeof(bwd));
	for (int s = 0; s < n; s++) {
		len[s] = nsl_sched_compile(k, n, s, nmicro, prog[s], NSL_SCHED_MAX_INSTR);
		CU_ASSERT_FATAL(len[s] > 0);
		CU_ASSERT_EQUAL(prog[s][len[s] - 1].op, NSL_OP_STEP);
		CU_ASSERT_EQUAL(prog[s][len[s] - 2].op, NSL_OP_WGRAD);
		CU_ASSERT_EQUAL(prog[s][0].op == NSL_OP_LOAD, s == 0);
	}
	while (moved && done < n) {
		moved = false;
		for (int s = 0; s < n; s++) {
			while (pc[s] < len[s]) {
				const struct nsl_instr *in = &prog[s][pc[s]];
				enum nsl_op op = in->op;
				int peer = in->peer;

				if (is_send(op)) {
					struct chan *c = &ch[s][peer][kind_of(op)];

					CU_ASSERT_FATAL(peer >= 0 && peer < n && peer != s);
					c->q[c->tail++] = in->micro;
				} else if (is_recv(op)) {
					struct chan *c = &ch[peer][s][kind_of(op)];

					CU_ASSERT_FATAL(peer >= 0 && peer < n && peer != s);
					if (c->head == c->tail)
						break;     /* blocked: let the others run */
					CU_ASSERT_EQUAL_FATAL(c->q[c->head], in->micro);
					c->head++;
				} else if (op == NSL_OP_FWD) {
					CU_ASSERT_EQUAL(fwd[s][in->micro]++, 0);
				} else if (op == NSL_OP_BWD) {
					CU_ASSERT_EQUAL(fwd[s][in->micro], 1);
					CU_ASSERT_EQUAL(bwd[s][in->micro]++, 0);
				} else if (op == NSL_OP_LOSS) {
					CU_ASSERT_EQUAL(s, n - 1);
					CU_ASSERT_EQUAL(fwd[s][in->micro], 1);
				}
				pc[s]++;
				moved = true;
				if (pc[s] == len[s])
					done++;
			}
		}
	}
	if (done < n)
		fprintf(stderr, "\n  %s, %d stages, %d micro-batches: deadlock\n", nsl_sched_name(k), n, nmicro);
	CU_ASSERT_EQUAL_FATAL(done, n);
	for (int s = 0; s < n; s++) {
		int flight = nsl_sched_in_flight(prog[s], len[s]);
		int want = k == NSL_SCHED_NSPLIT ? 1 : k == NSL_SCHED_GPIPE ? nmicro
			 : (n - s < nmicro ? n - s : nmicro);

		CU_ASSERT_EQUAL(flight, want);
		for (int m = 0; m < nmicro; m++)
			CU_ASSERT(fwd[s][m] == 1 && bwd[s][m] == 1);
		for (int a = 0; a < n; a++)
			for (int q = 0; q < 3; q++)
				CU_ASSERT_EQUAL(ch[s][a][q].head, ch[s][a][q].tail);   /* every message taken */
	}
}

static void test_every_schedule_completes(void)
{
	static const enum nsl_sched_kind kinds[] = { NSL_SCHED_NSPLIT, NSL_SCHED_GPIPE, NSL_SCHED_1F1B };

	for (unsigned i = 0; i < 3; i++)
		for (int n = 1; n <= MAX_STAGES; n++)
			for (int m = 1; m <= MAX_MICRO; m++)
				run_batch(kinds[i], n, m);
}

/* Fast N-split: every role's programs over a round of `batches` batches, run round-robin. */
static void run_fast(const struct nsl_fast_layout *l, int batches, int nmicro)
{
	enum { K_ACT, K_GRAD, K_LABELS, K_SAVED, K_PARAMS, K_N };
	static struct nsl_instr prog[MAX_STAGES][NSL_SCHED_MAX_INSTR];
	static struct fchan { int q[64 * MAX_MICRO]; int head, tail; } ch[MAX_STAGES][MAX_STAGES][K_N];
	const int n = l->fwd + l->bwd;
	int len[MAX_STAGES], pc[MAX_STAGES] = { 0 }, batch[MAX_STAGES] = { 0 }, pushes[MAX_STAGES][MAX_STAGES];
	int done = 0;
	bool moved = true;

	memset(ch, 0, sizeof(ch));
	memset(pushes, 0, sizeof(pushes));
	for (int q = 0; q < n; q++) {
		len[q] = nsl_sched_compile_fast(l, q, 0, batches, nmicro, prog[q], NSL_SCHED_MAX_INSTR);
		CU_ASSERT_FATAL(len[q] > 0);
	}
	while (moved && done < n) {
		moved = false;
		for (int q = 0; q < n; q++) {
			while (batch[q] < batches) {
				const struct nsl_instr *in = &prog[q][pc[q]];
				enum nsl_op op = in->op;
				int kind = op == NSL_OP_SEND_ACT || op == NSL_OP_RECV_ACT ? K_ACT
					 : op == NSL_OP_SEND_GRAD || op == NSL_OP_RECV_GRAD ? K_GRAD
					 : op == NSL_OP_SEND_LABELS || op == NSL_OP_RECV_LABELS ? K_LABELS
					 : op == NSL_OP_SEND_SAVED || op == NSL_OP_RECV_SAVED ? K_SAVED : K_PARAMS;

				if (nsl_op_sends(op)) {
					CU_ASSERT_FATAL(in->peer < n && in->peer != q);
					ch[q][in->peer][kind].q[ch[q][in->peer][kind].tail++] = in->micro + 1000 * batch[q];
				} else if (op == NSL_OP_RECV_ACT || op == NSL_OP_RECV_GRAD || op == NSL_OP_RECV_LABELS ||
					   op == NSL_OP_RECV_SAVED || op == NSL_OP_RECV_PARAMS) {
					CU_ASSERT_FATAL(in->peer < n && in->peer != q);
					struct fchan *c = &ch[in->peer][q][kind];

					if (c->head == c->tail)
						break;
					/* parameter pushes name their batch; the rest their micro-batch, this batch */
					CU_ASSERT_EQUAL_FATAL(c->q[c->head] % 1000, in->micro);
					if (op != NSL_OP_RECV_PARAMS) {
						CU_ASSERT_EQUAL_FATAL(c->q[c->head] / 1000, batch[q]);
					} else {
						CU_ASSERT_EQUAL_FATAL(in->micro, pushes[in->peer][q]);
						pushes[in->peer][q]++;
					}
					c->head++;
				} else if (op == NSL_OP_FWD) {
					/* the forward of batch b runs on the pushes of batches before b - S */
					for (int b = 0; b < l->bwd; b++) {
						if (l->params_to[b] >> q & 1)
							CU_ASSERT_FATAL(pushes[l->fwd + b][q] >= batch[q] - l->staleness);
					}
				}
				moved = true;
				if (++pc[q] < len[q])
					continue;
				pc[q] = 0;
				if (++batch[q] == batches) {
					done++;
					break;
				}
				len[q] = nsl_sched_compile_fast(l, q, batch[q], batches, nmicro, prog[q], NSL_SCHED_MAX_INSTR);
				CU_ASSERT_FATAL(len[q] > 0);
			}
		}
	}
	if (done < n)
		fprintf(stderr, "\n  fast %d:%d, S %d, %d batches of %d: deadlock\n", l->fwd, l->bwd, l->staleness, batches,
			nmicro);
	CU_ASSERT_EQUAL_FATAL(done, n);
	for (int a = 0; a < n; a++)
		for (int b = 0; b < n; b++)
			for (int k = 0; k < K_N; k++)
				CU_ASSERT_EQUAL(ch[a][b][k].head, ch[a][b][k].tail);
	for (int b = 0; b < l->bwd; b++)
		for (int f = 0; f < l->fwd; f++)
			CU_ASSERT_EQUAL(pushes[l->fwd + b][f], l->params_to[b] >> f & 1 ? batches : 0);
}

static void test_fast_completes(void)
{
	unsigned seed = 7;

	for (int F = 1; F <= 3; F++)
		for (int B = 1; B <= 3; B++)
			for (int trial = 0; trial < 12; trial++) {
				struct nsl_fast_layout l = { .fwd = F, .bwd = B, .staleness = trial % 3 };

				/* every backward role hears from some forward role, every forward one from some backward one */
				for (int b = 0; b < B; b++) {
					l.saved_to[rand_r(&seed) % F] |= 1ull << b;
					l.params_to[b] = (uint64_t)(rand_r(&seed) % (1 << F));
				}
				for (int f = 0; f < F; f++)
					l.params_to[rand_r(&seed) % B] |= 1ull << f;
				run_fast(&l, 1 + trial % 4, 1 + trial % 5);
			}
}

static void test_shapes(void)
{
	struct nsl_instr p[64];
	int n;

	/* one stage, one micro-batch: load, fwd, loss, bwd, wgrad, step */
	n = nsl_sched_compile(NSL_SCHED_NSPLIT, 1, 0, 1, p, 64);
	CU_ASSERT_EQUAL_FATAL(n, 6);
	CU_ASSERT(p[0].op == NSL_OP_LOAD && p[1].op == NSL_OP_FWD && p[2].op == NSL_OP_LOSS && p[3].op == NSL_OP_BWD &&
		  p[4].op == NSL_OP_WGRAD && p[5].op == NSL_OP_STEP);
	/* 1f1b, stage 0 of 4 with 6 micro-batches: three forwards before the first backward */
	n = nsl_sched_compile(NSL_SCHED_1F1B, 4, 0, 6, p, 64);
	CU_ASSERT_FATAL(n > 0);
	{
		int fwds = 0;

		for (int i = 0; i < n && p[i].op != NSL_OP_BWD; i++)
			fwds += p[i].op == NSL_OP_FWD;
		CU_ASSERT_EQUAL(fwds, 4);
	}
}

static void test_refused(void)
{
	struct nsl_instr p[8];
	enum nsl_sched_kind k;

	CU_ASSERT_EQUAL(nsl_sched_compile(NSL_SCHED_GPIPE, 2, 2, 1, p, 8), -EINVAL);
	CU_ASSERT_EQUAL(nsl_sched_compile(NSL_SCHED_GPIPE, 2, 0, 0, p, 8), -EINVAL);
	CU_ASSERT_EQUAL(nsl_sched_compile(NSL_SCHED_GPIPE, 2, 0, 4, p, 8), -ENOSPC);
	CU_ASSERT_EQUAL(nsl_sched_parse("zb", &k), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(nsl_error_last(), "1f1b"));
	CU_ASSERT_EQUAL(nsl_sched_parse("1f1b", &k), 0);
	CU_ASSERT_EQUAL(k, NSL_SCHED_1F1B);
}

static const struct nsl_test_case cases[] = {
	{ "every schedule completes without deadlock", test_every_schedule_completes },
	{ "Fast N-split's programs complete, forwards on the right pushes", test_fast_completes },
	{ "program shapes", test_shapes },
	{ "bad arguments are refused", test_refused },
	{ NULL, NULL },
};

int main(void)
{
	return nsl_test_run("schedule", cases);
}
