"""The stage-2 step curve (the paper's open question 1: how do readability and accuracy move during stage 2?).

`curve_evaluator(cfg)` builds what `pixar train --stage 2` hands to pixar.train.stage2.train_stage2(evaluate=...): a
fixed set of cfg.adv.eval_prompts prompts of the official protocol (harness.eval.protocols, `paper`, read by the
glyph decoder only, so it is cheap; capped to cfg.adv.eval_context_cap context positions when set), scored on the
live generator every cfg.adv.eval_every steps. Its values land in metrics.jsonl as curve_readability, curve_acc
(and curve_n); the protocol label is recorded once as the run's `curve.json`. `plot_curve` draws them against the
step, with 95% Wilson bands.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Callable

from pixar.config import PixarConfig
from pixar.config_io import atomic_write, atomic_write_text
from pixar.paths import with_fonts

from harness.eval.protocols import build_vocabulary, get_protocol, load_examples, with_context_cap
from harness.models.pixar_runner import PixarRunner
from harness.results import stats
def curve_spec(cfg: PixarConfig):
    spec = dataclasses.replace(get_protocol(cfg.adv.eval_task, "paper"), engines=("glyph",))
    spec = dataclasses.replace(spec, name=f"{spec.name}[glyph]")
    return with_context_cap(spec, cfg.adv.eval_context_cap or None)


def curve_evaluator(cfg: PixarConfig, out_dir: str | os.PathLike, data_dir: str | os.PathLike | None = None,
                    seed: int = 0, batch_size: int = 32) -> Callable:
    """evaluate(generator) -> {"readability", "acc", "n"} on a fixed prompt set (see the module docstring)."""
    spec = curve_spec(cfg)
    examples = load_examples(spec, data_dir, seed)
    vocab = build_vocabulary(spec, examples, data_dir)
    prompts = examples[: cfg.adv.eval_prompts]
    run_cfg = dataclasses.replace(cfg, render=with_fonts(cfg.render, data_dir))
    atomic_write_text(Path(out_dir) / "curve.json", json.dumps(
        {"protocol": spec.label, "spec": spec.to_dict(), "n": len(prompts), "seed": seed,
         "fields": {"curve_readability": "readability", "curve_acc": "accuracy (glyph read-back)"}}, indent=2))
    state: dict = {}

    def evaluate(generator) -> dict[str, float]:
        if "runner" not in state:
            state["runner"] = PixarRunner(generator, run_cfg, name="stage-2 generator", ocr="glyph",
                                          batch_size=batch_size, device=next(generator.parameters()).device)
        runner = state["runner"]
        runner.model = generator
        rows = runner.protocol_eval(spec, prompts, vocab)
        n = len(rows)
        return {"readability": sum(bool(r["readable"]) for r in rows) / n,
                "acc": sum(bool(r["correct_union"]) for r in rows) / n, "n": n}

    return evaluate


def read_curve(run_dir: str | os.PathLike) -> list[dict]:
    """[{step, readability, acc, n}] from a stage-2 run's metrics.jsonl (the steps that carry curve values)."""
    out = []
    for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines():
        r = json.loads(line)
        if "curve_readability" in r:
            out.append({"step": r["step"], "readability": r["curve_readability"], "acc": r["curve_acc"],
                        "n": int(r["curve_n"])})
    return out


def plot_curve(runs: dict[str, str | os.PathLike | list[dict]], out_png: str | os.PathLike, title: str = "") -> Path:
    """Readability and accuracy vs stage-2 step, one line per run ({label: run folder, or its read_curve points}),
    95% Wilson bands."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharex=True)
    for label, run in runs.items():
        points = run if isinstance(run, list) else read_curve(run)
        steps = [p["step"] for p in points]
        for ax, key in zip(axes, ("readability", "acc")):
            ivs = [stats.wilson_interval(round(p[key] * p["n"]), p["n"]) for p in points]
            ax.plot(steps, [iv.estimate for iv in ivs], marker="o", label=label)
            ax.fill_between(steps, [iv.low for iv in ivs], [iv.high for iv in ivs], alpha=0.2)
    for ax, name in zip(axes, ("readability", "accuracy (glyph)")):
        ax.set_xlabel("stage-2 step")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out = Path(out_png)
    atomic_write(out, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)
    return out
