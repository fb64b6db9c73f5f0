"""An A1111-style JSON client (the standard library's HTTP, as scripts for
A1111's API are written): txt2img on `serve`, the PNG written to a file.

argv: base URL, output PNG, model title. Prints the answer's `info` (JSON).
"""
import base64
import json
import sys
import urllib.request

base, out, model = sys.argv[1:4]
payload = {
    "prompt": "a smiling face", "negative_prompt": "", "steps": 6, "cfg_scale": 3.0,
    "width": 32, "height": 32, "seed": 11, "sampler_name": "Euler a",
    "override_settings": {"sd_model_checkpoint": model},
}
request = urllib.request.Request(base + "/sdapi/v1/txt2img", data=json.dumps(payload).encode(),
                                 headers={"Content-Type": "application/json"})
answer = json.load(urllib.request.urlopen(request))
with open(out, "wb") as f:
    f.write(base64.b64decode(answer["images"][0]))
print(answer["info"])
