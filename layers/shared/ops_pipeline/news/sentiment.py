"""Financial-news sentiment: a TF-IDF + logistic-regression model run in pure Python.

The weights are trained offline by ``scripts/train_sentiment.py`` (scikit-learn) on real
labelled headlines first (SemEval-2017 task 5 headlines, Twitter Financial News) and the
project's written news sentences, and exported to ``sentiment_model.json.gz`` beside this
module. Inference here uses only the standard library, so it runs inside the Lambda layer with
no numpy/scikit-learn and no network.

Features: TF-IDF of word uni/bigrams, and of finance cues (``cue_features``: the direction of
a financial quantity, "from X to Y" comparisons, beat/miss phrases, Loughran-McDonald words
from ``finance_lexicon.json.gz``); and, since ``headlines-v7``, a dense block of VADER's
sentence scores (``vader.vader_features``: its lexicon and rules, ``vader_lexicon.json.gz``).

Output: ``polarity`` = p(positive) - p(negative) in [-1, 1] (what the signal engine adds up),
and a label (``decide``): neutral where the model is confident of it (p(neutral) at least the
model's ``neutral_min_proba``) or where the polarity lies within the model's ``neutral_band``,
else the polarity's sign (both chosen by cross-validation, recorded in the weights file).
``signed_score`` rescales the polarity so that the label is its band at +-0.05, the convention
of SemEval's scores: ``ops-pipeline classify`` prints it as ``score``.

The text normalisation and the feature analyzers below are the *same functions* the training
script hands to scikit-learn, so training and inference cannot drift apart.
"""

from __future__ import annotations

import functools
import gzip
import html
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ops_pipeline.news.vader import vader_features

MODEL_NAME = "headlines-v8"
MODEL_PATH = Path(__file__).with_name("sentiment_model.json.gz")
# Bump when normalise()/analyzers change; the weights file records the version it was built with.
# 5: the dense ``vader`` block (headlines-v7).
PREPROCESS_VERSION = 5
LABELS = ("negative", "positive", "neutral")

_URL = re.compile(r"https?://\S*|www\.\S+", re.IGNORECASE)
_CASHTAG = re.compile(r"\$[A-Za-z]{1,6}(?:\.[A-Za-z])?(?![A-Za-z0-9])")
_MONEY = re.compile(
    r"[$€£]\s?\d[\d,]*(?:\.\d+)?\s?(?:[kmbt]n?|bn|mln|million|billion|trillion)?\b", re.IGNORECASE
)
_PCT_UP = re.compile(r"\+\s?\d[\d,]*(?:\.\d+)?\s?%")
_PCT_DOWN = re.compile(r"(?<![\w])[-−–]\s?\d[\d,]*(?:\.\d+)?\s?%")
_PCT = re.compile(r"\d[\d,]*(?:\.\d+)?\s?(?:%|percent\b|pct\b)", re.IGNORECASE)
_NUM = re.compile(r"\d[\d,]*(?:\.\d+)?")
_NEGATION = re.compile(r"n['’]t\b", re.IGNORECASE)
_TRUNCATION = re.compile(r"…|\.\.\.+")
_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"\b\w\w+\b")


SCORE_BAND = 0.05  # the neutral band of ``signed_score``


@dataclass(frozen=True)
class Sentiment:
    """Sentiment of one text.

    ``polarity`` is ``p(positive) - p(negative)`` (-1..1); ``label`` is ``decide``'s (neutral
    when p(neutral) is at least the model's ``neutral_min_proba`` or the polarity within its
    neutral band, else the polarity's sign); ``score`` is the model's probability for that
    label (0..1); ``signed_score`` is the polarity rescaled (``signed_score``) so that the
    label is positive exactly when it is above 0.05, negative exactly when below -0.05.
    """

    label: str
    score: float
    polarity: float
    signed_score: float = 0.0


