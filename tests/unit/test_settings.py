"""Settings: embedded defaults, environment parsing, security checks and masking."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from pathstream.shared.settings import PathStreamSettings, mask_database_url, normalise_database_url


def test_embedded_defaults_live_under_the_data_dir(tmp_path: Path) -> None:
    settings = PathStreamSettings(data_dir=tmp_path)
    assert settings.database_url == f"sqlite:///{tmp_path / 'pathstream.db'}"
    assert settings.store_root == str(tmp_path / "stores")
    assert settings.artifact_root == str(tmp_path / "artifacts")
    assert settings.allowed_roots == [str(tmp_path)]
    assert settings.kafka_security_protocol == "PLAINTEXT"


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATHSTREAM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PATHSTREAM_KAFKA_BOOTSTRAP", "kafka-1:9093,kafka-2:9093")
    monkeypatch.setenv("PATHSTREAM_DATABASE_URL", "postgresql://ps:pw@db:5432/pathstream")
    monkeypatch.setenv("PATHSTREAM_STORE_ROOT", "s3://hospital-stores/pathstream")
    monkeypatch.setenv("PATHSTREAM_ALLOWED_ROOTS", "/mnt/scanner, s3://hospital-slides/in")
    monkeypatch.setenv("PATHSTREAM_TOPIC_PREFIX", "prod.")
    settings = PathStreamSettings()
    assert settings.kafka_bootstrap == "kafka-1:9093,kafka-2:9093"
    assert settings.database_url == "postgresql+psycopg://ps:pw@db:5432/pathstream"
    assert settings.store_root == "s3://hospital-stores/pathstream"
    assert settings.allowed_roots == ["/mnt/scanner", "s3://hospital-slides/in"]
    assert settings.topic("ln.detected") == "prod.ln.detected"


def test_allowed_roots_accept_a_json_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATHSTREAM_ALLOWED_ROOTS", '["/a,b", "/c"]')
    assert PathStreamSettings().allowed_roots == ["/a,b", "/c"]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://u@h/d", "postgresql+psycopg://u@h/d"),
        ("postgresql://u@h/d", "postgresql+psycopg://u@h/d"),
        ("postgresql+psycopg://u@h/d", "postgresql+psycopg://u@h/d"),
        ("sqlite:///x.db", "sqlite:///x.db"),
    ],
)
def test_postgres_urls_use_psycopg3(url: str, expected: str) -> None:
    assert normalise_database_url(url) == expected


def test_sasl_needs_a_mechanism_and_credentials(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="needs PATHSTREAM_KAFKA_SASL_MECHANISM"):
        PathStreamSettings(data_dir=tmp_path, kafka_security_protocol="SASL_SSL")
    with pytest.raises(ValidationError, match="SASL_USERNAME and PATHSTREAM_KAFKA_SASL_PASSWORD"):
        PathStreamSettings(
            data_dir=tmp_path,
            kafka_security_protocol="SASL_SSL",
            kafka_sasl_mechanism="SCRAM-SHA-512",
        )
    with pytest.raises(ValidationError, match="use SASL_SSL"):
        PathStreamSettings(data_dir=tmp_path, kafka_sasl_mechanism="PLAIN")
    with pytest.raises(ValidationError, match="both PATHSTREAM_KAFKA_SSL_CERTFILE"):
        PathStreamSettings(
            data_dir=tmp_path, kafka_security_protocol="SSL", kafka_ssl_certfile=tmp_path / "c.pem"
        )


def test_topic_prefix_must_end_with_a_dot(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="topic_prefix"):
        PathStreamSettings(data_dir=tmp_path, topic_prefix="prod")
    with pytest.raises(ValidationError, match="topic_prefix"):
        PathStreamSettings(data_dir=tmp_path, topic_prefix="../x.")


def test_describe_masks_secrets(tmp_path: Path) -> None:
    settings = PathStreamSettings(
        data_dir=tmp_path,
        database_url="postgresql://ps:hunter2@db/pathstream",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="pathstream",
        kafka_sasl_password=SecretStr("hunter2"),
    )
    shown = settings.describe()
    assert "hunter2" not in " ".join(shown.values())
    assert shown["PATHSTREAM_KAFKA_SASL_PASSWORD"] == "***"
    assert shown["PATHSTREAM_DATABASE_URL"] == "postgresql+psycopg://ps:***@db/pathstream"
    assert mask_database_url("not a url ::") == "<unparsable database URL>"


def test_kafka_client_timeouts_and_sizes_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from pathstream.shared.bus.subscribe import consumer_options

    monkeypatch.setenv("PATHSTREAM_KAFKA_SESSION_TIMEOUT_MS", "45000")
    monkeypatch.setenv("PATHSTREAM_KAFKA_HEARTBEAT_INTERVAL_MS", "15000")
    monkeypatch.setenv("PATHSTREAM_KAFKA_MAX_POLL_INTERVAL_MS", "3600000")
    monkeypatch.setenv("PATHSTREAM_KAFKA_REQUEST_TIMEOUT_MS", "60000")
    monkeypatch.setenv("PATHSTREAM_KAFKA_MAX_REQUEST_SIZE", "5242880")
    settings = PathStreamSettings(data_dir=tmp_path)
    options = consumer_options(settings, "escnn")
    assert (options["session_timeout_ms"], options["heartbeat_interval_ms"]) == (45000, 15000)
    assert options["max_poll_interval_ms"] == 3_600_000
    assert (settings.kafka_request_timeout_ms, settings.kafka_max_request_size) == (60000, 5_242_880)


def test_a_heartbeat_must_be_shorter_than_the_session(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"HEARTBEAT_INTERVAL_MS .* must be below"):
        PathStreamSettings(data_dir=tmp_path, kafka_session_timeout_ms=3000, kafka_heartbeat_interval_ms=3000)
