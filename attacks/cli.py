"""`pixar attack`: accuracy under orthographic attacks, per rate and model, and TextAttack recipes.

    pixar attack --type swap,confusable --task sst2 --checkpoint CLF_DIR --baseline CLF_DIR
    pixar attack --type confusable --task babi --checkpoint PIXAR_CKPT --baseline GPT2_DIR --finetune
    pixar attack --type deepwordbug --task sst2 --checkpoint CLF_DIR --baseline CLF_DIR --limit 100
    pixar attack --preset paper --checkpoint PIXAR_CKPT --baseline GPT2_DIR

What a model directory is depends on the task (attacks.tasks): GLUE tasks take classifiers fine-tuned by
`pixar bench glue`; bAbI / LAMBADA take a PIXAR LM checkpoint (or run folder) and GPT-2 LM folders or hub
names, scored with the paper protocol. `--type` is a comma list of registered text attacks (`all` = every
available one) and/or TextAttack recipes (deepwordbug, pruthi: GLUE classifiers only).

Outputs under --out, per task (stem = sst2, babi-qa1, lambada):
    <stem>.md / .csv / .png        accuracy per (attack, rate, model) (attacks.suite.write_report), with the
                                   metric and protocol of every model
    <stem>_perturbed.csv           every perturbed input; <stem>_predictions.jsonl every prediction + score
    <stem>-<recipe>.md / .csv      attack success rate and queries per model; <stem>-<recipe>_records.jsonl
    summary.json                   settings, preset, seed, versions, protocols, data, models, files, rows
Presets (`configs/attack/<name>.yaml`) set defaults; options given on the command line win.
"""
from __future__ import annotations

import io
import json
import logging
import sys
import time
from pathlib import Path

import click

log = logging.getLogger(__name__)
PRESET_DIR = Path(__file__).resolve().parent.parent / "configs" / "attack"
DEFAULTS = {"type": "swap", "task": "sst2", "rates": "0,0.05,0.1,0.2,0.4,0.6", "seed": 0, "limit": None,
            "ocr": "glyph", "positions": None, "batch_size": 16, "babi_task": 1, "variant": "en",
            "query_budget": None}
PRESET_KEYS = {"name", "description", *DEFAULTS}


class AttackConfigError(ValueError):
    """A bad option or preset value; the message names the option or file."""


# ---- settings --------------------------------------------------------------------------------
def load_preset(name_or_path: str) -> tuple[dict, Path]:
    """`configs/attack/<name>.yaml` (or a YAML path) -> (its settings, path)."""
    from pixar.config import read_yaml_mapping

    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = PRESET_DIR / f"{name_or_path}.yaml"
    raw = read_yaml_mapping(path, "attack preset", AttackConfigError, PRESET_DIR)
    unknown = sorted(set(raw) - PRESET_KEYS)
    if unknown:
        raise AttackConfigError(f"{path}: unknown key(s) {unknown} (known: {', '.join(sorted(PRESET_KEYS))})")
    return raw, path


def _csv(value) -> str:
    return ",".join(str(v) for v in value) if isinstance(value, (list, tuple)) else str(value)


def resolve_settings(cli: dict, preset: str | None = None) -> dict:
    """Merge built-in defaults < preset < command line (None = not given); lists become comma strings."""
    merged = dict(DEFAULTS)
    if preset:
        raw, path = load_preset(preset)
        merged.update({k: v for k, v in raw.items() if k in DEFAULTS})
        merged["preset"] = str(path)
    merged.update({k: v for k, v in cli.items() if v is not None})
    for key in ("type", "task", "rates"):
        merged[key] = _csv(merged[key])
    return merged


def parse_rates(spec: str) -> list[float]:
    rates = []
    for part in (p.strip() for p in spec.split(",")):
        try:
            rate = float(part)
        except ValueError:
            raise AttackConfigError(f"--rates: {part!r} is not a number (give e.g. 0,0.1,0.2)") from None
        if not 0.0 <= rate <= 1.0:
            raise AttackConfigError(f"--rates: {rate} is outside [0, 1]")
        if rate not in rates:
            rates.append(rate)
    return rates


