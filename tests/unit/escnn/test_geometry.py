"""The tiling geometry is derived from the layers, and checked against autograd's dependencies."""

from __future__ import annotations

import pytest
import torch

from pathstream.services.escnn.geometry import plan_axis, resnet_geometry
from tests.unit.escnn.conftest import randomised


def _geometry(backbone: str):  # type: ignore[no-untyped-def]
    model = randomised(backbone)
    return model, resnet_geometry(model.stem, [model.layer1, model.layer2, model.layer3, model.layer4])


@pytest.mark.parametrize(("backbone", "field"), [("resnet18", 435), ("resnet34", 899), ("resnet50", 427)])
def test_stride_and_receptive_field(backbone: str, field: int) -> None:
    _, geometry = _geometry(backbone)
    assert geometry.stride == 32
    assert geometry.receptive_field == field


@pytest.mark.parametrize("backbone", ["resnet18", pytest.param("resnet50", marks=pytest.mark.slow)])
def test_receptive_field_is_exactly_what_autograd_says(backbone: str) -> None:
    """The input pixels one output depends on (by back-propagation) are the predicted span."""
    model, geometry = _geometry(backbone)
    model.eval()
    size = 1024
    image = torch.randn(1, 3, size, size, requires_grad=True)
    features = model.features(image)
    assert features.shape[-1] == geometry.out_size(size)
    q = 16  # an interior output, whose field does not touch the image edge
    features[0, :, q, q].sum().backward()
    assert image.grad is not None
    touched = image.grad[0].abs().sum(dim=(0, 1)).nonzero().flatten()
    start, end = geometry.input_span(q, q + 1)
    assert start >= 0 and end <= size
    assert touched.min().item() == start and touched.max().item() == end - 1


@pytest.mark.parametrize("size", [512, 700, 1100, 2048, 4111])
@pytest.mark.parametrize("tile", [512, 640, 1024])
def test_tiles_cover_every_output_once_from_aligned_starts(size: int, tile: int) -> None:
    _, geometry = _geometry("resnet18")
    spans = plan_axis(size, tile, geometry)
    outputs = [q for span in spans for q in range(span.output_start, span.output_stop)]
    assert outputs == list(range(geometry.out_size(size)))
    for span in spans:
        assert span.input_start % 32 == 0 and 0 <= span.input_start < span.input_stop <= size
        assert span.length <= tile + 31
    if size > tile:
        assert {s.length for s in spans[:-1]} == {tile}, "uniform tiles"
        assert spans[-1].length < tile + 32
        start, end = geometry.input_span(span.output_start, span.output_stop)
        assert span.input_start <= max(start, 0) and min(end, size) <= span.input_stop


def test_a_tile_smaller_than_the_receptive_field_is_refused() -> None:
    _, geometry = _geometry("resnet18")
    with pytest.raises(ValueError, match="receptive field"):
        plan_axis(2048, 256, geometry)
