"""Glyph decoder: read a rendered (or generated) pixel strip back to text by template matching.

PIXAR renders with a known bitmap font (Pixeloid Sans at its native 9-px em, no kerning, integer
advances; see pixar.render.renderer), so a strip is a left-to-right sequence of glyph bitmaps placed at integer
pen positions. We invert that with dynamic programming over columns (a shortest path):

    state      pen x: a column of the strip, padded with `A` (widest advance) white columns each side
    glyph c    x -> x + advance(c); cost = Hamming distance between c's template and the strip over the
               window [x, x + advance(c)) (all H rows) + step cost (glyph_cost, or space_cost for ' ')
               + prior_weight * (-ln P(c) + ln P(' '))   (character prior, CORPUS_CHAR_NLL)
    skip       x -> x + 1, emits nothing; cost = ink in column x, + skip_cost inside the inked span
               (blank margins before the first / after the last ink column are free)
    dp[y]      = min(dp[y-1] + skip(y-1), min_c dp[y - adv(c)] + cost_c(y - adv(c)))

With P(white) values p the per-pixel cost is |template_ink - (1 - p)|, the Hamming distance for binary
strips: noisy pixels cost, never veto. A space is a blank template of advance 3, and 3 * skip_cost >
space_cost, so blank runs inside the text read as spaces; the result is stripped of outer whitespace.

Noise-adaptive prior (prior_weight="auto"): the character prior is worth 1 / ln((1 - f) / f) pixels per
nat for a pixel flip rate f (the log-odds of one flipped pixel). A first pass uses f = 1e-5 (clean: the
prior only breaks ties and never outweighs a 1-px difference); its residual (mismatched pixels / pixels
of the inked span, on the strip thresholded at 0.5) estimates f, and a strip whose estimate calls for a
much larger weight is decoded again with it. Measured (benchmarks/ocr.py, 500 corpus lines, g/q folded):
clean 100% of words exact; with 1% / 2% / 5% random pixel flips 94% / 93.5% / 83.5% of words (without the
prior: about 65% / 35% at 2% / 5%).

Abstention (pixar.read.abstention, on by default): the DP always finds some explanation, so a blob of ink
would read as "tlllllllina". Each word of the path is judged by how well its templates fit the pixels (Jaccard
distance, worst glyph, specks); a word that does not fit is replaced by ABSTAIN_MARK (U+FFFD), which no scorer
counts as readable or correct. `abstain=None` is the forced-choice decoder (every word read).

Vectorisation: all template costs at all pen positions come from one matrix product of the templates
[C, H*A] with the sliding windows of the strip [N, H*A]; per distinct advance we keep only the cheapest
template (7 groups for Pixeloid), so the DP loop is over columns x groups. `decode_batch` runs that loop
for the whole batch at once (numpy over the batch axis); a single strip uses a plain-Python loop.

Templates: a glyph's ink is clipped to its advance window (only rare Pixeloid glyphs such as Ð, Ł, ï draw
1 px left of the pen, which then costs a pixel). A character whose clipped template equals an earlier one's
in charset order is dropped, and blank glyphs other than space are dropped: those characters cannot be
told apart in 8 px. Known look-alikes: g/q (below); è/é (é wins); Latin-1 capitals whose accents fall
above the strip read as the plain letter; '_' and '`' draw nothing in 8 px (read as blank); '' (two apostrophes)
vs '"' and '...' vs '…' are segmentation ties the step costs and the prior decide; “/” and ‘/’ differ by
a 1-px shift, so they are re-chosen by context (opening at the start or after a space/bracket/dash).

g and q: descenders are clipped to one row, so g and q render identically (the paper folds g -> q when
scoring). The DP emits 'g'; a language prior then picks per word: with a `lexicon` (word -> count, e.g.
pixar.read.wordlist.word_counts) the most frequent spelling among the word's g/q variants (unknown words fall
back to the rule); without one, the rule "q before u, else g" (99.75% of corpus words right unfolded; with
the corpus lexicon 99.96%). gq="g" or "q" fixes the choice.
"""
from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import Mapping, Sequence

