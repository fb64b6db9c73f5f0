"""Drives `latent-studio serve` with the official openai client (PyPI).

argv: base URL (http://host:port/v1), API key, model id, a stop string. Prints one JSON
object: the model list, a streamed chat (its pieces and finish reason), a
chat cut at a stop string, a plain completion, and how a bad request fails.
"""
import json
import sys

import openai

base, key, model, stop = sys.argv[1:5]
client = openai.OpenAI(base_url=base, api_key=key, max_retries=0)
out = {"models": [m.id for m in client.models.list()]}

question = [{"role": "user", "content": "What is the capital of France?"}]
pieces, finish = [], None
stream = client.chat.completions.create(model=model, messages=question, max_tokens=24, temperature=0, stream=True)
for chunk in stream:
    if chunk.choices and chunk.choices[0].delta.content:
        pieces.append(chunk.choices[0].delta.content)
    if chunk.choices and chunk.choices[0].finish_reason:
        finish = chunk.choices[0].finish_reason
out["stream"] = {"pieces": pieces, "finish": finish}

whole = client.chat.completions.create(model=model, messages=question, max_tokens=24, temperature=0)
out["whole"] = {"text": whole.choices[0].message.content, "finish": whole.choices[0].finish_reason,
                "usage": [whole.usage.prompt_tokens, whole.usage.completion_tokens]}

stopped = client.chat.completions.create(model=model, messages=question, max_tokens=24, temperature=0, stop=[stop])
out["stop"] = {"text": stopped.choices[0].message.content, "finish": stopped.choices[0].finish_reason}

plain = client.completions.create(model=model, prompt="The sky is", max_tokens=8, temperature=0)
out["plain"] = plain.choices[0].text

scored = client.chat.completions.create(model=model, messages=question, max_tokens=6, temperature=0,
                                        logprobs=True, top_logprobs=2)
out["logprobs"] = [[c.token, c.logprob, [[t.token, t.logprob] for t in c.top_logprobs]]
                   for c in scored.choices[0].logprobs.content]

try:
    client.chat.completions.create(model="no-such-model", messages=question, max_tokens=4)
    out["missing"] = None
except openai.NotFoundError as e:
    out["missing"] = [e.status_code, e.code]
try:
    openai.OpenAI(base_url=base, api_key="wrong", max_retries=0).models.list()
    out["wrong_key"] = None
except openai.AuthenticationError as e:
    out["wrong_key"] = e.status_code
print(json.dumps(out))
