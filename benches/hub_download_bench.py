#!/usr/bin/env python3
"""Hub download throughput, side by side from one stand-in Hub on 127.0.0.1:
latent-studio's client (`latent-studio bench hub`, which also times the UI's
frames on the Models view while it pulls) against Python's huggingface_hub
`hf_hub_download` (the version scripts/fetch-hub-python.sh pins). Both pull
the same LFS file through the same redirect into a fresh cache each run;
ours also checks its sha256 while it streams, Python's does not.

Usage: benches/hub_download_bench.py [--mib 1024] [--runs 5] [--frames 300]
Needs: cargo build --release (the binary and --example hub_standin).
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO, FILE = "bench/big-GGUF", "model-Q4_K_M.gguf"
SITE = os.environ.get("LATENT_STUDIO_HUB_PYTHON", os.path.expanduser("~/.cache/latent-studio/hub-python"))

PYTHON_PULL = """
import json, os, shutil, sys, tempfile, time
from huggingface_hub import hf_hub_download
import huggingface_hub
rates = []
for _ in range(int(sys.argv[1])):
    cache = tempfile.mkdtemp(prefix="hf-bench-")
    start = time.perf_counter()
    path = hf_hub_download(sys.argv[2], sys.argv[3], cache_dir=cache)
    seconds = time.perf_counter() - start
    rates.append(os.path.getsize(path) / seconds / 1e6)
    shutil.rmtree(cache)
print(json.dumps({"version": huggingface_hub.__version__, "mb_per_s": rates}))
"""


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--frames", type=int, default=300)
    args = parser.parse_args()
    subprocess.run(["cargo", "build", "--release", "--example", "hub_standin"], cwd=ROOT, check=True)
    binary = os.path.join(ROOT, "target/release/latent-studio")
    server = subprocess.Popen(
        [os.path.join(ROOT, "target/release/examples/hub_standin"), REPO, FILE, str(args.mib)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        endpoint = server.stdout.readline().strip()
        env = dict(os.environ, HF_ENDPOINT=endpoint, HF_HUB_DISABLE_TELEMETRY="1", PYTHONPATH=SITE)
        for name in ("HF_TOKEN", "HF_HUB_OFFLINE", "HF_HUB_ENABLE_HF_TRANSFER"):
            env.pop(name, None)
        home = tempfile.mkdtemp(prefix="hf-home-")
        env["HF_HOME"] = home

        def python_runs():
            out = subprocess.run([sys.executable, "-c", PYTHON_PULL, str(args.runs), REPO, FILE],
                                 env=env, check=True, capture_output=True, text=True)
            return json.loads(out.stdout)

        def our_runs(frames):
            out = subprocess.run([binary, "bench", "hub", "--repo", REPO, "--file", FILE, "--runs", str(args.runs),
                                  "--frames", str(frames), "--json"], env=env, check=True, capture_output=True,
                                 text=True)
            return json.loads(out.stdout.strip().splitlines()[-1])

        # Alternate so that neither side always runs on a warmer machine.
        theirs, ours = [], []
        first = python_runs()
        theirs += first["mb_per_s"]
        ours += our_runs(0)["mb_per_s"]
        theirs += python_runs()["mb_per_s"]
        last = our_runs(args.frames)
        ours += last["mb_per_s"]
        shutil.rmtree(home, ignore_errors=True)
    finally:
        server.kill()
    ours_median, theirs_median = statistics.median(ours), statistics.median(theirs)
    print(f"stand-in Hub {endpoint}, one {args.mib} MiB LFS file behind a 302 redirect, {len(ours)} runs each\n")
    print("| client | median MB/s | runs |")
    print("|---|---|---|")
    print(f"| latent-studio (sha256 checked while streaming) | {ours_median:.0f} | "
          f"{', '.join(f'{r:.0f}' for r in ours)} |")
    print(f"| huggingface_hub {first['version']} hf_hub_download | {theirs_median:.0f} | "
          f"{', '.join(f'{r:.0f}' for r in theirs)} |")
    print(f"| ratio | {ours_median / theirs_median:.2f}× | |")
    ui = last.get("ui")
    if ui:
        cpu = ui.get("cpu_ms") or [float("nan")] * 2
        print(f"\nUI on the Models view while pulling ({ui['frames']} frames, {ui['downloads']}): "
              f"CPU p50 {cpu[0]:.3f} ms, p99 {cpu[1]:.3f} ms; wall p50 {ui['wall_ms'][0]:.3f} ms, "
              f"p99 {ui['wall_ms'][1]:.3f} ms")


if __name__ == "__main__":
    main()
