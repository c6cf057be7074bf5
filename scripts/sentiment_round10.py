#!/usr/bin/env python
"""Round 10 (docs/sentiment.md): the written sentences rewritten from a guide that names no test
set's register. A throw-away record, like rounds 6-9.

Candidates differ only in the written sentences trained on (v7's recipe otherwise: features, C,
source weights, decision rule):

* ``v1``: the sentences of rounds 4-9 (``scripts/sentiment_data/written_*.tsv`` at commit
  982c781, from the first guide, which asked for the press-release register by name);
* ``v2``: the sentences written in round 10 from ``scripts/sentiment_data/GUIDE.md`` version 2
  (US market news; the ``*.tsv`` files under ``--v2 DIR``, default the repository's);
* ``none``: no written sentences;
* ``v2@W``: v2 at written weight W instead of 0.5.

Each is measured by the grouped and the plain SemEval CV, on Twitter valid, on both held-out
written sets (v1's ``bench/sentiment_heldout_news.tsv`` at 982c781 and v2's), and on Financial
PhraseBank AllAgree when the data folder has it (never used to choose).

    SENTIMENT_DATA=DIR PYTHONPATH=layers/shared:src:scripts python scripts/sentiment_round10.py \
        [--semeval-weight 5] v1 v2 none v2@1     # or --overlap, or --rule-ceiling

``--rule-ceiling`` (after round 10): the shipped recipe's grouped out-of-fold probabilities on
the SemEval headlines under every decision rule of ``--cv``'s grid, without the Twitter-valid
floor: the most accuracy any rule gets out of these probabilities, and the grouped errors by kind.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import train_sentiment as T  # pins the BLAS kernels before numpy loads
from sentiment_sources import (
    DEFAULT_DATA,
    HELDOUT_NEWS,
    Labelled,
    read_phrasebank,
    read_semeval,
    read_twitter,
)
from written_sentences import read_labelled, written_sentences

REPO = Path(__file__).resolve().parents[1]
V1_COMMIT = "982c781"


def _from_git(path: str) -> tuple[list[str], list[str]]:
    text = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{V1_COMMIT}:{path}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    tmp = Path("/tmp") / ("r10_" + path.replace("/", "_"))
    tmp.write_text(text, encoding="utf-8")
    return read_labelled(tmp)


def v1_written() -> Labelled:
    names = subprocess.run(
        ["git", "-C", str(REPO), "ls-tree", "--name-only", V1_COMMIT, "scripts/sentiment_data/"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    texts: list[str] = []
    labels: list[str] = []
    for name in sorted(n for n in names if n.endswith(".tsv")):
        t, lab = _from_git(name)
        texts += t
        labels += lab
    return Labelled("written", texts, labels)


def v2_written(folder: Path) -> Labelled:
    return Labelled("written", *written_sentences(folder))


def _words(text: str) -> frozenset[str]:
    return frozenset(re.findall(r"[a-z]+", text.lower()))


def overlap(written: list[str], sources: dict[str, list[str]], jaccard: float = 0.6) -> dict:
    """How many written texts share >= ``jaccard`` of their words with a text of each source (a
    copy or a paraphrase would): counts and the first few pairs."""
    out: dict[str, object] = {}
    for name, texts in sources.items():
        index: dict[str, list[int]] = {}
        words = [_words(t) for t in texts]
        for i, w in enumerate(words):
            for word in w:
                index.setdefault(word, []).append(i)
        hits = []
        for text in written:
            a = _words(text)
            seen = {j for word in a for j in index.get(word, ())}
            for j in seen:
                b = words[j]
                if len(a & b) >= jaccard * len(a | b):
                    hits.append((text, texts[j]))
                    break
        out[name] = {"close": len(hits), "examples": hits[:5]}
    return out


def measure(
    name: str,
    written: Labelled | None,
    weight: float,
    ev: dict[str, Labelled],
    semeval_weight: float = T.CHOSEN["weights"]["semeval"],
) -> dict:
    sem, tw = ev["semeval"], ev["twitter"]
    weights = {**T.CHOSEN["weights"], "semeval": semeval_weight, "written": weight}
    c = T.CHOSEN["C"]
    others = [tw] + ([written] if written is not None else [])
    t0 = time.perf_counter()
    row: dict[str, object] = {"candidate": name, "written": len(written) if written else 0}
    for key, splits in (("grouped", None), ("plain", T.plain_folds(sem))):
        proba = T.out_of_fold(sem, others, weights, c, splits)
        row[key] = T.scores(sem.labels, T.chosen_labels(proba))
    model = T.fit([sem, *others], weights, c)
    for key in ("twitter_valid", "heldout_v1", "heldout_v2", "phrasebank"):
        if key in ev:
            row[key] = T.scores(ev[key].labels, T.chosen_labels(model.proba(ev[key].texts)))
    row["seconds"] = round(time.perf_counter() - t0)
    return row


def rule_ceiling(ev: dict[str, Labelled], written: Labelled) -> dict:
    """Every (band, p(neutral)) rule on the shipped recipe's grouped out-of-fold probabilities,
    best accuracy first, beside the shipped rule and its errors (gold -> called)."""
    sem = ev["semeval"]
    oof = T.out_of_fold(sem, [ev["twitter"], written], T.CHOSEN["weights"], T.CHOSEN["C"])
    rules = [
        {"band": band, "neutral_min_proba": neutral, **T.scores(sem.labels, labels)}
        for band, neutral in itertools.product(T.BANDS, T.NEUTRAL_MIN_PROBAS)
        for labels in [T.decide_labels(oof, band, neutral)]
    ]
    rules.sort(key=lambda r: (r["accuracy"], r["macro_f1"]), reverse=True)
    shipped = T.chosen_labels(oof)
    errors = Counter(f"{g}->{c}" for g, c in zip(sem.labels, shipped) if g != c)
    return {
        "best_rules": rules[:5],
        "shipped_rule": T.scores(sem.labels, shipped),
        "errors": dict(errors.most_common()),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("candidates", nargs="*")
    ap.add_argument("--semeval-weight", type=float, default=T.CHOSEN["weights"]["semeval"])
    ap.add_argument("--overlap", action="store_true", help="near copies of other sets' texts")
    ap.add_argument("--rule-ceiling", action="store_true", help="every rule, no floor (v8)")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--v2", type=Path, default=REPO / "scripts" / "sentiment_data")
    ap.add_argument("--heldout-v2", type=Path, default=HELDOUT_NEWS)
    args = ap.parse_args()
    ev: dict[str, Labelled] = {
        "semeval": read_semeval(args.data),
        "twitter": read_twitter(args.data),
        "twitter_valid": read_twitter(args.data, "valid"),
        "heldout_v1": Labelled("heldout_v1", *_from_git("bench/sentiment_heldout_news.tsv")),
    }
    if args.heldout_v2.is_file():
        ev["heldout_v2"] = Labelled("heldout_v2", *read_labelled(args.heldout_v2))
    phrasebank = read_phrasebank(args.data)
    if phrasebank is not None:
        ev["phrasebank"] = phrasebank
    sets = {"v1": v1_written(), "v2": v2_written(args.v2), "none": None}
    if args.overlap:
        against = {k: v.texts for k, v in ev.items() if k not in ("heldout_v2",)}
        against["v2_training"] = sets["v2"].texts
        held = ev["heldout_v2"].texts if "heldout_v2" in ev else []
        print(
            json.dumps(
                {
                    "v2_training": overlap(
                        sets["v2"].texts, {k: v for k, v in against.items() if k != "v2_training"}
                    )
                }
            ),
            flush=True,
        )
        print(json.dumps({"heldout_v2": overlap(held, against)}), flush=True)
    if args.rule_ceiling:
        print(json.dumps(rule_ceiling(ev, sets["v2"])), flush=True)
    for cand in args.candidates:
        base, _, w = cand.partition("@")
        weight = float(w or T.CHOSEN["weights"]["written"])
        row = measure(cand, sets[base], weight, ev, args.semeval_weight)
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
