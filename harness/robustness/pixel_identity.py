"""Do imperceptible perturbations change what PIXAR sees? Render the clean and the perturbed text and compare pixels.

Boucher et al.'s BadCharacters (TextAttack's BadCharacters2021) insert invisible characters, bidi reordering
controls or deletion controls (a character followed by a backspace). A renderer that draws nothing for a character
and takes no room for it gives a pixel model the same input as the clean text; whether ours does is measured here,
not assumed (pixar.render.text_rules: default-ignorable characters are invisible and take no room; bidi overrides
and isolates are applied as Pango does (pixar.render.itemise), so a reordering is drawn in its displayed order;
other control characters, U+0008 among them, are drawn as a hex box).

`same_pixels` compares two renders (pixels and position mask); `identity` counts identical renders over pairs with
a Wilson interval; `sampled_pairs` draws seeded candidates from a BadCharacters transformation's own search space
(the vectors its differential evolution explores), independently of any model.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from harness.results.stats import wilson_interval
from harness.robustness.textattack_bridge import import_textattack


def same_pixels(renderer, a, b) -> bool:
    """True when `a` and `b` render to the same strip (pixels and attended positions)."""
    ra, rb = renderer.render(a), renderer.render(b)
    return ra.pixels.shape == rb.pixels.shape and bool(np.array_equal(ra.pixels, rb.pixels)) \
        and bool(np.array_equal(ra.mask, rb.mask))


def identity(renderer, pairs: Sequence[tuple[str, str]]) -> dict:
    """{n, changed_text, identical, share, ci_low, ci_high} over (clean, perturbed) pairs whose texts differ."""
    pairs = [(a, b) for a, b in pairs if a != b]
    same = sum(same_pixels(renderer, a, b) for a, b in pairs)
    out = {"n": len(pairs), "identical": int(same), "share": same / len(pairs) if pairs else float("nan")}
    if pairs:
        iv = wilson_interval(same, len(pairs))
        out |= {"ci_low": iv.low, "ci_high": iv.high}
    return out


def sampled_pairs(perturbation_type: str, texts: Sequence[str], seed: int, perturbs: int = 1) -> list[tuple[str, str]]:
    """One seeded candidate per text from BadCharacters2021's transformation for `perturbation_type` ('invisible',
    'reorderings', 'deletions'): a vector drawn uniformly inside the transformation's bounds, applied as its
    differential evolution applies one (text i uses numpy.random.default_rng([seed, i]))."""
    ta = import_textattack()
    cls = {"invisible": "WordSwapInvisibleCharacters", "reorderings": "WordSwapReorderings",
           "deletions": "WordSwapDeletions"}[perturbation_type]
    transformation = getattr(ta.transformations, cls)()
    out = []
    for i, text in enumerate(texts):
        attacked = ta.shared.AttackedText(text)
        bounds, pre = transformation.get_bounds_and_precomputed(attacked, perturbs)
        rng = np.random.default_rng([seed, i])
        vector = [rng.uniform(lo, hi) for lo, hi in bounds]
        out.append((text, transformation.apply_perturbation(attacked, vector, pre).text))
    return out
