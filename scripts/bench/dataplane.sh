#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# Throughput of nsplit links for messages of 4 KiB, 64 KiB, 1 MiB and 16 MiB, beside one core's
# memcpy bandwidth and a plain TCP loopback sender/receiver moving the same messages, and the
# round-trip time of a 4 KiB message beside TCP's, all in one run on this machine:
#   ring    nsplit link --ring: both peers in one process over a net_ring pair, a thread each
#   memif   nsplit link over net_memif, two processes: the server receives, the client sends
#   tcp     bench_tcp: a loopback sender and receiver (two threads), every byte read into a buffer
#   memcpy  bench_memcpy: one core copying the messages through 16 source and 16 destination
#           buffers, the footprint of nsplit link's default window of 16 (512 MiB at 16 MiB)
# Every transport runs one peer per CPU when the process may use two (memif: taskset per process;
# the others pin their own threads). nsplit runs with --no-verify (the link's CRC32C still holds);
# its figure is peer 0's, from its first send to the acknowledgement of its last message.
# memif runs in copy mode: the client's zero-copy mode corrupted chained frames until its bursts
# were cut to 4 frames, and since then it measured slower than copy mode at every size.
# BENCH_MEMIF_ZC=auto probes it (a stream and two ping-pongs, every byte checked) and uses it when
# every probe run is clean.
# Each case first runs once to find its rate, then BENCH_REPEAT times with a count of messages
# that moves at least 1 GiB and lasts about BENCH_SECONDS (at most 2 x BENCH_SECONDS when 1 GiB
# would take longer), in BENCH_REPEAT rounds over all cases, so one case's runs are far apart in
# time; the figure is the best of those runs (load only ever slows a run down).
# Round trips: BENCH_RTT_COUNT timed ones after 100 untimed, median and p99; the best median.
# Prints a table, the targets met or missed, then one JSON object per line and case. Fails only
# when a run fails, never for a missed target. Takes about 3 minutes on 2 cores.
#
# Environment: NSPLIT_BUILD (or NSPLIT_BUILD_DIR; default build), BENCH_SIZES ("4K 64K 1M 16M"),
# BENCH_REPEAT (3), BENCH_SECONDS (2), BENCH_RTT_COUNT (20000), BENCH_MEMIF_ZC (no: copy mode;
# auto: probe zero-copy as above), BENCH_MEMIF_MTU (1500; up to 9000, with memif buffers to
# match), BENCH_NO_BUILD (set: use the build folder as it is).
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$(pwd)
BUILD_DIR=${NSPLIT_BUILD:-${NSPLIT_BUILD_DIR:-build}}
SIZES=${BENCH_SIZES:-4K 64K 1M 16M}
REPEAT=${BENCH_REPEAT:-3}
SECS=${BENCH_SECONDS:-2}
RTT_COUNT=${BENCH_RTT_COUNT:-20000}
MEMIF_ZC=${BENCH_MEMIF_ZC:-no}
MEMIF_MTU=${BENCH_MEMIF_MTU:-1500}
RTT_SIZE=4K
PY=/usr/bin/python3

case "${1:-}" in
-h | --help) sed -n '4,/^set -euo/{/^set -euo/d;p}' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
"") ;;
*) echo "dataplane.sh: no arguments but --help; settings come from the environment (see --help)" >&2; exit 2 ;;
esac
[[ "$REPEAT" =~ ^[1-9][0-9]*$ && "$SECS" =~ ^[1-9][0-9]*$ && "$RTT_COUNT" =~ ^[1-9][0-9]*$ ]] || {
	echo "dataplane.sh: BENCH_REPEAT, BENCH_SECONDS and BENCH_RTT_COUNT take whole numbers from 1" >&2
	exit 2
}
[[ "$MEMIF_MTU" =~ ^[0-9]+$ ]] && ((MEMIF_MTU >= 576 && MEMIF_MTU <= 9000)) || {
	echo "dataplane.sh: BENCH_MEMIF_MTU is an IP MTU from 576 to 9000" >&2
	exit 2
}
# memif's buffers are 2 KiB unless told: a bigger MTU needs buffers that hold a whole frame.
MEMIF_PORT_ARGS=""
((MEMIF_MTU <= 1500)) || MEMIF_PORT_ARGS=",bsize=$(((MEMIF_MTU + 14 + 1023) / 1024 * 1024))"
[[ "$MEMIF_ZC" == auto || "$MEMIF_ZC" == no ]] || {
	echo "dataplane.sh: BENCH_MEMIF_ZC is auto or no" >&2
	exit 2
}

