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


LOCATIONS = ["bathroom", "bedroom", "garden", "hallway", "kitchen", "office"]


def _predictions(path: Path, model: str, correct: dict, answer=None) -> None:
    """An attack run's predictions (+ its perturbed-input file): example i's gold is LOCATIONS[i % 6]; a right
    answer is the gold, a wrong one the next location (or `answer(i)` when given); the clean prompt mentions the
    gold last only for examples 0-9 (so the last-location rule scores 10%)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    gold = lambda i: LOCATIONS[i % 6]  # noqa: E731
    rows = []
    for (a, r, i), c in correct.items():
        said = gold(i) if c else (answer(i) if answer else LOCATIONS[(i + 1) % 6])
        rows.append({"attack": a, "rate": r, "example": i, "model": model, "correct": c, "gold": gold(i),
                     "prediction": {"reads": {"text": f" {said}"}, "rule": "ci"}})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    n = 1 + max(i for _, _, i in correct)
    prompt = lambda i: f"Mary went to the {gold(i) if i < 10 else LOCATIONS[(i + 2) % 6]}. Where is Mary? |"  # noqa: E731
    lines = ["attack,rate,example,original,perturbed"] + [f"swap,0.0,{i},{prompt(i)},{prompt(i)}" for i in range(n)]
    (path.parent / "babi-qa1_perturbed.csv").write_text("\n".join(lines) + "\n")


def test_demo_table_from_the_two_attack_runs(tmp_path):
    # PIXAR 50 -> 34 of 100, GPT-2 40 -> 31 of 100 on the same examples: drops 16 and 9 points, so the drop
    # difference (PIXAR drop - GPT-2 drop) is +7.0: PIXAR lost more
    n = 100
    px = {("swap", 0.0, i): i < 50 for i in range(n)} | {("swap", 0.3, i): i < 34 for i in range(n)}
    gp = {("swap", 0.0, i): 30 <= i < 70 for i in range(n)} | {("swap", 0.3, i): 30 <= i < 61 for i in range(n)}
    _predictions(tmp_path / "attack-pixar" / "babi-qa1_predictions.jsonl", "pixar", px)
    _predictions(tmp_path / "attack-gpt2" / "babi-qa1_predictions.jsonl", "gpt2", gp)
    (tmp_path / "matching.json").write_text(json.dumps(MATCHING))
    md, rows = demo_table(tmp_path)
    clean, hit = rows
    assert (clean["rate"], hit["rate"], hit["n"]) == (0.0, 0.3, n)
    assert (clean["pixar"]["estimate"], hit["pixar"]["estimate"]) == (0.5, 0.34)
    assert (clean["gpt2"]["estimate"], hit["gpt2"]["estimate"]) == (0.4, 0.31)
    assert clean["pixar"]["method"] == "wilson" and not clean["pixar_at_chance"] and not clean["gpt2_at_chance"]
    assert hit["drop_pixar"]["estimate"] == pytest.approx(0.16) and hit["drop_gpt2"]["estimate"] == pytest.approx(0.09)
    assert hit["drop_diff"]["estimate"] == pytest.approx(0.07) and hit["drop_diff"]["method"] == "mover"
    assert hit["drop_diff"]["low"] < 0.07 < hit["drop_diff"]["high"]
    assert clean["diff"]["estimate"] == pytest.approx(0.1) and clean["diff"]["method"] == "newcombe-paired"
    assert "drop_diff" not in clean
    assert "PIXAR drop - GPT-2 drop (drop = clean - attacked; > 0: PIXAR lost more" in md
    attacked = next(line for line in md.splitlines() if line.startswith("| swap | 0.3 | 100 |"))
    assert attacked.split(" | ")[-1].startswith("7.0 [")  # the drop column, in points
    assert "| none (clean) | 0 | 100 | 50.0 [40.4, 59.6] | 40.0 [" in md
    # reference rows on the same clean questions: majority class 17/100, uniform, last location 10/100
    assert "| reference: majority class (clean) |  | 100 | 17.0 [" in md
    assert "| reference: last location (clean) |  | 100 | 10.0 [" in md
    assert "| reference: uniform chance (clean) |" in md
    assert "clears the best reference row (majority class, 17.0%)" in md
    assert "800 steps x 8" in md and "38 steps x 8" in md
    with pytest.raises(ValueError, match="different"):
        comparison_rows(px, {k: v for k, v in gp.items() if k[2] != 3})


def test_demo_table_marks_a_collapsed_model_at_chance(tmp_path):
    """GPT-2 answering 'hallway' to every question (the issue's demo) is at chance: marked, and every comparison
    that involves it reads n/a (at chance), never a number."""
    n = 120
    px = {("swap", 0.0, i): i < 70 for i in range(n)} | {("swap", 0.3, i): i < 50 for i in range(n)}
    gp = {(a, r, i): LOCATIONS[i % 6] == "hallway" for a, r, i in px}
    _predictions(tmp_path / "attack-pixar" / "babi-qa1_predictions.jsonl", "pixar", px)
    _predictions(tmp_path / "attack-gpt2" / "babi-qa1_predictions.jsonl", "gpt2", gp, answer=lambda i: "hallway")
    (tmp_path / "matching.json").write_text(json.dumps(MATCHING))
    md, (clean, hit) = demo_table(tmp_path)
    assert clean["gpt2_at_chance"] and not clean["pixar_at_chance"]
    assert clean["diff"] == hit["diff"] == hit["drop_diff"] == hit["drop_gpt2"] == {"withheld": "n/a (at chance)"}
    assert hit["drop_pixar"]["estimate"] == pytest.approx(20 / 120)
    clean_line = next(line for line in md.splitlines() if line.startswith("| none (clean) |"))
    assert "**at chance**" in clean_line and clean_line.count("n/a (at chance)") == 1
    assert "| 1 (hallway 100%) |" in clean_line  # GPT-2's answer diversity: one distinct answer
    attacked = next(line for line in md.splitlines() if line.startswith("| swap | 0.3 |"))
    assert attacked.rstrip(" |").endswith("n/a (at chance) | n/a (at chance)")
    assert "GPT-2 answers 16.7%" in md and "is at chance" in md and "withheld" in md


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


