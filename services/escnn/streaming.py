"""Exact streaming inference and training of an ESCNN model on gigapixel images.

Forward: the image is cut into tiles that overlap by the receptive-field margin
(`pathstream.services.escnn.geometry`); each tile's *valid* outputs equal the whole-image feature map
there, so the global max pool is the max over tiles of each tile's max, with the row-major-first
position kept for ties as PyTorch's max pooling does. The CAM is assembled tile by tile.

Backward: with global max pooling only the positions holding a channel's maximum receive
gradient. The forward pass keeps no activations; after the loss, only the tiles that hold a
maximum are recomputed with autograd (gradient checkpointing per tile), each back-propagating
dL/d(max) into the parameters. Every other tile is skipped, and memory is one tile's worth.

White tiles (every byte 255, see `pathstream.services.escnn.tiles`) are not computed: their contribution is
the cached response of a white window of the same shape, which is exactly what computing them
gives, so results with and without skipping are identical.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from pathstream.backbones.imagenet import normalisation
from pathstream.services.escnn.geometry import NetworkGeometry, plan_axis, resnet_geometry
from pathstream.services.escnn.memory import choose_tile_size
from pathstream.services.escnn.model import EscnnModel
from pathstream.services.escnn.tiles import ArraySource, ImageSource, Tile, TileProducer

Precision = Literal["fp32", "bf16", "fp16"]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
FP16_LOSS_SCALE = 1024.0


@dataclass
class PoolResult:
    """Global max pool over the whole image, found tile by tile."""

    values: torch.Tensor  # C, float32: the max of each channel
    position: torch.Tensor  # C, int64: row-major index of the first position holding it
    tile: torch.Tensor  # C, int64: index of the tile that holds that position
    cam: torch.Tensor | None  # Ho x Wo, float32 in [0, 1], when asked for


@dataclass
class _TileContribution:
    values: torch.Tensor
    position: torch.Tensor
    cam: torch.Tensor | None


def bce_loss(logit: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy on the logit (the default training loss)."""
    return F.binary_cross_entropy_with_logits(logit, target)


