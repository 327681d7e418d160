"""Sharing PIXAR models: the glue behind `Pixar.save_pretrained / from_pretrained / push_to_hub`.

A shared model is exactly our checkpoint layout (pixar.checkpoint.store), so a hub repo, a local folder written
by `save_pretrained`, a training checkpoint and `pixar convert` output all load the same way:

    model.safetensors   weights (safetensors, never pickle)
    config.json         the whole PixarConfig: model AND render settings (a PIXAR model is useless without
                        the renderer it was trained on), train and adv sections
    meta.json           kind, step, library versions
    README.md           a generated model card: license, architecture, render settings, training data and
                        steps, the stages actually run (from meta.json), a usage snippet, benchmark numbers each
                        with its protocol

`Pixar.from_pretrained(...)` returns the model in eval mode with `.pixar_config` set, so
`Renderer(model.pixar_config.render)` renders text the way the model expects, and `.pixar_meta` (the
checkpoint's meta.json: step, stage), so loading and saving again keeps the training step.
"""
from __future__ import annotations

import json
from pathlib import Path

from huggingface_hub import ModelCard, ModelCardData, snapshot_download

from pixar.checkpoint.store import CheckpointError, build_model, load_meta, save_checkpoint
from pixar.config import PixarConfig, RenderConfig
from pixar.config_io import from_dict

HUB_FILES = ["*.json", "*.safetensors", "README.md"]
LICENSE = "mit"
"""The weights' license as we publish them (the code's: MIT, like the official PIXAR code)."""
CODE = "pixar-harness (PyPI name `pixar-harness`; the `pixar` package and command)"
OFFICIAL_CODE = "https://github.com/april-tools/pixar"
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
    known = training_from_meta(getattr(model, "pixar_meta", None) or {})
    training = {**known, **dict(card_kwargs.get("training") or {})}  # what the caller says wins
    card_kwargs = {**card_kwargs, "training": training}
    meta = {k: training[v] for k, v in (("step", "steps"), ("stage", "stage"), ("converted_from", "converted_from"))
            if v in training}
    card = model_card(model, cfg, **card_kwargs)
    return save_checkpoint(folder, model, cfg, meta={"kind": "pixar", **meta},
                           extra_files={"README.md": str(card)})


def load_for_hub(model_cls, name_or_dir: str, *, revision=None, cache_dir=None, force_download=False,
                 local_files_only=False, token=None, device="cpu"):
    """A local folder (save_pretrained output, a checkpoint, a run folder with `last`, `pixar convert`
    output) or a hub repo id -> a `model_cls` (Pixar) in eval mode with `.pixar_config`."""
    path = Path(name_or_dir)
    if not path.is_dir():
        path = Path(snapshot_download(repo_id=str(name_or_dir), revision=revision, cache_dir=cache_dir,
                                      force_download=force_download, local_files_only=local_files_only, token=token,
                                      allow_patterns=HUB_FILES))
    model, cfg = build_model(model_cls, path, device=device)
    model.pixar_config = cfg
    model.pixar_meta = load_meta(path)
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
    t = cfg.train
    lines += ["", "## Training", "", f"- data: {', '.join(t.data) or 'not stated'} (train.data; `corpus` = the "
              "harness data bundle's book corpus)"]
    lines += [f"- {k}: {_fmt(v)}" for k, v in training.items() if k not in ("stage",)]
    lines += [f"- stages run: {stages_run(training, cfg)}"]
    lines += [f"- recipe: AdamW lr {t.optim.lr}, warm-up {t.optim.warmup_steps}, batch {t.batch_size} x {r.max_positions} "
              f"positions, {t.steps} stage-1 steps planned" + (f"; stage 2: lr {cfg.adv.optim.lr}, alpha {cfg.adv.alpha}, "
                                                              f"{cfg.adv.steps} steps planned"
                                                              if training.get("stage") == 2 else "")]
    name = cfg.name
    lines += ["", "## Usage", "", "```python", "from pixar.model.transformer import Pixar",
              "from pixar.read.text import generate_text", "",
              f'model = Pixar.from_pretrained("{name}")  # a hub repo id or a local folder',
              'print(generate_text(model, "She opened the door and", 8))  # rendered, continued, read back', "```",
              "", f"Code: {CODE}. The paper's official code: {OFFICIAL_CODE}.", "",
              f"License: {LICENSE.upper()}."]
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
    hub_data = [d[3:].split(":")[0] for d in cfg.train.data if d.startswith("hf:")]
    data = ModelCardData(library_name="pixar-harness", license=LICENSE, datasets=hub_data or None,
                         tags=["pixar", "pixel-language-model", "model_hub_mixin"])
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines) + "\n")


def training_from_meta(meta: dict) -> dict:
    """{"steps": N, "stage": k, "converted_from": ...} from a checkpoint's meta.json (what is there)."""
    keys = ("step", "stage", "converted_from")
    out = {("steps" if k == "step" else k): meta[k] for k in keys if k in meta}
    if "steps" in out and "stage" not in out and meta.get("kind") == "pixar" and "converted_from" not in meta:
        out["stage"] = 1  # a training checkpoint without a stage mark is stage 1's (stage 2 marks its own)
    return json.loads(json.dumps(out))


def stages_run(training: dict, cfg: PixarConfig) -> str:
    """The stages this checkpoint went through, from what its meta says (never the preset's plan)."""
    stage, steps = training.get("stage"), training.get("steps")
    if training.get("converted_from"):
        return f"converted from an official checkpoint ({training['converted_from']})"
    if stage == 1:
        return f"stage 1 (maximum likelihood){f': {_fmt(steps)} steps' if steps is not None else ''}; stage 2 not run"
    if stage == 2:
        return (f"stage 1 (maximum likelihood), then stage 2 (adversarial)"
                f"{f': {_fmt(steps)} stage-2 steps' if steps is not None else ''}")
    return "not stated"
