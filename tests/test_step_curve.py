"""The stage-2 step curve through `pixar train --stage 2`: readability and accuracy of a fixed prompt set of the
official protocol at step 0, every adv.eval_every steps and the end, in metrics.jsonl; the plot."""
import json

import pytest
import torch
from click.testing import CliRunner

from harness.eval.step_curve import curve_evaluator, curve_spec, plot_curve, read_curve
from pixar.checkpoint.store import latest_checkpoint, save_checkpoint
from pixar.model.transformer import load_model
from pixar.config import PixarConfig, preset_path
from pixar.model.transformer import Pixar


def test_pixar_train_stage2_records_the_step_curve(data_dir, tmp_path):
    from harness.app import main

    corpus = tmp_path / "c.txt"
    corpus.write_text(" ".join(f"Mary went to the kitchen and John moved to room {i}." for i in range(300)))
    cfg = PixarConfig.from_yaml(preset_path("pixar-micro"))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        init = save_checkpoint(tmp_path / "init", Pixar(cfg.model), cfg, meta={"step": 0})
    sets = [f"train.data=[{corpus}]", "adv.steps=3", "adv.batch_size=2", "adv.save_every=0", "adv.sample_every=0",
            "adv.eval_every=2", "adv.eval_prompts=3", "adv.eval_task=babi", "adv.eval_context_cap=20"]
    out = tmp_path / "s2"
    r = CliRunner().invoke(main, ["train", "--stage", "2", "--init", str(init), "--config", "pixar-micro", "--out",
                                  str(out), "--device", "cpu", *sum((["--set", x] for x in sets), [])])
    assert r.exit_code == 0, r.output
    curve = read_curve(out)
    assert [p["step"] for p in curve] == [0, 2, 3] and all(p["n"] == 3 for p in curve)
    assert all(0 <= p["readability"] <= 1 and p["acc"] in (0, 1 / 3, 2 / 3, 1) for p in curve)
    meta = json.loads((out / "curve.json").read_text())
    assert meta["protocol"] == "babi:paper[glyph]+cap20" and meta["n"] == 3
    # the last point is the final generator scored again on the same prompts
    cfg2 = PixarConfig.from_yaml(preset_path("pixar-micro"), [x for x in sets])
    gen, _ = load_model(latest_checkpoint(out))
    again = curve_evaluator(cfg2, tmp_path / "again", seed=cfg2.train.seed)(gen.eval())
    assert again["readability"] == pytest.approx(curve[-1]["readability"]) and again["acc"] == pytest.approx(curve[-1]["acc"])
    png = plot_curve({"micro": out}, tmp_path / "curve.png", "step curve")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_curve_spec_is_the_official_protocol_read_by_the_glyph_decoder():
    cfg = PixarConfig.from_yaml(preset_path("pixar-micro"), ["adv.eval_task=lambada", "adv.eval_context_cap=0"])
    spec = curve_spec(cfg)
    assert spec.label == "lambada:paper[glyph]" and spec.engines == ("glyph",) and spec.scorer == "notebook"