def normalise(text: str) -> str:
    """Lower-cased text with URLs, cashtags, money, percentages and numbers as tokens."""
    t = html.unescape(text or "")
    t = _URL.sub(" urltok ", t)
    t = _CASHTAG.sub(" cashtag ", t)
    t = _MONEY.sub(" moneytok ", t)
    t = _PCT_UP.sub(" pctup ", t)
    t = _PCT_DOWN.sub(" pctdown ", t)
    t = _PCT.sub(" pcttok ", t)
    t = _NUM.sub(" numtok ", t)
    t = _NEGATION.sub(" not", t)
    t = _TRUNCATION.sub(" ", t)
    return _SPACE.sub(" ", t).strip().lower()


def word_features(text: str) -> list[str]:
    """Word unigrams and bigrams of the normalised text."""
    words = _WORD.findall(normalise(text))
    return words + [f"{a} {b}" for a, b in zip(words, words[1:])]


def char_features(text: str, low: int = 2, high: int = 5) -> list[str]:
    """Character n-grams (low..high) inside space-padded words of the normalised text."""
    grams: list[str] = []
    for word in normalise(text).split():
        padded = f" {word} "
        size = len(padded)
        for n in range(low, high + 1):
            grams.extend(padded[i : i + n] for i in range(size - n + 1))
    return grams


# --- finance cues: direction of a financial quantity, and finance-lexicon words -----------

LEXICON_PATH = Path(__file__).with_name("finance_lexicon.json.gz")


def _wordset(text: str) -> frozenset[str]:
    return frozenset(text.split())


