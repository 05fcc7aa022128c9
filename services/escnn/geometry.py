"""Where a tile must start and end for its output to equal the whole-image output exactly.

Derived from the network's layers, not guessed: walking every convolution and pooling layer of
the feature extractor gives the total stride S, the receptive field R and the leading padding P,
so output position q (of the stride-S map) depends exactly on input pixels
[q*S - P, q*S - P + R - 1]. A tile that starts at a multiple of S (so every layer's sampling grid
lines up with the whole image's) and contains that whole interval for each of its *valid*
outputs computes them exactly; its other outputs saw the tile's own zero padding and are dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck


@dataclass(frozen=True)
class LayerGeometry:
    """One sliding-window layer along one axis: kernel, stride, padding."""

    kernel: int
    stride: int
    padding: int

    def out_size(self, size: int) -> int:
        """Output length for an input of `size` (PyTorch's floor rule)."""
        return (size + 2 * self.padding - self.kernel) // self.stride + 1


@dataclass(frozen=True)
class NetworkGeometry:
    """The feature extractor's chain of windows along one axis (square kernels assumed)."""

    layers: tuple[LayerGeometry, ...]

    @property
    def stride(self) -> int:
        """Total stride S: input pixels per output position."""
        return math.prod(layer.stride for layer in self.layers)

    @property
    def receptive_field(self) -> int:
        """R: how many input pixels one output position depends on."""
        field, jump = 1, 1
        for layer in self.layers:
            field += (layer.kernel - 1) * jump
            jump *= layer.stride
        return field

    @property
    def padding(self) -> int:
        """P: how far left of q*S the receptive field of output q starts."""
        offset, jump = 0, 1
        for layer in self.layers:
            offset += layer.padding * jump
            jump *= layer.stride
        return offset

    def out_size(self, size: int) -> int:
        """Length of the output map for an input of `size` pixels."""
        for layer in self.layers:
            size = layer.out_size(size)
        return size

    def input_span(self, first: int, stop: int) -> tuple[int, int]:
        """Input pixels [start, end) that outputs [first, stop) depend on (unclipped)."""
        return first * self.stride - self.padding, (
            stop - 1
        ) * self.stride - self.padding + self.receptive_field


def _window(module: nn.Module) -> LayerGeometry:
    def first(value: object) -> int:
        if isinstance(value, int):
            return value
        if isinstance(value, tuple) and value and isinstance(value[0], int):
            return value[0]
        raise ValueError(f"unsupported window parameter {value!r} (string padding?)")

    if isinstance(module, nn.Conv2d):
        if module.dilation not in ((1, 1), 1):
            raise ValueError("dilated convolutions are not supported by the streaming geometry")
        return LayerGeometry(first(module.kernel_size), first(module.stride), first(module.padding))
    if isinstance(module, nn.MaxPool2d):
        return LayerGeometry(first(module.kernel_size), first(module.stride), first(module.padding))
    raise TypeError(f"not a sliding-window layer: {module!r}")


def _block_layers(block: nn.Module) -> list[LayerGeometry]:
    """The main branch of a residual block. Its shortcut (a strided 1x1 conv or identity) sees a
    subset of the same window, so the main branch determines the block's geometry."""
    if isinstance(block, Bottleneck):
        convs = [block.conv1, block.conv2, block.conv3]
    elif isinstance(block, BasicBlock):
        convs = [block.conv1, block.conv2]
    else:
        raise TypeError(f"unsupported residual block {type(block).__name__}")
    layers = [_window(conv) for conv in convs]
    if block.downsample is not None:
        shortcut = _window(block.downsample[0])
        main_stride = math.prod(layer.stride for layer in layers)
        if shortcut.kernel != 1 or shortcut.padding != 0 or shortcut.stride != main_stride:
            raise ValueError("unsupported shortcut: expected a 1x1 convolution with the block's stride")
    return layers


def resnet_geometry(stem: nn.Sequential, stages: list[nn.Sequential]) -> NetworkGeometry:
    """Geometry of a torchvision ResNet's feature extractor (stem + residual stages)."""
    layers = [_window(m) for m in stem if isinstance(m, (nn.Conv2d, nn.MaxPool2d))]
    for stage in stages:
        for block in stage:
            layers += _block_layers(block)
    return NetworkGeometry(tuple(layers))


@dataclass(frozen=True)
class TileSpan:
    """One tile along one axis: the input it reads and the outputs it is trusted for."""

    input_start: int
    input_stop: int
    output_start: int
    output_stop: int
    stride: int

    @property
    def valid_offset(self) -> int:
        """Index of the first trusted output inside the tile's own output map."""
        return self.output_start - self.input_start // self.stride

    @property
    def length(self) -> int:
        """Input pixels the tile reads."""
        return self.input_stop - self.input_start


def plan_axis(size: int, tile: int, geometry: NetworkGeometry) -> list[TileSpan]:
    """Cover an axis of `size` input pixels with tiles of at most `tile` pixels.

    Tiles start at multiples of the stride; each is trusted for the outputs whose whole receptive
    field lies inside it (or beyond the image edge, which the tile shares with the image). All
    tiles are `tile` pixels long except, when the image length is not a multiple of the stride,
    the last one (up to stride - 1 pixels longer).
    Raises ValueError when `tile` is too small to trust a single output.
    """
    stride = geometry.stride
    outputs = geometry.out_size(size)
    if outputs <= 0:
        raise ValueError(f"an input of {size} px is too small for this network")
    spans: list[TileSpan] = []
    first = 0
    while first < outputs:
        start = max(0, geometry.input_span(first, first + 1)[0])
        start -= start % stride
        # Grow the run of outputs while its receptive fields still fit in `tile` pixels.
        stop = first + 1
        while stop < outputs and min(size, geometry.input_span(first, stop + 1)[1]) - start <= tile:
            stop += 1
        end = min(size, geometry.input_span(first, stop)[1])
        if end - start > tile:
            raise ValueError(
                f"tile size {tile} px is smaller than one output's receptive field "
                f"({geometry.receptive_field} px at stride {stride}); use a larger tile"
            )
        spans.append(TileSpan(start, end, first, stop, stride))
        first = stop
    return _uniform(spans, size, tile, stride)


def _uniform(spans: list[TileSpan], size: int, tile: int, stride: int) -> list[TileSpan]:
    """Widen every tile to the full tile size where the image allows (the last one by starting
    earlier, on a stride boundary), keeping each tile's trusted outputs. Equal shapes let
    convolution kernels, memory and the white-tile cache be reused from tile to tile."""
    if len(spans) == 1 or size <= tile:
        return spans
    widened = [
        TileSpan(s.input_start, min(size, s.input_start + tile), s.output_start, s.output_stop, stride)
        for s in spans[:-1]
    ]
    last = spans[-1]
    start = min(last.input_start, ((size - tile) // stride) * stride)
    widened.append(TileSpan(max(0, start), size, last.output_start, last.output_stop, stride))
    return widened
