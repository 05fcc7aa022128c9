"""Ids derived from file names satisfy the event contract."""

from __future__ import annotations

from pathlib import Path

import pytest

from pathstream.shared.events import SlideScanned
from pathstream.shared.naming import safe_id, slide_id_for
from tests.samples import slide_scanned


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("S23-0001 A1", "S23-0001-A1"),
        ("test3-DAPI-2-(387)", "test3-DAPI-2-387"),
        ("..hidden", "hidden"),
        ("Gastrectomie_Lymphknoten#3", "Gastrectomie_Lymphknoten-3"),
    ],
)
def test_safe_id(name: str, expected: str) -> None:
    assert safe_id(name) == expected
    SlideScanned.model_validate(slide_scanned().model_dump() | {"slide_id": safe_id(name)})


def test_nothing_usable_is_refused() -> None:
    with pytest.raises(ValueError, match="give one explicitly"):
        safe_id("###")


def test_slide_ids_drop_the_extension_but_keep_folder_names(tmp_path: Path) -> None:
    assert slide_id_for(Path("/scans/S23-0001_A1.svs")) == "S23-0001_A1"
    folder = tmp_path / "CMU-1.dicom"
    folder.mkdir()
    assert slide_id_for(folder) == "CMU-1.dicom"
