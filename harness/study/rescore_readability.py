"""Per-engine and strict readability of the committed LAMBADA rows (the earlier round's stage 1, stage 2 and GPT-2
predictions under `lambada:paper`), rescored from the readings they stored (harness.eval.readability.rescore), so
the report can show which engine the paper's union leans on without re-running generation.

    PIXAR_DATA=../shared/data python -m harness.study.rescore_readability     # -> results/lambada/readability-rescored

The vocabulary is the protocol's (`paper-official`, no evaluation words for LAMBADA); the rescoring must reproduce
every stored union flag (it stops with one line otherwise). Writes summary.json (metrics with Wilson intervals;
stage 2 - stage 1 per metric as paired comparisons, Newcombe) and the per-example flags (flags.jsonl.gz).
"""
from __future__ import annotations

import gzip
from pathlib import Path

import click

from pixar.config_io import atomic_write

from harness.eval.official_scorers import notebook_readable
from harness.eval.protocols import build_vocabulary, get_protocol
from harness.eval.readability import METRIC_NOTES, metric_note, readability_flags, rescore
from harness.results.report import prediction_rows, run_label, summaries
from harness.results.schema import proportion, write_jsonl, write_summary
from harness.results.stats import paired_proportion_diff

PROTOCOL = "lambada:paper"
SOURCES = {"PIXAR stage 1": ("lambada/stage1-vs-gpt2", "pixar"), "PIXAR stage 2 (α=1)": ("lambada/stage2-vs-gpt2", "pixar"),
           "GPT-2 tiny": ("lambada/stage1-vs-gpt2", "gpt2")}
OUT = "lambada/readability-rescored"
LABEL = f"{PROTOCOL} (committed rows rescored)"


def rescored_flags(results: Path, data_dir: str | None) -> dict[str, dict[str, list[bool]]]:
    """{source: {metric: per-example flags}} (examples in idx order)."""
    vocab = build_vocabulary(get_protocol("lambada", "paper"), [], data_dir, required=True)
    sums = summaries(results)
    out = {}
    for name, (where, model) in SOURCES.items():
        rows = sorted(prediction_rows(results, where, sums[where], run_label(sums[where], PROTOCOL, model), model),
                      key=lambda r: r["idx"])
        rows, differ = rescore(rows, notebook_readable, vocab)
        if differ:
            raise click.ClickException(f"{where} ({model}): rescoring changed {differ} stored readability flags "
                                       "(not the vocabulary or rule they were scored with)")
        out[name] = readability_flags(rows)
    return out


@click.command()
@click.option("--results", default="results", show_default=True, type=click.Path(file_okay=False))
@click.option("--data-dir", type=click.Path(file_okay=False), help="Data folder (default $PIXAR_DATA).")
def main(results, data_dir):
    """Rescore the committed LAMBADA rows' readability per engine and strictly."""
    res = Path(results)
    flags = rescored_flags(res, data_dir)
    out = res / OUT
    metrics, comparisons, rows = [], [], []
    for name, by_metric in flags.items():
        for metric, f in by_metric.items():
            metrics.append(proportion("lambada", name, LABEL, metric, sum(f) / len(f), len(f)))
    a, b = flags["PIXAR stage 2 (α=1)"], flags["PIXAR stage 1"]
    for metric in a:
        if metric in b and len(a[metric]) == len(b[metric]):
            d = paired_proportion_diff(a[metric], b[metric]).to_dict()
            comparisons.append({"protocol": LABEL, "metric": metric, "a": "PIXAR stage 2 (α=1)", "b": "PIXAR stage 1",
                                **{k: d[k] for k in ("estimate", "low", "high", "n")}})
    n = len(next(iter(a.values())))
    for i in range(n):
        rows.append({"idx": i, **{f"{src} {m}": bool(f[i]) for src, by in flags.items() for m, f in by.items()
                                  if len(f) == n}})
    plain = write_jsonl(out / "flags.jsonl", rows)
    data = gzip.compress(plain.read_bytes(), mtime=0)  # committed per-example files are gzipped; mtime 0: reproducible
    atomic_write(out / "flags.jsonl.gz", lambda tmp: Path(tmp).write_bytes(data))
    plain.unlink()
    protocol = {m.metric: metric_note(m.metric) or METRIC_NOTES["readability"] for m in metrics}
    summary = write_summary(out, command="python -m harness.study.rescore_readability", protocol=protocol,
                            config={"protocol": PROTOCOL, "sources": SOURCES, "vocabulary": "paper-official"}, seed=None,
                            data={"rows": [f"{w} ({m})" for w, m in SOURCES.values()]},
                            models=[{"name": k, "kind": v[1]} for k, v in SOURCES.items()],
                            files=[out / "flags.jsonl.gz"], metrics=metrics, comparisons=comparisons)
    click.echo(f"wrote {out}/summary.json ({len(summary['metrics'])} metrics)")


if __name__ == "__main__":
    main()
