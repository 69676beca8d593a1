/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "nsplit/error.h"
#include "nsplit/loss.h"

int nsl_softmax_xent(const float *logits, const int32_t *labels, int batch, int classes, float scale,
		     float *dlogits, int *correct, double *loss_sum)
{
	double sum = 0;
	int hits = 0;

	if (batch < 0 || classes < 1)
		return nsl_error_set(EINVAL, "softmax cross-entropy: %d rows of %d classes; need rows >= 0 and "
				     "classes >= 1", batch, classes);
	for (int r = 0; r < batch; r++)
		if (labels[r] < 0 || labels[r] >= classes)
			return nsl_error_set(EINVAL, "softmax cross-entropy: row %d has label %d, outside 0..%d; "
					     "check the data set's labels against the model's %d outputs",
					     r, (int)labels[r], classes - 1, classes);
	for (int r = 0; r < batch; r++) {
		const float *z = logits + (size_t)r * (size_t)classes;
		const int y = labels[r];
		float max = z[0], denom = 0.0f;
		int arg = 0;

		for (int c = 1; c < classes; c++) {
			if (z[c] > max) {
				max = z[c];
				arg = c;
			}
		}
		for (int c = 0; c < classes; c++)
			denom += expf(z[c] - max);
		sum += (double)(logf(denom) - (z[y] - max));
		hits += arg == y;
		if (dlogits != NULL) {
			float *g = dlogits + (size_t)r * (size_t)classes;
			const float inv = 1.0f / denom;

			for (int c = 0; c < classes; c++)
				g[c] = (expf(z[c] - max) * inv - (c == y ? 1.0f : 0.0f)) * scale;
		}
	}
	if (correct != NULL)
		*correct += hits;
	if (loss_sum != NULL)
		*loss_sum += sum;
	return 0;
}
