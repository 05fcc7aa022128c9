"""Check a tile store's location taken from an event before anything opens it."""

from __future__ import annotations

from pathstream.shared.allowed_roots import check_allowed, local_root_of
from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.settings import PathStreamSettings


def checked_store_uri(uri: str, settings: PathStreamSettings) -> str:
    """The canonical location of the store `uri` names, once it is known to be safe to open.

    Stores live below `PATHSTREAM_STORE_ROOT` (always allowed: PathStream writes them there) or
    below one of `PATHSTREAM_ALLOWED_ROOTS`. Raises `PathStreamError(OUTSIDE_ALLOWED_ROOTS)` for
    anything else (an event naming `/etc` is refused before a file is touched), and the retriable
    outage `PathStreamError(STORE_UNREACHABLE)` when the local root holding it is not there at all
    (a share that is not mounted), which says nothing about the event.
    """
    roots = [settings.store_root, *settings.allowed_roots]
    location = check_allowed(uri, roots, what="tile store")
    root = local_root_of(location, roots)
    if root is not None and not root.is_dir():
        raise PathStreamError(
            ErrorCode.STORE_UNREACHABLE,
            f"The tile-store root {root} is not reachable (it holds {location}).",
            hint="Mount the share holding PATHSTREAM_STORE_ROOT on this worker; work resumes on its own.",
            retriable=True,
        )
    return location
