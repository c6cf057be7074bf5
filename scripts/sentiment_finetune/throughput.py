"""One-core inference throughput of the fine-tuned MiniLM classifier (tokenization included).

Usage: taskset -c 0 venv/bin/python throughput.py models/fold0.pt [headlines]
2,000 texts: the first 1,000 SemEval headlines + the first 1,000 Twitter train texts, shuffled
(seed 0), batch 64, max length 48; fp32, then dynamic int8 (Linear layers). Also a variant with
the texts sorted by length before batching (less padding).
"""

import json
import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import numpy as np
import torch

torch.set_num_threads(1)
from ft import MODEL_DIR, Clf  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

WORK = Path(os.environ.get("FT_WORK", "/tmp/ft"))
d = json.loads((WORK / "data.json").read_text())
texts = d["sem"][0][:1000] + d["tw"][0][:1000]
if (
    len(sys.argv) > 2 and sys.argv[2] == "headlines"
):  # SemEval headlines only (1,156, cycled to 2,000)
    texts = (d["sem"][0] * 2)[:2000]
random.Random(0).shuffle(texts)
tok = AutoTokenizer.from_pretrained(MODEL_DIR)
model = Clf(MODEL_DIR)
model.load_state_dict(torch.load(sys.argv[1], map_location="cpu"))
model.eval()


def run(m, xs, bs=64):
    out = []
    with torch.inference_mode():
        for i in range(0, len(xs), bs):
            b = tok(
                xs[i : i + bs], padding=True, truncation=True, max_length=48, return_tensors="pt"
            )
            out.append(torch.softmax(m(b["input_ids"], b["attention_mask"]), -1))
    return torch.cat(out).numpy()


def bench(m, name, xs, reps=2):
    run(m, xs[:128])  # warm-up
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        p = run(m, xs)
        ts.append(time.perf_counter() - t)
    best = min(ts)
    print(
        f"{name}: {len(xs)} texts, best of {reps}: {best:.2f}s -> {len(xs) / best:.0f} texts/s "
        f"(runs {[round(x, 2) for x in ts]})",
        flush=True,
    )
    return p, len(xs) / best


print(
    "torch",
    torch.__version__,
    "threads",
    torch.get_num_threads(),
    "affinity",
    sorted(os.sched_getaffinity(0)),
)
t = time.perf_counter()
tok(texts, padding=True, truncation=True, max_length=48)
print(f"tokenization alone (one call, 2000 texts): {time.perf_counter() - t:.3f}s")
res = {}
p32, res["fp32"] = bench(model, "fp32", texts)
by_len = sorted(texts, key=lambda s: len(tok(s)["input_ids"]))
_, res["fp32_sorted"] = bench(model, "fp32 length-sorted", by_len)
try:
    qd = torch.ao.quantization.quantize_dynamic
except AttributeError:
    qd = torch.quantization.quantize_dynamic
q = qd(model, {torch.nn.Linear}, dtype=torch.qint8)
p8, res["int8"] = bench(q, "int8 dynamic", texts)
_, res["int8_sorted"] = bench(q, "int8 dynamic length-sorted", by_len)
agree = float((p32.argmax(1) == p8.argmax(1)).mean())
print(
    f"int8 vs fp32 argmax agreement on the 2000 texts: {agree:.4f}; "
    f"max |dp| {np.abs(p32 - p8).max():.3f}"
)
res["int8_fp32_agreement"] = agree
suffix = "_" + sys.argv[2] if len(sys.argv) > 2 else ""
(WORK / f"throughput{suffix}.json").write_text(json.dumps(res, indent=1))
