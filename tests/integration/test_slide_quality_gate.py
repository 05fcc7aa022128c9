"""The slide-quality gate on real slides and on synthetic and re-made ones, as services meet it:
through `store_for_scan`, after ingest and before any model sees the slide."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openslide
import pytest

from pathstream.services.scanner.announcement import slide_scanned
from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.events import Specimen
from pathstream.shared.settings import PathStreamSettings
from pathstream.shared.tilestore.context import tiledb_context
from pathstream.shared.tilestore.scanned import store_for_scan
from pathstream.synthetic.lymph_node import write_lymph_node_slide
from pathstream.synthetic.marrow import write_marrow_cohort
from tests.bad_slides import restained, tiled_tiff
from tests.conftest import SHARED_DATA

pytestmark = pytest.mark.integration

WSI = SHARED_DATA / "wsi"
DAB = (0.268, 0.570, 0.776)


def _gate(tmp_path: Path, slide: Path, specimen: Specimen = Specimen.LYMPH_NODE, **settings: object) -> None:
    config = PathStreamSettings(
        data_dir=tmp_path / f"data-{slide.parent.name}-{slide.stem}",
        allowed_roots=[str(SHARED_DATA), str(tmp_path)],
        **settings,  # type: ignore[arg-type]
    )
    event = slide_scanned(slide, "s", "st", specimen)
    store_for_scan(event, config, tiledb_context(config))


def _refused(tmp_path: Path, slide: Path, words: str, specimen: Specimen = Specimen.LYMPH_NODE) -> None:
    with pytest.raises(PathStreamError) as info:
        _gate(tmp_path, slide, specimen)
    assert info.value.code == ErrorCode.QC_FAILED, info.value
    assert words in info.value.message and "Nothing was analysed" in info.value.message


@pytest.mark.parametrize("name", ["CMU-1-Small-Region.svs", "CMU-1-Small-Region_dicom_FALSECOLOUR"])
def test_real_brightfield_h_and_e_passes_and_the_false_colour_dicom_does_not(
    tmp_path: Path, name: str
) -> None:
    if "FALSECOLOUR" in name:
        _refused(tmp_path, WSI / name, "glass is coloured")
    else:
        _gate(tmp_path, WSI / name)


def test_the_real_tcga_slide_passes_with_the_operators_mpp(tmp_path: Path) -> None:
    config = PathStreamSettings(data_dir=tmp_path / "data", allowed_roots=[str(SHARED_DATA)])
    event = slide_scanned(WSI / "tcga-cr-7395-01a-01-ts1.svs", "s", "st", Specimen.LYMPH_NODE, mpp=0.25)
    store_for_scan(event, config, tiledb_context(config))


@pytest.mark.parametrize("specimen", [Specimen.LYMPH_NODE, Specimen.BONE_MARROW])
def test_the_real_dapi_fluorescence_slide_is_not_brightfield(tmp_path: Path, specimen: Specimen) -> None:
    _refused(tmp_path, WSI / "test3-DAPI-2-387.ndpi", "fluorescence", specimen)


def test_the_gate_can_be_turned_off_for_research(tmp_path: Path) -> None:
    _gate(tmp_path, WSI / "test3-DAPI-2-387.ndpi", slide_qc=False)


def test_a_blank_slide_is_refused(tmp_path: Path) -> None:
    blank = tiled_tiff(tmp_path / "blank.tif", np.full((2048, 3072, 3), 247, np.uint8), 0.25)
    _refused(tmp_path, blank, "no tissue was found")


def test_real_tissue_restained_with_dab_is_refused(tmp_path: Path) -> None:
    with openslide.OpenSlide(str(WSI / "CMU-1-Small-Region.svs")) as slide:
        rgb = np.asarray(slide.read_region((0, 0), 0, slide.dimensions).convert("RGB"))
    _refused(
        tmp_path, tiled_tiff(tmp_path / "dab.tif", restained(rgb, DAB), 0.499), "does not absorb like H&E"
    )


def test_synthetic_lymph_node_slides_and_smears_pass(tmp_path: Path) -> None:
    for seed in range(2):
        slide, _ = write_lymph_node_slide(tmp_path / f"ln{seed}", 12000, 8000, 1, seed)
        _gate(tmp_path, slide)
    write_marrow_cohort(tmp_path / "smears", 3, 0, slides=True, slide_size=4096)
    smears = sorted((tmp_path / "smears").rglob("*.tif"))
    assert len(smears) == 3
    for smear in smears:
        _gate(tmp_path, smear, Specimen.BONE_MARROW)


def test_a_scan_reports_ingest_progress_in_tile_rows(tmp_path: Path) -> None:
    """The embedded run's progress bar moves during a long ingest (issue 19: it sat at "slides 0/1")."""
    config = PathStreamSettings(data_dir=tmp_path / "data", allowed_roots=[str(SHARED_DATA)])
    seen: list[tuple[int, int]] = []
    event = slide_scanned(WSI / "CMU-1-Small-Region.svs", "s", "st", Specimen.LYMPH_NODE)
    store_for_scan(event, config, tiledb_context(config), lambda done, total: seen.append((done, total)))
    assert len(seen) > 3 and seen[-1][0] == seen[-1][1]
    assert [done for done, _ in seen] == list(range(1, len(seen) + 1))
