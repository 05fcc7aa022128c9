"""Forward-corrected cross-entropy against its definition and plain BCE."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pathstream.services.escnn.training.label_noise import LabelNoise


def test_identity_transition_is_binary_cross_entropy() -> None:
    logits = torch.tensor([[-30.0], [-1.5], [0.0], [2.0], [40.0]], dtype=torch.float64)
    targets = torch.tensor([[0.0], [1.0], [1.0], [0.0], [1.0]], dtype=torch.float64)
    expected = F.binary_cross_entropy_with_logits(logits, targets)
    assert torch.allclose(LabelNoise().loss(logits, targets), expected, rtol=1e-12)


def test_matches_the_definition_with_noise() -> None:
    noise = LabelNoise(false_positive=0.1, false_negative=0.25)
    logits = torch.tensor([[-2.0], [0.3], [1.7]], dtype=torch.float64)
    targets = torch.tensor([[1.0], [0.0], [1.0]], dtype=torch.float64)
    clean = torch.cat([1 - torch.sigmoid(logits), torch.sigmoid(logits)], dim=1)
    observed = clean @ noise.matrix()
    expected = -torch.log(observed.gather(1, targets.long())).mean()
    assert torch.allclose(noise.loss(logits, targets), expected, rtol=1e-12)


def test_noise_bounds_the_loss_of_a_confident_contradiction() -> None:
    """With 10 % false negatives, a confidently positive LN labelled negative costs at most
    -log(0.1): the correction stops a mislabelled LN from dominating the gradient."""
    noise = LabelNoise(false_negative=0.1)
    loss = noise.loss(torch.tensor([[50.0]]), torch.tensor([[0.0]]))
    assert float(loss) == pytest.approx(-torch.log(torch.tensor(0.1)).item(), rel=1e-4)
    assert float(LabelNoise().loss(torch.tensor([[50.0]]), torch.tensor([[0.0]]))) == pytest.approx(50.0)


def test_gradients_are_finite_at_extreme_logits() -> None:
    logits = torch.tensor([[-100.0], [100.0]], requires_grad=True)
    LabelNoise(0.05, 0.05).loss(logits, torch.tensor([[1.0], [0.0]])).backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("rates", [(-0.1, 0.0), (0.0, 0.5), (0.7, 0.1)])
def test_rejects_rates_outside_the_informative_range(rates: tuple[float, float]) -> None:
    with pytest.raises(ValueError, match="label-noise rate"):
        LabelNoise(*rates)


def test_rejects_targets_that_are_not_binary() -> None:
    with pytest.raises(ValueError, match="0 or 1"):
        LabelNoise().loss(torch.tensor([[0.0]]), torch.tensor([[2.0]]))
