/* SPDX-License-Identifier: BSD-3-Clause */
/* `nsplit train --cluster FILE --rank R`: one peer of a job whose peers are processes or hosts. */
#ifndef NSL_TRAIN_CLUSTER_H
#define NSL_TRAIN_CLUSTER_H

#include "cluster.h"
#include "train.h"

/*
 * Train as peer `rank` of the job cl describes (o holds its [job] options and the command line's).
 * Peer 0 gathers the final stages, evaluates and writes the records. 0 or a negative errno with a
 * message; when a peer is lost the message names it and the last round completed.
 */
int nsl_train_cluster(const struct nsl_train_opts *o, const struct nsl_cluster *cl, int rank);

#endif
