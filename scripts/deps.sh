#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# The one list of Debian 12 packages that nsplit needs to build, test, benchmark and demo.
# Run it (scripts/deps.sh) or source it and call nsl_install_deps. Installs only what is
# missing, quietly; runs `apt-get update` once, and only when something is missing.

NSL_DEPS=(
	dpdk-dev
	libdpdk-dev
	liburing-dev
	libdnnl-dev
	libcunit1-dev
	meson
	ninja-build
	pkg-config
	gcc
	zlib1g-dev
	dataset-fashion-mnist
	clang
	libclang-rt-14-dev
	nftables
	tshark
	fio
	iperf3
	iproute2
	python3
	python3-numpy
	python3-torch
	python3-matplotlib
	libopenblas0-openmp
)

# Prints the packages of NSL_DEPS that are not installed, one per line.
nsl_missing_deps() {
	local pkg status
	for pkg in "${NSL_DEPS[@]}"; do
		status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
		if [[ "$status" != "install ok installed" ]]; then
			echo "$pkg"
		fi
	done
}

nsl_install_deps() {
	local missing
	mapfile -t missing < <(nsl_missing_deps)
	if ((${#missing[@]} == 0)); then
		echo "deps: all ${#NSL_DEPS[@]} packages present"
		return 0
	fi
	echo "deps: installing ${#missing[@]} missing package(s): ${missing[*]}"
	local sudo=()
	if ((EUID != 0)); then
		if command -v sudo >/dev/null 2>&1; then
			sudo=(sudo)
		else
			echo "deps: not root and no sudo; install these as root: ${missing[*]}" >&2
			return 1
		fi
	fi
	export DEBIAN_FRONTEND=noninteractive
	if ! "${sudo[@]}" apt-get update -qq; then
		echo "deps: apt-get update failed" >&2
		return 1
	fi
	if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends "${missing[@]}" >/dev/null; then
		echo "deps: apt-get install failed for: ${missing[*]}" >&2
		return 1
	fi
	mapfile -t missing < <(nsl_missing_deps)
	if ((${#missing[@]} != 0)); then
		echo "deps: still missing after install: ${missing[*]}" >&2
		return 1
	fi
	echo "deps: installed"
}

# Run directly: install. Sourced: only define the list and the functions.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
	set -euo pipefail
	nsl_install_deps
fi
