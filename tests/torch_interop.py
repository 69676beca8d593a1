# SPDX-License-Identifier: BSD-3-Clause
"""nsplit's saved weights mean the same network in PyTorch.

usage: torch_interop.py NSPLIT_BINARY [DATA_DIR]

For an MLP and a small CNN (covering conv, both poolings, dropout, gelu, tanh, sigmoid and a
dense that flattens its input): a short `nsplit train --save-weights`, then
  - the safetensors file loads strictly into scripts/torch_model.py's twin (names, shapes, F32,
    metadata "model");
  - torch's test accuracy equals `nsplit eval`'s to within MAX_SAMPLE_DIFF samples of 10,000:
    the two sum in different orders, so a test sample whose top two logits are within float
    rounding of each other may go either way; nothing else may differ;
  - `nsplit eval --dump-logits` gives the same logits as torch on the first LOGIT_SAMPLES test
    samples, within LOGIT_ATOL.
Exit 77 (skipped) without torch, unless CI=true, where that is a failure.
"""

import os
import re
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "scripts"))

DEFAULT_DATA = "/usr/share/datasets/fashion-mnist"
MODELS = [
    "mlp:784-512-256-10",
    "conv:8x3x3,relu,maxpool:2,conv:16x3x3,gelu,avgpool:2,dropout:0.25,"
    "dense:64,tanh,dense:32,sigmoid,dense:10",
]
TRAIN_ARGS = ["--epochs", "1", "--limit-samples", "6000", "--batch", "64", "--optimizer", "sgd",
              "--lr", "0.05", "--momentum", "0.9", "--seed", "7", "--no-progress", "--no-eval"]
MAX_SAMPLE_DIFF = 2
LOGIT_SAMPLES = 256
LOGIT_ATOL = 1e-4
ACC_RE = re.compile(r"test accuracy:\s*([0-9.]+)\s*\((\d+)/(\d+)\)")


def skip_or_fail(msg):
    if os.environ.get("CI", "").lower() == "true":
        print(f"FAIL: {msg} (CI=true: a missing facility is a failure)")
        sys.exit(1)
    print(f"SKIP: {msg}")
    sys.exit(77)


def run(cmd):
    print("$ " + " ".join(cmd), flush=True)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        print(p.stdout)
        raise RuntimeError(f"exit {p.returncode}: {' '.join(cmd)}")
    return p.stdout


def check_model(nsplit, data, text, tmp, tm, torch):
    errors = []
    weights = os.path.join(tmp, "w.safetensors")
    logits_path = os.path.join(tmp, "logits.f32")
    run([nsplit, "train", "--peers", "1", "--model", text, "--data", data,
         "--save-weights", weights] + TRAIN_ARGS)

    model, in_shape = tm.build(text)
    tm.load_safetensors_into(model, weights, text)
    x, y = tm.load_fashion_mnist(data, "test", in_shape)
    correct, logits = tm.accuracy(model, x, y)

    out = run([nsplit, "eval", "--model", text, "--weights", weights, "--data", data])
    m = ACC_RE.search(out)
    if not m:
        return [f"{text}: no 'test accuracy: A (N/T)' in nsplit eval output:\n{out}"]
    n_correct, n_total = int(m.group(2)), int(m.group(3))
    if n_total != len(y):
        errors.append(f"{text}: nsplit eval counted {n_total} test samples, torch {len(y)}")
    # Where the two may legitimately disagree: samples whose top-2 margin is tiny.
    top2 = np.sort(logits, axis=1)[:, -2:]
    near_ties = int((top2[:, 1] - top2[:, 0] < 1e-4).sum())
    print(f"{text}: nsplit {n_correct}/{n_total} ({m.group(1)}), torch {correct}/{len(y)} "
          f"({correct / len(y):.4f}), near ties in torch {near_ties}")
    if abs(n_correct - correct) > MAX_SAMPLE_DIFF:
        errors.append(f"{text}: nsplit eval {n_correct} correct, torch {correct}: "
                      f"more than {MAX_SAMPLE_DIFF} samples apart")

    run([nsplit, "eval", "--model", text, "--weights", weights, "--data", data,
         "--dump-logits", logits_path, "--limit", str(LOGIT_SAMPLES)])
    raw = np.fromfile(logits_path, dtype="<f4")
    classes = logits.shape[1]
    if raw.size != LOGIT_SAMPLES * classes:
        errors.append(f"{text}: --dump-logits wrote {raw.size} floats, "
                      f"expected {LOGIT_SAMPLES}x{classes}")
    else:
        ours = raw.reshape(LOGIT_SAMPLES, classes)
        ref = logits[:LOGIT_SAMPLES]
        diff = np.abs(ours - ref)
        worst = np.unravel_index(int(diff.argmax()), diff.shape)
        print(f"{text}: logits max |diff| {diff.max():.3g} at sample {worst[0]} class {worst[1]} "
              f"(nsplit {ours[worst]:.6f}, torch {ref[worst]:.6f}), max |logit| "
              f"{np.abs(ref).max():.3g}")
        if not np.isfinite(ours).all() or diff.max() > LOGIT_ATOL:
            errors.append(f"{text}: logits differ from torch by up to {diff.max():.3g} "
                          f"(allowed {LOGIT_ATOL})")
    return errors


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    nsplit = sys.argv[1]
    data = sys.argv[2] if len(sys.argv) > 2 else os.environ.get("NSPLIT_DATA", DEFAULT_DATA)
    try:
        import torch
    except ImportError as e:
        skip_or_fail(f"PyTorch not importable ({e}); install python3-torch")
    if not os.path.exists(os.path.join(data, "t10k-images-idx3-ubyte.gz")):
        skip_or_fail(f"Fashion-MNIST not in {data}; install dataset-fashion-mnist")
    import torch_model as tm

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    errors = []
    for text in MODELS:
        with tempfile.TemporaryDirectory(prefix="nsl-interop-") as tmp:
            try:
                errors += check_model(nsplit, data, text, tmp, tm, torch)
            except Exception as e:  # report every model, whatever broke
                errors.append(f"{text}: {e}")
    for e in errors:
        print("FAIL: " + e)
    print("torch interop: " + ("FAILED" if errors else "OK"))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
