#!/usr/bin/python3
"""Regenerates the TIFF and animated-WebP fixtures of core/preprocess (issue 19 items 11, 12, 20).

Run with /usr/bin/python3 from this directory, with Debian's python3-pil (Pillow 9.4.0, its
libtiff) and libtiff-tools (tiffcp, tiffset) installed. For each decodable image, as in
generate.py, <name>.rgb.safetensors holds `rgb`: Image.open(name).convert("RGB").

- orient{2,6,8}.tiff: RGB TIFFs with Orientation 2, 6 and 8. Pillow applies a TIFF's orientation
  when it loads the file (unlike for JPEG, PNG and WebP), so `rgb` is the displayed layout.
- g{3,4}_black0.tiff: 1-bit CCITT Group 3 / Group 4, PhotometricInterpretation BlackIsZero, as
  Pillow writes them (compression="group3"/"group4").
- g{3,4}_white0.tiff: the same picture stored WhiteIsZero (the fax convention): the bits of the
  inverted picture, uncompressed, retagged WhiteIsZero with tiffset, then compressed with
  tiffcp -c g3 / -c g4.
- g3_2d.tiff: Group 3 with 2-D coding (tiffcp -c g3:2d), valid but not decoded by Go.
- la.tiff (grey + alpha) and anim.webp (3 frames): valid images Go cannot decode.
Not run by the tests: they read the files it produced.
"""
import os
import subprocess

from PIL import Image, ImageOps, TiffImagePlugin

# Importing generate re-runs it, rewriting its fixtures identically (its random source is seeded).
from generate import W, H, pattern, save_ref

rgb = Image.new("RGB", (W, H)); rgb.putdata(pattern(3, 255))


def done(name):
    save_ref(name, rgb=Image.open(name).convert("RGB"))


for o in (2, 6, 8):
    ifd = TiffImagePlugin.ImageFileDirectory_v2(); ifd[274] = o
    rgb.save("orient%d.tiff" % o, tiffinfo=ifd); done("orient%d.tiff" % o)

# A 1-bit picture with runs of many lengths: thresholded gradients and noise.
bw = rgb.convert("L").point(lambda v: 255 if v > 110 else 0).convert("1")
bw.save("g3_black0.tiff", compression="group3"); done("g3_black0.tiff")
bw.save("g4_black0.tiff", compression="group4"); done("g4_black0.tiff")
ImageOps.invert(bw.convert("L")).convert("1").save("white0_raw.tiff")
subprocess.run(["tiffset", "-s", "262", "0", "white0_raw.tiff"], check=True)
subprocess.run(["tiffcp", "-c", "g3", "white0_raw.tiff", "g3_white0.tiff"], check=True); done("g3_white0.tiff")
subprocess.run(["tiffcp", "-c", "g4", "white0_raw.tiff", "g4_white0.tiff"], check=True); done("g4_white0.tiff")
subprocess.run(["tiffcp", "-c", "g3:2d", "white0_raw.tiff", "g3_2d.tiff"], check=True)
os.remove("white0_raw.tiff")

rgb.convert("LA").save("la.tiff")
frames = [rgb, rgb.transpose(Image.FLIP_LEFT_RIGHT), rgb.transpose(Image.FLIP_TOP_BOTTOM)]
frames[0].save("anim.webp", save_all=True, append_images=frames[1:], duration=100, loop=0, lossless=True)
