"""`pathstream synth ...`: synthetic slides with ground truth for tests, training and demos."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import Progress

from pathstream.services.cli.progress import progress_bar
from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.synthetic.lymph_node import write_lymph_node_slide
from pathstream.synthetic.marrow import write_marrow_cohort

app = typer.Typer(help="Synthetic slides with ground truth (deterministic by seed).", no_args_is_help=True)
console = Console(highlight=False)


def _progress(label: str) -> Progress:
    return progress_bar(label, "{task.completed}/{task.total}")


def _bad_request(exc: ValueError) -> PathStreamError:
    return PathStreamError(
        ErrorCode.INVALID_CONFIGURATION, str(exc), hint="Adjust the options and run again."
    )


@app.command("lymph-node")
def lymph_node(
    out: Path = typer.Option(..., "--out", help="Folder for slide.tif and truth.json."),
    width: int = typer.Option(20000, "--width", min=64, help="Level-0 width in pixels."),
    height: int = typer.Option(15000, "--height", min=64, help="Level-0 height in pixels."),
    nodes: int = typer.Option(4, "--nodes", min=0, help="Number of lymph nodes."),
    seed: int = typer.Option(0, "--seed", help="Everything follows from the seed."),
    mpp: float = typer.Option(0.25, "--mpp", min=0.1, max=2.0, help="Level-0 resolution in um/px."),
    positive_fraction: float = typer.Option(0.4, "--positive-fraction", min=0.0, max=1.0),
) -> None:
    """A gastric lymph-node dissection slide (pyramidal TIFF) with LN and lesion polygons."""
    with _progress("synth lymph-node") as bar:
        task = bar.add_task("rows", total=None)
        try:
            slide, truth = write_lymph_node_slide(
                out,
                width,
                height,
                nodes,
                seed,
                mpp,
                positive_fraction,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        except ValueError as exc:
            raise _bad_request(exc) from None
    positives = sum(1 for n in truth.lymph_nodes if n.lesions)
    console.print(
        f"{slide}: {len(truth.lymph_nodes)} lymph nodes ({positives} positive); truth in {out / 'truth.json'}"
    )


@app.command("marrow")
def marrow(
    out: Path = typer.Option(..., "--out", help="Folder for the cases, truth.json and fields.csv."),
    cases: int = typer.Option(12, "--cases", min=1, help="Number of cases (MDS / AML / donor, balanced)."),
    seed: int = typer.Option(0, "--seed"),
    rois: int = typer.Option(4, "--rois", min=1, help="ROI fields per case."),
    field_size: int = typer.Option(1024, "--field-size", min=64, help="Field width and height in pixels."),
    mpp: float = typer.Option(0.2, "--mpp", min=0.1, max=1.0),
    slides: bool = typer.Option(False, "--slides", help="Also write a whole smear slide per case."),
    slide_size: int = typer.Option(8192, "--slide-size", min=512),
) -> None:
    """Bone-marrow smear fields (and slides) for MDS / AML / donor cases with a truth file."""
    with _progress("synth marrow") as bar:
        task = bar.add_task("cases", total=cases)
        try:
            cohort = write_marrow_cohort(
                out,
                cases,
                seed,
                rois,
                field_size,
                mpp,
                slides,
                slide_size,
                progress=lambda done, total: bar.update(task, completed=done),
            )
        except ValueError as exc:
            raise _bad_request(exc) from None
    counts = {
        label: sum(1 for c in cohort.cases if c.label == label) for label in {c.label for c in cohort.cases}
    }
    console.print(f"{out}: {len(cohort.cases)} cases {json.dumps({k.value: v for k, v in counts.items()})}")
