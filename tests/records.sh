#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# usage: records.sh NSPLIT_BINARY [DATA_DIR]
# What an N-split job records: --metrics has a round line per round (loss, accuracy, rate), an
# epoch line after every N rounds and a final line; --trace is a Chrome trace with one track
# per peer and one span per instruction run (checked against --dump-schedule's programs).
set -euo pipefail

NSPLIT=$(realpath "${1:?usage: records.sh NSPLIT_BINARY [DATA_DIR]}")
DATA=${2:-${NSPLIT_DATA:-/usr/share/datasets/fashion-mnist}}
HERE=$(dirname "$0")
# shellcheck source=tests/need_data.sh
source "$HERE/need_data.sh"
nsl_need_data "$DATA"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/nsl-records.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

OPTS=(--peers 3 --data "$DATA" --epochs 2 --limit-samples 1920 --batch 64 --micro-batch 16 --schedule 1f1b
	--threads 1 --no-progress)
"$NSPLIT" train "${OPTS[@]}" --dump-schedule >"$tmp/schedule.txt"
"$NSPLIT" train "${OPTS[@]}" --metrics "$tmp/m.jsonl" --trace "$tmp/t.json" >"$tmp/run.log" 2>&1 || {
	cat "$tmp/run.log"
	exit 1
}
/usr/bin/python3 - "$tmp/m.jsonl" "$tmp/t.json" "$tmp/schedule.txt" <<'PY'
import json, re, sys
from collections import Counter

lines = [json.loads(l) for l in open(sys.argv[1])]
events = [l["event"] for l in lines]
want = (["round"] * 3 + ["epoch"]) * 2 + ["final"]
assert events == want, f"metrics events {events}, want {want}"
for l in lines:
    assert 0 < l["loss"] < 5 and 0 <= l["train_acc"] <= 1 and l["samples_per_s"] > 0, l
assert [l["round"] for l in lines if l["event"] == "round"] == [1, 2, 3, 4, 5, 6]
assert lines[-1]["test_acc"] is not None
print(f"ok: metrics: {len(lines)} lines: {' '.join(events)}")

trace = json.load(open(sys.argv[2]))["traceEvents"]
names = {e["tid"]: e["args"]["name"] for e in trace if e["ph"] == "M" and e["name"] == "thread_name"}
assert names == {0: "peer 0", 1: "peer 1", 2: "peer 2"}, names
spans = [e for e in trace if e["ph"] == "X"]
# Each stage's program, from --dump-schedule: "op:micro" or "op" tokens per stage.
programs, stage = {}, None
for line in open(sys.argv[3]):
    m = re.match(r"peer \d+, stage (\d+)", line)
    if m:
        stage = int(m.group(1))
        programs[stage] = 0
    elif stage is not None and line.startswith("  "):
        for tok in line.split():
            m = re.match(r"([a-z_]+)(?::(\d+)(?:-(\d+))?)?", tok)
            programs[stage] += int(m.group(3)) - int(m.group(2)) + 1 if m.group(3) else 1
per_stage = Counter(e["args"]["stage"] for e in spans if e["name"] not in ("swap", "checkpoint"))
batches, rounds = 1920 // 3 // 64, 6
for s, n in programs.items():
    assert per_stage[s] == n * batches * rounds, f"stage {s}: {per_stage[s]} spans, want {n} x {batches} x {rounds}"
swaps = sum(1 for e in spans if e["name"] == "swap")
assert swaps == 3 * (rounds - 1), swaps
assert all(e["dur"] >= 0 for e in spans)
print(f"ok: trace: {len(spans)} spans on 3 tracks, one per instruction run ({dict(programs)} per batch), {swaps} swaps")
PY
