# SPDX-License-Identifier: BSD-3-Clause
# Sourced by the test scripts that compare trained weights: nsl_check_weights NAME A B [TOL]
# prints "ok: NAME: ..." when the safetensors files A and B agree within TOL (default 0:
# bitwise), else "FAIL: NAME: ..." and sets failed=1.
nsl_check_weights() {
	local verdict
	if verdict=$(/usr/bin/python3 "$(dirname "${BASH_SOURCE[0]}")/compare_weights.py" "$2" "$3" "${4:-0}" 2>&1); then
		echo "ok: $1: $verdict"
	else
		echo "FAIL: $1: $verdict"
		failed=1
	fi
}
