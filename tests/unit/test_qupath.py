"""QuPath GeoJSON: what PathStream writes reads back; QuPath's own export shapes are understood."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.qupath import feature, read_annotations, write_feature_collection


def test_written_features_read_back_with_class_and_closed_rings(tmp_path: Path) -> None:
    path = tmp_path / "out" / "lns.geojson"
    polygon = [(10, 10), (200, 12), (180, 150)]
    write_feature_collection(path, [feature(polygon, "Lymph node", "S1_ln000", {"Area um^2": 12.5})])
    data = json.loads(path.read_text())
    ring = data["features"][0]["geometry"]["coordinates"][0]
    assert ring[0] == ring[-1] == [10, 10] and len(ring) == 4
    props = data["features"][0]["properties"]
    assert props["objectType"] == "annotation" and props["classification"]["name"] == "Lymph node"
    (annotation,) = read_annotations(path)
    assert annotation.outer[:3] == [(10.0, 10.0), (200.0, 12.0), (180.0, 150.0)]
    assert annotation.classification == "Lymph node" and annotation.name == "S1_ln000"
    assert not list(path.parent.glob("*.partial"))


def test_qupath_exports_with_holes_multipolygons_and_points(tmp_path: Path) -> None:
    square = [[0, 0], [100, 0], [100, 100], [0, 100], [0, 0]]
    hole = [[40, 40], [60, 40], [60, 60], [40, 60], [40, 40]]
    features = [
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [square, hole]}, "properties": {}},
        {
            "type": "Feature",
            "geometry": {"type": "MultiPolygon", "coordinates": [[square], [square]]},
            "properties": {"classification": {"name": "Positive", "colorRGB": -1}},
        },
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [1, 2]}, "properties": {}},
    ]
    path = tmp_path / "export.geojson"
    path.write_text(json.dumps(features))  # QuPath 0.2 writes a bare list
    annotations = read_annotations(path)
    assert len(annotations) == 3
    assert annotations[0].holes and annotations[0].classification is None
    assert {a.classification for a in annotations[1:]} == {"Positive"}


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("{not json", "cannot be read as JSON"),
        ('{"type": "FeatureCollection"}', "no list of features"),
        (
            '[{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1]]]}}]',
            "malformed",
        ),
    ],
)
def test_broken_files_name_the_problem(tmp_path: Path, content: str, why: str) -> None:
    path = tmp_path / "bad.geojson"
    path.write_text(content)
    with pytest.raises(PathStreamError, match=why) as info:
        read_annotations(path)
    assert info.value.code == ErrorCode.INVALID_CONFIGURATION
