"""Tests for the attack library in ``attacks/`` (registry, operators, suite,
TextAttack bridge). Everything runs offline on CPU; the single TextAttack test
takes ~10-15 s because ``import textattack`` is slow."""

from __future__ import annotations

import random
import re
import socket
import string
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import need_data
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from attacks import (
    ATTACKS, FAMILIES, AttackUnavailableError, available_attacks, get_attack, perturb,
    perturb_image,
)
from attacks import char_ops
from attacks.seeded import derive_seed
from harness.robustness.suite import run_suite, write_report
from attacks.visual import CONFUSABLES, HOMOGLYPHS, ZEROE_CONFUSABLES, salt_pepper, shift
from attacks.words import count_words, split_keep_whitespace

TEXT_ATTACKS = available_attacks("word") + available_attacks("char")
WORD_ATTACKS = available_attacks("word")
PIXEL_ATTACKS = available_attacks("pixel")
SENTENCE = "The quick brown fox, \"jumps\" over  the lazy dog.\n(Really!) Numbers: 12345 don't-stop"
# Ten words, every one perturbable by every word attack (len >= 5, vowels and consonants).
TEN_WORDS = "planet orange silver window garden castle pencil rocket butter marble"
FAST = settings(max_examples=40, deadline=None)


def rng(seed: int = 0) -> random.Random:
    return random.Random(seed)


# ------------------------------------------------------------------ registry

def test_registry_lists_every_attack_with_a_family():
    expected = {"swap", "delete", "insert", "substitute", "qwerty", "homoglyph", "inner-shuffle",
                "full-shuffle", "disemvowel", "truncate", "keyboard", "intrude", "segment",
                "zeroe-confusable", "confusable", "phonetic", "natural-typo", "salt-pepper",
                "shift"}
    assert set(ATTACKS) == expected
    for name, spec in ATTACKS.items():
        assert spec.name == name and spec.family in FAMILIES and spec.source and spec.severity
    assert get_attack("confusable").family == "char"
    assert get_attack("swap").family == "word"
    assert set(PIXEL_ATTACKS) == {"salt-pepper", "shift"}


def test_unknown_attack_lists_valid_names():
    with pytest.raises(ValueError, match="unknown attack 'nope'.*swap.*confusable"):
        get_attack("nope")
    with pytest.raises(ValueError):
        perturb("text", "nope", 0.5, rng())


@pytest.mark.parametrize("name", ["phonetic", "natural-typo"])
def test_unavailable_attacks_raise_clear_error(name):
    assert not ATTACKS[name].available and name not in TEXT_ATTACKS
    with pytest.raises(AttackUnavailableError, match=rf"{name}.*unavailable.*data"):
        perturb("some words here", name, 0.5, rng())


def test_wrong_input_kind_and_rate_are_rejected():
    with pytest.raises(TypeError, match="perturb_image"):
        perturb("text", "salt-pepper", 0.1, rng())
    with pytest.raises(TypeError, match="perturb\\(\\)"):
        perturb_image(np.ones((4, 4)), "swap", 0.1, rng())
    with pytest.raises(ValueError, match="rate"):
        perturb("text", "swap", 1.5, rng())


# ------------------------------------------------------- text-attack invariants

@pytest.mark.parametrize("name", TEXT_ATTACKS)
@FAST
@given(text=st.text(), seed=st.integers(0, 2**32))
def test_severity_zero_is_identity_and_any_unicode_is_safe(name, text, seed):
    assert perturb(text, name, 0.0, rng(seed)) == text
    for rate in (0.3, 1.0):
        out = perturb(text, name, rate, rng(seed))
        assert isinstance(out, str)
        if name != "segment":  # segmentation deletes spaces by design
            assert re.findall(r"\s+", out) == re.findall(r"\s+", text)


@pytest.mark.parametrize("name", TEXT_ATTACKS)
def test_same_seed_same_output_and_seeds_differ(name):
    outs = [perturb(SENTENCE, name, 0.5, rng(seed)) for seed in range(10)]
    assert outs[3] == perturb(SENTENCE, name, 0.5, rng(3))
    assert len(set(outs)) > 1
    assert all(out != SENTENCE for out in outs)


@FAST
@given(text=st.text(), rate=st.floats(0, 1), seed=st.integers(0, 2**32))
def test_swap_keeps_length_and_character_multiset(text, rate, seed):
    out = perturb(text, "swap", rate, rng(seed))
    assert len(out) == len(text) and Counter(out) == Counter(text)


