"""The glyph decoder abstains where there is no text, and still reads text (pixar.read.abstention)."""
from __future__ import annotations

import numpy as np
import pytest

from harness.eval.official_scorers import SCORERS
from pixar.paths import DataNotFound
from pixar.read import calibration as cal
from pixar.read.abstention import ABSTAIN_MARK, DEFAULT_RULE, AbstentionRule, Word, abstained
from pixar.read.glyph_decoder import GlyphDecoder
from pixar.read.wordlist import Readability
from pixar.render.renderer import Renderer


@pytest.fixture(scope="module")
def renderer():
    try:
        return Renderer()
    except DataNotFound as e:
        pytest.skip(f"no font: {e}")


@pytest.fixture(scope="module")
def decoder(renderer):
    return GlyphDecoder(renderer)


def nothing_read(text: str) -> bool:
    return abstained(text) or not text


def test_clean_corpus_words_still_read(renderer, decoder):
    try:
        words = cal.corpus_words(500, seed=0)
    except DataNotFound:
        pytest.skip("PIXAR_DATA not set")
    assert len(words) == 500
    reads = decoder.decode_batch(cal.word_strips(renderer, words))
    ok = [r.replace("g", "q") == w.replace("g", "q") for r, w in zip(reads, words)]
    assert np.mean(ok) >= 0.99
    assert not any(ABSTAIN_MARK in r for r in reads)  # exact renders never abstain


@pytest.mark.parametrize("kind", [k for k in cal.NOISE_KINDS if k.startswith("random-")] + ["blank", "blotchy"])
def test_noise_and_blank_blobs_abstain(renderer, decoder, kind):
    strips = cal.noise_strips(kind, 200, seed=7)
    reads = decoder.decode_batch(strips)
    assert np.mean([nothing_read(r) for r in reads]) >= 0.95
    # the forced-choice decoder read letters in most of them: abstention is what changed
    forced = GlyphDecoder(renderer, abstain=None).decode_batch(strips[:50])
    if kind != "random-0.05":  # sparse specks: the forced decoder mostly skips them too
        assert np.mean([nothing_read(r) for r in forced]) < 0.5


def test_blob_reads_as_mark_and_scores_nothing(renderer, decoder):
    strip = np.ones((8, 60), np.uint8)
    strip[1:7, 4:40] = 0  # a solid ink block, then a clean word
    word = cal.word_strips(renderer, ["the"])[0]
    strip = np.concatenate([strip, np.ones((8, 6), np.uint8), word], axis=1)
    forced = GlyphDecoder(renderer, abstain=None).decode(strip)
    assert forced.endswith(" the") and any(c.isalpha() for c in forced.split()[0])  # letters out of a blob
    read = decoder.decode(strip)
    assert read.split() == [ABSTAIN_MARK, "the"]  # the blob abstains, the word keeps its place behind it
    vocab = frozenset({"the", "tlllll", "a"})
    for scorer in SCORERS.values():  # an abstained first word is neither readable nor correct
        scored = scorer.score({"glyph": read}, "the", vocab)
        assert scored["readable"] is False and scored["correct_union"] is False
    assert not Readability(vocab).is_readable(read)


def test_words_and_their_fit(renderer, decoder):
    strip = cal.word_strips(renderer, ["Hello world."])[0]
    parts, residual = decoder.decode_words_batch([strip])[0]
    words = [p for p in parts if isinstance(p, Word)]
    assert [w.text for w in words] == ["Hello", "world."] and residual == 0
    assert all(w.distance == 0 and w.worst == 0 and w.read for w in words)
    assert words[0].x1 <= words[1].x0 and words[1].glyphs == 6
    flipped = strip.copy()
    flipped[:, words[1].x0 - decoder.width: words[1].x1 - decoder.width] = 0  # "world." inked solid
    parts, _ = decoder.decode_words_batch([flipped])[0]
    bad = [p for p in parts if isinstance(p, Word) and not p.read]
    assert len(bad) == 1 and bad[0].distance > DEFAULT_RULE.max_distance
    assert decoder.decode(flipped) == f"Hello {ABSTAIN_MARK}"


def test_specks_and_rule_checks(decoder):
    speck = np.ones((8, 40), np.uint8)
    speck[6, 20] = 0  # one pixel: exactly a '.' of the font, but a speck
    assert GlyphDecoder(decoder.renderer, abstain=None).decode(speck) == "."
    assert decoder.decode(speck) == ABSTAIN_MARK
    assert decoder.decode(np.ones((8, 40))) == ""  # blank: nothing to read, nothing abstained
    assert abstained(f" {ABSTAIN_MARK}  {ABSTAIN_MARK}") and not abstained("") and not abstained(f"{ABSTAIN_MARK} a")
    with pytest.raises(ValueError, match="thresholds"):
        AbstentionRule(max_distance=1.5, max_glyph_mismatch=0.2)
    with pytest.raises(ValueError, match="noise kind"):
        cal.noise_strips("static", 3)


def test_calibration_sets_are_seeded(renderer):
    a, b = cal.noise_strips("smudge", 5, seed=3), cal.noise_strips("smudge", 5, seed=3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, cal.noise_strips("smudge", 5, seed=4)))
    assert all(s.shape[0] == 8 and s.shape[1] in cal.WIDTHS and s.dtype == np.uint8 for s in a)
