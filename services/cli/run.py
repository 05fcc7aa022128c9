"""`pathstream run SLIDE...` and `pathstream demo`: the whole pipeline in one process (embedded mode)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from pathstream.services.cli.progress import progress_bar
from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.events import Specimen
from pathstream.shared.settings import PathStreamSettings, get_settings
from rich.console import Console

console = Console(highlight=False)


@contextmanager
def _progress_bar() -> Iterator[Any]:
    with progress_bar("{task.description}", "{task.completed}/{task.total}") as bar:
        tasks: dict[str, Any] = {}

        def progress(what: str, done: int, total: int) -> None:
            if what not in tasks:
                tasks[what] = bar.add_task(what, total=total)
            bar.update(tasks[what], completed=done, total=total)

        yield progress


def run_pipeline(
    settings: PathStreamSettings, slides: list[Path], study: str | None, specimen: Specimen, out: Path
) -> list[dict[str, Any]]:
    """Run `slides` through the embedded pipeline with the configured models; return each study's
    result (`pathstream.services.embedded.report_view.study_result`)."""
    from pathstream.services.detector.app import load_segmenter
    from pathstream.services.detector.handler import DetectorHandler
    from pathstream.services.embedded.pipeline import EmbeddedPipeline, plan_slides
    from pathstream.services.escnn.app import load_scorer
    from pathstream.services.escnn.handler import EscnnHandler
    from pathstream.services.marrow.app import load_classifier
    from pathstream.services.marrow.handler import MarrowHandler
    from pathstream.services.reporter.study_view import study_result

    planned = plan_slides(slides, study)
    # Slides named on the command line are the operator's explicit choice: allow their folders.
    roots = list(dict.fromkeys([*settings.allowed_roots, *(str(s.path.parent) for s in planned)]))
    settings = settings.model_copy(update={"allowed_roots": roots})
    out.mkdir(parents=True, exist_ok=True)
    with _progress_bar() as progress:
        progress("loading models", 0, 1)
        detector = escnn = marrow = None
        if specimen == Specimen.BONE_MARROW:
            marrow = MarrowHandler(settings, load_classifier(settings))
        else:
            detector = DetectorHandler(settings, load_segmenter(settings))
            escnn = EscnnHandler(settings, load_scorer(settings))
        progress("loading models", 1, 1)
        pipeline = EmbeddedPipeline(settings, out, detector, escnn, progress, marrow=marrow)
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


def run(
    slides: list[Path] = typer.Argument(..., help="Slide files (or DICOM / MRXS folders)."),
    specimen: Specimen = typer.Option(Specimen.LYMPH_NODE, "--specimen", help="What the slides hold."),
    study: str | None = typer.Option(
        None, "--study", help="Study id for all slides (default: the file name before the first '_')."
    ),
    out: Path = typer.Option(
        ..., "--out", help="Folder for reports (FHIR), GeoJSON, heatmaps and occlusion maps."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON object."),
) -> None:
    """Process slides end to end on this machine (SQLite, local tile stores, no servers) and print
    the report: LN counts and pN per slide and per study, each LN's score; for bone-marrow smears
    (--specimen bone_marrow) the case call MDS / AML / donor with its ROIs and occlusion maps.

    Models: PATHSTREAM_DETECTOR_CHECKPOINT, PATHSTREAM_ESCNN_CHECKPOINT and PATHSTREAM_ESCNN_BACKBONE
    for lymph nodes; PATHSTREAM_MARROW_CHECKPOINT for bone marrow.
    """
    from pathstream.services.embedded.report_view import render_study
    from pathstream.shared.naming import safe_id

    if study is not None:
        try:
            study = safe_id(study)
        except ValueError as exc:
            raise PathStreamError(ErrorCode.INVALID_CONFIGURATION, f"--study: {exc}.") from None
    results = run_pipeline(get_settings(), slides, study, specimen, out)
    if as_json:
        print(json.dumps({"out": str(out), "studies": results}, indent=2))
        return
    for result in results:
        console.print(render_study(result))
    console.print(f"FHIR reports, GeoJSON and heatmaps: {out}")


def demo(
    out: Path = typer.Option(Path("pathstream-demo"), "--out", help="Folder for slides, reports and maps."),
    slides: int = typer.Option(4, "--slides", min=1, max=12, help="Slides in the synthetic LN study."),
    smears: int = typer.Option(
        3, "--smears", min=0, max=12, help="Bone-marrow smears in the synthetic marrow study (0: none)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print reports and truth as one JSON object."),
) -> None:
    """Generate a synthetic gastric LN study and a bone-marrow smear study with known truth, run them
    with the bundled demo models, and print the reports next to the truth.

    The demo models are small and trained on synthetic slides: for demonstration only. Clinical use
    needs models trained and validated on real data.
    """
    from pathstream.services.demo.cohort import write_demo_smears, write_demo_study
    from pathstream.services.demo.run import demo_settings, truth_by_ln
    from pathstream.services.embedded.report_view import render_study
    from pathstream.shared.naming import slide_id_for

    out = out.resolve()
    written = write_demo_study(out / "slides", slides)
    settings = demo_settings(get_settings(), out)
    results = run_pipeline(settings, [s.path for s in written], None, Specimen.LYMPH_NODE, out / "results")
    truth = truth_by_ln(settings, written)
    marrow_results: list[dict[str, Any]] = []
    if smears:
        smear_files = write_demo_smears(out / "smears", smears)
        truth["marrow"] = {slide_id_for(s.path): s.label.value for s in smear_files}
        marrow_results = run_pipeline(
            settings, [s.path for s in smear_files], None, Specimen.BONE_MARROW, out / "results"
        )
    if as_json:
        print(json.dumps({"out": str(out), "studies": results + marrow_results, "truth": truth}, indent=2))
        return
    for result in results:
        console.print(render_study(result, truth["lymph_nodes"]))
    console.print(
        f"Truth: {truth['positive']} metastatic of {truth['lymph_nodes_total']} LNs -> pN "
        f"{truth['pn_category']}."
    )
    if truth["missed"]:
        console.print(f"Not detected: {', '.join(truth['missed'])}")
    for result in marrow_results:
        console.print(render_study(result))
        console.print(
            "Truth: "
            + ", ".join(f"{slide}: {label.upper()}" for slide, label in truth["marrow"].items())
            + "."
        )
    console.print(f"Slides, smears, FHIR reports, GeoJSON, heatmaps and occlusion maps: {out}")
    console.print(
        "[yellow]Demo models, trained on synthetic slides: for demonstration only, not for clinical use.[/]"
    )
