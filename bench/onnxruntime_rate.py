#!/usr/bin/env python3
"""Images per second of onnxruntime (from PyPI) on an image folder, for comparison with
aldente's in-process inference (bench/model_throughput.sh). Not part of the product.

    onnxruntime_rate.py MODEL.onnx FOLDER [--threads 2] [--batch 256]

Decodes every image under FOLDER first (not timed), scales pixels to 0..1, NCHW, at the
model's input size, then times session.run over all of them and prints one line:
    onnxruntime images=N seconds=S rate=R
"""
import argparse, os, sys, time

import numpy as np
import onnxruntime as ort
from PIL import Image

p = argparse.ArgumentParser()
p.add_argument("model")
p.add_argument("folder")
p.add_argument("--threads", type=int, default=2)
p.add_argument("--batch", type=int, default=256)
a = p.parse_args()

opts = ort.SessionOptions()
opts.intra_op_num_threads = a.threads
opts.inter_op_num_threads = 1
session = ort.InferenceSession(a.model, opts, providers=["CPUExecutionProvider"])
inp = session.get_inputs()[0]
_, c, h, w = inp.shape
files = sorted(
    os.path.join(d, f)
    for d, _, fs in os.walk(a.folder)
    for f in fs
    if f.lower().endswith((".jpg", ".jpeg", ".png"))
)
x = np.stack(
    [np.asarray(Image.open(f).convert("RGB").resize((w, h)), dtype=np.float32) / 255.0 for f in files]
).transpose(0, 3, 1, 2).copy()
started = time.perf_counter()
for i in range(0, len(x), a.batch):
    session.run(None, {inp.name: x[i : i + a.batch]})
seconds = time.perf_counter() - started
print(f"onnxruntime images={len(x)} seconds={seconds:.2f} rate={len(x) / seconds:.1f}")
