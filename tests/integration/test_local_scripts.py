"""The local start-up scripts say in one line what to install when Java or Maven fails them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.kafka_broker import KAFKA_UP, free_port

pytestmark = pytest.mark.integration


def _run_kafka_up(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(KAFKA_UP), str(free_port())], env=env, capture_output=True, text=True, timeout=120
    )


def test_without_java_kafka_up_names_what_to_install(tmp_path: Path) -> None:
    # A PATH with only what the script needs before it looks for Java.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "dirname", "sed"):
        found = shutil.which(tool)
        assert found is not None
        (bin_dir / tool).symlink_to(found)
    env = {k: v for k, v in os.environ.items() if k != "JAVA_HOME"}
    env.update(PATH=str(bin_dir), PATHSTREAM_RUN_DIR=str(tmp_path / "state"))

    done = _run_kafka_up(env)

    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "java not found" in lines[0] and "install Java 17" in lines[0]
    assert "openjdk-17-jre-headless" in lines[0]


def test_a_failed_maven_resolution_is_one_clear_line(tmp_path: Path) -> None:
    # Maven offline with an empty local repository: the broker cannot be resolved, for real.
    home = tmp_path / "home"
    (home / ".m2").mkdir(parents=True)
    (home / ".m2" / "settings.xml").write_text(
        "<settings><offline>true</offline>"
        f"<localRepository>{tmp_path / 'empty-repo'}</localRepository></settings>"
    )
    env = {
        **os.environ,
        # Maven reads settings from Java's user.home, which is not $HOME.
        "MAVEN_OPTS": f"-Duser.home={home}",
        "PATHSTREAM_KAFKA_HOME": str(tmp_path / "jars"),
        "PATHSTREAM_RUN_DIR": str(tmp_path / "state"),
    }

    done = _run_kafka_up(env)

    assert done.returncode == 1
    lines = [line for line in done.stderr.strip().splitlines() if not line.startswith("kafka-up: resolving")]
    assert len(lines) == 1, done.stderr
    assert "Maven could not resolve org.apache.kafka:kafka_2.13:4." in lines[0]
    assert str(tmp_path / "jars" / "maven.log") in lines[0]
    assert not (tmp_path / "jars" / "lib").exists()  # nothing half-resolved is taken for the broker


POSTGRES_UP = Path(__file__).resolve().parents[2] / "infra" / "local" / "postgres-up.sh"


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("pg_createcluster") is None,
    reason="needs root and Debian's PostgreSQL cluster tools",
)
def test_postgres_up_prints_only_the_url_after_a_stale_pid_file(tmp_path: Path) -> None:
    # The failure CI met: a cluster left with a stale postmaster.pid, where pg_ctlcluster prints
    # "Removed stale pid file." on stdout, which the test command read as part of the URL.
    version = sorted(os.listdir("/usr/lib/postgresql"), key=lambda v: int(v))[-1]
    port = free_port()
    name = f"pstest{port}"
    subprocess.run(
        ["pg_createcluster", version, name, "--port", str(port)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    try:
        pid_file = Path(f"/var/lib/postgresql/{version}/{name}/postmaster.pid")
        pid_file.write_text(f"999999\n{pid_file.parent}\n0\n{port}\n/var/run/postgresql\n")
        shutil.chown(pid_file, "postgres")
        env = {**os.environ, "PGPORT": str(port), "PGHOST": "127.0.0.1"}

        done = subprocess.run(
            [str(POSTGRES_UP), "pathstream_test"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

        assert done.returncode == 0, done.stderr
        assert done.stdout == (
            f"postgresql+psycopg://pathstream:pathstream@127.0.0.1:{port}/pathstream_test\n"
        ), done.stdout
        ok = subprocess.run(
            ["psql", done.stdout.strip().replace("+psycopg", ""), "-qtAc", "SELECT 1"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert ok.stdout.strip() == "1", ok.stderr
    finally:
        subprocess.run(["pg_dropcluster", "--stop", version, name], capture_output=True, timeout=120)


def test_a_broker_with_a_long_state_path_is_recognised_on_a_narrow_terminal(tmp_path: Path) -> None:
    # Under pytest-xdist ps believed the terminal 80 columns wide and cut the command line before
    # the server.properties path, so kafka-up took its own running broker for one that had died.
    run_dir = tmp_path / ("a-long-state-folder-" * 6)
    port = 40123
    state = run_dir / f"kafka-{port}"
    state.mkdir(parents=True)
    stand_in = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", str(state / "server.properties")]
    )
    try:
        (state / "broker.pid").write_text(f"{stand_in.pid}\n")
        state_script = KAFKA_UP.parent / "kafka" / "broker-state.sh"
        done = subprocess.run(
            ["bash", "-c", f'port={port}; . "{state_script}"; running_pid'],
            env={**os.environ, "PATHSTREAM_RUN_DIR": str(run_dir), "COLUMNS": "80"},
            capture_output=True,
            text=True,
            timeout=30,
        )
    finally:
        stand_in.kill()
        stand_in.wait()

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(stand_in.pid)
