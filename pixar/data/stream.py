"""The training stream: a config's splits (pixar.data.sources -> pixar.data.prepare) as rendered micro-batches.

    build_splits(cfg)  the memory-mapped splits of cfg.data (prepared once, then opened; pixar.data.dataset)
    ChunkStream        an IterableDataset rendering micro-batches on the fly (one Renderer per worker),
                       from per-epoch shuffles of the training chunks (seed, epoch)

Positions in the training stream are absolute chunk counts `consumed` (epoch = consumed // N,
index = consumed % N), so a resumed run continues at exactly the same chunk. Global step s consumes
chunks [start + s*B, start + (s+1)*B) of the stream (B = the global batch); that batch is cut into
world_size * grad_accum equal micro-batches, and micro-batch (accum a, rank r) is slice a*world_size + r.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from pixar.config import RenderConfig, TrainConfig
from pixar.data.buffers import BatchBuffers
from pixar.data.prepare import open_or_prepare
from pixar.data.sources import DataError, Splits
from pixar.render.renderer import Renderer


def build_splits(cfg: TrainConfig, data_dir: str | os.PathLike | None = None) -> Splits:
    """The memory-mapped splits of cfg.data: a prepared dataset folder as is (its packing must match cfg),
    or raw sources prepared once into the cache (rank 0 prepares under torch.distributed). Chunks and
    order equal build_splits_in_memory's."""
    return open_or_prepare(cfg, data_dir)



# ---- the training stream ---------------------------------------------------------------------
@dataclass
class DataPosition:
    """Where the stream stands: chunk `index` of epoch `epoch`'s shuffle (both 0-based)."""

    epoch: int = 0
    index: int = 0

    def consumed(self, num_chunks: int) -> int:
        return self.epoch * num_chunks + self.index

    @classmethod
    def from_consumed(cls, consumed: int, num_chunks: int) -> "DataPosition":
        return cls(consumed // num_chunks, consumed % num_chunks)

    def to_dict(self) -> dict:
        return {"epoch": self.epoch, "index": self.index}


def epoch_order(num_chunks: int, seed: int, epoch: int) -> np.ndarray:
    """The deterministic shuffle of epoch `epoch`: int64 [num_chunks]."""
    return np.random.default_rng([seed, epoch]).permutation(num_chunks)


def micro_batch_ids(num_chunks: int, seed: int, start: int, global_batch: int, step: int, accum: int,
                    rank: int, world_size: int, grad_accum: int, orders: dict | None = None) -> list[int]:
    """Chunk ids of micro-batch (accum, rank) of global step `step` counted from stream offset `start`.
    `orders` caches {epoch: epoch_order(...)} between calls (older epochs are evicted)."""
    micro = global_batch // (world_size * grad_accum)
    first = start + step * global_batch + (accum * world_size + rank) * micro
    orders = {} if orders is None else orders
    ids = []
    for q in range(first, first + micro):
        epoch = q // num_chunks
        if epoch not in orders:
            for old in [e for e in orders if e < epoch]:
                del orders[old]
            orders[epoch] = epoch_order(num_chunks, seed, epoch)
        ids.append(int(orders[epoch][q % num_chunks]))
    return ids


def render_texts(renderer, texts: list[str], buffers: BatchBuffers | None = None) -> dict[str, torch.Tensor]:
    """-> {"pixels": uint8 [b, H, W] (1 = white), "mask": uint8 [b, P], "truncated": bool [b]}. With `buffers`, the
    pixels are rendered straight into a batch buffer it hands out (render_batch(out=)), no fresh memory per batch."""
    pixels = buffers.take(len(texts)) if buffers is not None else None
    batch = renderer.render_batch(texts, out=None if pixels is None else pixels.numpy())
    return {"pixels": pixels if pixels is not None else torch.from_numpy(batch.pixels),
            "mask": torch.from_numpy(batch.mask), "truncated": torch.from_numpy(batch.truncated)}


class ChunkStream(IterableDataset):
    """Endless micro-batches of this rank, rendered on the fly, from global step `first_step` on.

    Item k is (step = first_step + k // grad_accum, accum = k % grad_accum); with DataLoader workers,
    worker w renders items k = w (mod num_workers), so the loader's round-robin keeps the order.
    """

    def __init__(self, chunks: list[str], render_cfg: RenderConfig, seed: int, global_batch: int,
                 start: DataPosition | int = 0, rank: int = 0, world_size: int = 1, grad_accum: int = 1,
                 first_step: int = 0):
        if global_batch % (world_size * grad_accum):
            raise DataError(f"batch_size {global_batch} is not divisible by world_size {world_size} x "
                            f"grad_accum {grad_accum}")
        self.chunks, self.render_cfg, self.seed = chunks, render_cfg, seed
        self.global_batch, self.rank, self.world_size, self.grad_accum = global_batch, rank, world_size, grad_accum
        self.start = start.consumed(len(chunks)) if isinstance(start, DataPosition) else int(start)
        self.first_step = first_step
        self._renderer, self._orders, self._buffers = None, {}, None

    @property
    def micro_batch(self) -> int:
        return self.global_batch // (self.world_size * self.grad_accum)

    def position_after(self, steps_done: int) -> DataPosition:
        """The stream position once `steps_done` global steps (counted from step 0) have been consumed."""
        return DataPosition.from_consumed(self.start + steps_done * self.global_batch, len(self.chunks))

    def ids(self, step: int, accum: int) -> list[int]:
        return micro_batch_ids(len(self.chunks), self.seed, self.start, self.global_batch, step, accum,
                               self.rank, self.world_size, self.grad_accum, self._orders)

    def renderer(self):
        if self._renderer is None:  # built in the worker process: one Renderer (and glyph atlas) per worker
            self._renderer = Renderer(self.render_cfg)
        return self._renderer

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_renderer"], state["_orders"], state["_buffers"] = None, {}, None
        return state

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        k = worker
        while True:
            step, accum = self.first_step + k // self.grad_accum, k % self.grad_accum
            if self._buffers is None:  # built where it renders (a worker process, or the main process)
                self._buffers = BatchBuffers(self.render_cfg.patch_size, self.render_cfg.width)
            item = render_texts(self.renderer(), [self.chunks[i] for i in self.ids(step, accum)], self._buffers)
            item.update(step=step, accum=accum)
            yield item
            k += workers


def make_loader(stream: ChunkStream, num_workers: int = 0, pin_memory: bool = False) -> DataLoader:
    """A DataLoader over already-collated micro-batches; workers prefetch 4 batches each."""
    extra = {"prefetch_factor": 4, "persistent_workers": False} if num_workers > 0 else {}
    return DataLoader(stream, batch_size=None, num_workers=num_workers, pin_memory=pin_memory, **extra)
