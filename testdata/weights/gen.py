#!/usr/bin/env python3
"""Generates the weights package's test checkpoints (stdlib only, no torch).

Stand-in classes registered as torch.FloatStorage, torch._utils._rebuild_tensor_v2,
... make Python's pickle emit the same opcodes torch.save does (GLOBAL,
BINPERSID with ('storage', type, key, 'cpu', numel), REDUCE, an OrderedDict
with a _metadata attribute set by BUILD), and the archive follows torch's zip
layout (<top>/data.pkl, <top>/byteorder, <top>/data/<key>, <top>/version,
stored uncompressed, storages aligned to 64 bytes).

The expected values are gathered here, in Python, from the views' offsets,
sizes and strides, and written as F32 safetensors (*.expected.safetensors),
so the Go reader is checked against an independent computation.

Run from this folder:  python3 gen.py
"""
import collections
import json
import math
import pickle
import struct
import sys
import types
import zipfile

torch = types.ModuleType("torch")
torch_utils = types.ModuleType("torch._utils")
torch._utils = torch_utils
sys.modules["torch"] = torch
sys.modules["torch._utils"] = torch_utils


def _rebuild_tensor_v2(*args):
    raise RuntimeError("stand-in: never called")


def _rebuild_parameter(*args):
    raise RuntimeError("stand-in: never called")


for fn in (_rebuild_tensor_v2, _rebuild_parameter):
    fn.__module__ = "torch._utils"
    setattr(torch_utils, fn.__name__, fn)

# storage class name -> (struct format, safetensors dtype)
STORAGES = {
    "FloatStorage": ("f", "F32"),
    "HalfStorage": ("e", "F16"),
    "BFloat16Storage": (None, "BF16"),
    "DoubleStorage": ("d", "F64"),
    "LongStorage": ("q", "I64"),
}
for name in STORAGES:
    cls = type(name, (), {})
    cls.__module__ = "torch"
    setattr(torch, name, cls)


def bf16_bits(x):
    """Top half of the float32 bits (the values used are exact in bfloat16)."""
    return struct.unpack("<I", struct.pack("<f", x))[0] >> 16


class Storage:
    def __init__(self, key, kind, values, endian="<"):
        self.key, self.kind, self.values = key, kind, values
        fmt = STORAGES[kind][0]
        if kind == "BFloat16Storage":
            self.data = b"".join(struct.pack(endian + "H", bf16_bits(v)) for v in values)
        else:
            self.data = b"".join(struct.pack(endian + fmt, v) for v in values)

    def as_float32(self):
        """What each element reads as in float32 (via the stored bits)."""
        fmt = STORAGES[self.kind][0]
        out = []
        for v in self.values:
            if self.kind == "BFloat16Storage":
                v = struct.unpack("<f", struct.pack("<I", bf16_bits(v) << 16))[0]
            elif fmt in "ed":
                v = struct.unpack("<" + fmt, struct.pack("<" + fmt, v))[0]
            out.append(to_float32(v))
        return out


def to_float32(v):
    """IEEE round-to-nearest float64 -> float32; struct refuses exactly the casts that overflow to inf."""
    try:
        return struct.unpack("<f", struct.pack("<f", v))[0]
    except OverflowError:
        return math.copysign(INF, v)


class Tensor:
    def __init__(self, storage, offset, size, stride, parameter=False):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride
        self.parameter = parameter

    def __reduce_ex__(self, proto):
        args = (self.storage, self.offset, tuple(self.size), tuple(self.stride), False,
                collections.OrderedDict())
        if self.parameter:
            inner = Tensor(self.storage, self.offset, self.size, self.stride)
            return (_rebuild_parameter, (inner, True, collections.OrderedDict()))
        return (_rebuild_tensor_v2, args)

    def gather(self):
        """Row-major values of the view, read through offset and strides."""
        src = self.storage.as_float32()
        out = []

        def walk(dim, pos):
            if dim == len(self.size):
                out.append(src[pos])
                return
            for i in range(self.size[dim]):
                walk(dim + 1, pos + i * self.stride[dim])

        walk(0, self.offset)
        return out


class TorchPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", getattr(torch, obj.kind), obj.key, "cpu", len(obj.values))
        return None


def state_dict(tensors):
    sd = collections.OrderedDict(tensors)
    sd._metadata = collections.OrderedDict([("", {"version": 1}), ("encoder", {"version": 1})])
    return sd


