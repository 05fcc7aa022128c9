"""A study's current report as plain JSON: what `pathstream run`, the review CLI and the API show."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pathstream.services.reporter.staging import pn_category
from pathstream.services.reporter.store.report_inputs import load_study_inputs
from pathstream.services.reporter.summary import summarise
from pathstream.shared.db.models import LymphNode, MarrowResult, Slide, StudyReport


def study_result(session: Session, study_id: str) -> dict[str, Any]:
    """The study's current report as plain JSON: study and per-slide `positive`, `negative`,
    `pn_category` (None before any LN was examined), slide status and failure, per-LN `lns`
    with `score` (0-1), `label` (effective: the pathologist's when reviewed) and heatmap path, and
    for a bone-marrow smear its `marrow` call (case call, probabilities, ROIs with quality scores
    and occlusion-map paths; None for other slides)."""
    summary = summarise(load_study_inputs(session, study_id))
    version = session.scalar(
        select(StudyReport.version)
        .where(StudyReport.study_id == study_id)
        .order_by(StudyReport.version.desc())
    )
    slides = []
    for line in summary.slides:
        slide = session.get(Slide, line.slide_id)
        nodes = session.scalars(
            select(LymphNode)
            .where(LymphNode.slide_id == line.slide_id, LymphNode.removed.is_(False))
            .order_by(LymphNode.index)
        ).all()
        examined = line.positive + line.negative
        slides.append(
            {
                "slide_id": line.slide_id,
                "specimen": line.specimen,
                "status": line.status,
                "ln_count": line.ln_count,
                "positive": line.positive,
                "negative": line.negative,
                "pn_category": pn_category(line.positive) if examined else None,
                "failure": None
                if slide is None or slide.failure_code is None
                else {"code": slide.failure_code, "message": slide.failure_message},
                "marrow": marrow_result_view(session.get(MarrowResult, line.slide_id)),
                "lns": [
                    {
                        "ln_id": n.ln_id,
                        "index": n.index,
                        "score": n.score,
                        "label": _effective_label(n),
                        "screening_label": None if n.screening_label is None else n.screening_label.value,
                        "reviewed": n.label_reviewed,
                        "heatmap": n.heatmap_uri,
                    }
                    for n in nodes
                ],
            }
        )
    return {
        "study_id": study_id,
        "report_version": version,
        "status": summary.status,
        "positive": summary.positive,
        "negative": summary.negative,
        "examined": summary.examined,
        "pn_category": None if summary.pn_category is None else summary.pn_category.value,
        "below_ajcc_minimum": summary.below_ajcc_minimum,
        "slides_failed": summary.slides_failed,
        "model_versions": list(summary.model_versions),
        "slides": slides,
    }


def marrow_result_view(result: MarrowResult | None) -> dict[str, Any] | None:
    """A smear's stored call as JSON (call, class probabilities, model version, ROIs), or None."""
    if result is None:
        return None
    return {
        "case_call": result.case_call.value,
        "probabilities": result.case_probabilities,
        "model_version": result.model_version,
        "rois": result.rois,
    }


def _effective_label(node: LymphNode) -> str | None:
    label = node.effective_label
    return None if label is None else label.value
