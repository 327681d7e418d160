"""Dataclass configs: the single source of truth. YAML presets in `configs/` are serialised instances.

    RenderConfig   how text becomes an 8-px-high binary strip (font, geometry, EOS)
    ModelConfig    the decoder-only transformer (hidden, layers, heads, SwiGLU width, RoPE, ...)
    OptimConfig    AdamW + warm-up/cosine schedule + clipping: embedded as `optim` in every training config
    TrainConfig    stage 1 (maximum likelihood) optimisation and data
    AdvConfig      stage 2 (adversarial) optimisation
    PixarConfig    all of the above; what `--config file.yaml` loads and what a checkpoint stores

Loading rejects unknown keys (naming the file and the key); missing keys take defaults.
`--set a.b=value` overrides are parsed as YAML scalars.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import os
import tempfile
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from pixar.bounds import ADV_BOUNDS, MODEL_BOUNDS, OPTIM_BOUNDS, RENDER_BOUNDS, TRAIN_BOUNDS, out_of_bounds
from pixar.errors import PixarError



class ConfigError(PixarError, ValueError):
    """A bad config value or key; the message names the file/key."""


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


OPTIM_FIELDS = ("lr", "warmup_steps", "min_lr_ratio", "beta1", "beta2", "eps", "weight_decay", "grad_clip")
"""OptimConfig's fields: flat keys of this name in a section are what configs held before `optim` existed."""


def migrate_flat_optim(raw: dict) -> dict:
    """A saved config (a checkpoint's config.json) from before OptimConfig, in today's layout: flat
    train.{lr, warmup_steps, ...} move into train.optim; adv.{lr_g, warmup_steps} into adv.optim.{lr,
    warmup_steps}, with the AdamW settings stage 2 then took from `train`. Current layouts pass unchanged."""
    raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    train = raw.get("train")
    flat_train = {}
    if isinstance(train, dict):
        flat_train = {k: train.pop(k) for k in OPTIM_FIELDS if k in train}
        if flat_train:
            train["optim"] = {**flat_train, **(train.get("optim") or {})}
    adv = raw.get("adv")
    if isinstance(adv, dict) and ("lr_g" in adv or "warmup_steps" in adv):
        moved = {k: v for k, v in flat_train.items() if k in ("beta1", "beta2", "eps", "weight_decay", "grad_clip")}
        if "lr_g" in adv:
            moved["lr"] = adv.pop("lr_g")
        if "warmup_steps" in adv:
            moved["warmup_steps"] = adv.pop("warmup_steps")
        adv["optim"] = {**moved, **(adv.get("optim") or {})}
    return raw


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



MAX_CONFIG_BYTES = 1 << 20
"""A YAML config is a few KB; a larger file is not one (and is not read whole)."""


