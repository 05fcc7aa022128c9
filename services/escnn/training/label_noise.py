"""Forward-corrected cross-entropy for noisy binary labels (Patrini et al. 2017; Huang et al. 2022).

The network estimates the clean class posterior p(y | x). With a label-noise transition matrix
T[i, j] = P(observed label j | true label i), the posterior of the *observed* label is p(y | x) T,
and the loss is the cross-entropy of that against the observed label. Minimising it trains the
network towards the clean posterior. T = identity is ordinary binary cross-entropy.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class LabelNoise:
    """A 2 x 2 transition matrix from two flip rates.

    false_positive: P(labelled positive | truly negative); false_negative: P(labelled negative |
    truly positive). Both must be below 0.5 (noisier labels than that carry no information).
    """

    false_positive: float = 0.0
    false_negative: float = 0.0

    def __post_init__(self) -> None:
        for name, rate in (("false_positive", self.false_positive), ("false_negative", self.false_negative)):
            if not 0.0 <= rate < 0.5:
                raise ValueError(f"label-noise rate {name} must lie in [0, 0.5), got {rate}")

    def matrix(self) -> torch.Tensor:
        """float64 2 x 2, rows = true label (negative, positive), columns = observed label."""
        fp, fn = self.false_positive, self.false_negative
        return torch.tensor([[1.0 - fp, fp], [fn, 1.0 - fn]], dtype=torch.float64)

    def loss(self, logit: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean forward-corrected cross-entropy. logit: float N x 1 (positive class); target:
        float N x 1 of observed labels in {0, 1}."""
        # log p(clean) for (negative, positive), then log sum_i p(clean i) T[i, j] in log space, so
        # that confident logits neither overflow nor lose the small noise terms.
        log_clean = torch.cat([F.logsigmoid(-logit), F.logsigmoid(logit)], dim=1)  # N x 2
        log_t = torch.log(self.matrix().to(logit.device, logit.dtype))  # 0 entries -> -inf, fine
        log_observed = torch.logsumexp(log_clean.unsqueeze(2) + log_t.unsqueeze(0), dim=1)  # N x 2
        observed = target.reshape(-1).round().long()
        if not bool(((observed == 0) | (observed == 1)).all()):
            raise ValueError("targets must be 0 or 1")
        return -log_observed.gather(1, observed.unsqueeze(1)).mean()
