#!/usr/bin/env python3
"""Parameter-gradient references for the tiny Fourier, learned and conv classifiers (testdata/tiny*).

Hugging Face's transformers cannot be installed here (no PyPI), so this is a torch.nn.functional
transcription of modeling_perceiver.py's PerceiverForImageClassification{Fourier,Learned,ConvProcessing}
in eval mode (no dropout; BatchNorm on its running statistics), the parameters taken by their state-dict
names from each fixture's pytorch_model.bin. It first shows that, in float32, it reproduces the tensors
Hugging Face's own modules wrote into testdata/tiny*/expected*.safetensors — the forward tensors
(inputs, every hidden state and attention map, logits) and HF's input gradients (grad.pixel_values,
grad.hidden_states.*, grad.attentions.*, grad.cross_attentions.*) — to ≤ 1e-5 of each tensor's largest
magnitude (it prints the worst), and stops if not. Then it computes, in float64 from the same float32
weights and pixels, the references written to testdata/tiny*/expected-params.safetensors:

  logit/grad.param.<name>   ∂ logit[target] / ∂θ for the fixture image (target from the fixture's metadata)
  label/grad.<X>            ∂(−ln softmax(logits)[label]) / ∂X for the fixture image, label in metadata
                            "label": X = param.<name> for every parameter, and pixel_values,
                            hidden_states.i, attentions.j, cross_attentions.{encoder,decoder}
  batch/pixel_values        two images: the fixture image and 0.5·its left-right mirror
  batch/grad.param.<name>   ∂L/∂θ of the mean cross-entropy L of that batch with labels "batch_labels"
metadata: target, label, batch_labels, loss_label, loss_batch (float64, repr); for the Fourier model,
named_parameters (its pytorch_model.bin was saved in registration order).

Parameters are named_parameters(): the state dict minus BatchNorm's running_mean, running_var and
num_batches_tracked. It also prints, per model, the worst per-tensor max|Δ|/max|ref| of float32 torch
autograd against the float64 reference (what our Go float32 backward is held to, ≤ 1e-4, in core's tests).

Usage: /usr/bin/python3 tools/torchref/perceiver_param_grads.py [--out]   (from the repository root)
Without --out it only checks; with it, it writes the three files.
"""
import argparse
import json
import math
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

MODELS = {"fourier": "testdata/tiny", "learned": "testdata/tiny-learned", "conv": "testdata/tiny-conv"}
LABEL = 3              # the label of the single-image cross-entropy reference
BATCH_LABELS = [3, 0]  # the labels of the two-image batch


