# SPDX-License-Identifier: BSD-3-Clause
# Sourced by the test scripts that compare trained weights (nsl_train_save, below, trains and
# saves them; MLP and CNN are the models they train): nsl_check_weights NAME A B [TOL]
# prints "ok: NAME: ..." when the safetensors files A and B agree within TOL (default 0:
# bitwise), else "FAIL: NAME: ..." and sets failed=1.

# The foundation issue's two models, as the weight-comparing tests train them.
# shellcheck disable=SC2034
MLP="mlp:784-512-256-10"
# shellcheck disable=SC2034
CNN="conv:32x3x3,relu,maxpool:2,conv:64x3x3,relu,maxpool:2,flatten,dense:128,relu,dense:10"

nsl_check_weights() {
	local verdict
	if verdict=$(/usr/bin/python3 "$(dirname "${BASH_SOURCE[0]}")/compare_weights.py" "$2" "$3" "${4:-0}" 2>&1); then
		echo "ok: $1: $verdict"
	else
		echo "FAIL: $1: $verdict"
		failed=1
	fi
}

# nsl_train_save OUT ARGS...: "$NSPLIT" train on "$DATA" with ARGS, saving the weights to OUT and
# its output to OUT.log; on failure prints FAIL with the log's tail and returns 1.
nsl_train_save() {
	local out=$1
	shift
	"$NSPLIT" train --data "$DATA" --no-progress --no-eval --save-weights "$out" "$@" >"$out.log" 2>&1 || {
		echo "FAIL: nsplit train $* exited non-zero:"
		tail -n 20 "$out.log"
		return 1
	}
}