def write_zip(path, top, pickled, storages, byteorder="little", align=64, misalign=0,
              compress=zipfile.ZIP_STORED):
    """torch's layout; data of each entry starts at a multiple of align, plus misalign."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        def add(name, data, method=zipfile.ZIP_STORED):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = method
            here = z.fp.tell() + 30 + len(name.encode()) + 4
            pad = (misalign - here) % align
            info.extra = struct.pack("<HH", 0x4246, pad) + b"Z" * pad  # torch pads with id "FB"
            z.writestr(info, data)

        add(top + "/data.pkl", pickled)
        if byteorder is not None:
            add(top + "/byteorder", byteorder.encode())
        for s in storages:
            add(top + "/data/" + s.key, s.data, compress)
        add(top + "/version", b"3\n")


def write_safetensors(path, tensors, metadata=None, pad_to=8):
    """tensors: list of (name, dtype, shape, raw bytes), in this order."""
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((-len(h)) % pad_to)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def f32(values):
    return struct.pack("<%df" % len(values), *values)


def write_expected(path, tensors):
    write_safetensors(path, [(n, "F32", list(t.size), f32(t.gather())) for n, t in tensors.items()])


def pseudo_random(n, seed):
    """Deterministic values in [-2, 2), exact in float32."""
    out, x = [], seed
    for _ in range(n):
        x = (x * 1103515245 + 12345) % 2**31
        out.append(struct.unpack("<f", struct.pack("<f", (x / 2**31) * 4 - 2))[0])
    return out


INF, NAN = float("inf"), float("nan")
HALF_SPECIALS = [0.0, -0.0, 1.0, -2.5, 65504.0, -65504.0, 2**-14, 2**-24, -2**-24, 3 * 2**-24,
                 1023 * 2**-24, INF, -INF, NAN, 0.333251953125, 1e-3]
BF16_SPECIALS = [0.0, -0.0, 1.0, -3.0, 2**-126, 2**-133, INF, -INF, NAN, 3.3895313892515355e38,
                 0.0078125, 1.5]


def views_tensors(endian="<"):
    base = Storage("0", "FloatStorage", pseudo_random(12, 1), endian)
    small = Storage("1", "FloatStorage", [0.5, -1.25, 7.0], endian)
    half = Storage("2", "HalfStorage", HALF_SPECIALS, endian)
    bf16 = Storage("3", "BFloat16Storage", BF16_SPECIALS, endian)
    dbl = Storage("4", "DoubleStorage", [1.0 / 3, -1e300, 1e-50, 2.5, NAN, -INF], endian)
    par = Storage("5", "FloatStorage", pseudo_random(6, 7), endian)
    tensors = collections.OrderedDict([
        ("matrix", Tensor(base, 0, [3, 4], [4, 1])),
        ("matrix_t", Tensor(base, 0, [4, 3], [1, 4])),       # transposed view
        ("shared_tail", Tensor(base, 5, [7], [1])),          # same storage, offset 5
        ("shared_block", Tensor(base, 5, [2, 2], [4, 1])),   # rows 1-2, cols 1-2: strided
        ("scalar", Tensor(small, 2, [], [])),                # 0-d at an offset
        ("expanded", Tensor(small, 0, [2, 3], [0, 1])),      # broadcast: stride 0
        ("empty", Tensor(small, 0, [0, 4], [4, 1])),
        ("half", Tensor(half, 0, [4, 4], [4, 1])),
        ("half_t", Tensor(half, 1, [3, 5], [1, 3])),         # strided float16
        ("bfloat16", Tensor(bf16, 0, [3, 4], [4, 1])),
        ("double", Tensor(dbl, 0, [6], [1])),
        ("param", Tensor(par, 0, [2, 3], [3, 1], parameter=True)),
    ])
    storages = [base, small, half, bf16, dbl, par]
    return tensors, storages


def pickled(obj, protocol):
    import io
    buf = io.BytesIO()
    TorchPickler(buf, protocol=protocol).dump(obj)
    return buf.getvalue()


def main():
    tensors, storages = views_tensors()
    sd = state_dict(tensors)
    write_zip("views.bin", "archive", pickled(sd, 2), storages)
    write_zip("views_proto4.bin", "views_proto4", pickled(sd, 4), storages)
    write_zip("views_unaligned.bin", "archive", pickled(sd, 2), storages, misalign=2)
    write_zip("views_deflated.bin", "archive", pickled(sd, 2), storages, compress=zipfile.ZIP_DEFLATED)
    write_zip("views_nobyteorder.bin", "pytorch_model", pickled(sd, 2), storages, byteorder=None)
    big_tensors, big_storages = views_tensors(">")
    write_zip("views_bigendian.bin", "archive", pickled(state_dict(big_tensors), 2), big_storages,
              byteorder="big")
    write_expected("views.expected.safetensors", tensors)

    # Nested dicts (e.g. {"model": state_dict, "epoch": 3}) flatten to dotted names.
    nested = {"model": state_dict([("w", tensors["matrix"])]), "epoch": 3}
    write_zip("nested.bin", "archive", pickled(nested, 2), [storages[0]])

    # A view that reaches past its storage: 3x4 from a 12-element storage at offset 1.
    bad = state_dict([("too_far", Tensor(storages[0], 1, [3, 4], [4, 1]))])
    write_zip("out_of_range.bin", "archive", pickled(bad, 2), [storages[0]])

    longs = Storage("0", "LongStorage", [1, 2, 3])
    write_zip("int64.bin", "archive", pickled(state_dict([("position_ids", Tensor(longs, 0, [3], [1]))]), 2),
              [longs])

    # Malicious pickles: os.system via GLOBAL, builtins.eval via STACK_GLOBAL.
    evil = b"\x80\x02cos\nsystem\nq\x00X\x0a\x00\x00\x00echo pwnedq\x01\x85q\x02Rq\x03."
    write_zip("malicious.bin", "archive", evil, [])
    evil4 = b"\x80\x04\x8c\x08builtins\x94\x8c\x04eval\x94\x93\x94\x8c\x031+1\x94\x85\x94R\x94."
    write_zip("malicious_proto4.bin", "archive", evil4, [])

    # safetensors with every convertible dtype, little-endian, plus metadata.
    h = HALF_SPECIALS
    b = BF16_SPECIALS
    d = [1.0 / 3, -1e300, 1e-50, 2.5, NAN, -INF]
    f = pseudo_random(6, 3)
    write_safetensors("dtypes.safetensors", [
        ("f32", "F32", [2, 3], f32(f)),
        ("f16", "F16", [4, 4], struct.pack("<%de" % len(h), *h)),
        ("bf16", "BF16", [3, 4], b"".join(struct.pack("<H", bf16_bits(v)) for v in b)),
        ("f64", "F64", [6], struct.pack("<%dd" % len(d), *d)),
        ("scalar", "F32", [], f32([4.5])),
    ], metadata={"format": "pt", "note": "generated by gen.py"})
    exp = collections.OrderedDict()
    for name, kind, vals, shape in [("f32", "FloatStorage", f, [2, 3]), ("f16", "HalfStorage", h, [4, 4]),
                                     ("bf16", "BFloat16Storage", b, [3, 4]), ("f64", "DoubleStorage", d, [6]),
                                     ("scalar", "FloatStorage", [4.5], [])]:
        n = 1
        for s in shape:
            n *= s
        st = [1] * len(shape)
        for i in range(len(shape) - 2, -1, -1):
            st[i] = st[i + 1] * shape[i + 1]
        exp[name] = Tensor(Storage("x", kind, vals), 0, shape, st)
    write_expected("dtypes.expected.safetensors", exp)

    # F32 data at an offset that is not a multiple of 4 (header padded to 2 mod 4).
    write_safetensors("unaligned.safetensors", [("x", "F32", [2, 3], f32(f))], pad_to=1)
    with open("unaligned.safetensors", "rb") as fh:
        n = struct.unpack("<Q", fh.read(8))[0]
    if (8 + n) % 4 == 0:
        write_safetensors("unaligned.safetensors", [("x", "F32", [2, 3], f32(f))],
                          metadata={"pad": "x" * (2 + (4 - (8 + n) % 4))}, pad_to=1)
    write_safetensors("int64.safetensors", [("ids", "I64", [2], struct.pack("<2q", 1, 2))])
    write_safetensors("float8.safetensors", [("q", "F8_E4M3", [2], b"\x01\x02")])


if __name__ == "__main__":
    main()
