"""Out-of-fold SemEval predictions of each fold's model after dynamic int8 quantisation.

Usage (the torch venv): taskset -c 1 python int8_oof.py -> $FT_WORK/oof_int8/fold*.json
(score with evaluate.py $FT_WORK/oof_int8)
"""

import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch
from ft import MODEL_DIR, Clf, predict
from transformers import AutoTokenizer

torch.set_num_threads(1)
WORK = Path(os.environ.get("FT_WORK", "/tmp/ft"))
d = json.loads((WORK / "data.json").read_text())
tok = AutoTokenizer.from_pretrained(MODEL_DIR)
(WORK / "oof_int8").mkdir(exist_ok=True)
for k in range(5):
    m = Clf(MODEL_DIR)
    m.load_state_dict(torch.load(WORK / "models" / f"oof_fold{k}.pt"))
    m.eval()
    q = torch.ao.quantization.quantize_dynamic(m, {torch.nn.Linear}, dtype=torch.qint8)
    te = d["folds"][k][1]
    p = predict(q, tok, [d["sem"][0][i] for i in te])
    out = {"fold": k, "te": te, "proba": p.tolist(), "train_s": 0, "steps": 0}
    (WORK / "oof_int8" / f"fold{k}.json").write_text(json.dumps(out))
    print("fold", k, "done", flush=True)
