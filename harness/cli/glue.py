"""`pixar bench glue`: fine-tune PIXAR (and optionally GPT-2) on GLUE tasks and tabulate dev metrics.

    <out>/<model>/<task>/results.json   config, seed, versions, data sources, eval history, best-dev metrics
    <out>/summary.json                  harness.results.schema schema: every (model, task, dev split, metric) of the
                                        results.json files under <out>, with intervals (accuracy: Wilson 95%)
    <classifiers>/<model>/<task>/       the best-dev classifier (harness.models.glue_classifiers.load_classifier reads it);
                                        default runs/glue-classifiers (git-ignored: weights stay out of results/)
    <out>/glue_finetuned.{md,csv}       one row per (model, task[, MNLI dev split]) from every results.json under <out>

Every number here is "fine-tuned dev": the best of the periodic dev evaluations during fine-tuning (the paper's
protocol), selected by the task's main metric. Zero-shot lm-eval GLUE is a different protocol and never shares
these columns (it is not produced by this command).
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import click

from pixar.paths import data_dir as resolve_data
from pixar.provenance import slug, versions

from harness.cli.errors import one_line_errors
from harness.eval.bench import lm_eval_eval, load_models
from harness.models import CLASSIFIER_RUNNERS, model_specs
from harness.models.glue_classifiers import classifier_info, load_preset
from harness.results.glue_report import glue_metrics, table_with_intervals, write_dev_predictions
from harness.results.schema import point, proportion, write_json, write_summary
from harness.results.tables import write_table
from harness.tasks.glue import SPLIT_TAGS, TASK_ORDER, GlueDataError, get_task, has_local, load_split
from harness.tasks.glue_zeroshot import PROMPTS, lm_eval_task

METRIC_COLUMNS = ("accuracy", "f1", "mcc", "pearson", "spearman")
TABLE_NAME = "glue_finetuned"
FINETUNED_PROTOCOL = "glue fine-tuned dev"
ZERO_SHOT_PROTOCOL = "glue zero-shot (lm-eval)"


def model_tag(kind: str, name: str) -> str:
    """'pixar-<parent>_<dir>' for a directory (checkpoint dirs are often step-N/final), else '<kind>-<hub name>'."""
    path = Path(name)
    return f"{kind}-" + slug("_".join(path.resolve().parts[-2:]) if path.exists() else name)


def run_task(kind: str, name: str, task: str, preset: str, out: Path, overrides: list[str] = (),
             source: str = "local", data_dir: str | None = None, device: str = "cpu",
             classifiers: Path | None = Path("runs/glue-classifiers"), log=None) -> dict:
    """Fine-tune one model (kind 'pixar' = checkpoint dir, 'gpt2' = dir or hub name) on one task; write
    <out>/<model>/<task>/results.json and (unless classifiers is None) the classifier to <classifiers>/<model>/<task>."""
    spec = get_task(task)
    cfg = load_preset(preset, spec.name, list(overrides))
    train = load_split(spec.name, "train", source, data_dir).subset(cfg.max_train_examples, cfg.seed)
    devs = {s: load_split(spec.name, s, source, data_dir).subset(cfg.max_dev_examples, cfg.seed) for s in spec.dev_splits}
    runner = CLASSIFIER_RUNNERS[kind].build(name, spec, cfg.seed, cfg.max_tokens)
    runner.model = runner.model.to(device)
    tag = model_tag(kind, name)
    folder = out / tag / spec.name
    res = runner.train(spec, train, devs, cfg, log=log)

    dev_predictions = write_dev_predictions(runner.model, devs, folder)  # best-dev weights: per-example, for intervals
    classifier_dir = None
    if classifiers is not None:
        info = classifier_info(runner.model, spec, source_model=str(name), best_step=res.best_step)
        classifier_dir = str(runner.save(Path(classifiers) / tag / spec.name, info))
    record = {
        "protocol": f"GLUE fine-tuned dev: best of the periodic dev evaluations, selected by {spec.main_metric} "
                    f"on {spec.dev_splits[0]}; metrics are fractions (tables show x100)",
        "model": tag, "kind": kind, "source_model": str(name), "task": spec.name, "preset": preset,
        "overrides": list(overrides), "config": asdict(cfg), "seed": cfg.seed,
        "data": {"train": {"source": train.source, "n": len(train)},
                 "dev": {s: {"source": d.source, "n": len(d)} for s, d in devs.items()}},
        "main_metric": spec.main_metric, "best_step": res.best_step, "metrics": res.best,
        "best_per_metric": res.best_per_metric, "history": res.history, "train_seconds": res.train_seconds,
        "dev_truncated_fraction": {s: runner.truncated_fraction(d.texts) for s, d in devs.items()},
        "classifier_dir": classifier_dir, "dev_predictions": dev_predictions, "versions": versions(), **runner.describe(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    d = resolve_data(data_dir)
    write_json(folder / "results.json", record, folder, str(d) if d else None)
    return record


def table_rows(out: Path) -> list[dict]:
    rows = []
    for f in sorted(out.glob("*/*/results.json")):
        try:
            r = json.loads(f.read_text())
        except json.JSONDecodeError as e:
            raise GlueDataError(f"{f}: corrupt results JSON ({e})") from None
        for split, ms in r["metrics"].items():
            row = {"model": r["model"], "task": r["task"] + SPLIT_TAGS.get(split, f"-{split}"), "preset": r["preset"],
                   "n_train": r["data"]["train"]["n"], "n_dev": r["data"]["dev"][split]["n"],
                   "steps": r["config"]["steps"], "best_step": r["best_step"]}
            for m in METRIC_COLUMNS:
                row[f"fine-tuned dev {m} (x100)"] = round(100 * ms[m], 2) if m in ms and ms[m] == ms[m] else None
            rows.append(row)
    order = {t: i for i, t in enumerate(TASK_ORDER)}
    rows.sort(key=lambda r: (order.get(r["task"].split("-")[0], 99), r["task"], r["model"]))
    return rows


FINETUNED_NOTE = ("Protocol: each model is fine-tuned per task and evaluated on the dev set periodically; the row "
                  "shows the evaluation with the best main metric (CoLA MCC, MRPC/QQP F1, STS-B Pearson, else "
                  "accuracy), as in the paper. Values x100. `n_train`/`n_dev` < full size = seeded random subsets "
                  "(tiny-cpu preset). Zero-shot (lm-eval) GLUE is a different protocol and is not in this table.")


def glue_metric(task: str, model: str, protocol: str, metric: str, value: float, n: int):
    """Accuracy is a proportion (Wilson interval); F1, MCC and correlations get no interval here."""
    return (proportion if metric in ("accuracy", "acc") else point)(task, model, protocol, metric, value, n)


def write_tables(out: Path, command: str = "bench glue", config: dict | None = None) -> tuple[Path, Path]:
    """(Re)build <out>/glue_finetuned.md and .csv, and <out>/summary.json (harness.results.schema schema), from every
    results.json under <out>."""
    rows, metrics, models, files = table_rows(out), [], {}, []
    for f in sorted(out.glob("*/*/results.json")):
        r = json.loads(f.read_text())
        files += [f] + [f.parent / name for name in (r.get("dev_predictions") or {}).values()]
        models[r["model"]] = {"name": r["model"], "kind": r["kind"], "source_model": r["source_model"]}
        for split in r["metrics"]:
            task = r["task"] + SPLIT_TAGS.get(split, f"-{split}")
            metrics += glue_metrics(r, f.parent, task, split, FINETUNED_PROTOCOL, have=metrics)
    df = table_with_intervals(rows, metrics)
    md_path, csv_path = write_table(df, out, TABLE_NAME, title=f"# GLUE dev, fine-tuned\n\n{FINETUNED_NOTE}")
    protocol = {m: f"{FINETUNED_PROTOCOL}: {m} of the best dev evaluation (fraction); 95% interval: Wilson (accuracy), "
                   "seeded percentile bootstrap over dev examples (F1, MCC, correlations)" for m in METRIC_COLUMNS}
    write_summary(out, command=command, protocol=protocol, config=config or {}, seed=(config or {}).get("seed"),
                  data={"results": [str(f) for f in files]}, models=list(models.values()),
                  files=files + [md_path, csv_path], metrics=metrics)
    return md_path, csv_path


def resolve_tasks(task: str) -> tuple[list[str], bool]:
    if task.strip().lower() == "all":
        return list(TASK_ORDER), True
    return [get_task(t.strip()).name for t in task.split(",") if t.strip()], False


def run_zero_shot(tasks: list[str], checkpoint: str | None, baselines: list[str], out: Path, limit: int | None,
                  data_dir: str | None, device: str = "cpu", seed: int = 0, batch_size: int = 16) -> tuple[Path, Path]:
    """Zero-shot GLUE through lm-eval (harness.tasks.glue_zeroshot) -> <out>/glue_zeroshot.md/.csv, lm-eval JSON
    and summary.json (harness.results.schema schema)."""
    import pandas as pd

    d = resolve_data(data_dir, required=True)
    task_dicts = [lm_eval_task(t, d) for t in tasks]
    rows, metrics, files, models = [], [], [], []
    out.mkdir(parents=True, exist_ok=True)
    for runner in load_models(checkpoint, list(baselines), device, batch_size, "glyph", str(d), seed):
        models.append({"name": runner.name, "kind": runner.kind, **{k: v for k, v in runner.info.items() if k != "config"}})
        res = lm_eval_eval(runner, task_dicts, limit, batch_size, seed)
        res.pop("samples", None)
        files.append(write_json(out / f"zeroshot-lm-eval-{slug(runner.name)}.json", res, out, str(d)))
        for t, td in zip(tasks, task_dicts):
            r = res["results"][td["task"]]
            row = {"model": runner.name, "task": t, "n": r.get("sample_len")}
            for m in ("acc", "f1", "mcc"):
                if f"{m},none" in r:
                    row[f"zero-shot (lm-eval) dev {m} (x100)"] = round(100 * float(r[f"{m},none"]), 2)
                    metrics.append(glue_metric(t, runner.name, ZERO_SHOT_PROTOCOL, m, float(r[f"{m},none"]),
                                               int(r.get("sample_len") or 0)))
            rows.append(row)
    md, csv = write_table(pd.DataFrame(rows), out, stem="glue_zeroshot")
    protocol = {m: f"{ZERO_SHOT_PROTOCOL}: lm-eval multiple choice with lm-eval's GLUE prompts, {m} (fraction)"
                for m in ("acc", "f1", "mcc")}
    config = {"tasks": tasks, "checkpoint": checkpoint, "baselines": list(baselines), "limit": limit,
              "data_dir": data_dir, "device": device, "seed": seed, "batch_size": batch_size}
    write_summary(out, command="bench glue --zero-shot", protocol=protocol, config=config, seed=seed,
                  data={t: td.get("dataset_kwargs", {}) for t, td in zip(tasks, task_dicts)}, models=models,
                  files=files + [md, csv], metrics=metrics, data_dir=str(d))
    return md, csv


@click.command("glue")
@click.option("--task", default="sst2", show_default=True,
              help="sst2|cola|mrpc|stsb|qnli|rte|wnli|mnli|qqp|all, or a comma-separated list.")
@click.option("--checkpoint", type=click.Path(), help="PIXAR checkpoint directory to fine-tune.")
@click.option("--baseline", "baselines", multiple=True, metavar="DIR|gpt2",
              help="GPT-2 to fine-tune as well: a local dir (GPT-2 model + tokenizer) or a hub name (repeatable).")
@click.option("--preset", default="tiny-cpu", show_default=True, help="configs/glue/<name>.yaml (paper, tiny-cpu) or a YAML path.")
@click.option("--limit-train", type=click.IntRange(min=0), help="Cap on training examples (seeded random subset); 0 = all.")
@click.option("--limit-dev", type=click.IntRange(min=0), help="Cap on dev examples (seeded random subset); 0 = all.")
@click.option("--out", default="results/glue", show_default=True, type=click.Path(file_okay=False))
@click.option("--source", type=click.Choice(["local", "hf", "auto"]), default="local", show_default=True,
              help="local = $PIXAR_DATA/glue TSVs; hf = nyu-mll/glue online; auto = local when present.")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Data folder (default $PIXAR_DATA).")
@click.option("--set", "overrides", multiple=True, help="Schedule override key=value (e.g. steps=50, optim.lr=3e-5).")
@click.option("--seed", type=int, help="Overrides the preset's seed.")
@click.option("--threads", default=0, show_default=True, type=click.IntRange(0, 4096), help="torch CPU threads (0 = torch default).")
@click.option("--device", default="cpu", show_default=True)
@click.option("--classifiers", default="runs/glue-classifiers", show_default=True, type=click.Path(file_okay=False),
              help="Where the fine-tuned classifiers go (<dir>/<model>/<task>); the attack suite loads them.")
@click.option("--save-classifier/--no-save-classifier", default=True, show_default=True)
@click.option("--zero-shot", is_flag=True, help="No fine-tuning: lm-eval multiple choice with lm-eval's GLUE prompts "
              "(a separate table, glue_zeroshot.md; --limit-dev = first N dev examples).")
@one_line_errors("bench glue")
def glue(task, checkpoint, baselines, preset, limit_train, limit_dev, out, source, data_dir, overrides, seed,
         threads, device, classifiers, save_classifier, zero_shot):
    """Fine-tune on GLUE and report dev metrics (fine-tuned protocol) as Markdown + CSV tables."""
    import torch

    if not checkpoint and not baselines:
        raise click.UsageError("give --checkpoint (PIXAR) and/or --baseline (GPT-2)")
    if threads > 0:
        torch.set_num_threads(threads)
    extra = list(overrides)
    extra += [f"max_train_examples={limit_train}"] if limit_train is not None else []
    extra += [f"max_dev_examples={limit_dev}"] if limit_dev is not None else []
    extra += [f"seed={seed}"] if seed is not None else []
    out_dir = Path(out)

    models = model_specs(checkpoint, list(baselines))
    if zero_shot:
        tasks, _ = resolve_tasks(task)
        tasks = [t for t in tasks if t in PROMPTS and has_local(get_task(t), "validation", data_dir)]
        if not tasks:
            raise GlueDataError(f"no zero-shot task with a local dev split among {task!r} (have: {', '.join(PROMPTS)})")
        md, csv_path = run_zero_shot(tasks, checkpoint, list(baselines), out_dir, limit_dev or None, data_dir,
                                     device, seed or 0)
        click.echo(f"zero-shot tables: {md} {csv_path}")
        return
    tasks, is_all = resolve_tasks(task)
    skipped = []
    for t in tasks:
        spec = get_task(t)
        if source == "local" and not has_local(spec, "train", data_dir):
            if not is_all:
                load_split(t, "train", source, data_dir)  # raises the clear "missing locally" error
            skipped.append(t)
            click.echo(f"skip {t}: no local train split (use --source hf for nyu-mll/glue online)", err=True)
            continue
        for kind, name in models:
            click.echo(f"== {kind} {name} on {t} (preset {preset})", err=True)
            rec = run_task(kind, name, t, preset, out_dir, extra, source, data_dir, device,
                           Path(classifiers) if save_classifier else None, log=lambda s: click.echo(s, err=True))
            shown = ", ".join(f"{s}:{m}={v:.4f}" for s, ms in rec["metrics"].items() for m, v in ms.items())
            click.echo(f"{rec['model']} {t}: fine-tuned dev (best @ step {rec['best_step']}) {shown}")
    config = {"task": task, "checkpoint": checkpoint, "baselines": list(baselines), "preset": preset,
              "overrides": extra, "source": source, "data_dir": data_dir, "device": device, "seed": seed}
    md, csv_path = write_tables(out_dir, config=config)
    if skipped:
        click.echo(f"skipped (no local train split): {', '.join(skipped)}")
    click.echo(f"tables: {md} {csv_path}")


if __name__ == "__main__":
    sys.exit(glue())
