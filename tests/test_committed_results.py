"""The committed results/ folder: data only, of the one schema, and readable by the report that cites it."""
from pathlib import Path

import pytest

from harness.results.report import render_findings, summaries

RESULTS = Path(__file__).resolve().parents[1] / "results"


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


def test_committed_findings_resolve_against_the_committed_summaries():
    findings = RESULTS / "findings.md"
    if not findings.exists():
        pytest.skip("no committed findings")
    text = render_findings(findings.read_text(), RESULTS, summaries(RESULTS))
    assert "{{" not in text and "%" in text
