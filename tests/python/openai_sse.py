"""Decodes event streams with the official openai client's own SSE decoder.

stdin: a JSON list of streams, each a list of chunks (hex strings), fed to
`openai._streaming.SSEDecoder.iter_bytes` in that order. stdout: per stream,
the list of events as {"event", "data", "id"}.
"""
import json
import sys

from openai._streaming import SSEDecoder

out = []
for chunks in json.load(sys.stdin):
    events = SSEDecoder().iter_bytes(bytes.fromhex(c) for c in chunks)
    out.append([{"event": e.event, "data": e.data, "id": e.id} for e in events])
json.dump(out, sys.stdout)
