#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# Sequential read bandwidth of the io_uring shard reader against fio (ioengine=io_uring) on the
# same shard files, in the same run, three cases: O_DIRECT and buffered from a cold page cache
# (dropped before every run of either tool), and buffered from a warm one (the files read into
# the cache before every run: the software path alone). Runs alternate which tool goes first;
# each figure is the median of --reps runs. Prints a table, then one JSON object per line and
# case with vs_fio (target: >= 0.9).
#
# usage: scripts/bench/shards.sh [--size-gib G] [--depth N] [--block BYTES] [--reps R]
#                                [--dir DIR] [--keep]
#   --size-gib  size of the shard set to make (default 1; 4 shards of 1x28x28 records)
#   --depth     reads in flight for both tools (default 8, the trainer's default)
#   --block     bytes per read for both tools (default 1048576)
#   --reps      runs per tool and case (default 5)
#   --dir       where the shards go; must be a real disk, not tmpfs (default /var/tmp)
#   --keep      keep the shard set (and reuse a kept one of the same size)
# Environment: NSPLIT_BUILD_DIR (build), BENCH_NO_BUILD (set: use the build folder as it is).
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$(pwd)
BUILD_DIR=${NSPLIT_BUILD_DIR:-build}
PY=/usr/bin/python3
SIZE_GIB=1
DEPTH=8
BLOCK=1048576
REPS=5
BASE=/var/tmp
KEEP=0

while (($#)); do
	case "$1" in
	--size-gib) SIZE_GIB=$2; shift 2 ;;
	--depth) DEPTH=$2; shift 2 ;;
	--block) BLOCK=$2; shift 2 ;;
	--reps) REPS=$2; shift 2 ;;
	--dir) BASE=$2; shift 2 ;;
	--keep) KEEP=1; shift ;;
	-h | --help) sed -n '3,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "shards.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
	esac
done

# shellcheck source=scripts/deps.sh
source "$ROOT/scripts/deps.sh"
nsl_install_deps
if [[ -z "${BENCH_NO_BUILD:-}" ]]; then
	[[ -f "$BUILD_DIR/meson-private/coredata.dat" ]] || meson setup "$BUILD_DIR" >/dev/null
	ninja -C "$BUILD_DIR" >/dev/null
fi
BENCH="$BUILD_DIR/scripts/bench/bench_shards"
[[ -x "$BENCH" ]] || { echo "shards.sh: $BENCH not built" >&2; exit 1; }

# 4 shards of 785-byte records adding up to SIZE_GIB.
PARTS=4
RECORDS=$($PY -c "import math; print(math.ceil($SIZE_GIB * 2**30 / 785 / $PARTS))")
DIR="$BASE/nsplit-shards-bench-${SIZE_GIB}g"
if ((!KEEP)); then
	trap 'rm -rf "$DIR"' EXIT
fi
fstype=$(stat -f -c %T "$BASE")
if [[ "$fstype" == tmpfs || "$fstype" == ramfs ]]; then
	echo "shards.sh: $BASE is $fstype; give --dir on a real disk" >&2
	exit 1
fi
if [[ ! -f "$DIR/train-$((PARTS - 1))-of-$PARTS.nsl" ]]; then
	rm -rf "$DIR"
	mkdir -p "$DIR"
	echo "making $PARTS shards of $RECORDS records in $DIR ($fstype) ..." >&2
	"$BENCH" make "$DIR" "$PARTS" "$RECORDS"
fi
files=("$DIR"/train-*-of-$PARTS.nsl)
fio_files=$(IFS=:; echo "${files[*]}")
total=$(du -cb "${files[@]}" | tail -n 1 | cut -f1)

# The same page-cache state before each run: cold, or warm (every file read once). If the kernel
# refuses to drop caches, the cold cases run warm too, and the output says so.
cold_ok=1
reset_cache() { # cold|warm
	sync
	if [[ $1 == cold ]] && echo 3 >/proc/sys/vm/drop_caches 2>/dev/null; then
		return
	fi
	[[ $1 == cold ]] && cold_ok=0
	cat "${files[@]}" >/dev/null
}

