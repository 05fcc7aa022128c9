"""Every bad input of the ingestion path: a clear, coded error, and no store left behind."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
import tiledb

from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.events import FailureStage, SlideFailed, Specimen
from pathstream.shared.tilestore.ingest import ingest_slide
from pathstream.shared.tilestore.limits import SlideLimits
from tests.bad_slides import huge_header_tiff
from tests.conftest import SHARED_DATA

pytestmark = pytest.mark.integration

WSI = SHARED_DATA / "wsi"
SVS = WSI / "CMU-1-Small-Region.svs"


def _fails(path: Path, store: Path, code: ErrorCode, **kwargs: object) -> PathStreamError:
    with pytest.raises(PathStreamError) as info:
        ingest_slide(path, str(store), "bad", **kwargs)  # type: ignore[arg-type]
    assert info.value.code == code, info.value
    assert not (store / "bad").exists(), "no half-written store may remain"
    return info.value


def test_missing_mpp_says_how_to_fix_it(tmp_path: Path) -> None:
    error = _fails(WSI / "tcga-cr-7395-01a-01-ts1.svs", tmp_path, ErrorCode.MPP_MISSING)
    assert "--mpp" in error.hint


def test_absurd_mpp_in_the_file(tmp_path: Path) -> None:
    error = _fails(WSI / "CMU-1-Small-Region.jpeg.tiff", tmp_path, ErrorCode.MPP_ABSURD)
    assert "0.00499" in error.message and "--mpp" in error.hint


@pytest.mark.parametrize("mpp", [0.001, 25.0])
def test_absurd_mpp_from_the_operator(tmp_path: Path, mpp: float) -> None:
    _fails(SVS, tmp_path, ErrorCode.MPP_ABSURD, mpp=mpp)


def test_scan_too_coarse_for_20x(tmp_path: Path) -> None:
    error = _fails(SVS, tmp_path, ErrorCode.SCAN_TOO_COARSE, mpp=1.5)
    assert "0.92" in error.message


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.9])
def test_truncated_slide(tmp_path: Path, keep: float) -> None:
    truncated = tmp_path / "truncated.svs"
    data = SVS.read_bytes()
    truncated.write_bytes(data[: int(len(data) * keep)])
    _fails(truncated, tmp_path / "store", ErrorCode.SLIDE_CORRUPT)


def test_damaged_tile_data_fails_mid_ingest_and_leaves_nothing(tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.svs"
    data = bytearray(SVS.read_bytes())
    data[300_000:900_000] = bytes(600_000)  # zero the middle of the JPEG tile data
    damaged.write_bytes(bytes(data))
    error = _fails(damaged, tmp_path / "store", ErrorCode.SLIDE_CORRUPT)
    assert "cannot be decoded" in error.message


def test_a_real_image_that_is_not_a_slide(tmp_path: Path) -> None:
    patch = next((SHARED_DATA / "lymph_node_pcam" / "positive").glob("*.tif"))
    _fails(patch, tmp_path, ErrorCode.NOT_A_SLIDE)
    _fails(SHARED_DATA / "bone_marrow_mll_smear" / "BLA_00001.jpg", tmp_path, ErrorCode.NOT_A_SLIDE)


def test_a_text_file_named_like_a_slide(tmp_path: Path) -> None:
    fake = tmp_path / "notes.svs"
    fake.write_text("scanner log: slide 17 re-scanned\n")
    _fails(fake, tmp_path, ErrorCode.NOT_A_SLIDE)


def test_zero_byte_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.svs"
    empty.touch()
    _fails(empty, tmp_path, ErrorCode.SLIDE_EMPTY)


def test_missing_file(tmp_path: Path) -> None:
    _fails(tmp_path / "nowhere.svs", tmp_path, ErrorCode.SLIDE_NOT_FOUND)


def test_outside_allowed_roots(tmp_path: Path) -> None:
    _fails(SVS, tmp_path, ErrorCode.OUTSIDE_ALLOWED_ROOTS, allowed_roots=[str(tmp_path / "inbox")])


def test_errors_become_slide_failed_events() -> None:
    error = PathStreamError(ErrorCode.MPP_MISSING, "Slide x has no mpp.", hint="Pass --mpp.")
    event = SlideFailed.from_exception("S-1", "ST-1", FailureStage.INGEST, error)
    assert event.error_code == ErrorCode.MPP_MISSING
    assert event.message == "Slide x has no mpp. Pass --mpp." and event.retriable is False
    crash = SlideFailed.from_exception("S-1", "ST-1", FailureStage.DETECT, RuntimeError("CUDA lost"))
    assert crash.error_code == ErrorCode.INTERNAL and crash.retriable is True


def test_same_content_reuses_the_store_and_other_content_is_refused(tmp_path: Path) -> None:
    first = ingest_slide(SVS, str(tmp_path), "slide")
    assert not first.reused
    again = ingest_slide(SVS, str(tmp_path), "slide")
    assert again.reused and again.sha256 == first.sha256
    assert again.seconds < first.seconds
    with pytest.raises(PathStreamError) as info:
        ingest_slide(WSI / "tcga-cr-7395-01a-01-ts1.svs", str(tmp_path), "slide", mpp=0.25)
    assert info.value.code == ErrorCode.STORE_CONFLICT
    assert (tmp_path / "slide").exists(), "the existing store is kept"


def test_an_unfinished_store_is_rebuilt(tmp_path: Path) -> None:
    result = ingest_slide(SVS, str(tmp_path), "slide")
    with tiledb.Group(result.store_uri, "w") as group:
        group.meta["complete"] = 0  # as if the process died before the last commit
    rebuilt = ingest_slide(SVS, str(tmp_path), "slide")
    assert not rebuilt.reused


def test_dicom_folder_and_copies_hash_by_content(tmp_path: Path) -> None:
    folder = tmp_path / "dicom"
    shutil.copytree(WSI / "CMU-1-Small-Region_dicom_FALSECOLOUR", folder)
    a = ingest_slide(WSI / "CMU-1-Small-Region_dicom_FALSECOLOUR", str(tmp_path / "s1"), "d")
    b = ingest_slide(folder, str(tmp_path / "s2"), "d")
    assert a.sha256 == b.sha256


def test_a_header_claiming_a_terapixel_is_refused_before_any_pixel_is_read(tmp_path: Path) -> None:
    huge = huge_header_tiff(tmp_path / "huge.tif")
    assert huge.stat().st_size < 10_000_000  # 7.6 MB claiming 10^6 x 10^6 px
    started = time.perf_counter()
    error = _fails(huge, tmp_path / "store", ErrorCode.SLIDE_TOO_LARGE)
    assert time.perf_counter() - started < 10
    assert "1000000 x 1000000" in error.message and "PATHSTREAM_MAX_SLIDE_SIDE_PX" in error.hint


def test_limits_are_settings_for_pixels_and_memory(tmp_path: Path) -> None:
    error = _fails(SVS, tmp_path / "a", ErrorCode.SLIDE_TOO_LARGE, limits=SlideLimits(max_gigapixels=0.001))
    assert "gigapixels" in error.message
    error = _fails(SVS, tmp_path / "b", ErrorCode.SLIDE_TOO_LARGE, limits=SlideLimits(max_memory_mb=1))
    assert "MB" in error.message and "PATHSTREAM_MAX_SLIDE_MEMORY_MB" in error.hint


def test_a_store_made_with_the_operators_mpp_serves_later_runs_without_it(tmp_path: Path) -> None:
    tcga = WSI / "tcga-cr-7395-01a-01-ts1.svs"
    first = ingest_slide(tcga, str(tmp_path), "slide", mpp=0.25)
    again = ingest_slide(tcga, str(tmp_path), "slide")  # the file still has no mpp
    assert again.reused and (again.mpp_x, again.mpp_source) == (0.25, "operator")
    marrow = ingest_slide(tcga, str(tmp_path), "slide", Specimen.BONE_MARROW)  # needs one more array
    assert not marrow.reused and marrow.mpp_x == 0.25 and "marrow_roi" in {a.name for a in marrow.arrays}
    corrected = ingest_slide(tcga, str(tmp_path), "slide", mpp=0.5)
    assert not corrected.reused and corrected.mpp_x == 0.5 and corrected.sha256 == first.sha256