def read_safetensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    out = {}
    for name, h in header.items():
        assert h["dtype"] == "F32", (path, name, h["dtype"])
        a, b = h["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(raw[8 + n + a:8 + n + b], dtype="<f4").reshape(h["shape"]).copy())
    return out, meta


def write_safetensors(path, tensors, meta):
    header, blobs, off = {"__metadata__": meta}, [], 0
    for name in sorted(tensors):
        b = tensors[name].detach().to(torch.float32).contiguous().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def is_buffer(name):
    return name.endswith((".running_mean", ".running_var", ".num_batches_tracked"))


class Perceiver:
    """The forward pass of one classifier over named parameters P (a dict of leaf tensors)."""

    def __init__(self, kind, cfg, P, pos):
        self.kind, self.cfg, self.P = kind, cfg, P
        self.pos = pos  # the Fourier position features [N, c] (fourier, conv): constants of the pixels

    def ln(self, x, name):
        return F.layer_norm(x, x.shape[-1:], self.P[name + ".weight"], self.P[name + ".bias"], 1e-5)

    def lin(self, x, name):
        return F.linear(x, self.P[name + ".weight"], self.P[name + ".bias"])

    def layer(self, pre, x, kv, heads, residual, keep):
        """PerceiverLayer: x (+) Wo·attention(LN1(x), LN2(kv)), then + MLP(LN(·)); keeps the probabilities."""
        s = pre + ".attention.self"
        q = self.lin(self.ln(x, s + ".layernorm1"), s + ".query")
        kvn = self.ln(kv, s + ".layernorm2") if kv is not None else self.ln(x, s + ".layernorm1")
        k, v = self.lin(kvn, s + ".key"), self.lin(kvn, s + ".value")
        b, nq, _ = q.shape
        nk = k.shape[1]
        dqk, dv = q.shape[-1] // heads, v.shape[-1] // heads
        q = q.view(b, nq, heads, dqk).transpose(1, 2)
        k = k.view(b, nk, heads, dqk).transpose(1, 2)
        v = v.view(b, nk, heads, dv).transpose(1, 2)
        probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(dqk), dim=-1)
        probs.retain_grad() if probs.requires_grad else None
        keep.append(probs)
        ctx = (probs @ v).transpose(1, 2).reshape(b, nq, heads * dv)
        out = self.lin(ctx, pre + ".attention.output.dense")
        x = x + out if residual else out
        return x + self.lin(F.gelu(self.lin(self.ln(x, pre + ".layernorm"), pre + ".mlp.dense1")), pre + ".mlp.dense2")

    def tokens(self, px):
        b, _, h, w = px.shape
        ip = "perceiver.input_preprocessor."
        if self.kind == "fourier":
            feats = px.permute(0, 2, 3, 1).reshape(b, h * w, 3)
        elif self.kind == "learned":
            conv = F.conv2d(px, self.P[ip + "convnet_1x1.weight"], self.P[ip + "convnet_1x1.bias"])
            feats = conv.permute(0, 2, 3, 1).reshape(b, h * w, -1)
            pos = self.lin(self.P[ip + "position_embeddings.position_embeddings"], ip + "positions_projection")
            return torch.cat([feats, pos.expand(b, -1, -1)], dim=-1)
        else:
            x = F.conv2d(px, self.P[ip + "convnet.conv.weight"], None, stride=2, padding=3)
            bn = ip + "convnet.batchnorm."
            x = F.batch_norm(x, self.P[bn + "running_mean"], self.P[bn + "running_var"], self.P[bn + "weight"],
                             self.P[bn + "bias"], training=False, eps=1e-5)
            x = F.max_pool2d(F.relu(x), 3, 2)
            feats = x.permute(0, 2, 3, 1).reshape(b, x.shape[2] * x.shape[3], -1)
        return torch.cat([feats, self.pos.expand(b, -1, -1)], dim=-1)

    def forward(self, px):
        """Returns logits and the states whose gradients HF's fixtures hold."""
        cfg = self.cfg
        b = px.shape[0]
        st = {"inputs": self.tokens(px), "attn": [], "hidden": []}
        lat = self.P["perceiver.embeddings.latents"].expand(b, -1, -1)
        enc = []
        x = self.layer("perceiver.encoder.cross_attention", lat, st["inputs"], cfg["num_cross_attention_heads"],
                       cfg["use_query_residual"], enc)
        st["enc"] = enc[0]
        x.retain_grad()
        st["hidden"].append(x)
        for _ in range(cfg["num_blocks"]):
            for i in range(cfg["num_self_attends_per_block"]):
                x = self.layer(f"perceiver.encoder.self_attends.{i}", x, None, cfg["num_self_attention_heads"], True, st["attn"])
                x.retain_grad()
                st["hidden"].append(x)
        dec = []
        d = "perceiver.decoder.decoder."
        q = self.P[d + "output_position_encodings.position_embeddings"].expand(b, -1, -1)
        out = self.layer(d + "decoding_cross_attention", q, x, 1, True, dec)
        st["dec"] = dec[0]
        return self.lin(out[:, 0], d + "final_layer"), st


