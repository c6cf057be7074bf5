#!/usr/bin/env python
"""Round-9 experiments: SEntFiN 1.0 as a fourth training source, and the source weights again.

docs/sentiment.md, "Round 9". Every row is ``headlines-v7``'s recipe (features, C 10, SemEval
x5, the decision rule) with one change, measured as ``make eval`` measures the shipped model:
grouped and plain 5-fold CV on the SemEval headlines (the other sources always in training),
then the model fitted on every source on Twitter valid, the held-out written news and, when the
data folder has it, Financial PhraseBank AllAgree (printed, never used to choose).

* ``sentfin W...``: SEntFiN 1.0 (Sinha et al. 2022; 10,753 Indian financial news headlines with
  a sentiment per entity) added at weight W per headline, headlines whose entities all agree
  (9,518; ``--sentfin FILE``, the release's CSV with its ``Title`` and ``Decisions`` columns);
* ``weights``: the Twitter train weight in {0.15, 0.3, 0.6} by the written weight in
  {0, 0.25, 0.5, 1.0} (0: without the written sentences).

Throw-away research code, the record of the round; needs the ``train`` extra. Usage:
    PYTHONPATH=layers/shared:src python scripts/sentiment_round9.py sentfin 0 0.3 1 --sentfin F
    PYTHONPATH=layers/shared:src python scripts/sentiment_round9.py weights
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_sentiment as T  # first: it pins the BLAS kernels before numpy loads
from sentiment_sources import DEFAULT_DATA, Labelled, missing_data, read_sources


def read_sentfin(path: Path) -> Labelled:
    """SEntFiN's headlines whose entities all have one sentiment (a headline-level label)."""
    texts, labels = [], []
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            decisions = set(json.loads(row["Decisions"]).values())
            if len(decisions) == 1:
                texts.append(row["Title"])
                labels.append(decisions.pop())
    return Labelled("sentfin", texts, labels)


def cell(gold: Sequence[str], proba) -> str:
    s = T.scores(gold, T.chosen_labels(proba))
    return f"{s['accuracy']:.3f} / {s['macro_f1']:.3f}"


def measure(name: str, extra: list[Labelled], weights: dict[str, float], data: Path) -> None:
    src = read_sources(data)
    sem, tw, wr, valid, held = src.semeval, src.twitter, src.written, src.twitter_valid, src.heldout
    phrasebank = src.phrasebank
    t0 = time.time()
    others = [s for s in (tw, wr, *extra) if weights[s.name] > 0]  # weight 0: left out
    grouped = T.out_of_fold(sem, others, weights, T.CHOSEN["C"])
    plain = T.out_of_fold(sem, others, weights, T.CHOSEN["C"], T.plain_folds(sem))
    model = T.fit([sem, *others], weights, T.CHOSEN["C"])
    cells = [
        cell(sem.labels, grouped),
        cell(sem.labels, plain),
        cell(valid.labels, model.proba(valid.texts)),
        cell(held.labels, model.proba(held.texts)),
        cell(phrasebank.labels, model.proba(phrasebank.texts)) if phrasebank else "-",
    ]
    print(f"| {name} | " + " | ".join(cells) + f" | {time.time() - t0:.0f} s", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("experiment", choices=("sentfin", "weights"))
    ap.add_argument("values", nargs="*", type=float, help="sentfin: its weights")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--sentfin", type=Path, help="SEntFiN 1.0's CSV")
    args = ap.parse_args()
    if missing := missing_data(args.data):
        print(f"sentiment_round9: {missing}", file=sys.stderr)
        return 2
    print(
        "| candidate | SemEval grouped CV | SemEval plain CV | Twitter valid | held-out written "
        "| PhraseBank AllAgree (never used to choose) |"
    )
    base = T.CHOSEN["weights"]
    if args.experiment == "sentfin":
        if args.sentfin is None:
            print("sentiment_round9: sentfin needs --sentfin FILE", file=sys.stderr)
            return 2
        sentfin = read_sentfin(args.sentfin)
        print(f"SEntFiN, entities agreeing: {len(sentfin)} {dict(Counter(sentfin.labels))}")
        for w in args.values or [0.0, 0.3, 1.0]:
            measure(f"SEntFiN x{w:g}", [sentfin], {**base, "sentfin": w}, args.data)
    else:
        for tw, wr in itertools.product((0.15, 0.3, 0.6), (0.0, 0.25, 0.5, 1.0)):
            weights = {**base, "twitter_train": tw, "written": wr}
            measure(f"tweets x{tw:g}, written x{wr:g}", [], weights, args.data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
