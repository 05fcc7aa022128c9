"""`pathstream run SLIDE...` and `pathstream demo`: the whole pipeline in one process (embedded mode)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from pathstream.services.cli.errors import EXIT_USER_ERROR
from pathstream.services.cli.progress import progress_bar
from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.events import Specimen
from pathstream.shared.settings import PathStreamSettings, get_settings

if TYPE_CHECKING:
    from pathstream.services.embedded.batch import BatchRun

console = Console(highlight=False)
_stderr = Console(stderr=True, highlight=False, soft_wrap=True)


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
    settings: PathStreamSettings,
    slides: list[Path],
    study: str | None,
    specimen: Specimen,
    out: Path,
    *,
    slide_ids: list[str] | None = None,
    mpp: float | None = None,
    manifest: Path | None = None,
) -> BatchRun:
    """Run `slides` through the embedded pipeline with the configured models, showing progress;
    return what the run found and wrote (`pathstream.services.embedded.batch.run_slides`)."""
    from pathstream.services.embedded.batch import run_slides
    from pathstream.services.embedded.manifest import read_manifest

    requests = read_manifest(manifest) if manifest is not None else None
    with _progress_bar() as progress:
        return run_slides(
            settings,
            slides,
            study,
            specimen,
            out,
            progress,
            slide_ids=slide_ids,
            mpp=mpp,
            waiting=lambda message: _stderr.print(message, markup=False),
            requests=requests,
        )


def checked_id(value: str, option: str) -> str:
    """`value` when it is already a safe id; an operator's id is never silently rewritten."""
    from pathstream.shared.naming import exact_id

    try:
        return exact_id(value)
    except ValueError as exc:
        raise PathStreamError(ErrorCode.INVALID_CONFIGURATION, f"{option}: {exc}.") from None


def run(
    slides: list[Path] = typer.Argument(
        None, help="Slide files (or DICOM / MRXS folders); or give them with --manifest."
    ),
    specimen: Specimen = typer.Option(Specimen.LYMPH_NODE, "--specimen", help="What the slides hold."),
    study: str | None = typer.Option(
        None, "--study", help="Study id for all slides (default: the file name before the first '_')."
    ),
    out: Path = typer.Option(
        ..., "--out", help="Folder for reports (FHIR), GeoJSON, heatmaps and occlusion maps."
    ),
    slide_id: list[str] = typer.Option(
        None,
        "--slide-id",
        help="Slide id, one per slide in their order (default: the file name without extension).",
    ),
    mpp: float | None = typer.Option(
        None, "--mpp", help="Level-0 um/px for slides whose files do not record a usable one."
    ),
    manifest: Path | None = typer.Option(
        None,
        "--manifest",
        help="CSV with one row per slide: path, and optionally slide_id, study_id, mpp (instead of "
        "SLIDE..., --slide-id, --study and --mpp).",
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

    if manifest is not None and (slides or slide_id or study is not None or mpp is not None):
        raise PathStreamError(
            ErrorCode.INVALID_CONFIGURATION,
            "--manifest lists every slide with its ids and mpp; SLIDE..., --slide-id, --study and --mpp "
            "cannot be given with it.",
            hint="Put those values in the manifest's columns (path, slide_id, study_id, mpp).",
        )
    if manifest is None and not slides:
        raise PathStreamError(
            ErrorCode.INVALID_CONFIGURATION,
            "No slides to run.",
            hint="Name the slide files (pathstream run SLIDE... --out DIR) or give --manifest FILE.csv.",
        )
    study = None if study is None else checked_id(study, "--study")
    slide_ids = [checked_id(s, "--slide-id") for s in slide_id] if slide_id else None
    batch = run_pipeline(
        get_settings(), slides or [], study, specimen, out, slide_ids=slide_ids, mpp=mpp, manifest=manifest
    )
    results = batch.studies
    if as_json:
        summary = {"out": str(out), "studies": results, "fhir_reports_written": batch.reports_written}
        print(json.dumps(summary, indent=2))
    else:
        for result in results:
            console.print(render_study(result))
        console.print(_outputs_line(len(batch.reports_written), out))
    unfinished = incomplete_slides(results)
    if unfinished:
        # Scripts and schedulers read the exit status: a run with a failed slide did not succeed.
        total = sum(len(r["slides"]) for r in results)
        _stderr.print(f"{len(unfinished)} of {total} slides did not complete:", markup=False)
        for line in unfinished:
            _stderr.print(f"  {line}", markup=False)
        raise typer.Exit(EXIT_USER_ERROR)


def _outputs_line(reports: int, out: Path) -> str:
    """What this run wrote into `out`, said truthfully (no new report version when nothing changed)."""
    maps = "GeoJSON, heatmaps and occlusion maps"
    if reports:
        return f"{reports} new FHIR report version(s) in {out / 'reports'}; {maps}: {out}"
    return (
        f"No new FHIR report version: these results were already reported by an earlier run (its "
        f"reports are in that run's --out). {maps}: {out}"
    )


def incomplete_slides(results: list[dict[str, Any]]) -> list[str]:
    """One line per slide of `results` (`run_slides` output) that is not complete: its id, status
    and failure code and message; empty when every slide completed."""
    lines = []
    for result in results:
        for slide in result["slides"]:
            if slide["status"] == "complete":
                continue
            failure = slide["failure"]
            why = f"[{failure['code']}] {failure['message']}" if failure else "no result"
            lines.append(f"{slide['slide_id']} ({result['study_id']}): {slide['status']}, {why}")
    return lines


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
    from pathstream.services.demo.run import run_demo
    from pathstream.services.embedded.report_view import render_study

    out = out.resolve()
    with _progress_bar() as progress:
        demo_run = run_demo(get_settings(), out, slides, smears, progress)
    results, marrow_results, truth = demo_run.lymph_node_results, demo_run.marrow_results, demo_run.truth
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
