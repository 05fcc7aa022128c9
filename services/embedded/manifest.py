"""A run manifest: one CSV row per slide with its file and, where the file name does not say them,
its slide id, study id and level-0 mpp (`pathstream run --manifest FILE`).

Columns (header row, any order): `path` (required; relative paths are relative to the manifest's
folder), `slide_id`, `study_id`, `mpp` (um/px). An empty cell means "derive it as without a
manifest": ids from the file name, mpp from the file.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from pathstream.services.embedded.pipeline import SlideRequest
from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.naming import exact_id

COLUMNS = ("path", "slide_id", "study_id", "mpp")


def _bad(manifest: Path, why: str) -> PathStreamError:
    return PathStreamError(
        ErrorCode.INVALID_CONFIGURATION,
        f"Manifest {manifest}: {why}.",
        hint=f"A manifest is a CSV file with a header row of {', '.join(COLUMNS)} (path required), one "
        "row per slide.",
    )


def _id(manifest: Path, line: int, column: str, value: str) -> str | None:
    if not value:
        return None
    try:
        return exact_id(value)
    except ValueError as exc:
        raise _bad(manifest, f"line {line}: {column} {exc}") from None


def _mpp(manifest: Path, line: int, value: str) -> float | None:
    if not value:
        return None
    try:
        mpp = float(value)
    except ValueError:
        raise _bad(manifest, f"line {line}: mpp {value!r} is not a number") from None
    if not math.isfinite(mpp):
        raise _bad(manifest, f"line {line}: mpp {value!r} is not a finite number")
    return mpp


def read_manifest(manifest: Path) -> list[SlideRequest]:
    """The slides `manifest` (a CSV file) lists, in its order. Raises
    `PathStreamError(INVALID_CONFIGURATION)` naming the line for an unreadable file, a missing
    `path` column, an unknown column, an empty path, an unusable id or a non-numeric mpp."""
    try:
        text = manifest.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise _bad(manifest, "the file does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise _bad(manifest, f"it cannot be read as UTF-8 text ({exc})") from None
    try:
        rows = list(csv.DictReader(text.splitlines()))
        header = csv.DictReader(text.splitlines()).fieldnames or []
    except csv.Error as exc:
        raise _bad(manifest, f"it is not valid CSV ({exc})") from None
    names = [h.strip() for h in header]
    if "path" not in names:
        raise _bad(manifest, f"its header {names} has no 'path' column")
    unknown = [n for n in names if n not in COLUMNS]
    if unknown:
        raise _bad(manifest, f"unknown column(s) {', '.join(unknown)}")
    if not rows:
        raise _bad(manifest, "it lists no slides")
    requests = []
    for line, raw in enumerate(rows, start=2):
        row = {k.strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        if None in raw:
            raise _bad(manifest, f"line {line} has more cells than the header")
        if not row.get("path"):
            raise _bad(manifest, f"line {line} has no path")
        path = Path(row["path"]).expanduser()
        requests.append(
            SlideRequest(
                path if path.is_absolute() else manifest.parent / path,
                _id(manifest, line, "slide_id", row.get("slide_id", "")),
                _id(manifest, line, "study_id", row.get("study_id", "")),
                _mpp(manifest, line, row.get("mpp", "")),
            )
        )
    return requests
