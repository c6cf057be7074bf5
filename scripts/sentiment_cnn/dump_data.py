"""Dump the texts, labels, weights and folds of the sentiment harness to JSON (project venv)."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import sentiment_candidates as X
import train_sentiment as T
from sentiment_sources import near_duplicate_groups, read_semeval, read_twitter, read_written
from written_sentences import read_labelled

from ops_pipeline.news import sentiment as S

sem, tw, wr = read_semeval(), read_twitter(), read_written()
valid = read_twitter(split="valid")
held, held_gold = read_labelled(X.HELDOUT)


def norm_tokens(texts):
    return [S._WORD.findall(S.normalise(t)) for t in texts]


out = {
    "labels_order": list(S.LABELS),
    "weights": {"semeval": 5.0, "twitter_train": 0.3, "written": 0.5},
    "sources": {},
    "folds": {
        "grouped": [[list(map(int, a)), list(map(int, b))] for a, b in T.grouped_folds(sem)],
        "plain": [[list(map(int, a)), list(map(int, b))] for a, b in X.plain_folds(sem)],
    },
}
for name, texts, labels in (
    ("semeval", sem.texts, sem.labels),
    ("twitter_train", tw.texts, tw.labels),
    ("written", wr.texts, wr.labels),
    ("valid", valid.texts, valid.labels),
    ("held", list(held), list(held_gold)),
):
    out["sources"][name] = {
        "texts": list(texts),
        "labels": list(labels),
        "tokens": norm_tokens(texts),
    }
Path("/tmp/cnn/data.json").write_text(json.dumps(out))
print({k: len(v["texts"]) for k, v in out["sources"].items()})
out["semeval_groups"] = [int(g) for g in near_duplicate_groups(sem.texts)]
Path("/tmp/cnn/data.json").write_text(json.dumps(out))
print("groups", len(set(out["semeval_groups"])))
