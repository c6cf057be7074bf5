#!/usr/bin/env python
"""Evaluate the shipped sentiment model in domain and out of domain, and its budget.

* in domain: the Twitter Financial News valid split (never used in training);
* out of domain: the SemEval-2017 task 5 headlines *train* file (1,156 news headlines, never
  used in training), its score in [-1, 1] mapped to three classes: > +0.1 positive,
  < -0.1 negative, else neutral (``--threshold``); also split by id parity into halves, the
  even half having been looked at while choosing features, the odd half not;
* out of domain, press-release register: ``bench/sentiment_heldout_news.tsv``, 688 news
  sentences (about 60 % neutral) written for the project apart from the training ones and
  never trained on (docs/sentiment.md says how far that makes it independent);
* budget: model files' size, the shared layer's installed size, cold start in a fresh
  interpreter, throughput on one core (1,000 headlines).

Prints accuracy, macro-F1, per-class F1, the majority-class baseline and the confusion matrix
for each set, using only the pure-Python inference that runs in the Lambda.

Usage: PYTHONPATH=layers/shared:src python bench/sentiment_eval.py [--data DIR] [--json]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from ops_pipeline.news import sentiment as S

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from written_sentences import read_labelled  # noqa: E402  (scripts/ is not a package)

# shared/data beside the repository (or beside the folder of a git worktree).
DEFAULT_DATA = next(
    (p / "shared" / "data" / "sentiment" for p in REPO.parents if (p / "shared" / "data").is_dir()),
    REPO.parent / "shared" / "data" / "sentiment",
)
LABEL_OF = {0: "negative", 1: "positive", 2: "neutral"}
# News sentences written for the project apart from the training ones, never trained on.
HELDOUT_NEWS = Path(__file__).resolve().with_name("sentiment_heldout_news.tsv")
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


def read_semeval(path: Path, threshold: float) -> list[tuple[int, str, str]]:
    """(id, title, label) with the score mapped to three classes at +-threshold."""
    rows = json.loads(path.read_text(encoding="utf-8"))
    out = []
    for r in rows:
        v = float(r["sentiment"])
        label = "positive" if v > threshold else "negative" if v < -threshold else "neutral"
        out.append((int(r["id"]), r["title"], label))
    return out


def throughput(texts: list[str], n: int = 1000) -> float:
    batch = (texts * (n // max(1, len(texts)) + 1))[:n]
    S.classify_sentiments(batch[:10])  # model loaded before timing
    t0 = time.perf_counter()
    S.classify_sentiments(batch)
    return n / (time.perf_counter() - t0)


def cold_start() -> dict[str, float]:
    """A fresh interpreter: import the classifier, load the model, classify one headline."""
    code = (
        "import time; t0 = time.perf_counter(); "
        "from ops_pipeline.news.classify import classify; "
        "classify('Apple shares rise after earnings beat'); "
        "print(time.perf_counter() - t0)"
    )
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, env=os.environ
    )
    total = time.perf_counter() - t0
    return {
        "import_load_first_s": round(float(out.stdout), 3),
        "with_interpreter_s": round(total, 3),
    }


def _installed_bytes(name: str, seen: set[str]) -> int:
    key = re.sub(r"[-_.]+", "-", name).lower()
    if key in seen:
        return 0
    seen.add(key)
    try:
        dist = distribution(name)
    except PackageNotFoundError:
        return 0
    size = 0
    for f in dist.files or []:
        path = Path(str(dist.locate_file(f)))
        if path.is_file():
            size += path.stat().st_size
    for req in dist.requires or []:
        if "extra ==" in req and "tracer" not in req:
            continue
        size += _installed_bytes(re.split(r"[\s;<>=!~\[(]", req, maxsplit=1)[0], seen)
    return size


def layer_bytes() -> int:
    """Installed size of layers/shared/requirements.txt and its dependencies (this venv)."""
    reqs = (REPO / "layers" / "shared" / "requirements.txt").read_text().splitlines()
    names = [re.split(r"[\s;<>=!~\[#]", r.strip(), maxsplit=1)[0] for r in reqs]
    seen: set[str] = set()
    return sum(_installed_bytes(n, seen) for n in names if n)


def print_scores(title: str, gold: list[str], pred: list[str], majority: str) -> dict[str, object]:
    m, b = scores(gold, pred), scores(gold, [majority] * len(gold))
    print(f"{title} ({len(gold)} texts)")
    print(f"  accuracy {m['accuracy']:.4f}   macro-F1 {m['macro_f1']:.4f}")
    print("  F1 " + "  ".join(f"{c} {v:.4f}" for c, v in m["f1"].items()))
    print(f"  always '{majority}': accuracy {b['accuracy']:.4f}   macro-F1 {b['macro_f1']:.4f}")
    polar = [(g, p) for g, p in zip(gold, pred) if g != "neutral" and p != "neutral"]
    if polar:
        right = sum(g == p for g, p in polar)
        print(
            f"  direction right on {right / len(polar):.4f} of the {len(polar)} texts that "
            "gold and model both call positive or negative"
        )
    print("  confusion (rows = gold, cols = predicted):")
    print("              " + "".join(f"{c:>10}" for c in ORDER))
    for c, row in zip(ORDER, confusion(gold, pred)):
        print(f"    {c:<10}" + "".join(f"{v:>10}" for v in row))
    return {"model": m, "majority": {"label": majority, **b}, "confusion": confusion(gold, pred)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--threshold", type=float, default=0.1, help="SemEval neutral band")
    ap.add_argument("--json", action="store_true", help="print one JSON object at the end")
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as in the Lambda

    _, train_labels = read_split(args.data / "twitter_financial_news_train.csv")
    texts, gold = read_split(args.data / "twitter_financial_news_valid.csv")
    sem = read_semeval(args.data / "semeval2017_headlines_train.json", args.threshold)
    t0 = time.perf_counter()
    S.load_model()
    load_s = time.perf_counter() - t0
    report: dict[str, object] = {"model_name": S.MODEL_NAME}
    print(f"model {S.MODEL_NAME}")

    pred = [s.label for s in S.classify_sentiments(texts)]
    report["twitter_valid"] = print_scores(
        "in domain: Twitter valid split", gold, pred, Counter(train_labels).most_common(1)[0][0]
    )
    # By position, not by id: 12 ids occur twice in the file, with different headlines.
    sem_pred = [s.label for s in S.classify_sentiments(t for _, t, _ in sem)]
    t = args.threshold
    everything = range(len(sem))
    for name, key, idx in (
        (f"out of domain: SemEval-2017 headlines, neutral band +-{t}", "semeval", everything),
        (
            "  its even-id half (seen while choosing features)",
            "semeval_even",
            [k for k in everything if sem[k][0] % 2 == 0],
        ),
        (
            "  its odd-id half (never looked at)",
            "semeval_odd",
            [k for k in everything if sem[k][0] % 2 == 1],
        ),
    ):
        g = [sem[k][2] for k in idx]
        report[key] = print_scores(name, g, [sem_pred[k] for k in idx], "positive")

    held_texts, held_gold = read_labelled(HELDOUT_NEWS)
    held_pred = [s.label for s in S.classify_sentiments(held_texts)]
    report["heldout_news"] = print_scores(
        "out of domain: held-out written news sentences (press releases and headlines)",
        held_gold,
        held_pred,
        Counter(held_gold).most_common(1)[0][0],
    )

    files = {p.name: p.stat().st_size for p in (S.MODEL_PATH, S.LEXICON_PATH) if p.exists()}
    cold = cold_start()
    layer = layer_bytes()
    rate = throughput(texts + [t for _, t, _ in sem])
    report.update(
        model_files_bytes=files,
        model_load_seconds=round(load_s, 3),
        cold_start=cold,
        shared_layer_installed_bytes=layer,
        headlines_per_second_one_core=round(rate),
    )
    print(
        "model files: "
        + ", ".join(f"{k} {v / 1e6:.2f} MB" for k, v in files.items())
        + f"; weights load {load_s:.2f} s"
    )
    print(
        f"shared layer installed (layers/shared/requirements.txt + deps, this venv): "
        f"{layer / 1e6:.0f} MB of Lambda's 250 MB; the classifier adds no dependency"
    )
    print(
        f"cold start (fresh interpreter: import, load, first headline): "
        f"{cold['import_load_first_s']:.2f} s ({cold['with_interpreter_s']:.2f} s with "
        f"interpreter start-up)"
    )
    print(f"throughput on one core: {rate:.0f} headlines/s, 1,000 headlines in {1000 / rate:.2f} s")
    if args.json:
        print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
