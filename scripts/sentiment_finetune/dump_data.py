"""Texts, labels, grouped folds and v7's out-of-fold probabilities -> $FT_WORK/data.json.

Runs in the project's venv (scikit-learn), from the clone:
    SENTIMENT_DATA=DIR PYTHONPATH=layers/shared:src:scripts .venv/bin/python \\
        scripts/sentiment_finetune/dump_data.py
"""

import json
import os
from pathlib import Path

import train_sentiment as T  # first: it pins the BLAS kernels before numpy loads
from sentiment_sources import DEFAULT_DATA, read_semeval, read_twitter, read_written

WORK = Path(os.environ.get("FT_WORK", "/tmp/ft"))

sem, tw, wr = read_semeval(DEFAULT_DATA), read_twitter(DEFAULT_DATA), read_written()
folds = T.grouped_folds(sem)
oof = T.out_of_fold(sem, [tw, wr], T.CHOSEN["weights"], T.CHOSEN["C"])
labels = T.chosen_labels(oof)
print("v7 grouped", T.scores(sem.labels, labels))  # 0.7543 / 0.6309
WORK.mkdir(parents=True, exist_ok=True)
data = {
    "sem": [sem.texts, sem.labels],
    "tw": [tw.texts, tw.labels],
    "wr": [wr.texts, wr.labels],
    "folds": [[list(map(int, tr)), list(map(int, te))] for tr, te in folds],
    "v7_oof": oof.tolist(),
    "v7_labels": labels,
    "labels_order": list(T.S.LABELS),
}
(WORK / "data.json").write_text(json.dumps(data))
