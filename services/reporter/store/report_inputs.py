"""What a study report is computed from: per-slide LN counts and per-LN effective findings.

The label that counts is `LymphNode.effective_label` (the pathologist's over the model's); LNs a
pathologist removed do not count. The reporter turns these inputs into
report versions; comparing them before and after applying an event shows whether it changed
anything.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pathstream.shared.db.models import AuditEntry, LymphNode, MarrowResult, Slide, SlideStatus
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


@dataclass(frozen=True)
class StudyInputs:
    """All slides of a study with their counted LNs, ordered by slide id and LN index."""

    study_id: str
    slides: tuple[SlideInputs, ...]
    lymph_nodes: tuple[LymphNodeFinding, ...]
    amendments: int = 0
    """Pathologist amendments recorded for the study (audit entries)."""
    marrow: tuple[MarrowFinding, ...] = ()
    """Case calls of the study's bone-marrow smears, by slide id."""

    @property
    def ln_positive(self) -> int:
        """Positive LNs over all slides of the study."""
        return sum(s.ln_positive for s in self.slides)

    @property
    def ln_negative(self) -> int:
        """Negative LNs over all slides of the study."""
        return sum(s.ln_negative for s in self.slides)


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
    findings = tuple(
        LymphNodeFinding(
            ln_id=n.ln_id,
            slide_id=n.slide_id,
            index=n.index,
            score=n.score,
            label=n.effective_label,
            model_version=n.model_version,
            reviewed=n.label_reviewed,
        )
        for n in nodes
    )
    by_slide: dict[str, list[LymphNodeFinding]] = defaultdict(list)
    for finding in findings:
        by_slide[finding.slide_id].append(finding)
    slide_inputs = []
    for slide in slides:
        own = by_slide[slide.slide_id]
        slide_inputs.append(
            SlideInputs(
                slide_id=slide.slide_id,
                specimen=slide.specimen,
                status=slide.status,
                ln_count=None
                if slide.ln_count is None
                else slide.ln_count - removed.get(slide.slide_id, 0) + added.get(slide.slide_id, 0),
                ln_scored=sum(1 for f in own if f.label is not None),
                ln_positive=sum(1 for f in own if f.label == LnLabel.POSITIVE),
                ln_negative=sum(1 for f in own if f.label == LnLabel.NEGATIVE),
            )
        )
    amendments = session.scalar(
        select(func.count()).select_from(AuditEntry).where(AuditEntry.study_id == study_id)
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
    return StudyInputs(
        study_id=study_id,
        slides=tuple(slide_inputs),
        lymph_nodes=findings,
        amendments=amendments or 0,
        marrow=marrow,
    )
