#!/usr/bin/python3
"""Float64 references for ROAD and the model-randomisation sanity checks (issue 25), written to
testdata/roadsanity/. Run with Debian's Python (/usr/bin/python3: torch 1.13, numpy, scipy 1.10,
skimage 0.19 from python3-torch, python3-scipy, python3-skimage) from the repository root:

    go build -o /tmp/probe ./cmd/probe
    /tmp/probe sanity --model testdata/tiny --image testdata/tiny/chelsea.png \
        --methods saliency,input-x-gradient --seed 7 --save-randomized /tmp/rs-ckpt --out /tmp/rs-out
    /usr/bin/python3 tools/roadsanity/make_references.py /tmp/rs-ckpt

Nothing here shares code with the Go implementation:
- the model is a torch.nn.functional transcription of Hugging Face's PerceiverForImageClassification-
  Fourier (modeling_perceiver.py: pre-LayerNorm attention with query residual, exact-GELU MLP, the
  classification decoder), run in float64. It is first checked against the Hugging Face-made
  fixture testdata/tiny/expected*.safetensors (hidden states, logits, the saliency and
  input-x-gradient maps of target 1) and stops if it differs by more than 2e-6 (float32 HF vs
  float64 here); transformers itself cannot be installed on this machine (no PyPI).
- ROAD: ranking by numpy lexsort (ties by the lower flat index), k = j*N // steps, the imputation
  system assembled as a DENSE matrix from the definition in ../shared/specs/road-sanity.md (A4)
  and solved by numpy.linalg.solve; curves are softmax probabilities of the unperturbed top-1 from
  the float64 transcription, AUC by numpy.trapz over the given fractions.
- Sanity: Spearman by scipy.stats.spearmanr, SSIM by skimage.metrics.structural_similarity(
  data_range=1.0) with its defaults, on float64 maps; the maps of every --save-randomized
  checkpoint are recomputed here by autograd.
Outputs: road.safetensors, similarity.safetensors, sanity.safetensors (+ metadata).
"""
import json
import math
import os
import struct
import sys

import numpy as np
import scipy.stats
import skimage.metrics
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = os.path.join(ROOT, "testdata", "roadsanity")


def read_st(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        assert t["dtype"] == "F32", (path, name, t["dtype"])
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype="<f4").reshape(t["shape"]).astype(np.float64)
    return out


