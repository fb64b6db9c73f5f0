#!/usr/bin/env python3
"""Latent Studio's diffusion pipeline against diffusers on the same model folder.

Both sides load the same diffusers-layout folder, start from the same initial
latent (ours draws it from the seed and writes it with --dump-noise; diffusers
gets it as `latents=`), run DDIM with the same steps and guidance, and are
timed in interleaved rounds on the same number of threads. Prints seconds per
step and per image for each, the speed ratio, and the PSNR between the images.

    ~/.cache/latent-studio/torch-venv/bin/python benches/torch_diffusion.py \
        --model-dir models/emoji-ldm --prompt "red heart" --rounds 3
    ~/.cache/latent-studio/torch-venv/bin/python benches/torch_diffusion.py \
        --random-sd-mid /tmp/sd-mid --size 256 --rounds 2
"""

import argparse
import json
import os
import subprocess
import tempfile
import time

import numpy as np
import torch
from PIL import Image


def run_ours(args, model_flag, noise=None, out=None):
    cmd = [args.bin, "bench", "diffusion", *model_flag, "--prompt", args.prompt, "--steps", str(args.steps),
           "--cfg", str(args.cfg), "--seed", str(args.seed), "--rounds", "1", "--json"]
    if args.size:
        cmd += ["--size", str(args.size)]
    if noise:
        cmd += ["--dump-noise", noise, "--out", out]
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"latent-studio failed: {done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_theirs(pipe, args, latents, size, sdxl=False):
    stamps = []

    def on_step(_pipe, _i, _t, kwargs):
        stamps.append(time.perf_counter())
        return kwargs

    started = time.perf_counter()
    with torch.no_grad():
        # SDXL: no negative prompt, so force_zeros_for_empty_prompt applies, as in ours for an empty one.
        out = pipe(args.prompt, negative_prompt=None if sdxl else "", num_inference_steps=args.steps,
                   guidance_scale=args.cfg,
                   latents=latents.clone(), height=size, width=size, output_type="np",
                   callback_on_step_end=on_step)
    total = time.perf_counter() - started
    return out.images[0], float(np.median(np.diff(stamps))), total


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def main():
    p = argparse.ArgumentParser()
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--model-dir")
    g.add_argument("--random-sd-mid", help="folder for the mid-sized SD-shaped model (written by latent-studio)")
    p.add_argument("--bin", default="target/release/latent-studio")
    p.add_argument("--prompt", default="a red heart")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--cfg", type=float, default=7.5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from diffusers import DDIMScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline

    model_flag = ["--model-dir", args.model_dir] if args.model_dir else ["--random-sd-mid", args.random_sd_mid]
    folder = args.model_dir or args.random_sd_mid
    tmp = tempfile.mkdtemp()
    noise_path, ours_png = os.path.join(tmp, "noise.npy"), os.path.join(tmp, "ours.png")
    first = run_ours(args, model_flag, noise_path, ours_png)  # also writes the random model if asked
    size = first["size"]
    with open(os.path.join(folder, "model_index.json")) as f:
        sdxl = json.load(f)["_class_name"] == "StableDiffusionXLPipeline"
    if sdxl:
        pipe = StableDiffusionXLPipeline.from_pretrained(folder, torch_dtype=torch.float32)
    else:
        pipe = StableDiffusionPipeline.from_pretrained(folder, safety_checker=None, requires_safety_checker=False,
                                                       torch_dtype=torch.float32)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    latents = torch.from_numpy(np.load(noise_path))
    theirs_img, _, _ = run_theirs(pipe, args, latents, size, sdxl)  # warm-up
    ours_img = np.asarray(Image.open(ours_png).convert("RGB"))
    theirs_u8 = (np.clip(theirs_img, 0, 1) * 255).round().astype(np.uint8)
    rows = {"ours": {"step": [], "image": []}, "diffusers": {"step": [], "image": []}}
    for _ in range(args.rounds):
        r = run_ours(args, model_flag)
        rows["ours"]["step"].append(r["s_per_step"])
        rows["ours"]["image"].append(r["s_per_image"])
        _, step, total = run_theirs(pipe, args, latents, size, sdxl)
        rows["diffusers"]["step"].append(step)
        rows["diffusers"]["image"].append(total)
    med = {k: {m: float(np.median(v[m])) for m in v} for k, v in rows.items()}
    print(f"model {folder}, {size}x{size}, DDIM {args.steps} steps, CFG {args.cfg}, {args.threads} threads, "
          f"torch {torch.__version__}, diffusers {__import__('diffusers').__version__}, medians of {args.rounds} rounds")
    print("| | s/step | s/image |")
    print("|---|---|---|")
    for k in ("ours", "diffusers"):
        print(f"| {k} | {med[k]['step']:.4f} | {med[k]['image']:.3f} |")
    print(f"| ours / diffusers speed | {med['diffusers']['step'] / med['ours']['step']:.2f}x | "
          f"{med['diffusers']['image'] / med['ours']['image']:.2f}x |")
    print(f"PSNR ours vs diffusers: {psnr(ours_img, theirs_u8):.1f} dB (max abs diff {int(np.abs(ours_img.astype(int) - theirs_u8.astype(int)).max())})")
    Image.fromarray(theirs_u8).save(os.path.join(tmp, "diffusers.png"))
    print(f"images in {tmp}")


if __name__ == "__main__":
    main()
