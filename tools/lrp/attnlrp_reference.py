#!/usr/bin/env python3
"""Reference AttnLRP and CP-LRP maps for the three tiny image-classifier fixtures (fourier, learned,
conv), by the rules of ../shared/specs/attnlrp.md, for core's and explain's tests.

Hugging Face's transformers cannot be installed here (no PyPI), so this is a torch transcription of
modeling_perceiver.py's image classifiers (PerceiverLayer with pre-LayerNorm attention, query residual
and GELU MLP; encoder cross-attention, latent stack with shared weights, classification decoder; the
three input stages). Before it makes any reference, the script checks that the transcription with
the plain chain rule reproduces the HF-made fixtures testdata/tiny*/expected*.safetensors — the
forward tensors (logits, every hidden state, every attention map) and the gradients
(grad.pixel_values, grad.hidden_states.*) — in float32, to 1e-5 of each tensor's largest magnitude,
and stops otherwise.

The rules are then put in as LXT's "efficient" implementation does, by changing only gradients
(forward values unchanged), here with detach tricks in float64:
  LayerNorm σ constant:  (x − μ)/σ.detach()·w + β
  GELU identity (AttnLRP): a = gelu(h).detach() + h·r.detach() − (h·r).detach(), r = gelu(h)/(h + 1e-10)
  A·V uniform (AttnLRP): ½·A·V.detach() + ½·A.detach()·V   (likewise S = Q·Kᵀ)
  CP-LRP: A.detach()·V (nothing reaches A, Q or K); GELU keeps its derivative.
Relevance of x is x ⊙ ∂̂y/∂x, from y = logit[target]. Every term of the conservation budget is
computed explicitly (biases as leaf tensors, softmax and GELU remainders from retained gradients)
and the script asserts that it closes in float64 to 1e-10·|y|.

Writes testdata/lrp/{fourier,learned,conv}.safetensors: `attnlrp`, `cp_lrp` [H, W] (Σ_c x_c ĝ_x,c),
`attnlrp_latents`, `cp_lrp_latents` [L] (Σ_c of hidden_states.0 ⊙ its modified gradient), all F64;
the metadata holds the budget terms in full precision as `<method>.<term>` (pixels, positions,
latents, query, biases, softmax, gelu, logit) and the target.

Usage (from the repository root): /usr/bin/python3 tools/lrp/attnlrp_reference.py
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIXTURES = {
    "fourier": ("testdata/tiny", "expected-grads.safetensors"),
    "learned": ("testdata/tiny-learned", "expected.safetensors"),
    "conv": ("testdata/tiny-conv", "expected.safetensors"),
}
DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64}


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = raw[8 + n:]
    out = {}
    for k, v in header.items():
        a, b = v["data_offsets"]
        out[k] = torch.from_numpy(np.frombuffer(data[a:b], dtype=DTYPES[v["dtype"]]).reshape(v["shape"]).copy())
    return out, meta


def write_safetensors(path, tensors, meta):
    header, blobs, off = {"__metadata__": meta}, [], 0
    for k in sorted(tensors):
        b = np.ascontiguousarray(tensors[k].detach().numpy().astype(np.float64)).tobytes()
        header[k] = {"dtype": "F64", "shape": list(tensors[k].shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


class Net:
    """The image classifier with a rule set: "plain", "attnlrp" or "cp-lrp". Keeps what the budget
    needs: bias leaves, softmax (A, s) and GELU (h, a) pairs with retained gradients."""

    def __init__(self, weights, cfg, arch, rules, dtype):
        self.w = {k: v.detach().to(dtype).clone() for k, v in weights.items() if v.dtype != torch.int64}
        self.cfg, self.arch, self.rules, self.dtype = cfg, arch, rules, dtype
        self.biases, self.softmaxes, self.gelus, self.attn = [], [], [], []
        # Every bias (Linear, LayerNorm β) is a leaf so that its share Σ b⊙ĝ_b can be read.
        for k, v in self.w.items():
            if k.endswith(".bias"):
                v.requires_grad_(True)
                self.biases.append(v)

    def ln(self, x, p):
        w, b = self.w[p + ".weight"], self.w[p + ".bias"]
        mu = x.mean(-1, keepdim=True)
        sd = torch.sqrt(((x - mu) ** 2).mean(-1, keepdim=True) + 1e-5)
        if self.rules != "plain":
            sd = sd.detach()
        return (x - mu) / sd * w + b

    def lin(self, x, p):
        return F.linear(x, self.w[p + ".weight"], self.w[p + ".bias"])

    def gelu(self, h):
        h.retain_grad()
        if self.rules == "attnlrp":
            g = F.gelu(h)
            r = (g / (h + 1e-10)).detach()
            a = g.detach() + h * r - (h * r).detach()
        else:
            a = F.gelu(h)
        a.retain_grad()
        self.gelus.append((h, a))
        return a

    def product(self, a, b):
        """a·b with the rules' split of the gradient between the two factors."""
        if self.rules == "attnlrp":
            return 0.5 * (a @ b.detach()) + 0.5 * (a.detach() @ b)
        return a @ b

    def layer(self, p, hq, kv, heads):
        q_in = self.ln(hq, p + ".attention.self.layernorm1")
        kv_in = self.ln(kv, p + ".attention.self.layernorm2") if kv is not None else q_in
        Q = self.lin(q_in, p + ".attention.self.query")
        K = self.lin(kv_in, p + ".attention.self.key")
        V = self.lin(kv_in, p + ".attention.self.value")
        nq, nk = Q.shape[0], K.shape[0]
        dqk, dv = Q.shape[1] // heads, V.shape[1] // heads
        Qh = Q.view(nq, heads, dqk).transpose(0, 1)
        Kh = K.view(nk, heads, dqk).transpose(0, 1)
        Vh = V.view(nk, heads, dv).transpose(0, 1)
        s = self.product(Qh, Kh.transpose(-1, -2)) / math.sqrt(dqk)
        A = torch.softmax(s, dim=-1)
        self.attn.append(A)
        if self.rules == "cp-lrp":
            C = A.detach() @ Vh
        else:
            s.retain_grad()
            A.retain_grad()
            self.softmaxes.append((A, s))
            C = self.product(A, Vh)
        C = C.transpose(0, 1).reshape(nq, heads * dv)
        o = self.lin(C, p + ".attention.output.dense") + hq
        m = self.lin(self.gelu(self.lin(self.ln(o, p + ".layernorm"), p + ".mlp.dense1")), p + ".mlp.dense2")
        return m + o

    def tokens(self, x, inputs_ref):
        """x [3, H, W] → tokens [N, C] and the position leaf whose relevance is "positions"."""
        w = self.w
        if self.arch == "fourier":
            Fp = inputs_ref[0, :, 3:].to(self.dtype).clone().requires_grad_(True)
            return torch.cat([x.permute(1, 2, 0).reshape(-1, 3), Fp], dim=1), Fp
        if self.arch == "learned":
            pre = "perceiver.input_preprocessor."
            c = F.conv2d(x[None], w[pre + "convnet_1x1.weight"], w[pre + "convnet_1x1.bias"])[0]
            P = w[pre + "position_embeddings.position_embeddings"].clone().requires_grad_(True)
            pos = F.linear(P, w[pre + "positions_projection.weight"], w[pre + "positions_projection.bias"])
            return torch.cat([c.permute(1, 2, 0).reshape(-1, c.shape[0]), pos], dim=1), P
        pre = "perceiver.input_preprocessor.convnet."
        c = F.conv2d(x[None], w[pre + "conv.weight"], None, stride=2, padding=3)
        alpha = w[pre + "batchnorm.weight"] / torch.sqrt(w[pre + "batchnorm.running_var"] + 1e-5)
        shift = (w[pre + "batchnorm.bias"] - w[pre + "batchnorm.running_mean"] * alpha).detach().requires_grad_(True)
        self.biases.append(shift)
        c = torch.relu(c * alpha[None, :, None, None] + shift[None, :, None, None])
        c = F.max_pool2d(c, 3, 2)[0]
        nc = c.shape[0]
        Fp = inputs_ref[0, :, nc:].to(self.dtype).clone().requires_grad_(True)
        return torch.cat([c.permute(1, 2, 0).reshape(-1, nc), Fp], dim=1), Fp

    def forward(self, x, inputs_ref):
        w, cfg = self.w, self.cfg
        tok, pos = self.tokens(x, inputs_ref)
        lat = w["perceiver.embeddings.latents"].clone().requires_grad_(True)
        h = self.layer("perceiver.encoder.cross_attention", lat, tok, cfg["num_cross_attention_heads"])
        hidden = [h]
        for _ in range(cfg["num_blocks"]):
            for i in range(cfg["num_self_attends_per_block"]):
                h = self.layer("perceiver.encoder.self_attends.%d" % i, h, None, cfg["num_self_attention_heads"])
                hidden.append(h)
        dec = "perceiver.decoder.decoder."
        qd = w[dec + "output_position_encodings.position_embeddings"].clone().requires_grad_(True)
        out = self.layer(dec + "decoding_cross_attention", qd, h, 1)
        logits = self.lin(out, dec + "final_layer")[0]
        return logits, hidden, {"tok": tok, "pos": pos, "lat": lat, "qd": qd}


