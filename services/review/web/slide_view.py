"""What the slide viewer draws: the slide's size and resolution, and per LN its outline (level-0 px),
label (model's or pathologist's), score, lesion polygons and heatmap; for a smear, its ROIs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from pathstream.services.reporter.study_view import marrow_result_view, study_result
from pathstream.shared.allowed_roots import check_allowed
from pathstream.shared.db.models import AuditEntry, LymphNode, MarrowResult, Slide
from pathstream.shared.errors import ErrorCode, PathStreamError


def _unknown(what: str) -> PathStreamError:
    return PathStreamError(ErrorCode.UNKNOWN_ENTITY, f"There is no {what}.")


def slide_view(sessions: sessionmaker[Session], slide_id: str, base: str) -> dict[str, Any]:
    """The viewer's data for `slide_id`, URLs under `base` (the workstation API's path); LNs sorted
    by index, each with `source` "model" or "pathologist" (who decided its label or outline)."""
    with sessions() as session:
        slide = session.get(Slide, slide_id)
        if slide is None:
            raise _unknown(f"slide {slide_id}")
        result = study_result(session, slide.study_id)
        line = next(s for s in result["slides"] if s["slide_id"] == slide_id)
        by_id = {ln["ln_id"]: ln for ln in line["lns"]}
        nodes = session.scalars(
            select(LymphNode)
            .where(LymphNode.slide_id == slide_id, LymphNode.removed.is_(False))
            .order_by(LymphNode.index, LymphNode.ln_id)
        ).all()
        revisions = dict(
            session.execute(
                select(AuditEntry.entity_id, func.max(AuditEntry.id))
                .where(AuditEntry.study_id == slide.study_id, AuditEntry.entity_type == "lymph_node")
                .group_by(AuditEntry.entity_id)
            ).all()
        )
        lns = []
        for node in nodes:
            shown = by_id.get(node.ln_id, {})
            reviewed = (
                node.review_label is not None or node.review_contour is not None or node.added_by_review
            )
            lns.append(
                {
                    **shown,
                    "contour": node.effective_contour,
                    "bbox": node.bbox,
                    "area_um2": node.area_um2,
                    "lesions": node.lesion_polygons or [],
                    "source": "pathologist" if reviewed else "model",
                    "reviewed_by": node.reviewed_by,
                    # What an edit sends as `expected_revision`: the LN's latest audit entry (0: none).
                    "revision": revisions.get(node.ln_id, 0),
                    "heatmap_url": f"{base}/lymph-nodes/{node.ln_id}/heatmap.png"
                    if node.heatmap_uri
                    else None,
                }
            )
        marrow = marrow_result_view(session.get(MarrowResult, slide_id))
        if marrow is not None:
            marrow["rois"] = [
                {**roi, "osm_url": f"{base}/slides/{slide_id}/rois/{roi['index']}/occlusion.png"}
                if roi.get("osm_uri")
                else roi
                for roi in marrow["rois"]
            ]
        return {
            "slide_id": slide_id,
            "study_id": slide.study_id,
            "report_version": result["report_version"],
            "specimen": line["specimen"],
            "status": line["status"],
            "failure": line["failure"],
            "width_px": slide.width_px,
            "height_px": slide.height_px,
            "mpp_x": slide.mpp_x,
            "mpp_y": slide.mpp_y,
            "dzi_url": f"{base}/slides/{slide_id}/tiles.dzi" if slide.uri else None,
            "counts": {k: line[k] for k in ("positive", "negative", "itc", "pn_category", "ln_count")},
            "lns": lns,
            "marrow": marrow,
        }


def heatmap_path(sessions: sessionmaker[Session], ln_id: str, artifact_roots: list[str]) -> Path:
    """The CAM heatmap PNG of `ln_id`, checked to lie under the artifact root."""
    with sessions() as session:
        node = session.get(LymphNode, ln_id)
        if node is None or not node.heatmap_uri:
            raise _unknown(f"heatmap for LN {ln_id}")
        return _existing(check_allowed(node.heatmap_uri, artifact_roots, what="heatmap"), f"LN {ln_id}")


def occlusion_path(
    sessions: sessionmaker[Session], slide_id: str, index: int, artifact_roots: list[str]
) -> Path:
    """The occlusion-map PNG of ROI `index` of smear `slide_id`, checked to lie under the artifact root."""
    with sessions() as session:
        result = session.get(MarrowResult, slide_id)
        rois = [] if result is None else [r for r in result.rois if r.get("index") == index]
        if not rois or not rois[0].get("osm_uri"):
            raise _unknown(f"occlusion map for ROI {index} of slide {slide_id}")
        uri = rois[0]["osm_uri"]
    return _existing(check_allowed(uri, artifact_roots, what="occlusion map"), f"ROI {index} of {slide_id}")


def _existing(location: str, what: str) -> Path:
    path = Path(location)
    if not path.is_file():
        raise PathStreamError(
            ErrorCode.UNKNOWN_ENTITY,
            f"The image of {what} is recorded at {path}, which no longer exists.",
            hint="Artifacts are kept under PATHSTREAM_ARTIFACT_ROOT; reprocess the slide to draw it again.",
        )
    return path