# shellcheck source=scripts/bench/build.sh
source "$ROOT/scripts/bench/build.sh"
nsl_bench_setup "$ROOT" "$BUILD_DIR" dataplane.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/nsl-bench.XXXXXX")
PFX=nsl-bench-$$ # every EAL file prefix of this run starts so
cleanup() {
	rm -rf "$tmp" /var/run/dpdk/"$PFX"-* "${XDG_RUNTIME_DIR:-/nonexistent}"/dpdk/"$PFX"-*
}
trap cleanup EXIT

NSPLIT="$BUILD_DIR/nsplit"
find_bench() {
	local p
	for p in "$BUILD_DIR/scripts/bench/$1" "$BUILD_DIR/$1"; do
		[[ -x "$p" ]] && echo "$p" && return 0
	done
	echo "dataplane.sh: $1 not built in $BUILD_DIR (is subdir('scripts/bench') in meson.build?)" >&2
	exit 1
}
TCP=$(find_bench bench_tcp)
MEMCPY=$(find_bench bench_memcpy)
[[ -x "$NSPLIT" ]] || { echo "dataplane.sh: $NSPLIT not built" >&2; exit 1; }
"$NSPLIT" link --help | grep -q -- --pingpong ||
	{ echo "dataplane.sh: $NSPLIT link has no --pingpong (an old build?)" >&2; exit 1; }

# The two CPUs the peers get (memif: one process on each); on one CPU they share it.
read -r CPU_A CPU_B < <($PY -c 'import os; c = sorted(os.sched_getaffinity(0)); print(c[0], c[1] if len(c) > 1 else "")')
PIN_A=() PIN_B=()
if [[ -n "$CPU_B" ]]; then
	PIN_A=(taskset -c "$CPU_A")
	PIN_B=(taskset -c "$CPU_B")
fi

bytes_of() { # 4K -> 4096
	local n=${1%[KkMmGg]}
	case "$1" in
	*[Kk]) echo $((n << 10)) ;;
	*[Mm]) echo $((n << 20)) ;;
	*[Gg]) echo $((n << 30)) ;;
	*) echo "$n" ;;
	esac
}

# A failed run ends the script: what ran, then the tail of its output.
run_failed() { # what log...
	local what=$1 f
	shift
	echo "dataplane.sh: failed: $what" >&2
	for f in "$@"; do
		[[ -f "$f" ]] && { echo "--- $(basename "$f"):" >&2; tail -n 15 "$f" >&2; }
	done
	exit 1
}

json_field() { # field line -> value
	sed -n "s/.*\"$1\":\([0-9.eE+-]*\).*/\1/p" <<<"$2"
}

# ---- one run of each transport; each prints its JSON line (nsplit: peer 0's) ----
# They run in command substitutions, so a run's id is its subshell's pid ($BASHPID).
run_ring() { # size count [nsplit link options]
	local size=$1 count=$2 log="$tmp/ring.log"
	shift 2
	"$NSPLIT" link --ring --size "$size" --count "$count" --json "$@" -- \
		--file-prefix "$PFX-ring-$BASHPID" >"$log" 2>&1 ||
		run_failed "nsplit link --ring --size $size --count $count $*" "$log"
	grep '^{"peer":0,' "$log"
}

MEMIF_CLIENT_ARGS=""
MEMIF_CLIENT_EAL=()
# One memif run: the server (peer 1, CPU B) and the client (peer 0, CPU A); sets crc and src to
# their exit statuses. It runs in a subshell of its own (run_memif's caller's command
# substitution): server_pid is that subshell's, and the server is killed with it, whatever ends
# it. taskset execs nsplit, so $! is nsplit itself.
memif_attempt() { # size count [nsplit link options]
	local size=$1 count=$2 id=$BASHPID-$RANDOM slog="$tmp/memif-server.log" clog="$tmp/memif-client.log"
	local sock="$tmp/memif-$id.sock"
	shift 2
	local common=(--size "$size" --count "$count" --mtu "$MEMIF_MTU" --deadline 300 --peer-timeout 20000 --json "$@")
	crc=0 src=0 server_pid=""
	trap 'kill "${server_pid:-}" 2>/dev/null || true' EXIT
	"${PIN_B[@]}" "$NSPLIT" link --self 1 --port "net_memif0,role=server,socket=$sock,socket-abstract=no$MEMIF_PORT_ARGS" \
		"${common[@]}" -- --file-prefix "$PFX-memif-$id-s" >"$slog" 2>&1 &
	server_pid=$!
	# The server makes the socket file; the client would otherwise retry on its own schedule.
	for _ in $(seq 200); do
		[[ -S "$sock" ]] && break
		kill -0 "$server_pid" 2>/dev/null || break
		sleep 0.05
	done
	[[ -S "$sock" ]] || run_failed "the memif server made no socket $sock in 10 s" "$slog"
	"${PIN_A[@]}" "$NSPLIT" link --self 0 \
		--port "net_memif0,role=client,socket=$sock,socket-abstract=no$MEMIF_PORT_ARGS$MEMIF_CLIENT_ARGS" "${common[@]}" -- \
		--file-prefix "$PFX-memif-$id-c" "${MEMIF_CLIENT_EAL[@]}" >"$clog" 2>&1 || crc=$?
	# A failed client leaves the server waiting for messages that will never come.
	((crc == 0)) || kill "$server_pid" 2>/dev/null || true
	wait "$server_pid" || src=$?
	server_pid=""
	rm -rf "$sock" /var/run/dpdk/"$PFX-memif-$id"-*
}

