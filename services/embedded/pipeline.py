"""The embedded run: every service's handler in one process, SQLite and local TileDB, no servers.

`EmbeddedPipeline.run` does for a list of slides what the distributed deployment does through
Kafka: a `SlideScanned` per slide (the scanner bridge's own announcement,
`services.scanner.announcement`), then for lymph-node slides the detector's handler and ESCNN's
handler per LN, for bone-marrow smears the marrow service's handler, and the reporter's handler
for every event, in that order. The handlers are the services' own (`services.*.handler`); only
the transport differs, so an embedded report equals the distributed one for the same slides and
models. Report versions are "published" by writing their FHIR document to `OUT/reports/`.
`services.embedded.assembly` builds the pipeline from settings.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from pathstream.services.detector.handler import DetectorHandler
from pathstream.services.escnn.handler import EscnnHandler
from pathstream.services.marrow.handler import MarrowHandler
from pathstream.services.reporter.handler import ReporterHandler
from pathstream.services.reporter.slide_sets import RUN
from pathstream.services.reporter.study_view import marrow_result_view
from pathstream.services.review.geojson_export import slide_feature_collection
from pathstream.services.scanner.announcement import slide_scanned
from pathstream.shared.atomic_files import write_bytes_atomically
from pathstream.shared.db.models import LymphNode, MarrowResult, Slide
from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.events import Event, LymphNodeDetected, ReportReady, Specimen
from pathstream.shared.logs import get_logger
from pathstream.shared.naming import slide_id_for, study_id_from_name
from pathstream.shared.settings import PathStreamSettings
from pathstream.shared.tilestore.fingerprint import slide_sha256
from pathstream.shared.tilestore.slide_source import check_operator_mpp, missing_slide

log = get_logger(__name__)

Progress = Callable[[str, int, int], None]
"""progress(what, done, total): `what` is "slides" or "lymph nodes"."""


@dataclass(frozen=True)
class SlideInput:
    """One slide to run: its file and the ids it is reported under."""

    path: Path
    slide_id: str
    study_id: str
    mpp: float | None = None
    """Operator-supplied level-0 um/px for a file without (usable) mpp metadata."""
    sha256: str = ""
    """SHA-256 of the slide's content (its identity with the slide id)."""


@dataclass(frozen=True)
class SlideRequest:
    """One slide as the operator asked for it: its file, and the ids and mpp given (None: derive)."""

    path: Path
    slide_id: str | None = None
    study_id: str | None = None
    mpp: float | None = None


def plan_slides(
    paths: list[Path],
    study_id: str | None,
    slide_ids: Sequence[str] | None = None,
    mpp: float | None = None,
) -> list[SlideInput]:
    """Ids for the slide files: slide id `slide_ids[i]` when given (one per path, in order), else
    from the file name; study id `study_id` when given, else the name's prefix before the first `_`
    (as `pathstream watch` does); `mpp` (um/px) announced for every slide. Raises
    `PathStreamError(INVALID_CONFIGURATION)` for a slide-id count that does not match, else as
    `plan_requests`."""
    if slide_ids is not None and len(slide_ids) != len(paths):
        raise PathStreamError(
            ErrorCode.INVALID_CONFIGURATION,
            f"{len(slide_ids)} --slide-id value(s) for {len(paths)} slide(s).",
            hint="Give one --slide-id per slide, in the order of the slides, or none.",
        )
    return plan_requests(
        [
            SlideRequest(path, slide_ids[number] if slide_ids is not None else None, study_id, mpp)
            for number, path in enumerate(paths)
        ]
    )


def plan_requests(requests: Sequence[SlideRequest]) -> list[SlideInput]:
    """The slides to run for `requests`, each with its ids (given, or from its file name), mpp and
    content checksum. Raises `PathStreamError(SLIDE_NOT_FOUND / INVALID_CONFIGURATION /
    MPP_ABSURD)` for a missing file, an id that cannot be made, a repeated id or an implausible mpp."""
    planned: list[SlideInput] = []
    for request in requests:
        mpp = check_operator_mpp(request.mpp)
        if not request.path.exists():
            raise missing_slide(request.path)
        resolved = request.path.resolve()
        slide_id, study = _ids_from_name(resolved, request.slide_id, request.study_id)
        planned.append(SlideInput(resolved, slide_id, study, mpp, slide_sha256(resolved)))
    seen: dict[str, Path] = {}
    for slide in planned:
        if slide.slide_id in seen:
            raise PathStreamError(
                ErrorCode.INVALID_CONFIGURATION,
                f"{seen[slide.slide_id]} and {slide.path} would both be slide {slide.slide_id}.",
                hint="Rename one of them or give each its own --slide-id; slide ids come from file names.",
            )
        seen[slide.slide_id] = slide.path
    return planned


