"""Streaming equals the ordinary computation: logit, CAM, gradients; skipping changes nothing."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pathstream.services.escnn.model import EscnnModel, FrozenBatchNorm2d, preprocess
from pathstream.services.escnn.streaming import StreamingESCNN
from tests.unit.escnn.conftest import tissue_image

# (height, width, white fraction, tile): 512..2048 px, sizes that are not multiples of 32,
# white margins, and tiles small enough that every image is cut into several.
CASES = [
    (512, 512, 0.0, 480),
    (736, 1000, 0.4, 640),
    (1100, 900, 0.33, 640),
    (1300, 1500, 0.5, 768),
    (2048, 2048, 0.0, 1024),
]


def _ids(case: tuple[int, int, float, int]) -> str:
    return f"{case[0]}x{case[1]}-white{case[2]:g}-tile{case[3]}"


def _with_slow_marks(cases: list[tuple[int, int, float, int]], slow_from: tuple[int, int]) -> list[object]:
    """The cases from `slow_from` (height, width) on run in the full suite only; the smaller ones keep
    streaming-vs-ordinary exactness in the fast tier."""
    first_slow = next(i for i, case in enumerate(cases) if case[:2] == slow_from)
    return [
        case if i < first_slow else pytest.param(case, marks=pytest.mark.slow) for i, case in enumerate(cases)
    ]


def _grads(model: EscnnModel) -> list[torch.Tensor]:
    return [
        p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in model.parameters()
    ]


def _ordinary_step(model: EscnnModel, image: np.ndarray, target: float) -> tuple[float, list[torch.Tensor]]:
    model.zero_grad()
    loss = F.binary_cross_entropy_with_logits(model(preprocess(image)), torch.tensor([[target]]))
    loss.backward()
    return loss.item(), _grads(model)


@pytest.mark.parametrize("case", _with_slow_marks(CASES, slow_from=(1300, 1500)), ids=_ids)
def test_inference_equals_the_ordinary_forward(
    resnet18: EscnnModel, case: tuple[int, int, float, int]
) -> None:
    height, width, white, tile = case
    image = tissue_image(height, width, seed=height, white_fraction=white)
    resnet18.eval()
    with torch.no_grad():
        reference_logit = resnet18(preprocess(image))[0]
        reference_cam = resnet18.cam(preprocess(image))[0]
    streaming = StreamingESCNN(resnet18, tile_size=tile)
    assert len(streaming.plan(height, width)) > 1
    logit, cam = streaming.infer(image)
    assert logit.shape == (1,)
    assert abs(logit.item() - reference_logit.item()) <= 1e-4 * abs(reference_logit.item())
    assert cam.shape == reference_cam.shape
    assert torch.allclose(cam, reference_cam, atol=1e-5, rtol=0)


def _noise_floor(model: EscnnModel, image: np.ndarray, target: float) -> list[torch.Tensor]:
    """The same ordinary step computed differently (1 thread, channels-last): the gradient noise
    that mere summation order causes, through argmax near-ties of the max pooling (README, "ESCNN core")."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    model.to(memory_format=torch.channels_last)
    try:
        model.zero_grad()
        x = preprocess(image).contiguous(memory_format=torch.channels_last)
        F.binary_cross_entropy_with_logits(model(x), torch.tensor([[target]])).backward()
        return _grads(model)
    finally:
        torch.set_num_threads(threads)
        model.to(memory_format=torch.contiguous_format)


def _errors(ours: list[torch.Tensor], reference: list[torch.Tensor]) -> tuple[float, float, float]:
    """(global relative error, worst per-parameter relative error, worst per-parameter cosine)."""
    difference = torch.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(ours, reference, strict=True)))
    scale = torch.sqrt(sum((b**2).sum() for b in reference))
    pairs = [(a, b) for a, b in zip(ours, reference, strict=True) if b.norm() > 0]
    worst = max(((a - b).norm() / b.norm()).item() for a, b in pairs)
    cosine = min(F.cosine_similarity(a.flatten(), b.flatten(), dim=0).item() for a, b in pairs)
    return (difference / scale).item(), worst, cosine


