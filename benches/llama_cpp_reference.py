#!/usr/bin/env python3
"""Records llama.cpp's view of SmolLM2 as a test fixture: token ids of a set
of strings (llama.cpp's own tokenizer on the GGUF file), and greedy
generations for raw and chat prompts with the gap between the top two logits
at every step (a divergence is only acceptable where that gap is small).

llama.cpp keeps its KV cache in f16 by default; candle keeps it in f32. That
rounding alone moves SmolLM2's logits by ~0.15 (it flips "The capital of
France is Paris.\n\n" at a step where the top two are 0.33 apart), so the
fixture is recorded with an f32 KV cache (`--kv f16` records the default:
tests/fixtures/smollm2_f16_kv_llama_cpp.json, for our `--kv-cache f16`).

Setup (compiles llama.cpp, ~5 min on 2 cores):
  python3 -m venv ~/.cache/latent-studio/llama-venv
  CMAKE_ARGS="-DGGML_NATIVE=ON" ~/.cache/latent-studio/llama-venv/bin/pip install llama-cpp-python==0.3.36 gguf
Usage:
  ~/.cache/latent-studio/llama-venv/bin/python benches/llama_cpp_reference.py \
      --gguf models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf --out tests/fixtures/smollm2_llama_cpp.json
"""
import argparse
import json

import jinja2
import llama_cpp
import numpy as np
from gguf import GGUFReader

STRINGS = [
    "Hello world",
    "The capital of France is",
    "  leading spaces, trailing spaces  ",
    "numbers 12345 and 3.14159, year 2026",
    "naïve café — déjà vu, 日本語, emoji 🙂👍",
    "I'm sure you're right; we'll see, they've said, don't worry",
    "fn main() {\n    println!(\"hi\");\n}\n",
    "tabs\tand\nnewlines\n\n\nand   runs   of   spaces",
    "<|im_start|>user is plain text here",
    "ALL CAPS and MiXeD cAsE words",
]
RAW_PROMPTS = ["The capital of France is", "Once upon a time", "def fibonacci(n):"]
CHAT_PROMPTS = ["What is the capital of France?", "Write a haiku about the sea.", "What is 12 times 7?"]
STEPS = 24


def chat_text(reader, user):
    template = bytes(reader.fields["tokenizer.chat_template"].parts[-1]).decode()
    env = jinja2.Environment()
    return env.from_string(template).render(
        messages=[{"role": "user", "content": user}], add_generation_prompt=True, bos_token="<|im_start|>")


def greedy(llm, ids, stop):
    llm.reset()
    llm.eval(ids)
    out, gaps = [], []
    for _ in range(STEPS):
        logits = np.asarray(llm.scores[llm.n_tokens - 1], dtype=np.float64)
        second, best = np.argsort(logits)[-2:]
        gaps.append(round(float(logits[best] - logits[second]), 4))
        if int(best) in stop:
            out.append(int(best))
            break
        out.append(int(best))
        llm.eval([int(best)])
    return out, gaps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--kv", choices=["f32", "f16"], default="f32", help="llama.cpp KV cache type")
    args = ap.parse_args()
    kv_type = {"f32": 0, "f16": 1}[args.kv]  # GGML_TYPE_F32, GGML_TYPE_F16
    reader = GGUFReader(args.gguf)
    llm = llama_cpp.Llama(model_path=args.gguf, n_ctx=1024, n_threads=2, logits_all=True, verbose=False,
                          type_k=kv_type, type_v=kv_type)
    stop = {llm.token_eos(), 0, 2}
    tokens = [{"text": s, "ids": llm.tokenize(s.encode(), add_bos=False, special=False)} for s in STRINGS]
    generations = []
    for prompt in RAW_PROMPTS:
        ids = llm.tokenize(prompt.encode(), add_bos=False, special=False)
        out, gaps = greedy(llm, ids, stop)
        generations.append({"prompt": prompt, "chat": False, "prompt_ids": ids, "ids": out, "top2_gaps": gaps})
    for prompt in CHAT_PROMPTS:
        ids = llm.tokenize(chat_text(reader, prompt).encode(), add_bos=False, special=True)
        out, gaps = greedy(llm, ids, stop)
        generations.append({"prompt": prompt, "chat": True, "prompt_ids": ids, "ids": out, "top2_gaps": gaps})
    fixture = {
        "source": f"llama.cpp via llama-cpp-python {llama_cpp.__version__}, n_threads=2, {args.kv} KV cache, "
                  "greedy (argmax of the logits), one token per step after the prompt",
        "gguf_sha256": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        "stop_ids": sorted(stop),
        "tokens": tokens,
        "generations": generations,
    }
    with open(args.out, "w") as f:
        json.dump(fixture, f, indent=1, ensure_ascii=False)
        f.write("\n")
    for g in generations:
        print(g["prompt"], "→", llm.detokenize(g["ids"]).decode(errors="replace")[:80].replace("\n", "⏎"))


if __name__ == "__main__":
    main()
