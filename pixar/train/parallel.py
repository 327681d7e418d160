"""Scale-out building blocks: DDP or FSDP2 wrapping, sharded checkpoints, compile, CUDA settings.

    configure_cuda(device)                    TF32 matmuls/cuDNN on CUDA (no-op on CPU)
    make_adamw(params, optim, device, lr)     AdamW from an OptimConfig, fused=True on CUDA
    resolve_compile(tc.compile, device)       true|false|auto -> bool (auto = CUDA only)
    prepare_model(model, tc, device)          activation checkpointing flag + torch.compile of each block
    wrap(model, parallel, device)             ddp: DistributedDataParallel; fsdp: fully_shard per Block then root
    grad_sync(wrapped, enabled)               context: no_sync (DDP) / set_requires_gradient_sync (FSDP)
    clip_grad_norm(wrapped, max_norm)         -> pre-clip global norm (a float on every rank, DTensor-aware)
    save_sharded / load_sharded               torch.distributed.checkpoint (DCP) folders; resharding on load
    full_state_dict(wrapped)                  gathered {name: tensor} on rank 0 ({} elsewhere)
    consolidate(sharded_ckpt, out)            offline: DCP checkpoint -> our single-file safetensors layout

A sharded checkpoint is our checkpoint folder with the DCP files in `sharded/`:
    <dir>/sharded/.metadata, __<rank>_0.distcp   {"<name>": model state, "<name>.optim": optimizer state}
    <dir>/config.json, meta.json (kind "pixar", "sharded": [names], "world_size")
    <dir>/state.safetensors + state.json          rank 0's non-model training state (step, RNG, data position)
    <dir>/model.safetensors                       optional consolidated weights of one module (full_weights=)
Keys are module FQNs (get_state_dict strips DDP's `module.`), so a checkpoint saved by FSDP at world size
N loads into FSDP at world size M, into DDP, or into a plain module in one process without a process group.

Stage 2 under FSDP: wrap() shards the generator and the discriminator alike, and their forward methods and
heads run on the shards. pixar.train.adversarial takes its parameter gradients with `.backward()` (the logit gradients
w.r.t. activations), so FSDP reduce-scatters them into the shards; `torch.autograd.grad(loss, sharded_params)`
would return None (the sharded parameters are not graph leaves; measured in torch 2.13). Under ddp stage 2 keeps
its models unwrapped and all-reduces their gradients itself.
"""
from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
import torch.nn as nn
from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict, get_state_dict,
                                                     set_model_state_dict, set_state_dict)

from pixar.checkpoint.store import (CheckpointError, load_config, load_meta, publish_dir, save_checkpoint,
                                    write_checkpoint_files, write_errors)
from pixar.config import OptimConfig, PixarConfig, TrainConfig
from pixar.config_io import ConfigError
from pixar.model.discriminator import Discriminator
from pixar.model.transformer import Block, Pixar
from pixar.train.loop import adamw_from

SHARDED_DIR = "sharded"
FORWARD_METHODS = ("hidden_states", "real_logits", "fake_logits")
"""Methods besides forward() that run a sharded module (FSDP must all-gather its parameters for them)."""


# ---- process group, CUDA, optimiser, compile -------------------------------------------------
def world() -> tuple[int, int]:
    """(rank, world_size); (0, 1) without a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def barrier() -> None:
    if world()[1] > 1:
        dist.barrier()


def configure_cuda(device: torch.device) -> None:
    """TF32 for fp32 matmuls and convolutions on CUDA (bf16 autocast covers most matmuls anyway)."""
    if torch.device(device).type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def make_adamw(params, optim: OptimConfig, device: torch.device, lr: float | None = None) -> torch.optim.AdamW:
    """pixar.train.loop.adamw (the one optimiser policy) with an OptimConfig's betas/eps/weight decay; fused on CUDA."""
    return adamw_from(params, optim, lr, fused=torch.device(device).type == "cuda")


def resolve_compile(setting: bool | str, device: torch.device) -> bool:
    if setting == "auto":
        return torch.device(device).type == "cuda"
    if setting not in (True, False):
        raise ConfigError(f"train.compile must be true|false|auto, got {setting!r}")
    return bool(setting)


def transformer_blocks(module: nn.Module) -> list[nn.Module]:
    """The pixar.model.transformer.Block modules inside `module` (a Pixar or a Discriminator), in order."""
    return [m for m in module.modules() if isinstance(m, Block)]