def rel_err(a, b):
    a, b = a.detach().double().reshape(-1), b.double().reshape(-1)
    return float((a - b).abs().max() / b.abs().max())


def check_transcription(arch, weights, cfg, exp, target):
    """Plain rules in float32: forward tensors and gradients against the HF fixture."""
    net = Net(weights, cfg, arch, "plain", torch.float32)
    x = exp["pixel_values"][0].clone().requires_grad_(True)
    logits, hidden, leaves = net.forward(x, exp["inputs"])
    for h in hidden:
        h.retain_grad()
    logits[target].backward()
    checks = {"inputs": (leaves["tok"], exp["inputs"][0]), "logits": (logits, exp["logits"][0]),
              "cross_attentions.encoder": (net.attn[0], exp["cross_attentions.encoder"][0]),
              "cross_attentions.decoder": (net.attn[-1], exp["cross_attentions.decoder"][0]),
              "grad.pixel_values": (x.grad, exp["grad.pixel_values"][0])}
    for i, h in enumerate(hidden):
        checks["hidden_states.%d" % i] = (h, exp["hidden_states.%d" % i][0])
        checks["grad.hidden_states.%d" % i] = (h.grad, exp["grad.hidden_states.%d" % i][0])
    for j, a in enumerate(net.attn[1:-1]):
        checks["attentions.%d" % j] = (a, exp["attentions.%d" % j][0])
    worst = 0.0
    for name, (got, want) in checks.items():
        e = rel_err(got, want)
        worst = max(worst, e)
        if e > 1e-5:
            sys.exit("%s: the transcription misses the HF fixture's %s by %.3g of its largest magnitude" % (arch, name, e))
    print("%s: transcription reproduces the HF fixture (%d tensors, worst %.2g relative)" % (arch, len(checks), worst))


