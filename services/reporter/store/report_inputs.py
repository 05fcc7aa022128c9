"""What a study report is computed from: per-slide LN counts and per-LN effective findings.

The label that counts is `LymphNode.effective_label` (the pathologist's over the model's); LNs a
pathologist removed do not count. Each node's largest deposit is the pathologist's size when set,
else measured from its lesion polygons at the slide's resolution; its class (ITC / micro / macro)
follows from `services/reporter/staging.py`. The reporter turns these inputs into report versions;
comparing them before and after applying an event shows whether it changed anything.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pathstream.services.reporter.staging import DepositClass, NodeCounts, deposit_class, largest_deposit_mm
from pathstream.shared.db.models import LymphNode, MarrowResult, Slide, SlideStatus, Study, StudyOrder
from pathstream.shared.db.timestamps import stored_utc
from pathstream.shared.events import LnLabel, MarrowClass, Specimen


@dataclass(frozen=True)
class LymphNodeFinding:
    """One counted LN: its score and effective label (None while unscored)."""

    ln_id: str
    slide_id: str
    index: int
    score: float | None
    label: LnLabel | None
    model_version: str | None
    reviewed: bool
    deposit_mm: float | None = None
    """Largest dimension of the largest deposit (mm): the pathologist's, else from the polygons."""
    deposit_measured_by: str | None = None
    """"pathologist", "model" (lesion polygons) or None (not measured)."""

    @property
    def deposit_class(self) -> DepositClass | None:
        """None while unscored; otherwise what `staging.deposit_class` makes of label and size."""
        return deposit_class(self.label, self.deposit_mm)


@dataclass(frozen=True)
class MarrowFinding:
    """One smear's case-level call (the marrow service's latest classification)."""

    slide_id: str
    case_call: MarrowClass
    probabilities: tuple[tuple[str, float], ...]
    """(class, case probability) in the model's class order."""
    roi_count: int
    model_version: str


@dataclass(frozen=True)
class SlideInputs:
    """One slide's state and LN counts."""

    slide_id: str
    specimen: Specimen | None
    status: SlideStatus
    ln_count: int | None
    ln_scored: int
    ln_positive: int
    ln_negative: int
    counts: NodeCounts = field(default_factory=NodeCounts)
    """The slide's scored nodes by class (ITC nodes are in neither `ln_positive` nor `ln_negative`)."""
    detector_model_version: str | None = None


@dataclass(frozen=True)
class OrderInputs:
    """What the laboratory's order says about the study (no order: None in `StudyInputs`)."""

    patient_id: str
    patient_id_system: str | None
    placer_order_number: str | None
    placer_system: str | None
    specimen_id: str | None
    specimen: str | None
    expected_slide_ids: tuple[str, ...]
    expected_slide_count: int | None
    ordered_at: str | None
    collected_at: str | None
    ordering_provider: str | None


@dataclass(frozen=True)
class StudyInputs:
    """All slides of a study with their counted LNs, ordered by slide id and LN index."""

    study_id: str
    slides: tuple[SlideInputs, ...]
    lymph_nodes: tuple[LymphNodeFinding, ...]
    marrow: tuple[MarrowFinding, ...] = ()
    """Case calls of the study's bone-marrow smears, by slide id."""
    order: OrderInputs | None = None
    slides_closed_by: str | None = None
    """Without an order: 'run' or 'settled' once the slide set was declared complete."""
    signed_out_by: str | None = None
    signed_out_at: str | None = None
    first_scanned_at: str | None = None
    """When the first of the study's slides became known (the report's effective time without an
    order's collection time), ISO 8601 UTC."""

    @property
    def counts(self) -> NodeCounts:
        """Scored nodes of every slide by class."""
        return NodeCounts.of(ln.deposit_class for ln in self.lymph_nodes)

    @property
    def ln_positive(self) -> int:
        """Nodes counted positive for pN over all slides (micro / macro / unmeasured; not ITC)."""
        return self.counts.positive

    @property
    def ln_negative(self) -> int:
        """Nodes without tumour over all slides."""
        return self.counts.negative


