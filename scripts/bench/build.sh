# SPDX-License-Identifier: BSD-3-Clause
# Sourced by the benchmark scripts. nsl_bench_setup ROOT BUILD_DIR NAME installs what is missing
# (scripts/deps.sh) and builds; nsl_bench_build BUILD_DIR NAME configures BUILD_DIR if it
# has never been, builds it, and on failure shows the log's tail and exits 1 naming NAME.
# BENCH_NO_BUILD set: the build folder is used as it is.
nsl_bench_build() {
	local dir=$1 name=$2 log
	[[ -n "${BENCH_NO_BUILD:-}" ]] && return 0
	log=$(mktemp)
	if [[ ! -f "$dir/meson-private/coredata.dat" ]] && ! meson setup "$dir" >"$log" 2>&1; then
		tail -n 30 "$log"
		rm -f "$log"
		echo "$name: meson setup $dir failed" >&2
		exit 1
	fi
	if ! ninja -C "$dir" >"$log" 2>&1; then
		tail -n 30 "$log"
		rm -f "$log"
		echo "$name: ninja -C $dir failed" >&2
		exit 1
	fi
	rm -f "$log"
}

nsl_bench_setup() {
	# shellcheck source=scripts/deps.sh
	source "$1/scripts/deps.sh"
	nsl_install_deps
	nsl_bench_build "$2" "$3"
}
