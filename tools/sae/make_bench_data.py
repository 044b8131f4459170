#!/usr/bin/python3
"""Writes a token store of Gaussian rows at the full model's width for the training-speed comparison
in the README (probe sae train --tokens OUT/bench vs sae_reference.py --tokens OUT/bench):
N images × 1 latent × 1,024 channels, float16, seed 3. Throughput does not depend on the values.
Usage: make_bench_data.py OUTDIR [N]   (run under /usr/bin/python3 with numpy)"""
import json
import os
import sys

import numpy as np

from make_synthetic import crc32c


def main():
    out, n = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 8192
    os.makedirs(out, exist_ok=True)
    x = np.random.default_rng(3).normal(size=(n, 1, 1024)).astype("<f2")
    raw = x.tobytes()
    open(os.path.join(out, "bench.bin"), "wb").write(raw)
    meta = {"format": "perceiverkit-tokens/1", "name": "bench", "layer": "gaussian", "state": 0, "dtype": "float16",
            "order": "C", "shape": [n, 1, 1024], "latents": [0], "model": "", "shard": "1/1",
            "identity": {"generator": "tools/sae/make_bench_data.py seed 3"},
            "ids": ["g/%05d" % i for i in range(n)], "indices": list(range(n)), "labels": [-1] * n,
            "crc32c": "%08x" % crc32c(raw)}
    json.dump(meta, open(os.path.join(out, "bench.json"), "w"))


if __name__ == "__main__":
    main()
