"""Reference images from diffusers for tests/diffusers_parity.rs.

Reads a JSON list of jobs (written by the Rust test when DIFFUSERS_PYTHON
names this interpreter) and writes one PNG per job. Each job names a model
(a diffusers folder, or a single file plus the folder as `config=`), a
sampler by A1111's name, the prompt and settings, the initial noise and, for
stochastic samplers, the per-step noise that replaces diffusers' own draws.
Runs offline: HF_HUB_OFFLINE=1 and local_files_only.
"""
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

import diffusers  # noqa: E402
from diffusers import (  # noqa: E402
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    LCMScheduler,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
)

torch.set_num_threads(2)


def scheduler_for(name, config):
    if name == "DDIM":
        return DDIMScheduler.from_config(config)
    if name == "DDPM":
        return DDPMScheduler.from_config(config)
    if name == "Euler":
        return EulerDiscreteScheduler.from_config(config)
    if name == "Euler a":
        return EulerAncestralDiscreteScheduler.from_config(config)
    if name in ("DPM++ 2M", "DPM++ 2M Karras"):
        return DPMSolverMultistepScheduler.from_config(
            config, algorithm_type="dpmsolver++", solver_order=2, use_karras_sigmas=name.endswith("Karras")
        )
    if name == "LCM":
        return LCMScheduler.from_config(config)
    raise ValueError(f"unknown sampler {name}")


class StepNoise:
    """Replaces the schedulers' randn_tensor: row i of the given array at step i."""

    def __init__(self):
        self.rows = None
        self.step = 0

    def __call__(self, shape, generator=None, device=None, dtype=None, layout=None):
        row = torch.from_numpy(self.rows[self.step]).reshape(shape)
        return row.to(dtype=dtype or torch.float32)


STEP_NOISE = StepNoise()
for module in ("scheduling_euler_ancestral_discrete", "scheduling_lcm", "scheduling_ddpm"):
    setattr(getattr(diffusers.schedulers, module), "randn_tensor", STEP_NOISE)

_pipes = {}


def pipeline(job):
    # A LoRA job gets a pipeline of its own, untouched by earlier loads and unloads.
    key = (job["folder"], job.get("single_file"), job.get("sdxl", False), job.get("lora"), job.get("embedding"))
    if key not in _pipes:
        cls = StableDiffusionXLPipeline if job.get("sdxl") else StableDiffusionPipeline
        if job.get("single_file"):
            pipe = cls.from_single_file(
                job["single_file"], config=job["folder"], local_files_only=True, torch_dtype=torch.float32
            )
        else:
            pipe = cls.from_pretrained(job["folder"], local_files_only=True, torch_dtype=torch.float32)
        pipe.set_progress_bar_config(disable=True)
        _pipes[key] = (pipe, pipe.scheduler.config)
    return _pipes[key]


def run(job):
    pipe, base_config = pipeline(job)
    pipe.scheduler = scheduler_for(job["sampler"], base_config)
    original_step = pipe.scheduler.step

    def counted_step(*args, **kwargs):
        out = original_step(*args, **kwargs)
        STEP_NOISE.step += 1
        return out

    pipe.scheduler.step = counted_step
    STEP_NOISE.step = 0
    c, h, w = job["latent_shape"]
    noise = np.load(job["noise"]).astype(np.float32).reshape(1, c, h, w)
    if job.get("step_noise"):
        STEP_NOISE.rows = np.load(job["step_noise"]).astype(np.float32).reshape(job["steps"], -1)
    if job.get("lora"):
        pipe.load_lora_weights(job["lora"])
    if job.get("embedding"):
        pipe.load_textual_inversion(job["embedding"], token=job["embedding_token"])
    kwargs = dict(
        prompt=job["prompt"],
        negative_prompt=job["negative"],
        num_inference_steps=job["steps"],
        guidance_scale=job["guidance"],
        width=job["width"],
        height=job["height"],
        latents=torch.from_numpy(noise),
        output_type="np",
    )
    if job.get("lora"):
        kwargs["cross_attention_kwargs"] = {"scale": job["lora_scale"]}
    image = pipe(**kwargs).images[0]
    Image.fromarray((image * 255).round().clip(0, 255).astype(np.uint8)).save(job["out"])


def main():
    jobs = json.load(open(sys.argv[1]))
    for job in jobs:
        run(job)
        print("wrote", job["out"], file=sys.stderr)


if __name__ == "__main__":
    main()
