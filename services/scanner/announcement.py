"""The `SlideScanned` announcement of one slide file, as `pathstream watch` and `pathstream run` send it.

Delivery is at least once: a scan announced again after a crash, or a slide run again, must be
recognisable as the same scan so consumers drop it on its event id. So the event id is not random:
it follows from what identifies the scan, the slide and study ids and the slide's content.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from pathstream.shared.events import SlideScanned, Specimen
from pathstream.shared.tilestore.fingerprint import slide_sha256

SCAN_NAMESPACE = uuid.UUID("5c2e7d10-8a4f-4b6e-9f31-0d7a2c6b8e45")
"""uuid5 namespace of scan event ids; changing it would make every earlier scan look new."""


def scan_event_id(slide_id: str, study_id: str, sha256: str, mpp: float | None = None) -> uuid.UUID:
    """The event id of the scan of content `sha256` as slide `slide_id` of study `study_id`, with the
    operator's `mpp` (um/px) when one was given: the same values give the same id, a change in any
    one gives another (so a slide that failed for want of mpp is processed when given one)."""
    name = f"{slide_id}/{study_id}/{sha256}" + ("" if mpp is None else f"/mpp={mpp!r}")
    return uuid.uuid5(SCAN_NAMESPACE, name)


def slide_scanned(
    path: Path,
    slide_id: str,
    study_id: str,
    specimen: Specimen,
    *,
    sha256: str | None = None,
    mpp: float | None = None,
    event_id: uuid.UUID | None = None,
) -> SlideScanned:
    """The announcement of the slide file (or DICOM / MRXS folder) at `path` under `slide_id` and
    `study_id`. `sha256` is the slide's fingerprint when already computed (else the file is hashed);
    `mpp` the level-0 um/px to announce for scanners that do not record it; `event_id` an id already
    promised for this scan (one recorded before a crash), else `scan_event_id`."""
    if sha256 is None:
        sha256 = slide_sha256(path)
    return SlideScanned(
        event_id=event_id or scan_event_id(slide_id, study_id, sha256, mpp),
        slide_id=slide_id,
        study_id=study_id,
        specimen=specimen,
        uri=str(path),
        sha256=sha256,
        mpp=mpp,
    )
