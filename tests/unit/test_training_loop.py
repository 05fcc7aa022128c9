"""The training-loop scaffold (`pathstream.training.loop`): plateau and early stop, best kept,
resume, interruption and metrics lines, with a fake step instead of a network."""

from __future__ import annotations

import json
import math
import signal
from pathlib import Path
from typing import Any

import pytest

from pathstream.training.loop import (
    Evaluation,
    LoopResult,
    Plateau,
    Step,
    TrainingLoop,
    append_metrics,
    interruptible,
    load_if_resuming,
)
from pathstream.training.state import InterruptFlag, save_state_atomically


def _scripted(scores: list[float], calls: list[int]) -> Any:
    """A step that evaluates unit i with scores[i] and remembers which units it ran."""

    def step(index: int) -> Step:
        calls.append(index)
        score = scores[index]
        return Step(
            {"unit": index + 1}, Evaluation(score, {"epoch": index + 1, "val_loss": score}, {"at": index + 1})
        )

    return step


def test_plateau_improvement_is_strict_and_respects_min_delta() -> None:
    plateau = Plateau()
    assert plateau.update(1.0, 1) == (True, None)
    assert plateau.update(1.0, 2) == (False, None)  # a tie is no improvement
    assert plateau.update(math.nan, 3) == (False, None)
    assert plateau.update(0.95, 4, min_delta=0.1) == (False, None)
    assert plateau.update(0.85, 5, min_delta=0.1) == (True, None)
    assert (plateau.best, plateau.best_at, plateau.stalled) == (0.85, 5, 0)
    higher = Plateau(best=-1.0)
    assert higher.update(0.0, 1, higher_is_better=True) == (True, None)
    assert higher.update(-0.5, 2, higher_is_better=True) == (False, None)
    assert higher.best == 0.0


def test_plateau_without_reduction_stops_after_patience() -> None:
    plateau = Plateau()
    actions = [plateau.update(loss, at, 2, reduce_first=False) for at, loss in enumerate([1.0, 2.0, 2.0], 1)]
    assert actions == [(True, None), (False, None), (False, "stop")]
    assert not plateau.reduced


def test_loop_reduces_then_stops_after_patience_and_keeps_the_best(tmp_path: Path) -> None:
    calls: list[int] = []
    reduced: list[int] = []
    best: list[tuple[int, float]] = []
    saves: list[int] = []
    progress: list[int] = []
    loop = TrainingLoop(
        _scripted([1.0, 0.5, 0.7, 0.6, 0.9, 0.8, 0.4], calls),
        total=7,
        patience=2,
        best_key="best",
        metrics=tmp_path / "metrics.jsonl",
        save=lambda: saves.append(loop.done),
        on_best=lambda done, evaluation: best.append((done, evaluation.score)),
        on_reduce=reduced.append,
        progress=lambda done, values: progress.append(values["unit"]),
        catch_signals=False,
    )
    result = loop.run()
    assert (result.done, result.stopped_early) == (6, True)
    assert calls == [0, 1, 2, 3, 4, 5]
    assert reduced == [4] and best == [(1, 1.0), (2, 0.5)]
    assert (loop.plateau.best, loop.plateau.best_at) == (0.5, 2)
    assert loop.best_summary == {"at": 2}
    assert saves == [1, 2, 3, 4, 5, 6] and progress == [1, 2, 3, 4, 5, 6]
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [1, 2, 3, 4, 5, 6]
    assert [line["best"] for line in lines] == [True, True, False, False, False, False]
    assert list(lines[0]) == ["epoch", "val_loss", "best"]  # the flag comes last, as readers expect


def test_loop_without_patience_runs_to_the_end_and_saves_on_its_cadence() -> None:
    saves: list[int] = []
    loop = TrainingLoop(
        _scripted([3.0, 2.0, 1.0, 4.0, 5.0], []),
        total=5,
        higher_is_better=True,
        save=lambda: saves.append(loop.done),
        save_every=2,
        catch_signals=False,
    )
    assert loop.run() == LoopResult(5, stopped_early=False)
    assert saves == [2, 4, 5]
    assert (loop.plateau.best, loop.plateau.best_at) == (5.0, 5)


