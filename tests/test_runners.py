"""The model-runner layer and the results schema: registry, pixel transforms seeded per example (independent
of batch size), the paper protocol's scoring rules, Wilson intervals, portable paths, summary.json round trip."""
from __future__ import annotations

import json
import math
import os

import numpy as np
import pandas as pd
import pytest
import torch

from attacks.seeded import PixelAttack
from harness.results.schema import (Metric, ResultsError, portable, proportion, wilson_bounds, read_summary,
                             write_summary)
from harness.models import (CLASSIFIER_RUNNERS, LM_RUNNERS, GPT2ClassifierRunner, GPT2Runner, OcrReads,
                             PixarClassifierRunner, PixarRunner, TextReads, model_specs)

PROMPTS = ["Mary went to the kitchen. Where is Mary? |", "the cat sat on the", "a", "John took the apple. |",
           "Sandra journeyed to the garden and then to the office", "x y z", "Daniel moved to the hallway."]


@pytest.fixture(scope="module")
def runner(micro_checkpoint):
    torch.set_num_threads(1)
    return PixarRunner.load(str(micro_checkpoint), batch_size=7)


def test_registry_maps_kinds_to_runner_classes():
    assert LM_RUNNERS == {"pixar": PixarRunner, "gpt2": GPT2Runner}
    assert CLASSIFIER_RUNNERS == {"pixar": PixarClassifierRunner, "gpt2": GPT2ClassifierRunner}
    assert model_specs("ckpt", ["gpt2", "dir"]) == [("pixar", "ckpt"), ("gpt2", "gpt2"), ("gpt2", "dir")]
    assert PixarRunner.supports_pixels and not GPT2Runner.supports_pixels


def test_pixel_transform_is_seeded_per_example_not_per_batch(runner):
    attack = PixelAttack("salt-pepper", 0.1, seed=5)
    budgets = [runner.P - 5] * len(PROMPTS)
    one = runner.context_positions(PROMPTS, budgets, chunk=1, transform=attack)
    seven = runner.context_positions(PROMPTS, budgets, chunk=7, transform=attack)
    clean = runner.context_positions(PROMPTS, budgets)
    for a, b, c in zip(one, seven, clean):
        assert torch.equal(a, b) and a.shape == c.shape and not torch.equal(a, c)
    # the perturbation follows the example id, not its place in the batch
    order = [3, 0, 6]
    moved = runner.context_positions([PROMPTS[i] for i in order], [budgets[i] for i in order], transform=attack,
                                     ids=order)
    assert all(torch.equal(m, one[i]) for m, i in zip(moved, order))
    other = runner.context_positions(PROMPTS[:1], budgets[:1], transform=PixelAttack("salt-pepper", 0.1, seed=6))
    assert not torch.equal(other[0], one[0])
    # end to end: the same reads at batch size 1 and 7
    small = PixarRunner(runner.model, runner.config, batch_size=1)
    assert small.first_words(PROMPTS, 3, attack) == runner.first_words(PROMPTS, 3, attack)


def test_classifier_pixel_transform_is_batch_independent():
    from harness.tasks.glue import get_task
    from harness.models.glue_classifiers import PixarClassifier, classifier_info
    from pixar.config import PixarConfig, preset_path

    spec = get_task("sst2")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = PixarClassifier(PixarConfig.from_yaml(preset_path("pixar-micro")), 2)
    texts = [p.rstrip(" |") for p in PROMPTS]
    clf = PixarClassifierRunner(model.eval(), "px", classifier_info(model, spec))
    attack = PixelAttack("salt-pepper", 0.3, seed=1)
    p1 = clf.predict_proba(texts, attack, batch_size=1)
    p7 = clf.predict_proba(texts, attack, batch_size=7)
    assert p1.shape == (7, 2) and np.allclose(p1, p7, atol=1e-5) and np.allclose(p1.sum(1), 1)
    assert not np.allclose(p1, clf.predict_proba(texts), atol=1e-4)  # the transform reached the model
    assert np.allclose(clf.predict_proba(texts, PixelAttack("salt-pepper", 0.0, seed=1)), clf.predict_proba(texts))


