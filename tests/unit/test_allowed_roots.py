"""Slides outside PATHSTREAM_ALLOWED_ROOTS are refused, including by traversal and symlinks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pathstream.shared.allowed_roots import check_allowed
from pathstream.shared.errors import ErrorCode, PathStreamError


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, list[str]]:
    inbox = tmp_path / "scanner" / "inbox"
    inbox.mkdir(parents=True)
    return inbox, [str(inbox), "s3://hospital-slides/in"]


def _refused(uri: str, allowed: list[str]) -> PathStreamError:
    with pytest.raises(PathStreamError) as info:
        check_allowed(uri, allowed)
    assert info.value.code == ErrorCode.OUTSIDE_ALLOWED_ROOTS
    assert "PATHSTREAM_ALLOWED_ROOTS" in info.value.hint
    return info.value


def test_paths_below_a_root_are_accepted(roots: tuple[Path, list[str]]) -> None:
    inbox, allowed = roots
    slide = inbox / "case-1" / "S-001.svs"
    assert check_allowed(str(slide), allowed) == str(slide)
    assert check_allowed(f"file://{slide}", allowed) == str(slide)
    assert check_allowed("s3://hospital-slides/in/case-1/S-001.svs", allowed) == (
        "s3://hospital-slides/in/case-1/S-001.svs"
    )


def test_outside_paths_are_refused(roots: tuple[Path, list[str]], tmp_path: Path) -> None:
    inbox, allowed = roots
    error = _refused("/etc/passwd", allowed)
    assert "/etc/passwd" in error.message
    _refused(str(inbox / ".." / "secret.svs"), allowed)
    _refused(str(inbox) + "-old/S-001.svs", allowed)  # a sibling sharing the prefix
    _refused(str(tmp_path / "scanner"), allowed)


def test_symlinks_out_of_a_root_are_refused(roots: tuple[Path, list[str]], tmp_path: Path) -> None:
    inbox, allowed = roots
    outside = tmp_path / "elsewhere.svs"
    outside.write_bytes(b"x")
    link = inbox / "innocent.svs"
    os.symlink(outside, link)
    _refused(str(link), allowed)


def test_object_store_uris_are_checked_by_segment(roots: tuple[Path, list[str]]) -> None:
    _, allowed = roots
    _refused("s3://hospital-slides/internal/S-001.svs", allowed)
    _refused("s3://hospital-slides/in/../out/S-001.svs", allowed)
    _refused("s3://other-bucket/in/S-001.svs", allowed)


@pytest.mark.parametrize("uri", ["", "http://example.org/S-001.svs", "ftp://h/x.svs", "/x\x00.svs"])
def test_unsupported_or_malformed_locations_are_refused(uri: str, roots: tuple[Path, list[str]]) -> None:
    _refused(uri, roots[1])


def test_nothing_is_allowed_without_roots() -> None:
    error = _refused("/data/S-001.svs", [])
    assert "none configured" in error.hint
