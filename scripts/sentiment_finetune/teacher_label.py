"""Each fold's fine-tuned MiniLM labels SEntFiN's headlines (unlabelled text for a student):
$FT_WORK/teacher_sentfin_fold{k}.npy (probabilities, columns in labels_order) and
$FT_WORK/sentfin_titles.json. The fold's model never saw that fold's SemEval headlines.

Usage (the torch venv): taskset -c 1 python teacher_label.py SENTFIN.csv
"""

import csv
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import numpy as np
import torch
from ft import MODEL_DIR, Clf, predict
from transformers import AutoTokenizer

torch.set_num_threads(1)
WORK = Path(os.environ.get("FT_WORK", "/tmp/ft"))
with open(sys.argv[1], newline="", encoding="utf-8") as fh:
    titles = [row["Title"] for row in csv.DictReader(fh)]
by_length = sorted(range(len(titles)), key=lambda i: len(titles[i]))  # less padding
tok = AutoTokenizer.from_pretrained(MODEL_DIR)
for k in range(5):
    t0 = time.time()
    model = Clf(MODEL_DIR)
    model.load_state_dict(torch.load(WORK / "models" / f"oof_fold{k}.pt"))
    model.eval()
    p = predict(model, tok, [titles[i] for i in by_length], bs=64)
    out = np.zeros_like(p)
    out[by_length] = p
    np.save(WORK / f"teacher_sentfin_fold{k}.npy", out)
    print("fold", k, f"{time.time() - t0:.0f} s", flush=True)
(WORK / "sentfin_titles.json").write_text(json.dumps(titles))
