"""The tile producer thread and the tile-size chooser."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pathstream.services.escnn.geometry import plan_axis, resnet_geometry
from pathstream.services.escnn.memory import choose_tile_size, estimate_bytes
from pathstream.services.escnn.tiles import ArraySource, Tile, TileProducer
from tests.unit.escnn.conftest import randomised


def _tiles(height: int, width: int, tile: int) -> list[Tile]:
    model = randomised("resnet18")
    geometry = resnet_geometry(model.stem, [model.layer1, model.layer2, model.layer3, model.layer4])
    rows, cols = plan_axis(height, tile, geometry), plan_axis(width, tile, geometry)
    return [Tile(i * len(cols) + j, y, x) for i, y in enumerate(rows) for j, x in enumerate(cols)]


def test_producer_delivers_every_tile_in_order_and_marks_white() -> None:
    image = np.full((1200, 1200, 3), 255, np.uint8)
    image[:400, :400] = 120
    tiles = _tiles(1200, 1200, 640)
    delivered = list(TileProducer(ArraySource(image), tiles, lambda p: torch.from_numpy(p.copy()), True, 2))
    assert [d.tile.index for d in delivered] == list(range(len(tiles)))
    for ready in delivered:
        window = image[
            ready.tile.y.input_start : ready.tile.y.input_stop,
            ready.tile.x.input_start : ready.tile.x.input_stop,
        ]
        assert (ready.tensor is None) == bool((window == 255).all())
    assert any(d.tensor is None for d in delivered) and any(d.tensor is not None for d in delivered)


def test_producer_errors_reach_the_consumer() -> None:
    class Broken(ArraySource):
        def read(self, y0: int, x0: int, height: int, width: int) -> np.ndarray:
            raise OSError("tile store unreachable")

    producer = TileProducer(
        Broken(np.zeros((800, 800, 3), np.uint8)), _tiles(800, 800, 640), torch.from_numpy, True
    )
    with pytest.raises(OSError, match="unreachable"):
        list(producer)


def test_chooser_fits_the_budget_and_respects_the_receptive_field() -> None:
    model = randomised("resnet18")
    geometry = resnet_geometry(model.stem, [model.layer1, model.layer2, model.layer3, model.layer4])
    budget = 2 * 2**30
    tile = choose_tile_size(model, torch.device("cpu"), geometry, train=True, budget_bytes=budget)
    assert tile % 32 == 0
    assert estimate_bytes(model, tile, train=True) <= budget < estimate_bytes(model, tile + 32, train=True)
    inference = choose_tile_size(model, torch.device("cpu"), geometry, train=False, budget_bytes=budget)
    assert inference > tile, "inference keeps fewer activations than training"
    tiny = choose_tile_size(model, torch.device("cpu"), geometry, train=True, budget_bytes=1)
    assert tiny >= geometry.receptive_field + 32