def parse_types(spec: str) -> tuple[list[str], list[str]]:
    """'swap,confusable,salt-pepper,deepwordbug' / 'all' -> (attacks, TextAttack recipes). `all` = every available
    text attack; pixel attacks (family 'pixel') are named explicitly and apply to PIXAR models only."""
    from attacks import ATTACKS, AttackUnavailableError, available_attacks
    from attacks.textattack_bridge import RECIPES

    text, recipes = [], []
    for name in (p.strip().lower() for p in spec.split(",") if p.strip()):
        if name == "all":
            text += [a for a in available_attacks() if ATTACKS[a].family != "pixel"]
        elif name in RECIPES:
            recipes.append(name)
        elif name not in ATTACKS:
            valid = list(ATTACKS) + ["all", *RECIPES]
            raise AttackConfigError(f"unknown attack {name!r}; valid: {', '.join(valid)}")
        elif not ATTACKS[name].available:
            raise AttackUnavailableError(f"attack {name!r} is unavailable: {ATTACKS[name].unavailable_reason}")
        else:
            text.append(name)
    if not text and not recipes:
        raise AttackConfigError("--type: no attack given")
    return list(dict.fromkeys(text)), list(dict.fromkeys(recipes))


# ---- running ---------------------------------------------------------------------------------
def _recording(model):
    """model.predict wrapped to remember input -> prediction (for the predictions file)."""
    store: dict = {}

    def call(inputs: list) -> list:
        preds = list(model.predict(inputs))
        store.update(zip(inputs, preds))
        return preds

    return call, store


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows)


def run_pixel_attacks(data, models, attacks_: list[str], rates: list[float], seed: int, out: Path) -> dict:
    """Pixel-space attacks (attacks.perturb_image) on the images PIXAR models render; GPT-2 has no pixels to attack.

    The clean texts are rendered as usual and each rendered batch is perturbed before the model sees it: the
    model's own renderer gets an instance-level `render_batch` for the duration of one (attack, rate) pass and
    is restored afterwards. Each pass draws from `random.Random(derive_seed(seed, attack, rate, 0))`, so a rerun
    with the same seed, inputs and batch size perturbs identically. -> {'files', 'rows'}."""
    import random

    import pandas as pd

    from attacks import perturb_image
    from attacks.suite import PERTURBED_COLUMNS, derive_seed, write_report
    from attacks.tasks import score_prediction

    pixel_models = [m for m in models if m.kind == "pixar" and m.renderer is not None]
    if not pixel_models:
        raise AttackConfigError(f"pixel attacks {attacks_} need a PIXAR model (--checkpoint); GPT-2 reads tokens")
    inputs = [ex["text"] for ex in data.examples]
    rows = []
    for m in pixel_models:
        renderer = m.renderer
        for attack in attacks_:
            for rate in rates:
                rng = random.Random(derive_seed(seed, attack, rate, 0))

                def perturbed(texts, _render=type(renderer).render_batch, _rng=rng, _a=attack, _rate=rate):
                    batch = _render(renderer, texts)
                    batch.pixels = perturb_image(batch.pixels, _a, _rate, _rng)
                    return batch

                renderer.render_batch = perturbed
                try:
                    preds = m.predict(inputs)
                finally:
                    del renderer.render_batch
                scores = [score_prediction(p, ex) for p, ex in zip(preds, data.examples)]
                rows.append((attack, float(rate), m.name, len(scores), sum(scores) / max(len(scores), 1)))
    table = pd.DataFrame(rows, columns=["attack", "rate", "model", "n", "accuracy"])
    table = table.assign(task=data.name, metric=table["model"].map({m.name: m.metric for m in models}))
    paths = write_report(table, pd.DataFrame(columns=PERTURBED_COLUMNS), out,
                         title=f"Accuracy under pixel-space attacks (PIXAR only): {data.name}", stem=f"{data.name}-pixel")
    return {"files": {k: str(v) for k, v in paths.items()}, "rows": table.to_dict("records")}


