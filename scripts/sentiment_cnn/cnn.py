"""Kim-2014 CNN over static (model2vec-distilled MiniLM) word embeddings, trained with the
sentiment harness's folds, sources and sample weights (dumped by dump_data.py).

    /tmp/cnn/venv/bin/python scripts/sentiment_cnn/cnn.py inner   # epochs etc. on inner data only
    /tmp/cnn/venv/bin/python scripts/sentiment_cnn/cnn.py run NAME [--mode static|nonstatic]
        [--epochs E] [--seeds N]
        -> /tmp/senti-cache/NAME.npz (grouped, plain, valid, held), columns in S.LABELS order
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)
D = json.loads(Path("/tmp/cnn/data.json").read_text())
LABELS = D["labels_order"]  # negative, positive, neutral
WV = np.load("/tmp/cnn/wordvecs.npz")
VOCAB = {w: i + 1 for i, w in enumerate(WV["vocab"].tolist())}  # 0 = padding
VECS = np.vstack([np.zeros((1, WV["vecs"].shape[1]), np.float32), WV["vecs"]])
MAXLEN, MINLEN, WIDTHS = 64, 4, (2, 3, 4)
SRC = D["sources"]
W = D["weights"]


def ids(tokens):
    return [VOCAB[w] for w in tokens][:MAXLEN]


def y_of(labels):
    return [LABELS.index(lab) for lab in labels]


class CNN(nn.Module):
    def __init__(self, filters=100, dropout=0.5, static=True):
        super().__init__()
        self.emb = nn.Embedding.from_pretrained(torch.tensor(VECS), freeze=static, padding_idx=0)
        dim = VECS.shape[1]
        self.convs = nn.ModuleList([nn.Conv1d(dim, filters, k) for k in WIDTHS])
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(filters * len(WIDTHS), 3)

    def forward(self, x, lengths):  # x (B, T) with T >= MINLEN, lengths (B,)
        e = self.emb(x).transpose(1, 2)  # (B, dim, T)
        lp = torch.clamp(lengths, min=MINLEN)
        pooled = []
        for k, conv in zip(WIDTHS, self.convs):
            h = F.relu(conv(e))  # (B, F, T-k+1)
            pos = torch.arange(h.shape[2])[None, :]
            valid = pos <= (lp[:, None] - k)  # windows inside the (min-padded) text
            h = h * valid[:, None, :]
            pooled.append(h.max(dim=2).values)
        return self.out(self.drop(torch.cat(pooled, 1)))


def batchify(seqs):
    lengths = torch.tensor([len(s) for s in seqs])
    t = max(MINLEN, int(lengths.max()))
    x = torch.zeros((len(seqs), t), dtype=torch.long)
    for i, s in enumerate(seqs):
        x[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return x, lengths


def fit(
    seqs,
    ys,
    ws,
    mode="nonstatic",
    epochs=8,
    seed=0,
    filters=100,
    lr=1e-3,
    batch=64,
    after_epoch=None,
):
    torch.manual_seed(seed)
    rng = np.random.RandomState(seed)
    model = CNN(filters=filters, static=(mode == "static"))
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    ys = torch.tensor(ys)
    ws = torch.tensor(np.asarray(ws, np.float32) / np.mean(ws))
    n = len(seqs)

    def proba(test_seqs):
        out = []
        with torch.no_grad():
            for b in range(0, len(test_seqs), 256):
                x, L = batchify(test_seqs[b : b + 256])
                out.append(F.softmax(model(x, L), dim=1).numpy())
        return np.vstack(out).astype(np.float64)

    for ep in range(epochs):
        model.train()
        order = rng.permutation(n)
        for b in range(0, n, batch):
            idx = order[b : b + batch]
            x, L = batchify([seqs[i] for i in idx])
            loss = (F.cross_entropy(model(x, L), ys[idx], reduction="none") * ws[idx]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        if after_epoch is not None:
            after_epoch(ep + 1, proba)
    return proba


def training_set(sem_idx):
    sem = SRC["semeval"]
    seqs = [ids(sem["tokens"][i]) for i in sem_idx]
    ys = [LABELS.index(sem["labels"][i]) for i in sem_idx]
    ws = [W["semeval"]] * len(sem_idx)
    for name in ("twitter_train", "written"):
        s = SRC[name]
        seqs += [ids(t) for t in s["tokens"]]
        ys += y_of(s["labels"])
        ws += [W[name]] * len(s["texts"])
    return seqs, ys, ws


def ensemble_fit(sem_idx, seeds, **kw):
    seqs, ys, ws = training_set(sem_idx)
    fits = [fit(seqs, ys, ws, seed=s, **kw) for s in range(seeds)]
    return lambda t: np.mean([f(t) for f in fits], axis=0)


def shipped_rule(p):  # neutral if p(neutral) >= 0.7 else sign of p(pos) - p(neg)
    return np.where(p[:, 2] >= 0.7, 2, np.where(p[:, 1] > p[:, 0], 1, 0))


def scores(gold, pred):
    gold, pred = np.asarray(gold), np.asarray(pred)
    f1 = []
    for c in range(3):
        tp = np.sum((gold == c) & (pred == c))
        fp = np.sum((gold != c) & (pred == c))
        fn = np.sum((gold == c) & (pred != c))
        f1.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return round(float(np.mean(gold == pred)), 4), round(float(np.mean(f1)), 4)


def inner(args):
    """Grouped fold 0's SemEval training part, split again by near-duplicate group (every 5th
    group out): choose mode and epochs here only."""
    sem = SRC["semeval"]
    tr0 = D["folds"]["grouped"][0][0]
    groups = D["semeval_groups"]
    gl = sorted({groups[i] for i in tr0})
    out_g = set(gl[::5])
    itr = [i for i in tr0 if groups[i] not in out_g]
    ite = [i for i in tr0 if groups[i] in out_g]
    gold = y_of([sem["labels"][i] for i in ite])
    test = [ids(sem["tokens"][i]) for i in ite]
    vgold = y_of(SRC["valid"]["labels"])
    vtest = [ids(t) for t in SRC["valid"]["tokens"]]
    print(f"inner: train {len(itr)} semeval, test {len(ite)}", flush=True)
    seqs, ys, ws = training_set(itr)
    for mode in args.modes.split(","):
        t0 = time.time()

        def report(ep, p):
            pt, pv = p(test), p(vtest)
            print(
                json.dumps(
                    {
                        "mode": mode,  # noqa: B023  (called within the loop)
                        "epochs": ep,
                        "filters": args.filters,
                        "inner_shipped": scores(gold, shipped_rule(pt)),
                        "inner_argmax": scores(gold, pt.argmax(1)),
                        "valid_shipped": scores(vgold, shipped_rule(pv)),
                        "seconds": round(time.time() - t0),  # noqa: B023
                    }
                ),
                flush=True,
            )

        fit(
            seqs,
            ys,
            ws,
            mode=mode,
            epochs=args.max_epochs,
            filters=args.filters,
            after_epoch=report,
        )


def run(args):
    sem = SRC["semeval"]
    seqs = [ids(t) for t in sem["tokens"]]
    out = {}
    kw = dict(mode=args.mode, epochs=args.epochs, filters=args.filters)
    times = []
    for scheme in ("grouped", "plain"):
        p = np.zeros((len(seqs), 3))
        for tr, te in D["folds"][scheme]:
            t0 = time.time()
            f = ensemble_fit(tr, args.seeds, **kw)
            p[te] = f([seqs[i] for i in te])
            times.append(time.time() - t0)
            print(f"  {scheme} fold: {times[-1]:.0f}s", file=sys.stderr, flush=True)
        out[scheme] = p
        print(scheme, "shipped rule", scores(y_of(sem["labels"]), shipped_rule(p)), flush=True)
    t0 = time.time()
    f = ensemble_fit(list(range(len(seqs))), args.seeds, **kw)
    out["valid"] = f([ids(t) for t in SRC["valid"]["tokens"]])
    out["held"] = f([ids(t) for t in SRC["held"]["tokens"]])
    times.append(time.time() - t0)
    print(f"mean seconds per fit ({args.seeds} seed(s)): {np.mean(times):.0f}", flush=True)
    np.savez(f"/tmp/senti-cache/{args.name}.npz", **out)
    print("wrote", f"/tmp/senti-cache/{args.name}.npz")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["inner", "run"])
    ap.add_argument("name", nargs="?")
    ap.add_argument("--mode", default="nonstatic")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--filters", type=int, default=100)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--modes", default="static,nonstatic")
    ap.add_argument("--max-epochs", type=int, default=10)
    a = ap.parse_args()
    inner(a) if a.cmd == "inner" else run(a)