def _ids_from_name(path: Path, slide_id: str | None, study_id: str | None) -> tuple[str, str]:
    """(slide id, study id) for `path`: the given ones, the rest from the file name."""
    try:
        slide_id = slide_id or slide_id_for(path)
        return slide_id, study_id or study_id_from_name(path)
    except ValueError as exc:
        # A name of only non-ASCII characters (e.g. CJK) has no safe id: the operator must give one.
        raise PathStreamError(
            ErrorCode.INVALID_CONFIGURATION,
            f"No slide or study id can be made from the file name {path.name!r}: {exc}.",
            hint="Give this slide an id with --slide-id ID and its study with --study ID.",
        ) from None


def refuse_identity_changes(session: Session, slides: Sequence[SlideInput], specimen: Specimen) -> None:
    """Refuse the run before anything is written when a slide id already names another file, the
    same slide in another study, or the same slide as another specimen: running it would change or
    hide that earlier result. Raises `PathStreamError(SLIDE_ID_CONFLICT)` naming every clash."""
    clashes = []
    for slide in slides:
        known = session.get(Slide, slide.slide_id)
        if known is None:
            continue
        if known.sha256 is not None and known.sha256 != slide.sha256:
            clashes.append(
                f"slide id {slide.slide_id} already names another file ({known.uri}, sha256 "
                f"{known.sha256[:12]}...), not {slide.path}"
            )
        elif known.study_id != slide.study_id:
            clashes.append(f"slide {slide.slide_id} belongs to study {known.study_id}, not {slide.study_id}")
        elif known.specimen is not None and known.specimen != specimen:
            clashes.append(
                f"slide {slide.slide_id} was run as {known.specimen.value}; as {specimen.value} its "
                "results would be replaced"
            )
    if clashes:
        raise PathStreamError(
            ErrorCode.SLIDE_ID_CONFLICT,
            f"Nothing was run: {'; '.join(clashes)}.",
            hint="Give each new slide its own id with --slide-id (e.g. a scanner barcode); earlier "
            "results are kept as they are.",
        )


