"""The report reads only result files of the one schema: metric tables with their intervals, findings whose figures
are references resolved from the summaries, stage comparisons as paired bootstraps over prediction files."""
import gzip
import json

import pytest

from harness.results.report import ReportError, render_findings, summaries, write_report
from pixar.provenance import slug
from harness.results.schema import Metric, write_jsonl, write_summary
from harness.results.stats import paired_proportion_diff, wilson_interval
from harness.study.reproduce import comparisons, reproduce_steps


def bench_run(folder, correct: list[bool], readable: list[bool], model="pixar:tiny/step-0000200",
              protocol="lambada:paper", gz=False):
    """A bench-like result folder: one prediction file + summary.json with the Wilson metric rows."""
    folder.mkdir(parents=True)
    rows = [{"idx": i, "target": "x", "correct": {"glyph": c}, "correct_union": c, "readable": r}
            for i, (c, r) in enumerate(zip(correct, readable))]
    name = f"predictions-pixar_tiny_step-0000200-{slug(protocol)}.jsonl"
    path = write_jsonl(folder / name, rows)
    if gz:
        (folder / (name + ".gz")).write_bytes(gzip.compress(path.read_bytes()))
        path.unlink()
    n = len(rows)
    metrics = []
    for key, flags in (("acc_union", correct), ("readability", readable)):
        iv = wilson_interval(sum(flags), n)
        metrics.append(Metric("lambada", model, protocol, key, iv.estimate, n, iv.low, iv.high, "wilson95"))
    write_summary(folder, command="bench lambada", protocol={"acc_union": "union", "readability": "read"},
                  config={"limit": n}, seed=0, data={}, models=[{"name": model}], files=[folder / (name + ".gz" if gz else name)],
                  metrics=metrics)


def test_report_tables_findings_and_paired_stage_comparison(tmp_path):
    res = tmp_path / "results"
    s1 = ([True] * 2 + [False] * 18, [True] * 5 + [False] * 15)
    s2 = ([True] * 6 + [False] * 14, [True] * 12 + [False] * 8)
    bench_run(res / "lambada" / "stage1-vs-gpt2", *s1)
    bench_run(res / "lambada" / "stage2-vs-gpt2", *s2, gz=True)  # committed compressed: read all the same
    (res / "findings.md").write_text("Stage 2 reads {{lambada/stage2-vs-gpt2 | pixar | lambada:paper | readability}}, "
                                     "a change of {{diff lambada/stage2-vs-gpt2 - lambada/stage1-vs-gpt2 | lambada:paper "
                                     "| readable}}.")
    pairs = [{"label": "stage 2 - stage 1", "a": "lambada/stage2-vs-gpt2", "b": "lambada/stage1-vs-gpt2",
              "protocol": "lambada:paper"}]
    text = write_report(res, [{"name": "stage 1", "command": "pixar train --stage 1", "seconds": 120.0}], seed=0,
                        pairs=pairs, planned=["stage 1", "glue"]).read_text()
    assert "Steps of the study not run for this report (their result folders are absent): glue." in text
    iv = wilson_interval(12, 20)
    d = paired_proportion_diff(s2[1], s1[1])  # Newcombe paired interval of 0/1 flags
    assert f"Stage 2 reads 60.0% [{100 * iv.low:.1f}, {100 * iv.high:.1f}]" in text
    assert f"a change of {100 * d.estimate:+.1f} pp [{100 * d.low:+.1f}, {100 * d.high:+.1f}]" in text
    assert "| stage 2 - stage 1 | lambada:paper |" in text and "+20.0 pp" in text and "+35.0 pp" in text
    assert "`pixar train --stage 1` | 2.0 min" in text and "### `lambada/stage2-vs-gpt2`" in text
    assert "lambada:paper: acc_union 95% CI" in text  # every table carries its intervals


def test_a_reference_that_does_not_resolve_stops_the_report_with_one_line(tmp_path):
    res = tmp_path / "results"
    bench_run(res / "lambada" / "s1", [True, False], [True, True])
    sums = summaries(res)
    with pytest.raises(ReportError, match=r"0 metric rows for model 'pixar', protocol 'babi:paper'"):
        render_findings("{{lambada/s1 | pixar | babi:paper | acc_union}}", res, sums)
    with pytest.raises(ReportError, match="results/lambada/nope has no summary.json"):
        render_findings("{{lambada/nope | pixar | lambada:paper | acc_union}}", res, sums)
    with pytest.raises(ReportError, match="malformed reference"):
        render_findings("{{lambada/s1 | pixar}}", res, sums)


