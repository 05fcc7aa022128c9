"""Open a scanned slide with OpenSlide, checked: the file, its format, and its physical resolution.

Every failure is a `PathStreamError` whose code tells a service what to put in `SlideFailed`, and
whose message and hint tell an operator what is wrong and what to do.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import openslide
import tifffile

from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.storage_faults import storage_fault

MPP_MIN = 0.05
MPP_MAX = 20.0
MppSource = Literal["metadata", "operator"]


def resolve_slide_path(path: Path) -> Path:
    """Return the file OpenSlide should open for `path`.

    A DICOM slide arrives as a folder of instances: OpenSlide opens any one of them and finds the
    rest, so the folder resolves to its first `.dcm` file. MRXS and other formats open their main
    file directly.
    """
    if path.is_dir():
        instances = sorted(p for p in path.iterdir() if p.suffix.lower() == ".dcm" and p.is_file())
        if not instances:
            raise PathStreamError(
                ErrorCode.NOT_A_SLIDE,
                f"{path} is a folder without DICOM (.dcm) files.",
                hint="Pass the slide file itself, or a DICOM WSI folder.",
            )
        return instances[0]
    return path


def check_slide_file(path: Path) -> None:
    """Check that the slide at `path` (file or DICOM folder) exists and is not empty, before it is
    hashed or opened. Raises `PathStreamError(SLIDE_NOT_FOUND / SLIDE_EMPTY / NOT_A_SLIDE)`."""
    _check_file(resolve_slide_path(path))


def missing_slide(path: Path) -> PathStreamError:
    """The error for a slide path that does not lead to a file: a symbolic-link loop, a link to
    nothing, or no such path (SLIDE_NOT_FOUND; retriable only in the last case: the scanner may
    not have finished writing)."""
    if path.is_symlink():
        try:
            path.stat()
        except OSError as exc:
            fault = storage_fault(exc, str(path))
            if fault is not None:
                return fault
        return PathStreamError(
            ErrorCode.SLIDE_NOT_FOUND,
            f"Slide {path} is a symbolic link to {os.readlink(path)}, which does not exist.",
            hint="Point the link at the slide file (or remove it); the slide may have been moved.",
        )
    return PathStreamError(
        ErrorCode.SLIDE_NOT_FOUND,
        f"Slide {path} does not exist.",
        hint="Check the path; the scanner may not have finished writing it yet.",
        retriable=True,
    )


def _check_file(path: Path) -> None:
    if not path.exists():
        raise missing_slide(path)
    if path.stat().st_size == 0:
        raise PathStreamError(
            ErrorCode.SLIDE_EMPTY,
            f"Slide {path} is an empty (0-byte) file.",
            hint="The scan or the copy failed; export the slide again from the scanner.",
        )


def _plausible(mpp: float) -> bool:
    return math.isfinite(mpp) and MPP_MIN <= mpp <= MPP_MAX


def _check_mpp(value: float, axis: str, path: Path) -> float:
    """A resolution the slide's metadata states, when plausible; else `MPP_ABSURD`."""
    if not _plausible(value):
        raise PathStreamError(
            ErrorCode.MPP_ABSURD,
            f"Slide {path} has metadata mpp-{axis} = {value:g} um/px, outside the plausible "
            f"{MPP_MIN}-{MPP_MAX} um/px (a wrong resolution tag?).",
            hint="If you know the scan's true level-0 resolution, pass it with --mpp (um/px); for a slide "
            "the services already failed: pathstream reprocess SLIDE_ID --mpp VALUE.",
        )
    return value


def check_operator_mpp(mpp: float | None) -> float | None:
    """`mpp` (um/px, given with --mpp) when it is plausible, None when not given. Raises
    `PathStreamError(MPP_ABSURD)` before anything is announced or written."""
    return None if mpp is None else _plausible_operator_mpp(mpp)