# A memif run; a peer that fails (a crash included) fails the benchmark.
run_memif() { # size count [nsplit link options]
	local crc src
	memif_attempt "$@"
	((crc == 0 && src == 0)) ||
		run_failed "nsplit link over memif --size $1 --count $2 ${*:3} (client exit $crc, server exit $src)" \
			"$tmp/memif-client.log" "$tmp/memif-server.log"
	grep '^{"peer":0,' "$tmp/memif-client.log"
}

run_tcp() { # size count [pingpong]
	local mode=${3:-stream} log="$tmp/tcp.log" out
	out=$("$TCP" "$mode" --size "$1" --count "$2" 2>"$log") || run_failed "bench_tcp $mode --size $1 --count $2" "$log"
	echo "$out"
}

run_memcpy() { # size count
	local log="$tmp/memcpy.log" out
	out=$("$MEMCPY" --size "$1" --count "$2" 2>"$log") || run_failed "bench_memcpy --size $1 --count $2" "$log"
	echo "$out"
}

# Messages for a run at gbit Gbit/s: about SECS seconds, at least 1 GiB unless that takes over
# 2 x SECS seconds, and at least 16 (nsplit link's window).
count_for() { # size_bytes gbit
	awk -v s="$1" -v g="$2" -v t="$SECS" 'BEGIN {
		r = g * 1e9 / 8; b = r * t; gib = 2 ^ 30; cap = r * 2 * t
		if (b < gib) b = gib < cap ? gib : cap
		n = int(b / s + 0.999); if (n < 16) n = 16; print n }'
}

# ---- memif zero-copy, only when asked for and checked runs show that it works ----
memif_mode=copy
memif_why="BENCH_MEMIF_ZC=no"
probe_run() { # memif_attempt arguments: one attempt, clean or not, said on stderr
	local crc=none src=none
	rm -f "$tmp/probe"
	(attempt=probe && memif_attempt "$@" && echo "$crc $src" >"$tmp/probe") 2>&1 | sed 's/^/  probe: /' >&2
	[[ ! -f "$tmp/probe" ]] || read -r crc src <"$tmp/probe"
	echo "  probe: --size $1 --count $2 ${*:3}: client exit $crc, server exit $src;" \
		"$(grep -ho 'crc failures [0-9]*' "$tmp/memif-client.log" "$tmp/memif-server.log" 2>/dev/null | paste -sd, -)" >&2
	[[ "$crc $src" == "0 0" ]] && ! grep -Eq 'crc failures [1-9]' "$tmp/memif-client.log" "$tmp/memif-server.log" 2>/dev/null
}
memif_probe() {
	probe_run 1M 32 --deadline 60 && probe_run 4K 300 --pingpong --deadline 60 &&
		probe_run 4K 300 --pingpong --deadline 60
}
if [[ "$MEMIF_ZC" == auto ]]; then
	echo "probing memif zero-copy: 32 messages of 1 MiB, then 2 x 300 round trips, every byte checked ..." >&2
	MEMIF_CLIENT_ARGS=",zero-copy=yes"
	MEMIF_CLIENT_EAL=(--single-file-segments)
	if memif_probe; then
		memif_mode=zero-copy
		memif_why="every probe run delivered every byte and exited cleanly"
	else
		MEMIF_CLIENT_ARGS=""
		MEMIF_CLIENT_EAL=()
		memif_why="a zero-copy probe run failed or saw CRC failures"
	fi
fi
echo "memif: $memif_mode mode ($memif_why)" >&2

