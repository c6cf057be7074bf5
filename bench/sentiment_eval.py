#!/usr/bin/env python
"""Evaluate the shipped sentiment weights on the valid split (never used in training).

Prints accuracy, macro-F1, per-class F1, the majority-class baseline, the confusion matrix,
the weights file size and throughput (headlines/second over 1,000 headlines), using only the
pure-Python inference that runs in the Lambda.

Usage: PYTHONPATH=layers/shared:src python bench/sentiment_eval.py [--data DIR] [--json]
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from collections import Counter
from pathlib import Path

from ops_pipeline.news import sentiment as S

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "sentiment"
LABEL_OF = {0: "negative", 1: "positive", 2: "neutral"}
ORDER = ("negative", "neutral", "positive")


def read_split(path: Path) -> tuple[list[str], list[str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return [r["text"] for r in rows], [LABEL_OF[int(r["label"])] for r in rows]


def f1_per_class(gold: list[str], pred: list[str]) -> dict[str, float]:
    out = {}
    for c in ORDER:
        tp = sum(g == c and p == c for g, p in zip(gold, pred))
        fp = sum(g != c and p == c for g, p in zip(gold, pred))
        fn = sum(g == c and p != c for g, p in zip(gold, pred))
        out[c] = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    return out


def scores(gold: list[str], pred: list[str]) -> dict[str, object]:
    per = f1_per_class(gold, pred)
    return {
        "accuracy": sum(g == p for g, p in zip(gold, pred)) / len(gold),
        "macro_f1": sum(per.values()) / len(per),
        "f1": per,
    }


def confusion(gold: list[str], pred: list[str]) -> list[list[int]]:
    counts = Counter(zip(gold, pred))
    return [[counts[(g, p)] for p in ORDER] for g in ORDER]


def throughput(texts: list[str], n: int = 1000) -> float:
    batch = (texts * (n // max(1, len(texts)) + 1))[:n]
    S.classify_sentiments(batch[:10])  # model loaded before timing
    t0 = time.perf_counter()
    S.classify_sentiments(batch)
    return n / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--json", action="store_true", help="print one JSON object instead")
    args = ap.parse_args()

    _, train_labels = read_split(args.data / "twitter_financial_news_train.csv")
    texts, gold = read_split(args.data / "twitter_financial_news_valid.csv")
    t0 = time.perf_counter()
    S.load_model()
    load_s = time.perf_counter() - t0
    pred = [s.label for s in S.classify_sentiments(texts)]
    majority = Counter(train_labels).most_common(1)[0][0]
    report = {
        "model_name": S.MODEL_NAME,
        "n_valid": len(texts),
        "model": scores(gold, pred),
        "majority_baseline": {"label": majority, **scores(gold, [majority] * len(gold))},
        "confusion": {"rows_gold_cols_pred": list(ORDER), "matrix": confusion(gold, pred)},
        "model_file_bytes": S.MODEL_PATH.stat().st_size,
        "model_load_seconds": round(load_s, 3),
        "headlines_per_second": round(throughput(texts)),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    m, b = report["model"], report["majority_baseline"]
    print(f"model {S.MODEL_NAME} on valid ({len(texts)} headlines, never trained on)")
    print(f"  accuracy {m['accuracy']:.4f}   macro-F1 {m['macro_f1']:.4f}")
    print("  F1 " + "  ".join(f"{c} {v:.4f}" for c, v in m["f1"].items()))
    print(
        f"majority baseline (always '{majority}'): accuracy {b['accuracy']:.4f}   "
        f"macro-F1 {b['macro_f1']:.4f}"
    )
    print("confusion (rows = gold, cols = predicted):")
    print("            " + "".join(f"{c:>10}" for c in ORDER))
    for c, row in zip(ORDER, report["confusion"]["matrix"]):
        print(f"  {c:<10}" + "".join(f"{v:>10}" for v in row))
    print(
        f"model file {report['model_file_bytes'] / 1e6:.2f} MB, "
        f"load {report['model_load_seconds']:.2f} s"
    )
    print(f"throughput {report['headlines_per_second']} headlines/s (1,000 headlines)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
