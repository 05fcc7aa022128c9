"""`pathstream run --manifest`: what a manifest row means, and clear refusals of malformed ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from pathstream.services.embedded.manifest import read_manifest
from pathstream.services.embedded.pipeline import SlideRequest
from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.naming import exact_id


def _manifest(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "slides.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_rows_give_paths_ids_and_mpp_and_empty_cells_mean_derive(tmp_path: Path) -> None:
    manifest = _manifest(
        tmp_path, "\ufeffpath, slide_id ,study_id,mpp\nin/a.svs,S1,ST1,0.25\n/abs/b.ndpi,,,\n"
    )
    assert read_manifest(manifest) == [
        SlideRequest(tmp_path / "in/a.svs", "S1", "ST1", 0.25),
        SlideRequest(Path("/abs/b.ndpi"), None, None, None),
    ]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("slide_id\nS1\n", "no 'path' column"),
        ("path,colour\na.svs,red\n", "unknown column(s) colour"),
        ("path\n", "lists no slides"),
        ("path,mpp\na.svs,fast\n", "line 2: mpp 'fast' is not a number"),
        ("path,mpp\na.svs,nan\n", "not a finite number"),
        ("path,slide_id\na.svs,../etc\n", "line 2: slide_id '../etc' is not a usable id"),
        ("path,slide_id\n,S1\n", "line 2 has no path"),
        ("path\na.svs,extra\n", "more cells than the header"),
    ],
)
def test_malformed_manifests_name_the_line_and_problem(tmp_path: Path, text: str, words: str) -> None:
    with pytest.raises(PathStreamError) as info:
        read_manifest(_manifest(tmp_path, text))
    assert info.value.code == ErrorCode.INVALID_CONFIGURATION and words in info.value.message


def test_a_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(PathStreamError, match="does not exist"):
        read_manifest(tmp_path / "none.csv")


def test_operator_ids_are_used_as_given_or_refused_never_rewritten() -> None:
    assert exact_id("S26-0042_A1") == "S26-0042_A1"
    with pytest.raises(ValueError, match="did you mean 'etc'"):
        exact_id("../etc")
    with pytest.raises(ValueError, match="not a usable id"):
        exact_id("切片")