def build(kind, dtype):
    d = MODELS[kind]
    cfg = json.load(open(d + "/config.json"))
    sd = torch.load(d + "/pytorch_model.bin")
    exp, meta = read_safetensors(d + ("/expected-grads.safetensors" if kind == "fourier" else "/expected.safetensors"))
    P = {k: v.to(dtype).requires_grad_(not is_buffer(k)) for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    ncv = {"fourier": 3, "learned": None, "conv": sd.get("perceiver.input_preprocessor.convnet.conv.weight", torch.zeros(1)).shape[0]}[kind]
    pos = exp["inputs"][0, :, ncv:].to(dtype) if ncv else None
    return Perceiver(kind, cfg, P, pos), exp, meta, sd


def rel(a, ref):
    m = ref.abs().max().item()
    return (a.double() - ref.double()).abs().max().item() / m if m > 0 else (a.abs().max().item())


def param_names(sd):
    # The learned and conv fixtures' pickled state dicts are sorted by name, not in registration
    # order; the file is written sorted by name, and the Go tests match tensors by name.
    return [k for k in sd if not is_buffer(k)]


def grads(model, px, loss_fn, names):
    for p in model.P.values():
        p.grad = None
    px = px.clone().requires_grad_(True)
    logits, st = model.forward(px)
    for t in [st["enc"], st["dec"]] + st["attn"]:
        t.retain_grad()
    loss = loss_fn(logits)
    loss.backward()
    g = {"param." + n: (model.P[n].grad if model.P[n].grad is not None else torch.zeros_like(model.P[n])) for n in names}
    g["pixel_values"] = px.grad
    for i, h in enumerate(st["hidden"]):
        g[f"hidden_states.{i}"] = h.grad
    for j, a in enumerate(st["attn"]):
        g[f"attentions.{j}"] = a.grad
    g["cross_attentions.encoder"] = st["enc"].grad
    g["cross_attentions.decoder"] = st["dec"].grad
    return logits, st, loss.item(), g


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", action="store_true", help="write testdata/tiny*/expected-params.safetensors")
    args = ap.parse_args()
    torch.set_num_threads(1)
    ok = True
    for kind, d in MODELS.items():
        # 1. float32: reproduce Hugging Face's tensors.
        m32, exp, meta, sd = build(kind, torch.float32)
        names = param_names(sd)
        target = int(meta["target"])
        px = exp["pixel_values"]
        logits, st, _, g = grads(m32, px, lambda z: z[0, target], names)
        worst = 0.0
        checks = {"inputs": st["inputs"], "logits": logits, "cross_attentions.encoder": st["enc"],
                  "cross_attentions.decoder": st["dec"]}
        for i, h in enumerate(st["hidden"]):
            checks[f"hidden_states.{i}"] = h
        for j, a in enumerate(st["attn"]):
            checks[f"attentions.{j}"] = a
        for k, v in g.items():
            if not k.startswith("param."):
                checks["grad." + k] = v
        for k, v in checks.items():
            e = rel(v.detach().reshape(exp[k].shape), exp[k])
            worst = max(worst, e)
            if e > 1e-5:
                print(f"{kind}: {k} differs from Hugging Face's by {e:.2e}", file=sys.stderr)
                ok = False
        print(f"{kind}: {len(checks)} HF tensors reproduced in float32, worst max|Δ|/max|ref| {worst:.2e}")

        # 2. float64 references, and float32 autograd's distance from them.
        m64, _, _, _ = build(kind, torch.float64)
        px64 = px.double()
        mirror = 0.5 * px.flip(-1)
        batch = torch.cat([px, mirror])
        out, gl32 = {}, {}
        _, _, _, g = grads(m64, px64, lambda z: z[0, target], names)
        for n in names:
            out["logit/grad.param." + n] = g["param." + n]
        _, _, _, g32 = grads(m32, px, lambda z: z[0, target], names)
        _, _, loss_label, g = grads(m64, px64, lambda z: F.cross_entropy(z, torch.tensor([LABEL])), names)
        for k, v in g.items():
            out["label/grad." + k] = v
        _, _, _, gl32 = grads(m32, px, lambda z: F.cross_entropy(z, torch.tensor([LABEL])), names)
        _, _, loss_batch, g = grads(m64, batch.double(), lambda z: F.cross_entropy(z, torch.tensor(BATCH_LABELS)), names)
        for n in names:
            out["batch/grad.param." + n] = g["param." + n]
        out["batch/pixel_values"] = batch
        _, _, _, gb32 = grads(m32, batch, lambda z: F.cross_entropy(z, torch.tensor(BATCH_LABELS)), names)
        f32 = 0.0
        for prefix, g32x in (("logit/grad.", g32), ("label/grad.", gl32), ("batch/grad.", gb32)):
            for n in names:
                if n.endswith("attention.self.key.bias"):
                    continue  # true gradient 0: rounding noise on both sides
                f32 = max(f32, rel(g32x["param." + n], out[prefix + "param." + n]))
        print(f"{kind}: float32 torch autograd vs float64, parameters: worst max|Δ|/max|ref| {f32:.2e} "
              f"(key biases aside); loss label {loss_label:.6f}, batch {loss_batch:.6f}")
        if args.out:
            meta_out = {"producer": f"tools/torchref/perceiver_param_grads.py (torch {torch.__version__}, float64)",
                        "arch": kind, "target": str(target), "label": str(LABEL),
                        "batch_labels": ",".join(map(str, BATCH_LABELS)),
                        "loss_label": repr(loss_label), "loss_batch": repr(loss_batch)}
            if kind == "fourier":  # torch.save kept this state dict in registration order
                meta_out["named_parameters"] = ",".join(names)
            write_safetensors(d + "/expected-params.safetensors", out, meta_out)
            print(f"  wrote {d}/expected-params.safetensors ({len(out)} tensors)")
    if not ok:
        sys.exit("the transcription does not reproduce Hugging Face's tensors")


if __name__ == "__main__":
    main()
