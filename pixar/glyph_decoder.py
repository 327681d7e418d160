"""Glyph decoder: read a rendered (or generated) pixel strip back to text by template matching.

PIXAR renders with a known bitmap font (Pixeloid Sans at its native 9-px em, no kerning, integer
advances; see pixar.render), so a strip is a left-to-right sequence of glyph bitmaps placed at integer
pen positions. We invert that with dynamic programming over columns:

    state      pen x (a column of the strip, padded by `pad` white columns on both sides)
    glyph c    from pen x to x + advance(c), cost = Hamming distance between c's template and the strip
               over the window [x, x + advance(c)) (all rows), plus a small per-glyph penalty `glyph_cost`
    skip       from x to x + 1, emitting nothing, cost = ink in column x + `skip_cost` (margins, gaps)
    dp[y]      = min(dp[y-1] + skip(y-1), min_c dp[y - adv(c)] + cost_c(y - adv(c)))

Costs are soft: with P(white) values p in [0, 1] the per-pixel cost is |template_ink - (1 - p)|, which
is the Hamming distance for binary strips. Noisy pixels therefore cost, never veto. The space is a
blank template of advance 3; since 3 * skip_cost > space_cost, blank runs between words read as spaces.

Vectorisation: all template costs at all pen positions come from one matrix product of the templates
[C, H*A] with the sliding windows of the strip [N, H*A] (A = widest advance); per distinct advance we
keep only the cheapest template (a handful of groups), so the DP loop is over columns x groups only.
`decode_batch` runs that loop once for a whole batch (numpy over the batch axis).

Templates: a glyph's ink is clipped to its advance window; in Pixeloid only a few rare glyphs (Ð, Ł,
ï, ...) draw 1 px left of the pen, which then costs one pixel. Characters whose clipped template equals
an earlier one's in charset order are dropped (e.g. Latin-1 capitals whose accents fall above the 8-px
strip read as the plain ASCII letter; '' (two apostrophes) and '"' render alike and the DP's per-glyph
penalty prefers the single '"'; '_' is clipped to nothing and reads as space).

g and q: the strip is 8 px high, so descenders are clipped and g, q render identically (the paper folds
g -> q when scoring). The DP emits 'g' and a language prior then picks per word: with a `lexicon`
(word -> count, e.g. `pixar.wordlist.word_counts`) the most frequent spelling among the g/q variants of
the word (ties and unknown words fall back to the rule); without one, the rule "q before u, else g"
(right for English: 'qu' words vastly outnumber 'gu' ones that matter, and q almost never occurs without
u). Set `gq="g"` or `gq="q"` for a fixed choice.
"""
from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence

import numpy as np

from .render import Renderer

# Printable ASCII, then Latin-1 (U+00A1..U+00FF), then common typographic punctuation; order = tie-break.
DEFAULT_CHARSET = (
    "".join(chr(c) for c in range(0x20, 0x7F))
    + "\u00e9" + "".join(chr(c) for c in range(0xA1, 0x100) if c != 0xAD)
    + "\u2018\u2019\u201c\u201d\u2013\u2014\u2026\u2022"
)
_WORD = re.compile(r"[^\W\d_]+")
_NUMPY_DP_MIN_BATCH = 8  # below this the per-column Python loop beats numpy's per-call overhead


def as_white_prob(strip) -> np.ndarray:
    """Any strip -> float32 [H, W] of P(white): bool/{0,1} arrays as is (1 = white), uint8 0..255 / 255."""
    arr = np.asarray(strip)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise ValueError(f"a strip must be 2-D [H, W] (1 = white, 0 = ink); got shape {arr.shape}")
    if arr.dtype == np.uint8 and arr.size and arr.max() > 1:
        return arr.astype(np.float32) / 255.0
    out = arr.astype(np.float32)
    if out.size and (np.nanmin(out) < 0 or np.nanmax(out) > 1 or np.isnan(out).any()):
        raise ValueError("strip values must lie in [0, 1] (P(white)) or be uint8 0..255")
    return out


