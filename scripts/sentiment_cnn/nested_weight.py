"""Nested choice of the averaging weight m in {0, 0.2, 0.35, 0.5} (shipped rule), per outer fold on the
other folds' OOF probabilities; plus paired win/loss counts vs r8base for fixed weights."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import sentiment_candidates as X
import sentiment_rules as R
from sentiment_sources import read_semeval

sem = read_semeval()
gold = np.array(sem.labels, dtype=object)
base = dict(np.load("/tmp/senti-cache/r8base.npz"))
rule = lambda p: np.array(X.rule_hybrid(p, 0.0, 0.7), dtype=object)
for cand in sys.argv[1:]:
    c = dict(np.load(f"/tmp/senti-cache/{cand}.npz"))
    for scheme in ("grouped", "plain"):
        pred = np.empty(len(sem), dtype=object)
        chosen = []
        for tr, te in R.folds(scheme, sem):
            best = max(
                (0.0, 0.2, 0.35, 0.5),
                key=lambda m: sum(
                    X.score(
                        list(gold[tr]), list(rule((1 - m) * base[scheme][tr] + m * c[scheme][tr]))
                    )[:2]
                ),
            )
            chosen.append(best)
            pred[te] = rule((1 - best) * base[scheme][te] + best * c[scheme][te])[:]
        print(cand, scheme, "nested weight", chosen, X.score(list(gold), list(pred)))
        b = rule(base[scheme]) == gold
        for m in (0.2, 0.35, 0.5):
            a = rule((1 - m) * base[scheme] + m * c[scheme]) == gold
            print(
                f"   @{m}: acc {a.mean():.4f} vs {b.mean():.4f}; fixed by avg {int((a & ~b).sum())}, broken {int((~a & b).sum())}"
            )
