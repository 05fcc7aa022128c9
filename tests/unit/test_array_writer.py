"""Global-order writing: any column blocking of any image size reads back exactly, as one fragment."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tiledb

from pathstream.shared.tilestore.array_writer import GlobalOrderWriter
from pathstream.shared.tilestore.layout import ArrayInfo, TileFormat, array_schema
from pathstream.shared.tilestore.reader import StoreArray


@pytest.mark.parametrize(
    ("width", "height", "tile"), [(700, 530, 256), (256, 256, 256), (90, 1000, 256), (1030, 70, 512)]
)
def test_blocks_read_back_exactly_as_one_fragment(tmp_path: Path, width: int, height: int, tile: int) -> None:
    image = np.random.default_rng(width).integers(0, 256, (height, width, 3), dtype=np.uint8)
    uri = str(tmp_path / "array")
    tiledb.Array.create(uri, array_schema(width, height, TileFormat(tile=tile)))
    rng = np.random.default_rng(1)
    with tiledb.open(uri, "w") as array:
        writer = GlobalOrderWriter(array, width, height, tile)
        for top in range(0, height, tile):
            rows = image[top : top + tile]
            column = 0
            while column < width:  # uneven column blocks, as snapped chunks are
                step = int(rng.integers(1, 400))
                writer.add_columns(rows[:, column : column + step])
                column += step
            writer.end_row()
        writer.finish()
    info = ArrayInfo("a", 0.46, 0.46, width, height, 1.0, 1.0)
    stored = StoreArray(info=info, uri=uri, ctx=None)
    assert np.array_equal(stored.read_all(), image)
    assert np.array_equal(stored.read(width - 5, height - 5, 10, 10)[:5, :5], image[-5:, -5:])
    assert (stored.read(width - 5, height - 5, 10, 10)[5:, :] == 255).all(), "outside the image is white"
    assert len(tiledb.array_fragments(uri)) == 1