def prepare_model(model: nn.Module, tc: TrainConfig, device: torch.device,
                  blocks: list[nn.Module] | None = None) -> nn.Module:
    """Before wrap(): set activation checkpointing and compile each transformer block (`blocks`, default the
    pixar.model.transformer.Block modules) in place (nn.Module.compile keeps parameter names, so checkpoints
    are unaffected)."""
    for m in model.modules():
        if hasattr(m, "activation_checkpointing"):
            m.activation_checkpointing = tc.activation_checkpointing
    if resolve_compile(tc.compile, device):
        for block in transformer_blocks(model) if blocks is None else blocks:
            block.compile()
    return model


# ---- wrapping --------------------------------------------------------------------------------
def wrap(model: nn.Module, parallel: str, device: torch.device, blocks: list[nn.Module] | None = None) -> nn.Module:
    """Wrap for data parallelism across the current process group (the model itself in one process).
    fsdp: fully_shard every transformer Block and every `head` Linear (stage 2 calls heads directly), then
    the root (embed and norms stay in the root group; hidden_states/real_logits/fake_logits are registered
    as forward methods so calling them all-gathers the root's parameters);
    the returned module IS `model` (FSDP2 swaps its class), its parameters are DTensor shards. `blocks`: the
    modules sharded one by one (default: the pixar.model.transformer.Block modules; GPT-2 passes its GPT2Blocks)."""
    _, size = world()
    if size == 1:
        return model
    device = torch.device(device)
    if parallel == "ddp":
        return nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if parallel != "fsdp":
        raise ConfigError(f"train.parallel must be ddp|fsdp, got {parallel!r}")
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard, register_fsdp_forward_method

    mesh = init_device_mesh(device.type, (size,))
    for block in transformer_blocks(model) if blocks is None else blocks:
        fully_shard(block, mesh=mesh)
    for name, sub in model.named_modules():  # heads called directly (stage 2: gen.head(gen.hidden_states(x)))
        if name.split(".")[-1] == "head" and isinstance(sub, nn.Linear):
            fully_shard(sub, mesh=mesh)
    fully_shard(model, mesh=mesh)
    for name in FORWARD_METHODS:
        if callable(getattr(model, name, None)):
            register_fsdp_forward_method(model, name)
    return model


def unwrap(model: nn.Module) -> nn.Module:
    """The module under DDP (FSDP2 modules are their own module)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def is_fsdp(model: nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


@contextlib.contextmanager
def grad_sync(model: nn.Module, enabled: bool):
    """Around a micro-batch's forward+backward: enabled=False skips the gradient all-reduce /
    reduce-scatter (all but the last accumulation step)."""
    if enabled:
        yield
    elif isinstance(model, nn.parallel.DistributedDataParallel):
        with model.no_sync():
            yield
    elif is_fsdp(model):
        model.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            model.set_requires_gradient_sync(True)
    else:
        yield


def clip_grad_norm(model: nn.Module, max_norm: float) -> float:
    """Clip all gradients to a global norm (max_norm <= 0: no clipping) -> the pre-clip norm (same on
    every rank; under FSDP the norm of the full, unsharded gradient)."""
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm if max_norm > 0 else float("inf"))
    if hasattr(norm, "full_tensor"):
        norm = norm.full_tensor()
    return float(norm)


# ---- sharded checkpoints ---------------------------------------------------------------------
def is_sharded(path: str | os.PathLike) -> bool:
    return (Path(path) / SHARDED_DIR / ".metadata").is_file()


def _state(modules: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer]) -> dict:
    """{"<name>": model state, "<name>.optim": optimizer state} in FQN form (sharded under FSDP)."""
    out = {}
    for name, module in modules.items():
        opt = optimizers.get(name)
        if opt is None:
            out[name] = get_model_state_dict(unwrap(module))
        else:
            out[name], out[f"{name}.optim"] = get_state_dict(unwrap(module), opt)
    return out


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The whole model's weights on CPU, gathered to rank 0 (collective: call on every rank; {} on others)."""
    rank, size = world()
    opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
    sd = get_model_state_dict(unwrap(model), options=opts) if size > 1 or is_fsdp(model) else unwrap(model).state_dict()
    return sd if rank == 0 else {}