class StreamingESCNN:
    """Streams images of any size through an `EscnnModel` with exact results.

    tile_size: input pixels per tile side (a multiple of the stride); None chooses the largest
    that fits the device's free memory. skip_white: skip tiles whose input window is all white.
    sparse_backward: recompute only the tiles that hold a channel's maximum (False recomputes
    every tile, like the original streaming CNN; the gradients are the same).
    precision: "fp32" (default, exact), or "bf16" / "fp16" autocast on CUDA. channels_last:
    NHWC convolutions (default on CUDA).
    """

    def __init__(
        self,
        model: EscnnModel,
        tile_size: int | None = None,
        skip_white: bool = True,
        *,
        device: torch.device | str | None = None,
        precision: Precision = "fp32",
        channels_last: bool | None = None,
        prefetch: int = 2,
        sparse_backward: bool = True,
    ) -> None:
        self.model = model
        self.sparse_backward = sparse_backward
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.model.to(self.device)
        self.precision = precision
        if precision != "fp32" and self.device.type != "cuda":
            raise ValueError(f"{precision} autocast is only used on CUDA; use fp32 on {self.device.type}")
        self.channels_last = self.device.type == "cuda" if channels_last is None else channels_last
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.geometry: NetworkGeometry = resnet_geometry(
            model.stem, [model.layer1, model.layer2, model.layer3, model.layer4]
        )
        stride = self.geometry.stride
        chosen = tile_size or choose_tile_size(
            model, self.device, self.geometry, train=True, precision=precision
        )
        self.tile_size = max(stride, chosen - chosen % stride)
        self.skip_white = skip_white
        self.prefetch = prefetch
        self._mean, self._std = normalisation(self.device)
        self._white_maps: dict[tuple[int, int], torch.Tensor] = {}

    # -- planning ----------------------------------------------------------------------------

    def output_shape(self, height: int, width: int) -> tuple[int, int]:
        """(rows, columns) of the feature map (and CAM) for an image of height x width."""
        return self.geometry.out_size(height), self.geometry.out_size(width)

    def plan(self, height: int, width: int) -> list[Tile]:
        """The tiles covering an image, row-major."""
        rows = plan_axis(height, self.tile_size, self.geometry)
        cols = plan_axis(width, self.tile_size, self.geometry)
        return [Tile(i * len(cols) + j, y, x) for i, y in enumerate(rows) for j, x in enumerate(cols)]

    # -- tile computation --------------------------------------------------------------------

    def _load(self, pixels: np.ndarray) -> torch.Tensor:
        """Producer side: uint8 H x W x 3 -> uint8 1 x 3 x H x W on the device (4x less to hold
        and to move than floats; the consumer normalises)."""
        tensor = torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1).unsqueeze(0)
        if self.device.type == "cuda":
            tensor = tensor.pin_memory().to(self.device, non_blocking=True)
        return tensor

    def _normalise(self, tensor: torch.Tensor) -> torch.Tensor:
        """Consumer side: uint8 1 x 3 x H x W -> the model's input (see `model.preprocess`)."""
        tensor = (tensor.float() / 255.0 - self._mean) / self._std
        if self.channels_last:
            tensor = tensor.contiguous(memory_format=torch.channels_last)
        return tensor

    def _features(self, loaded: torch.Tensor) -> torch.Tensor:
        with self._autocast():
            return self.model.features(self._normalise(loaded))

    def _autocast(self) -> contextlib.AbstractContextManager[object]:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def _valid(self, features: torch.Tensor, tile: Tile) -> torch.Tensor:
        """The tile's trusted outputs: C x h x w."""
        y0, x0 = tile.y.valid_offset, tile.x.valid_offset
        h = tile.y.output_stop - tile.y.output_start
        w = tile.x.output_stop - tile.x.output_start
        if features.shape[2] < y0 + h or features.shape[3] < x0 + w:
            raise RuntimeError(f"tile {tile} produced a {tuple(features.shape)} map, too small for its plan")
        return features[0, :, y0 : y0 + h, x0 : x0 + w]

    # -- forward -----------------------------------------------------------------------------

    def _tiles(
        self, source: ImageSource, tiles: list[Tile], mark_white: bool
    ) -> Iterator[tuple[Tile, torch.Tensor | None]]:
        producer = TileProducer(source, tiles, self._load, mark_white, self.prefetch)
        for ready in producer:
            yield ready.tile, ready.tensor

    @torch.no_grad()
    def pool(self, source: ImageSource, with_cam: bool = False) -> PoolResult:
        """Global max pool (and optionally the CAM) of a whole image, tile by tile, without
        keeping any activation."""
        out_h, out_w = self.output_shape(source.height, source.width)
        tiles = self.plan(source.height, source.width)
        channels = self.model.channels
        best = torch.full((channels,), float("-inf"), device=self.device)
        best_pos = torch.full(
            (channels,), torch.iinfo(torch.int64).max, dtype=torch.int64, device=self.device
        )
        best_tile = torch.full((channels,), -1, dtype=torch.int64, device=self.device)
        cam = torch.zeros((out_h, out_w), device=self.device) if with_cam else None
        for tile, tensor in self._tiles(source, tiles, mark_white=self.skip_white):
            part = self._local_contribution(tile, tensor, with_cam)
            rows = tile.y.output_start + torch.div(part.position, _LOCAL, rounding_mode="floor")
            cols = tile.x.output_start + part.position % _LOCAL
            position = rows * out_w + cols
            better = (part.values > best) | ((part.values == best) & (position < best_pos))
            best = torch.where(better, part.values, best)
            best_pos = torch.where(better, position, best_pos)
            best_tile = torch.where(better, torch.full_like(best_tile, tile.index), best_tile)
            if cam is not None and part.cam is not None:
                cam[tile.y.output_start : tile.y.output_stop, tile.x.output_start : tile.x.output_stop] = (
                    part.cam
                )
        return PoolResult(best, best_pos, best_tile, cam)

    def _local_contribution(
        self, tile: Tile, tensor: torch.Tensor | None, with_cam: bool
    ) -> _TileContribution:
        """Per-channel max of the tile's valid block, its position encoded within the block as
        row * _LOCAL + col, and the block's CAM."""
        if tensor is None:
            return self._summarise(self._white_features(tile.shape), tile, with_cam)
        return self._summarise(self._features(tensor), tile, with_cam)

    def _white_features(self, shape: tuple[int, int]) -> torch.Tensor:
        """The feature map of an all-white tile of `shape`, computed once per shape.

        A white tile's pixels, hence its whole feature map, depend only on its shape, and the
        computation is deterministic, so this is exactly what computing the tile would give.
        """
        cached = self._white_maps.get(shape)
        if cached is None:
            cached = self._features(self._load(np.full((*shape, 3), 255, np.uint8)))
            self._white_maps[shape] = cached
        return cached

    def _summarise(self, features: torch.Tensor, tile: Tile, with_cam: bool) -> _TileContribution:
        block = self._valid(features, tile).float()
        channels, h, w = block.shape
        values, local = block.reshape(channels, h * w).max(dim=1)  # first index among ties
        position = torch.div(local, w, rounding_mode="floor") * _LOCAL + local % w
        cam = None
        if with_cam:
            head = self.model.head
            logits = torch.einsum("chw,c->hw", block, head.weight[0].float()) + head.bias[0].float()
            cam = torch.sigmoid(logits)
        return _TileContribution(values, position, cam)

    def infer(self, image: np.ndarray | ImageSource) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 H x W x 3 image (or a source) -> (logit: float tensor [1], CAM: float [Ho, Wo]).

        The CAM is sigmoid(head weights . pre-pool features + head bias) at stride 32.
        """
        source = ArraySource(image) if isinstance(image, np.ndarray) else image
        was_training = self.model.training
        self.model.eval()
        try:
            result = self.pool(source, with_cam=True)
            with torch.no_grad():
                logit = self.model.head(result.values.unsqueeze(0))[0]
        finally:
            self.model.train(was_training)
        assert result.cam is not None
        return logit.detach().cpu(), result.cam.cpu()

    # -- training ----------------------------------------------------------------------------

    def train_step(self, image: np.ndarray | ImageSource, target: float, loss_fn: LossFn = bce_loss) -> float:
        """One forward/backward pass; returns the loss and accumulates every parameter's gradient
        into `.grad`, as `loss_fn(model(x), target).backward()` on the whole image would."""
        source = ArraySource(image) if isinstance(image, np.ndarray) else image
        pooled = self.pool(source, with_cam=False)
        values = pooled.values.detach().clone().requires_grad_(True)
        logit = self.model.head(values.unsqueeze(0))
        loss = loss_fn(logit, torch.tensor([[float(target)]], device=self.device))
        loss.backward()
        assert values.grad is not None
        self._backward_tiles(source, pooled, values.grad)
        return float(loss.detach())

    def _backward_tiles(self, source: ImageSource, pooled: PoolResult, upstream: torch.Tensor) -> None:
        """Recompute only the tiles holding a maximum, and push dL/d(max) into the parameters."""
        out_w = self.geometry.out_size(source.width)
        carrying = (upstream != 0) & (pooled.tile >= 0)
        tiles = self.plan(source.height, source.width)
        wanted = (
            sorted({int(t) for t in pooled.tile[carrying].tolist()})
            if self.sparse_backward
            else list(range(len(tiles)))
        )
        if not wanted:
            return
        # fp16 gradients can underflow: scale the seed, unscale what arrives in the parameters.
        scale = FP16_LOSS_SCALE if self.precision == "fp16" else 1.0
        params = [p for p in self.model.parameters() if p.requires_grad]
        for tile, tensor in self._tiles(source, [tiles[i] for i in wanted], mark_white=False):
            assert tensor is not None
            channels = torch.nonzero(carrying & (pooled.tile == tile.index)).flatten()
            rows = torch.div(pooled.position[channels], out_w, rounding_mode="floor") - tile.y.output_start
            cols = pooled.position[channels] % out_w - tile.x.output_start
            block = self._valid(self._features(tensor), tile)
            seed = (block[channels, rows, cols].float() * upstream[channels] * scale).sum()
            if channels.numel() == 0:  # a tile without maxima (dense backward): zero, but connected
                seed = block.sum() * 0.0
            grads = torch.autograd.grad(seed, params, allow_unused=True)
            for param, grad in zip(params, grads, strict=True):
                if grad is None:
                    continue
                grad = grad / scale if scale != 1.0 else grad
                if param.grad is None:
                    param.grad = grad.detach().clone()
                else:
                    param.grad.add_(grad)


_LOCAL = 1 << 20
"""Positions inside one tile's valid block are encoded as row * _LOCAL + column."""