def test_token_models_refuse_pixel_transforms():
    gpt = GPT2Runner(None, None, name="gpt2:x")
    with pytest.raises(TypeError, match="gpt2:x: a pixel transform needs a pixel model"):
        gpt.first_words(["a"], 5, PixelAttack("shift", 1.0))


def test_reads_carry_their_scoring_rule():
    ocr_reads = OcrReads((("glyph", "Kitchen."), ("tesseract", "qarden")))
    assert ocr_reads.correct("garden") and not ocr_reads.correct("kitchen")  # any engine; case-sensitive; g->q
    assert ocr_reads.to_json() == {"reads": {"glyph": "Kitchen.", "tesseract": "qarden"}, "rule": "ocr"}
    assert TextReads(" Kitchen is").correct("kitchen") and not TextReads("").correct("kitchen")
    assert TextReads("x").to_json() == {"reads": {"text": "x"}, "rule": "ci"}


def test_paper_eval_rows_and_metrics_agree(runner):
    examples = [{"idx": i, "prompt": p, "target": "garden"} for i, p in enumerate(PROMPTS[:3])]
    metrics, rows = runner.paper_eval(examples, 3, None)
    assert [r["idx"] for r in rows] == [0, 1, 2] and set(metrics) == {"paper_acc_glyph"}
    assert metrics["paper_acc_glyph"] == sum(r["correct"]["glyph"] for r in rows) / 3
    reads = runner.first_words([e["prompt"] for e in examples], 3)
    assert [r["read"] for r in rows] == [x.texts for x in reads]


def test_wilson_interval_known_values():
    lo, hi = wilson_bounds(5, 10)
    assert lo == pytest.approx(0.236593, abs=1e-5) and hi == pytest.approx(0.763407, abs=1e-5)
    assert wilson_bounds(0, 4)[0] == 0.0 and wilson_bounds(4, 4)[1] == 1.0
    assert all(math.isnan(x) for x in wilson_bounds(0, 0))
    m = proportion("t", "m", "paper", "paper_acc_glyph", 0.75, 4)
    assert m.interval == "wilson95" and m.ci_low < 0.75 < m.ci_high


def test_portable_paths(tmp_path):
    data, run = tmp_path / "data", tmp_path / "results" / "run"
    obj = {"a": str(data / "glue" / "dev.tsv"), "b": [str(tmp_path / "runs" / "ckpt")], "c": "gpt2",
           "d": f"checkpoint={data}/x,ocr=glyph", "e": str(run / "tasks" / "t.yaml")}
    out = portable(obj, run, data)
    assert out == {"a": "$PIXAR_DATA/glue/dev.tsv", "b": ["../../runs/ckpt"], "c": "gpt2",
                   "d": "checkpoint=$PIXAR_DATA/x,ocr=glyph", "e": "tasks/t.yaml"}


