"""The `pathstream` command line: --help everywhere, clear errors without tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from pathstream.services.cli import app
from pathstream.shared.db import migrate

runner = CliRunner()


def _all_commands(command: object, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path]
    for name, sub in (getattr(command, "commands", None) or {}).items():
        found += _all_commands(sub, (*path, name))
    return found


COMMANDS = _all_commands(typer.main.get_command(app))


def test_top_level_help_lists_the_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in ("db", "topics", "asyncapi", "config"):
        assert name in result.output


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "pathstream")
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def _pathstream(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from pathstream.services.cli import main; main()", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )


def test_db_upgrade_on_the_embedded_default(tmp_path: Path) -> None:
    result = _pathstream("db", "upgrade", env={"PATHSTREAM_DATA_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert f"is at revision {migrate.head_revision()}" in result.stdout.replace("\n", "")
    assert (tmp_path / "pathstream.db").is_file()


def test_unreachable_database_is_a_clear_error_not_a_traceback(tmp_path: Path) -> None:
    result = _pathstream(
        "db",
        "upgrade",
        env={
            "PATHSTREAM_DATA_DIR": str(tmp_path),
            "PATHSTREAM_DATABASE_URL": "postgresql://ps:secret@127.0.0.1:9/pathstream",
        },
    )
    assert result.returncode == 2
    assert "DATABASE_UNAVAILABLE" in result.stderr
    assert "PATHSTREAM_DATABASE_URL" in result.stderr
    assert "secret" not in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_unreachable_kafka_is_a_clear_error_not_a_traceback(tmp_path: Path) -> None:
    result = _pathstream(
        "topics",
        "create",
        env={
            "PATHSTREAM_DATA_DIR": str(tmp_path),
            "PATHSTREAM_KAFKA_BOOTSTRAP": "127.0.0.1:9",
            "PATHSTREAM_KAFKA_CONNECT_TIMEOUT_S": "1",
        },
    )
    assert result.returncode == 2
    assert "BROKER_UNAVAILABLE" in result.stderr and "127.0.0.1:9" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_invalid_settings_name_the_variable(tmp_path: Path) -> None:
    result = _pathstream(
        "config",
        env={
            "PATHSTREAM_DATA_DIR": str(tmp_path),
            "PATHSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        },
    )
    assert result.returncode == 2
    assert "INVALID_CONFIGURATION" in result.stderr
    assert "PATHSTREAM_KAFKA_SASL_MECHANISM" in result.stderr
    assert "Traceback" not in result.stderr


def test_config_masks_secrets(tmp_path: Path) -> None:
    result = _pathstream(
        "config",
        env={
            "PATHSTREAM_DATA_DIR": str(tmp_path),
            "PATHSTREAM_DATABASE_URL": "postgresql://ps:Zq7pW0rd@db/pathstream",
            "COLUMNS": "200",
        },
    )
    assert result.returncode == 0, result.stderr
    assert "Zq7pW0rd" not in result.stdout
    assert "PATHSTREAM_KAFKA_BOOTSTRAP" in result.stdout
