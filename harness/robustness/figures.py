"""Paper-ready attack figures and tables from committed attack result folders alone (no model is loaded).

    python -m harness.robustness.figures results/attack/sst2-pixar results/attack/sst2-gpt2 --out results/attack/sst2-figures

Inputs: each folder's summary.json (model kinds), the suite table `<task>.csv` (accuracy per attack, rate, model
with numeric 95% Wilson ci_low/ci_high) and the TextAttack recipe tables `<task>-<recipe>.csv`. Outputs under --out:

    <attack>.png         one figure per attack family, both models, accuracy in % with the 95% band, x-axis in
                         the severity's unit (swap: fraction of words perturbed; confusable: per-letter probability)
    attacks.png          the same panels side by side on one shared y-axis
    recipes.png          accuracy under each TextAttack search (DeepWordBug, BadCharacters types), both models
    attacks.md / .csv    the plotted numbers in % (numeric ci_low / ci_high columns in the CSV)

Legends use short model names: PIXAR, GPT-2, and "PIXAR (α=0.1)" for a stage-2 alpha variant.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import click
import pandas as pd

from pixar.config_io import atomic_write, atomic_write_text

from harness.results.schema import read_summary
from harness.results.stats import wilson_interval
from harness.results.tables import markdown_table

X_LABELS = {"swap": "fraction of words perturbed (adjacent letters swapped)",
            "confusable": "per-letter probability of a look-alike character",
            "zeroe-confusable": "per-character probability of a look-alike character"}
RECIPE_NAMES = {"deepwordbug": "DeepWordBug", "pruthi": "Pruthi", "badchars-invisible": "invisible chars",
                "badchars-reorderings": "bidi reorderings", "badchars-deletions": "deletion controls"}


def short_name(model: str, kind: str) -> str:
    """'PIXAR' / 'GPT-2' from the model's kind; a stage-2 alpha variant (alpha0.1 in its name) gets '(α=0.1)'."""
    base = {"pixar": "PIXAR", "gpt2": "GPT-2"}.get(kind.split("-")[0], kind)
    alpha = re.search(r"alpha([0-9.]+[0-9])", model)
    return f"{base} (α={alpha.group(1)})" if alpha else base


