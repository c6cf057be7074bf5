#!/usr/bin/env python
"""Cross-source figures of the news sentiment model, the shipped model's figures and budget.

* the cross-source table (docs/sentiment.md): the shipped recipe (features, C, decision rule)
  trained on one source and measured on the others; a SemEval column of a row that trains on
  SemEval is grouped 5-fold cross-validation (near-duplicate headlines in one fold), the honest
  estimate of the figure on unseen headlines of that kind, and such a row also gets plain
  stratified 5-fold CV (shuffled, seed 0: what a random split of the same pool would give).
  Classes: SemEval score > 0.05 positive, < -0.05 negative, else neutral. Two calibration
  rows: the shipped mix under round 5's rule (a band of +-0.1 on the polarity alone), and the
  plain TF-IDF + logistic regression on SemEval alone (scikit-learn's defaults, argmax);
* the shipped weights: rebuilt from the training data by scripts/train_sentiment.py's code,
  and compared byte for byte with the shipped file;
* the shipped model through the pure-Python inference that runs in the Lambda: Twitter valid
  (used with the SemEval CV to choose the decision rule), the held-out written US news
  (``bench/sentiment_heldout_us_news.tsv``, never trained on nor used to choose), Financial
  PhraseBank's AllAgree sentences when the data folder has ``Sentences_AllAgree.txt`` (never
  trained on nor used to choose; also a column of the cross-source table), and the SemEval
  headlines (trained on: an in-sample figure, printed as such);
* ticker finding on real headlines: Twitter Financial News texts with a cashtag of a company in
  the alias table whose name also appears in the text; recall of the name alone (cashtags
  removed), and how many name hits the cashtags confirm;
* budget: model files' size, the shared layer's installed size, cold start in a fresh
  interpreter, throughput on one core.

Financial PhraseBank is optional (CC BY-NC-SA 3.0, not in the repository): without its file the
PhraseBank column and section are left out, see docs/sentiment.md.
Needs the ``train`` extra (scikit-learn). Usage:
    PYTHONPATH=layers/shared:src python bench/sentiment_eval.py [--data DIR] [--json] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from ops_pipeline.news import sentiment as S
from ops_pipeline.news import tickers as K
from ops_pipeline.news import vader as V

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
import train_sentiment as T  # noqa: E402  (scripts/ is not a package)
from sentiment_sources import (  # noqa: E402
    DEFAULT_DATA,
    PHRASEBANK,
    Labelled,
    Sources,
    missing_data,
    read_sources,
    read_twitter,
)

ORDER = T.CLASS_ORDER


f1_per_class = T.f1_per_class


def scores(gold: Sequence[str], pred: Sequence[str]) -> dict[str, object]:
    per = f1_per_class(gold, pred)
    return {
        "accuracy": round(sum(g == p for g, p in zip(gold, pred)) / len(gold), 4),
        "macro_f1": round(sum(per.values()) / len(per), 4),
        "f1": {c: round(v, 4) for c, v in per.items()},
    }


def confusion(gold: Sequence[str], pred: Sequence[str]) -> list[list[int]]:
    counts = Counter(zip(gold, pred))
    return [[counts[(g, p)] for p in ORDER] for g in ORDER]


def cell(s: dict[str, object]) -> str:
    return f"{s['accuracy']:.3f} / {s['macro_f1']:.3f}"


def cross_source(data: Path, src: Sources) -> tuple[list[dict[str, object]], bytes]:
    """The table's rows, and the shipped mix's weights file rebuilt (the last fit)."""
    sem, tw, wr, valid, held = src.semeval, src.twitter, src.written, src.twitter_valid, src.heldout
    phrasebank = src.phrasebank
    c, weights = T.CHOSEN["C"], T.CHOSEN["weights"]

    rows: list[dict[str, object]] = []
    for name, sources in (
        ("SemEval headlines only", [sem]),
        ("Twitter train only", [tw]),
        ("written sentences only", [wr]),
        ("shipped: SemEval + Twitter train + written", [sem, tw, wr]),
    ):
        t0 = time.perf_counter()
        model = T.fit(sources, weights, c)
        trained_on_sem = sem in sources
        others = [s for s in sources if s is not sem]
        probas = {
            "semeval": T.out_of_fold(sem, others, weights, c)
            if trained_on_sem
            else model.proba(sem.texts),
            "twitter_valid": model.proba(valid.texts),
            "heldout_written": model.proba(held.texts),
        }
        if trained_on_sem:
            probas["semeval_plain"] = T.out_of_fold(sem, others, weights, c, T.plain_folds(sem))
        gold = {
            "semeval": sem.labels,
            "semeval_plain": sem.labels,
            "twitter_valid": valid.labels,
            "heldout_written": held.labels,
        }
        if phrasebank is not None:
            probas["phrasebank"] = model.proba(phrasebank.texts)
            gold["phrasebank"] = phrasebank.labels
        row: dict[str, object] = {"trained_on": name, "texts": sum(len(s) for s in sources)}
        row.update({k: scores(gold[k], T.chosen_labels(p)) for k, p in probas.items()})
        row["semeval_is_cv"] = trained_on_sem
        print(f"  {name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        rows.append(row)
        if name.startswith("shipped"):
            previous = {"neutral_band": 0.1}  # round 5's rule: the polarity's band alone
            row = {"trained_on": "shipped mix, round-5 rule (band +-0.1)", "texts": row["texts"]}
            row.update(
                {k: scores(gold[k], T.chosen_labels(p, previous)) for k, p in probas.items()}
            )
            row["semeval_is_cv"] = True
            rows.append(row)
    rebuilt = T.encode(T.train(data, T.CHOSEN, "the shipped configuration (CHOSEN, from --cv)"))
    rows.append(plain_baseline(sem, phrasebank))
    return rows, rebuilt


def plain_baseline(sem: Labelled, phrasebank: Labelled | None = None) -> dict[str, object]:
    """The ten-line reference: TfidfVectorizer + LogisticRegression defaults on SemEval alone."""
    row: dict[str, object] = {
        "trained_on": "reference: plain TF-IDF + LR, SemEval only",
        "texts": len(sem),
        "semeval_is_cv": True,
    }
    for key, splits in (("semeval", T.grouped_folds(sem)), ("semeval_plain", T.plain_folds(sem))):
        row[key] = scores(sem.labels, T.reference_predictions(sem, splits))
    if phrasebank is not None:
        row["phrasebank"] = scores(
            phrasebank.labels, T.reference_fit(sem).predict(phrasebank.texts)
        )
    return row


def print_table(rows: list[dict[str, object]]) -> None:
    print(
        "cross-source (accuracy / macro-F1; SemEval classes at +-0.05; * = grouped 5-fold CV;"
        " plain = stratified 5-fold CV, shuffled, seed 0)"
    )
    print(
        f"  {'trained on':<48}{'texts':>7}  {'SemEval':<17}{'SemEval plain':<17}"
        f"{'Twitter valid':<17}{'held-out written':<17}{'PhraseBank All':<17}"
    )
    for r in rows:
        sem = cell(r["semeval"]) + ("*" if r["semeval_is_cv"] else " ")  # type: ignore[arg-type]
        cells = [
            cell(r[k]) if k in r else "-"  # type: ignore[arg-type]
            for k in ("semeval_plain", "twitter_valid", "heldout_written", "phrasebank")
        ]
        print(
            f"  {r['trained_on']:<48}{r['texts']:>7}  {sem:<17}"
            + "".join(f"{x:<17}" for x in cells)
        )
    for r in rows:
        if str(r["trained_on"]).startswith("shipped"):
            per = r["semeval"]["f1"]  # type: ignore[index]
            print(
                f"  {r['trained_on']}, SemEval CV per-class F1: "
                + "  ".join(f"{c} {v:.3f}" for c, v in per.items())  # type: ignore[union-attr]
            )


def print_scores(title: str, gold: list[str], pred: list[str]) -> dict[str, object]:
    m = scores(gold, pred)
    majority = Counter(gold).most_common(1)[0][0]
    b = scores(gold, [majority] * len(gold))
    print(f"{title} ({len(gold)} texts)")
    print(f"  accuracy {m['accuracy']:.4f}   macro-F1 {m['macro_f1']:.4f}")
    print("  F1 " + "  ".join(f"{c} {v:.4f}" for c, v in m["f1"].items()))  # type: ignore[attr-defined]
    print(f"  always '{majority}': accuracy {b['accuracy']:.4f}   macro-F1 {b['macro_f1']:.4f}")
    print("  confusion (rows = gold, cols = predicted):")
    print("              " + "".join(f"{c:>10}" for c in ORDER))
    for c, row in zip(ORDER, confusion(gold, pred)):
        print(f"    {c:<10}" + "".join(f"{v:>10}" for v in row))
    return {"model": m, "majority": {"label": majority, **b}, "confusion": confusion(gold, pred)}


def ticker_figures(data: Path) -> dict[str, object]:
    """Name recall and cashtag-confirmed precision on real tweets with a known cashtag."""
    texts = read_twitter(data).texts + read_twitter(data, "valid").texts
    lowered = {t: [a.lower() for a in aliases] for t, aliases in K.COMPANY_ALIASES.items()}
    pairs = found = hits = confirmed = 0
    missed: list[str] = []
    for text in texts:
        tags = K.cashtags(text) & set(K.COMPANY_ALIASES)
        if not tags:
            continue
        bare = re.sub(r"\$[A-Za-z.]+", " ", text)
        names = K.company_mentions(bare)
        hits += len(names)
        confirmed += len(names & tags)
        for t in tags:
            if any(
                re.search(rf"(?<![a-z0-9]){re.escape(a)}(?![a-z0-9])", bare.lower())
                for a in lowered[t]
            ):
                pairs += 1
                if t in names:
                    found += 1
                else:
                    missed.append(f"{t}: {text}")
    out = {
        "pairs_name_in_text": pairs,
        "recall": round(found / pairs, 4) if pairs else None,
        "name_hits": hits,
        "confirmed_by_cashtag": round(confirmed / hits, 4) if hits else None,
        "missed": missed[:10],
    }
    print(
        f"tickers on real tweets with a cashtag of a table company: the name in the text "
        f"{pairs} times, found by name alone {found} (recall {out['recall']}); of {hits} name "
        f"hits {confirmed} are confirmed by a cashtag ({out['confirmed_by_cashtag']}: a lower "
        "bound of precision, a headline may name a second company without its cashtag)"
    )
    for m in missed[:10]:
        print(f"  missed {m}")
    return out


def throughput(texts: list[str], n: int = 2000) -> float:
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--json", action="store_true", help="print one JSON object at the end")
    ap.add_argument("--quick", action="store_true", help="skip the cross-source table (fits)")
    args = ap.parse_args()
    # A clone has the shipped model and its tests, not the data to rebuild it.
    if missing := missing_data(args.data):
        print(f"sentiment_eval: skipped, {missing}")
        return 0
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as in the Lambda

    report: dict[str, object] = {"model_name": S.MODEL_NAME}
    model = S.load_model()
    print(
        f"model {S.MODEL_NAME}: neutral when p(neutral) >= {model.neutral_min_proba}, else the "
        f"polarity's band at +-{model.neutral_band}"
    )
    src = read_sources(args.data)
    if not args.quick:
        rows, rebuilt = cross_source(args.data, src)
        print_table(rows)
        same = rebuilt == S.MODEL_PATH.read_bytes()
        kernels = T.blas_kernels()
        print(
            f"retraining reproduces the shipped weights byte for byte: {same}"
            f" (OpenBLAS kernels {', '.join(kernels)}; the file was fitted with {T.BLAS_KERNELS})"
        )
        report.update(cross_source=rows, retrain_identical=same, blas_kernels=kernels)

    valid, held, phrasebank, sem = src.twitter_valid, src.heldout, src.phrasebank, src.semeval
    report["twitter_valid"] = print_scores(
        "shipped, Twitter valid (not trained on; chose the decision rule with the SemEval CV)",
        valid.labels,
        [s.label for s in S.classify_sentiments(valid.texts)],
    )
    report["heldout_written"] = print_scores(
        "shipped, held-out written US news (never trained on nor used to choose)",
        held.labels,
        [s.label for s in S.classify_sentiments(held.texts)],
    )
    if phrasebank is not None:
        report["phrasebank_allagree"] = print_scores(
            "shipped, Financial PhraseBank AllAgree (never trained on nor used to choose)",
            phrasebank.labels,
            [s.label for s in S.classify_sentiments(phrasebank.texts)],
        )
    else:
        print(f"Financial PhraseBank AllAgree: skipped, {args.data} has no {PHRASEBANK}")
    report["semeval_in_sample"] = print_scores(
        "shipped, SemEval headlines (TRAINED ON: in-sample, see the CV above)",
        sem.labels,
        [s.label for s in S.classify_sentiments(sem.texts)],
    )
    report["tickers"] = ticker_figures(args.data)

    paths = (S.MODEL_PATH, S.LEXICON_PATH, V.VADER_LEXICON_PATH)
    files = {p.name: p.stat().st_size for p in paths if p.exists()}
    cold = cold_start()
    layer = layer_bytes()
    rate = throughput(sem.texts + valid.texts)
    report.update(
        model_files_bytes=files,
        cold_start=cold,
        shared_layer_installed_bytes=layer,
        headlines_per_second_one_core=round(rate),
    )
    print("model files: " + ", ".join(f"{k} {v / 1e6:.2f} MB" for k, v in files.items()))
    print(
        f"shared layer installed (layers/shared/requirements.txt + deps, this venv): "
        f"{layer / 1e6:.0f} MB of Lambda's 250 MB; the classifier adds no dependency"
    )
    print(
        f"cold start (fresh interpreter: import, load, first headline): "
        f"{cold['import_load_first_s']:.2f} s ({cold['with_interpreter_s']:.2f} s with "
        f"interpreter start-up)"
    )
    print(f"throughput on one core: {rate:.0f} headlines/s")
    if args.json:
        print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
