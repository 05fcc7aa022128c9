"""`pathstream topics ...` and `pathstream asyncapi`: the event bus seen from the command line."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from pathstream.shared.bus.admin import ensure_topics
from pathstream.shared.bus.catalogue import build_catalogue_app
from pathstream.shared.settings import get_settings

topics_app = typer.Typer(help="Kafka topics of the pipeline.", no_args_is_help=True)
console = Console(highlight=False)


@topics_app.command("create")
def create_topics(
    partitions: int = typer.Option(
        0, min=0, help="Partitions for new topics (default: PATHSTREAM_KAFKA_TOPIC_PARTITIONS)."
    ),
) -> None:
    """Create every pipeline topic and its DLQ that does not exist yet; list them all."""
    settings = get_settings()
    result = asyncio.run(ensure_topics(settings, partitions=partitions or None))
    table = Table("topic", "partitions")
    for topic, count in sorted(result.items()):
        table.add_row(topic, str(count))
    console.print(table)


def asyncapi(
    out: Path = typer.Option(Path("asyncapi.json"), "--out", "-o", help="Where to write the document."),
    yaml: bool = typer.Option(False, "--yaml", help="Write YAML instead of JSON."),
) -> None:
    """Generate the AsyncAPI 3.0 document of all PathStream topics and events (FastStream)."""
    specification = build_catalogue_app().schema.to_specification()
    if yaml:
        out.write_text(specification.to_yaml(), encoding="utf-8")
    else:
        out.write_text(json.dumps(specification.to_jsonable(), indent=2), encoding="utf-8")
    console.print(f"AsyncAPI document written to {out}")
