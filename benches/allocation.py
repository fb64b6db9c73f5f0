#!/usr/bin/env python3
"""Issue 3's question: are large temporary buffers better handled by reusing
them (per-thread scratch for the patch matrices) or by tuning the allocator
at start-up (glibc mmap/trim thresholds), or both? Runs `latent-studio bench
conv --json` under the four combinations, interleaved, and prints the GEMM
timings of whole-model work. Needs only Python 3.

Usage: python3 benches/allocation.py [--model fashion-16d] [--rounds 3]
"""
import argparse
import json
import os
import statistics
import subprocess

CONFIGS = [
    ("reuse + tuned allocator (default)", [], {}),
    ("reuse only", [], {"LATENT_STUDIO_DEFAULT_MALLOC": "1"}),
    ("tuned allocator only", ["--fresh-buffers"], {}),
    ("neither", ["--fresh-buffers"], {"LATENT_STUDIO_DEFAULT_MALLOC": "1"}),
]
ROWS = ("decode_64", "train_step_64")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="fashion-16d")
    ap.add_argument("--studio", default="target/release/latent-studio")
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    times = {name: {row: [] for row in ROWS} for name, _, _ in CONFIGS}
    for _ in range(args.rounds):
        for name, flags, env in CONFIGS:
            out = subprocess.run(
                [args.studio, "bench", "conv", "--model", args.model, "--runs", str(args.runs), "--json", *flags],
                check=True, capture_output=True, text=True, env=dict(os.environ, RAYON_NUM_THREADS="2", **env),
            )
            whole = json.loads(out.stdout)["whole"]
            for row in ROWS:
                times[name][row].append(whole[row]["gemm_ms"])
    print(f"bench conv --model {args.model}, 2 threads, {args.rounds} interleaved rounds, median of p50s (ms)\n")
    print("| buffers | " + " | ".join(ROWS) + " |\n|---|" + "---|" * len(ROWS))
    for name, _, _ in CONFIGS:
        print(f"| {name} | " + " | ".join(f"{statistics.median(times[name][r]):.2f}" for r in ROWS) + " |")


if __name__ == "__main__":
    main()
