#!/usr/bin/env python3
"""Writes the training tests' ImageFolder: 25 RGB crops of 28×32 pixels from three of the
preprocess fixtures' photos (scikit-image's data set, public domain / CC0), one class per photo:
9 chelsea (cat), 8 coffee, 8 rocket. Deterministic (numpy seed 7). Run from this folder with
/usr/bin/python3 make_images.py.
"""
import os

import numpy as np
from PIL import Image

SRC = {"cat": "../preprocess/chelsea.png", "coffee": "../preprocess/coffee.png", "rocket": "../preprocess/rocket.jpg"}
COUNT = {"cat": 9, "coffee": 8, "rocket": 8}
rng = np.random.default_rng(7)
for cls, path in SRC.items():
    im = Image.open(path).convert("RGB")
    os.makedirs(os.path.join("images", cls), exist_ok=True)
    for i in range(COUNT[cls]):
        # a 112×128 window, reduced 4× with a box filter: small files, photo-like content
        top = int(rng.integers(0, im.height - 112))
        left = int(rng.integers(0, im.width - 128))
        crop = im.crop((left, top, left + 128, top + 112)).resize((32, 28), Image.BOX)
        crop.save(os.path.join("images", cls, f"{cls}{i:02d}.png"))
