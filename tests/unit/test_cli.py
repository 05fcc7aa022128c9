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


def test_logs_are_readable_on_a_terminal_and_json_for_services_and_pipes(tmp_path: Path) -> None:
    """Issue 19: PATHSTREAM_LOG_FORMAT=auto renders console lines for a command on a terminal,
    JSON when stderr is a pipe, and JSON for services whatever the terminal."""
    import pty

    script = (
        "import sys; sys.argv = ['pathstream'] + sys.argv[1:]\n"
        "from pathstream.services.cli.commands import app\n"
        "from pathstream.shared.logs import get_logger\n"
        "import pathstream.services.cli.commands as c\n"
        "@c.app.command('emit-log')\n"
        "def emit_log() -> None:\n"
        "    get_logger('t').warning('probe_event', n=1)\n"
        "app()\n"
    )
    env = {**os.environ, "PATHSTREAM_DATA_DIR": str(tmp_path), "PATHSTREAM_LOG_FORMAT": "auto"}
    piped = subprocess.run(
        [sys.executable, "-c", script, "emit-log"], env=env, capture_output=True, text=True
    )
    assert piped.returncode == 0, piped.stderr
    assert '"event": "probe_event"' in piped.stderr

    leader, follower = pty.openpty()
    on_tty = subprocess.run(
        [sys.executable, "-c", script, "emit-log"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=follower,
        text=True,
        timeout=60,
    )
    os.close(follower)
    written = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        written += chunk
    os.close(leader)
    assert on_tty.returncode == 0
    text = written.decode(errors="replace")
    assert "probe_event" in text and '"event": "probe_event"' not in text, text
