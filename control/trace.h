/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * --trace FILE: every instruction a peer runs, as a span, written at the end as a Chrome trace
 * (JSON, opens in Perfetto or chrome://tracing): one track per peer, so the pipeline's bubbles
 * (long receives) can be seen. A real run's spans also say how long the peer's thread ran in
 * them (args.cpu_us): a span much longer than its CPU time waited, or shared its core. Spans go
 * into a buffer allocated before training; when it is full the rest are counted, not kept.
 */
#ifndef NSL_TRACE_H
#define NSL_TRACE_H

#include <stddef.h>
#include <stdint.h>

#include "schedule.h"

/* Spans that are not instructions of a batch program. */
enum { NSL_TRACE_SWAP = NSL_OP_COUNT, NSL_TRACE_CHECKPOINT, NSL_TRACE_KINDS };

struct nsl_trace_span {
	double t0, t1;            /* nsl_now() */
	double cpu;               /* seconds the thread ran in it (< 0: not known) */
	int32_t round, batch;
	uint16_t micro;
	uint8_t op;               /* enum nsl_op or NSL_TRACE_* */
	uint8_t stage;
};

struct nsl_trace {
	struct nsl_trace_span *s;
	size_t n, cap;
	uint64_t dropped;
	int rank;
};

/* Room for cap spans. 0 or -ENOMEM with a message. */
int nsl_trace_init(struct nsl_trace *t, int rank, size_t cap);
void nsl_trace_free(struct nsl_trace *t);

static inline void nsl_trace_add(struct nsl_trace *t, int op, int stage, int round, int batch, int micro, double t0,
				 double t1, double cpu)
{
	if (t->s == NULL)
		return;
	if (t->n == t->cap) {
		t->dropped++;
		return;
	}
	t->s[t->n++] = (struct nsl_trace_span){ t0, t1, cpu, round, batch, (uint16_t)micro, (uint8_t)op, (uint8_t)stage };
}

/* Seconds of CPU the calling thread has used. */
double nsl_thread_cpu(void);

/* Write the tracks as one Chrome trace, times in microseconds from `origin`. 0 or a negative errno. */
int nsl_trace_write(const char *path, const struct nsl_trace *const *tracks, int n, double origin);

#endif
