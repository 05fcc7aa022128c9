"""PathStream configuration, read from `PATHSTREAM_*` environment variables (pydantic-settings).

Everything has a default that works on one machine with no servers (the embedded mode): data under
`$XDG_DATA_HOME/pathstream` (or `~/.local/share/pathstream`), a SQLite database there, local tile
stores and artifacts. Hospital deployments point the same variables at PostgreSQL, a Kafka cluster
(SASL and/or TLS) and shared object storage.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
# OAUTHBEARER needs a token-provider object, which environment variables cannot carry.
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "GSSAPI"]
_PASSWORD_MECHANISMS = {"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}


def default_data_dir() -> Path:
    """Return the embedded-mode data directory.

    `$XDG_DATA_HOME/pathstream`, or `~/.local/share/pathstream` when XDG_DATA_HOME is unset.
    """
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "pathstream"


def normalise_database_url(url: str) -> str:
    """Return `url` with the driver PathStream installs (psycopg 3) made explicit for PostgreSQL.

    `postgresql://` and `postgres://` would otherwise make SQLAlchemy look for psycopg2.
    """
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def mask_database_url(url: str) -> str:
    """Return `url` with any password replaced by `***`, safe to log or print."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL is reported by whoever uses it; never echo it raw
        return "<unparsable database URL>"


