"""Find slides in a scanner's output folder and tell when each is completely written.

Scanners write in several ways: one growing file, a temporary name renamed at the end, or a main
file plus a folder (MRXS) or a folder of instances (DICOM). A slide is *complete* when none of its
files is a temporary one, none has changed size or time between two looks, and the newest change
is older than the settle time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

SLIDE_SUFFIXES = frozenset(
    {
        ".svs",
        ".tif",
        ".tiff",
        ".ndpi",
        ".vms",
        ".vmu",
        ".scn",
        ".mrxs",
        ".svslide",
        ".bif",
        ".czi",
        ".isyntax",
    }
)
"""Single-file (or main-file) slide formats; DICOM arrives as a folder of .dcm files."""

TEMPORARY_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".filepart", ".inprogress", "~")

Snapshot = tuple[tuple[str, int, int], ...]
"""(relative name, size, mtime_ns) of every file of a slide, in name order."""


@dataclass(frozen=True)
class Candidate:
    """A slide found in the watch folder: where it is and which files make it up."""

    path: Path
    files: tuple[Path, ...]

    def snapshot(self) -> Snapshot:
        """Sizes and modification times of the slide's files now."""
        base = self.path if self.path.is_dir() else self.path.parent
        entries = []
        for file in self.files:
            stat = file.stat()
            entries.append((file.relative_to(base).as_posix(), stat.st_size, stat.st_mtime_ns))
        return tuple(entries)


def _hidden_or_temporary(path: Path) -> bool:
    return path.name.startswith(".") or path.name.lower().endswith(TEMPORARY_SUFFIXES)


def _folder_files(folder: Path) -> tuple[Path, ...]:
    return tuple(sorted(p for p in folder.rglob("*") if p.is_file()))


def find_candidates(root: Path) -> list[Candidate]:
    """Every slide below `root`: slide files by extension, MRXS with their data folder, and
    folders holding .dcm files. Hidden and temporary names are skipped."""
    paths = [
        p
        for p in sorted(root.rglob("*"))
        if p.is_file()
        and not _hidden_or_temporary(p)
        and not any(_hidden_or_temporary(part) for part in p.relative_to(root).parents if part != Path("."))
    ]
    mrxs_data = {p.with_suffix("") for p in paths if p.suffix.lower() == ".mrxs"}

    def in_mrxs(path: Path) -> bool:
        return any(parent in mrxs_data for parent in path.parents)

    found: list[Candidate] = []
    for path in paths:
        suffix = path.suffix.lower()
        if suffix == ".mrxs":
            data = path.with_suffix("")
            found.append(Candidate(path, (path, *(_folder_files(data) if data.is_dir() else ()))))
        elif suffix in SLIDE_SUFFIXES and not in_mrxs(path):
            found.append(Candidate(path, (path,)))
    dicom_folders = sorted({p.parent for p in paths if p.suffix.lower() == ".dcm" and not in_mrxs(p)})
    found += [Candidate(folder, _folder_files(folder)) for folder in dicom_folders if folder != root]
    return found


class CompletionTracker:
    """Remembers each candidate's last snapshot; reports those that stopped changing."""

    def __init__(self, settle_s: float) -> None:
        self.settle_s = settle_s
        self.last: dict[Path, Snapshot] = {}

    def complete(
        self, candidates: list[Candidate], now: float | None = None
    ) -> list[tuple[Candidate, Snapshot]]:
        """Candidates unchanged since the previous call and older than the settle time."""
        now = time.time() if now is None else now
        ready = []
        seen = set()
        for candidate in candidates:
            seen.add(candidate.path)
            try:
                snapshot = candidate.snapshot()
            except FileNotFoundError:  # removed or renamed while we looked
                continue
            previous = self.last.get(candidate.path)
            self.last[candidate.path] = snapshot
            if previous != snapshot or not snapshot:
                continue
            if any(size == 0 for _, size, _ in snapshot):
                continue  # a zero-byte file is a slide still being created, not a finished one
            newest = max(mtime for _, _, mtime in snapshot) / 1e9
            if now - newest >= self.settle_s:
                ready.append((candidate, snapshot))
        for gone in set(self.last) - seen:
            del self.last[gone]
        return ready
