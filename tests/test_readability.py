"""Readability per engine and the strict variant (harness.eval.readability) through scoring, summaries and bench."""
from __future__ import annotations

import pytest

from harness.eval import bench
from harness.eval import protocols as pp
from harness.eval import readability as rd
from pixar.read.abstention import ABSTAIN_MARK

VOCAB = frozenset({"garden", "kitchen", "office", "other", "no", "aoi", "i", "the", "dont"})


@pytest.mark.parametrize("text, token, strict", [
    ("other.", "other", True), (' "Kitchen," she', "kitchen", True), ("\u201cthe\u201d", "the", True),
    ('"i have', "i", False), ("no way", "no", False), ("aoi", "aoi", True), ("don't", "don't", False),
    ("offce", "offce", False), (f"{ABSTAIN_MARK} the", "", False), ("", "", False), ("...", "", False),
    ("kitchen-office", "kitchen-office", False), ("caf\u00e9", "caf\u00e9", False),
])
def test_strict_token_and_rule(text, token, strict):
    assert rd.strict_token(text) == token
    assert rd.strict_readable(text, VOCAB) is strict


def test_rows_carry_each_engine_and_the_union_is_unchanged():
    spec = pp.get_protocol("babi", "paper")
    examples = [{"idx": i, "prompt": "p", "target": t} for i, t in enumerate(["garden", "kitchen", "office", "office"])]
    reads = {"glyph": ["no", "kitchen.", ABSTAIN_MARK, "office"], "tesseract": ["", "kitchen", "other.", "offce"]}
    rows = pp.score_rows(spec, examples, reads, VOCAB)
    assert [r["readable"] for r in rows] == [True, True, False, True]  # the paper's rule: punctuation kept
    assert [r["readable_by"]["glyph"] for r in rows] == [True, False, False, True]
    assert [r["readable_by"]["tesseract"] for r in rows] == [False, True, False, False]
    assert all(r["readable"] == any(r["readable_by"].values()) for r in rows)
    assert [r["readable_strict_by"]["glyph"] for r in rows] == [False, True, False, True]  # "no" < 3 letters
    assert [r["readable_strict_by"]["tesseract"] for r in rows] == [False, True, True, False]  # "other." stripped
    assert [r["readable_strict"] for r in rows] == [False, True, True, True]
    m = pp.summarise(spec, rows)
    assert m["readability"]["estimate"] == 0.75 and m["readability_glyph"]["estimate"] == 0.5
    assert m["readability_tesseract"]["estimate"] == 0.25 and m["readability_strict"]["estimate"] == 0.75
    assert m["readability_strict_glyph"]["estimate"] == 0.5 and m["readability_strict_tesseract"]["n"] == 4
    assert m["readability_glyph"]["low"] == pytest.approx(0.1500, abs=1e-4)  # Wilson, 2 of 4
    d = pp.paired_difference(rows, rows, "readable_by", engine="tesseract")
    assert d.estimate == 0.0
    d = pp.paired_difference(rows, rows[::-1], "readable_strict")  # matched by idx, not by order
    assert d.estimate == 0.0


def test_text_model_and_no_vocabulary():
    spec = pp.text_model_spec(pp.get_protocol("lambada", "paper"))
    examples = [{"idx": 0, "prompt": "p", "target": "other"}, {"idx": 1, "prompt": "p", "target": "x"}]
    rows = pp.score_rows(spec, examples, {"text": [" the other.", ' "I have']}, VOCAB)
    assert [r["readable"] for r in rows] == [True, False] and [r["readable_strict"] for r in rows] == [True, False]
    m = pp.summarise(spec, rows)
    assert set(k for k in m if k.startswith("readab")) == {"readability", "readability_strict"}  # one reading
    bare = pp.score_rows(spec, examples, {"text": ["the", "a"]}, None)
    assert bare[0]["readable"] is None and "readable_strict" not in bare[0]
    assert not any(k.startswith("readab") for k in pp.summarise(spec, bare))
    old = [{k: v for k, v in r.items() if k in ("idx", "readable", "correct", "correct_union")} for r in rows]
    assert rd.readability_flags(old) == {"readability": [True, False]}  # rows scored before these fields


def test_bench_metric_rows_and_notes():
    spec = pp.get_protocol("lambada", "paper")
    examples = [{"idx": i, "prompt": "p", "target": "garden"} for i in range(3)]
    rows = pp.score_rows(spec, examples, {"glyph": ["garden", "no", "x"], "tesseract": ["x", "x", "other,"]}, VOCAB)
    metrics = {m.metric: m for m in bench.protocol_metrics("lambada", "pixar", spec.label, rows)}
    assert set(metrics) == {"acc_glyph", "acc_tesseract", "acc_union", "readability", "readability_glyph",
                            "readability_tesseract", "readability_strict", "readability_strict_glyph",
                            "readability_strict_tesseract"}
    assert metrics["readability_tesseract"].value == 0.0 and metrics["readability_glyph"].value == pytest.approx(2 / 3)
    assert metrics["readability_strict"].value == pytest.approx(2 / 3)  # garden, other
    assert all(m.interval == "wilson95" and m.ci_low <= m.value <= m.ci_high and m.n == 3 for m in metrics.values())
    assert "glyph reading alone" in rd.metric_note("readability_glyph")
    assert "stricter variant" in rd.metric_note("readability_strict_tesseract")
    assert "ANY engine" in rd.metric_note("readability") and rd.metric_note("acc_glyph") is None


def test_rescore_committed_rows_reproduces_their_union(monkeypatch):
    """benchmarks/readability_by_engine.py's premise: the committed texts re-scored per engine give back every
    stored union flag (same scorer, same vocabulary)."""
    from pathlib import Path

    from pixar.paths import data_dir

    if data_dir() is None:
        pytest.skip("PIXAR_DATA not set (the paper's word list)")
    root = Path(__file__).resolve().parent.parent
    monkeypatch.syspath_prepend(str(root / "benchmarks"))
    import readability_by_engine as rbe

    runs = rbe.load_run(root / "results", "babi/stage1-all-questions", "babi:paper-all-questions[glyph]")
    pixar = next(rows for model, rows in runs.items() if model.startswith("pixar"))
    assert len(pixar) == 1000 and all(r["readable"] == r["readable_by"]["glyph"] for r in pixar)
    assert sum(r["readable"] for r in pixar) == 641  # the committed summary's 64.1%
    assert sum(r["readable_strict"] for r in pixar) == 147  # mostly 1-2 letter reads: 'n', 'ii', 'nu'
    rows, differ = rd.rescore(pixar[:3], lambda text, vocab: False, VOCAB)
    assert differ == sum(r["readable"] for r in pixar[:3]) and not any(r["readable_by"]["glyph"] for r in rows)
