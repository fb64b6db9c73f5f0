#!/usr/bin/env python3
"""PyTorch reference for the studio's VAE: same architecture, same safetensors
weights. Checks that its outputs match candle's (max abs diff < 1e-4) and times
decode and one training step, interleaved with `latent-studio bench latent`,
and each conv layer (forward, forward + backward, batch 64, the model's
weights) interleaved with `latent-studio bench conv`.

Usage (after benches/setup-torch.sh):
  $VENV/bin/python benches/torch_vae.py --model digits-2d [--studio target/release/latent-studio]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch
from safetensors.torch import load_file
from torch import nn

torch.set_num_threads(2)


class Encoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        b, side = c["base_channels"], c["image_size"] // 4
        self.conv1 = nn.Conv2d(c["channels"], b, 4, 2, 1)
        self.conv2 = nn.Conv2d(b, 2 * b, 4, 2, 1)
        self.fc = nn.Linear(2 * b * side * side, c["hidden"])
        self.mean = nn.Linear(c["hidden"], c["latent_dim"])
        self.logvar = nn.Linear(c["hidden"], c["latent_dim"])

    def forward(self, x):
        h = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        h = torch.relu(self.fc(h.flatten(1)))
        return self.mean(h), self.logvar(h)


class Decoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        b = c["base_channels"]
        self.b, self.side = b, c["image_size"] // 4
        self.fc1 = nn.Linear(c["latent_dim"], c["hidden"])
        self.fc2 = nn.Linear(c["hidden"], 2 * b * self.side * self.side)
        self.deconv1 = nn.ConvTranspose2d(2 * b, b, 4, 2, 1)
        self.deconv2 = nn.ConvTranspose2d(b, c["channels"], 4, 2, 1)

    def forward(self, z):  # logits
        h = torch.relu(self.fc2(torch.relu(self.fc1(z))))
        h = h.reshape(z.shape[0], 2 * self.b, self.side, self.side)
        return self.deconv2(torch.relu(self.deconv1(h)))


class Vae(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.encoder, self.decoder = Encoder(c), Decoder(c)

    def loss(self, x, eps):
        mean, logvar = self.encoder(x)
        z = mean + torch.exp(0.5 * logvar) * eps
        logits = self.decoder(z)
        recon = nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1).mean()
        kl = (-0.5 * (1 + logvar - mean.pow(2) - logvar.exp()).sum(1)).mean()
        return recon + kl


def timed(runs, f):
    for _ in range(max(1, runs // 10)):
        f()
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        f()
        samples.append((time.perf_counter() - t) * 1e3)
    samples.sort()
    return samples[len(samples) // 2], samples[round((len(samples) - 1) * 0.95)]


def load_vae(model_dir):
    manifest = json.load(open(os.path.join(model_dir, "manifest.json")))
    vae = Vae(manifest["config"])
    missing, unexpected = vae.load_state_dict(load_file(os.path.join(model_dir, manifest["weights"])), strict=True)
    assert not missing and not unexpected
    return vae


def torch_side(model_dir, ref, runs):
    vae = load_vae(model_dir)
    with torch.no_grad():
        diff_decode = (torch.sigmoid(vae.decoder(ref["strip_latents"])) - ref["strip_images"]).abs().max().item()
        diff_mean = (vae.encoder(ref["train_x"])[0] - ref["encoder_mean"]).abs().max().item()
    x, eps = ref["train_x"], ref["train_eps"]
    first_loss = vae.loss(x, eps).item()
    opt = torch.optim.AdamW(vae.parameters(), lr=1e-3, weight_decay=0.0)
    # Five AdamW steps from the shipped weights, then the loss (candle did the same).
    for _ in range(5):
        opt.zero_grad(set_to_none=True)
        vae.loss(x, eps).backward()
        opt.step()
    loss_after_5 = vae.loss(x, eps).item()

    def step():
        opt.zero_grad(set_to_none=True)
        vae.loss(x, eps).backward()
        opt.step()

    one, strip = ref["strip_latents"][:1].clone(), ref["strip_latents"]
    many = torch.cat([strip] * 4)
    with torch.no_grad():
        rows = {
            "decode_1": timed(runs, lambda: torch.sigmoid(vae.decoder(one)).numpy().copy()),
            "decode_16": timed(runs, lambda: torch.sigmoid(vae.decoder(strip)).numpy().copy()),
            "decode_64": timed(max(10, runs // 4), lambda: torch.sigmoid(vae.decoder(many)).numpy().copy()),
        }
    rows["train_step_64"] = timed(max(10, runs // 10), step)
    checks = {
        "decode max abs diff": diff_decode,
        "encoder mean max abs diff": diff_mean,
        "loss relative diff": abs(first_loss - ref["train_loss"].item()) / abs(first_loss),
        "loss after 5 AdamW steps, relative diff": abs(loss_after_5 - ref["loss_after_5_steps"].item()) / abs(loss_after_5),
    }
    return rows, checks


def torch_layers(vae, c, runs):
    """Per conv layer, as `bench conv` times it: forward with the model's ReLU
    (copied out), and forward + backward of sum(y²) into x and the weights."""
    b, s = c["base_channels"], c["image_size"]
    cases = [
        ("encoder.conv1", vae.encoder.conv1, (64, c["channels"], s, s), True),
        ("encoder.conv2", vae.encoder.conv2, (64, b, s // 2, s // 2), True),
        ("decoder.deconv1", vae.decoder.deconv1, (64, 2 * b, s // 4, s // 4), True),
        ("decoder.deconv2", vae.decoder.deconv2, (64, b, s // 2, s // 2), False),
    ]
    rows = {}
    for name, layer, shape, relu in cases:
        def forward(x, layer=layer, relu=relu):
            return torch.relu(layer(x)) if relu else layer(x)

        x = torch.randn(shape, requires_grad=True)

        def fwd_bwd(x=x, forward=forward, layer=layer):
            forward(x).pow(2).sum().backward()
            x.grad = None
            layer.zero_grad(set_to_none=True)

        with torch.no_grad():
            fwd = timed(runs, lambda x=x, forward=forward: forward(x).numpy().copy())
        rows[name] = (fwd[0], timed(runs, fwd_bwd)[0])
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--models-dir", default="models")
    ap.add_argument("--studio", default="target/release/latent-studio")
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--layer-runs", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    model_dir = os.path.join(args.models_dir, args.model)
    results = {"candle": {}, "torch": {}}
    layers = {"builtin": {}, "ours": {}, "torch": {}}  # name -> list of (fwd, fwd_bwd) per round
    checks = {}
    with tempfile.TemporaryDirectory() as tmp:
        dump = os.path.join(tmp, "ref.safetensors")
        for r in range(args.rounds):  # interleaved: candle, torch, candle, torch …
            env = dict(os.environ, RAYON_NUM_THREADS="2")  # the same thread count as torch
            out = subprocess.run(
                [args.studio, "--models-dir", args.models_dir, "bench", "latent", "--model", args.model,
                 "--runs", str(args.runs), "--frames", "0", "--json", "--dump", dump],
                check=True, capture_output=True, text=True, env=env,
            )
            candle = json.loads(out.stdout)
            assert candle["threads"] == torch.get_num_threads(), candle["threads"]
            for k in ("decode_1", "decode_16", "decode_64", "train_step_64"):
                results["candle"].setdefault(k, []).append(candle[k]["p50_ms"])
            rows, checks = torch_side(model_dir, load_file(dump), args.runs)
            for k, (p50, _) in rows.items():
                results["torch"].setdefault(k, []).append(p50)
            out = subprocess.run(
                [args.studio, "--models-dir", args.models_dir, "bench", "conv", "--model", args.model,
                 "--runs", str(args.layer_runs), "--json"],
                check=True, capture_output=True, text=True, env=env,
            )
            for row in json.loads(out.stdout)["layers"]:
                for side, key in (("builtin", "builtin_ms"), ("ours", "gemm_ms")):
                    layers[side].setdefault(row["name"], []).append((row["fwd"][key], row["fwd_bwd"][key]))
            manifest = json.load(open(os.path.join(model_dir, "manifest.json")))
            for name, times in torch_layers(load_vae(model_dir), manifest["config"], args.layer_runs).items():
                layers["torch"].setdefault(name, []).append(times)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; candle: {args.studio}; model {args.model}; "
          f"{args.rounds} interleaved rounds, median of per-round p50s\n")
    print("| check | value | bound |\n|---|---|---|")
    ok = True
    for name, v in checks.items():
        # Outputs: float32 agreement. One loss: summation order only. After five
        # steps: Adam divides by √v, so near-zero gradients amplify rounding.
        bound = 1e-4 if "abs diff" in name else (1e-4 if "after 5" in name else 1e-5)
        ok &= v < bound
        print(f"| {name} | {v:.2e} | < {bound:g} |")
    print("\n| work | candle p50 ms | PyTorch p50 ms | candle speed vs PyTorch |\n|---|---|---|---|")
    for k in ("decode_1", "decode_16", "decode_64", "train_step_64"):
        c, t = statistics.median(results["candle"][k]), statistics.median(results["torch"][k])
        print(f"| {k} | {c:.3f} | {t:.3f} | {t / c:.2f}× |")
    print("\nPer conv layer, batch 64, p50 ms (`bench conv`; forward includes the model's ReLU):\n")
    print("| layer | fwd candle built-in | fwd ours | fwd PyTorch | fwd ours vs PyTorch "
          "| fwd+bwd candle built-in | fwd+bwd ours | fwd+bwd PyTorch | fwd+bwd ours vs PyTorch |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in layers["torch"]:
        med = {side: [statistics.median(t[i] for t in layers[side][name]) for i in (0, 1)] for side in layers}
        cells = []
        for i in (0, 1):
            b, o, t = med["builtin"][i], med["ours"][i], med["torch"][i]
            cells.append(f"{b:.2f} | {o:.2f} | {t:.2f} | {t / o:.2f}×")
        print(f"| {name} | {cells[0]} | {cells[1]} |")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