# ---- throughput: per size, a pilot run per transport for its rate, then REPEAT runs each ----
model_name=$(awk -F: '/^model name/ {sub(/^ /, "", $2); print $2; exit}' /proc/cpuinfo)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
t_start=$(date +%s)
results="$tmp/results.tsv" # transport mode msg_bytes messages value(gbit_s or rtt_us) rtt_p99_us
run_one() { # transport size count -> the run's JSON line
	case "$1" in
	ring) run_ring "$2" "$3" --no-verify ;;
	memif) run_memif "$2" "$3" --no-verify ;;
	tcp) run_tcp "$2" "$3" ;;
	memcpy) run_memcpy "$2" "$3" ;;
	esac
}
TRANSPORTS="memcpy tcp ring memif"
# Transports take turns, so that a change in the machine's load meets them alike, and the runs of
# one case are spread over the whole sweep (round r runs every case once): this machine goes
# through phases of tens of seconds in which memif runs at a third of its rate (two runs a few
# seconds apart measured 66 and 25 Gbit/s), and back-to-back runs all landed in one.
declare -A count=() rate=() # per transport and size: messages per run, best Gbit/s
for size in $SIZES; do
	sb=$(bytes_of "$size")
	for t in $TRANSPORTS; do
		pilot=$(((128 << 20) / sb < 8 ? 8 : (128 << 20) / sb))
		line=$(run_one "$t" "$size" "$pilot")
		rate[$t/$size]=$(json_field gbit_s "$line")
	done
done
for ((r = 1; r <= REPEAT; r++)); do
	for size in $SIZES; do
		sb=$(bytes_of "$size")
		for t in $TRANSPORTS; do
			k=$t/$size
			# Sized from the best rate so far: the pilot's start-up weighs on it more than on a full run.
			count[$k]=$(count_for "$sb" "${rate[$k]}")
			line=$(run_one "$t" "$size" "${count[$k]}")
			g=$(json_field gbit_s "$line")
			s=$(json_field seconds "$line")
			rate[$k]=$(awk -v a="${rate[$k]}" -v b="$g" 'BEGIN { print (a > b ? a : b) }')
			printf '%s\tstream\t%s\t%s\t%s\t\n' "$t" "$sb" "${count[$k]}" "$g" >>"$results"
			printf 'run %d/%d %-6s %4s: %8.2f Gbit/s, %s messages in %.2f s\n' "$r" "$REPEAT" "$t" "$size" "$g" \
				"${count[$k]}" "$s" >&2
		done
	done
done

# ---- round trips of a 4 KiB message ----
rb=$(bytes_of "$RTT_SIZE")
for ((r = 1; r <= REPEAT; r++)); do
	for t in tcp ring memif; do
		case "$t" in
		tcp) line=$(run_tcp "$RTT_SIZE" "$RTT_COUNT" pingpong) ;;
		ring) line=$(run_ring "$RTT_SIZE" "$RTT_COUNT" --pingpong --no-verify) ;;
		memif) line=$(run_memif "$RTT_SIZE" "$RTT_COUNT" --pingpong --no-verify) ;;
		esac
		m=$(json_field rtt_us "$line")
		p=$(json_field rtt_p99_us "$line")
		printf '%s\trtt\t%s\t%s\t%s\t%s\n' "$t" "$rb" "$RTT_COUNT" "$m" "$p" >>"$results"
		printf 'run %d/%d %-6s %4s round trip: median %.2f us, p99 %.2f us\n' "$r" "$REPEAT" "$t" "$RTT_SIZE" "$m" "$p" >&2
	done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
elapsed=$(($(date +%s) - t_start))

$PY - "$results" "$memif_mode mode ($memif_why), MTU $MEMIF_MTU" "$model_name" "$(nproc)" "${CPU_A},${CPU_B}" "$load_before" "$load_after" \
	"$elapsed" "$REPEAT" <<'PYEOF'
import json
import sys

path, memif_mode, model, ncpu, cpus, load_before, load_after, elapsed, repeat = sys.argv[1:10]
runs = {}
with open(path) as f:
    for line in f:
        t, mode, size, count, value, p99 = line.rstrip("\n").split("\t")
        runs.setdefault((t, mode, int(size)), []).append((float(value), float(p99) if p99 else None, int(count)))


def best(t, mode, size):
    r = runs.get((t, mode, size))
    if r is None:
        return None
    # Throughput: the highest; round trip: the lowest median, with its own p99 and count.
    return (max if mode == "stream" else min)(r, key=lambda v: v[0])


def ratio(a, b):
    return round(a / b, 3) if a and b else None


