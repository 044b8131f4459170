#!/usr/bin/env python3
"""Time one PyTorch training step of the Fourier vision Perceiver, the counterpart of core's
BenchmarkTrainStep: forward, mean cross-entropy over the batch, backward to every parameter (or the
decoder's only, --train decoder), and a torch.optim.AdamW step (β 0.9/0.999, ε 1e-8, weight decay
0.01). Hugging Face's transformers is not installable here (no PyPI), so the architecture is written
with torch.nn.functional as in perceiver_autograd.py (layer for layer as modeling_perceiver.py), with
random weights as nn.Parameters, eval mode (no dropout).

Sizes: --size full is deepmind/vision-perceiver-fourier's architecture at 224² (512 latents × 1024,
8 blocks × 6 layers, 8 heads, 1000 classes); --size demo is probe demo's model at 28² (32 latents × 64,
2 blocks × 2 layers, 4 heads, 8 Fourier bands, 10 classes).

Usage: python3 perceiver_train_step.py --size full|demo [--batch B] [--runs 3] [--threads 2] [--train all|decoder]
Prints seconds per step (min and median over the runs, after one warm-up step) and the peak RSS.
"""
import argparse
import math
import resource
import statistics
import time

import torch
import torch.nn.functional as F

SIZES = {
    # H=W, latents L, width D, bands, heads, blocks, layers per block, labels
    "full": dict(hw=224, L=512, D=1024, bands=64, heads=8, blocks=8, per=6, labels=1000),
    "demo": dict(hw=28, L=32, D=64, bands=8, heads=4, blocks=2, per=2, labels=10),
}


def fourier_features(h, w, bands, max_res):
    ys, xs = torch.linspace(-1, 1, h), torch.linspace(-1, 1, w)
    pos = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1).reshape(-1, 2)
    freqs = torch.stack([torch.linspace(1.0, r / 2.0, bands) for r in max_res])
    scaled = (pos[:, :, None] * freqs[None]).reshape(pos.shape[0], -1)
    return torch.cat([pos, torch.sin(math.pi * scaled), torch.cos(math.pi * scaled)], dim=-1)


def param(t):
    return torch.nn.Parameter(t)


def linear(i, o, g):
    return (param(torch.randn(o, i, generator=g) / math.sqrt(i)), param(torch.randn(o, generator=g) * 0.01))


def layernorm(n, g):
    return (param(1 + 0.2 * torch.randn(n, generator=g)), param(0.1 * torch.randn(n, generator=g)))


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


def attend(p, x, kv, heads):
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
    ctx = (probs @ v).transpose(1, 2).reshape(b, nq, heads * dv)
    x = x + lin(ctx, p["o"])
    return x + lin(F.gelu(lin(ln(x, p["ln"]), p["mlp1"])), p["mlp2"])


def model(s, seed=1):
    g = torch.Generator().manual_seed(seed)
    C = 3 + 2 + 4 * s["bands"]
    return {
        "latents": param(torch.randn(s["L"], s["D"], generator=g)),
        "encoder": layer(s["D"], C, C, C, s["D"], g, True),
        "self": [layer(s["D"], s["D"], s["D"], s["D"], s["D"], g, False) for _ in range(s["per"])],
        "query": param(torch.randn(1, 1, s["D"], generator=g)),
        "decoder": layer(s["D"], s["D"], s["D"], s["D"], s["D"], g, True),
        "final": linear(s["D"], s["labels"], g),
        "pos": fourier_features(s["hw"], s["hw"], s["bands"], (s["hw"], s["hw"])),
    }


def parameters(m, train):
    def flat(x):
        if isinstance(x, torch.nn.Parameter):
            yield x
        elif isinstance(x, dict):
            for v in x.values():
                yield from flat(v)
        elif isinstance(x, (list, tuple)):
            for v in x:
                yield from flat(v)
    if train == "decoder":
        return [m["query"]] + list(flat(m["decoder"])) + list(flat(m["final"]))
    return list(flat(m))


def forward(m, s, pixels):
    b = pixels.shape[0]
    hw = s["hw"]
    tokens = torch.cat([pixels.permute(0, 2, 3, 1).reshape(b, hw * hw, 3), m["pos"].expand(b, -1, -1)], dim=-1)
    x = attend(m["encoder"], m["latents"].expand(b, -1, -1), tokens, 1)
    for _ in range(s["blocks"]):
        for p in m["self"]:
            x = attend(p, x, x, s["heads"])
    out = attend(m["decoder"], m["query"].expand(b, -1, -1), x, 1)
    return lin(out[:, 0], m["final"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="full")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--train", choices=["all", "decoder"], default="all")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    s = SIZES[args.size]
    m = model(s)
    params = parameters(m, args.train)
    trained = {id(p) for p in params}
    for p in parameters(m, "all"):
        p.requires_grad_(id(p) in trained)
    opt = torch.optim.AdamW(params, lr=1e-5, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    g = torch.Generator().manual_seed(2)
    pixels = torch.randn(args.batch, 3, s["hw"], s["hw"], generator=g)
    labels = torch.arange(args.batch) % s["labels"]

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(forward(m, s, pixels), labels)
        loss.backward()
        opt.step()

    times = []
    for r in range(args.runs + 1):
        t0 = time.perf_counter()
        step()
        if r > 0:
            times.append(time.perf_counter() - t0)
    n = sum(p.numel() for p in params)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, Fourier Perceiver {args.size} ({s['L']} latents × {s['D']}, "
          f"{s['blocks']}×{s['per']} layers, {s['hw']}²), batch {args.batch}, train {args.train} ({n} parameters)")
    print(f"train step            min {min(times):8.3f} s  median {statistics.median(times):8.3f} s  (forward + cross-entropy + backward + AdamW)")
    print(f"peak RSS              {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss} kB")


if __name__ == "__main__":
    main()
