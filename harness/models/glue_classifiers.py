"""GLUE fine-tuning (the paper's classification head and fine-tuning schedules): classifiers, the training loop, save/load.

    PixarClassifier  Pixar backbone -> final-norm hidden state at the last attended position (the final EOS
                     block, index = mask.sum - 1) -> Linear(hidden, num_labels, bias=True). Pairs are rendered
                     a, EOS, b, EOS. Causal attention means pixels after that position cannot change the output.
    GPT2Classifier   transformers' GPT2ForSequenceClassification (pad = EOS, last non-pad token); pairs are
                     joined as a <|endoftext|> b.
Both expose `logits_for(texts) -> [B, num_labels]` where texts are strings or (a, b) pairs.

Loss: cross-entropy, MSE for STS-B (num_labels 1). AdamW (0.9, 0.95), linear warm-up then cosine to
min_lr_ratio*lr, gradient clipping, periodic dev evaluation keeping the best (main-metric) weights.
Saved classifiers: safetensors + JSON (meta.json: kind pixar-classifier | gpt2-classifier, task, labels).
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from pixar.checkpoint.store import CheckpointError, atomic_dir, load_config, load_meta, load_weights, save_checkpoint
from pixar.config import OptimConfig, PixarConfig, preset_dir
from pixar.config_io import ConfigError, apply_override, from_dict, read_yaml_mapping
from pixar.model.transformer import Pixar, load_model, patchify
from pixar.provenance import versions
from pixar.render.renderer import Renderer
from pixar.train.loop import Schedule, StandardStep, adamw_from, every, run_loop

from harness.models.gpt2_baselines import BaselineError, gpt2_tokenizer
from harness.tasks.glue import GlueData, TaskSpec, compute_metrics, get_task

PRESET_DIR = preset_dir("glue")


# ---- schedules -------------------------------------------------------------------------------
@dataclass
class GlueFinetuneConfig:
    """One task's fine-tuning schedule (a `tasks.<task>` entry of configs/glue/*.yaml over its `defaults`)."""

    batch_size: int = 32
    micro_batch_size: int = 0
    """Examples per forward/backward (gradient accumulation); 0 = the whole batch at once."""
    steps: int = 100
    eval_every: int = 20
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=3e-5, warmup_steps=10, weight_decay=0.01))
    seed: int = 42
    eval_batch_size: int = 64
    max_train_examples: int = 0
    """0 = all; else a seeded random subset."""
    max_dev_examples: int = 0
    max_tokens: int = 1024
    """GPT-2 input cap (also capped by the model's n_positions); PIXAR is capped by its strip width."""

    def __post_init__(self) -> None:
        if min(self.batch_size, self.steps, self.eval_every, self.eval_batch_size, self.max_tokens) <= 0:
            raise ConfigError("batch_size, steps, eval_every, eval_batch_size and max_tokens must be positive")
        if self.micro_batch_size < 0:
            raise ConfigError("micro_batch_size must be >= 0")