@pytest.mark.parametrize("op", [char_ops.swap, char_ops.delete, char_ops.insert, char_ops.qwerty])
@FAST
@given(word=st.text(string.ascii_letters, min_size=3, max_size=12), seed=st.integers(0, 2**32))
def test_skip_first_and_last_char_are_respected(op, word, seed):
    out = op(word, rng(seed), skip_first_char=True, skip_last_char=True)
    assert out[0] == word[0] and out[-1] == word[-1]


@pytest.mark.parametrize("name", WORD_ATTACKS)
@pytest.mark.parametrize("rate,expected", [(0.05, 1), (0.5, 5), (0.7, 7), (1.0, 10)])
def test_word_rate_is_ceil_fraction_of_words(name, rate, expected):
    assert count_words(TEN_WORDS) == 10
    for seed in range(3):
        out = perturb(TEN_WORDS, name, rate, rng(seed))
        changed = sum(a != b for a, b in zip(TEN_WORDS.split(" "), out.split(" ")))
        assert changed == expected, (name, out)


def test_words_keep_whitespace_and_punctuation():
    text = "  two   spaces\n\tand (tabs), \"quotes\"!  "
    assert "".join(split_keep_whitespace(text)) == text
    out = perturb(text, "full-shuffle", 1.0, rng(1))
    assert re.findall(r"\s+", out) == re.findall(r"\s+", text)
    assert out.count("(") == 1 and "), " in out and out.count('"') == 2 and "!" in out
    assert perturb("-- ... !!", "swap", 1.0, rng()) == "-- ... !!"  # no words: untouched


def test_disemvowel_truncate_segment_examples():
    assert perturb("The weather is awful today", "disemvowel", 1.0, rng()) == "Th wthr is wfl tdy"
    assert char_ops.disemvowel("AEIOU") == "AEIOU" and char_ops.disemvowel("at") == "at"
    assert perturb("Hello, world! The end.", "truncate", 1.0, rng()) == "Hell, worl! The end."
    assert perturb("a b c", "segment", 1.0, rng()) == "abc"
    assert perturb("a\tb c\nd", "segment", 1.0, rng()) == "a\tbc\nd"
    outs = {perturb("one two three four five six", "segment", 0.5, rng(s)) for s in range(10)}
    assert len(outs) > 1 and all(o.replace(" ", "") == "onetwothreefourfivesix" for o in outs)


def test_shuffles_keep_letters_and_inner_keeps_ends():
    for seed in range(20):
        out = char_ops.inner_shuffle("perturbation", rng(seed))
        assert out != "perturbation" and out[0] == "p" and out[-1] == "n"
        assert sorted(out) == sorted("perturbation")
        assert sorted(char_ops.full_shuffle("abc", rng(seed))) == list("abc")
    assert char_ops.inner_shuffle("abc", rng()) == "abc"  # shorter than 4
    assert char_ops.inner_shuffle("baaab", rng()) == "baaab"  # nothing to shuffle


def test_keyboard_tables_and_case():
    assert set(char_ops.KEYBOARD_NEIGHBOURS["q"]) == set("12wsa")  # charNMT-noise en.key row
    assert set(char_ops.KEYBOARD_NEIGHBOURS["m"]) == set("njk,")
    assert set(char_ops.QWERTY_ADJACENCY["s"]) == set("qweadzx")  # TextAttack's dict
    for seed in range(20):
        out = char_ops.qwerty("A", rng(seed)) + char_ops.qwerty("Ab", rng(seed))
        assert out[0] == "A"  # words of length 1 are unchanged
        new = char_ops.qwerty("Ab", rng(seed))
        assert new != "Ab" and (new[0] in "QWSZX" or new[1] in "vghn")


def test_intrude_inserts_one_punctuation_mark_kind():
    for seed in range(20):
        out = char_ops.intrude("word", rng(seed), p=0.5)
        extra = [c for c in out if c in string.punctuation]
        assert out[0] == "w" and out[-1] == "d" and extra and len(set(extra)) == 1
        assert "".join(c for c in out if c not in string.punctuation) == "word"
    assert char_ops.intrude("ab", rng(), p=0.0)[1] in string.punctuation  # 2 letters: always
    assert len(char_ops.intrude("abcdef", rng(), p=1e-12)) == 7  # never loops forever


