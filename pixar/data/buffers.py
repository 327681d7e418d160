"""Reused batch memory for the training stream (pixar.data.stream.ChunkStream): micro-batches are rendered straight
into these buffers with `Renderer.render_batch(texts, out=)` (docs/rendering.md "Speed")."""
from __future__ import annotations

import sys

import numpy as np
import torch
from torch.utils.data import get_worker_info


class BatchBuffers:
    """Pixel tensors [n, H, W] uint8 for the micro-batches a stream renders. With CUDA, in the main process: pinned,
    from torch's caching host allocator, which reuses a released pinned block only once the copies that read it
    (`.to(device, non_blocking=True)`) are done. Otherwise: numpy arrays handed out as `torch.from_numpy` tensors;
    the last `keep` are remembered, and one whose tensors are all gone (the tensor's storage holds the array: no
    reference left but ours) is rendered into again instead of fresh pages. A tensor sent from a DataLoader worker
    is moved to shared memory first (a copy), which releases the array."""

    def __init__(self, height: int, width: int, keep: int = 8):
        self.height, self.width, self.keep = height, width, keep
        self.pinned = get_worker_info() is None and torch.cuda.is_available()
        self.arrays: list[np.ndarray] = []

    def take(self, n: int) -> torch.Tensor:
        if self.pinned:
            return torch.empty((n, self.height, self.width), dtype=torch.uint8, pin_memory=True)
        arrays = self.arrays
        for k in range(len(arrays)):
            if arrays[k].shape[0] == n and sys.getrefcount(arrays[k]) == 2:  # the list, getrefcount's argument
                arrays.append(arrays.pop(k))
                return torch.from_numpy(arrays[-1])
        a = np.empty((n, self.height, self.width), np.uint8)
        self.arrays = (arrays + [a])[-self.keep:]
        return torch.from_numpy(a)