def load_preset(name_or_path: str, task: str, overrides: list[str] | None = None) -> GlueFinetuneConfig:
    """`configs/glue/<name>.yaml` (or a path): `defaults` merged with `tasks.<task>`, then `key=value` overrides."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = PRESET_DIR / f"{name_or_path}.yaml"
    raw = read_yaml_mapping(path, "GLUE preset", ConfigError, PRESET_DIR)
    unknown = sorted(set(raw) - {"name", "description", "defaults", "tasks"})
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key(s) {unknown}")
    defaults, own = raw.get("defaults") or {}, (raw.get("tasks") or {}).get(task) or {}
    merged = {**defaults, **own}
    if isinstance(defaults.get("optim"), dict) and isinstance(own.get("optim"), dict):  # a task sets a few optim keys
        merged["optim"] = {**defaults["optim"], **own["optim"]}
    for item in overrides or []:
        apply_override(merged, item)
    return from_dict(GlueFinetuneConfig, merged, where=f"{path}:tasks.{task}")


# ---- classifiers -----------------------------------------------------------------------------
def _as_input(item) -> str | tuple[str, str]:
    if isinstance(item, str):
        return item
    if isinstance(item, (tuple, list)) and len(item) == 2 and all(isinstance(t, str) for t in item):
        return (item[0], item[1])
    raise TypeError(f"a classifier input is a string or an (a, b) pair of strings, got {item!r:.80}")


def _cut_words(text: str, budget: int) -> str:
    """text cut to at most `budget` characters, at the last space inside the budget when there is one."""
    if len(text) <= budget:
        return text
    head = text[:budget]
    return head[: head.rfind(" ")] if " " in head else head


class PixarClassifier(nn.Module):
    kind = "pixar-classifier"

    def __init__(self, cfg: PixarConfig, num_labels: int):
        super().__init__()
        self.cfg, self.num_labels = cfg, num_labels
        self.backbone = Pixar(cfg.model)
        self.score = nn.Linear(cfg.model.hidden, num_labels, bias=True)
        self.renderer = Renderer(cfg.render)

    def reset_head(self, generator: torch.Generator) -> None:
        """HF-style head init: normal(0, init_std) weights from `generator`, zero bias."""
        with torch.no_grad():
            self.score.weight.normal_(0.0, self.cfg.model.init_std, generator=generator)
            self.score.bias.zero_()

    def forward(self, pixels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """pixels [B, H, W] in [0, 1], mask [B, T] (1 = text/EOS) -> logits [B, num_labels].
        Reads the hidden state at index mask.sum - 1 (the last EOS). Right padding needs no key mask:
        attention is causal, so that position never sees anything after it."""
        positions = patchify(pixels.float(), self.backbone.position_width)  # [B, T, H*pw]
        last = mask.long().sum(1) - 1  # [B]
        positions = positions[:, : int(last.max()) + 1]  # crop padding: exact under causal attention
        hidden = self.backbone.hidden_states(positions)  # [B, T', C]
        return self.score(hidden[torch.arange(hidden.shape[0], device=hidden.device), last])

    def _fit_pair(self, a: str, b: str) -> tuple[str, str]:
        """Cut both texts to the largest common character budget (at word ends) whose a, EOS, b, EOS fits the
        strip: longest-first truncation, as for GPT-2. (The renderer alone would drop text_b entirely.)"""
        fits = lambda n: not self.renderer.render((_cut_words(a, n), _cut_words(b, n))).truncated[0]
        lo, hi = 0, max(len(a), len(b))  # budget lo fits, hi does not
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if fits(mid) else (lo, mid)
        return _cut_words(a, lo), _cut_words(b, lo)

    def encode(self, texts: list) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        """Render -> (pixels float [B, H, W], mask [B, T], truncated bool [B]) on the model's device.
        Inputs too long for the strip are cut: single texts at the strip's end, pairs longest-first."""
        items = [_as_input(t) for t in texts]
        batch = self.renderer.render_batch(items)
        truncated = batch.truncated
        long_pairs = [i for i, t in enumerate(items) if truncated[i] and not isinstance(t, str)]
        if long_pairs:
            cache = self.__dict__.setdefault("_fitted_pairs", {})  # dev sets are re-encoded at every evaluation
            if len(cache) > 100_000:
                cache.clear()
            for i in long_pairs:
                items[i] = cache[items[i]] = cache.get(items[i]) or self._fit_pair(*items[i])
            batch = self.renderer.render_batch(items)
        device = self.score.weight.device
        return (torch.from_numpy(batch.pixels).to(device, torch.float32), torch.from_numpy(batch.mask).to(device),
                truncated)

    def logits_for(self, texts: list) -> torch.Tensor:
        pixels, mask, _ = self.encode(texts)
        return self(pixels, mask)

    def truncated(self, texts: list) -> np.ndarray:
        return self.renderer.render_batch([_as_input(t) for t in texts]).truncated


class GPT2Classifier(nn.Module):
    kind = "gpt2-classifier"

    def __init__(self, hf_model, tokenizer, max_tokens: int = 1024):
        super().__init__()
        self.hf, self.tokenizer = hf_model, tokenizer
        self.num_labels = hf_model.config.num_labels
        self.max_tokens = min(max_tokens, hf_model.config.n_positions)
        hf_model.config.pad_token_id = tokenizer.eos_token_id  # GPT-2 has no pad token: pad = EOS

    def reset_head(self, generator: torch.Generator) -> None:
        with torch.no_grad():
            self.hf.score.weight.normal_(0.0, self.hf.config.initializer_range, generator=generator)

    def token_ids(self, item) -> tuple[list[int], bool]:
        """Ids of one input (pairs: a EOS b, truncated longest-first) and whether it was truncated."""
        item = _as_input(item)
        enc = lambda s: self.tokenizer.encode(s, add_special_tokens=False) or self.tokenizer.encode(" ")
        if isinstance(item, str):
            ids = enc(item)
            return ids[: self.max_tokens], len(ids) > self.max_tokens
        a, b = enc(item[0]), enc(item[1])
        budget, cut = self.max_tokens - 1, False
        while len(a) + len(b) > budget:
            cut = True
            if len(a) >= len(b):
                a = a[:-1]
            else:
                b = b[:-1]
        return a + [self.tokenizer.eos_token_id] + b, cut

    def encode(self, texts: list) -> tuple[torch.Tensor, torch.Tensor]:
        """-> input_ids, attention_mask [B, L], right-padded with EOS."""
        rows = [self.token_ids(t)[0] for t in texts]
        L = max(len(r) for r in rows)
        ids = torch.full((len(rows), L), self.tokenizer.eos_token_id, dtype=torch.long)
        att = torch.zeros((len(rows), L), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)], att[i, : len(r)] = torch.tensor(r), 1
        device = self.hf.score.weight.device
        return ids.to(device), att.to(device)

    def logits_for(self, texts: list) -> torch.Tensor:
        ids, att = self.encode(texts)
        return self.hf(input_ids=ids, attention_mask=att).logits

    def truncated(self, texts: list) -> np.ndarray:
        return np.array([self.token_ids(t)[1] for t in texts], dtype=bool)