def run_text_attacks(data, models, attacks_: list[str], rates: list[float], seed: int, out: Path) -> dict:
    """run_suite + write_report + predictions file + protocol notes; -> {'files', 'rows'}."""
    from attacks.suite import run_suite, write_report
    from attacks.tasks import FirstWordPrediction, glyph_coverage, score_prediction
    from pixar.config import atomic_write_text

    recorders = {m.name: _recording(m) for m in models}
    table, perturbed = run_suite(data.examples, attacks_, rates, {n: r[0] for n, r in recorders.items()},
                                 score=score_prediction, seed=seed)
    metric = {m.name: m.metric for m in models}
    table = table.assign(task=data.name, metric=table["model"].map(metric))
    title = f"Accuracy under attack: {data.name}"
    paths = write_report(table, perturbed, out, title=title, stem=data.name)
    notes = [f"Task `{data.name}`: {len(data.examples)} of {data.n_total} examples ({data.source}); "
             "rate = severity per attack family (see attacks/__init__.py). Metric per model:", ""]
    notes += [f"- `{m.name}`: {m.metric} -- {m.protocol}" for m in models]
    coverage = {}
    for m in (m for m in models if m.renderer is not None):
        coverage[m.name] = {a: glyph_coverage(m.renderer, sub["perturbed"].tolist())
                            for a, sub in perturbed[perturbed["rate"] > 0].groupby("attack", sort=False)}
        notes += [f"- `{m.name}` renderer: {c['no_glyph_fraction']:.2%} of the non-space characters of the attacked "
                  f"({a}) inputs have no glyph and are drawn as the replacement box: {c['no_glyph_chars']}"
                  for a, c in coverage[m.name].items() if c["no_glyph"]]
    md = paths["markdown"].read_text(encoding="utf-8").split("\n", 1)
    atomic_write_text(paths["markdown"], md[0] + "\n\n" + "\n".join(notes) + "\n" + (md[1] if len(md) > 1 else ""))
    rows = []
    for r in perturbed.itertuples(index=False):
        example = data.examples[r.example]
        for m in models:
            pred = recorders[m.name][1][r.perturbed]
            rows.append({"attack": r.attack, "rate": r.rate, "example": r.example, "model": m.name,
                         "prediction": pred.to_json() if isinstance(pred, FirstWordPrediction) else pred,
                         "gold": example.get("target", example.get("label")),
                         "correct": bool(score_prediction(pred, example))})
    paths["predictions"] = out / f"{data.name}_predictions.jsonl"
    atomic_write_text(paths["predictions"], _jsonl(rows))
    return {"files": {k: str(v) for k, v in paths.items()}, "rows": table.to_dict("records"),
            "pixar_glyph_coverage": coverage}


RECIPE_COLUMNS = ["task", "recipe", "model", "n", "clean_accuracy", "num_attacked", "num_skipped", "num_succeeded",
                  "num_failed", "attack_success_rate", "accuracy_under_attack", "avg_num_queries", "query_budget"]


