/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nsplit/error.h"
#include "json.h"
#include "plan_file.h"

/* A whole number at key, within [lo, hi]. */
static int whole(const char *path, const struct nsl_json *obj, const char *key, int lo, int hi, int *out)
{
	const struct nsl_json *v = nsl_json_get(obj, key);

	if (v == NULL || v->type != NSL_JSON_NUMBER || v->number != floor(v->number) || v->number < lo || v->number > hi)
		return nsl_error_set(EINVAL, "%s: \"%s\" must be a whole number from %d to %d", path, key, lo, hi);
	*out = (int)v->number;
	return 0;
}

/* Array `key` of whole numbers, the cuts of a split into n stages: starts[1..n-1] (checked later). */
static int cuts(const char *path, const struct nsl_json *root, const char *key, int n, int *starts)
{
	const struct nsl_json *a = nsl_json_get(root, key);

	if (a == NULL || a->type != NSL_JSON_ARRAY)
		return nsl_error_set(EINVAL, "%s: \"%s\" (an array of layer numbers) is due", path, key);
	if (a->n != n - 1)
		return nsl_error_set(EINVAL, "%s: \"%s\" has %d cuts for %d stages; %d are due", path, key, a->n, n, n - 1);
	starts[0] = 0;
	for (int k = 0; k < a->n; k++) {
		const struct nsl_json *e = &a->child[k];

		if (e->type != NSL_JSON_NUMBER || e->number != floor(e->number) || fabs(e->number) > 1e6)
			return nsl_error_set(EINVAL, "%s: \"%s\"[%d] is not a layer number", path, key, k);
		starts[k + 1] = (int)e->number;
	}
	return 0;
}

int nsl_plan_file_read(const char *path, struct nsl_plan_file *out)
{
	struct nsl_json *root = nsl_json_load(path);
	const struct nsl_json *model, *sched, *pools;
	enum nsl_sched_kind k;
	int rc;

	memset(out, 0, sizeof(*out));
	if (root == NULL)
		return -EINVAL;
	model = nsl_json_get(root, "model");
	sched = nsl_json_get(root, "schedule");
	if (root->type != NSL_JSON_OBJECT || model == NULL || model->type != NSL_JSON_STRING ||
	    strlen(model->string) >= sizeof(out->model)) {
		rc = nsl_error_set(EINVAL, "%s: not a plan (no \"model\"; make one with nsplit plan --json)", path);
		goto out;
	}
	snprintf(out->model, sizeof(out->model), "%s", model->string);
	if (sched == NULL || sched->type != NSL_JSON_STRING || nsl_sched_parse(sched->string, &k) < 0) {
		rc = nsl_error_set(EINVAL, "%s: \"schedule\" must be nsplit, gpipe, 1f1b or fast", path);
		goto out;
	}
	out->schedule = k;
	if ((rc = whole(path, root, "peers", 1, NSL_PLAN_MAX_PEERS, &out->peers)) < 0)
		goto out;
	if (k != NSL_SCHED_FAST) {
		rc = cuts(path, root, "split", out->peers, out->starts);
		goto out;
	}
	pools = nsl_json_get(root, "pools");
	if (pools == NULL || pools->type != NSL_JSON_ARRAY || pools->n != 2 || pools->child[0].type != NSL_JSON_NUMBER ||
	    pools->child[1].type != NSL_JSON_NUMBER || pools->child[0].number < 1 || pools->child[1].number < 1 ||
	    pools->child[0].number + pools->child[1].number != out->peers) {
		rc = nsl_error_set(EINVAL, "%s: \"pools\" must be [F, B], one or more each, adding up to \"peers\" (%d)", path,
				   out->peers);
		goto out;
	}
	out->fwd = (int)pools->child[0].number;
	out->bwd = (int)pools->child[1].number;
	if ((rc = cuts(path, root, "split_fwd", out->fwd, out->fstarts)) == 0)
		rc = cuts(path, root, "split_bwd", out->bwd, out->starts);
out:
	nsl_json_free(root);
	return rc;
}

static int check_split(const char *path, const char *key, int *starts, int n, const struct nsl_model *m)
{
	starts[n] = m->nlayers;
	for (int k = 1; k < n; k++)
		if (starts[k] <= starts[k - 1] || starts[k] >= m->nlayers)
			return nsl_error_set(EINVAL, "%s: \"%s\" cuts at layer %d, which %s (the model has layers 0 to %d; cuts "
					     "rise from 1)", path, key, starts[k],
					     starts[k] >= m->nlayers || starts[k] < 0 ? "does not exist" : "does not rise",
					     m->nlayers - 1);
	return 0;
}

int nsl_plan_file_check(const char *path, struct nsl_plan_file *pf, const struct nsl_model *m)
{
	int rc;

	if (strcmp(pf->model, m->text) != 0)
		return nsl_error_set(EINVAL, "%s plans model %s; this one is %s", path, pf->model, m->text);
	if (pf->schedule != NSL_SCHED_FAST)
		return check_split(path, "split", pf->starts, pf->peers, m);
	if ((rc = check_split(path, "split_fwd", pf->fstarts, pf->fwd, m)) < 0)
		return rc;
	return check_split(path, "split_bwd", pf->starts, pf->bwd, m);
}
