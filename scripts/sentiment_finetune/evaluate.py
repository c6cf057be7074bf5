"""The fine-tuned MiniLM's out-of-fold probabilities ($FT_WORK/oof/fold*.json) against v7's
(data.json), with the project's own decision rule and scores (``train_sentiment``): alone and
averaged with v7, per fold and overall, right / wrong against v7 (exact McNemar), and the rule's
p(neutral) threshold by averaging weight, also chosen nested (on four folds, applied to the
fifth).

Runs in the project's venv, from the clone:
    PYTHONPATH=layers/shared:src:scripts .venv/bin/python scripts/sentiment_finetune/evaluate.py [OOF_DIR]
"""

import json
import os
import sys
from math import comb
from pathlib import Path

import train_sentiment as T  # first: it pins the BLAS kernels before numpy loads

# isort: split
import numpy as np

WORK = Path(os.environ.get("FT_WORK", "/tmp/ft"))
oof_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else WORK / "oof"
d = json.loads((WORK / "data.json").read_text())
assert d["labels_order"] == list(T.S.LABELS), d["labels_order"]
gold = d["sem"][1]
v7 = np.array(d["v7_oof"])
minilm = np.full_like(v7, np.nan)
folds: dict[int, list[int]] = {}
for f in sorted(oof_dir.glob("fold*.json")):
    r = json.loads(f.read_text())
    minilm[r["te"]] = np.array(r["proba"])
    folds[r["fold"]] = r["te"]
done = sorted(i for te in folds.values() for i in te)
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 2.0)  # 2.0: never neutral (the sign alone)


def rule(p: np.ndarray, neutral_min: float = 0.7) -> list[str]:
    return T.decide_labels(p, 0.0, neutral_min)


def argmax(p: np.ndarray) -> list[str]:
    return [T.S.LABELS[i] for i in p.argmax(1)]


def cell(idx: list[int], pred: list[str]) -> str:
    s = T.scores([gold[i] for i in idx], [pred[i] for i in idx])
    return f"{s['accuracy']:.3f} / {s['macro_f1']:.3f}"


def mcnemar(pred: list[str], base: list[str]) -> str:
    win = sum(pred[i] == gold[i] != base[i] for i in done)
    loss = sum(base[i] == gold[i] != pred[i] for i in done)
    n = win + loss
    p = min(1.0, 2 * sum(comb(n, j) for j in range(min(win, loss) + 1)) / 2**n) if n else 1.0
    return f"{win} / {loss} (p {p:.4f})"


assert rule(v7) == d["v7_labels"]  # the export's v7 labels are the project's rule
v7_rule = rule(v7)
models = {"v7": (v7_rule, argmax(v7)), "MiniLM": (rule(minilm), argmax(minilm))}
for w in (0.2, 0.3, 0.5, 0.7):
    p = w * minilm + (1 - w) * v7
    models[f"{w} MiniLM + {1 - w:.1f} v7"] = (rule(p), argmax(p))
columns = {f"fold {k}": folds[k] for k in sorted(folds)} | {f"all ({len(done)})": done}
print("| model | decision | " + " | ".join(columns) + " | right / wrong where v7 is not |")
print("|---|---|" + "---|" * (len(columns) + 1))
for name, (by_rule, by_argmax) in models.items():
    for decision, pred in (("v7's rule", by_rule), ("argmax", by_argmax)):
        cells = [cell(idx, pred) for idx in columns.values()]
        versus = mcnemar(pred, v7_rule) if name != "v7" else "-"
        print(f"| {name} | {decision} | " + " | ".join(cells) + f" | {versus} |")

print("\nthe rule's p(neutral) threshold, by weight (all folds), and chosen nested")
for w in (0.0, 0.2, 0.3, 0.4, 0.5):
    p = w * minilm + (1 - w) * v7
    cells = [f"{n}: {cell(done, rule(p, n))}" for n in THRESHOLDS]
    nested: list[str] = [""] * len(gold)
    for test in folds.values():
        held = set(test)
        inner = [i for i in done if i not in held]

        def inner_sum(n: float, p: np.ndarray = p, inner: list[int] = inner) -> float:
            pred = rule(p, n)
            s = T.scores([gold[i] for i in inner], [pred[i] for i in inner])
            return s["accuracy"] + s["macro_f1"]

        chosen = rule(p, max(THRESHOLDS, key=inner_sum))
        for i in test:
            nested[i] = chosen[i]
    print(f"w={w}  " + "  ".join(cells) + f"  nested {cell(done, nested)}")
