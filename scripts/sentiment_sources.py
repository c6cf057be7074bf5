"""The labelled text the sentiment model is trained and measured on, read one way for all.

Sources (docs/sentiment.md has their licences and shares):

* SemEval-2017 task 5 headlines, *train* file (1,156 news headlines with a score in [-1, 1]):
  the score is mapped to three classes at +-``BAND`` (> 0.05 positive, < -0.05 negative, else
  neutral), the convention of the goal the model is measured against;
* Twitter Financial News Sentiment, train and valid splits (0 = bearish, 1 = bullish,
  2 = neutral);
* the news sentences written for the project (``scripts/sentiment_data/*.tsv``), counted
  apart from the real text;
* Financial PhraseBank v1.0, the sentences all annotators agreed on (``Sentences_AllAgree.txt``,
  optional): evaluation only, never trained on nor used to choose.

``near_duplicate_groups`` gives every SemEval headline a group so that cross-validation never
puts two near-identical headlines (the file repeats stories with a word changed) on both sides.
Used by ``scripts/train_sentiment.py`` and ``bench/sentiment_eval.py``.
"""

from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from written_sentences import LABELS, read_labelled, written_sentences

REPO = Path(__file__).resolve().parents[1]
# Training data only (never tests, make run or examples): the data sets are not in the repository
# (SemEval-2017's headlines are for research use). Give --data DIR, or $SENTIMENT_DATA (what
# `make train` and `make eval` read from the environment). Without either, nothing is looked for
# outside the clone: `missing_data` names what to give.
DEFAULT_DATA = Path(os.environ.get("SENTIMENT_DATA") or "SENTIMENT_DATA-not-set")
SEMEVAL = "semeval2017_headlines_train.json"
TWITTER_TRAIN = "twitter_financial_news_train.csv"
TWITTER_VALID = "twitter_financial_news_valid.csv"
# Optional, evaluation only (CC BY-NC-SA 3.0, Malo et al. 2014): the release's file as it is.
PHRASEBANK = "Sentences_AllAgree.txt"
# News sentences written for the project apart from the training ones, never trained on.
HELDOUT_NEWS = REPO / "bench" / "sentiment_heldout_us_news.tsv"


def missing_data(data: Path) -> str | None:
    """What `data` lacks of the training sets, as one line naming where they come from; None when
    it holds them all."""
    missing = [n for n in (SEMEVAL, TWITTER_TRAIN, TWITTER_VALID) if not (data / n).is_file()]
    if not missing:
        return None
    return (
        f"{data} lacks {', '.join(missing)}: give --data DIR (or SENTIMENT_DATA=DIR) holding the"
        " SemEval-2017 Task 5 headlines and the Twitter Financial News sets (docs/sentiment.md"
        " names their sources; they are not in the repository)"
    )


# Dataset labels: 0 = bearish, 1 = bullish, 2 = neutral.
LABEL_OF = {0: "negative", 1: "positive", 2: "neutral"}
BAND = 0.05  # SemEval score > BAND positive, < -BAND negative, else neutral
DUPLICATE_JACCARD = 0.6  # headlines sharing this share of their words are one story


@dataclass(frozen=True)
class Labelled:
    """Texts and their labels (and, for SemEval, the continuous score) of one source."""

    name: str
    texts: list[str]
    labels: list[str]
    scores: list[float] | None = None

    def __len__(self) -> int:
        return len(self.texts)


def band(score: float, width: float = BAND) -> str:
    """Three classes from a polarity score: > width positive, < -width negative."""
    return "positive" if score > width else "negative" if score < -width else "neutral"


def read_semeval(data: Path = DEFAULT_DATA, width: float = BAND) -> Labelled:
    rows = json.loads((data / SEMEVAL).read_text(encoding="utf-8"))
    scores = [float(r["sentiment"]) for r in rows]
    return Labelled("semeval", [r["title"] for r in rows], [band(s, width) for s in scores], scores)


def read_twitter(data: Path = DEFAULT_DATA, split: str = "train") -> Labelled:
    path = data / (TWITTER_TRAIN if split == "train" else TWITTER_VALID)
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return Labelled(
        f"twitter_{split}", [r["text"] for r in rows], [LABEL_OF[int(r["label"])] for r in rows]
    )


def read_phrasebank(data: Path = DEFAULT_DATA) -> Labelled | None:
    """Financial PhraseBank's AllAgree sentences (``sentence@label`` lines, Latin-1 as released);
    None when the file is not in ``data``."""
    path = data / PHRASEBANK
    if not path.is_file():
        return None
    texts, labels = [], []
    for number, line in enumerate(path.read_text(encoding="latin-1").splitlines(), 1):
        text, _, label = line.rpartition("@")
        if label.strip() not in LABELS or not text.strip():
            raise ValueError(f"{path}:{number}: not 'sentence@label': {line[:80]!r}")
        texts.append(text.strip())
        labels.append(label.strip())
    return Labelled("phrasebank_allagree", texts, labels)


def read_written() -> Labelled:
    texts, labels = written_sentences()
    return Labelled("written", texts, labels)


@dataclass(frozen=True)
class Sources:
    """Every source a model is fitted on or measured against (docs/sentiment.md)."""

    semeval: Labelled
    twitter: Labelled
    written: Labelled
    twitter_valid: Labelled  # with the SemEval CV, it chooses the decision rule
    heldout: Labelled  # never trained on nor used to choose
    phrasebank: Labelled | None  # optional; never trained on nor used to choose


def read_sources(data: Path = DEFAULT_DATA) -> Sources:
    texts, labels = read_labelled(HELDOUT_NEWS)
    return Sources(
        read_semeval(data),
        read_twitter(data),
        read_written(),
        read_twitter(data, "valid"),
        Labelled("heldout_written", texts, labels),
        read_phrasebank(data),
    )


def _words(text: str) -> frozenset[str]:
    return frozenset(re.findall(r"[a-z]+", text.lower()))


def near_duplicate_groups(texts: list[str], jaccard: float = DUPLICATE_JACCARD) -> list[int]:
    """A group id per text: texts linked by word-set Jaccard >= ``jaccard`` share one."""
    parent = list(range(len(texts)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    words = [_words(t) for t in texts]
    for i, a in enumerate(words):
        for j in range(i):
            b = words[j]
            if a and b and len(a & b) >= jaccard * len(a | b):
                parent[root(i)] = root(j)
    return [root(i) for i in range(len(texts))]
