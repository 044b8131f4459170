#!/usr/bin/python3
"""PyTorch baseline for BenchmarkMutualKNN: platonic-rep's mutual_knn (minyoungg/platonic-rep@dcd76ba metrics.py:
unit rows, feats @ feats.T with the diagonal at -1e8, argsort, top-k masks), on two columns of n rows x d, in float64
(our numerics) and float32, 2 threads. It builds n x n matrices: 8,000 rows need ~2.5 GB in float64, 50,000 rows
would need ~100 GB, which is why the comparison is made at 8,000.

Usage: /usr/bin/python3 tools/similarity/bench_torch.py [n] [d]   (prints wall and CPU seconds per dtype)
"""
import sys
import time

import torch

torch.set_num_threads(2)


def knn(feats, k):
    return (feats @ feats.T).fill_diagonal_(-1e8).argsort(dim=1, descending=True)[:, :k]


def mutual_knn(a, b, k=10):
    a = torch.nn.functional.normalize(a, dim=-1)
    b = torch.nn.functional.normalize(b, dim=-1)
    ka, kb = knn(a, k), knn(b, k)
    n = ka.shape[0]
    r = torch.arange(n).unsqueeze(1)
    ma = torch.zeros(n, n, dtype=a.dtype)
    mb = torch.zeros(n, n, dtype=a.dtype)
    ma[r, ka] = 1.0
    mb[r, kb] = 1.0
    return ((ma * mb).sum(dim=1) / k).mean().item()


n = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
d = int(sys.argv[2]) if len(sys.argv) > 2 else 1024
g = torch.Generator().manual_seed(0)
x = torch.rand(n, d, generator=g) - 0.5
y = x.clone()
y[:, ::2] += torch.rand(n, (d + 1) // 2, generator=g) - 0.5
for dtype in (torch.float64, torch.float32):
    a, b = x.to(dtype), y.to(dtype)
    w, c = time.perf_counter(), time.process_time()
    s = mutual_knn(a, b)
    print(f"torch {dtype} n={n} d={d}: {time.perf_counter() - w:.2f} s wall, {time.process_time() - c:.2f} s CPU, score {s:.5f}")
