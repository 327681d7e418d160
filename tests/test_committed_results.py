"""The committed results/ folder: data only, of the one schema, and readable by the report that cites it."""
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from harness.results.report import render_findings, summaries

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"


def test_committed_results_are_data_of_the_current_schema():
    if not any(RESULTS.rglob("summary.json")):
        pytest.skip("no committed study results")
    sums = summaries(RESULTS)  # raises on any summary of an older format
    assert all(s["metrics"] for s in sums.values())
    for path in RESULTS.rglob("*"):
        assert path.suffix != ".py", f"{path}: results/ holds no code"
        if path.is_file() and path.suffix in (".json", ".jsonl", ".md", ".csv", ".txt"):
            text = path.read_text(encoding="utf-8", errors="replace")
            for prefix in ("/work/", "/root/", "/home/", "/tmp/"):
                assert prefix not in text, f"{path}: machine path {prefix!r}"
            assert "<function " not in text, f"{path}: an object repr leaked into a result file"


def test_committed_findings_resolve_against_the_committed_summaries():
    findings = RESULTS / "findings.md"
    if not findings.exists():
        pytest.skip("no committed findings")
    from harness.study.round_report import sections

    sums = summaries(RESULTS)
    _, values = sections(RESULTS, sums, figures=False) if (RESULTS / "steps.json").exists() else ([], {})
    text = render_findings(findings.read_text(), RESULTS, sums, values)
    assert "{{" not in text and "%" in text


def test_step_records_name_their_command_and_cost():
    path = RESULTS / "steps.json"
    if not path.exists():
        pytest.skip("no step records")
    records = json.loads(path.read_text())
    assert records and all(r["command"].startswith("pixar ") and r["seconds"] > 0 and r["name"] for r in records)
    assert len({r["name"] for r in records}) == len(records)


def test_glue_results_have_both_models_intervals_and_the_majority_row():
    sums = summaries(RESULTS)
    glue = {w: s for w, s in sums.items() if w.startswith(("glue/", "glue-sst2-long/"))}
    if not glue:
        pytest.skip("no committed GLUE results")
    for where, s in glue.items():
        kinds = {m["name"]: m["kind"] for m in s["models"]}
        assert set(kinds.values()) == {"pixar", "gpt2"}, where
        tasks = {m["task"] for m in s["metrics"]}
        for task in tasks:
            rows = [m for m in s["metrics"] if m["task"] == task]
            assert {kinds.get(m["model"], m["model"]) for m in rows} >= {"pixar", "gpt2"}, (where, task)
            for m in rows:
                if m["metric"] in ("accuracy", "f1", "mcc", "pearson"):
                    assert m["ci_low"] <= m["value"] <= m["ci_high"], (where, task, m["model"], m["metric"])
            if task != "stsb":
                assert any(m["model"].startswith("reference: majority") for m in rows), (where, task)
    if "glue/seed0" in glue:
        assert {m["task"] for m in glue["glue/seed0"]["metrics"]} >= {"sst2", "cola", "mrpc", "stsb", "rte"}


def test_attack_tables_carry_numeric_intervals():
    tables = [p for p in RESULTS.glob("attack/*/*.csv") if "_perturbed" not in p.name]
    if not tables:
        pytest.skip("no committed attack tables")
    for path in tables:
        df = pd.read_csv(path)
        if "accuracy" in df.columns and "rate" in df.columns:  # a suite table
            assert pd.api.types.is_float_dtype(df["ci_low"]) and pd.api.types.is_float_dtype(df["ci_high"]), path
            assert ((df["ci_low"] <= df["accuracy"] + 1e-12) & (df["accuracy"] <= df["ci_high"] + 1e-12)).all(), path
        if path.name == "attacks.csv":  # the figures' table, in %
            assert ((df["ci_low"] <= df["accuracy_pct"] + 0.01) & (df["accuracy_pct"] <= df["ci_high"] + 0.01)).all()


def test_attack_figures_come_from_the_committed_files(tmp_path):
    from harness.study.round_report import BADCHARS, FIGURES, SST2
    from harness.robustness.figures import write_figures

    folders = [RESULTS / SST2[k] for k in ("pixar", "gpt2")] + [RESULTS / BADCHARS[k] for k in ("pixar", "gpt2")]
    if not all((f / "summary.json").exists() for f in folders):
        pytest.skip("no committed SST-2 attack folders")
    paths = write_figures(folders, tmp_path, "SST-2, fine-tuned tiny classifiers")
    assert paths["markdown"].read_text() == (RESULTS / FIGURES / "attacks.md").read_text()
    assert {"swap", "confusable", "recipes", "attacks"} <= set(paths)
    assert all((RESULTS / FIGURES / p.name).exists() for p in paths.values())
    text = paths["markdown"].read_text()
    assert "PIXAR" in text and "GPT-2" in text and "pixar:" not in text  # short names only


def test_readme_links_point_at_files_that_exist():
    text = (ROOT / "README.md").read_text()
    links = [l for l in re.findall(r"\]\(([^)#\s]+)", text) + re.findall(r'src="([^"]+)"', text)
             if not l.startswith(("http://", "https://", "mailto:"))]
    assert links
    missing = [l for l in links if not (ROOT / l).exists()]
    assert not missing, f"README links to missing files: {missing}"
