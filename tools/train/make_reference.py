#!/usr/bin/env python3
"""References for `probe train` (cmd/probe/train_test.go): 12 AdamW updates from the tiny fixture
checkpoints, computed by torch.optim.AdamW on perceiver_torch.py's transcription of Hugging Face's
modules (shown to reproduce the HF fixtures by check_fixtures.py) in float64.

The spec's case (training.md): the ImageFolder testdata/train/images (25 images, 3 classes) in
source order (--shuffle=false), batch 10 (steps of 10, 10, 5: partial batches and epoch wraps),
12 updates, lr 3e-3, weight decay 0.5, warmup 3, cosine; eval-mode forward, mean cross-entropy.
  all-{fourier,learned,conv}: --train all from testdata/tiny, tiny-learned, tiny-conv
  decoder-labels3-{fourier,conv}: --train decoder --labels 3 --seed 5, starting from the fresh final
      layer `probe train` wrote to OUT/init.safetensors (committed as *-init.safetensors: no two
      RNGs agree, so the reference starts where the Go run starts)
The model folders are the fixtures' config.json and model.safetensors with the processor settings
of testdata/train/<arch>/preprocessor_config.json (no centre crop, resize to the model's size).

Each output testdata/train/ref/<case>.safetensors holds final.<state_dict name> (float32 of the
float64 result), loss [12] and lr [12] (float64), and pixels [25,3,H,W] (the preprocessed images,
float32, as PIL makes them). Run from the repository root: /usr/bin/python3 tools/train/make_reference.py
"""
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import perceiver_torch as pt

STEPS, BATCH, LR, WD, WARMUP = 12, 10, 3e-3, 0.5, 3
FIXTURE = {"fourier": "testdata/tiny", "learned": "testdata/tiny-learned", "conv": "testdata/tiny-conv"}


def lam(k):
    if k < WARMUP:
        return k / WARMUP
    return 0.5 * (1 + math.cos(math.pi * (k - WARMUP) / max(1, STEPS - WARMUP)))


def run(case, arch, decoder_labels=0):
    folder = FIXTURE[arch]
    cfg = json.load(open(os.path.join(folder, "config.json")))
    prep = json.load(open(os.path.join("testdata/train", arch, "preprocessor_config.json")))
    sd = pt.load_safetensors(os.path.join(folder, "model.safetensors"))
    paths, labels, classes = pt.image_folder("testdata/train/images")
    if decoder_labels:
        init = pt.load_safetensors(f"testdata/train/ref/{case}-init.safetensors")
        sd.update(init)
        cfg["id2label"] = {str(i): c for i, c in enumerate(classes)}
    m = pt.Perceiver(cfg, prep, {k: v.shape for k, v in sd.items()})
    m.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()}, strict=True)
    m = m.double().eval()
    px = np.stack([pt.preprocess(p, prep) for p in paths])
    X = torch.from_numpy(px).double()
    Y = torch.tensor(labels)
    params = [p for n, p in m.named_parameters() if not decoder_labels or n.startswith("perceiver.decoder.")]
    for n, p in m.named_parameters():
        p.requires_grad_(any(p is q for q in params))
    opt = torch.optim.AdamW(params, lr=LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=WD)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lam)
    n = len(paths)
    per = math.ceil(n / BATCH)
    losses, lrs = [], []
    for k in range(STEPS):
        i = k % per
        idx = list(range(i * BATCH, min((i + 1) * BATCH, n)))
        lrs.append(opt.param_groups[0]["lr"])
        loss = F.cross_entropy(m(X[idx]), Y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss))
    out = {"final." + k: v for k, v in pt.state_numpy(m).items()}
    out["loss"] = np.array(losses)
    out["lr"] = np.array(lrs)
    out["pixels"] = px.astype(np.float32)
    meta = {"producer": f"tools/train/make_reference.py, torch {torch.__version__} float64, torch.optim.AdamW",
            "case": case, "steps": STEPS, "batch": BATCH, "lr": LR, "weight_decay": WD, "warmup": WARMUP, "schedule": "cosine"}
    pt.save_safetensors(f"testdata/train/ref/{case}.safetensors", out, meta)
    print(f"{case}: loss {losses[0]:.6f} → {losses[-1]:.6f}")


def main():
    os.makedirs("testdata/train/ref", exist_ok=True)
    for arch in ("fourier", "learned", "conv"):
        run(f"all-{arch}", arch)
    for arch in ("fourier", "conv"):
        case = f"decoder-labels3-{arch}"
        if os.path.exists(f"testdata/train/ref/{case}-init.safetensors"):
            run(case, arch, decoder_labels=3)
        else:
            print(f"{case}: no {case}-init.safetensors yet (copy OUT/init.safetensors of `probe train --labels 3 --seed 5`)")


if __name__ == "__main__":
    main()
