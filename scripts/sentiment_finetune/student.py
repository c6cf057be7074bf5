"""v7's recipe (features, C 10, weights, rule) with SEntFiN's headlines added, labelled by the
fold's fine-tuned MiniLM (teacher_label.py): does the shipped model's form learn what the
teacher knows? Grouped 5-fold CV on the SemEval headlines. MODE:W arguments: ``hard`` (the
teacher's argmax, weight W each) or ``soft`` (each headline once per class, weight W times the
teacher's probability).

Runs in the project's venv, from the clone:
    SENTIMENT_DATA=DIR PYTHONPATH=layers/shared:src:scripts .venv/bin/python \\
        scripts/sentiment_finetune/student.py hard:0.3 soft:0.3 hard:1 soft:1
"""

import json
import os
import sys
import time
from pathlib import Path

import train_sentiment as T  # first: it pins the BLAS kernels before numpy loads

# isort: split
import numpy as np
from sentiment_sources import DEFAULT_DATA, read_semeval, read_twitter, read_written
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

WORK = Path(os.environ.get("FT_WORK", "/tmp/ft"))
WEIGHTS = T.CHOSEN["weights"]
sem, tw, wr = read_semeval(DEFAULT_DATA), read_twitter(DEFAULT_DATA), read_written()
titles = json.loads((WORK / "sentfin_titles.json").read_text())
LABELS = list(T.S.LABELS)


def fold_proba(train: list[int], test: list[int], teacher: np.ndarray, w: float, mode: str):
    texts = [sem.texts[i] for i in train] + tw.texts + wr.texts
    labels = [sem.labels[i] for i in train] + tw.labels + wr.labels
    weights = (
        [WEIGHTS["semeval"]] * len(train)
        + [WEIGHTS["twitter_train"]] * len(tw)
        + [WEIGHTS["written"]] * len(wr)
    )
    vocabulary = texts + titles  # the TF-IDF blocks are fitted on each text once
    if mode == "hard":
        texts += titles
        labels += [LABELS[j] for j in teacher.argmax(1)]
        weights += [w] * len(titles)
    else:
        for c, name in enumerate(LABELS):
            texts += titles
            labels += [name] * len(titles)
            weights += list(w * teacher[:, c])
    vecs = T.make_vectorizers()
    T.fit_transform(vecs, vocabulary)
    clf = LogisticRegression(C=T.CHOSEN["C"], max_iter=5000, solver="lbfgs")
    with threadpool_limits(limits=1):
        clf.fit(T.transform(vecs, texts), labels, sample_weight=np.array(weights))
    return T.Fitted(vecs, clf).proba([sem.texts[i] for i in test])


for arg in sys.argv[1:]:
    mode, w = arg.split(":")[0], float(arg.split(":")[1])
    t0 = time.time()
    oof = np.zeros((len(sem), len(LABELS)))
    for k, (train, test) in enumerate(T.grouped_folds(sem)):
        teacher = np.load(WORK / f"teacher_sentfin_fold{k}.npy")
        oof[test] = fold_proba(train, test, teacher, w, mode)
    print(mode, w, T.scores(sem.labels, T.chosen_labels(oof)), f"{time.time() - t0:.0f} s")
    np.save(WORK / f"student_{mode}_{w:g}.npy", oof)
