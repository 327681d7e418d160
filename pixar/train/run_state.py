"""Run folders and the state around a training loop: devices and ranks, precision, RNG state, step
checkpoints with the `last` pointer, metrics.jsonl.

    setup_distributed(device) -> DistInfo       joins the torchrun process group when WORLD_SIZE > 1
    resolve_precision / autocast                 fp32 on CPU, bf16 autocast on CUDA (`auto`), fp16 on request
    capture_rng_state / restore_rng_state        for exact resume
    prepare_out_dir(out, resume)                 the checkpoint to resume from (resume auto|true|false) or None;
                                                 refuses to start over a run folder that holds checkpoints
    (step checkpoints + the `last` pointer: pixar.checkpoint.store.save_step_checkpoint / parallel.save_sharded)
    MetricsLogger(out, ...)                      one JSON line per record (+ TensorBoard when installed)
    set_cpu_threads(train.threads)               0 = auto: 1 thread on small machines (<= 4 CPUs), else torch's
"""
from __future__ import annotations

import dataclasses

import contextlib
import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from pixar.checkpoint.store import CheckpointError, load_config, step_checkpoints
from pixar.config import PixarConfig
from pixar.config_io import ConfigError, atomic_write_text
from pixar.train.loop import TrainingError
from pixar.train.preempt import resume_checkpoint

def resolve_precision(precision: str, device: torch.device) -> str:
    """auto -> bf16 on CUDA, fp32 elsewhere; bf16/fp16 on CPU are refused (~100x slower there)."""
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    if precision in ("bf16", "fp16") and device.type != "cuda":
        raise ConfigError(f"train.precision={precision} needs a CUDA device; use auto or fp32 on {device.type}")
    return precision


def autocast(precision: str, device: torch.device):
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str = "auto") -> DistInfo:
    """Join the torchrun process group when WORLD_SIZE > 1 (NCCL on CUDA, gloo on CPU)."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return DistInfo(device=dev)
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if dev.type == "cuda":
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), local, dev)


def all_reduce_mean(values: list[float], info: DistInfo) -> list[float]:
    if info.world_size == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=info.device)
    dist.all_reduce(t)
    return (t / info.world_size).tolist()


def all_reduce_weighted_mean(total: float, count: float, info: DistInfo) -> float:
    """sum(total) / sum(count) over the ranks (a loss summed over `count` items on each rank)."""
    if info.world_size > 1:
        t = torch.tensor([total, count], dtype=torch.float64, device=info.device)
        dist.all_reduce(t)
        total, count = t.tolist()
    return total / max(count, 1)


# ---- RNG and checkpoints -------------------------------------------------------------------
def capture_rng_state() -> dict:
    """torch (CPU + CUDA), numpy legacy and python `random` states, as checkpoint-storable values."""
    _, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "gauss": float(gauss)}}
    if torch.cuda.is_available():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def restore_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class MetricsLogger:
    """Appends JSON lines to `<out>/metrics.jsonl` (main process only); TensorBoard too when installed."""

    def __init__(self, out_dir: Path, enabled: bool, resume_step: int | None = None, tag: str = "train"):
        self.path, self.enabled, self.tb, self.tag = out_dir / "metrics.jsonl", enabled, None, tag
        if not enabled:
            return
        # resume_step: drop what a killed run logged after its checkpoint (-1: a fresh run, drop all)
        if resume_step is not None and self.path.exists():
            kept = []
            for line in self.path.read_text().splitlines():
                with contextlib.suppress(json.JSONDecodeError):
                    if json.loads(line)["step"] <= resume_step:
                        kept.append(line)
            atomic_write_text(self.path, "".join(f"{line}\n" for line in kept))
        with contextlib.suppress(ImportError):
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(out_dir / "tensorboard"))

    def log(self, record: dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tb is not None:
            for k, v in record.items():
                if k != "step" and isinstance(v, (int, float)):
                    self.tb.add_scalar(f"{self.tag}/{k}", v, record["step"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


# ---- run folders -----------------------------------------------------------------------------------
def prepare_out_dir(out: Path, resume: str | bool) -> Path | None:
    """The checkpoint to start from: resume "auto" = the newest one in `out` if any (a requeued job reruns the
    same command), "true" = it must exist, "false" = none. A fresh start never overwrites checkpoints."""
    try:
        ckpt = resume_checkpoint(out, resume)
    except CheckpointError as e:
        raise TrainingError(str(e)) from None
    if ckpt is None and step_checkpoints(out):
        raise TrainingError(f"{out} already holds checkpoints; pass --resume auto to continue or choose another --out")
    return ckpt


RESUME_FREE = {"train": {"steps", "log_every", "eval_every", "eval_batches", "sample_every", "save_every", "keep_last",
                         "threads", "num_workers", "data_cache", "compile", "activation_checkpointing", "parallel"},
               "adv": {"steps", "save_every", "sample_every", "eval_every", "eval_prompts", "eval_task", "eval_context_cap"}}
"""Settings a resumed run may change without changing what it computes (how long, how often it logs/saves,
threads, compile); every other train.*/adv.* value (lr, data, batch, seed, schedule, ...) makes `--resume`
continue a different run than the one saved, which `pixar train` refuses unless --allow-config-change."""


def config_changes(saved: PixarConfig, cfg: PixarConfig) -> dict[str, list]:
    """{"section.key": [saved value, new value]} for the train/adv settings that differ (RESUME_FREE excepted)."""
    def flat(obj, prefix: str) -> dict:  # nested sections (train.optim.*) as dotted keys of plain values
        d = {}
        for k, v in obj.__dict__.items():
            d.update(flat(v, f"{prefix}{k}.") if dataclasses.is_dataclass(v) else {f"{prefix}{k}": v})
        return d

    out = {}
    for section, free in RESUME_FREE.items():
        a, b = flat(getattr(saved, section), f"{section}."), flat(getattr(cfg, section), f"{section}.")
        out.update({k: [a[k], b.get(k)] for k in sorted(a) if k.split(".", 1)[1] not in free and a[k] != b.get(k)})
    return out


def check_compatible(cfg: PixarConfig, ckpt: Path) -> None:
    saved = load_config(ckpt)
    for section in ("model", "render"):
        a, b = getattr(saved, section).__dict__, getattr(cfg, section).__dict__
        diff = sorted(k for k in a if a[k] != b.get(k))
        if diff:
            raise TrainingError(f"{ckpt}: {section} config differs from the checkpoint's in {diff}")


SMALL_MACHINE_CPUS = 4
"""At most this many usable CPUs: `train.threads=0` means one torch thread. On the 2-core shared machine
(load ~3.6 from other jobs) a pixar-micro training step ran 20-30x slower with 2 threads than with 1 (OpenMP
workers spinning against each other and the other jobs; 86-152 vs 3-5 steps/s, pixar-tiny 19-22 vs 1-2)."""


def cpu_threads(threads: int) -> int:
    """The torch CPU thread count for `train.threads`: >0 as given; 0 (auto) = 1 on a machine with at most
    SMALL_MACHINE_CPUS usable CPUs, else torch's default (one per core)."""
    if threads > 0:
        return threads
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 1 if usable <= SMALL_MACHINE_CPUS else torch.get_num_threads()


def set_cpu_threads(threads: int) -> int:
    """torch.set_num_threads(cpu_threads(threads)); returns the count set."""
    n = cpu_threads(threads)
    torch.set_num_threads(n)
    return n
