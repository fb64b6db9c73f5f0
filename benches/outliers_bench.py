#!/usr/bin/env python3
"""Outlier ranking on real images: 500 held-out MNIST digits (the ones the
shipped digits VAE never trained on: every tenth image of each digit file,
as src/io/datasets.rs holds them out) plus 25 Fashion-MNIST test garments,
written as PNG files into one folder and ranked by `latent-studio outliers`
under the digits VAE. Reports precision@k for the garments and the area
under the ROC curve. Needs scripts/fetch-data.sh and a release build.

Usage: benches/outliers_bench.py [--model digits-2d] [--digits 50] [--garments 25]
"""
import argparse
import gzip
import json
import os
import struct
import subprocess
import tempfile
import time
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def grey_png(pixels, side=28):
    """8-bit grey PNG from `side*side` values in 0..255."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    rows = b"".join(b"\x00" + bytes(pixels[y * side:(y + 1) * side]) for y in range(side))
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="digits-2d")
    parser.add_argument("--digits", type=int, default=50, help="held-out images per digit")
    parser.add_argument("--garments", type=int, default=25)
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="outliers-")
    for digit in range(10):
        with open(os.path.join(ROOT, "data/mnist", f"{digit}.json")) as f:
            data = json.load(f)["data"]
        images = [data[i * 784:(i + 1) * 784] for i in range(len(data) // 784)]
        held_out = [img for i, img in enumerate(images) if i % 10 == 9][: args.digits]
        for n, img in enumerate(held_out):
            with open(os.path.join(folder, f"digit{digit}_{n:03}.png"), "wb") as f:
                f.write(grey_png([round(v * 255) for v in img]))
    with gzip.open(os.path.join(ROOT, "data/fashion/t10k-images-idx3-ubyte.gz")) as f:
        raw = f.read()
    for n in range(args.garments):
        with open(os.path.join(folder, f"garment_{n:03}.png"), "wb") as f:
            f.write(grey_png(raw[16 + n * 784:16 + (n + 1) * 784]))
    start = time.perf_counter()
    out = subprocess.run([os.path.join(ROOT, "target/release/latent-studio"), "outliers", "--model", args.model,
                          "--data", folder, "--json"], check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    rows = json.loads(out.stdout)
    flags = ["garment_" in os.path.basename(r["file"]) for r in rows]
    positives = sum(flags)
    negatives = len(flags) - positives
    # AUROC: the chance a garment outranks a digit.
    above, wins = 0, 0
    for flag in reversed(flags):  # from the lowest score up
        if flag:
            wins += above
        else:
            above += 1
    auroc = wins / (positives * negatives) if positives and negatives else float("nan")
    print(f"{len(rows)} images ({negatives} held-out MNIST digits, {positives} Fashion-MNIST garments) "
          f"ranked by {args.model} in {seconds:.2f} s (process included)\n")
    print("| k | garments in the top k | precision@k |")
    print("|---|---|---|")
    for k in (5, 10, 25, 50):
        hits = sum(flags[:k])
        print(f"| {k} | {hits} | {hits / k:.2f} |")
    print(f"\nAUROC (a garment scores above a digit): {auroc:.3f}")
    for name in os.listdir(folder):
        os.remove(os.path.join(folder, name))
    os.rmdir(folder)


if __name__ == "__main__":
    main()