def read_yaml_mapping(path: str | os.PathLike, what: str = "config file", error=ConfigError,
                      known_dir: Path | None = None) -> dict:
    """A YAML file's top-level mapping; a missing file, bad YAML or a non-mapping -> one-line `error`
    naming the file (and, with `known_dir`, the presets that do exist)."""
    path = Path(path)
    if path.exists() and not path.is_dir() and (not path.is_file() or path.stat().st_size > MAX_CONFIG_BYTES):
        kind = "not a regular file (a device or pipe?)" if not path.is_file() else \
            f"{path.stat().st_size:,} bytes, more than any {what} ({MAX_CONFIG_BYTES:,})"
        raise error(f"{path}: {what} is {kind}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        known = f" (known: {', '.join(sorted(p.stem for p in known_dir.glob('*.yaml')))})" if known_dir else ""
        raise error(f"{path}: {what} not found{known}") from None
    except IsADirectoryError:
        raise error(f"{path}: {what} is a folder, expected a YAML file") from None
    except UnicodeDecodeError:
        raise error(f"{path}: {what} is not UTF-8 text (a binary file?)") from None
    except OSError as e:
        raise error(f"{path}: cannot read {what} ({e.strerror or e})") from None
    except yaml.YAMLError as e:
        raise error(f"{path}: invalid YAML: {e}".replace("\n", " ")) from None
    except RecursionError:
        raise error(f"{path}: invalid YAML: nested too deeply") from None
    if raw is None:
        raise error(f"{path}: empty {what} (expected a YAML mapping of settings)")
    if not isinstance(raw, dict):
        raise error(f"{path}: top level must be a mapping, got {type(raw).__name__} (not a {what}?)")
    return raw


def dataclass_from_yaml(cls: type, path: str | os.PathLike, overrides: list[str] | None = None):
    """Dataclass `cls` from a YAML file plus `a.b=value` overrides; unknown keys rejected."""
    raw = read_yaml_mapping(path)
    for item in overrides or []:
        check_override_key(cls, item)
        apply_override(raw, item)
    return from_dict(cls, raw, where=str(path))


def config_keys(cls: type, prefix: str = "") -> list[str]:
    """Every dotted key of dataclass `cls` (sections and leaves, nested dataclasses followed), e.g. train.steps."""
    keys = []
    for name, typ in get_type_hints(cls).items():
        if name not in {f.name for f in fields(cls)}:
            continue
        keys.append(prefix + name)
        if is_dataclass(typ):
            keys += config_keys(typ, f"{prefix}{name}.")
    return keys


def check_override_key(cls: type, item: str) -> None:
    """A `--set key=value` whose key is not a field of `cls` -> one line naming the key, with the closest
    known keys (difflib over every dotted key, so it follows however the dataclasses nest)."""
    key = item.split("=", 1)[0].strip()
    if "=" not in item or not key:
        return  # apply_override names the malformed item
    keys = config_keys(cls)
    sections = {k.rsplit(".", 1)[0] for k in keys if "." in k}
    parts = key.split(".")
    prefixes = [".".join(parts[:i]) for i in range(1, len(parts))]
    if key in keys or any(p in keys and p not in sections for p in prefixes):
        return  # a known key, or inside a mapping-valued field (from_dict checks the value)
    close = difflib.get_close_matches(key, keys, n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    raise ConfigError(f"--set {item}: unknown key {key!r}{hint}")


def apply_override(raw: dict, item: str) -> None:
    """Apply one `a.b.c=value` override (value parsed as a YAML scalar) to a nested dict."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like key=value")
    key, value = item.split("=", 1)
    node = raw
    parts = key.strip().split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {item!r}: {p} is not a section")
    try:
        node[parts[-1]] = yaml.safe_load(value)
    except yaml.YAMLError as e:
        raise ConfigError(f"override {item!r}: invalid YAML value ({str(e).splitlines()[0]})") from None


def from_dict(cls: type, raw: dict, where: str = "<dict>"):
    """Build dataclass `cls` from a nested dict, rejecting unknown keys and wrong scalar types."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping for {cls.__name__}, got {type(raw).__name__}")
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(known), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"{where}: unknown key(s) {unknown} in {cls.__name__}{hint} (known: {sorted(known)})")
    kwargs = {}
    for name, value in raw.items():
        typ = hints[name]
        if is_dataclass(typ):
            kwargs[name] = from_dict(typ, value, where=f"{where}:{name}")
        else:
            kwargs[name] = _coerce(value, typ, f"{where}:{name}")
    try:
        return cls(**kwargs)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None


def _coerce(value: Any, typ: Any, where: str) -> Any:
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if typ in (int, float) and isinstance(value, str):  # YAML 1.1 reads "1e-3" as a string
        try:
            return typ(value)
        except ValueError:
            raise ConfigError(f"{where}: expected {typ.__name__}, got {value!r}") from None
    if typ in (int, float, str, bool):
        if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
            raise ConfigError(f"{where}: expected {typ.__name__}, got {value!r}")
    return value


def atomic_write(path: str | os.PathLike, write) -> None:
    """Call `write(tmp_path)` on a temp file in `path`'s folder, then os.replace it onto `path`, so readers
    never see half a file and a crash leaves the old one. The file gets the usual (umask) permissions."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp creates 0600
        os.close(fd)
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


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