def run_recipes(data, models, recipes: list[str], seed: int, query_budget: int | None, out: Path) -> dict:
    """TextAttack recipes against every classifier; one table (Markdown + CSV) and records file per recipe."""
    import pandas as pd

    from attacks.suite import _markdown_table
    from attacks.textattack_bridge import RECIPES, run_recipe
    from pixar.config import atomic_write_text

    dataset = [(ex["text"], ex["label"]) for ex in data.examples]
    files, all_rows = {}, []
    for recipe in recipes:
        rows, records = [], []
        for m in models:
            res = run_recipe(recipe, m.predict_proba, dataset, seed=seed, query_budget=query_budget)
            n = len(dataset)
            rows.append({"task": data.name, "recipe": recipe, "model": m.name, "n": n,
                         "clean_accuracy": res["num_attacked"] / n if n else float("nan"),
                         **{k: res[k] for k in RECIPE_COLUMNS if k in res},
                         "accuracy_under_attack": res["num_failed"] / n if n else float("nan"),
                         "query_budget": query_budget})
            records += [{"model": m.name, **r} for r in res["records"]]
        df = pd.DataFrame(rows, columns=RECIPE_COLUMNS)
        stem = out / f"{data.name}-{recipe}"
        fmt = lambda v: f"{v:.4f}" if isinstance(v, float) else ("" if v is None else str(v))  # noqa: E731
        md = [f"# TextAttack {RECIPES[recipe]} on {data.name}", "",
              f"{len(dataset)} examples of {data.n_total} ({data.source}), seed {seed}, query budget "
              f"{query_budget or 'none'} per example. attack_success_rate = succeeded / (succeeded + failed); "
              "skipped = already misclassified (clean_accuracy = 1 - skipped / n); accuracy_under_attack = "
              "failed / n; avg_num_queries over attacked examples. Models are fine-tuned GLUE classifiers.", "",
              _markdown_table(RECIPE_COLUMNS[2:], [[fmt(r[c]) for c in RECIPE_COLUMNS[2:]] for r in rows])]
        buf = io.StringIO()
        df.to_csv(buf, index=False)
        paths = {"markdown": Path(f"{stem}.md"), "csv": Path(f"{stem}.csv"), "records": Path(f"{stem}_records.jsonl")}
        atomic_write_text(paths["markdown"], "\n".join(md) + "\n")
        atomic_write_text(paths["csv"], buf.getvalue())
        atomic_write_text(paths["records"], _jsonl(records))
        files[recipe] = {k: str(v) for k, v in paths.items()}
        all_rows += rows
    return {"files": files, "rows": all_rows}


def _versions(recipes: list[str]) -> dict:
    from importlib import metadata

    from harness.bench import versions

    out = versions()
    if recipes:
        out["textattack"] = metadata.version("textattack")
    return out


