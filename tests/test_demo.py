"""demo / reproduce orchestration and the report: every orchestrated command parses against the real CLI,
steps are skipped once done and recorded with their command, the report quotes the files it came from."""
import json
from pathlib import Path

import click
import pytest

from harness.demo import demo_steps, write_generated_data
from harness.reproduce import reproduce_steps
from harness.steps import Step, run_steps
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
    demo, _ = demo_steps(tmp_path / "demo", data_dir=None, seed=0)
    for st in steps + demo:
        _parse(st.args)


def test_generated_demo_data_is_babi_format(tmp_path):
    corpus = write_generated_data(tmp_path, seed=0)
    text = corpus.read_text()
    assert "Where is" in text and " | " in text
    lines = (tmp_path / "babi" / "qa1_single-supporting-fact_train.txt").read_text().splitlines()
    assert lines[0].startswith("1 ") and any("\t" in ln for ln in lines)


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