class GlyphDecoder:
    """Decodes strips rendered with `renderer`'s font back to text. Templates are built once per instance.

    renderer: a pixar.render.Renderer (its glyph atlas gives each character's ink, left offset, advance).
    charset: characters to consider (those the main font draws; others are ignored).
    lexicon: optional word -> count mapping for the g/q choice (see module docstring).
    gq: "prior" (lexicon, else q-before-u rule), "g" or "q".
    glyph_cost / space_cost / skip_cost: the DP's per-step penalties (see module docstring).
    """

    def __init__(self, renderer: Renderer | None = None, charset: str = DEFAULT_CHARSET,
                 lexicon: Mapping[str, int] | None = None, gq: str = "prior",
                 glyph_cost: float = 0.05, space_cost: float = 0.05, skip_cost: float = 0.1):
        if gq not in ("prior", "g", "q"):
            raise ValueError(f"gq must be 'prior', 'g' or 'q', got {gq!r}")
        if not 3 * skip_cost > space_cost >= 0 or glyph_cost < 0:
            raise ValueError("costs must satisfy 3 * skip_cost > space_cost >= 0 and glyph_cost >= 0")
        self.renderer = renderer or Renderer()
        self.lexicon = lexicon
        self.gq = gq
        self.skip_cost = float(skip_cost)
        self.height = self.renderer.cfg.patch_size
        self._build_templates(charset, float(glyph_cost), float(space_cost))

    # ---- templates ---------------------------------------------------------------------------
    def _build_templates(self, charset: str, glyph_cost: float, space_cost: float) -> None:
        r, H = self.renderer, self.height
        chars, inks, advances, seen = [], [], [], set()
        for ch in dict.fromkeys(charset):  # unique, order kept
            if r.font_for(ch) != (r.font_path, ch):
                continue  # not drawn by the main font: fallback/replacement glyphs are not templates
            g = r.glyph(ch)
            if g.advance <= 0 or g.ink.shape[0] != H:
                continue
            ink = np.zeros((H, g.advance), dtype=bool)
            a, b = max(g.left, 0), min(g.left + g.ink.shape[1], g.advance)
            if b > a:
                ink[:, a:b] = g.ink[:, a - g.left: b - g.left]
            if not ink.any() and ch != " ":
                continue  # blank non-space glyphs (e.g. '_' clipped below the strip) would read as space
            key = (g.advance, ink.tobytes())
            if key in seen:
                continue  # identical pixels to an earlier character: the earlier one wins (g before q)
            seen.add(key)
            chars.append(ch)
            inks.append(ink)
            advances.append(g.advance)
        if " " not in chars:
            raise ValueError("the charset must contain the space character")
        self.chars = chars
        self.advances = np.asarray(advances, dtype=np.int64)  # [C]
        self.width = int(self.advances.max())  # A: widest advance
        A, C = self.width, len(chars)
        ink_full = np.zeros((C, H, A), dtype=np.float32)
        mask = np.zeros((C, H, A), dtype=np.float32)
        for i, ink in enumerate(inks):
            ink_full[i, :, : ink.shape[1]] = ink
            mask[i, :, : ink.shape[1]] = 1.0
        # cost_c(x) = sum_window mask*q - 2 * sum ink*q + |ink|   (q = ink probability, binary -> Hamming)
        self._weights = (mask - 2.0 * ink_full).reshape(C, H * A)  # [C, H*A]
        penalty = np.array([space_cost if ch == " " else glyph_cost for ch in chars], dtype=np.float32)
        self._bias = ink_full.reshape(C, -1).sum(1) + penalty  # [C]
        self.group_advances = np.unique(self.advances)  # [G] distinct advances, ascending
        self._groups = [np.flatnonzero(self.advances == a) for a in self.group_advances]

    # ---- decoding -----------------------------------------------------------------------------
    def decode(self, strip) -> str:
        """strip [H, W] (1 = white, 0 = ink; floats = P(white)) -> the best-scoring text, stripped."""
        return self.decode_batch([strip])[0]

    def decode_batch(self, strips: Sequence) -> list[str]:
        """Decode several strips [H, W_i] at once (padded with white to a common width)."""
        probs = [as_white_prob(s) for s in strips]
        for i, p in enumerate(probs):
            if p.shape[0] != self.height:
                raise ValueError(f"strip {i}: height {p.shape[0]} != the renderer's patch size {self.height}")
        if not probs:
            return []
        A = self.width
        W = max(p.shape[1] for p in probs)
        B, N = len(probs), W + 2 * A  # N columns after padding A white columns each side
        q = np.zeros((B, self.height, N + A), dtype=np.float32)  # ink probability; extra A for windows
        for i, p in enumerate(probs):
            q[i, :, A: A + p.shape[1]] = 1.0 - p
        windows = np.lib.stride_tricks.sliding_window_view(q, A, axis=2)[:, :, :N]  # [B, H, N, A]
        windows = windows.transpose(0, 2, 1, 3).reshape(B, N, self.height * A)
        cost = windows @ self._weights.T + self._bias  # [B, N, C]: template c with its pen at column x
        G = len(self._groups)
        best = np.empty((G, B, N), dtype=np.float32)
        best_idx = np.empty((G, B, N), dtype=np.int64)
        for k, idx in enumerate(self._groups):
            sub = cost[:, :, idx]
            j = sub.argmin(-1)
            best_idx[k] = idx[j]
            best[k] = np.take_along_axis(sub, j[..., None], -1)[..., 0]
        skip = q[:, :, :N].sum(1) + self.skip_cost  # [B, N]
        adv = [int(a) for a in self.group_advances]
        if B >= _NUMPY_DP_MIN_BATCH:
            choice = _dp_numpy(best, skip, adv)
        else:
            choice = np.stack([_dp_python(best[:, b].tolist(), skip[b].tolist(), adv) for b in range(B)])
        return [self._resolve_gq(self._backtrack(choice[b], best_idx[:, b]).strip()) for b in range(B)]

    def _backtrack(self, choice: np.ndarray, best_idx: np.ndarray) -> str:
        out, y = [], len(choice) - 1
        while y > 0:
            k = int(choice[y])
            if k < 0:
                y -= 1
                continue
            x = y - int(self.group_advances[k])
            out.append(self.chars[int(best_idx[k, x])])
            y = x
        return "".join(reversed(out))

    # ---- g/q prior ----------------------------------------------------------------------------
    def _resolve_gq(self, text: str) -> str:
        if "g" not in text:
            return text
        if self.gq != "prior":
            return text.replace("g", self.gq)
        return _WORD.sub(lambda m: self._resolve_word(m.group(0)), text)

    def _resolve_word(self, word: str) -> str:
        ruled = re.sub(r"g(?=u)", "q", word)
        if not self.lexicon or "g" not in word:
            return ruled
        slots = [i for i, c in enumerate(word) if c == "g"]
        if len(slots) > 6:
            return ruled
        best, best_count = ruled, self.lexicon.get(ruled.lower(), 0)
        for combo in itertools.product("gq", repeat=len(slots)):
            chars = list(word)
            for i, c in zip(slots, combo):
                chars[i] = c
            cand = "".join(chars)
            n = self.lexicon.get(cand.lower(), 0)
            if n > best_count:
                best, best_count = cand, n
        return best


# ---- the column DP (two equivalent implementations) -------------------------------------------------
def _dp_python(best: list[list[float]], skip: list[float], adv: list[int]) -> np.ndarray:
    """One strip. best[k][x]: cheapest template of advance adv[k] with its pen at x; skip[x]: skipping
    column x. Returns choice int64 [N+1]: -1 = skip into y, k = group k's glyph ends at y."""
    N = len(skip)
    dp = [0.0] * (N + 1)
    choice = [-1] * (N + 1)
    groups = list(enumerate(zip(adv, best)))
    for y in range(1, N + 1):
        cur, ch = dp[y - 1] + skip[y - 1], -1
        for k, (a, row) in groups:
            if a > y:
                break
            cand = dp[y - a] + row[y - a]
            if cand < cur:
                cur, ch = cand, k
        dp[y] = cur
        choice[y] = ch
    return np.asarray(choice, dtype=np.int64)


def _dp_numpy(best: np.ndarray, skip: np.ndarray, adv: list[int]) -> np.ndarray:
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