@pytest.mark.parametrize("case", _with_slow_marks(CASES[1:4], slow_from=(1100, 900)), ids=_ids)
def test_training_gradients_equal_the_ordinary_backward(
    resnet18: EscnnModel, case: tuple[int, int, float, int]
) -> None:
    height, width, white, tile = case
    image = tissue_image(height, width, seed=height + 1, white_fraction=white)
    resnet18.train()
    reference_loss, reference = _ordinary_step(resnet18, image, 1.0)
    floor_global, floor_worst, _ = _errors(_noise_floor(resnet18, image, 1.0), reference)
    resnet18.zero_grad()
    loss = StreamingESCNN(resnet18, tile_size=tile).train_step(image, 1.0)
    global_error, worst, cosine = _errors(_grads(resnet18), reference)
    print(
        f"streaming: global {global_error:.2e} worst {worst:.2e} cosine {cosine:.8f}; "
        f"noise floor: global {floor_global:.2e} worst {floor_worst:.2e}"
    )
    assert loss == pytest.approx(reference_loss, rel=1e-4)
    assert cosine >= 0.9999
    assert global_error <= max(1e-4, floor_global)
    assert worst <= max(1e-4, floor_worst)


@pytest.mark.slow
def test_skipping_white_tiles_changes_nothing(resnet18: EscnnModel) -> None:
    """Skip on (white tiles and gradient-free tiles skipped) vs off (every tile computed in the
    forward and the backward pass, like the original streaming CNN): bit-identical results."""
    image = tissue_image(1100, 1300, seed=7, white_fraction=0.6)
    image[:300] = 255  # white margin on top as well
    results = {}
    for skip in (True, False):
        streaming = StreamingESCNN(resnet18, tile_size=640, skip_white=skip, sparse_backward=skip)
        logit, cam = streaming.infer(image)
        resnet18.zero_grad()
        loss = streaming.train_step(image, 0.0)
        results[skip] = (logit, cam, loss, _grads(resnet18))
    on, off = results[True], results[False]
    assert torch.equal(on[0], off[0]) and torch.equal(on[1], off[1]) and on[2] == off[2]
    assert all(torch.equal(a, b) for a, b in zip(on[3], off[3], strict=True))


def test_an_all_white_image(resnet18: EscnnModel) -> None:
    image = np.full((800, 900, 3), 255, np.uint8)
    with torch.no_grad():
        reference = resnet18.eval()(preprocess(image))[0]
    logit, cam = StreamingESCNN(resnet18, tile_size=512).infer(image)
    assert abs(logit.item() - reference.item()) <= 1e-4 * abs(reference.item())
    assert cam.min() > 0


def test_training_leaves_frozen_statistics_alone(resnet18: EscnnModel) -> None:
    model = copy.deepcopy(resnet18)  # optimiser steps must not leak into the other tests
    image = tissue_image(700, 800, seed=5, white_fraction=0.2)
    stats_before = {
        name: (m.running_mean.clone(), m.running_var.clone())
        for name, m in model.named_modules()
        if isinstance(m, FrozenBatchNorm2d)
    }
    optimiser = torch.optim.SGD(model.parameters(), lr=1e-3)
    streaming = StreamingESCNN(model, tile_size=640)
    gamma_before = model.layer1[0].bn1.weight.detach().clone()
    for target in (1.0, 0.0):
        optimiser.zero_grad()
        streaming.train_step(image, target)
        optimiser.step()
    for name, module in model.named_modules():
        if isinstance(module, FrozenBatchNorm2d):
            mean, var = stats_before[name]
            assert torch.equal(module.running_mean, mean) and torch.equal(module.running_var, var)
    assert not torch.equal(model.layer1[0].bn1.weight, gamma_before), "gamma is still trainable"


def test_reduced_precision_is_only_for_cuda(resnet18: EscnnModel) -> None:
    with pytest.raises(ValueError, match="only used on CUDA"):
        StreamingESCNN(resnet18, tile_size=512, precision="bf16")


def test_channels_last_convolutions_give_the_same_answer(resnet18: EscnnModel) -> None:
    image = tissue_image(700, 800, seed=11, white_fraction=0.2)
    logit, cam = StreamingESCNN(resnet18, tile_size=640).infer(image)
    nhwc_model = copy.deepcopy(resnet18)
    nhwc_logit, nhwc_cam = StreamingESCNN(nhwc_model, tile_size=640, channels_last=True).infer(image)
    assert abs(nhwc_logit.item() - logit.item()) <= 1e-4 * abs(logit.item())
    assert torch.allclose(nhwc_cam, cam, atol=1e-5, rtol=0)
