#!/usr/bin/env python3
"""Times the vision Perceiver IO classifiers in PyTorch, for side-by-side speed ratios with
`probe bench --random --arch KIND` on the same machine.

The modules below follow the operations of Hugging Face's modeling_perceiver.py for
PerceiverForImageClassificationFourier, ...Learned and ...ConvProcessing at full size (the
transformers package cannot be installed here): the same layers in the same order, each linear
layer applied to every token (per-token key and value projections, the heads split and merged as
HF does), LayerNorm eps 1e-5, exact GELU, eval mode, random weights. It is written for this
benchmark; it is not a reference for numerics (the fixtures are).

usage: /usr/bin/python3 perceiver_bench.py --arch fourier|learned|conv [--runs 5] [--threads 2]
"""
import argparse
import math
import time

import torch
from torch import nn


class Attention(nn.Module):
    def __init__(self, q_dim, kv_dim, qk, v, heads, out_dim, cross):
        super().__init__()
        self.ln1 = nn.LayerNorm(q_dim)
        self.ln2 = nn.LayerNorm(kv_dim) if cross else nn.Identity()
        self.q, self.k, self.v = nn.Linear(q_dim, qk), nn.Linear(kv_dim, qk), nn.Linear(kv_dim, v)
        self.out = nn.Linear(v, out_dim)
        self.heads = heads

    def split(self, x):
        b, n, c = x.shape
        return x.view(b, n, self.heads, c // self.heads).permute(0, 2, 1, 3)

    def forward(self, x, inputs=None):
        xn = self.ln1(x)
        kv = xn if inputs is None else self.ln2(inputs)
        q, k, v = self.split(self.q(xn)), self.split(self.k(kv)), self.split(self.v(kv))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
        probs = scores.softmax(dim=-1)
        ctx = torch.matmul(probs, v).permute(0, 2, 1, 3).contiguous()
        ctx = ctx.view(ctx.shape[0], ctx.shape[1], -1)
        return self.out(ctx)


class Layer(nn.Module):
    def __init__(self, q_dim, kv_dim, qk, v, heads, widening=1, cross=False, residual=True):
        super().__init__()
        self.att = Attention(q_dim, kv_dim, qk, v, heads, q_dim, cross)
        self.ln = nn.LayerNorm(q_dim)
        self.mlp = nn.Sequential(nn.Linear(q_dim, widening * q_dim), nn.GELU(), nn.Linear(widening * q_dim, q_dim))
        self.residual = residual

    def forward(self, x, inputs=None):
        a = self.att(x, inputs)
        if self.residual:
            a = a + x
        return a + self.mlp(self.ln(a))


def fourier_features(h, w, max_res, bands):
    ys, xs = torch.linspace(-1, 1, h), torch.linspace(-1, 1, w)
    pos = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1).reshape(-1, 2)
    freqs = torch.stack([torch.linspace(1, r / 2, bands) for r in max_res])
    f = (pos[:, :, None] * freqs[None]).reshape(pos.shape[0], -1)
    return torch.cat([pos, torch.sin(math.pi * f), torch.cos(math.pi * f)], dim=-1)


class Perceiver(nn.Module):
    def __init__(self, arch, labels=1000, L=512, D=1024, blocks=8, per_block=6, heads=8):
        super().__init__()
        self.arch = arch
        if arch == "learned":
            self.conv1x1 = nn.Conv2d(3, 256, 1)
            self.positions = nn.Parameter(torch.randn(224 * 224, 256))
            self.pos_proj = nn.Linear(256, 256)
            C = 512
        elif arch == "conv":
            self.conv = nn.Conv2d(3, 64, 7, stride=2, bias=False)
            self.pad = nn.ZeroPad2d(3)
            self.bn = nn.BatchNorm2d(64)
            self.pool = nn.MaxPool2d(3, 2)
            C = 64 + 2 + 4 * 64
        else:
            C = 3 + 2 + 4 * 64
        self.latents = nn.Parameter(torch.randn(L, D))
        self.cross = Layer(D, C, C, C, 1, cross=True)
        self.selfs = nn.ModuleList([Layer(D, D, D, D, heads) for _ in range(per_block)])
        self.blocks = blocks
        self.query = nn.Parameter(torch.randn(1, D))
        self.dec = Layer(D, D, D, D, 1, cross=True)
        self.final = nn.Linear(D, labels)

    def tokens(self, px):
        b = px.shape[0]
        if self.arch == "learned":
            x = self.conv1x1(px).permute(0, 2, 3, 1).reshape(b, -1, 256)
            pos = self.pos_proj(self.positions)[None].expand(b, -1, -1)
            return torch.cat([x, pos], dim=-1)
        if self.arch == "conv":
            x = self.pool(torch.relu(self.bn(self.conv(self.pad(px)))))
            h, w = x.shape[2:]
            x = x.permute(0, 2, 3, 1).reshape(b, h * w, 64)
            pos = fourier_features(h, w, (56, 56), 64)[None].expand(b, -1, -1)
            return torch.cat([x, pos], dim=-1)
        h, w = px.shape[2:]
        x = px.permute(0, 2, 3, 1).reshape(b, h * w, 3)
        pos = fourier_features(h, w, (224, 224), 64)[None].expand(b, -1, -1)
        return torch.cat([x, pos], dim=-1)

    def forward(self, px):
        stamps = [time.perf_counter()]
        inputs = self.tokens(px)
        stamps.append(time.perf_counter())
        z = self.cross(self.latents[None].expand(px.shape[0], -1, -1), inputs)
        stamps.append(time.perf_counter())
        for _ in range(self.blocks):
            for layer in self.selfs:
                z = layer(z)
        stamps.append(time.perf_counter())
        q = self.query[None].expand(px.shape[0], -1, -1)
        logits = self.final(self.dec(q, z))
        stamps.append(time.perf_counter())
        return logits, [b - a for a, b in zip(stamps, stamps[1:])]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--arch", default="fourier", choices=["fourier", "learned", "conv"])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    m = Perceiver(a.arch).eval()
    px = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        m(px)  # warm-up
        totals, stages = [], []
        for _ in range(a.runs):
            t0 = time.perf_counter()
            _, st = m(px)
            totals.append(time.perf_counter() - t0)
            stages.append(st)
    totals.sort()
    med = totals[len(totals) // 2]
    names = ["input stage", "cross-attention", "latent stack", "decoder"]
    per = {n: sorted(s[i] for s in stages) for i, n in enumerate(names)}
    print(f"pytorch {torch.__version__} {a.arch}: forward min {totals[0]:.4f} s, median {med:.4f} s "
          f"({a.runs} runs, {torch.get_num_threads()} threads); "
          + ", ".join(f"{n} {v[len(v) // 2]:.4f}" for n, v in per.items()))


if __name__ == "__main__":
    main()
