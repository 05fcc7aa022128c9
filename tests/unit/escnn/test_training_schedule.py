"""The plateau schedule (Huang et al. 2022: lr -> 1e-6 after 16 stalled epochs, stop after 16 more) and the
training configuration's checks."""

from __future__ import annotations

import pytest

from pathstream.services.escnn.training.trainer import EscnnTrainingConfig, _Plateau


def test_plateau_reduces_then_stops() -> None:
    plateau = _Plateau()
    actions = []
    losses = [1.0, 0.9] + [0.95] * 3 + [0.8] + [0.85] * 6
    for epoch, loss in enumerate(losses, start=1):
        actions.append(plateau.update(loss, epoch, patience=3))
    assert actions[:2] == [(True, None), (True, None)]
    assert actions[4] == (False, "reduce")  # third stalled epoch after epoch 2
    assert actions[5] == (True, None)  # a new best resets the count, the lr stays reduced
    assert actions[8] == (False, "stop")
    assert plateau.best_epoch == 6 and plateau.best_loss == 0.8


def test_paper_defaults() -> None:
    config = EscnnTrainingConfig()
    assert (config.learning_rate, config.betas, config.weight_decay) == (1e-5, (0.9, 0.999), 0.01)
    assert (config.patience, config.reduced_learning_rate, config.backbone) == (16, 1e-6, "resnet50")


@pytest.mark.parametrize(
    "kwargs",
    [{"patience": 0}, {"reduced_learning_rate": 1e-3}, {"false_negative_rate": 0.6}, {"images_per_step": 0}],
)
def test_bad_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        EscnnTrainingConfig(**kwargs)  # type: ignore[arg-type]
