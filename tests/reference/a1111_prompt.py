"""A reference of AUTOMATIC1111's prompt handling for tests/a1111_prompts.rs.

Written for this project from the behaviour A1111's modules/prompt_parser.py
(parse_prompt_attention) and modules/sd_hijack_clip.py (tokenize_line,
process_tokens, the "Original" emphasis) define, on transformers' CLIP
tokenizer and text model, so that nothing of ours is on this side.

usage: a1111_prompt.py MODEL_FOLDER PROMPTS.json OUT.json
"""
import json
import re
import sys

import torch
from transformers import CLIPTextModel, CLIPTokenizer

SYNTAX = re.compile(
    r"\\[()\[\]\\]|\\|\(|\[|:\s*([+-]?[.\d]+)\s*\)|\)|]|[^\\()\[\]:]+|:"
)
BREAK = re.compile(r"\s*\bBREAK\b\s*", re.S)


def weighted_pieces(prompt):
    out, rounds, squares = [], [], []

    def scale(start, factor):
        for item in out[start:]:
            item[1] *= factor

    for m in SYNTAX.finditer(prompt):
        text, number = m.group(0), m.group(1)
        if text.startswith("\\"):
            out.append([text[1:], 1.0])
        elif text == "(":
            rounds.append(len(out))
        elif text == "[":
            squares.append(len(out))
        elif number is not None and rounds:
            scale(rounds.pop(), float(number))
        elif text == ")" and rounds:
            scale(rounds.pop(), 1.1)
        elif text == "]" and squares:
            scale(squares.pop(), 1 / 1.1)
        else:
            for i, part in enumerate(BREAK.split(text)):
                if i:
                    out.append(["BREAK", -1])
                out.append([part, 1.0])
    for start in rounds:
        scale(start, 1.1)
    for start in squares:
        scale(start, 1 / 1.1)
    if not out:
        out = [["", 1.0]]
    merged = [out[0]]
    for item in out[1:]:
        if merged[-1][1] == item[1]:
            merged[-1][0] += item[0]
        else:
            merged.append(item)
    return merged


def chunks(pieces, tokenizer, backtrack=20):
    length = tokenizer.model_max_length - 2
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    comma = tokenizer.convert_tokens_to_ids(",</w>")
    done, tokens, mults = [], [], []
    state = {"comma": -1}

    def close():
        nonlocal tokens, mults
        pad = length - len(tokens)
        done.append(([bos] + tokens + [eos] * max(pad, 0) + [eos], [1.0] + mults + [1.0] * max(pad, 0) + [1.0]))
        tokens, mults = [], []
        state["comma"] = -1

    ids = [tokenizer(text, truncation=False, add_special_tokens=False)["input_ids"] for text, _ in pieces]
    for piece_ids, (text, weight) in zip(ids, pieces):
        if text == "BREAK" and weight == -1:
            close()
            continue
        for token in piece_ids:
            if token == comma:
                state["comma"] = len(tokens)
            elif backtrack and len(tokens) == length and state["comma"] != -1 and len(tokens) - state["comma"] <= backtrack:
                cut = state["comma"] + 1
                moved, moved_mults = tokens[cut:], mults[cut:]
                tokens, mults = tokens[:cut], mults[:cut]
                close()
                tokens, mults = moved, moved_mults
            if len(tokens) == length:
                close()
            tokens.append(token)
            mults.append(weight)
    if tokens or not done:
        close()
    pad = tokenizer.pad_token_id
    if pad != eos:
        for toks, _ in done:
            end = toks.index(eos)
            toks[end + 1 :] = [pad] * (len(toks) - end - 1)
    return done


@torch.no_grad()
def states(chunk_list, model):
    zs = []
    for toks, mults in chunk_list:
        z = model(torch.tensor([toks])).last_hidden_state
        before = z.mean()
        z = z * torch.tensor(mults, dtype=z.dtype).reshape(1, -1, 1)
        z = z * (before / z.mean())
        zs.append(z)
    return torch.cat(zs, dim=1)


def main():
    folder, prompts_file, out_file = sys.argv[1:4]
    tokenizer = CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer")
    model = CLIPTextModel.from_pretrained(folder, subfolder="text_encoder").eval()
    results = []
    for prompt in json.load(open(prompts_file)):
        pieces = weighted_pieces(prompt)
        chunk_list = chunks(pieces, tokenizer)
        z = states(chunk_list, model)
        results.append(
            {
                "prompt": prompt,
                "pieces": pieces,
                "chunks": [{"tokens": t, "multipliers": m} for t, m in chunk_list],
                "states": [round(float(v), 6) for v in z.flatten()],
            }
        )
    json.dump(results, open(out_file, "w"), separators=(",", ":"), ensure_ascii=False)


if __name__ == "__main__":
    main()
