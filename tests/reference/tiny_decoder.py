"""diffusers' AutoencoderTiny decoder on a folder and a latent, for tests/tiny_decoder.rs.

usage: tiny_decoder.py FOLDER LATENT.npy OUT.npy
"""
import sys

import numpy as np
import torch
from diffusers import AutoencoderTiny

folder, latent, out = sys.argv[1:4]
model = AutoencoderTiny.from_pretrained(folder, torch_dtype=torch.float32).eval()
with torch.no_grad():
    image = model.decode(torch.from_numpy(np.load(latent))).sample
np.save(out, image.numpy().astype(np.float32))
