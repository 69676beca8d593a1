# SPDX-License-Identifier: BSD-3-Clause
"""The PyTorch twin of an nsplit model, and Fashion-MNIST from its IDX files.

Used by the interop tests and the benchmarks; needs numpy, and torch for the model parts.

    model, in_shape = build("conv:32x3x3,relu,maxpool:2,flatten,dense:10")
    load_safetensors_into(model, "w.safetensors", "conv:32x3x3,...")
    x, y = load_fashion_mnist("/usr/share/datasets/fashion-mnist", "test", in_shape)

Model grammar (as nsplit's): `mlp:784-512-256-10` is `dense:512,relu,dense:256,relu,dense:10`
on 784 inputs; otherwise a comma list of conv:OxKHxKW (or conv:OxK), maxpool:K, avgpool:K,
relu, tanh, sigmoid, gelu (erf), flatten, dropout:P, dense:N. Every layer, with or without
parameters, is a child of an nn.Sequential named layer<i>, so nsplit's safetensors names
(layer<i>.weight, layer<i>.bias) are the state-dict keys. Input: 1x28x28 if the model has a
conv or pooling layer, else 784 features, pixels scaled to [0, 1].
"""

import gzip
import json
import os
import struct
from collections import OrderedDict

import numpy as np

IMAGE_SIDE = 28
SPATIAL_KINDS = ("conv", "maxpool", "avgpool")


class ModelSyntaxError(ValueError):
    pass


def parse(text):
    """Model text -> (list of (kind, args) tuples, input shape tuple)."""
    text = text.strip()
    if text.startswith("mlp:"):
        try:
            dims = [int(d) for d in text[4:].split("-")]
        except ValueError:
            raise ModelSyntaxError(f"model '{text}': mlp wants integer sizes like mlp:784-512-10")
        if len(dims) < 2 or min(dims) <= 0:
            raise ModelSyntaxError(f"model '{text}': mlp wants at least an input and an output size")
        layers = []
        for i, d in enumerate(dims[1:]):
            if i:
                layers.append(("relu", ()))
            layers.append(("dense", (d,)))
        return layers, (dims[0],)

    layers = []
    for item in text.split(","):
        item = item.strip()
        kind, _, arg = item.partition(":")
        try:
            if kind == "conv":
                parts = [int(v) for v in arg.split("x")]
                if len(parts) == 2:
                    parts.append(parts[1])
                if len(parts) != 3:
                    raise ValueError
                layers.append(("conv", tuple(parts)))
            elif kind in ("maxpool", "avgpool"):
                layers.append((kind, (int(arg),)))
            elif kind == "dense":
                layers.append(("dense", (int(arg),)))
            elif kind == "dropout":
                layers.append(("dropout", (float(arg),)))
            elif kind in ("relu", "tanh", "sigmoid", "gelu", "flatten") and not arg:
                layers.append((kind, ()))
            else:
                raise ValueError
        except ValueError:
            raise ModelSyntaxError(f"model '{text}': cannot read layer '{item}'")
    if not layers:
        raise ModelSyntaxError("empty model")
    spatial = any(k in SPATIAL_KINDS for k, _ in layers)
    return layers, ((1, IMAGE_SIDE, IMAGE_SIDE) if spatial else (IMAGE_SIDE * IMAGE_SIDE,))


def layer_shapes(text):
    """[(kind, args, in_shape, out_shape, macs_per_sample)] without needing torch."""
    layers, shape = parse(text)
    out = []
    for kind, args in layers:
        in_shape = shape
        macs = 0
        if kind == "conv":
            if len(shape) != 3:
                raise ModelSyntaxError(f"model '{text}': conv needs a CxHxW input, has {shape}")
            o, kh, kw = args
            c, h, w = shape
            shape = (o, h - kh + 1, w - kw + 1)
            if min(shape) <= 0:
                raise ModelSyntaxError(f"model '{text}': conv kernel larger than its input")
            macs = o * shape[1] * shape[2] * c * kh * kw
        elif kind in ("maxpool", "avgpool"):
            (k,) = args
            c, h, w = shape
            shape = (c, h // k, w // k)
        elif kind == "flatten":
            shape = (int(np.prod(shape)),)
        elif kind == "dense":
            n_in = int(np.prod(shape))
            shape = (args[0],)
            macs = n_in * args[0]
        out.append((kind, args, in_shape, shape, macs))
    return out


def build(text):
    """Model text -> (torch.nn.Sequential with children layer0.., input shape per sample)."""
    import torch
    from torch import nn

    class FlattenLinear(nn.Linear):
        """nn.Linear that flattens a CxHxW input, as nsplit's dense does; same state dict."""

        def forward(self, x):
            return super().forward(torch.flatten(x, 1))

    _, in_shape = parse(text)
    mods = OrderedDict()
    for i, (kind, args, shp_in, shp_out, _) in enumerate(layer_shapes(text)):
        if kind == "conv":
            m = nn.Conv2d(shp_in[0], args[0], (args[1], args[2]))
        elif kind == "maxpool":
            m = nn.MaxPool2d(args[0])
        elif kind == "avgpool":
            m = nn.AvgPool2d(args[0])
        elif kind == "dense":
            n_in = int(np.prod(shp_in))
            m = nn.Linear(n_in, args[0]) if len(shp_in) == 1 else FlattenLinear(n_in, args[0])
        elif kind == "relu":
            m = nn.ReLU()
        elif kind == "tanh":
            m = nn.Tanh()
        elif kind == "sigmoid":
            m = nn.Sigmoid()
        elif kind == "gelu":
            m = nn.GELU()
        elif kind == "flatten":
            m = nn.Flatten()
        elif kind == "dropout":
            m = nn.Dropout(args[0])
        else:
            raise ModelSyntaxError(f"unknown layer kind {kind}")
        mods[f"layer{i}"] = m
    return nn.Sequential(mods), in_shape


def training_macs(text):
    """(forward MACs, backward MACs) per sample; the first parameter layer computes no input
    gradient, so its backward is the weight gradient only."""
    fwd = bwd = 0
    first = True
    for kind, _, _, _, macs in layer_shapes(text):
        if not macs:
            continue
        fwd += macs
        bwd += macs if first else 2 * macs
        first = False
    return fwd, bwd


# ---- safetensors (the format is a u64 header size, a JSON header, then raw data) ----

_ST_DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I64": np.int64,
              "I32": np.int32, "U8": np.uint8}


