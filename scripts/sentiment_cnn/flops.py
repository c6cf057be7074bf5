"""FLOPs of the CNN on a 16-token headline, and a one-core numpy forward pass timing
(random weights of the same shapes; the embedding lookup is a table index)."""

import time

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

DIM, FILT, WIDTHS, T = 256, 100, (2, 3, 4), 16
macs = sum(FILT * DIM * k * (T - k + 1) for k in WIDTHS) + FILT * len(WIDTHS) * 3
flops = 2 * macs + sum(FILT * (T - k + 1) * 2 for k in WIDTHS)  # + bias/ReLU/max
print(f"FLOPs per {T}-token headline: {flops / 1e6:.2f} M  (conv+linear MACs {macs / 1e6:.3f} M)")
rng = np.random.default_rng(0)
table = rng.standard_normal((20000, DIM)).astype(np.float32)
Ws = [rng.standard_normal((k * DIM, FILT)).astype(np.float32) * 0.05 for k in WIDTHS]
bs = [np.zeros(FILT, np.float32) for _ in WIDTHS]
Wo, bo = rng.standard_normal((FILT * 3, 3)).astype(np.float32), np.zeros(3, np.float32)


def forward(ids):
    e = table[ids]
    feats = []
    for k, W, b in zip(WIDTHS, Ws, bs):
        win = sliding_window_view(e, (k, DIM)).reshape(len(ids) - k + 1, k * DIM)
        feats.append(np.maximum(win @ W + b, 0).max(axis=0))
    z = np.concatenate(feats) @ Wo + bo
    z = np.exp(z - z.max())
    return z / z.sum()


heads = [rng.integers(0, 20000, T) for _ in range(3000)]
for h in heads[:50]:
    forward(h)
t0 = time.perf_counter()
for h in heads:
    forward(h)
dt = time.perf_counter() - t0
print(f"numpy, one headline at a time, 1 thread: {len(heads) / dt:.0f} headlines/s")
