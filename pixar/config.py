"""Dataclass configs: the single source of truth. YAML presets in `configs/` are serialised instances.

    RenderConfig   how text becomes an 8-px-high binary strip (font, geometry, EOS)
    ModelConfig    the decoder-only transformer (hidden, layers, heads, SwiGLU width, RoPE, ...)
    OptimConfig    AdamW + warm-up/cosine schedule + clipping: embedded as `optim` in every training config
    TrainConfig    stage 1 (maximum likelihood) optimisation and data
    AdvConfig      stage 2 (adversarial) optimisation
    PixarConfig    all of the above; what `--config file.yaml` loads and what a checkpoint stores

Presets: preset_dir / preset_path / preset_names find the shipped YAML files. Reading YAML, `--set` overrides,
from_dict, ConfigError and atomic writes live in pixar.config_io (which imports nothing from here).
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pixar.bounds import ADV_BOUNDS, MODEL_BOUNDS, OPTIM_BOUNDS, RENDER_BOUNDS, TRAIN_BOUNDS, out_of_bounds
from pixar.config_io import ConfigError, atomic_write_text, dataclass_from_yaml


@dataclass
class RenderConfig:
    """Paper geometry (the paper's rendering): Pixeloid Sans at its native 9-px em, text origin (2, -2)."""

    font: str | None = None
    """Path to the main font; None = Pixeloid Sans v0.5 from the installed `pixar-render` package or $PIXAR_DATA."""
    fallback_font: str | None = None
    """Font for characters the main font lacks; None = GoNotoCurrent when found, else only a replacement glyph."""
    font_size: int = 9
    """Pillow size in px; 9 = Pixeloid's native em (Pango's 8 pt at 80 dpi, hinted to the grid)."""
    dpi: int = 80
    """The authors' renderer draws 8 pt at this resolution (Pango's em = 8 * dpi / 72 px); 80 = the paper.
    Other settings (PIXEL's 16-px patches, 32-px patches): pixar.render.settings.render_config(name)."""
    patch_size: int = 8
    """Height of the strip and width of one patch, in pixels."""
    patch_len: int = 2
    """Patches per model position: one position is patch_size x (patch_size * patch_len) pixels."""
    max_positions: int = 360
    """Positions per rendered sequence (paper: 360 = 720 patches)."""
    text_x: int = 2
    text_y: int = -2
    eos_gap: int = 2
    """White pixels between the text's advance and the earliest EOS column."""
    whitespace: str = "pango"
    """Tabs, line breaks, Unicode spaces, invisible characters: "pango" = what the authors' renderer
    does (the faithful default: tab stops, "\\r" starts a second line and the two are centred on the
    strip, ...); "spaces" = each
    becomes one space and invisible characters are dropped (docs/rendering.md)."""

    def __post_init__(self) -> None:
        if self.whitespace not in ("pango", "spaces"):
            raise ConfigError(f"render.whitespace must be 'pango' or 'spaces', got {self.whitespace!r}")
        for name in ("font_size", "patch_size", "patch_len", "max_positions", "dpi"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"render.{name} must be positive, got {getattr(self, name)}")
        if self.max_positions < 2:
            raise ConfigError("render.max_positions must be at least 2 (one text position + EOS)")
        check_bounds("render", self, RENDER_BOUNDS)

    @property
    def em_px(self) -> float:
        """Pango's em in px: the authors' renderer draws 8 pt at `dpi`."""
        return 8 * self.dpi / 72

    @property
    def position_width(self) -> int:
        return self.patch_size * self.patch_len

    @property
    def width(self) -> int:
        return self.max_positions * self.position_width


@dataclass
class ModelConfig:
    """LLaMA-style decoder over pixel positions (the paper's model). Defaults = the paper's 113M model."""

    hidden: int = 768
    layers: int = 12
    heads: int = 12
    ffn: int = 3072
    """SwiGLU intermediate width."""
    patch_size: int = 8
    patch_len: int = 2
    max_positions: int = 360
    rope_theta: float = 10000.0
    norm_eps: float = 1e-6
    init_std: float = 0.02

    def __post_init__(self) -> None:
        for name in ("hidden", "layers", "heads", "ffn", "patch_size", "patch_len", "max_positions"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"model.{name} must be positive, got {getattr(self, name)}")
        check_bounds("model", self, MODEL_BOUNDS)
        if self.hidden % self.heads:
            raise ConfigError(f"model.hidden ({self.hidden}) must be divisible by model.heads ({self.heads})")
        if (self.hidden // self.heads) % 2:
            raise ConfigError(f"head dim {self.hidden // self.heads} must be even for RoPE")

    @property
    def pixels_per_position(self) -> int:
        return self.patch_size * self.patch_size * self.patch_len

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads


def check_bounds(section: str, obj, bounds: dict) -> None:
    """One-line ConfigError naming `section.name` for the first value of `obj` outside `bounds` (pixar.bounds)."""
    problem = out_of_bounds(section, obj, bounds)
    if problem:
        raise ConfigError(problem)


@dataclass
class OptimConfig:
    """The one optimiser + schedule section (pixar.train.loop: AdamW with weight decay on every parameter; linear
    warm-up from 1e-5*lr over warmup_steps, then cosine to min_lr_ratio*lr; gradients clipped to grad_clip)."""

    lr: float = 3e-4
    """Peak learning rate."""
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    """Global gradient-norm clip; 0 = no clipping (the norm is still logged)."""

    def __post_init__(self) -> None:
        check_bounds("optim", self, OPTIM_BOUNDS)
        finite = all(math.isfinite(v) for v in (self.lr, self.min_lr_ratio, self.beta1, self.beta2, self.eps,
                                                self.weight_decay, self.grad_clip))
        if not finite or self.lr <= 0 or self.eps <= 0 or self.weight_decay < 0 or self.grad_clip < 0:
            raise ConfigError("optim: lr and eps must be positive, weight_decay and grad_clip >= 0, all finite")
        if self.warmup_steps < 0 or not 0 <= self.min_lr_ratio <= 1:
            raise ConfigError("optim: warmup_steps must be >= 0 and min_lr_ratio in [0, 1]")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ConfigError("optim: beta1 and beta2 must be in [0, 1)")


@dataclass
class TrainConfig:
    """Stage 1: AdamW, linear warm-up then cosine to min_lr_ratio * lr (the paper's stage-1 pretraining)."""

    data: list[str] = field(default_factory=lambda: ["corpus"])
    """Text sources: local files/folders (relative paths try $PIXAR_DATA), .jsonl, or `hf:<dataset>[:<config>]`."""
    max_chars: int = 1180
    min_chars: int = 101
    packing: str = "pixar"
    """pixar = greedy packing with over-long sentences cut at spaces (default); official = the official
    collate_text (docs/data.md)."""
    data_cache: str = ""
    """Where raw sources are prepared (pixar.data.prepare); "" = <pixar cache>/datasets ($PIXAR_CACHE, ~/.cache/pixar)."""
    val_fraction: float = 0.01
    seed: int = 42
    steps: int = 1000
    batch_size: int = 8
    """Global batch in sequences (split over processes and accumulation steps)."""
    grad_accum: int = 1
    optim: OptimConfig = field(default_factory=OptimConfig)
    precision: str = "auto"
    """auto = bf16 autocast on CUDA, fp32 on CPU (bf16/fp16 matmuls are ~100x slower on CPU)."""
    num_workers: int = 0
    log_every: int = 10
    eval_every: int = 100
    eval_batches: int = 4
    sample_every: int = 200
    save_every: int = 200
    keep_last: int = 2
    threads: int = 0
    """torch CPU threads; 0 = auto: 1 on a machine with <= 4 usable CPUs (more oversubscribes a small shared
    machine), else torch's default (pixar.train.run_state.cpu_threads)."""
    parallel: str = "ddp"
    """ddp (replicated model, all-reduced grads) or fsdp (FSDP2 fully_shard per block + root; sharded
    torch.distributed.checkpoint saves). Only matters under torchrun with more than one process."""
    compile: bool | str = "auto"
    """torch.compile the transformer blocks: true, false, or auto (= on for CUDA, off on CPU)."""
    activation_checkpointing: bool = False
    """Recompute each block's activations in backward (less memory, ~1/3 more compute)."""

    def __post_init__(self) -> None:
        if self.parallel not in ("ddp", "fsdp"):
            raise ConfigError(f"train.parallel must be ddp|fsdp, got {self.parallel!r}")
        if self.compile not in (True, False, "auto"):
            raise ConfigError(f"train.compile must be true|false|auto, got {self.compile!r}")
        if not isinstance(self.activation_checkpointing, bool):
            raise ConfigError(f"train.activation_checkpointing must be true|false, got {self.activation_checkpointing!r}")
        if self.steps < 0 or self.batch_size <= 0 or self.grad_accum <= 0:
            raise ConfigError("train.steps must be >= 0 and batch_size, grad_accum > 0")
        if self.precision not in ("auto", "fp32", "bf16", "fp16"):
            raise ConfigError(f"train.precision must be auto|fp32|bf16|fp16, got {self.precision!r}")
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"train.val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.packing not in ("pixar", "official"):
            raise ConfigError(f"train.packing must be pixar|official, got {self.packing!r}")
        if isinstance(self.data, str):  # `--set train.data=/path`: one source, not a list of characters
            self.data = [self.data]
        if not isinstance(self.data, list) or not self.data or not all(isinstance(d, str) and d for d in self.data):
            raise ConfigError(f"train.data must be a non-empty list of sources (paths or hf:NAME), got {self.data!r}")
        check_bounds("train", self, TRAIN_BOUNDS)
        if self.min_chars > self.max_chars:
            raise ConfigError(f"train.min_chars ({self.min_chars}) must not exceed train.max_chars ({self.max_chars})")


@dataclass
class AdvConfig:
    """Stage 2: adversarial fine-tuning with a copied-backbone discriminator (the paper's adversarial stage)."""

    steps: int = 200
    batch_size: int = 128
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=3e-5, warmup_steps=100))
    """The generator's lr and the stage's schedule and AdamW settings (both models; the cosine spans cosine_steps)."""
    lr_d: float = 3e-5
    """The discriminator's peak lr (its schedule and AdamW settings are optim's)."""
    cosine_steps: int = 5000
    num_samples: int = 30
    """Positions per batch at which the generator's prediction is shown to the discriminator."""
    alpha: float = 10.0
    """Adversarial weight multiplier (the paper's `gan_ratio`, reading the run name gan_ratio_10)."""
    alpha_warmup: int = 100
    save_every: int = 100
    sample_every: int = 50
    eval_every: int = 0
    """Every this many steps (and at steps 0 and the last) run the step-curve evaluation given to train_stage2
    (`pixar train --stage 2` builds one: readability and accuracy of a fixed held-out prompt set); 0 = off."""
    eval_task: str = "lambada"
    """The step curve's prompt set: lambada or babi (the application builds it; pixar itself never reads tasks)."""
    eval_prompts: int = 200
    """How many held-out prompts the step curve scores (glyph read-back: cheap)."""
    eval_context_cap: int = 0
    """Context positions the step curve keeps (0 = the protocol's own); small presets cap it to stay in the
    positions they were trained on (the curve's protocol label then says +capN)."""

    def __post_init__(self) -> None:
        if self.num_samples <= 0:
            raise ConfigError("adv.num_samples must be positive")
        if self.eval_every < 0 or self.eval_prompts <= 0 or self.eval_context_cap < 0:
            raise ConfigError("adv.eval_every and adv.eval_context_cap must be >= 0 and adv.eval_prompts positive")
        if self.eval_task not in ("lambada", "babi"):
            raise ConfigError(f"adv.eval_task must be lambada or babi, got {self.eval_task!r}")
        check_bounds("adv", self, ADV_BOUNDS)