def _plausible_operator_mpp(mpp: float) -> float:
    if not _plausible(mpp):
        raise PathStreamError(
            ErrorCode.MPP_ABSURD,
            f"--mpp {mpp:g} um/px is outside the plausible {MPP_MIN}-{MPP_MAX} um/px.",
            hint="Give the scan's level-0 resolution in micrometres per pixel: about 0.25 for a 40x "
            "scan, 0.5 for 20x.",
        )
    return mpp


@dataclass
class SlideSource:
    """An open slide with its checked level-0 resolution (um/px) and where that came from."""

    path: Path
    slide: openslide.OpenSlide
    mpp_x: float
    mpp_y: float
    mpp_source: MppSource

    @property
    def dimensions(self) -> tuple[int, int]:
        """(width, height) of level 0 in pixels."""
        width, height = self.slide.dimensions
        return int(width), int(height)

    @property
    def vendor(self) -> str:
        """OpenSlide's format name (aperio, hamamatsu, dicom, generic-tiff, ...)."""
        return str(self.slide.properties.get(openslide.PROPERTY_NAME_VENDOR, "unknown"))

    @property
    def finest_level_is_derived(self) -> bool:
        """True for a DICOM slide whose finest image is marked DERIVED (resampled from another), the
        sign of a series copied without its level-0 (ORIGINAL) instance. Some converters mark every
        level DERIVED, so this only explains a scan that is otherwise too coarse."""
        return self.vendor == "dicom" and self.slide.properties.get("dicom.ImageType[0]") == "DERIVED"

    def best_level(self, downsample: float) -> int:
        """The coarsest level whose downsample does not exceed `downsample` (never loses detail)."""
        return int(self.slide.get_best_level_for_downsample(max(downsample, 1.0)))

    def level_size(self, level: int) -> tuple[int, int]:
        """(width, height) of `level` in its own pixels."""
        width, height = self.slide.level_dimensions[level]
        return int(width), int(height)

    def level_downsample(self, level: int) -> float:
        """Level-0 pixels per pixel of `level`, as OpenSlide maps coordinates between them."""
        return float(self.slide.level_downsamples[level])

    def read(self, level: int, x: int, y: int, width: int, height: int) -> np.ndarray:
        """Read pixels [x, x+width) x [y, y+height) of `level` (in that level's coordinates).

        Returns uint8 height x width x 3 RGB; areas without image data are white.
        Raises `PathStreamError(SLIDE_CORRUPT)` when the file cannot be decoded there.
        """
        try:
            # Inside the try: once one read fails, OpenSlide's handle is in an error state and every
            # later call on it raises, including this lookup in another ingest thread.
            downsample = self.level_downsample(level)
            location = (round(x * downsample), round(y * downsample))
            rgba = np.asarray(self.slide.read_region(location, level, (width, height)))
        except openslide.OpenSlideError as exc:
            raise PathStreamError(
                ErrorCode.SLIDE_CORRUPT,
                f"Slide {self.path} cannot be decoded at level {level}, region ({x}, {y}) "
                f"{width}x{height}: {exc}.",
                hint="The file is truncated or damaged; copy or export it again from the scanner.",
            ) from None
        if rgba[..., 3].min() == 255:  # the usual case: every pixel was scanned
            return np.ascontiguousarray(rgba[..., :3])
        alpha = rgba[..., 3:4].astype(np.uint16)
        rgb = rgba[..., :3].astype(np.uint16)
        # Transparent means "no tissue was scanned here": show it as the white glass it is.
        return ((rgb * alpha + 255 * (255 - alpha) + 127) // 255).astype(np.uint8)

    def close(self) -> None:
        """Release the OpenSlide handle."""
        self.slide.close()


_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def _looks_like_damaged_tiff(target: Path) -> bool:
    """True for a TIFF whose structure is broken, or that has tiled (whole-slide-like) pages that
    OpenSlide still refuses: a slide cut short or damaged, not some other kind of image."""
    with target.open("rb") as handle:
        if handle.read(4) not in _TIFF_MAGIC:
            return False
    size = target.stat().st_size
    try:
        with tifffile.TiffFile(target) as tif:
            pages = list(tif.pages)
            if not pages:
                return True
            for page in pages:
                if not isinstance(page, tifffile.TiffPage):
                    continue
                if page.is_tiled:
                    return True
                ends = [o + c for o, c in zip(page.dataoffsets, page.databytecounts, strict=False)]
                if ends and max(ends) > size:
                    return True
    except Exception:  # tifffile could not even walk the structure
        return True
    return False


def _unreadable(path: Path, target: Path) -> PathStreamError:
    if target.suffix.lower() == ".mrxs" and not target.with_suffix("").is_dir():
        return PathStreamError(
            ErrorCode.NOT_A_SLIDE,
            f"MRXS slide {path} has no data folder {target.with_suffix('').name}/ beside it: the .mrxs "
            "file is only an index, its pixels are in that folder (Slidedat.ini and Data*.dat).",
            hint="Copy the folder of the same name together with the .mrxs file.",
        )
    if _looks_like_damaged_tiff(target):
        return PathStreamError(
            ErrorCode.SLIDE_CORRUPT,
            f"Slide {path} is a TIFF-based slide that cannot be read: the file is truncated or damaged.",
            hint="Copy or export it again from the scanner (check the transfer finished).",
        )
    return PathStreamError(
        ErrorCode.NOT_A_SLIDE,
        f"{path} is not a whole-slide image OpenSlide can read (SVS, NDPI, MRXS, tiled TIFF, DICOM, ...).",
        hint="Check that this is the slide file and not a label, macro, thumbnail or other export.",
    )


def open_slide(path: Path, mpp: float | None = None) -> SlideSource:
    """Open `path` (a slide file or DICOM folder) and settle its level-0 mpp.

    `mpp` (um/px), when given, overrides the file's metadata. Raises `PathStreamError` with
    SLIDE_NOT_FOUND, SLIDE_EMPTY, NOT_A_SLIDE, SLIDE_CORRUPT, MPP_MISSING or MPP_ABSURD.
    """
    target = resolve_slide_path(path)
    _check_file(target)
    if openslide.OpenSlide.detect_format(str(target)) is None:
        raise _unreadable(path, target)
    try:
        slide = openslide.OpenSlide(str(target))
    except openslide.OpenSlideError as exc:
        raise PathStreamError(
            ErrorCode.SLIDE_CORRUPT,
            f"Slide {path} looks like a {openslide.OpenSlide.detect_format(str(target))} file but "
            f"cannot be opened: {exc}.",
            hint="The file is truncated or damaged; copy or export it again from the scanner.",
        ) from None

    try:
        if mpp is not None:
            mpp_x = mpp_y = _plausible_operator_mpp(float(mpp))
            source: MppSource = "operator"
        else:
            raw_x = slide.properties.get(openslide.PROPERTY_NAME_MPP_X)
            raw_y = slide.properties.get(openslide.PROPERTY_NAME_MPP_Y)
            if raw_x is None or raw_y is None:
                raise PathStreamError(
                    ErrorCode.MPP_MISSING,
                    f"Slide {path} does not say its resolution (no openslide.mpp-x/mpp-y).",
                    hint="Pass the level-0 resolution with --mpp, e.g. --mpp 0.25 for a 40x scan "
                    "or --mpp 0.5 for 20x (ask the scanner's settings, not the objective label); for a "
                    "slide the services already failed: pathstream reprocess SLIDE_ID --mpp 0.25.",
                )
            mpp_x = _check_mpp(float(raw_x), "x", path)
            mpp_y = _check_mpp(float(raw_y), "y", path)
            source = "metadata"
    except Exception:
        slide.close()
        raise
    return SlideSource(path=target, slide=slide, mpp_x=mpp_x, mpp_y=mpp_y, mpp_source=source)
