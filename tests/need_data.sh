# SPDX-License-Identifier: BSD-3-Clause
# Sourced by the test scripts that train on Fashion-MNIST: nsl_need_data DIR returns when the
# data set is there, else exits 77 (skip), or 1 under CI=true, where a skip is a failure.
nsl_need_data() {
	[[ -f "$1/train-images-idx3-ubyte.gz" ]] && return 0
	if [[ "${CI:-}" == true ]]; then
		echo "FAIL: Fashion-MNIST not in $1 (package dataset-fashion-mnist); CI must have it"
		exit 1
	fi
	echo "SKIP: Fashion-MNIST not in $1 (package dataset-fashion-mnist)"
	exit 77
}
