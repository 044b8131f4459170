"""A torch.nn transcription of Hugging Face's vision Perceiver classifiers, for training references.

transformers cannot be installed where this was written (no PyPI), so this module writes
PerceiverForImageClassificationFourier / ...Learned / ...ConvProcessing with torch.nn, module for
module as transformers/models/perceiver/modeling_perceiver.py builds them, under the same
state_dict names (so torch.optim.AdamW sees the same named_parameters()). Eval-mode semantics:
no dropout, BatchNorm on its running statistics. `check_fixtures.py` shows that it reproduces
the HF-made fixtures (forward tensors and autograd gradients) before anything else uses it.

Stdlib + torch + numpy only; safetensors are read and written by hand (no safetensors package).
"""
import json
import math
import os
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DT = {"F32": np.float32, "F64": np.float64, "I64": np.int64}
DT_NAME = {np.dtype(np.float32): "F32", np.dtype(np.float64): "F64", np.dtype(np.int64): "I64"}


def load_safetensors(path):
    """{name: numpy array} of a safetensors file (F32/F64/I64)."""
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    base = 8 + n
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        out[k] = np.frombuffer(raw[base + a:base + b], dtype=DT[v["dtype"]]).reshape(v["shape"]).copy()
    return out


def save_safetensors(path, tensors, metadata=None):
    """Writes {name: numpy array} as safetensors, names sorted."""
    header, blobs, off = {}, [], 0
    for k in sorted(tensors):
        a = np.ascontiguousarray(tensors[k])
        b = a.tobytes()
        header[k] = {"dtype": DT_NAME[a.dtype], "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


class Box(nn.Module):
    """A named container (HF's modules hold their children under these names)."""


class SelfAttention(nn.Module):
    """PerceiverSelfAttention: LN1 on the queries, LN2 on the keys/values (cross-attention only)."""

    def __init__(self, q_dim, kv_dim, qk, v, heads, cross):
        super().__init__()
        self.layernorm1 = nn.LayerNorm(q_dim)
        if cross:
            self.layernorm2 = nn.LayerNorm(kv_dim)
        self.query = nn.Linear(q_dim, qk)
        self.key = nn.Linear(kv_dim, qk)
        self.value = nn.Linear(kv_dim, v)
        self.heads, self.cross = heads, cross

    def forward(self, x, inputs, keep):
        h = self.layernorm1(x)
        kv = self.layernorm2(inputs) if self.cross else h
        q, k, v = self.query(h), self.key(kv), self.value(kv)
        b, nq, _ = q.shape
        nk = k.shape[1]
        H = self.heads
        dqk, dv = q.shape[-1] // H, v.shape[-1] // H
        q = q.view(b, nq, H, dqk).transpose(1, 2)
        k = k.view(b, nk, H, dqk).transpose(1, 2)
        v = v.view(b, nk, H, dv).transpose(1, 2)
        probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(dqk), dim=-1)
        if keep is not None:
            keep.append(probs)
        return (probs @ v).transpose(1, 2).reshape(b, nq, H * dv)


class Layer(nn.Module):
    """PerceiverLayer: x + Wo·attention(LN1(x), LN2(kv)) (query residual), then + MLP(LN(·))."""

    def __init__(self, q_dim, kv_dim, heads, widening, cross):
        super().__init__()
        qk = kv_dim  # cross_attention_shape_for_attention "kv"
        attention = Box()
        attention.add_module("self", SelfAttention(q_dim, kv_dim, qk, qk, heads, cross))
        attention.output = Box()
        attention.output.dense = nn.Linear(qk, q_dim)
        self.attention = attention
        self.layernorm = nn.LayerNorm(q_dim)
        self.mlp = Box()
        self.mlp.dense1 = nn.Linear(q_dim, widening * q_dim)
        self.mlp.dense2 = nn.Linear(widening * q_dim, q_dim)

    def forward(self, x, inputs=None, keep=None):
        ctx = self.attention._modules["self"](x, inputs, keep)
        a = self.attention.output.dense(ctx) + x
        return a + self.mlp.dense2(F.gelu(self.mlp.dense1(self.layernorm(a))))


