"""Slide files in, study results out: one embedded run as `pathstream run` and `pathstream demo` do it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pathstream.services.embedded.assembly import assemble_pipeline
from pathstream.services.embedded.pipeline import Progress, plan_slides
from pathstream.services.embedded.run_lock import exclusive_run
from pathstream.services.reporter.study_view import study_result
from pathstream.shared.events import Specimen
from pathstream.shared.settings import PathStreamSettings


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
) -> list[dict[str, Any]]:
    """Run the slide files `slides` (all of `specimen`, study `study` or each name's prefix) through
    the embedded pipeline with the configured models, outputs under `out`; return each study's
    result (`services.reporter.study_view.study_result`) with every slide's `marrow_json` or
    `geojson` path added. `slide_ids` (one per slide) replace the ids from file names; `mpp` (um/px)
    is announced for slides without usable mpp metadata. One run at a time per database
    (`services.embedded.run_lock`): `waiting(message)` is called when this one has to wait.
    Raises `PathStreamError` for a missing slide, clashing slide ids or a model that cannot be
    loaded."""
    planned = plan_slides(slides, study, slide_ids, mpp)
    if "allowed_roots" not in settings.model_fields_set:
        # No roots configured: slides named on the command line are the operator's explicit choice,
        # so their (resolved) folders are allowed. Configured roots apply as in every entry point.
        roots = list(dict.fromkeys([*settings.allowed_roots, *(str(s.path.parent) for s in planned)]))
        settings = settings.model_copy(update={"allowed_roots": roots})
    out.mkdir(parents=True, exist_ok=True)
    with exclusive_run(settings.database_url, waiting or (lambda message: None)):
        pipeline = assemble_pipeline(settings, out, specimen, progress)
        try:
            studies = pipeline.run(planned, specimen)
            with pipeline.sessions() as session:
                results = [study_result(session, study_id) for study_id in studies]
        finally:
            pipeline.close()
    for result in results:
        for slide in result["slides"]:
            if slide["marrow"] is not None:
                slide["marrow_json"] = str(out / slide["slide_id"] / "marrow.json")
            else:
                slide["geojson"] = str(out / slide["slide_id"] / "lymph_nodes.geojson")
    return results
