"""Tile-store locations from events are checked before anything opens them (issue 18)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from pathstream.services.escnn.handler import EscnnHandler
from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.events import SlideFailed
from pathstream.shared.retry import is_outage
from pathstream.shared.settings import PathStreamSettings
from pathstream.shared.tilestore.location import checked_store_uri
from tests.samples import ln_detected


def _settings(tmp_path: Path) -> PathStreamSettings:
    (tmp_path / "stores").mkdir(exist_ok=True)
    return PathStreamSettings(
        data_dir=tmp_path,
        store_root=str(tmp_path / "stores"),
        allowed_roots=[str(tmp_path / "slides")],
        handler_retry_wait_s=0.0,
    )


@pytest.mark.parametrize("uri", ["/etc", "/etc/passwd", "{root}/stores/../../x", "http://host/x", "s3://b/k"])
def test_stores_outside_the_roots_are_refused(tmp_path: Path, uri: str) -> None:
    with pytest.raises(PathStreamError) as caught:
        checked_store_uri(uri.format(root=tmp_path), _settings(tmp_path))
    assert caught.value.code is ErrorCode.OUTSIDE_ALLOWED_ROOTS
    assert "tile store" in caught.value.message


def test_a_store_below_the_store_root_is_allowed(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    assert checked_store_uri(f"{tmp_path}/stores/S-001", settings) == f"{tmp_path}/stores/S-001"


def test_an_unmounted_store_root_is_an_outage_not_a_bad_event(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    (tmp_path / "stores").rmdir()
    with pytest.raises(PathStreamError) as caught:
        checked_store_uri(f"{tmp_path}/stores/S-001", settings)
    assert caught.value.code is ErrorCode.STORE_UNREACHABLE and is_outage(caught.value)


def _never_scores(*_: object) -> object:
    raise AssertionError("the store must not be opened")


def test_the_escnn_handler_fails_the_ln_without_opening_a_store_outside_the_roots(tmp_path: Path) -> None:
    handler = EscnnHandler(_settings(tmp_path), SimpleNamespace(model_version="m", score=_never_scores))  # type: ignore[arg-type]
    event = ln_detected().model_copy(update={"store_uri": "/etc"})
    (failed,) = handler.handle(event)
    assert isinstance(failed, SlideFailed)
    assert (failed.error_code, failed.ln_id, failed.retriable) == (
        ErrorCode.OUTSIDE_ALLOWED_ROOTS,
        event.ln_id,
        False,
    )


def test_under_a_service_consumer_an_unreachable_share_is_raised_not_reported(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    handler = EscnnHandler(settings, SimpleNamespace(model_version="m", score=_never_scores))  # type: ignore[arg-type]
    (tmp_path / "stores").rmdir()
    event = ln_detected().model_copy(update={"store_uri": f"{tmp_path}/stores/S-001"})
    assert handler.handle(event)[0].error_code is ErrorCode.STORE_UNREACHABLE  # type: ignore[union-attr]
    handler.wait_out_outages = True
    with pytest.raises(PathStreamError, match="not reachable"):
        handler.handle(event)
