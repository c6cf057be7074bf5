#!/usr/bin/env python
"""Round-6 analysis on cached out-of-fold probabilities (scripts/sentiment_candidates.py).

* nested choice of the decision rule: for each SemEval fold, the rule (band or class biases)
  is chosen on the other four folds' out-of-fold predictions (with the Twitter-valid floor) and
  applied to the fold: an estimate free of the optimism of choosing the rule on the figures it
  is judged by;
* nearest-neighbour memory: a test headline whose nearest training SemEval headline (word-set
  Jaccard) is at least ``tau`` alike takes that headline's label (with weight ``lam``), to see
  what near-duplicate stories give under grouped and under plain CV.

Throw-away research code, the record of the round. Usage:
    PYTHONPATH=layers/shared:src python scripts/sentiment_rules.py CANDIDATE... [--cache DIR]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sentiment_candidates as X
import train_sentiment as T
from sentiment_sources import read_semeval, read_twitter


def folds(scheme: str, sem):
    return T.grouped_folds(sem) if scheme == "grouped" else X.plain_folds(sem)


FAMILIES = {
    "band": lambda n: n.startswith("band") and "pneu" not in n,
    "hybrid": lambda n: n.startswith("band"),
    "bias": lambda n: n.startswith("bias"),
    "all": lambda n: True,
}


def nested(
    probs: dict[str, np.ndarray], scheme: str, family: str = "all"
) -> tuple[float, float, float]:
    sem, valid = read_semeval(), read_twitter(split="valid")
    rules = [(n, r) for n, r in X.rules() if FAMILIES[family](n)]
    ok = [
        (n, r) for n, r in rules if X.score(valid.labels, r(probs["valid"]))[1] >= T.NEUTRAL_FLOOR
    ]
    pred = np.empty(len(sem), dtype=object)
    gold = np.array(sem.labels, dtype=object)
    chosen = []
    for tr, te in folds(scheme, sem):
        best, best_v = None, -1.0
        for name, rule in ok:
            s = X.score(list(gold[tr]), rule(probs[scheme][tr]))
            if s[0] + s[1] > best_v:
                best, best_v = (name, rule), s[0] + s[1]
        assert best is not None
        chosen.append(best[0])
        pred[te] = best[1](probs[scheme][te])
    print(f"    nested {scheme} {family}: rules chosen per fold {chosen}", file=sys.stderr)
    return X.score(sem.labels, list(pred))


def nested_grid(
    all_probs: dict[str, dict[str, np.ndarray]], scheme: str, family: str = "hybrid"
) -> tuple[tuple[float, float, float], list[str]]:
    """Nested choice of (candidate, rule) together: ``--cv``'s whole selection, judged on
    folds it did not choose on."""
    sem, valid = read_semeval(), read_twitter(split="valid")
    rules = [(n, r) for n, r in X.rules() if FAMILIES[family](n)]
    options = [
        (cand, name, rule)
        for cand, probs in all_probs.items()
        for name, rule in rules
        if X.score(valid.labels, rule(probs["valid"]))[1] >= T.NEUTRAL_FLOOR
    ]
    gold = np.array(sem.labels, dtype=object)
    pred = np.empty(len(sem), dtype=object)
    chosen = []
    for tr, te in folds(scheme, sem):
        best, best_v = None, -1.0
        for cand, name, rule in options:
            s = X.score(list(gold[tr]), rule(all_probs[cand][scheme][tr]))
            if s[0] + s[1] > best_v:
                best, best_v = (cand, name, rule), s[0] + s[1]
        assert best is not None
        chosen.append(f"{best[0]}: {best[1]}")
        pred[te] = best[2](all_probs[best[0]][scheme][te])
    return X.score(sem.labels, list(pred)), chosen


def _words(text: str) -> frozenset[str]:
    return frozenset(re.findall(r"[a-z]+", text.lower()))


def memory(probs: dict[str, np.ndarray], scheme: str, tau: float, lam: float, band: float):
    sem = read_semeval()
    words = [_words(t) for t in sem.texts]
    p = probs[scheme].copy()
    hits = 0
    for tr, te in folds(scheme, sem):
        for i in te:
            best, sim = -1, 0.0
            for j in tr:
                a, b = words[i], words[j]
                if a and b:
                    s = len(a & b) / len(a | b)
                    if s > sim:
                        best, sim = j, s
            if sim >= tau:
                hits += 1
                onehot = np.zeros(3)
                onehot[X.S.LABELS.index(sem.labels[best])] = 1.0
                p[i] = (1 - lam) * p[i] + lam * onehot
    return X.score(sem.labels, X.rule_band(p, band)), hits


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("candidates", nargs="+")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/senti-cache"))
    ap.add_argument("--memory", action="store_true")
    ap.add_argument("--grid", action="store_true", help="nested choice over all candidates")
    args = ap.parse_args()
    if args.grid:
        all_probs = {n: dict(np.load(args.cache / f"{n}.npz")) for n in args.candidates}
        for family in ("band", "hybrid"):
            for scheme in ("grouped", "plain"):
                got, chosen = nested_grid(all_probs, scheme, family)
                print(
                    json.dumps(
                        {
                            "grid": args.candidates,
                            "family": family,
                            "scheme": scheme,
                            "nested": got,
                            "chosen": chosen,
                        }
                    )
                )
        return 0
    for name in args.candidates:
        probs = dict(np.load(args.cache / f"{name}.npz"))
        out = {"candidate": name}
        for family in FAMILIES:
            for scheme in ("grouped", "plain"):
                out[f"nested_{family}_{scheme}"] = nested(probs, scheme, family)
        print(json.dumps(out))
        if args.memory:
            for scheme in ("grouped", "plain"):
                for tau in (0.4, 0.5, 0.6, 0.7):
                    for lam in (0.5, 1.0):
                        s, hits = memory(probs, scheme, tau, lam, 0.1)
                        print(
                            json.dumps(
                                {
                                    "candidate": name,
                                    "scheme": scheme,
                                    "tau": tau,
                                    "lam": lam,
                                    "hits": hits,
                                    "score": s,
                                }
                            )
                        )
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