def load_folder(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(suite rows, recipe rows) of one attack folder, with a `short` model name column."""
    summary = read_summary(folder / "summary.json")
    kinds = {m["name"]: m["kind"] for m in summary["models"]}
    suite, recipes = [], []
    for task, entry in (summary.get("tasks") or {}).items():
        if (folder / f"{task}.csv").exists():
            suite.append(pd.read_csv(folder / f"{task}.csv"))
        for recipe in summary.get("recipes") or []:
            if (folder / f"{task}-{recipe}.csv").exists():
                recipes.append(pd.read_csv(folder / f"{task}-{recipe}.csv"))
    out = []
    for frames in (suite, recipes):
        df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["model"])
        out.append(df.assign(short=[short_name(m, kinds.get(m, "")) for m in df["model"]]))
    return out[0], out[1]


def recipe_band(row) -> tuple[float, float]:
    iv = wilson_interval(int(round(row.accuracy_under_attack * row.n)), int(row.n))
    return iv.low, iv.high


def _axes_style(ax, xlabel: str) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)


def _suite_panel(ax, suite: pd.DataFrame, attack: str) -> None:
    for name, sub in suite[suite["attack"] == attack].groupby("short", sort=False):
        sub = sub.sort_values("rate")
        line, = ax.plot(sub["rate"], 100 * sub["accuracy"], marker="o", label=f"{name} (n = {int(sub['n'].iloc[0])})")
        ax.fill_between(sub["rate"], 100 * sub["ci_low"], 100 * sub["ci_high"], color=line.get_color(), alpha=0.18,
                        linewidth=0)
    ax.set_title(attack)
    _axes_style(ax, X_LABELS.get(attack, "severity"))


def _figure(width: float, panels: int):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure  # no pyplot: no global state

    fig = Figure(figsize=(width * panels, 3.4), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(1, panels, squeeze=False, sharey=True)[0]


def _save(fig, path: Path) -> Path:
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=150))
    return path


def write_figures(folders: list[Path], out: Path, title: str = "") -> dict[str, Path]:
    """Figures and the %-table of the attack folders' models (see the module docstring) -> {name: path}."""
    loaded = [load_folder(Path(f)) for f in folders]
    suite = pd.concat([s for s, _ in loaded], ignore_index=True)
    recipes = pd.concat([r for _, r in loaded], ignore_index=True)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    attacks = list(dict.fromkeys(suite["attack"])) if len(suite) else []
    for attack in attacks:
        fig, (ax,) = _figure(4.6, 1)
        _suite_panel(ax, suite, attack)
        ax.set_ylabel("accuracy (%)")
        ax.legend(fontsize="small")
        if title:
            fig.suptitle(title, fontsize="medium")
        paths[attack] = _save(fig, out / f"{attack}.png")
    if attacks:
        fig, axes = _figure(4.2, len(attacks))
        for ax, attack in zip(axes, attacks):
            _suite_panel(ax, suite, attack)
        axes[0].set_ylabel("accuracy (%)")
        axes[0].legend(fontsize="small")
        if title:
            fig.suptitle(title, fontsize="medium")
        paths["attacks"] = _save(fig, out / "attacks.png")
    rows = [[r.attack, f"{r.rate:g}", r.short, int(r.n), 100 * r.accuracy, 100 * r.ci_low, 100 * r.ci_high]
            for r in suite.itertuples()]
    if len(recipes):
        fig, (ax,) = _figure(max(5.0, 1.3 * recipes["recipe"].nunique() + 2), 1)
        names = list(dict.fromkeys(recipes["recipe"]))
        models = list(dict.fromkeys(recipes["short"]))
        width = 0.8 / max(len(models), 1)
        for j, model in enumerate(models):
            sub = recipes[recipes["short"] == model].set_index("recipe")
            xs, ys, lo, hi = [], [], [], []
            for i, recipe in enumerate(names):
                if recipe in sub.index:
                    r = sub.loc[recipe]
                    band = recipe_band(r)
                    xs.append(i + (j - (len(models) - 1) / 2) * width)
                    ys.append(100 * r.accuracy_under_attack)
                    lo.append(100 * (r.accuracy_under_attack - band[0]))
                    hi.append(100 * (band[1] - r.accuracy_under_attack))
                    rows.append([RECIPE_NAMES.get(recipe, recipe), "search", model, int(r.n),
                                 100 * r.accuracy_under_attack, 100 * band[0], 100 * band[1]])
            ax.bar(xs, ys, width, yerr=[lo, hi], capsize=3, label=model)
        ax.set_xticks(range(len(names)), [RECIPE_NAMES.get(n, n) for n in names], fontsize="small")
        ax.set_ylabel("accuracy under attack (%)")
        _axes_style(ax, "TextAttack search (n per bar in the table)")
        ax.legend(fontsize="small")
        if title:
            fig.suptitle(title, fontsize="medium")
        paths["recipes"] = _save(fig, out / "recipes.png")
    cols = ["attack", "rate", "model", "n", "accuracy_pct", "ci_low", "ci_high"]
    table = pd.DataFrame(rows, columns=cols)
    atomic_write(out / "attacks.csv", lambda tmp: table.to_csv(tmp, index=False, float_format="%.2f"))
    md = [f"# Accuracy under attack (%){': ' + title if title else ''}", "",
          "95% Wilson intervals; rate = the attack's severity (swap: fraction of words; confusable: per-letter "
          "probability); 'search' = a TextAttack recipe's accuracy under attack (examples not flipped / n).", "",
          markdown_table(["attack", "rate", "model", "n", "accuracy (95% CI)"],
                         [[a, r, m, str(n), f"{v:.1f} [{lo:.1f}, {hi:.1f}]"] for a, r, m, n, v, lo, hi in rows])]
    paths["markdown"], paths["csv"] = out / "attacks.md", out / "attacks.csv"
    atomic_write_text(paths["markdown"], "\n".join(md) + "\n")
    return paths


@click.command()
@click.argument("folders", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False))
@click.option("--title", default="")
def main(folders, out, title):
    """Figures and %-tables of attack result folders (read only)."""
    for name, path in write_figures([Path(f) for f in folders], Path(out), title).items():
        click.echo(f"{name}: {path}")


if __name__ == "__main__":
    sys.exit(main())
