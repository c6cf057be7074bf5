"""Score the MiniLM out-of-fold probabilities against v7's ($FT_WORK/oof/fold*.json, data.json).

Usage: venv/bin/python evaluate.py [oof_dir]   -> prints markdown tables, writes eval.json
"""

import json
import os
import sys
from pathlib import Path

import numpy as np

OUT = Path(os.environ.get("FT_WORK", "/tmp/ft"))
oof_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT / "oof"
d = json.loads((OUT / "data.json").read_text())
order = d["labels_order"]
assert order == ["negative", "positive", "neutral"], order
gold_all = d["sem"][1]
v7 = np.array(d["v7_oof"])
CLASSES = ("negative", "neutral", "positive")


def rule(p, neutral_min=0.7, band=0.0):
    """v7's decision (S.decide): neutral if p(neutral) >= 0.7, else sign of p(pos) - p(neg)."""
    out = []
    for neg, pos, neu in p:
        if neu >= neutral_min:
            out.append("neutral")
        else:
            pol = pos - neg
            out.append("positive" if pol > band else "negative" if pol < -band else "neutral")
    return out


def argmax(p):
    return [order[i] for i in np.asarray(p).argmax(1)]


def score(gold, pred):
    acc = float(np.mean([g == q for g, q in zip(gold, pred)]))
    f1s = []
    for c in sorted(set(gold) | set(pred)):  # sklearn's macro: labels in gold or pred
        tp = sum(g == c and q == c for g, q in zip(gold, pred))
        fp = sum(g != c and q == c for g, q in zip(gold, pred))
        fn = sum(g == c and q != c for g, q in zip(gold, pred))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return acc, float(np.mean(f1s))


# sanity: the rule reproduces the project's chosen_labels on v7
assert rule(v7) == d["v7_labels"], "rule mismatch"

files = sorted(oof_dir.glob("fold*.json"))
mini = np.full_like(v7, np.nan)
rows, done_idx, info = [], [], {}
for f in files:
    r = json.loads(f.read_text())
    te = r["te"]
    mini[te] = np.array(r["proba"])
    done_idx += te
    info[r["fold"]] = r


def block(idx):
    g = [gold_all[i] for i in idx]
    m, v = mini[idx], v7[idx]
    res = {
        "MiniLM argmax": score(g, argmax(m)),
        "MiniLM v7 rule": score(g, rule(m)),
        "v7 (v7 rule)": score(g, rule(v)),
        "v7 argmax": score(g, argmax(v)),
    }
    for w in (0.3, 0.5, 0.7):
        res[f"avg {w} MiniLM + {1 - w:.1f} v7 (v7 rule)"] = score(g, rule(w * m + (1 - w) * v))
    for w in (0.3, 0.5, 0.7):
        res[f"avg {w} MiniLM + {1 - w:.1f} v7 (argmax)"] = score(g, argmax(w * m + (1 - w) * v))
    return res


table = {}
for k in sorted(info):
    table[f"fold {k} (n={len(info[k]['te'])})"] = block(info[k]["te"])
table[f"all done folds (n={len(done_idx)})"] = block(done_idx)
names = list(next(iter(table.values())).keys())
print("| model | " + " | ".join(table) + " |")
print("|---|" + "---|" * len(table))
for nm in names:
    print(
        f"| {nm} | "
        + " | ".join(f"{table[c][nm][0]:.4f} / {table[c][nm][1]:.4f}" for c in table)
        + " |"
    )

# wins / losses against v7 (v7 rule for both, and MiniLM argmax)
g = [gold_all[i] for i in done_idx]
v7p = rule(v7[done_idx])
wl = {}
for nm, pred in (
    ("MiniLM v7 rule", rule(mini[done_idx])),
    ("MiniLM argmax", argmax(mini[done_idx])),
    ("avg 0.3 (v7 rule)", rule(0.3 * mini[done_idx] + 0.7 * v7[done_idx])),
    ("avg 0.5 (v7 rule)", rule(0.5 * mini[done_idx] + 0.5 * v7[done_idx])),
):
    wins = sum(p == t and q != t for p, q, t in zip(pred, v7p, g))
    losses = sum(p != t and q == t for p, q, t in zip(pred, v7p, g))
    wl[nm] = (wins, losses)
    from math import comb

    nn_ = wins + losses
    p_mcn = (
        min(1.0, 2 * sum(comb(nn_, i) for i in range(min(wins, losses) + 1)) / 2**nn_)
        if nn_
        else 1.0
    )
    print(
        f"{nm}: right where v7 wrong {wins}, wrong where v7 right {losses} "
        f"(exact McNemar p = {p_mcn:.3f})"
    )
# per-class confusion for MiniLM v7 rule
for nm, pred in (("MiniLM v7 rule", rule(mini[done_idx])), ("v7", v7p)):
    conf = {
        t: {p: sum(a == t and b == p for a, b in zip(g, pred)) for p in CLASSES} for t in CLASSES
    }
    print(nm, "confusion gold->pred", conf)
print(
    "train seconds per fold:",
    {k: round(info[k]["train_s"]) for k in sorted(info)},
    "steps:",
    {k: info[k]["steps"] for k in sorted(info)},
)
(oof_dir / "eval.json").write_text(
    json.dumps(
        {"table": table, "wins_losses": wl, "train_s": {k: info[k]["train_s"] for k in info}},
        indent=1,
    )
)
