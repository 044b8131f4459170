#!/usr/bin/env python3
"""Shows that perceiver_torch.py reproduces the Hugging Face fixtures: for testdata/tiny,
tiny-learned and tiny-conv (copies of the fixtures made by transformers' modeling_perceiver),
the logits, hidden states, attention maps, and the autograd gradients of the target logit with
respect to the pixels, hidden states and attention maps, in float64, against expected*.safetensors
(HF float32). Prints the worst max|Δ|/max|ref| per kind; exits 1 above 1e-5.

Run from the repository root: /usr/bin/python3 tools/train/check_fixtures.py
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import perceiver_torch as pt

# (folder, file, the target logit the fixture differentiated: its metadata's "target")
CASES = [("testdata/tiny", "expected-grads.safetensors", 1), ("testdata/tiny-learned", "expected.safetensors", 2),
         ("testdata/tiny-conv", "expected.safetensors", 2)]


def main():
    worst = 0.0
    for folder, exp, target in CASES:
        ref = pt.load_safetensors(os.path.join(folder, exp))
        m, cfg, _ = pt.load_model(folder)
        px = torch.from_numpy(ref["pixel_values"]).double().requires_grad_(True)
        keep, hidden = [], []
        logits = m(px, keep, hidden)
        for t in keep + hidden:
            t.retain_grad()
        logits[0, target].backward()
        got = {"logits": logits, "pixel_values": px}
        for i, h in enumerate(hidden):
            got[f"hidden_states.{i}"] = h
        got["cross_attentions.encoder"] = keep[0]
        for j, a in enumerate(keep[1:-1]):
            got[f"attentions.{j}"] = a
        got["cross_attentions.decoder"] = keep[-1]
        rows = []
        for name, t in got.items():
            for prefix, val in (("", t.detach()), ("grad.", t.grad if name != "logits" else None)):
                key = prefix + name
                if key not in ref or val is None or key == "pixel_values":
                    continue
                r = ref[key].astype(np.float64)
                d = np.abs(val.numpy().reshape(r.shape) - r).max() / max(np.abs(r).max(), 1e-30)
                rows.append((key, d))
                worst = max(worst, d)
        print(f"{folder}: {len(rows)} tensors, worst {max(d for _, d in rows):.2e} ({max(rows, key=lambda x: x[1])[0]})")
    print(f"worst over all: {worst:.2e}")
    sys.exit(0 if worst <= 1e-5 else 1)


if __name__ == "__main__":
    main()
