"""OpenCLIP's own tokenizer on the same vocabulary file, for tests/clip_vocab.rs.

usage: open_clip_tokens.py PROMPTS.json OUT.json
Writes, per prompt, the 77 ids open_clip.tokenize gives (start, tokens, end,
zero padding: what SD 2.x and SDXL's second tower read).
"""
import json
import sys

import open_clip

prompts = json.load(open(sys.argv[1]))
ids = open_clip.tokenize(prompts, context_length=77)
json.dump([{"prompt": p, "ids": row.tolist()} for p, row in zip(prompts, ids)], open(sys.argv[2], "w"), ensure_ascii=False)
