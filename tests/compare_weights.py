#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Compare two safetensors files of f32 tensors: same names and shapes, max |a - b| <= tolerance.

usage: compare_weights.py A B [TOLERANCE]   (default 0: bitwise)
Prints the largest difference and the tensor it is in; exits 1 when over the tolerance.
"""
import json
import struct
import sys

import numpy as np


def load(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    body = raw[8 + n:]
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        if t["dtype"] != "F32":
            sys.exit(f"{path}: {name} is {t['dtype']}, not F32")
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(body[a:b], dtype=np.float32).reshape(t["shape"])
    return out


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    tol = float(sys.argv[3]) if len(sys.argv) == 4 else 0.0
    a, b = load(sys.argv[1]), load(sys.argv[2])
    if sorted(a) != sorted(b):
        sys.exit(f"different tensors: {sorted(set(a) ^ set(b))}")
    worst, where, bitwise = 0.0, "", True
    for name in sorted(a):
        if a[name].shape != b[name].shape:
            sys.exit(f"{name}: shape {a[name].shape} against {b[name].shape}")
        bitwise &= a[name].tobytes() == b[name].tobytes()
        d = float(np.max(np.abs(a[name].astype(np.float64) - b[name].astype(np.float64)))) if a[name].size else 0.0
        if d > worst or not where:
            worst, where = d, name
    print(f"max |difference| {worst:.3g} (in {where}){', bitwise equal' if bitwise else ''}; tolerance {tol:g}")
    sys.exit(0 if worst <= tol else 1)


if __name__ == "__main__":
    main()