class PathStreamSettings(BaseSettings):
    """All runtime configuration. Field `x` is read from environment variable `PATHSTREAM_X`."""

    model_config = SettingsConfigDict(env_prefix="PATHSTREAM_", extra="ignore", frozen=True)

    # Storage.
    data_dir: Path = Field(default_factory=default_data_dir, description="Root for embedded-mode data.")
    database_url: str = Field(
        default="",
        description="SQLAlchemy URL; default: SQLite file `<data_dir>/pathstream.db`.",
    )
    store_root: str = Field(
        default="",
        description="TileDB store root, local path or s3:// URI; default `<data_dir>/stores`.",
    )
    artifact_root: str = Field(
        default="", description="Heatmaps, OSM maps, GeoJSON; default `<data_dir>/artifacts`."
    )
    allowed_roots: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Slides are only read from below these roots (comma-separated or JSON list); "
        "default: `<data_dir>`.",
    )

    # Limits on what one slide may claim to be, checked from its header before any pixel is read
    # (shared/tilestore/limits.py): the largest real slides are ~200k x 100k px (20 Gpx at 0.25 um/px).
    max_slide_side_px: int = Field(
        default=500_000, ge=1_000, description="Longest level-0 side a slide may have, in pixels."
    )
    max_slide_gigapixels: float = Field(
        default=50.0, gt=0, description="Largest level-0 pixel count a slide may have, in gigapixels."
    )
    max_slide_memory_mb: int = Field(
        default=4_096,
        ge=64,
        description="Largest working memory a slide's ingest and detection may be expected to need, "
        "estimated from its header (tile-row buffers and the 7.36 um/px detection maps).",
    )

    slide_qc: bool = Field(
        default=True,
        description="Refuse slides that fail the quality gate (QC_FAILED: not brightfield, false colour, "
        "blank, not H&E/MGG; shared/tilestore/quality.py). Turn off for research use only.",
    )

    tile_codec: Literal["zstd", "webp-lossless", "webp-lossy"] = Field(
        default="zstd", description="Compression of new tile stores (see BENCHMARKS.md)."
    )
    tile_size: Literal[256, 512] = 512
    tile_level: int = Field(default=7, ge=1, le=100, description="zstd level or lossy WebP quality.")
    s3_endpoint: str = Field(
        default="", description="host:port of an S3-compatible store (MinIO, Ceph); empty for AWS."
    )
    s3_scheme: Literal["https", "http"] = "https"
    s3_region: str = ""
    s3_virtual_addressing: bool = Field(
        default=True, description="Bucket in the host name (AWS); false for most on-premises stores."
    )

    # Models and compute.
    device: str = Field(
        default="auto",
        pattern=r"^(auto|cpu|cuda(:\d+)?)$",
        description="Torch device for inference: auto (CUDA when present, else CPU), cpu, cuda, cuda:N.",
    )
    detector_checkpoint: Path | None = Field(
        default=None, description="LN detector checkpoint (`pathstream train detector` output)."
    )
    detector_window: int = Field(
        default=1024, ge=256, le=8192, description="Detector window side at 7.36 um/px (memory bound)."
    )

    escnn_checkpoint: Path | None = Field(
        default=None, description="ESCNN checkpoint (`pathstream train escnn` output, or torchvision ResNet)."
    )
    escnn_backbone: Literal["resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "compact16"] = (
        Field(default="resnet50", description="ESCNN backbone (a PathStream checkpoint must match it).")
    )
    escnn_tile_size: int | None = Field(
        default=None,
        ge=256,
        le=16384,
        description="Streaming tile side at 0.46 um/px; default: from free memory.",
    )
    escnn_precision: Literal["fp32", "bf16", "fp16"] = Field(
        default="fp32", description="ESCNN arithmetic; bf16/fp16 autocast only on CUDA."
    )
    escnn_threshold: float = Field(
        default=0.4, gt=0, lt=1, description="General operating threshold (paper)."
    )
    escnn_screening_threshold: float = Field(
        default=0.15, gt=0, lt=1, description="Screening operating threshold (paper)."
    )

    marrow_checkpoint: Path | None = Field(
        default=None, description="Marrow classifier checkpoint (`pathstream train marrow` output)."
    )
    marrow_roi_count: int = Field(
        default=4, ge=1, le=64, description="ROIs proposed per smear (paper: 4 per MDS case, 10 external)."
    )
    marrow_roi_px: int = Field(
        default=1024,
        ge=64,
        le=8192,
        description="ROI side in pixels at the model's training mpp (0.2 um/px: 1024 px = 205 um).",
    )
    marrow_occluder_px: int = Field(
        default=48, ge=4, le=1024, description="Occlusion-map occluder side, in model-input pixels."
    )
    marrow_occlusion_stride_px: int = Field(
        default=24, ge=1, le=1024, description="Occlusion-map occluder stride, in model-input pixels."
    )
    marrow_occlusion_maps: bool = Field(
        default=True, description="Draw an occlusion sensitivity map PNG per ROI."
    )

    # Kafka.
    kafka_bootstrap: str = Field(default="localhost:9092", description="Kafka bootstrap servers.")
    kafka_client_id: str = "pathstream"
    kafka_security_protocol: SecurityProtocol = "PLAINTEXT"
    kafka_sasl_mechanism: SaslMechanism | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    kafka_ssl_keyfile_password: SecretStr | None = None
    kafka_ssl_check_hostname: bool = True
    kafka_session_timeout_ms: int = Field(
        default=10_000, ge=1_000, description="A consumer silent this long leaves its group."
    )
    kafka_heartbeat_interval_ms: int = Field(
        default=3_000, ge=100, description="How often a consumer tells its group it is alive."
    )
    kafka_max_poll_interval_ms: int = Field(
        default=300_000,
        ge=500,  # twice the keep-alive poll (shared/bus/delivery.py); below 300 s only for drills
        description="Longest time one message may take to handle before its consumer is taken out "
        "of the group and the message goes to another member.",
    )
    kafka_request_timeout_ms: int = Field(
        default=40_000,
        ge=1_000,
        description="How long a client waits for a broker's answer; a publish retries within it, "
        "so a broker that is back within this time loses no event.",
    )
    kafka_max_request_size: int = Field(
        default=1_048_576,
        ge=1_024,
        description="Largest event a producer sends, in bytes; keep it at or below the brokers' "
        "`message.max.bytes` (Apache Kafka's default is 1 MiB).",
    )
    kafka_max_event_bytes: int = Field(
        default=1_048_576,
        ge=1_024,
        description="Largest message a consumer handles, in bytes; a larger one is dead-lettered (with "
        "an excerpt) without being parsed. PathStream's producers never send more than "
        "PATHSTREAM_KAFKA_MAX_REQUEST_SIZE.",
    )
    kafka_rebalance_wait_s: float = Field(
        default=120.0,
        ge=0,
        description="On a rebalance, how long a worker waits for its in-flight message to finish and "
        "be committed before giving its partition up (the rest of the group waits as long).",
    )
    kafka_connect_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="How long a service keeps retrying to reach the brokers at start.",
    )
    kafka_topic_partitions: int = Field(
        default=12,
        ge=1,
        description="Partitions for topics PathStream creates (>= largest worker count).",
    )
    kafka_replication_factor: int = Field(default=1, ge=1)
    topic_prefix: str = Field(
        default="",
        pattern=r"^([A-Za-z0-9][A-Za-z0-9._-]*\.)?$",
        description="Prefix of every topic and consumer group, e.g. `prod.`, to share a cluster.",
    )

    # Consumers.
    handler_max_attempts: int = Field(
        default=3,
        ge=1,
        description="Attempts for a failing handler before the message goes to the DLQ.",
    )
    handler_retry_wait_s: float = Field(default=1.0, ge=0)
    handler_outage_max_wait_s: float = Field(
        default=30.0,
        gt=0,
        description="Longest pause between tries of a message while the database, brokers or store "
        "share are unreachable; such a message is tried until they are back, never dead-lettered.",
    )
    handler_graceful_timeout_s: float = Field(
        default=60.0,
        ge=0,
        description="On SIGTERM, how long a worker waits for its in-flight message before releasing it "
        "(its offset stays uncommitted, so another group member processes it).",
    )

    # Reporter and review API.
    report_outbox_poll_s: float = Field(
        default=5.0,
        gt=0,
        description="Seconds between the reporter's sweeps for unpublished report versions (amendments).",
    )
    api_max_body_bytes: int = Field(
        default=5_000_000, ge=1024, description="Largest request body the review API accepts (413 above)."
    )
    review_token: SecretStr | None = Field(
        default=None, description="Bearer token `pathstream review` acts with (`pathstream users token`)."
    )
    ui_cookie_secure: bool = Field(
        default=True,
        description="Mark the workstation's session cookie Secure (sent over HTTPS only); false only for "
        "plain-HTTP development without the hospital's TLS proxy.",
    )
    ui_session_hours: float = Field(
        default=8.0, gt=0, le=24 * 7, description="How long a workstation sign-in lasts (hours)."
    )

    # Studies, orders and report delivery (issue 20).
    study_settle_s: float = Field(
        default=3600.0,
        gt=0,
        description=(
            "A study without a laboratory order closes its slide set this many seconds after its last "
            "slide arrived (and every slide is complete or failed); its first report is issued then."
        ),
    )
    lab_name: str = Field(
        default="Pathology laboratory",
        min_length=1,
        max_length=200,
        description="The performing laboratory named in reports (FHIR performer, HL7 v2 MSH-4).",
    )
    lab_id: str = Field(
        default="PATHSTREAM",
        min_length=1,
        max_length=64,
        description="The laboratory's facility id (HL7 v2 MSH-4 / FHIR Organization identifier).",
    )
    order_mllp_host: str = Field(
        default="127.0.0.1", description="Interface the reporter listens on for HL7 v2 orders (MLLP)."
    )
    order_mllp_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="Port for HL7 v2 orders (OML^O21/O33, ORM^O01) over MLLP; unset: no listener.",
    )
    lis_mllp_host: str | None = Field(
        default=None, description="The LIS's MLLP host for ORU^R01 reports; unset: no HL7 v2 is sent."
    )
    lis_mllp_port: int = Field(default=2575, ge=1, le=65535, description="The LIS's MLLP port.")
    lis_receiving_application: str = Field(default="LIS", max_length=64, description="ORU MSH-5.")
    lis_receiving_facility: str = Field(default="HOSPITAL", max_length=64, description="ORU MSH-6.")
    lis_ack_timeout_s: float = Field(
        default=30.0, gt=0, description="Seconds to wait for the LIS's ACK before the send counts as failed."
    )
    lis_retry_max_s: float = Field(
        default=300.0, gt=0, description="Longest back-off between ORU delivery attempts to the LIS."
    )

    # Logging.
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto",
        description="`auto`: readable lines on a terminal, JSON otherwise and always for services "
        "(`serve`, `watch`, `api serve`); `json` or `console` to force one.",
    )

    @field_validator("allowed_roots", mode="before")
    @classmethod
    def _split_roots(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if not text:
                return []
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("database_url")
    @classmethod
    def _normalise_url(cls, value: str) -> str:
        return normalise_database_url(value) if value else value

    @model_validator(mode="after")
    def _fill_defaults_and_check(self) -> PathStreamSettings:
        data_dir = self.data_dir.expanduser()
        object.__setattr__(self, "data_dir", data_dir)
        if not self.database_url:
            object.__setattr__(self, "database_url", f"sqlite:///{data_dir / 'pathstream.db'}")
        if not self.store_root:
            object.__setattr__(self, "store_root", str(data_dir / "stores"))
        if not self.artifact_root:
            object.__setattr__(self, "artifact_root", str(data_dir / "artifacts"))
        if not self.allowed_roots:
            object.__setattr__(self, "allowed_roots", [str(data_dir)])
        self._check_kafka()
        return self

    def _check_kafka(self) -> None:
        uses_sasl = self.kafka_security_protocol.startswith("SASL_")
        if uses_sasl and self.kafka_sasl_mechanism is None:
            raise ValueError(
                f"PATHSTREAM_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                "PATHSTREAM_KAFKA_SASL_MECHANISM (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or GSSAPI)."
            )
        if not uses_sasl and self.kafka_sasl_mechanism is not None:
            raise ValueError(
                "PATHSTREAM_KAFKA_SASL_MECHANISM is set but PATHSTREAM_KAFKA_SECURITY_PROTOCOL is "
                f"{self.kafka_security_protocol}; use SASL_SSL (or SASL_PLAINTEXT) to authenticate."
            )
        if self.kafka_sasl_mechanism in _PASSWORD_MECHANISMS and (
            not self.kafka_sasl_username or self.kafka_sasl_password is None
        ):
            raise ValueError(
                f"SASL mechanism {self.kafka_sasl_mechanism} needs PATHSTREAM_KAFKA_SASL_USERNAME and "
                "PATHSTREAM_KAFKA_SASL_PASSWORD."
            )
        if self.kafka_heartbeat_interval_ms >= self.kafka_session_timeout_ms:
            raise ValueError(
                f"PATHSTREAM_KAFKA_HEARTBEAT_INTERVAL_MS ({self.kafka_heartbeat_interval_ms}) must be "
                f"below PATHSTREAM_KAFKA_SESSION_TIMEOUT_MS ({self.kafka_session_timeout_ms}); "
                "a third of it is usual."
            )
        if (self.kafka_ssl_certfile is None) != (self.kafka_ssl_keyfile is None):
            raise ValueError(
                "Mutual TLS needs both PATHSTREAM_KAFKA_SSL_CERTFILE and PATHSTREAM_KAFKA_SSL_KEYFILE."
            )

    @property
    def uses_tls(self) -> bool:
        """True when connections to Kafka are encrypted (SSL or SASL_SSL)."""
        return self.kafka_security_protocol in ("SSL", "SASL_SSL")

    def topic(self, name: str) -> str:
        """Return the concrete topic name for a base name from `pathstream.shared.topics` (prefix applied)."""
        return f"{self.topic_prefix}{name}"

    def describe(self) -> dict[str, str]:
        """Return every setting as `PATHSTREAM_*` name -> printable value, secrets masked."""
        out: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                shown = "***"
            elif name == "database_url":
                shown = mask_database_url(value)
            elif isinstance(value, list):
                shown = ",".join(str(v) for v in value)
            else:
                shown = "" if value is None else str(value)
            out[f"PATHSTREAM_{name.upper()}"] = shown
        return out


@lru_cache(maxsize=1)
def get_settings() -> PathStreamSettings:
    """Return the process-wide settings, read once from the environment."""
    return PathStreamSettings()
