#!/usr/bin/env python3
"""Time PyTorch on the full-size vision Perceiver (deepmind/vision-perceiver-fourier's architecture,
random weights): the forward pass alone, and the forward pass with output_attentions plus autograd
of one logit to the pixels and to every attention map — what `probe bench --random --backward`
times for our backward pass. Hugging Face's transformers is not installable here (no PyPI), so
this is the same architecture written with torch.nn.functional, layer for layer as
modeling_perceiver.py computes it: pre-LayerNorm attention with a query residual, an MLP with exact
GELU, one-head encoder cross-attention over pixels with Fourier features, 8 blocks of 6
self-attention layers (8 heads, shared weights across blocks), and the classification decoder.

Usage: python3 perceiver_autograd.py [--runs 3] [--threads 2]
Prints seconds per image (min and median over the runs, after one warm-up) and the peak RSS.
"""
import argparse
import math
import resource
import statistics
import time

import torch
import torch.nn.functional as F

H = W = 224
L, D = 512, 1024          # latents
BANDS = 64                # Fourier bands: d_model = 3 + 2 + 4·64 = 261
C = 3 + 2 + 4 * BANDS
HEADS = 8
BLOCKS, PER_BLOCK = 8, 6
LABELS = 1000


def fourier_features(h, w, bands, max_res=(224, 224)):
    """Positions in [-1, 1], then sin and cos of π·f·x for bands frequencies up to max_res/2."""
    ys, xs = torch.linspace(-1, 1, h), torch.linspace(-1, 1, w)
    pos = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1).reshape(-1, 2)
    freqs = torch.stack([torch.linspace(1.0, r / 2.0, bands) for r in max_res])  # [2, bands]
    scaled = (pos[:, :, None] * freqs[None]).reshape(pos.shape[0], -1)
    return torch.cat([pos, torch.sin(math.pi * scaled), torch.cos(math.pi * scaled)], dim=-1)


def linear(i, o, g):
    return (torch.randn(o, i, generator=g) / math.sqrt(i), torch.randn(o, generator=g) * 0.01)


def layernorm(n, g):
    return (1 + 0.2 * torch.randn(n, generator=g), 0.1 * torch.randn(n, generator=g))


def layer(q_dim, kv_dim, qk, v, out, g, cross):
    p = {"ln1": layernorm(q_dim, g), "q": linear(q_dim, qk, g), "k": linear(kv_dim, qk, g),
         "v": linear(kv_dim, v, g), "o": linear(v, out, g), "ln": layernorm(out, g),
         "mlp1": linear(out, out, g), "mlp2": linear(out, out, g)}
    if cross:
        p["ln2"] = layernorm(kv_dim, g)
    return p


def ln(x, p):
    return F.layer_norm(x, x.shape[-1:], p[0], p[1], 1e-5)


def lin(x, p):
    return F.linear(x, p[0], p[1])


def attend(p, x, kv, heads, keep):
    """PerceiverLayer: x + Wo·attention(LN1(x), LN2(kv)), then + MLP(LN(·)); keeps the probabilities."""
    q = lin(ln(x, p["ln1"]), p["q"])
    kvn = ln(kv, p["ln2"]) if "ln2" in p else ln(x, p["ln1"])
    k, v = lin(kvn, p["k"]), lin(kvn, p["v"])
    b, nq, _ = q.shape
    nk = k.shape[1]
    dqk, dv = q.shape[-1] // heads, v.shape[-1] // heads
    q = q.view(b, nq, heads, dqk).transpose(1, 2)
    k = k.view(b, nk, heads, dqk).transpose(1, 2)
    v = v.view(b, nk, heads, dv).transpose(1, 2)
    probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(dqk), dim=-1)
    if keep is not None:
        if probs.requires_grad:
            probs.retain_grad()
        keep.append(probs)
    ctx = (probs @ v).transpose(1, 2).reshape(b, nq, heads * dv)
    x = x + lin(ctx, p["o"])
    return x + lin(F.gelu(lin(ln(x, p["ln"]), p["mlp1"])), p["mlp2"])


def model(seed=1):
    g = torch.Generator().manual_seed(seed)
    return {
        "latents": torch.randn(L, D, generator=g),
        "encoder": layer(D, C, C, C, D, g, True),
        "self": [layer(D, D, D, D, D, g, False) for _ in range(PER_BLOCK)],
        "query": torch.randn(1, 1, D, generator=g),
        "decoder": layer(D, D, D, D, D, g, True),
        "final": linear(D, LABELS, g),
        "pos": fourier_features(H, W, BANDS, (H, W)),
    }


def forward(m, pixels, keep=None):
    b = pixels.shape[0]
    tokens = torch.cat([pixels.permute(0, 2, 3, 1).reshape(b, H * W, 3), m["pos"].expand(b, -1, -1)], dim=-1)
    x = attend(m["encoder"], m["latents"].expand(b, -1, -1), tokens, 1, keep)
    for _ in range(BLOCKS):
        for p in m["self"]:
            x = attend(p, x, x, HEADS, keep)
    out = attend(m["decoder"], m["query"].expand(b, -1, -1), x, 1, keep)
    return lin(out[:, 0], m["final"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--smoke", action="store_true", help="a 32² image and 64 latents of 128: checks the script runs, times nothing of interest")
    args = ap.parse_args()
    if args.smoke:
        global H, W, L, D
        H = W = 32
        L, D = 64, 128
    torch.set_num_threads(args.threads)
    m = model()
    pixels = torch.randn(1, 3, H, W, generator=torch.Generator().manual_seed(2))

    def fwd():
        with torch.no_grad():
            forward(m, pixels)

    def fwd_bwd():
        x = pixels.clone().requires_grad_(True)
        maps = []
        logits = forward(m, x, maps)
        logits[0, int(logits[0].argmax())].backward()
        assert x.grad is not None and all(a.grad is not None for a in maps) and len(maps) == 1 + BLOCKS * PER_BLOCK + 1

    def timed(fn):
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    # Each run: a forward pass, then forward + backward, so that both see the same load.
    f, b = [], []
    for r in range(args.runs + 1):
        tf, tb = timed(fwd), timed(fwd_bwd)
        if r > 0:
            f.append(tf)
            b.append(tb)
    ratio = statistics.median(y / x for x, y in zip(f, b))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, Fourier Perceiver ({L} latents × {D}, {BLOCKS}×{PER_BLOCK} layers), random weights, {H}×{W}, batch 1")
    print(f"forward               min {min(f):8.3f} s  median {statistics.median(f):8.3f} s")
    print(f"forward+backward      min {min(b):8.3f} s  median {statistics.median(b):8.3f} s  (output_attentions, autograd to pixels and every attention map; {ratio:.2f}× forward, median of the runs' ratios)")
    print(f"peak RSS              {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss} kB")


if __name__ == "__main__":
    main()
