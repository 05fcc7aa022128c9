"""Slide files in, study results out: one embedded run as `pathstream run` and `pathstream demo` do it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pathstream.services.embedded.assembly import assemble_pipeline
from pathstream.services.embedded.pipeline import Progress, SlideRequest, plan_requests, plan_slides
from pathstream.services.embedded.run_lock import exclusive_run
from pathstream.services.reporter.study_view import study_result
from pathstream.shared.allowed_roots import roots_for_named_slides
from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.events import Specimen
from pathstream.shared.settings import PathStreamSettings
from pathstream.shared.storage_faults import storage_fault


@dataclass(frozen=True)
class BatchRun:
    """What one embedded run found and wrote."""

    studies: list[dict[str, Any]]
    """Each study's result, in the order its slides were given."""
    reports_written: list[str]
    """FHIR report files (OUT/reports/<study>/report-vNNN.json) this run published."""


def run_slides(
    settings: PathStreamSettings,
    slides: list[Path],
    study: str | None,
    specimen: Specimen,
    out: Path,
    progress: Progress | None = None,
    *,
    slide_ids: Sequence[str] | None = None,
    mpp: float | None = None,
    waiting: Callable[[str], None] | None = None,
    requests: Sequence[SlideRequest] | None = None,
) -> BatchRun:
    """Run the slide files `slides` (all of `specimen`, study `study` or each name's prefix) through
    the embedded pipeline with the configured models, outputs under `out`; return each study's
    result (`services.reporter.study_view.study_result`) with every slide's `marrow_json` or
    `geojson` path added (None when this run wrote none, e.g. for a failed slide), and the FHIR
    report files this run wrote (none when nothing changed since an earlier run).
    `slide_ids` (one per slide) replace the ids from file names; `mpp` (um/px) is announced for
    slides without usable mpp metadata. `requests` (e.g. from a manifest) give each slide's own file,
    ids and mpp instead of `slides`, `study`, `slide_ids` and `mpp`. One run at a time per database
    (`services.embedded.run_lock`): `waiting(message)` is called when this one has to wait.
    Raises `PathStreamError` for a missing slide, clashing slide ids, an unusable `out` or a model
    that cannot be loaded."""
    planned = plan_requests(requests) if requests is not None else plan_slides(slides, study, slide_ids, mpp)
    roots = roots_for_named_slides(settings, [s.path for s in planned])
    settings = settings.model_copy(update={"allowed_roots": roots})
    _make_out(out)
    with exclusive_run(settings.database_url, waiting or (lambda message: None)):
        pipeline = assemble_pipeline(settings, out, specimen, progress)
        try:
            studies = pipeline.run(planned, specimen)
            with pipeline.sessions() as session:
                results = [study_result(session, study_id) for study_id in studies]
        finally:
            pipeline.close()
    # Only files this run wrote: a failed slide has none, and a path to nothing misleads.
    key, name = (
        ("marrow_json", "marrow.json")
        if specimen == Specimen.BONE_MARROW
        else ("geojson", "lymph_nodes.geojson")
    )
    for result in results:
        for slide in result["slides"]:
            path = out / slide["slide_id"] / name
            slide[key] = str(path) if path.is_file() else None
    return BatchRun(results, [str(pipeline.report_path(r)) for r in pipeline.published])


def _make_out(out: Path) -> None:
    """Create the output folder `out`; raises `PathStreamError` when it cannot be one."""
    if out.exists() and not out.is_dir():
        raise PathStreamError(
            ErrorCode.INVALID_CONFIGURATION,
            f"--out {out} is a file, not a folder.",
            hint="Give --out a folder (it is created when missing); reports, GeoJSON and maps go there.",
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise PathStreamError(
            ErrorCode.INVALID_CONFIGURATION,
            f"--out {out} cannot be a folder: part of its path is a file.",
            hint="Give --out a folder path whose parents are folders.",
        ) from None
    except OSError as exc:
        raise storage_fault(exc, f"--out {out}") or exc from None