def save_sharded(path: str | os.PathLike, modules: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer],
                 cfg: PixarConfig | None, state: dict | None = None, meta: dict | None = None,
                 full_weights: str | None = None, kept: str | None = None) -> Path:
    """Collective (every rank calls it): write `path` as a sharded checkpoint, atomically. `modules`:
    {"model": m} (stage 1) or {"generator": g, "discriminator": d} (stage 2); `optimizers`: the same keys.
    `state`: rank 0's extra training state (JSON + tensors); `full_weights`: the module whose gathered
    weights also go to model.safetensors (so pixar.model.transformer.load_model reads the folder).
    A failed write removes the temp folder on every rank and raises CheckpointError naming `kept`."""
    path = Path(path)
    rank, size = world()
    tmp = path.with_name(f"{path.name}.tmp-sharded")
    kept = kept or (f"previous checkpoint {path} kept" if path.exists() else "nothing was written")
    weights = full_state_dict(modules[full_weights]) if full_weights else None  # collective: before rank-0 work
    error = None
    try:
        if rank == 0:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        barrier()
        with write_errors(path, kept):
            dcp.save(_state(modules, optimizers), checkpoint_id=str(tmp / SHARDED_DIR))
            if rank == 0:
                m = {"kind": "pixar", "sharded": sorted(modules), "world_size": size, **(meta or {})}
                write_checkpoint_files(tmp, cfg, state, m)
                if weights is not None:
                    from safetensors.torch import save_file

                    save_file({k: v.detach().cpu().contiguous() for k, v in weights.items()}, str(tmp / "model.safetensors"))
    except BaseException as e:  # noqa: BLE001 - every rank must learn of a failure before the rename
        error = e
    failed = any_rank(error is not None)
    if failed:
        if rank == 0:
            shutil.rmtree(tmp, ignore_errors=True)
        barrier()
        if error is not None:
            raise error
        raise CheckpointError(f"writing {path} failed on another rank; {kept}")
    if rank == 0:
        with write_errors(path, kept):
            publish_dir(tmp, path)
    barrier()
    return path


def any_rank(flag: bool) -> bool:
    """True on every rank if `flag` is true on any rank (a collective; the flag itself in one process)."""
    _, size = world()
    if size == 1:
        return flag
    backend_device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    t = torch.tensor([1.0 if flag else 0.0],
                     device=torch.device(backend_device, torch.cuda.current_device()) if backend_device == "cuda" else "cpu")
    dist.all_reduce(t)
    return bool(t.item() > 0)


def load_sharded(path: str | os.PathLike, modules: dict[str, nn.Module],
                 optimizers: dict[str, torch.optim.Optimizer] | None = None) -> None:
    """Load a sharded checkpoint into `modules` (+ `optimizers`), whatever the world size and wrapping it
    was saved with (DCP reshards). Every rank calls it; in one process no process group is needed."""
    path = Path(path)
    if not is_sharded(path):
        raise CheckpointError(f"{path}: not a sharded checkpoint (no {SHARDED_DIR}/.metadata)")
    optimizers = optimizers or {}
    saved = set(load_meta(path).get("sharded", []))
    missing = sorted(set(modules) - saved)
    if missing:
        raise CheckpointError(f"{path}: holds {sorted(saved)}, not {missing}")
    target = _state(modules, optimizers)
    try:
        dcp.load(target, checkpoint_id=str(path / SHARDED_DIR))
    except Exception as e:  # noqa: BLE001 - DCP raises CheckpointException / RuntimeError with long text
        raise CheckpointError(f"{path}: cannot load sharded checkpoint ({str(e).splitlines()[0][:300]})") from None
    for name, module in modules.items():
        opt = optimizers.get(name)
        if opt is None:
            set_model_state_dict(unwrap(module), target[name])
        else:
            set_state_dict(unwrap(module), opt, model_state_dict=target[name], optim_state_dict=target[f"{name}.optim"])


def consolidate(sharded: str | os.PathLike, out: str | os.PathLike, name: str | None = None) -> Path:
    """Offline, one process: read module `name` (default: "model", else "generator") of a sharded
    checkpoint and write it as our single-file layout (model.safetensors + config.json + meta.json),
    the form `Pixar.from_pretrained` / `save_pretrained` share."""
    sharded = Path(sharded)
    cfg, meta = load_config(sharded), load_meta(sharded)
    names = meta.get("sharded", [])
    name = name or ("model" if "model" in names else "generator")
    module = Discriminator.from_config(cfg.model) if name == "discriminator" else Pixar(cfg.model)
    load_sharded(sharded, {name: module})
    kind = "pixar-discriminator" if name == "discriminator" else "pixar"
    keep = {k: v for k, v in meta.items() if k not in ("sharded", "world_size", "kind", "versions")}
    return save_checkpoint(out, module, cfg, meta={**keep, "kind": kind, "consolidated_from": sharded.name})
