"""The demo's configuration and compute (harness.study.demo runs it): the two models, the phases' budgets and
their matching in a named unit before training (<out>/matching.json), and what training used after it, with the
accuracy over fine-tuning seeds (<out>/training.json). See harness.study.demo's docstring for the design."""
from __future__ import annotations

import json
from pathlib import Path

from pixar.config import PixarConfig, preset_path
from pixar.config_io import atomic_write_text
from pixar.data.stream import build_splits
from pixar.model.transformer import Pixar

from harness.models.compute import (DEFAULT_UNIT, UNITS, Budget, ParamCounts, budget, check_unit, gpt2_params,
                                    match_record, pixar_params, steps_for)
from harness.models.gpt2_baselines import gpt2_tokenizer
from harness.models.gpt2_pretrain import GPT2BaselineConfig, build_gpt2, epoch_batches
from harness.models.gpt2_vocab import RestrictedTokenizer
from harness.models.plateau import story_split
from harness.results.schema import read_jsonl
from harness.results.seeds import seed_summary
from harness.robustness.tasks import load_task_data

PIXAR_PRESET, GPT2_PRESET = "pixar-tiny", "gpt2-tiny"
PIXAR_MODEL = ["model.layers=2", "model.max_positions=64", "render.max_positions=64"]  # pixar-tiny, 2 of 4 layers
# gpt2-tiny with 2 of 4 layers (the same non-embedding size as PIXAR_MODEL: 429,696 vs 426,624 parameters) and its
# output layer restricted to the BPE tokens of the demo's stories (harness.models.gpt2_vocab: tokenization unchanged,
# 28 task tokens + EOS + one UNSEEN id instead of 50,257 rows). Why: the full output layer is ~90% of this GPT-2's
# matmuls and made a fine-tuning step ~0.6 s on CPU (18 CPU-minutes for a GPT-2 that learns the task); restricted,
# a step costs about what PIXAR's does, and no task token is lost (bAbI task 1 text uses no other token).
GPT2_MODEL = ["model.n_layer=2", "vocab=corpus"]
PIXAR_PRETRAIN = PIXAR_MODEL + ["train.steps=500", "train.optim.warmup_steps=25", "train.eval_every=100", "train.sample_every=0",
                  "train.save_every=500"]
PIXAR_STAGE2: list[str] = []  # no stage 2 (not what the demo is about); e.g. ["adv.steps=20", ...] adds one:
STAGE2_EXAMPLE = ["adv.steps=20", "adv.optim.warmup_steps=10", "adv.alpha_warmup=10", "adv.batch_size=8",
                "adv.num_samples=8", "adv.save_every=20", "adv.sample_every=0"]
UNIT = DEFAULT_UNIT  # the compute both phases are matched in (harness.models.compute)
# Fine-tuning: PIXAR_FT_STEPS x FT_BATCH is PIXAR's cap; GPT-2's cap is the same non-embedding FLOPs. Each model is
# trained to a plateau within its cap: DEV_FRACTION of the training stories held out, scored every 1/EVALS of the
# cap (first-word accuracy on the dev prompts, the answer's dev loss breaking ties), stop after PATIENCE evaluations
# without improvement, best weights kept; one such run per lr of FT_LRS, the best dev score wins (so each model gets
# its own lr from the same grid).
PIXAR_FT_STEPS, FT_BATCH, FT_LRS = 3000, 8, (3e-3, 1e-2, 2e-2)
DEV_FRACTION, EVALS, PATIENCE = 0.1, 20, 4
# no early stop in the first half of the cap: PIXAR writes no legible answer for its first ~1,500 steps (dev accuracy
# 0.0 while its dev loss flattens), and a plateau rule alone stopped two of its three lr runs there
MIN_FRACTION = 0.5
SEEDS = 1  # fine-tuning seeds per model (`--seeds`): 3 seeds take ~3x the fine-tuning time
THREADS = 1  # per model: the PIXAR and GPT-2 chains run side by side, one core each (tiny GEMMs gain little from 2)
ATTACKS, RATES, LIMIT = "confusable,swap", "0,0.1,0.3", 200


# ---- compute matching ---------------------------------------------------------------------------
def pixar_budget(overrides: list[str], steps: int, batch: int) -> tuple[Budget, ParamCounts]:
    """PIXAR's budget: every row is max_positions long."""
    cfg = PixarConfig.from_yaml(preset_path(PIXAR_PRESET), [o for o in overrides if o.startswith(("model.", "render."))])
    params = pixar_params(Pixar(cfg.model))
    return budget(params, steps, batch, steps * batch * cfg.model.max_positions), params


def gpt2_step_widths(texts: list[str], tokenizer, n_positions: int, batch: int, seed: int, steps: int) -> list[int]:
    """Padded width of each of the first `steps` batches harness.models.gpt2_pretrain.GPT2Pretrain (and
    harness.models.finetune.finetune_gpt2) draws: texts cut to n_positions - 1 tokens, + EOS."""
    limit = n_positions - 1
    lens = [min(len(x), limit) + 1 for x in tokenizer(texts)["input_ids"]]
    batches = epoch_batches(len(lens), seed, batch)
    return [max(lens[i] for i in next(batches)) for _ in range(steps)]


