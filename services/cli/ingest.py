"""`pathstream ingest`: one slide into its TileDB tile store."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from pathstream.services.cli.progress import progress_bar
from pathstream.services.cli.run import checked_id
from pathstream.shared.allowed_roots import roots_for_named_slides
from pathstream.shared.events import Specimen
from pathstream.shared.naming import slide_id_for
from pathstream.shared.settings import get_settings
from pathstream.shared.tilestore.context import tiledb_context
from pathstream.shared.tilestore.ingest import IngestResult, ingest_slide
from pathstream.shared.tilestore.layout import TileFormat
from pathstream.shared.tilestore.limits import SlideLimits

console = Console(highlight=False)


def ingest(
    slide: Path = typer.Argument(..., help="Slide file (SVS, NDPI, MRXS, TIFF, ...) or DICOM folder."),
    store: str = typer.Option(
        "", "--store", help="Store root (path or s3:// URI); default PATHSTREAM_STORE_ROOT."
    ),
    mpp: float | None = typer.Option(
        None, "--mpp", help="Level-0 um/px, overriding (or replacing) the file's."
    ),
    slide_id: str = typer.Option(
        "", "--slide-id", help="Store name; default: the file name without extension."
    ),
    specimen: Specimen = typer.Option(
        Specimen.LYMPH_NODE, "--specimen", help="bone_marrow adds the ROI array."
    ),
    workers: int = typer.Option(2, "--workers", min=1, help="Threads reading and resampling."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as one JSON object."),
) -> None:
    """Write a slide's working resolutions (0.46 and 7.36 um/px, plus ~0.2 for marrow) to TileDB."""
    settings = get_settings()
    slide_id = checked_id(slide_id, "--slide-id") if slide_id else slide_id_for(slide)
    with progress_bar(f"ingest {slide_id}", "{task.completed}/{task.total} tile rows", remaining=True) as bar:
        task = bar.add_task("ingest", total=None)
        result = ingest_slide(
            slide,
            store or settings.store_root,
            slide_id,
            specimen,
            mpp=mpp,
            allowed_roots=roots_for_named_slides(settings, [slide]),
            ctx=tiledb_context(settings),
            fmt=TileFormat.from_settings(settings),
            limits=SlideLimits.from_settings(settings),
            workers=workers,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    if as_json:
        print(json.dumps(result.to_json()))
    else:
        _print_summary(result)


def _print_summary(result: IngestResult) -> None:
    verb = "reused" if result.reused else "written"
    console.print(
        f"{result.slide_id}: store {verb} at {result.store_uri} "
        f"({result.megapixels:.0f} Mpx at {result.mpp_x:g} um/px from {result.mpp_source}, "
        f"{result.seconds:.1f} s)"
    )
    table = Table("array", "um/px", "width", "height")
    for array in result.arrays:
        table.add_row(array.name, f"{array.mpp:g}", str(array.width), str(array.height))
    console.print(table)