_UP = _wordset(
    """rose rise rises rising risen up increase increased increases increasing grew grow grows
    growing gain gains gained gaining climb climbs climbed climbing jump jumps jumped jumping
    surge surges surged surging soar soars soared soaring rally rallies rallied rallying improve
    improves improved improving higher boost boosts boosted rebound rebounds rebounded advance
    advances advanced expand expands expanded expanding widen widens widened widening top tops
    topped beat beats exceed exceeds exceeded exceeding raise raises raised raising lift lifts
    lifted doubled doubles tripled hike hikes hiked upgrade upgrades upgraded strengthen
    strengthened outperform outperforms outperformed accelerate accelerated accelerates"""
)
_DOWN = _wordset(
    """fell fall falls falling fallen drop drops dropped dropping decline declines declined
    declining decrease decreased decreases decreasing slump slumps slumped plunge plunges plunged
    plunging tumble tumbles tumbled tumbling slide slides slid sliding sank sink sinks sinking
    dip dips dipped lower lowers lowered down weaken weakened weakens cut cuts cutting slash
    slashes slashed reduce reduces reduced reducing shrink shrinks shrank shrunk narrow narrows
    narrowed narrowing miss misses missed downgrade downgrades downgraded plummet plummets
    plummeted lose loses lost halved halve worsen worsened worsens deteriorate deteriorated
    deteriorates slowed slows slow trimmed trims trim sheds shed underperform underperformed
    erode eroded contract contracted contracts"""
)
# Quantities that are good news when they go up (GOOD) or bad news when they go up (BAD).
# Jobs are GOOD: "cut 500 jobs" is bad news (it was BAD before version 3, which made job cuts
# a positive cue).
_GOOD = _wordset(
    """sales revenue revenues turnover profit profits earnings income ebit ebitda eps margin
    margins orders order intake dividend dividends shares share stock stocks price prices growth
    demand guidance outlook forecast forecasts target targets rating ratings cash flow volume
    volumes backlog deliveries shipments subscribers production output result results value
    valuation market bookings occupancy traffic sentiment confidence payout buyback buybacks
    profitability capacity jobs job workforce headcount staff employees hiring payroll ebita
    arpu passengers customers users members visitors premiums equity solvency liquidity
    productivity utilisation utilization throughput"""
)
_BAD = _wordset(
    """loss losses cost costs expense expenses debt debts deficit unemployment layoffs layoff
    redundancies charges charge impairment impairments writedown writedowns write-down provisions
    provision risk risks fine fines penalty penalties default defaults delinquencies claims
    inflation liabilities outflows churn write-downs lay-offs lay-off gearing arrears
    absenteeism"""
)
# Verbs that usually take the quantity they move as their object ("cut costs", "raised its
# dividend"): the quantity is looked for after them first, before them for the others.
_TRANSITIVE = _wordset(
    """cut cuts cutting slash slashes slashed reduce reduces reduced reducing raise raises raised
    raising boost boosts boosted lift lifts lifted lower lowers lowered trim trims trimmed shed
    sheds hike hikes hiked halve halves halved doubled doubles strengthen strengthened"""
)
_NEGATORS = _wordset("not no never without neither nor fail fails failed")
_CUE_WORD = re.compile(r"[a-z][a-z'-]*|\d[\d,]*(?:\.\d+)?")
_FROM_TO = re.compile(
    r"\bfrom\s+(?:[a-z]{3}\s?|[$€£]\s?)?(\d[\d,]*(?:\.\d+)?)[^\d]{0,24}?\bto\s+"
    r"(?:[a-z]{3}\s?|[$€£]\s?)?(\d[\d,]*(?:\.\d+)?)"
)
# "rose to EUR 5.1 mn from EUR 4.2 mn": the new figure first, then the old one.
_TO_FROM = re.compile(
    r"\bto\s+(?:[a-z]{3}\s?|[$€£]\s?)?(\d[\d,]*(?:\.\d+)?)[^\d]{0,24}?\bfrom\s+"
    r"(?:[a-z]{3}\s?|[$€£]\s?)?(\d[\d,]*(?:\.\d+)?)"
)
# "EUR 5.1 mn (EUR 4.2 mn)", "22.4 % (2024: 31.0 %)": the press-release comparison in brackets.
_PAREN = re.compile(
    r"(\d[\d,]*(?:\.\d+)?)\s*(?:%|[a-z]{1,7}\.?)?\s*\(\s*(?:\d{4}\s*:\s*|[a-z]{1,6}\s*:\s*)?"
    r"(?:[a-z]{3}\s?|[$€£]\s?)?(\d[\d,]*(?:\.\d+)?)"
)
# "EUR 5.1 mn, compared with EUR 4.2 mn": the new figure first, then the old one.
_VERSUS = re.compile(
    r"(\d[\d,]*(?:\.\d+)?)[^\d]{0,24}?\b(?:compared (?:with|to)|versus|vs\.?|against|"
    r"up from|down from)\s+(?:an?\s+(?:[a-z-]+\s+){0,2}?of\s+)?(?:[a-z]{3}\s?|[$€£]\s?)?"
    r"(\d[\d,]*(?:\.\d+)?)"
)
_PHRASES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p), tok)
    for p, tok in (
        (
            r"\b(?:beat|beats|top|tops|topped|exceed|exceeds|exceeded|above|ahead of)\s+"
            r"(?:[\w']+\s+){0,2}(?:estimates?|expectations?|forecasts?|consensus|views?)",
            "cue_beat",
        ),
        (
            r"\b(?:miss|misses|missed|below|short of|shy of)\s+(?:[\w']+\s+){0,2}"
            r"(?:estimates?|expectations?|forecasts?|consensus|views?)",
            "cue_miss",
        ),
        (r"\b(?:better|smaller|narrower)[- ]than[- ](?:expected|feared|forecast)", "cue_beat"),
        (r"\b(?:worse|weaker|lower)[- ]than[- ](?:expected|feared|forecast)", "cue_miss"),
        (r"\b(?:stronger|higher)[- ]than[- ]expected\b", "cue_beat"),
        (r"\bless than (?:feared|expected)\b", "cue_beat"),
        (r"\bprofit warning\b|\bwarns?\b", "cue_warn"),
        (r"\brecord (?:high|profit|sales|revenue|quarter|year|earnings|results)", "cue_record"),
        (
            r"\b(?:turn|turns|turned|swing|swings|swung|return|returns|returned|back|moved|moves)"
            r" (?:back )?(?:to|into|in) (?:a |the )?(?:[\w-]+ ){0,2}?(?:profit|black)\b"
            r"|\brevers(?:e|es|ed|ing) (?:a |the |its )?(?:[\w-]+ ){0,2}?loss",
            "cue_turn_up",
        ),
        (
            r"\b(?:turn|turns|turned|swing|swings|swung|slip|slips|slipped|slid|fell|falls|sank"
            r"|plunged|plunges|dipped|dips|back|moved|moves) (?:back )?(?:to|into|in) (?:a |the )?"
            r"(?:[\w-]+ ){0,2}?(?:loss|losses|deficit|red)\b",
            "cue_turn_down",
        ),
        (
            r"\bprofit\b(?:[^.;]|\.\d){0,80}?\b(?:compared (?:with|to)|against|versus|vs\.?) (?:a |the )?"
            r"(?:[\w-]+ ){0,3}?loss",
            "cue_turn_up",
        ),
        (
            r"\bloss\b(?:[^.;]|\.\d){0,80}?\b(?:compared (?:with|to)|against|versus|vs\.?) (?:a |the )?"
            r"(?:[\w-]+ ){0,3}?profit",
            "cue_turn_down",
        ),
        (r"\bbankrupt|\binsolven|\bchapter 11\b", "cue_distress"),
    )
)


