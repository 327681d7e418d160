"""The glyph decoder's column DP (pixar.read.glyph_decoder), two equivalent implementations: a plain-Python loop
for one strip and a numpy loop over a batch (faster from about 8 strips up)."""
from __future__ import annotations

import numpy as np


def dp_python(best: list[list[float]], skip: list[float], adv: list[int]) -> np.ndarray:
    """One strip. best[k][x]: cheapest template of advance adv[k] with its pen at x; skip[x]: skipping
    column x. Returns choice int64 [N+1]: -1 = skip into y, k = group k's glyph ends at y."""
    N = len(skip)
    dp = [0.0] * (N + 1)
    choice = [-1] * (N + 1)
    groups = list(zip(range(len(adv)), adv, best))
    for y in range(1, N + 1):
        cur, ch = dp[y - 1] + skip[y - 1], -1
        for k, a, row in groups:
            if a > y:
                break
            x = y - a
            cand = dp[x] + row[x]
            if cand < cur:
                cur, ch = cand, k
        dp[y] = cur
        choice[y] = ch
    return np.asarray(choice, dtype=np.int64)


def dp_numpy(best: np.ndarray, skip: np.ndarray, adv: list[int]) -> np.ndarray:
    """The same DP for a batch: best [G, B, N], skip [B, N] -> choice int64 [B, N+1]."""
    B, N = skip.shape
    dp = np.zeros((B, N + 1), dtype=np.float64)
    choice = np.full((B, N + 1), -1, dtype=np.int64)
    for y in range(1, N + 1):
        cur = dp[:, y - 1] + skip[:, y - 1]
        ch = choice[:, y]
        for k, a in enumerate(adv):
            if a > y:
                break
            cand = dp[:, y - a] + best[k, :, y - a]
            better = cand < cur
            cur = np.where(better, cand, cur)
            ch[better] = k
        dp[:, y] = cur
    return choice
