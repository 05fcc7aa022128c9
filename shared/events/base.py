"""The event base class and the validated field types every event shares.

Wire format: JSON of the pydantic model. Readers are tolerant (unknown fields are ignored, so a
producer on a newer minor schema version can add optional fields) but strict on every known field.
A different major `schema_version` is refused.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, ClassVar
from uuid import UUID, uuid4

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from pathstream.shared.polygons import polygon_area
from pathstream.shared.topics import Topic

SCHEMA_VERSION = "1.0"
_SUPPORTED_MAJOR = SCHEMA_VERSION.split(".")[0]

_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
_SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")
MAX_CONTOUR_POINTS = 200_000


def _check_identifier(value: str) -> str:
    if not value:
        raise ValueError("must not be empty")
    if not _ID_PATTERN.match(value):
        raise ValueError(
            "must be 1-200 characters of letters, digits, '.', '_' or '-', starting with a letter or "
            "digit (ids become file and store names, so no slashes or spaces)"
        )
    return value


def _check_sha256(value: str) -> str:
    lowered = value.strip().lower()
    if not _SHA256_PATTERN.match(lowered):
        raise ValueError("must be 64 hexadecimal characters (the file's SHA-256 digest)")
    return lowered


def _check_uri(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    if "\x00" in value:
        raise ValueError("must not contain NUL bytes")
    return value


def _check_contour(points: list[tuple[int, int]]) -> list[tuple[int, int]]:
    if len(points) < 3:
        raise ValueError(f"a contour needs at least 3 points, got {len(points)}")
    if len(points) > MAX_CONTOUR_POINTS:
        raise ValueError(f"a contour may have at most {MAX_CONTOUR_POINTS} points, got {len(points)}")
    if any(x < 0 or y < 0 for x, y in points):
        raise ValueError("contour coordinates are level-0 pixels and must not be negative")
    if polygon_area(points) == 0:
        raise ValueError("contour encloses no area (all points coincide or lie on one line)")
    return points


def _check_probability(value: float) -> float:
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"must be a probability in [0, 1], got {value}")
    return value


Identifier = Annotated[str, AfterValidator(_check_identifier)]
"""A non-empty id safe to use as a file, store and Kafka key name."""

Sha256 = Annotated[str, AfterValidator(_check_sha256)]
"""A lowercase hex SHA-256 digest (upper case is accepted and lowered)."""

Uri = Annotated[str, Field(max_length=4096), AfterValidator(_check_uri)]
"""A local path or a URI (file://, s3://, ...), not empty."""

ModelVersion = Annotated[str, Field(min_length=1, max_length=200)]
"""The model that made a result: name and checkpoint hash, e.g. `escnn-resnet50@sha256:9f2c...`."""

Probability = Annotated[float, AfterValidator(_check_probability)]
"""A float in [0, 1]."""

Point = tuple[Annotated[int, Field(ge=0)], Annotated[int, Field(ge=0)]]
"""(x, y) in level-0 pixels of the source slide."""

Contour = Annotated[list[Point], AfterValidator(_check_contour)]
"""A simple polygon of at least 3 (x, y) level-0 pixel vertices enclosing a non-zero area."""


class Specimen(StrEnum):
    """What kind of specimen a slide holds, which decides the services that act on it."""

    LYMPH_NODE = "lymph_node"
    BONE_MARROW = "bone_marrow"


class BBox(BaseModel):
    """An axis-aligned box in level-0 pixels: top-left corner and size."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    x: int = Field(ge=0)
    y: int = Field(ge=0)
    width: int = Field(gt=0)
    height: int = Field(gt=0)

    def contains(self, points: list[Point]) -> bool:
        """True when every (x, y) lies inside the box, edges included."""
        return all(
            self.x <= px <= self.x + self.width and self.y <= py <= self.y + self.height for px, py in points
        )


def utc_now() -> datetime:
    """Return the current time as a timezone-aware UTC datetime."""
    return datetime.now(UTC)


class Event(BaseModel):
    """Fields every PathStream event carries. Subclasses set `TOPIC` and may override `kafka_key`."""

    model_config = ConfigDict(frozen=True, extra="ignore", allow_inf_nan=False)

    TOPIC: ClassVar[Topic]

    event_id: UUID = Field(default_factory=uuid4, description="Unique id of this event (idempotency key).")
    schema_version: str = Field(default=SCHEMA_VERSION, pattern=r"^\d+\.\d+$")
    occurred_at: AwareDatetime = Field(default_factory=utc_now)

    @field_validator("occurred_at")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        # One time zone on the wire keeps "newer event wins" comparisons right in every store.
        return value.astimezone(UTC)

    @model_validator(mode="after")
    def _check_major_version(self) -> Event:
        major = self.schema_version.split(".")[0]
        if major != _SUPPORTED_MAJOR:
            raise ValueError(
                f"schema_version {self.schema_version} is not supported by this PathStream "
                f"(major version {_SUPPORTED_MAJOR} expected); upgrade the consumer or the producer"
            )
        return self

    def kafka_key(self) -> bytes:
        """Return the Kafka message key: the slide id, so one slide's events stay in order.

        Events without a `slide_id` field must override this.
        """
        slide_id = self.__dict__.get("slide_id")
        if slide_id is None:
            raise NotImplementedError(f"{type(self).__name__} has no slide_id; override kafka_key()")
        return str(slide_id).encode()
