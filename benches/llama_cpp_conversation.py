#!/usr/bin/env python3
"""Records a multi-turn conversation with SmolLM2 in llama.cpp as a test
fixture: a system prompt and three user messages; each turn is the whole
conversation so far rendered with the GGUF file's own chat template (jinja2),
tokenized by llama.cpp, and answered greedily with the gap between the top
two logits at every step. The answer's text joins the conversation as the
assistant's message before the next turn. tests/text_conversation.rs feeds
the same turns to our engine and compares prompt ids and answers.

Setup: see benches/llama_cpp_reference.py (llama-cpp-python in a venv).
Usage:
  ~/.cache/latent-studio/llama-venv/bin/python benches/llama_cpp_conversation.py \\
      --gguf models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf \\
      --out tests/fixtures/smollm2_conversation_llama_cpp.json
"""
import argparse
import json

import jinja2
import llama_cpp
from gguf import GGUFReader

from llama_cpp_reference import greedy

SYSTEM = "You are a terse assistant. Answer in one sentence."
USER_TURNS = ["Name a colour.", "And a fruit of that colour?", "How do I eat it?"]


def render(reader, messages):
    template = bytes(reader.fields["tokenizer.chat_template"].parts[-1]).decode()
    return jinja2.Environment().from_string(template).render(
        messages=messages, add_generation_prompt=True, bos_token="<|im_start|>")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    reader = GGUFReader(args.gguf)
    # An f32 KV cache, as the main fixture (see llama_cpp_reference.py).
    llm = llama_cpp.Llama(model_path=args.gguf, n_ctx=1024, n_threads=2, logits_all=True, verbose=False,
                          type_k=0, type_v=0)
    stop = {llm.token_eos(), 0, 2}
    messages = [{"role": "system", "content": SYSTEM}]
    turns = []
    for user in USER_TURNS:
        messages.append({"role": "user", "content": user})
        ids = llm.tokenize(render(reader, messages).encode(), add_bos=False, special=True)
        out, gaps = greedy(llm, ids, stop)
        answer = llm.detokenize([t for t in out if t not in stop]).decode()
        turns.append({"user": user, "prompt_ids": ids, "ids": out, "top2_gaps": gaps, "answer": answer})
        messages.append({"role": "assistant", "content": answer})
        print(user, "→", answer.replace("\n", "⏎"))
    fixture = {
        "source": f"llama.cpp via llama-cpp-python {llama_cpp.__version__}, n_threads=2, f32 KV cache, greedy, "
                  "each turn the whole conversation rendered with the file's chat template",
        "gguf_sha256": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        "system": SYSTEM,
        "stop_ids": sorted(stop),
        "turns": turns,
    }
    with open(args.out, "w") as f:
        json.dump(fixture, f, indent=1, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
