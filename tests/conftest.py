"""Fixtures for the real services the integration tests talk to.

The broker and PostgreSQL are started by `infra/test.sh` (the README's test command). When they are
not reachable the integration tests fail, not skip: a green run must mean they really ran.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from psycopg.errors import InsufficientPrivilege
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from tenacity import retry, retry_if_exception, stop_after_delay, wait_fixed

from pathstream.shared.bus.probe import broker_answers
from pathstream.shared.settings import PathStreamSettings
from tests.real_data import real_data_dir

SHARED_DATA = real_data_dir(strict=False)
KAFKA_BOOTSTRAP = os.environ.get("PATHSTREAM_TEST_KAFKA_BOOTSTRAP", "127.0.0.1:19092")
PG_ADMIN_URL = os.environ.get(
    "PATHSTREAM_TEST_PG_ADMIN_URL", "postgresql+psycopg://pathstream:pathstream@127.0.0.1:5432/postgres"
)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """The real Kafka-protocol broker's address; fails the test when it does not answer."""
    if not asyncio.run(broker_answers(KAFKA_BOOTSTRAP, 3.0)):
        pytest.fail(
            f"No Kafka-protocol broker answers on {KAFKA_BOOTSTRAP}. Run the suite with infra/test.sh, "
            f"or start one with infra/local/kafka-up.sh {KAFKA_BOOTSTRAP.rsplit(':', 1)[1]}."
        )
    return KAFKA_BOOTSTRAP


@pytest.fixture
def bus_settings(kafka_bootstrap: str, tmp_path: Path) -> PathStreamSettings:
    """Settings for one test on the real broker: its own topic prefix, fast group timeouts."""
    return PathStreamSettings(
        data_dir=tmp_path,
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=f"t{uuid.uuid4().hex[:12]}.",
        kafka_session_timeout_ms=2000,
        kafka_heartbeat_interval_ms=500,
        kafka_connect_timeout_s=15,
        handler_max_attempts=3,
        handler_retry_wait_s=0.01,
    )


@contextmanager
def fresh_database() -> Iterator[str]:
    """A new, empty PostgreSQL database (its URL) until the block ends, then dropped."""
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"pathstream_t_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        pytest.fail(
            f"Cannot create a test database through {make_url(PG_ADMIN_URL).render_as_string()}: "
            f"{exc}. Run the suite with infra/test.sh (it starts PostgreSQL)."
        )
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        _drop_database(admin, name)
        admin.dispose()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A new, empty PostgreSQL database for one test, dropped afterwards."""
    with fresh_database() as url:
        yield url


@retry(
    # FORCE ends the test's own connections, but an autovacuum worker that has just entered the
    # new database runs as the superuser and may not be ended by the test role: it leaves within
    # moments, so the drop is tried again (seen when two test processes keep autovacuum busy).
    retry=retry_if_exception(lambda exc: isinstance(getattr(exc, "orig", None), InsufficientPrivilege)),
    wait=wait_fixed(0.5),
    stop=stop_after_delay(30),
    reraise=True,
)
def _drop_database(admin: Engine, name: str) -> None:
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A new SQLite database file for one test."""
    return f"sqlite:///{tmp_path / 'pathstream.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs once on SQLite (embedded) and once on PostgreSQL."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


# The files that take longest (one training fixture each, 8-20 min on one core), run first: on two
# processes (`--dist loadfile --no-loadscope-reorder`, infra/test.sh) they start at once and
# everything else fills the other process, instead of one of them starting late and running on
# alone at the end.
LONGEST_FIRST = ("integration/test_escnn_training.py", "integration/test_detector_training.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every integration test (real broker, database, slides or trained models) is also `slow`: the
    fast tier is `-m "not slow"` (pure logic only), the full suite runs everything. The files in
    LONGEST_FIRST come first, in that order; the rest keep theirs."""
    here = Path(__file__).parent
    first = {here / name: rank for rank, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: first.get(item.path, len(first)))
    integration = here / "integration"
    for item in items:
        if item.get_closest_marker("integration") is not None or item.path.is_relative_to(integration):
            item.add_marker(pytest.mark.slow)
