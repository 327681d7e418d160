"""Training to a plateau: early stopping on a held-out dev score with the best weights kept, and an lr sweep.

    EarlyStopping   fed a dev score (lower is better, e.g. dev loss) every `eval_every` steps; keeps a copy of
                    the weights at the best score; `stop` turns true after `patience` evaluations without an
                    improvement of more than `min_delta`; `restore()` loads the best weights back.
    sweep_lrs       runs `fit(lr)` for each lr from the same starting weights and keeps the run with the lowest
                    best dev score (ties: the first lr listed); the model ends with that run's best weights.
    story_split     a held-out dev split of bAbI-style (prompt, answer) pairs that never cuts a story (a later
                    question's prompt contains the earlier ones), so dev prompts are not inside training prompts.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Callable

import torch


@dataclass
class EarlyStopping:
    model: torch.nn.Module
    patience: int
    min_delta: float = 0.0
    best_score: float = math.inf
    best_step: int = 0
    bad: int = 0
    history: list[dict] = field(default_factory=list)
    _best_state: dict | None = None

    def __post_init__(self):
        if self.patience < 1:
            raise ValueError(f"patience must be >= 1, got {self.patience}")
        self._best_state = copy.deepcopy(self.model.state_dict())  # the starting weights until a score beats inf

    def update(self, step: int, score: float) -> bool:
        """Record the dev `score` at `step`; True when training should stop (patience spent)."""
        score = float(score)
        self.history.append({"step": step, "dev": score})
        if math.isfinite(score) and score < self.best_score - self.min_delta:
            self.best_score, self.best_step, self.bad = score, step, 0
            self._best_state = copy.deepcopy(self.model.state_dict())
        else:
            self.bad += 1
        return self.stop

    @property
    def stop(self) -> bool:
        return self.bad >= self.patience

    def restore(self) -> None:
        self.model.load_state_dict(self._best_state)


@dataclass
class FitResult:
    """One training run to a plateau: the lr, best dev score and its step, steps run, the dev history."""

    lr: float
    best_score: float
    best_step: int
    steps_run: int
    stopped_early: bool
    history: list[dict]
    records: list[dict] = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    def summary(self) -> dict:
        """The run's record; `best_<key>` repeats the other dev values logged at the best step (e.g.
        best_dev_accuracy, best_dev_loss)."""
        at = next((h for h in self.history if h["step"] == self.best_step), {})
        return {**{f"best_{k}": v for k, v in at.items() if k.startswith("dev_")},
                "lr": self.lr, "best_dev": self.best_score if math.isfinite(self.best_score) else None, "best_step": self.best_step, "steps_run": self.steps_run,
                "stopped_early": self.stopped_early, "dev_history": self.history, **self.extra}


def sweep_lrs(model: torch.nn.Module, lrs: list[float], fit: Callable[[float], FitResult]) -> tuple[FitResult, list[FitResult]]:
    """`fit(lr)` trains `model` in place from the weights it has now and leaves its best weights in it. Every lr
    starts from the same weights; the run with the lowest best dev score wins and its weights end in `model`."""
    if not lrs:
        raise ValueError("lr sweep: no learning rates")
    start = copy.deepcopy(model.state_dict())
    runs, best_state, best = [], None, None
    for lr in lrs:
        model.load_state_dict(start)
        run = fit(float(lr))
        runs.append(run)
        if best is None or run.best_score < best.best_score:
            best, best_state = run, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    return best, runs


def story_split(pairs: list[tuple[str, str]], dev_fraction: float) -> tuple[list, list]:
    """(train, dev): dev = the last stories holding about `dev_fraction` of the pairs. A pair continues the
    previous one's story when its prompt starts with the previous prompt (bAbI's paper prompts do)."""
    if not 0 < dev_fraction < 1:
        raise ValueError(f"dev fraction must be in (0, 1), got {dev_fraction}")
    starts = [i for i, (p, _) in enumerate(pairs) if i == 0 or not p.startswith(pairs[i - 1][0])]
    want = len(pairs) - max(1, round(dev_fraction * len(pairs)))
    cut = min(starts, key=lambda s: (abs(s - want), -s)) if len(starts) > 1 else want
    if cut <= 0 or cut >= len(pairs):
        cut = want
    return pairs[:cut], pairs[cut:]