import numpy as np

from pixar.read.abstention import DEFAULT_RULE, AbstentionRule, Word, assemble, words_of_path
from pixar.read.glyph_dp import dp_numpy, dp_python
from pixar.render.renderer import Renderer

# Printable ASCII, then Latin-1 (U+00A1..U+00FF), then common typographic punctuation; order = tie-break.
DEFAULT_CHARSET = (
    "".join(chr(c) for c in range(0x20, 0x7F))
    + "\u00e9" + "".join(chr(c) for c in range(0xA1, 0x100) if c != 0xAD)
    + "\u2018\u2019\u201c\u201d\u2013\u2014\u2026\u2022"
)
# -ln P(char) over the book corpus ($PIXAR_DATA/corpus, whitespace collapsed; 11.6M characters), rounded.
CORPUS_CHAR_NLL = {
    " ": 1.7, "e": 2.3, "t": 2.7, "a": 2.8, "o": 2.8, "n": 2.9, "i": 3.0, "s": 3.0, "h": 3.1, "r": 3.1,
    "l": 3.5, "d": 3.5, "u": 3.8, "m": 4.0, "c": 4.0, "f": 4.1, "w": 4.1, ",": 4.1, "g": 4.2, "y": 4.2,
    "p": 4.4, "b": 4.5, ".": 4.8, "v": 4.9, "k": 5.2, '"': 5.5, "I": 5.6, "-": 5.6, "T": 5.9, "A": 6.2,
    "S": 6.2, "'": 6.2, ";": 6.3, "M": 6.4, "H": 6.5, "E": 6.6, "C": 6.6, "B": 6.7, "W": 6.7, "x": 6.8,
    "O": 6.8, "N": 7.0, "P": 7.0, "L": 7.0, "R": 7.1, "F": 7.1, "q": 7.1, "D": 7.1, "!": 7.2, "j": 7.2,
    "G": 7.2, "?": 7.3, ":": 7.4, "1": 7.4, "Y": 7.7, "J": 7.7, "z": 7.8, ")": 7.9, "(": 7.9, "2": 7.9,
    "V": 8.2, "U": 8.2, "K": 8.3, "3": 8.3, "[": 8.3, "]": 8.3, "8": 8.4, "0": 8.4, "4": 8.4, "\u2019": 8.6,
    "7": 8.6, "5": 8.6, "6": 8.7, "9": 8.8, "\u201c": 8.8, "\u201d": 8.8, "\u00e9": 9.2, "Q": 9.3, "*": 9.4,
    "X": 9.7, "/": 10.0, "}": 10.2, "|": 10.2, "\u00e8": 10.4, "\u00e0": 10.4, "Z": 10.7, "&": 10.7,
}
UNSEEN_CHAR_NLL = 11.0

