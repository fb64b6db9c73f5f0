#!/usr/bin/env python3
"""SmolLM2 in Latent Studio against llama.cpp on the same GGUF file and thread
count: prompt processing (pp, one pass over N prompt tokens) and generation
(tg, M tokens one at a time) in tokens/s, interleaved rounds; then greedy
outputs for a few prompts compared token by token (llama.cpp with its
default f16 KV cache and with an f32 one, as candle keeps it).

Setup: see benches/llama_cpp_reference.py (llama-cpp-python in a venv).
Usage:
  ~/.cache/latent-studio/llama-venv/bin/python benches/llama_cpp_bench.py [--rounds 3] [--gguf FILE]
(--gguf: another file of the same model, e.g. the Q4_K_M and Q5_K_M files
that benches/make_kquant_files.py makes; --load: time both sides while one
competing CPU-bound process runs, as a build or a renderer would take a core;
--pp 512 --tg 128: generation at positions 512-640; --kv f16: our KV cache in
f16 too, as llama.cpp keeps it, instead of f32.)
"""
import argparse
import json
import os
import statistics
import subprocess
import time

import llama_cpp

GGUF = "models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
# Must match PASSAGE in src/cli/bench_text.rs: both sides run the same token ids.
PASSAGE = ("The studio runs every model on the user's own machine. Artists type a prompt, "
           "watch the answer appear token by token, change the temperature and try again. ")
PROMPTS = [("The capital of France is", False), ("Once upon a time", False), ("def fibonacci(n):", False),
           ("What is the capital of France?", True), ("Write a haiku about the sea.", True)]


def llama(gguf, kv_f32=False):
    kv = 0 if kv_f32 else 1  # GGML_TYPE_F32 / GGML_TYPE_F16 (llama.cpp's default)
    return llama_cpp.Llama(model_path=gguf, n_ctx=1024, n_batch=512, n_threads=2, n_threads_batch=2,
                           logits_all=False, verbose=False, type_k=kv, type_v=kv)


def llama_speed(llm, pp, tg):
    ids = [t for _ in range(pp) for t in llm.tokenize(PASSAGE.encode(), add_bos=False, special=False)][:pp]
    llm.reset()
    t = time.perf_counter()
    llm.eval(ids)
    pp_s = time.perf_counter() - t
    # Greedy generation: llama.cpp's sampler (temperature 0 = argmax) picks the
    # token, only eval() is timed (as llama-bench times tg, without sampling).
    tg_s = 0.0
    for _ in range(tg):
        nxt = llm.sample(temp=0.0, repeat_penalty=1.0, top_k=1)
        t = time.perf_counter()
        llm.eval([nxt])
        tg_s += time.perf_counter() - t
    return len(ids) / pp_s, tg / tg_s


def studio(args, *extra):
    env = dict(os.environ, RAYON_NUM_THREADS="2")
    out = subprocess.run([args.studio, *extra], check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--studio", default="target/release/latent-studio")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pp", type=int, default=128)
    ap.add_argument("--tg", type=int, default=128)
    ap.add_argument("--agree-tokens", type=int, default=64)
    ap.add_argument("--gguf", default=GGUF)
    ap.add_argument("--kv", choices=["f32", "f16"], default="f32", help="our KV cache type (llama.cpp's is f16)")
    ap.add_argument("--load", action="store_true", help="run one competing CPU-bound process while timing")
    ap.add_argument("--with-candle", action="store_true",
                    help="also time candle-transformers' quantized llama (--engine candle)")
    args = ap.parse_args()
    engines = ["auto", "candle"] if args.with_candle else ["auto"]
    ours = {e: {"pp": [], "tg": []} for e in engines}
    theirs = {"pp": [], "tg": []}
    llm = llama(args.gguf)
    model = ["--gguf", args.gguf, "--kv-cache", args.kv]
    load = subprocess.Popen(["python3", "-c", "while True: pass"]) if args.load else None
    for _ in range(args.rounds):
        for engine in engines:
            r = studio(args, "bench", "text", *model, "--prompt-tokens", str(args.pp),
                       "--gen-tokens", str(args.tg), "--runs", "1", "--json", "--engine", engine)
            ours[engine]["pp"].append(r["pp_tokens_per_s"])
            ours[engine]["tg"].append(r["tg_tokens_per_s"])
            ours[engine]["name"] = r["engine"]
        pp, tg = llama_speed(llm, args.pp, args.tg)
        theirs["pp"].append(pp)
        theirs["tg"].append(tg)
    if load:
        load.kill()
    busy = ", one competing CPU-bound process" if load else ""
    print(f"{os.path.basename(args.gguf)}, 2 threads{busy}; llama.cpp via llama-cpp-python {llama_cpp.__version__} "
          f"(f16 KV cache, its default); {args.rounds} interleaved rounds, medians\n")
    head = " | ".join(f"Latent Studio, {ours[e]['name']}" for e in engines)
    ratios = " | ".join(f"{'candle' if e == 'candle' else 'ours'} vs llama.cpp" for e in engines)
    print(f"| test | {head} | llama.cpp | {ratios} |\n|---|" + "---|" * (2 * len(engines) + 1))
    for k, name in (("pp", f"pp{args.pp} (prompt), tokens/s"), ("tg", f"tg{args.tg} (generation), tokens/s")):
        t = statistics.median(theirs[k])
        mine = [statistics.median(ours[e][k]) for e in engines]
        cells = " | ".join(f"{o:.1f}" for o in mine)
        rel = " | ".join(f"{o / t:.2f}×" for o in mine)
        print(f"| {name} | {cells} | {t:.1f} | {rel} |")

    if args.agree_tokens == 0:
        return
    print(f"\nGreedy outputs, first {args.agree_tokens} tokens: agreeing prefix length\n")
    print("| prompt | chat | vs llama.cpp f16 KV | vs llama.cpp f32 KV |\n|---|---|---|---|")
    engines = {"f16": llm, "f32": llama(args.gguf, kv_f32=True)}
    for prompt, chat in PROMPTS:
        extra = ["--chat"] if chat else []
        r = studio(args, "text", *model, "--prompt", prompt, *extra, "--temperature", "0",
                   "--repeat-penalty", "1", "--max-tokens", str(args.agree_tokens), "--json")
        cells = []
        for kv, eng in engines.items():
            eng.reset()
            eng.eval(r["prompt_ids"])
            same = 0
            for want in r["ids"]:
                got = eng.sample(temp=0.0, repeat_penalty=1.0, top_k=1)
                if got != want:
                    break
                same += 1
                eng.eval([got])
            cells.append(f"{same}/{len(r['ids'])}")
        print(f"| {prompt} | {chat} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
