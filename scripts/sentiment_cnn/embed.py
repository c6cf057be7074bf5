"""Word-level static embedding table from the distilled model2vec model: each word of the
(normalised, \\b\\w\\w+\\b) vocabulary of every dumped text -> mean of its WordPiece token
vectors (unnormalised, so model2vec's SIF weighting is kept). Label-free."""

import json
from pathlib import Path

import numpy as np
from model2vec import StaticModel

m = StaticModel.from_pretrained("/tmp/cnn/m2v/minilm-256")
d = json.loads(Path("/tmp/cnn/data.json").read_text())
vocab = sorted({w for s in d["sources"].values() for toks in s["tokens"] for w in toks})
E = np.asarray(m.embedding, dtype=np.float32)
vecs = np.zeros((len(vocab), E.shape[1]), np.float32)
unk = 0
for i, w in enumerate(vocab):
    ids = m.tokenizer.encode(w, add_special_tokens=False).ids
    ids = [j for j in ids if j < len(E)]
    if ids:
        vecs[i] = E[ids].mean(axis=0)
    else:
        unk += 1
print(
    len(vocab),
    "words",
    unk,
    "without tokens",
    "entry std",
    vecs.std(),
    "mean norm",
    np.linalg.norm(vecs, axis=1).mean(),
)
np.savez("/tmp/cnn/wordvecs.npz", vocab=np.array(vocab), vecs=vecs)
