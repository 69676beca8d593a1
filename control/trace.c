/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nsplit/error.h"
#include "trace.h"

int nsl_trace_init(struct nsl_trace *t, int rank, size_t cap)
{
	memset(t, 0, sizeof(*t));
	t->rank = rank;
	if ((t->s = malloc(cap * sizeof(*t->s))) == NULL)
		return nsl_error_set(ENOMEM, "--trace: no memory for %zu spans of peer %d", cap, rank);
	t->cap = cap;
	return 0;
}

void nsl_trace_free(struct nsl_trace *t)
{
	free(t->s);
	memset(t, 0, sizeof(*t));
}

static const char *span_name(int op)
{
	if (op == NSL_TRACE_SWAP)
		return "swap";
	if (op == NSL_TRACE_CHECKPOINT)
		return "checkpoint";
	return nsl_op_name((enum nsl_op)op);
}

double nsl_thread_cpu(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
		return 0;
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int nsl_trace_write(const char *path, const struct nsl_trace *const *tracks, int n, double origin)
{
	FILE *f = fopen(path, "w");
	bool first = true;

	if (f == NULL)
		return nsl_error_set(errno, "--trace %s: %s", path, strerror(errno));
	fputs("{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n", f);
	for (int k = 0; k < n; k++) {
		const struct nsl_trace *t = tracks[k];

		fprintf(f, "%s{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":1,\"tid\":%d,\"args\":{\"name\":\"peer %d\"}}",
			first ? "" : ",\n", t->rank, t->rank);
		fprintf(f, ",\n{\"ph\":\"M\",\"name\":\"thread_sort_index\",\"pid\":1,\"tid\":%d,\"args\":{\"sort_index\":%d}}",
			t->rank, t->rank);
		first = false;
		for (size_t i = 0; i < t->n; i++) {
			const struct nsl_trace_span *s = &t->s[i];
			const bool has_micro = s->op != NSL_OP_LOAD && s->op != NSL_OP_WGRAD && s->op != NSL_OP_STEP &&
					       s->op < NSL_OP_COUNT;

			fprintf(f, ",\n{\"ph\":\"X\",\"pid\":1,\"tid\":%d,\"name\":\"%s", t->rank, span_name(s->op));
			if (has_micro)
				fprintf(f, " %u", s->micro);
			fprintf(f, "\",\"cat\":\"stage %d\",\"ts\":%.3f,\"dur\":%.3f,\"args\":{\"round\":%d,\"batch\":%d,"
				   "\"stage\":%d,\"micro\":%u",
				s->stage + 1, (s->t0 - origin) * 1e6, (s->t1 - s->t0) * 1e6, s->round + 1, s->batch, s->stage + 1,
				s->micro);
			if (s->cpu >= 0)
				fprintf(f, ",\"cpu_us\":%.3f", s->cpu * 1e6);
			fputs("}}", f);
		}
	}
	fputs("\n]}\n", f);
	if (fclose(f) != 0)
		return nsl_error_set(EIO, "--trace %s: write failed (disk full?)", path);
	for (int k = 0; k < n; k++)
		if (tracks[k]->dropped)
			fprintf(stderr, "nsplit: --trace: peer %d kept its first %zu spans and dropped %llu more\n",
				tracks[k]->rank, tracks[k]->n, (unsigned long long)tracks[k]->dropped);
	return 0;
}