def test_units_without_evaluation_leave_the_plateau_and_metrics_alone(tmp_path: Path) -> None:
    loop = TrainingLoop(
        lambda index: Step({"unit": index}),
        total=3,
        patience=1,
        metrics=tmp_path / "metrics.jsonl",
        catch_signals=False,
    )
    assert loop.run().done == 3
    assert loop.plateau == Plateau()
    assert not (tmp_path / "metrics.jsonl").exists()


def test_a_resumed_loop_continues_at_the_saved_unit_with_its_plateau(tmp_path: Path) -> None:
    calls: list[int] = []
    scores = [1.0, 0.5, 0.7, 0.6, 0.9, 0.8, 0.4]
    first = TrainingLoop(_scripted(scores, calls), total=3, patience=2, catch_signals=False)
    first.run()
    resumed = TrainingLoop(
        _scripted(scores, calls),
        total=7,
        done=first.done,
        plateau=Plateau(**vars(first.plateau)),
        patience=2,
        best_summary=first.best_summary,
        catch_signals=False,
    )
    result = resumed.run()
    assert calls == [0, 1, 2, 3, 4, 5]  # units 0-2 once, then on from 3
    assert (result.done, result.stopped_early) == (6, True)  # the same stop as one straight run
    assert resumed.best_summary == {"at": 2}


def test_an_interruption_saves_state_reports_it_and_propagates() -> None:
    events: list[str] = []

    def step(index: int) -> Step:
        events.append(f"step {index}")
        if index == 2:
            loop.stop.raised = True  # type: ignore[union-attr]  # as Ctrl-C during the step would
        loop.interruption_point()
        return Step({})

    before = signal.getsignal(signal.SIGINT)
    loop = TrainingLoop(
        step,
        total=10,
        save=lambda: events.append(f"save at {loop.done}"),
        save_every=100,
        on_interrupt=lambda: events.append("reported"),
    )
    with pytest.raises(KeyboardInterrupt):
        loop.run()
    # The unit in progress is not counted: a resume redoes it from the trainer's own position.
    assert events == ["step 0", "step 1", "step 2", "save at 2", "reported"]
    assert loop.done == 2
    assert signal.getsignal(signal.SIGINT) is before  # the handlers it installed are gone


def test_a_keyboard_interrupt_from_a_callback_also_saves() -> None:
    saves: list[int] = []

    def progress(done: int, values: dict[str, Any]) -> None:
        if done == 3:
            raise KeyboardInterrupt

    loop = TrainingLoop(
        lambda index: Step({}),
        total=5,
        save=lambda: saves.append(loop.done),
        save_every=100,
        progress=progress,
        catch_signals=False,
    )
    with pytest.raises(KeyboardInterrupt):
        loop.run()
    assert saves == [3]


def test_interruption_points_follow_the_given_flag_and_the_vote() -> None:
    flag = InterruptFlag()
    try:
        loop = TrainingLoop(lambda index: Step({}), total=1, stop=flag)
        loop.interruption_point()
        votes: list[bool] = []
        loop.interruption_point(lambda raised: votes.append(raised) or False)
        assert votes == [False]
        with pytest.raises(KeyboardInterrupt):
            loop.interruption_point(lambda raised: True)  # another rank was interrupted
        flag.raised = True
        with pytest.raises(KeyboardInterrupt):
            loop.interruption_point()
    finally:
        flag.restore()
    TrainingLoop(lambda index: Step({}), total=1, catch_signals=False).interruption_point()  # no flag: no-op


def test_interruptible_reports_and_restores() -> None:
    before = signal.getsignal(signal.SIGINT)
    reported: list[bool] = []
    with pytest.raises(KeyboardInterrupt), interruptible(lambda: reported.append(True)) as flag:
        assert signal.getsignal(signal.SIGINT) is not before
        assert not flag.raised
        raise KeyboardInterrupt
    assert reported == [True]
    assert signal.getsignal(signal.SIGINT) is before


def test_metrics_lines_are_appended(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    append_metrics(path, {"epoch": 1, "val_auc": None})
    append_metrics(path, {"epoch": 2, "val_auc": 0.5})
    assert path.read_text() == '{"epoch": 1, "val_auc": null}\n{"epoch": 2, "val_auc": 0.5}\n'


def test_load_if_resuming(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    assert load_if_resuming(path, "{}", resume=True) is None
    save_state_atomically({"config": "{}", "epoch": 3}, path)
    assert load_if_resuming(path, "{}", resume=False) is None
    assert load_if_resuming(path, "{}", resume=True) == {"config": "{}", "epoch": 3}
