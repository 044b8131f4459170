#!/usr/bin/python3
"""Records Pillow's convert("RGB") of the PNGs written by gen16 (see generate.py)."""
import sys
sys.argv = sys.argv[:1]
from PIL import Image
exec(open("generate.py").read().split("rgb = Image.new")[0])  # reuse save_ref/done only
for name in ["rgb16.png", "rgba16.png"]:
    done(name)