@functools.cache
def _lexicon() -> dict[str, str]:
    """Finance word -> ``pos`` / ``neg`` (the shipped lexicon file; empty if absent)."""
    if not LEXICON_PATH.exists():
        return {}
    with gzip.open(LEXICON_PATH, "rt", encoding="utf-8") as fh:
        data = json.load(fh)
    return {w: cls for cls, words in data["words"].items() for w in words}


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def _is_year(text: str) -> bool:
    return len(text) == 4 and text.isdigit() and 1980 <= int(text) <= 2059


def _quantity_words(words: list[str]) -> list[str]:
    """``words`` with a word after "per" blanked: "loss per share" is a loss, not shares."""
    return ["" if k and words[k - 1] == "per" else w for k, w in enumerate(words)]


def _quantity_good(words: Iterable[str]) -> bool | None:
    """Up is good (True) or bad (False) for the first quantity word met, None if none."""
    for x in words:
        if x in _GOOD:
            return True
        if x in _BAD:
            return False
    return None


def _compound_head(words: list[str]) -> bool | None:
    """The head of the first quantity run in ``words``: "production costs" is costs."""
    head = None
    for x in words:
        good = _quantity_good((x,))
        if good is not None:
            head = good
        elif head is not None:
            break
    return head


def _up_is_good(words: list[str], i: int, window: int) -> bool | None:
    """Whether up is good for the quantity that the direction word ``words[i]`` moves.

    A transitive verb ("cut costs", "raised its dividend") moves what follows it, the others
    ("net sales rose", "loss narrowed") what comes before them: the nearest quantity word on
    that side, then on the other, within ``window`` words (a little further back).
    """
    after = words[i + 1 : i + 4]
    before = reversed(words[max(0, i - window - 3) : i])
    if words[i] in _TRANSITIVE:
        first = _compound_head(after)
        return first if first is not None else _quantity_good(before)
    near = reversed(words[max(0, i - 3) : i])
    for found in (_quantity_good(near), _compound_head(after), _quantity_good(before)):
        if found is not None:
            return found
    return None


