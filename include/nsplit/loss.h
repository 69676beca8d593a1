/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The training loss: softmax cross-entropy over the logits of the model's last layer, the same
 * as PyTorch's nn.CrossEntropyLoss (log-softmax then negative log-likelihood of the label).
 *
 * It runs after the last stage, in plain C: oneDNN 2.6 has no loss primitive, and the classes
 * are few (tens), so one pass per row costs nothing next to the layers.
 *
 * Gradient scaling: a batch of B rows may be cut into micro-batches that run at different times
 * or on different peers. Each call is given scale = 1 / B (the full batch, not its own rows), so
 * the gradients of all its micro-batches add up to the gradient of the batch mean, exactly what
 * one call over the whole batch would have produced.
 */
#ifndef NSPLIT_LOSS_H
#define NSPLIT_LOSS_H

#include <stdint.h>

/*
 * Softmax cross-entropy of `batch` rows of `classes` logits.
 *
 * For every row r with label y = labels[r]:
 *   loss_r = -log softmax(logits_r)[y] = logsumexp(logits_r) - logits_r[y]
 * computed with the row maximum subtracted first, so no exp() overflows for any finite logits.
 *
 * @param logits
 *   batch x classes floats, row-major.
 * @param labels
 *   batch class numbers, each in [0, classes).
 * @param batch
 *   Rows, >= 0 (0 does nothing and succeeds).
 * @param classes
 *   Logits per row, >= 1.
 * @param scale
 *   Factor applied to the gradient only (usually 1 / full batch size; see above).
 * @param dlogits
 *   If not NULL, receives batch x classes floats: (softmax(logits_r) - onehot(y)) * scale,
 *   the gradient of scale * sum_r loss_r. May not alias logits.
 * @param correct
 *   If not NULL, incremented by the number of rows whose arg-max (the first maximum on a tie)
 *   equals the label.
 * @param loss_sum
 *   If not NULL, incremented by sum_r loss_r (unscaled), accumulated in double so a whole epoch
 *   can be summed into one variable.
 * @return
 *   0 on success, or:
 *   - -EINVAL: batch < 0 or classes < 1; or a label outside [0, classes) (the message names the
 *     first such row and its label). All labels are checked before anything is written, so on
 *     error dlogits, *correct and *loss_sum are unchanged.
 */
int nsl_softmax_xent(const float *logits, const int32_t *labels, int batch, int classes, float scale,
		     float *dlogits, int *correct, double *loss_sum);

#endif
