"""The AsyncAPI document generates with FastStream's own generator and covers every topic."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from pathstream.shared.events import ALL_EVENTS
from pathstream.shared.topics import Topic

REPO = Path(__file__).resolve().parents[2]


def _check_document(document: dict) -> None:
    assert document["asyncapi"].startswith("3.")
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert addresses == {t.value for t in Topic} | {f"{t.value}.dlq" for t in Topic}
    schemas = document["components"]["schemas"]
    for event_type in ALL_EVENTS:
        schema = schemas[event_type.__name__]
        assert {"event_id", "schema_version", "occurred_at"} <= set(schema["properties"])
    assert schemas["LymphNodeScored"]["properties"]["score"]


def test_faststream_docs_gen_generates_the_document(tmp_path: Path) -> None:
    out = tmp_path / "asyncapi.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "faststream",
            "docs",
            "gen",
            "--factory",
            "pathstream.shared.bus.catalogue:build_catalogue_app",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PATHSTREAM_DATA_DIR": str(tmp_path)},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    _check_document(json.loads(out.read_text()))


def test_pathstream_asyncapi_command(tmp_path: Path) -> None:
    out = tmp_path / "bus.json"
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from pathstream.services.cli import main; main()",
            "asyncapi",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PATHSTREAM_DATA_DIR": str(tmp_path)},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    _check_document(json.loads(out.read_text()))
