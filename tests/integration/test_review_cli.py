"""`pathstream users` and `pathstream review` through the real command line on PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pathstream.services.reporter.handler import ReporterHandler
from pathstream.services.reporter.slide_sets import RUN
from pathstream.shared.db import migrate
from pathstream.shared.db.engine import create_db_engine, session_factory
from pathstream.shared.settings import PathStreamSettings
from tests.samples import ln_scored, slide_detected

pytestmark = pytest.mark.integration


def _cli(url: str, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATHSTREAM_DATABASE_URL": url, "PATHSTREAM_LOG_LEVEL": "WARNING"}
    env.pop("PATHSTREAM_REVIEW_TOKEN", None)
    if token is not None:
        env["PATHSTREAM_REVIEW_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "pathstream.services.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_users_tokens_and_review_commands(pg_url: str, tmp_path: Path) -> None:
    migrate.upgrade(pg_url)
    engine = create_db_engine(pg_url)
    reporter = ReporterHandler(PathStreamSettings(data_dir=tmp_path), session_factory(engine))
    for event in [slide_detected(ln_count=2), ln_scored(0, 0.9), ln_scored(1, 0.1)]:
        reporter.handle(event)
    reporter.close_slide_set("ST-001", RUN)  # report version 1 (preliminary)
    engine.dispose()

    assert _cli(pg_url, "users", "add", "paula", "--role", "pathologist").returncode == 0
    assert _cli(pg_url, "users", "add", "vera", "--role", "viewer").returncode == 0
    paula = _cli(pg_url, "users", "token", "paula").stdout.strip()
    vera = _cli(pg_url, "users", "token", "vera", "--days", "0").stdout.strip()
    assert paula.startswith("pst_") and vera.startswith("pst_")

    no_token = _cli(pg_url, "review", "show", "ST-001")
    assert no_token.returncode == 2 and "No token" in no_token.stderr and "Traceback" not in no_token.stderr
    shown = _cli(pg_url, "review", "show", "ST-001", "--json", token=vera)
    assert shown.returncode == 0 and json.loads(shown.stdout)["pn_category"] == "N1"
    refused = _cli(pg_url, "review", "label", "S-001-ln001", "positive", "--reason", "r", token=vera)
    assert refused.returncode == 2 and "may not amend" in refused.stderr

    done = _cli(
        pg_url, "review", "label", "S-001-ln001", "positive", "--reason", "deeper levels", token=paula
    )
    assert done.returncode == 0 and "report version 2" in done.stdout, done.stderr
    exported = tmp_path / "S-001.geojson"
    assert _cli(pg_url, "review", "export", "S-001", "--out", str(exported), token=vera).returncode == 0
    collection = json.loads(exported.read_text())
    collection["features"] = [f for f in collection["features"] if f["properties"]["name"] != "S-001-ln000"]
    exported.write_text(json.dumps(collection))
    imported = _cli(pg_url, "review", "import", "S-001", str(exported), "--reason", "not a node", token=paula)
    assert imported.returncode == 0 and "remove on S-001-ln000" in imported.stdout, imported.stderr
    early_viewer = _cli(pg_url, "review", "sign-out", "ST-001", token=vera)
    assert early_viewer.returncode == 2 and "Traceback" not in early_viewer.stderr
    signed = _cli(pg_url, "review", "sign-out", "ST-001", "--reason", "checked", token=paula)
    assert signed.returncode == 0 and "report version 4" in signed.stdout, signed.stderr
    twice = _cli(pg_url, "review", "sign-out", "ST-001", token=paula)
    assert twice.returncode == 2 and "already signed out" in twice.stderr, twice.stderr
    size = _cli(pg_url, "review", "deposit", "S-001-ln001", "0.5", "--reason", "measured", token=paula)
    assert size.returncode == 0 and "report version 5" in size.stdout, size.stderr
    bad_size = _cli(pg_url, "review", "deposit", "S-001-ln001", "-1", "--reason", "r", token=paula)
    assert bad_size.returncode == 2 and "Traceback" not in bad_size.stderr
    shown = _cli(pg_url, "review", "show", "ST-001", "--json", token=vera)
    assert json.loads(shown.stdout)["status"] == "corrected"
    audit = _cli(pg_url, "review", "audit", "ST-001", token=vera)
    assert audit.returncode == 0 and audit.stdout.count("paula") == 4, audit.stdout

    listed = _cli(pg_url, "users", "tokens", "vera").stdout
    token_id = vera.split("_")[1]
    assert token_id in listed and vera not in listed  # ids only, never the secret
    assert _cli(pg_url, "users", "revoke", token_id).returncode == 0
    revoked = _cli(pg_url, "review", "show", "ST-001", token=vera)
    assert revoked.returncode == 2 and "revoked" in revoked.stderr