def cue_features(text: str, window: int = 5, lexicon: bool = True) -> list[str]:
    """Finance cue tokens of one text (raw text, not ``normalise``d: numbers matter here).

    * ``dir_up``/``dir_down``: a direction word (rose, fell, cuts, narrowed ...);
      ``cue_pos``/``cue_neg`` when a quantity word within ``window`` words says whether up is
      good (sales, profit, guidance ...) or bad (loss, costs, debt ...): "loss narrowed" is
      ``cue_pos``, "costs rose" ``cue_neg``. A negator just before the direction flips it.
    * ``fromto_pos``/``fromto_neg``: "from X to Y", signed by Y > X and the quantity before it.
    * phrase cues: beat/miss estimates, warnings, records, swung to profit/loss, distress.
    * ``lm_pos``/``lm_neg`` (and ``_not`` after a negator): finance-lexicon words.
    """
    t = html.unescape(text or "").lower().replace("’", "'")
    words = _CUE_WORD.findall(t)
    quantities = _quantity_words(words)
    lex = _lexicon() if lexicon else {}
    out: list[str] = []
    for i, w in enumerate(words):
        negated = any(x in _NEGATORS or x.endswith("n't") for x in words[max(0, i - 3) : i])
        if w in lex:
            out.append(f"lm_{lex[w]}" + ("_not" if negated else ""))
        if w in _UP or w in _DOWN:
            up = w in _UP
            if negated:
                up = not up
            out.append("dir_up" if up else "dir_down")
            good = _up_is_good(quantities, i, window)
            if good is not None:
                out.append("cue_pos" if up == good else "cue_neg")
    pairs = [(m, m.group(1), m.group(2)) for m in _FROM_TO.finditer(t)]
    pairs += [(m, m.group(2), m.group(1)) for m in _VERSUS.finditer(t)]
    pairs += [(m, m.group(2), m.group(1)) for m in _TO_FROM.finditer(t)]
    pairs += [(m, m.group(2), m.group(1)) for m in _PAREN.finditer(t)]
    for m, old, new in pairs:
        try:
            a, b = _number(old), _number(new)
        except ValueError:
            continue
        if a == b or _is_year(old) or _is_year(new):
            continue
        if abs(b - a) <= 0.02 * max(abs(a), abs(b)):
            out.append("fromto_flat")  # "EUR 72.4 mn (EUR 72.1 mn)": no real change
            continue
        before = _quantity_words(_CUE_WORD.findall(t[max(0, m.start() - 60) : m.start()]))
        good = _quantity_good(reversed(before[-window - 4 :]))
        inside = _quantity_good(_quantity_words(_CUE_WORD.findall(m.group(0))))
        if good is not None and inside is not None and inside != good:
            continue  # "a profit of EUR 0.6 mn, compared with a loss of EUR 1.4 mn": a swing
        up = b > a
        if good is False:
            up = not up
        out.append("fromto_pos" if up else "fromto_neg")
    for pattern, token in _PHRASES:
        out.extend(token for _ in pattern.finditer(t))
    return out


ANALYZERS: dict[str, Callable[..., list[str]]] = {
    "word": word_features,
    "char": char_features,
    "cue": cue_features,
}
# Dense blocks: text -> (feature, value) pairs, used as they are (times the block's ``scale``),
# with no idf and no normalisation.
DENSE: dict[str, Callable[[str], list[tuple[str, float]]]] = {"vader": vader_features}


def make_analyzer(name: str, params: dict[str, Any] | None = None) -> Callable[[str], list[str]]:
    """The feature function ``name`` with its parameters bound (as recorded in the weights)."""
    return functools.partial(ANALYZERS[name], **(params or {}))


@dataclass(frozen=True)
class _Block:
    name: str  # the analyzer's name: word, char, cue, vader
    analyzer: Callable[[str], list[str]]
    sublinear_tf: bool
    # term -> (idf, weight per class)
    table: dict[str, tuple[float, tuple[float, ...]]]
    # A dense block (``DENSE``): its values times ``scale``, instead of TF-IDF.
    dense: Callable[[str], list[tuple[str, float]]] | None = None
    scale: float = 1.0


@dataclass(frozen=True)
class _Model:
    name: str
    classes: tuple[str, ...]
    intercepts: tuple[float, ...]
    blocks: tuple[_Block, ...]
    neutral_band: float = 0.0
    # p(neutral) at or above which the label is neutral whatever the polarity (above 1: never).
    neutral_min_proba: float = 2.0


_MODEL: _Model | None = None


