"""demo / reproduce orchestration and the report: every orchestrated command parses against the real CLI,
steps are skipped once done and recorded with their command, the report quotes the files it came from."""
import json
from pathlib import Path

import click
import pytest

from harness.study.demo import demo_steps, demo_table, run_chains, write_generated_data
from harness.robustness.suite import comparison_rows
from harness.study.reproduce import reproduce_steps
from harness.study.steps import Step, run_steps
from harness.app import main as pixar_main


def _parse(args: list[str]) -> None:
    """Resolve nested subcommands and parse the options (no execution): unknown options raise."""
    ctx = click.Context(pixar_main)
    cmd, rest = pixar_main, list(args)
    while isinstance(cmd, click.Group):
        name, rest = rest[0], rest[1:]
        sub = cmd.get_command(ctx, name)
        assert sub is not None, f"unknown command {name!r} in {args}"
        cmd = sub
    cmd.make_context(cmd.name, rest, resilient_parsing=False)


def test_every_reproduce_and_demo_command_parses(tmp_path):
    steps = reproduce_steps(tmp_path / "runs", tmp_path / "results", seed=0)
    names = [s.name for s in steps]
    assert len(names) == len(set(names)) and {"stage 1", "stage 2", "gpt2", "glue", "attack bAbI PIXAR 3000"} <= set(names)
    demo, _ = demo_steps(tmp_path / "demo", data_dir=None, seed=0, matching=MATCHING)
    for st in steps + demo:
        _parse(st.args)
    px, gp = (next(s for s in demo if s.name.startswith(k)) for k in ("pixar fine-tuned", "gpt2 fine-tuned"))
    for st, n in ((px, "800"), (gp, "38")):  # the matched step counts reach the commands; all else is shared
        assert st.args[st.args.index("--finetune-steps") + 1] == n

    def shared(args):  # drop the per-model options and their values
        own = {"--checkpoint", "--baseline", "--out", "--finetune-steps", "--finetune-eval-every",
               "--finetune-min-steps"}  # cap/EVALS, cap x MIN_FRACTION
        return [a for i, a in enumerate(args) if a not in own and (i == 0 or args[i - 1] not in own)]

    assert shared(px.args) == shared(gp.args) and "--seed" in shared(px.args) and "--limit" in shared(px.args)
    assert "pixar stage 2" not in {s.name for s in demo}  # no stage 2 by default: PIXAR is attacked from stage 1
    assert px.args[px.args.index("--checkpoint") + 1] == str(tmp_path / "demo" / "pixar-stage1")


def test_demo_pretrains_on_generated_stories_and_fine_tunes_on_the_data_dir(tmp_path):
    demo, _ = demo_steps(tmp_path, data_dir="/some/data", seed=0, matching=MATCHING)
    by = {s.name: s.args for s in demo}
    stories = f"train.data=[{tmp_path / 'stories.txt'}]"
    for name in ("pixar stage 1", "gpt2 same pretraining FLOPs"):
        assert stories in by[name] and by[name][by[name].index("--data-dir") + 1] == "/some/data"
    assert "train.steps=25" in by["gpt2 same pretraining FLOPs"]  # the matched pretraining steps reach GPT-2
    for name in ("pixar fine-tuned + attacked", "gpt2 fine-tuned + attacked (same FLOPs)"):
        assert by[name][by[name].index("--data-dir") + 1] == "/some/data" and "--babi-dir" not in by[name]


MATCHING = {"rule": "6 x params x batch x length",
            "pretraining": {"pixar_steps": 400, "pixar_flops": 1.13e12, "gpt2_steps": 25, "gpt2_flops": 1.12e12},
            "finetuning": {"pixar_steps": 800, "pixar_batch": 8, "pixar_flops": 1.13e12, "gpt2_steps": 38,
                           "gpt2_batch": 8, "gpt2_flops": 1.16e12, "gpt2_mean_padded_tokens": 92.8}}


