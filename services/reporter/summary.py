"""A study's report content, computed from its report inputs (pure; no database, no transport).

Counts are of LNs with a label (the pathologist's when reviewed, else the model's); LNs a
pathologist removed are already left out of the inputs. Nodes are classed by their largest deposit
(staging.py): ITC nodes are examined but not counted positive, and an ITC-only study is pN0(i+).

A study is *ready* for its first report once its slide set is closed and every slide in it is
complete or failed. The set is closed by the laboratory's order (every expected slide id seen, or
as many slides as the order expects), or, without an order, by the embedded run that processed it
or by the reporter after `PATHSTREAM_STUDY_SETTLE_S` without a new slide. Which FHIR status a
version gets is decided where versions are recorded (versions.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from pathstream.services.reporter.staging import NodeCounts, below_ajcc_minimum, stage
from pathstream.services.reporter.store.report_inputs import (
    LymphNodeFinding,
    MarrowFinding,
    OrderInputs,
    SlideInputs,
    StudyInputs,
)
from pathstream.shared.db.models import SlideStatus
from pathstream.shared.events import PnCategory, Specimen


@dataclass(frozen=True)
class SlideSummary:
    """One slide's line in the report."""

    slide_id: str
    specimen: str | None
    status: str
    ln_count: int | None
    ln_scored: int
    positive: int
    negative: int
    itc: int = 0


@dataclass(frozen=True)
class StudySummary:
    """Everything a report version states about a study."""

    study_id: str
    ready: bool
    waiting_for: tuple[str, ...]
    slides: tuple[SlideSummary, ...]
    slide_count: int
    slides_complete: int
    slides_failed: int
    counts: NodeCounts
    pn_category: PnCategory | None
    below_ajcc_minimum: bool
    lymph_nodes: tuple[LymphNodeFinding, ...]
    models: tuple[tuple[str, str], ...]
    """(role, version) of every model that contributed: detector, escnn, marrow."""
    has_lymph_node_slides: bool
    marrow: tuple[MarrowFinding, ...] = ()
    order: OrderInputs | None = None
    signed_out_by: str | None = None
    signed_out_at: str | None = None
    effective_at: str | None = None
    """When the specimen was collected (the order's), else when its first slide became known."""

    @property
    def positive(self) -> int:
        """Nodes counted positive for pN (micro / macro / unmeasured)."""
        return self.counts.positive

    @property
    def negative(self) -> int:
        """Nodes without tumour."""
        return self.counts.negative

    @property
    def examined(self) -> int:
        """Every node with a call, ITC nodes included."""
        return self.counts.examined

    @property
    def model_versions(self) -> tuple[str, ...]:
        """The distinct model versions, sorted."""
        return tuple(sorted({version for _, version in self.models}))

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-able dict (what is stored with a report version)."""
        values = asdict(self)
        values["counts"] = {**asdict(self.counts), "positive": self.positive, "examined": self.examined}
        values["pn_category"] = None if self.pn_category is None else self.pn_category.value
        values["lymph_nodes"] = [
            {
                **asdict(ln),
                "label": None if ln.label is None else ln.label.value,
                "deposit_class": None if ln.deposit_class is None else ln.deposit_class.value,
            }
            for ln in self.lymph_nodes
        ]
        values["slides"] = [asdict(slide) for slide in self.slides]
        values["models"] = [list(m) for m in self.models]
        values["waiting_for"] = list(self.waiting_for)
        values["order"] = None if self.order is None else asdict(self.order)
        if self.order is not None:
            values["order"]["expected_slide_ids"] = list(self.order.expected_slide_ids)
        values["marrow"] = [
            {**asdict(m), "case_call": m.case_call.value, "probabilities": dict(m.probabilities)}
            for m in self.marrow
        ]
        # Counters a reader may compare against the previous version.
        values.update(positive=self.positive, negative=self.negative, examined=self.examined)
        return values

    def reader_content(self) -> dict[str, Any]:
        """What a reader of the report acts on: two versions with equal reader content are the same
        report (a repeated event, a confirmation that changed no call, a contour nudge)."""
        return {
            "slides": [(s.slide_id, s.status, s.ln_count) for s in self.slides],
            "counts": asdict(self.counts),
            "pn_category": None if self.pn_category is None else self.pn_category.value,
            "lymph_nodes": [
                (
                    ln.ln_id,
                    None if ln.label is None else ln.label.value,
                    None if ln.deposit_class is None else ln.deposit_class.value,
                    None if ln.deposit_mm is None else round(ln.deposit_mm, 2),
                    None if ln.score is None else round(ln.score, 3),
                )
                for ln in self.lymph_nodes
            ],
            "marrow": [(m.slide_id, m.case_call.value) for m in self.marrow],
            "order": None if self.order is None else asdict(self.order),
            "models": [list(m) for m in self.models],
        }


def slide_status(slide: SlideInputs) -> SlideStatus:
    """A slide's effective status: an LN slide is complete once all `ln_count` LNs have a label
    (in whatever order the detection and the scores arrived); a failure stays a failure."""
    if slide.status in (SlideStatus.FAILED, SlideStatus.COMPLETE):
        return slide.status
    if slide.ln_count is not None and slide.ln_scored >= slide.ln_count:
        return SlideStatus.COMPLETE
    return slide.status


def _slide_summary(slide: SlideInputs) -> SlideSummary:
    return SlideSummary(
        slide_id=slide.slide_id,
        specimen=None if slide.specimen is None else slide.specimen.value,
        status=slide_status(slide).value,
        ln_count=slide.ln_count,
        ln_scored=slide.ln_scored,
        positive=slide.counts.positive,
        negative=slide.counts.negative,
        itc=slide.counts.itc,
    )


def _waiting_for(inputs: StudyInputs, statuses: list[SlideStatus]) -> tuple[str, ...]:
    """What the study's first report still waits for (empty: ready)."""
    waiting: list[str] = []
    seen = {s.slide_id for s in inputs.slides}
    order = inputs.order
    if order is not None and order.expected_slide_ids:
        waiting += [
            f"slide {sid} (expected by the order)" for sid in order.expected_slide_ids if sid not in seen
        ]
    elif order is not None and order.expected_slide_count is not None:
        if len(seen) < order.expected_slide_count:
            waiting.append(f"{order.expected_slide_count - len(seen)} more slide(s) the order expects")
    elif order is None and inputs.slides_closed_by is None:
        waiting.append("the slide set to close (no order: PATHSTREAM_STUDY_SETTLE_S after the last slide)")
    if not inputs.slides:
        waiting.append("slides")
    outstanding = [
        s.slide_id
        for s, status in zip(inputs.slides, statuses, strict=True)
        if status not in (SlideStatus.COMPLETE, SlideStatus.FAILED)
    ]
    waiting += [f"slide {sid} to finish" for sid in outstanding]
    return tuple(waiting)