def _build_block(spec: dict[str, Any], n_classes: int) -> _Block:
    terms: list[str] = spec["terms"]
    idf: list[float] = spec["idf"]
    flat: list[float] = spec["weights"]  # row-major: len(terms) x n_classes
    table = {
        term: (idf[i], tuple(flat[i * n_classes : (i + 1) * n_classes]))
        for i, term in enumerate(terms)
    }
    name = spec["analyzer"]
    if spec.get("dense"):
        dense = DENSE[name]
        return _Block(name, lambda _: [], False, table, dense, float(spec["scale"]))
    analyzer = make_analyzer(name, spec.get("params"))
    return _Block(name, analyzer, bool(spec["sublinear_tf"]), table)


def load_model(path: Path = MODEL_PATH) -> _Model:
    """Read a weights file (not cached; use ``classify_sentiment`` for the cached model)."""
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        data = json.load(fh)
    if data["preprocess_version"] != PREPROCESS_VERSION:
        raise ValueError(
            f"{path} was built with preprocess_version {data['preprocess_version']}, "
            f"code has {PREPROCESS_VERSION}: retrain with scripts/train_sentiment.py"
        )
    classes = tuple(data["classes"])
    blocks = tuple(_build_block(b, len(classes)) for b in data["blocks"])
    band = float(data.get("neutral_band", 0.0))
    if not 0.0 <= band < 1.0:
        raise ValueError(f"{path}: neutral_band {band} is outside [0, 1)")
    neutral = float(data.get("neutral_min_proba", 2.0))
    if neutral <= 0.5:
        raise ValueError(f"{path}: neutral_min_proba {neutral} is not above 0.5")
    return _Model(data["name"], classes, tuple(data["intercepts"]), blocks, band, neutral)


def _model() -> _Model:
    global _MODEL
    if _MODEL is None:
        _MODEL = load_model()
    return _MODEL


def _block_vector(block: _Block, text: str) -> list[tuple[str, float]]:
    """The block's L2-normalised TF-IDF vector of ``text``: (term, value) for known terms (a
    dense block: its values times its scale)."""
    if block.dense is not None:
        return [(t, v * block.scale) for t, v in block.dense(text) if t in block.table]
    counts = Counter(g for g in block.analyzer(text) if g in block.table)
    values = [
        (term, (1.0 + math.log(tf) if block.sublinear_tf else float(tf)) * block.table[term][0])
        for term, tf in counts.items()
    ]
    norm = math.sqrt(sum(v * v for _, v in values))
    return [(term, v / norm) for term, v in values] if norm > 0.0 else []


def _block_scores(block: _Block, text: str, n_classes: int) -> list[float]:
    """Dot product of the block's L2-normalised TF-IDF vector with its class weights."""
    scores = [0.0] * n_classes
    for term, value in _block_vector(block, text):
        weights = block.table[term][1]
        for k in range(n_classes):
            scores[k] += value * weights[k]
    return scores


def _softmax(logits: list[float]) -> list[float]:
    top = max(logits)
    exps = [math.exp(z - top) for z in logits]
    total = sum(exps)
    return [e / total for e in exps]


def predict_proba(text: str, model: _Model | None = None) -> dict[str, float]:
    """Class probabilities for one text, keyed by label."""
    m = model or _model()
    n = len(m.classes)
    logits = list(m.intercepts)
    for block in m.blocks:
        for k, s in enumerate(_block_scores(block, text, n)):
            logits[k] += s
    return dict(zip(m.classes, _softmax(logits)))


def band_label(polarity: float, band: float) -> str:
    """``positive`` above ``band``, ``negative`` below ``-band``, else ``neutral``."""
    return "positive" if polarity > band else "negative" if polarity < -band else "neutral"


