"""The one progress bar of the command line: Rich, on stderr, shown only on a terminal, gone when done."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def progress_bar(label: str, *fields: str, remaining: bool = False, show: bool = True) -> Progress:
    """A transient progress bar: `label`, the bar, each of `fields`, elapsed (and remaining) time.

    `label` and `fields` are Rich `TextColumn` templates (e.g. "{task.completed}/{task.total} LNs").
    Stdout stays clean for JSON; nothing is drawn when stderr is not a terminal or `show` is false
    (e.g. on every rank but the first of a distributed run).
    """
    columns = [TextColumn(label), BarColumn(), *(TextColumn(field) for field in fields), TimeElapsedColumn()]
    if remaining:
        columns.append(TimeRemainingColumn())
    return Progress(
        *columns,
        console=Console(stderr=True),
        disable=not (show and sys.stderr.isatty()),
        transient=True,
    )