def write_st(path, tensors, metadata):
    header, blobs, off = {"__metadata__": metadata}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name], dtype="<f8")
        header[name] = {"dtype": "F64", "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        blobs.append(a.tobytes())
        off += a.nbytes
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


# ---- the model (Hugging Face modeling_perceiver.py, transcribed) ----

def load_model(folder):
    cfg = json.load(open(os.path.join(folder, "config.json")))
    w = {k: torch.tensor(v) for k, v in read_st(os.path.join(folder, "model.safetensors")).items()}
    return cfg, w


def layer(w, pre, q, kv, heads, cross, residual):
    a = pre + ".attention.self."
    ln = lambda x, n: F.layer_norm(x, x.shape[-1:], w[n + ".weight"], w[n + ".bias"], 1e-5)
    lin = lambda x, n: F.linear(x, w[n + ".weight"], w[n + ".bias"])
    qn = ln(q, a + "layernorm1")
    kvn = ln(kv, a + "layernorm2") if cross else qn
    Q, K, V = lin(qn, a + "query"), lin(kvn, a + "key"), lin(kvn, a + "value")
    nq, nk = Q.shape[0], K.shape[0]
    dqk, dv = Q.shape[1] // heads, V.shape[1] // heads
    Q = Q.view(nq, heads, dqk).transpose(0, 1)
    K = K.view(nk, heads, dqk).transpose(0, 1)
    V = V.view(nk, heads, dv).transpose(0, 1)
    probs = torch.softmax(Q @ K.transpose(1, 2) / math.sqrt(dqk), dim=-1)
    ctx = (probs @ V).transpose(0, 1).reshape(nq, heads * dv)
    out = lin(ctx, pre + ".attention.output.dense")
    if residual:
        out = out + q
    h = lin(F.gelu(lin(ln(out, pre + ".layernorm"), pre + ".mlp.dense1")), pre + ".mlp.dense2")
    return out + h


def forward(cfg, w, pixels, pos):
    """pixels [3, H, W] → logits; pos = the Fourier features of the fixture's inputs [N, C−3]."""
    x = torch.cat([pixels.reshape(3, -1).T, pos], dim=1)
    lat = layer(w, "perceiver.encoder.cross_attention", w["perceiver.embeddings.latents"], x,
                cfg["num_cross_attention_heads"], True, cfg.get("use_query_residual", True))
    states = [lat]
    for _ in range(cfg["num_blocks"]):
        for i in range(cfg["num_self_attends_per_block"]):
            lat = layer(w, "perceiver.encoder.self_attends.%d" % i, lat, lat, cfg["num_self_attention_heads"], False, True)
            states.append(lat)
    d = "perceiver.decoder.decoder."
    q = w[d + "output_position_encodings.position_embeddings"]
    out = layer(w, d + "decoding_cross_attention", q, lat, 1, True, True)
    return F.linear(out, w[d + "final_layer.weight"], w[d + "final_layer.bias"])[0], states


def grad_maps(cfg, w, pixels, pos, target):
    px = pixels.clone().requires_grad_(True)
    logits, _ = forward(cfg, w, px, pos)
    (g,) = torch.autograd.grad(logits[target], px)
    return {"saliency": g.abs().amax(0).numpy(), "input-x-gradient": (px.detach() * g).sum(0).numpy()}


def check_transcription():
    tiny = os.path.join(ROOT, "testdata", "tiny")
    cfg, w = load_model(tiny)
    exp = read_st(os.path.join(tiny, "expected-grads.safetensors"))
    px = torch.tensor(exp["pixel_values"][0])
    pos = torch.tensor(exp["inputs"][0][:, 3:])
    logits, states = forward(cfg, w, px, pos)
    worst = 0.0
    for i, s in enumerate(states):
        ref = exp["hidden_states.%d" % i][0]
        worst = max(worst, np.abs(s.detach().numpy() - ref).max() / np.abs(ref).max())
    worst = max(worst, np.abs(logits.detach().numpy() - exp["logits"][0]).max() / np.abs(exp["logits"]).max())
    maps = grad_maps(cfg, w, px, pos, 1)
    for name, key in [("saliency", "map.saliency"), ("input-x-gradient", "map.input_x_gradient")]:
        ref = exp[key].reshape(maps[name].shape)
        worst = max(worst, np.abs(maps[name] - ref).max() / np.abs(ref).max())
    print("transcription vs Hugging Face fixture: worst relative difference %.2e" % worst)
    if worst > 2e-6:
        sys.exit("the transcription does not reproduce the fixture")
    return cfg, w, px, pos


# ---- ROAD ----

NEIGHBOURS = [(-1, -1, 1 / 12), (-1, 0, 1 / 6), (-1, 1, 1 / 12), (0, -1, 1 / 6), (0, 1, 1 / 6),
              (1, -1, 1 / 12), (1, 0, 1 / 6), (1, 1, 1 / 12)]


def order(m, morf):
    idx = np.arange(m.size)
    return np.lexsort((idx, -m if morf else m))  # last key primary: value, then the lower index


def impute_dense(pixels, removed):
    c, h, w = pixels.shape
    flat = pixels.reshape(3, -1)
    pos = {p: i for i, p in enumerate(removed)}
    u = len(removed)
    A = np.zeros((u, u))
    b = np.zeros((3, u))
    for i, p in enumerate(removed):
        r, cc = divmod(p, w)
        for dr, dc, wt in NEIGHBOURS:
            rr, c2 = r + dr, cc + dc
            if 0 <= rr < h and 0 <= c2 < w:
                q = rr * w + c2
                A[i, i] += wt
                if q in pos:
                    A[i, pos[q]] -= wt
                else:
                    b[:, i] += wt * flat[:, q]
    x = np.linalg.solve(A, b.T).T
    out = flat.copy()
    out[:, removed] = x
    return out.reshape(c, h, w)


def road_references(cfg, w, px, pos):
    exp = read_st(os.path.join(ROOT, "testdata", "tiny", "expected-grads.safetensors"))
    h, w_ = px.shape[1:]
    n = h * w_
    levels = np.array([float((p * 7) % 5) - 2 for p in range(n)]).reshape(h, w_)  # many ties
    maps = {"levels": levels, "saliency": exp["map.saliency"].reshape(h, w_),
            "input_x_gradient": exp["map.input_x_gradient"].reshape(h, w_)}
    steps = 10
    base, _ = forward(cfg, w, px, pos)
    target = int(torch.argmax(base))
    out = {"pixel_values": px.numpy()}
    pixels = px.numpy()
    for name, m in maps.items():
        out["map." + name] = m.astype(np.float32).astype(np.float64)  # the Go test reads float32
        m32 = out["map." + name].ravel()
        for d, morf in [("morf", True), ("lerf", False)]:
            o = order(m32, morf)
            imgs, probs = [], []
            for j in range(1, steps):
                k = j * n // steps
                img = impute_dense(pixels, list(o[:k]))
                imgs.append(img)
                logits, _ = forward(cfg, w, torch.tensor(img), pos)
                probs.append(float(torch.softmax(logits, 0)[target]))
            fr = np.arange(1, steps) / steps
            out["imputed.%s.%s" % (name, d)] = np.stack(imgs)
            out["prob.%s.%s" % (name, d)] = np.array(probs)
            out["auc.%s.%s" % (name, d)] = np.array([np.trapz(probs, fr)])
    write_st(os.path.join(OUT, "road.safetensors"), out, {"target": str(target), "steps": str(steps)})
    print("road.safetensors: target", target)


# ---- similarities ----

def sims(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    def sp(x, y):
        if np.all(x == x.flat[0]) or np.all(y == y.flat[0]):
            return np.nan
        return scipy.stats.spearmanr(x.ravel(), y.ravel()).correlation
    na, nb = np.abs(a), np.abs(b)
    na = na / na.max() if na.max() > 0 else na
    nb = nb / nb.max() if nb.max() > 0 else nb
    ssim = skimage.metrics.structural_similarity(na, nb, data_range=1.0) if min(a.shape) >= 7 else np.nan
    return np.array([sp(np.abs(a), np.abs(b)), sp(a, b), ssim])


def similarity_references():
    """Maps with ties, signs, a constant and an all-zero one, scored by scipy and skimage."""
    rng = np.random.default_rng(25)
    h, w = 11, 13
    pairs = {
        "random": (rng.normal(size=(h, w)), rng.normal(size=(h, w))),
        "ties": (np.round(rng.normal(size=(h, w)) * 2) / 2, np.round(rng.normal(size=(h, w)))),
        "related": None,
        "constant": (np.full((h, w), 0.5), rng.normal(size=(h, w))),
        "zero": (np.zeros((h, w)), rng.uniform(size=(h, w))),
        "small": (rng.normal(size=(5, 9)), rng.normal(size=(5, 9))),
    }
    a = rng.normal(size=(h, w))
    pairs["related"] = (a, a + 0.3 * rng.normal(size=(h, w)))
    out = {}
    for name, (x, y) in pairs.items():
        x, y = x.astype(np.float32).astype(np.float64), y.astype(np.float32).astype(np.float64)
        out["a." + name], out["b." + name] = x, y
        out["sim." + name] = sims(x, y)  # [spearman_abs, spearman, ssim]; NaN = null
    write_st(os.path.join(OUT, "similarity.safetensors"), out, {"order": "spearman_abs,spearman,ssim"})
    print("similarity.safetensors:", {k: v for k, v in out.items() if k.startswith("sim.")})


def sanity_references(ckpt, cfg, w, px, pos):
    """Maps of every checkpoint of `probe sanity --seed 7 --save-randomized ckpt` on tiny."""
    base, _ = forward(cfg, w, px, pos)
    target = int(torch.argmax(base))
    m0 = grad_maps(cfg, w, px, pos, target)
    out = {}
    steps = sorted(d for d in os.listdir(ckpt) if d.startswith("step-"))
    for s in steps:
        c2, w2 = load_model(os.path.join(ckpt, s))
        mk = grad_maps(c2, w2, px, pos, target)
        k = int(s[5:])
        for name in m0:
            out["sim.%02d.%s" % (k, name)] = sims(m0[name], mk[name])
        # a fingerprint of the checkpoint: Σ and Σ² of every tensor, to notice other draws
        tot = sum(float(v.sum()) for v in w2.values())
        sq = sum(float((v * v).sum()) for v in w2.values())
        out["fingerprint.%02d" % k] = np.array([tot, sq])
    write_st(os.path.join(OUT, "sanity.safetensors"), out,
             {"target": str(target), "seed": "7", "steps": str(len(steps)), "methods": "saliency,input-x-gradient"})
    print("sanity.safetensors: target", target, "steps", len(steps))


def main():
    os.makedirs(OUT, exist_ok=True)
    cfg, w, px, pos = check_transcription()
    road_references(cfg, w, px, pos)
    similarity_references()
    if len(sys.argv) > 1:
        sanity_references(sys.argv[1], cfg, w, px, pos)


if __name__ == "__main__":
    main()