# ------------------------------------------------------------ visual tables

def test_confusable_tables_hold_single_non_ascii_characters():
    assert set(CONFUSABLES) == set(string.ascii_letters)
    for table in (CONFUSABLES, ZEROE_CONFUSABLES):
        for alts in table.values():
            assert all(len(a) == 1 and not a.isascii() and not a.isspace() for a in alts)
    assert all(len(h) == 1 and not h.isascii() for h in HOMOGLYPHS.values())


@FAST
@given(text=st.text(), seed=st.integers(0, 2**32))
def test_confusable_at_p1_replaces_every_latin_letter(text, seed):
    out = perturb(text, "confusable", 1.0, rng(seed))
    assert len(out) == len(text)
    for a, b in zip(text, out):
        if a in string.ascii_letters:
            assert not b.isascii() and not b.isspace() and b in CONFUSABLES[a]
        else:
            assert a == b


def test_zeroe_confusable_spares_spaces_and_punctuation():
    out = perturb("Hello, world 42!", "zeroe-confusable", 1.0, rng())
    assert [i for i, c in enumerate(out) if c.isascii()] == [5, 6, 12, 15]  # ", " " " "!"


def test_homoglyph_changes_exactly_one_character_per_word():
    out = perturb(TEN_WORDS, "homoglyph", 1.0, rng())
    for a, b in zip(TEN_WORDS.split(), out.split()):
        diff = [(x, y) for x, y in zip(a, b) if x != y]
        assert len(a) == len(b) and len(diff) == 1 and HOMOGLYPHS[diff[0][0]] == diff[0][1]


# ---------------------------------------------------------------- pixel attacks

def test_salt_pepper_flip_fraction_and_purity():
    image = np.ones((512, 512), dtype=np.uint8)
    image[100:200, 50:60] = 0
    before = image.copy()
    out = salt_pepper(image, 0.1, rng(0))
    assert np.array_equal(image, before) and out.dtype == np.uint8 and out.shape == image.shape
    assert abs((out != image).mean() - 0.1) < 0.005
    assert set(np.unique(out)) <= {0, 1}
    assert np.array_equal(out, salt_pepper(image, 0.1, rng(0)))
    assert not np.array_equal(out, salt_pepper(image, 0.1, rng(1)))
    assert np.array_equal(perturb_image(image, "salt-pepper", 0.0, rng()), image)
    batch = np.stack([image, image]).astype(bool)
    flipped = salt_pepper(batch, 0.5, rng(2))
    assert flipped.dtype == bool and abs((flipped != batch).mean() - 0.5) < 0.01


def test_shift_moves_ink_by_exactly_one_pixel():
    image = np.ones((8, 10), dtype=np.uint8)
    image[2:6, 4] = 0  # vertical stroke in column 4
    right = shift(image, dx=1)
    assert np.array_equal(np.argwhere(right == 0), np.argwhere(image == 0) + [0, 1])
    assert (right[:, 0] == 1).all() and image[2, 4] == 0  # white fill, input untouched
    down = shift(image, dy=1)
    assert np.array_equal(np.argwhere(down == 0), np.argwhere(image == 0) + [1, 0])
    batch = np.stack([image, image])
    assert np.array_equal(shift(batch, dx=-1)[1], shift(image, dx=-1))
    assert np.array_equal(perturb_image(image, "shift", 0, rng()), image)
    candidates = [shift(image, dx, dy) for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1))]
    out = perturb_image(image, "shift", 1, rng(5))
    assert any(np.array_equal(out, c) for c in candidates)
    with pytest.raises(ValueError):
        perturb_image(image, "shift", 0.5, rng())


@pytest.mark.parametrize("name", PIXEL_ATTACKS)
@FAST
@given(image=hnp.arrays(np.uint8, hnp.array_shapes(min_dims=2, max_dims=3, max_side=12),
                        elements=st.integers(0, 1)),
       seed=st.integers(0, 2**32))
