"""Times a PyTorch forward pass of PerceiverForOpticalFlow's architecture at 368×496, for comparison
with `probe bench --random --arch flow` on the same machine.

transformers is not installable here (no PyPI), so this is the same computation written out in
PyTorch, step for step as Hugging Face's modeling_perceiver computes it: space_to_depth of the
[1, 2, 27, H, W] patches, conv_after_patches, Fourier features built on every call, the encoder
cross-attention with per-token key and value projections, 24 self-attention layers of 16 heads, and
the decoder attending from all H·W queries at once (its 182,528 × 2,048 score matrix included).
Weights are random (the timing does not depend on them).

usage: python3 torch_flow_bench.py [--runs N] [--threads N]
"""
import argparse
import math
import resource
import time

import torch
from torch import nn


class Attention(nn.Module):
    def __init__(self, q_dim, kv_dim, qk, v, heads, out, cross, residual):
        super().__init__()
        self.heads, self.cross, self.residual = heads, cross, residual
        self.ln1 = nn.LayerNorm(q_dim)
        self.ln2 = nn.LayerNorm(kv_dim) if cross else nn.Identity()
        self.q, self.k, self.v = nn.Linear(q_dim, qk), nn.Linear(kv_dim, qk), nn.Linear(kv_dim, v)
        self.o = nn.Linear(v, out)

    def split(self, x):
        b, n, c = x.shape
        return x.view(b, n, self.heads, c // self.heads).permute(0, 2, 1, 3)

    def forward(self, x, inputs=None):
        h = self.ln1(x)
        kv = self.ln2(inputs) if self.cross else h
        q, k, v = self.split(self.q(h)), self.split(self.k(kv)), self.split(self.v(kv))
        s = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
        p = nn.functional.softmax(s, dim=-1)
        ctx = torch.matmul(p, v).permute(0, 2, 1, 3).contiguous()
        ctx = ctx.view(ctx.shape[0], ctx.shape[1], -1)
        out = self.o(ctx)
        return out + x if self.residual else out


class Layer(nn.Module):
    def __init__(self, q_dim, kv_dim, qk, v, heads, cross, residual, widening=1):
        super().__init__()
        self.attn = Attention(q_dim, kv_dim, qk, v, heads, q_dim if cross else v, cross, residual)
        self.ln = nn.LayerNorm(q_dim)
        self.mlp = nn.Sequential(nn.Linear(q_dim, widening * q_dim), nn.GELU(), nn.Linear(widening * q_dim, q_dim))

    def forward(self, x, inputs=None):
        a = self.attn(x, inputs)
        return a + self.mlp(self.ln(a))


def fourier_features(h, w, bands, max_res):
    ys, xs = torch.linspace(-1, 1, h), torch.linspace(-1, 1, w)
    pos = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1).reshape(-1, 2)
    freqs = torch.stack([torch.linspace(1.0, r / 2, bands) for r in max_res], dim=0)
    f = (pos[:, :, None] * freqs[None]).reshape(pos.shape[0], -1)
    return torch.cat([pos, torch.sin(math.pi * f), torch.cos(math.pi * f)], dim=-1)


class FlowPerceiver(nn.Module):
    def __init__(self, train=(368, 496), latents=2048, d=512, d_model=322, layers=24, heads=16):
        super().__init__()
        self.train_size = train
        self.conv_after_patches = nn.Linear(54, 64)
        self.latents = nn.Parameter(torch.randn(latents, d))
        self.cross = Layer(d, d_model, d_model, d_model, 1, cross=True, residual=True)
        self.selfs = nn.ModuleList([Layer(d, d, d, d, heads, cross=False, residual=True) for _ in range(layers)])
        self.dec = Layer(d_model, d, d, d, 1, cross=True, residual=False)
        self.final = nn.Linear(d_model, 2)

    def forward(self, patches):
        b, t, c, h, w = patches.shape
        x = patches.view(b, 1, 2, c, h, 1, w, 1).permute(0, 1, 4, 6, 2, 5, 7, 3).contiguous().view(b, h, w, 2 * c)
        x = self.conv_after_patches(x).reshape(b, h * w, -1)
        pos = fourier_features(h, w, 64, self.train_size)
        inputs = torch.cat([x, pos[None].expand(b, -1, -1)], dim=-1)
        z = self.cross(self.latents[None].expand(b, -1, -1), inputs)
        for layer in self.selfs:
            z = layer(z)
        out = self.final(self.dec(inputs, z)) / 100.0
        return out.reshape(b, h, w, 2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = FlowPerceiver().eval()
    patches = torch.rand(1, 2, 27, 368, 496) * 2 - 1
    times, cpu = [], []
    with torch.no_grad():
        for r in range(args.runs + 1):
            t0, c0 = time.perf_counter(), time.process_time()
            out = model(patches)
            if r > 0:
                times.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
    times.sort()
    cpu.sort()
    print(f"torch {torch.__version__}, {args.threads} threads, output {list(out.shape)}")
    print(f"forward 368x496: wall min {times[0]:.2f} s, max {times[-1]:.2f} s; CPU time min {cpu[0]:.2f} s over {args.runs} runs (+1 warm-up)")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