def run_attack(settings: dict, checkpoint: str | None, baselines: list[str], out: Path, device: str = "cpu",
               data_dir: str | None = None, babi_dir: str | None = None, finetune=None,
               save_finetuned: str | None = None, echo=click.echo) -> dict:
    """Everything behind the command: validate, load, attack each task, write reports + summary.json."""
    from attacks import ATTACKS
    from attacks.tasks import (AttackTaskError, check_glue_paths, check_lm_paths, load_glue_models, load_lm_models,
                               load_task_data, task_family)
    from pixar.config import atomic_write_text

    text_attacks, recipes = parse_types(settings["type"])
    rates = parse_rates(settings["rates"])
    tasks = [t.strip().lower() for t in settings["task"].split(",") if t.strip()]
    families = {t: task_family(t) for t in tasks}  # validate every task before any model work
    for t, fam in families.items():
        if recipes and fam != "glue":
            raise AttackTaskError(f"--type {','.join(recipes)}: TextAttack recipes attack GLUE classifiers, "
                                  f"not {t}")
        if finetune is not None and t != "babi":
            raise AttackTaskError(f"--finetune trains bAbI models; for {t} pass already fine-tuned models "
                                  "(GLUE: `pixar bench glue`)")
        if fam == "glue":
            check_glue_paths(([checkpoint] if checkpoint else []) + list(baselines), t)
        else:
            check_lm_paths(checkpoint, baselines)
    seed, limit = int(settings["seed"]), settings["limit"]
    summary = {"command": "pixar attack", "argv": sys.argv[1:], "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
               "settings": settings, "preset": settings.get("preset"), "seed": seed, "checkpoint": checkpoint,
               "baselines": list(baselines), "device": device, "versions": _versions(recipes),
               "attacks": {a: {"family": ATTACKS[a].family, "severity": ATTACKS[a].severity,
                               "source": ATTACKS[a].source} for a in text_attacks},
               "recipes": recipes, "rates": rates,
               "finetune": None if finetune is None else vars(finetune), "tasks": {}}
    out.mkdir(parents=True, exist_ok=True)
    for t in tasks:
        data = load_task_data(t, limit, data_dir, int(settings["babi_task"]), settings["variant"], babi_dir,
                              with_train=finetune is not None)
        if settings["positions"]:
            data.positions = int(settings["positions"])
        echo(f"== {data.name}: {len(data.examples)} examples, attacks {text_attacks + recipes}", err=True)
        paths = [checkpoint] if checkpoint else []
        if families[t] == "glue":
            models = load_glue_models(paths + list(baselines), t, device, int(settings["batch_size"]))
        else:
            models = load_lm_models(checkpoint, list(baselines), data, device, int(settings["batch_size"]),
                                    settings["ocr"], data_dir, seed, finetune, save_finetuned,
                                    log=lambda s: echo(s, err=True))
        entry = {"family": families[t], "source": data.source, "n_total": data.n_total,
                 "n_evaluated": len(data.examples), "positions": data.positions,
                 "models": [{"name": m.name, "kind": m.kind, "metric": m.metric, "protocol": m.protocol,
                             "info": m.info} for m in models]}
        pixel = [a for a in text_attacks if ATTACKS[a].family == "pixel"]
        if pixel:
            entry["pixel_suite"] = run_pixel_attacks(data, models, pixel, rates, seed, out)
            df = __import__("pandas").DataFrame(entry["pixel_suite"]["rows"])
            echo(df.pivot_table(index=["attack", "rate"], columns="model", values="accuracy").to_string())
        if [a for a in text_attacks if a not in pixel]:
            entry["suite"] = run_text_attacks(data, models, [a for a in text_attacks if a not in pixel], rates, seed, out)
            df = __import__("pandas").DataFrame(entry["suite"]["rows"])
            echo(df.pivot_table(index=["attack", "rate"], columns="model", values="accuracy").to_string())
        if recipes:
            entry["recipes"] = run_recipes(data, models, recipes, seed, settings["query_budget"], out)
            for r in entry["recipes"]["rows"]:
                echo(f"{r['recipe']} {r['model']}: success rate {r['attack_success_rate']:.4f}, "
                     f"avg queries {r['avg_num_queries']:.1f} ({r['num_attacked']} attacked)")
        summary["tasks"][data.name] = entry
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, default=str))
    return summary


# ---- command ---------------------------------------------------------------------------------
def _expected_errors() -> tuple[type[BaseException], ...]:
    from attacks import AttackUnavailableError
    from harness.baselines import BaselineError
    from pixar.checkpoint import CheckpointError
    from pixar.config import ConfigError
    from pixar.ocr import OCRError
    from pixar.paths import DataNotFound

    return (ValueError, AttackUnavailableError, CheckpointError, ConfigError, DataNotFound, BaselineError, OCRError,
            FileNotFoundError)


def _one_line(fn):
    from harness.app import one_line_errors

    return one_line_errors(_expected_errors, "attack")(fn)


def _default_out(settings: dict) -> Path:
    slug = lambda s: "".join(c if c.isalnum() or c in "-_." else "_" for c in s.replace(",", "+"))  # noqa: E731
    limit = f"-limit{settings['limit']}" if settings["limit"] else ""
    return Path("results") / "attack" / f"{slug(settings['task'])}-{slug(settings['type'])}{limit}"


@click.command("attack")
@click.option("--type", "type_", metavar="ATTACK[,ATTACK]",
              help="Text attack(s) (swap, confusable, ...; all = every available one) and/or deepwordbug, pruthi "
                   "(GLUE classifiers). [default: swap]")
@click.option("--task", help="sst2|cola|mrpc|qqp|mnli|qnli|rte|wnli|babi|lambada, or a comma list. [default: sst2]")
@click.option("--rates", help="Comma-separated severities in [0, 1]; 0 = clean. [default: 0,0.05,0.1,0.2,0.4,0.6]")
@click.option("--checkpoint", type=click.Path(), help="PIXAR: LM checkpoint/run folder (bAbI, LAMBADA) or "
                                                      "fine-tuned classifier dir (GLUE).")
