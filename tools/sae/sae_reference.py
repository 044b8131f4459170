#!/usr/bin/python3
"""PyTorch reference for `probe sae train`: the TopK sparse autoencoder recipe of
/work/shared/specs/sae.md (Gao et al. 2024; openai/sparse_autoencoder's choices), written
independently with torch autograd and torch.optim.Adam, dense throughout.

It reads the same data the Go trainer reads, without our code: a token store NAME.bin + NAME.json
through numpy.memmap (each kept latent token a sample), or a .npy matrix with a JSON list of ids.
The split is taken from a Go report.json's holdout_ids (the split is an input here, not a result),
so both train on the same images; initialisation and shuffles use torch's own generator, which is
why the Go test allows 10% (+0.01) between the holdout FVUs.

Usage (run under /usr/bin/python3, Debian's python3-torch 1.13):
  sae_reference.py --tokens DIR/NAME | --npy X.npy --ids ids.txt|IDS.json   --split report.json
                   --dict M --k K --epochs E --batch B --lr LR --seed S [--aux-k KA] [--threads 2]
                   [--out result.json]
Prints and writes {"train": {fvu, mse, l0, dead_fraction}, "holdout": {...}, "samples_per_second", ...}.
"""
import argparse
import json
import math
import time

import numpy as np
import torch


def load(args):
    if args.tokens:
        meta = json.load(open(args.tokens + ".json"))
        dt = {"float16": "<f2", "float32": "<f4"}[meta["dtype"]]
        arr = np.memmap(args.tokens + ".bin", dtype=dt, mode="r", shape=tuple(meta["shape"]))
        return np.asarray(arr, dtype=np.float32), meta["ids"]
    x = np.load(args.npy).astype(np.float32)
    if args.ids.endswith(".txt"):  # probe export's ids.txt, one per line
        ids = [line.rstrip("\n").split("\t")[0] for line in open(args.ids)]
    else:
        ids = json.load(open(args.ids))
    return x[:, None, :], ids


def samples(x, units):
    return torch.from_numpy(x[units].reshape(-1, x.shape[2]).copy())


def geometric_median(x):
    m = x.double().mean(0)
    xd = x.double()
    for _ in range(100):
        w = 1 / torch.clamp((xd - m).norm(dim=1), min=1e-8)
        nxt = (w[:, None] * xd).sum(0) / w.sum()
        step = (nxt - m).norm()
        m = nxt
        if step <= 1e-7 * max(1.0, float(m.norm())):
            break
    return m.float()


def default_auxk(d, m):
    h = max(1, d // 2)
    p = 1
    while p * 2 <= h:
        p *= 2
    if h - p > 2 * p - h:
        p *= 2
    return min(p, m)


def metrics(x, W_enc, b_enc, W_dec, b_dec, k):
    with torch.no_grad():
        pre = (x - b_dec) @ W_enc.T + b_enc
        v, i = pre.topk(k, dim=1)
        z = torch.zeros_like(pre).scatter_(1, i, torch.relu(v))
        xh = z @ W_dec.T + b_dec
    xd, xhd = x.double(), xh.double()
    sse = float(((xd - xhd) ** 2).sum())
    sst = float(((xd - xd.mean(0)) ** 2).sum())
    fired = (z != 0).any(0)
    return {"fvu": sse / sst, "mse": sse / x.numel(), "l0": float((z != 0).sum(1).double().mean()),
            "dead_fraction": float((~fired).double().mean()), "rows": x.shape[0]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens")
    ap.add_argument("--npy")
    ap.add_argument("--ids")
    ap.add_argument("--split", required=True)
    ap.add_argument("--dict", type=int, required=True)
    ap.add_argument("--k", type=int, required=True)
    ap.add_argument("--aux-k", type=int, default=0)
    ap.add_argument("--dead-window", type=int, default=0)
    ap.add_argument("--epochs", type=int, required=True)
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--lr", type=float, required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)

    x, ids = load(a)
    hold_ids = set(json.load(open(a.split))["holdout_ids"])
    hold = [i for i, u in enumerate(ids) if u in hold_ids]
    train = [i for i, u in enumerate(ids) if u not in hold_ids]
    assert len(hold) == len(hold_ids), "holdout ids missing from the data"
    xt, xh = samples(x, train), samples(x, hold)
    n, d = xt.shape
    M, k = a.dict, a.k
    ka = a.aux_k or default_auxk(d, M)
    window = a.dead_window or n

    W_dec = torch.randn(d, M)
    W_dec /= W_dec.norm(dim=0, keepdim=True)
    W_enc = W_dec.T.clone()
    b_enc = torch.zeros(M)
    b_dec = geometric_median(xt)
    params = [torch.nn.Parameter(t) for t in (W_enc, b_enc, W_dec, b_dec)]
    W_enc, b_enc, W_dec, b_dec = params
    opt = torch.optim.Adam(params, lr=a.lr, betas=(0.9, 0.999), eps=6.25e-10)
    S = float(((xt.double() - xt.double().mean(0)) ** 2).sum(1).mean())
    since = torch.zeros(M, dtype=torch.long)

    steps = 0
    t0 = time.perf_counter()
    for _ in range(a.epochs):
        perm = torch.randperm(n)
        for lo in range(0, n, a.batch):
            xb = xt[perm[lo:lo + a.batch]]
            B = xb.shape[0]
            pre = (xb - b_dec) @ W_enc.T + b_enc
            v, i = pre.topk(k, dim=1)
            z = torch.zeros_like(pre).scatter(1, i, torch.relu(v))
            xhat = z @ W_dec.T + b_dec
            e = xb - xhat
            loss = (e ** 2).sum() / (B * S)
            with torch.no_grad():
                fired = (z > 0).any(0)
                since[fired] = 0
                since[~fired] += B
                dead = since >= window
            nd = int(dead.sum())
            if nd > 0:
                kd = min(ka, nd)
                av, ai = pre.masked_fill(~dead, -math.inf).topk(kd, dim=1)
                zaux = torch.zeros_like(pre).scatter(1, ai, torch.relu(av))
                ehat = zaux @ W_dec.T
                et = e.detach()
                den = ((et - et.mean(0)) ** 2).sum()
                if float(den) > 0:
                    loss = loss + (1 / 32) * ((ehat - et) ** 2).sum() / den
            opt.zero_grad()
            loss.backward()
            with torch.no_grad():
                W_dec.grad -= (W_dec.grad * W_dec).sum(0, keepdim=True) * W_dec
            opt.step()
            with torch.no_grad():
                W_dec /= W_dec.norm(dim=0, keepdim=True)
            steps += 1
    elapsed = time.perf_counter() - t0
    res = {"train": metrics(xt, W_enc, b_enc, W_dec, b_dec, k),
           "holdout": metrics(xh, W_enc, b_enc, W_dec, b_dec, k) if len(hold) else None,
           "d": d, "dict": M, "k": k, "aux_k": ka, "dead_window": window, "epochs": a.epochs, "batch": a.batch,
           "lr": a.lr, "seed": a.seed, "steps": steps, "seconds": elapsed,
           "samples_per_second": steps and a.epochs * n / elapsed, "threads": torch.get_num_threads(),
           "torch": torch.__version__, "holdout_ids": [ids[u] for u in hold]}
    print(json.dumps(res, indent=1))
    if a.out:
        json.dump(res, open(a.out, "w"), indent=1)


if __name__ == "__main__":
    main()
