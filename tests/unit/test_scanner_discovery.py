"""Finding slides in a scanner folder and telling when they are completely written."""

from __future__ import annotations

import os
import time
from pathlib import Path

from pathstream.services.scanner.discovery import CompletionTracker, find_candidates


def _touch(path: Path, data: bytes = b"x" * 10, age_s: float = 60.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    old = time.time() - age_s
    os.utime(path, (old, old))
    return path


def test_formats_multi_file_slides_and_ignored_names(tmp_path: Path) -> None:
    svs = _touch(tmp_path / "case1" / "S1.svs")
    mrxs = _touch(tmp_path / "case2" / "S2.mrxs")
    _touch(tmp_path / "case2" / "S2" / "Slidedat.ini")
    _touch(tmp_path / "case2" / "S2" / "Data0000.dat")
    _touch(tmp_path / "case3" / "S3" / "level-0.dcm")
    _touch(tmp_path / "case3" / "S3" / "level-1.dcm")
    _touch(tmp_path / "S4.ndpi.part")  # still being copied
    _touch(tmp_path / ".S5.svs")  # hidden
    _touch(tmp_path / ".trash" / "S6.svs")  # inside a hidden folder
    _touch(tmp_path / "notes.txt")
    found = {c.path: c for c in find_candidates(tmp_path)}
    assert set(found) == {svs, mrxs, tmp_path / "case3" / "S3"}
    assert len(found[mrxs].files) == 3, "the .mrxs file and its data folder"
    assert len(found[tmp_path / "case3" / "S3"].files) == 2


def test_complete_only_after_two_unchanged_looks_past_the_settle_time(tmp_path: Path) -> None:
    slide = _touch(tmp_path / "S1.svs", age_s=0)
    tracker = CompletionTracker(settle_s=30)
    now = time.time()
    assert tracker.complete(find_candidates(tmp_path), now) == []  # first look
    assert tracker.complete(find_candidates(tmp_path), now + 1) == [], "not settled yet"
    (ready,) = tracker.complete(find_candidates(tmp_path), now + 31)
    assert ready[0].path == slide

    with slide.open("ab") as handle:  # the scanner appends: it is not finished after all
        handle.write(b"more")
    assert tracker.complete(find_candidates(tmp_path), now + 62) == []


def test_zero_byte_files_are_not_complete(tmp_path: Path) -> None:
    _touch(tmp_path / "S1.svs", data=b"")
    tracker = CompletionTracker(settle_s=0)
    tracker.complete(find_candidates(tmp_path))
    assert tracker.complete(find_candidates(tmp_path)) == []
