"""The training-loop scaffold every PathStream trainer plugs its own step into.

A run is a count of *units* (an epoch for ESCNN and the marrow networks, an optimiser iteration for
the detector). The trainer supplies `step(index) -> Step`: it trains one unit and, when that unit
ends with a validation, returns an `Evaluation`. `TrainingLoop.run` does the rest, the same way for
every trainer:

- resume: it starts at `done` (read by the trainer from `load_if_resuming`);
- plateau: `Plateau` keeps the best score, decides "improved", and after `patience` evaluations
  without one asks for a learning-rate reduction, then for a stop;
- metrics: one JSON line per evaluation appended to `metrics.jsonl` (`append_metrics`);
- interruption: Ctrl-C / SIGTERM become a flag (`InterruptFlag`) that `interruption_point` turns
  into KeyboardInterrupt where the trainer's state is consistent; the resume state is then saved
  and the KeyboardInterrupt re-raised, so callers see what they always saw;
- progress: `progress(done, values)` after every unit.

Order after a unit, fixed for every trainer: plateau update, best checkpoint, learning-rate
reduction, metrics line, resume state, progress, early stop. The best checkpoint and the resume
state are written before anything a caller's callback could break.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pathstream.training.state import InterruptFlag, load_resume_state

Action = Literal["reduce", "stop"]


@dataclass
class Plateau:
    """The best score so far, the unit that reached it, and how many evaluations since.

    The state a resume must restore; the rule it is updated by (direction, patience, min-delta)
    is passed to `update`, so a stored plateau never disagrees with the run's settings.
    """

    best: float = math.inf
    best_at: int = 0
    stalled: int = 0
    reduced: bool = False

    def update(
        self,
        score: float,
        at: int,
        patience: int | None = None,
        *,
        higher_is_better: bool = False,
        min_delta: float = 0.0,
        reduce_first: bool = True,
    ) -> tuple[bool, Action | None]:
        """Record the score of unit `at` -> (is it a new best, "reduce" / "stop" / None).

        Improved means beating the best by more than `min_delta` (strictly: a tie or a NaN is
        no improvement). After `patience` evaluations without one the answer is "reduce" the
        first time (when `reduce_first`) and "stop" after that; the count then restarts.
        `patience=None` only tracks the best.
        """
        improved = score > self.best + min_delta if higher_is_better else score < self.best - min_delta
        if improved:
            self.best, self.best_at, self.stalled = score, at, 0
            return True, None
        self.stalled += 1
        if patience is None or self.stalled < patience:
            return False, None
        self.stalled = 0
        if reduce_first and not self.reduced:
            self.reduced = True
            return False, "reduce"
        return False, "stop"


@dataclass(frozen=True)
class Evaluation:
    """A validation at the end of a unit.

    `score`: what the plateau compares (validation loss, IoU, ...); `record`: the metrics line
    (the loop may add the improved flag under `TrainingLoop.best_key`); `summary`: what the best
    checkpoint records about itself when this evaluation is the new best.
    """

    score: float
    record: dict[str, Any]
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    """What one unit produced: `values` for the progress callback, and its evaluation if any."""

    values: dict[str, Any]
    evaluation: Evaluation | None = None


@dataclass(frozen=True)
class LoopResult:
    """Units done in total (resumed ones included) and whether the plateau ended the run."""

    done: int
    stopped_early: bool


def append_metrics(path: Path, record: dict[str, Any]) -> None:
    """Append `record` as one JSON line to `path` (created when missing)."""
    with path.open("a") as handle:
        handle.write(json.dumps(record) + "\n")


def load_if_resuming(path: Path, config_text: str, resume: bool) -> dict[str, Any] | None:
    """The resume state at `path` when `resume` is asked for and the file exists, else None.

    Raises `PathStreamError(INVALID_CONFIGURATION)` when it was written with other settings
    (see `load_resume_state`).
    """
    if resume and path.is_file():
        return load_resume_state(path, config_text)
    return None


@contextmanager
def interruptible(on_interrupt: Callable[[], None] | None = None) -> Iterator[InterruptFlag]:
    """Install an `InterruptFlag` for the block and yield it; on KeyboardInterrupt call
    `on_interrupt()` and re-raise; always put the previous signal handlers back."""
    flag = InterruptFlag()
    try:
        yield flag
    except KeyboardInterrupt:
        if on_interrupt is not None:
            on_interrupt()
        raise
    finally:
        flag.restore()


@dataclass
class TrainingLoop:
    """Runs `step` for units `done` .. `total - 1`; see the module docstring.

    Callbacks, all optional: `save()` writes the resume state (after every `save_every`-th unit,
    after the last one and on interruption); `on_best(done, evaluation)` writes the best
    checkpoint; `on_reduce(done)` lowers the learning rate; `on_evaluated(done, record)` sees the
    metrics line as written; `on_interrupt()` reports an interruption (after `save`);
    `progress(done, values)` follows every unit. `metrics`: the file for the metrics lines (None:
    none written). `stop`: the interrupt flag to honour; None with `catch_signals` installs one
    for the run, None without it makes `interruption_point` a no-op.
    """

    step: Callable[[int], Step]
    total: int
    done: int = 0
    plateau: Plateau | None = None
    """The plateau to continue (resume); None: a fresh one, its best the worst possible score."""
    patience: int | None = None
    higher_is_better: bool = False
    min_delta: float = 0.0
    reduce_first: bool = True
    best_summary: dict[str, Any] = field(default_factory=dict)
    """The `summary` of the best evaluation so far (restored by the trainer on resume)."""
    best_key: str | None = None
    """Metrics-line key for "this evaluation is the new best" (None: not recorded)."""
    metrics: Path | None = None
    save: Callable[[], None] | None = None
    save_every: int = 1
    on_best: Callable[[int, Evaluation], None] | None = None
    on_reduce: Callable[[int], None] | None = None
    on_evaluated: Callable[[int, dict[str, Any]], None] | None = None
    on_interrupt: Callable[[], None] | None = None
    progress: Callable[[int, dict[str, Any]], None] | None = None
    stop: InterruptFlag | None = None
    catch_signals: bool = True

    def __post_init__(self) -> None:
        if self.plateau is None:
            self.plateau = Plateau(best=-math.inf if self.higher_is_better else math.inf)

    def interruption_point(self, agree: Callable[[bool], bool] | None = None) -> None:
        """Raise KeyboardInterrupt when an interruption was asked for. Call it only where the
        trainer's state is consistent (after an optimiser step). `agree(raised) -> raised` lets
        distributed ranks decide together; it is called at every point, raised or not."""
        raised = self.stop.raised if self.stop is not None else False
        if agree is not None:
            raised = agree(raised)
        if raised:
            raise KeyboardInterrupt

    def run(self) -> LoopResult:
        """Train until `total` units are done or the plateau says stop -> the `LoopResult`.

        Re-raises KeyboardInterrupt (after `save` and `on_interrupt`) and whatever `step` raises.
        """
        installed = InterruptFlag() if self.stop is None and self.catch_signals else None
        if installed is not None:
            self.stop = installed
        try:
            while self.done < self.total:
                step = self.step(self.done)
                self.done += 1
                action = self._evaluated(step.evaluation) if step.evaluation is not None else None
                if self.save is not None and (self.done % self.save_every == 0 or self.done == self.total):
                    self.save()
                if self.progress is not None:
                    self.progress(self.done, step.values)
                if action == "stop":
                    return LoopResult(self.done, stopped_early=True)
        except KeyboardInterrupt:
            # Only raised at an interruption point, so the state saved here is consistent.
            if self.save is not None:
                self.save()
            if self.on_interrupt is not None:
                self.on_interrupt()
            raise
        finally:
            if installed is not None:
                installed.restore()
                self.stop = None
        return LoopResult(self.done, stopped_early=False)

    def _evaluated(self, evaluation: Evaluation) -> Action | None:
        assert self.plateau is not None  # set in __post_init__
        improved, action = self.plateau.update(
            evaluation.score,
            self.done,
            self.patience,
            higher_is_better=self.higher_is_better,
            min_delta=self.min_delta,
            reduce_first=self.reduce_first,
        )
        record = dict(evaluation.record)
        if self.best_key is not None:
            record[self.best_key] = improved
        if improved:
            self.best_summary = evaluation.summary
            if self.on_best is not None:
                self.on_best(self.done, evaluation)
        if action == "reduce" and self.on_reduce is not None:
            self.on_reduce(self.done)
        if self.metrics is not None:
            append_metrics(self.metrics, record)
        if self.on_evaluated is not None:
            self.on_evaluated(self.done, record)
        return action
