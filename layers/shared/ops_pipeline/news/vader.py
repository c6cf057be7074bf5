"""VADER's sentence scores, standard library only: a feature of the sentiment model.

A port of ``SentimentIntensityAnalyzer.polarity_scores`` from the PyPI package
``vaderSentiment`` 3.3.2 (Hutto & Gilbert, "VADER: A Parsimonious Rule-based Model for
Sentiment Analysis of Social Media Text", ICWSM 2014), MIT licence:

    Copyright (c) 2016 C.J. Hutto. Permission is hereby granted, free of charge, to any person
    obtaining a copy of this software and associated documentation files (the "Software"), to
    deal in the Software without restriction, including without limitation the rights to use,
    copy, modify, merge, publish, distribute, sublicense, and/or sell copies of the Software,
    and to permit persons to whom the Software is furnished to do so, subject to the following
    conditions: The above copyright notice and this permission notice shall be included in all
    copies or substantial portions of the Software. THE SOFTWARE IS PROVIDED "AS IS", WITHOUT
    WARRANTY OF ANY KIND, EXPRESS OR IMPLIED.

The rules (booster words, ALL-CAPS emphasis, negation up to three words back, "but", "least",
idioms, "!" and "?" emphasis) are the package's, kept as they are (including its quirks) so
that the scores equal the package's on text without emoji; the package's emoji-to-words step
is left out (headlines rarely carry one). The lexicon (7,500 scored words and emoticons) is the
package's ``vader_lexicon.txt``, copied to ``vader_lexicon.json.gz`` beside this module by
``scripts/train_sentiment.py --lexicon``; without that file every score is 0.
"""

from __future__ import annotations

import functools
import gzip
import json
import math
import string
from pathlib import Path

VADER_LEXICON_PATH = Path(__file__).with_name("vader_lexicon.json.gz")

B_INCR = 0.293
B_DECR = -0.293
C_INCR = 0.733
N_SCALAR = -0.74

_NEGATE = """aint arent cannot cant couldnt darent didnt doesnt ain't aren't can't couldn't daren't
    didn't doesn't dont hadnt hasnt havent isnt mightnt mustnt neither don't hadn't hasn't
    haven't isn't mightn't mustn't neednt needn't never none nope nor not nothing nowhere
    oughtnt shant shouldnt uhuh wasnt werent oughtn't shan't shouldn't uh-uh wasn't weren't
    without wont wouldnt won't wouldn't rarely seldom despite"""
NEGATE = frozenset(_NEGATE.split())

_UP = """absolutely amazingly awfully completely considerable considerably decidedly deeply effing
enormous enormously entirely especially exceptional exceptionally extreme extremely fabulously
flipping flippin frackin fracking fricking frickin frigging friggin fully fuckin fucking fuggin
fugging greatly hella highly hugely incredible incredibly intensely major majorly more most
particularly purely quite really remarkably so substantially thoroughly total totally tremendous
tremendously uber unbelievably unusually utter utterly very"""
_DOWN = """almost barely hardly kinda kindof kind-of less little marginal marginally occasional
occasionally partly scarce scarcely slight slightly somewhat sorta sortof sort-of"""
BOOSTER_DICT: dict[str, float] = {
    **{w: B_INCR for w in _UP.split()},
    **{w: B_DECR for w in _DOWN.split()},
    "just enough": B_DECR,
    "kind of": B_DECR,
    "sort of": B_DECR,
}

SPECIAL_CASES: dict[str, float] = {
    "the shit": 3,
    "the bomb": 3,
    "bad ass": 1.5,
    "badass": 1.5,
    "bus stop": 0.0,
    "yeah right": -2,
    "kiss of death": -1.5,
    "to die for": 3,
    "beating heart": 3.5,
}


@functools.cache
def lexicon() -> dict[str, float]:
    """Word -> valence (the shipped lexicon file; empty if absent)."""
    if not VADER_LEXICON_PATH.exists():
        return {}
    with gzip.open(VADER_LEXICON_PATH, "rt", encoding="utf-8") as fh:
        data = json.load(fh)
    return {w: float(v) for w, v in data["valence"].items()}