def fourier_features(h, w, bands, max_res, dtype):
    ys = torch.linspace(-1, 1, h, dtype=torch.float32)
    xs = torch.linspace(-1, 1, w, dtype=torch.float32)
    pos = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1).reshape(-1, 2)
    freqs = torch.stack([torch.linspace(1.0, r / 2.0, bands, dtype=torch.float32) for r in max_res])
    scaled = (pos[:, :, None] * freqs[None]).reshape(pos.shape[0], -1)
    f = torch.cat([pos, torch.sin(math.pi * scaled), torch.cos(math.pi * scaled)], dim=-1)
    return f.to(dtype)


def proc_size(prep):
    s = prep.get("size", 224)
    if isinstance(s, dict):
        return s["height"], s["width"]
    return s, s


class Perceiver(nn.Module):
    """PerceiverForImageClassification{Fourier,Learned,ConvProcessing}, built from config.json,
    preprocessor_config.json and the checkpoint's shapes (the stages' widths, as core does)."""

    def __init__(self, cfg, prep, shapes):
        super().__init__()
        arch = cfg["architectures"][0]
        self.kind = {"PerceiverForImageClassificationFourier": "fourier",
                     "PerceiverForImageClassificationLearned": "learned",
                     "PerceiverForImageClassificationConvProcessing": "conv"}[arch]
        L, D, C = cfg["num_latents"], cfg["d_latents"], cfg["d_model"]
        self.size = proc_size(prep)
        per = Box()
        per.embeddings = Box()
        per.embeddings.latents = nn.Parameter(torch.zeros(L, D))
        pre = Box()
        if self.kind == "fourier":
            self.bands, self.max_res = (C - 5) // 4, self.size
        elif self.kind == "learned":
            out = shapes["perceiver.input_preprocessor.convnet_1x1.weight"][0]
            P = shapes["perceiver.input_preprocessor.position_embeddings.position_embeddings"][1]
            pre.convnet_1x1 = nn.Conv2d(3, out, 1)
            pre.position_embeddings = Box()
            pre.position_embeddings.position_embeddings = nn.Parameter(torch.zeros(cfg["image_size"] ** 2, P))
            pre.positions_projection = nn.Linear(P, C - out)
        else:
            out = shapes["perceiver.input_preprocessor.convnet.conv.weight"][0]
            pre.convnet = Box()
            pre.convnet.conv = nn.Conv2d(3, out, 7, stride=2, padding=3, bias=False)
            pre.convnet.batchnorm = nn.BatchNorm2d(out)
            self.bands = (C - out - 2) // 4
            self.max_res = (self.size[0] // 4, self.size[1] // 4)
        per.input_preprocessor = pre
        enc = Box()
        enc.cross_attention = Layer(D, C, cfg["num_cross_attention_heads"], cfg["cross_attention_widening_factor"], True)
        enc.self_attends = nn.ModuleList([Layer(D, D, cfg["num_self_attention_heads"], cfg["self_attention_widening_factor"], False)
                                          for _ in range(cfg["num_self_attends_per_block"])])
        per.encoder = enc
        self.blocks = cfg["num_blocks"]
        dec = Box()
        dec.decoder = Box()
        dd = dec.decoder
        dd.output_position_encodings = Box()
        dd.output_position_encodings.position_embeddings = nn.Parameter(torch.zeros(1, D))
        dd.decoding_cross_attention = Layer(D, D, 1, 1, True)
        dd.final_layer = nn.Linear(D, len(cfg["id2label"]))
        per.decoder = dec
        self.perceiver = per

    def tokens(self, pixels):
        b, _, h, w = pixels.shape
        pre = self.perceiver.input_preprocessor
        if self.kind == "fourier":
            x = pixels.permute(0, 2, 3, 1).reshape(b, h * w, 3)
            pos = fourier_features(h, w, self.bands, self.max_res, pixels.dtype)
            return torch.cat([x, pos.expand(b, -1, -1)], dim=-1)
        if self.kind == "learned":
            x = pre.convnet_1x1(pixels).permute(0, 2, 3, 1).reshape(b, h * w, -1)
            pos = pre.positions_projection(pre.position_embeddings.position_embeddings)
            return torch.cat([x, pos.expand(b, -1, -1)], dim=-1)
        y = F.max_pool2d(F.relu(pre.convnet.batchnorm(pre.convnet.conv(pixels))), 3, 2)
        gh, gw = y.shape[2], y.shape[3]
        x = y.permute(0, 2, 3, 1).reshape(b, gh * gw, -1)
        pos = fourier_features(gh, gw, self.bands, self.max_res, pixels.dtype)
        return torch.cat([x, pos.expand(b, -1, -1)], dim=-1)

    def forward(self, pixels, keep=None, hidden=None):
        """Logits [B, labels]; keep collects the attention probabilities (encoder, self…, decoder),
        hidden the distinct hidden states (0 after the cross-attention)."""
        per = self.perceiver
        b = pixels.shape[0]
        inputs = self.tokens(pixels)
        x = per.encoder.cross_attention(per.embeddings.latents.expand(b, -1, -1), inputs, keep)
        if hidden is not None:
            hidden.append(x)
        for _ in range(self.blocks):
            for layer in per.encoder.self_attends:
                x = layer(x, None, keep)
                if hidden is not None:
                    hidden.append(x)
        dd = per.decoder.decoder
        q = dd.output_position_encodings.position_embeddings.expand(b, -1, -1)
        out = dd.decoding_cross_attention(q, x, keep)
        return dd.final_layer(out[:, 0])


def load_model(folder, weights=None, dtype=torch.float64):
    """The model of a model folder (config.json, preprocessor_config.json, model.safetensors),
    or with the state dict read from weights instead; eval mode, in dtype."""
    cfg = json.load(open(os.path.join(folder, "config.json")))
    prep = json.load(open(os.path.join(folder, "preprocessor_config.json")))
    sd = load_safetensors(weights or os.path.join(folder, "model.safetensors"))
    m = Perceiver(cfg, prep, {k: v.shape for k, v in sd.items()})
    state = {k: torch.from_numpy(v) for k, v in sd.items()}
    m.load_state_dict(state, strict=True)
    m = m.to(dtype)
    m.eval()
    return m, cfg, prep


def state_numpy(m, dtype=np.float32):
    """The state dict as numpy, floats in dtype, HF names (num_batches_tracked stays int64)."""
    out = {}
    for k, v in m.state_dict().items():
        a = v.detach().cpu().numpy()
        out[k] = a.astype(dtype) if a.dtype.kind == "f" else a
    return out


def preprocess(path, prep):
    """PerceiverImageProcessor on an image file with PIL: RGB, centre crop (int(size/crop_size·min)
    per axis, HF's placement), bicubic resize, /255 in float64 → float32, ImageNet normalisation in
    float32. Returns [3, H, W] float32 numpy. The crop must lie inside the image."""
    from PIL import Image
    im = Image.open(path).convert("RGB")
    H, W = proc_size(prep)
    if prep.get("do_center_crop", True):
        cs = prep.get("crop_size", 256)
        ch_, cw_ = (cs["height"], cs["width"]) if isinstance(cs, dict) else (cs, cs)
        md = min(im.height, im.width)
        ch, cw = int(H / ch_ * md), int(W / cw_ * md)
        top, left = (im.height - ch) // 2, (im.width - cw) // 2
        im = im.crop((left, top, left + cw, top + ch))
    if (im.width, im.height) != (W, H):
        im = im.resize((W, H), resample=Image.BICUBIC, reducing_gap=None)
    x = (np.asarray(im, dtype=np.float64) / 255.0).astype(np.float32).transpose(2, 0, 1)
    mean = np.array(prep.get("image_mean", [0.485, 0.456, 0.406]), dtype=np.float32)[:, None, None]
    std = np.array(prep.get("image_std", [0.229, 0.224, 0.225]), dtype=np.float32)[:, None, None]
    return ((x - mean) / std).astype(np.float32)


def image_folder(root):
    """ImageFolder as torchvision lists it: class folders sorted, files sorted; (paths, labels, classes)."""
    classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    paths, labels = [], []
    for i, c in enumerate(classes):
        for f in sorted(os.listdir(os.path.join(root, c))):
            paths.append(os.path.join(root, c, f))
            labels.append(i)
    return paths, labels, classes
