"""Sharing PIXAR models: the glue behind `Pixar.save_pretrained / from_pretrained / push_to_hub`.

A shared model is exactly our checkpoint layout (pixar.checkpoint.store), so a hub repo, a local folder written
by `save_pretrained`, a training checkpoint and `pixar convert` output all load the same way:

    model.safetensors   weights (safetensors, never pickle)
    config.json         the whole PixarConfig: model AND render settings (a PIXAR model is useless without
                        the renderer it was trained on), train and adv sections
    meta.json           kind, step, library versions
    README.md           a generated model card: architecture, render settings, training steps, benchmark
                        numbers each with its protocol

`Pixar.from_pretrained(...)` returns the model in eval mode with `.pixar_config` set, so
`Renderer(model.pixar_config.render)` renders text the way the model expects.
"""
from __future__ import annotations

import json
from pathlib import Path

from huggingface_hub import ModelCard, ModelCardData, snapshot_download

from pixar.checkpoint.store import CheckpointError, load_meta, load_model, save_checkpoint
from pixar.config import PixarConfig, RenderConfig, from_dict

HUB_FILES = ["*.json", "*.safetensors", "README.md"]
"""What `from_pretrained` downloads from a hub repo (never pickles)."""


def pixar_config_for(model, config=None) -> PixarConfig:
    """The PixarConfig to store with `model`: `config` (a PixarConfig or its dict), else the one it was
    loaded with, else a default one whose render geometry matches the model's."""
    if config is None:
        config = getattr(model, "pixar_config", None)
    if isinstance(config, dict):
        config = from_dict(PixarConfig, config, where="save_pretrained(config=...)")
    if config is None:
        m = model.cfg
        config = PixarConfig(model=m, render=RenderConfig(patch_size=m.patch_size, patch_len=m.patch_len,
                                                          max_positions=m.max_positions))
    if config.model != model.cfg:
        raise CheckpointError(f"save_pretrained: config.model {config.model} does not match the model's {model.cfg}")
    return config


def save_for_hub(model, folder: Path, cfg: PixarConfig | None, card_kwargs: dict) -> Path:
    """Write our layout + README.md model card into `folder`, atomically (replacing what was there)."""
    cfg = pixar_config_for(model, cfg)
    training = dict(card_kwargs.get("training") or {})
    meta = {"step": training["steps"]} if "steps" in training else {}
    card = model_card(model, cfg, **card_kwargs)
    return save_checkpoint(folder, model, cfg, meta={"kind": "pixar", **meta},
                           extra_files={"README.md": str(card)})


def load_for_hub(name_or_dir: str, *, revision=None, cache_dir=None, force_download=False, local_files_only=False,
                 token=None, device="cpu"):
    """A local folder (save_pretrained output, a checkpoint, a run folder with `last`, `pixar convert`
    output) or a hub repo id -> Pixar in eval mode with `.pixar_config`."""
    path = Path(name_or_dir)
    if not path.is_dir():
        path = Path(snapshot_download(repo_id=str(name_or_dir), revision=revision, cache_dir=cache_dir,
                                      force_download=force_download, local_files_only=local_files_only, token=token,
                                      allow_patterns=HUB_FILES))
    model, cfg = load_model(path, device=device)
    model.pixar_config = cfg
    return model


def _fmt(value) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def model_card(model, cfg: PixarConfig | None = None, training: dict | None = None,
               benchmarks: list[dict] | None = None, **_ignored) -> ModelCard:
    """A model card: architecture, render settings, training (steps etc.) and benchmark numbers.
    benchmarks: [{"task", "metric", "value", "protocol", optional "interval", "n"}]; an entry without a
    protocol is refused (every number we publish says how it was measured)."""
    cfg = pixar_config_for(model, cfg)
    m, r = cfg.model, cfg.render
    lines = [f"# {cfg.name}", "",
             "A PIXAR model (Tai et al., *PIXAR: Auto-Regressive Language Modeling in Pixel Space*, "
             "ACL Findings 2024): a LLaMA-style decoder that predicts the next 8x16 block of binary pixels "
             "of rendered text. Load with `pixar.model.transformer.Pixar.from_pretrained(...)` from the pixar-harness; "
             "render input with `pixar.render.renderer.Renderer(model.pixar_config.render)`.", "",
             "## Architecture", "", "| field | value |", "|---|---|",
             f"| parameters | {_fmt(model.num_params())} |"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in vars(m).items()]
    lines += ["", "## Render settings (the model only reads text rendered this way)", "",
              "| field | value |", "|---|---|"]
    lines += [f"| {k} | {v if v is not None else 'default (Pixeloid Sans / GoNotoCurrent)'} |" for k, v in vars(r).items()]
    training = dict(training or {})
    lines += ["", "## Training", ""]
    if training:
        lines += [f"- {k}: {_fmt(v)}" for k, v in training.items()]
    else:
        lines += ["- not stated"]
    t = cfg.train
    lines += [f"- stage-1 recipe: AdamW lr {t.optim.lr}, warm-up {t.optim.warmup_steps}, batch {t.batch_size} x "
              f"{r.max_positions} positions, {t.steps} steps planned; stage 2: {cfg.adv.steps} steps, "
              f"alpha {cfg.adv.alpha}"]
    lines += ["", "## Benchmarks", ""]
    if benchmarks:
        lines += ["| task | metric | value | protocol |", "|---|---|---|---|"]
        for b in benchmarks:
            if not b.get("protocol"):
                raise ValueError(f"benchmark entry {b} has no 'protocol' (say how the number was measured)")
            value = f"{b['value']}" + (f" ({b['interval']})" if b.get("interval") else "") + \
                (f", n={b['n']}" if b.get("n") else "")
            lines.append(f"| {b.get('task', '')} | {b.get('metric', '')} | {value} | {b['protocol']} |")
    else:
        lines += ["No benchmark numbers were given for this checkpoint."]
    data = ModelCardData(library_name="pixar-harness", tags=["pixar", "pixel-language-model", "model_hub_mixin"])
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines) + "\n")


def card_training_from_checkpoint(path) -> dict:
    """{"steps": N, ...} from a checkpoint's meta.json, for model_card_kwargs={"training": ...}."""
    meta = load_meta(path)
    keys = ("step", "stage", "converted_from")
    out = {("steps" if k == "step" else k): meta[k] for k in keys if k in meta}
    return json.loads(json.dumps(out))