_WORD = re.compile(r"[^\W\d_]+")
_NUMPY_DP_MIN_BATCH = 8  # below this the per-column Python loop beats numpy's per-call overhead
_CHUNK = 64  # strips per vectorised pass (the cost tensor is [C, chunk, width] float32)


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

    renderer: a pixar.render.renderer.Renderer (its glyph atlas gives each character's ink, left offset, advance).
    charset: characters to consider (those the main font draws; others are ignored).
    lexicon: optional word -> count mapping for the g/q choice (see module docstring).
    gq: "prior" (lexicon, else q-before-u rule), "g" or "q".
    glyph_cost / space_cost / skip_cost: the DP's per-step penalties, in pixels (see module docstring).
    prior_weight: "auto" (noise-adaptive, module docstring) or fixed pixels per nat of character prior.
    char_nll: character -> -ln P(char) (default CORPUS_CHAR_NLL; unseen characters UNSEEN_CHAR_NLL).
    abstain: the pixar.read.abstention.AbstentionRule that replaces badly fitting words by ABSTAIN_MARK
        (default DEFAULT_RULE, calibrated); None = forced choice (every word read, the decoder before abstention).
    """

    def __init__(self, renderer: Renderer | None = None, charset: str = DEFAULT_CHARSET,
                 lexicon: Mapping[str, int] | None = None, gq: str = "prior",
                 glyph_cost: float = 0.05, space_cost: float = 0.05, skip_cost: float = 0.3,
                 prior_weight: float | str = "auto", char_nll: Mapping[str, float] | None = None,
                 abstain: AbstentionRule | None = DEFAULT_RULE):
        if gq not in ("prior", "g", "q"):
            raise ValueError(f"gq must be 'prior', 'g' or 'q', got {gq!r}")
        if not 3 * skip_cost > space_cost >= 0 or glyph_cost < 0:
            raise ValueError("costs must satisfy 3 * skip_cost > space_cost >= 0 and glyph_cost >= 0")
        if prior_weight != "auto" and not (isinstance(prior_weight, (int, float)) and prior_weight >= 0):
            raise ValueError(f"prior_weight must be 'auto' or a number >= 0, got {prior_weight!r}")
        self.renderer = renderer or Renderer()
        self.lexicon = lexicon
        self.gq = gq
        self.skip_cost = float(skip_cost)
        self.prior_weight = prior_weight
        self.abstain = abstain
        self.height = self.renderer.cfg.patch_size
        self.char_nll = dict(CORPUS_CHAR_NLL if char_nll is None else char_nll)
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
        order = sorted(range(len(chars)), key=lambda i: advances[i])  # stable: charset order within an advance
        chars, inks, advances = [chars[i] for i in order], [inks[i] for i in order], [advances[i] for i in order]
        self.chars = chars
        self.advances = np.asarray(advances, dtype=np.int64)  # [C]
        self.width = int(self.advances.max())  # A: widest advance
        A, C = self.width, len(chars)
        ink_full = np.zeros((C, H, A), dtype=np.float32)
        mask = np.zeros((C, H, A), dtype=np.float32)
        for i, ink in enumerate(inks):
            ink_full[i, :, : ink.shape[1]] = ink
            mask[i, :, : ink.shape[1]] = 1.0
        # Hamming cost_c(x) = sum_window mask*q - 2 * sum ink*q + |ink|  (q = ink probability)
        self._weights = (mask - 2.0 * ink_full).reshape(C, H * A)  # [C, H*A]
        self._ink_count = ink_full.reshape(C, -1).sum(1)  # [C]
        self._step_cost = np.array([space_cost if ch == " " else glyph_cost for ch in chars], dtype=np.float32)
        nll_space = self.char_nll.get(" ", UNSEEN_CHAR_NLL)
        self._prior = np.array([max(self.char_nll.get(ch, UNSEEN_CHAR_NLL) - nll_space, 0.0) for ch in chars],
                               dtype=np.float32)  # [C] nats above the space's
        self.group_advances, starts = np.unique(self.advances, return_index=True)  # [G] ascending
        self._groups = list(zip(starts.tolist(), starts[1:].tolist() + [C]))  # contiguous [lo, hi) slices
        self._blas = _single_thread_blas()

    # ---- decoding -----------------------------------------------------------------------------
    def decode(self, strip) -> str:
        """strip [H, W] (1 = white, 0 = ink; floats = P(white)) -> the best-scoring text, stripped."""
        return self.decode_batch([strip])[0]

    def decode_batch(self, strips: Sequence) -> list[str]:
        """Decode several strips [H, W_i] at once (padded with white to a common width)."""
        return [text for text, _ in self.decode_batch_with_residual(strips)]

    def decode_batch_with_residual(self, strips: Sequence) -> list[tuple[str, float]]:
        """[(text, residual)]: residual = pixels where the reading's glyphs disagree with the strip
        (thresholded at 0.5) / pixels of the inked span; 0 = exact fit, ~f for a flip rate f."""
        return [(self.finish(assemble(parts)), r) for parts, r in self.decode_words_batch(strips)]

    def decode_words_batch(self, strips: Sequence) -> list[tuple[list[Word | str], float]]:
        """[(parts, residual)]: the reading as separators (str) and pixar.read.abstention.Words with their
        template fit and whether they were read (self.abstain), before outer whitespace is stripped and the
        quote / g-q choices are made."""
        strips = list(strips)
        if len(strips) > _CHUNK:
            chunks = (strips[i: i + _CHUNK] for i in range(0, len(strips), _CHUNK))
            return [r for chunk in chunks for r in self.decode_words_batch(chunk)]
        probs = [as_white_prob(s) for s in strips]
        for i, p in enumerate(probs):
            if p.shape[0] != self.height:
                raise ValueError(f"strip {i}: height {p.shape[0]} != the renderer's patch size {self.height}")
        if not probs:
            return []
        A, H = self.width, self.height
        W = max(p.shape[1] for p in probs)
        B, N = len(probs), W + 2 * A  # N columns after padding A white columns each side
        q = np.zeros((B, H, N + A), dtype=np.float32)  # ink probability; extra A columns for the windows
        for i, p in enumerate(probs):
            q[i, :, A: A + p.shape[1]] = 1.0 - p
        hamming = self._hamming(q, N)  # [C, B, N]: template c with its pen at column x of strip b
        col_ink = q[:, :, :N].sum(1)  # [B, N]
        inked = (q[:, :, :N] > 0.5).any(1)  # [B, N]
        first = np.where(inked.any(1), inked.argmax(1), N)
        last = np.where(inked.any(1), N - 1 - inked[:, ::-1].argmax(1), -1)
        cols = np.arange(N)
        # skipping a column costs its ink, plus skip_cost inside the inked span (margins are free)
        skip = col_ink + np.where((cols >= first[:, None]) & (cols <= last[:, None]), self.skip_cost, 0.0)
        span = np.maximum(last - first + 1, 1) * H
        if np.all((q == 0) | (q == 1)):  # binary strip: the residual counts plain pixel mismatches
            hard, hard_ink = hamming, col_ink
        else:  # probabilities: estimate the noise on the strip thresholded at 0.5 (what a reader sees)
            qh = (q > 0.5).astype(np.float32)
            hard, hard_ink = self._hamming(qh, N), qh[:, :, :N].sum(1)

        auto = self.prior_weight == "auto"
        w = np.full(B, _auto_weight(0.0) if auto else float(self.prior_weight))
        paths = self._solve(hamming, skip, w)
        resid = np.array([self._residual(path, hard[:, b], hard_ink[b], first[b], last[b]) for b, path in
                          enumerate(paths)]) / span
        if auto:
            w2 = np.array([_auto_weight(f) for f in resid])
            redo = np.flatnonzero(w2 > w * 1.5)
            if redo.size:
                paths2 = self._solve(hamming[:, redo], skip[redo], w2[redo])
                for j, b in enumerate(redo):
                    paths[b] = paths2[j]
                    resid[b] = self._residual(paths2[j], hard[:, b], hard_ink[b], first[b], last[b]) / span[b]
        return [(words_of_path(path, self.chars, self.advances, self._ink_count, hard[:, b], hard_ink[b], H,
                               self.abstain), float(r)) for b, (path, r) in enumerate(zip(paths, resid))]

    def finish(self, text: str) -> str:
        """A path's raw text -> the reading: outer whitespace stripped, quote forms and g/q chosen."""
        return self._resolve_gq(_fix_quotes(text.strip()))

    def _hamming(self, q: np.ndarray, N: int) -> np.ndarray:
        """q: ink [B, H, N + A] -> Hamming cost [C, B, N] of each template at each pen position."""
        B, H, _ = q.shape
        A, C = self.width, len(self.chars)
        windows = np.lib.stride_tricks.sliding_window_view(q, A, axis=2)[:, :, :N]  # [B, H, N, A] (a view)
        windows = windows.transpose(1, 3, 0, 2).reshape(H * A, B * N)
        with self._blas:  # tiny GEMMs: OpenBLAS threads only add sync cost (10x slower on a busy machine)
            out = (self._weights @ windows).reshape(C, B, N)
        out += self._ink_count[:, None, None]
        return out

    def _solve(self, hamming: np.ndarray, skip: np.ndarray, weight: np.ndarray) -> list[list[tuple[int, int]]]:
        """DP for each strip; returns its path [(pen x, template index or -1 for a skipped column)]."""
        _, B, N = hamming.shape
        extra = self._step_cost[:, None] + self._prior[:, None] * weight[None, :].astype(np.float32)  # [C, B]
        cost = hamming + extra[:, :, None]  # [C, B, N]
        G = len(self._groups)
        best = np.empty((G, B, N), dtype=np.float32)
        best_idx = np.empty((G, B, N), dtype=np.int64)
        for k, (lo, hi) in enumerate(self._groups):
            sub = cost[lo:hi]
            best[k] = sub.min(0)
            if B * N <= 4096:
                best_idx[k] = sub.argmin(0) + lo
            else:  # argmin over axis 0 copies a transpose; row-wise compares are several times faster
                idx = best_idx[k]
                idx.fill(lo)
                for r in range(hi - lo - 1, 0, -1):  # descending, so the first (charset-order) minimum wins
                    idx[sub[r] == best[k]] = lo + r
        adv = [int(a) for a in self.group_advances]
        if B >= _NUMPY_DP_MIN_BATCH:
            choice = dp_numpy(best, skip, adv)
        else:
            choice = np.stack([dp_python(best[:, b].tolist(), skip[b].tolist(), adv) for b in range(B)])
        return [self._backtrack(choice[b], best_idx[:, b]) for b in range(B)]

    def _backtrack(self, choice: np.ndarray, best_idx: np.ndarray) -> list[tuple[int, int]]:
        path, y = [], len(choice) - 1
        while y > 0:
            k = int(choice[y])
            if k < 0:
                y -= 1
                path.append((y, -1))
                continue
            x = y - int(self.group_advances[k])
            path.append((x, int(best_idx[k, x])))
            y = x
        return path[::-1]

    @staticmethod
    def _residual(path, hamming: np.ndarray, col_ink: np.ndarray, first: int, last: int) -> float:
        """Mismatched pixels of the chosen explanation inside the inked span [first, last]; hamming [C, N]."""
        total = 0.0
        for x, c in path:
            if first <= x <= last:
                total += float(col_ink[x]) if c < 0 else float(hamming[c, x])
        return total

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


def _single_thread_blas():
    """A context manager limiting BLAS to one thread (threadpoolctl when installed, else a no-op)."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return contextlib.nullcontext()
    return _ReusableLimit(ThreadpoolController())


class _ReusableLimit:
    """Re-enterable `with` block: BLAS limited to one thread inside, the previous limits restored after."""

    def __init__(self, controller):
        self._controller = controller
        self._active = []

    def __enter__(self):
        self._active.append(self._controller.limit(limits=1, user_api="blas"))
        return self

    def __exit__(self, *exc):
        self._active.pop().restore_original_limits()
        return False


_OPENERS = " \t([{<\u201c\u2018\"'-\u2014"


def _fix_quotes(text: str) -> str:
    """Typographic quotes: \u201c/\u201d (and \u2018/\u2019) differ only by a 1-px shift, which is ambiguous
    next to blank columns. Opening form at the start or after whitespace/brackets/dashes/quotes, else closing."""
    if not any(c in text for c in "\u201c\u201d\u2018\u2019"):
        return text
    out = []
    for i, c in enumerate(text):
        if c in "\u201c\u201d\u2018\u2019":
            opening = i == 0 or text[i - 1] in _OPENERS
            c = ("\u201c" if opening else "\u201d") if c in "\u201c\u201d" else ("\u2018" if opening else "\u2019")
        out.append(c)
    return "".join(out)


def _auto_weight(flip_rate: float) -> float:
    """Prior weight in pixels per nat for a pixel flip rate f: 1 / ln((1 - f) / f), f clipped to
    [1e-5, 0.25] (a flipped pixel costs ln((1 - f) / f) nats; one pixel = one unit of Hamming cost)."""
    f = min(max(flip_rate, 1e-5), 0.25)
    return min(1.0 / float(np.log((1 - f) / f)), 1.0)