@click.option("--baseline", "baselines", multiple=True, metavar="gpt2|DIR",
              help="GPT-2: LM folder or hub name (bAbI, LAMBADA) or fine-tuned classifier dir (GLUE); repeatable.")
@click.option("--seed", type=int, help="Seed of every perturbation (and of --finetune). [default: 0]")
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N examples of the evaluation split.")
@click.option("--ocr", type=click.Choice(["glyph", "tesseract", "union"]),
              help="PIXAR read-back; union = the paper's scoring (either engine). [default: glyph]")
@click.option("--positions", type=click.IntRange(min=1), help="Positions PIXAR generates (default: bAbI 5, LAMBADA 4).")
@click.option("--preset", help="configs/attack/<name>.yaml (paper) or a YAML path; options given here override it.")
@click.option("--out", type=click.Path(file_okay=False), help="Output folder [default: results/attack/<task>-<type>].")
@click.option("--babi-task", type=click.IntRange(1, 20), help="bAbI task number for --task babi. [default: 1]")
@click.option("--variant", type=click.Choice(["en", "en-10k"]), help="bAbI files (en = 1k train). [default: en]")
@click.option("--babi-dir", type=click.Path(), help="Folder of qa*_{train,test}.txt (e.g. harness.babi_gen output).")
@click.option("--finetune", is_flag=True, help="bAbI: fine-tune every model on the task's train split first.")
@click.option("--finetune-steps", default=300, show_default=True)
@click.option("--finetune-lr", default=1e-3, show_default=True)
@click.option("--finetune-batch", default=16, show_default=True)
@click.option("--save-finetuned", type=click.Path(file_okay=False),
              help="With --finetune: save the fine-tuned models here (reusable as --checkpoint / --baseline).")
@click.option("--query-budget", type=click.IntRange(min=1), help="TextAttack recipes: max queries per example.")
@click.option("--batch-size", type=click.IntRange(min=1), help="Model batch size. [default: 16]")
@click.option("--device", default="cpu", show_default=True)
@click.option("--data-dir", type=click.Path(), help="Data folder (default $PIXAR_DATA).")
@click.option("--threads", default=0, show_default=True, help="torch CPU threads (0 = torch default).")
@_one_line
def attack(type_, task, rates, checkpoint, baselines, seed, limit, ocr, positions, preset, out, babi_task, variant,
           babi_dir, finetune, finetune_steps, finetune_lr, finetune_batch, save_finetuned, query_budget, batch_size,
           device, data_dir, threads):
    """Accuracy under orthographic attacks (per rate, per model) and TextAttack recipes; tables + plot."""
    if not checkpoint and not baselines:
        raise click.UsageError("pass --checkpoint DIR and/or --baseline gpt2|DIR")
    if save_finetuned and not finetune:
        raise click.UsageError("--save-finetuned needs --finetune")
    if threads > 0:
        import torch

        torch.set_num_threads(threads)
    settings = resolve_settings({"type": type_, "task": task, "rates": rates, "seed": seed, "limit": limit,
                                 "ocr": ocr, "positions": positions, "batch_size": batch_size, "babi_task": babi_task,
                                 "variant": variant, "query_budget": query_budget}, preset)
    fc = None
    if finetune:
        from harness.finetune import FinetuneConfig

        fc = FinetuneConfig(steps=finetune_steps, lr=finetune_lr, batch_size=finetune_batch, seed=int(settings["seed"]))
    out_dir = Path(out) if out else _default_out(settings)
    run_attack(settings, checkpoint, list(baselines), out_dir, device, data_dir, babi_dir, fc, save_finetuned)
    click.echo(f"results: {out_dir}")


if __name__ == "__main__":
    sys.exit(attack())