def _predictions(path: Path, model: str, correct: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{"attack": a, "rate": r, "example": i, "model": model, "prediction": "x", "gold": "y", "correct": c}
            for (a, r, i), c in correct.items()]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_demo_table_from_the_two_attack_runs(tmp_path):
    n = 40  # PIXAR: 20/40 clean, 18/40 attacked; GPT-2: 20/40 clean, 2/40 attacked (same examples)
    px = {("swap", 0.0, i): i < 20 for i in range(n)} | {("swap", 0.3, i): i < 18 for i in range(n)}
    gp = {("swap", 0.0, i): i >= 20 for i in range(n)} | {("swap", 0.3, i): i in (20, 21) for i in range(n)}
    _predictions(tmp_path / "attack-pixar" / "babi-qa1_predictions.jsonl", "pixar", px)
    _predictions(tmp_path / "attack-gpt2" / "babi-qa1_predictions.jsonl", "gpt2", gp)
    (tmp_path / "matching.json").write_text(json.dumps(MATCHING))
    md, rows = demo_table(tmp_path)
    clean, hit = rows
    assert (clean["rate"], hit["rate"], hit["n"]) == (0.0, 0.3, n)
    assert clean["pixar"]["estimate"] == 0.5 and hit["pixar"]["estimate"] == 0.45 and hit["gpt2"]["estimate"] == 0.05
    assert clean["pixar"]["method"] == "wilson" and round(clean["pixar"]["low"], 3) == 0.352  # Wilson 20/40
    assert clean["diff"]["estimate"] == 0.0 and clean["diff"]["low"] < 0 < clean["diff"]["high"]  # disjoint but equal
    assert abs(hit["diff"]["estimate"] - 0.40) < 1e-12 and hit["diff"]["low"] > 0  # attacked: PIXAR ahead
    # drops: PIXAR -0.05, GPT-2 -0.45 -> drop difference +0.40, paired over the same examples
    assert abs(hit["drop_diff"]["estimate"] - 0.40) < 1e-12 and hit["drop_diff"]["low"] > 0
    assert "drop_diff" not in clean
    assert "| none (clean) | 0 | 40 | 50.0 [35.2, 64.8] | 50.0 [35.2, 64.8] |" in md
    assert "| swap | 0.3 | 40 | 45.0 [" in md and "800 steps x 8" in md and "38 steps x 8" in md
    with pytest.raises(ValueError, match="different"):
        comparison_rows(px, {k: v for k, v in gp.items() if k[2] != 3})


def test_generated_demo_data_is_babi_format(tmp_path):
    corpus = write_generated_data(tmp_path, seed=0)
    text = corpus.read_text()
    assert "Where is" in text and " | " in text
    lines = (tmp_path / "babi" / "qa1_single-supporting-fact_train.txt").read_text().splitlines()
    assert lines[0].startswith("1 ") and any("\t" in ln for ln in lines)


def test_run_chains_runs_both_chains_and_names_a_failed_one(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    a, b = out / "a.png", out / "b.png"
    steps = [Step("pixar render", ["render", "hello", "-o", str(a)], str(a)),
             Step("gpt2 render", ["render", "world", "-o", str(b)], str(b))]
    recs = run_chains(steps, out, force=False)
    assert a.exists() and b.exists() and {r["name"] for r in recs} == {"pixar render", "gpt2 render"}
    assert (out / "pixar.log").exists() and (out / "gpt2.log").exists()
    bad = [steps[0], Step("gpt2 bad", ["generate", "--checkpoint", str(tmp_path / "none"), "p", "-o",
                                       str(tmp_path / "y.png")], str(tmp_path / "y.png"))]
    with pytest.raises(click.ClickException, match="gpt2 chain failed"):
        run_chains(bad, out, force=False)


def test_run_steps_records_and_skips(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    png = out / "x.png"
    steps = [Step("render", ["render", "hello", "-o", str(png)], str(png))]
    recs = run_steps(steps, out)
    assert png.exists() and recs[0]["name"] == "render" and recs[0]["command"].startswith("pixar render hello")
    first = json.loads((out / "steps.json").read_text())[0]["finished"]
    png.write_bytes(b"kept")  # done marker exists: the step is skipped, the file untouched
    run_steps(steps, out)
    assert png.read_bytes() == b"kept" and json.loads((out / "steps.json").read_text())[0]["finished"] == first
    with pytest.raises(click.ClickException, match="step 'bad' failed"):
        run_steps([Step("bad", ["generate", "--checkpoint", str(tmp_path / "none"), "p", "-o", str(tmp_path / "y.png")],
                        str(tmp_path / "y.png"))], out)