def relevance(arch, weights, cfg, exp, target, rules):
    net = Net(weights, cfg, arch, rules, torch.float64)
    x = exp["pixel_values"][0].double().clone().requires_grad_(True)
    logits, hidden, leaves = net.forward(x, exp["inputs"])
    hidden[0].retain_grad()
    y = logits[target]
    y.backward()
    amap = (x * x.grad).sum(0)
    lat_rel = (hidden[0] * hidden[0].grad).sum(1)
    terms = {
        "pixels": float(amap.sum()),
        "positions": float((leaves["pos"] * leaves["pos"].grad).sum()),
        "latents": float((leaves["lat"] * leaves["lat"].grad).sum()),
        "query": float((leaves["qd"] * leaves["qd"].grad).sum()),
        "biases": float(sum((b * b.grad).sum() for b in net.biases if b.grad is not None)),
        "softmax": float(sum((A * A.grad).sum() - (s * s.grad).sum() for A, s in net.softmaxes)),
        "gelu": float(sum((a * a.grad).sum() - (h * h.grad).sum() for h, a in net.gelus)),
        "logit": float(y),
    }
    total = sum(v for k, v in terms.items() if k != "logit")
    gap = abs(total - terms["logit"])
    if gap > 1e-10 * abs(terms["logit"]):
        sys.exit("%s %s: the budget does not close: Σ terms %.17g, y %.17g" % (arch, rules, total, terms["logit"]))
    print("%s %-7s budget closes to %.2g·|y|: %s" % (arch, rules, gap / abs(terms["logit"]),
                                                     ", ".join("%s %.6g" % kv for kv in terms.items())))
    return amap, lat_rel, terms


def main():
    torch.set_grad_enabled(True)
    os.makedirs(os.path.join(ROOT, "testdata/lrp"), exist_ok=True)
    for arch, (folder, expname) in FIXTURES.items():
        weights, _ = read_safetensors(os.path.join(ROOT, folder, "model.safetensors"))
        with open(os.path.join(ROOT, folder, "config.json")) as f:
            cfg = json.load(f)
        exp, meta = read_safetensors(os.path.join(ROOT, folder, expname))
        target = int(meta["target"])
        check_transcription(arch, weights, cfg, exp, target)
        tensors, md = {}, {"producer": "tools/lrp/attnlrp_reference.py (torch %s, float64)" % torch.__version__,
                           "arch": arch, "fixture": folder + "/" + expname, "target": str(target)}
        for rules, name in (("attnlrp", "attnlrp"), ("cp-lrp", "cp_lrp")):
            amap, lat, terms = relevance(arch, weights, cfg, exp, target, rules)
            tensors[name] = amap
            tensors[name + "_latents"] = lat
            for k, v in terms.items():
                md["%s.%s" % (rules, k)] = repr(v)
        out = os.path.join(ROOT, "testdata/lrp", arch + ".safetensors")
        write_safetensors(out, tensors, md)
        print("wrote", out)


if __name__ == "__main__":
    main()
