#!/usr/bin/python3
"""Regenerates the format fixtures of core/preprocess with Debian's Pillow.

Run with /usr/bin/python3 (python3-pil 9.4.0, libjpeg-turbo 2.1.5, libwebp) from
this directory. For each image written here, <name>.rgb.safetensors holds
`rgb`, PIL's Image.open(name).convert("RGB") as uint8 [H, W, 3]; for the EXIF
image also `transposed`, ImageOps.exif_transpose(...).convert("RGB").
Not run by the tests: they read the files it produced.
"""
import json
import random
import struct

from PIL import Image, ImageOps

W, H = 37, 23
rnd = random.Random(7)


def pattern(bands, maxval, alpha_band=None):
    """Smooth gradients plus noise, so that resampling and chroma paths see edges."""
    px = []
    for y in range(H):
        for x in range(W):
            v = []
            for b in range(bands):
                base = ((x * (b + 3) * 7 + y * (5 - b) * 11) % 97) / 96.0
                v.append(min(maxval, max(0, int(base * maxval + rnd.randint(-maxval // 20, maxval // 20)))))
            if alpha_band is not None:
                v[alpha_band] = rnd.choice([0, 1, 37, 128, 200, 254, maxval])
            px.append(tuple(v))
    return px


def save_ref(name, **arrays):
    header, blobs, off = {}, [], 0
    for key, im in arrays.items():
        data = im.tobytes()
        header[key] = {"dtype": "U8", "shape": [im.height, im.width, 3], "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    header["__metadata__"] = {"producer": "Pillow " + Image.__version__ + " convert('RGB')", "image": name}
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(name + ".rgb.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def done(name):
    im = Image.open(name)
    save_ref(name, rgb=im.convert("RGB"))


rgb = Image.new("RGB", (W, H)); rgb.putdata(pattern(3, 255))
rgba = Image.new("RGBA", (W, H)); rgba.putdata(pattern(4, 255, alpha_band=3))

# 16-bit gray PNG: Pillow opens it as mode I and clamps to 255 on convert.
g16 = Image.new("I", (W, H)); g16.putdata([p[0] for p in pattern(1, 65535)] )
g16.save("gray16.png"); done("gray16.png")
# 16-bit gray with many small values so that the clamp is visible both ways.
g16s = Image.new("I", (W, H)); g16s.putdata([p[0] for p in pattern(1, 600)]); g16s.save("gray16_small.png"); done("gray16_small.png")
rgba.save("rgba.png"); done("rgba.png")
rgba.convert("LA").save("la.png"); done("la.png")
rgb.convert("L").save("gray.png"); done("gray.png")
pal = rgb.quantize(colors=50)
pal.save("palette_trns.png", transparency=3); done("palette_trns.png")
pal.save("palette.gif"); done("palette.gif")
pal.save("trns.gif", transparency=3); done("trns.gif")  # index 3 keeps its colour
rgb.save("rgb.bmp"); done("rgb.bmp")
pal.save("palette.bmp"); done("palette.bmp")
rgb.save("rgb.tiff"); done("rgb.tiff")
rgb.convert("CMYK").save("cmyk.tiff"); done("cmyk.tiff")
cmyk = Image.new("CMYK", (W, H)); cmyk.putdata(pattern(4, 255))
cmyk.save("cmyk.jpg", quality=95); done("cmyk.jpg")
rgb.save("q90_444.jpg", quality=90, subsampling=0); done("q90_444.jpg")
rgb.save("q90_422.jpg", quality=90, subsampling=1); done("q90_422.jpg")
rgb.save("q90_420.jpg", quality=90, subsampling=2); done("q90_420.jpg")
rgb.convert("L").save("gray.jpg", quality=90); done("gray.jpg")
rgb.save("lossless.webp", lossless=True); done("lossless.webp")
rgb.save("lossy.webp", quality=90); done("lossy.webp")

# EXIF orientation 6 (rotate 90° clockwise to display).
exif = Image.Exif(); exif[0x0112] = 6
rgb.save("orient6.jpg", quality=95, exif=exif.tobytes())
im = Image.open("orient6.jpg")
save_ref("orient6.jpg", rgb=im.convert("RGB"), transposed=ImageOps.exif_transpose(im).convert("RGB"))

# Pillow's resampling filters on the same RGB image, down and up, non-square.
rgb.save("resample_src.png")
outs = {}
for f in (1, 2, 3, 4, 5):  # LANCZOS, BILINEAR, BICUBIC, BOX, HAMMING
    for size in ((16, 11), (50, 31), (37, 9)):
        outs["f%d_%dx%d" % ((f,) + size)] = rgb.resize(size, f)
save_ref("resample_src.png", **outs)
