"""A study's current report as plain JSON: what `pathstream run`, the review CLI and the API show."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pathstream.services.reporter.staging import pn_category
from pathstream.services.reporter.store.report_inputs import load_study_inputs
from pathstream.services.reporter.summary import summarise
from pathstream.services.reporter.versions import latest_report, version_status
from pathstream.shared.db.models import LymphNode, MarrowResult, Slide


def study_result(session: Session, study_id: str) -> dict[str, Any]:
    """The study's current report as plain JSON: `status` of the latest issued version ("in
    progress" before the first, with `waiting_for` saying why), study and per-slide `positive`
    (micro/macro), `negative`, `itc`, `pn_category` (None before any LN was examined), slide status
    and failure, per-LN `lns` with `score` (0-1), `label` (effective: the pathologist's when
    reviewed), largest deposit (mm, class, who measured it) and heatmap path, and
    for a bone-marrow smear its `marrow` call (case call, probabilities, ROIs with quality scores
    and occlusion-map paths; None for other slides)."""
    summary = summarise(load_study_inputs(session, study_id))
    latest = latest_report(session, study_id)
    findings = {ln.ln_id: ln for ln in summary.lymph_nodes}
    slides = []
    for line in summary.slides:
        slide = session.get(Slide, line.slide_id)
        nodes = session.scalars(
            select(LymphNode)
            .where(LymphNode.slide_id == line.slide_id, LymphNode.removed.is_(False))
            .order_by(LymphNode.index)
        ).all()
        examined = line.positive + line.negative + line.itc
        slides.append(
            {
                "slide_id": line.slide_id,
                "specimen": line.specimen,
                "status": line.status,
                "ln_count": line.ln_count,
                "positive": line.positive,
                "negative": line.negative,
                "itc": line.itc,
                "pn_category": pn_category(line.positive, line.itc).value if examined else None,
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
                        **_deposit(findings.get(n.ln_id)),
                    }
                    for n in nodes
                ],
            }
        )
    return {
        "study_id": study_id,
        "report_version": None if latest is None else latest.version,
        # The latest issued version's status; "in progress" before the first report.
        "status": "in progress" if latest is None else version_status(latest),
        "ready": summary.ready,
        "waiting_for": list(summary.waiting_for),
        "signed_out_by": summary.signed_out_by,
        "signed_out_at": summary.signed_out_at,
        "positive": summary.positive,
        "negative": summary.negative,
        "itc": summary.counts.itc,
        "micro": summary.counts.micro,
        "macro": summary.counts.macro,
        "unmeasured": summary.counts.unmeasured,
        "examined": summary.examined,
        "pn_category": None if summary.pn_category is None else summary.pn_category.value,
        "below_ajcc_minimum": summary.below_ajcc_minimum,
        "slides_failed": summary.slides_failed,
        "model_versions": list(summary.model_versions),
        "slides": slides,
    }


def _deposit(finding: Any) -> dict[str, Any]:
    if finding is None:
        return {"deposit_mm": None, "deposit_class": None, "deposit_measured_by": None}
    return {
        "deposit_mm": finding.deposit_mm,
        "deposit_class": None if finding.deposit_class is None else finding.deposit_class.value,
        "deposit_measured_by": finding.deposit_measured_by,
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