def load_study_inputs(session: Session, study_id: str) -> StudyInputs:
    """Read the report inputs of `study_id` (empty when the study is unknown).

    A slide's `ln_count` is the detector's count adjusted by review: LNs a pathologist removed are
    subtracted and LNs they added are added, so a reviewed slide is still complete.
    """
    slides = session.scalars(select(Slide).where(Slide.study_id == study_id).order_by(Slide.slide_id)).all()
    removed = dict(
        session.execute(
            select(LymphNode.slide_id, func.count())
            .where(
                LymphNode.study_id == study_id,
                LymphNode.removed.is_(True),
                LymphNode.added_by_review.is_(False),
            )
            .group_by(LymphNode.slide_id)
        ).all()
    )
    added = dict(
        session.execute(
            select(LymphNode.slide_id, func.count())
            .where(
                LymphNode.study_id == study_id,
                LymphNode.removed.is_(False),
                LymphNode.added_by_review.is_(True),
            )
            .group_by(LymphNode.slide_id)
        ).all()
    )
    nodes = session.scalars(
        select(LymphNode)
        .where(LymphNode.study_id == study_id, LymphNode.removed.is_(False))
        .order_by(LymphNode.slide_id, LymphNode.index, LymphNode.ln_id)
    ).all()
    mpp = {s.slide_id: s.mpp_x for s in slides}
    findings = tuple(_finding(n, mpp.get(n.slide_id)) for n in nodes)
    by_slide: dict[str, list[LymphNodeFinding]] = defaultdict(list)
    for finding in findings:
        by_slide[finding.slide_id].append(finding)
    slide_inputs = []
    for slide in slides:
        own = by_slide[slide.slide_id]
        counts = NodeCounts.of(f.deposit_class for f in own)
        slide_inputs.append(
            SlideInputs(
                slide_id=slide.slide_id,
                specimen=slide.specimen,
                status=slide.status,
                ln_count=None
                if slide.ln_count is None
                else slide.ln_count - removed.get(slide.slide_id, 0) + added.get(slide.slide_id, 0),
                ln_scored=sum(1 for f in own if f.label is not None),
                ln_positive=counts.positive,
                ln_negative=counts.negative,
                counts=counts,
                detector_model_version=slide.detector_model_version,
            )
        )
    marrow = tuple(
        MarrowFinding(
            slide_id=m.slide_id,
            case_call=m.case_call,
            probabilities=tuple((str(k), float(v)) for k, v in m.case_probabilities.items()),
            roi_count=len(m.rois),
            model_version=m.model_version,
        )
        for m in session.scalars(
            select(MarrowResult).where(MarrowResult.study_id == study_id).order_by(MarrowResult.slide_id)
        )
    )
    study = session.get(Study, study_id)
    first_seen = min((s.created_at for s in slides), default=None)
    return StudyInputs(
        study_id=study_id,
        slides=tuple(slide_inputs),
        lymph_nodes=findings,
        marrow=marrow,
        order=_order_inputs(session.get(StudyOrder, study_id)),
        slides_closed_by=None if study is None else study.slides_closed_by,
        signed_out_by=None if study is None else study.signed_out_by,
        signed_out_at=None if study is None or study.signed_out_at is None else _iso(study.signed_out_at),
        first_scanned_at=None if first_seen is None else _iso(first_seen),
    )


def _iso(moment: datetime) -> str:
    return stored_utc(moment).isoformat()


def _finding(node: LymphNode, mpp: float | None) -> LymphNodeFinding:
    label = node.effective_label
    measured_by: str | None = None
    size: float | None = None
    if node.review_deposit_mm is not None:
        size, measured_by = float(node.review_deposit_mm), "pathologist"
    elif label == LnLabel.POSITIVE and node.lesion_polygons and mpp:
        size = largest_deposit_mm(node.lesion_polygons, mpp)
        measured_by = None if size is None else "model"
    return LymphNodeFinding(
        ln_id=node.ln_id,
        slide_id=node.slide_id,
        index=node.index,
        score=node.score,
        label=label,
        model_version=node.model_version,
        reviewed=node.label_reviewed or node.review_deposit_mm is not None,
        deposit_mm=None if size is None else round(size, 3),
        deposit_measured_by=measured_by,
    )


def _order_inputs(order: StudyOrder | None) -> OrderInputs | None:
    if order is None:
        return None
    return OrderInputs(
        patient_id=order.patient_id,
        patient_id_system=order.patient_id_system,
        placer_order_number=order.placer_order_number,
        placer_system=order.placer_system,
        specimen_id=order.specimen_id,
        specimen=None if order.specimen is None else order.specimen.value,
        expected_slide_ids=tuple(order.expected_slide_ids or ()),
        expected_slide_count=order.expected_slide_count,
        ordered_at=None if order.ordered_at is None else _iso(order.ordered_at),
        collected_at=None if order.collected_at is None else _iso(order.collected_at),
        ordering_provider=order.ordering_provider,
    )