class EmbeddedPipeline:
    """The services' handlers wired in-process; results in the settings' database and `out`."""

    def __init__(
        self,
        settings: PathStreamSettings,
        out: Path,
        engine: Engine,
        reporter: ReporterHandler,
        *,
        detector: DetectorHandler | None = None,
        escnn: EscnnHandler | None = None,
        marrow: MarrowHandler | None = None,
        progress: Progress | None = None,
    ) -> None:
        """`reporter` works on sessions of `engine` (a migrated database), which `close` disposes of;
        `detector` and `escnn` are needed for lymph-node slides, `marrow` for bone-marrow smears."""
        self.settings = settings
        self.out = out
        self.detector = detector
        self.escnn = escnn
        self.marrow = marrow
        self.engine = engine
        self.reporter = reporter
        self.sessions = reporter.sessions
        self.progress = progress or (lambda what, done, total: None)
        self.published: list[ReportReady] = []
        for handler in (detector, marrow):
            if handler is not None:
                handler.ingest_progress = lambda done, total: self.progress("ingest (tile rows)", done, total)

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()

    def run(self, slides: list[SlideInput], specimen: Specimen = Specimen.LYMPH_NODE) -> list[str]:
        """Process `slides` end to end; return the study ids they belong to (in first-seen order).

        A slide that fails (unreadable, no usable resolution, ...) is reported as failed in its
        study; the others go on.
        """
        if specimen == Specimen.BONE_MARROW and self.marrow is None:
            raise PathStreamError(
                ErrorCode.INVALID_CONFIGURATION,
                "Bone-marrow smears need the marrow classifier, and none was loaded.",
                hint="Set PATHSTREAM_MARROW_CHECKPOINT to a model from `pathstream train marrow`.",
            )
        if specimen == Specimen.LYMPH_NODE and (self.detector is None or self.escnn is None):
            raise PathStreamError(
                ErrorCode.INVALID_CONFIGURATION,
                "Lymph-node slides need the LN detector and ESCNN, and they were not loaded.",
                hint="Set PATHSTREAM_DETECTOR_CHECKPOINT and PATHSTREAM_ESCNN_CHECKPOINT.",
            )
        with self.sessions() as session:
            refuse_identity_changes(session, slides, specimen)
        studies: list[str] = []
        for done, slide in enumerate(slides):
            self.progress("slides", done, len(slides))
            if slide.study_id not in studies:
                studies.append(slide.study_id)
            self._run_slide(slide, specimen)
        self.progress("slides", len(slides), len(slides))
        # The run was given every slide it knows of: without an order, that closes each study's set.
        for study_id in studies:
            self._write_reports(self.reporter.close_slide_set(study_id, RUN))
        for slide in slides:
            self._write_slide_outputs(slide.slide_id, specimen)
        return studies

    def _run_slide(self, slide: SlideInput, specimen: Specimen) -> None:
        # The same file under the same ids is the same scan: a rerun is a redelivery, not news.
        scanned = slide_scanned(
            slide.path, slide.slide_id, slide.study_id, specimen, sha256=slide.sha256 or None, mpp=slide.mpp
        )
        self._report(scanned)
        if specimen == Specimen.BONE_MARROW:
            assert self.marrow is not None  # checked in run()
            for event in self.marrow.handle(scanned):
                self._report(event)
            return
        assert self.detector is not None and self.escnn is not None  # checked in run()
        detected = self.detector.handle(scanned)
        nodes = [e for e in detected if isinstance(e, LymphNodeDetected)]
        for event in detected:
            if not isinstance(event, LymphNodeDetected):
                self._report(event)
        for done, node in enumerate(nodes):
            self.progress("lymph nodes", done, len(nodes))
            for result in self.escnn.handle(node):
                self._report(result)
        self.progress("lymph nodes", len(nodes), len(nodes))

    def report_path(self, report: ReportReady) -> Path:
        """Where the FHIR document of `report` is written: OUT/reports/<study>/report-vNNN.json."""
        return self.out / "reports" / report.study_id / f"report-v{report.report_version:03d}.json"

    def _report(self, event: Event) -> None:
        self._write_reports(self.reporter.handle(event))

    def _write_reports(self, reports: list[ReportReady]) -> None:
        for report in reports:
            path = self.report_path(report)
            write_bytes_atomically(path, json.dumps(report.fhir_report, indent=2).encode())
            self.reporter.published(report)
            self.published.append(report)

    def _write_slide_outputs(self, slide_id: str, specimen: Specimen) -> None:
        """OUT/<slide_id>/lymph_nodes.geojson (QuPath) and the LNs' CAM heatmap PNGs; for a smear,
        OUT/<slide_id>/marrow.json (call, ROIs, quality) and its occlusion-map PNGs."""
        folder = self.out / slide_id
        with self.sessions() as session:
            call = marrow_result_view(session.get(MarrowResult, slide_id))
        if call is not None:
            write_bytes_atomically(folder / "marrow.json", json.dumps(call, indent=2).encode())
            _copy_files([roi.get("osm_uri") for roi in call["rois"]], folder / "occlusion_maps")
        if specimen == Specimen.BONE_MARROW:
            return
        with self.sessions() as session:
            collection = slide_feature_collection(session, slide_id)
            heatmaps = [
                n.heatmap_uri for n in session.query(LymphNode).filter_by(slide_id=slide_id) if n.heatmap_uri
            ]
        write_bytes_atomically(folder / "lymph_nodes.geojson", json.dumps(collection).encode())
        _copy_files(heatmaps, folder / "heatmaps")


def _copy_files(uris: Sequence[str | None], folder: Path) -> None:
    """Copy the local artifact files among `uris` into `folder` (created when there is one)."""
    for uri in uris:
        source = Path(uri) if uri else None
        if source is not None and source.is_file():
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, folder / source.name)
