"""Refuse slides outside the configured `PATHSTREAM_ALLOWED_ROOTS`.

Slide URIs arrive in events from other systems; without this check a crafted `SlideScanned` could
make a worker read any file the process can see. Local paths are compared after resolving `..` and
symbolic links, object-store URIs after normalising their key, both segment by segment (a root
`/data/slides` does not admit `/data/slides-old`).
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.settings import PathStreamSettings

OBJECT_STORE_SCHEMES = frozenset({"s3", "gcs", "azure"})


def _local_path(uri: str) -> Path | None:
    """Return the local path `uri` names (plain path or file:// URI), or None for other schemes."""
    parts = urlsplit(uri)
    if parts.scheme == "file":
        return Path(unquote(parts.path))
    if parts.scheme == "" or (len(parts.scheme) == 1 and uri[1:3] in (":\\", ":/")):
        return Path(uri)
    return None


def _object_key(uri: str) -> tuple[str, str, str] | None:
    """Return (scheme, bucket, normalised key) for an object-store URI, or None otherwise."""
    parts = urlsplit(uri)
    if parts.scheme not in OBJECT_STORE_SCHEMES or not parts.netloc:
        return None
    raw = unquote(parts.path)
    if any(segment == ".." for segment in raw.split("/")):
        return None
    key = posixpath.normpath("/" + raw.lstrip("/")) if raw.strip("/") else "/"
    return parts.scheme, parts.netloc, key


def _refuse(uri: str, roots: Sequence[str], why: str, what: str = "slide") -> PathStreamError:
    return PathStreamError(
        ErrorCode.OUTSIDE_ALLOWED_ROOTS,
        f"Refusing {what} {uri!r}: {why}.",
        hint=f"Move the {what} below one of PATHSTREAM_ALLOWED_ROOTS "
        f"({', '.join(roots) or 'none configured'}) or add its folder to that setting.",
    )


def check_allowed(uri: str, allowed_roots: Sequence[str], *, what: str = "slide") -> str:
    """Return the canonical location of `uri` if it lies below one of `allowed_roots`.

    `uri` is a local path, a `file://` URI or an object-store URI (`s3://bucket/key`). Returns the
    resolved absolute local path as a string, or the normalised object-store URI. Raises
    `PathStreamError(OUTSIDE_ALLOWED_ROOTS)` otherwise, including for unsupported schemes; `what`
    names the thing in that error ("slide", "tile store").
    """
    if not uri or "\x00" in uri:
        raise _refuse(uri, allowed_roots, "the location is empty or contains a NUL byte", what)

    local = _local_path(uri)
    if local is not None:
        resolved = local.expanduser().resolve(strict=False)
        for root in allowed_roots:
            root_path = _local_path(root)
            if root_path is not None and resolved.is_relative_to(
                root_path.expanduser().resolve(strict=False)
            ):
                return str(resolved)
        raise _refuse(
            uri, allowed_roots, f"it resolves to {str(resolved)!r}, outside the allowed roots", what
        )

    target = _object_key(uri)
    if target is None:
        raise _refuse(
            uri,
            allowed_roots,
            "only local paths, file:// and object-store URIs (s3://, gcs://, azure://) without '..' "
            "are accepted",
            what,
        )
    scheme, bucket, key = target
    for root in allowed_roots:
        root_target = _object_key(root)
        if root_target is None or root_target[:2] != (scheme, bucket):
            continue
        root_key = root_target[2].rstrip("/")
        if key == root_key or key.startswith(root_key + "/"):
            return f"{scheme}://{bucket}{key}"
    raise _refuse(uri, allowed_roots, "it is outside the allowed roots", what)


def local_root_of(location: str, allowed_roots: Sequence[str]) -> Path | None:
    """The local allowed root holding `location` (a result of `check_allowed`), or None for object
    storage."""
    if "://" in location:
        return None
    for root in allowed_roots:
        root_path = _local_path(root)
        if root_path is not None:
            resolved_root = root_path.expanduser().resolve(strict=False)
            if Path(location).is_relative_to(resolved_root):
                return resolved_root
    return None


def roots_for_named_slides(settings: PathStreamSettings, slides: Sequence[Path]) -> list[str]:
    """The allowed roots for a command that names its slides (`run`, `ingest`): the configured
    `PATHSTREAM_ALLOWED_ROOTS` when set (they apply to every entry point, symlinks resolved); when
    not set, the default roots plus the resolved folders of `slides`, which the operator chose."""
    if "allowed_roots" in settings.model_fields_set:
        return list(settings.allowed_roots)
    folders = [str(slide.resolve().parent) for slide in slides]
    return list(dict.fromkeys([*settings.allowed_roots, *folders]))
