#!/usr/bin/env python3
"""PyTorch reference for the studio's DCGAN (emoji network: 32x32 RGB, latent
64, base 64): the same generator and discriminator, loss (non-saturating, real
label 0.9) and Adam (lr 2e-4, beta1 0.5). First it loads the studio's initial
weights and first batch (`latent-studio bench gan --dump`) and checks that two
training steps give the same losses; then it times training steps (batch 64,
2 threads) interleaved with `latent-studio bench gan` and prints real images/s.

Usage (after benches/setup-torch.sh):
  ~/.cache/latent-studio/torch-venv/bin/python benches/torch_gan.py [--rounds 3] [--steps 20]
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time

import torch
from safetensors.torch import load_file
from torch import nn
from torch.nn import functional as F

torch.set_num_threads(2)
LATENT, BASE, SIDE, CHANNELS = 64, 64, 32, 3
STEPS_UP = 3  # 4 -> 8 -> 16 -> 32


class Generator(nn.Module):
    def __init__(self):
        super().__init__()
        self.top = BASE << (STEPS_UP - 1)
        self.project = nn.Linear(LATENT, self.top * 16)
        self.project_norm = nn.BatchNorm2d(self.top, eps=1e-5, momentum=0.1)
        ups, norms, width = [], [], self.top
        for i in range(STEPS_UP):
            last = i + 1 == STEPS_UP
            out = CHANNELS if last else width // 2
            ups.append(nn.ConvTranspose2d(width, out, 4, 2, 1))
            norms.append(None if last else nn.BatchNorm2d(out, eps=1e-5, momentum=0.1))
            width = out
        self.ups = nn.ModuleList(ups)
        self.norms = nn.ModuleList([n for n in norms if n is not None])

    def forward(self, z):
        h = self.project(z).view(-1, self.top, 4, 4)
        h = F.relu(self.project_norm(h))
        for i, conv in enumerate(self.ups):
            h = conv(h)
            if i < len(self.norms):
                h = F.relu(self.norms[i](h))
        return torch.tanh(h)


class Discriminator(nn.Module):
    def __init__(self):
        super().__init__()
        downs, width = [], CHANNELS
        for i in range(STEPS_UP):
            downs.append(nn.Conv2d(width, BASE << i, 4, 2, 1))
            width = BASE << i
        self.downs = nn.ModuleList(downs)
        self.classify = nn.Linear(width * 16, 1)

    def forward(self, x):
        for conv in self.downs:
            x = F.leaky_relu(conv(x), 0.2)
        return self.classify(x.flatten(1)).squeeze(1)


def studio_names():
    """PyTorch parameter name -> the studio's tensor name."""
    names = {}
    for p in ("weight", "bias"):
        names[f"g.project.{p}"] = f"generator.project.{p}"
        for i in range(STEPS_UP):
            names[f"g.ups.{i}.{p}"] = f"generator.up{i}.{p}"
            names[f"d.downs.{i}.{p}"] = f"discriminator.down{i}.{p}"
        names[f"d.classify.{p}"] = f"discriminator.classify.{p}"
    for p in ("weight", "bias", "running_mean", "running_var"):
        names[f"g.project_norm.{p}"] = f"generator.project_norm.{p}"
        for i in range(STEPS_UP - 1):
            names[f"g.norms.{i}.{p}"] = f"generator.up{i}_norm.{p}"
    return names


class Gan:
    def __init__(self, weights=None):
        self.g, self.d = Generator(), Discriminator()
        if weights is not None:
            modules = {"g": self.g, "d": self.d}
            for ours, theirs in studio_names().items():
                net, key = ours.split(".", 1)
                target = modules[net].state_dict()[key]
                target.copy_(weights[theirs].reshape(target.shape))
        self.opt_g = torch.optim.Adam(self.g.parameters(), lr=2e-4, betas=(0.5, 0.999), eps=1e-8)
        self.opt_d = torch.optim.Adam(self.d.parameters(), lr=2e-4, betas=(0.5, 0.999), eps=1e-8)

    def step(self, real, z):
        fake = self.g(z)
        real_logits, fake_logits = self.d(real), self.d(fake.detach())
        d_loss = (F.binary_cross_entropy_with_logits(real_logits, torch.full_like(real_logits, 0.9))
                  + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()
        g_logits = self.d(fake)
        g_loss = F.binary_cross_entropy_with_logits(g_logits, torch.ones_like(g_logits))
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_g.step()
        return d_loss.item(), g_loss.item()


def studio(args, *extra):
    env = dict(os.environ, RAYON_NUM_THREADS="2")
    out = subprocess.run([args.studio, "bench", "gan", *extra], check=True, capture_output=True, text=True, env=env)
    return out.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--studio", default="target/release/latent-studio")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        studio(args, "--steps", "1", "--dump", tmp)
        gan = Gan(load_file(os.path.join(tmp, "weights.safetensors")))
        batch = load_file(os.path.join(tmp, "batch.safetensors"))
        ours = json.load(open(os.path.join(tmp, "losses.json")))
    print("Same initial weights and batch, two training steps (studio vs PyTorch):\n")
    print("| step | D loss | G loss |\n|---|---|---|")
    worst = 0.0
    for name in ("step1", "step2"):
        d, g = gan.step(batch["real"], batch["z"])
        o = ours[name]
        worst = max(worst, abs(d - o["d_loss"]), abs(g - o["g_loss"]))
        print(f"| {name[-1]} | {o['d_loss']:.6f} vs {d:.6f} | {o['g_loss']:.6f} vs {g:.6f} |")
    print(f"\nlargest difference {worst:.2e}\n")

    gan = Gan()
    batches = [(torch.randn(64, 3, SIDE, SIDE).mul(0.5).tanh(), torch.randn(64, LATENT)) for _ in range(8)]
    for real, z in batches[:2]:
        gan.step(real, z)  # warm-up
    theirs, mine = [], []
    for _ in range(args.rounds):
        t = time.perf_counter()
        for i in range(args.steps):
            gan.step(*batches[i % len(batches)])
        theirs.append(64 * args.steps / (time.perf_counter() - t))
        mine.append(json.loads(studio(args, "--steps", str(args.steps), "--json"))["images_per_s"])
    o, t = statistics.median(mine), statistics.median(theirs)
    print(f"DCGAN training (D step + G step), batch 64, 2 threads, PyTorch {torch.__version__}; "
          f"{args.rounds} interleaved rounds of {args.steps} steps, medians\n")
    print("| | Latent Studio | PyTorch | ours vs PyTorch |\n|---|---|---|---|")
    print(f"| real images/s | {o:.0f} | {t:.0f} | {o / t:.2f}x |")


if __name__ == "__main__":
    main()
