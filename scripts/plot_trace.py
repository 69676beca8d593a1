#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Draw one batch of an nsplit --trace file: a row per peer, a box per instruction.

usage: plot_trace.py TRACE.json OUT.png [--round R] [--batch B]

Forward, backward and step are drawn in colour, receives (waiting) in grey, so the pipeline's
bubbles are the grey and the white. Rounds and batches count as in the trace (round from 1).
"""
import argparse
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLOURS = {"fwd": "#4c72b0", "bwd": "#dd8452", "wgrad": "#55a868", "step": "#1b5e20", "loss": "#c44e52",
           "load": "#8172b3"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trace")
    ap.add_argument("out")
    ap.add_argument("--round", type=int, default=2)
    ap.add_argument("--batch", type=int, default=5)
    a = ap.parse_args()
    events = json.load(open(a.trace))["traceEvents"]
    names = {e["tid"]: e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    spans = [e for e in events if e["ph"] == "X" and e["args"]["round"] == a.round and e["args"]["batch"] == a.batch]
    if not spans:
        sys.exit(f"plot_trace.py: no spans of round {a.round} batch {a.batch} in {a.trace}")
    t0 = min(e["ts"] for e in spans)
    t1 = max(e["ts"] + e["dur"] for e in spans)
    stage = {e["tid"]: e["args"]["stage"] for e in spans}
    tids = sorted((t for t in names if t in stage), key=lambda t: stage[t])
    fig, ax = plt.subplots(figsize=(10, 0.6 * len(tids) + 1.2))
    for row, tid in enumerate(tids):
        for e in (e for e in spans if e["tid"] == tid):
            kind = e["name"].split()[0]
            colour = COLOURS.get(kind, "#cccccc" if kind.startswith("recv") else "#999999")
            ax.broken_barh([((e["ts"] - t0) / 1e3, max(e["dur"], 1) / 1e3)], (row - 0.4, 0.8), facecolors=colour,
                           edgecolor="white", linewidth=0.3)
            if kind in ("fwd", "bwd") and e["dur"] > (t1 - t0) / 60:
                ax.text((e["ts"] - t0 + e["dur"] / 2) / 1e3, row, e["name"].split()[1], ha="center", va="center",
                        fontsize=6, color="white")
    ax.set_yticks(range(len(tids)))
    ax.set_yticklabels([f"stage {stage[t]} ({names[t]})" for t in tids])
    ax.invert_yaxis()
    ax.set_xlabel("ms")
    ax.set_title(f"round {a.round}, batch {a.batch}: forward blue, backward orange, weight gradients green, "
                 "waiting grey")
    fig.tight_layout()
    fig.savefig(a.out, dpi=120)
    print(f"plot_trace.py: {a.out}")


if __name__ == "__main__":
    main()