def _negated(word: str) -> bool:
    return word in NEGATE or "n't" in word


def _normalize(score: float, alpha: float = 15) -> float:
    return max(-1.0, min(1.0, score / math.sqrt(score * score + alpha)))


def _strip_punc_if_word(token: str) -> str:
    stripped = token.strip(string.punctuation)
    return token if len(stripped) <= 2 else stripped


def _scalar_inc_dec(word: str, valence: float, is_cap_diff: bool) -> float:
    scalar = 0.0
    lower = word.lower()
    if lower in BOOSTER_DICT:
        scalar = BOOSTER_DICT[lower]
        if valence < 0:
            scalar *= -1
        if word.isupper() and is_cap_diff:
            scalar += C_INCR if valence > 0 else -C_INCR
    return scalar


def _negation_check(valence: float, low: list[str], start_i: int, i: int) -> float:
    if start_i == 0:
        if _negated(low[i - 1]):
            valence *= N_SCALAR
    elif start_i == 1:
        if low[i - 2] == "never" and low[i - 1] in ("so", "this"):
            valence *= 1.25
        elif low[i - 2] == "without" and low[i - 1] == "doubt":
            pass
        elif _negated(low[i - 2]):
            valence *= N_SCALAR
    else:
        if (low[i - 3] == "never" and low[i - 2] in ("so", "this")) or low[i - 1] in ("so", "this"):
            valence *= 1.25
        elif low[i - 3] == "without" and "doubt" in (low[i - 2], low[i - 1]):
            pass
        elif _negated(low[i - 3]):
            valence *= N_SCALAR
    return valence


def _special_idioms_check(valence: float, low: list[str], i: int) -> float:
    # As in the package: low[i - 3] may wrap around to the end of the list when i == 2.
    onezero = f"{low[i - 1]} {low[i]}"
    twoonezero = f"{low[i - 2]} {low[i - 1]} {low[i]}"
    twoone = f"{low[i - 2]} {low[i - 1]}"
    threetwoone = f"{low[i - 3]} {low[i - 2]} {low[i - 1]}"
    threetwo = f"{low[i - 3]} {low[i - 2]}"
    for seq in (onezero, twoonezero, twoone, threetwoone, threetwo):
        if seq in SPECIAL_CASES:
            valence = SPECIAL_CASES[seq]
            break
    if len(low) - 1 > i:
        zeroone = f"{low[i]} {low[i + 1]}"
        if zeroone in SPECIAL_CASES:
            valence = SPECIAL_CASES[zeroone]
    if len(low) - 1 > i + 1:
        zeroonetwo = f"{low[i]} {low[i + 1]} {low[i + 2]}"
        if zeroonetwo in SPECIAL_CASES:
            valence = SPECIAL_CASES[zeroonetwo]
    for n_gram in (threetwoone, threetwo, twoone):
        if n_gram in BOOSTER_DICT:
            valence += BOOSTER_DICT[n_gram]
    return valence


def _least_check(valence: float, low: list[str], lex: dict[str, float], i: int) -> float:
    if i > 1 and low[i - 1] not in lex and low[i - 1] == "least":
        if low[i - 2] != "at" and low[i - 2] != "very":
            valence *= N_SCALAR
    elif i > 0 and low[i - 1] not in lex and low[i - 1] == "least":
        valence *= N_SCALAR
    return valence


