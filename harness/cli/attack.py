"""`pixar attack`: accuracy under orthographic attacks, per rate and model, and TextAttack recipes.

    pixar attack --type swap,confusable --task sst2 --checkpoint CLF_DIR --baseline CLF_DIR
    pixar attack --type confusable --task babi --checkpoint PIXAR_CKPT --baseline GPT2_DIR --finetune
    pixar attack --type deepwordbug --task sst2 --checkpoint CLF_DIR --baseline CLF_DIR --limit 100
    pixar attack --preset paper --checkpoint PIXAR_CKPT --baseline GPT2_DIR

What a model directory is depends on the task (harness.robustness.tasks): GLUE tasks take classifiers fine-tuned by
`pixar bench glue`; bAbI / LAMBADA take a PIXAR LM checkpoint (or run folder) and GPT-2 LM folders or hub
names, scored with the paper protocol. `--type` is a comma list of registered text attacks (`all` = every
available one) and/or TextAttack recipes (deepwordbug, pruthi, badchars-invisible, badchars-reorderings, badchars-deletions: GLUE classifiers only).

Outputs under --out, per task (stem = sst2, babi-qa1, lambada):
    <stem>.md / .csv / .png        accuracy per (attack, rate, model) (harness.robustness.suite.write_report), with
                                   the metric and protocol of every model and 95% Wilson intervals
    <stem>_perturbed.csv           every perturbed input; <stem>_predictions.jsonl every prediction + score
    <stem>-pixel.*                 the same for pixel attacks (PIXAR models; each example seeded on its own)
    <stem>-<recipe>.md / .csv      attack success rate and queries per model; <stem>-<recipe>_records.jsonl
    summary.json                   harness.results.schema schema: config, seed, versions, protocol, data, models,
                                   files, metrics (+ attacks, recipes, rates, per-task details)
Presets (`configs/attack/<name>.yaml`, harness.robustness.preset.AttackConfig, `--set key=value`) set defaults;
options given on the command line win.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from attacks import ATTACKS, AttackUnavailableError, available_attacks
from pixar.paths import data_dir as resolve_data
from pixar.provenance import slug

from harness.cli.errors import one_line_errors
from harness.cli.render import make_out_dir, torch_device
from harness.models.finetune import TaskFinetuneConfig
from harness.results.schema import write_summary
from harness.robustness.preset import csv_list, load_attack_config
from harness.robustness.runs import run_pixel_attacks, run_recipes, run_text_attacks
from harness.robustness.tasks import (AttackConfigError, AttackTaskError, check_glue_paths, check_lm_paths,
                                      load_glue_models, load_lm_models, load_task_data, task_family)
from harness.robustness.textattack_bridge import RECIPES

log = logging.getLogger(__name__)


# ---- settings --------------------------------------------------------------------------------
def resolve_settings(cli: dict, preset: str | None = None, overrides: list[str] | None = None) -> dict:
    """The run's settings: AttackConfig defaults < preset (harness.robustness.preset, YAML + `--set` overrides) <
    command-line options (None = not given); lists become comma strings."""
    cfg, path = load_attack_config(preset, overrides, AttackConfigError)
    merged = cfg.to_dict()
    if path is not None:
        merged["preset"] = str(path)
    merged.update({k: csv_list(v) if k in ("type", "task", "rates") else v for k, v in cli.items() if v is not None})
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


def run_attack(settings: dict, checkpoint: str | None, baselines: list[str], out: Path, device: str = "cpu",
               data_dir: str | None = None, babi_dir: str | None = None, finetune=None,
               save_finetuned: str | None = None, echo=click.echo) -> dict:
    """Everything behind the command: validate, load, attack each task, write reports + summary.json."""
    import pandas as pd

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
    attacks_info = {a: {"family": ATTACKS[a].family, "severity": ATTACKS[a].severity, "source": ATTACKS[a].source}
                    for a in text_attacks}
    out.mkdir(parents=True, exist_ok=True)
    entries, metrics, files, models_info, data_info = {}, [], [], [], {}
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
        described = [{"name": m.name, "kind": m.kind, "metric": m.metric, "protocol": m.protocol, "info": m.info}
                     for m in models]
        models_info += [{**d, "task": data.name} for d in described]
        data_info[data.name] = {"source": data.source, "n_total": data.n_total, "n_evaluated": len(data.examples)}
        entry = {"family": families[t], "source": data.source, "n_total": data.n_total,
                 "n_evaluated": len(data.examples), "positions": data.positions, "models": described}
        pixel = [a for a in text_attacks if ATTACKS[a].family == "pixel"]
        runs = []
        if pixel:
            runs.append(("pixel_suite", run_pixel_attacks(data, models, pixel, rates, seed, out)))
        if [a for a in text_attacks if a not in pixel]:
            runs.append(("suite", run_text_attacks(data, models, [a for a in text_attacks if a not in pixel], rates,
                                                   seed, out)))
        for key, res in runs:
            df = pd.DataFrame(res["rows"])
            echo(df.pivot_table(index=["attack", "rate"], columns="model", values="accuracy").to_string())
        if recipes:
            runs.append(("recipes", run_recipes(data, models, recipes, seed, settings["query_budget"], out)))
            for r in runs[-1][1]["rows"]:
                echo(f"{r['recipe']} {r['model']}: success rate {r['attack_success_rate']:.4f}, "
                     f"avg queries {r['avg_num_queries']:.1f} ({r['num_attacked']} attacked)")
        for key, res in runs:
            metrics += res.pop("metrics")
            found = res["files"].values()
            files += [p for v in found for p in (v.values() if isinstance(v, dict) else [v])]
            entry[key] = res
        entries[data.name] = entry
    protocol = {m.metric: f"{m.metric.split(' @ ')[0]} at that rate; rate = {attack_severity(m.metric, attacks_info)}"
                for m in metrics if m.metric.startswith("accuracy under ")}
    protocol |= {m.metric: f"TextAttack {m.metric}, see <task>-<recipe>.md" for m in metrics
                 if not m.metric.startswith("accuracy under ")}
    config = {**settings, "checkpoint": checkpoint, "baselines": list(baselines), "device": device,
              "data_dir": data_dir, "babi_dir": babi_dir, "save_finetuned": save_finetuned}
    d = resolve_data(data_dir)
    return write_summary(out, command="attack", protocol=protocol, config=config, seed=seed, data=data_info,
                         models=models_info, files=files, metrics=metrics, data_dir=str(d) if d else None,
                         preset=settings.get("preset"), attacks=attacks_info, recipes=recipes, rates=rates,
                         finetune=None if finetune is None else vars(finetune), tasks=entries)


def attack_severity(metric: str, attacks_info: dict) -> str:
    name = metric[len("accuracy under "):].split(" @ ")[0]
    return attacks_info.get(name, {}).get("severity", "")


# ---- command ---------------------------------------------------------------------------------
def _default_out(settings: dict) -> Path:
    limit = f"-limit{settings['limit']}" if settings["limit"] else ""
    name = f"{slug(settings['task'].replace(',', '+'))}-{slug(settings['type'].replace(',', '+'))}{limit}"
    return Path("results") / "attack" / name


@click.command("attack")
@click.option("--type", "type_", metavar="ATTACK[,ATTACK]",
              help="Text attack(s) (swap, confusable, ...; all = every available one) and/or deepwordbug, pruthi, "
                   "badchars-invisible|reorderings|deletions (GLUE classifiers). [default: swap]")
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
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Preset override (harness.robustness.preset.AttackConfig), e.g. rates=[0,0.1] or seed=3.")
@click.option("--out", type=click.Path(file_okay=False), help="Output folder [default: results/attack/<task>-<type>].")
@click.option("--babi-task", type=click.IntRange(1, 20), help="bAbI task number for --task babi. [default: 1]")
@click.option("--variant", type=click.Choice(["en", "en-10k"]), help="bAbI files (en = 1k train). [default: en]")
@click.option("--babi-dir", type=click.Path(), help="Folder of qa*_{train,test}.txt (e.g. harness.tasks.babi_generator output).")
@click.option("--finetune", is_flag=True, help="bAbI: fine-tune every model on the task's train split first.")
@click.option("--finetune-steps", default=300, show_default=True, type=click.IntRange(min=1))
@click.option("--finetune-lr", default=1e-3, show_default=True, type=click.FloatRange(0, 10, min_open=True))
@click.option("--finetune-batch", default=16, show_default=True, type=click.IntRange(min=1))
@click.option("--finetune-lrs", metavar="LR[,LR]", help="With --finetune-dev: an lr sweep, the lowest dev loss wins "
              "(harness.models.finetune); replaces --finetune-lr.")
@click.option("--finetune-dev", default=0.0, show_default=True, type=click.FloatRange(0, 1, max_open=True),
              help="Share of the training stories held out as dev: early stopping on the answer's dev loss, best "
                   "weights kept, --finetune-steps becomes the cap. 0 = no dev split.")
@click.option("--finetune-patience", default=0, show_default=True, type=click.IntRange(min=0),
              help="Dev evaluations without improvement before stopping (0 = run to the cap).")
@click.option("--finetune-eval-every", default=50, show_default=True, type=click.IntRange(min=1))
@click.option("--finetune-min-steps", default=0, show_default=True, type=click.IntRange(min=0),
              help="No early stop before this many steps.")
@click.option("--finetune-dev-metric", default="accuracy", show_default=True, type=click.Choice(["accuracy", "loss"]),
              help="What early stopping and the lr sweep read on dev: first-word accuracy or the answer's loss.")
@click.option("--finetune-seed", type=int, help="Seed of the fine-tuning (batch order) [default: --seed]; "
                                                "perturbations keep --seed.")
@click.option("--save-finetuned", type=click.Path(file_okay=False),
              help="With --finetune: save the fine-tuned models here (reusable as --checkpoint / --baseline).")
@click.option("--query-budget", type=click.IntRange(min=1), help="TextAttack recipes: max queries per example.")
@click.option("--batch-size", type=click.IntRange(min=1), help="Model batch size. [default: 16]")
@click.option("--device", default="cpu", show_default=True)
@click.option("--data-dir", type=click.Path(), help="Data folder (default $PIXAR_DATA).")
@click.option("--threads", default=0, show_default=True, type=click.IntRange(0, 4096), help="torch CPU threads (0 = torch default).")
@one_line_errors("attack")
def attack(type_, task, rates, checkpoint, baselines, seed, limit, ocr, positions, preset, overrides, out, babi_task,
           variant, babi_dir, finetune, finetune_steps, finetune_lr, finetune_batch, finetune_lrs, finetune_dev,
           finetune_patience, finetune_eval_every, finetune_min_steps, finetune_dev_metric, finetune_seed,
           save_finetuned, query_budget, batch_size, device, data_dir, threads):
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
                                 "variant": variant, "query_budget": query_budget}, preset, list(overrides))
    fc = None
    if finetune:
        try:
            lrs = [float(x) for x in finetune_lrs.split(",") if x.strip()] if finetune_lrs else []
        except ValueError:
            raise click.BadParameter(f"not a comma list of numbers: {finetune_lrs!r}", param_hint="--finetune-lrs")
        if lrs and not finetune_dev:
            raise click.UsageError("--finetune-lrs picks on a dev split: give --finetune-dev too")
        if any(not 0 < x <= 10 for x in lrs):
            raise click.BadParameter(f"every lr must be in (0, 10]: {finetune_lrs!r}", param_hint="--finetune-lrs")
        fc = TaskFinetuneConfig.of(finetune_steps, lrs[0] if lrs else finetune_lr, finetune_batch,
                                   int(settings["seed"]) if finetune_seed is None else finetune_seed, lrs=lrs,
                                   dev_fraction=finetune_dev, patience=finetune_patience,
                                   eval_every=finetune_eval_every, dev_metric=finetune_dev_metric,
                                   min_steps=finetune_min_steps)
    out_dir = Path(out) if out else _default_out(settings)
    torch_device(device)
    make_out_dir(out_dir)
    run_attack(settings, checkpoint, list(baselines), out_dir, device, data_dir, babi_dir, fc, save_finetuned)
    click.echo(f"results: {out_dir}")


if __name__ == "__main__":
    sys.exit(attack())
