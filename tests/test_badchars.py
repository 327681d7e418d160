"""BadCharacters (TextAttack's BadCharacters2021) through our bridge, and whether its perturbations change PIXAR's
pixels. Imports textattack (~10 s on 2 cores): the recipes cannot be exercised without it."""
import importlib.util

import numpy as np
import pytest

from pixar.config import PixarConfig, preset_path
from pixar.render.renderer import Renderer

if importlib.util.find_spec("textattack") is None:  # imported offline by the bridge, never directly
    pytest.skip("textattack is not installed", allow_module_level=True)

from harness.robustness.pixel_identity import identity, same_pixels, sampled_pairs  # noqa: E402
from harness.robustness.textattack_bridge import BADCHARS_TYPES, run_recipe  # noqa: E402

TEXTS = ["it 's a charming and often affecting journey .", "unflinchingly bleak and desperate",
         "the movie is funny", "a gorgeous , witty , seductive movie ."]


@pytest.fixture(scope="module")
def renderer():
    return Renderer(PixarConfig.from_yaml(preset_path("pixar-tiny")).render)


def test_invisible_characters_leave_pixels_unchanged(renderer):
    pairs = sampled_pairs("invisible", TEXTS, seed=0)
    assert all(a != b and len(b) == len(a) + 1 for a, b in pairs)  # one zero-width character inserted
    res = identity(renderer, pairs)
    assert (res["n"], res["identical"], res["share"]) == (4, 4, 1.0)


def test_deletion_controls_and_hex_boxes_change_pixels(renderer):
    pairs = sampled_pairs("deletions", TEXTS, seed=0)
    assert all("\x08" in b for _, b in pairs)
    assert identity(renderer, pairs)["identical"] == 0  # U+0008 is drawn as a hex box


def test_reorderings_render_as_displayed(renderer):
    # the renderer applies the bidi algorithm with explicit overrides and isolates, as Pango does: the swapped
    # pair wrapped in LRO/RLO/LRI...PDF is drawn in its displayed order, so the strip equals the clean one
    a, b = "ab", "\u202d\u2066\u202e\u2066b\u2069\u2066a\u2069\u202c\u2069\u202c"
    assert same_pixels(renderer, "x" + a, "x" + b)
    assert not same_pixels(renderer, "x" + a, "x" + "ba")
    res = identity(renderer, sampled_pairs("reorderings", TEXTS, seed=0))
    assert res["n"] == 4 and res["identical"] == 4


def test_sampling_is_seeded():
    assert sampled_pairs("reorderings", TEXTS, 3) == sampled_pairs("reorderings", TEXTS, 3)
    assert sampled_pairs("invisible", TEXTS, 3) != sampled_pairs("invisible", TEXTS, 4)


def test_badchars_recipe_targets_the_other_class_and_counts_words():
    # a "model" that flips to class 0 whenever a zero-width character is present: the invisible attack must succeed
    # on every example of class 1 and skip the examples it already gets wrong
    def proba(xs):
        return np.array([[1.0, 0.0] if any(c in x for c in "\u200b\u200c\u200d") else [0.0, 1.0] for x in xs])

    res = run_recipe("badchars-invisible", proba, [(TEXTS[2], 1), (TEXTS[0], 1), (TEXTS[1], 0)], seed=0)
    assert (res["num_succeeded"], res["num_failed"], res["num_skipped"]) == (2, 0, 1)
    assert res["attack_success_rate"] == 1.0
    ok = [r for r in res["records"] if r["status"] == "succeeded"]
    assert all(r["perturbed_output"] == 0 and r["perturbed"] != r["original"] for r in ok)
    assert res["avg_words_perturbed"] == np.mean([r["num_words_perturbed"] for r in ok])
    assert res == run_recipe("badchars-invisible", proba, [(TEXTS[2], 1), (TEXTS[0], 1), (TEXTS[1], 0)], seed=0)
    assert set(BADCHARS_TYPES) == {"badchars-invisible", "badchars-reorderings", "badchars-deletions"}
