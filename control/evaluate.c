/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <string.h>

#include "nsplit/error.h"
#include "nsplit/loss.h"
#include "evaluate.h"

int nsl_evaluate(struct nsl_chain *c, struct nsl_batcher *b, int batch, float *x, int32_t *labels,
		 FILE *dump, int64_t dump_limit, struct nsl_eval_result *out)
{
	const int classes = c->m->classes;
	double loss_sum = 0;
	int correct = 0;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = nsl_batcher_begin_epoch(b, 0);
	if (rc < 0)
		return rc;
	for (;;) {
		const float *logits;
		double batch_loss = 0;
		int n = nsl_batcher_next(b, batch, x, labels);

		if (n <= 0) {
			if (n < 0)
				return n;
			break;
		}
		rc = nsl_chain_predict(c, n, x, &logits);
		if (rc < 0)
			return rc;
		rc = nsl_softmax_xent(logits, labels, n, classes, 1.0f, NULL, &correct, &batch_loss);
		if (rc < 0)
			return rc;
		loss_sum += batch_loss;
		if (dump != NULL && out->total < dump_limit) {
			int64_t rows = dump_limit - out->total < n ? dump_limit - out->total : n;

			if (fwrite(logits, sizeof(float) * (size_t)classes, (size_t)rows, dump) != (size_t)rows)
				return nsl_error_set(EIO, "cannot write logits: %s", strerror(errno));
		}
		out->total += n;
	}
	out->correct = correct;
	out->loss = out->total ? loss_sum / (double)out->total : 0;
	out->accuracy = out->total ? (double)correct / (double)out->total : 0;
	return 0;
}
