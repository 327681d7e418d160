"""Training compute in three named units, and matching two models' budgets in one of them.

Units (all "executed": counted over the positions a step actually runs, padding included):

    non_embedding_flops   6 x non-embedding parameters x positions   (the default; the scaling-law convention,
                          Kaplan et al. 2020: token/position embeddings and the (tied) output projection are left
                          out, so a 50,257-way GPT-2 softmax does not count as model size)
    total_flops           6 x every matmul parameter x positions     (GPT-2: + the tied wte used as the output
                          projection; PIXAR: + its pixel-patch projections in and out)
    examples              examples (rows) seen = steps x batch

Non-embedding parameters: PIXAR = all parameters but `embed` and `head` (its two 128 x 128 pixel projections);
GPT-2 = all parameters but wte and wpe (the output projection is wte, tied). 6 = forward (2) + backward (4)
multiply-adds per parameter per position; attention's context-length term is left out, as in the convention.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

UNITS = ("non_embedding_flops", "total_flops", "examples")
DEFAULT_UNIT = "non_embedding_flops"


class ComputeUnitError(ValueError):
    """An unknown compute unit (the message lists the known ones)."""


def check_unit(unit: str) -> str:
    if unit not in UNITS:
        raise ComputeUnitError(f"unknown compute unit {unit!r}; known: {', '.join(UNITS)}")
    return unit


@dataclass(frozen=True)
class ParamCounts:
    non_embedding: int
    matmul: int
    """parameters used in matmuls per position: non-embedding + the input/output projections executed."""


def pixar_params(model) -> ParamCounts:
    """A pixar.model.transformer.Pixar: embedding = `embed` and `head` (the pixel projections)."""
    total = sum(p.numel() for p in model.parameters())
    emb = sum(p.numel() for n, p in model.named_parameters() if n.split(".")[0] in ("embed", "head"))
    return ParamCounts(total - emb, total)


def gpt2_params(model) -> ParamCounts:
    """A transformers GPT2LMHeadModel: embedding = wte + wpe; the tied wte is executed once, as the output
    projection (the input lookup is a gather, no matmul)."""
    total = sum(p.numel() for p in model.parameters())
    wte, wpe = model.transformer.wte.weight.numel(), model.transformer.wpe.weight.numel()
    return ParamCounts(total - wte - wpe, total - wpe)


@dataclass
class Budget:
    """What a training run executed (or is allowed): steps, examples, positions and FLOPs in both conventions."""

    steps: int
    examples: int
    positions: int
    non_embedding_flops: float
    total_flops: float

    def get(self, unit: str) -> float:
        return float(getattr(self, check_unit(unit)))

    def to_dict(self) -> dict:
        return asdict(self)


def budget(params: ParamCounts, steps: int, batch: int, positions: int) -> Budget:
    """`positions`: the positions all `steps` steps ran (sum of batch x padded width)."""
    return Budget(steps, steps * batch, positions, 6.0 * params.non_embedding * positions,
                  6.0 * params.matmul * positions)


def steps_for(target: float, unit: str, params: ParamCounts, batch: int, mean_width: float) -> int:
    """Steps of `batch` rows of `mean_width` positions whose cost in `unit` is closest to `target` (>= 1)."""
    check_unit(unit)
    per_step = {"non_embedding_flops": 6.0 * params.non_embedding * batch * mean_width,
                "total_flops": 6.0 * params.matmul * batch * mean_width, "examples": float(batch)}[unit]
    return max(1, round(target / per_step)) if math.isfinite(target) else 1


def match_record(phase: str, unit: str, reference: Budget, matched: Budget, names=("pixar", "gpt2")) -> dict:
    """The matching.json entry of one phase: both budgets in all three units, the unit used and the ratios."""
    a, b = names
    return {"phase": phase, "unit": unit, a: reference.to_dict(), b: matched.to_dict(),
            "ratio": {u: matched.get(u) / reference.get(u) if reference.get(u) else None for u in UNITS}}
