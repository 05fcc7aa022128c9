"""The `pathstream` Typer app: every command, each service adding its own (serve, train, ...).

`pathstream.services.cli.main` runs it; importing this module loads every command's module.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.table import Table

from pathstream.services.cli import api, bus, db, dlq, ingest, review, run, serve, synth, users, watch
from pathstream.services.detector.training import commands as detector_commands
from pathstream.services.escnn.training import commands as escnn_commands
from pathstream.services.marrow.training import commands as marrow_commands
from pathstream.shared.logs import configure_logging
from pathstream.shared.settings import get_settings

app = typer.Typer(
    name="pathstream",
    help="PathStream: AI-assisted pathology on an event stream (lymph-node metastases, bone marrow).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(db.app, name="db")
app.add_typer(bus.topics_app, name="topics")
app.command("asyncapi")(bus.asyncapi)
app.command("ingest")(ingest.ingest)
app.add_typer(synth.app, name="synth")
app.command("watch")(watch.watch)
app.add_typer(dlq.app, name="dlq")
app.command("reprocess")(dlq.reprocess)
app.command("serve")(serve.serve)
app.command("run")(run.run)
app.command("demo")(run.demo)
app.add_typer(review.app, name="review")
app.add_typer(users.app, name="users")
app.add_typer(api.app, name="api")

train_app = typer.Typer(help="Train a service's model.", no_args_is_help=True)
evaluate_app = typer.Typer(help="Evaluate a trained model on annotated data.", no_args_is_help=True)
app.add_typer(train_app, name="train")
app.add_typer(evaluate_app, name="evaluate")
train_app.command("detector")(detector_commands.train)
evaluate_app.command("detector")(detector_commands.evaluate)
train_app.command("escnn")(escnn_commands.train)
train_app.command("escnn-patches")(escnn_commands.pretrain_patches)
evaluate_app.command("escnn")(escnn_commands.evaluate)
train_app.command("marrow")(marrow_commands.train)


@app.callback()
def _setup(ctx: typer.Context) -> None:
    """Configure logging from the settings before any command runs: with `auto`, services log
    JSON lines (for the log shipper) and commands on a terminal log readable lines."""
    settings = get_settings()
    fmt = settings.log_format
    if fmt == "auto":
        service = ctx.invoked_subcommand in SERVICE_COMMANDS
        fmt = "console" if sys.stderr.isatty() and not service else "json"
    configure_logging(settings.log_level, fmt)


SERVICE_COMMANDS = frozenset({"serve", "watch", "api"})
"""Commands that run as services: their logs stay JSON whatever the terminal."""


@app.command("config")
def show_config() -> None:
    """Print the effective configuration (PATHSTREAM_* variables), secrets masked."""
    table = Table("variable", "value")
    for name, value in get_settings().describe().items():
        table.add_row(name, value)
    Console(highlight=False).print(table)
