/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A stage record: a stage's parameters and optimizer state, named by global layer number, plus
 * what the job was doing. A swap between peers and a checkpoint file are the same bytes, in the
 * safetensors format: "layer3.weight", "layer3.bias" in PyTorch layouts, and each optimizer
 * buffer as "layer3.weight.state0", ...; metadata "format" = "nsplit-stage 1", "model", "input",
 * "split", "peers", "stage", "layers", "round" (rounds completed), "steps" (the stage's optimizer
 * steps), "optimizer", "seed", "config" (hash), "records" (a checkpoint's record count: the
 * peers', or Fast N-split's backward roles'). Records are read by name, so one written for
 * one split loads into a stage of another.
 */
#ifndef NSL_RECORD_H
#define NSL_RECORD_H

#include <stdbool.h>
#include <stdint.h>

#include "nsplit/model.h"
#include "nsplit/safetensors.h"
#include "nsplit/stage.h"

struct nsl_record_info {
	const struct nsl_model *model;
	const char *split;            /* "1,2" */
	int peers, stage;
	int records;                  /* records a checkpoint of this job holds (0: one per peer) */
	int64_t round;                /* rounds completed */
	uint64_t seed;
	uint64_t config_hash;
};

/* Room a record of layers [first, last) with `slots` optimizer buffers per parameter takes at most. */
uint64_t nsl_record_cap(const struct nsl_model *m, int first, int last, int slots);

/* Write stage s as a record into buf (cap bytes); *len the bytes used. 0 or a negative errno. */
int nsl_record_pack(const struct nsl_stage *s, const struct nsl_record_info *info, void *buf, uint64_t cap,
		    uint64_t *len);

/*
 * Fill stage s from records f[0..n): each of its parameters and optimizer buffers from whichever
 * record has that name, and its step count. 0, or a negative errno naming what is missing or of
 * the wrong shape. Records of another model are the caller's to refuse (nsl_record_check).
 */
int nsl_record_load(struct nsl_stage *s, struct nsl_st_file *const *f, int n);

/* The parameters alone (no optimizer state, no step count) of stage s from records f[0..n), each
 * from whichever holds it: a Fast N-split forward role resuming from backward roles' records. */
int nsl_record_load_params(struct nsl_stage *s, struct nsl_st_file *const *f, int n);

/* Whether record f belongs to model m: 0, or -EINVAL saying what differs. `what` names f. */
int nsl_record_check(const struct nsl_st_file *f, const struct nsl_model *m, const char *what);

#endif
