"""Which files make up a slide, and the SHA-256 that identifies its content."""

from __future__ import annotations

import hashlib
from pathlib import Path

CHUNK_BYTES = 4 * 1024 * 1024


def slide_files(path: Path) -> list[Path]:
    """Return every file of the slide at `path`, main file first, the rest in name order.

    A single-file format is just itself. MRXS keeps its data in a folder named like the file
    (`S1.mrxs` + `S1/`), and a DICOM WSI is a folder of instances.
    """
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file())
    files = [path]
    if path.suffix.lower() == ".mrxs":
        data_dir = path.with_suffix("")
        if data_dir.is_dir():
            files += sorted(p for p in data_dir.rglob("*") if p.is_file())
    return files


def _update(digest: hashlib._Hash, file: Path) -> None:
    with file.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)


def slide_sha256(path: Path) -> str:
    """Return the lowercase hex SHA-256 identifying the slide's content.

    For a single file it is the file's own digest (what `sha256sum` prints). For multi-file slides
    it is the digest of each file's path relative to the slide, a NUL, and its bytes, in order.
    """
    files = slide_files(path)
    digest = hashlib.sha256()
    if len(files) == 1 and files[0] == path:
        _update(digest, path)
        return digest.hexdigest()
    base = path if path.is_dir() else path.parent
    for file in files:
        digest.update(file.relative_to(base).as_posix().encode() + b"\x00")
        _update(digest, file)
    return digest.hexdigest()
