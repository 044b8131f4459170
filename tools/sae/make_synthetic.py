#!/usr/bin/python3
"""Writes the synthetic SAE fixture testdata/sae/synthetic.tokens/sparse.{bin,json}: 2,000 samples of
d = 32, each the sum of 4 of 128 random unit atoms with log-normal magnitudes plus N(0, 0.05²) noise
(seed 7), as a float32 token store of one latent per row, so that `probe sae train --tokens` reads it
and an SAE has a real dictionary to find (the random demo model's tokens are nearly low-rank).
The sidecar's CRC-32C (Castagnoli) is computed here in pure Python.
Usage: make_synthetic.py OUTDIR   (run under /usr/bin/python3 with numpy)"""
import json
import os
import sys

import numpy as np


def crc32c(data):
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    c = 0xFFFFFFFF
    for b in data:
        c = table[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(7)
    n, d, atoms, active = 2000, 32, 128, 4
    D = rng.normal(size=(atoms, d))
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    x = np.zeros((n, d))
    for i in range(n):
        idx = rng.choice(atoms, size=active, replace=False)
        x[i] = (np.exp(rng.normal(0, 0.5, size=active))[:, None] * D[idx]).sum(0)
    x += rng.normal(0, 0.05, size=x.shape)
    x = x.astype("<f4").reshape(n, 1, d)
    raw = x.tobytes()
    with open(os.path.join(out, "sparse.bin"), "wb") as f:
        f.write(raw)
    meta = {"format": "perceiverkit-tokens/1", "name": "sparse", "layer": "synthetic", "state": 0,
            "dtype": "float32", "order": "C", "shape": [n, 1, d], "latents": [0], "model": "", "shard": "1/1",
            "identity": {"generator": "tools/sae/make_synthetic.py seed 7"},
            "ids": ["syn/%04d" % i for i in range(n)], "indices": list(range(n)), "labels": [-1] * n,
            "crc32c": "%08x" % crc32c(raw)}
    with open(os.path.join(out, "sparse.json"), "w") as f:
        json.dump(meta, f)


if __name__ == "__main__":
    main()
