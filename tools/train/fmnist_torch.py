#!/usr/bin/env python3
"""Fashion-MNIST with the torch transcription of HF's Fourier/Learned/Conv Perceiver (perceiver_torch.py).

Two uses:
  eval  MODEL_DIR            top-1 of a model folder (e.g. one `probe train` wrote) on the 10,000
                             t10k images, in float32 and float64: the check that the weights mean
                             the same thing in Hugging Face's module.
  search --latents … --epochs …  trains an HF-initialised model with AdamW (the spec's schedule,
                             no augmentation) to pick the demo's architecture and budget before the
                             Go run; prints train loss, test top-1 and seconds per epoch.

Pixels as PerceiverImageProcessor makes them for 28×28 gray images with size = crop_size = 28 (no
crop, no resize): gray → RGB, /255, ImageNet mean/std. Run with /usr/bin/python3 (Debian's torch).
"""
import argparse
import gzip
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import perceiver_torch as pt

DATA = "/usr/share/datasets/fashion-mnist"
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def idx(split):
    with gzip.open(os.path.join(DATA, f"{split}-images-idx3-ubyte.gz")) as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(os.path.join(DATA, f"{split}-labels-idx1-ubyte.gz")) as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64)
    return x, y


def pixels(x, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)):
    g = (x.astype(np.float64) / 255.0).astype(np.float32)[:, None]
    m = np.array(mean, np.float32)[None, :, None, None]
    s = np.array(std, np.float32)[None, :, None, None]
    return torch.from_numpy(((g - m) / s).astype(np.float32))


def top1(m, x, y, dtype, batch=500):
    m = m.to(dtype)
    right = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            z = m(pixels(x[i:i + batch]).to(dtype))
            right += int((z.argmax(1).numpy() == y[i:i + batch]).sum())
    return right / len(x)


def hf_init(m, std=0.02, seed=0):
    """HF _init_weights: Linear/Conv N(0, std²) bias 0, LayerNorm 1/0, latents/positions N(0, std²)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("bias"):
                p.zero_()
            elif "layernorm" in name or "batchnorm" in name:
                p.fill_(1.0)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * std)


def build(a):
    cfg = {"architectures": ["PerceiverForImageClassification" + {"fourier": "Fourier", "learned": "Learned", "conv": "ConvProcessing"}[a.arch]],
           "num_latents": a.latents, "d_latents": a.width, "num_blocks": a.blocks, "num_self_attends_per_block": a.per_block,
           "num_self_attention_heads": a.heads, "num_cross_attention_heads": 1, "cross_attention_widening_factor": 1,
           "self_attention_widening_factor": a.widening, "image_size": 28, "id2label": {str(i): c for i, c in enumerate(CLASSES)}}
    prep = {"size": {"height": 28, "width": 28}}
    shapes = {}
    if a.arch == "fourier":
        cfg["d_model"] = 5 + 4 * a.bands
    elif a.arch == "learned":
        cfg["d_model"] = 2 * a.conv
        shapes = {"perceiver.input_preprocessor.convnet_1x1.weight": (a.conv,), "perceiver.input_preprocessor.position_embeddings.position_embeddings": (784, a.conv)}
    else:
        cfg["d_model"] = a.conv + 2 + 4 * a.bands
        shapes = {"perceiver.input_preprocessor.convnet.conv.weight": (a.conv,)}
    m = pt.Perceiver(cfg, prep, shapes)
    hf_init(m, seed=a.seed)
    return m


def search(a):
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    xtr, ytr = idx("train")
    xte, yte = idx("t10k")
    if a.n:
        xtr, ytr = xtr[:a.n], ytr[:a.n]
    m = build(a)
    print(f"{a}\nparameters {sum(p.numel() for p in m.parameters())}", flush=True)
    opt = torch.optim.AdamW(m.parameters(), lr=a.lr, weight_decay=a.wd, betas=(0.9, 0.999), eps=1e-8)
    n = len(xtr)
    steps_per = math.ceil(n / a.batch)
    S = a.epochs * steps_per
    W = a.warmup

    def f(k):
        if k < W:
            return k / W
        return 0.5 * (1 + math.cos(math.pi * (k - W) / max(1, S - W))) if a.cosine else 1.0

    sched = torch.optim.lr_scheduler.LambdaLR(opt, f)
    g = torch.Generator().manual_seed(a.seed)
    k = 0
    for ep in range(a.epochs):
        t0 = time.time()
        perm = torch.randperm(n, generator=g).numpy()
        tot = 0.0
        for s in range(steps_per):
            b = perm[s * a.batch:(s + 1) * a.batch]
            loss = F.cross_entropy(m(pixels(xtr[b])), torch.from_numpy(ytr[b]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tot += float(loss)
            k += 1
            if a.max_steps and k >= a.max_steps:
                print(f"{k} steps in {time.time() - t0:.1f} s, loss {tot / (s + 1):.4f}", flush=True)
                return
        dt = time.time() - t0
        acc = top1(m, xte, yte, torch.float32)
        print(f"epoch {ep + 1}: loss {tot / steps_per:.4f} test top-1 {acc * 100:.2f}% {dt:.0f} s", flush=True)


def evaluate(folder):
    xte, yte = idx("t10k")
    m, cfg, prep = pt.load_model(folder, dtype=torch.float32)
    assert prep.get("image_mean", [0.485, 0.456, 0.406]) == [0.485, 0.456, 0.406]
    a32 = top1(m, xte, yte, torch.float32)
    a64 = top1(m, xte, yte, torch.float64)
    print(json.dumps({"model": folder, "n": len(xte), "top1_float32": a32, "top1_float64": a64}))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("eval")
    e.add_argument("model")
    s = sub.add_parser("search")
    s.add_argument("--arch", default="fourier")
    s.add_argument("--latents", type=int, default=32)
    s.add_argument("--width", type=int, default=64)
    s.add_argument("--blocks", type=int, default=2)
    s.add_argument("--per-block", type=int, default=2)
    s.add_argument("--heads", type=int, default=4)
    s.add_argument("--widening", type=int, default=1)
    s.add_argument("--bands", type=int, default=8)
    s.add_argument("--conv", type=int, default=32)
    s.add_argument("--lr", type=float, default=1e-3)
    s.add_argument("--wd", type=float, default=0.01)
    s.add_argument("--batch", type=int, default=64)
    s.add_argument("--epochs", type=int, default=3)
    s.add_argument("--warmup", type=int, default=0)
    s.add_argument("--cosine", action="store_true")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--threads", type=int, default=1)
    s.add_argument("--n", type=int, default=0)
    s.add_argument("--max-steps", type=int, default=0)
    a = ap.parse_args()
    if a.cmd == "eval":
        evaluate(a.model)
    else:
        search(a)


if __name__ == "__main__":
    main()
