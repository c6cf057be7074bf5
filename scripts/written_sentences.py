"""Labelled news text written for this project (``scripts/sentiment_data/*.tsv``).

Each file holds one ``label<TAB>text`` per line, written for ops-pipeline by the team with AI
writing assistants, from a labelling guide (``scripts/sentiment_data/GUIDE.md``, version 2,
round 10) that describes the pipeline's input, US market news (headlines and the opening
sentences of wire stories and press releases about US-listed companies), and names no data
set's wording: invented companies, people, tickers and figures. No text is taken or
paraphrased from a labelled data set. Licence: this repository's (MIT). The held-out
counterpart, written separately from the same guide and never trained on, is
``bench/sentiment_heldout_us_news.tsv`` (read by ``bench/sentiment_eval.py``).
"""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parent / "sentiment_data"
LABELS = frozenset({"negative", "neutral", "positive"})


def read_labelled(path: Path) -> tuple[list[str], list[str]]:
    """Texts and labels of a ``label<TAB>text`` file; a malformed line is an error."""
    texts, labels = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        label, sep, text = line.partition("\t")
        if not sep or label not in LABELS or not text.strip():
            raise ValueError(f"{path}:{number}: expected '<label>\\t<text>', got {line!r}")
        texts.append(text.strip())
        labels.append(label)
    return texts, labels


def written_sentences(data: Path = DATA) -> tuple[list[str], list[str]]:
    """Every written training sentence, in file-name order."""
    texts: list[str] = []
    labels: list[str] = []
    for path in sorted(data.glob("*.tsv")):
        t, lab = read_labelled(path)
        texts += t
        labels += lab
    return texts, labels