class YamlPreset:
    """from_yaml / to_dict / to_yaml for a preset dataclass (PixarConfig, harness's GPT2BaselineConfig, ...)."""

    @classmethod
    def from_yaml(cls, path: str | os.PathLike, overrides: list[str] | None = None):
        return dataclass_from_yaml(cls, path, overrides)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self, path: str | os.PathLike | None = None) -> str:
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            atomic_write_text(Path(path), text)
        return text


@dataclass
class PixarConfig(YamlPreset):
    name: str = "pixar"
    model: ModelConfig = field(default_factory=ModelConfig)
    render: RenderConfig = field(default_factory=RenderConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    adv: AdvConfig = field(default_factory=AdvConfig)

    def __post_init__(self) -> None:
        for key in ("patch_size", "patch_len", "max_positions"):
            m, r = getattr(self.model, key), getattr(self.render, key)
            if m != r:
                raise ConfigError(f"model.{key} ({m}) and render.{key} ({r}) must agree")


def preset_dir(kind: str = "") -> Path:
    """The presets folder (`kind` = "" for model presets, "glue", "attack" for their sub-presets): the copy
    installed inside the package (pixar/configs in a wheel) or, in a source checkout, the top-level configs/."""
    here = Path(__file__).resolve().parent
    for root in (here / "configs", here.parent / "configs"):
        if root.is_dir():
            return root / kind if kind else root
    raise ConfigError(f"no presets folder found (looked in {here / 'configs'} and {here.parent / 'configs'})")


def preset_path(name_or_path: str, kind: str = "") -> Path:
    """`configs/[<kind>/]<name>.yaml` for a bare preset name, else the path itself."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        return p
    path = preset_dir(kind) / f"{name_or_path}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown preset {name_or_path!r} (presets: {', '.join(preset_names(kind))})")
    return path


def preset_names(kind: str = "") -> list[str]:
    """The shipped preset names of `kind` ("" = model presets; "glue", "attack"), e.g. pixar-tiny, glue/paper."""
    root = preset_dir()
    folder = root / kind if kind else root
    names = [p.relative_to(root).with_suffix("").as_posix() for p in folder.glob("*.yaml")]
    if not kind:
        names += [p.relative_to(root).with_suffix("").as_posix() for p in folder.glob("*/*.yaml")]
    return sorted(names)
