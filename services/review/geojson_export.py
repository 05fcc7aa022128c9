"""A slide's LNs as QuPath-importable GeoJSON: contours, scores, labels and CAM lesion regions.

One Feature per counted LN (class `Lymph node`, name = ln_id; the pathologist's contour when there
is one) with the ESCNN score as a QuPath measurement and PathStream's fields under
`properties.pathstream`; one Feature per CAM lesion region (class `Tumor`), naming its LN. Feature
ids derive from the ln_id, so an edited file imported back (`Review.import_geojson` in
`amendments.py`) finds its LNs again even if a pathologist renamed them.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pathstream.shared.db.models import LymphNode
from pathstream.shared.qupath import feature

LN_CLASS = "Lymph node"
LESION_CLASS = "Tumor"
KIND_LN = "lymph_node"
KIND_LESION = "lesion"
_FEATURE_NAMESPACE = uuid.UUID("3d0c9a8e-6b1f-4e52-8f7d-2a9c4b5e1f60")


def ln_feature_id(ln_id: str) -> str:
    """The stable GeoJSON feature id of LN `ln_id`."""
    return str(uuid.uuid5(_FEATURE_NAMESPACE, ln_id))


def slide_feature_collection(session: Session, slide_id: str) -> dict[str, Any]:
    """GeoJSON FeatureCollection (level-0 px, y down) of `slide_id`'s LNs that a pathologist has
    not removed, ordered by LN index."""
    nodes = session.scalars(
        select(LymphNode)
        .where(LymphNode.slide_id == slide_id, LymphNode.removed.is_(False))
        .order_by(LymphNode.index, LymphNode.ln_id)
    ).all()
    features: list[dict[str, Any]] = []
    for node in nodes:
        label = node.effective_label
        measurements = {"Area um^2": round(node.area_um2, 1)}
        if node.score is not None:
            measurements["ESCNN score"] = round(node.score, 6)
        features.append(
            feature(
                [tuple(p) for p in node.effective_contour],
                LN_CLASS,
                node.ln_id,
                measurements=measurements,
                properties={
                    "pathstream": {
                        "kind": KIND_LN,
                        "ln_id": node.ln_id,
                        "index": node.index,
                        "label": None if label is None else label.value,
                        "model_label": None if node.label is None else node.label.value,
                        "review_label": None if node.review_label is None else node.review_label.value,
                        "score": node.score,
                        "model_version": node.model_version,
                        "heatmap_uri": node.heatmap_uri,
                    }
                },
                object_id=ln_feature_id(node.ln_id),
            )
        )
        for index, polygon in enumerate(node.lesion_polygons or []):
            features.append(
                feature(
                    [tuple(p) for p in polygon],
                    LESION_CLASS,
                    f"{node.ln_id} CAM region {index + 1}",
                    properties={"pathstream": {"kind": KIND_LESION, "ln_id": node.ln_id}},
                    object_id=str(uuid.uuid5(_FEATURE_NAMESPACE, f"{node.ln_id}/lesion/{index}")),
                )
            )
    return {"type": "FeatureCollection", "features": features}