def build_pixar_classifier(checkpoint: str | os.PathLike, spec: TaskSpec, seed: int) -> PixarClassifier:
    """A classifier whose backbone is the stage-1/2 PIXAR checkpoint and whose head is freshly initialised."""
    backbone, cfg = load_model(checkpoint)
    model = PixarClassifier(cfg, spec.num_labels)
    model.backbone.load_state_dict(backbone.state_dict())
    model.reset_head(torch.Generator().manual_seed(seed))
    return model


def build_gpt2_classifier(name_or_dir: str, spec: TaskSpec, seed: int, max_tokens: int = 1024) -> GPT2Classifier:
    """From a local GPT-2 dir (e.g. harness.models.gpt2_baselines.train_gpt2's output) or a hub name (needs the HF cache)."""
    from transformers import AutoTokenizer, GPT2ForSequenceClassification

    try:
        try:
            tokenizer = AutoTokenizer.from_pretrained(name_or_dir)
        except (OSError, ValueError):
            if not Path(name_or_dir).is_dir():
                raise
            # a model folder without tokenizer files: the offline GPT-2 BPE
            tokenizer = gpt2_tokenizer()
        hf = GPT2ForSequenceClassification.from_pretrained(
            name_or_dir, num_labels=spec.num_labels,
            problem_type="regression" if spec.is_regression else "single_label_classification")
    except (OSError, ValueError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise BaselineError(f"{name_or_dir}: cannot load a GPT-2 model + tokenizer ({first})") from None
    model = GPT2Classifier(hf, tokenizer, max_tokens)
    model.reset_head(torch.Generator().manual_seed(seed))
    return model


# ---- save / load -----------------------------------------------------------------------------
def classifier_info(model, spec: TaskSpec, **extra) -> dict:
    return {"task": spec.name, "num_labels": spec.num_labels, "label_names": list(spec.label_names or []),
            "problem_type": "regression" if spec.is_regression else "single_label_classification", **extra}


def save_classifier(model, path: str | os.PathLike, info: dict) -> Path:
    """Atomically write a fine-tuned classifier directory (safetensors + JSON; never pickle)."""
    path = Path(path)
    if isinstance(model, PixarClassifier):
        return save_checkpoint(path, model, model.cfg, meta={"kind": model.kind, "classifier": info})

    with atomic_dir(path) as tmp:
        model.hf.save_pretrained(tmp, safe_serialization=True)
        model.tokenizer.save_pretrained(tmp)
        meta = {"kind": model.kind, "classifier": {**info, "max_tokens": model.max_tokens},
                "versions": versions()}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
    return path


@torch.no_grad()
def predict_logits(model, texts: list, batch_size: int = 32) -> np.ndarray:
    """Raw outputs [N, num_labels] in eval mode (restores the previous train/eval mode)."""
    was_training = model.training
    model.eval()
    try:
        out = [model.logits_for(list(texts[i: i + batch_size])).float().cpu() for i in range(0, len(texts), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros((0, model.num_labels), np.float32)


def load_classifier(path: str | os.PathLike, device: str = "cpu") -> tuple[nn.Module, Callable[..., np.ndarray]]:
    """-> (model in eval mode, predict_proba). predict_proba(texts or (a, b) pairs, batch_size=32) returns
    softmax probabilities [N, num_labels]; for a regression task (STS-B) the predicted score [N, 1]."""
    meta = load_meta(path)
    info = meta.get("classifier") or {}
    if meta.get("kind") == PixarClassifier.kind:
        model = PixarClassifier(load_config(path), int(info["num_labels"]))
        load_weights(model, path)
    elif meta.get("kind") == GPT2Classifier.kind:
        from transformers import AutoTokenizer, GPT2ForSequenceClassification

        model = GPT2Classifier(GPT2ForSequenceClassification.from_pretrained(path),
                               AutoTokenizer.from_pretrained(path), int(info.get("max_tokens", 1024)))
    else:
        raise CheckpointError(f"{path}: not a GLUE classifier (meta kind {meta.get('kind')!r})")
    model = model.to(device).eval()
    model.info = info
    regression = info.get("problem_type") == "regression"

    def predict_proba(texts: list, batch_size: int = 32) -> np.ndarray:
        logits = predict_logits(model, list(texts), batch_size)
        return logits if regression else torch.softmax(torch.from_numpy(logits), -1).numpy()

    return model, predict_proba


# ---- training --------------------------------------------------------------------------------
def evaluate(model, data: GlueData, batch_size: int = 64) -> dict[str, float]:
    spec = get_task(data.task)
    out = predict_logits(model, data.texts, batch_size)
    preds = out[:, 0] if spec.is_regression else out.argmax(-1)
    return compute_metrics(spec.name, preds, data.labels)


def task_loss(spec: TaskSpec, logits: torch.Tensor, labels: np.ndarray) -> torch.Tensor:
    y = torch.from_numpy(labels).to(logits.device)
    return F.mse_loss(logits[:, 0], y.float()) if spec.is_regression else F.cross_entropy(logits, y.long())


@dataclass
class FinetuneResult:
    best_step: int
    best: dict
    """dev split -> metrics, at the evaluation with the best main metric (its weights are kept)."""
    best_per_metric: dict
    """dev split -> metric -> {value, step}: each metric's own maximum (as the official code logs)."""
    history: list = field(default_factory=list)
    train_seconds: float = 0.0


def _score(metrics: dict, name: str) -> float:
    v = metrics.get(name, math.nan)
    return -math.inf if v is None or math.isnan(v) else v


def finetune(model, spec: TaskSpec, train: GlueData, devs: dict[str, GlueData], cfg: GlueFinetuneConfig,
             log: Callable[[str], None] | None = None, progress: bool = False) -> FinetuneResult:
    """Fine-tune in place on pixar.train.loop's loop (its AdamW policy and warm-up + cosine schedule); on return the
    model holds the best-dev weights. `devs`: split -> data, the first split's main metric selects the best
    evaluation (MNLI: matched)."""
    if len(train) == 0 or not devs or any(len(d) == 0 for d in devs.values()):
        raise ValueError(f"{spec.name}: empty training set or no dev data")
    gen = torch.Generator().manual_seed(cfg.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = adamw_from(params, cfg.optim)
    micro = cfg.micro_batch_size or cfg.batch_size
    cursor = {"order": torch.randperm(len(train), generator=gen), "at": 0}
    best_key = next(iter(devs))
    best = {"score": -math.inf, "state": None}
    result = FinetuneResult(best_step=0, best={}, best_per_metric={})
    losses, t0 = [], time.perf_counter()

    def micro_batches(step: int) -> list[tuple[list[int], float]]:
        idx = []
        while len(idx) < cfg.batch_size:  # epochs of seeded permutations, as an infinite loader
            if cursor["at"] == len(cursor["order"]):
                cursor["order"], cursor["at"] = torch.randperm(len(train), generator=gen), 0
            take = cursor["order"][cursor["at"]: cursor["at"] + cfg.batch_size - len(idx)].tolist()
            idx += take
            cursor["at"] += len(take)
        return [(idx[i: i + micro], len(idx[i: i + micro]) / len(idx)) for i in range(0, len(idx), micro)]

    def loss_fn(chunk: list[int]) -> torch.Tensor:
        model.train()
        return task_loss(spec, model.logits_for([train.texts[j] for j in chunk]), train.labels[chunk])

    def on_step(step: int, m: dict) -> None:
        losses.append(m["loss"])
        if not every(cfg.eval_every, step, cfg.steps):
            return
        dev_metrics = {k: evaluate(model, d, cfg.eval_batch_size) for k, d in devs.items()}
        entry = {"step": step, "lr": m["lr"], "train_loss": float(np.mean(losses)), "dev": dev_metrics,
                 "seconds": round(time.perf_counter() - t0, 2)}
        result.history.append(entry)
        losses.clear()
        for split, ms in dev_metrics.items():
            for name, v in ms.items():
                cur = result.best_per_metric.setdefault(split, {}).get(name)
                if cur is None or _score(ms, name) > _score({name: cur["value"]}, name):
                    result.best_per_metric[split][name] = {"value": v, "step": step}
        score = _score(dev_metrics[best_key], spec.main_metric)
        if best["state"] is None or score > best["score"]:
            best["score"], result.best_step, result.best = score, step, dev_metrics
            best["state"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if log:
            shown = ", ".join(f"{s}:{n}={v:.4f}" for s, ms in dev_metrics.items() for n, v in ms.items())
            log(f"{spec.name} step {step}/{cfg.steps} loss {entry['train_loss']:.4f} dev {shown}")

    run_loop(StandardStep(params, loss_fn, opt, micro_batches, cfg.optim.grad_clip), 0, cfg.steps,
             schedules=[(opt, Schedule.of(cfg))], hooks=[on_step], desc=f"glue {spec.name}", progress=progress)
    model.load_state_dict(best["state"])
    result.train_seconds = round(time.perf_counter() - t0, 2)
    return result