# --invalidate=0: the page cache is this script's to set (fio would drop the files' pages).
run_fio() { # direct(0/1) cache -> GiB/s
	reset_cache "$2"
	fio --name=shards --filename="$fio_files" --file_service_type=sequential --ioengine=io_uring \
		--rw=read --bs="$BLOCK" --iodepth="$DEPTH" --direct="$1" --invalidate=0 --output-format=json 2>/dev/null |
		$PY -c 'import json, sys; r = json.load(sys.stdin)["jobs"][0]["read"]; print(r["bw_bytes"] / 2**30)'
}

# nsplit's GiB/s while streaming (begin_epoch to the last record: fio's runtime also leaves out its
# set-up), then with each reader's open and free counted.
run_nsplit() { # direct(0/1) cache -> "GiB/s GiB/s_with_open"
	local mode=()
	(($1)) || mode=(--buffered)
	reset_cache "$2"
	"$BENCH" read "${mode[@]}" --depth "$DEPTH" --block "$BLOCK" "${files[@]}" |
		$PY -c 'import json, sys; r = json.load(sys.stdin); print(r["gib_s"], r["gib_s_with_open"])'
}

results=$(mktemp)
trap 'rm -f "$results"; ((KEEP)) || rm -rf "$DIR"' EXIT
for spec in direct:1:cold buffered:0:cold buffered-warm:0:warm; do
	IFS=: read -r name direct cache <<<"$spec"
	for ((i = 0; i < REPS; i++)); do
		# Alternate who goes first so a drift in the disk's speed hits both alike.
		if ((i % 2 == 0)); then
			n=$(run_nsplit "$direct" "$cache"); f=$(run_fio "$direct" "$cache")
		else
			f=$(run_fio "$direct" "$cache"); n=$(run_nsplit "$direct" "$cache")
		fi
		printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$cache" ${n} "$f" >>"$results"
		echo "run $((i + 1))/$REPS $name: nsplit ${n% *} GiB/s (${n#* } with open), fio $f GiB/s" >&2
	done
done
((cold_ok)) || echo "shards.sh: drop_caches was refused (not root?): the cold cases ran warm" >&2

$PY - "$results" "$total" "$DEPTH" "$BLOCK" "$cold_ok" <<'PYEOF'
import json
import statistics
import sys

path, total, depth, block, cold_ok = sys.argv[1:6]
runs = {}
with open(path) as f:
    for line in f:
        name, cache, n, n_open, fi = line.split()
        if cache == "cold" and cold_ok != "1":
            cache = "warm (drop_caches refused)"
        runs.setdefault((name, cache), ([], [], []))
        runs[(name, cache)][0].append(float(n))
        runs[(name, cache)][1].append(float(fi))
        runs[(name, cache)][2].append(float(n_open))
print(f"shard set: {int(total) / 2**30:.2f} GiB in 4 files; depth {depth}, block {block} B")
print(f"{'case':14} {'nsplit GiB/s':>13} {'with open':>10} {'fio GiB/s':>10} {'vs_fio':>7}   "
      "(medians; runs nsplit / fio)")
rows = []
for (name, cache), (n_runs, f_runs, o_runs) in runs.items():
    n, fi, no = statistics.median(n_runs), statistics.median(f_runs), statistics.median(o_runs)
    rows.append({"bench": "shards", "case": name, "page_cache": cache, "nsplit_gib_s": round(n, 3),
                 "nsplit_gib_s_with_open": round(no, 3), "fio_gib_s": round(fi, 3), "vs_fio": round(n / fi, 3),
                 "vs_fio_with_open": round(no / fi, 3), "target": 0.9, "bytes": int(total),
                 "depth": int(depth), "block": int(block), "runs_nsplit": n_runs, "runs_fio": f_runs})
    print(f"{name:14} {n:13.2f} {no:10.2f} {fi:10.2f} {n / fi:7.2f}   "
          f"{' '.join(f'{v:.2f}' for v in n_runs)} / {' '.join(f'{v:.2f}' for v in f_runs)}")
for r in rows:
    print(f"target {r['case']}: vs_fio >= 0.9: {'met' if r['vs_fio'] >= 0.9 else 'MISSED'} ({r['vs_fio']})")
for r in rows:
    print(json.dumps(r))
PYEOF