def test_pixel_attacks_at_full_rate_do_exactly_their_operation(name, image, seed):
    """On any binary image or batch: rate 1 of salt-pepper inverts every pixel; rate 1 of shift is one of the four
    one-pixel shifts (white fill), the same one for the same seed; rate 0 is the identity; the input is untouched."""
    before = image.copy()
    out = perturb_image(image, name, 1, rng(seed))
    assert out.shape == image.shape and out.dtype == image.dtype and np.array_equal(image, before)
    if name == "salt-pepper":
        assert np.array_equal(out, 1 - image)
    else:
        candidates = [shift(image, dx, dy) for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1))]
        assert any(np.array_equal(out, c) for c in candidates)
        assert int((out == 0).sum()) <= int((image == 0).sum())  # ink only moves or falls off the edge
    assert np.array_equal(out, perturb_image(image, name, 1, rng(seed)))
    assert np.array_equal(perturb_image(image, name, 0, rng(seed)), image)


# ------------------------------------------------------------------ suite

EXAMPLES = [
    {"text": "this movie is good", "label": 1},
    {"text": "a truly good film overall", "label": 1},
    {"text": "terrible acting and a bad plot", "label": 0},
    {"text": ("the premise is good", "the hypothesis is good"), "label": 1},
]


def keyword_model(inputs):
    joined = [" ".join(x) if isinstance(x, tuple) else x for x in inputs]
    return [int("good" in t.split()) for t in joined]


def test_derive_seed_is_stable_across_processes():
    # sha256-based: pinned values, independent of PYTHONHASHSEED.
    assert derive_seed(0, "swap", 0.5, 3) == 16588956505411619977
    assert derive_seed(7, "confusable", 0.1, 0) == 7852830787537671370
    assert derive_seed(0, "swap", 1, 3) == derive_seed(0, "swap", 1.0, 3)


def test_suite_is_deterministic_and_reports(tmp_path):
    models = {"keyword": keyword_model, "constant": lambda xs: [1] * len(xs)}
    args = (EXAMPLES, ["swap", "confusable"], [0.0, 0.5, 1.0], models)
    table, perturbed = run_suite(*args, seed=13)
    table2, perturbed2 = run_suite(*args, seed=13)
    pd.testing.assert_frame_equal(table, table2)
    pd.testing.assert_frame_equal(perturbed, perturbed2)
    assert list(table.columns) == ["attack", "rate", "model", "n", "accuracy", "distinct", "top_answer", "top_share"]
    constant = table.query("model == 'constant'")
    assert constant["distinct"].eq(1).all() and constant["top_answer"].eq("1").all() and constant["top_share"].eq(1.0).all()
    assert len(table) == 2 * 3 * 2 and (table["n"] == 4).all()
    clean = table[(table["rate"] == 0) & (table["model"] == "keyword")]
    assert (clean["accuracy"] == 1.0).all()
    attacked = table.query("attack == 'confusable' and rate == 1.0 and model == 'keyword'")
    assert attacked["accuracy"].item() == 0.25  # only the negative example stays right
    assert table.query("model == 'constant'")["accuracy"].eq(0.75).all()
    pair = perturbed.query("attack == 'confusable' and rate == 1.0 and example == 3")
    pair = pair["perturbed"].item()
    assert isinstance(pair, tuple) and len(pair) == 2 and all("good" not in t for t in pair)
    # Per-example seeding: order of attacks does not change any perturbation.
    _, reordered = run_suite(EXAMPLES, ["confusable", "swap"], [0.0, 0.5, 1.0], models, seed=13)
    key = ["attack", "rate", "example"]
    pd.testing.assert_frame_equal(perturbed.sort_values(key).reset_index(drop=True),
                                  reordered.sort_values(key).reset_index(drop=True))
    _, other_seed = run_suite(*args, seed=14)
    assert not other_seed["perturbed"].equals(perturbed["perturbed"])

    paths = write_report(table, perturbed, tmp_path / "report", title="Toy robustness")
    assert all(p.exists() and p.stat().st_size > 0 for p in paths.values())
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    back = pd.read_csv(paths["csv"])
    assert len(back) == len(table) and back["ci_low"].dtype.kind == "f" and back["ci_high"].dtype.kind == "f"
    assert (back["ci_low"] <= back["accuracy"]).all() and (back["accuracy"] <= back["ci_high"]).all()
    assert len(pd.read_csv(paths["perturbed_csv"])) == len(EXAMPLES) * 2 * 3
    md = paths["markdown"].read_text(encoding="utf-8")
    assert md.startswith("# Toy robustness") and "## swap" in md and "## confusable" in md
    assert "constant answers: distinct (top, share)" in md and "| 1 (1 100%) |" in md
    from harness.results.reference import reference_rows

    refs = [r.to_dict() for r in reference_rows("sst2", [{"label": ex["label"]} for ex in EXAMPLES])]
    assert [r["name"] for r in refs] == ["majority class", "uniform chance"] and refs[0]["estimate"] == 0.75
    md = write_report(table, perturbed, tmp_path / "ref", title="Toy", references=refs)["markdown"].read_text()
    assert "| majority class | 4 | 75.0 [" in md
    # the constant model (75%, 4 examples) does not clear the majority class: marked at chance
    assert "0.7500 [0.30, 0.95] **at chance**" in md
    assert not [p for p in (tmp_path / "report").iterdir() if p.name.endswith(".tmp")]


