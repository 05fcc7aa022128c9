"""The `pathstream` command line: one entry point for operators, developers and CI.

The commands live in `pathstream.services.cli.commands`; this module stays light so that `main` can
take over Ctrl-C and SIGTERM before those (heavy) modules load.
"""

from __future__ import annotations

import signal
import sys
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    import typer

    app: typer.Typer


def __getattr__(name: str) -> Any:
    """`pathstream.services.cli.commands` (the Typer app) on first use, as it always was importable."""
    if name == "app":
        from pathstream.services.cli.commands import app

        return app
    raise AttributeError(name)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the work is, so it stops as cleanly as after Ctrl-C."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()


def main() -> None:
    """Console-script entry point: run the app, reporting failures without tracebacks. Ctrl-C
    (exit 130) and SIGTERM (exit 143) stop the work where it is: what was finished is kept, what
    was being written is removed, and the same command run again finishes the job."""
    # Installed before the commands' modules load (seconds): a signal then is a clean stop too.
    # Servers (FastStream, uvicorn) install their own SIGTERM handling when they start.
    signal.signal(signal.SIGTERM, _terminate)
    try:
        from pathstream.services.cli.commands import app
        from pathstream.shared.tilestore.native_signals import keep_python_signal_handlers

        keep_python_signal_handlers()
        app()
    except BaseException as exc:
        # Typer turns KeyboardInterrupt into a silent exit 130; find it behind that exit.
        interrupt = _interruption(exc)
        if interrupt is not None:
            _stopped(interrupt)
        if isinstance(exc, SystemExit):
            raise
        from pathstream.services.cli.errors import fail

        fail(exc)


def _interruption(exc: BaseException) -> KeyboardInterrupt | None:
    """The KeyboardInterrupt (or Terminated) `exc` is or was raised from, if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _stopped(interrupt: KeyboardInterrupt) -> NoReturn:
    terminated = isinstance(interrupt, Terminated)
    # A second Ctrl-C while saying so must not turn the message into a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    print(
        f"Stopped ({'SIGTERM' if terminated else 'Ctrl-C'}). Finished results are kept and nothing "
        "half-written remains; run the same command again to finish.",
        file=sys.stderr,
        flush=True,
    )
    raise SystemExit(143 if terminated else 130) from None