def rescale(polarity: float, band: float, to: float = SCORE_BAND) -> float:
    """Map ``polarity`` piecewise linearly so that [-band, band] becomes [-to, to] and +-1 stays.

    Monotone and odd, so ``band_label(rescale(p, b), to) == band_label(p, b)``.
    """
    size = abs(polarity)
    if size <= band:
        out = min(size * to / band, to) if band > 0.0 else 0.0
    else:
        out = to + (size - band) * (1.0 - to) / (1.0 - band)
    return math.copysign(min(out, 1.0), polarity) if out else 0.0


def decide(proba: dict[str, float], band: float, neutral_min_proba: float = 2.0) -> str:
    """The label of class probabilities: neutral when p(neutral) >= ``neutral_min_proba`` (the
    model is sure of it), else the band of the polarity p(positive) - p(negative) at ``band``.

    SemEval's headlines are 7 % neutral and the tweets and press-release sentences 60-66 %: a
    band on the polarity alone trades one against the other, where a confident p(neutral) marks
    the neutral text of every source (docs/sentiment.md, round 6).
    """
    if proba.get("neutral", 0.0) >= neutral_min_proba:
        return "neutral"
    return band_label(proba.get("positive", 0.0) - proba.get("negative", 0.0), band)


def signed_score(
    polarity: float, label: str, band: float, neutral_min_proba: float = 2.0, to: float = SCORE_BAND
) -> float:
    """``polarity`` mapped so that its band at +-``to`` is ``label`` (``decide``'s).

    A polar label is ``rescale``d (above ``to`` in size, order kept among polar labels); a
    neutral one is scaled into [-to, to] by the largest polarity a neutral label can have
    (the band, or 1 - ``neutral_min_proba``, as p(positive) + p(negative) is at most that).
    """
    if label != "neutral":
        out = abs(rescale(polarity, band, to))
        return math.copysign(max(out, math.nextafter(to, 1.0)), polarity)
    widest = max(band, 1.0 - neutral_min_proba)
    if widest <= 0.0:
        return 0.0
    return max(-to, min(to, polarity * to / widest))


def _to_sentiment(proba: dict[str, float], model: _Model) -> Sentiment:
    polarity = proba.get("positive", 0.0) - proba.get("negative", 0.0)
    label = decide(proba, model.neutral_band, model.neutral_min_proba)
    score = signed_score(polarity, label, model.neutral_band, model.neutral_min_proba)
    return Sentiment(label, proba[label], polarity, score)


def classify_sentiment(text: str) -> Sentiment:
    """Classify one financial headline (or short text) as positive, negative or neutral."""
    model = _model()
    return _to_sentiment(predict_proba(text, model), model)


def classify_sentiments(texts: Iterable[str]) -> list[Sentiment]:
    """Classify many texts; same results as ``classify_sentiment`` on each."""
    model = _model()
    return [_to_sentiment(predict_proba(t, model), model) for t in texts]


@dataclass(frozen=True)
class Driver:
    """One feature of a text and how far it moved the label's logit against the others'."""

    feature: str  # "word:beat", "word:shares fall", "cue:cue_miss"
    weight: float


def explain(text: str, top: int = 6, model: _Model | None = None) -> list[Driver]:
    """The features of ``text`` that pushed most towards the label it gets, strongest first.

    A feature's weight is its TF-IDF value times (its weight for the label's class minus the
    mean of its weights for the other classes): positive pushes towards the label. Features
    that pushed against it are left out; the intercepts (the prior) are not features.
    """
    m = model or _model()
    label = decide(predict_proba(text, m), m.neutral_band, m.neutral_min_proba)
    k = m.classes.index(label)
    others = [j for j in range(len(m.classes)) if j != k]
    drivers: dict[str, float] = {}
    for block in m.blocks:
        for term, value in _block_vector(block, text):
            w = block.table[term][1]
            push = value * (w[k] - sum(w[j] for j in others) / len(others))
            key = f"{block.name}:{term}"
            drivers[key] = drivers.get(key, 0.0) + push
    ranked = sorted(
        (Driver(f, round(v, 4)) for f, v in drivers.items() if v > 0.0),
        key=lambda d: (-d.weight, d.feature),
    )
    return ranked[:top]