def summarise(inputs: StudyInputs) -> StudySummary:
    """Report inputs of one study -> its report content."""
    statuses = [slide_status(s) for s in inputs.slides]
    counts = inputs.counts
    category = stage(counts)
    waiting = _waiting_for(inputs, statuses)
    models: set[tuple[str, str]] = set()
    models |= {("detector", s.detector_model_version) for s in inputs.slides if s.detector_model_version}
    models |= {("escnn", ln.model_version) for ln in inputs.lymph_nodes if ln.model_version}
    models |= {("marrow", m.model_version) for m in inputs.marrow}
    marrow_slides = {m.slide_id for m in inputs.marrow}
    order_specimen = None if inputs.order is None else inputs.order.specimen
    has_ln = any(
        s.specimen == Specimen.LYMPH_NODE or (s.specimen is None and s.slide_id not in marrow_slides)
        for s in inputs.slides
    ) or (not inputs.slides and order_specimen != Specimen.BONE_MARROW.value)
    effective = inputs.order.collected_at if inputs.order and inputs.order.collected_at else None
    return StudySummary(
        study_id=inputs.study_id,
        ready=not waiting,
        waiting_for=waiting,
        slides=tuple(_slide_summary(s) for s in inputs.slides),
        slide_count=len(inputs.slides),
        slides_complete=statuses.count(SlideStatus.COMPLETE),
        slides_failed=statuses.count(SlideStatus.FAILED),
        counts=counts,
        pn_category=category,
        below_ajcc_minimum=category is not None and below_ajcc_minimum(counts.examined),
        lymph_nodes=inputs.lymph_nodes,
        models=tuple(sorted(models)),
        has_lymph_node_slides=has_ln,
        marrow=inputs.marrow,
        order=inputs.order,
        signed_out_by=inputs.signed_out_by,
        signed_out_at=inputs.signed_out_at,
        effective_at=effective or inputs.first_scanned_at,
    )