def test_a_summary_of_another_schema_is_refused(tmp_path):
    res = tmp_path / "results"
    (res / "old").mkdir(parents=True)
    (res / "old" / "summary.json").write_text(json.dumps({"rows": [{"kind": "pixar", "paper_acc_glyph": 0.5}]}))
    with pytest.raises(ReportError, match=r"old/summary.json: not a harness results summary"):
        write_report(res, [], seed=0)


def test_the_study_compares_what_it_runs(tmp_path):
    steps = reproduce_steps(tmp_path / "runs", tmp_path / "results", seed=0)
    outs = {st.done for st in steps}
    for pair in comparisons():
        for where in (pair["a"], pair["b"]):
            assert str(tmp_path / "results" / where / "summary.json") in outs, where
    stage2 = next(st for st in steps if st.name == "stage 2")
    assert "adv.eval_every=20" in stage2.args  # the step curve is recorded
    assert all("--seed" in st.args for st in steps if st.args[0] == "bench" and st.args[1] != "glue")


def test_report_step_curve_section_from_committed_points(tmp_path):
    """The curve section reads the committed points (results/stage2-curve/<label>.jsonl), not run folders."""
    from harness.results.report import copy_curves, curve_section

    run = tmp_path / "runs" / "s2"
    run.mkdir(parents=True)
    rows = [{"step": 0, "loss": 1.0}, {"step": 20, "curve_readability": 0.25, "curve_acc": 0.05, "curve_n": 200},
            {"step": 40, "curve_readability": 0.5, "curve_acc": 0.1, "curve_n": 200}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = tmp_path / "results"
    copy_curves(tmp_path / "runs", res, {"alpha1": "s2", "missing": "nope"})
    assert sorted(p.name for p in (res / "stage2-curve").iterdir()) == ["alpha1.jsonl"]
    lines = curve_section(res)
    assert "| step | alpha1 |" in lines and "| 20 | 25.0% / 5.0% |" in lines and "| 40 | 50.0% / 10.0% |" in lines
    assert (res / "stage2-curve" / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_robustness_section_pairs_two_attack_runs(tmp_path):
    """PIXAR and GPT-2 attacked on the same examples: reference rows, Wilson per model, the paired difference and
    the drop difference (PIXAR drop - GPT-2 drop, drop = clean - attacked), a collapsed model marked at chance."""
    from harness.results.report import robustness_section

    res = tmp_path / "results"
    places = ["bathroom", "bedroom", "garden", "hallway", "kitchen", "office"]
    n = 60  # PIXAR 54 -> 42 of 60 (drop 20 pp), GPT-2 48 -> 42 (drop 10 pp): drop difference +10.0
    flags = {"pixar": {0.0: [i < 54 for i in range(n)], 0.1: [i < 42 for i in range(n)]},
             "gpt2": {0.0: [i < 48 for i in range(n)], 0.1: [i < 42 for i in range(n)]}}
    for model, by_rate in flags.items():
        rows = [{"attack": "swap", "rate": rate, "example": i, "model": model, "correct": bool(c),
                 "gold": places[i % 6], "prediction": {"reads": {"text": places[i % 6] if c else "office"}}}
                for rate, cs in by_rate.items() for i, c in enumerate(cs)]
        write_jsonl(res / "attack" / model / "babi-qa1_predictions.jsonl", rows)
    sums = {"attack/pixar": {}, "attack/gpt2": {}}
    pair = [{"label": "toy", "pixar": "attack/pixar", "gpt2": "attack/gpt2", "file": "babi-qa1_predictions.jsonl"}]
    lines = "\n".join(robustness_section(res, sums, pair)).splitlines()
    clean = next(x for x in lines if x.startswith("| none (clean) | 0 | 60 |"))
    attacked = next(x for x in lines if x.startswith("| swap | 0.1 | 60 |"))
    assert "| 90.0 [" in clean and "| 80.0 [" in clean and "at chance" not in clean
    assert attacked.split(" | ")[-2].startswith("0.0 [")  # PIXAR - GPT-2 under attack: 42/60 - 42/60
    assert attacked.split(" | ")[-1].startswith("10.0 [")  # drops: PIXAR 20, GPT-2 10 -> PIXAR lost 10 more
    assert any(x.startswith("| reference: majority class (clean) |  | 60 | 16.7 [") for x in lines)
    assert "PIXAR drop - GPT-2 drop (drop = clean - attacked; > 0: PIXAR lost more" in "\n".join(lines)
    assert robustness_section(res, {}, [{"label": "x", "pixar": "attack/pixar", "gpt2": "attack/gpt2", "file": "f"}]) == []


def test_findings_diff_on_common_examples(tmp_path):
    res = tmp_path / "results"
    bench_run(res / "a", [True] * 4 + [False] * 6, [True] * 10)  # 10 examples
    bench_run(res / "b", [False] * 4, [False] * 4)  # the first 4 only
    sums = summaries(res)
    with pytest.raises(ReportError, match="different examples"):
        render_findings("{{diff a - b | lambada:paper | correct_union}}", res, sums)
    text = render_findings("{{diff a - b | lambada:paper | correct_union | pixar | common}}", res, sums)
    # 4/4 vs 0/4 on the same 4 examples: Newcombe's paired interval, not the bootstrap's degenerate [+100, +100]
    assert text.startswith("+100.0 pp [+") and not text.startswith("+100.0 pp [+100.0") and text.endswith("(n = 4)")


def test_exact_is_reserved_for_runs_that_cut_no_prompt(tmp_path):
    """The report writer refuses "exact"/"exactly" in a findings paragraph that cites a run which cut prompts
    (+fit label), or which does not record whether it did; a run recording zero cuts may be called exact."""
    from harness.results.report import check_exact_words, fit_lines, run_section

    res = tmp_path / "results"
    bench_run(res / "cut", [True, False], [True, True], protocol="lambada:paper+fit91")
    bench_run(res / "whole", [True, False], [True, True])
    bench_run(res / "old", [True, False], [True, True])
    for where, fits in (("cut", [{"task": "lambada", "model": "pixar:tiny/step-0000200", "protocol": "lambada:paper",
                                   "label": "lambada:paper+fit91", "budget": 91, "unit": "positions", "cut": 1,
                                   "n": 2, "share": 0.5}]),
                        ("whole", [{"task": "lambada", "model": "pixar:tiny/step-0000200", "protocol": "lambada:paper",
                                    "label": "lambada:paper", "budget": 91, "unit": "positions", "cut": 0, "n": 2,
                                    "share": 0.0}])):
        path = res / where / "summary.json"
        s = json.loads(path.read_text())
        path.write_text(json.dumps({**s, "fits": fits}))
    sums = summaries(res)
    ok = "Exactly the paper's protocol: {{whole | pixar | lambada:paper | acc_union}}.\n\n" \
         "Cut: {{cut | pixar | lambada:paper+fit91 | acc_union}}."
    check_exact_words(ok, sums)  # "exactly" cites only the run that cut nothing
    assert render_findings(ok, res, sums).startswith("Exactly the paper's protocol: 50.0% [")
    for bad, why in (("- The exact protocol: {{cut | pixar | lambada:paper+fit91 | acc_union}}.", "cut"),
                     ("- Exactly: {{old | pixar | lambada:paper | acc_union}}.", "not recorded"),
                     ("- exactly, {{diff whole - old | lambada:paper | correct_union}}", "not recorded")):
        with pytest.raises(ReportError, match=f"whose run results/.* has prompts {why}.*reserved for runs that cut no"):
            render_findings(bad, res, sums)
    assert fit_lines(sums["cut"]) == ["Prompts cut to fit the model (each keeps its end):", "",
                                      "- `lambada:paper+fit91` (pixar:tiny/step-0000200): 1 of 2 prompts (50.0%) cut "
                                      "to 91 positions", ""]
    assert fit_lines(sums["whole"])[0] == "No prompt was cut to fit any model."
    assert "Prompt cuts not recorded" in "\n".join(run_section("old", sums["old"]))


def test_stage_comparison_reads_each_run_under_its_fit_label(tmp_path):
    from harness.results.report import run_label, stage_comparison

    res = tmp_path / "results"
    bench_run(res / "s1", [True] * 3 + [False] * 7, [True] * 10, protocol="lambada:paper+fit91")
    bench_run(res / "s2", [True] * 1 + [False] * 9, [True] * 10, protocol="lambada:paper+fit91")
    for where in ("s1", "s2"):
        path = res / where / "summary.json"
        s = json.loads(path.read_text())
        s["fits"] = [{"task": "lambada", "model": "pixar:tiny/step-0000200", "protocol": "lambada:paper",
                      "label": "lambada:paper+fit91", "budget": 91, "unit": "positions", "cut": 4, "n": 10, "share": 0.4}]
        path.write_text(json.dumps(s))
    sums = summaries(res)
    assert run_label(sums["s1"], "lambada:paper") == "lambada:paper+fit91" and run_label({}, "x") == "x"
    lines = stage_comparison(res, sums, [{"label": "2 - 1", "a": "s2", "b": "s1", "protocol": "lambada:paper"}])
    assert lines[2].startswith("| 2 - 1 | lambada:paper+fit91 | 10 | -20.0 pp [")
