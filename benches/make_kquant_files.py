#!/usr/bin/env python3
"""Q4_K_M and Q5_K_M files of SmolLM2 made by llama.cpp's own quantizer
(llama_model_quantize, as `llama-quantize` runs it), from the shipped Q4_1
file (requantized: llama.cpp dequantizes each tensor to f32 first).

Setup: see benches/llama_cpp_reference.py (llama-cpp-python in a venv).
Usage:
  ~/.cache/latent-studio/llama-venv/bin/python benches/make_kquant_files.py [--out DIR]
Prints each file's path, size, sha256 and tensor types.
"""
import argparse
import collections
import ctypes
import hashlib
import os

import gguf
import llama_cpp

SOURCE = "models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
TYPES = {"Q4_K_M": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M, "Q5_K_M": llama_cpp.LLAMA_FTYPE_MOSTLY_Q5_K_M}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.expanduser("~/.cache/latent-studio/kquants"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for name, ftype in TYPES.items():
        dest = os.path.join(args.out, f"SmolLM2-135M-Instruct.{name}.gguf")
        if not os.path.exists(dest):
            params = llama_cpp.llama_model_quantize_default_params()
            params.ftype = ftype
            params.allow_requantize = True
            params.nthread = 2
            rc = llama_cpp.llama_model_quantize(SOURCE.encode(), dest.encode(), ctypes.byref(params))
            if rc != 0:
                raise SystemExit(f"llama_model_quantize failed for {name}: {rc}")
        digest = hashlib.sha256(open(dest, "rb").read()).hexdigest()
        types = collections.Counter(t.tensor_type.name for t in gguf.GGUFReader(dest).tensors)
        print(f"{dest}\n  {os.path.getsize(dest)} bytes, sha256 {digest}\n  tensors: {dict(types)}")


if __name__ == "__main__":
    main()
