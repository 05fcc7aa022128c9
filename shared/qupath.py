"""QuPath-compatible GeoJSON: LN contours out to pathologists, annotations back in for training.

QuPath (0.2 to 0.5) imports and exports a GeoJSON FeatureCollection (or a bare list of Features)
whose Features carry `properties.objectType` ("annotation"), `properties.classification`
(`{"name", "color"}`) and free `measurements`. Coordinates are level-0 pixels of the slide, y down,
rings closed. PathStream writes polygons that way and reads Polygon and MultiPolygon features back
(outer rings and holes), whatever else a QuPath project put in the file.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pathstream.shared.atomic_files import write_bytes_atomically
from pathstream.shared.errors import ErrorCode, PathStreamError

Ring = list[tuple[float, float]]

CLASS_COLOURS = {
    "Lymph node": (0, 160, 220),
    "Positive": (200, 0, 0),
    "Negative": (0, 150, 0),
    "Tumor": (200, 0, 0),
}


@dataclass(frozen=True)
class Annotation:
    """One polygon annotation: outer ring, holes, class name (None when unclassified), properties."""

    outer: Ring
    holes: list[Ring] = field(default_factory=list)
    classification: str | None = None
    name: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)


def _closed(ring: list[tuple[int, int]] | Ring) -> list[list[float]]:
    points: list[list[float]] = [[x, y] for x, y in ring]
    if points and points[0] != points[-1]:
        points.append(list(points[0]))
    return points


def feature(
    polygon: list[tuple[int, int]],
    classification: str,
    name: str,
    measurements: dict[str, float] | None = None,
    properties: dict[str, Any] | None = None,
    object_id: str | None = None,
) -> dict[str, Any]:
    """One QuPath annotation Feature for a simple polygon of level-0 (x, y) vertices."""
    colour = CLASS_COLOURS.get(classification, (128, 128, 128))
    return {
        "type": "Feature",
        "id": object_id or str(uuid.uuid4()),
        "geometry": {"type": "Polygon", "coordinates": [_closed(polygon)]},
        "properties": {
            "objectType": "annotation",
            "name": name,
            "classification": {"name": classification, "color": list(colour)},
            "isLocked": False,
            "measurements": measurements or {},
            **(properties or {}),
        },
    }


def write_feature_collection(path: Path, features: list[dict[str, Any]]) -> None:
    """Write a FeatureCollection atomically: readers see the old file or the new one, never half."""
    write_bytes_atomically(path, json.dumps({"type": "FeatureCollection", "features": features}).encode())


def read_annotations(path: Path) -> list[Annotation]:
    """Every Polygon / MultiPolygon feature of a QuPath GeoJSON file (FeatureCollection, one
    Feature, or a list of Features). Other geometry types (points, lines) are skipped.

    Raises `PathStreamError(INVALID_CONFIGURATION)` naming the file when it is not such GeoJSON.
    """

    def bad(why: str) -> PathStreamError:
        return PathStreamError(
            ErrorCode.INVALID_CONFIGURATION,
            f"{path} is not usable QuPath GeoJSON: {why}.",
            hint="Export annotations from QuPath with File > Export objects as GeoJSON.",
        )

    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise bad("the file does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad(f"it cannot be read as JSON ({exc})") from None
    if isinstance(data, dict) and data.get("type") == "FeatureCollection":
        features = data.get("features")
    elif isinstance(data, dict) and data.get("type") == "Feature":
        features = [data]
    else:
        features = data
    if not isinstance(features, list):
        raise bad("it holds no list of features")
    annotations: list[Annotation] = []
    for index, item in enumerate(features):
        if not isinstance(item, dict):
            raise bad(f"feature {index} is not an object")
        geometry = item.get("geometry") or {}
        props = item.get("properties") or {}
        classification = props.get("classification")
        class_name = classification.get("name") if isinstance(classification, dict) else classification
        kind = geometry.get("type")
        polygons: Any
        if kind == "Polygon":
            polygons = [geometry.get("coordinates")]
        elif kind == "MultiPolygon":
            polygons = geometry.get("coordinates")
        else:
            continue
        try:
            for rings in polygons or []:
                parsed = [[(float(p[0]), float(p[1])) for p in ring] for ring in rings]
                if not parsed or len(parsed[0]) < 3:
                    raise ValueError("a polygon needs an outer ring of at least 3 points")
                annotations.append(
                    Annotation(
                        outer=parsed[0],
                        holes=parsed[1:],
                        classification=class_name,
                        name=props.get("name"),
                        properties=props,
                    )
                )
        except (TypeError, ValueError, IndexError) as exc:
            raise bad(f"feature {index} has malformed coordinates ({exc})") from None
    return annotations