def size_name(b):
    for unit, div in (("M", 1 << 20), ("K", 1 << 10)):
        if b >= div and b % div == 0:
            return f"{b // div}{unit}"
    return str(b)


order = ["memcpy", "tcp", "ring", "memif"]
memif_fields = {"memif_mode": memif_mode.split()[0], "memif_mtu": int(memif_mode.rsplit("MTU ", 1)[1])}
sizes = sorted({k[2] for k in runs if k[1] == "stream"})
rows = []
for size in sizes:
    mc, tcp = best("memcpy", "stream", size), best("tcp", "stream", size)
    for t in order:
        b = best(t, "stream", size)
        if b is None:
            continue
        row = {"bench": "dataplane", "transport": t, "mode": "stream", "msg_bytes": size,
               "gbit_s": round(b[0], 3), "vs_memcpy": ratio(b[0], mc and mc[0]),
               "vs_tcp": ratio(b[0], tcp and tcp[0]), "messages": b[2],
               "runs_gbit_s": [round(v[0], 3) for v in runs[(t, "stream", size)]]}
        if t == "memif":
            row.update(memif_fields)
        rows.append(row)
rtt_rows = []
rtt_sizes = sorted({k[2] for k in runs if k[1] == "rtt"})
for size in rtt_sizes:
    tcp = best("tcp", "rtt", size)
    for t in ("tcp", "ring", "memif"):
        b = best(t, "rtt", size)
        if b is None:
            continue
        row = {"bench": "dataplane", "transport": t, "mode": "rtt", "msg_bytes": size,
               "rtt_us": round(b[0], 3), "rtt_p99_us": round(b[1], 3), "vs_memcpy": None,
               "vs_tcp": ratio(b[0], tcp and tcp[0]), "round_trips": b[2],
               "runs_rtt_us": [round(v[0], 3) for v in runs[(t, "rtt", size)]]}
        if t == "memif":
            row.update(memif_fields)
        rtt_rows.append(row)

print(f"CPU: {model}, {ncpu} cores; peers on CPUs {cpus}; best of {repeat} runs per case; memif in "
      f"{memif_mode}; load average {load_before} before, {load_after} after; {elapsed} s of runs")


def cell(v, width, fmt):
    return ("-" if v is None else format(v, fmt)).rjust(width)


hdr = f"{'transport':10}{'size':>6}{'Gbit/s':>10}{'vs_memcpy':>11}{'vs_tcp':>8}   runs (Gbit/s)"
print(hdr)
print("-" * len(hdr))
for r in rows:
    print(f"{r['transport']:10}{size_name(r['msg_bytes']):>6}{cell(r['gbit_s'], 10, '.2f')}"
          f"{cell(r['vs_memcpy'], 11, '.3f')}{cell(r['vs_tcp'], 8, '.2f')}   "
          + " ".join(f"{v:.2f}" for v in r["runs_gbit_s"]))
if rtt_rows:
    hdr = f"{'round trip':10}{'size':>6}{'median us':>10}{'p99 us':>11}{'vs_tcp':>8}   runs (median us)"
    print()
    print(hdr)
    print("-" * len(hdr))
    for r in rtt_rows:
        print(f"{r['transport']:10}{size_name(r['msg_bytes']):>6}{cell(r['rtt_us'], 10, '.2f')}"
              f"{cell(r['rtt_p99_us'], 11, '.2f')}{cell(r['vs_tcp'], 8, '.2f')}   "
              + " ".join(f"{v:.2f}" for v in r["runs_rtt_us"]))


def find(rs, t, size):
    return next((r for r in rs if r["transport"] == t and r["msg_bytes"] == size), None)


targets = [
    ("memif 16M: vs_memcpy >= 0.40", find(rows, "memif", 16 << 20), "vs_memcpy", lambda v: v >= 0.40),
    ("memif 16M: vs_tcp >= 1.5", find(rows, "memif", 16 << 20), "vs_tcp", lambda v: v >= 1.5),
    ("round trip 4K memif: vs_tcp <= 0.5", find(rtt_rows, "memif", 4096), "vs_tcp", lambda v: v <= 0.5),
    ("round trip 4K ring: vs_tcp <= 0.5", find(rtt_rows, "ring", 4096), "vs_tcp", lambda v: v <= 0.5),
]
print()
for name, row, key, ok in targets:
    v = row and row[key]
    verdict = "n/a" if v is None else ("PASS" if ok(v) else "MISS")
    print(f"target {name}: {verdict} ({v})")
for r in rows + rtt_rows:
    print(json.dumps(r))
PYEOF
