"""v7 averaged with the fine-tuned MiniLM: the decision rule's p(neutral) threshold by weight, and
chosen nested (on four folds' out-of-fold predictions, applied to the fifth).

Runs in the project's venv (its decision rule), from the clone:
    PYTHONPATH=layers/shared:src:scripts .venv/bin/python scripts/sentiment_finetune/nested_rule.py
"""

import json
import os
from math import comb
from pathlib import Path

import numpy as np
import train_sentiment as T

WORK = Path(os.environ.get("FT_WORK", "/tmp/ft"))
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 2.0)  # 2.0: never neutral (the sign alone)

d = json.loads((WORK / "data.json").read_text())
assert d["labels_order"] == list(T.S.LABELS), d["labels_order"]
gold = d["sem"][1]
v7 = np.array(d["v7_oof"])
minilm = np.zeros_like(v7)
fold_of = np.zeros(len(gold), int)
for k in range(5):
    f = json.loads((WORK / "oof" / f"fold{k}.json").read_text())
    minilm[f["te"]] = np.array(f["proba"])
    fold_of[f["te"]] = k
ALL = range(len(gold))


def labels(p: np.ndarray, neutral_min: float) -> list[str]:
    return T.decide_labels(p, 0.0, neutral_min)


def score(idx, pred) -> tuple[float, float]:
    s = T.scores([gold[i] for i in idx], [pred[i] for i in idx])
    return s["accuracy"], s["macro_f1"]


def mcnemar(pred, base) -> str:
    win = sum(pred[i] == gold[i] != base[i] for i in ALL)
    loss = sum(base[i] == gold[i] != pred[i] for i in ALL)
    n = win + loss
    p = min(1.0, 2 * sum(comb(n, j) for j in range(min(win, loss) + 1)) / 2**n) if n else 1.0
    return f"{win} right where v7 is wrong, {loss} the reverse (McNemar p {p:.4f})"


v7_labels = labels(v7, 0.7)
for w in (0.0, 0.2, 0.3, 0.4, 0.5):
    p = w * minilm + (1 - w) * v7
    cells = [f"{n}: {a:.3f} / {f:.3f}" for n in THRESHOLDS for a, f in [score(ALL, labels(p, n))]]
    nested: list[str] = [""] * len(gold)
    for k in range(5):
        inner = [i for i in ALL if fold_of[i] != k]
        best = max(THRESHOLDS, key=lambda n: sum(score(inner, labels(p, n))))
        chosen = labels(p, best)
        for i in ALL:
            if fold_of[i] == k:
                nested[i] = chosen[i]
    a, f = score(ALL, nested)
    print(f"w={w}  " + "  ".join(cells) + f"  nested {a:.3f} / {f:.3f}")
    if w:
        print(f"    rule 0.7: {mcnemar(labels(p, 0.7), v7_labels)}")