def _valence(
    words: list[str], low: list[str], i: int, cap_diff: bool, lex: dict[str, float]
) -> float:
    item, item_low = words[i], low[i]
    if item_low not in lex:
        return 0.0
    valence = lex[item_low]
    if item_low == "no" and i != len(words) - 1 and low[i + 1] in lex:
        valence = 0.0
    if (
        (i > 0 and low[i - 1] == "no")
        or (i > 1 and low[i - 2] == "no")
        or (i > 2 and low[i - 3] == "no" and low[i - 1] in ("or", "nor"))
    ):
        valence = lex[item_low] * N_SCALAR
    if item.isupper() and cap_diff:
        valence += C_INCR if valence > 0 else -C_INCR
    for start_i in range(3):
        if i > start_i and low[i - (start_i + 1)] not in lex:
            s = _scalar_inc_dec(words[i - (start_i + 1)], valence, cap_diff)
            if start_i == 1 and s != 0:
                s *= 0.95
            if start_i == 2 and s != 0:
                s *= 0.9
            valence += s
            valence = _negation_check(valence, low, start_i, i)
            if start_i == 2:
                valence = _special_idioms_check(valence, low, i)
    return _least_check(valence, low, lex, i)


def _but_check(low: list[str], sentiments: list[float]) -> list[float]:
    # The package's loop, kept as it is: it finds each value's first occurrence.
    if "but" in low:
        bi = low.index("but")
        for sentiment in list(sentiments):
            si = sentiments.index(sentiment)
            if si < bi:
                sentiments[si] = sentiment * 0.5
            elif si > bi:
                sentiments[si] = sentiment * 1.5
    return sentiments


def _punctuation_emphasis(text: str) -> float:
    ep = min(text.count("!"), 4) * 0.292
    qm_count = text.count("?")
    qm = 0.0
    if qm_count > 1:
        qm = qm_count * 0.18 if qm_count <= 3 else 0.96
    return ep + qm


def polarity_scores(text: str, lex: dict[str, float] | None = None) -> dict[str, float]:
    """``neg``, ``neu``, ``pos`` (shares of the text's sentiment) and ``compound`` in [-1, 1],
    rounded as the package rounds them; ``lex`` replaces the shipped lexicon (experiments)."""
    lex = lexicon() if lex is None else lex
    text = text.strip()
    words = [_strip_punc_if_word(w) for w in text.split()]
    low = [w.lower() for w in words]
    caps = sum(w.isupper() for w in words)
    cap_diff = 0 < len(words) - caps < len(words)
    sentiments: list[float] = []
    for i, item_low in enumerate(low):
        if item_low in BOOSTER_DICT or (
            i < len(words) - 1 and item_low == "kind" and low[i + 1] == "of"
        ):
            sentiments.append(0.0)
            continue
        sentiments.append(_valence(words, low, i, cap_diff, lex))
    sentiments = _but_check(low, sentiments)
    if not sentiments:
        return {"neg": 0.0, "neu": 0.0, "pos": 0.0, "compound": 0.0}
    sum_s = float(sum(sentiments))
    amp = _punctuation_emphasis(text)
    if sum_s > 0:
        sum_s += amp
    elif sum_s < 0:
        sum_s -= amp
    compound = _normalize(sum_s)
    pos_sum = sum(s + 1 for s in sentiments if s > 0)
    neg_sum = sum(s - 1 for s in sentiments if s < 0)
    neu_count = sum(1 for s in sentiments if s == 0)
    if pos_sum > abs(neg_sum):
        pos_sum += amp
    elif pos_sum < abs(neg_sum):
        neg_sum -= amp
    total = pos_sum + abs(neg_sum) + neu_count
    return {
        "neg": round(abs(neg_sum / total), 3),
        "neu": round(abs(neu_count / total), 3),
        "pos": round(abs(pos_sum / total), 3),
        "compound": round(compound, 4),
    }


def vader_features(text: str) -> list[tuple[str, float]]:
    """The sentiment model's dense VADER block: the compound split by sign, and the positive
    and negative shares (zeros left out)."""
    s = polarity_scores(text)
    c = s["compound"]
    values = [
        ("compound_pos", max(c, 0.0)),
        ("compound_neg", max(-c, 0.0)),
        ("pos", s["pos"]),
        ("neg", s["neg"]),
    ]
    return [(k, v) for k, v in values if v]
