#!/usr/bin/env python3
"""One single-file SD checkpoint, three programs: Latent Studio, diffusers and
stable-diffusion.cpp, each in its own process (so peak memory is its own),
on the same file, size, steps (Euler a), guidance and thread count. Prints
load time, seconds per step and per image, and peak resident memory. Ours
runs twice: `bench diffusion` keeps the model loaded (as the studio and
sd-server do; a warm-up image, then the timed one) and `generate` makes one
image and exits, freeing each network when done (as sd-cli does).

    target/release/latent-studio bench diffusion --random-sd15 /tmp/sd15 --size 256 --steps 2 --rounds 1
    ~/.cache/latent-studio/torch-venv/bin/python benches/single_file_bench.py \
        --file /tmp/sd15.fp16.safetensors --config /tmp/sd15 \
        --sd-cli ~/.cache/latent-studio/sdcpp/build/bin/sd-cli --size 512 --steps 6

The diffusers side loads with from_single_file(config=FOLDER) in float32 (its
CPU path); ours and sd.cpp read the file's own fp16 tensors.
"""

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time


def peak_of(usage_text):
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", usage_text)
    return int(m.group(1)) / 1024 if m else float("nan")


def run_ours(args):
    cmd = ["/usr/bin/time", "-v", args.bin, "bench", "diffusion", "--model-file", args.file,
           "--prompt", args.prompt, "--steps", str(args.steps), "--cfg", str(args.cfg), "--size", str(args.size),
           "--sampler", "euler-a", "--rounds", "1", "--json"]
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"latent-studio failed: {done.stderr}")
    row = json.loads(done.stdout.strip().splitlines()[-1])
    return {"load_s": row["load_s"], "s_per_step": row["s_per_step"], "s_per_image": row["s_per_image"],
            "peak_mb": peak_of(done.stderr)}


def run_ours_once(args):
    """`generate`, which makes one image and exits as sd-cli does (networks freed as they finish)."""
    out = "/tmp/latent-studio-once-bench.png"
    if os.path.exists(out):
        os.remove(out)
    cmd = ["/usr/bin/time", "-v", args.bin, "generate", "--model-file", args.file, "--prompt", args.prompt,
           "--steps", str(args.steps), "--cfg", str(args.cfg), "--width", str(args.size), "--height", str(args.size),
           "--sampler", "Euler a", "--out", out]
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"latent-studio generate failed: {done.stderr[-2000:]}")
    nan = float("nan")
    return {"load_s": nan, "s_per_step": nan, "s_per_image": wall, "peak_mb": peak_of(done.stderr)}


def run_sdcpp(args):
    out = "/tmp/sdcpp-bench.png"
    if os.path.exists(out):
        os.remove(out)
    cmd = ["/usr/bin/time", "-v", args.sd_cli, "-m", args.file, "-p", args.prompt, "--steps", str(args.steps),
           "--cfg-scale", str(args.cfg), "-W", str(args.size), "-H", str(args.size), "-t", str(args.threads),
           "--sampling-method", "euler_a", "-s", "0", "-o", out]
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - started
    log = done.stdout + done.stderr
    if done.returncode != 0:
        raise SystemExit(f"sd-cli failed: {log[-2000:]}")
    load = re.search(r"loading tensors completed, taking ([\d.]+)s", log)
    sampling = re.search(r"sampling completed, taking ([\d.]+)s", log)
    total = re.search(r"generate_image completed in ([\d.]+)s", log) or re.search(r"txt2img completed in ([\d.]+)s", log)
    return {"load_s": float(load.group(1)) if load else float("nan"),
            "s_per_step": float(sampling.group(1)) / args.steps if sampling else float("nan"),
            "s_per_image": float(total.group(1)) if total else wall,
            "peak_mb": peak_of(done.stderr)}


def run_diffusers(args):
    """In this process, which does nothing else (so ru_maxrss is the pipeline's)."""
    import numpy as np  # noqa: F401
    import torch
    from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionPipeline

    os.environ["HF_HUB_OFFLINE"] = "1"
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    pipe = StableDiffusionPipeline.from_single_file(args.file, config=args.config, local_files_only=True,
                                                    torch_dtype=torch.float32, safety_checker=None,
                                                    requires_safety_checker=False)
    load_s = time.perf_counter() - started
    pipe.scheduler = EulerAncestralDiscreteScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    stamps = []

    def on_step(_pipe, _i, _t, kwargs):
        stamps.append(time.perf_counter())
        return kwargs

    images = []
    for _ in range(2):  # warm-up, then timed
        stamps.clear()
        started = time.perf_counter()
        with torch.no_grad():
            pipe(args.prompt, num_inference_steps=args.steps, guidance_scale=args.cfg, width=args.size,
                 height=args.size, output_type="np", callback_on_step_end=on_step,
                 generator=torch.Generator().manual_seed(0))
        images.append(time.perf_counter() - started)
    steps = sorted(b - a for a, b in zip(stamps, stamps[1:]))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"load_s": load_s, "s_per_step": steps[len(steps) // 2], "s_per_image": images[-1], "peak_mb": peak}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--file", required=True)
    p.add_argument("--config", required=True, help="the diffusers folder diffusers' from_single_file needs")
    p.add_argument("--sd-cli")
    p.add_argument("--bin", default="target/release/latent-studio")
    p.add_argument("--prompt", default="a castle on a hill at sunset")
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--cfg", type=float, default=7.5)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--only", choices=["ours", "diffusers", "sdcpp"])
    p.add_argument("--no-diffusers", action="store_true", help="leave diffusers out (its 512² run takes minutes)")
    args = p.parse_args()
    if args.only == "diffusers":
        print(json.dumps(run_diffusers(args)))
        return
    rows = {"latent-studio (model kept, `bench diffusion`)": run_ours(args),
            "latent-studio one-shot (`generate`)": run_ours_once(args)}
    if args.sd_cli:
        rows["stable-diffusion.cpp (`sd-cli`, one-shot)"] = run_sdcpp(args)
    if not args.no_diffusers:
        done = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--only", "diffusers"],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"diffusers failed: {done.stderr[-2000:]}")
        rows["diffusers"] = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"{os.path.basename(args.file)}, {args.size}x{args.size}, Euler a, {args.steps} steps, CFG {args.cfg}, "
          f"{args.threads} threads")
    print("| program | load s | s/step | s/image | peak MB |")
    print("|---|---|---|---|---|")
    for name, r in rows.items():
        cells = [f"{r['load_s']:.2f}", f"{r['s_per_step']:.3f}", f"{r['s_per_image']:.2f}", f"{r['peak_mb']:.0f}"]
        print(f"| {name} | " + " | ".join(c.replace("nan", "—") for c in cells) + " |")


if __name__ == "__main__":
    main()