def gpt2_counts(overrides: list[str], vocab_size: int, eos_id: int) -> tuple[ParamCounts, int]:
    cfg = GPT2BaselineConfig.from_yaml(preset_path(GPT2_PRESET), overrides)
    return gpt2_params(build_gpt2(cfg, vocab_size, eos_id, seed=0)), cfg.model.n_positions


def match_phase(phase: str, ref: Budget, texts: list[str], tokenizer, batch: int, seed: int, unit: str) -> dict:
    """GPT-2 steps whose cost in `unit` is closest to PIXAR's `ref`: estimated from one epoch's mean width, then
    chosen on the exact widths of the batches drawn (within one step of equal); those steps' budget in every unit
    is matching.json's entry."""
    params, n_pos = gpt2_counts(GPT2_MODEL, len(tokenizer), tokenizer.eos_token_id)
    probe = gpt2_step_widths(texts, tokenizer, n_pos, batch, seed, max(1, len(texts) // batch))
    guess = steps_for(ref.get(unit), unit, params, batch, sum(probe) / len(probe))
    widths = gpt2_step_widths(texts, tokenizer, n_pos, batch, seed, guess + guess // 4 + 8)
    cost = [budget(params, n, batch, batch * sum(widths[:n])).get(unit) for n in range(1, len(widths) + 1)]
    steps = 1 + min(range(len(cost)), key=lambda i: abs(cost[i] - ref.get(unit)))
    widths = widths[:steps]
    got = budget(params, steps, batch, batch * sum(widths))
    flops = "total_flops" if unit == "total_flops" else "non_embedding_flops"
    return match_record(phase, unit, ref, got) | {  # the flat keys the table reads
        "pixar_steps": ref.steps, "pixar_batch": ref.examples // max(ref.steps, 1), "pixar_flops": ref.get(flops),
        "gpt2_steps": steps, "gpt2_batch": batch, "gpt2_flops": got.get(flops),
        "gpt2_mean_padded_tokens": sum(widths) / steps, "gpt2_params": vars(params)}


def compute_matching(stories_train: list[str], ft_texts: list[str], tokenizer, seed: int, unit: str = UNIT) -> dict:
    """Pretraining (stage 1) and fine-tuning matches in `unit`, every unit recorded; see the module docstring.
    `ft_texts`: GPT-2's fine-tuning texts without the dev stories (what its batches are drawn from)."""
    check_unit(unit)
    pcfg = PixarConfig.from_yaml(preset_path(PIXAR_PRESET), PIXAR_PRETRAIN)
    pre_ref, pparams = pixar_budget(PIXAR_PRETRAIN, pcfg.train.steps, pcfg.train.batch_size)
    pre = match_phase("pretraining", pre_ref, stories_train, tokenizer, pcfg.train.batch_size, seed, unit)
    ft_ref, _ = pixar_budget(PIXAR_PRETRAIN, PIXAR_FT_STEPS, FT_BATCH)
    ft = match_phase("fine-tuning", ft_ref, ft_texts, tokenizer, FT_BATCH, seed, unit)
    label = {"non_embedding_flops": "non-embedding FLOPs", "total_flops": "total FLOPs", "examples": "examples seen"}
    return {"unit": unit, "units": list(UNITS),
            "rule": f"{label[unit]} (executed: 6 x parameters x positions run, padding included; non-embedding = "
                    "without token/position embeddings, GPT-2's tied output layer and PIXAR's pixel projections)",
            "pixar_params": vars(pparams), "gpt2_vocab": getattr(tokenizer, "info", lambda: {"vocab": "full"})(),
            "pretraining": pre | {"training": "the matched budget, run in full (no early stopping); validation "
                                              "loss logged in each run's metrics.jsonl"},
            "finetuning": ft | {"training": f"cap = the matched budget; trained to a plateau on a dev split "
                                            f"({DEV_FRACTION:g} of the stories): lr from {list(FT_LRS)}, "
                                            f"patience {PATIENCE} x cap/{EVALS} steps, best weights kept; the "
                                            "budget used is in each attack run's summary (finetune_summary)"}}

def demo_matching(out: Path, data_dir: str | None, stories: Path, seed: int) -> dict:
    """compute_matching on the demo's data: GPT-2's pretraining chunks and bAbI fine-tuning texts (dev held out),
    with the corpus-restricted tokenizer train_gpt2 builds from the same chunks."""
    sets = GPT2_MODEL + [f"train.seed={seed}", f"train.data=[{stories}]"]
    cfg = GPT2BaselineConfig.from_yaml(preset_path(GPT2_PRESET), sets)
    splits = build_splits(cfg.train, data_dir)
    tok = gpt2_tokenizer(data_dir)
    if cfg.vocab == "corpus":
        tok = RestrictedTokenizer.from_texts(tok, list(splits.train) + list(splits.val))
    babi = load_task_data("babi", LIMIT, data_dir, babi_dir=None if data_dir else str(out / "babi"), with_train=True)
    train, _ = story_split(babi.train_pairs, DEV_FRACTION)
    matching = compute_matching(list(splits.train), [f"{p} {a}" for p, a in train], tok, seed)
    unseen, total = tok.unseen_share([e["text"] for e in babi.examples]) if cfg.vocab == "corpus" else (0, 0)
    matching["gpt2_vocab"] |= {"unseen_test_prompt_tokens": unseen, "test_prompt_tokens": total}
    atomic_write_text(out / "matching.json", json.dumps(matching, indent=2))
    return matching


# ---- the runs' folders, what training used, and the spread over seeds ----------------------------
def seed_dir(model: str, seed: int, base_seed: int) -> str:
    """attack-<model> for the first seed (the table's run), attack-<model>-seed<k> for the others."""
    return f"attack-{model}" if seed == base_seed else f"attack-{model}-seed{seed}"

def training_record(out: Path, seed: int, seeds: int) -> dict:
    """<out>/training.json from the attack runs' summaries and predictions: per model and fine-tuning seed the lr
    picked, the dev curve's best step, the budget used (harness.models.compute units) against the cap; per model
    and (attack, rate) the accuracy per seed, its mean, sd and the seed x example bootstrap interval
    (harness.results.seeds)."""
    record = {"seeds": list(range(seed, seed + seeds)), "models": {}}
    for model in ("pixar", "gpt2"):
        runs, flags = [], []
        for k in range(seeds):
            folder = out / seed_dir(model, seed + k, seed)
            summary = json.loads((folder / "summary.json").read_text())
            info = next((m.get("info", {}) for m in summary.get("models", []) if m.get("info", {}).get("finetune_summary")), {})
            fs = info.get("finetune_summary", {})
            chosen = fs.get("chosen", {})
            runs.append({"seed": seed + k, "lr": fs.get("lr"), "best_step": chosen.get("best_step"),
                         "steps_run": chosen.get("steps_run"), "cap_steps": fs.get("cap_steps"),
                         "stopped_early": chosen.get("stopped_early"),
                         "best_dev_accuracy": chosen.get("best_dev_accuracy"), "best_dev_loss": chosen.get("best_dev_loss"),
                         "used_to_best": chosen.get("used_to_best"), "used_to_stop": chosen.get("used_to_stop"),
                         "used_sweep_total": fs.get("used_sweep_total"),
                         "sweep": [{k2: r.get(k2) for k2 in ("lr", "best_dev_accuracy", "best_dev_loss", "best_step",
                                                             "steps_run")}
                                   for r in fs.get("sweep", [])]})
            rows = read_jsonl(folder / "babi-qa1_predictions.jsonl")
            flags.append({(r["attack"], float(r["rate"]), int(r["example"])): bool(r["correct"]) for r in rows})
        conditions = sorted({(a, r) for a, r, _ in flags[0]})
        per = {}
        for a, r in conditions:
            examples = sorted(i for a2, r2, i in flags[0] if (a2, r2) == (a, r))
            per[f"{a} {r:g}"] = seed_summary([[f[(a, r, i)] for i in examples] for f in flags], seed=seed)
        record["models"][model] = {"finetuning": runs, "accuracy": per}
    atomic_write_text(out / "training.json", json.dumps(record, indent=2))
    return record


def training_lines(record: dict) -> list[str]:
    """Console lines: per model and seed the lr sweep on dev, where the best dev score was, the budget used to it
    (non-embedding FLOPs, examples) against the cap; then the clean accuracy over seeds."""
    def pct(x):
        return "–" if x is None else f"{100 * x:.1f}%"

    lines = []
    for model, name in (("pixar", "PIXAR"), ("gpt2", "GPT-2")):
        m = record["models"][model]
        for r in m["finetuning"]:
            sweep = ", ".join(f"{x['lr']:g} (dev {pct(x.get('best_dev_accuracy'))})" for x in r["sweep"])
            used = r.get("used_to_best") or {}
            total = r.get("used_sweep_total") or {}
            lines.append(
                f"{name} seed {r['seed']}: lr {r['lr']:g} picked from {sweep}; best dev at step {r['best_step']}, "
                f"stopped at {r['steps_run']} of a {r['cap_steps']}-step cap; used to the best "
                f"{used.get('non_embedding_flops', 0) / 1e12:.2f} non-embedding TFLOP, {used.get('examples', 0):,} "
                f"examples (the sweep's {len(r['sweep'])} runs: {total.get('non_embedding_flops', 0) / 1e12:.2f} TFLOP)")
        clean = next((v for k, v in m["accuracy"].items() if k.endswith(" 0")), None)
        if clean is not None:
            iv = clean["interval"]
            lines.append(f"{name} clean accuracy over {clean['seeds']} seed(s): mean {100 * clean['mean']:.1f}% "
                         f"[{100 * iv['low']:.1f}, {100 * iv['high']:.1f}] (bootstrap over seeds and examples)"
                         + (f", per seed {', '.join(f'{100 * x:.1f}' for x in clean['per_seed'])}, sd "
                            f"{100 * clean['sd']:.1f}" if clean["seeds"] > 1 else ""))
    return lines
