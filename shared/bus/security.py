"""Kafka client security (TLS, SASL) built from settings, for hospital clusters."""

from __future__ import annotations

import ssl

from faststream.security import (
    SASLGSSAPI,
    BaseSecurity,
    SASLPlaintext,
    SASLScram256,
    SASLScram512,
)

from pathstream.shared.settings import PathStreamSettings


def tls_context(settings: PathStreamSettings) -> ssl.SSLContext:
    """Return a TLS context trusting `kafka_ssl_cafile` (or the system store), with the client
    certificate for mutual TLS when one is configured."""
    context = ssl.create_default_context(
        cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
    )
    context.check_hostname = settings.kafka_ssl_check_hostname
    if settings.kafka_ssl_certfile and settings.kafka_ssl_keyfile:
        password = settings.kafka_ssl_keyfile_password
        context.load_cert_chain(
            str(settings.kafka_ssl_certfile),
            str(settings.kafka_ssl_keyfile),
            password=password.get_secret_value() if password else None,
        )
    return context


def kafka_security(settings: PathStreamSettings) -> BaseSecurity | None:
    """Return FastStream's security object for the configured protocol; None for PLAINTEXT."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = tls_context(settings) if settings.uses_tls else None
    if protocol == "SSL":
        return BaseSecurity(ssl_context=context, use_ssl=True)
    mechanism = settings.kafka_sasl_mechanism
    use_ssl = settings.uses_tls
    if mechanism == "GSSAPI":
        return SASLGSSAPI(ssl_context=context, use_ssl=use_ssl)
    username = settings.kafka_sasl_username or ""
    password = settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else ""
    classes = {"PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}
    return classes[mechanism or "PLAIN"](username, password, ssl_context=context, use_ssl=use_ssl)
