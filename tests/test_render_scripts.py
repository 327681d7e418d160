"""Every script against the authors' renderer: the committed multi-script goldens (benchmarks/render_multiscript.py).

tests/golden/multiscript.npz holds 1,359 strips drawn by pixar-render 0.5.1 (PangoCairo) from strings in 33
scripts, bidi mixes and explicit bidi controls, combining marks, emoji, hex boxes and joiners. tests/golden/multiscript_known.json lists the strings
that still differ: every other string must be identical (no regression), and the identical count may only grow.
"""
from __future__ import annotations

import json
from collections import Counter

import pytest

from pathlib import Path

import numpy as np

from pixar.config import RenderConfig
from pixar.render.renderer import Renderer

GOLDEN = Path(__file__).parent / "golden"


def load(folder: Path = GOLDEN):
    """(texts, classes, uint8 strips [N, 8, W], 1 = white) of the committed multi-script goldens."""
    items = json.loads((folder / "multiscript.json").read_text(encoding="utf-8"))
    z = np.load(folder / "multiscript.npz")
    strips = np.unpackbits(z["bits"], axis=-1, count=int(z["width"]))
    return [it["text"] for it in items], [it["class"] for it in items], strips


def compare(renderer, texts, strips) -> list[bool]:
    """Whether each text's strip, rendered in one batch, is identical to its golden."""
    px = renderer.render_batch(texts).pixels
    return [bool(np.array_equal(p, g)) for p, g in zip(px, strips)]


@pytest.fixture(scope="module")
def goldens():
    return load(GOLDEN)


def test_golden_set_covers_scripts_and_stays_small(goldens):
    texts, classes, strips = goldens
    assert len(texts) == len(strips) >= 1000 and strips.shape[1:] == (8, 360 * 16)
    assert len(set(classes) - {"bidi", "combining", "emoji", "joiners"}) >= 25
    assert {"bidi", "combining", "emoji", "joiners"} <= set(classes)
    assert len(set(texts)) == len(texts)
    assert sum(p.stat().st_size for p in GOLDEN.glob("multiscript*")) < 600_000


def test_no_script_regresses_and_identical_count_holds(goldens):
    texts, classes, strips = goldens
    known = json.loads((GOLDEN / "multiscript_known.json").read_text(encoding="utf-8"))
    allowed = {t for ts in known["differ"].values() for t in ts}
    same = compare(Renderer(RenderConfig(max_positions=360)), texts, strips)
    regressed = [(c, t) for t, c, ok in zip(texts, classes, same) if not ok and t not in allowed]
    per = Counter(c for c, ok in zip(classes, same) if ok)
    failing = {c: [t for t, cc, ok in zip(texts, classes, same) if cc == c and not ok] for c in dict.fromkeys(classes)}
    report = "; ".join(f"{c} {per[c]}/{classes.count(c)}" for c in dict.fromkeys(classes))
    assert not regressed, f"strings that were identical to the authors' renderer now differ: {regressed[:20]}"
    assert sum(same) >= known["identical"], f"identical {sum(same)} < committed {known['identical']}: {report}"
    still = {c: ts[:3] for c, ts in failing.items() if ts}
    print(f"identical {sum(same)}/{len(texts)}: {report}\nstill differing (first 3 per class): {still}")