def test_summary_round_trip_and_collect(tmp_path):
    from harness.results.tables import collect

    run = tmp_path / "res" / "a"
    metrics = [proportion("lambada", "pixar:x", "paper", "paper_acc_glyph", 0.5, 10),
               Metric("lambada", "pixar:x", "lm-eval", "lm_eval_pixel_nll", 150.0, 10)]
    s = write_summary(run, command="bench lambada", protocol={"paper_acc_glyph": "p", "lm_eval_pixel_nll": "q",
                                                              "unused": "r"},
                      config={"checkpoint": str(tmp_path / "ck")}, seed=3, data={"source": "hf:x"}, models=[],
                      files=[run / "predictions.jsonl"], metrics=metrics)
    assert s["protocol"] == {"paper_acc_glyph": "p", "lm_eval_pixel_nll": "q"} and s["files"] == ["predictions.jsonl"]
    text = (run / "summary.json").read_text()
    assert str(tmp_path) not in text and json.loads(text)["config"]["checkpoint"] == "../../ck"
    assert read_summary(run / "summary.json")["metrics"][0]["ci_low"] == pytest.approx(0.236593, abs=1e-5)
    df = collect(tmp_path / "res")
    assert df["run"].tolist() == ["a"] and df["n"].tolist() == [10]
    # CSV-ready numeric bounds; the Markdown shows them as one interval column
    assert df["paper: first-word acc (glyph read-back) ci_low"].round(4).tolist() == [0.2366]
    assert df["paper: first-word acc (glyph read-back) ci_high"].round(4).tolist() == [0.7634]
    from harness.results.tables import to_markdown, write_table

    assert "| paper: first-word acc (glyph read-back) 95% CI |" in to_markdown(df) and "[0.2366, 0.7634]" in to_markdown(df)
    _, csv = write_table(df, tmp_path / "t")
    back = pd.read_csv(csv)
    assert back["paper: first-word acc (glyph read-back) ci_low"].dtype.kind == "f"
    assert df["lm-eval: pixel NLL per target (nats)"].tolist() == [150.0]
    with pytest.raises(ResultsError, match="no protocol description"):
        write_summary(run, command="x", protocol={}, config={}, seed=0, data={}, models=[], files=[], metrics=metrics)
    (tmp_path / "res" / "old").mkdir()
    (tmp_path / "res" / "old" / "summary.json").write_text(json.dumps({"rows": []}))
    with pytest.raises(ResultsError, match="old/summary.json: not a harness results summary"):
        collect(tmp_path / "res")


def test_bench_writes_the_schema_with_no_absolute_path(micro_checkpoint, data_dir, tmp_path):
    from harness.eval.bench import run_lambada

    out = tmp_path / "bench"
    s = run_lambada(str(micro_checkpoint), [], out, limit=2, batch_size=4)
    assert s["schema_version"] == 1 and s["command"] == "bench lambada" and s["seed"] == 0
    got = {(m["protocol"], m["metric"]) for m in s["metrics"]}
    # the micro model's 16 positions cut both LAMBADA prompts: the label says so, with the room, and the count
    fit = s["fits"][0]
    assert fit["protocol"] == "lambada:paper" and fit["cut"] == 2 and fit["n"] == 2 and fit["share"] == 1.0
    label = f"lambada:paper+fit{fit['budget']}"
    assert fit["label"] == label and fit["unit"] == "positions"
    assert {(label, "acc_glyph"), (label, "acc_union"), ("lm-eval", "lm_eval_pixel_nll"),
            ("lm-eval", "lm_eval_acc_ocr")} <= got and ("lambada:paper", "acc_glyph") not in got
    assert all(m["n"] == 2 and m["model"].startswith(("pixar:", "reference: ")) for m in s["metrics"])
    refs = {m["model"] for m in s["metrics"] if m["metric"] == "acc_reference"}
    assert refs == {"reference: majority class", "reference: uniform chance", "reference: context word"}
    assert s["diversity"][0]["protocol"] == label and s["diversity"][0]["n"] == 2
    assert any(f.startswith("predictions-") and "lambada_paper_fit" in f for f in s["files"])
    acc = [m for m in s["metrics"] if m["metric"] == "acc_union"][0]
    assert (acc["ci_low"], acc["ci_high"]) == pytest.approx(wilson_bounds(round(acc["value"] * 2), 2))
    assert {m["metric"] for m in s["metrics"]} == set(s["protocol"])
    assert s["protocol_specs"]["lambada:paper"]["scorer"] == "notebook" and "lambada.ipynb" in s["protocol_specs"]["lambada:paper"]["official"]
    assert all((out / f).is_file() for f in s["files"]) and s["data"]["lm-eval"]["source"].startswith("$PIXAR_DATA/")
    assert s["data"]["protocols"]["lambada:paper"]["source"] == "lambada/lambada_test_plain_text.txt"
    for f in ["summary.json", *[f for f in s["files"] if f.endswith(".json")]]:
        text = (out / f).read_text()
        assert str(tmp_path) not in text and str(data_dir) not in text and os.getcwd() + "/" not in text, f
    assert "95% CI" in (out / "table.md").read_text()
