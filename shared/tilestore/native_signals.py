"""Keep Ctrl-C and SIGPIPE with Python when TileDB starts.

TileDB's core installs its own SIGINT and SIGPIPE handlers when its first context is created (a
watchdog thread then cancels every TileDB task once a signal arrived). That replaces Python's
handler even where SIGINT was ignored (a background job), so Ctrl-C no longer raises
KeyboardInterrupt where PathStream cleans up, and the cancellation running beside the interpreter
ended runs in a segmentation fault (exit 139) at any stage. `keep_python_signal_handlers` creates
TileDB's global state once, on the main thread, and puts the handlers back as they were: Ctrl-C is
then Python's KeyboardInterrupt everywhere, and every write cleans up as its code says.
"""

from __future__ import annotations

import signal
import threading

_SIGNALS = (signal.SIGINT, signal.SIGPIPE)
_done = False


def keep_python_signal_handlers() -> bool:
    """Initialise TileDB (its first context) and restore the SIGINT/SIGPIPE handlers it replaced.
    Call it on the main thread before any TileDB use; later calls do nothing. Returns True when the
    handlers were restored now, False when done before or off the main thread (handlers can only be
    set there)."""
    global _done
    if _done or threading.current_thread() is not threading.main_thread():
        return False
    before = {s: signal.getsignal(s) for s in _SIGNALS}
    import tiledb

    tiledb.default_ctx()
    for sig, handler in before.items():
        # None: a handler set outside Python; the interpreter's defaults are the safe choice.
        if handler is None:
            handler = signal.default_int_handler if sig == signal.SIGINT else signal.SIG_IGN
        signal.signal(sig, handler)
    _done = True
    return True