def test_suite_queries_each_distinct_input_once_and_checks_lengths():
    seen = []

    def counting_model(inputs):
        seen.extend(inputs)
        return keyword_model(inputs)

    run_suite(EXAMPLES, ["swap", "delete"], [0.0], {"m": counting_model})
    assert len(seen) == len(EXAMPLES)  # the clean inputs are shared by both attacks
    with pytest.raises(ValueError, match="returned 0 predictions"):
        run_suite(EXAMPLES, ["swap"], [0.5], {"bad": lambda xs: []})
    with pytest.raises(ValueError, match="pixel attack"):
        run_suite(EXAMPLES, ["shift"], [1], {"m": keyword_model})


# ------------------------------------------------------------ TextAttack bridge

def test_bridge_module_does_not_import_textattack():
    code = ("import sys, attacks, attacks.seeded, harness.robustness.suite, harness.robustness.textattack_bridge as b; "
            "assert 'textattack' not in sys.modules; "
            "assert len(b.NLTK_ENGLISH_STOPWORDS) == 179 and 'the' in b.NLTK_ENGLISH_STOPWORDS")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])


def test_textattack_bridge_offline(monkeypatch):
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.setenv(var, "1")

    def no_network(*args, **kwargs):
        raise OSError("network access attempted in an offline test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    from harness.robustness import textattack_bridge as bridge
    state = random.getstate(), np.random.get_state()[1].copy()
    sentence = "The quick brown fox jumps over the lazy dog"
    ours = perturb(sentence, "swap", 0.5, rng(0))
    theirs = bridge.augment_with_textattack(sentence, "swap", 0.5, seed=0)
    for out in (ours, theirs):
        words = out.split()
        assert out != sentence and len(words) == len(sentence.split())
        assert all(Counter(a) == Counter(b) for a, b in zip(words, sentence.split()))
    assert theirs == bridge.augment_with_textattack(sentence, "swap", 0.5, seed=0)

    def predict_proba(texts):  # positive iff the exact word "good" appears
        return np.array([[0.0, 1.0] if "good" in t.split() else [1.0, 0.0] for t in texts])

    result = bridge.run_recipe("deepwordbug", predict_proba,
                               [("this movie is good", 1), ("good", 0)], seed=0, query_budget=200)
    assert result["num_succeeded"] == 1 and result["num_skipped"] == 1
    assert result["num_attacked"] == 1 and result["num_failed"] == 0
    assert result["attack_success_rate"] == 1.0 and result["avg_num_queries"] > 0
    record = result["records"][0]
    assert record["status"] == "succeeded" and "good" not in record["perturbed"].split()
    assert record["perturbed_output"] == 0 and record["num_queries"] > 0
    # Global RNGs are restored after the seeded TextAttack calls.
    assert random.getstate() == state[0] and np.array_equal(np.random.get_state()[1], state[1])
    wrapper = bridge.CallableModelWrapper(predict_proba)
    assert wrapper(["good", "bad"]).shape == (2, 2)
    with pytest.raises(ValueError, match="no TextAttack transformation"):
        bridge.textattack_transformation("confusable")


def test_pixar_confusables_all_have_glyphs_in_our_fonts():
    """A look-alike the renderer cannot draw becomes a replacement box, not a look-alike."""
    from pixar.render.renderer import Renderer

    r = Renderer()
    if r.fallback_path is None:
        need_data("GoNoto fallback font not installed")
    missing = sorted({c for alts in CONFUSABLES.values() for c in alts if r.font_for(c)[1] != c})
    assert missing == []
