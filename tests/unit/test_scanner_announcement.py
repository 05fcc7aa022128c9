"""The one `SlideScanned` announcement: its event id names the scan, so a re-send is recognisable."""

from __future__ import annotations

import uuid
from pathlib import Path

from pathstream.services.scanner.announcement import scan_event_id, slide_scanned
from pathstream.shared.events import Specimen
from pathstream.shared.tilestore.fingerprint import slide_sha256


def _slide(path: Path, data: bytes = b"slide bytes") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_the_same_slide_is_announced_with_the_same_event_id(tmp_path: Path) -> None:
    slide = _slide(tmp_path / "S26-0001_A1.svs")
    first = slide_scanned(slide, "S26-0001_A1", "S26-0001", Specimen.LYMPH_NODE)
    again = slide_scanned(slide, "S26-0001_A1", "S26-0001", Specimen.LYMPH_NODE)
    assert first.event_id == again.event_id
    assert first.sha256 == slide_sha256(slide)
    assert first.uri == str(slide) and first.mpp is None
    assert first.event_id == scan_event_id("S26-0001_A1", "S26-0001", first.sha256)


def test_the_event_id_depends_on_slide_study_content_and_operator_mpp_only(tmp_path: Path) -> None:
    slide = _slide(tmp_path / "a" / "S26-0001_A1.svs")
    copy = _slide(tmp_path / "b" / "S26-0001_A1.svs")
    base = slide_scanned(slide, "S26-0001_A1", "S26-0001", Specimen.LYMPH_NODE)
    # Where the file lies and its specimen do not make it another scan.
    moved = slide_scanned(copy, "S26-0001_A1", "S26-0001", Specimen.BONE_MARROW)
    assert moved.event_id == base.event_id and moved.specimen == Specimen.BONE_MARROW
    # An operator's mpp does: a slide that failed for want of one is processed when given one.
    with_mpp = slide_scanned(slide, "S26-0001_A1", "S26-0001", Specimen.LYMPH_NODE, mpp=0.25)
    assert with_mpp.mpp == 0.25 and with_mpp.event_id not in {base.event_id}
    assert (
        with_mpp.event_id
        == slide_scanned(slide, "S26-0001_A1", "S26-0001", Specimen.LYMPH_NODE, mpp=0.25).event_id
    )
    assert (
        with_mpp.event_id
        != slide_scanned(slide, "S26-0001_A1", "S26-0001", Specimen.LYMPH_NODE, mpp=0.5).event_id
    )
    other_ids = {
        scan_event_id("S26-0001_A2", "S26-0001", base.sha256),
        scan_event_id("S26-0001_A1", "S26-0002", base.sha256),
        scan_event_id("S26-0001_A1", "S26-0001", "0" * 64),
    }
    assert base.event_id not in other_ids and len(other_ids) == 3
    rescanned = slide_scanned(_slide(slide, b"other bytes"), "S26-0001_A1", "S26-0001", Specimen.LYMPH_NODE)
    assert rescanned.event_id != base.event_id


def test_a_given_sha256_and_recorded_event_id_are_used_as_they_are(tmp_path: Path) -> None:
    missing = tmp_path / "gone.svs"  # given the fingerprint, the file is not read again
    recorded = uuid.uuid4()
    event = slide_scanned(missing, "S1", "ST1", Specimen.LYMPH_NODE, sha256="ab" * 32, event_id=recorded)
    assert event.sha256 == "ab" * 32 and event.event_id == recorded
    assert slide_scanned(missing, "S1", "ST1", Specimen.LYMPH_NODE, sha256="ab" * 32).event_id == (
        scan_event_id("S1", "ST1", "ab" * 32)
    )