def read_safetensors(path):
    """path -> (OrderedDict name -> numpy array, metadata dict). Checks every offset."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError(f"{path}: too short for safetensors")
    (hlen,) = struct.unpack("<Q", blob[:8])
    if 8 + hlen > len(blob):
        raise ValueError(f"{path}: header length {hlen} beyond the file")
    header = json.loads(blob[8:8 + hlen].decode("utf-8"))
    data = memoryview(blob)[8 + hlen:]
    meta = header.pop("__metadata__", {}) or {}
    tensors = OrderedDict()
    for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        dt = _ST_DTYPES.get(info["dtype"])
        if dt is None:
            raise ValueError(f"{path}: {name}: dtype {info['dtype']} not supported")
        begin, end = info["data_offsets"]
        shape = tuple(info["shape"])
        want = int(np.prod(shape, dtype=np.int64)) * np.dtype(dt).itemsize
        if not (0 <= begin <= end <= len(data)) or end - begin != want:
            raise ValueError(f"{path}: {name}: offsets {begin}..{end} do not fit shape {shape}")
        arr = np.frombuffer(data[begin:end], dtype=np.dtype(dt).newbyteorder("<"))
        tensors[name] = arr.reshape(shape).astype(dt, copy=True)
    return tensors, meta


def load_safetensors_into(model, path, text=None):
    """Loads nsplit's weights into model (strict). If text is given, the file's metadata
    "model" must name the same layers. Returns the metadata."""
    import torch

    tensors, meta = read_safetensors(path)
    # nsplit records the canonical layer list; the shorthand mlp:784-... names the same layers.
    if text is not None and (meta.get("model") is None or parse(meta["model"])[0] != parse(text)[0]):
        raise ValueError(f"{path}: metadata model {meta.get('model')!r}, expected {text!r}")
    for name, arr in tensors.items():
        if arr.dtype != np.float32:
            raise ValueError(f"{path}: {name} is {arr.dtype}, nsplit writes F32")
    state = OrderedDict((k, torch.from_numpy(v)) for k, v in tensors.items())
    model.load_state_dict(state, strict=True)
    return meta


# ---- Fashion-MNIST IDX files ----

def _read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        blob = f.read()
    magic, = struct.unpack(">I", blob[:4])
    if magic >> 8 != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file (magic {magic:#x})")
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, blob[4:4 + 4 * ndim])
    arr = np.frombuffer(blob, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise ValueError(f"{path}: {arr.size} bytes of data for dims {dims}")
    return arr.reshape(dims)


def _idx_path(data_dir, stem):
    for name in (stem + ".gz", stem):
        p = os.path.join(data_dir, name)
        if os.path.exists(p):
            return p
    raise FileNotFoundError(f"{data_dir}: no {stem}(.gz)")


def load_fashion_mnist(data_dir, split="test", in_shape=(784,), limit=None):
    """-> (x float32 [N, *in_shape] scaled x/255, y int64 [N]) for split 'train' or 'test'."""
    prefix = {"train": "train", "test": "t10k"}[split]
    images = _read_idx(_idx_path(data_dir, f"{prefix}-images-idx3-ubyte"))
    labels = _read_idx(_idx_path(data_dir, f"{prefix}-labels-idx1-ubyte"))
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{data_dir}: {images.shape[0]} {split} images, {labels.shape[0]} labels")
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    x = (images.astype(np.float32) / np.float32(255.0)).reshape((images.shape[0],) + tuple(in_shape))
    return x, labels.astype(np.int64)


def accuracy(model, x, y, batch=1000):
    """-> (correct count, logits float32 numpy [N, classes]) in eval mode."""
    import torch

    model.eval()
    outs = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            outs.append(model(torch.from_numpy(x[i:i + batch])).numpy())
    logits = np.concatenate(outs)
    return int((logits.argmax(1) == y).sum()), logits
