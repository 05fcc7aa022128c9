"""Kafka security settings become the right FastStream security objects."""

from __future__ import annotations

import ssl
from pathlib import Path

from faststream.kafka.security import parse_security
from faststream.security import SASLGSSAPI, SASLPlaintext, SASLScram512
from pydantic import SecretStr

from pathstream.shared.bus.security import kafka_security
from pathstream.shared.settings import PathStreamSettings


def test_plaintext_has_no_security(tmp_path: Path) -> None:
    assert kafka_security(PathStreamSettings(data_dir=tmp_path)) is None


def test_sasl_ssl_scram(tmp_path: Path) -> None:
    settings = PathStreamSettings(
        data_dir=tmp_path,
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="pathstream",
        kafka_sasl_password=SecretStr("pw"),
    )
    security = kafka_security(settings)
    assert isinstance(security, SASLScram512)
    kwargs = parse_security(security)
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert kwargs["sasl_plain_username"] == "pathstream" and kwargs["sasl_plain_password"] == "pw"
    assert isinstance(kwargs["ssl_context"], ssl.SSLContext)
    assert kwargs["ssl_context"].check_hostname


def test_sasl_plaintext_plain_and_gssapi(tmp_path: Path) -> None:
    plain = kafka_security(
        PathStreamSettings(
            data_dir=tmp_path,
            kafka_security_protocol="SASL_PLAINTEXT",
            kafka_sasl_mechanism="PLAIN",
            kafka_sasl_username="u",
            kafka_sasl_password=SecretStr("p"),
        )
    )
    assert isinstance(plain, SASLPlaintext)
    assert parse_security(plain)["security_protocol"] == "SASL_PLAINTEXT"
    gssapi = kafka_security(
        PathStreamSettings(
            data_dir=tmp_path, kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="GSSAPI"
        )
    )
    assert isinstance(gssapi, SASLGSSAPI)


def test_tls_without_sasl(tmp_path: Path) -> None:
    security = kafka_security(
        PathStreamSettings(data_dir=tmp_path, kafka_security_protocol="SSL", kafka_ssl_check_hostname=False)
    )
    kwargs = parse_security(security)
    assert kwargs["security_protocol"] == "SSL"
    assert kwargs["ssl_context"].check_hostname is False
